//! The front door's link to shared storage (`[storage] mode = "shared"`,
//! docs/scale-out.md): the node it reaches through, and the topics'
//! catalogue kept in step with the metadata store.
//!
//! In shared mode the engine's `Broker` still holds the topics (names, ids,
//! partition counts and settings: what Metadata, DescribeConfigs and the
//! ACLs read), but as a copy of the metadata store's: a topic is created,
//! grown, reconfigured or deleted there first, and every broker applies the
//! store's catalogue to its own (`sync_topics`) every second and whenever a
//! client names a topic it does not know. Partitions' records, offsets,
//! producers' state and groups' committed offsets are the store's alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use veltrix_core::{Broker, TopicConfig};
use veltrix_shared::{Shared, TopicRow};

/// A broker's shared-storage node, as the front doors hold it.
#[derive(Clone)]
pub struct SharedStorage {
    node: Arc<dyn Shared>,
    /// When the last read of the topics from the store began, to bound how
    /// often a client naming an unknown topic makes us read them again.
    synced: Arc<std::sync::Mutex<Option<Instant>>>,
    /// Held while reading on demand: concurrent callers share one read.
    syncing: Arc<tokio::sync::Mutex<()>>,
    /// The groups' lag as last measured ([`SharedStorage::measure_lag`]).
    lag: Arc<crate::shared_lag::SharedLag>,
    /// The claims this broker holds on share-partitions, shared with its
    /// [`crate::shared_share::SharedShareStore`].
    share_claims: crate::shared_share::Claims,
}

impl std::fmt::Debug for SharedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStorage")
            .field("broker_id", &self.node.broker_id())
            .finish_non_exhaustive()
    }
}

/// Reads of the store's topics asked for by clients naming unknown topics:
/// at most one per this interval (callers meanwhile wait for the next one).
const ON_DEMAND_SYNC_MS: u64 = 50;

/// Retention transactions per partition per round at most (each removes at
/// most `TRIM_ROWS_MAX` batches).
const RETENTION_TRIMS_PER_ROUND_MAX: usize = 10;

impl SharedStorage {
    pub fn new(node: Arc<dyn Shared>) -> SharedStorage {
        SharedStorage {
            node,
            synced: Arc::default(),
            syncing: Arc::default(),
            lag: Arc::default(),
            share_claims: crate::shared_share::Claims::default(),
        }
    }

    pub fn node(&self) -> &Arc<dyn Shared> {
        &self.node
    }

    pub fn broker_id(&self) -> i32 {
        self.node.broker_id()
    }

    /// Puts the engine's share groups' state in the metadata store
    /// ([`crate::shared_share`]) and has its lag measured here
    /// ([`crate::shared_lag`]), before the broker serves: called within the
    /// runtime the broker serves on.
    pub fn attach(&self, broker: &Broker) {
        broker
            .share()
            .attach_store(Box::new(crate::shared_share::SharedShareStore::new(
                self.node.clone(),
                tokio::runtime::Handle::current(),
                self.share_claims.clone(),
            )));
        broker.attach_lag_source(self.lag.clone());
    }

    /// Measures the lag of the groups this broker coordinates and of the
    /// share-partitions it serves, for the engine's `Broker::lag`. Answers
    /// the positions measured; on an error the last measurement stays.
    pub async fn measure_lag(&self, broker: &Arc<Broker>) -> veltrix_shared::Result<usize> {
        self.lag.measure(&*self.node, broker).await
    }

    /// Makes sure the engine's topics are the store's as of a moment after
    /// this call: a read that began after it is waited for, or one is made.
    /// Concurrent callers share one read; reads are at least
    /// [`ON_DEMAND_SYNC_MS`] apart, so clients naming unknown topics in a loop
    /// cost the store one read per interval.
    pub async fn sync_soon(&self, broker: &Arc<Broker>) {
        let asked = Instant::now();
        let _one = self.syncing.lock().await;
        let last = *self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at > asked) {
            return;
        }
        if let Some(at) = last {
            let next = at + Duration::from_millis(ON_DEMAND_SYNC_MS);
            tokio::time::sleep_until(next.into()).await;
        }
        if let Err(e) = self.sync(broker).await {
            tracing::debug!(error = %e, "reading the topics from the metadata store failed");
        }
    }

    /// Time retention (the topics' `retention.ms`) for the partitions this
    /// broker leads: their batches whose largest timestamp is older than
    /// `now_ms - retention.ms` are removed from the start, their objects
    /// released to the collector. Partitions move between brokers with the
    /// live set; trimming one twice is harmless. Answers the batches removed;
    /// a partition the store cannot trim now waits for the next round.
    pub async fn enforce_retention(&self, broker: &Arc<Broker>, now_ms: i64) -> u64 {
        let defaults = broker.config().log;
        let mut removed = 0;
        for topic in broker.topics() {
            let Some(retention_ms) = topic.config.log_config(&defaults).retention_ms else {
                continue;
            };
            let before_ms = now_ms.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX));
            for p in 0..topic.partitions.len() as i32 {
                if self.node.leader_of(&topic.name, p) != self.node.broker_id() {
                    continue;
                }
                // A partition far past its retention takes a few bounded
                // transactions; the rest waits for the next round.
                for _ in 0..RETENTION_TRIMS_PER_ROUND_MAX {
                    match self.node.trim(&topic.name, p, before_ms).await {
                        Ok(Some(t)) => {
                            removed += t.batches;
                            if t.batches < veltrix_shared::TRIM_ROWS_MAX as u64 {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(topic = %topic.name, partition = p, error = %e, "retention failed; next round");
                            break;
                        }
                    }
                }
            }
        }
        removed
    }

    /// Whether the engine knows `topic` (and its `partition`), reading the
    /// store's topics first if it does not.
    pub async fn knows(&self, broker: &Arc<Broker>, topic: &str, partition: i32) -> bool {
        if broker.partition(topic, partition).is_ok() {
            return true;
        }
        self.sync_soon(broker).await;
        broker.partition(topic, partition).is_ok()
    }

    /// Reads the store's topics and applies them to the engine's catalogue.
    pub async fn sync(&self, broker: &Arc<Broker>) -> Result<(), veltrix_shared::Error> {
        let started = Instant::now();
        let topics = self.node.topics().await?;
        let share_settings = crate::shared_share::share_settings(&*self.node).await?;
        let moved = crate::shared_share::moved_claims(&*self.node, &self.share_claims).await?;
        let broker = broker.clone();
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || {
            apply_topics(&broker, &topics);
            broker.share().adopt_settings(share_settings);
            drop_unled_share_partitions(&broker, &*node);
            crate::shared_share::drop_moved(&broker, &moved);
        })
        .await
        .map_err(|e| veltrix_shared::Error::Other(e.to_string()))?;
        // When the read began: what it saw is at least as new as that.
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        *synced = Some(synced.map_or(started, |at| at.max(started)));
        Ok(())
    }
}

/// The engine's catalogue made the store's: topics created (with the
/// store's ids), grown, reconfigured, or deleted. Failures are logged and
/// tried again at the next sync.
fn apply_topics(broker: &Broker, topics: &[TopicRow]) {
    for row in topics {
        let config: TopicConfig = match serde_json::from_str(&row.config) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic = %row.name, error = %e, "a topic's settings in the metadata store do not parse");
                continue;
            }
        };
        let partitions = u32::try_from(row.partitions).unwrap_or(0);
        let result = match broker.topic(&row.name) {
            Some(t) if t.id != row.id => broker
                .delete_topic(&row.name)
                .and_then(|_| broker.create_topic_with_id(&row.name, row.id, partitions, config))
                .map(|_| ()),
            Some(t) if (t.partitions.len() as u32) < partitions => {
                broker.create_partitions(&row.name, partitions).map(|_| ())
            }
            Some(t) if t.config != config => broker.replace_topic_config(&row.name, config),
            Some(_) => Ok(()),
            None => broker
                .create_topic_with_id(&row.name, row.id, partitions, config)
                .map(|_| ()),
        };
        if let Err(e) = result {
            tracing::warn!(topic = %row.name, error = %e, "applying a topic from the metadata store failed");
        }
    }
    for t in broker.topics() {
        if !topics.iter().any(|row| row.name == t.name)
            && let Err(e) = broker.delete_topic(&t.name)
        {
            tracing::warn!(topic = %t.name, error = %e, "deleting a topic the metadata store no longer has failed");
        }
    }
}

/// Share-partitions of partitions another broker leads now leave memory:
/// their state is the store's, and the leader loads it (claiming it, so
/// this broker's copy could store nothing more anyway).
fn drop_unled_share_partitions(broker: &Broker, node: &dyn Shared) {
    let me = node.broker_id();
    let dropped = broker.share().retain_partitions(&|key| {
        broker
            .topic_by_id(&key.topic)
            .is_some_and(|t| node.leader_of(&t.name, key.partition) == me)
    });
    if dropped > 0 {
        tracing::info!(dropped, "share-partitions now served by other brokers left memory");
    }
}

/// Topic settings shared storage does not serve yet: compaction, a
/// duplicate window and size retention (docs/scale-out.md).
fn refuse_unserved(config: &TopicConfig) -> Result<(), TopicChangeError> {
    let compacted = config.cleanup_policy.as_ref().is_some_and(|p| p.compact);
    let unserved = if compacted {
        Some("cleanup.policy=compact")
    } else if config.dedup().is_some() {
        Some("a duplicate window")
    } else if config.retention_bytes.is_some_and(|b| b >= 0) {
        Some("retention.bytes")
    } else {
        None
    };
    match unserved {
        Some(what) => Err(TopicChangeError::Core(veltrix_core::CoreError::InvalidConfig(format!(
            "{what} is not served on shared storage yet (docs/scale-out.md)"
        )))),
        None => Ok(()),
    }
}

/// A topic as the store keeps it.
pub fn topic_row(name: &str, id: [u8; 16], partitions: u32, config: &TopicConfig) -> TopicRow {
    TopicRow {
        name: name.to_owned(),
        id,
        partitions: i32::try_from(partitions).unwrap_or(i32::MAX),
        config: serde_json::to_string(config).unwrap_or_else(|_| "{}".to_owned()),
    }
}

/// A topic change refused: the engine's reason, or the store's.
#[derive(Debug)]
pub enum TopicChangeError {
    Core(veltrix_core::CoreError),
    Shared(veltrix_shared::Error),
}

impl std::fmt::Display for TopicChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicChangeError::Core(e) => e.fmt(f),
            TopicChangeError::Shared(e) => e.fmt(f),
        }
    }
}

impl TopicChangeError {
    pub fn refusal(&self) -> crate::errors::Refusal {
        match self {
            TopicChangeError::Core(e) => crate::errors::Refusal::core(e),
            TopicChangeError::Shared(veltrix_shared::Error::TopicExists(n)) => {
                crate::errors::Refusal::core(&veltrix_core::CoreError::TopicExists(n.clone()))
            }
            TopicChangeError::Shared(e) => crate::errors::Refusal::new(crate::errors::shared_error(e), e.to_string()),
        }
    }
}

/// The topic changes of the admin APIs on shared storage, called from the
/// blocking pool: the store first, then this broker's copy.
impl SharedStorage {
    fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        tokio::runtime::Handle::current().block_on(f)
    }

    /// Creates a topic in the store, then here with the store's id. A topic
    /// this broker's engine refuses (name, partitions, settings) is removed
    /// from the store again.
    pub fn create_topic_blocking(
        &self,
        broker: &Broker,
        name: &str,
        partitions: Option<u32>,
        config: TopicConfig,
    ) -> Result<Arc<veltrix_core::Topic>, TopicChangeError> {
        veltrix_core::validate_topic_name(name).map_err(TopicChangeError::Core)?;
        refuse_unserved(&config)?;
        let count = partitions.unwrap_or(broker.config().default_partitions);
        let id: [u8; 16] = rand::random();
        let row = topic_row(name, id, count, &config);
        self.block_on(self.node.create_topic(&row))
            .map_err(TopicChangeError::Shared)?;
        match broker.create_topic_with_id(name, id, count, config) {
            Ok(t) => Ok(t),
            Err(e) => {
                if let Err(undo) = self.block_on(self.node.delete_topic(name)) {
                    tracing::warn!(topic = name, error = %undo, "removing a refused topic from the metadata store failed");
                }
                Err(TopicChangeError::Core(e))
            }
        }
    }

    /// Replaces a topic's settings in the store, then here.
    pub fn replace_topic_config_blocking(
        &self,
        broker: &Broker,
        name: &str,
        config: TopicConfig,
    ) -> Result<(), TopicChangeError> {
        refuse_unserved(&config)?;
        let json = serde_json::to_string(&config)
            .map_err(|e| TopicChangeError::Shared(veltrix_shared::Error::Other(e.to_string())))?;
        self.block_on(self.node.set_topic_config(name, &json))
            .map_err(TopicChangeError::Shared)?;
        broker
            .replace_topic_config(name, config)
            .map_err(TopicChangeError::Core)
    }

    /// Deletes a topic from the store, then here.
    pub fn delete_topic_blocking(
        &self,
        broker: &Broker,
        name: &str,
    ) -> Result<veltrix_core::TopicId, TopicChangeError> {
        let id = broker
            .topic(name)
            .map(|t| t.id)
            .ok_or_else(|| TopicChangeError::Core(veltrix_core::CoreError::UnknownTopic(name.to_owned())))?;
        self.block_on(self.node.delete_topic(name))
            .map_err(TopicChangeError::Shared)?;
        broker.delete_topic(name).map_err(TopicChangeError::Core)?;
        Ok(id)
    }

    /// Grows a topic in the store, then here.
    pub fn create_partitions_blocking(&self, broker: &Broker, name: &str, total: u32) -> Result<(), TopicChangeError> {
        broker
            .validate_create_partitions(name, total)
            .map_err(TopicChangeError::Core)?;
        let total_i32 = i32::try_from(total).unwrap_or(i32::MAX);
        self.block_on(self.node.set_partitions(name, total_i32))
            .map_err(TopicChangeError::Shared)?;
        broker
            .create_partitions(name, total)
            .map(|_| ())
            .map_err(TopicChangeError::Core)
    }
}
