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
//! Every fsync of the partition, including the ones that seal a segment when it
//! rolls or the log closes, runs alone (`SyncState::syncing`), and its outcome is
//! recorded in the same critical section that ends it. So once an fsync has failed
//! no later fsync can run and no durable point can be published: a failed fsync is
//! never retried, not even by accident.
//!
//! # Visibility
//!
//! The high watermark is the end of what is durable (or, for a relaxed topic, of
//! what is written). Reads never return batches at or above it, so a consumer never
//! sees a record that a crash could take back.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use bytes::Bytes;

use crate::batch;
use crate::config::{FlushPolicy, LogConfig};
use crate::env::{ActiveHandle, Env};
use crate::error::{LogError, Result};
use crate::index::{self, IndexEntry};
use crate::io::{OpenMode, StorageFile, child};
use crate::producer::{self, Producers, Verdict};
use crate::segment::{index_file_name, log_file_name};

mod clean;
mod housekeeping;
mod read;

/// Leader epoch stamped on every batch. A single broker never changes leader.
pub const LEADER_EPOCH: i32 = 0;
/// Checkpoint of the log start offset advanced by [`Log::delete_records`].
pub(crate) const LOG_START_FILE: &str = "log-start-offset";
/// An offset below which everything was durable, written by [`Log::tick`]; tells
/// recovery which damage can only be a torn write.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point";
/// How often [`Log::tick`] updates the recovery point while data flows.
pub const RECOVERY_POINT_INTERVAL_MS: u64 = 1000;
/// Present only after a clean [`Log::close`]; lets the next open skip the scan.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// Offset after the batch; pass it to [`Log::wait_durable`].
    pub next_offset: i64,
    /// The batch's largest timestamp, as stored.
    pub max_timestamp: i64,
    /// The batch was a retry of an idempotent producer's batch already in the log:
    /// nothing was written and the offsets are those of the original.
    pub duplicate: bool,
}

/// Result of [`Log::read`].
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, as stored; empty when the reader is at the high watermark.
    pub records: Bytes,
    /// Offset following the last returned batch (the next offset to read).
    pub next_offset: i64,
    /// The high watermark when the batches were read.
    pub high_watermark: i64,
    /// The log start when the batches were read.
    pub log_start: i64,
}

/// Result of [`Log::offset_for_timestamp`]: the first batch whose largest timestamp
/// is at or after the target. The batch may start with records older than the
/// target; a protocol adapter that decodes records can narrow it further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampHit {
    /// The batch's base offset.
    pub offset: i64,
    /// The batch's largest timestamp.
    pub max_timestamp: i64,
}

/// What one [`Log::tick`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickOutcome {
    /// The active segment was sealed for its age.
    pub rolled: bool,
    /// An interval flush ran (`FlushPolicy::Interval`).
    pub flushed: bool,
    /// Segments retention deleted.
    pub segments_deleted: usize,
    /// Idle idempotent producers forgotten.
    pub producers_expired: usize,
}

/// Counters a metrics adapter exports. Monotonic unless noted.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Batches appended (duplicates not counted).
    pub appends: AtomicU64,
    /// Their bytes.
    pub append_bytes: AtomicU64,
    /// Appends that [`Log::try_append_shared`] left to a thread that may block
    /// (a roll due, or the state lock busy).
    pub appends_deferred: AtomicU64,
    /// Recovery points not written because their file could not be opened.
    pub recovery_point_skips: AtomicU64,
    /// Retries of idempotent producers' batches answered from producer state.
    pub duplicates: AtomicU64,
    /// Fsyncs of segments that made appends durable.
    pub fsyncs: AtomicU64,
    /// Batches made durable by fsyncs; divided by `fsyncs` gives the group size.
    pub fsync_batches: AtomicU64,
    /// Time spent in those fsyncs, in microseconds.
    pub fsync_micros_total: AtomicU64,
    /// The longest of them, in microseconds (a maximum, not a sum).
    pub fsync_micros_max: AtomicU64,
    /// Segments sealed and replaced by a new active one.
    pub segments_rolled: AtomicU64,
    /// Segments deleted by retention, delete-records or a log start move.
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
    /// Wall time of the last append (see [`retention_time`]).
    pub(crate) last_append_ms: i64,
    pub(crate) entry_count: u32,
}

#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) base: i64,
    pub(crate) next: i64,
    pub(crate) size: u64,
    pub(crate) max_timestamp: i64,
    /// The segment file, open only while the environment's cache keeps it.
    pub(crate) handle: ActiveHandle,
    pub(crate) entries: Vec<IndexEntry>,
    pub(crate) bytes_since_index: u32,
    /// Monotonic time of the first append, for rolling by age.
    pub(crate) first_append_ms: Option<u64>,
    /// Wall time of the last append (see [`retention_time`]).
    pub(crate) last_append_ms: i64,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) sealed: VecDeque<Sealed>,
    pub(crate) active: Active,
    pub(crate) log_start: i64,
    /// Batches written since the last fsync began.
    pub(crate) unsynced_batches: u64,
    pub(crate) last_flush_ms: u64,
    /// Last recovery point written, and when (monotonic).
    pub(crate) recovery_point: i64,
    pub(crate) recovery_point_ms: u64,
    /// Idempotent producers' sequence state, checked and updated with each append.
    pub(crate) producers: Producers,
    /// Set while a compaction round works on the sealed segments below this
    /// offset: retention leaves them in place until the round ends (it is
    /// about to replace them).
    pub(crate) clean_claim: Option<i64>,
}

#[derive(Debug)]
struct SyncState {
    /// Offset below which everything has been fsynced.
    durable_next: i64,
    /// Offset below which readers may see batches.
    high_watermark: i64,
    /// An fsync of this partition is in flight; no other may start.
    syncing: bool,
    /// Why appends are refused, once they are.
    poisoned: Option<Arc<str>>,
}

/// Why an fsync-bearing step failed.
#[derive(Debug)]
enum SyncFailure {
    /// Out of space before anything was made durable: the step can be retried once
    /// space is freed.
    DiskFull,
    /// Anything else: the partition must be poisoned.
    Fatal(String),
}

fn sync_failure(what: &str, path: &Path, e: std::io::Error) -> SyncFailure {
    if e.kind() == std::io::ErrorKind::StorageFull {
        SyncFailure::DiskFull
    } else {
        SyncFailure::Fatal(format!("{what} {} failed: {e}", path.display()))
    }
}

/// The state's figures that callers read without its lock, published under it.
#[derive(Debug, Default)]
struct Published {
    log_start: AtomicI64,
    log_end: AtomicI64,
    size_bytes: AtomicU64,
}

/// One partition's log. Shared by reference between appenders and readers.
#[derive(Debug)]
pub struct Log {
    /// Storage, clock and the file handle caches, shared by all partitions.
    env: Arc<Env>,
    /// The partition's directory.
    dir: PathBuf,
    /// Replaced whole by [`Log::set_config`] (a topic's settings changed).
    config: RwLock<LogConfig>,
    /// Segments, the active segment, the log start and producer state: what
    /// appends change. Taken before `sync`, never after.
    state: Mutex<State>,
    /// The durable point, the high watermark and the poison: what fsyncs
    /// change.
    sync: Mutex<SyncState>,
    /// Wakes callers of [`Log::wait_durable`] when a flush round ends.
    synced: Condvar,
    /// Counters for the metrics adapter.
    stats: LogStats,
    /// Log start, end and size, readable without the state lock: asynchronous
    /// callers must never wait on a lock that may be held across an fsync.
    published: Published,
    /// Set while the state lock is held across an fsync (sealing a segment,
    /// deleting segments, moving the log start): [`Log::try_append_shared`]
    /// gives up instead of waiting for the lock.
    fsync_under_state_lock: AtomicBool,
    /// The last recovery point could not be opened (warned about once).
    recovery_point_failing: AtomicBool,
    /// Bumped under the state lock each time compaction swaps segment files:
    /// a read that opened files after the swap with a snapshot from before
    /// it starts over (see `log/clean.rs`).
    layout_generation: AtomicU64,
    /// One compaction round at a time, and what rounds remember.
    cleaner: Mutex<clean::CleanerSlot>,
    /// Counters of the cleaner, for the metrics adapter.
    cleaner_stats: crate::compact::CleanerStats,
}

/// Clears [`Log::fsync_under_state_lock`] when the section ends, however.
pub(crate) struct FsyncSection<'a>(&'a AtomicBool);

impl Drop for FsyncSection<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// How many times [`Log::try_append_shared`] tries the state lock, held by
/// another append for a few microseconds, before it leaves the append to a
/// thread that may block.
const TRY_LOCK_ATTEMPTS_MAX: u32 = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking appender must not take the partition down with it; the state is
    // updated only after each I/O step succeeds, so it is consistent at every unlock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering after a crash.
    pub fn open(env: Arc<Env>, dir: impl Into<PathBuf>, config: LogConfig) -> Result<Log> {
        config.validate()?;
        let dir = dir.into();
        let (mut state, stats) = crate::recovery::recover(&env, &dir, &config)?;
        state.producers = crate::recovery::load_producers(&env, &dir, &state, &config)?;
        let end = state.active.next;
        let log = Log {
            env,
            dir,
            config: RwLock::new(config),
            state: Mutex::new(state),
            sync: Mutex::new(SyncState {
                durable_next: end,
                high_watermark: end,
                syncing: false,
                poisoned: None,
            }),
            synced: Condvar::new(),
            stats,
            published: Published::default(),
            fsync_under_state_lock: AtomicBool::new(false),
            recovery_point_failing: AtomicBool::new(false),
            layout_generation: AtomicU64::new(0),
            cleaner: Mutex::new(clean::CleanerSlot::default()),
            cleaner_stats: crate::compact::CleanerStats::default(),
        };
        log.publish(&lock(&log.state));
        if config.flush != FlushPolicy::EveryAppend {
            log.note_flush_policy(&config);
        }
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in force.
    pub fn config(&self) -> LogConfig {
        self.cfg()
    }

    fn cfg(&self) -> LogConfig {
        *self.config.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the settings of a running log (a topic's config was altered).
    /// Limits apply from the next append, retention and rolling from the next
    /// tick. Switching from a flush interval to fsync-per-append first flushes
    /// what the interval left unsynced, so nothing acknowledged under the new
    /// policy depends on the old one.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        let old = {
            let mut c = self.config.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *c, config)
        };
        if old.flush == config.flush {
            return Ok(());
        }
        self.note_flush_policy(&config);
        if config.flush == FlushPolicy::EveryAppend {
            let end = self.log_end();
            self.sync_to(end)?;
        }
        Ok(())
    }

    /// Records and announces a relaxed flush policy, which can lose acknowledged
    /// appends on power failure.
    fn note_flush_policy(&self, config: &LogConfig) {
        let relaxed = matches!(config.flush, FlushPolicy::Interval { .. });
        self.stats.relaxed_durability.store(relaxed, Ordering::Relaxed);
        if let FlushPolicy::Interval { flush_interval_ms } = config.flush {
            tracing::warn!(
                dir = %self.dir.display(),
                flush_interval_ms,
                "relaxed durability: appends are acknowledged before fsync and up to {flush_interval_ms} ms of them can be lost on power failure"
            );
        }
    }

    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// First offset that can be read.
    pub fn log_start(&self) -> i64 {
        self.published.log_start.load(Ordering::Acquire)
    }

    /// Offset the next append will get.
    pub fn log_end(&self) -> i64 {
        self.published.log_end.load(Ordering::Acquire)
    }

    /// End of what readers may see.
    pub fn high_watermark(&self) -> i64 {
        lock(&self.sync).high_watermark
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.published.size_bytes.load(Ordering::Acquire)
    }

    /// Publishes the state's log start, end and size for readers that do not
    /// take its lock. Called, under the lock, after every change of them.
    pub(crate) fn publish(&self, st: &State) {
        let size = st.sealed.iter().map(|s| s.size).sum::<u64>() + st.active.size;
        self.published.log_start.store(st.log_start, Ordering::Release);
        self.published.log_end.store(st.active.next, Ordering::Release);
        self.published.size_bytes.store(size, Ordering::Release);
    }

    /// Marks the state lock, which the caller holds, as held across an fsync
    /// until the returned guard is dropped.
    pub(crate) fn fsync_section(&self) -> FsyncSection<'_> {
        self.fsync_under_state_lock.store(true, Ordering::Release);
        FsyncSection(&self.fsync_under_state_lock)
    }

    /// The last stable offset: the first offset of the oldest transaction
    /// open in this partition, or the high watermark when none is open (or
    /// it is lower). `read_committed` readers stop here.
    pub fn last_stable_offset(&self) -> i64 {
        let first_unstable = lock(&self.state).producers.txns.first_unstable();
        let hw = self.high_watermark();
        first_unstable.map_or(hw, |f| f.min(hw))
    }

    /// The aborted transactions whose records lie in `[from, to)`, oldest
    /// marker first: what a `read_committed` fetch of that range names.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<crate::txn::AbortedTxn> {
        lock(&self.state).producers.txns.aborted_between(from, to)
    }

    /// Every transaction open in this partition: producer id, the epoch
    /// its producer last wrote with (-1 if forgotten), first offset.
    pub fn open_transactions(&self) -> Vec<(i64, i16, i64)> {
        let st = lock(&self.state);
        st.producers
            .txns
            .open()
            .into_iter()
            .map(|(pid, first)| (pid, st.producers.epoch(pid).unwrap_or(-1), first))
            .collect()
    }

    /// Transactions open in this partition, and aborted ones remembered.
    pub fn transaction_counts(&self) -> (usize, usize) {
        let st = lock(&self.state);
        (st.producers.txns.open_count(), st.producers.txns.aborted_count())
    }

    /// Idempotent producers whose sequence state this partition keeps.
    pub fn producer_count(&self) -> usize {
        lock(&self.state).producers.len()
    }

    pub fn segment_count(&self) -> usize {
        lock(&self.state).sealed.len() + 1
    }

    /// Takes a log out of service before its directory is deleted: appends are
    /// refused from now on and housekeeping does nothing, without touching the
    /// disk. Waiters for anything already durable still succeed.
    pub fn retire(&self, why: &str) {
        // Under the state lock: an append or tick in progress finishes first.
        let _st = lock(&self.state);
        let mut s = lock(&self.sync);
        s.poisoned.get_or_insert_with(|| why.into());
        self.synced.notify_all();
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
        let err = self.poison_locked(&mut s, cause);
        self.synced.notify_all();
        err
    }

    fn poison_locked(&self, s: &mut SyncState, cause: String) -> LogError {
        let cause = s.poisoned.get_or_insert_with(|| {
            tracing::error!(dir = %self.dir.display(), %cause, "partition poisoned: refusing further appends");
            self.stats.poisoned.store(true, Ordering::Relaxed);
            cause.into()
        });
        LogError::Poisoned {
            dir: self.dir.clone(),
            cause: cause.clone(),
        }
    }

    /// Validates a producer's batch, assigns its offsets and writes it to the active
    /// segment. The batch is rewritten in place (base offset and leader epoch only)
    /// to what was stored, unless it was a duplicate.
    ///
    /// Under [`FlushPolicy::EveryAppend`] the batch is not yet durable nor visible:
    /// acknowledge it only after [`Log::wait_durable`] returns `Ok`.
    pub fn append(&self, batch: &mut [u8]) -> Result<Appended> {
        let appended = self.append_shared(batch)?;
        if !appended.duplicate {
            batch::assign(batch, appended.base_offset, LEADER_EPOCH);
        }
        Ok(appended)
    }

    /// [`Log::append`] of a batch the caller cannot change, such as a slice of a
    /// request: what is written differs from `batch` in the base offset and leader
    /// epoch, which are written from a copy of the first bytes; the rest goes to
    /// the file straight from `batch`, in the same system call.
    pub fn append_shared(&self, batch: &[u8]) -> Result<Appended> {
        self.append_verified(batch::Verified::new(batch, self.cfg().batch_bytes_max as usize)?)
    }

    /// [`Log::append_shared`] of a batch whose CRC and header the caller has
    /// already verified, so that it is not hashed twice. Its size is checked
    /// again, against the limit in force now.
    pub fn append_verified(&self, verified: batch::Verified<'_>) -> Result<Appended> {
        let (header, batch) = self.within_limit(&verified)?;
        let mut st = lock(&self.state);
        let appended = self.append_locked(&mut st, header, batch, true)?;
        Ok(appended.expect("an append that may roll always happens"))
    }

    /// Appends the transaction marker `batch` only if its producer's
    /// transaction open here is still the one that began at `first_offset`
    /// (as [`Log::open_transactions`] told): checked and appended under one
    /// hold of the state lock, so a marker meant for a transaction that ended
    /// meanwhile can never end the producer's next one. `None` when it is not
    /// open any more (nothing written).
    pub fn append_marker_if_open(&self, batch: &mut [u8], first_offset: i64) -> Result<Option<Appended>> {
        let verified = batch::Verified::new(batch, self.cfg().batch_bytes_max as usize)?;
        let (header, bytes) = self.within_limit(&verified)?;
        let mut st = lock(&self.state);
        if st.producers.txns.open_since(header.producer_id) != Some(first_offset) {
            return Ok(None);
        }
        let appended = self
            .append_locked(&mut st, header, bytes, true)?
            .expect("an append that may roll always happens");
        drop(st);
        if !appended.duplicate {
            batch::assign(batch, appended.base_offset, LEADER_EPOCH);
        }
        Ok(Some(appended))
    }

    /// [`Log::append_shared`] for a caller that must never block on I/O other
    /// than the write itself (an asynchronous task): `Ok(None)` instead of
    /// rolling the segment, and instead of waiting for the state lock while an
    /// fsync runs under it. The caller then appends on a thread that may block.
    pub fn try_append_shared(&self, batch: &[u8]) -> Result<Option<Appended>> {
        self.try_append_verified(batch::Verified::new(batch, self.cfg().batch_bytes_max as usize)?)
    }

    /// [`Log::try_append_shared`] of a verified batch, as [`Log::append_verified`].
    pub fn try_append_verified(&self, verified: batch::Verified<'_>) -> Result<Option<Appended>> {
        let (header, batch) = self.within_limit(&verified)?;
        let mut attempts = 0;
        let mut st = loop {
            match self.state.try_lock() {
                Ok(st) => break st,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            attempts += 1;
            if attempts >= TRY_LOCK_ATTEMPTS_MAX || self.fsync_under_state_lock.load(Ordering::Acquire) {
                self.stats.appends_deferred.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            std::thread::yield_now();
        };
        let appended = self.append_locked(&mut st, header, batch, false)?;
        if appended.is_none() {
            self.stats.appends_deferred.fetch_add(1, Ordering::Relaxed);
        }
        Ok(appended)
    }

    /// A verified batch's header and bytes, if it is within the batch size limit
    /// in force now.
    fn within_limit<'a>(&self, verified: &batch::Verified<'a>) -> Result<(batch::BatchHeader, &'a [u8])> {
        let batch = verified.bytes();
        let batch_bytes_max = self.cfg().batch_bytes_max as usize;
        if batch.len() > batch_bytes_max {
            return Err(LogError::InvalidBatch(batch::BatchError::TooLarge {
                len: batch.len(),
                max: batch_bytes_max,
            }));
        }
        Ok((*verified.header(), batch))
    }

    /// The append itself, under the state lock. `None` when the segment must be
    /// rolled first and `may_roll` is false.
    fn append_locked(
        &self,
        st: &mut State,
        mut header: batch::BatchHeader,
        batch: &[u8],
        may_roll: bool,
    ) -> Result<Option<Appended>> {
        self.check_poison()?;
        if let Verdict::Duplicate(original) = st.producers.check(&header)? {
            let last_offset = original.base_offset + i64::from(original.last_offset_delta);
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(Appended {
                base_offset: original.base_offset,
                last_offset,
                next_offset: last_offset + 1,
                max_timestamp: header.max_timestamp,
                duplicate: true,
            }));
        }
        // Checked before anything changes, rolling included: a refused append
        // leaves no trace on disk.
        if st.active.next > batch::BASE_OFFSET_MAX {
            return Err(LogError::OffsetsExhausted {
                dir: self.dir.clone(),
                next_offset: st.active.next,
            });
        }
        let len = batch.len() as u64;
        if self.needs_roll(st, len, header.last_offset_delta) {
            if !may_roll {
                return Ok(None);
            }
            self.roll(st)?;
        }
        let now_ms = self.env.clock.now_ms();
        let a = &mut st.active;
        let base = a.next;
        let mut head = [0u8; batch::ASSIGNED_BYTES];
        head.copy_from_slice(&batch[..batch::ASSIGNED_BYTES]);
        batch::assign(&mut head, base, LEADER_EPOCH);
        let pos = a.size;
        // Held until the write returns, so an eviction meanwhile cannot close it.
        let file = self
            .env
            .active_file(&mut a.handle)
            .map_err(|e| LogError::io("open", &a.handle.path, e))?;
        if let Err(e) = file.write_all_vectored_at(&[&head, &batch[batch::ASSIGNED_BYTES..]], pos) {
            return Err(self.write_failed(&*file, st, pos, e));
        }
        if a.entries.is_empty() || a.bytes_since_index >= self.cfg().index_interval_bytes {
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
        a.last_append_ms = now_ms;
        if a.first_append_ms.is_none() {
            a.first_append_ms = Some(self.env.clock.monotonic_ms());
        }
        let next = a.next;
        header.base_offset = base;
        let control = if header.is_control() {
            crate::txn::control_type(batch)
        } else {
            None
        };
        if let Some(evicted) = st
            .producers
            .record(&header, control, now_ms, self.cfg().producers_max as usize)
        {
            tracing::warn!(
                dir = %self.dir.display(),
                evicted,
                producers_max = self.cfg().producers_max,
                "too many idempotent producers: forgot the least recently active one; a retry of its last batches could be written twice"
            );
        }
        st.unsynced_batches += 1;
        self.stats.appends.fetch_add(1, Ordering::Relaxed);
        self.stats.append_bytes.fetch_add(len, Ordering::Relaxed);
        self.published.log_end.store(next, Ordering::Release);
        self.published.size_bytes.fetch_add(len, Ordering::AcqRel);
        if matches!(self.cfg().flush, FlushPolicy::Interval { .. }) {
            lock(&self.sync).high_watermark = next;
        }
        Ok(Some(Appended {
            base_offset: base,
            last_offset: next - 1,
            next_offset: next,
            max_timestamp: header.max_timestamp,
            duplicate: false,
        }))
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
    fn write_failed(&self, file: &dyn StorageFile, st: &State, pos: u64, e: std::io::Error) -> LogError {
        if e.kind() == std::io::ErrorKind::StorageFull && file.set_len(pos).is_ok() {
            tracing::warn!(dir = %self.dir.display(), "disk full: append refused, nothing written");
            return LogError::DiskFull { dir: self.dir.clone() };
        }
        let path = child(&self.dir, &log_file_name(st.active.base));
        self.poison(format!("write to {} at byte {pos} failed: {e}", path.display()))
    }

    /// Blocks until every offset below `next_offset` is durable (under
    /// [`FlushPolicy::EveryAppend`]) or returns at once (under a relaxed policy).
    /// Fails if the partition is poisoned before that point is reached, or if
    /// `next_offset` is past the end of the log.
    pub fn wait_durable(&self, next_offset: i64) -> Result<()> {
        if matches!(self.cfg().flush, FlushPolicy::Interval { .. }) {
            return self.check_poison();
        }
        self.sync_to(next_offset)
    }

    /// [`Log::wait_durable`] without waiting: `Some` with its outcome when it
    /// would return at once, `None` when an fsync still has to cover
    /// `next_offset`. Lets an asynchronous caller wait elsewhere.
    pub fn try_durable(&self, next_offset: i64) -> Option<Result<()>> {
        if matches!(self.cfg().flush, FlushPolicy::Interval { .. }) {
            return Some(self.check_poison());
        }
        {
            let s = lock(&self.sync);
            if s.durable_next >= next_offset {
                return Some(Ok(()));
            }
            if let Some(cause) = &s.poisoned {
                return Some(Err(LogError::Poisoned {
                    dir: self.dir.clone(),
                    cause: cause.clone(),
                }));
            }
        }
        // Without the state lock, which a roll may hold across an fsync: the
        // caller is an asynchronous task. The end only grows, so an offset at
        // or below it now is a fair question.
        let end = self.log_end();
        if next_offset > end {
            return Some(Err(LogError::OffsetOutOfRange {
                offset: next_offset,
                log_start: self.log_start(),
                high_watermark: end,
            }));
        }
        None
    }

    /// The group commit loop behind [`Log::wait_durable`] and interval flushes.
    fn sync_to(&self, target: i64) -> Result<()> {
        loop {
            let mut st = lock(&self.state);
            let s = lock(&self.sync);
            // Durability first: a batch that an fsync covered before the partition
            // was poisoned (or closed) is safe and may be acknowledged.
            if s.durable_next >= target {
                return Ok(());
            }
            if let Some(cause) = &s.poisoned {
                return Err(LogError::Poisoned {
                    dir: self.dir.clone(),
                    cause: cause.clone(),
                });
            }
            if target > st.active.next {
                return Err(LogError::OffsetOutOfRange {
                    offset: target,
                    log_start: st.log_start,
                    high_watermark: st.active.next,
                });
            }
            if s.syncing {
                drop(st);
                drop(self.synced.wait(s).unwrap_or_else(|p| p.into_inner()));
                continue;
            }
            drop(s);
            // Taken before this thread becomes the leader: failing to reopen an
            // evicted handle fails this wait, without poisoning (nothing was lost).
            // Only holders of the state lock set `syncing`, so it is still clear.
            let file = self
                .env
                .active_file(&mut st.active.handle)
                .map_err(|e| LogError::io("open", &st.active.handle.path, e))?;
            lock(&self.sync).syncing = true;
            let batches = std::mem::take(&mut st.unsynced_batches);
            st.last_flush_ms = self.env.clock.monotonic_ms();
            let (next, base) = (st.active.next, st.active.base);
            drop(st);

            let started = Instant::now();
            let outcome = file.sync();
            let micros = started.elapsed().as_micros() as u64;

            let synced = outcome.is_ok();
            let mut s = lock(&self.sync);
            s.syncing = false;
            match outcome {
                Ok(()) => {
                    self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                    self.stats.fsync_batches.fetch_add(batches, Ordering::Relaxed);
                    self.stats.fsync_micros_total.fetch_add(micros, Ordering::Relaxed);
                    self.stats.fsync_micros_max.fetch_max(micros, Ordering::Relaxed);
                    s.durable_next = s.durable_next.max(next);
                    if self.cfg().flush == FlushPolicy::EveryAppend {
                        s.high_watermark = s.high_watermark.max(next);
                    }
                }
                Err(e) => {
                    let path = child(&self.dir, &log_file_name(base));
                    self.poison_locked(&mut s, format!("fsync of {} failed: {e}", path.display()));
                }
            }
            self.synced.notify_all();
            drop(s);
            if synced {
                self.env.observe_fsync(micros, batches);
            }
        }
    }

    /// Runs `step`, which fsyncs, as the only fsync in flight. The caller holds the
    /// state lock (`_held`), so no group-commit leader can start meanwhile; one
    /// already in flight is waited for. Refuses to run on a poisoned partition, and
    /// poisons it if `step` fails other than by a full disk.
    fn exclusive_sync<T>(
        &self,
        _held: &State,
        step: impl FnOnce() -> std::result::Result<T, SyncFailure>,
    ) -> Result<T> {
        let mut s = lock(&self.sync);
        while s.syncing {
            s = self.synced.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(cause) = &s.poisoned {
            return Err(LogError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            });
        }
        s.syncing = true;
        drop(s);
        let outcome = step();
        let mut s = lock(&self.sync);
        s.syncing = false;
        let result = match outcome {
            Ok(value) => Ok(value),
            Err(SyncFailure::DiskFull) => {
                tracing::warn!(dir = %self.dir.display(), "disk full while sealing a segment");
                Err(LogError::DiskFull { dir: self.dir.clone() })
            }
            Err(SyncFailure::Fatal(cause)) => Err(self.poison_locked(&mut s, cause)),
        };
        self.synced.notify_all();
        result
    }

    /// The active segment's handle, reopened if the cache evicted it. Failing to
    /// reopen fails the operation without poisoning: nothing was written.
    fn active_file(&self, st: &mut State) -> Result<Arc<dyn StorageFile>> {
        let handle = &mut st.active.handle;
        self.env
            .active_file(handle)
            .map_err(|e| LogError::io("open", &handle.path, e))
    }

    fn needs_roll(&self, st: &State, len: u64, last_offset_delta: i32) -> bool {
        let a = &st.active;
        if a.size == 0 {
            return false;
        }
        let too_big = a.size + len > self.cfg().segment_bytes_max;
        let rel_end = a.next - a.base + i64::from(last_offset_delta) + 1;
        let too_many = rel_end > i64::from(u32::MAX);
        // A compacted log also rolls once its active segment is as old as
        // `max_compaction_lag_ms`, so the cleaner may compact it in time.
        let compaction_lag = self.cfg().compaction.map_or(u64::MAX, |c| c.max_compaction_lag_ms);
        let age_max = self.cfg().segment_age_ms_max.min(compaction_lag);
        let too_old = a
            .first_append_ms
            .is_some_and(|t| self.env.clock.monotonic_ms().saturating_sub(t) >= age_max);
        too_big || too_many || too_old
    }

    /// Seals the active segment (index written and fsynced, data fsynced) and starts
    /// a new one at the next offset. A full disk fails the roll cleanly; any other
    /// failure poisons the partition.
    fn roll(&self, st: &mut State) -> Result<()> {
        if st.active.size == 0 {
            return Ok(());
        }
        let _section = self.fsync_section();
        let file = self.active_file(st)?;
        let sealed = self.exclusive_sync(st, || self.seal_files(&*file, &st.active))?;
        drop(file);
        let new_base = st.active.next;
        let path = child(&self.dir, &log_file_name(new_base));
        let file = match self.env.storage.open(&path, OpenMode::CreateNew) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                return Err(LogError::DiskFull { dir: self.dir.clone() });
            }
            Err(e) => return Err(self.poison(format!("creating segment {} failed: {e}", path.display()))),
        };
        self.write_producer_snapshot(st, new_base);
        self.env
            .storage
            .sync_dir(&self.dir)
            .map_err(|e| self.poison(format!("fsync of directory {} failed: {e}", self.dir.display())))?;
        st.sealed.push_back(sealed);
        self.env.forget_active(&st.active.handle.path);
        st.active = Active::empty(new_base, self.env.adopt_active(path, file));
        self.publish(st);
        let batches = std::mem::take(&mut st.unsynced_batches);
        self.stats.fsync_batches.fetch_add(batches, Ordering::Relaxed);
        self.stats.segments_rolled.fetch_add(1, Ordering::Relaxed);
        let mut s = lock(&self.sync);
        s.durable_next = s.durable_next.max(new_base);
        s.high_watermark = s.high_watermark.max(new_base);
        self.synced.notify_all();
        Ok(())
    }

    /// Snapshots the producer state as of `offset` (see [`crate::producer`]). The
    /// caller fsyncs the directory afterwards. A failure costs only a longer replay
    /// at the next open, so it is logged and nothing else.
    fn write_producer_snapshot(&self, st: &State, offset: i64) {
        if let Err(e) = producer::write_snapshot(&*self.env.storage, &self.dir, offset, &st.producers) {
            tracing::warn!(dir = %self.dir.display(), offset, error = %e, "writing the producer snapshot failed; the next open replays more of the log");
        }
    }

    /// Writes the active segment's index with its footer and fsyncs index and data.
    fn seal_files(&self, file: &dyn StorageFile, a: &Active) -> std::result::Result<Sealed, SyncFailure> {
        let index_path = child(&self.dir, &index_file_name(a.base));
        let footer = index::Footer::new(
            (a.next - a.base) as u32,
            a.size as u32,
            a.max_timestamp,
            a.last_append_ms,
        );
        let bytes = index::encode_sealed(&a.entries, footer);
        self.env.forget_file(&index_path);
        let write = || -> std::io::Result<()> {
            let f = self.env.storage.open(&index_path, OpenMode::CreateOrOpen)?;
            f.set_len(0)?;
            f.write_all_at(&bytes, 0)?;
            f.sync()
        };
        write().map_err(|e| sync_failure("writing index", &index_path, e))?;
        file.sync()
            .map_err(|e| SyncFailure::Fatal(format!("fsync of {} failed: {e}", a.handle.path.display())))?;
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(Sealed {
            base: a.base,
            next: a.next,
            size: a.size,
            max_timestamp: a.max_timestamp,
            last_append_ms: a.last_append_ms,
            entry_count: a.entries.len() as u32,
        })
    }
}

impl Drop for Log {
    /// Cached handles of this log's sealed files must not outlive it: the directory
    /// may be deleted and created again with the same names.
    fn drop(&mut self) {
        self.env.forget_dir(&self.dir);
    }
}

impl Active {
    pub(crate) fn empty(base: i64, handle: ActiveHandle) -> Active {
        Active {
            base,
            next: base,
            size: 0,
            max_timestamp: i64::MIN,
            handle,
            entries: Vec::new(),
            bytes_since_index: 0,
            first_append_ms: None,
            last_append_ms: i64::MIN,
        }
    }
}
