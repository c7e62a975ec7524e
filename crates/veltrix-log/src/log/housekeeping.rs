//! Moving the log start: delete-records, retention, rolling by age, and the
//! periodic `tick` that drives them; and the clean `close`.
//!
//! Deleting segments changes what a restart finds, so every deletion is followed
//! by a directory fsync, and any failure on the way poisons the partition: a
//! deletion that may or may not survive a crash would let the log start move
//! backwards.

use std::sync::atomic::Ordering;

use super::{
    CLEAN_SHUTDOWN_FILE, LOG_START_FILE, Log, RECOVERY_POINT_FILE, RECOVERY_POINT_INTERVAL_MS, Sealed, State,
    TickOutcome, lock,
};
use crate::config::FlushPolicy;
use crate::error::{LogError, Result};
use crate::io::{OpenMode, child};
use crate::segment::{index_file_name, log_file_name};

/// The time retention judges a segment by: the later of its largest record
/// timestamp and the broker's wall time at its last append.
///
/// Record timestamps are the producer's word, and producers get them wrong: a
/// batch header whose largest timestamp is 0, a clock years behind, or replayed
/// history would otherwise make data written a moment ago look older than the
/// retention period, and the segment would be deleted before any consumer read
/// it. So retention by time never deletes what this broker appended within the
/// retention period by its own clock; a timestamp in the future keeps a segment
/// longer, as in Kafka. A segment with no timestamps (Kafka's -1) is judged by
/// its last append alone, as Kafka falls back to the file's modification time.
pub(crate) fn retention_time(max_timestamp: i64, last_append_ms: i64) -> i64 {
    max_timestamp.max(last_append_ms)
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
        let _section = self.fsync_section();
        crate::checkpoint::write_checkpoint(&*self.env.storage, &self.dir, LOG_START_FILE, offset)
            .map_err(|e| self.poison(format!("persisting log start {offset} failed: {e}")))?;
        st.log_start = offset;
        self.publish(&st);
        self.delete_segments_while(&mut st, |s, log_start, _| s.next <= log_start)?;
        Ok(st.log_start)
    }

    /// Periodic housekeeping, driven by the host: rolls the active segment by age,
    /// applies retention, and flushes a relaxed topic whose interval has passed.
    /// A poisoned partition does nothing here: its disk is not to be trusted with
    /// deletions either.
    pub fn tick(&self) -> Result<TickOutcome> {
        let mut outcome = TickOutcome::default();
        let (flush_due, recovery_point) = {
            let mut st = lock(&self.state);
            if self.poisoned().is_some() {
                return Ok(outcome);
            }
            if self.needs_roll(&st, 0, 0) || self.active_expired(&st) {
                self.roll(&mut st)?;
                outcome.rolled = true;
            }
            outcome.segments_deleted = self.apply_retention(&mut st)?;
            let now_ms = self.env.clock.now_ms();
            outcome.producers_expired = st.producers.expire(now_ms, self.cfg().producer_id_expiration_ms);
            let log_start = st.log_start;
            st.producers.txns.trim(log_start);
            let recovery_point = self.recovery_point_due(&mut st);
            let flush_due = match self.cfg().flush {
                FlushPolicy::Interval { flush_interval_ms } => {
                    let idle_ms = self.env.clock.monotonic_ms().saturating_sub(st.last_flush_ms);
                    (st.unsynced_batches > 0 && idle_ms >= flush_interval_ms).then_some(st.active.next)
                }
                FlushPolicy::EveryAppend => None,
            };
            (flush_due, recovery_point)
        };
        if let Some(durable) = recovery_point {
            // Written after the state lock is released: its fsync must not hold
            // up appends (which wait on that lock) for as long as the disk takes.
            self.write_recovery_point(durable)?;
        }
        if let Some(end) = flush_due {
            self.sync_to(end)?;
            outcome.flushed = true;
        }
        Ok(outcome)
    }

    /// Records `durable` as the recovery point. Failing to open the file (no file
    /// descriptor left, say) changed nothing on disk: the point is only a
    /// shortcut for recovery, so that round is skipped, counted, and the next
    /// interval tries again; the partition is not poisoned for a handle
    /// shortage. A failed write or fsync does poison it.
    fn write_recovery_point(&self, durable: i64) -> Result<()> {
        let storage = &*self.env.storage;
        match crate::checkpoint::open_for_overwrite(storage, &self.dir, RECOVERY_POINT_FILE) {
            Err(e) => {
                self.stats.recovery_point_skips.fetch_add(1, Ordering::Relaxed);
                if !self.recovery_point_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot open the recovery point; trying again every second");
                }
                Ok(())
            }
            Ok(file) => {
                file.write(storage, &self.dir, durable)
                    .map_err(|e| self.poison(format!("writing the recovery point failed: {e}")))?;
                if self.recovery_point_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(dir = %self.dir.display(), "the recovery point is written again");
                }
                let mut st = lock(&self.state);
                st.recovery_point = st.recovery_point.max(durable);
                Ok(())
            }
        }
    }

    /// Whether to record how far the log is durable: at most once per
    /// [`RECOVERY_POINT_INTERVAL_MS`], so recovery can tell damage to acknowledged
    /// data from a torn unsynced tail (one small fsync per interval). Returns the
    /// durable point to write and claims the interval, so that a concurrent tick
    /// does not write it too. Durability only grows, so the point stays true
    /// however late it reaches the disk.
    fn recovery_point_due(&self, st: &mut State) -> Option<i64> {
        let durable = lock(&self.sync).durable_next;
        let now = self.env.clock.monotonic_ms();
        if durable <= st.recovery_point || now.saturating_sub(st.recovery_point_ms) < RECOVERY_POINT_INTERVAL_MS {
            return None;
        }
        st.recovery_point_ms = now;
        Some(durable)
    }

    /// The wall-clock horizon before which data is past retention by time.
    fn retention_horizon(&self) -> Option<i64> {
        let retention_ms = i64::try_from(self.cfg().retention_ms?).unwrap_or(i64::MAX);
        Some(self.env.clock.now_ms().saturating_sub(retention_ms))
    }

    /// Whether all of the active segment is past retention by time, in which case it
    /// is rolled so that retention can delete it (as Kafka does).
    fn active_expired(&self, st: &State) -> bool {
        let a = &st.active;
        self.retention_horizon()
            .is_some_and(|horizon| a.size > 0 && retention_time(a.max_timestamp, a.last_append_ms) < horizon)
    }

    fn apply_retention(&self, st: &mut State) -> Result<usize> {
        // Segments a delete-records left below the log start while a
        // compaction round held them.
        let mut deleted = self.delete_segments_while(st, |s, log_start, _| s.next <= log_start)?;
        if let Some(horizon) = self.retention_horizon() {
            deleted += self.delete_segments_while(st, |s, _, _| {
                retention_time(s.max_timestamp, s.last_append_ms) < horizon
            })?;
        }
        if let Some(retention_bytes) = self.cfg().retention_bytes {
            deleted += self.delete_segments_while(st, |s, _, total| total - s.size >= retention_bytes)?;
        }
        Ok(deleted)
    }

    /// Deletes the oldest sealed segments while `doomed(segment, log_start,
    /// total_bytes)` holds. The active segment is never deleted. The log start
    /// moves to the base of the first remaining segment.
    fn delete_segments_while(&self, st: &mut State, doomed: impl Fn(&Sealed, i64, u64) -> bool) -> Result<usize> {
        let mut deleted = 0;
        let mut total = st.sealed.iter().map(|s| s.size).sum::<u64>() + st.active.size;
        // From the first unlink to the directory's fsync the lock is held
        // across slow I/O: appends on asynchronous tasks must not wait for it.
        let mut section = None;
        while let Some(&oldest) = st.sealed.front() {
            // A compaction round is rewriting it; the next tick decides.
            let claimed = st.clean_claim.is_some_and(|end| oldest.base < end);
            if claimed || !doomed(&oldest, st.log_start, total) {
                break;
            }
            section.get_or_insert_with(|| self.fsync_section());
            st.sealed.pop_front();
            total -= oldest.size;
            let next_base = st.sealed.front().map_or(st.active.base, |s| s.base);
            st.log_start = st.log_start.max(next_base);
            for name in [log_file_name(oldest.base), index_file_name(oldest.base)] {
                let path = child(&self.dir, &name);
                // Unlink first: a reader that opens the file after the handle is
                // forgotten then fails to find it, instead of caching it again.
                match self.env.storage.remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.poison(format!("removing {} failed: {e}", path.display()))),
                }
                self.env.forget_file(&path);
            }
            deleted += 1;
            self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
        }
        if deleted > 0 {
            self.publish(st);
            self.env
                .storage
                .sync_dir(&self.dir)
                .map_err(|e| self.poison(format!("fsync of directory {} failed: {e}", self.dir.display())))?;
            tracing::info!(dir = %self.dir.display(), deleted, log_start = st.log_start, "deleted segments");
        }
        Ok(deleted)
    }

    /// Shuts the log down cleanly: everything is fsynced, the active segment's index
    /// is written, and a marker lets the next open skip the recovery scan. Appends
    /// fail afterwards; waiters for anything written before return `Ok`.
    pub fn close(&self) -> Result<()> {
        let mut st = lock(&self.state);
        let file = self.active_file(&mut st)?;
        self.exclusive_sync(&st, || self.seal_files(&*file, &st.active))?;
        drop(file);
        self.write_producer_snapshot(&st, st.active.next);
        let marker = child(&self.dir, CLEAN_SHUTDOWN_FILE);
        let storage = &*self.env.storage;
        storage
            .open(&marker, OpenMode::CreateOrOpen)
            .and_then(|_| storage.sync_dir(&self.dir))
            .map_err(|e| self.poison(format!("writing {} failed: {e}", marker.display())))?;
        let mut s = lock(&self.sync);
        s.durable_next = s.durable_next.max(st.active.next);
        s.high_watermark = s.high_watermark.max(st.active.next);
        s.poisoned.get_or_insert_with(|| "the log was closed".into());
        self.synced.notify_all();
        Ok(())
    }
}
