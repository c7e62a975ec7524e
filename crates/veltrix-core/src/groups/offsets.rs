//! Committed offsets, kept durable in a log of their own.
//!
//! The store is a [`Log`] (in `groups/` under the data directory) of changes:
//! each commit, offset deletion or group deletion is one record batch whose
//! payload is a JSON [`Change`]. A commit is acknowledged only once its batch is
//! fsynced. At start the log is read from its start and the changes applied in
//! order; the in-memory map then answers OffsetFetch.
//!
//! The log would grow forever, so it is compacted when it has grown past
//! [`COMPACT_BYTES_MIN`] and four times the size of the last compaction: the
//! whole current state is appended as a snapshot (`SnapshotBegin`, chunks,
//! `SnapshotEnd`), made durable, and everything before the snapshot is deleted
//! (delete-records, then retention removes the old segments). Replaying a
//! snapshot replaces the state; one cut short by a crash is ignored, and the
//! changes before it still stand.
//!
//! Concurrent commits share fsyncs (the log's group commit). Each entry in memory
//! remembers the log offset of the change that set it, and a change is applied
//! only over older ones, so memory always agrees with the log's order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use veltrix_log::batch::{self, HEADER_BYTES, build};
use veltrix_log::{Env, Log, LogConfig};

use super::OffsetCommit;
use crate::error::{CoreError, Result};

/// A group with committed offsets, and when it last committed.
pub(crate) struct GroupCommits {
    pub(crate) group_id: String,
    pub(crate) last_commit_ms: i64,
}

/// The log is not compacted below this size.
pub const COMPACT_BYTES_MIN: u64 = 64 << 20;
/// Largest change record; a snapshot is cut into chunks below it.
const RECORD_BYTES_MAX: usize = 4 << 20;
/// Bytes read from the log at a time while replaying.
const REPLAY_READ_BYTES: usize = 8 << 20;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The next record to read.
    pub offset: i64,
    /// The leader epoch the committer saw, or -1.
    pub leader_epoch: i32,
    /// What the committer attached.
    pub metadata: String,
    /// Wall time of the commit.
    pub commit_ms: i64,
}

/// A partition a group's offsets were asked for, and what the group
/// committed there, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedPartition {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<Committed>,
}

/// One record of the offsets log.
#[derive(Debug, Serialize, Deserialize)]
enum Change {
    Commit {
        group: String,
        offsets: Vec<(String, i32, Committed)>,
    },
    Delete {
        group: String,
        partitions: Vec<(String, i32)>,
    },
    DeleteGroup {
        group: String,
    },
    /// The topic was deleted: its offsets go from every group.
    DeleteTopic {
        topic: String,
    },
    SnapshotBegin,
    SnapshotChunk {
        groups: Vec<(String, GroupOffsets)>,
    },
    SnapshotEnd,
}

/// `(topic, partition, committed)` entries of one group.
type GroupOffsets = Vec<(String, i32, Committed)>;

/// Group, then `(topic, partition)`, to the committed offset and the log offset
/// of the change that set it.
type Offsets = BTreeMap<String, BTreeMap<(String, i32), (Committed, i64)>>;

#[derive(Debug)]
struct State {
    offsets: Offsets,
    /// Log size right after the last compaction (or at open).
    compacted_size: u64,
}

#[derive(Debug)]
pub(crate) struct OffsetStore {
    log: Log,
    state: Mutex<State>,
    /// Held while compacting, and shared by commits, so a snapshot sees every
    /// change before it and none is lost between snapshot and deletion.
    writers: std::sync::RwLock<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 20,
        batch_bytes_max: (RECORD_BYTES_MAX + 4096) as u32,
        // Only compaction may remove changes.
        retention_ms: None,
        retention_bytes: None,
        ..LogConfig::default()
    }
}

/// A record batch carrying one change as its payload.
fn encode(change: &Change, now_ms: i64) -> Vec<u8> {
    let payload = serde_json::to_vec(change).expect("changes serialise");
    let mut buf = vec![0u8; HEADER_BYTES + payload.len()];
    buf[HEADER_BYTES..].copy_from_slice(&payload);
    build::write_into(
        &mut buf,
        build::Spec {
            record_count: 1,
            base_timestamp: now_ms,
            max_timestamp: now_ms,
            ..build::Spec::default()
        },
    );
    buf
}

fn apply(offsets: &mut Offsets, change: Change, at: i64, snapshot: &mut Option<Offsets>) {
    match change {
        Change::Commit { group, offsets: list } => {
            let g = offsets.entry(group).or_default();
            for (topic, partition, c) in list {
                let slot = g.entry((topic, partition)).or_insert((c.clone(), at));
                if slot.1 <= at {
                    *slot = (c, at);
                }
            }
        }
        Change::Delete { group, partitions } => {
            if let Some(g) = offsets.get_mut(&group) {
                for key in partitions {
                    if g.get(&key).is_some_and(|(_, set_at)| *set_at <= at) {
                        g.remove(&key);
                    }
                }
                if g.is_empty() {
                    offsets.remove(&group);
                }
            }
        }
        Change::DeleteGroup { group } => {
            offsets.remove(&group);
        }
        Change::DeleteTopic { topic } => {
            for g in offsets.values_mut() {
                g.retain(|(t, _), (_, set_at)| *t != topic || *set_at > at);
            }
            offsets.retain(|_, g| !g.is_empty());
        }
        Change::SnapshotBegin => *snapshot = Some(Offsets::new()),
        Change::SnapshotChunk { groups } => {
            if let Some(s) = snapshot {
                for (group, list) in groups {
                    let g = s.entry(group).or_default();
                    for (topic, partition, c) in list {
                        g.insert((topic, partition), (c, at));
                    }
                }
            }
        }
        Change::SnapshotEnd => {
            if let Some(s) = snapshot.take() {
                *offsets = s;
            }
        }
    }
}

impl OffsetStore {
    pub(crate) fn open(env: Arc<Env>, dir: &Path) -> Result<OffsetStore> {
        let log = Log::open(env.clone(), dir, log_config())?;
        let mut offsets = Offsets::new();
        let mut snapshot = None;
        let mut at = log.log_start();
        let end = log.high_watermark();
        while at < end {
            let r = log.read(at, REPLAY_READ_BYTES)?;
            if r.records.is_empty() {
                break;
            }
            let mut rest = &r.records[..];
            while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
                let header = batch::parse_fixed(&rest[..HEADER_BYTES]).map_err(|e| CoreError::Catalog {
                    path: dir.to_path_buf(),
                    reason: format!("offsets log: {e}"),
                })?;
                let change: Change =
                    serde_json::from_slice(&rest[HEADER_BYTES..size]).map_err(|e| CoreError::Catalog {
                        path: dir.to_path_buf(),
                        reason: format!("offsets log record at offset {}: {e}", header.base_offset),
                    })?;
                apply(&mut offsets, change, header.base_offset, &mut snapshot);
                rest = &rest[size..];
            }
            at = r.next_offset;
        }
        let compacted_size = log.size_bytes();
        Ok(OffsetStore {
            log,
            state: Mutex::new(State {
                offsets,
                compacted_size,
            }),
            writers: std::sync::RwLock::new(()),
        })
    }

    /// Groups with committed offsets, with the time of their latest commit.
    pub(crate) fn groups(&self) -> Vec<GroupCommits> {
        lock(&self.state)
            .offsets
            .iter()
            .map(|(g, list)| GroupCommits {
                group_id: g.clone(),
                last_commit_ms: list.values().map(|(c, _)| c.commit_ms).max().unwrap_or(0),
            })
            .collect()
    }

    /// Topics some group has committed offsets for.
    pub(crate) fn topics(&self) -> Vec<String> {
        let state = lock(&self.state);
        let mut topics: Vec<String> = state
            .offsets
            .values()
            .flat_map(|g| g.keys().map(|(t, _)| t.clone()))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Durably deletes every group's offsets of `topic`.
    pub(crate) fn delete_topic(&self, topic: &str, now_ms: i64) -> Result<()> {
        if !self.topics().iter().any(|t| t == topic) {
            return Ok(());
        }
        let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let change = Change::DeleteTopic {
            topic: topic.to_owned(),
        };
        let at = self.write(&change, now_ms)?;
        apply(&mut lock(&self.state).offsets, change, at, &mut None);
        Ok(())
    }

    /// Appends `change` and waits until it is durable; returns its log offset.
    fn write(&self, change: &Change, now_ms: i64) -> Result<i64> {
        let mut batch = encode(change, now_ms);
        if batch.len() > RECORD_BYTES_MAX {
            return Err(CoreError::LimitReached(format!(
                "an offsets change of {} bytes is over {RECORD_BYTES_MAX}",
                batch.len()
            )));
        }
        let appended = self.log.append(&mut batch)?;
        self.log.wait_durable(appended.next_offset)?;
        Ok(appended.base_offset)
    }

    /// Durably records `offsets` for `group`.
    pub(crate) fn commit(&self, group: &str, offsets: &[OffsetCommit], now_ms: i64) -> Result<()> {
        let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let change = Change::Commit {
            group: group.to_owned(),
            offsets: offsets
                .iter()
                .map(|o| {
                    (
                        o.topic.clone(),
                        o.partition,
                        Committed {
                            offset: o.offset,
                            leader_epoch: o.leader_epoch,
                            metadata: o.metadata.clone(),
                            commit_ms: now_ms,
                        },
                    )
                })
                .collect(),
        };
        let at = self.write(&change, now_ms)?;
        apply(&mut lock(&self.state).offsets, change, at, &mut None);
        Ok(())
    }

    /// Durably deletes the offsets of `partitions` of `group`.
    pub(crate) fn delete(&self, group: &str, partitions: &[(String, i32)], now_ms: i64) -> Result<()> {
        let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let change = Change::Delete {
            group: group.to_owned(),
            partitions: partitions.to_vec(),
        };
        let at = self.write(&change, now_ms)?;
        apply(&mut lock(&self.state).offsets, change, at, &mut None);
        Ok(())
    }

    /// Durably deletes every offset of `group`.
    pub(crate) fn delete_group(&self, group: &str, now_ms: i64) -> Result<()> {
        if !lock(&self.state).offsets.contains_key(group) {
            return Ok(());
        }
        let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let change = Change::DeleteGroup {
            group: group.to_owned(),
        };
        let at = self.write(&change, now_ms)?;
        apply(&mut lock(&self.state).offsets, change, at, &mut None);
        Ok(())
    }

    /// Committed offsets of `partitions` (all of the group's when `None`).
    pub(crate) fn fetch(&self, group: &str, partitions: Option<&[(String, i32)]>) -> Vec<CommittedPartition> {
        let state = lock(&self.state);
        let g = state.offsets.get(group);
        match partitions {
            Some(list) => list
                .iter()
                .map(|(t, p)| CommittedPartition {
                    topic: t.clone(),
                    partition: *p,
                    committed: g.and_then(|g| g.get(&(t.clone(), *p))).map(|(c, _)| c.clone()),
                })
                .collect(),
            None => g
                .map(|g| {
                    g.iter()
                        .map(|((t, p), (c, _))| CommittedPartition {
                            topic: t.clone(),
                            partition: *p,
                            committed: Some(c.clone()),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Housekeeping of the offsets log (recovery point, rolling), then
    /// compaction if it is due.
    pub(crate) fn tick(&self, now_ms: i64) -> Result<bool> {
        self.log.tick()?;
        self.maybe_compact(now_ms)
    }

    /// Compacts the log when it has grown enough (see the module docs).
    pub(crate) fn maybe_compact(&self, now_ms: i64) -> Result<bool> {
        let size = self.log.size_bytes();
        let threshold = lock(&self.state)
            .compacted_size
            .saturating_mul(4)
            .max(COMPACT_BYTES_MIN);
        if size < threshold {
            return Ok(false);
        }
        self.compact(now_ms)?;
        Ok(true)
    }

    /// Writes the whole state as a snapshot and deletes everything before it.
    pub(crate) fn compact(&self, now_ms: i64) -> Result<()> {
        let _exclusive = self.writers.write().unwrap_or_else(|p| p.into_inner());
        let groups: Vec<(String, GroupOffsets)> = lock(&self.state)
            .offsets
            .iter()
            .map(|(g, list)| {
                let list = list.iter().map(|((t, p), (c, _))| (t.clone(), *p, c.clone())).collect();
                (g.clone(), list)
            })
            .collect();
        let begin = self
            .log
            .append(&mut encode(&Change::SnapshotBegin, now_ms))?
            .base_offset;
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for (group, list) in groups {
            let bytes = group.len()
                + list
                    .iter()
                    .map(|(t, _, c)| t.len() + c.metadata.len() + 64)
                    .sum::<usize>();
            if chunk_bytes + bytes > RECORD_BYTES_MAX / 2 && !chunk.is_empty() {
                let mut b = encode(
                    &Change::SnapshotChunk {
                        groups: std::mem::take(&mut chunk),
                    },
                    now_ms,
                );
                self.log.append(&mut b)?;
                chunk_bytes = 0;
            }
            chunk_bytes += bytes;
            chunk.push((group, list));
        }
        if !chunk.is_empty() {
            self.log
                .append(&mut encode(&Change::SnapshotChunk { groups: chunk }, now_ms))?;
        }
        let end = self.log.append(&mut encode(&Change::SnapshotEnd, now_ms))?;
        self.log.wait_durable(end.next_offset)?;
        // Sealed segments wholly before the snapshot go at once; the rest of the
        // segment it starts in goes with that segment at a later compaction.
        self.log.delete_records(begin)?;
        let mut state = lock(&self.state);
        state.compacted_size = self.log.size_bytes();
        tracing::info!(
            dir = %self.log.dir().display(),
            bytes = state.compacted_size,
            "compacted the offsets log"
        );
        Ok(())
    }

    pub(crate) fn close(&self) {
        if let Err(e) = self.log.close() {
            tracing::warn!(error = %e, "closing the offsets log");
        }
    }

    #[cfg(test)]
    pub(crate) fn log(&self) -> &Log {
        &self.log
    }
}
