//! Kafka error codes, and the mapping from the engine's errors to them.

use veltrix_core::CoreError;
use veltrix_core::groups::GroupError;
use veltrix_core::share::ShareError;
use veltrix_core::validate::InvalidBatch;
use veltrix_log::LogError;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const POLICY_VIOLATION: i16 = 44;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;
pub const INVALID_RECORD: i16 = 87;
pub const INVALID_RECORD_STATE: i16 = 121;
pub const SHARE_SESSION_NOT_FOUND: i16 = 122;
pub const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
pub const SHARE_SESSION_LIMIT_REACHED: i16 = 133;

/// An error code's name for metric labels (`NOT_LEADER_OR_FOLLOWER`...):
/// one of Kafka's codes, or `UNKNOWN` — a fixed, bounded set.
pub fn error_label(code: i16) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static NAMES: LazyLock<Mutex<HashMap<i16, &'static str>>> = LazyLock::new(Default::default);
    use kafka_protocol::error::ResponseError;
    let known = match ResponseError::try_from_code(code) {
        None | Some(ResponseError::Unknown(_)) => return "UNKNOWN",
        Some(known) => known,
    };
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    names.entry(code).or_insert_with(|| {
        let debug = format!("{known:?}");
        // CamelCase to SCREAMING_SNAKE_CASE, as Kafka names its errors.
        let mut out = String::with_capacity(debug.len() + 8);
        for (i, c) in debug.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        Box::leak(out.into_boxed_str())
    })
}

/// Counts a partition answered with an error, per API and error.
pub fn count_error(metrics: &veltrix_core::Metrics, api: &'static str, code: i16) {
    if code != NONE && metrics.enabled() {
        metrics
            .request_errors
            .with_label_values(&[api, error_label(code)])
            .inc();
    }
}

/// The Kafka error code for an engine error.
pub fn code(e: &CoreError) -> i16 {
    match e {
        CoreError::UnknownTopic(_) | CoreError::UnknownPartition { .. } => UNKNOWN_TOPIC_OR_PARTITION,
        CoreError::UnknownTopicId(_) => UNKNOWN_TOPIC_ID,
        CoreError::TopicExists(_) => TOPIC_ALREADY_EXISTS,
        CoreError::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
        CoreError::InvalidPartitions { .. } => INVALID_PARTITIONS,
        CoreError::InvalidConfig(_) => INVALID_CONFIG,
        CoreError::LimitReached(_) => POLICY_VIOLATION,
        CoreError::InvalidBatch { source, .. } => invalid_batch_code(source),
        CoreError::Log(e) => log_code(e),
        CoreError::Io { .. } | CoreError::Catalog { .. } | CoreError::DataDirInUse { .. } => KAFKA_STORAGE_ERROR,
    }
}

/// The Kafka error code for a consumer group error.
pub fn group_code(e: &GroupError) -> i16 {
    match e {
        GroupError::InvalidGroupId => INVALID_GROUP_ID,
        GroupError::InvalidSessionTimeout { .. } => INVALID_SESSION_TIMEOUT,
        GroupError::UnknownMemberId => UNKNOWN_MEMBER_ID,
        GroupError::IllegalGeneration { .. } => ILLEGAL_GENERATION,
        GroupError::RebalanceInProgress => REBALANCE_IN_PROGRESS,
        GroupError::InconsistentGroupProtocol => INCONSISTENT_GROUP_PROTOCOL,
        GroupError::MemberIdRequired(_) => MEMBER_ID_REQUIRED,
        GroupError::FencedInstanceId => FENCED_INSTANCE_ID,
        GroupError::GroupMaxSizeReached => GROUP_MAX_SIZE_REACHED,
        GroupError::CoordinatorNotAvailable => COORDINATOR_NOT_AVAILABLE,
        GroupError::NonEmptyGroup => NON_EMPTY_GROUP,
        GroupError::GroupIdNotFound => GROUP_ID_NOT_FOUND,
        GroupError::OffsetMetadataTooLarge { .. } => OFFSET_METADATA_TOO_LARGE,
        GroupError::UnknownTopicOrPartition { .. } => UNKNOWN_TOPIC_OR_PARTITION,
        GroupError::GroupSubscribedToTopic => GROUP_SUBSCRIBED_TO_TOPIC,
        GroupError::TooManyGroups(_) => POLICY_VIOLATION,
        GroupError::Storage(_) => UNKNOWN_SERVER_ERROR,
        GroupError::InvalidRequest(_) => INVALID_REQUEST,
        GroupError::UnsupportedAssignor(_) => UNSUPPORTED_ASSIGNOR,
        GroupError::UnreleasedInstanceId => UNRELEASED_INSTANCE_ID,
        GroupError::FencedMemberEpoch { .. } => FENCED_MEMBER_EPOCH,
        GroupError::StaleMemberEpoch { .. } => STALE_MEMBER_EPOCH,
        GroupError::WrongGroupType { .. } => GROUP_ID_NOT_FOUND,
    }
}

/// The Kafka error code for a producer's batch that failed validation, as
/// Kafka's `LogValidator` answers: bytes that cannot be read as a batch (CRC,
/// size, magic, an undefined codec, a compressed stream that does not
/// decompress) are CORRUPT_MESSAGE; a readable batch that breaks the rules (a
/// count that contradicts the records, a control batch, a malformed record) is
/// INVALID_RECORD, which producers do not retry. Records that decompress past
/// the limit are MESSAGE_TOO_LARGE, on which the Java producer splits the batch.
pub fn invalid_batch_code(e: &InvalidBatch) -> i16 {
    use veltrix_log::batch::BatchError;
    match e {
        InvalidBatch::Header(BatchError::TooLarge { .. }) | InvalidBatch::DecompressedTooLarge { .. } => {
            MESSAGE_TOO_LARGE
        }
        InvalidBatch::Header(BatchError::BadCount { .. }) => INVALID_RECORD,
        InvalidBatch::NoBatches
        | InvalidBatch::Header(_)
        | InvalidBatch::UnknownCompression { .. }
        | InvalidBatch::Decompression { .. } => CORRUPT_MESSAGE,
        InvalidBatch::ControlBatch
        | InvalidBatch::CountImpossible { .. }
        | InvalidBatch::MissingRecords { .. }
        | InvalidBatch::TrailingBytes { .. }
        | InvalidBatch::Record { .. } => INVALID_RECORD,
    }
}

/// The Kafka error code for a log error.
pub fn log_code(e: &LogError) -> i16 {
    use veltrix_log::batch::BatchError;
    match e {
        LogError::InvalidBatch(BatchError::TooLarge { .. }) => MESSAGE_TOO_LARGE,
        LogError::InvalidBatch(_) | LogError::Corrupt { .. } => CORRUPT_MESSAGE,
        LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        LogError::Poisoned { .. } | LogError::DiskFull { .. } | LogError::Io { .. } => KAFKA_STORAGE_ERROR,
        LogError::OffsetsExhausted { .. } => POLICY_VIOLATION,
        LogError::OutOfOrderSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
        LogError::InvalidProducerFields { .. } => CORRUPT_MESSAGE,
        LogError::TransactionsUnsupported { .. } => INVALID_TXN_STATE,
        LogError::Config(_) => INVALID_CONFIG,
    }
}

/// The Kafka error code for a share group error.
pub fn share_code(e: &ShareError) -> i16 {
    match e {
        ShareError::InvalidGroupId => INVALID_GROUP_ID,
        ShareError::UnknownMemberId => UNKNOWN_MEMBER_ID,
        ShareError::FencedMemberEpoch { .. } => FENCED_MEMBER_EPOCH,
        ShareError::GroupMaxSizeReached(_) => GROUP_MAX_SIZE_REACHED,
        ShareError::TooManyGroups(_) => POLICY_VIOLATION,
        ShareError::WrongGroupType(_) | ShareError::GroupIdNotFound => GROUP_ID_NOT_FOUND,
        ShareError::ShareSessionNotFound => SHARE_SESSION_NOT_FOUND,
        ShareError::InvalidShareSessionEpoch { .. } => INVALID_SHARE_SESSION_EPOCH,
        ShareError::ShareSessionLimitReached(_) => SHARE_SESSION_LIMIT_REACHED,
        ShareError::InvalidRecordState(_) => INVALID_RECORD_STATE,
        ShareError::InvalidRequest(_) => INVALID_REQUEST,
        ShareError::NonEmptyGroup => NON_EMPTY_GROUP,
        ShareError::UnknownTopicOrPartition => UNKNOWN_TOPIC_OR_PARTITION,
        ShareError::InvalidConfig(_) => INVALID_CONFIG,
        ShareError::Storage(_) => KAFKA_STORAGE_ERROR,
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn error_labels_are_kafkas_names_or_unknown() {
        assert_eq!(error_label(UNKNOWN_TOPIC_OR_PARTITION), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_label(KAFKA_STORAGE_ERROR), "KAFKA_STORAGE_ERROR");
        assert_eq!(error_label(STALE_MEMBER_EPOCH), "STALE_MEMBER_EPOCH");
        assert_eq!(error_label(12_345), "UNKNOWN");
        assert!(std::ptr::eq(error_label(3), error_label(3)), "names are made once");
    }
}
