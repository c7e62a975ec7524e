//! What a share-partition's records are read from: the partition's log on
//! local storage, or the shared storage's reads on a broker of a cluster.
//! Acquisition sees only this.

use bytes::Bytes;
use veltrix_log::{Log, LogError};

use super::ShareError;
use crate::topic::Partition;

/// Finds what a partition (topic id, index) is read from, or why it is not
/// served here.
pub type SourceOf<'a> = dyn Fn(&crate::topic::TopicId, i32) -> Result<std::sync::Arc<dyn ShareSource>, ShareError> + 'a;

/// A partition's records as acquisition reads them. Calls may block (a read
/// from a bucket); they are made on the blocking pool.
pub trait ShareSource: Send + Sync {
    /// The first offset still kept.
    fn log_start(&self) -> i64;
    /// The offset after the last committed record.
    fn high_watermark(&self) -> i64;
    /// Whole batches from the one holding `from`, about `bytes_max` of them
    /// (one batch at least); empty at or past the end and below the start.
    fn read(&self, from: i64, bytes_max: usize) -> Result<Bytes, ShareError>;
    /// The first offset whose batch holds a timestamp at or after
    /// `timestamp`; `None` when no batch does (or it is not known).
    fn offset_for_timestamp(&self, timestamp: i64) -> Option<i64>;
}

impl ShareSource for Log {
    fn log_start(&self) -> i64 {
        Log::log_start(self)
    }

    fn high_watermark(&self) -> i64 {
        Log::high_watermark(self)
    }

    fn read(&self, from: i64, bytes_max: usize) -> Result<Bytes, ShareError> {
        match Log::read(self, from, bytes_max) {
            Ok(r) => Ok(r.records),
            Err(LogError::OffsetOutOfRange { .. }) => Ok(Bytes::new()),
            Err(e) => Err(ShareError::Storage(e.to_string())),
        }
    }

    fn offset_for_timestamp(&self, timestamp: i64) -> Option<i64> {
        match Log::offset_for_timestamp(self, timestamp) {
            Ok(Some(hit)) => Some(hit.offset),
            _ => None,
        }
    }
}

impl ShareSource for Partition {
    fn log_start(&self) -> i64 {
        self.log().log_start()
    }

    fn high_watermark(&self) -> i64 {
        self.log().high_watermark()
    }

    fn read(&self, from: i64, bytes_max: usize) -> Result<Bytes, ShareError> {
        ShareSource::read(self.log(), from, bytes_max)
    }

    fn offset_for_timestamp(&self, timestamp: i64) -> Option<i64> {
        ShareSource::offset_for_timestamp(self.log(), timestamp)
    }
}
