//! [`MemCatalog`]: the catalog's rules in memory, for unit tests of the
//! writer, reader and collector without a PostgreSQL server. Its commit is
//! atomic under one lock, and it can be told to fail as an unreachable
//! server would. It is the in-memory [`crate::Cluster`] too
//! (`mem_cluster.rs`), on the same state, so a topic created there is
//! writable here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::catalog::{Appended, BatchRow, Catalog, ObjectCommit, ObjectState};
use crate::error::{Error, Result};
use crate::mem_cluster::ClusterState;
use crate::sequence::{self, CommitState, PartitionKey, ProducerKey, ProducerState};

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_offsets: HashMap<PartitionKey, i64>,
    pub(crate) producers: HashMap<ProducerKey, ProducerState>,
    /// Per partition, by last offset.
    pub(crate) batches: HashMap<PartitionKey, BTreeMap<i64, BatchRow>>,
    objects: HashMap<String, ObjectState>,
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
        let mut state = self.check()?;
        let mut claimed = Vec::new();
        for (key, _) in keys {
            if !state.objects.contains_key(key) {
                state.objects.insert(key.clone(), ObjectState::Orphan);
                claimed.push(key.clone());
            }
        }
        Ok(claimed)
    }
}
