//! Transactions as one partition sees them: which producers have a
//! transaction open here (from their first transactional batch to the marker
//! that ends it), where the last stable offset is, and which ranges of the
//! log aborted transactions left behind.
//!
//! Like the producers' sequence state, this is a function of the log: a
//! transactional batch opens (or continues) its producer's transaction, a
//! control batch (a marker, see [`control_type`]) closes it, and an abort
//! marker adds `(producer id, first offset, marker offset)` to the aborted
//! list. It is kept in the producer snapshots and rebuilt from the batches
//! after the newest one, so it survives a crash without a file of its own.
//!
//! The last stable offset (LSO) is the first offset of the oldest open
//! transaction, or the high watermark when none is open: a `read_committed`
//! consumer reads up to it, and drops the records of the aborted transactions
//! the fetch names in the range it read.

use std::collections::{HashMap, VecDeque};

use crate::batch::{BatchHeader, HEADER_BYTES};

/// What a control batch says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// An aborted transaction's range in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Its first batch's offset.
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
}

/// The type of the control batch `batch` (the whole batch, header included):
/// its first record's key is a version (int16, 0) and a type (int16: 0
/// abort, 1 commit). `None` for anything else, a control batch of another
/// type included (Kafka skips those too).
pub fn control_type(batch: &[u8]) -> Option<ControlType> {
    let body = batch.get(HEADER_BYTES..)?;
    let mut r = Varints(body);
    let _length = r.varint()?;
    let _attributes = r.byte()?;
    let _timestamp_delta = r.varint()?;
    let _offset_delta = r.varint()?;
    let key_length = r.varint()?;
    if key_length < 4 {
        return None;
    }
    let key = r.take(4)?;
    let version = i16::from_be_bytes([key[0], key[1]]);
    let kind = i16::from_be_bytes([key[2], key[3]]);
    match (version, kind) {
        (0, 0) => Some(ControlType::Abort),
        (0, 1) => Some(ControlType::Commit),
        _ => None,
    }
}

/// Bytes of a batch's body [`control_type`] reads at most.
pub const CONTROL_KEY_BYTES_MAX: usize = 5 + 1 + 10 + 5 + 5 + 4;

struct Varints<'a>(&'a [u8]);

impl<'a> Varints<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A zig-zag varint of at most 10 bytes.
    fn varint(&mut self) -> Option<i64> {
        let mut raw = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        None
    }
}

/// The transactions of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Transactions {
    /// Producer id → first offset of its open transaction here.
    open: HashMap<i64, i64>,
    /// Oldest marker first.
    aborted: VecDeque<AbortedTxn>,
}

impl Transactions {
    /// Takes the batch at `h` into account; `control` is what it says if it
    /// is a control batch.
    pub(crate) fn record(&mut self, h: &BatchHeader, control: Option<ControlType>) {
        if h.producer_id < 0 {
            return;
        }
        if h.is_control() {
            let Some(first_offset) = self.open.remove(&h.producer_id) else {
                // No transaction open here: a marker written again after a
                // crash, or for a transaction that wrote nothing here.
                return;
            };
            if control == Some(ControlType::Abort) {
                self.aborted.push_back(AbortedTxn {
                    producer_id: h.producer_id,
                    first_offset,
                    last_offset: h.base_offset,
                });
            }
        } else if h.is_transactional() {
            self.open.entry(h.producer_id).or_insert(h.base_offset);
        }
    }

    /// The first offset of the oldest open transaction.
    pub(crate) fn first_unstable(&self) -> Option<i64> {
        self.open.values().min().copied()
    }

    /// The aborted transactions whose ranges meet `[from, to)`, oldest
    /// marker first.
    pub(crate) fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Ranges may nest in any order by first offset; markers are in
        // order, so everything ending before `from` is skipped at once.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .iter()
            .skip(start)
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly before `log_start` (retention or
    /// DeleteRecords removed them).
    pub(crate) fn trim(&mut self, log_start: i64) {
        while self.aborted.front().is_some_and(|a| a.last_offset < log_start) {
            self.aborted.pop_front();
        }
    }

    /// `(producer id, first offset)` of every transaction open here.
    pub(crate) fn open(&self) -> Vec<(i64, i64)> {
        let mut open: Vec<(i64, i64)> = self.open.iter().map(|(p, f)| (*p, *f)).collect();
        open.sort_unstable();
        open
    }

    /// The first offset of `producer_id`'s transaction open here.
    pub(crate) fn open_since(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    /// Transactions open here.
    pub(crate) fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Aborted transactions remembered.
    pub(crate) fn aborted_count(&self) -> usize {
        self.aborted.len()
    }

    /// Bytes [`Transactions::encode_into`] writes.
    pub(crate) fn encoded_len(&self) -> usize {
        8 + self.open.len() * 16 + self.aborted.len() * 24
    }

    pub(crate) fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&(self.open.len() as u32).to_be_bytes());
        let mut open: Vec<(&i64, &i64)> = self.open.iter().collect();
        open.sort_unstable();
        for (pid, first) in open {
            buf.extend_from_slice(&pid.to_be_bytes());
            buf.extend_from_slice(&first.to_be_bytes());
        }
        buf.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for a in &self.aborted {
            buf.extend_from_slice(&a.producer_id.to_be_bytes());
            buf.extend_from_slice(&a.first_offset.to_be_bytes());
            buf.extend_from_slice(&a.last_offset.to_be_bytes());
        }
    }

    /// Decodes what [`Transactions::encode_into`] wrote at the start of
    /// `buf`; returns it and the bytes after it. `None` on any damage.
    pub(crate) fn decode(buf: &[u8]) -> Option<(Transactions, &[u8])> {
        let mut r = Fixed(buf);
        let open_count = r.u32()? as usize;
        if open_count > r.0.len() / 16 {
            return None;
        }
        let mut open = HashMap::with_capacity(open_count);
        for _ in 0..open_count {
            let (pid, first) = (r.i64()?, r.i64()?);
            if pid < 0 || first < 0 || open.insert(pid, first).is_some() {
                return None;
            }
        }
        let aborted_count = r.u32()? as usize;
        if aborted_count > r.0.len() / 24 {
            return None;
        }
        let mut aborted = VecDeque::with_capacity(aborted_count);
        let mut previous = i64::MIN;
        for _ in 0..aborted_count {
            let a = AbortedTxn {
                producer_id: r.i64()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
            };
            if a.producer_id < 0 || a.first_offset > a.last_offset || a.last_offset <= previous {
                return None;
            }
            previous = a.last_offset;
            aborted.push_back(a);
        }
        Some((Transactions { open, aborted }, r.0))
    }
}

struct Fixed<'a>(&'a [u8]);

impl Fixed<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.0.len() < N {
            return None;
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{self, build};

    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;

    fn header(base_offset: i64, producer_id: i64, attributes: i16) -> BatchHeader {
        let mut bytes = build::batch(
            build::Spec {
                producer_id,
                producer_epoch: 0,
                base_sequence: if attributes & CONTROL != 0 { -1 } else { 0 },
                attributes,
                ..build::Spec::default()
            },
            batch::HEADER_BYTES,
            0,
        );
        bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
        batch::parse_fixed(&bytes[..batch::HEADER_BYTES]).unwrap()
    }

    /// A control batch's body: one record whose key is version 0, `kind`.
    fn control_body(kind: i16) -> Vec<u8> {
        let mut record = vec![0u8]; // attributes
        record.push(0); // timestamp delta 0
        record.push(0); // offset delta 0
        record.push(8); // key length 4, zig-zag
        record.extend_from_slice(&0i16.to_be_bytes());
        record.extend_from_slice(&kind.to_be_bytes());
        record.push(12); // value length 6
        record.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        record.push(0); // no headers
        let mut body = vec![(record.len() as u8) << 1];
        body.extend_from_slice(&record);
        let mut batch = vec![0u8; batch::HEADER_BYTES];
        batch.extend_from_slice(&body);
        batch
    }

    #[test]
    fn a_control_record_says_commit_or_abort_and_nothing_else_is_taken_for_one() {
        assert_eq!(control_type(&control_body(0)), Some(ControlType::Abort));
        assert_eq!(control_type(&control_body(1)), Some(ControlType::Commit));
        assert_eq!(control_type(&control_body(2)), None, "another control type");
        let body = control_body(1);
        for cut in batch::HEADER_BYTES..body.len() - 8 {
            assert_eq!(control_type(&body[..cut]), None, "cut at {cut}");
        }
        assert_eq!(control_type(&[0xff; 80]), None, "a varint that never ends");
    }

    #[test]
    fn the_stable_offset_waits_for_the_oldest_open_transaction() {
        let mut t = Transactions::default();
        assert_eq!(t.first_unstable(), None);
        t.record(&header(0, 1, 0), None);
        assert_eq!(t.first_unstable(), None, "a batch outside a transaction");
        t.record(&header(5, 7, TRANSACTIONAL), None);
        t.record(&header(8, 9, TRANSACTIONAL), None);
        t.record(&header(9, 7, TRANSACTIONAL), None);
        assert_eq!(t.first_unstable(), Some(5));
        t.record(&header(10, 7, TRANSACTIONAL | CONTROL), Some(ControlType::Commit));
        assert_eq!(t.first_unstable(), Some(8));
        t.record(&header(11, 9, TRANSACTIONAL | CONTROL), Some(ControlType::Abort));
        assert_eq!(t.first_unstable(), None);
        assert_eq!(
            t.aborted_between(0, 100),
            vec![AbortedTxn {
                producer_id: 9,
                first_offset: 8,
                last_offset: 11
            }]
        );
        // A marker again (written twice after a crash) changes nothing.
        t.record(&header(12, 9, TRANSACTIONAL | CONTROL), Some(ControlType::Abort));
        assert_eq!(t.aborted_count(), 1);
    }

    #[test]
    fn aborted_ranges_are_found_by_overlap_and_trimmed_by_the_log_start() {
        let mut t = Transactions::default();
        // pid 1: 0..=10 aborted; pid 2: 3..=4 aborted; pid 3: 20..=30 aborted.
        t.record(&header(0, 1, TRANSACTIONAL), None);
        t.record(&header(3, 2, TRANSACTIONAL), None);
        t.record(&header(4, 2, TRANSACTIONAL | CONTROL), Some(ControlType::Abort));
        t.record(&header(10, 1, TRANSACTIONAL | CONTROL), Some(ControlType::Abort));
        t.record(&header(20, 3, TRANSACTIONAL), None);
        t.record(&header(30, 3, TRANSACTIONAL | CONTROL), Some(ControlType::Abort));
        let pids = |v: Vec<AbortedTxn>| v.into_iter().map(|a| a.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(t.aborted_between(0, 3)), [1]);
        assert_eq!(pids(t.aborted_between(4, 5)), [2, 1]);
        assert_eq!(pids(t.aborted_between(5, 20)), [1]);
        assert_eq!(pids(t.aborted_between(11, 20)), Vec::<i64>::new());
        assert_eq!(pids(t.aborted_between(11, 21)), [3]);
        t.trim(5);
        assert_eq!(pids(t.aborted_between(0, 100)), [1, 3]);
        t.trim(31);
        assert_eq!(t.aborted_count(), 0);
    }

    #[test]
    fn the_state_round_trips_and_damage_is_refused() {
        let mut t = Transactions::default();
        t.record(&header(0, 1, TRANSACTIONAL), None);
        t.record(&header(1, 2, TRANSACTIONAL), None);
        t.record(&header(2, 2, TRANSACTIONAL | CONTROL), Some(ControlType::Abort));
        let mut buf = Vec::new();
        t.encode_into(&mut buf);
        assert_eq!(buf.len(), t.encoded_len());
        buf.extend_from_slice(b"rest");
        let (back, rest) = Transactions::decode(&buf).unwrap();
        assert_eq!(back, t);
        assert_eq!(rest, b"rest");
        for cut in 0..t.encoded_len() {
            assert!(Transactions::decode(&buf[..cut]).is_none(), "cut at {cut}");
        }
        let mut lying = buf.clone();
        lying[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Transactions::decode(&lying).is_none(), "a count the bytes cannot hold");
    }
}
