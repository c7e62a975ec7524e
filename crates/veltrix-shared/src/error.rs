//! The errors of shared storage, and which of them a client may retry.

use std::time::Duration;

/// Result of a shared-storage operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. [`Error::is_retriable`] says whether the same request may
/// succeed later: the answer a Kafka adapter turns into a retriable error code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// PostgreSQL could not be reached, or did not answer within its timeout.
    /// Nothing of the request was acknowledged (a commit whose answer was lost
    /// may still have happened: an idempotent retry then gets its offsets).
    #[error("the catalog (PostgreSQL) is unavailable: {0}")]
    CatalogUnavailable(String),
    /// The bucket could not be reached, or did not answer within its timeout.
    #[error("the object store is unavailable: {0}")]
    StoreUnavailable(String),
    /// A limit on buffered data was reached and did not free up in time.
    #[error("the writer's buffer is full ({limit} reached for {waited:?})")]
    Busy { limit: &'static str, waited: Duration },
    /// The object was claimed by the orphan collector before its commit.
    #[error("object {0} was collected as an orphan before its commit")]
    ObjectCollected(String),
    /// A transaction lost to a concurrent one more often than allowed.
    #[error("the commit conflicted with concurrent writers {0} times")]
    Conflict(u32),
    /// The writer was shut down.
    #[error("the writer is closed")]
    Closed,
    /// The partition is not in the catalog.
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: i32 },
    /// A batch larger than `batch_bytes_max`.
    #[error("a batch of {bytes} bytes is larger than batch_bytes_max ({max})")]
    BatchTooLarge { bytes: usize, max: usize },
    /// An idempotent batch whose first sequence does not follow the last one.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
    /// A batch from an older epoch of its producer id: a newer instance fenced it.
    #[error("producer {producer_id} epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, current: i16, got: i16 },
    /// A retry of a batch too old to be remembered: it was appended, but its
    /// offsets are no longer known.
    #[error("duplicate sequence {first_seq} of producer {producer_id}, too old to answer with its offsets")]
    DuplicateSequence { producer_id: i64, first_seq: i32 },
    /// A committed batch's object is not in the bucket.
    #[error("object {0} is missing from the bucket")]
    ObjectMissing(String),
    /// A committed batch's bytes do not match their checksum or length.
    #[error("object {key} is damaged at bytes {start}..{end}")]
    ObjectCorrupt { key: String, start: u64, end: u64 },
    /// The catalog's schema is newer than this build knows.
    #[error("the catalog's schema version {found} is newer than this build's {known}")]
    SchemaTooNew { found: i32, known: i32 },
    /// A setting outside its allowed range.
    #[error("{name} = {value} is outside {min}..={max}")]
    InvalidLimit {
        name: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    /// Another live broker process holds this broker id's lease.
    #[error("broker id {0} is in use by another live broker")]
    BrokerIdInUse(i32),
    /// This broker's lease expired or was taken over: it must not acknowledge
    /// anything that depends on it until it registers again.
    #[error("broker {0}'s lease was lost")]
    LeaseLost(i32),
    /// Another broker claimed the share-partition's state since this one
    /// did: this broker's copy is stale.
    #[error("another broker took the share state of group {group} over")]
    ShareStateMoved { group: String },
    /// A topic of that name exists.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// No topic of that name.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// Any other failure of the catalog or the store (a bug, a permission).
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Whether the same request may succeed if tried again.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::CatalogUnavailable(_)
                | Error::StoreUnavailable(_)
                | Error::Busy { .. }
                | Error::ObjectCollected(_)
                | Error::Conflict(_)
                | Error::LeaseLost(_)
        )
    }
}
