//! One partition's log: appends with group commit, reads, recovery and retention.
//!
//! # Concurrency
//!
//! Two locks, always taken in this order: `state` (segments, the active segment,
//! the log start) and `sync` (what is durable and visible, poison). Appends write
//! under `state`; fsync runs under neither, so appends keep flowing into the page
//! cache while an fsync is in flight.
//!
//! # Group commit
//!
//! [`Log::wait_durable`] is leader/follower: the first waiter that finds no fsync in
//! flight becomes the leader, notes how far the log has been written, fsyncs, and
//! publishes that point; every waiter whose batch lies below it returns. Batches
//! that arrive during an fsync are covered by the next one, which one of their
//! waiters leads. No thread is dedicated to flushing.
//!
//! # Visibility
//!
//! The high watermark is the end of what is durable (or, for a relaxed topic, of
//! what is written). Reads never return batches at or above it, so a consumer never
//! sees a record that a crash could take back.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;

use crate::batch;
use crate::config::{FlushPolicy, LogConfig};
use crate::env::Env;
use crate::error::{LogError, Result};
use crate::index::{self, IndexEntry};
use crate::io::{OpenMode, StorageFile, child};
use crate::segment::{self, ReadFault, ReadWindow, index_file_name, log_file_name};

/// Leader epoch stamped on every batch. A single broker never changes leader.
pub const LEADER_EPOCH: i32 = 0;
/// Checkpoint of the log start offset advanced by [`Log::delete_records`].
pub(crate) const LOG_START_FILE: &str = "log-start-offset";
/// Present only after a clean [`Log::close`]; lets the next open skip the scan.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Offset after the batch; pass it to [`Log::wait_durable`].
    pub next_offset: i64,
    pub max_timestamp: i64,
}

/// Result of [`Log::read`].
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, as stored; empty when the reader is at the high watermark.
    pub records: Bytes,
    /// Offset following the last returned batch (the next offset to read).
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start: i64,
}

/// Result of [`Log::offset_for_timestamp`]: the first batch whose largest timestamp
/// is at or after the target. The batch may start with records older than the
/// target; a protocol adapter that decodes records can narrow it further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampHit {
    pub offset: i64,
    pub max_timestamp: i64,
}

/// What one [`Log::tick`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickOutcome {
    pub rolled: bool,
    pub flushed: bool,
    pub segments_deleted: usize,
}

/// Counters a metrics adapter exports. Monotonic unless noted.
#[derive(Debug, Default)]
pub struct LogStats {
    pub appends: AtomicU64,
    pub append_bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    /// Batches made durable by fsyncs; divided by `fsyncs` gives the group size.
    pub fsync_batches: AtomicU64,
    pub fsync_micros_total: AtomicU64,
    pub fsync_micros_max: AtomicU64,
    pub segments_rolled: AtomicU64,
    pub segments_deleted: AtomicU64,
    /// Corrupt ranges found by recovery scans and reads that failed verification.
    pub corruptions_found: AtomicU64,
    /// Bytes of torn tail cut off by recovery.
    pub recovery_truncated_bytes: AtomicU64,
    /// Set when the topic acknowledges appends before fsync (gauge).
    pub relaxed_durability: AtomicBool,
    /// Set once a write or fsync failed (gauge).
    pub poisoned: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Sealed {
    pub(crate) base: i64,
    pub(crate) next: i64,
    pub(crate) size: u64,
    pub(crate) max_timestamp: i64,
    pub(crate) entry_count: u32,
}

#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) base: i64,
    pub(crate) next: i64,
    pub(crate) size: u64,
    pub(crate) max_timestamp: i64,
    pub(crate) file: Arc<dyn StorageFile>,
    pub(crate) entries: Vec<IndexEntry>,
    pub(crate) bytes_since_index: u32,
    /// Monotonic time of the first append, for rolling by age.
    pub(crate) first_append_ms: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) sealed: VecDeque<Sealed>,
    pub(crate) active: Active,
    pub(crate) log_start: i64,
    /// Batches written since the last fsync began.
    pub(crate) unsynced_batches: u64,
    pub(crate) last_flush_ms: u64,
}

#[derive(Debug)]
struct SyncState {
    durable_next: i64,
    high_watermark: i64,
    syncing: bool,
    poisoned: Option<Arc<str>>,
}

/// One partition's log. Shared by reference between appenders and readers.
#[derive(Debug)]
pub struct Log {
    env: Arc<Env>,
    dir: PathBuf,
    config: LogConfig,
    state: Mutex<State>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    stats: LogStats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking appender must not take the partition down with it; the state is
    // updated only after each I/O step succeeds, so it is consistent at every unlock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn fault(path: &Path, f: ReadFault) -> LogError {
    match f {
        ReadFault::Io(e) => LogError::io("read", path, e),
        ReadFault::Corrupt { position, reason } => LogError::Corrupt {
            path: path.to_path_buf(),
            position,
            reason,
        },
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering after a crash.
    pub fn open(env: Arc<Env>, dir: impl Into<PathBuf>, config: LogConfig) -> Result<Log> {
        config.validate()?;
        let dir = dir.into();
        let (state, stats) = crate::recovery::recover(&env, &dir, &config)?;
        let end = state.active.next;
        if let FlushPolicy::Interval { flush_interval_ms } = config.flush {
            stats.relaxed_durability.store(true, Ordering::Relaxed);
            tracing::warn!(
                dir = %dir.display(),
                flush_interval_ms,
                "relaxed durability: appends are acknowledged before fsync and up to {flush_interval_ms} ms of them can be lost on power failure"
            );
        }
        Ok(Log {
            env,
            dir,
            config,
            state: Mutex::new(state),
            sync: Mutex::new(SyncState {
                durable_next: end,
                high_watermark: end,
                syncing: false,
                poisoned: None,
            }),
            synced: Condvar::new(),
            stats,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// First offset that can be read.
    pub fn log_start(&self) -> i64 {
        lock(&self.state).log_start
    }

    /// Offset the next append will get.
    pub fn log_end(&self) -> i64 {
        lock(&self.state).active.next
    }

    /// End of what readers may see.
    pub fn high_watermark(&self) -> i64 {
        lock(&self.sync).high_watermark
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        let st = lock(&self.state);
        st.sealed.iter().map(|s| s.size).sum::<u64>() + st.active.size
    }

    pub fn segment_count(&self) -> usize {
        lock(&self.state).sealed.len() + 1
    }

    /// Why the log refuses writes, if it does.
    pub fn poisoned(&self) -> Option<Arc<str>> {
        lock(&self.sync).poisoned.clone()
    }

    fn check_poison(&self) -> Result<()> {
        match &lock(&self.sync).poisoned {
            Some(cause) => Err(LogError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Marks the partition as refusing writes and wakes every waiter. Only the first
    /// cause is kept; it is the one that explains the rest.
    fn poison(&self, cause: String) -> LogError {
        let mut s = lock(&self.sync);
        let cause = s.poisoned.get_or_insert_with(|| {
            tracing::error!(dir = %self.dir.display(), %cause, "partition poisoned: refusing further appends");
            cause.into()
        });
        let err = LogError::Poisoned {
            dir: self.dir.clone(),
            cause: cause.clone(),
        };
        self.stats.poisoned.store(true, Ordering::Relaxed);
        self.synced.notify_all();
        err
    }

    /// Validates a producer's batch, assigns its offsets and writes it to the active
    /// segment. The batch is rewritten in place (base offset and leader epoch only).
    ///
    /// Under [`FlushPolicy::EveryAppend`] the batch is not yet durable nor visible:
    /// acknowledge it only after [`Log::wait_durable`] returns `Ok`.
    pub fn append(&self, batch: &mut [u8]) -> Result<Appended> {
        let header = batch::verify_producer_batch(batch, self.config.batch_bytes_max as usize)?;
        let mut st = lock(&self.state);
        self.check_poison()?;
        let len = batch.len() as u64;
        if self.needs_roll(&st, len, header.last_offset_delta) {
            self.roll(&mut st)?;
        }
        let a = &mut st.active;
        let base = a.next;
        batch::assign(batch, base, LEADER_EPOCH);
        let pos = a.size;
        if let Err(e) = a.file.write_all_at(batch, pos) {
            return Err(self.write_failed(&st, pos, e));
        }
        if a.entries.is_empty() || a.bytes_since_index >= self.config.index_interval_bytes {
            a.entries.push(IndexEntry {
                rel_offset: (base - a.base) as u32,
                position: pos as u32,
                ts_before: a.max_timestamp,
            });
            a.bytes_since_index = 0;
        }
        a.bytes_since_index = a.bytes_since_index.saturating_add(len as u32);
        a.size += len;
        a.next = base + i64::from(header.last_offset_delta) + 1;
        a.max_timestamp = a.max_timestamp.max(header.max_timestamp);
        if a.first_append_ms.is_none() {
            a.first_append_ms = Some(self.env.clock.monotonic_ms());
        }
        let next = a.next;
        st.unsynced_batches += 1;
        self.stats.appends.fetch_add(1, Ordering::Relaxed);
        self.stats.append_bytes.fetch_add(len, Ordering::Relaxed);
        if matches!(self.config.flush, FlushPolicy::Interval { .. }) {
            let mut s = lock(&self.sync);
            s.high_watermark = next;
        }
        Ok(Appended {
            base_offset: base,
            last_offset: next - 1,
            next_offset: next,
            max_timestamp: header.max_timestamp,
        })
    }

    /// [`Log::append`], then [`Log::wait_durable`]: returns once the batch may be
    /// acknowledged under the topic's flush policy.
    pub fn append_durable(&self, batch: &mut [u8]) -> Result<Appended> {
        let appended = self.append(batch)?;
        self.wait_durable(appended.next_offset)?;
        Ok(appended)
    }

    /// A failed write leaves unknown bytes after `pos`. On a full disk they are cut
    /// off and the append fails cleanly; anything else poisons the partition.
    fn write_failed(&self, st: &State, pos: u64, e: std::io::Error) -> LogError {
        if e.kind() == std::io::ErrorKind::StorageFull && st.active.file.set_len(pos).is_ok() {
            tracing::warn!(dir = %self.dir.display(), "disk full: append refused, nothing written");
            return LogError::DiskFull { dir: self.dir.clone() };
        }
        let path = child(&self.dir, &log_file_name(st.active.base));
        self.poison(format!("write to {} at byte {pos} failed: {e}", path.display()))
    }

    /// Blocks until every offset below `next_offset` is durable (under
    /// [`FlushPolicy::EveryAppend`]) or returns at once (under a relaxed policy).
    /// Fails if the partition is poisoned before that point is reached.
    pub fn wait_durable(&self, next_offset: i64) -> Result<()> {
        if matches!(self.config.flush, FlushPolicy::Interval { .. }) {
            return self.check_poison();
        }
        let mut s = lock(&self.sync);
        loop {
            // Durability first: a batch that an fsync covered before the partition
            // was poisoned (or closed) is safe and may be acknowledged.
            if s.durable_next >= next_offset {
                return Ok(());
            }
            if let Some(cause) = &s.poisoned {
                return Err(LogError::Poisoned {
                    dir: self.dir.clone(),
                    cause: cause.clone(),
                });
            }
            if s.syncing {
                s = self.synced.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.syncing = true;
            drop(s);
            let outcome = self.sync_active();
            s = lock(&self.sync);
            s.syncing = false;
            match outcome {
                Ok(next) => {
                    s.durable_next = s.durable_next.max(next);
                    s.high_watermark = s.high_watermark.max(next);
                    self.synced.notify_all();
                }
                Err(cause) => {
                    drop(s);
                    self.poison(cause);
                    s = lock(&self.sync);
                }
            }
        }
    }

    /// Fsyncs the active segment and returns the offset it made durable.
    fn sync_active(&self) -> std::result::Result<i64, String> {
        let (file, next, base, batches) = {
            let mut st = lock(&self.state);
            let batches = std::mem::take(&mut st.unsynced_batches);
            st.last_flush_ms = self.env.clock.monotonic_ms();
            (st.active.file.clone(), st.active.next, st.active.base, batches)
        };
        let started = Instant::now();
        if let Err(e) = file.sync() {
            let path = child(&self.dir, &log_file_name(base));
            return Err(format!("fsync of {} failed: {e}", path.display()));
        }
        let micros = started.elapsed().as_micros() as u64;
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.stats.fsync_batches.fetch_add(batches, Ordering::Relaxed);
        self.stats.fsync_micros_total.fetch_add(micros, Ordering::Relaxed);
        self.stats.fsync_micros_max.fetch_max(micros, Ordering::Relaxed);
        Ok(next)
    }

    fn needs_roll(&self, st: &State, len: u64, last_offset_delta: i32) -> bool {
        let a = &st.active;
        if a.size == 0 {
            return false;
        }
        let too_big = a.size + len > self.config.segment_bytes_max;
        let rel_end = a.next - a.base + i64::from(last_offset_delta) + 1;
        let too_many = rel_end > i64::from(u32::MAX);
        let too_old = a
            .first_append_ms
            .is_some_and(|t| self.env.clock.monotonic_ms().saturating_sub(t) >= self.config.segment_age_ms_max);
        too_big || too_many || too_old
    }

    /// Seals the active segment (index written and fsynced, data fsynced) and starts
    /// a new one at the next offset. Any failure poisons the partition.
    fn roll(&self, st: &mut State) -> Result<()> {
        let a = &st.active;
        if a.size == 0 {
            return Ok(());
        }
        let sealed = self.seal_files(a).map_err(|cause| self.poison(cause))?;
        let new_base = a.next;
        let path = child(&self.dir, &log_file_name(new_base));
        let file = self
            .env
            .storage
            .open(&path, OpenMode::CreateNew)
            .and_then(|f| self.env.storage.sync_dir(&self.dir).map(|()| f))
            .map_err(|e| self.poison(format!("creating segment {} failed: {e}", path.display())))?;
        st.sealed.push_back(sealed);
        st.active = Active {
            base: new_base,
            next: new_base,
            size: 0,
            max_timestamp: i64::MIN,
            file,
            entries: Vec::new(),
            bytes_since_index: 0,
            first_append_ms: None,
        };
        let batches = std::mem::take(&mut st.unsynced_batches);
        self.stats.fsync_batches.fetch_add(batches, Ordering::Relaxed);
        self.stats.segments_rolled.fetch_add(1, Ordering::Relaxed);
        let mut s = lock(&self.sync);
        s.durable_next = s.durable_next.max(new_base);
        s.high_watermark = s.high_watermark.max(new_base);
        self.synced.notify_all();
        Ok(())
    }

    /// Writes the active segment's index with its footer and fsyncs index and data.
    fn seal_files(&self, a: &Active) -> std::result::Result<Sealed, String> {
        let index_path = child(&self.dir, &index_file_name(a.base));
        let rel_next = (a.next - a.base) as u32;
        let bytes = index::encode_sealed(&a.entries, rel_next, a.size as u32, a.max_timestamp);
        self.env.forget_file(&index_path);
        let write = || -> std::io::Result<()> {
            let f = self.env.storage.open(&index_path, OpenMode::CreateOrOpen)?;
            f.set_len(0)?;
            f.write_all_at(&bytes, 0)?;
            f.sync()
        };
        write().map_err(|e| format!("writing index {} failed: {e}", index_path.display()))?;
        a.file
            .sync()
            .map_err(|e| format!("fsync of segment {} failed: {e}", log_file_name(a.base)))?;
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(Sealed {
            base: a.base,
            next: a.next,
            size: a.size,
            max_timestamp: a.max_timestamp,
            entry_count: a.entries.len() as u32,
        })
    }

    /// Reads whole batches starting with the one holding `offset`, up to `bytes_max`
    /// (at least one batch). Only batches below the high watermark are returned.
    pub fn read(&self, offset: i64, bytes_max: usize) -> Result<ReadResult> {
        let mut at = offset;
        loop {
            let (snap, log_start, hw) = {
                let st = lock(&self.state);
                let hw = lock(&self.sync).high_watermark;
                if at < st.log_start || at > hw {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start: st.log_start,
                        high_watermark: hw,
                    });
                }
                if at == hw {
                    return Ok(ReadResult {
                        records: Bytes::new(),
                        next_offset: hw,
                        high_watermark: hw,
                        log_start: st.log_start,
                    });
                }
                let which = if at >= st.active.base {
                    None
                } else {
                    Some(st.sealed.partition_point(|s| s.base <= at).saturating_sub(1))
                };
                (snapshot(&st, which, Seek::Offset(at)), st.log_start, hw)
            };
            let (window, file, path) = self.window(&snap, hw, Seek::Offset(at))?;
            match segment::read(&*file, &window, at, bytes_max) {
                Ok(Some((records, next_offset))) => {
                    return Ok(ReadResult {
                        records,
                        next_offset,
                        high_watermark: hw,
                        log_start,
                    });
                }
                // Nothing visible in this sealed segment at or after `at`: its last
                // batches are not readable; go on with the next segment.
                Ok(None) => match snap {
                    SegmentSnapshot::Sealed(s) if s.next > at => at = s.next,
                    _ => {
                        return Ok(ReadResult {
                            records: Bytes::new(),
                            next_offset: at,
                            high_watermark: hw,
                            log_start,
                        });
                    }
                },
                Err(f) => return Err(self.read_fault(&path, f)),
            }
        }
    }

    /// The offset of the first visible batch whose largest timestamp is at or after
    /// `ts`, or `None` if there is none (Kafka answers -1 then).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampHit>> {
        let (snaps, log_start, hw) = {
            let st = lock(&self.state);
            let hw = lock(&self.sync).high_watermark;
            let mut snaps: Vec<SegmentSnapshot> = Vec::new();
            for (i, s) in st.sealed.iter().enumerate() {
                if s.max_timestamp >= ts && s.next > st.log_start {
                    snaps.push(snapshot(&st, Some(i), Seek::Time(ts)));
                }
            }
            if st.active.max_timestamp >= ts {
                snaps.push(snapshot(&st, None, Seek::Time(ts)));
            }
            (snaps, st.log_start, hw)
        };
        for snap in &snaps {
            let (window, file, path) = self.window(snap, hw, Seek::Time(ts))?;
            match segment::find_by_time(&*file, &window, ts, log_start) {
                Ok(Some(h)) => {
                    return Ok(Some(TimestampHit {
                        offset: h.base_offset.max(log_start),
                        max_timestamp: h.max_timestamp,
                    }));
                }
                Ok(None) => continue,
                Err(f) => return Err(self.read_fault(&path, f)),
            }
        }
        Ok(None)
    }

    fn read_fault(&self, path: &Path, f: ReadFault) -> LogError {
        if matches!(f, ReadFault::Corrupt { .. }) {
            self.stats.corruptions_found.fetch_add(1, Ordering::Relaxed);
            tracing::error!(path = %path.display(), "corrupt batch found on read");
        }
        fault(path, f)
    }

    /// A read window over a snapshotted segment, with the file to read it from.
    fn window(
        &self,
        snap: &SegmentSnapshot,
        hw: i64,
        seek: Seek,
    ) -> Result<(ReadWindow, Arc<dyn StorageFile>, PathBuf)> {
        match snap {
            SegmentSnapshot::Active {
                base,
                size,
                start,
                file,
            } => {
                let window = ReadWindow {
                    start: *start,
                    segment_base: *base,
                    readable_bytes: *size,
                    visible_next: hw,
                };
                Ok((window, file.clone(), child(&self.dir, &log_file_name(*base))))
            }
            SegmentSnapshot::Sealed(s) => {
                let path = child(&self.dir, &log_file_name(s.base));
                let file = self
                    .env
                    .sealed_file(&path)
                    .map_err(|e| LogError::io("open", &path, e))?;
                let index_path = child(&self.dir, &index_file_name(s.base));
                // An unreadable index only costs a longer walk from the segment start.
                let start = self
                    .env
                    .sealed_file(&index_path)
                    .ok()
                    .and_then(|f| index::floor_in_file(&*f, s.entry_count, |e| seek.below(s.base, e)))
                    .filter(|e| u64::from(e.position) < s.size && i64::from(e.rel_offset) < s.next - s.base)
                    .unwrap_or(SEGMENT_START);
                let window = ReadWindow {
                    start,
                    segment_base: s.base,
                    readable_bytes: s.size,
                    visible_next: hw.min(s.next),
                };
                Ok((window, file, path))
            }
        }
    }
}

/// Start of a segment, used when no index entry helps.
const SEGMENT_START: IndexEntry = IndexEntry {
    rel_offset: 0,
    position: 0,
    ts_before: i64::MIN,
};

/// What a lookup is after.
#[derive(Debug, Clone, Copy)]
enum Seek {
    Offset(i64),
    /// The first batch with `max_timestamp >= ts`.
    Time(i64),
}

impl Seek {
    /// Whether the walk may start at `e` (or later) in the segment based at `base`.
    fn below(self, base: i64, e: &IndexEntry) -> bool {
        match self {
            Seek::Offset(at) => i64::from(e.rel_offset) <= at - base,
            Seek::Time(ts) => e.ts_before < ts,
        }
    }
}

/// What a read needs of one segment, captured under the state lock.
#[derive(Debug)]
enum SegmentSnapshot {
    Sealed(Sealed),
    Active {
        base: i64,
        size: u64,
        start: IndexEntry,
        file: Arc<dyn StorageFile>,
    },
}

/// Snapshots sealed segment `which`, or the active segment for `None`. The active
/// segment's index floor is found here, in memory; a sealed one's in its index
/// file after the lock is released.
fn snapshot(st: &State, which: Option<usize>, seek: Seek) -> SegmentSnapshot {
    match which {
        Some(i) => SegmentSnapshot::Sealed(st.sealed[i]),
        None => {
            let a = &st.active;
            let n = a.entries.partition_point(|e| seek.below(a.base, e));
            SegmentSnapshot::Active {
                base: a.base,
                size: a.size,
                start: n.checked_sub(1).map_or(SEGMENT_START, |j| a.entries[j]),
                file: a.file.clone(),
            }
        }
    }
}

impl Log {
    /// Advances the log start to `offset` (Kafka's DeleteRecords). Offsets below it
    /// can no longer be read; segments entirely below it are deleted. The new start
    /// is made durable before it takes effect. Returns the log start afterwards.
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        let mut st = lock(&self.state);
        self.check_poison()?;
        let hw = lock(&self.sync).high_watermark;
        if offset > hw || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: st.log_start,
                high_watermark: hw,
            });
        }
        if offset <= st.log_start {
            return Ok(st.log_start);
        }
        crate::recovery::write_log_start(&*self.env.storage, &self.dir, offset)
            .map_err(|e| self.poison(format!("persisting log start {offset} failed: {e}")))?;
        st.log_start = offset;
        self.delete_segments_while(&mut st, |s, log_start, _| s.next <= log_start)?;
        Ok(st.log_start)
    }

    /// Periodic housekeeping, driven by the host: rolls the active segment by age,
    /// applies retention, and flushes a relaxed topic whose interval has passed.
    pub fn tick(&self) -> Result<TickOutcome> {
        let mut outcome = TickOutcome::default();
        {
            let mut st = lock(&self.state);
            if self.poisoned().is_some() {
                return Ok(outcome);
            }
            if self.needs_roll(&st, 0, 0) || self.active_expired(&st) {
                self.roll(&mut st)?;
                outcome.rolled = true;
            }
            outcome.segments_deleted = self.apply_retention(&mut st)?;
        }
        if let FlushPolicy::Interval { flush_interval_ms } = self.config.flush {
            let due = {
                let st = lock(&self.state);
                st.unsynced_batches > 0
                    && self.env.clock.monotonic_ms().saturating_sub(st.last_flush_ms) >= flush_interval_ms
            };
            if due {
                let next = self.sync_active().map_err(|cause| self.poison(cause))?;
                let mut s = lock(&self.sync);
                s.durable_next = s.durable_next.max(next);
                outcome.flushed = true;
            }
        }
        Ok(outcome)
    }

    /// Whether all of the active segment is past retention by time, in which case it
    /// is rolled so that retention can delete it (as Kafka does).
    fn active_expired(&self, st: &State) -> bool {
        let Some(retention_ms) = self.config.retention_ms else {
            return false;
        };
        let a = &st.active;
        a.size > 0 && a.max_timestamp < self.env.clock.now_ms().saturating_sub(retention_ms as i64)
    }

    fn apply_retention(&self, st: &mut State) -> Result<usize> {
        let mut deleted = 0;
        if let Some(retention_ms) = self.config.retention_ms {
            let horizon = self.env.clock.now_ms().saturating_sub(retention_ms as i64);
            deleted += self.delete_segments_while(st, |s, _, _| s.max_timestamp < horizon)?;
        }
        if let Some(retention_bytes) = self.config.retention_bytes {
            deleted += self.delete_segments_while(st, |s, _, total| total - s.size >= retention_bytes)?;
        }
        Ok(deleted)
    }

    /// Deletes the oldest sealed segments while `doomed(segment, log_start,
    /// total_bytes)` holds. The active segment is never deleted.
    fn delete_segments_while(&self, st: &mut State, doomed: impl Fn(&Sealed, i64, u64) -> bool) -> Result<usize> {
        let mut deleted = 0;
        while let Some(&oldest) = st.sealed.front() {
            let total = st.sealed.iter().map(|s| s.size).sum::<u64>() + st.active.size;
            if !doomed(&oldest, st.log_start, total) {
                break;
            }
            st.sealed.pop_front();
            st.log_start = st.log_start.max(oldest.next);
            for name in [log_file_name(oldest.base), index_file_name(oldest.base)] {
                let path = child(&self.dir, &name);
                self.env.forget_file(&path);
                match self.env.storage.remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io("remove", path, e)),
                }
            }
            deleted += 1;
            self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
        }
        if deleted > 0 {
            self.env
                .storage
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("sync directory", &self.dir, e))?;
            tracing::info!(dir = %self.dir.display(), deleted, log_start = st.log_start, "deleted segments");
        }
        Ok(deleted)
    }

    /// Shuts the log down cleanly: everything is fsynced, the active segment's index
    /// is written, and a marker lets the next open skip the recovery scan. Appends
    /// fail afterwards.
    pub fn close(&self) -> Result<()> {
        let st = lock(&self.state);
        self.check_poison()?;
        self.seal_files(&st.active).map_err(|cause| self.poison(cause))?;
        let marker = child(&self.dir, CLEAN_SHUTDOWN_FILE);
        let storage = &*self.env.storage;
        storage
            .open(&marker, OpenMode::CreateOrOpen)
            .and_then(|_| storage.sync_dir(&self.dir))
            .map_err(|e| LogError::io("write", &marker, e))?;
        let mut s = lock(&self.sync);
        s.durable_next = st.active.next;
        s.poisoned.get_or_insert_with(|| "the log was closed".into());
        self.synced.notify_all();
        Ok(())
    }
}
