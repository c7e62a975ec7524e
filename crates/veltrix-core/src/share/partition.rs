//! One share-partition: which records of one topic partition a share group has
//! handed out, to whom, how often, and which are done.
//!
//! Offsets below the share-partition start offset (SPSO) are done. From it to
//! the end offset (SPEO, exclusive) every offset has a slot: available,
//! acquired (locked by one member until a deadline), acknowledged or archived.
//! Offsets at and past the SPEO have never been handed out. The window between
//! the two is bounded (`record_locks_max`), so a member that never acknowledges
//! can pin at most that many records, and memory is bounded per partition.
//!
//! Plain data, driven by its caller with the time as a parameter. Every change
//! that must survive a crash is reported as [`Persist`] ranges, which the caller
//! writes to the share-state store before answering the client.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ShareError;

/// A record's state, as KIP-932 names them, and KIP-1191's `Archiving`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
    /// Done with, but its dead letter is not written yet: the start offset
    /// does not pass it until it is (a group with a dead-letter topic).
    Archiving(DeadLetterReason),
}

impl RecordState {
    /// Never delivered again.
    fn is_final(self) -> bool {
        matches!(
            self,
            RecordState::Acknowledged | RecordState::Archived | RecordState::Archiving(_)
        )
    }
}

/// Why a record was archived: what its dead letter says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeadLetterReason {
    /// A member rejected it.
    Rejected,
    /// Released, or found available again, at the delivery limit.
    DeliveryLimit,
    /// Its lock ran out on its last delivery.
    LockTimeout,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 3] = [
        DeadLetterReason::Rejected,
        DeadLetterReason::DeliveryLimit,
        DeadLetterReason::LockTimeout,
    ];

    /// Its place in [`Outcomes::dead_letters_by_reason`].
    pub fn index(self) -> usize {
        match self {
            DeadLetterReason::Rejected => 0,
            DeadLetterReason::DeliveryLimit => 1,
            DeadLetterReason::LockTimeout => 2,
        }
    }

    /// As the dead letter's `veltrix.dlq.reason` header says it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::DeliveryLimit => "delivery_limit",
            DeadLetterReason::LockTimeout => "lock_timeout",
        }
    }
}

/// What a member says of a record it holds (the wire's acknowledge types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// The offset holds no record (a gap in the log): done.
    Gap,
    /// Processed: never delivered again.
    Accept,
    /// Not processed: delivered again (or archived at the delivery limit).
    Release,
    /// Unprocessable: archived, never delivered again.
    Reject,
}

impl AckType {
    /// From the wire's code (0 gap, 1 accept, 2 release, 3 reject).
    pub fn from_code(code: i8) -> Option<AckType> {
        match code {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

/// The widest window replaying the store may build: the largest
/// `share.partition.max.record.locks`, twice.
/// The largest offset stored share state may name: far past any log, and
/// far enough from `i64::MAX` that a window's arithmetic never overflows.
pub(crate) const STORED_OFFSET_MAX: i64 = i64::MAX / 2;
const RESTORED_WINDOW_MAX: i64 = 2 * super::settings::PARTITION_MAX_RECORD_LOCKS_RANGE.1;

/// The slot of one offset in the window.
#[derive(Debug, Clone)]
struct Slot {
    state: RecordState,
    /// Times the record was handed out.
    deliveries: u16,
    /// The member holding it, while acquired.
    owner: Option<Arc<str>>,
    /// When an acquired record's lock runs out (ms).
    deadline_ms: i64,
    /// An available record is not handed out again before this (ms): its
    /// backoff after a release or a lock timeout.
    ready_ms: i64,
    /// When the record was first and last handed out since this process
    /// started (0: not since then), for its dead letter.
    first_delivery_ms: i64,
    last_delivery_ms: i64,
    /// What the record's headers and key say, once read ([`SharePartition::learn`]);
    /// only groups with delays, priorities or per-key order read them.
    learned: bool,
    /// `veltrix.priority`, 0 to 9.
    priority: u8,
    /// A hash of the record's key, 0 for none.
    key: u64,
}

/// What a record says of how it is to be handed out, read from its headers
/// and key (groups with delays, priorities or per-key order only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordTraits {
    /// Not handed out before this (ms), 0 for at once.
    pub not_before_ms: i64,
    pub priority: u8,
    /// A hash of the key, 0 for none.
    pub key: u64,
}

impl Slot {
    fn fresh() -> Slot {
        Slot {
            state: RecordState::Available,
            deliveries: 0,
            owner: None,
            deadline_ms: 0,
            ready_ms: 0,
            first_delivery_ms: 0,
            last_delivery_ms: 0,
            learned: false,
            priority: 0,
            key: 0,
        }
    }

    /// Hands the record to `owner` until `deadline_ms`.
    fn hand_to(&mut self, owner: &Arc<str>, now_ms: i64, deadline_ms: i64) {
        self.state = RecordState::Acquired;
        self.deliveries = self.deliveries.saturating_add(1);
        self.owner = Some(owner.clone());
        self.deadline_ms = deadline_ms;
        if self.first_delivery_ms == 0 {
            self.first_delivery_ms = now_ms;
        }
        self.last_delivery_ms = now_ms;
    }

    fn acquirable(&self, now_ms: i64) -> bool {
        self.state == RecordState::Available && self.ready_ms <= now_ms
    }
}

/// Consecutive offsets acquired in one go, with their delivery count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub deliveries: u16,
}

/// A range of offsets whose durable state changed: the store records
/// `state` and `deliveries` for every offset from `first` to `last`.
/// Acquired records are stored as such; on recovery they are available again,
/// their delivery count kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persist {
    pub first: i64,
    pub last: i64,
    pub state: RecordState,
    pub deliveries: u16,
}

/// An archived record waiting for its dead letter, with what the letter
/// tells of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeadLetter {
    pub offset: i64,
    pub reason: DeadLetterReason,
    pub deliveries: u16,
    /// 0 when not known (handed out before the broker last started).
    pub first_delivery_ms: i64,
    pub last_delivery_ms: i64,
    /// The last member that held it, when known.
    pub last_owner: Option<Arc<str>>,
}

/// What happened to records, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub acquired: u64,
    pub accepted: u64,
    pub released: u64,
    pub rejected: u64,
    /// Archived on reaching the delivery limit.
    pub archived: u64,
    pub lock_timeouts: u64,
    /// Records made to wait out a backoff before their next delivery.
    pub backoffs: u64,
    /// Dead letters written (or found written) for archived records.
    pub dead_letters: u64,
    /// The same by reason: rejected, delivery limit, lock timeout.
    pub dead_letters_by_reason: [u64; 3],
    /// Delay or priority headers that did not parse (the records were
    /// delivered as if they had none).
    pub bad_headers: u64,
}

impl Outcomes {
    pub fn add(&mut self, o: &Outcomes) {
        self.acquired += o.acquired;
        self.accepted += o.accepted;
        self.released += o.released;
        self.rejected += o.rejected;
        self.archived += o.archived;
        self.lock_timeouts += o.lock_timeouts;
        self.backoffs += o.backoffs;
        self.dead_letters += o.dead_letters;
        for (a, b) in self.dead_letters_by_reason.iter_mut().zip(o.dead_letters_by_reason) {
            *a += b;
        }
        self.bad_headers += o.bad_headers;
    }
}

/// Per-acquisition settings of the group.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long an acquired record stays locked to its member.
    pub lock_ms: i64,
    /// Deliveries after which a record is archived instead of handed out again.
    pub delivery_count_limit: u16,
    /// Largest window between SPSO and SPEO.
    pub record_locks_max: usize,
    /// How long a record released or timed out waits before it is handed
    /// out again.
    pub backoff: Backoff,
    /// Whether archived records get a dead letter (the group names a
    /// dead-letter topic): they stay `Archiving` until it is written.
    pub dead_letters: bool,
    /// How records are picked beyond offset order.
    pub order: Order,
}

/// A group's rules for picking records beyond offset order. With any of
/// them on, records are read (headers, key) as they enter the window, and
/// picked by [`SharePartition::acquire_ordered`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Order {
    /// `veltrix.deliver.at` / `veltrix.delay.ms` are honoured, each delay at
    /// most `delay_ms_max`.
    pub delays: bool,
    pub delay_ms_max: i64,
    /// Among the records in the window, higher `veltrix.priority` first.
    pub priority: bool,
    /// A record is not handed out while an earlier one with its key is in
    /// flight or waiting.
    pub key_order: bool,
}

impl Order {
    pub fn any(&self) -> bool {
        self.delays || self.priority || self.key_order
    }
}

impl Limits {
    /// The state of a record archived for `reason`.
    fn archived(&self, reason: DeadLetterReason) -> RecordState {
        if self.dead_letters {
            RecordState::Archiving(reason)
        } else {
            RecordState::Archived
        }
    }
}

/// The wait before a record's next delivery: `initial_ms ×
/// multiplier^(deliveries - 1)`, at most `max_ms`, less up to a tenth
/// (jitter, so that records released together come back spread out). The
/// jitter is a hash of the offset and the delivery count rather than a
/// random draw: the same in every run, and nothing to inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    /// 0: no backoff.
    pub initial_ms: i64,
    pub max_ms: i64,
    pub multiplier: u32,
}

impl Backoff {
    /// The wait after the `deliveries`-th delivery of the record at `offset`.
    pub fn delay_ms(&self, deliveries: u16, offset: i64) -> i64 {
        if self.initial_ms <= 0 {
            return 0;
        }
        let mut delay = self.initial_ms;
        for _ in 1..deliveries {
            delay = delay.saturating_mul(i64::from(self.multiplier.max(1)));
            if delay >= self.max_ms {
                break;
            }
        }
        let delay = delay.min(self.max_ms.max(self.initial_ms));
        let tenth = delay / 10;
        if tenth == 0 {
            return delay;
        }
        let spread = mix(offset as u64 ^ (u64::from(deliveries) << 56)) % (tenth as u64 + 1);
        delay - spread as i64
    }
}

/// SplitMix64's finaliser: a well-spread hash of one number.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Debug, Clone, Default)]
pub struct SharePartition {
    /// SPSO.
    start: i64,
    /// Slots of `start..start + slots.len()`.
    slots: VecDeque<Slot>,
    /// Acquired slots (for in-flight counts).
    acquired: usize,
    /// The earliest end of a running backoff (`i64::MAX`: none, or not
    /// known to be running).
    next_ready_ms: i64,
    pub outcomes: Outcomes,
}

/// Keys seen while walking a window: already hashed, so hashed again
/// cheaply.
type KeySet = std::collections::HashSet<u64, foldhash::fast::FixedState>;

/// A state summary for describe and lag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub start: i64,
    pub end: i64,
    pub acquired: usize,
    /// Acknowledged or archived records inside the window.
    pub done_in_window: usize,
    /// Records in the window by delivery count: 1, 2, 3, 4, 5 and more.
    pub deliveries: [u64; 5],
    /// Available records waiting out their backoff.
    pub backing_off: usize,
    /// Archived records whose dead letter is not written yet.
    pub dead_letters_pending: usize,
}

impl SharePartition {
    /// A share-partition that starts handing out records at `start`.
    pub fn new(start: i64) -> SharePartition {
        SharePartition {
            start,
            next_ready_ms: i64::MAX,
            ..SharePartition::default()
        }
    }

    /// SPSO.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// SPEO: the first offset never handed out.
    pub fn end(&self) -> i64 {
        self.start + self.slots.len() as i64
    }

    pub fn acquired(&self) -> usize {
        self.acquired
    }

    fn slot(&self, offset: i64) -> Option<&Slot> {
        usize::try_from(offset - self.start)
            .ok()
            .and_then(|i| self.slots.get(i))
    }

    /// Replays one stored range. Offsets before the start are done already;
    /// acquired records come back available (their locks died with the
    /// process that held them).
    pub fn restore(&mut self, p: &Persist) {
        let first = p.first.max(self.start);
        if p.last < first {
            return;
        }
        if p.last - self.start >= RESTORED_WINDOW_MAX {
            tracing::warn!(
                start = self.start,
                last = p.last,
                "ignoring a stored share-state range far past the window"
            );
            return;
        }
        while self.end() <= p.last {
            self.slots.push_back(Slot::fresh());
        }
        let state = match p.state {
            RecordState::Acquired => RecordState::Available,
            s => s,
        };
        for o in first..=p.last {
            let i = (o - self.start) as usize;
            self.slots[i] = Slot {
                state,
                deliveries: p.deliveries,
                ..Slot::fresh()
            };
        }
        self.advance();
    }

    /// Moves the start to `start`: forwards (the log start moved past it),
    /// everything before it is done; backwards (an offset reset), everything
    /// from it on is handed out afresh.
    pub fn move_start(&mut self, start: i64) {
        if start >= self.end() || start < self.start {
            self.acquired = 0;
            self.slots.clear();
            self.start = start;
            return;
        }
        while self.start < start {
            if let Some(s) = self.slots.pop_front()
                && s.state == RecordState::Acquired
            {
                self.acquired -= 1;
            }
            self.start += 1;
        }
    }

    /// Hands records to `owner`: first those available again in the window
    /// below `redeliver_end` (lowest offsets first), then new ones from the
    /// SPEO up to `fresh_end` (exclusive), at most `records_max` in all.
    pub fn acquire(
        &mut self,
        owner: &Arc<str>,
        now_ms: i64,
        limits: &Limits,
        records_max: usize,
        fresh_end: i64,
        persist: &mut Vec<Persist>,
    ) -> Vec<Acquired> {
        let mut out = self.acquire_available(owner, now_ms, limits, records_max, i64::MAX, true, persist);
        if out.iter().any(|a| a.deliveries > 1) {
            // A redelivery's run is not topped up with new records.
            return out;
        }
        let taken: i64 = out.iter().map(|a| a.last - a.first + 1).sum();
        let left = records_max.saturating_sub(taken as usize) as i64;
        let end = fresh_end.min(self.end().saturating_add(left));
        out.extend(self.acquire_fresh(owner, now_ms, limits, end, persist));
        out
    }

    /// Hands `owner` records available again in the window below
    /// `redeliver_end`, lowest offsets first, at most `records_max`. Those
    /// that have reached the delivery limit are archived instead.
    ///
    /// Records delivered before come in smaller runs the more often they were
    /// delivered ([`redelivery_run_max`]), and a record's last delivery alone:
    /// a record that crashes its consumer every time then takes only itself
    /// to the delivery limit, not the records acquired beside it. With
    /// `last_ok` false a record's last delivery is not made at all (the
    /// records behind it wait too): the response already holds other
    /// records, and a last delivery goes alone in its response.
    #[allow(clippy::too_many_arguments)]
    pub fn acquire_available(
        &mut self,
        owner: &Arc<str>,
        now_ms: i64,
        limits: &Limits,
        records_max: usize,
        redeliver_end: i64,
        last_ok: bool,
        persist: &mut Vec<Persist>,
    ) -> Vec<Acquired> {
        let mut out: Vec<Acquired> = Vec::new();
        let mut run_max = records_max;
        let mut taken = 0usize;
        let deadline_ms = now_ms.saturating_add(limits.lock_ms);
        let mut archived_any = false;
        for i in 0..self.slots.len() {
            let offset = self.start + i as i64;
            if taken >= run_max || offset >= redeliver_end {
                break;
            }
            let slot = &mut self.slots[i];
            if !slot.acquirable(now_ms) {
                // Acquired, done, or waiting out its backoff: the records
                // behind it do not wait for it.
                continue;
            }
            if slot.deliveries >= limits.delivery_count_limit {
                self.archive_at_limit(i, limits, persist);
                archived_any = true;
                continue;
            }
            if !last_ok && is_last_delivery(slot.deliveries, limits.delivery_count_limit) {
                break;
            }
            run_max = run_max.min(redelivery_run_max(
                records_max,
                slot.deliveries,
                limits.delivery_count_limit,
            ));
            if taken >= run_max {
                break;
            }
            slot.hand_to(owner, now_ms, deadline_ms);
            self.acquired += 1;
            taken += 1;
            push_acquired(&mut out, offset, slot.deliveries);
            push_persist(persist, offset, RecordState::Acquired, slot.deliveries);
        }
        self.outcomes.acquired += taken as u64;
        if archived_any {
            self.advance();
        }
        out
    }

    /// Hands `owner` records never handed out, from the SPEO up to `fresh_end`
    /// (exclusive), as far as the window allows.
    pub fn acquire_fresh(
        &mut self,
        owner: &Arc<str>,
        now_ms: i64,
        limits: &Limits,
        fresh_end: i64,
        persist: &mut Vec<Persist>,
    ) -> Vec<Acquired> {
        let room = limits.record_locks_max.saturating_sub(self.slots.len());
        let fresh = usize::try_from(fresh_end.saturating_sub(self.end()))
            .unwrap_or(0)
            .min(room);
        if fresh == 0 {
            return Vec::new();
        }
        let first = self.end();
        let last = first + fresh as i64 - 1;
        let deadline_ms = now_ms.saturating_add(limits.lock_ms);
        for _ in 0..fresh {
            let mut slot = Slot::fresh();
            slot.hand_to(owner, now_ms, deadline_ms);
            self.slots.push_back(slot);
        }
        self.acquired += fresh;
        self.outcomes.acquired += fresh as u64;
        push_persist(persist, first, RecordState::Acquired, 1);
        if let Some(p) = persist.last_mut() {
            p.last = p.last.max(last);
        }
        vec![Acquired {
            first,
            last,
            deliveries: 1,
        }]
    }

    /// The room left in the window for records never handed out.
    pub fn fresh_room(&self, limits: &Limits) -> usize {
        limits.record_locks_max.saturating_sub(self.slots.len())
    }

    /// The first offset in the window that can be handed out at `now_ms`
    /// (available, its backoff over), if any.
    pub fn first_available(&self, now_ms: i64) -> Option<i64> {
        self.slots
            .iter()
            .position(|s| s.acquirable(now_ms))
            .map(|i| self.start + i as i64)
    }

    /// Whether a call to [`acquire`](Self::acquire) could hand out anything
    /// at `now_ms` with the log ending at `log_end`.
    pub fn has_work(&self, log_end: i64, limits: &Limits, now_ms: i64) -> bool {
        (log_end > self.end() && self.slots.len() < limits.record_locks_max)
            || self.slots.iter().any(|s| s.acquirable(now_ms))
    }

    /// Whether a backoff ended by `now_ms` since the last call said so.
    pub fn backoff_ended(&mut self, now_ms: i64) -> bool {
        if self.next_ready_ms > now_ms {
            return false;
        }
        self.next_ready_ms = self
            .slots
            .iter()
            .filter(|s| s.state == RecordState::Available && s.ready_ms > now_ms)
            .map(|s| s.ready_ms)
            .min()
            .unwrap_or(i64::MAX);
        true
    }

    /// Starts the backoff of the slot at `i`, just made available again.
    fn back_off(&mut self, i: usize, now_ms: i64, limits: &Limits) {
        let offset = self.start + i as i64;
        let slot = &mut self.slots[i];
        let delay = limits.backoff.delay_ms(slot.deliveries, offset);
        slot.ready_ms = now_ms.saturating_add(delay);
        if delay > 0 {
            self.next_ready_ms = self.next_ready_ms.min(slot.ready_ms);
            self.outcomes.backoffs += 1;
        }
    }

    /// Applies one acknowledgement batch of `owner`: `types` holds one type
    /// for the whole range or one per offset. All or nothing: if any offset
    /// is not acquired by `owner`, nothing changes.
    #[allow(clippy::too_many_arguments)]
    pub fn acknowledge(
        &mut self,
        owner: &str,
        first: i64,
        last: i64,
        types: &[AckType],
        now_ms: i64,
        limits: &Limits,
        persist: &mut Vec<Persist>,
    ) -> Result<(), ShareError> {
        let span = last.checked_sub(first).and_then(|d| d.checked_add(1)).unwrap_or(0);
        if span <= 0 || types.is_empty() || (types.len() != 1 && types.len() as i64 != span) {
            return Err(ShareError::InvalidRequest(format!(
                "acknowledgement batch {first}..={last} with {} types",
                types.len()
            )));
        }
        if first < self.start || last >= self.end() {
            return Err(ShareError::InvalidRecordState(format!(
                "offsets {first}..={last} are not all in flight (in flight: {}..{})",
                self.start,
                self.end()
            )));
        }
        for o in first..=last {
            match self.slot(o) {
                Some(s) if s.state == RecordState::Acquired && s.owner.as_deref() == Some(owner) => {}
                _ => {
                    return Err(ShareError::InvalidRecordState(format!(
                        "offset {o} is not acquired by this member"
                    )));
                }
            }
        }
        for (k, o) in (first..=last).enumerate() {
            let ack = if types.len() == 1 { types[0] } else { types[k] };
            let i = (o - self.start) as usize;
            let slot = &mut self.slots[i];
            // The owner is kept as the last member to hold it, for its dead
            // letter; only an acquired record's owner holds it.
            self.acquired -= 1;
            slot.state = match ack {
                AckType::Gap | AckType::Accept => {
                    if ack == AckType::Accept {
                        self.outcomes.accepted += 1;
                    }
                    RecordState::Acknowledged
                }
                AckType::Reject => {
                    self.outcomes.rejected += 1;
                    limits.archived(DeadLetterReason::Rejected)
                }
                AckType::Release => {
                    self.outcomes.released += 1;
                    if slot.deliveries >= limits.delivery_count_limit {
                        self.outcomes.archived += 1;
                        limits.archived(DeadLetterReason::DeliveryLimit)
                    } else {
                        RecordState::Available
                    }
                }
            };
            let state = slot.state;
            push_persist(persist, o, state, slot.deliveries);
            if state == RecordState::Available {
                self.back_off(i, now_ms, limits);
            }
        }
        self.advance();
        Ok(())
    }

    /// Releases records whose lock ran out by `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: i64, limits: &Limits, persist: &mut Vec<Persist>) -> usize {
        if self.acquired == 0 {
            return 0;
        }
        let n = self.release_where(now_ms, limits, persist, DeadLetterReason::LockTimeout, |s| {
            s.deadline_ms <= now_ms
        });
        self.outcomes.lock_timeouts += n as u64;
        n
    }

    /// Releases every record `owner` holds (its session or membership ended).
    pub fn release_owner(&mut self, owner: &str, now_ms: i64, limits: &Limits, persist: &mut Vec<Persist>) -> usize {
        if self.acquired == 0 {
            return 0;
        }
        self.release_where(now_ms, limits, persist, DeadLetterReason::DeliveryLimit, |s| {
            s.owner.as_deref() == Some(owner)
        })
    }

    fn release_where(
        &mut self,
        now_ms: i64,
        limits: &Limits,
        persist: &mut Vec<Persist>,
        reason: DeadLetterReason,
        pick: impl Fn(&Slot) -> bool,
    ) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.state != RecordState::Acquired || !pick(slot) {
                continue;
            }
            slot.state = if slot.deliveries >= limits.delivery_count_limit {
                self.outcomes.archived += 1;
                limits.archived(reason)
            } else {
                RecordState::Available
            };
            self.acquired -= 1;
            n += 1;
            let state = slot.state;
            push_persist(persist, self.start + i as i64, state, slot.deliveries);
            if state == RecordState::Available {
                self.back_off(i, now_ms, limits);
            }
        }
        if n > 0 {
            self.advance();
        }
        n
    }

    /// The first offset whose record has not been read yet (in the window
    /// and not learned, or the end).
    pub fn first_unlearned(&self) -> i64 {
        self.slots
            .iter()
            .position(|s| !s.learned && !s.state.is_final())
            .map_or(self.end(), |i| self.start + i as i64)
    }

    /// Records read at `offset`: a slot in the window learns what its record
    /// says, and the record right at the end enters the window, available,
    /// if there is room. Offsets the log has no record at are learned with
    /// nothing to say. Returns whether the offset is now in the window.
    pub fn learn(&mut self, offset: i64, traits: RecordTraits, limits: &Limits) -> bool {
        if offset < self.start {
            return false;
        }
        if offset >= self.end() {
            if offset != self.end() || self.slots.len() >= limits.record_locks_max {
                return false;
            }
            self.slots.push_back(Slot::fresh());
        }
        let i = (offset - self.start) as usize;
        let slot = &mut self.slots[i];
        if slot.learned {
            return true;
        }
        slot.learned = true;
        slot.priority = traits.priority;
        slot.key = traits.key;
        if traits.not_before_ms > slot.ready_ms && slot.deliveries == 0 {
            slot.ready_ms = traits.not_before_ms;
            self.next_ready_ms = self.next_ready_ms.min(traits.not_before_ms);
        }
        true
    }

    /// Hands `owner` records of the window by the group's [`Order`]: records
    /// available and learned, their delay or backoff over, not behind an
    /// earlier record with their key that is not done (per-key order), the
    /// highest priority first (with priorities), then lowest offsets; only
    /// offsets below `within_end` (whose batches the caller read). At most
    /// `records_max`; redeliveries in shrinking runs and a record's last
    /// delivery alone, as [`acquire_available`](Self::acquire_available).
    #[allow(clippy::too_many_arguments)]
    pub fn acquire_ordered(
        &mut self,
        owner: &Arc<str>,
        now_ms: i64,
        limits: &Limits,
        records_max: usize,
        within_end: i64,
        last_ok: bool,
        persist: &mut Vec<Persist>,
    ) -> Vec<Acquired> {
        let candidates = self.candidates(now_ms, limits, within_end, persist);
        let mut out: Vec<Acquired> = Vec::new();
        let deadline_ms = now_ms.saturating_add(limits.lock_ms);
        let mut run_max = records_max;
        let mut taken = 0usize;
        for i in candidates {
            if taken >= run_max {
                break;
            }
            let deliveries = self.slots[i].deliveries;
            if is_last_delivery(deliveries, limits.delivery_count_limit) {
                // Alone in the answer, or not at all.
                if !last_ok || taken > 0 {
                    continue;
                }
                run_max = 1;
            } else {
                let run = redelivery_run_max(records_max, deliveries, limits.delivery_count_limit);
                if taken >= run {
                    continue;
                }
                run_max = run_max.min(run.max(taken + 1));
            }
            let offset = self.start + i as i64;
            let slot = &mut self.slots[i];
            slot.hand_to(owner, now_ms, deadline_ms);
            self.acquired += 1;
            taken += 1;
            out.push(Acquired {
                first: offset,
                last: offset,
                deliveries: slot.deliveries,
            });
            push_persist(persist, offset, RecordState::Acquired, slot.deliveries);
        }
        self.outcomes.acquired += taken as u64;
        out.sort_by_key(|a| a.first);
        let mut merged: Vec<Acquired> = Vec::with_capacity(out.len());
        for a in out {
            push_acquired(&mut merged, a.first, a.deliveries);
        }
        merged
    }

    /// Slots that may be handed out now by the group's [`Order`], in the
    /// order they are to be; records at the delivery limit are archived on
    /// the way.
    fn candidates(&mut self, now_ms: i64, limits: &Limits, within_end: i64, persist: &mut Vec<Persist>) -> Vec<usize> {
        let mut keys_waiting = KeySet::default();
        let mut out = Vec::new();
        let mut archived_any = false;
        for i in 0..self.slots.len() {
            let offset = self.start + i as i64;
            let slot = &mut self.slots[i];
            if slot.state.is_final() {
                continue;
            }
            let blocked = limits.order.key_order && slot.key != 0 && !keys_waiting.insert(slot.key);
            if offset >= within_end || !slot.learned || blocked || !slot.acquirable(now_ms) {
                continue;
            }
            if slot.deliveries >= limits.delivery_count_limit {
                // Done: the next record with its key may go.
                if slot.key != 0 {
                    keys_waiting.remove(&slot.key);
                }
                self.archive_at_limit(i, limits, persist);
                archived_any = true;
                continue;
            }
            out.push(i);
        }
        if limits.order.priority {
            // Stable: equal priorities stay in offset order.
            out.sort_by_key(|&i| std::cmp::Reverse(self.slots[i].priority));
        }
        if archived_any {
            self.advance_keeping(&mut out);
        }
        out
    }

    /// Archives the available record at slot `i`, at the delivery limit.
    fn archive_at_limit(&mut self, i: usize, limits: &Limits, persist: &mut Vec<Persist>) {
        let offset = self.start + i as i64;
        let slot = &mut self.slots[i];
        slot.state = limits.archived(DeadLetterReason::DeliveryLimit);
        self.outcomes.archived += 1;
        push_persist(persist, offset, slot.state, slot.deliveries);
    }

    /// [`advance`](Self::advance), with slot indexes shifted to match.
    fn advance_keeping(&mut self, indexes: &mut [usize]) {
        let before = self.start;
        self.advance();
        let moved = (self.start - before) as usize;
        for i in indexes.iter_mut() {
            *i -= moved;
        }
    }

    /// Whether [`acquire_ordered`](Self::acquire_ordered) could hand out
    /// anything at `now_ms` with the log ending at `log_end`.
    pub fn has_ordered_work(&self, log_end: i64, limits: &Limits, now_ms: i64) -> bool {
        if (log_end > self.end() && self.slots.len() < limits.record_locks_max)
            || self.slots.iter().any(|s| !s.learned && !s.state.is_final())
        {
            return true;
        }
        let mut keys_waiting = KeySet::default();
        self.slots.iter().any(|s| {
            if s.state.is_final() {
                return false;
            }
            let blocked = limits.order.key_order && s.key != 0 && !keys_waiting.insert(s.key);
            !blocked && s.acquirable(now_ms)
        })
    }

    /// Archived records whose dead letter is not written yet, lowest offsets
    /// first, at most `max`.
    pub fn dead_letters_pending(&self, max: usize) -> Vec<PendingDeadLetter> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.state {
                RecordState::Archiving(reason) => Some(PendingDeadLetter {
                    offset: self.start + i as i64,
                    reason,
                    deliveries: s.deliveries,
                    first_delivery_ms: s.first_delivery_ms,
                    last_delivery_ms: s.last_delivery_ms,
                    last_owner: s.owner.clone(),
                }),
                _ => None,
            })
            .take(max)
            .collect()
    }

    /// Marks the dead letters of `offsets` written: their records are
    /// archived for good. Offsets not `Archiving` (any more) are skipped.
    /// Returns how many were marked.
    pub fn dead_letters_written(&mut self, offsets: &[i64], persist: &mut Vec<Persist>) -> usize {
        let mut n = 0;
        for &o in offsets {
            let Some(i) = usize::try_from(o - self.start).ok().filter(|i| *i < self.slots.len()) else {
                continue;
            };
            let slot = &mut self.slots[i];
            let RecordState::Archiving(reason) = slot.state else {
                continue;
            };
            self.outcomes.dead_letters_by_reason[reason.index()] += 1;
            slot.state = RecordState::Archived;
            push_persist(persist, o, RecordState::Archived, slot.deliveries);
            n += 1;
        }
        self.outcomes.dead_letters += n as u64;
        if n > 0 {
            self.advance();
        }
        n
    }

    /// Moves the start past acknowledged and archived records.
    fn advance(&mut self) {
        while let Some(s) = self.slots.front() {
            if !matches!(s.state, RecordState::Acknowledged | RecordState::Archived) {
                break;
            }
            self.slots.pop_front();
            self.start += 1;
        }
    }

    /// The state of every offset in the window that is not available with
    /// no delivery yet: what a snapshot must keep.
    pub fn persisted(&self) -> Vec<Persist> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            if s.state == RecordState::Available && s.deliveries == 0 {
                continue;
            }
            push_persist(&mut out, self.start + i as i64, s.state, s.deliveries);
        }
        out
    }

    /// The state at `now_ms`, for describe, lag and metrics.
    pub fn summary(&self, now_ms: i64) -> Summary {
        let mut deliveries = [0u64; 5];
        let mut done_in_window = 0;
        let mut backing_off = 0;
        let mut dead_letters_pending = 0;
        for s in &self.slots {
            if s.state.is_final() {
                done_in_window += 1;
            } else if s.deliveries > 0 {
                deliveries[(usize::from(s.deliveries) - 1).min(4)] += 1;
            }
            if s.state == RecordState::Available && s.ready_ms > now_ms {
                backing_off += 1;
            }
            if matches!(s.state, RecordState::Archiving(_)) {
                dead_letters_pending += 1;
            }
        }
        Summary {
            start: self.start,
            end: self.end(),
            acquired: self.acquired,
            done_in_window,
            deliveries,
            backing_off,
            dead_letters_pending,
        }
    }

    /// The state and delivery count of `offset` (`None` before the start or
    /// past the end).
    pub fn state_of(&self, offset: i64) -> Option<(RecordState, u16)> {
        self.slot(offset).map(|s| (s.state, s.deliveries))
    }
}

/// The most records one acquisition hands out when the first of them was
/// delivered `deliveries` times before: all `records_max` for new records,
/// half as many for each delivery before (at least one), and one alone for a
/// record's last delivery under `limit`.
pub(crate) fn redelivery_run_max(records_max: usize, deliveries: u16, limit: u16) -> usize {
    if deliveries == 0 {
        records_max
    } else if is_last_delivery(deliveries, limit) {
        1
    } else {
        (records_max >> deliveries.min(16)).max(1)
    }
}

/// Whether the next delivery of a record delivered `deliveries` times
/// before is its last under `limit` (a first delivery never counts as one:
/// new records are not singled out).
pub(crate) fn is_last_delivery(deliveries: u16, limit: u16) -> bool {
    deliveries > 0 && deliveries.saturating_add(1) >= limit
}

fn push_acquired(out: &mut Vec<Acquired>, offset: i64, deliveries: u16) {
    if let Some(a) = out.last_mut()
        && a.last + 1 == offset
        && a.deliveries == deliveries
    {
        a.last = offset;
        return;
    }
    out.push(Acquired {
        first: offset,
        last: offset,
        deliveries,
    });
}

fn push_persist(out: &mut Vec<Persist>, offset: i64, state: RecordState, deliveries: u16) {
    if let Some(p) = out.last_mut()
        && p.last + 1 == offset
        && p.state == state
        && p.deliveries == deliveries
    {
        p.last = offset;
        return;
    }
    out.push(Persist {
        first: offset,
        last: offset,
        state,
        deliveries,
    });
}
