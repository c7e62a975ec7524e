//! Share sessions, acquisition and acknowledgement: ShareFetch and
//! ShareAcknowledge in the engine's terms.
//!
//! A share session belongs to one member of one group. ShareFetch with epoch
//! 0 opens it (or replaces the member's old one) with the partitions it names;
//! later requests carry the next epoch and name only partitions to add, or to
//! forget; epoch -1 makes the request the last, and closes the session once
//! its acknowledgements are applied. An epoch that does not match closes the
//! session too, releasing what it held, as Kafka does: the client then opens a
//! new one.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use veltrix_log::batch;

use super::partition::{AckType, Acquired, Persist};
use super::source::ShareSource;
use super::{Key, ShareCoordinator, ShareError, SharePartition, lock};
use crate::topic::TopicId;

/// A share session's state.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeSet<(TopicId, i32)>,
    last_used_ms: i64,
    /// The connection that opened it: closing the connection closes it.
    connection: u64,
}

/// Which request uses a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionUse {
    Fetch,
    Acknowledge,
}

/// The session part of a ShareFetch or ShareAcknowledge.
#[derive(Debug, Clone, Default)]
pub struct SessionRequest {
    pub group: String,
    pub member: String,
    pub epoch: i32,
    /// Partitions the request names (added to the session).
    pub add: Vec<(TopicId, i32)>,
    /// Partitions to remove from the session (ShareFetch only).
    pub forget: Vec<(TopicId, i32)>,
    /// Whether the request carries acknowledgements.
    pub has_acks: bool,
    /// The connection the request came on.
    pub connection: u64,
}

/// Acknowledgements of one partition.
#[derive(Debug, Clone, Default)]
pub struct PartitionAcks {
    pub topic: TopicId,
    pub partition: i32,
    pub batches: Vec<AckBatch>,
}

/// One acknowledgement batch: `types` holds one wire code for the whole range
/// or one per offset.
#[derive(Debug, Clone, Default)]
pub struct AckBatch {
    pub first: i64,
    pub last: i64,
    pub types: Vec<i8>,
}

/// Records acquired from one partition: the batches holding them, as stored,
/// and the acquired offset ranges the client must keep to.
#[derive(Debug, Clone, Default)]
pub struct AcquiredData {
    pub records: Bytes,
    pub acquired: Vec<Acquired>,
    /// The answer holds a record's last delivery under the delivery limit
    /// (then it holds that record alone).
    pub last_delivery: bool,
}

/// Acknowledgement batches one request may carry per partition.
pub const ACK_BATCHES_MAX: usize = 10_000;
/// Partitions one share session may hold: what a member's session costs the
/// broker is bounded by this times `sessions_max`.
pub const SESSION_PARTITIONS_MAX: usize = 2_000;

fn too_many_partitions(n: usize) -> ShareError {
    ShareError::InvalidRequest(format!(
        "a share session holds at most {SESSION_PARTITIONS_MAX} partitions, this one would hold {n}"
    ))
}

impl ShareCoordinator {
    /// Checks and updates the member's session for a request; returns the
    /// session's partitions. For epoch -1 the session stays until
    /// [`close_session`](Self::close_session).
    pub fn begin_session(&self, req: &SessionRequest, using: SessionUse) -> Result<Vec<(TopicId, i32)>, ShareError> {
        super::check_group_id(&req.group)?;
        if req.member.is_empty() || req.member.len() > super::membership::MEMBER_ID_BYTES_MAX {
            return Err(ShareError::UnknownMemberId);
        }
        let now = self.now_ms();
        let key = (req.group.clone(), req.member.clone());
        let mut sessions = lock(&self.sessions);
        match req.epoch {
            0 => {
                if using == SessionUse::Acknowledge {
                    return Err(ShareError::InvalidShareSessionEpoch {
                        got: 0,
                        expected: sessions.get(&key).map_or(0, |s| s.next_epoch),
                    });
                }
                if req.has_acks {
                    return Err(ShareError::InvalidRequest(
                        "a request opening a share session carries no acknowledgements".into(),
                    ));
                }
                if req.add.len() > SESSION_PARTITIONS_MAX {
                    return Err(too_many_partitions(req.add.len()));
                }
                let partitions: BTreeSet<(TopicId, i32)> = req.add.iter().copied().collect();
                if partitions.len() > SESSION_PARTITIONS_MAX {
                    return Err(too_many_partitions(partitions.len()));
                }
                let old = sessions.remove(&key);
                if old.is_none() && sessions.len() >= self.config.sessions_max {
                    return Err(ShareError::ShareSessionLimitReached(self.config.sessions_max));
                }
                let out = partitions.iter().copied().collect();
                sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions,
                        last_used_ms: now,
                        connection: req.connection,
                    },
                );
                drop(sessions);
                if old.is_some() {
                    // A new session replaces the old one: what it held goes back.
                    self.release_member(&req.group, &req.member, None);
                }
                Ok(out)
            }
            -1 => {
                let s = sessions.get_mut(&key).ok_or(ShareError::ShareSessionNotFound)?;
                if !req.forget.is_empty() {
                    return Err(ShareError::InvalidRequest(
                        "a request closing a share session forgets no partitions".into(),
                    ));
                }
                s.last_used_ms = now;
                Ok(s.partitions.iter().copied().collect())
            }
            epoch => {
                let Some(s) = sessions.get_mut(&key) else {
                    return Err(ShareError::ShareSessionNotFound);
                };
                if epoch != s.next_epoch {
                    let expected = s.next_epoch;
                    sessions.remove(&key);
                    drop(sessions);
                    self.release_member(&req.group, &req.member, None);
                    return Err(ShareError::InvalidShareSessionEpoch { got: epoch, expected });
                }
                if req.add.len() > SESSION_PARTITIONS_MAX {
                    return Err(too_many_partitions(req.add.len()));
                }
                let mut next = s.partitions.clone();
                next.extend(req.add.iter().copied());
                for p in &req.forget {
                    next.remove(p);
                }
                if next.len() > SESSION_PARTITIONS_MAX {
                    return Err(too_many_partitions(next.len()));
                }
                s.next_epoch = if s.next_epoch == i32::MAX { 1 } else { s.next_epoch + 1 };
                s.last_used_ms = now;
                let partitions = next.iter().copied().collect();
                s.partitions = next;
                drop(sessions);
                if !req.forget.is_empty() {
                    self.release_member(&req.group, &req.member, Some(&req.forget));
                }
                Ok(partitions)
            }
        }
    }

    /// Closes the member's session (epoch -1 done): releases what it held.
    pub fn close_session(&self, group: &str, member: &str) {
        if lock(&self.sessions)
            .remove(&(group.to_owned(), member.to_owned()))
            .is_some()
        {
            self.release_member(group, member, None);
        }
    }

    /// A connection closed: the sessions it opened close, and their records
    /// are released at once rather than when their locks run out.
    pub fn connection_closed(&self, connection: u64) {
        self.close_sessions_where(|s| s.connection == connection);
    }

    pub(super) fn expire_sessions(&self, now_ms: i64) {
        let timeout = i64::try_from(self.config.session_timeout_ms).unwrap_or(i64::MAX);
        self.close_sessions_where(|s| now_ms.saturating_sub(s.last_used_ms) >= timeout);
    }

    /// Closes the sessions `gone` picks, releasing what their members held
    /// (after the sessions' lock is let go).
    fn close_sessions_where(&self, gone: impl Fn(&Session) -> bool) {
        let mut closed: Vec<(String, String)> = Vec::new();
        lock(&self.sessions).retain(|key, s| {
            let close = gone(s);
            if close {
                closed.push(key.clone());
            }
            !close
        });
        for (group, member) in closed {
            self.release_member(&group, &member, None);
        }
    }

    /// Open share sessions.
    pub fn sessions(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Applies `member`'s acknowledgements and waits until they are durable.
    /// One result per entry of `acks`: an entry whose batches are not all
    /// valid changes nothing of its partition from the first bad batch on.
    pub fn acknowledge(&self, group: &str, member: &str, acks: &[PartitionAcks]) -> Vec<Result<(), ShareError>> {
        let now = self.now_ms();
        let limits = self.limits(group);
        let mut ticket = None;
        let mut released = false;
        let mut results = Vec::with_capacity(acks.len());
        let mut seen = HashSet::with_capacity(acks.len());
        {
            let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
            for pa in acks {
                if !seen.insert((pa.topic, pa.partition)) {
                    results.push(Err(ShareError::InvalidRequest(
                        "a partition's acknowledgements come once per request".into(),
                    )));
                    continue;
                }
                let key = Key {
                    group: group.to_owned(),
                    topic: pa.topic,
                    partition: pa.partition,
                };
                let Some(p) = self.partition(&key) else {
                    results.push(Err(ShareError::InvalidRecordState(
                        "no records of this partition were acquired".into(),
                    )));
                    continue;
                };
                if pa.batches.len() > ACK_BATCHES_MAX {
                    results.push(Err(ShareError::InvalidRequest(format!(
                        "{} acknowledgement batches for one partition, over {ACK_BATCHES_MAX}",
                        pa.batches.len()
                    ))));
                    continue;
                }
                let mut p = lock(&p);
                let mut persist: Vec<Persist> = Vec::new();
                let mut result = Ok(());
                for b in &pa.batches {
                    let types: Option<Vec<AckType>> = b.types.iter().map(|t| AckType::from_code(*t)).collect();
                    let Some(types) = types else {
                        result = Err(ShareError::InvalidRequest(format!("acknowledge types {:?}", b.types)));
                        break;
                    };
                    // With per-key order any acknowledgement may let the
                    // next record of a key go: fetchers waiting look again.
                    released |= types.contains(&AckType::Release) || limits.order.key_order;
                    if let Err(e) = p.acknowledge(member, b.first, b.last, &types, now, &limits, &mut persist) {
                        result = Err(e);
                        break;
                    }
                }
                if !persist.is_empty() {
                    match self.append_records(&key, &p, None, persist, now) {
                        Ok(t) => ticket = Some(t),
                        Err(e) => result = Err(e.into()),
                    }
                }
                results.push(result);
            }
        }
        if let Some(t) = ticket
            && let Err(e) = self.store().wait_durable(t)
        {
            let e = ShareError::from(e);
            for r in &mut results {
                if r.is_ok() {
                    *r = Err(e.clone());
                }
            }
        }
        if released {
            self.wake();
        }
        results
    }

    /// Acquires records for one ShareFetch answer from each of `partitions`
    /// in turn (`source_of` finds what a partition is read from, or why it
    /// is not served here), within `records_max` and
    /// `bytes_max` in all, starting at a different partition each time so
    /// that a busy one does not starve the others.
    ///
    /// A record's last delivery under the delivery limit goes alone in its
    /// answer: a consumer that crashes on a poison record loses every record
    /// it holds, and those beside the poison's last delivery would otherwise
    /// reach the limit with it and be archived unprocessed.
    pub fn acquire_all(
        &self,
        group: &str,
        member: &str,
        partitions: &[(TopicId, i32)],
        source_of: &super::source::SourceOf<'_>,
        records_max: usize,
        bytes_max: usize,
    ) -> Vec<((TopicId, i32), Result<AcquiredData, ShareError>)> {
        let mut records_left = records_max;
        let mut bytes_left = bytes_max;
        let mut out = Vec::with_capacity(partitions.len());
        let n = partitions.len();
        let first = if n == 0 {
            0
        } else {
            (self.now_ms().unsigned_abs() as usize) % n
        };
        let mut taken_any = false;
        for i in 0..n {
            let (topic, p) = partitions[(first + i) % n];
            if records_left == 0 || bytes_left == 0 {
                break;
            }
            let part = match source_of(&topic, p) {
                Ok(part) => part,
                Err(e) => {
                    out.push(((topic, p), Err(e)));
                    continue;
                }
            };
            let result = self.acquire_one(group, member, (topic, p), &*part, records_left, bytes_left, !taken_any);
            if let Ok(data) = &result {
                let taken: i64 = data.acquired.iter().map(|a| a.last - a.first + 1).sum();
                records_left = records_left.saturating_sub(usize::try_from(taken).unwrap_or(usize::MAX));
                bytes_left = bytes_left.saturating_sub(data.records.len());
                taken_any |= taken > 0;
                if data.last_delivery {
                    records_left = 0;
                }
            }
            out.push(((topic, p), result));
        }
        out
    }

    /// Acquires records of one partition for `member`, at most `records_max`
    /// (rounded up to the end of a batch) and about `bytes_max` of batches
    /// (one whole batch at least), and waits until the acquisition is
    /// durable. `log` is what the partition is read from.
    #[allow(clippy::too_many_arguments)]
    pub fn acquire(
        &self,
        group: &str,
        member: &str,
        topic: TopicId,
        partition: i32,
        log: &dyn ShareSource,
        records_max: usize,
        bytes_max: usize,
    ) -> Result<AcquiredData, ShareError> {
        self.acquire_one(group, member, (topic, partition), log, records_max, bytes_max, true)
    }

    /// [`acquire`](Self::acquire), making a record's last delivery only when
    /// `last_ok` (the answer holds nothing yet).
    #[allow(clippy::too_many_arguments)]
    fn acquire_one(
        &self,
        group: &str,
        member: &str,
        (topic, partition): (TopicId, i32),
        log: &dyn ShareSource,
        records_max: usize,
        bytes_max: usize,
        last_ok: bool,
    ) -> Result<AcquiredData, ShareError> {
        let now = self.now_ms();
        let owner: Arc<str> = Arc::from(member);
        let key = Key {
            group: group.to_owned(),
            topic,
            partition,
        };
        let ticket;
        let data;
        {
            let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
            let (p, created) = self.open_partition(&key, log, now)?;
            // After the open: a claim brings the group's settings up to date.
            let limits = super::limits_of(&self.settings(group));
            let mut p = lock(&p);
            let mut persist = Vec::new();
            let mut start = created.then(|| p.start());
            p.expire(now, &limits, &mut persist);
            let log_start = log.log_start();
            if p.start() < log_start {
                // Retention or delete-records took records never acknowledged.
                p.move_start(log_start);
                start = Some(log_start);
            }
            let end = log.high_watermark();
            data = if limits.order.any() {
                if p.has_ordered_work(end, &limits, now) && records_max > 0 {
                    let read = Read {
                        records_max,
                        bytes_max,
                        last_ok,
                    };
                    acquire_ordered_from_log(&mut p, &owner, log, now, &limits, read, &mut persist)?
                } else {
                    AcquiredData::default()
                }
            } else if p.has_work(end, &limits, now) && records_max > 0 {
                let read = Read {
                    records_max,
                    bytes_max,
                    last_ok,
                };
                acquire_from_log(&mut p, &owner, log, now, &limits, read, &mut persist)?
            } else {
                AcquiredData::default()
            };
            ticket = if persist.is_empty() && start.is_none() {
                None
            } else {
                Some(self.append_records(&key, &p, start, persist, now)?)
            };
        }
        if let Some(t) = ticket {
            self.store().wait_durable(t)?;
        }
        Ok(data)
    }
}

impl ShareCoordinator {
    /// The share-partition of `key`, and whether it is new (its start not
    /// stored yet): from memory, else loaded from an on-demand store (which
    /// this broker claims it in), else created where the group's
    /// `share.auto.offset.reset` says (as the store has it at the claim, so
    /// a setting made on another broker an instant before counts).
    fn open_partition(
        &self,
        key: &Key,
        log: &dyn ShareSource,
        now_ms: i64,
    ) -> Result<(Arc<std::sync::Mutex<SharePartition>>, bool), ShareError> {
        let store = self.store();
        if !store.on_demand() {
            let reset = self.settings(&key.group).auto_offset_reset;
            let mut partitions = lock(&self.partitions);
            if let Some(p) = partitions.get(key) {
                return Ok((p.clone(), false));
            }
            room_for_group(&partitions, &key.group, self.config.groups_max)?;
            let p = Arc::new(std::sync::Mutex::new(SharePartition::new(initial_start(
                log, reset, now_ms,
            ))));
            partitions.insert(key.clone(), p.clone());
            return Ok((p, true));
        }
        if let Some(p) = self.partition(key) {
            return Ok((p, false));
        }
        let _loading = lock(&self.loading);
        if let Some(p) = self.partition(key) {
            return Ok((p, false));
        }
        room_for_group(&lock(&self.partitions), &key.group, self.config.groups_max)?;
        let claimed = store.claim(&key.group, &super::topic_hex(&key.topic), key.partition)?;
        if let Some(overrides) = claimed.settings {
            self.adopt_group_settings(&key.group, overrides);
        }
        let (p, created) = match claimed.state {
            Some((start, ranges)) => (loaded(key, start, &ranges), false),
            None => {
                let reset = self.settings(&key.group).auto_offset_reset;
                (SharePartition::new(initial_start(log, reset, now_ms)), true)
            }
        };
        let p = Arc::new(std::sync::Mutex::new(p));
        lock(&self.partitions).insert(key.clone(), p.clone());
        Ok((p, created))
    }
}

/// Refuses a share-partition of a group that has none here yet when
/// `groups_max` groups have some already: a ShareFetch may name any group
/// id (its leader does not ask the group's coordinator about members), so
/// without this a client cycling group ids would make share-partitions
/// without end. Counts the groups by skipping from one to the next.
fn room_for_group(
    partitions: &BTreeMap<Key, Arc<std::sync::Mutex<SharePartition>>>,
    group: &str,
    groups_max: usize,
) -> Result<(), ShareError> {
    let first_of = |group: String| Key {
        group,
        topic: [0; 16],
        partition: i32::MIN,
    };
    if partitions
        .range(first_of(group.to_owned())..)
        .next()
        .is_some_and(|(k, _)| k.group == group)
    {
        return Ok(());
    }
    let mut groups = 0;
    let mut next = partitions.keys().next();
    while let Some(k) = next {
        groups += 1;
        if groups >= groups_max {
            return Err(ShareError::TooManyGroups(groups_max));
        }
        // The smallest group id after this one: itself followed by NUL.
        next = partitions
            .range(first_of(format!("{}\0", k.group))..)
            .next()
            .map(|(k, _)| k);
    }
    Ok(())
}

/// A share-partition as an on-demand store gave it; ranges with offsets no
/// log has are left out.
fn loaded(key: &Key, start: i64, ranges: &[Persist]) -> SharePartition {
    let offset_ok = |o: i64| (0..=super::partition::STORED_OFFSET_MAX).contains(&o);
    let mut p = SharePartition::new(if offset_ok(start) { start } else { 0 });
    for r in ranges {
        if offset_ok(r.first) && offset_ok(r.last) && r.first <= r.last {
            p.restore(r);
        } else {
            tracing::warn!(group = %key.group, partition = key.partition, "ignoring a stored share-state range with offsets no log has");
        }
    }
    p
}

/// Where a share-partition starts: `share.auto.offset.reset`.
fn initial_start(log: &dyn ShareSource, reset: super::AutoOffsetReset, now_ms: i64) -> i64 {
    match reset {
        super::AutoOffsetReset::Latest => log.high_watermark(),
        super::AutoOffsetReset::Earliest => log.log_start(),
        super::AutoOffsetReset::ByDuration { ms } => log
            .offset_for_timestamp(now_ms.saturating_sub(ms))
            .unwrap_or_else(|| log.high_watermark()),
    }
}

/// The bounds of one partition's acquisition.
#[derive(Debug, Clone, Copy)]
struct Read {
    records_max: usize,
    bytes_max: usize,
    /// Whether a record's last delivery may be made.
    last_ok: bool,
}

/// One read of the log from the first record that could be handed out; then
/// records available again, then new ones, only within what was read, so
/// every acquired offset's batch is in the answer. Batches holding no
/// acquired offset are left out.
fn acquire_from_log(
    p: &mut SharePartition,
    owner: &Arc<str>,
    log: &dyn ShareSource,
    now_ms: i64,
    limits: &super::partition::Limits,
    Read {
        records_max,
        bytes_max,
        last_ok,
    }: Read,
    persist: &mut Vec<Persist>,
) -> Result<AcquiredData, ShareError> {
    let from = p.first_available(now_ms).unwrap_or(p.end());
    let records = log.read(from, bytes_max.max(1))?;
    // Batches read: (first offset, last offset, byte range).
    let mut batches = Vec::new();
    let mut rest = &records[..];
    let mut pos = 0;
    while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
        let Ok(h) = batch::parse_fixed(&rest[..size]) else {
            break;
        };
        let last = h.base_offset + i64::from(h.last_offset_delta);
        batches.push((h.base_offset, last, pos..pos + size));
        pos += size;
        rest = &rest[size..];
    }
    let Some(&(_, read_last, _)) = batches.last() else {
        return Ok(AcquiredData::default());
    };
    let read_end = read_last + 1;
    let mut acquired = p.acquire_available(owner, now_ms, limits, records_max, read_end, last_ok, persist);
    let last_delivery = acquired
        .iter()
        .any(|a| a.deliveries > 1 && a.deliveries >= limits.delivery_count_limit);
    let taken: i64 = acquired.iter().map(|a| a.last - a.first + 1).sum();
    let left = (records_max as i64).saturating_sub(taken);
    // A redelivery's run is kept short on purpose (see acquire_available):
    // new records wait for the next fetch.
    let redelivery = acquired.iter().any(|a| a.deliveries > 1);
    if left > 0 && !redelivery && !last_delivery && p.end() < read_end {
        // New records up to the end of the batch holding the last one wanted.
        let want_last = p.end().saturating_add(left - 1);
        let fresh_end = batches
            .iter()
            .find(|(first, last, _)| *first <= want_last && want_last <= *last)
            .map_or(read_end, |(_, last, _)| last + 1)
            .min(read_end);
        acquired.extend(p.acquire_fresh(owner, now_ms, limits, fresh_end, persist));
    }
    acquired.sort_by_key(|a| a.first);
    let mut out = bytes::BytesMut::new();
    for (first, last, range) in &batches {
        if acquired.iter().any(|a| a.first <= *last && *first <= a.last) {
            out.extend_from_slice(&records[range.clone()]);
        }
    }
    Ok(AcquiredData {
        records: if out.len() == records.len() {
            records.clone()
        } else {
            out.freeze()
        },
        acquired,
        last_delivery,
    })
}

/// [`acquire_from_log`] for a group with an [`Order`](super::partition::Order):
/// reads from the first record that could be handed out or is not read yet,
/// at most `bytes_max` of whole batches (one at least), lets the records
/// read enter the window and say what their headers and key say, then
/// picks by the order among them. The answer holds the batches of the
/// records picked.
fn acquire_ordered_from_log(
    p: &mut SharePartition,
    owner: &Arc<str>,
    log: &dyn ShareSource,
    now_ms: i64,
    limits: &super::partition::Limits,
    Read {
        records_max,
        bytes_max,
        last_ok,
    }: Read,
    persist: &mut Vec<Persist>,
) -> Result<AcquiredData, ShareError> {
    let from = p.first_available(now_ms).unwrap_or(p.end()).min(p.first_unlearned());
    // Only the window is of use: read in pieces until past its end (or the
    // answer's bytes), not `bytes_max` at once.
    let window_end = p.start().saturating_add(limits.record_locks_max as i64);
    let mut reads: Vec<Bytes> = Vec::new();
    let mut batches = Vec::new();
    let mut bad = 0u64;
    let mut window_full = false;
    let mut at = from;
    let mut read_bytes = 0usize;
    while at < window_end && read_bytes < bytes_max.max(1) {
        let want = (bytes_max.max(1) - read_bytes).min(ORDERED_READ_BYTES);
        let read = log.read(at, want)?;
        if read.is_empty() {
            break;
        }
        let mut next = at;
        let mut rest = &read[..];
        let mut pos = 0;
        while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
            let bytes = &rest[..size];
            let Ok(h) = batch::parse_fixed(bytes) else {
                break;
            };
            let last = h.last_offset();
            next = next.max(last + 1);
            batches.push((h.base_offset, last, reads.len(), pos..pos + size));
            if !window_full && last >= p.first_unlearned() {
                window_full = !learn_batch(p, bytes, &h, limits, now_ms, &mut bad);
            }
            pos += size;
            rest = &rest[size..];
        }
        read_bytes += read.len();
        at = next.max(at + 1);
        reads.push(read);
    }
    p.outcomes.bad_headers += bad;
    let Some(&(_, read_last, _, _)) = batches.last() else {
        return Ok(AcquiredData::default());
    };
    let within_end = (read_last + 1).min(p.end());
    let acquired = p.acquire_ordered(owner, now_ms, limits, records_max, within_end, last_ok, persist);
    let last_delivery = acquired
        .iter()
        .any(|a| a.deliveries > 1 && a.deliveries >= limits.delivery_count_limit);
    let wanted: Vec<&(i64, i64, usize, std::ops::Range<usize>)> = batches
        .iter()
        .filter(|(first, last, _, _)| acquired.iter().any(|a| a.first <= *last && *first <= a.last))
        .collect();
    // Side by side in one read (the common case): a slice of it, no copy.
    let contiguous = wanted
        .windows(2)
        .all(|w| w[0].2 == w[1].2 && w[0].3.end == w[1].3.start);
    let records = match (wanted.first(), wanted.last()) {
        (Some(f), Some(l)) if contiguous => reads[f.2].slice(f.3.start..l.3.end),
        _ => {
            let mut out = bytes::BytesMut::new();
            for (_, _, read, range) in &wanted {
                out.extend_from_slice(&reads[*read][range.clone()]);
            }
            out.freeze()
        }
    };
    Ok(AcquiredData {
        records,
        acquired,
        last_delivery,
    })
}

/// Bytes of the log read at a time by [`acquire_ordered_from_log`].
const ORDERED_READ_BYTES: usize = 256 << 10;

/// Every offset of the stored batch `bytes` (header `h`) is learned, in
/// order: those with a record from its headers and key, the others (gaps)
/// with nothing to say. Returns false once the window is full.
fn learn_batch(
    p: &mut SharePartition,
    bytes: &[u8],
    h: &batch::BatchHeader,
    limits: &super::partition::Limits,
    now_ms: i64,
    bad: &mut u64,
) -> bool {
    let span = usize::try_from(h.last_offset_delta).unwrap_or(0) + 1;
    let mut traits = vec![super::partition::RecordTraits::default(); span];
    let _ = crate::records::delivery_headers(bytes, &mut |d| {
        if let Some(t) = usize::try_from(d.offset - h.base_offset)
            .ok()
            .and_then(|i| traits.get_mut(i))
        {
            *t = super::order::traits_of(&d, &limits.order, now_ms, bad);
        }
    });
    for (i, t) in traits.into_iter().enumerate() {
        let offset = h.base_offset + i as i64;
        if !p.learn(offset, t, limits) && offset >= p.end() {
            return false;
        }
    }
    true
}
