//! Consumer lag, computed by the broker for every group that has committed
//! offsets, members or not: in records (end offset minus committed offset) and
//! in time (the age of the oldest record not committed past, read from the
//! header of the batch holding the committed offset).
//!
//! Only partitions a group has committed for are reported: a partition it
//! never committed has no position to measure from.
//!
//! Share groups are measured the same way from each share-partition's start
//! offset (SPSO): records not yet acknowledged or archived, and the age of the
//! record at the SPSO; so `[[alert]]`s work on them as on consumer groups.
//!
//! On shared storage the records are not in this broker's logs: a
//! [`LagSource`] attached to the broker measures instead, and [`Broker::lag`]
//! answers its last measurement.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::broker::Broker;
use crate::groups::CommittedPartition;

/// One group's lag on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// The high watermark: the offset the next record will get.
    pub end: i64,
    /// `end - committed`, at least 0.
    pub lag_records: i64,
    /// How long ago the oldest record not committed past was written (its
    /// batch's first timestamp); 0 when there is none.
    pub lag_ms: i64,
}

/// One group's lag on one topic: the sum of records, the oldest record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicLag {
    pub group: String,
    pub topic: String,
    pub lag_records: i64,
    pub lag_ms: i64,
}

/// Lag measured elsewhere than in this broker's logs (shared storage: from
/// the metadata store and the bucket, by the front door's link to them).
pub trait LagSource: std::fmt::Debug + Send + Sync + 'static {
    /// The last measurement, in any order.
    fn lag(&self) -> Vec<PartitionLag>;
}

impl PartitionLag {
    /// A group's lag on a partition: its `position` (the committed offset,
    /// or a share-partition's start), the partition's `end`, the records
    /// `behind` it, and `age_ms`, the age of the first of them (ignored when
    /// none is behind).
    pub fn measured(
        group: &str,
        (topic, partition): (&str, i32),
        (position, end): (i64, i64),
        behind: i64,
        age_ms: i64,
    ) -> PartitionLag {
        let lag_records = behind.max(0);
        PartitionLag {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
            committed: position,
            end,
            lag_records,
            lag_ms: if lag_records == 0 { 0 } else { age_ms.max(0) },
        }
    }
}

/// Sums partition lags per group and topic.
pub fn by_topic(partitions: &[PartitionLag]) -> Vec<TopicLag> {
    let mut out: Vec<TopicLag> = Vec::new();
    for p in partitions {
        match out.iter_mut().find(|t| t.group == p.group && t.topic == p.topic) {
            Some(t) => {
                t.lag_records += p.lag_records;
                t.lag_ms = t.lag_ms.max(p.lag_ms);
            }
            None => out.push(TopicLag {
                group: p.group.clone(),
                topic: p.topic.clone(),
                lag_records: p.lag_records,
                lag_ms: p.lag_ms,
            }),
        }
    }
    out
}

/// Remembers the first timestamp of the batch at each committed offset, so
/// that a group that has not moved costs no read.
#[derive(Debug, Default)]
pub struct LagCache {
    /// `(group, topic, partition)` to `(committed offset, timestamp)`.
    timestamps: HashMap<(String, String, i32), (i64, i64)>,
}

impl LagCache {
    /// How long ago the batch holding `from` was written, read from the log
    /// only when `from` moved since the last evaluation; 0 when unreadable.
    fn age_ms(&mut self, key: &(String, String, i32), log: &veltrix_log::Log, from: i64, now_ms: i64) -> i64 {
        let ts = match self.timestamps.get(key) {
            Some((offset, ts)) if *offset == from => Some(*ts),
            _ => first_timestamp(log, from),
        };
        match ts {
            Some(ts) => {
                self.timestamps.insert(key.clone(), (from, ts));
                (now_ms - ts).max(0)
            }
            None => 0,
        }
    }
}

impl Broker {
    /// Every group's lag on every partition it has committed for, sorted by
    /// group, topic and partition.
    pub fn lag(&self, cache: &mut LagCache) -> Vec<PartitionLag> {
        let source = self.lag_source.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(source) = source {
            let mut out = source.lag();
            out.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
            return out;
        }
        let now_ms = self.env().clock.now_ms();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for listing in self.groups().list() {
            for CommittedPartition {
                topic,
                partition,
                committed,
            } in self.groups().fetch_offsets(&listing.group_id, None)
            {
                let Some(committed) = committed else { continue };
                let Ok(p) = self.partition(&topic, partition) else {
                    continue;
                };
                let log = p.log();
                let end = log.high_watermark();
                let lag_records = (end - committed.offset).max(0);
                let key = (listing.group_id.clone(), topic.clone(), partition);
                let lag_ms = if lag_records == 0 {
                    0
                } else {
                    cache.age_ms(&key, log, committed.offset.max(log.log_start()), now_ms)
                };
                seen.push(key);
                out.push(PartitionLag {
                    group: listing.group_id.clone(),
                    topic,
                    partition,
                    committed: committed.offset,
                    end,
                    lag_records,
                    lag_ms,
                });
            }
        }
        self.share_lag(now_ms, cache, &mut seen, &mut out);
        let seen: std::collections::HashSet<_> = seen.into_iter().collect();
        cache.timestamps.retain(|k, _| seen.contains(k));
        out.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
        out
    }
}

impl Broker {
    /// Lag is measured by `source` from now on (shared storage), not from
    /// this broker's logs.
    pub fn attach_lag_source(&self, source: Arc<dyn LagSource>) {
        *self.lag_source.write().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// Share groups' lag: from each share-partition's start offset (SPSO,
    /// the oldest record not yet acknowledged), the records not yet
    /// acknowledged or archived, and the age of the record at the SPSO.
    fn share_lag(
        &self,
        now_ms: i64,
        cache: &mut LagCache,
        seen: &mut Vec<(String, String, i32)>,
        out: &mut Vec<PartitionLag>,
    ) {
        let names: HashMap<crate::TopicId, String> = self.topics().iter().map(|t| (t.id, t.name.clone())).collect();
        for s in self.share().stats() {
            let Some(topic) = names.get(&s.key.topic) else {
                continue;
            };
            let Ok(p) = self.partition(topic, s.key.partition) else {
                continue;
            };
            let log = p.log();
            let end = log.high_watermark();
            let from = s.summary.start.max(log.log_start());
            let done = i64::try_from(s.summary.done_in_window).unwrap_or(i64::MAX);
            let lag_records = end.saturating_sub(from).saturating_sub(done).max(0);
            let key = (s.key.group.clone(), topic.clone(), s.key.partition);
            let lag_ms = if lag_records == 0 {
                0
            } else {
                cache.age_ms(&key, log, from, now_ms)
            };
            seen.push(key);
            out.push(PartitionLag {
                group: s.key.group,
                topic: topic.clone(),
                partition: s.key.partition,
                committed: s.summary.start,
                end,
                lag_records,
                lag_ms,
            });
        }
    }
}

/// The first timestamp of the batch holding `offset`.
fn first_timestamp(log: &veltrix_log::Log, offset: i64) -> Option<i64> {
    let read = log.read(offset, 1).ok()?;
    let header = veltrix_log::batch::parse_header(&read.records).ok()?;
    Some(header.base_timestamp)
}
