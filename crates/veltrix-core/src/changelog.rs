//! A durable log of JSON change records, replayed at start and compacted by
//! snapshots: the storage under the engine's small metadata stores.
//!
//! Each change is one record batch whose payload is the JSON of one record
//! (`R`). A store appends its changes in the order it applies them in memory
//! and answers its callers once [`ChangeLog::wait_durable`] has returned for
//! them. At open, every record from the log start is handed to the caller in
//! order. Compaction appends the whole current state as records, between two
//! markers the caller's record type provides, makes it durable and deletes
//! everything before it; a snapshot cut short by a crash is ignored by the
//! replay of the caller, and the records before it still stand.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use veltrix_log::batch::{self, HEADER_BYTES, build};
use veltrix_log::{Env, Log, LogConfig};

use crate::error::{CoreError, Result};

/// A change log is not compacted below this size.
pub const COMPACT_BYTES_MIN: u64 = 64 << 20;
/// Largest change record; snapshots are cut into records below it.
pub const RECORD_BYTES_MAX: usize = 4 << 20;
/// Bytes read from the log at a time while replaying.
const REPLAY_READ_BYTES: usize = 8 << 20;

#[derive(Debug)]
pub(crate) struct ChangeLog {
    log: Log,
    /// What the store is, for errors and logs ("offsets", "share state").
    what: &'static str,
    /// Log size right after the last compaction (or at open).
    compacted_size: AtomicU64,
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 20,
        batch_bytes_max: (RECORD_BYTES_MAX + 4096) as u32,
        // Only compaction may remove changes.
        retention_ms: None,
        retention_bytes: None,
        ..LogConfig::default()
    }
}

/// A record batch carrying one record as its payload.
fn encode<R: Serialize>(record: &R, now_ms: i64) -> Vec<u8> {
    let payload = serde_json::to_vec(record).expect("change records serialise");
    let mut buf = vec![0u8; HEADER_BYTES + payload.len()];
    buf[HEADER_BYTES..].copy_from_slice(&payload);
    build::write_into(
        &mut buf,
        build::Spec {
            record_count: 1,
            base_timestamp: now_ms,
            max_timestamp: now_ms,
            ..build::Spec::default()
        },
    );
    buf
}

/// A snapshot as records: `begin`, then `items` cut into chunks of about
/// half of [`RECORD_BYTES_MAX`] (by `bytes`, an estimate of an item's JSON
/// size), then `end`.
pub(crate) fn snapshot_records<T, R>(
    items: Vec<T>,
    bytes: impl Fn(&T) -> usize,
    begin: R,
    chunk: impl Fn(Vec<T>) -> R,
    end: R,
) -> Vec<R> {
    let mut records = vec![begin];
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for item in items {
        let b = bytes(&item);
        if current_bytes + b > RECORD_BYTES_MAX / 2 && !current.is_empty() {
            records.push(chunk(std::mem::take(&mut current)));
            current_bytes = 0;
        }
        current_bytes += b;
        current.push(item);
    }
    if !current.is_empty() {
        records.push(chunk(current));
    }
    records.push(end);
    records
}

/// The records of a store whose state is a list of changes `C`: each
/// change, and snapshots of the whole state between two markers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Snapshotted<C> {
    Change(C),
    SnapshotBegin,
    SnapshotChunk(Vec<C>),
    SnapshotEnd,
}

impl ChangeLog {
    /// Opens a log of [`Snapshotted`] records and returns, with it, the
    /// changes to replay: the newest complete snapshot's and every change
    /// after it.
    pub(crate) fn open_snapshotted<C: DeserializeOwned>(
        env: Arc<Env>,
        dir: &Path,
        what: &'static str,
    ) -> Result<(ChangeLog, Vec<C>)> {
        let mut changes = Vec::new();
        let mut snapshot: Option<Vec<C>> = None;
        let log = ChangeLog::open(env, dir, what, |r: Snapshotted<C>, _at| match r {
            Snapshotted::Change(c) => changes.push(c),
            Snapshotted::SnapshotBegin => snapshot = Some(Vec::new()),
            Snapshotted::SnapshotChunk(list) => {
                if let Some(s) = &mut snapshot {
                    s.extend(list);
                }
            }
            Snapshotted::SnapshotEnd => {
                if let Some(s) = snapshot.take() {
                    changes = s;
                }
            }
        })?;
        Ok((log, changes))
    }

    /// Appends one change of a [`Snapshotted`] log; see [`ChangeLog::append`].
    pub(crate) fn append_change<C: Serialize>(&self, change: &C, now_ms: i64) -> Result<(i64, i64)> {
        self.append(&Snapshotted::Change(change), now_ms)
    }

    /// Replaces a [`Snapshotted`] log's history by `state` (`bytes` estimates
    /// an item's JSON size, to cut the snapshot into records).
    pub(crate) fn replace_with_snapshot<C: Serialize>(
        &self,
        state: Vec<C>,
        bytes: impl Fn(&C) -> usize,
        now_ms: i64,
    ) -> Result<()> {
        let records = snapshot_records(
            state,
            bytes,
            Snapshotted::SnapshotBegin,
            Snapshotted::SnapshotChunk,
            Snapshotted::SnapshotEnd,
        );
        self.replace_with(&records, now_ms)
    }

    /// Opens (and recovers) the log in `dir` and hands every record to
    /// `replay` in order, with its offset in the log.
    pub(crate) fn open<R: DeserializeOwned>(
        env: Arc<Env>,
        dir: &Path,
        what: &'static str,
        mut replay: impl FnMut(R, i64),
    ) -> Result<ChangeLog> {
        let log = Log::open(env, dir, log_config())?;
        let corrupt = |reason: String| CoreError::Catalog {
            path: dir.to_path_buf(),
            reason,
        };
        let mut at = log.log_start();
        let end = log.high_watermark();
        while at < end {
            let r = log.read(at, REPLAY_READ_BYTES)?;
            if r.records.is_empty() {
                break;
            }
            let mut rest = &r.records[..];
            while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
                let header =
                    batch::parse_fixed(&rest[..HEADER_BYTES]).map_err(|e| corrupt(format!("{what} log: {e}")))?;
                let record: R = serde_json::from_slice(&rest[HEADER_BYTES..size])
                    .map_err(|e| corrupt(format!("{what} log record at offset {}: {e}", header.base_offset)))?;
                replay(record, header.base_offset);
                rest = &rest[size..];
            }
            at = r.next_offset;
        }
        let compacted_size = AtomicU64::new(log.size_bytes());
        Ok(ChangeLog {
            log,
            what,
            compacted_size,
        })
    }

    /// Appends `record` (not yet durable); returns its offset and the offset
    /// to wait for.
    pub(crate) fn append<R: Serialize>(&self, record: &R, now_ms: i64) -> Result<(i64, i64)> {
        let mut batch = encode(record, now_ms);
        if batch.len() > RECORD_BYTES_MAX {
            return Err(CoreError::LimitReached(format!(
                "a {} change of {} bytes is over {RECORD_BYTES_MAX}",
                self.what,
                batch.len()
            )));
        }
        let appended = self.log.append(&mut batch)?;
        Ok((appended.base_offset, appended.next_offset))
    }

    /// Blocks until everything before `next_offset` is durable.
    pub(crate) fn wait_durable(&self, next_offset: i64) -> Result<()> {
        self.log.wait_durable(next_offset)?;
        Ok(())
    }

    /// Appends `record` and waits until it is durable; returns its offset.
    pub(crate) fn write<R: Serialize>(&self, record: &R, now_ms: i64) -> Result<i64> {
        let (at, next) = self.append(record, now_ms)?;
        self.wait_durable(next)?;
        Ok(at)
    }

    /// Whether the log has grown past [`COMPACT_BYTES_MIN`] and four times its
    /// size after the last compaction.
    pub(crate) fn compaction_due(&self) -> bool {
        let threshold = self
            .compacted_size
            .load(Ordering::Relaxed)
            .saturating_mul(4)
            .max(COMPACT_BYTES_MIN);
        self.log.size_bytes() >= threshold
    }

    /// Appends `records` (a whole snapshot, markers included, each under
    /// [`RECORD_BYTES_MAX`]), waits until they are durable and deletes
    /// everything before them. The caller keeps other writers out meanwhile.
    pub(crate) fn replace_with<R: Serialize>(&self, records: &[R], now_ms: i64) -> Result<()> {
        let mut begin = None;
        let mut next = self.log.high_watermark();
        for r in records {
            let (at, n) = self.append(r, now_ms)?;
            begin.get_or_insert(at);
            next = n;
        }
        self.log.wait_durable(next)?;
        // Sealed segments wholly before the snapshot go at once; the rest of the
        // segment it starts in goes with that segment at a later compaction.
        if let Some(begin) = begin {
            self.log.delete_records(begin)?;
        }
        let size = self.log.size_bytes();
        self.compacted_size.store(size, Ordering::Relaxed);
        tracing::info!(dir = %self.log.dir().display(), bytes = size, "compacted the {} log", self.what);
        Ok(())
    }

    /// Housekeeping: recovery point, rolling.
    pub(crate) fn tick(&self) -> Result<()> {
        self.log.tick()?;
        Ok(())
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    pub(crate) fn close(&self) {
        if let Err(e) = self.log.close() {
            tracing::warn!(error = %e, "closing the {} log", self.what);
        }
    }

    #[cfg(test)]
    pub(crate) fn log(&self) -> &Log {
        &self.log
    }
}
