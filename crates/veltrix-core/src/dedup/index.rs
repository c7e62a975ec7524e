//! One topic's window of message ids: which ids were stored recently, and
//! which are being stored right now.
//!
//! An id goes through two states. [`DedupIndex::reserve`] makes it *pending*:
//! a produce owns it while its batch is appended and fsynced. Once the batch is
//! durable, [`DedupIndex::commit`] makes it *committed* for `window_ms` from
//! then; if the append failed, [`DedupIndex::abort`] forgets it. A second
//! produce of a pending id gets [`Reservation::InFlight`] and must wait for the
//! first one's outcome before deciding: dropping it at once would lose the
//! record if the original's append then failed (the producer of the duplicate
//! was answered "stored", the original's producer retries or gives up). So a
//! duplicate is only dropped once its original is durable.
//!
//! The window is half-open: an id committed at `t` is a duplicate until
//! `t + window_ms - 1` and forgotten from `t + window_ms` on. Expired ids are
//! dropped oldest first from a queue in commit order (amortised O(1) per id),
//! by [`DedupIndex::expire`] and at the start of every reservation, so a
//! lookup never sees an expired id.
//!
//! The clock is the caller's, and may step back: the index keeps the latest
//! time it was given and takes no earlier one, so a clock step never expires
//! an id early (an id committed meanwhile is remembered a little longer) and
//! the commit-ordered queue stays ordered by time.
//!
//! Bounded: at most `ids_max` ids, pending and committed. A new id that finds
//! the index full evicts the oldest committed id before its time: the window
//! effectively shrinks, which [`DedupStats`] reports (`evicted_early`,
//! `effective_window_ms`) for a metric and a log line. Refusing produces
//! instead would stop a topic because its producers are busy; remembering
//! fewer ids only weakens a best-effort guarantee the operator can size. If
//! every id is pending, nothing can be evicted and the reservation fails with
//! [`DedupError::Full`].
//!
//! Ids are bytes, compared byte for byte: a header value need not be UTF-8,
//! and two spellings of the same text (say, Unicode normalisations) are two
//! ids. An empty id or one longer than `id_bytes_max` is refused.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use super::store::{Snapshot, SnapshotEntry};

/// The longest id any topic may accept.
pub const DEDUP_ID_BYTES_MAX: usize = 1024;
/// The longest id a topic accepts unless configured otherwise: a UUID in any
/// spelling, or a hash, with room to spare.
pub const DEDUP_ID_BYTES_MAX_DEFAULT: usize = 256;
/// Ids remembered per topic unless configured otherwise: about 160 MiB for
/// 36-byte ids (see [`DEDUP_ENTRY_OVERHEAD_BYTES`]).
pub const DEDUP_IDS_MAX_DEFAULT: usize = 1_000_000;
/// The most ids a topic may be configured to remember.
pub const DEDUP_IDS_MAX: usize = 100_000_000;
/// The longest window: a year. Longer is surely a mistake in units.
pub const DEDUP_WINDOW_MS_MAX: u64 = 365 * 24 * 3600 * 1000;
/// What one id costs beside its bytes: the map's key and entry, the shared
/// allocation's counts, the time queue's slot and the hash table's slack.
/// An estimate, used for the broker's memory budget.
pub const DEDUP_ENTRY_OVERHEAD_BYTES: usize = 128;

/// A topic's duplicate window settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupConfig {
    /// How long a committed id is remembered, from its commit.
    pub window_ms: u64,
    /// The most ids held at once, pending and committed.
    pub ids_max: usize,
    /// The longest id accepted.
    pub id_bytes_max: usize,
}

impl DedupConfig {
    /// A window of `window_ms` with the default limits.
    pub fn new(window_ms: u64) -> DedupConfig {
        DedupConfig {
            window_ms,
            ids_max: DEDUP_IDS_MAX_DEFAULT,
            id_bytes_max: DEDUP_ID_BYTES_MAX_DEFAULT,
        }
    }

    pub fn validate(&self) -> Result<(), DedupError> {
        let bad = |what: String| Err(DedupError::InvalidConfig(what));
        if !(1..=DEDUP_WINDOW_MS_MAX).contains(&self.window_ms) {
            return bad(format!(
                "window_ms must be 1..={DEDUP_WINDOW_MS_MAX}, not {}",
                self.window_ms
            ));
        }
        if !(1..=DEDUP_IDS_MAX).contains(&self.ids_max) {
            return bad(format!("ids_max must be 1..={DEDUP_IDS_MAX}, not {}", self.ids_max));
        }
        if !(1..=DEDUP_ID_BYTES_MAX).contains(&self.id_bytes_max) {
            return bad(format!(
                "id_bytes_max must be 1..={DEDUP_ID_BYTES_MAX}, not {}",
                self.id_bytes_max
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DedupError {
    #[error("invalid message id: {0}")]
    InvalidId(String),
    /// Every id held is pending: nothing can be evicted to make room.
    #[error("the duplicate window is full: its {ids_max} ids are all being stored; retry later")]
    Full { ids_max: usize },
    /// The windows of all topics hold their shared memory limit and this one
    /// has no stored id to forget.
    #[error(
        "the duplicate windows hold their memory limit of {bytes_max} bytes ([dedup] memory_bytes_max) and this \
         topic's has no stored id to forget; retry later"
    )]
    MemoryFull { bytes_max: usize },
    #[error("invalid duplicate window config: {0}")]
    InvalidConfig(String),
    /// The ticket was committed or aborted already, or is another index's.
    #[error("no pending reservation matches this ticket")]
    UnknownTicket,
}

/// Memory the windows of every topic may hold together, shared by their
/// indexes: each reports what it holds, and one that would go over the limit
/// forgets its own oldest ids first, as it does at `ids_max`.
#[derive(Debug)]
pub struct DedupMemory {
    used: AtomicUsize,
    bytes_max: usize,
}

impl DedupMemory {
    pub fn new(bytes_max: usize) -> Arc<DedupMemory> {
        Arc::new(DedupMemory {
            used: AtomicUsize::new(0),
            bytes_max,
        })
    }

    /// Bytes the windows hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }
}

/// Where the record that first carried an id was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    pub partition: i32,
    pub offset: i64,
}

/// How a pending reservation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Durable: the id is a duplicate from now on.
    Committed(Original),
    /// Not stored (or its index is gone): reserve the id again.
    Aborted,
}

#[derive(Debug)]
pub enum Reservation {
    /// Stored within the window: drop the record.
    Duplicate(Original),
    /// Being stored by another produce: wait for its outcome, then reserve again.
    InFlight(Waiter),
    /// Store the record, then [`DedupIndex::commit`] or [`DedupIndex::abort`].
    New(Ticket),
}

/// A pending id, owned by the produce storing it. Every ticket must end in
/// [`DedupIndex::commit`] or [`DedupIndex::abort`]; one forgotten keeps its id
/// pending (and its waiters waiting) until the index is rebuilt.
#[must_use = "a ticket must be committed or aborted"]
#[derive(Debug)]
pub struct Ticket {
    id: Arc<[u8]>,
    seq: u64,
}

impl Ticket {
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// A second ticket for the same reservation, as a caller's bug would make.
    #[cfg(test)]
    pub(super) fn forged(ticket: &Ticket) -> Ticket {
        Ticket {
            id: ticket.id.clone(),
            seq: ticket.seq,
        }
    }
}

/// Waits for a pending id's outcome without holding a thread or the index.
#[derive(Debug)]
pub struct Waiter(watch::Receiver<Option<Outcome>>);

impl Waiter {
    pub async fn outcome(mut self) -> Outcome {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.unwrap_or(Outcome::Aborted),
            // The index was dropped with the id pending: nothing says it is durable.
            Err(_) => Outcome::Aborted,
        }
    }

    /// The outcome if it is known, without waiting.
    pub fn try_outcome(&self) -> Option<Outcome> {
        *self.0.borrow()
    }
}

/// A point in the order of reservations, for [`DedupIndex::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(u64);

/// An id read from a durable record of a partition's log, for
/// [`DedupIndex::restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedId {
    pub partition: i32,
    pub offset: i64,
    pub id: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DedupStats {
    /// Ids held, pending and committed.
    pub ids: usize,
    pub pending: usize,
    /// Committed ids evicted before their window ended, to make room.
    pub evicted_early: u64,
    /// Reservations answered [`Reservation::Duplicate`].
    pub duplicates_dropped: u64,
    /// How far back ids are certainly remembered: `window_ms`, or less while
    /// an id evicted early would still be in the window.
    pub effective_window_ms: u64,
    /// Estimated memory held: ids' bytes and [`DEDUP_ENTRY_OVERHEAD_BYTES`] each.
    pub memory_bytes: usize,
}

/// An id being stored: its reservation's number and, once a second produce
/// waits for it, the channel that tells the outcome (most ids never have one).
#[derive(Debug)]
struct Pending {
    seq: u64,
    outcome: Option<watch::Sender<Option<Outcome>>>,
}

/// One topic's window of ids. See the module documentation.
#[derive(Debug)]
pub struct DedupIndex {
    config: DedupConfig,
    /// Committed ids. Keyed by client-chosen bytes: a hasher seeded at random
    /// per process. Large (up to `ids_max`), so each lookup is a cache miss
    /// or two; an id touches it twice, when reserved and when committed.
    ids: HashMap<Arc<[u8]>, Original, foldhash::quality::RandomState>,
    /// Pending ids, apart: few (those being fsynced), so a commit finds its
    /// reservation in a table that stays in the cache.
    pending_ids: HashMap<Arc<[u8]>, Pending, foldhash::quality::RandomState>,
    /// Committed ids, oldest first, with their commit time: exactly the
    /// committed entries of `ids`, sorted by time because `now_ms` never
    /// goes back.
    by_time: VecDeque<(i64, Arc<[u8]>)>,
    next_seq: u64,
    /// The latest time given: a clock stepping back is not followed.
    now_ms: i64,
    /// The ids' lengths summed, for `memory_bytes`.
    id_bytes: usize,
    evicted_early: u64,
    duplicates_dropped: u64,
    /// The newest commit time among ids evicted early.
    evicted_newest_ms: Option<i64>,
    /// The limit shared with other topics' windows, and what this one last
    /// reported to it.
    memory: Option<Arc<DedupMemory>>,
    reported_bytes: usize,
}

impl DedupIndex {
    pub fn new(config: DedupConfig) -> Result<DedupIndex, DedupError> {
        config.validate()?;
        Ok(DedupIndex {
            config,
            ids: HashMap::default(),
            pending_ids: HashMap::default(),
            by_time: VecDeque::new(),
            next_seq: 0,
            now_ms: i64::MIN,
            id_bytes: 0,
            evicted_early: 0,
            duplicates_dropped: 0,
            evicted_newest_ms: None,
            memory: None,
            reported_bytes: 0,
        })
    }

    pub fn config(&self) -> &DedupConfig {
        &self.config
    }

    /// Whether `id` is acceptable: not empty, at most `id_bytes_max` bytes.
    pub fn check_id(&self, id: &[u8]) -> Result<(), DedupError> {
        if id.is_empty() {
            return Err(DedupError::InvalidId("empty".into()));
        }
        if id.len() > self.config.id_bytes_max {
            return Err(DedupError::InvalidId(format!(
                "{} bytes, longer than the limit of {} (id_bytes_max)",
                id.len(),
                self.config.id_bytes_max
            )));
        }
        Ok(())
    }

    /// Looks `id` up and, if it is neither stored within the window nor being
    /// stored, makes it pending for the caller.
    pub fn reserve(&mut self, id: &[u8], now_ms: i64) -> Result<Reservation, DedupError> {
        self.check_id(id)?;
        self.expire(now_ms);
        if let Some(original) = self.ids.get(id) {
            let original = *original;
            self.duplicates_dropped += 1;
            return Ok(Reservation::Duplicate(original));
        }
        if let Some(p) = self.pending_ids.get_mut(id) {
            let tell = p.outcome.get_or_insert_with(|| watch::channel(None).0);
            return Ok(Reservation::InFlight(Waiter(tell.subscribe())));
        }
        self.make_room(id.len() + DEDUP_ENTRY_OVERHEAD_BYTES)?;
        let id: Arc<[u8]> = id.into();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending_ids.insert(id.clone(), Pending { seq, outcome: None });
        self.id_bytes += id.len();
        self.report();
        Ok(Reservation::New(Ticket { id, seq }))
    }

    /// Shares the memory limit `memory` with other indexes: reports what this
    /// one holds, and forgets its oldest ids while the windows hold more than
    /// the limit.
    pub fn set_memory(&mut self, memory: Arc<DedupMemory>) {
        self.memory = Some(memory);
        self.report();
        while self.over_memory(0) && self.evict_oldest() {}
    }

    /// Evicts the oldest committed id while the index is full, or the
    /// windows would hold more than their memory limit with `bytes` more.
    fn make_room(&mut self, bytes: usize) -> Result<(), DedupError> {
        while self.held() >= self.config.ids_max {
            if !self.evict_oldest() {
                return Err(DedupError::Full {
                    ids_max: self.config.ids_max,
                });
            }
        }
        while self.over_memory(bytes) {
            if !self.evict_oldest() {
                let bytes_max = self.memory.as_ref().map_or(0, |m| m.bytes_max);
                return Err(DedupError::MemoryFull { bytes_max });
            }
        }
        Ok(())
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((time, _)) = self.pop_oldest() else {
            return false;
        };
        self.evicted_early += 1;
        self.evicted_newest_ms = Some(self.evicted_newest_ms.map_or(time, |t| t.max(time)));
        self.report();
        true
    }

    fn over_memory(&self, bytes: usize) -> bool {
        self.memory
            .as_ref()
            .is_some_and(|m| m.used().saturating_add(bytes) > m.bytes_max)
    }

    /// Tells the shared limit what this index holds now.
    fn report(&mut self) {
        let Some(memory) = &self.memory else { return };
        let now = self.memory_bytes();
        if now >= self.reported_bytes {
            memory.used.fetch_add(now - self.reported_bytes, Ordering::Relaxed);
        } else {
            memory.used.fetch_sub(self.reported_bytes - now, Ordering::Relaxed);
        }
        self.reported_bytes = now;
    }

    /// The ticket's record is durable at `offset` of `partition`: its id is a
    /// duplicate for `window_ms` from `now_ms`.
    pub fn commit(&mut self, ticket: Ticket, partition: i32, offset: i64, now_ms: i64) -> Result<(), DedupError> {
        let now = self.advance(now_ms);
        let original = Original { partition, offset };
        self.settle(&ticket, Outcome::Committed(original))?;
        self.ids.insert(ticket.id.clone(), original);
        self.by_time.push_back((now, ticket.id));
        Ok(())
    }

    /// The ticket's record was not stored: its id is free again.
    pub fn abort(&mut self, ticket: Ticket) -> Result<(), DedupError> {
        self.settle(&ticket, Outcome::Aborted)?;
        self.id_bytes -= ticket.id.len();
        self.report();
        Ok(())
    }

    /// Ends the ticket's pending state and tells its waiters.
    fn settle(&mut self, ticket: &Ticket, outcome: Outcome) -> Result<(), DedupError> {
        match self.pending_ids.get(&*ticket.id) {
            Some(p) if p.seq == ticket.seq => {}
            _ => return Err(DedupError::UnknownTicket),
        }
        let p = self.pending_ids.remove(&*ticket.id).expect("found above");
        if let Some(tell) = p.outcome {
            tell.send_replace(Some(outcome));
        }
        Ok(())
    }

    /// Ids held, pending and committed.
    fn held(&self) -> usize {
        self.ids.len() + self.pending_ids.len()
    }

    /// Forgets the committed ids whose window has ended at `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        let now = self.advance(now_ms);
        while let Some(&(time, _)) = self.by_time.front() {
            if self.live(time, now) {
                break;
            }
            self.pop_oldest();
        }
        self.report();
    }

    fn live(&self, committed_ms: i64, now_ms: i64) -> bool {
        // `now_ms` never precedes a commit time (it only moves forward); were
        // it to, the id would count as just committed, not as expired.
        (now_ms.saturating_sub(committed_ms).max(0) as u64) < self.config.window_ms
    }

    fn advance(&mut self, now_ms: i64) -> i64 {
        self.now_ms = self.now_ms.max(now_ms);
        self.now_ms
    }

    fn pop_oldest(&mut self) -> Option<(i64, Arc<[u8]>)> {
        let (time, id) = self.by_time.pop_front()?;
        let removed = self.ids.remove(&*id);
        assert!(removed.is_some(), "the time queue holds exactly the committed ids");
        self.id_bytes -= id.len();
        Some((time, id))
    }

    pub fn stats(&self, now_ms: i64) -> DedupStats {
        let now = self.now_ms.max(now_ms);
        let window = self.config.window_ms;
        let effective_window_ms = match self.evicted_newest_ms {
            Some(t) if self.live(t, now) => now.saturating_sub(t).max(0) as u64,
            _ => window,
        };
        DedupStats {
            ids: self.held(),
            pending: self.pending_ids.len(),
            evicted_early: self.evicted_early,
            duplicates_dropped: self.duplicates_dropped,
            effective_window_ms,
            memory_bytes: self.memory_bytes(),
        }
    }

    /// Estimated memory held, for the broker's memory budget.
    pub fn memory_bytes(&self) -> usize {
        self.id_bytes + self.held() * DEDUP_ENTRY_OVERHEAD_BYTES
    }

    /// Starts a snapshot. Read each partition's log end offset first, then
    /// take the mark: every record below those offsets was reserved before
    /// the mark, so once those reservations have ended every id below the
    /// offsets is in the index (or was never stored).
    pub fn mark(&self) -> Mark {
        Mark(self.next_seq)
    }

    /// The committed ids, and `log_ends` (read before `mark`) as the offsets up
    /// to which they cover the log; `None` while a reservation made before
    /// `mark` is pending (try again after its fsync round).
    pub fn snapshot(&mut self, mark: Mark, log_ends: &[(i32, i64)], now_ms: i64) -> Option<Snapshot> {
        self.expire(now_ms);
        // Few ids are pending (those being fsynced): a scan is cheap, and
        // saves every reservation an ordered set's insert and remove.
        if self.pending_ids.values().any(|p| p.seq < mark.0) {
            return None;
        }
        let entries = self.by_time.iter().map(|(time, id)| {
            let Some(original) = self.ids.get(id) else {
                unreachable!("the time queue holds exactly the committed ids");
            };
            SnapshotEntry {
                id: id.to_vec(),
                committed_ms: *time,
                partition: original.partition,
                offset: original.offset,
            }
        });
        Some(Snapshot {
            taken_ms: self.now_ms,
            covered: log_ends.to_vec(),
            entries: entries.collect(),
        })
    }

    /// Rebuilds an index after a restart from the newest snapshot (if any) and
    /// the ids of the durable records after it: those at or past the
    /// snapshot's covered offset of their partition, or, without a snapshot,
    /// each partition's last `ids_max` records. Their commit time is not
    /// known, so they take the recovery time `now_ms`: remembered a little
    /// longer than their window, never shorter, unless the clock stepped back
    /// across the restart: the latest time the index had seen is lost with it
    /// beyond the snapshot's, so ids committed after the snapshot may be
    /// forgotten up to the step early. Ids no longer acceptable are
    /// skipped; if more than `ids_max` remain, the oldest are evicted early.
    pub fn restore(
        config: DedupConfig,
        snapshot: Option<Snapshot>,
        logged: impl IntoIterator<Item = LoggedId>,
        now_ms: i64,
    ) -> Result<DedupIndex, DedupError> {
        let mut index = DedupIndex::new(config)?;
        let snapshot = snapshot.unwrap_or(Snapshot {
            taken_ms: i64::MIN,
            ..Snapshot::default()
        });
        let newest = snapshot.entries.iter().map(|e| e.committed_ms).max();
        let now = index.advance(now_ms.max(snapshot.taken_ms).max(newest.unwrap_or(i64::MIN)));
        let covered: HashMap<i32, i64> = snapshot.covered.iter().copied().collect();
        let mut latest: HashMap<Vec<u8>, (i64, Original)> = HashMap::new();
        for e in snapshot.entries {
            let original = Original {
                partition: e.partition,
                offset: e.offset,
            };
            latest.insert(e.id, (e.committed_ms, original));
        }
        for l in logged {
            if l.offset >= covered.get(&l.partition).copied().unwrap_or(i64::MIN) {
                let original = Original {
                    partition: l.partition,
                    offset: l.offset,
                };
                latest.insert(l.id, (now, original));
            }
        }
        let mut entries: Vec<_> = latest
            .into_iter()
            .filter(|(id, (time, _))| index.check_id(id).is_ok() && index.live(*time, now))
            .collect();
        entries.sort_by(|a, b| (a.1.0, &a.0).cmp(&(b.1.0, &b.0)));
        for (id, (time, original)) in entries {
            index.insert_restored(id, time, original);
        }
        Ok(index)
    }

    /// Appends a committed id, newest so far, evicting the oldest if full.
    fn insert_restored(&mut self, id: Vec<u8>, time: i64, original: Original) {
        // No memory limit is set yet (see `set_memory`).
        self.make_room(0).expect("a restored index holds no pending ids");
        let id: Arc<[u8]> = id.into();
        self.id_bytes += id.len();
        self.ids.insert(id.clone(), original);
        self.by_time.push_back((time, id));
    }
}

impl Drop for DedupIndex {
    /// A window that goes (its topic deleted, or its settings changed) gives
    /// its memory back to the shared limit.
    fn drop(&mut self) {
        if let Some(memory) = &self.memory {
            memory.used.fetch_sub(self.reported_bytes, Ordering::Relaxed);
        }
    }
}
