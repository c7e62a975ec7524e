//! One topic's duplicate window on the produce path: the index, its store,
//! and what a produce to the topic does with them.
//!
//! A partition's batches are validated whole first, as for any topic. Then,
//! under the index's lock, every record's id is reserved: a record whose id
//! is committed is dropped, one whose id this produce already reserved (the
//! same id twice in one request) is dropped, and one whose id another produce
//! is storing right now makes this one give back what it reserved, wait for
//! the other's outcome outside the lock, and start over, so two produces
//! never wait on each other. The batches are then appended, thinned by
//! [`filter::without`] where records were dropped, and the reservations end
//! when the partition's fsync does: committed at the records' offsets, or
//! aborted if the fsync failed. That happens on a task of its own, not in
//! the produce request, so nothing a request waits for depends on another
//! request's progress.
//!
//! Snapshots ([`TopicDedup::housekeep`]) bound what a restart reads: the
//! index is rebuilt from the newest snapshot plus the ids in the partitions'
//! logs after the offsets it covers ([`TopicDedup::open`]).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use veltrix_log::{Env, batch};

use super::filter::{self, Id, IdSource};
use super::{
    DEDUP_ID_BYTES_MAX_DEFAULT, DEDUP_IDS_MAX_DEFAULT, DedupConfig, DedupError, DedupIndex, DedupMemory, DedupStats,
    DedupStore, LogDedupStore, LoggedId, Outcome, Reservation, Ticket, Waiter,
};
use crate::catalog::{DedupIdSource, DedupSettings};
use crate::error::{CoreError, Result};
use crate::topic::{AppendedBatches, Checked, Partition};
use crate::validate::{InvalidBatch, RecordProblem};

/// Memory all topics' windows may hold together unless configured otherwise.
pub const DEDUP_MEMORY_BYTES_MAX_DEFAULT: usize = 512 << 20;

/// How often a topic's window is snapshotted, at most.
pub const DEDUP_SNAPSHOT_INTERVAL_MS: i64 = 30_000;
/// How long a produce waits for another produce storing the same id (its
/// append and fsync) before giving up with a retriable error.
pub const DEDUP_IN_FLIGHT_WAIT_MS_MAX: u64 = 30_000;
#[cfg(test)]
mod tests;

/// Records one produce request may carry for one partition of a topic with a
/// duplicate window (librdkafka's batches hold at most 10,000 by default).
pub const DEDUP_REQUEST_RECORDS_MAX: usize = 100_000;

/// Bytes read from a partition's log at a time when the window is rebuilt.
const RESTORE_READ_BYTES: usize = 1 << 20;

/// Limits every topic's window shares, set broker-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupLimits {
    /// Ids one topic's window remembers at most; past it the oldest are
    /// forgotten early (see the index's documentation).
    pub ids_max: usize,
    /// The longest id accepted; a longer one is refused as an invalid record.
    pub id_bytes_max: usize,
    /// Memory all topics' windows hold together at most (ids and their
    /// entries, estimated); a window that would go over forgets its own
    /// oldest ids early.
    pub memory_bytes_max: usize,
}

impl DedupLimits {
    /// The index settings of a window of `window_ms` under these limits.
    pub fn config(&self, window_ms: u64) -> DedupConfig {
        DedupConfig {
            window_ms,
            ids_max: self.ids_max,
            id_bytes_max: self.id_bytes_max,
        }
    }
}

impl Default for DedupLimits {
    fn default() -> Self {
        DedupLimits {
            ids_max: DEDUP_IDS_MAX_DEFAULT,
            id_bytes_max: DEDUP_ID_BYTES_MAX_DEFAULT,
            memory_bytes_max: DEDUP_MEMORY_BYTES_MAX_DEFAULT,
        }
    }
}

/// What [`TopicDedup::stats`] reports: the index's figures and the records
/// that carried no id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicDedupStats {
    pub index: DedupStats,
    /// Records stored without an id (no such header, or a null one).
    pub records_without_id: u64,
    /// Times a produce met an id another produce was storing and waited.
    pub waits: u64,
    /// When the newest snapshot was saved, -1 if none since the start.
    pub snapshot_ms: i64,
}

/// One topic's window. See the module documentation.
#[derive(Debug)]
pub struct TopicDedup {
    settings: DedupSettings,
    config: DedupConfig,
    index: Mutex<DedupIndex>,
    store: Box<dyn DedupStore>,
    env: Arc<Env>,
    records_without_id: AtomicU64,
    waits: AtomicU64,
    snapshot_ms: AtomicI64,
    /// Early evictions already logged, and when the last line was.
    evicted_warned: AtomicU64,
    warned_ms: AtomicI64,
}

/// A record's id reserved by one produce, until its batch is appended.
struct Held {
    batch: usize,
    offset_delta: i32,
    ticket: Ticket,
}

/// What one pass over a partition's batches reserved.
enum Pass {
    /// Each batch's dropped offset deltas (ascending), and the ids reserved.
    Reserved { drops: Vec<Vec<i32>>, held: Vec<Held> },
    /// Another produce is storing this id: wait for it, then pass again.
    Wait(Waiter),
}

impl TopicDedup {
    /// Opens the window of a topic whose logs are `partitions`: its store in
    /// `dir`, and its index rebuilt from the newest snapshot and the ids in
    /// the logs after it (durable records only: reads stop at the high
    /// watermark).
    pub fn open(
        env: &Arc<Env>,
        dir: &Path,
        settings: DedupSettings,
        limits: DedupLimits,
        memory: Arc<DedupMemory>,
        partitions: &[Arc<Partition>],
    ) -> Result<TopicDedup> {
        let config = limits.config(settings.window_ms);
        config.validate().map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        let store = LogDedupStore::open(env.storage.clone(), dir, &config)?;
        Self::with_store(env, Box::new(store), settings, config, memory, partitions)
    }

    /// [`TopicDedup::open`] over any store.
    pub fn with_store(
        env: &Arc<Env>,
        store: Box<dyn DedupStore>,
        settings: DedupSettings,
        config: DedupConfig,
        memory: Arc<DedupMemory>,
        partitions: &[Arc<Partition>],
    ) -> Result<TopicDedup> {
        let snapshot = store.load()?;
        let source = id_source(&settings);
        let mut logged = Vec::new();
        for p in partitions {
            let covered = snapshot
                .as_ref()
                .and_then(|s| s.covered.iter().find(|(i, _)| *i == p.index))
                .map(|&(_, offset)| offset);
            read_ids(p, covered, &config, source, &mut logged)?;
        }
        let now = env.clock.now_ms();
        let restored = logged.len();
        let mut index =
            DedupIndex::restore(config, snapshot, logged, now).map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        index.set_memory(memory);
        tracing::info!(
            ids = index.stats(now).ids,
            from_logs = restored,
            window_ms = config.window_ms,
            "dedup window restored"
        );
        Ok(TopicDedup {
            settings,
            config,
            index: Mutex::new(index),
            store,
            env: env.clone(),
            records_without_id: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            snapshot_ms: AtomicI64::new(-1),
            evicted_warned: AtomicU64::new(0),
            warned_ms: AtomicI64::new(-1),
        })
    }

    pub fn settings(&self) -> &DedupSettings {
        &self.settings
    }

    pub fn config(&self) -> &DedupConfig {
        &self.config
    }

    pub fn stats(&self) -> TopicDedupStats {
        TopicDedupStats {
            index: self.lock().stats(self.env.clock.now_ms()),
            records_without_id: self.records_without_id.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            snapshot_ms: self.snapshot_ms.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DedupIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates a producer's batches for `partition`, drops the records whose
    /// ids are in the window, and appends the rest. Blocks: on the log's locks
    /// and rolls, and while another produce is storing one of the ids (at most
    /// [`DEDUP_IN_FLIGHT_WAIT_MS_MAX`]); call it where blocking is allowed, in
    /// a Tokio runtime (the reservations end on a task of their own).
    pub fn append(self: &Arc<Self>, partition: &Arc<Partition>, records: &[u8]) -> Result<AppendedBatches> {
        let checked = partition.check_batches(records)?;
        // Validation read every record, so the counts are true. Each record's
        // id is held while the request is handled: a batch of tiny records
        // that decompresses to millions must not cost gigabytes.
        let records: i64 = checked.iter().map(|c| i64::from(c.record_count())).sum();
        if records > DEDUP_REQUEST_RECORDS_MAX as i64 {
            return Err(CoreError::LimitReached(format!(
                "a produce to a topic with a duplicate window carries at most {DEDUP_REQUEST_RECORDS_MAX} records \
                 per partition, this one {records}; send smaller batches"
            )));
        }
        let source = id_source(&self.settings);
        let mut ids = Vec::with_capacity(checked.len());
        for (i, c) in checked.iter().enumerate() {
            let read = filter::ids(c.bytes(), source, self.config.id_bytes_max)
                .map_err(|source| CoreError::InvalidBatch { batch: i, source })?;
            for r in &read {
                if let Id::Bad(bad) = r.id {
                    return Err(CoreError::InvalidBatch {
                        batch: i,
                        source: InvalidBatch::Record {
                            index: r.offset_delta,
                            problem: RecordProblem::MessageId(bad),
                        },
                    });
                }
            }
            ids.push(read);
        }
        let deadline = self.env.clock.monotonic_ms() + DEDUP_IN_FLIGHT_WAIT_MS_MAX;
        let (drops, held) = loop {
            match self.reserve(&ids)? {
                Pass::Reserved { drops, held } => break (drops, held),
                Pass::Wait(waiter) => {
                    self.waits.fetch_add(1, Ordering::Relaxed);
                    wait(waiter, deadline, self.env.clock.monotonic_ms())?;
                }
            }
        };
        let without: usize = ids.iter().flatten().filter(|r| r.id == Id::Missing).count();
        self.records_without_id.fetch_add(without as u64, Ordering::Relaxed);
        self.append_thinned(partition, &checked, &drops, held)
    }

    /// One pass of reservations over every record's id; see the module docs.
    fn reserve(&self, ids: &[Vec<filter::RecordId>]) -> Result<Pass> {
        let now = self.env.clock.now_ms();
        let mut index = self.lock();
        let mut drops = vec![Vec::new(); ids.len()];
        let mut held: Vec<Held> = Vec::new();
        let mut mine: HashSet<&[u8], foldhash::quality::RandomState> = HashSet::default();
        for (batch, records) in ids.iter().enumerate() {
            for r in records {
                let Id::Found(id) = &r.id else { continue };
                if mine.contains(id.as_slice()) {
                    drops[batch].push(r.offset_delta);
                    continue;
                }
                let reservation = match index.reserve(id, now) {
                    Ok(reservation) => reservation,
                    Err(e) => {
                        give_back(&mut index, held);
                        return Err(dedup_error(e));
                    }
                };
                match reservation {
                    Reservation::Duplicate(_) => drops[batch].push(r.offset_delta),
                    Reservation::InFlight(waiter) => {
                        give_back(&mut index, held);
                        return Ok(Pass::Wait(waiter));
                    }
                    Reservation::New(ticket) => {
                        mine.insert(id);
                        held.push(Held {
                            batch,
                            offset_delta: r.offset_delta,
                            ticket,
                        });
                    }
                }
            }
        }
        Ok(Pass::Reserved { drops, held })
    }

    /// Appends the checked batches, without the dropped records, and hands the
    /// appended batches' reservations to [`TopicDedup::settle`]. On an error
    /// part-way, the batches not appended give their reservations back.
    fn append_thinned(
        self: &Arc<Self>,
        partition: &Arc<Partition>,
        checked: &[Checked<'_>],
        drops: &[Vec<i32>],
        mut held: Vec<Held>,
    ) -> Result<AppendedBatches> {
        let mut out = AppendedBatches::none();
        let mut settled = Vec::new();
        let mut outcome = Ok(());
        for (i, c) in checked.iter().enumerate() {
            let appended = if drops[i].is_empty() {
                partition.log().append_verified(c.verified()).map_err(CoreError::from)
            } else {
                filter::without(c.bytes(), &drops[i])
                    .map_err(|source| CoreError::InvalidBatch { batch: i, source })
                    .and_then(|thinned| {
                        // Fewer records than the verified batch, under its limit
                        // unless the codec compresses them worse: not refused.
                        let verified = batch::Verified::filtered(&thinned, usize::MAX)
                            .expect("a batch the filter re-encoded verifies");
                        partition.log().append_verified(verified).map_err(CoreError::from)
                    })
            };
            let appended = match appended {
                Ok(appended) => appended,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            };
            let (mine, rest): (Vec<_>, Vec<_>) = held.into_iter().partition(|h| h.batch == i);
            held = rest;
            if appended.duplicate {
                // An idempotent producer's retry of a batch already stored:
                // nothing was written, its ids came with the original.
                let mut index = self.lock();
                give_back(&mut index, mine);
            } else {
                settled.extend(
                    mine.into_iter()
                        .map(|h| (h.ticket, appended.base_offset + i64::from(h.offset_delta))),
                );
            }
            out.add(&appended, c.min_timestamp(), c.max_timestamp());
        }
        give_back(&mut self.lock(), held);
        if !settled.is_empty() {
            self.settle(partition, out.next_offset, settled);
        }
        outcome.map(|()| out)
    }

    /// Ends the reservations of appended records once the partition is
    /// durable up to `next`: committed at their offsets, or given back if the
    /// fsync failed (the records are not acknowledged either).
    fn settle(self: &Arc<Self>, partition: &Arc<Partition>, next: i64, tickets: Vec<(Ticket, i64)>) {
        let this = self.clone();
        let p = partition.index;
        let end = move |durable: bool| {
            let mut index = this.lock();
            let now = this.env.clock.now_ms();
            for (ticket, offset) in tickets {
                let ended = if durable {
                    index.commit(ticket, p, offset, now)
                } else {
                    index.abort(ticket)
                };
                debug_assert!(ended.is_ok(), "a ticket of this index ends once");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let durable = partition.commit_async(next);
                runtime.spawn(async move { end(durable.await.is_ok()) });
            }
            Err(_) => end(partition.commit(next).is_ok()),
        }
    }

    /// Forgets expired ids and, at most every [`DEDUP_SNAPSHOT_INTERVAL_MS`],
    /// saves a snapshot covering the partitions' logs up to their current end.
    /// Called from the broker's housekeeping; the save fsyncs.
    pub fn housekeep(&self, partitions: &[Arc<Partition>]) -> Result<()> {
        let now = self.env.clock.now_ms();
        self.warn_of_early_evictions(now);
        let last = self.snapshot_ms.load(Ordering::Relaxed);
        if last >= 0 && now - last < DEDUP_SNAPSHOT_INTERVAL_MS {
            self.lock().expire(now);
            return Ok(());
        }
        // Log ends first, then the mark: every record below them was reserved
        // before the mark (see `DedupIndex::mark`).
        let ends: Vec<(i32, i64)> = partitions.iter().map(|p| (p.index, p.log().log_end())).collect();
        let snapshot = {
            let mut index = self.lock();
            let mark = index.mark();
            index.snapshot(mark, &ends, now)
        };
        // `None`: a reservation from before the mark is still pending; the
        // next round tries again.
        if let Some(snapshot) = snapshot {
            self.store.save(&snapshot)?;
            self.snapshot_ms.store(now, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl TopicDedup {
    /// Logs, at most once per snapshot interval, that the window forgot ids
    /// early since the last such line: `ids_max` is too small for the
    /// topic's rate of ids times its window.
    fn warn_of_early_evictions(&self, now: i64) {
        let last = self.warned_ms.load(Ordering::Relaxed);
        if last >= 0 && now - last < DEDUP_SNAPSHOT_INTERVAL_MS {
            return;
        }
        let stats = self.lock().stats(now);
        let before = self.evicted_warned.swap(stats.evicted_early, Ordering::Relaxed);
        if stats.evicted_early > before {
            self.warned_ms.store(now, Ordering::Relaxed);
            tracing::warn!(
                evicted = stats.evicted_early - before,
                ids_max = self.config.ids_max,
                window_ms = self.config.window_ms,
                effective_window_ms = stats.effective_window_ms,
                "the dedup window is full: ids were forgotten before their window ended, so duplicates sent \
                 later than the effective window are stored; raise [dedup] ids_max or shorten the window"
            );
        }
    }
}

fn id_source(settings: &DedupSettings) -> IdSource<'_> {
    match settings.id_source {
        DedupIdSource::Header => IdSource::Header(&settings.id_header),
        DedupIdSource::Key => IdSource::Key,
    }
}

fn give_back(index: &mut DedupIndex, held: Vec<Held>) {
    for h in held {
        let ended = index.abort(h.ticket);
        debug_assert!(ended.is_ok(), "a ticket of this index ends once");
    }
}

fn dedup_error(e: DedupError) -> CoreError {
    match e {
        DedupError::Full { .. } | DedupError::MemoryFull { .. } => CoreError::LimitReached(e.to_string()),
        other => CoreError::InvalidConfig(other.to_string()),
    }
}

/// Waits for another produce's outcome on `waiter`, blocking this thread.
fn wait(waiter: Waiter, deadline_ms: u64, now_ms: u64) -> Result<()> {
    if waiter.try_outcome().is_some() {
        return Ok(());
    }
    let timed_out = || {
        CoreError::Timeout(format!(
            "another produce is storing a record with the same message id and did not finish within {DEDUP_IN_FLIGHT_WAIT_MS_MAX} ms"
        ))
    };
    let left = Duration::from_millis(
        deadline_ms
            .checked_sub(now_ms)
            .filter(|&l| l > 0)
            .ok_or_else(timed_out)?,
    );
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| timed_out())?;
    let outcome: Option<Outcome> = runtime.block_on(async { tokio::time::timeout(left, waiter.outcome()).await.ok() });
    outcome.map(|_| ()).ok_or_else(timed_out)
}

/// The ids of `partition`'s durable records from `covered` on (or, without a
/// snapshot, its last `ids_max` offsets), appended to `out`.
fn read_ids(
    partition: &Partition,
    covered: Option<i64>,
    config: &DedupConfig,
    source: IdSource<'_>,
    out: &mut Vec<LoggedId>,
) -> Result<()> {
    let log = partition.log();
    let end = log.high_watermark();
    let recent = end.saturating_sub(i64::try_from(config.ids_max).unwrap_or(i64::MAX));
    let from = covered.unwrap_or(recent).max(recent).max(log.log_start());
    let mut at = from;
    while at < end {
        let read = log.read(at, RESTORE_READ_BYTES)?;
        if read.records.is_empty() {
            break;
        }
        let mut bytes = &read.records[..];
        while let Some(size) = batch::peek_size(bytes).filter(|&s| s <= bytes.len()) {
            let one = &bytes[..size];
            bytes = &bytes[size..];
            let Ok(header) = batch::parse_header(one) else { break };
            match filter::ids(one, source, config.id_bytes_max) {
                Ok(ids) => out.extend(ids.into_iter().filter_map(|r| {
                    let offset = header.base_offset + i64::from(r.offset_delta);
                    match r.id {
                        Id::Found(id) if offset >= from => Some(LoggedId {
                            partition: partition.index,
                            offset,
                            id,
                        }),
                        _ => None,
                    }
                })),
                Err(e) => tracing::warn!(
                    partition = partition.index,
                    offset = header.base_offset,
                    error = %e,
                    "a stored batch's message ids cannot be read; its records are not in the dedup window"
                ),
            }
        }
        if read.next_offset <= at {
            break;
        }
        at = read.next_offset;
    }
    Ok(())
}
