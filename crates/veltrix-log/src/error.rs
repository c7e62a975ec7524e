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
