//! Errors of the log engine. Adapters map these to protocol error codes.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::BatchError;
use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The batch was refused before anything was written.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A read or delete asked for an offset outside `log_start..=high_watermark`.
    #[error("offset {offset} is out of range: the log holds {log_start}..{high_watermark}")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        high_watermark: i64,
    },
    /// An earlier write or fsync failed; this partition accepts no more appends
    /// until it is reopened, because what is on disk can no longer be vouched for.
    #[error("partition {dir} refuses writes since {cause}; reads continue, restart after fixing the disk")]
    Poisoned { dir: PathBuf, cause: Arc<str> },
    /// The disk is full. Nothing of the batch remains; the append can be retried
    /// once space is freed.
    #[error("disk full while appending to {dir}; the batch was not written")]
    DiskFull { dir: PathBuf },
    /// Stored bytes fail their checksum or do not fit together.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The log has handed out every offset it can represent.
    #[error("partition {dir} has used up its offsets (next offset {next_offset})")]
    OffsetsExhausted { dir: PathBuf, next_offset: i64 },
    /// An idempotent producer's batch does not follow its previous one.
    #[error("producer {producer_id}: sequence {got} is out of order, expected {expected}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
    /// An idempotent producer's batch carries an epoch older than the partition
    /// has seen: a newer instance of the producer has fenced this one.
    #[error("producer {producer_id}: epoch {got} is fenced by epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, current: i16, got: i16 },
    /// A batch with a producer id but a negative epoch or sequence.
    #[error("producer {producer_id}: invalid epoch {epoch} or sequence {sequence}")]
    InvalidProducerFields {
        producer_id: i64,
        epoch: i16,
        sequence: i32,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
