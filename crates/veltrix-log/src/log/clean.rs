//! The cleaner: one round of compaction of one log (see [`crate::compact`]).
//!
//! A round plans under the state lock (which sealed segments, whether the log
//! is dirty enough) and claims the segments it will rewrite, so retention
//! leaves them alone until it ends. It then works without any lock: it reads
//! the dirty section once to build the key map (key digest to latest offset),
//! and rewrites every sealed segment below where the map ends, in groups that
//! fit one segment, each group written to new files, fsynced and committed
//! with the swap protocol of [`crate::swap`]. Only the swap itself (renames
//! and unlinks, and replacing the group in `sealed`) runs under the state
//! lock; the directory fsync after it runs without.
//!
//! Readers never see a mix: a read that snapshotted the old segments and
//! opens a file after the swap sees [`Log::layout_generation`] move and
//! starts over from the new ones; one that opened the old file keeps reading
//! it through its handle.
//!
//! # Errors
//!
//! A failure before a group's commit point (reading, writing or fsyncing the
//! new files, a batch the engine cannot read) abandons the round: the new
//! files are removed, the old segments were never touched, and the
//! partition keeps serving and accepting writes; the round is counted in
//! `CleanerStats::failures` and logged. The next round starts over. A
//! failure after the commit point (an unlink, a rename or the directory
//! fsync) poisons the partition as a failed deletion does: what the
//! directory holds can no longer be vouched for until recovery finishes the
//! swap from its marker.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::housekeeping::retention_time;
use super::{Log, Sealed, lock};
use crate::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use crate::compact::{
    CLEANER_STATE_FILE, CleanHistory, CleanLimits, CleanOutcome, CompactionConfig, Digester, KeyMap, RecordRewriter,
    RecordView, Rewritten, Throttle,
};
use crate::error::{LogError, Result};
use crate::index::{self, IndexEntry};
use crate::io::{OpenMode, StorageFile, child};
use crate::segment::{STORED_BATCH_BYTES_LIMIT, index_file_name, log_file_name};
use crate::swap;
use crate::txn::AbortedTxn;

/// Bytes read from a segment at a time.
const READ_CHUNK_BYTES: usize = 4 << 20;
/// Bytes of a cleaned segment buffered before each write.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// What the cleaner keeps between rounds.
#[derive(Debug, Default)]
pub(crate) struct CleanerSlot {
    /// Loaded from [`CLEANER_STATE_FILE`] at the first round.
    history: Option<CleanHistory>,
}

/// A round's decisions, taken under the state lock.
struct Plan {
    /// Sealed segments at or after the log start below `cleanable_end`.
    segments: Vec<Sealed>,
    dirty_start: i64,
    cleanable_end: i64,
    forced: bool,
    /// `(producer id, base offset)` of the batches the producer state
    /// remembers: kept (emptied if need be) so a replay rebuilds it.
    producer_batches: HashSet<(i64, i64)>,
    /// Aborted transactions in the range: their records are removed and
    /// never supersede another record, as Kafka's cleaner does.
    aborted: Vec<AbortedTxn>,
    segment_bytes_max: u64,
    index_interval_bytes: u32,
}

impl Plan {
    /// Whether `h` holds records of an aborted transaction.
    fn is_aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted.iter().any(|a| {
                a.producer_id == h.producer_id && a.first_offset <= h.base_offset && h.base_offset < a.last_offset
            })
    }
}

/// What decides a record's fate in the rewrite.
struct Judge<'a> {
    map: &'a KeyMap,
    digester: &'a Digester,
    history: &'a CleanHistory,
    map_end: i64,
    now_ms: i64,
    delete_retention_ms: u64,
    removed: u64,
    /// Producers whose current transaction (since their last marker, in
    /// offset order) has a batch in the rewritten log: its marker stays.
    txn_kept: HashSet<i64>,
    /// Markers end before this offset to go: the oldest producer snapshot's.
    /// An open that starts from a snapshot replays the batches after it, and
    /// one taken while a transaction was open needs its marker to close it.
    markers_end_max: i64,
}

impl Judge<'_> {
    fn keep(&mut self, r: RecordView<'_>) -> bool {
        if r.offset >= self.map_end {
            return true;
        }
        let keep = match r.key {
            None => false,
            Some(key) => {
                let superseded = self.map.get(self.digester.digest(key)).is_some_and(|l| l > r.offset);
                let expired = r.tombstone && self.tombstone_expired(r.offset);
                !(superseded || expired)
            }
        };
        self.removed += u64::from(!keep);
        keep
    }

    /// A transactional batch of `h`'s producer goes into the rewritten log.
    fn kept(&mut self, h: &BatchHeader) {
        if h.is_transactional() {
            self.txn_kept.insert(h.producer_id);
        }
    }

    /// Whether the transaction marker `h` goes, as Kafka's cleaner removes
    /// them: once nothing of its transaction is left (its records removed:
    /// aborted, superseded, or gone with the log start, and no emptied batch
    /// kept for the producer state, whose replay would otherwise see a
    /// transaction without its end) and `delete_retention_ms` after the
    /// round that first compacted it, as for tombstones.
    fn marker_goes(&mut self, h: &BatchHeader) -> bool {
        let kept = self.txn_kept.remove(&h.producer_id);
        !kept
            && h.base_offset < self.map_end
            && h.next_offset() <= self.markers_end_max
            && self.tombstone_expired(h.base_offset)
    }

    fn tombstone_expired(&self, offset: i64) -> bool {
        let retention = i64::try_from(self.delete_retention_ms).unwrap_or(i64::MAX);
        self.history
            .compacted_at(offset)
            .is_some_and(|at| at.saturating_add(retention) <= self.now_ms)
    }
}

/// One batch of a group into the rewritten segment: kept, rebuilt with the
/// records the judge keeps, emptied, or dropped (its offsets joining a gap).
fn rewrite_batch(
    plan: &Plan,
    judge: &mut Judge<'_>,
    rewriter: &dyn RecordRewriter,
    out: &mut Output,
    (bytes, h): (&[u8], &BatchHeader),
    (path, position): (&std::path::Path, u64),
    throttle: &mut Throttle,
) -> Result<()> {
    if h.is_control() {
        if judge.marker_goes(h) {
            judge.removed += 1;
            out.changed = true;
            out.drop_batch(h);
        } else {
            out.push(bytes, throttle)?;
        }
        return Ok(());
    }
    if h.base_offset >= judge.map_end {
        judge.kept(h);
        out.push(bytes, throttle)?;
        return Ok(());
    }
    let retained = plan.producer_batches.contains(&(h.producer_id, h.base_offset));
    if plan.is_aborted(h) {
        judge.removed += u64::try_from(h.record_count).unwrap_or(0);
        out.changed = true;
        match retained {
            true => {
                judge.kept(h);
                out.push(&batch::empty_of(bytes), throttle)?;
            }
            false => out.drop_batch(h),
        }
        return Ok(());
    }
    if h.record_count == 0 {
        // Left by an earlier round (or the duplicate filter):
        // an empty producer batch stays while the producer
        // state needs it; an empty gap merges with its neighbours.
        match retained {
            true => {
                judge.kept(h);
                out.push(bytes, throttle)?;
            }
            false => out.drop_batch(h),
        }
        return Ok(());
    }
    let rewritten = rewriter
        .retain(bytes, &mut |r| judge.keep(r))
        .map_err(|reason| LogError::Corrupt {
            path: path.to_path_buf(),
            position,
            reason,
        })?;
    match rewritten {
        Rewritten::Unchanged => {
            judge.kept(h);
            out.push(bytes, throttle)?;
        }
        Rewritten::Rebuilt(b) => {
            judge.kept(h);
            out.changed = true;
            out.push(&b, throttle)?;
        }
        Rewritten::Emptied if retained => {
            judge.kept(h);
            out.changed = true;
            out.push(&batch::empty_of(bytes), throttle)?;
        }
        Rewritten::Emptied => out.drop_batch(h),
    }
    Ok(())
}

/// The batches of one sealed segment, read a chunk at a time and verified.
struct Batches {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    size: u64,
    expected: i64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl Batches {
    fn open(log: &Log, s: &Sealed) -> Result<Batches> {
        let path = child(&log.dir, &log_file_name(s.base));
        let file = log.env.sealed_file(&path).map_err(|e| LogError::io("open", &path, e))?;
        Ok(Batches {
            file,
            path,
            size: s.size,
            expected: s.base,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
        })
    }

    /// The next batch, its header and its position; `None` at the end of
    /// the segment.
    fn next(&mut self, throttle: &mut Throttle, read: &mut u64) -> Result<Option<(&[u8], BatchHeader, u64)>> {
        if self.pos + HEADER_BYTES as u64 > self.size {
            return Ok(None);
        }
        let path = self.path.clone();
        let corrupt = |reason: String, position| LogError::Corrupt {
            path: path.clone(),
            position,
            reason,
        };
        self.fill(LOG_OVERHEAD, throttle, read)?;
        let at = (self.pos - self.buf_start) as usize;
        let size = batch::peek_size(&self.buf[at..])
            .filter(|s| *s <= STORED_BATCH_BYTES_LIMIT && self.pos + *s as u64 <= self.size)
            .ok_or_else(|| corrupt("batch length is invalid".into(), self.pos))?;
        self.fill(size, throttle, read)?;
        let at = (self.pos - self.buf_start) as usize;
        let bytes = &self.buf[at..at + size];
        let h = batch::verify(bytes).map_err(|e| corrupt(e.to_string(), self.pos))?;
        if h.base_offset != self.expected {
            return Err(corrupt(
                format!("expected a batch at offset {}, found {}", self.expected, h.base_offset),
                self.pos,
            ));
        }
        self.expected = h.next_offset();
        let pos = self.pos;
        self.pos += size as u64;
        Ok(Some((bytes, h, pos)))
    }

    /// Makes `len` bytes from `pos` available in the buffer.
    fn fill(&mut self, len: usize, throttle: &mut Throttle, read: &mut u64) -> Result<()> {
        let end = self.pos + len as u64;
        if self.pos >= self.buf_start && end <= self.buf_start + self.buf.len() as u64 {
            return Ok(());
        }
        let want = (len.max(READ_CHUNK_BYTES) as u64).min(self.size - self.pos) as usize;
        self.buf.resize(want, 0);
        self.file
            .read_exact_at(&mut self.buf, self.pos)
            .map_err(|e| LogError::io("read", &self.path, e))?;
        self.buf_start = self.pos;
        *read += want as u64;
        throttle.moved(want as u64);
        Ok(())
    }
}

/// A cleaned segment being written.
struct Output {
    base: i64,
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    buf: Vec<u8>,
    flushed: u64,
    size: u64,
    entries: Vec<IndexEntry>,
    bytes_since_index: u32,
    index_interval_bytes: u32,
    max_timestamp: i64,
    /// Offsets whose batches were all dropped, not yet written as an empty
    /// batch: `(first, next, largest timestamp)`.
    gap: Option<(i64, i64, i64)>,
    changed: bool,
}

impl Output {
    fn create(log: &Log, base: i64, index_interval_bytes: u32) -> Result<Output> {
        let path = child(&log.dir, &format!("{}{}", log_file_name(base), swap::CLEANED));
        let file = log
            .env
            .storage
            .open(&path, OpenMode::CreateOrOpen)
            .and_then(|f| f.set_len(0).map(|()| f))
            .map_err(|e| LogError::io("create", &path, e))?;
        Ok(Output {
            base,
            file,
            path,
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
            flushed: 0,
            size: 0,
            entries: Vec::new(),
            bytes_since_index: 0,
            index_interval_bytes,
            max_timestamp: i64::MIN,
            gap: None,
            changed: false,
        })
    }

    /// Notes that the offsets of `h` hold no record any more.
    fn drop_batch(&mut self, h: &BatchHeader) {
        self.changed = true;
        let (first, _, ts) = self.gap.unwrap_or((h.base_offset, h.base_offset, -1));
        self.gap = Some((first, h.next_offset(), ts.max(h.max_timestamp)));
    }

    fn push(&mut self, bytes: &[u8], throttle: &mut Throttle) -> Result<()> {
        self.flush_gap(throttle)?;
        self.write(bytes, throttle)
    }

    /// Writes the pending gap as empty batches (each covers at most 2^31
    /// offsets: `last_offset_delta` is an i32).
    fn flush_gap(&mut self, throttle: &mut Throttle) -> Result<()> {
        if let Some((first, next, ts)) = self.gap.take() {
            let mut at = first;
            while at < next {
                let n = (next - at).min(i64::from(i32::MAX) + 1);
                self.write(&gap_batch(at, n, ts), throttle)?;
                at += n;
            }
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8], throttle: &mut Throttle) -> Result<()> {
        let h = batch::parse_fixed(bytes)?;
        if self.entries.is_empty() || self.bytes_since_index >= self.index_interval_bytes {
            self.entries.push(IndexEntry {
                rel_offset: (h.base_offset - self.base) as u32,
                position: self.size as u32,
                ts_before: self.max_timestamp,
            });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index = self.bytes_since_index.saturating_add(bytes.len() as u32);
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        self.buf.extend_from_slice(bytes);
        self.size += bytes.len() as u64;
        if self.buf.len() >= WRITE_BUFFER_BYTES {
            self.flush(throttle)?;
        }
        Ok(())
    }

    fn flush(&mut self, throttle: &mut Throttle) -> Result<()> {
        self.file
            .write_all_at(&self.buf, self.flushed)
            .map_err(|e| LogError::io("write", &self.path, e))?;
        self.flushed += self.buf.len() as u64;
        throttle.moved(self.buf.len() as u64);
        self.buf.clear();
        Ok(())
    }
}

/// A batch of no records covering `count` offsets from `base`: what is left
/// where every record of some batches was removed, so that offsets in a
/// segment still follow on. No producer, uncompressed; its timestamps are the
/// largest of the batches it replaces.
pub(crate) fn gap_batch(base: i64, count: i64, max_timestamp: i64) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_BYTES];
    b[0..8].copy_from_slice(&base.to_be_bytes());
    b[8..12].copy_from_slice(&((HEADER_BYTES - LOG_OVERHEAD) as i32).to_be_bytes());
    b[16] = batch::MAGIC_V2 as u8;
    b[23..27].copy_from_slice(&((count - 1) as i32).to_be_bytes());
    b[27..35].copy_from_slice(&max_timestamp.to_be_bytes());
    b[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Releases the round's claim on the segments, however the round ends.
struct Claim<'a>(&'a Log);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).clean_claim = None;
    }
}

impl Log {
    /// Runs one compaction round if the log is compacted and due (dirty
    /// enough, or dirty data past `max_compaction_lag_ms`); see the module
    /// docs. Blocks for the whole round (reads, writes, fsyncs, the
    /// throttle's sleeps): call it from a thread that may block. At most one
    /// round runs per log; a second caller returns at once.
    pub fn clean(&self, rewriter: &dyn RecordRewriter, limits: &CleanLimits) -> Result<CleanOutcome> {
        let Some(compaction) = self.cfg().compaction else {
            return Ok(CleanOutcome::default());
        };
        let Ok(mut slot) = self.cleaner.try_lock() else {
            return Ok(CleanOutcome::default());
        };
        let started = Instant::now();
        let history = slot.history.get_or_insert_with(|| self.load_clean_history()).clone();
        let Some(plan) = self.plan_round(&compaction, &history) else {
            return Ok(CleanOutcome::default());
        };
        let _claim = Claim(self);
        tracing::info!(
            dir = %self.dir.display(),
            dirty_from = plan.dirty_start,
            dirty_to = plan.cleanable_end,
            forced = plan.forced,
            "compaction round started"
        );
        let mut outcome = CleanOutcome {
            ran: true,
            forced: plan.forced,
            ..CleanOutcome::default()
        };
        match self.run_round(&plan, &compaction, &history, rewriter, limits, &mut outcome) {
            Ok(history) => {
                outcome.micros = started.elapsed().as_micros() as u64;
                tracing::info!(
                    dir = %self.dir.display(),
                    read_bytes = outcome.bytes_read,
                    removed_bytes = outcome.bytes_removed,
                    removed_records = outcome.records_removed,
                    segments_swapped = outcome.segments_swapped,
                    ms = outcome.micros / 1000,
                    "compaction round done"
                );
                self.cleaner_stats.add(&outcome);
                self.save_clean_history(&history);
                slot.history = Some(history);
                Ok(outcome)
            }
            Err(e) => {
                self.cleaner_stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(dir = %self.dir.display(), error = %e, "compaction round abandoned; the log is as it was");
                Err(e)
            }
        }
    }

    /// Counters of this log's cleaner.
    pub fn cleaner_stats(&self) -> &crate::compact::CleanerStats {
        &self.cleaner_stats
    }

    /// The offset below which the log has been compacted (`None` before the
    /// first round), for progress metrics.
    pub fn clean_point(&self) -> Option<i64> {
        let slot = self.cleaner.try_lock().ok()?;
        slot.history
            .as_ref()
            .map(CleanHistory::clean_point)
            .filter(|p| *p != i64::MIN)
    }

    fn load_clean_history(&self) -> CleanHistory {
        let path = child(&self.dir, CLEANER_STATE_FILE);
        if !self.env.storage.exists(&path) {
            return CleanHistory::default();
        }
        let read = || -> std::io::Result<Vec<u8>> {
            let f = self.env.storage.open(&path, OpenMode::Existing)?;
            let len = f.len()?.min(1 << 20) as usize;
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, 0)?;
            Ok(buf)
        };
        // Lost, the history only costs a round over clean data and
        // tombstones kept longer.
        match read().ok().and_then(|b| CleanHistory::decode(&b)) {
            Some(h) => h,
            None => {
                tracing::warn!(path = %path.display(), "unreadable cleaner state; the next round compacts the whole log");
                CleanHistory::default()
            }
        }
    }

    fn save_clean_history(&self, history: &CleanHistory) {
        let bytes = history.encode();
        if let Err(e) = crate::checkpoint::replace_file(&*self.env.storage, &self.dir, CLEANER_STATE_FILE, &bytes) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "writing the cleaner state failed; the next round compacts more");
        }
    }

    /// Decides whether a round is due and claims its segments.
    fn plan_round(&self, c: &CompactionConfig, history: &CleanHistory) -> Option<Plan> {
        let mut st = lock(&self.state);
        if self.poisoned().is_some() || st.clean_claim.is_some() {
            return None;
        }
        let now = self.env.clock.now_ms();
        let lag = |ms: u64| now.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
        let young = lag(c.min_compaction_lag_ms);
        let segments: Vec<Sealed> = st
            .sealed
            .iter()
            .filter(|s| s.next > st.log_start)
            .take_while(|s| retention_time(s.max_timestamp, s.last_append_ms) <= young)
            .copied()
            .collect();
        // Never past the last stable offset: a record of an open
        // transaction may yet be aborted, so it must not supersede anything.
        let first_unstable = st.producers.txns.first_unstable().unwrap_or(i64::MAX);
        let cleanable_end = segments.last()?.next.min(first_unstable);
        let dirty_start = history.clean_point().max(st.log_start);
        if dirty_start >= cleanable_end {
            return None;
        }
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let dirty: u64 = segments.iter().filter(|s| s.next > dirty_start).map(|s| s.size).sum();
        let first_dirty = segments.iter().find(|s| s.next > dirty_start)?;
        let forced =
            retention_time(first_dirty.max_timestamp, first_dirty.last_append_ms) <= lag(c.max_compaction_lag_ms);
        let due = u128::from(dirty) * 1_000_000 >= u128::from(c.min_cleanable_dirty_ppm) * u128::from(total);
        if !(due || forced) {
            return None;
        }
        st.clean_claim = Some(cleanable_end);
        let cfg = self.cfg();
        Some(Plan {
            segments,
            dirty_start,
            cleanable_end,
            forced: forced && !due,
            producer_batches: st.producers.retained_batches(),
            aborted: st.producers.txns.aborted_between(st.log_start, cleanable_end),
            segment_bytes_max: cfg.segment_bytes_max,
            index_interval_bytes: cfg.index_interval_bytes,
        })
    }

    /// Reads the dirty section into the key map; returns where the map ends
    /// (the cleanable end, or the first record whose key did not fit).
    fn build_key_map(
        &self,
        plan: &Plan,
        map: &mut KeyMap,
        digester: &Digester,
        rewriter: &dyn RecordRewriter,
        io: &mut (Throttle, u64),
    ) -> Result<i64> {
        let mut full_at = None;
        for s in plan.segments.iter().filter(|s| s.next > plan.dirty_start) {
            let mut batches = Batches::open(self, s)?;
            let path = batches.path.clone();
            while let Some((bytes, h, position)) = batches.next(&mut io.0, &mut io.1)? {
                let skip = h.is_control() || h.record_count == 0 || plan.is_aborted(&h);
                if h.next_offset() <= plan.dirty_start || h.base_offset >= plan.cleanable_end || skip {
                    continue;
                }
                rewriter
                    .records(bytes, &mut |r| {
                        let dirty = (plan.dirty_start..plan.cleanable_end).contains(&r.offset);
                        if !dirty || full_at.is_some() {
                            return;
                        }
                        if let Some(key) = r.key
                            && !map.put(digester.digest(key), r.offset)
                        {
                            full_at = Some(r.offset);
                        }
                    })
                    .map_err(|reason| LogError::Corrupt {
                        path: path.clone(),
                        position,
                        reason,
                    })?;
                if let Some(at) = full_at {
                    return Ok(at);
                }
            }
        }
        Ok(plan.cleanable_end)
    }

    /// The offset of the oldest producer snapshot (`i64::MAX` when there is
    /// none: an open then replays the whole log, markers or not). Snapshots
    /// only ever get newer, so a value read before a round bounds it.
    fn oldest_producer_snapshot(&self) -> Result<i64> {
        let names = self
            .env
            .storage
            .list_dir(&self.dir)
            .map_err(|e| LogError::io("list", &self.dir, e))?;
        Ok(crate::producer::snapshot_offsets(&names)
            .first()
            .copied()
            .unwrap_or(i64::MAX))
    }

    fn run_round(
        &self,
        plan: &Plan,
        c: &CompactionConfig,
        history: &CleanHistory,
        rewriter: &dyn RecordRewriter,
        limits: &CleanLimits,
        outcome: &mut CleanOutcome,
    ) -> Result<CleanHistory> {
        let digester = Digester::new();
        let mut map = KeyMap::new(limits.key_map_bytes_max);
        let mut io = (Throttle::new(limits.io_bytes_per_sec_max), 0u64);
        let map_end = self.build_key_map(plan, &mut map, &digester, rewriter, &mut io)?;
        outcome.key_map_full = map_end < plan.cleanable_end;
        if outcome.key_map_full {
            tracing::info!(
                dir = %self.dir.display(),
                keys = map.len(),
                compacted_to = map_end,
                dirty_end = plan.cleanable_end,
                "the compaction key map is full (key_map_bytes_max): compacting up to where it filled, the rest next round"
            );
        }
        let mut judge = Judge {
            map: &map,
            digester: &digester,
            history,
            map_end,
            now_ms: self.env.clock.now_ms(),
            delete_retention_ms: c.delete_retention_ms,
            removed: 0,
            txn_kept: HashSet::new(),
            markers_end_max: self.oldest_producer_snapshot()?,
        };
        let rewrite: Vec<Sealed> = plan.segments.iter().filter(|s| s.base < map_end).copied().collect();
        for group in groups(&rewrite, plan.segment_bytes_max) {
            self.clean_group(plan, group, rewriter, &mut judge, &mut io.0, outcome)?;
        }
        // The key map's reads; the rewrite's were counted as they happened.
        outcome.bytes_read += io.1;
        outcome.records_removed = judge.removed;
        let mut history = history.clone();
        history.push(map_end, judge.now_ms);
        Ok(history)
    }

    /// Rewrites one group of segments into a new one at the group's base and
    /// swaps it in (or drops it if nothing changed).
    fn clean_group(
        &self,
        plan: &Plan,
        group: &[Sealed],
        rewriter: &dyn RecordRewriter,
        judge: &mut Judge<'_>,
        throttle: &mut Throttle,
        outcome: &mut CleanOutcome,
    ) -> Result<()> {
        let base = group[0].base;
        let written = self.write_group(plan, group, rewriter, judge, throttle, &mut outcome.bytes_read);
        let (out, sealed) = match written {
            Ok(Some(done)) => done,
            Ok(None) => {
                let _ = swap::discard(&*self.env.storage, &self.dir, base);
                return Ok(());
            }
            Err(e) => {
                let _ = swap::discard(&*self.env.storage, &self.dir, base);
                return Err(e);
            }
        };
        outcome.bytes_written += out.size;
        let before: u64 = group.iter().map(|s| s.size).sum();
        outcome.bytes_removed += before.saturating_sub(out.size);
        if let Err(e) = self.prepare_swap(base, sealed.next) {
            let _ = swap::discard(&*self.env.storage, &self.dir, base);
            return Err(e);
        }
        self.install_swap(group, sealed)?;
        outcome.segments_swapped += 1;
        Ok(())
    }

    /// Writes and fsyncs the cleaned segment and its index (`.cleaned`);
    /// `None` when the group is one segment and nothing in it changed.
    fn write_group(
        &self,
        plan: &Plan,
        group: &[Sealed],
        rewriter: &dyn RecordRewriter,
        judge: &mut Judge<'_>,
        throttle: &mut Throttle,
        read: &mut u64,
    ) -> Result<Option<(Output, Sealed)>> {
        let mut out = Output::create(self, group[0].base, plan.index_interval_bytes)?;
        out.changed = group.len() > 1;
        for s in group {
            let mut batches = Batches::open(self, s)?;
            let path = batches.path.clone();
            while let Some((bytes, h, position)) = batches.next(throttle, read)? {
                rewrite_batch(
                    plan,
                    judge,
                    rewriter,
                    &mut out,
                    (bytes, &h),
                    (&path, position),
                    throttle,
                )?;
            }
        }
        if !out.changed {
            return Ok(None);
        }
        let last = group.last().expect("a group has a segment");
        out.flush_gap(throttle)?;
        out.flush(throttle)?;
        out.file.sync().map_err(|e| LogError::io("fsync", &out.path, e))?;
        let sealed = Sealed {
            base: out.base,
            next: last.next,
            size: out.size,
            max_timestamp: group.iter().map(|s| s.max_timestamp).max().unwrap_or(i64::MIN),
            last_append_ms: group.iter().map(|s| s.last_append_ms).max().unwrap_or(i64::MIN),
            entry_count: out.entries.len() as u32,
        };
        let footer = index::Footer::new(
            (sealed.next - sealed.base) as u32,
            sealed.size as u32,
            sealed.max_timestamp,
            sealed.last_append_ms,
        );
        let index_path = child(&self.dir, &format!("{}{}", index_file_name(out.base), swap::CLEANED));
        let bytes = index::encode_sealed(&out.entries, footer);
        let write = || -> std::io::Result<()> {
            let f = self.env.storage.open(&index_path, OpenMode::CreateOrOpen)?;
            f.set_len(0)?;
            f.write_all_at(&bytes, 0)?;
            f.sync()
        };
        write().map_err(|e| LogError::io("write", &index_path, e))?;
        Ok(Some((out, sealed)))
    }

    /// Steps 2 and 3 of the swap protocol: `.cleaned` renamed to `.swap`, the
    /// marker committed.
    fn prepare_swap(&self, base: i64, end: i64) -> Result<()> {
        let storage = &*self.env.storage;
        for final_name in [index_file_name(base), log_file_name(base)] {
            let from = child(&self.dir, &format!("{final_name}{}", swap::CLEANED));
            let to = child(&self.dir, &format!("{final_name}{}", swap::SWAP));
            storage
                .rename(&from, &to)
                .map_err(|e| LogError::io("rename", &from, e))?;
        }
        swap::commit(storage, &self.dir, base, end).map_err(|e| LogError::io("commit swap in", &self.dir, e))
    }

    /// Steps 4 and 5: the new segment replaces the group on disk and in
    /// memory. Past the commit point, so a failure poisons the partition.
    fn install_swap(&self, group: &[Sealed], sealed: Sealed) -> Result<()> {
        let storage = &*self.env.storage;
        {
            let mut st = lock(&self.state);
            let at = st.sealed.iter().position(|s| s.base == sealed.base);
            let intact = at.is_some_and(|i| {
                group.iter().enumerate().all(|(k, g)| {
                    st.sealed
                        .get(i + k)
                        .is_some_and(|s| s.base == g.base && s.next == g.next)
                })
            });
            let Some(at) = at.filter(|_| intact) else {
                return Err(self.poison(format!(
                    "compacted segment {} no longer matches the segments it replaces",
                    sealed.base
                )));
            };
            let names: Vec<String> = group
                .iter()
                .skip(1)
                .flat_map(|s| [log_file_name(s.base), index_file_name(s.base)])
                .collect();
            if let Err(e) = swap::install(storage, &self.dir, sealed.base, sealed.next, &names) {
                return Err(self.poison(format!("swapping in compacted segment {} failed: {e}", sealed.base)));
            }
            for s in group {
                self.env.forget_file(&child(&self.dir, &log_file_name(s.base)));
                self.env.forget_file(&child(&self.dir, &index_file_name(s.base)));
            }
            st.sealed.drain(at..at + group.len());
            st.sealed.insert(at, sealed);
            self.layout_generation.fetch_add(1, Ordering::SeqCst);
            self.publish(&st);
        }
        storage
            .sync_dir(&self.dir)
            .map_err(|e| self.poison(format!("fsync of directory {} failed: {e}", self.dir.display())))?;
        let marker = child(&self.dir, &swap::marker_name(sealed.base));
        if let Err(e) = storage.remove_file(&marker) {
            // A marker left behind is finished again, harmlessly, at the next open.
            tracing::warn!(path = %marker.display(), error = %e, "removing a swap marker failed");
        }
        Ok(())
    }
}

/// Consecutive segments grouped so that each group's bytes fit one segment
/// and its offsets the index's 32 bits; a gap between segments (damage cut
/// one short) ends a group.
fn groups(segments: &[Sealed], bytes_max: u64) -> Vec<&[Sealed]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, s) in segments.iter().enumerate() {
        let fits = i > start
            && segments[i - 1].next == s.base
            && bytes + s.size <= bytes_max
            && s.next - segments[start].base <= i64::from(u32::MAX);
        if i > start && !fits {
            out.push(&segments[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += s.size;
    }
    if start < segments.len() {
        out.push(&segments[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, next: i64, size: u64) -> Sealed {
        Sealed {
            base,
            next,
            size,
            max_timestamp: 0,
            last_append_ms: 0,
            entry_count: 1,
        }
    }

    #[test]
    fn groups_fit_a_segment_and_stop_at_gaps() {
        let s = [
            seg(0, 10, 40),
            seg(10, 20, 40),
            seg(20, 30, 40),
            seg(35, 40, 10),
            seg(40, 50, 10),
        ];
        let g: Vec<Vec<i64>> = groups(&s, 100)
            .iter()
            .map(|g| g.iter().map(|s| s.base).collect())
            .collect();
        assert_eq!(g, vec![vec![0, 10], vec![20], vec![35, 40]]);
    }

    #[test]
    fn a_gap_batch_is_a_valid_empty_batch_covering_its_offsets() {
        let b = gap_batch(100, 7, 5);
        let h = batch::verify(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.next_offset(), h.record_count, h.producer_id),
            (100, 107, 0, -1)
        );
    }
}
