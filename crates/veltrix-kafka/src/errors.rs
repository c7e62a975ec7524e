//! Kafka errors: the codec's typed `ResponseError`, and the mapping from the
//! engine's errors to them. Handlers answer with a `ResponseError` (its
//! `code()` goes on the wire); which one an engine error becomes is decided
//! here and nowhere else.

use kafka_protocol::protocol::StrBytes;
use veltrix_core::CoreError;
use veltrix_core::groups::GroupError;
use veltrix_core::share::ShareError;
use veltrix_core::validate::InvalidBatch;
use veltrix_log::LogError;

pub use kafka_protocol::error::ResponseError;

/// No error, as the wire says it.
pub const NONE: i16 = 0;

/// A refusal with the message some responses carry beside the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: ResponseError,
    pub message: String,
}

impl Refusal {
    pub fn new(error: ResponseError, message: impl Into<String>) -> Refusal {
        Refusal {
            error,
            message: message.into(),
        }
    }

    /// An engine error, with its text as the message.
    pub fn core(e: &CoreError) -> Refusal {
        Refusal::new(core_error(e), e.to_string())
    }
}

/// The error code and message an answer carries for `outcome`: NONE and no
/// message when it succeeded.
pub fn code_and_message(outcome: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (NONE, None),
        Err(r) => (r.error.code(), Some(StrBytes::from_string(r.message))),
    }
}

/// An error code's name for metric labels (`NOT_LEADER_OR_FOLLOWER`...):
/// one of Kafka's codes, or `UNKNOWN` — a fixed, bounded set.
pub fn error_label(code: i16) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static NAMES: LazyLock<Mutex<HashMap<i16, &'static str>>> = LazyLock::new(Default::default);
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
pub fn count_error(metrics: &crate::KafkaMetrics, api: &'static str, code: i16) {
    if code != NONE && metrics.enabled() {
        metrics
            .request_errors
            .with_label_values(&[api, error_label(code)])
            .inc();
    }
}

/// The Kafka error for an engine error.
pub fn core_error(e: &CoreError) -> ResponseError {
    match e {
        CoreError::UnknownTopic(_) | CoreError::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition,
        CoreError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
        CoreError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        CoreError::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        CoreError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
        CoreError::InvalidConfig(_) => ResponseError::InvalidConfig,
        CoreError::LimitReached(_) => ResponseError::PolicyViolation,
        CoreError::Timeout(_) => ResponseError::RequestTimedOut,
        CoreError::InvalidBatch { source, .. } => batch_error(source),
        CoreError::Log(e) => log_error(e),
        CoreError::ShareStateMoved { .. } => ResponseError::NotLeaderOrFollower,
        CoreError::Io { .. } | CoreError::Catalog { .. } | CoreError::DataDirInUse { .. } => {
            ResponseError::KafkaStorageError
        }
    }
}

/// The Kafka error for a consumer group error.
pub fn group_error(e: &GroupError) -> ResponseError {
    match e {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::MemberIdRequired(_) => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::OffsetMetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
        GroupError::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::TooManyGroups(_) => ResponseError::PolicyViolation,
        GroupError::Storage(_) => ResponseError::UnknownServerError,
        GroupError::InvalidRequest(_) => ResponseError::InvalidRequest,
        GroupError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
        GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        GroupError::FencedMemberEpoch { .. } => ResponseError::FencedMemberEpoch,
        GroupError::StaleMemberEpoch { .. } => ResponseError::StaleMemberEpoch,
        GroupError::WrongGroupType { .. } => ResponseError::GroupIdNotFound,
    }
}

/// The Kafka error for a producer's batch that failed validation, as
/// Kafka's `LogValidator` answers: bytes that cannot be read as a batch (ResponseError::Crc,
/// size, magic, an undefined codec, a compressed stream that does not
/// decompress) are ResponseError::CorruptMessage; a readable batch that breaks the rules (a
/// count that contradicts the records, a control batch, a malformed record) is
/// ResponseError::InvalidRecord, which producers do not retry. Records that decompress past
/// the limit are ResponseError::MessageTooLarge, on which the Java producer splits the batch.
pub fn batch_error(e: &InvalidBatch) -> ResponseError {
    use veltrix_log::batch::BatchError;
    match e {
        InvalidBatch::Header(BatchError::TooLarge { .. }) | InvalidBatch::DecompressedTooLarge { .. } => {
            ResponseError::MessageTooLarge
        }
        InvalidBatch::Header(BatchError::BadCount { .. }) => ResponseError::InvalidRecord,
        InvalidBatch::NoBatches
        | InvalidBatch::Header(_)
        | InvalidBatch::UnknownCompression { .. }
        | InvalidBatch::Decompression { .. } => ResponseError::CorruptMessage,
        InvalidBatch::ControlBatch
        | InvalidBatch::CountImpossible { .. }
        | InvalidBatch::MissingRecords { .. }
        | InvalidBatch::TrailingBytes { .. }
        | InvalidBatch::Record { .. } => ResponseError::InvalidRecord,
    }
}

/// The Kafka error for a log error.
pub fn log_error(e: &LogError) -> ResponseError {
    use veltrix_log::batch::BatchError;
    match e {
        LogError::InvalidBatch(BatchError::TooLarge { .. }) => ResponseError::MessageTooLarge,
        LogError::InvalidBatch(_) | LogError::Corrupt { .. } => ResponseError::CorruptMessage,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Poisoned { .. } | LogError::DiskFull { .. } | LogError::Io { .. } => ResponseError::KafkaStorageError,
        LogError::OffsetsExhausted { .. } => ResponseError::PolicyViolation,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        LogError::InvalidProducerFields { .. } => ResponseError::CorruptMessage,
        LogError::Config(_) => ResponseError::InvalidConfig,
    }
}

/// The Kafka error for an ACL change refused (CreateAcls, DeleteAcls).
pub fn acl_error(e: &veltrix_core::acl::AclError) -> ResponseError {
    use veltrix_core::acl::AclError;
    match e {
        AclError::Invalid(_) => ResponseError::InvalidRequest,
        AclError::TooMany { .. } => ResponseError::PolicyViolation,
        AclError::Store(_) => ResponseError::UnknownServerError,
    }
}

/// The Kafka error for a SCRAM credential or change refused
/// (AlterUserScramCredentials).
pub fn credential_error(e: &veltrix_core::auth::CredentialError) -> ResponseError {
    use veltrix_core::auth::CredentialError;
    match e {
        CredentialError::Iterations { .. }
        | CredentialError::Salt { .. }
        | CredentialError::KeyLength { .. }
        | CredentialError::UserName(_) => ResponseError::UnacceptableCredential,
        CredentialError::TooMany { .. } => ResponseError::PolicyViolation,
        CredentialError::Store(_) => ResponseError::UnknownServerError,
    }
}

/// The Kafka error for a share group error.
pub fn share_error(e: &ShareError) -> ResponseError {
    match e {
        ShareError::InvalidGroupId | ShareError::GroupIdTooLong(_) => ResponseError::InvalidGroupId,
        ShareError::UnknownMemberId => ResponseError::UnknownMemberId,
        ShareError::FencedMemberEpoch { .. } => ResponseError::FencedMemberEpoch,
        ShareError::GroupMaxSizeReached(_) => ResponseError::GroupMaxSizeReached,
        ShareError::TooManyGroups(_) => ResponseError::PolicyViolation,
        ShareError::WrongGroupType(_) | ShareError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        ShareError::ShareSessionNotFound => ResponseError::ShareSessionNotFound,
        ShareError::InvalidShareSessionEpoch { .. } => ResponseError::InvalidShareSessionEpoch,
        ShareError::ShareSessionLimitReached(_) => ResponseError::ShareSessionLimitReached,
        ShareError::InvalidRecordState(_) => ResponseError::InvalidRecordState,
        ShareError::InvalidRequest(_) => ResponseError::InvalidRequest,
        ShareError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        ShareError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ShareError::InvalidConfig(_) => ResponseError::InvalidConfig,
        ShareError::Storage(_) => ResponseError::KafkaStorageError,
        ShareError::NotLeader(_) => ResponseError::NotLeaderOrFollower,
    }
}

/// A shared-storage error as Kafka answers it. The bucket or the catalog
/// unavailable is KAFKA_STORAGE_ERROR, which clients retry; nothing was
/// acknowledged (an idempotent producer's retry of a batch whose commit
/// did happen gets its original offsets).
pub fn shared_error(e: &veltrix_shared::Error) -> ResponseError {
    use veltrix_shared::Error as E;
    match e {
        E::CatalogUnavailable(_)
        | E::StoreUnavailable(_)
        | E::Busy { .. }
        | E::ObjectCollected(_)
        | E::Conflict(_)
        | E::Closed
        | E::ObjectMissing(_) => ResponseError::KafkaStorageError,
        E::ObjectCorrupt { .. } => ResponseError::CorruptMessage,
        E::UnknownPartition { .. } | E::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        E::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        E::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        E::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        E::DuplicateSequence { .. } => ResponseError::DuplicateSequenceNumber,
        E::LeaseLost(_) => ResponseError::NotCoordinator,
        E::ShareStateMoved { .. } => ResponseError::NotLeaderOrFollower,
        E::TopicExists(_) => ResponseError::TopicAlreadyExists,
        E::BrokerIdInUse(_) | E::SchemaTooNew { .. } | E::InvalidLimit { .. } | E::Other(_) => {
            ResponseError::UnknownServerError
        }
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn error_labels_are_kafkas_names_or_unknown() {
        let label = |e: ResponseError| error_label(e.code());
        assert_eq!(
            label(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(label(ResponseError::KafkaStorageError), "KAFKA_STORAGE_ERROR");
        assert_eq!(label(ResponseError::StaleMemberEpoch), "STALE_MEMBER_EPOCH");
        assert_eq!(error_label(12_345), "UNKNOWN");
        assert!(std::ptr::eq(error_label(3), error_label(3)), "names are made once");
    }
}
