//! Per-partition settings of the log, with their limits and how they relate.
//!
//! A [`LogConfig`] is built once (from the broker's configuration, later from a
//! topic's), checked by [`LogConfig::validate`], and then only read.

use crate::batch::HEADER_BYTES;
use crate::compact::CompactionConfig;

/// When appended batches are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every append is acknowledged only after an fsync that covers it. Concurrent
    /// appends share one fsync (group commit). The default.
    EveryAppend,
    /// Appends are acknowledged once written to the page cache and fsynced at most
    /// `flush_interval_ms` later. Acknowledged records can be lost on power loss;
    /// the log says so in its logs and in [`crate::LogStats::relaxed_durability`].
    Interval { flush_interval_ms: u64 },
}

/// Settings of one partition's log. Names end in their unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is rolled before an append would make it larger than this.
    pub segment_bytes_max: u64,
    /// A non-empty active segment is rolled once it has been receiving appends for
    /// this long (Kafka's `segment.ms`).
    pub segment_age_ms_max: u64,
    /// Largest batch accepted, header included (Kafka's `max.message.bytes`).
    pub batch_bytes_max: u32,
    /// An index entry is added after at least this many bytes of batches.
    pub index_interval_bytes: u32,
    /// Whole segments whose newest record is older than this, both by its timestamp and by when the broker appended it, are deleted.
    pub retention_ms: Option<u64>,
    /// Oldest segments are deleted while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// When appends are fsynced: before they are acknowledged (the default),
    /// or every interval.
    pub flush: FlushPolicy,
    /// Idempotent producers remembered per partition; past it the least recently
    /// active one is forgotten (see [`crate::producer`]).
    pub producers_max: u32,
    /// An idempotent producer idle this long is forgotten (Kafka's
    /// `producer.id.expiration.ms`).
    pub producer_id_expiration_ms: u64,
    /// `Some` for a compacted log (Kafka's `cleanup.policy` with `compact`):
    /// the cleaner keeps the latest record per key (see [`crate::compact`]).
    /// Retention by time and size applies only if the policy also says
    /// `delete`; the caller leaves `retention_*` unset otherwise.
    pub compaction: Option<CompactionConfig>,
}

/// Largest segment: index positions are 32-bit.
pub const SEGMENT_BYTES_LIMIT: u64 = i32::MAX as u64;
/// Smallest segment that the engine accepts; anything smaller is a typo.
pub const SEGMENT_BYTES_MIN: u64 = 4096;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_age_ms_max: 7 * 24 * 3600 * 1000,
            batch_bytes_max: 1_048_588,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            flush: FlushPolicy::EveryAppend,
            producers_max: 10_000,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            compaction: None,
        }
    }
}

/// A setting out of range, or two settings that contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log setting `{field}`: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: String) -> Result<(), ConfigError> {
    Err(ConfigError { field, reason })
}

impl LogConfig {
    /// Checks every setting and how they relate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&self.segment_bytes_max) {
            return bad(
                "segment_bytes_max",
                format!(
                    "{} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_LIMIT} bytes",
                    self.segment_bytes_max
                ),
            );
        }
        if (self.batch_bytes_max as usize) < HEADER_BYTES {
            return bad(
                "batch_bytes_max",
                format!(
                    "{} is smaller than a batch header ({HEADER_BYTES} bytes)",
                    self.batch_bytes_max
                ),
            );
        }
        if u64::from(self.batch_bytes_max) > self.segment_bytes_max {
            return bad(
                "batch_bytes_max",
                format!(
                    "{} exceeds segment_bytes_max ({}): the largest batch must fit in one segment",
                    self.batch_bytes_max, self.segment_bytes_max
                ),
            );
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be at least 1".into());
        }
        if self.segment_age_ms_max == 0 {
            return bad("segment_age_ms_max", "must be at least 1 ms".into());
        }
        if let FlushPolicy::Interval { flush_interval_ms: 0 } = self.flush {
            return bad(
                "flush_interval_ms",
                "must be at least 1 ms; use the default policy to fsync every append".into(),
            );
        }
        if self.producers_max == 0 {
            return bad(
                "producers_max",
                "must be at least 1: idempotent producers need their sequence state".into(),
            );
        }
        if self.producer_id_expiration_ms == 0 {
            return bad("producer_id_expiration_ms", "must be at least 1 ms".into());
        }
        if let Some(c) = &self.compaction {
            c.validate()?;
        }
        if self.retention_bytes == Some(0) {
            return bad(
                "retention_bytes",
                "0 would delete every sealed segment at once; omit it for no size limit".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_durable() {
        let c = LogConfig::default();
        c.validate().unwrap();
        assert_eq!(c.flush, FlushPolicy::EveryAppend);
    }

    #[test]
    fn a_batch_larger_than_a_segment_is_rejected() {
        let c = LogConfig {
            segment_bytes_max: 8192,
            batch_bytes_max: 8193,
            ..LogConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "batch_bytes_max");
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let cases = [
            (
                LogConfig {
                    segment_bytes_max: 1 << 40,
                    ..LogConfig::default()
                },
                "segment_bytes_max",
            ),
            (
                LogConfig {
                    index_interval_bytes: 0,
                    ..LogConfig::default()
                },
                "index_interval_bytes",
            ),
            (
                LogConfig {
                    flush: FlushPolicy::Interval { flush_interval_ms: 0 },
                    ..LogConfig::default()
                },
                "flush_interval_ms",
            ),
            (
                LogConfig {
                    retention_bytes: Some(0),
                    ..LogConfig::default()
                },
                "retention_bytes",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field, field);
        }
    }
}
