//! [`MemCluster`]: the [`Cluster`]'s rules in memory, for unit tests without
//! a PostgreSQL server. It is [`MemCatalog`] itself: topics created here get
//! their partitions in the catalog's state under the same lock, so they are
//! writable through [`crate::Catalog::commit`] at once, and a deleted
//! topic's batches and producers go with it.
//!
//! Leases are measured by the catalog's own clock, which only the tests move
//! ([`MemCatalog::set_now_ms`], [`MemCatalog::advance`]), as PostgreSQL's
//! clock is the only one that counts for [`crate::PgCluster`].

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::cluster::{
    BrokerLease, Cluster, LiveBroker, OffsetRow, ShareClaim, ShareKey, ShareState, TopicRow, check_lease_ms,
    check_partitions, check_producer_ids, check_share_state,
};
use crate::error::{Error, Result};
use crate::mem::MemCatalog;

/// The cluster's state in memory: the catalog's own type.
pub type MemCluster = MemCatalog;

/// The cluster's part of [`MemCatalog`]'s state.
#[derive(Debug, Default)]
pub(crate) struct ClusterState {
    /// By broker id: expired leases stay until taken over or resigned, as
    /// rows do in PostgreSQL.
    brokers: BTreeMap<i32, Registered>,
    topics: BTreeMap<String, TopicRow>,
    /// The first producer id not handed out yet.
    next_producer_id: i64,
    /// By group, then topic and partition.
    offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetRow>>,
    /// Share-partitions' claims and states.
    share_states: BTreeMap<ShareKey, (i64, Option<ShareState>)>,
    /// Share groups' own settings, by group.
    share_settings: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Registered {
    lease: BrokerLease,
    /// The lease is live while the clock is before this.
    until_ms: u64,
}

impl Registered {
    fn live_for(&self, incarnation: i64, now_ms: u64) -> bool {
        self.lease.incarnation == incarnation && now_ms < self.until_ms
    }
}

impl MemCatalog {
    /// Sets the clock leases are measured by.
    pub fn set_now_ms(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the leases' clock forward.
    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

impl Cluster for MemCatalog {
    async fn register(&self, lease: &BrokerLease, lease_ms: u64) -> Result<()> {
        check_lease_ms(lease_ms)?;
        let mut state = self.check()?;
        let now = self.now();
        let brokers = &mut state.cluster.brokers;
        if let Some(held) = brokers.get(&lease.broker_id)
            && held.lease.incarnation != lease.incarnation
            && now < held.until_ms
        {
            return Err(Error::BrokerIdInUse(lease.broker_id));
        }
        let until_ms = now + lease_ms;
        brokers.insert(
            lease.broker_id,
            Registered {
                lease: lease.clone(),
                until_ms,
            },
        );
        Ok(())
    }

    async fn renew(&self, broker_id: i32, incarnation: i64, lease_ms: u64) -> Result<()> {
        check_lease_ms(lease_ms)?;
        let mut state = self.check()?;
        let now = self.now();
        match state.cluster.brokers.get_mut(&broker_id) {
            Some(held) if held.live_for(incarnation, now) => {
                held.until_ms = now + lease_ms;
                Ok(())
            }
            _ => Err(Error::LeaseLost(broker_id)),
        }
    }

    async fn resign(&self, broker_id: i32, incarnation: i64) -> Result<()> {
        let mut state = self.check()?;
        let brokers = &mut state.cluster.brokers;
        if brokers
            .get(&broker_id)
            .is_some_and(|b| b.lease.incarnation == incarnation)
        {
            brokers.remove(&broker_id);
        }
        Ok(())
    }

    async fn live_brokers(&self) -> Result<Vec<LiveBroker>> {
        let state = self.check()?;
        let now = self.now();
        Ok(state
            .cluster
            .brokers
            .values()
            .filter(|b| now < b.until_ms)
            .map(|b| LiveBroker {
                broker_id: b.lease.broker_id,
                host: b.lease.host.clone(),
                port: b.lease.port,
                listeners: b.lease.listeners.clone(),
            })
            .collect())
    }

    async fn create_topic(&self, topic: &TopicRow) -> Result<()> {
        check_partitions(topic.partitions, 1)?;
        let mut state = self.check()?;
        let topics = &mut state.cluster.topics;
        if topics.contains_key(&topic.name) {
            return Err(Error::TopicExists(topic.name.clone()));
        }
        if topics.values().any(|t| t.id == topic.id) {
            return Err(Error::Other(format!("catalog: topic id of {} in use", topic.name)));
        }
        topics.insert(topic.name.clone(), topic.clone());
        for p in 0..topic.partitions {
            state.next_offsets.entry((topic.name.as_str().into(), p)).or_insert(0);
        }
        Ok(())
    }

    async fn topics(&self) -> Result<Vec<TopicRow>> {
        let state = self.check()?;
        Ok(state.cluster.topics.values().cloned().collect())
    }

    async fn delete_topic(&self, name: &str) -> Result<bool> {
        let mut state = self.check()?;
        let Some(removed) = state.cluster.topics.remove(name) else {
            return Ok(false);
        };
        state
            .cluster
            .share_states
            .retain(|k, _| k.topic_id[..] != removed.id[..]);
        state.next_offsets.retain(|(topic, _), _| &**topic != name);
        state.start_offsets.retain(|(topic, _), _| &**topic != name);
        let now = self.now_ms.load(std::sync::atomic::Ordering::SeqCst) as i64;
        let released: Vec<String> = state
            .batches
            .iter()
            .filter(|((topic, _), _)| &**topic == name)
            .flat_map(|(_, rows)| rows.values().map(|r| r.object_key.clone()))
            .collect();
        state.released.extend(released.into_iter().map(|k| (k, now)));
        state.batches.retain(|(topic, _), _| &**topic != name);
        state.producers.retain(|(topic, _, _), _| &**topic != name);
        state.producers_at.retain(|(topic, _, _), _| &**topic != name);
        for offsets in state.cluster.offsets.values_mut() {
            offsets.retain(|(topic, _), _| topic != name);
        }
        state.cluster.offsets.retain(|_, offsets| !offsets.is_empty());
        Ok(true)
    }

    async fn set_partitions(&self, name: &str, total: i32) -> Result<()> {
        check_partitions(total, 1)?;
        let mut state = self.check()?;
        let Some(topic) = state.cluster.topics.get_mut(name) else {
            return Err(Error::UnknownTopic(name.into()));
        };
        let current = topic.partitions;
        check_partitions(total, current)?;
        topic.partitions = total;
        for p in current..total {
            state.next_offsets.entry((name.into(), p)).or_insert(0);
        }
        Ok(())
    }

    async fn set_topic_config(&self, name: &str, config: &str) -> Result<()> {
        let mut state = self.check()?;
        let topic = state
            .cluster
            .topics
            .get_mut(name)
            .ok_or_else(|| Error::UnknownTopic(name.into()))?;
        topic.config = config.into();
        Ok(())
    }

    async fn allocate_producer_ids(&self, count: i64) -> Result<i64> {
        check_producer_ids(count)?;
        let mut state = self.check()?;
        let first = state.cluster.next_producer_id;
        state.cluster.next_producer_id = first
            .checked_add(count)
            .ok_or_else(|| Error::Other("catalog: producer ids exhausted".into()))?;
        Ok(first)
    }

    async fn commit_offsets(&self, group: &str, broker_id: i32, incarnation: i64, offsets: &[OffsetRow]) -> Result<()> {
        let mut state = self.check()?;
        self.check_live(&state, broker_id, incarnation)?;
        let stored = state.cluster.offsets.entry(group.into()).or_default();
        for o in offsets {
            stored.insert((o.topic.clone(), o.partition), o.clone());
        }
        if stored.is_empty() {
            state.cluster.offsets.remove(group);
        }
        Ok(())
    }

    async fn fetch_offsets(&self, group: &str) -> Result<Vec<OffsetRow>> {
        let state = self.check()?;
        let offsets = state.cluster.offsets.get(group);
        Ok(offsets.map(|o| o.values().cloned().collect()).unwrap_or_default())
    }

    async fn delete_offsets(&self, group: &str, partitions: Option<&[(String, i32)]>) -> Result<()> {
        let mut state = self.check()?;
        let all = &mut state.cluster.offsets;
        match (partitions, all.get_mut(group)) {
            (None, _) | (_, None) => {}
            (Some(named), Some(offsets)) => {
                for key in named {
                    offsets.remove(key);
                }
                if !offsets.is_empty() {
                    return Ok(());
                }
            }
        }
        all.remove(group);
        Ok(())
    }

    async fn groups(&self) -> Result<Vec<String>> {
        let state = self.check()?;
        Ok(state.cluster.offsets.keys().cloned().collect())
    }

    async fn claim_share_state(&self, key: &ShareKey, broker_id: i32, incarnation: i64) -> Result<ShareClaim> {
        let mut state = self.check()?;
        self.check_live(&state, broker_id, incarnation)?;
        let settings = state.cluster.share_settings.get(&key.group).cloned();
        let entry = state.cluster.share_states.entry(key.clone()).or_insert((0, None));
        entry.0 += 1;
        Ok(ShareClaim {
            claim: entry.0,
            state: entry.1.clone(),
            settings,
        })
    }

    async fn store_share_state(
        &self,
        key: &ShareKey,
        (broker_id, incarnation): (i32, i64),
        claim: i64,
        share: &ShareState,
    ) -> Result<()> {
        check_share_state(share)?;
        let mut state = self.check()?;
        self.check_live(&state, broker_id, incarnation)?;
        match state.cluster.share_states.get_mut(key) {
            Some(entry) if entry.0 == claim => {
                entry.1 = Some(share.clone());
                Ok(())
            }
            _ => Err(Error::ShareStateMoved {
                group: key.group.clone(),
            }),
        }
    }

    async fn set_share_settings(&self, group: &str, settings: &str) -> Result<()> {
        let mut state = self.check()?;
        if settings.is_empty() {
            state.cluster.share_settings.remove(group);
        } else {
            state.cluster.share_settings.insert(group.into(), settings.into());
        }
        Ok(())
    }

    async fn delete_share_group(&self, group: &str) -> Result<()> {
        let mut state = self.check()?;
        state.cluster.share_states.retain(|k, _| k.group != group);
        state.cluster.share_settings.remove(group);
        Ok(())
    }

    async fn share_claims(&self, keys: &[ShareKey]) -> Result<Vec<(ShareKey, i64)>> {
        let state = self.check()?;
        Ok(keys
            .iter()
            .filter_map(|k| Some((k.clone(), state.cluster.share_states.get(k)?.0)))
            .collect())
    }

    async fn share_starts(&self, group: &str) -> Result<Vec<(ShareKey, i64)>> {
        let state = self.check()?;
        Ok(state
            .cluster
            .share_states
            .iter()
            .filter(|(k, _)| k.group == group)
            .filter_map(|(k, (_, s))| Some((k.clone(), s.as_ref()?.start_offset)))
            .take(crate::cluster::SHARE_STARTS_LISTED_MAX)
            .collect())
    }

    async fn set_share_states(
        &self,
        group: &str,
        (broker_id, incarnation): (i32, i64),
        states: &[([u8; 16], i32, Option<ShareState>)],
    ) -> Result<()> {
        for share in states.iter().filter_map(|(_, _, s)| s.as_ref()) {
            check_share_state(share)?;
        }
        let mut state = self.check()?;
        self.check_live(&state, broker_id, incarnation)?;
        for (topic_id, partition, share) in states {
            let key = ShareKey {
                group: group.to_owned(),
                topic_id: *topic_id,
                partition: *partition,
            };
            match share {
                Some(share) => {
                    let entry = state.cluster.share_states.entry(key).or_insert((0, None));
                    entry.0 += 1;
                    entry.1 = Some(share.clone());
                }
                None => {
                    state.cluster.share_states.remove(&key);
                }
            }
        }
        Ok(())
    }

    async fn share_settings(&self) -> Result<Vec<(String, String)>> {
        let state = self.check()?;
        Ok(state
            .cluster
            .share_settings
            .iter()
            .map(|(g, s)| (g.clone(), s.clone()))
            .collect())
    }
}

impl MemCatalog {
    /// [`Error::LeaseLost`] unless the broker's lease is live.
    fn check_live(&self, state: &crate::mem::State, broker_id: i32, incarnation: i64) -> Result<()> {
        let now = self.now();
        let live = state
            .cluster
            .brokers
            .get(&broker_id)
            .is_some_and(|b| b.live_for(incarnation, now));
        if live { Ok(()) } else { Err(Error::LeaseLost(broker_id)) }
    }
}

#[cfg(test)]
mod tests;
