//! [`MemCatalog`]: the catalog's rules in memory, for unit tests of the
//! writer, reader and collector without a PostgreSQL server. Its commit is
//! atomic under one lock, and it can be told to fail as an unreachable
//! server would. It is the in-memory [`crate::Cluster`] too
//! (`mem_cluster.rs`), on the same state, so a topic created there is
//! writable here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::catalog::{Appended, BatchRow, Catalog, Moved, ObjectCommit, ObjectState, PlacedBatch, Trimmed};
use crate::error::{Error, Result};
use crate::mem_cluster::ClusterState;
use crate::sequence::{self, CommitState, PartitionKey, ProducerKey, ProducerState};

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_offsets: HashMap<PartitionKey, i64>,
    pub(crate) producers: HashMap<ProducerKey, ProducerState>,
    /// When each producer's state last changed (the test clock's ms).
    pub(crate) producers_at: HashMap<ProducerKey, i64>,
    /// Per partition, by last offset.
    pub(crate) batches: HashMap<PartitionKey, BTreeMap<i64, BatchRow>>,
    /// Moved by retention; absent means 0.
    pub(crate) start_offsets: HashMap<PartitionKey, i64>,
    objects: HashMap<String, ObjectState>,
    /// When each orphan was claimed (the test clock's ms).
    claimed_at: HashMap<String, i64>,
    /// When each committed object was committed (the test clock's ms), and
    /// its size.
    committed_at: HashMap<String, (i64, u64)>,
    /// Objects released by retention or a deleted topic, with when (the
    /// test clock's ms), in order.
    pub(crate) released: Vec<(String, i64)>,
    /// Brokers, topics, producer ids and groups' offsets.
    pub(crate) cluster: ClusterState,
}

/// The catalog in memory.
#[derive(Debug, Default)]
pub struct MemCatalog {
    state: Mutex<State>,
    unavailable: AtomicBool,
    /// The clock leases are measured by (ms), moved by the tests only
    /// ([`MemCatalog::set_now_ms`], [`MemCatalog::advance`]).
    pub(crate) now_ms: AtomicU64,
}

impl MemCatalog {
    pub fn new() -> Self {
        MemCatalog::default()
    }

    /// While set, every operation fails with [`Error::CatalogUnavailable`].
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    pub(crate) fn check(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(Error::CatalogUnavailable("unavailable (simulated)".into()));
        }
        Ok(self.state.lock().expect("catalog lock"))
    }
}

impl Catalog for MemCatalog {
    async fn create_partitions(&self, topic: &str, count: i32) -> Result<()> {
        let mut state = self.check()?;
        for p in 0..count {
            state.next_offsets.entry((topic.into(), p)).or_insert(0);
        }
        Ok(())
    }

    async fn commit(&self, object: &ObjectCommit) -> Result<Vec<Result<Appended>>> {
        let mut state = self.check()?;
        let mut commit = CommitState::default();
        for b in &object.batches {
            let key = (b.topic.clone(), b.partition);
            if let Some(&next) = state.next_offsets.get(&key) {
                commit.next_offsets.insert(key, next);
            }
            if let Some(p) = b.producer {
                let key = (b.topic.clone(), b.partition, p.producer_id);
                if let Some(s) = state.producers.get(&key) {
                    commit.producers.insert(key, s.clone());
                }
            }
        }
        let plan = sequence::plan(&object.batches, &mut commit);
        if plan.new_batches.is_empty() {
            return Ok(plan.outcomes);
        }
        if state.objects.contains_key(&object.key) {
            return Err(Error::ObjectCollected(object.key.clone()));
        }
        state.objects.insert(object.key.clone(), ObjectState::Committed);
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        state.committed_at.insert(object.key.clone(), (now, object.size));
        for &i in &plan.new_batches {
            let (b, Ok(a)) = (&object.batches[i], &plan.outcomes[i]) else {
                continue;
            };
            let row = BatchRow {
                base_offset: a.base_offset,
                last_offset: a.last_offset,
                max_timestamp: b.max_timestamp,
                object_key: object.key.clone(),
                byte_start: b.byte_start,
                byte_len: b.byte_len,
                crc32c: b.crc32c,
            };
            state
                .batches
                .entry((b.topic.clone(), b.partition))
                .or_default()
                .insert(a.last_offset, row);
        }
        for key in plan.changed_partitions {
            state.next_offsets.insert(key.clone(), commit.next_offsets[&key]);
        }
        for key in plan.changed_producers {
            let producer = commit.producers[&key].clone();
            state.producers_at.insert(key.clone(), now);
            state.producers.insert(key, producer);
        }
        Ok(plan.outcomes)
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        let state = self.check()?;
        Ok(state.next_offsets.get(&(topic.into(), partition)).copied())
    }

    async fn batches(&self, topic: &str, partition: i32, offset: i64, rows_max: usize) -> Result<Vec<BatchRow>> {
        let state = self.check()?;
        let Some(rows) = state.batches.get(&(topic.into(), partition)) else {
            return Ok(Vec::new());
        };
        Ok(rows.range(offset..).take(rows_max).map(|(_, r)| r.clone()).collect())
    }

    async fn object_states(&self, keys: &[String]) -> Result<HashMap<String, ObjectState>> {
        let state = self.check()?;
        Ok(keys
            .iter()
            .filter_map(|k| state.objects.get(k).map(|s| (k.clone(), *s)))
            .collect())
    }

    async fn claim_orphans(&self, keys: &[(String, u64)]) -> Result<Vec<String>> {
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        let mut state = self.check()?;
        let mut claimed = Vec::new();
        for (key, _) in keys {
            if !state.objects.contains_key(key) {
                state.objects.insert(key.clone(), ObjectState::Orphan);
                state.claimed_at.insert(key.clone(), now);
                claimed.push(key.clone());
            }
        }
        Ok(claimed)
    }

    async fn start_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        let state = self.check()?;
        let key: PartitionKey = (topic.into(), partition);
        Ok(state
            .next_offsets
            .contains_key(&key)
            .then(|| state.start_offsets.get(&key).copied().unwrap_or(0)))
    }

    async fn trim(&self, topic: &str, partition: i32, before_ms: i64, rows_max: usize) -> Result<Option<Trimmed>> {
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        let mut state = self.check()?;
        let key: PartitionKey = (topic.into(), partition);
        if !state.next_offsets.contains_key(&key) {
            return Ok(None);
        }
        let doomed: Vec<(i64, String)> = state
            .batches
            .get(&key)
            .map(|rows| {
                rows.values()
                    .take_while(|r| {
                        let committed = state.committed_at.get(&r.object_key).map_or(0, |c| c.0);
                        r.max_timestamp < before_ms && committed < before_ms
                    })
                    .take(rows_max)
                    .map(|r| (r.last_offset, r.object_key.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let start = state.start_offsets.get(&key).copied().unwrap_or(0);
        let Some(&(last, _)) = doomed.last() else {
            return Ok(Some(Trimmed {
                batches: 0,
                start_offset: start,
            }));
        };
        let rows = state.batches.get_mut(&key).expect("rows found above");
        for (last_offset, _) in &doomed {
            rows.remove(last_offset);
        }
        let start = start.max(last + 1);
        state.start_offsets.insert(key, start);
        state.released.extend(doomed.iter().map(|(_, k)| (k.clone(), now)));
        Ok(Some(Trimmed {
            batches: doomed.len() as u64,
            start_offset: start,
        }))
    }

    async fn delete_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        rows_max: usize,
    ) -> Result<Option<Trimmed>> {
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        let mut state = self.check()?;
        let key: PartitionKey = (topic.into(), partition);
        let Some(&end) = state.next_offsets.get(&key) else {
            return Ok(None);
        };
        let start = state.start_offsets.get(&key).copied().unwrap_or(0).max(offset.min(end));
        let doomed: Vec<(i64, String)> = state
            .batches
            .get(&key)
            .map(|rows| {
                rows.values()
                    .take_while(|r| r.last_offset < start)
                    .take(rows_max)
                    .map(|r| (r.last_offset, r.object_key.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(rows) = state.batches.get_mut(&key) {
            for (last_offset, _) in &doomed {
                rows.remove(last_offset);
            }
        }
        state.start_offsets.insert(key, start);
        state.released.extend(doomed.iter().map(|(_, k)| (k.clone(), now)));
        Ok(Some(Trimmed {
            batches: doomed.len() as u64,
            start_offset: start,
        }))
    }

    async fn drop_released(&self, grace_ms: i64, rows_max: usize) -> Result<Vec<String>> {
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        let mut state = self.check()?;
        let ripe = state
            .released
            .iter()
            .take(rows_max)
            .take_while(|(_, at)| *at + grace_ms <= now)
            .count();
        let taken: Vec<String> = state.released.drain(..ripe).map(|(k, _)| k).collect();
        let referenced: std::collections::HashSet<&str> = state
            .batches
            .values()
            .flat_map(|rows| rows.values().map(|r| r.object_key.as_str()))
            .collect();
        let dropped: Vec<String> = taken
            .into_iter()
            .filter(|k| !referenced.contains(k.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| state.objects.get(k) == Some(&ObjectState::Committed))
            .collect();
        for k in &dropped {
            state.objects.insert(k.clone(), ObjectState::Dropped);
        }
        Ok(dropped)
    }

    async fn expire_producers(&self, idle_ms: i64, rows_max: usize) -> Result<u64> {
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        let mut state = self.check()?;
        let idle: Vec<ProducerKey> = state
            .producers_at
            .iter()
            .filter(|(_, at)| **at + idle_ms <= now)
            .map(|(k, _)| k.clone())
            .take(rows_max)
            .collect();
        for k in &idle {
            state.producers.remove(k);
            state.producers_at.remove(k);
        }
        Ok(idle.len() as u64)
    }

    async fn prune_orphan_claims(&self, age_ms: i64, rows_max: usize) -> Result<u64> {
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        let mut state = self.check()?;
        let old: Vec<String> = state
            .claimed_at
            .iter()
            .filter(|(_, at)| **at + age_ms <= now)
            .map(|(k, _)| k.clone())
            .take(rows_max)
            .collect();
        for k in &old {
            state.claimed_at.remove(k);
            state.objects.remove(k);
        }
        Ok(old.len() as u64)
    }

    async fn forget(&self, keys: &[String]) -> Result<()> {
        let mut state = self.check()?;
        for k in keys {
            if state.objects.get(k) == Some(&ObjectState::Dropped) {
                state.objects.remove(k);
                state.committed_at.remove(k);
            }
        }
        Ok(())
    }

    async fn small_objects(&self, size_below: u64, age_min_ms: i64, count_max: usize) -> Result<Vec<(String, u64)>> {
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        let state = self.check()?;
        let holding: std::collections::HashSet<&str> = state
            .batches
            .values()
            .flat_map(|rows| rows.values().map(|r| r.object_key.as_str()))
            .collect();
        let mut small: Vec<(i64, String, u64)> = state
            .committed_at
            .iter()
            .filter(|(k, (at, size))| {
                *size < size_below
                    && at + age_min_ms <= now
                    && holding.contains(k.as_str())
                    && state.objects.get(*k) == Some(&ObjectState::Committed)
            })
            .map(|(k, (at, size))| (*at, k.clone(), *size))
            .collect();
        small.sort();
        Ok(small.into_iter().take(count_max).map(|(_, k, s)| (k, s)).collect())
    }

    async fn batches_in(&self, keys: &[String]) -> Result<Vec<PlacedBatch>> {
        let state = self.check()?;
        let wanted: std::collections::HashSet<&str> = keys.iter().map(String::as_str).collect();
        Ok(state
            .batches
            .iter()
            .flat_map(|((topic, partition), rows)| {
                rows.values()
                    .filter(|r| wanted.contains(r.object_key.as_str()))
                    .map(|r| PlacedBatch {
                        topic: topic.clone(),
                        partition: *partition,
                        base_offset: r.base_offset,
                        object_key: r.object_key.clone(),
                        byte_start: r.byte_start,
                        byte_len: r.byte_len,
                        crc32c: r.crc32c,
                    })
            })
            .collect())
    }

    async fn rewrite(&self, merged: &str, size: u64, moves: &[Moved], sources: &[String]) -> Result<usize> {
        let now = self.now_ms.load(Ordering::SeqCst) as i64;
        let mut state = self.check()?;
        if state.objects.contains_key(merged) {
            return Err(Error::ObjectCollected(merged.to_owned()));
        }
        let mut moved = 0;
        for m in moves {
            let Some(rows) = state.batches.get_mut(&(m.topic.clone(), m.partition)) else {
                continue;
            };
            if let Some(row) = rows
                .values_mut()
                .find(|r| r.base_offset == m.base_offset && r.object_key == m.from_key)
            {
                row.object_key = merged.to_owned();
                row.byte_start = m.byte_start;
                moved += 1;
            }
        }
        if moved == 0 {
            return Ok(0);
        }
        state.objects.insert(merged.to_owned(), ObjectState::Committed);
        state.committed_at.insert(merged.to_owned(), (now, size));
        state.released.extend(sources.iter().map(|k| (k.clone(), now)));
        Ok(moved)
    }
}
