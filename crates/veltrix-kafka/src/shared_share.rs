//! Share groups on shared storage: each share-partition is served by the
//! broker leading its partition, its state kept in the metadata store.
//!
//! The engine's share coordinator runs on every broker as on one, with two
//! seams set: [`SharedShareStore`] keeps share-partitions' state in the
//! metadata store (one row each, claimed by the broker that loads it, so a
//! broker whose copy went stale has its changes refused and drops it), and
//! [`SharedSource`] reads a partition's records through the node. Membership
//! and assignment stay with the group's coordinator (ShareGroupHeartbeat);
//! ShareFetch and ShareAcknowledge go to the partitions' leaders, which do
//! not ask the coordinator about members, as in Kafka.
//!
//! Both seams block on the node's futures: the engine calls them on the
//! blocking pool only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::runtime::Handle;
use veltrix_core::share::{Claimed, Persist, ShareChange, ShareError, ShareSource, ShareStateStore, Ticket};
use veltrix_core::{CoreError, Result, TopicId};
use veltrix_shared::{ShareKey, ShareState, Shared};

/// The claim this broker holds on each share-partition it loaded.
pub type Claims = Arc<Mutex<HashMap<ShareKey, i64>>>;

/// Share-group state in the metadata store.
pub struct SharedShareStore {
    node: Arc<dyn Shared>,
    handle: Handle,
    claims: Claims,
}

impl std::fmt::Debug for SharedShareStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedShareStore")
            .field("broker_id", &self.node.broker_id())
            .finish_non_exhaustive()
    }
}

impl SharedShareStore {
    pub fn new(node: Arc<dyn Shared>, handle: Handle, claims: Claims) -> SharedShareStore {
        SharedShareStore { node, handle, claims }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<ShareKey, i64>> {
        lock_claims(&self.claims)
    }

    /// Administration's change of share-partitions' states (AlterShareGroupOffsets,
    /// DeleteShareGroupOffsets): stored whole under raised claims, so whoever
    /// serves one loads it again; this broker's claims on them are dropped.
    fn set_states(&self, group: &str, states: &[([u8; 16], i32, Option<ShareState>)]) -> Result<Ticket> {
        self.handle
            .block_on(self.node.set_share_states(group, states))
            .map_err(|e| match e {
                veltrix_shared::Error::LeaseLost(_) => CoreError::ShareStateMoved {
                    group: group.to_owned(),
                    partition: states.first().map_or(0, |s| s.1),
                },
                e => CoreError::Timeout(format!("storing share-group state: {e}")),
            })?;
        self.claims()
            .retain(|k, _| k.group != group || !states.iter().any(|(t, p, _)| k.topic_id == *t && k.partition == *p));
        Ok(Ticket(0))
    }
}

fn key(group: &str, topic: &str, partition: i32) -> Result<ShareKey> {
    let topic_id = veltrix_core::share::topic_from_hex(topic)
        .ok_or_else(|| CoreError::InvalidConfig(format!("share state of a topic id `{topic}` no topic has")))?;
    Ok(ShareKey {
        group: group.to_owned(),
        topic_id,
        partition,
    })
}

/// The engine's error for the store's: a lost claim or lease means another
/// broker serves the share-partition now.
fn store_error(key: &ShareKey, e: veltrix_shared::Error) -> CoreError {
    match e {
        veltrix_shared::Error::ShareStateMoved { .. } | veltrix_shared::Error::LeaseLost(_) => {
            CoreError::ShareStateMoved {
                group: key.group.clone(),
                partition: key.partition,
            }
        }
        e if e.is_retriable() => CoreError::Timeout(format!("share-group state: {e}")),
        e => CoreError::InvalidConfig(format!("share-group state: {e}")),
    }
}

impl ShareStateStore for SharedShareStore {
    fn replay(&self) -> Result<Vec<ShareChange>> {
        Ok(Vec::new())
    }

    fn append(&self, change: &ShareChange, _now_ms: i64) -> Result<Ticket> {
        match change {
            ShareChange::Records {
                group,
                topic,
                partition,
                start,
                ranges,
            } => {
                let key = key(group, topic, *partition)?;
                let moved = || CoreError::ShareStateMoved {
                    group: group.clone(),
                    partition: *partition,
                };
                let claim = *self.claims().get(&key).ok_or_else(moved)?;
                let state = ShareState {
                    start_offset: start.ok_or_else(|| {
                        CoreError::InvalidConfig("a share-partition's state is stored whole, with its start".into())
                    })?,
                    ranges: serde_json::to_vec(ranges).map_err(|e| CoreError::InvalidConfig(e.to_string()))?,
                };
                let stored = self.handle.block_on(self.node.store_share_state(&key, claim, &state));
                if let Err(e) = stored {
                    let e = store_error(&key, e);
                    if matches!(e, CoreError::ShareStateMoved { .. }) {
                        self.claims().remove(&key);
                    }
                    return Err(e);
                }
                Ok(Ticket(0))
            }
            // The metadata store deletes a topic's share state with the topic.
            ShareChange::DeleteTopic { .. } => Ok(Ticket(0)),
            ShareChange::DeleteGroup { group } => {
                self.handle
                    .block_on(self.node.delete_share_group(group))
                    .map_err(|e| CoreError::Timeout(format!("deleting a share group: {e}")))?;
                self.claims().retain(|k, _| k.group != *group);
                Ok(Ticket(0))
            }
            ShareChange::Settings { group, settings } => {
                let text = if settings.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(settings).map_err(|e| CoreError::InvalidConfig(e.to_string()))?
                };
                self.handle
                    .block_on(self.node.set_share_settings(group, &text))
                    .map_err(|e| CoreError::Timeout(format!("storing share group settings: {e}")))?;
                Ok(Ticket(0))
            }
            ShareChange::Starts { group, starts } => {
                let empty =
                    serde_json::to_vec(&Vec::<Persist>::new()).map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
                let states = starts
                    .iter()
                    .map(|(topic, partition, start)| {
                        let key = key(group, topic, *partition)?;
                        let state = ShareState {
                            start_offset: *start,
                            ranges: empty.clone(),
                        };
                        Ok((key.topic_id, *partition, Some(state)))
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.set_states(group, &states)
            }
            ShareChange::DeletePartitions { group, partitions } => {
                let states = partitions
                    .iter()
                    .map(|(topic, partition)| Ok((key(group, topic, *partition)?.topic_id, *partition, None)))
                    .collect::<Result<Vec<_>>>()?;
                self.set_states(group, &states)
            }
        }
    }

    fn stored_starts(&self, group: &str) -> Result<Option<Vec<(String, i32, i64)>>> {
        let starts = self
            .handle
            .block_on(self.node.share_starts(group))
            .map_err(|e| CoreError::Timeout(format!("reading share-group state: {e}")))?;
        Ok(Some(
            starts
                .into_iter()
                .map(|(k, start)| (veltrix_core::share::topic_hex(&k.topic_id), k.partition, start))
                .collect(),
        ))
    }

    fn wait_durable(&self, _ticket: Ticket) -> Result<()> {
        Ok(())
    }

    fn compaction_due(&self) -> bool {
        false
    }

    fn replace_with(&self, _state: Vec<ShareChange>, _now_ms: i64) -> Result<()> {
        Ok(())
    }

    fn tick(&self) -> Result<()> {
        Ok(())
    }

    fn close(&self) {}

    fn on_demand(&self) -> bool {
        true
    }

    fn claim(&self, group: &str, topic: &str, partition: i32) -> Result<Claimed> {
        let key = key(group, topic, partition)?;
        let claimed = self
            .handle
            .block_on(self.node.claim_share_state(&key))
            .map_err(|e| store_error(&key, e))?;
        self.claims().insert(key, claimed.claim);
        let state = claimed.state.map(|state| {
            let ranges: Vec<Persist> = serde_json::from_slice(&state.ranges).unwrap_or_else(|e| {
                tracing::warn!(group, partition, error = %e, "ignoring unreadable stored share-state ranges");
                Vec::new()
            });
            (state.start_offset, ranges)
        });
        let settings = match claimed.settings {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(group, error = %e, "a share group's settings in the metadata store do not parse");
                Vec::new()
            }),
        };
        Ok(Claimed {
            state,
            settings: Some(settings),
        })
    }
}

/// Share-partitions whose claim moved since this broker took it (another
/// broker took them over, or AlterShareGroupOffsets or
/// DeleteShareGroupOffsets stored a new state): forgotten here, to be
/// dropped from memory with [`drop_moved`] and loaded again when next used.
/// Without this a copy nothing changes (a group whose records are all
/// delivered) would go on serving a start an administrator moved.
pub async fn moved_claims(node: &dyn Shared, claims: &Claims) -> veltrix_shared::Result<Vec<ShareKey>> {
    const KEYS_PER_QUERY_MAX: usize = 10_000;
    let held: Vec<(ShareKey, i64)> = lock_claims(claims).iter().map(|(k, c)| (k.clone(), *c)).collect();
    let mut current = HashMap::with_capacity(held.len());
    for chunk in held.chunks(KEYS_PER_QUERY_MAX) {
        let keys: Vec<ShareKey> = chunk.iter().map(|(k, _)| k.clone()).collect();
        current.extend(node.share_claims(&keys).await?);
    }
    let mut claims = lock_claims(claims);
    let mut moved = Vec::new();
    for (k, c) in held {
        if current.get(&k) != Some(&c) && claims.get(&k) == Some(&c) {
            claims.remove(&k);
            moved.push(k);
        }
    }
    Ok(moved)
}

/// Drops the share-partitions [`moved_claims`] found from the engine's memory.
pub fn drop_moved(broker: &veltrix_core::Broker, moved: &[ShareKey]) {
    if moved.is_empty() {
        return;
    }
    let moved: std::collections::HashSet<(&str, &TopicId, i32)> = moved
        .iter()
        .map(|k| (k.group.as_str(), &k.topic_id, k.partition))
        .collect();
    let dropped = broker
        .share()
        .retain_partitions(&|k| !moved.contains(&(k.group.as_str(), &k.topic, k.partition)));
    if dropped > 0 {
        tracing::info!(
            dropped,
            "share-partitions whose state moved left memory, to be loaded again"
        );
    }
}

fn lock_claims(claims: &Claims) -> std::sync::MutexGuard<'_, HashMap<ShareKey, i64>> {
    claims.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every share group's settings in the metadata store, as the engine
/// adopts them; a group's that do not parse are left out, with a warning.
pub async fn share_settings(node: &dyn Shared) -> veltrix_shared::Result<Vec<(String, Vec<(String, String)>)>> {
    let stored = node.share_settings().await?;
    Ok(stored
        .into_iter()
        .filter_map(|(group, text)| match serde_json::from_str(&text) {
            Ok(settings) => Some((group, settings)),
            Err(e) => {
                tracing::warn!(group = %group, error = %e, "a share group's settings in the metadata store do not parse");
                None
            }
        })
        .collect())
}

/// A partition's records read through the node, for acquisition. Its start
/// and end are read once, when it is made.
pub struct SharedSource {
    node: Arc<dyn Shared>,
    handle: Handle,
    topic: String,
    partition: i32,
    start: i64,
    end: i64,
}

impl SharedSource {
    /// The source of a partition this broker leads; blocks on the node.
    pub fn open(
        node: Arc<dyn Shared>,
        handle: Handle,
        topic: &str,
        partition: i32,
    ) -> std::result::Result<SharedSource, ShareError> {
        let storage = |e: veltrix_shared::Error| ShareError::Storage(e.to_string());
        let (start, end) = handle.block_on(async {
            let start = node.start_offset(topic, partition).await.map_err(storage)?;
            let end = node.recent_end_offset(topic, partition).await.map_err(storage)?;
            Ok::<_, ShareError>((start, end))
        })?;
        Ok(SharedSource {
            node,
            handle,
            topic: topic.to_owned(),
            partition,
            start,
            end,
        })
    }
}

impl ShareSource for SharedSource {
    fn log_start(&self) -> i64 {
        self.start
    }

    fn high_watermark(&self) -> i64 {
        self.end
    }

    fn read(&self, from: i64, bytes_max: usize) -> std::result::Result<Bytes, ShareError> {
        if from >= self.end {
            return Ok(Bytes::new());
        }
        self.handle
            .block_on(self.node.read(&self.topic, self.partition, from, bytes_max))
            .map(|(records, _)| records)
            .map_err(|e| ShareError::Storage(e.to_string()))
    }

    fn offset_for_timestamp(&self, timestamp: i64) -> Option<i64> {
        self.handle
            .block_on(self.node.offset_for_timestamp(&self.topic, self.partition, timestamp))
            .ok()
            .flatten()
            .map(|(offset, _)| offset)
    }
}

/// Why a share-partition is not served here: another broker leads it.
pub fn not_leader(topic: &str, partition: i32, leader: i32) -> ShareError {
    ShareError::NotLeader(format!(
        "broker {leader} leads {topic}-{partition} and serves its share groups"
    ))
}

/// The topic id's name, for the node's calls.
pub fn topic_name(broker: &veltrix_core::Broker, id: &TopicId) -> Option<String> {
    broker.topic_by_id(id).map(|t| t.name.clone())
}
