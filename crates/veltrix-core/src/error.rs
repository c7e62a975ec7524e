//! Errors of the broker engine. Adapters map them to protocol error codes.

use std::path::PathBuf;

use veltrix_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// No topic has this id (32 hex digits); Kafka's requests by topic id.
    #[error("no topic has id {0}")]
    UnknownTopicId(String),
    #[error("topic `{topic}` has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("invalid topic name `{name}`: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid partition count {count}: {reason}")]
    InvalidPartitions { count: i64, reason: String },
    #[error("invalid topic config: {0}")]
    InvalidConfig(String),
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// Waited for longer than a named limit; retrying may succeed.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A producer's batch failed validation; `batch` is its position among the
    /// partition's batches in the request. Nothing of the request was appended
    /// to the partition.
    #[error("record batch {batch}: {source}")]
    InvalidBatch {
        batch: usize,
        #[source]
        source: crate::validate::InvalidBatch,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    /// Another broker took the share-partition's state over: this one's copy
    /// is stale.
    #[error("another broker serves share group `{group}`'s partition {partition} now")]
    ShareStateMoved { group: String, partition: i32 },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("topic catalogue {path} is unreadable: {reason}")]
    Catalog { path: PathBuf, reason: String },
    /// Another process holds the data directory's lock.
    #[error("data directory {} is in use by another veltrix process; stop it or choose another --data-dir", dir.display())]
    DataDirInUse { dir: PathBuf },
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
