//! Named limits with their allowed ranges.

use std::time::Duration;

use crate::error::{Error, Result};

/// One limit's allowed range, checked by the configs' `validate`.
pub(crate) fn check(name: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidLimit { name, value, min, max })
    }
}

/// The writer's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// The least time between the starts of two flushes, so a batch's longest wait (1..=10,000 ms).
    pub flush_interval_ms: u64,
    /// An object is written as soon as its batches reach this size
    /// (64 KiB..=256 MiB).
    pub flush_bytes_max: usize,
    /// At most this many batches in one object, so one commit (1..=100,000).
    pub flush_batches_max: usize,
    /// The largest batch accepted (1 KiB..=flush_bytes_max).
    pub batch_bytes_max: usize,
    /// Bytes accepted and not yet answered, across the flush being written
    /// and the next one filling (flush_bytes_max..=2 GiB).
    pub buffered_bytes_max: usize,
    /// Appends waiting to enter a flush (1..=1,000,000).
    pub pending_appends_max: usize,
    /// How long an append waits for room in the buffer before
    /// [`Error::Busy`] (0..=60,000 ms).
    pub buffer_wait_ms: u64,
    /// The object PUT's deadline, retries included (100..=300,000 ms).
    pub put_timeout_ms: u64,
    /// The commit transaction's deadline, retries included (100..=300,000 ms).
    pub commit_timeout_ms: u64,
    /// Commits that lost to a concurrent one (deadlock, serialization
    /// failure) tried again before [`Error::Conflict`] (1..=100).
    pub commit_attempts_max: u32,
    /// Prefix of the objects' keys in the bucket.
    pub key_prefix: String,
    /// This writer's name in its objects' keys (a broker id).
    pub writer_id: String,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            flush_interval_ms: 50,
            flush_bytes_max: 8 << 20,
            flush_batches_max: 10_000,
            batch_bytes_max: 8 << 20,
            buffered_bytes_max: 64 << 20,
            pending_appends_max: 100_000,
            buffer_wait_ms: 5_000,
            put_timeout_ms: 10_000,
            commit_timeout_ms: 10_000,
            commit_attempts_max: 10,
            key_prefix: "veltrix".into(),
            writer_id: "broker-0".into(),
        }
    }
}

impl WriterConfig {
    /// Every limit within its range.
    pub fn validate(&self) -> Result<()> {
        check("flush_interval_ms", self.flush_interval_ms, 1, 10_000)?;
        check("flush_bytes_max", self.flush_bytes_max as u64, 64 << 10, 256 << 20)?;
        check("flush_batches_max", self.flush_batches_max as u64, 1, 100_000)?;
        check(
            "batch_bytes_max",
            self.batch_bytes_max as u64,
            1 << 10,
            self.flush_bytes_max as u64,
        )?;
        check(
            "buffered_bytes_max",
            self.buffered_bytes_max as u64,
            self.flush_bytes_max as u64,
            2 << 30,
        )?;
        check("pending_appends_max", self.pending_appends_max as u64, 1, 1_000_000)?;
        check("buffer_wait_ms", self.buffer_wait_ms, 0, 60_000)?;
        check("put_timeout_ms", self.put_timeout_ms, 100, 300_000)?;
        check("commit_timeout_ms", self.commit_timeout_ms, 100, 300_000)?;
        check("commit_attempts_max", self.commit_attempts_max.into(), 1, 100)?;
        if !valid_key_part(&self.key_prefix) || !valid_key_part(&self.writer_id) {
            return Err(Error::Other(
                "key_prefix and writer_id must be 1..=64 of [A-Za-z0-9._-]".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

fn valid_key_part(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The reader's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Batches' bytes kept in the local read cache (0..=64 GiB; 0: no cache).
    pub cache_bytes_max: usize,
    /// Batch rows looked up for one read (1..=10,000).
    pub read_batches_max: usize,
    /// A ranged GET's deadline, retries included (100..=300,000 ms).
    pub get_timeout_ms: u64,
    /// Objects fetched for one read at most (1..=64); the batches after
    /// are left for the next read, so a consumer far behind costs a bounded
    /// burst of GETs per fetch.
    pub gets_per_read_max: usize,
    /// An object at most this large is fetched and cached whole, so its
    /// other partitions' batches are read from the cache (0..=256 MiB; 0:
    /// always by range).
    pub whole_object_bytes_max: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            cache_bytes_max: 256 << 20,
            read_batches_max: 1_000,
            get_timeout_ms: 10_000,
            gets_per_read_max: 8,
            whole_object_bytes_max: 16 << 20,
        }
    }
}

impl ReaderConfig {
    /// Every limit within its range.
    pub fn validate(&self) -> Result<()> {
        check("cache_bytes_max", self.cache_bytes_max as u64, 0, 64 << 30)?;
        check("read_batches_max", self.read_batches_max as u64, 1, 10_000)?;
        check("get_timeout_ms", self.get_timeout_ms, 100, 300_000)?;
        check("gets_per_read_max", self.gets_per_read_max as u64, 1, 64)?;
        check(
            "whole_object_bytes_max",
            self.whole_object_bytes_max as u64,
            0,
            256 << 20,
        )
    }
}

/// The orphan collector's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// An object younger than this is never collected: it may still be on its
    /// way to a commit. Far above the writer's `put_timeout_ms +
    /// commit_timeout_ms` (1,000 ms..=7 days).
    pub grace_ms: u64,
    /// Objects deleted in one round at most (1..=100,000).
    pub deletes_per_round_max: usize,
    /// Objects listed in one round at most (1..=10,000,000).
    pub listed_per_round_max: usize,
    /// Prefix of the objects' keys in the bucket (the writers').
    pub key_prefix: String,
    /// An idempotent producer whose state in a partition has not changed
    /// for this long is forgotten there, as a local partition forgets it
    /// after `producer_id_expiration_ms` (1 ms or more).
    pub producer_idle_ms: u64,
    /// An orphan's claim is kept this long after it was made, then pruned:
    /// by then no commit of its key can still be on its way (the writer's
    /// timeouts are minutes at most, and the claim came `grace_ms` after
    /// the object was written) (1 hour..=30 days).
    pub orphan_claims_kept_ms: u64,
    /// Producer states and orphan claims removed per round at most, each
    /// (1..=1,000,000).
    pub rows_per_round_max: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            grace_ms: 3_600_000,
            deletes_per_round_max: 1_000,
            listed_per_round_max: 1_000_000,
            key_prefix: "veltrix".into(),
            producer_idle_ms: 86_400_000,
            orphan_claims_kept_ms: 86_400_000,
            rows_per_round_max: 10_000,
        }
    }
}

impl CollectorConfig {
    /// Every limit within its range.
    pub fn validate(&self) -> Result<()> {
        check("grace_ms", self.grace_ms, 1_000, 7 * 86_400_000)?;
        check("deletes_per_round_max", self.deletes_per_round_max as u64, 1, 100_000)?;
        check("listed_per_round_max", self.listed_per_round_max as u64, 1, 10_000_000)?;
        check("producer_idle_ms", self.producer_idle_ms, 1, i64::MAX as u64)?;
        check(
            "orphan_claims_kept_ms",
            self.orphan_claims_kept_ms,
            3_600_000,
            30 * 86_400_000,
        )?;
        check("rows_per_round_max", self.rows_per_round_max as u64, 1, 1_000_000)
    }
}

/// The merger's limits: small objects rewritten into larger ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeConfig {
    /// Committed objects smaller than this are merged; 0: no merging
    /// (0..=256 MiB).
    pub small_bytes_max: u64,
    /// One merged object's size at most, so the bytes a round holds in
    /// memory (1 MiB..=1 GiB).
    pub merged_bytes_max: u64,
    /// Objects younger than this are left alone: readers are likeliest to
    /// want them, from the cache (1,000 ms..=1 day).
    pub age_min_ms: u64,
    /// Objects looked at in one round at most (2..=100,000).
    pub objects_per_round_max: usize,
    /// One object's GET, and the merged object's PUT (100..=600,000 ms).
    pub request_timeout_ms: u64,
    /// Prefix of the objects' keys in the bucket (the writers').
    pub key_prefix: String,
    /// Names the merged objects' keys (one per broker).
    pub writer_id: String,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig {
            small_bytes_max: 4 << 20,
            merged_bytes_max: 64 << 20,
            age_min_ms: 60_000,
            objects_per_round_max: 1_000,
            request_timeout_ms: 30_000,
            key_prefix: "veltrix".into(),
            writer_id: "merge".into(),
        }
    }
}

impl MergeConfig {
    /// Every limit within its range.
    pub fn validate(&self) -> Result<()> {
        check("small_bytes_max", self.small_bytes_max, 0, 256 << 20)?;
        check("merged_bytes_max", self.merged_bytes_max, 1 << 20, 1 << 30)?;
        check("age_min_ms", self.age_min_ms, 1_000, 86_400_000)?;
        check("objects_per_round_max", self.objects_per_round_max as u64, 2, 100_000)?;
        check("request_timeout_ms", self.request_timeout_ms, 100, 600_000)
    }
}
