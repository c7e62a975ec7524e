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
//!
//! Offsets committed in a transaction (TxnOffsetCommit) are pending, kept by
//! group and producer id, until the transaction ends: a commit applies them as
//! one change, an abort drops them. Pending offsets are stored like the others
//! (and in snapshots), so a transaction decided before a crash finds them
//! after it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use veltrix_log::Env;

use super::OffsetCommit;
pub use crate::changelog::COMPACT_BYTES_MIN;
use crate::changelog::{ChangeLog, snapshot_records};
use crate::error::Result;

/// A group with committed offsets, and when it last committed.
pub(crate) struct GroupCommits {
    pub(crate) group_id: String,
    pub(crate) last_commit_ms: i64,
}

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
    /// Offsets committed in a transaction of `producer_id`, pending until it
    /// ends.
    TxnCommit {
        group: String,
        producer_id: i64,
        offsets: GroupOffsets,
    },
    /// The transaction of `producer_id` ended: its pending offsets of
    /// `group` are applied (commit) or dropped (abort).
    TxnEnd {
        group: String,
        producer_id: i64,
        commit: bool,
    },
    SnapshotBegin,
    SnapshotChunk {
        groups: Vec<(String, GroupOffsets)>,
    },
    /// Pending transactional offsets in a snapshot: (group, producer id,
    /// offsets).
    SnapshotPending {
        pending: PendingOffsets,
    },
    SnapshotEnd,
}

/// `(topic, partition, committed)` entries of one group.
type GroupOffsets = Vec<(String, i32, Committed)>;

/// Pending transactional offsets as snapshots keep them: (group, producer
/// id, offsets).
type PendingOffsets = Vec<(String, i64, GroupOffsets)>;

/// Group, then `(topic, partition)`, to the committed offset and the log offset
/// of the change that set it.
type Offsets = BTreeMap<String, BTreeMap<(String, i32), (Committed, i64)>>;

/// (group, producer id) to the offsets its open transaction committed.
type Pending = BTreeMap<(String, i64), BTreeMap<(String, i32), Committed>>;

#[derive(Debug, Default)]
struct State {
    offsets: Offsets,
    pending: Pending,
}

#[derive(Debug)]
pub(crate) struct OffsetStore {
    log: ChangeLog,
    state: Mutex<State>,
    /// Held while compacting, and shared by commits, so a snapshot sees every
    /// change before it and none is lost between snapshot and deletion.
    writers: std::sync::RwLock<()>,
}

/// What the store keeps of one committed offset.
fn committed(o: &OffsetCommit, now_ms: i64) -> (String, i32, Committed) {
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn apply(state: &mut State, change: Change, at: i64, snapshot: &mut Option<State>) {
    let State { offsets, pending } = state;
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
            pending.retain(|(g, _), _| *g != group);
        }
        Change::DeleteTopic { topic } => {
            for g in offsets.values_mut() {
                g.retain(|(t, _), (_, set_at)| *t != topic || *set_at > at);
            }
            offsets.retain(|_, g| !g.is_empty());
            for list in pending.values_mut() {
                list.retain(|(t, _), _| *t != topic);
            }
            pending.retain(|_, list| !list.is_empty());
        }
        Change::TxnCommit {
            group,
            producer_id,
            offsets: list,
        } => {
            let p = pending.entry((group, producer_id)).or_default();
            for (topic, partition, c) in list {
                p.insert((topic, partition), c);
            }
        }
        Change::TxnEnd {
            group,
            producer_id,
            commit,
        } => {
            if let Some(list) = pending.remove(&(group.clone(), producer_id))
                && commit
            {
                let g = offsets.entry(group).or_default();
                for (key, c) in list {
                    let slot = g.entry(key).or_insert((c.clone(), at));
                    if slot.1 <= at {
                        *slot = (c, at);
                    }
                }
            }
        }
        Change::SnapshotBegin => *snapshot = Some(State::default()),
        Change::SnapshotChunk { groups } => {
            if let Some(s) = snapshot {
                for (group, list) in groups {
                    let g = s.offsets.entry(group).or_default();
                    for (topic, partition, c) in list {
                        g.insert((topic, partition), (c, at));
                    }
                }
            }
        }
        Change::SnapshotPending { pending: list } => {
            if let Some(s) = snapshot {
                for (group, producer_id, offsets) in list {
                    let p = s.pending.entry((group, producer_id)).or_default();
                    for (topic, partition, c) in offsets {
                        p.insert((topic, partition), c);
                    }
                }
            }
        }
        Change::SnapshotEnd => {
            if let Some(s) = snapshot.take() {
                *state = s;
            }
        }
    }
}

impl OffsetStore {
    pub(crate) fn open(env: Arc<Env>, dir: &Path) -> Result<OffsetStore> {
        let mut state = State::default();
        let mut snapshot = None;
        let log = ChangeLog::open(env, dir, "offsets", |change: Change, at| {
            apply(&mut state, change, at, &mut snapshot)
        })?;
        Ok(OffsetStore {
            log,
            state: Mutex::new(state),
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
            .chain(state.pending.values().flat_map(|p| p.keys().map(|(t, _)| t.clone())))
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
        apply(&mut lock(&self.state), change, at, &mut None);
        Ok(())
    }

    /// Appends `change` and waits until it is durable; returns its log offset.
    fn write(&self, change: &Change, now_ms: i64) -> Result<i64> {
        self.log.write(change, now_ms)
    }

    /// Durably records `offsets` for `group`.
    pub(crate) fn commit(&self, group: &str, offsets: &[OffsetCommit], now_ms: i64) -> Result<()> {
        let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let change = Change::Commit {
            group: group.to_owned(),
            offsets: offsets.iter().map(|o| committed(o, now_ms)).collect(),
        };
        let at = self.write(&change, now_ms)?;
        apply(&mut lock(&self.state), change, at, &mut None);
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
        apply(&mut lock(&self.state), change, at, &mut None);
        Ok(())
    }

    /// Durably deletes every offset of `group`.
    pub(crate) fn delete_group(&self, group: &str, now_ms: i64) -> Result<()> {
        {
            let state = lock(&self.state);
            if !state.offsets.contains_key(group) && !state.pending.keys().any(|(g, _)| g == group) {
                return Ok(());
            }
        }
        let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let change = Change::DeleteGroup {
            group: group.to_owned(),
        };
        let at = self.write(&change, now_ms)?;
        apply(&mut lock(&self.state), change, at, &mut None);
        Ok(())
    }

    /// Durably records `offsets` for `group` as pending in the transaction of
    /// `producer_id`.
    pub(crate) fn txn_commit(
        &self,
        group: &str,
        producer_id: i64,
        offsets: &[OffsetCommit],
        now_ms: i64,
    ) -> Result<()> {
        let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let change = Change::TxnCommit {
            group: group.to_owned(),
            producer_id,
            offsets: offsets.iter().map(|o| committed(o, now_ms)).collect(),
        };
        let at = self.write(&change, now_ms)?;
        apply(&mut lock(&self.state), change, at, &mut None);
        Ok(())
    }

    /// Durably ends the transaction of `producer_id` for `group`: its pending
    /// offsets applied (`commit`) or dropped. Nothing pending, nothing written.
    pub(crate) fn txn_end(&self, group: &str, producer_id: i64, commit: bool, now_ms: i64) -> Result<()> {
        if !lock(&self.state).pending.contains_key(&(group.to_owned(), producer_id)) {
            return Ok(());
        }
        let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let change = Change::TxnEnd {
            group: group.to_owned(),
            producer_id,
            commit,
        };
        let at = self.write(&change, now_ms)?;
        apply(&mut lock(&self.state), change, at, &mut None);
        Ok(())
    }

    /// The partitions of `group` with offsets pending in an open transaction
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT there).
    pub(crate) fn pending_partitions(&self, group: &str) -> std::collections::BTreeSet<(String, i32)> {
        lock(&self.state)
            .pending
            .iter()
            .filter(|((g, _), _)| g == group)
            .flat_map(|(_, list)| list.keys().cloned())
            .collect()
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
        if !self.log.compaction_due() {
            return Ok(false);
        }
        self.compact(now_ms)?;
        Ok(true)
    }

    /// Writes the whole state as a snapshot and deletes everything before it.
    pub(crate) fn compact(&self, now_ms: i64) -> Result<()> {
        let _exclusive = self.writers.write().unwrap_or_else(|p| p.into_inner());
        let (groups, pending): (Vec<(String, GroupOffsets)>, PendingOffsets) = {
            let state = lock(&self.state);
            let groups = state
                .offsets
                .iter()
                .map(|(g, list)| {
                    let list = list.iter().map(|((t, p), (c, _))| (t.clone(), *p, c.clone())).collect();
                    (g.clone(), list)
                })
                .collect();
            let pending = state
                .pending
                .iter()
                .map(|((g, pid), list)| {
                    let list = list.iter().map(|((t, p), c)| (t.clone(), *p, c.clone())).collect();
                    (g.clone(), *pid, list)
                })
                .collect();
            (groups, pending)
        };
        let mut records = snapshot_records(
            groups,
            |(group, list)| {
                group.len()
                    + list
                        .iter()
                        .map(|(t, _, c)| t.len() + c.metadata.len() + 64)
                        .sum::<usize>()
            },
            Change::SnapshotBegin,
            |groups| Change::SnapshotChunk { groups },
            Change::SnapshotEnd,
        );
        // Pending offsets go before the end marker, cut the same way.
        let end = records.pop();
        let pending_records = snapshot_records(
            pending,
            |(group, _, list)| {
                group.len()
                    + list
                        .iter()
                        .map(|(t, _, c)| t.len() + c.metadata.len() + 64)
                        .sum::<usize>()
            },
            Change::SnapshotBegin,
            |pending| Change::SnapshotPending { pending },
            Change::SnapshotEnd,
        );
        let inner = pending_records.len().saturating_sub(1);
        records.extend(pending_records.into_iter().take(inner).skip(1));
        records.extend(end);
        self.log.replace_with(&records, now_ms)
    }

    pub(crate) fn close(&self) {
        self.log.close();
    }

    #[cfg(test)]
    pub(crate) fn log(&self) -> &veltrix_log::Log {
        self.log.log()
    }
}
