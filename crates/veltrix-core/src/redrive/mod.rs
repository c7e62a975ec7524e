//! Redrive: dead letters copied back to the topic they came from (or
//! another), selected by group, reason, time, offsets or a header, at a
//! limited rate, and never twice.
//!
//! A redrive is a durable job. It walks each partition of the dead-letter
//! topic from the log start to the end the topic had when the job started,
//! and moves the letters it selects in steps of a fixed number of records.
//! A step appends one batch to one target partition, stamped by the job's
//! own idempotent producer id with the next sequence of that partition,
//! waits until it is durable, and then stores the job's progress and the
//! letters now redriven, in one record of the redrive store. A crash between
//! the append and that record makes the job, when the broker is back, build
//! the same step again (the same letters, the same sequence), which the
//! target partition's producer state recognises as a batch it has and does
//! not write twice. Letters once redriven are remembered per dead-letter
//! partition, so a second redrive of the same selection moves nothing.
//!
//! The store is behind [`RedriveStore`] (a change log on local disk here).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use veltrix_log::Env;

use crate::changelog::ChangeLog;
use crate::error::Result;

mod run;
#[cfg(test)]
mod tests;

pub use run::{LetterFilter, LetterView, RedrivePlan};

/// Redrive jobs kept (running and finished); the oldest finished one is
/// forgotten to make room.
pub const REDRIVE_JOBS_MAX: usize = 100;
/// Redriven ranges remembered per dead-letter partition; a redrive that
/// would need more (a selection riddled with gaps) stops with an error.
pub const REDRIVEN_RANGES_MAX: usize = 100_000;
/// The fastest redrive, in records per second.
pub const RATE_RECORDS_PER_SECOND_MAX: u32 = 100_000;
/// The rate of a redrive that names none.
pub const RATE_RECORDS_PER_SECOND_DEFAULT: u32 = 1_000;
/// Records per step at most (one batch).
pub const STEP_RECORDS_MAX: u32 = 500;

/// What to redrive: the letters of `topic` that match every filter given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveSpec {
    /// The dead-letter topic.
    pub topic: String,
    /// Where the letters go; `None`: each to the topic it came from
    /// (`__dlq.errors.topic`), to the partition it came from.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(flatten)]
    pub filter: LetterFilter,
    /// Records moved per second at most.
    #[serde(default)]
    pub records_per_second: Option<u32>,
}

impl RedriveSpec {
    pub fn rate(&self) -> u32 {
        self.records_per_second
            .unwrap_or(RATE_RECORDS_PER_SECOND_DEFAULT)
            .clamp(1, RATE_RECORDS_PER_SECOND_MAX)
    }

    /// Records per step: a tenth of a second's worth, 1 to [`STEP_RECORDS_MAX`].
    pub fn step_records(&self) -> u32 {
        (self.rate() / 10).clamp(1, STEP_RECORDS_MAX)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum JobState {
    Running,
    Done,
    Failed(String),
}

/// A redrive job and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveJob {
    pub id: u64,
    pub spec: RedriveSpec,
    /// The dead-letter topic's id (hex): a topic deleted and made again is
    /// another topic.
    pub topic_id: String,
    /// The job's idempotent producer.
    pub producer_id: i64,
    pub created_ms: i64,
    pub state: JobState,
    /// Per dead-letter partition: the end when the job started (letters
    /// written later are not its business) and the next offset to look at.
    pub partitions: Vec<JobPartition>,
    /// Per target partition: the next sequence of the job's producer.
    pub sequences: Vec<(String, i32, i32)>,
    /// Letters moved, and letters looked at and left (not selected, already
    /// redriven, their target gone).
    pub moved: u64,
    pub skipped: u64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPartition {
    pub partition: i32,
    pub next: i64,
    pub end: i64,
}

impl RedriveJob {
    pub fn sequence(&self, topic: &str, partition: i32) -> i32 {
        self.sequences
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map_or(0, |(_, _, s)| *s)
    }

    fn advance_sequence(&mut self, topic: &str, partition: i32, by: i32) {
        match self
            .sequences
            .iter_mut()
            .find(|(t, p, _)| t == topic && *p == partition)
        {
            Some((_, _, s)) => *s = s.wrapping_add(by),
            None => self.sequences.push((topic.to_owned(), partition, by)),
        }
    }

    /// Letters still to look at.
    pub fn remaining(&self) -> i64 {
        self.partitions.iter().map(|p| (p.end - p.next).max(0)).sum()
    }
}

/// One durable change of redrive state. (Written once per step, a few
/// hundred bytes each: the size of the largest variant does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedriveChange {
    /// A job, whole (created, a step taken, finished), and the letters that
    /// step moved: (partition, first offset, last offset) of its dead-letter
    /// topic.
    Job {
        job: RedriveJob,
        redriven: Vec<(i32, i64, i64)>,
    },
    /// A job forgotten (to make room).
    Forget { id: u64 },
    /// Every redriven range of a dead-letter topic, whole (a snapshot).
    Redriven {
        topic_id: String,
        ranges: Vec<(i32, i64, i64)>,
    },
}

/// Durable redrive state behind a narrow interface.
pub trait RedriveStore: Send + Sync + std::fmt::Debug {
    /// Every change to replay, oldest first; called once, at open.
    fn replay(&self) -> Result<Vec<RedriveChange>>;
    /// Stores `change` durably.
    fn write(&self, change: &RedriveChange, now_ms: i64) -> Result<()>;
    fn compaction_due(&self) -> bool;
    /// Replaces everything stored by `state`, durably.
    fn replace_with(&self, state: Vec<RedriveChange>, now_ms: i64) -> Result<()>;
    fn close(&self);
}

/// The redrive store on local disk: a [`ChangeLog`] under `redrive/`.
#[derive(Debug)]
pub struct LogRedriveStore {
    log: ChangeLog,
    replayed: Mutex<Option<Vec<RedriveChange>>>,
}

impl LogRedriveStore {
    pub fn open(env: Arc<Env>, dir: &Path) -> Result<LogRedriveStore> {
        let (log, changes) = ChangeLog::open_snapshotted(env, dir, "redrive")?;
        Ok(LogRedriveStore {
            log,
            replayed: Mutex::new(Some(changes)),
        })
    }
}

impl RedriveStore for LogRedriveStore {
    fn replay(&self) -> Result<Vec<RedriveChange>> {
        Ok(lock(&self.replayed).take().unwrap_or_default())
    }

    fn write(&self, change: &RedriveChange, now_ms: i64) -> Result<()> {
        let (_, next) = self.log.append_change(change, now_ms)?;
        self.log.wait_durable(next)
    }

    fn compaction_due(&self) -> bool {
        self.log.compaction_due()
    }

    fn replace_with(&self, state: Vec<RedriveChange>, now_ms: i64) -> Result<()> {
        let bytes = |c: &RedriveChange| match c {
            RedriveChange::Job { job, redriven } => 512 + job.sequences.len() * 48 + redriven.len() * 40,
            RedriveChange::Forget { .. } => 32,
            RedriveChange::Redriven { ranges, .. } => 64 + ranges.len() * 40,
        };
        self.log.replace_with_snapshot(state, bytes, now_ms)
    }

    fn close(&self) {
        self.log.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Offsets as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet(BTreeMap<i64, i64>);

impl RangeSet {
    pub fn contains(&self, offset: i64) -> bool {
        self.0
            .range(..=offset)
            .next_back()
            .is_some_and(|(_, last)| offset <= *last)
    }

    pub fn insert(&mut self, first: i64, last: i64) {
        let (mut first, mut last) = (first, last);
        // Merge with a range that overlaps or touches on the left.
        if let Some((&f, &l)) = self.0.range(..=first).next_back()
            && l.saturating_add(1) >= first
        {
            first = f;
            last = last.max(l);
            self.0.remove(&f);
        }
        // And every one that starts within or right after.
        while let Some((&f, &l)) = self.0.range(first..=last.saturating_add(1)).next() {
            last = last.max(l);
            self.0.remove(&f);
        }
        self.0.insert(first, last);
    }

    /// Forgets offsets below `start`.
    pub fn trim_below(&mut self, start: i64) {
        let below: Vec<(i64, i64)> = self.0.range(..start).map(|(f, l)| (*f, *l)).collect();
        for (f, l) in below {
            self.0.remove(&f);
            if l >= start {
                self.0.insert(start, l);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn ranges(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.0.iter().map(|(f, l)| (*f, *l))
    }
}

/// Jobs and redriven letters, as replayed and kept up to date.
#[derive(Debug, Clone, Default)]
pub(crate) struct RedriveState {
    pub(crate) jobs: BTreeMap<u64, RedriveJob>,
    /// Per dead-letter topic id and partition.
    pub(crate) redriven: BTreeMap<(String, i32), RangeSet>,
}

impl RedriveState {
    fn apply(&mut self, change: RedriveChange) {
        match change {
            RedriveChange::Job { job, redriven } => {
                for (p, first, last) in redriven {
                    if first <= last {
                        self.redriven
                            .entry((job.topic_id.clone(), p))
                            .or_default()
                            .insert(first, last);
                    }
                }
                self.jobs.insert(job.id, job);
            }
            RedriveChange::Forget { id } => {
                self.jobs.remove(&id);
            }
            RedriveChange::Redriven { topic_id, ranges } => {
                for (p, first, last) in ranges {
                    if first <= last {
                        self.redriven
                            .entry((topic_id.clone(), p))
                            .or_default()
                            .insert(first, last);
                    }
                }
            }
        }
    }

    pub(crate) fn is_redriven(&self, topic_id: &str, partition: i32, offset: i64) -> bool {
        self.redriven
            .get(&(topic_id.to_owned(), partition))
            .is_some_and(|r| r.contains(offset))
    }
}

/// The redrive jobs of the broker and their store.
#[derive(Debug)]
pub struct Redriver {
    store: Box<dyn RedriveStore>,
    pub(crate) state: Mutex<RedriveState>,
    /// When each running job last took a step (ms), for its rate.
    pub(crate) last_step_ms: Mutex<BTreeMap<u64, i64>>,
}

impl Redriver {
    pub fn open(store: Box<dyn RedriveStore>) -> Result<Redriver> {
        let mut state = RedriveState::default();
        for change in store.replay()? {
            state.apply(change);
        }
        Ok(Redriver {
            store,
            state: Mutex::new(state),
            last_step_ms: Mutex::new(BTreeMap::new()),
        })
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Vec<RedriveJob> {
        lock(&self.state).jobs.values().rev().cloned().collect()
    }

    pub fn job(&self, id: u64) -> Option<RedriveJob> {
        lock(&self.state).jobs.get(&id).cloned()
    }

    /// Stores `change` durably, then applies it.
    pub(crate) fn write(&self, change: RedriveChange, now_ms: i64) -> Result<()> {
        self.store.write(&change, now_ms)?;
        lock(&self.state).apply(change);
        Ok(())
    }

    /// Replaces the store's history by the current state if it has grown.
    pub(crate) fn compact_if_due(&self, now_ms: i64, log_starts: impl Fn(&str, i32) -> Option<i64>) -> Result<()> {
        if !self.store.compaction_due() {
            return Ok(());
        }
        let mut state = lock(&self.state);
        // Letters retention removed need not be remembered.
        state.redriven.retain(|(topic, p), ranges| match log_starts(topic, *p) {
            Some(start) => {
                ranges.trim_below(start);
                !ranges.is_empty()
            }
            None => false,
        });
        let mut snapshot: Vec<RedriveChange> = state
            .jobs
            .values()
            .map(|job| RedriveChange::Job {
                job: job.clone(),
                redriven: Vec::new(),
            })
            .collect();
        // In pieces, so that no record of the snapshot grows past its limit.
        for ((topic, p), ranges) in &state.redriven {
            let all: Vec<(i32, i64, i64)> = ranges.ranges().map(|(f, l)| (*p, f, l)).collect();
            for piece in all.chunks(1_000) {
                snapshot.push(RedriveChange::Redriven {
                    topic_id: topic.clone(),
                    ranges: piece.to_vec(),
                });
            }
        }
        self.store.replace_with(snapshot, now_ms)
    }

    pub fn close(&self) {
        self.store.close();
    }
}
