//! The rules of one commit, apart from where the state is stored: offsets
//! assigned in order and idempotent producers' sequences checked, as a
//! single partition's log does (`veltrix-log`'s producer state).
//!
//! - same epoch, same first and last sequence as one of the last
//!   [`BATCHES_REMEMBERED`] batches: a duplicate, answered with its offsets;
//! - same epoch, older first sequence not remembered: [`Error::DuplicateSequence`];
//! - same epoch, first sequence right after the last: appended;
//! - same epoch, anything else: [`Error::OutOfOrderSequence`];
//! - older epoch: [`Error::InvalidProducerEpoch`];
//! - newer epoch: accepted from sequence 0 only;
//! - a producer the partition does not know: any sequence.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::catalog::{Appended, BatchEntry, ProducerStamp};
use crate::error::{Error, Result};

/// Batches remembered per producer and partition (Kafka's limit of five
/// requests in flight for an idempotent producer).
pub const BATCHES_REMEMBERED: usize = 5;

/// A partition's key.
pub type PartitionKey = (Arc<str>, i32);
/// A producer's key in one partition.
pub type ProducerKey = (Arc<str>, i32, i64);

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
}

/// A producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub epoch: i16,
    /// Oldest first, at most [`BATCHES_REMEMBERED`].
    pub recent: VecDeque<Remembered>,
}

impl ProducerState {
    /// The state as PostgreSQL stores it: 16 bytes per remembered batch.
    pub fn encode_recent(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.recent.len() * 16);
        for r in &self.recent {
            out.extend_from_slice(&r.first_seq.to_be_bytes());
            out.extend_from_slice(&r.last_seq.to_be_bytes());
            out.extend_from_slice(&r.base_offset.to_be_bytes());
        }
        out
    }

    /// The inverse of [`Self::encode_recent`]; trailing garbage is ignored.
    pub fn decode(epoch: i16, recent: &[u8]) -> Self {
        let recent = recent
            .chunks_exact(16)
            .take(BATCHES_REMEMBERED)
            .map(|c| Remembered {
                first_seq: i32::from_be_bytes(c[0..4].try_into().expect("4 bytes")),
                last_seq: i32::from_be_bytes(c[4..8].try_into().expect("4 bytes")),
                base_offset: i64::from_be_bytes(c[8..16].try_into().expect("8 bytes")),
            })
            .collect();
        ProducerState { epoch, recent }
    }
}

/// The last sequence of a batch: sequences wrap from `i32::MAX` to 0.
pub fn last_seq(first_seq: i32, record_count: i32) -> i32 {
    let last = i64::from(first_seq) + i64::from(record_count.max(1)) - 1;
    (last % (i64::from(i32::MAX) + 1)) as i32
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// The state one commit reads and changes.
#[derive(Debug, Default)]
pub struct CommitState {
    /// Next offset of each partition in the object; absent: unknown partition.
    pub next_offsets: HashMap<PartitionKey, i64>,
    /// State of each producer in the object that the partitions know.
    pub producers: HashMap<ProducerKey, ProducerState>,
}

/// What a commit writes.
#[derive(Debug, Default)]
pub struct CommitPlan {
    /// One per batch, in order.
    pub outcomes: Vec<Result<Appended>>,
    /// Indexes of the batches to insert (new, not duplicates).
    pub new_batches: Vec<usize>,
    /// Partitions whose next offset changed.
    pub changed_partitions: Vec<PartitionKey>,
    /// Producers whose state changed.
    pub changed_producers: Vec<ProducerKey>,
}

/// Decides every batch of an object in order, changing `state`.
pub fn plan(batches: &[BatchEntry], state: &mut CommitState) -> CommitPlan {
    let mut plan = CommitPlan::default();
    for (i, batch) in batches.iter().enumerate() {
        let outcome = decide(batch, state, &mut plan);
        if matches!(outcome, Ok(Appended { duplicate: false, .. })) {
            plan.new_batches.push(i);
        }
        plan.outcomes.push(outcome);
    }
    plan
}

fn decide(batch: &BatchEntry, state: &mut CommitState, plan: &mut CommitPlan) -> Result<Appended> {
    let pkey: PartitionKey = (batch.topic.clone(), batch.partition);
    let Some(&next) = state.next_offsets.get(&pkey) else {
        return Err(Error::UnknownPartition {
            topic: batch.topic.to_string(),
            partition: batch.partition,
        });
    };
    let count = i64::from(batch.record_count.max(1));
    if let Some(stamp) = batch.producer {
        let key = (batch.topic.clone(), batch.partition, stamp.producer_id);
        let last = last_seq(stamp.first_seq, batch.record_count);
        if let Some(found) = check_producer(state.producers.get(&key), stamp, last)? {
            return Ok(found);
        }
        let entry = state.producers.entry(key.clone()).or_insert(ProducerState {
            epoch: stamp.epoch,
            recent: VecDeque::new(),
        });
        if entry.epoch != stamp.epoch {
            entry.epoch = stamp.epoch;
            entry.recent.clear();
        }
        if entry.recent.len() == BATCHES_REMEMBERED {
            entry.recent.pop_front();
        }
        entry.recent.push_back(Remembered {
            first_seq: stamp.first_seq,
            last_seq: last,
            base_offset: next,
        });
        if !plan.changed_producers.contains(&key) {
            plan.changed_producers.push(key);
        }
    }
    state.next_offsets.insert(pkey.clone(), next + count);
    if !plan.changed_partitions.contains(&pkey) {
        plan.changed_partitions.push(pkey);
    }
    Ok(Appended {
        base_offset: next,
        last_offset: next + count - 1,
        duplicate: false,
    })
}

/// `Ok(Some)`: a duplicate's original offsets; `Ok(None)`: append it.
fn check_producer(state: Option<&ProducerState>, stamp: ProducerStamp, last: i32) -> Result<Option<Appended>> {
    let Some(state) = state else { return Ok(None) };
    let id = stamp.producer_id;
    if stamp.epoch < state.epoch {
        return Err(Error::InvalidProducerEpoch {
            producer_id: id,
            current: state.epoch,
            got: stamp.epoch,
        });
    }
    if stamp.epoch > state.epoch {
        return if stamp.first_seq == 0 {
            Ok(None)
        } else {
            Err(Error::OutOfOrderSequence {
                producer_id: id,
                expected: 0,
                got: stamp.first_seq,
            })
        };
    }
    if let Some(r) = state
        .recent
        .iter()
        .find(|r| r.first_seq == stamp.first_seq && r.last_seq == last)
    {
        let span = i64::from(last.wrapping_sub(stamp.first_seq).max(0));
        return Ok(Some(Appended {
            base_offset: r.base_offset,
            last_offset: r.base_offset + span,
            duplicate: true,
        }));
    }
    let Some(newest) = state.recent.back() else {
        return Ok(None);
    };
    let expected = next_seq(newest.last_seq);
    if stamp.first_seq == expected {
        return Ok(None);
    }
    let oldest = state.recent.front().map_or(expected, |r| r.first_seq);
    if stamp.first_seq < oldest && oldest <= newest.last_seq {
        return Err(Error::DuplicateSequence {
            producer_id: id,
            first_seq: stamp.first_seq,
        });
    }
    Err(Error::OutOfOrderSequence {
        producer_id: id,
        expected,
        got: stamp.first_seq,
    })
}

#[cfg(test)]
mod tests;
