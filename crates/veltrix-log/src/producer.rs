//! Idempotent producers: per-partition sequence state, duplicates and fencing.
//!
//! A Kafka idempotent producer stamps each batch with its producer id, epoch and
//! the sequence number of its first record. The log keeps, per producer id, the
//! epoch and the last [`BATCHES_CACHED`] batches it appended (first and last
//! sequence, offsets). An append is then checked, under the same lock that orders
//! appends, against that state:
//!
//! - same epoch, same first and last sequence as a cached batch: a retry of a batch
//!   already in the log. Nothing is written; the caller gets the original offsets.
//! - same epoch, first sequence right after the last one: appended.
//! - same epoch, any other sequence: refused ([`LogError::OutOfOrderSequence`]).
//! - an older epoch: refused ([`LogError::InvalidProducerEpoch`]), the producer was
//!   fenced by a newer instance.
//! - a newer epoch: accepted only from sequence 0.
//! - a producer id the partition has no state for: accepted with any sequence, as
//!   Kafka does, since the state may have expired while the producer was idle.
//!
//! # Durability
//!
//! The state is a function of the batch headers in the log, so it can always be
//! rebuilt by walking them. To keep that walk short, a snapshot of the state as of
//! an offset is written whenever a segment is sealed (at the new segment's base) and
//! at a clean close (at the log end), as `<offset>.producers` with a CRC32C. Opening
//! a log loads the newest valid snapshot at or below the recovered end and replays
//! the headers after it, normally just the active segment, which recovery has read
//! anyway. A lost or damaged snapshot costs a longer walk, never a wrong answer.
//!
//! # Limits
//!
//! # Transactions
//!
//! The same state follows the producers' transactions in this partition
//! ([`crate::txn`]): a transactional batch is checked as any idempotent one
//! and opens its producer's transaction here; a control batch (a marker the
//! broker writes, with no sequence) ends it, and may carry a newer epoch (the
//! coordinator fenced the producer), after which the older epoch is refused.
//! Snapshots keep the open transactions and the aborted ones.
//!
//! A producer that has not appended for `producer_id_expiration_ms` is forgotten,
//! and at most `producers_max` producers are remembered per partition; when a new
//! one arrives at the limit the least recently active one is forgotten, with a
//! warning. A forgotten producer is treated as unknown on its next append.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::error::{LogError, Result};
use crate::io::{OpenMode, Storage, StorageFile, child};
use crate::segment::parse_file_name;
use crate::txn::{CONTROL_KEY_BYTES_MAX, ControlType, Transactions, control_type};

/// Batches remembered per producer for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_CACHED: usize = 5;
/// Extension of producer state snapshots.
pub(crate) const SNAPSHOT_EXT: &str = "producers";
/// Snapshots kept; the older one is the fallback if the newest is damaged.
const SNAPSHOTS_KEPT: usize = 2;
/// Snapshots before transactions, still read (as having none open).
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"VXPRD001";
const SNAPSHOT_MAGIC: &[u8; 8] = b"VXPRD002";
/// Largest snapshot file read: far above what `producers_max` allows.
const SNAPSHOT_BYTES_LIMIT: u64 = 256 << 20;
const ENTRY_HEAD_BYTES: usize = 8 + 2 + 8 + 1;
const BATCH_META_BYTES: usize = 4 + 4 + 8 + 4;
/// Bytes read at a time when walking batch headers.
const WALK_BUFFER_BYTES: usize = 256 << 10;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) base_offset: i64,
    pub(crate) last_offset_delta: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    /// Oldest first, at most [`BATCHES_CACHED`].
    batches: VecDeque<BatchMeta>,
    /// Wall time of the last append (or of the open that replayed it).
    last_seen_ms: i64,
}

/// What an append of a batch must do, per the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not an idempotent batch, or a valid next batch: write it.
    Append,
    /// A retry of a batch already in the log, at these offsets.
    Duplicate(BatchMeta),
}

/// Sequence state of every producer of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Producers {
    entries: HashMap<i64, Entry>,
    /// Their transactions in this partition.
    pub(crate) txns: Transactions,
}

/// The last sequence of a batch, wrapping past `i32::MAX` to 0 as producers do.
fn last_sequence(first: i32, last_offset_delta: i32) -> i32 {
    let last = i64::from(first) + i64::from(last_offset_delta);
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

/// Whether a batch carries idempotent producer fields at all.
pub(crate) fn is_idempotent(h: &BatchHeader) -> bool {
    h.producer_id >= 0
}

impl Producers {
    /// The epoch the state holds for `producer_id`.
    pub(crate) fn epoch(&self, producer_id: i64) -> Option<i16> {
        self.entries.get(&producer_id).map(|e| e.epoch)
    }

    /// Producers remembered.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// `(producer id, base offset)` of every batch the state remembers:
    /// compaction keeps these batches (emptied of records if need be), so
    /// that a replay of the headers rebuilds the same state.
    pub(crate) fn retained_batches(&self) -> std::collections::HashSet<(i64, i64)> {
        self.entries
            .iter()
            .flat_map(|(pid, e)| e.batches.iter().map(move |b| (*pid, b.base_offset)))
            .collect()
    }

    /// Checks a producer's batch against the state. Changes nothing.
    pub(crate) fn check(&self, h: &BatchHeader) -> Result<Verdict> {
        if !is_idempotent(h) {
            return Ok(Verdict::Append);
        }
        if h.is_control() {
            // A marker: no sequence; an epoch older than the producer's is a
            // fenced producer's.
            return match self.entries.get(&h.producer_id) {
                Some(e) if h.producer_epoch < e.epoch => Err(LogError::InvalidProducerEpoch {
                    producer_id: h.producer_id,
                    current: e.epoch,
                    got: h.producer_epoch,
                }),
                _ => Ok(Verdict::Append),
            };
        }
        if h.producer_epoch < 0 || h.base_sequence < 0 {
            return Err(LogError::InvalidProducerFields {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                sequence: h.base_sequence,
            });
        }
        let Some(entry) = self.entries.get(&h.producer_id) else {
            return Ok(Verdict::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                current: entry.epoch,
                got: h.producer_epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                Ok(Verdict::Append)
            } else {
                Err(LogError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                })
            };
        }
        let last_seq = last_sequence(h.base_sequence, h.last_offset_delta);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(Verdict::Duplicate(*dup));
        }
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_seq, h.base_sequence) => Err(LogError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected: if last.last_seq == i32::MAX {
                    0
                } else {
                    last.last_seq + 1
                },
                got: h.base_sequence,
            }),
            _ => Ok(Verdict::Append),
        }
    }

    /// Records a batch written at `h.base_offset`; `control` is what it says
    /// if it is a control batch. `producers_max` bounds the number of
    /// producers; returns the producer forgotten to make room, if any.
    pub(crate) fn record(
        &mut self,
        h: &BatchHeader,
        control: Option<ControlType>,
        now_ms: i64,
        producers_max: usize,
    ) -> Option<i64> {
        if !is_idempotent(h) {
            return None;
        }
        self.txns.record(h, control);
        if h.is_control() {
            if let Some(e) = self.entries.get_mut(&h.producer_id) {
                if h.producer_epoch > e.epoch {
                    // Fenced: the next batch is the new epoch's first.
                    e.epoch = h.producer_epoch;
                    e.batches.clear();
                }
                e.last_seen_ms = e.last_seen_ms.max(now_ms);
            }
            return None;
        }
        let mut evicted = None;
        if !self.entries.contains_key(&h.producer_id) && self.entries.len() >= producers_max.max(1) {
            evicted = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_seen_ms)
                .map(|(pid, _)| *pid);
            if let Some(pid) = evicted {
                self.entries.remove(&pid);
            }
        }
        let entry = self.entries.entry(h.producer_id).or_insert_with(|| Entry {
            epoch: h.producer_epoch,
            batches: VecDeque::with_capacity(BATCHES_CACHED),
            last_seen_ms: now_ms,
        });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_CACHED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
            base_offset: h.base_offset,
            last_offset_delta: h.last_offset_delta,
        });
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
        evicted
    }

    /// Forgets producers idle for at least `expiration_ms`; returns how many.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: u64) -> usize {
        let before = self.entries.len();
        let horizon = now_ms.saturating_sub(i64::try_from(expiration_ms).unwrap_or(i64::MAX));
        self.entries.retain(|_, e| e.last_seen_ms > horizon);
        before - self.entries.len()
    }

    fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(
            SNAPSHOT_MAGIC.len() + 8 + self.entries.len() * (ENTRY_HEAD_BYTES + BATCHES_CACHED * BATCH_META_BYTES),
        );
        buf.extend_from_slice(SNAPSHOT_MAGIC);
        buf.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        let mut pids: Vec<&i64> = self.entries.keys().collect();
        pids.sort_unstable();
        for pid in pids {
            let e = &self.entries[pid];
            buf.extend_from_slice(&pid.to_be_bytes());
            buf.extend_from_slice(&e.epoch.to_be_bytes());
            buf.extend_from_slice(&e.last_seen_ms.to_be_bytes());
            buf.push(e.batches.len() as u8);
            for b in &e.batches {
                buf.extend_from_slice(&b.first_seq.to_be_bytes());
                buf.extend_from_slice(&b.last_seq.to_be_bytes());
                buf.extend_from_slice(&b.base_offset.to_be_bytes());
                buf.extend_from_slice(&b.last_offset_delta.to_be_bytes());
            }
        }
        buf.reserve(self.txns.encoded_len() + 4);
        self.txns.encode_into(&mut buf);
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        buf
    }

    /// Decodes a snapshot; `None` if it is damaged in any way.
    fn decode(buf: &[u8]) -> Option<Producers> {
        let body_len = buf.len().checked_sub(4)?;
        let (body, crc) = buf.split_at(body_len);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader(body);
        let magic = r.take(8)?;
        let with_txns = magic == SNAPSHOT_MAGIC;
        if !with_txns && magic != SNAPSHOT_MAGIC_V1 {
            return None;
        }
        let count = u32::from_be_bytes(r.take(4)?.try_into().ok()?) as usize;
        // Every entry takes at least its head: a count the bytes cannot hold is damage.
        if count > r.0.len() / ENTRY_HEAD_BYTES {
            return None;
        }
        let mut entries = HashMap::with_capacity(count);
        for _ in 0..count {
            let pid = r.i64()?;
            let epoch = i16::from_be_bytes(r.take(2)?.try_into().ok()?);
            let last_seen_ms = r.i64()?;
            let n = usize::from(r.take(1)?[0]);
            if pid < 0 || epoch < 0 || n > BATCHES_CACHED {
                return None;
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                    last_offset_delta: r.i32()?,
                });
            }
            entries.insert(
                pid,
                Entry {
                    epoch,
                    batches,
                    last_seen_ms,
                },
            );
        }
        let txns = if with_txns {
            let (txns, rest) = Transactions::decode(r.0)?;
            r.0 = rest;
            txns
        } else {
            Transactions::default()
        };
        r.0.is_empty().then_some(Producers { entries, txns })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

pub(crate) fn snapshot_file_name(offset: i64) -> String {
    format!("{offset:020}.{SNAPSHOT_EXT}")
}

/// Offsets of the snapshot files in `names`, ascending.
pub(crate) fn snapshot_offsets(names: &[String]) -> Vec<i64> {
    let mut offsets: Vec<i64> = names.iter().filter_map(|n| parse_file_name(n, SNAPSHOT_EXT)).collect();
    offsets.sort_unstable();
    offsets
}

/// Durably writes the state as of `offset` and removes all but the newest
/// [`SNAPSHOTS_KEPT`] snapshots.
pub(crate) fn write_snapshot(storage: &dyn Storage, dir: &Path, offset: i64, state: &Producers) -> std::io::Result<()> {
    crate::checkpoint::replace_file(storage, dir, &snapshot_file_name(offset), &state.encode())?;
    let offsets = snapshot_offsets(&storage.list_dir(dir)?);
    for old in offsets.iter().rev().skip(SNAPSHOTS_KEPT) {
        storage.remove_file(&child(dir, &snapshot_file_name(*old)))?;
    }
    Ok(())
}

/// A producer state snapshot as loaded.
pub(crate) struct Snapshot {
    /// The offset the state holds up to: headers from here on are replayed.
    pub(crate) offset: i64,
    pub(crate) producers: Producers,
}

/// Loads the newest valid snapshot at or below `end`; removes snapshots above it
/// (offsets a recovery cut off). `None` when there is no usable snapshot.
pub(crate) fn load_snapshot(storage: &dyn Storage, dir: &Path, end: i64) -> Result<Option<Snapshot>> {
    let names = storage.list_dir(dir).map_err(|e| LogError::io("list", dir, e))?;
    for offset in snapshot_offsets(&names).into_iter().rev() {
        let path = child(dir, &snapshot_file_name(offset));
        if offset > end {
            tracing::info!(path = %path.display(), end, "removing a producer snapshot past the recovered end");
            storage
                .remove_file(&path)
                .map_err(|e| LogError::io("remove", &path, e))?;
            continue;
        }
        let file = storage
            .open(&path, OpenMode::Existing)
            .map_err(|e| LogError::io("open", &path, e))?;
        let len = file.len().map_err(|e| LogError::io("stat", &path, e))?;
        let decoded = if len <= SNAPSHOT_BYTES_LIMIT {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, 0)
                .map_err(|e| LogError::io("read", &path, e))?;
            Producers::decode(&buf)
        } else {
            None
        };
        match decoded {
            Some(producers) => return Ok(Some(Snapshot { offset, producers })),
            None => {
                tracing::warn!(path = %path.display(), "damaged producer snapshot ignored; falling back to an older one")
            }
        }
    }
    Ok(None)
}

/// Feeds every batch header in `file[0..size)` whose base offset is at least
/// `from` to `visit`, reading only the fixed header fields, a buffer at a time.
///
/// The bytes were verified when appended or recovered, but recovery keeps damage
/// below its recovery point in place; a header that does not fit (bad fields, an
/// offset outside the segment or not after the previous batch) ends the walk and
/// returns `Ok(false)`.
pub(crate) fn walk_headers(
    file: &dyn StorageFile,
    path: &Path,
    (size, next): (u64, i64),
    from: i64,
    mut visit: impl FnMut(&BatchHeader, Option<ControlType>),
) -> Result<bool> {
    let mut buf = vec![0u8; WALK_BUFFER_BYTES];
    let mut pos = 0u64;
    let mut expected = i64::MIN;
    while pos + HEADER_BYTES as u64 <= size {
        let want = (size - pos).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..want], pos)
            .map_err(|e| LogError::io("read", path, e))?;
        let mut at = 0usize;
        while at + HEADER_BYTES <= want {
            let Ok(h) = batch::parse_fixed(&buf[at..at + HEADER_BYTES]) else {
                return Ok(false);
            };
            let fits = h.base_offset >= expected
                && h.next_offset() <= next
                // Fewer records than offsets: a batch the duplicate filter
                // thinned (see `batch::verify_filtered_batch`).
                && i64::from(h.record_count) <= i64::from(h.last_offset_delta) + 1;
            if !fits {
                return Ok(false);
            }
            if h.base_offset >= from {
                let control = if !h.is_control() {
                    None
                } else if at + h.size <= want {
                    control_type(&buf[at..at + h.size])
                } else {
                    // The marker's record is past the buffer: read its start.
                    let mut head = vec![0u8; h.size.min(HEADER_BYTES + CONTROL_KEY_BYTES_MAX)];
                    file.read_exact_at(&mut head, pos + at as u64)
                        .map_err(|e| LogError::io("read", path, e))?;
                    control_type(&head)
                };
                visit(&h, control);
            }
            expected = h.next_offset();
            at += h.size;
        }
        pos += at as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            size: HEADER_BYTES,
            leader_epoch: 0,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(4, 5));
        assert!(!in_sequence(4, 6));
    }

    #[test]
    fn only_the_last_five_batches_are_recognised_as_duplicates() {
        let mut p = Producers::default();
        for i in 0..6 {
            let h = header(7, 0, i * 2, 2, i64::from(i) * 2);
            assert_eq!(p.check(&h).unwrap(), Verdict::Append);
            p.record(&h, None, 0, 10);
        }
        // Batch 0 fell out of the cache: a retry of it is now out of order.
        assert!(matches!(
            p.check(&header(7, 0, 0, 2, -1)),
            Err(LogError::OutOfOrderSequence { expected: 12, .. })
        ));
        match p.check(&header(7, 0, 2, 2, -1)).unwrap() {
            Verdict::Duplicate(meta) => assert_eq!(meta.base_offset, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut p = Producers::default();
        p.record(&header(1, 3, 0, 1, 0), None, 0, 10);
        assert!(matches!(
            p.check(&header(1, 2, 1, 1, -1)),
            Err(LogError::InvalidProducerEpoch { current: 3, got: 2, .. })
        ));
        assert!(matches!(
            p.check(&header(1, 4, 5, 1, -1)),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(p.check(&header(1, 4, 0, 1, -1)).unwrap(), Verdict::Append);
    }

    #[test]
    fn at_the_limit_the_least_recently_seen_producer_is_forgotten() {
        let mut p = Producers::default();
        p.record(&header(1, 0, 0, 1, 0), None, 100, 2);
        p.record(&header(2, 0, 0, 1, 1), None, 50, 2);
        assert_eq!(p.record(&header(3, 0, 0, 1, 2), None, 200, 2), Some(2));
        assert_eq!(p.len(), 2);
        assert_eq!(p.expire(1_000, 850), 1);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn snapshots_round_trip_and_reject_any_damage() {
        let mut p = Producers::default();
        for pid in 0..20 {
            for seq in 0..7 {
                p.record(&header(pid, 1, seq, 1, pid * 100 + i64::from(seq)), None, pid, 100);
            }
        }
        let bytes = p.encode();
        assert_eq!(Producers::decode(&bytes), Some(p));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert_eq!(Producers::decode(&bad), None, "flip at byte {i}");
        }
        assert_eq!(Producers::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Producers::decode(&[]), None);
    }
}
