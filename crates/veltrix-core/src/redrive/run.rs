//! Dead letters listed, shown, planned and redriven: the broker's side.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use veltrix_log::batch;

use super::{JobPartition, JobState, REDRIVE_JOBS_MAX, REDRIVEN_RANGES_MAX, RedriveChange, RedriveJob, RedriveSpec};
use crate::broker::Broker;
use crate::error::{CoreError, Result};
use crate::records::{OwnedRecord, ProducerStamp, encode_batch_as, record_at};
use crate::share::topic_hex;
use crate::topic::{Partition, Topic};

/// Letters one listing returns at most.
pub const LIST_LETTERS_MAX: usize = 1_000;
/// Letters one listing or plan reads at most (then it says it stopped).
pub const SCAN_LETTERS_MAX: u64 = 1_000_000;
/// Steps one redrive takes per housekeeping round at most.
const STEPS_PER_ROUND_MAX: i64 = 50;
/// Letters one step looks at and leaves, at most (then its progress is
/// stored and the next step goes on).
const STEP_LOOKS_MAX: usize = 10_000;
/// Bytes read from a dead-letter partition at a time.
const READ_BYTES: usize = 1 << 20;

/// Which letters: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterFilter {
    /// `__dlq.errors.group`.
    #[serde(default)]
    pub group: Option<String>,
    /// `veltrix.dlq.reason`: `rejected`, `delivery_limit`, `lock_timeout`.
    #[serde(default)]
    pub reason: Option<String>,
    /// `__dlq.errors.topic`: the topic the letter's record came from.
    #[serde(default)]
    pub source_topic: Option<String>,
    /// Written at or after (ms).
    #[serde(default)]
    pub from_ms: Option<i64>,
    /// Written before (ms).
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// Offsets in the dead-letter topic, inclusive.
    #[serde(default)]
    pub offset_first: Option<i64>,
    #[serde(default)]
    pub offset_last: Option<i64>,
    /// Only this partition of the dead-letter topic.
    #[serde(default)]
    pub partition: Option<i32>,
    /// A header with this key and value.
    #[serde(default)]
    pub header: Option<(String, String)>,
}

impl LetterFilter {
    fn wants_partition(&self, p: i32) -> bool {
        self.partition.is_none_or(|want| want == p)
    }

    fn matches(&self, offset: i64, letter: &OwnedRecord) -> bool {
        let header = |k: &str| header(letter, k);
        self.offset_first.is_none_or(|f| offset >= f)
            && self.offset_last.is_none_or(|l| offset <= l)
            && self.from_ms.is_none_or(|t| letter.timestamp_ms >= t)
            && self.to_ms.is_none_or(|t| letter.timestamp_ms < t)
            && self
                .group
                .as_deref()
                .is_none_or(|g| header("__dlq.errors.group") == Some(g))
            && self
                .reason
                .as_deref()
                .is_none_or(|r| header("veltrix.dlq.reason") == Some(r))
            && self
                .source_topic
                .as_deref()
                .is_none_or(|t| header("__dlq.errors.topic") == Some(t))
            && self.header.as_ref().is_none_or(|(k, v)| header(k) == Some(v.as_str()))
    }
}

/// The first value of header `key`, as text.
fn header<'a>(r: &'a OwnedRecord, key: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.as_slice() == key.as_bytes())
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// A letter as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LetterView {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Every header, in order, values as text where they are UTF-8.
    pub headers: Vec<(String, Option<String>)>,
    /// Whether a redrive moved it already.
    pub redriven: bool,
}

/// What a redrive would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedrivePlan {
    /// Letters it would move, by target topic and partition.
    pub moves: BTreeMap<String, BTreeMap<i32, u64>>,
    pub selected: u64,
    /// Selected but moved by an earlier redrive: left.
    pub already_redriven: u64,
    /// Selected, but their target topic does not exist: left.
    pub target_missing: u64,
    pub scanned: u64,
    /// Whether the scan stopped at [`SCAN_LETTERS_MAX`] before the end.
    pub truncated: bool,
}

/// Reads the letters of a partition in order, batch by batch.
struct LetterReader<'a> {
    partition: &'a Partition,
    at: i64,
    end: i64,
    pending: std::collections::VecDeque<(i64, OwnedRecord)>,
}

impl<'a> LetterReader<'a> {
    fn new(partition: &'a Partition, from: i64, end: i64) -> Self {
        let at = from.max(partition.log().log_start());
        LetterReader {
            partition,
            at,
            end,
            pending: Default::default(),
        }
    }

    /// The next letter before the end, with its offset.
    fn next(&mut self) -> Result<Option<(i64, OwnedRecord)>> {
        loop {
            if let Some(l) = self.pending.pop_front() {
                return Ok(Some(l));
            }
            if self.at >= self.end {
                return Ok(None);
            }
            let read = match self.partition.log().read(self.at, READ_BYTES) {
                Ok(r) => r,
                Err(veltrix_log::LogError::OffsetOutOfRange { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if read.records.is_empty() {
                return Ok(None);
            }
            let mut rest = &read.records[..];
            while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
                let one = &rest[..size];
                rest = &rest[size..];
                let Ok(h) = batch::parse_fixed(one) else { break };
                for o in h.base_offset.max(self.at)..=h.last_offset().min(self.end - 1) {
                    if let Some(r) = record_at(one, o).map_err(|source| CoreError::InvalidBatch { batch: 0, source })? {
                        self.pending.push_back((o, r));
                    }
                }
            }
            self.at = read.next_offset.max(self.at + 1);
        }
    }
}

/// The record a letter redrives as: its key, value and own headers, without
/// the letter's.
fn redriven_record(letter: &OwnedRecord, now_ms: i64, from: String) -> OwnedRecord {
    let mut headers: Vec<(Vec<u8>, Option<Vec<u8>>)> = letter
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with(b"__dlq.") && !k.starts_with(b"veltrix.dlq."))
        .cloned()
        .collect();
    headers.push((b"veltrix.redrive.from".to_vec(), Some(from.into_bytes())));
    OwnedRecord {
        key: letter.key.clone(),
        value: letter.value.clone(),
        headers,
        timestamp_ms: now_ms,
    }
}

impl Broker {
    fn letter_topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topic(name).ok_or_else(|| CoreError::UnknownTopic(name.to_owned()))
    }

    /// Letters of dead-letter topic `topic` that match `filter`, oldest
    /// first per partition, at most `limit` (and [`LIST_LETTERS_MAX`]).
    pub fn dead_letters(&self, topic: &str, filter: &LetterFilter, limit: usize) -> Result<(Vec<LetterView>, bool)> {
        let t = self.letter_topic(topic)?;
        let topic_id = topic_hex(&t.id);
        let limit = limit.clamp(1, LIST_LETTERS_MAX);
        let mut out = Vec::new();
        let mut scanned = 0u64;
        for p in &t.partitions {
            if !filter.wants_partition(p.index) {
                continue;
            }
            let from = filter.offset_first.unwrap_or(0);
            let mut reader = LetterReader::new(p, from, p.log().high_watermark());
            while let Some((offset, r)) = reader.next()? {
                scanned += 1;
                if scanned > SCAN_LETTERS_MAX {
                    return Ok((out, true));
                }
                if filter.offset_last.is_some_and(|l| offset > l) {
                    break;
                }
                if !filter.matches(offset, &r) {
                    continue;
                }
                out.push(self.view(&topic_id, p.index, offset, r));
                if out.len() >= limit {
                    return Ok((out, true));
                }
            }
        }
        Ok((out, false))
    }

    /// One letter.
    pub fn dead_letter(&self, topic: &str, partition: i32, offset: i64) -> Result<Option<LetterView>> {
        let t = self.letter_topic(topic)?;
        let p = t.partition(partition).ok_or(CoreError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        })?;
        let mut reader = LetterReader::new(p, offset, offset + 1);
        Ok(reader
            .next()?
            .filter(|(o, _)| *o == offset)
            .map(|(o, r)| self.view(&topic_hex(&t.id), partition, o, r)))
    }

    fn view(&self, topic_id: &str, partition: i32, offset: i64, r: OwnedRecord) -> LetterView {
        let redriven = super::lock(&self.redriver().state).is_redriven(topic_id, partition, offset);
        LetterView {
            partition,
            offset,
            timestamp_ms: r.timestamp_ms,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(&k).into_owned(),
                        v.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    )
                })
                .collect(),
            key: r.key,
            value: r.value,
            redriven,
        }
    }

    /// The target of a letter: topic name and partition, if it exists.
    fn target_of(&self, spec: &RedriveSpec, letter: &OwnedRecord) -> Option<(Arc<Topic>, i32)> {
        let name = match &spec.target {
            Some(t) => t.as_str(),
            None => header(letter, "__dlq.errors.topic")?,
        };
        let t = self.topic(name)?;
        let source_partition: i32 = header(letter, "__dlq.errors.partition")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
            .max(0);
        let p = source_partition % t.partitions.len().max(1) as i32;
        Some((t, p))
    }

    /// What a redrive of `spec` would move, without moving anything.
    pub fn plan_redrive(&self, spec: &RedriveSpec) -> Result<RedrivePlan> {
        let t = self.letter_topic(&spec.topic)?;
        self.check_target(spec)?;
        let topic_id = topic_hex(&t.id);
        let mut plan = RedrivePlan::default();
        for p in &t.partitions {
            if !spec.filter.wants_partition(p.index) {
                continue;
            }
            let mut reader = LetterReader::new(p, spec.filter.offset_first.unwrap_or(0), p.log().high_watermark());
            while let Some((offset, letter)) = reader.next()? {
                plan.scanned += 1;
                if plan.scanned > SCAN_LETTERS_MAX {
                    plan.truncated = true;
                    return Ok(plan);
                }
                if !spec.filter.matches(offset, &letter) {
                    continue;
                }
                plan.selected += 1;
                if super::lock(&self.redriver().state).is_redriven(&topic_id, p.index, offset) {
                    plan.already_redriven += 1;
                    continue;
                }
                match self.target_of(spec, &letter) {
                    Some((target, tp)) => {
                        *plan
                            .moves
                            .entry(target.name.clone())
                            .or_default()
                            .entry(tp)
                            .or_default() += 1;
                    }
                    None => plan.target_missing += 1,
                }
            }
        }
        Ok(plan)
    }

    fn check_target(&self, spec: &RedriveSpec) -> Result<()> {
        if let Some(target) = &spec.target {
            self.letter_topic(target)?;
            if *target == spec.topic {
                return Err(CoreError::InvalidConfig(
                    "a redrive cannot write into the dead-letter topic it reads".into(),
                ));
            }
        }
        if spec
            .records_per_second
            .is_some_and(|r| r == 0 || r > super::RATE_RECORDS_PER_SECOND_MAX)
        {
            return Err(CoreError::InvalidConfig(format!(
                "records_per_second must be 1..={}",
                super::RATE_RECORDS_PER_SECOND_MAX
            )));
        }
        Ok(())
    }

    /// Starts a redrive of `spec`: durably stored, then run by the broker's
    /// housekeeping at its rate. One runs per dead-letter topic at a time.
    pub fn start_redrive(&self, spec: RedriveSpec) -> Result<RedriveJob> {
        let t = self.letter_topic(&spec.topic)?;
        self.check_target(&spec)?;
        let topic_id = topic_hex(&t.id);
        let now = self.env().clock.now_ms();
        let (id, forget) = {
            let state = super::lock(&self.redriver().state);
            if let Some(running) = state
                .jobs
                .values()
                .find(|j| j.topic_id == topic_id && j.state == JobState::Running)
            {
                return Err(CoreError::InvalidConfig(format!(
                    "redrive {} of `{}` is still running; wait for it",
                    running.id, spec.topic
                )));
            }
            let id = state.jobs.keys().next_back().map_or(1, |k| k + 1);
            let forget = (state.jobs.len() >= REDRIVE_JOBS_MAX)
                .then(|| state.jobs.values().find(|j| j.state != JobState::Running).map(|j| j.id))
                .flatten();
            if state.jobs.len() >= REDRIVE_JOBS_MAX && forget.is_none() {
                return Err(CoreError::LimitReached(format!("{REDRIVE_JOBS_MAX} redrives running")));
            }
            (id, forget)
        };
        if let Some(old) = forget {
            self.redriver().write(RedriveChange::Forget { id: old }, now)?;
        }
        let job = RedriveJob {
            id,
            topic_id,
            producer_id: self.init_producer_id()?,
            created_ms: now,
            state: JobState::Running,
            partitions: t
                .partitions
                .iter()
                .filter(|p| spec.filter.wants_partition(p.index))
                .map(|p| JobPartition {
                    partition: p.index,
                    next: spec.filter.offset_first.unwrap_or(0).max(p.log().log_start()),
                    end: p.log().high_watermark(),
                })
                .collect(),
            sequences: Vec::new(),
            moved: 0,
            skipped: 0,
            updated_ms: now,
            spec,
        };
        self.redriver().write(
            RedriveChange::Job {
                job: job.clone(),
                redriven: Vec::new(),
            },
            now,
        )?;
        tracing::info!(id = job.id, topic = %job.spec.topic, "redrive started");
        Ok(job)
    }

    /// Takes the steps running redrives are due, at their rates. Called from
    /// the broker's housekeeping; blocks on appends and fsyncs.
    pub fn run_redrives(&self) {
        let now = self.env().clock.now_ms();
        let running: Vec<RedriveJob> = super::lock(&self.redriver().state)
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .cloned()
            .collect();
        for mut job in running {
            // The rate: a step of n records every n / rate seconds.
            let step_ms = (i64::from(job.spec.step_records()) * 1000 / i64::from(job.spec.rate())).max(1);
            let last = *super::lock(&self.redriver().last_step_ms)
                .entry(job.id)
                .or_insert(now - step_ms);
            let owed = (now - last) / step_ms;
            let mut due = owed.min(STEPS_PER_ROUND_MAX);
            // Steps not taken in time (a slow disk, a pause) are not made up
            // in a burst.
            let next_last = if owed > due { now } else { last + owed * step_ms };
            while due > 0 && job.state == JobState::Running {
                due -= 1;
                if let Err(e) = self.redrive_step(&mut job, now) {
                    tracing::error!(id = job.id, error = %e, "redrive step failed; the redrive stops");
                    job.state = JobState::Failed(e.to_string());
                    job.updated_ms = now;
                    let failed = RedriveChange::Job {
                        job: job.clone(),
                        redriven: Vec::new(),
                    };
                    if let Err(e) = self.redriver().write(failed, now) {
                        tracing::error!(id = job.id, error = %e, "storing a failed redrive");
                    }
                }
            }
            super::lock(&self.redriver().last_step_ms).insert(job.id, next_last);
            if job.state != JobState::Running {
                super::lock(&self.redriver().last_step_ms).remove(&job.id);
            }
        }
        let log_start = |topic_id: &str, p: i32| {
            crate::broker::parse_id(topic_id)
                .and_then(|id| self.topic_by_id(&id))
                .and_then(|t| t.partition(p).map(|p| p.log().log_start()))
        };
        if let Err(e) = self.redriver().compact_if_due(now, log_start) {
            tracing::error!(error = %e, "compacting the redrive store");
        }
    }

    /// One step of `job`: the next run of selected letters of one dead-letter
    /// partition to one target partition, moved durably, then the progress
    /// stored. See the module documentation for why a crash in between does
    /// not move them twice.
    pub(super) fn redrive_step(&self, job: &mut RedriveJob, now: i64) -> Result<()> {
        let dlq = crate::broker::parse_id(&job.topic_id)
            .and_then(|id| self.topic_by_id(&id))
            .ok_or_else(|| CoreError::UnknownTopic(job.spec.topic.clone()))?;
        let Some(jp) = job.partitions.iter().position(|p| p.next < p.end) else {
            job.state = JobState::Done;
            job.updated_ms = now;
            tracing::info!(id = job.id, moved = job.moved, "redrive done");
            return self.redriver().write(
                RedriveChange::Job {
                    job: job.clone(),
                    redriven: Vec::new(),
                },
                now,
            );
        };
        let partition = job.partitions[jp].partition;
        let p = dlq.partition(partition).ok_or(CoreError::UnknownPartition {
            topic: job.spec.topic.clone(),
            partition,
        })?;
        let Step {
            run,
            batches,
            looked_to,
            skipped,
        } = self.plan_step(job, p, now)?;
        // The letters this step moves, as ranges; checked against the limit
        // before anything is written.
        let mut redriven: Vec<(i32, i64, i64)> = Vec::new();
        for o in &run {
            match redriven.last_mut() {
                Some((_, _, last)) if *last + 1 == *o => *last = *o,
                _ => redriven.push((partition, *o, *o)),
            }
        }
        let ranges = super::lock(&self.redriver().state)
            .redriven
            .get(&(job.topic_id.clone(), partition))
            .map_or(0, |r| r.len());
        if ranges + redriven.len() > REDRIVEN_RANGES_MAX {
            return Err(CoreError::LimitReached(format!(
                "{REDRIVEN_RANGES_MAX} redriven ranges in one dead-letter partition; redrive whole ranges of offsets"
            )));
        }
        for (t, tp, records, _) in &batches {
            let target_partition = t.partition(*tp).ok_or(CoreError::UnknownPartition {
                topic: t.name.clone(),
                partition: *tp,
            })?;
            let stamp = ProducerStamp {
                producer_id: job.producer_id,
                epoch: 0,
                base_sequence: job.sequence(&t.name, *tp),
            };
            let appended = target_partition.append_batches(&encode_batch_as(records, Some(stamp)))?;
            target_partition.commit(appended.next_offset)?;
        }
        for (t, tp, records, _) in &batches {
            job.advance_sequence(&t.name, *tp, records.len() as i32);
            job.moved += records.len() as u64;
            self.metrics().share.redriven.inc_by(records.len() as u64);
        }
        job.skipped += skipped;
        job.partitions[jp].next = looked_to + 1;
        job.updated_ms = now;
        self.redriver().write(
            RedriveChange::Job {
                job: job.clone(),
                redriven,
            },
            now,
        )
    }
}

/// One step of a redrive, before anything is written: the letters it moves
/// (their offsets), the batches they make (target topic, partition, records,
/// bytes), the last offset looked at, and the letters left.
struct Step {
    run: Vec<i64>,
    batches: Vec<(Arc<Topic>, i32, Vec<OwnedRecord>, usize)>,
    looked_to: i64,
    skipped: u64,
}

fn jp_of(job: &RedriveJob, partition: i32) -> usize {
    job.partitions
        .iter()
        .position(|p| p.partition == partition)
        .expect("a step's partition is the job's")
}

impl Broker {
    /// The next step of `job` on dead-letter partition `p`. Nothing here
    /// depends on time (but the records' timestamps) or on what was
    /// written, so a step taken again after a crash is the same step.
    fn plan_step(&self, job: &RedriveJob, p: &Partition, now: i64) -> Result<Step> {
        let JobPartition { partition, next, end } = job.partitions[jp_of(job, p.index)];
        let mut reader = LetterReader::new(p, next, end);
        let step = job.spec.step_records() as usize;
        // The step: the next `step` selected letters, each with its target,
        // and the batches they make, one per target partition (in the order
        // of their first letter). Nothing here depends on time or on what
        // was written, so a step taken again after a crash is the same step.
        let mut run: Vec<i64> = Vec::new();
        let mut batches: Vec<(Arc<Topic>, i32, Vec<OwnedRecord>, usize)> = Vec::new();
        let mut looked_to = next.max(p.log().log_start()) - 1;
        let mut skipped = 0u64;
        let mut looked = 0usize;
        let mut at_end = true;
        while let Some((offset, letter)) = reader.next()? {
            let selected = job.spec.filter.matches(offset, &letter)
                && !super::lock(&self.redriver().state).is_redriven(&job.topic_id, partition, offset);
            let this_target = if selected {
                self.target_of(&job.spec, &letter)
            } else {
                None
            };
            let Some((t, tp)) = this_target else {
                skipped += 1;
                looked_to = offset;
                looked += 1;
                if looked >= STEP_LOOKS_MAX {
                    at_end = false;
                    break;
                }
                continue;
            };
            let record = redriven_record(&letter, now, format!("{}/{partition}/{offset}", job.spec.topic));
            let size = record.encoded_bytes_max();
            let limit = t
                .partition(tp)
                .map_or(0, |tp| tp.log().config().batch_bytes_max as usize);
            let i = match batches.iter().position(|(bt, bp, _, _)| bt.id == t.id && *bp == tp) {
                Some(i) => i,
                None => {
                    batches.push((t, tp, Vec::new(), batch::HEADER_BYTES));
                    batches.len() - 1
                }
            };
            let (_, _, records, bytes) = &mut batches[i];
            if !records.is_empty() && *bytes + size > limit {
                at_end = false;
                break;
            }
            *bytes += size;
            records.push(record);
            run.push(offset);
            looked_to = offset;
            if run.len() >= step {
                at_end = false;
                break;
            }
        }
        batches.retain(|(_, _, records, _)| !records.is_empty());
        if at_end {
            // Nothing more up to the end: the partition is done.
            looked_to = end - 1;
        }
        Ok(Step {
            run,
            batches,
            looked_to,
            skipped,
        })
    }
}
