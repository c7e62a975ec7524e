//! Lag on shared storage. The partitions' records are not in the engine's
//! logs, so the broker measures here, and the engine's `Broker::lag`
//! answers the last measurement (`/metrics`, the HTTP API, the console and
//! `[[alert]]`s all read it): the consumer groups this broker coordinates,
//! their committed offsets from the metadata store, and the share-partitions
//! it serves, against the partitions' start and end offsets there; a
//! position's age from the first timestamp of the batch holding it, read
//! through the read cache. Each group is measured by one broker, its
//! coordinator (a share-partition by its partition's leader), so an alert
//! fires once however many brokers there are.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use veltrix_core::Broker;
use veltrix_core::lag::{LagSource, PartitionLag};
use veltrix_shared::Shared;

/// Positions (group and partition) measured per round at most; past it the
/// rest are left out of the round, with a warning.
pub const LAG_POSITIONS_MAX: usize = 10_000;

/// The last measurement, and the record times it read.
#[derive(Debug, Default)]
pub struct SharedLag {
    measured: Mutex<Vec<PartitionLag>>,
    /// `(group, topic, partition)` to (position, its batch's first
    /// timestamp): a group that has not moved costs no read.
    ages: Mutex<HashMap<AgeKey, (i64, i64)>>,
}

/// `(group, topic, partition)`.
type AgeKey = (String, String, i32);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LagSource for SharedLag {
    fn lag(&self) -> Vec<PartitionLag> {
        lock(&self.measured).clone()
    }
}

/// One group's place in one partition.
struct Position {
    group: String,
    topic: String,
    partition: i32,
    /// The committed offset, or the share-partition's start.
    at: i64,
    /// Share-partitions: records past `at` already acknowledged or archived.
    done: i64,
    share: bool,
}

impl SharedLag {
    /// One measurement, kept for [`LagSource::lag`]. When the store cannot be
    /// read the last measurement stays. Answers the positions measured.
    pub async fn measure(&self, node: &dyn Shared, broker: &std::sync::Arc<Broker>) -> veltrix_shared::Result<usize> {
        let mut positions = Vec::new();
        for group in node.groups().await? {
            if node.coordinator_of(&group).broker_id != node.broker_id() {
                continue;
            }
            for row in node.fetch_offsets(&group).await? {
                positions.push(Position {
                    group: group.clone(),
                    topic: row.topic,
                    partition: row.partition,
                    at: row.offset,
                    done: 0,
                    share: false,
                });
            }
            if positions.len() >= LAG_POSITIONS_MAX {
                break;
            }
        }
        // Off the async threads: reading a share-partition's summary waits
        // for an acquisition that may hold it while it reads through them.
        let engine = broker.clone();
        let shares = tokio::task::spawn_blocking(move || share_positions(&engine))
            .await
            .map_err(|e| veltrix_shared::Error::Other(e.to_string()))?;
        positions.extend(shares);
        if positions.len() > LAG_POSITIONS_MAX {
            tracing::warn!(
                positions = positions.len(),
                "lag measured for the first {LAG_POSITIONS_MAX} group positions only"
            );
            positions.truncate(LAG_POSITIONS_MAX);
        }
        let now_ms = broker.env().clock.now_ms();
        let mut bounds: HashMap<(String, i32), Option<(i64, i64)>> = HashMap::new();
        let mut out = Vec::with_capacity(positions.len());
        let mut seen = HashSet::new();
        for p in positions {
            let key = (p.topic.clone(), p.partition);
            let range = match bounds.get(&key) {
                Some(known) => *known,
                None => {
                    let read = partition_bounds(node, &p.topic, p.partition).await;
                    bounds.insert(key, read);
                    read
                }
            };
            let Some((start, end)) = range else { continue };
            let from = if p.share { p.at.max(start) } else { p.at };
            let behind = end.saturating_sub(from).saturating_sub(p.done).max(0);
            let age_key = (p.group.clone(), p.topic.clone(), p.partition);
            let age_ms = if behind == 0 {
                0
            } else {
                self.age_ms(node, &age_key, from.max(start), now_ms).await
            };
            seen.insert(age_key);
            out.push(PartitionLag::measured(
                &p.group,
                (&p.topic, p.partition),
                (p.at, end),
                behind,
                age_ms,
            ));
        }
        lock(&self.ages).retain(|k, _| seen.contains(k));
        let measured = out.len();
        *lock(&self.measured) = out;
        Ok(measured)
    }

    /// How long ago the batch holding `from` was written (its first
    /// timestamp), read only when `from` moved since the last round; 0 when
    /// it cannot be read.
    async fn age_ms(&self, node: &dyn Shared, key: &AgeKey, from: i64, now_ms: i64) -> i64 {
        let known = lock(&self.ages)
            .get(key)
            .filter(|(at, _)| *at == from)
            .map(|(_, ts)| *ts);
        let ts = match known {
            Some(ts) => Some(ts),
            None => match node.read(&key.1, key.2, from, 1).await {
                Ok((records, _)) => veltrix_log::batch::parse_header(&records)
                    .ok()
                    .map(|h| h.base_timestamp),
                Err(e) => {
                    tracing::debug!(topic = %key.1, partition = key.2, error = %e, "lag: the record at a group's position was not read");
                    None
                }
            },
        };
        match ts {
            Some(ts) => {
                lock(&self.ages).insert(key.clone(), (from, ts));
                (now_ms - ts).max(0)
            }
            None => 0,
        }
    }
}

/// The share-partitions this broker serves (their partitions' leader's
/// engine holds them), each from its start.
fn share_positions(broker: &Broker) -> Vec<Position> {
    let names: HashMap<veltrix_core::TopicId, String> =
        broker.topics().iter().map(|t| (t.id, t.name.clone())).collect();
    let mut positions = Vec::new();
    for s in broker.share().stats() {
        let Some(topic) = names.get(&s.key.topic) else {
            continue;
        };
        positions.push(Position {
            group: s.key.group,
            topic: topic.clone(),
            partition: s.key.partition,
            at: s.summary.start,
            done: i64::try_from(s.summary.done_in_window).unwrap_or(i64::MAX),
            share: true,
        });
    }
    positions
}

/// A partition's start and end offsets in the store; `None` when it is not
/// there (a topic deleted meanwhile) or the store cannot be read.
async fn partition_bounds(node: &dyn Shared, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let end = node.recent_end_offset(topic, partition).await.ok()?;
    let start = node.start_offset(topic, partition).await.ok()?;
    Some((start, end))
}
