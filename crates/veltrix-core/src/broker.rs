//! The broker: the topic catalogue and every partition's log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use veltrix_log::io::{LockGuard, Storage};
use veltrix_log::{Env, Log, LogConfig};

use crate::catalog::{self, DedupSettings, TopicConfig, TopicEntry};
use crate::dedup::{DedupLimits, DedupMemory, TopicDedup};
use crate::error::{CoreError, Result};
use crate::groups::{GroupConfig, GroupCoordinator, TopicMeta};
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIds;
use crate::redrive::{LogRedriveStore, Redriver};
use crate::share::{LogShareStore, ShareConfig, ShareCoordinator};

/// Directory of the committed offsets log, under the data directory.
const GROUPS_DIR: &str = "groups";
const SHARE_DIR: &str = "share";
/// The transaction coordinator's state (`crate::txn`).
const TRANSACTIONS_DIR: &str = "transactions";
/// Redrive jobs and the dead letters they moved.
const REDRIVE_DIR: &str = "redrive";
const ROUTES_DIR: &str = "routes";
/// Each dedup topic's window snapshot, in a directory named by the topic id.
const DEDUP_DIR: &str = "dedup";
use crate::topic::{Partition, Topic, TopicId};

/// Longest topic name, as in Kafka (file names stay under 255 bytes).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Broker-wide settings of the engine.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Defaults for every topic's log.
    pub log: LogConfig,
    /// Partitions of a topic created without a count (auto-creation, or a
    /// CreateTopics request with -1).
    pub default_partitions: u32,
    /// Whether Metadata and Produce for an unknown topic create it. Off by
    /// default: a typo should fail loudly, not create a topic.
    pub auto_create_topics: bool,
    /// Topics at most; creating one more is refused.
    pub topics_max: usize,
    /// Partitions one topic may have at most.
    pub partitions_per_topic_max: u32,
    /// Partitions across all topics at most: each is a directory, open files
    /// and memory.
    pub partitions_total_max: u32,
    /// Handles of sealed segments and indexes kept open across all partitions
    /// (the host builds the [`Env`] with it).
    pub open_files_max: usize,
    /// Handles of active segments kept open across all partitions; a partition
    /// whose handle was evicted reopens its file on its next append.
    pub active_files_max: usize,
    /// Consumer groups: session limits, sizes, offsets retention.
    pub groups: GroupConfig,
    /// Share groups: limits, timings and the default group settings.
    pub share: ShareConfig,
    /// Transactions: timeouts and limits.
    pub transactions: crate::txn::TxnConfig,
    /// Limits of topics' duplicate windows.
    pub dedup: DedupLimits,
    /// Client quotas: how rates are measured, and how many quotas and
    /// sensors are kept.
    pub quotas: crate::quotas::QuotaConfig,
    /// When produce of each tier is refused as the disk fills.
    pub disk: crate::disk::DiskWatermarks,
    /// Authorization: on or off, super users, how many ACLs at most.
    pub acl: crate::acl::AclConfig,
    /// SCRAM credentials: how many users at most.
    pub credentials: crate::auth::CredentialsConfig,
    /// Record metrics on hot paths (produce, fetch, every request). Off only
    /// to measure what they cost; lag and alerts are computed either way.
    pub metrics_enabled: bool,
    /// The log cleaner's bounds: its key map's memory and its I/O rate
    /// (`[broker] compaction_key_map_bytes_max`, `compaction_io_byte_rate_max`).
    pub compaction: veltrix_log::CleanLimits,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            log: LogConfig::default(),
            default_partitions: 1,
            auto_create_topics: false,
            topics_max: 10_000,
            partitions_per_topic_max: 10_000,
            partitions_total_max: 100_000,
            open_files_max: veltrix_log::env::OPEN_FILES_MAX_DEFAULT,
            active_files_max: veltrix_log::env::ACTIVE_FILES_MAX_DEFAULT,
            groups: GroupConfig::default(),
            share: ShareConfig::default(),
            transactions: crate::txn::TxnConfig::default(),
            dedup: DedupLimits::default(),
            quotas: crate::quotas::QuotaConfig::default(),
            disk: crate::disk::DiskWatermarks::default(),
            acl: crate::acl::AclConfig::default(),
            credentials: crate::auth::CredentialsConfig::default(),
            metrics_enabled: true,
            compaction: veltrix_log::CleanLimits::default(),
        }
    }
}

/// The engine behind every front door.
#[derive(Debug)]
pub struct Broker {
    env: Arc<Env>,
    dir: PathBuf,
    config: BrokerConfig,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// The memory limit every topic's duplicate window shares.
    dedup_memory: Arc<DedupMemory>,
    /// Serialises catalogue changes; holds what `topics.json` says.
    catalog: Mutex<BTreeMap<String, TopicEntry>>,
    producer_ids: ProducerIds,
    groups: GroupCoordinator,
    share: ShareCoordinator,
    pub(crate) txn: crate::txn::TxnCoordinator,
    redriver: Redriver,
    router: crate::routes::Router,
    quotas: crate::quotas::Quotas,
    /// ACLs and who may do what.
    authorizer: crate::acl::Authorizer,
    /// SCRAM credentials, which SASL authenticates against.
    credentials: crate::auth::Credentials,
    http_tokens: crate::auth::TokenKey,
    disk: crate::disk::DiskState,
    metrics: Metrics,
    /// The exclusive lock on the data directory, held for the broker's lifetime:
    /// two brokers on one directory would hand out the same offsets and
    /// overwrite each other's acknowledged records.
    _dir_lock: LockGuard,
    /// The cleaner's counters across partitions (`compaction.rs`).
    pub(crate) cleaner_totals: crate::compaction::CleanerTotals,
    /// Where lag is measured when the partitions' records are not in this
    /// broker's logs (shared storage); `None`: from the logs.
    pub(crate) lag_source: RwLock<Option<Arc<dyn crate::lag::LagSource>>>,
}

/// The file in the data directory that the broker holds locked while it runs.
pub const DIR_LOCK_FILE: &str = "lock";

/// The directory of a data directory that holds every partition's log.
pub const LOGS_DIR: &str = "logs";

/// A new topic id: a random (version 4) UUID. Drawn from rand's generator,
/// seeded by the operating system, rather than uuid's own, which would build
/// a second version of `getrandom` into the broker.
fn new_topic_id() -> TopicId {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .into_bytes()
}

pub(crate) fn id_hex(id: &TopicId) -> String {
    uuid::Uuid::from_bytes(*id).simple().to_string()
}

/// An id as [`id_hex`] writes it: 32 hex digits, nothing else.
pub(crate) fn parse_id(hex: &str) -> Option<TopicId> {
    if hex.len() != 32 {
        return None;
    }
    uuid::Uuid::try_parse(hex).ok().map(uuid::Uuid::into_bytes)
}

/// Kafka's rules for topic names.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(CoreError::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not allowed");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return bad("it is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

impl Broker {
    /// Opens the data directory: reads the catalogue, opens (and recovers) every
    /// partition, and removes log directories of topics the catalogue no longer
    /// has (left by a deletion that was interrupted).
    pub fn open(env: Arc<Env>, dir: impl Into<PathBuf>, config: BrokerConfig) -> Result<Broker> {
        config
            .log
            .validate()
            .map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        let dir = dir.into();
        let storage = &*env.storage;
        let logs = dir.join(LOGS_DIR);
        storage.create_dir_all(&logs).map_err(|e| CoreError::Io {
            op: "create directory",
            path: logs.clone(),
            source: e,
        })?;
        // Before anything in the directory is read or written.
        let lock_path = dir.join(DIR_LOCK_FILE);
        let dir_lock = storage.lock_exclusive(&lock_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => CoreError::DataDirInUse { dir: dir.clone() },
            _ => CoreError::Io {
                op: "lock",
                path: lock_path.clone(),
                source: e,
            },
        })?;
        let entries = catalog::load(storage, &dir)?;
        let dedup_memory = DedupMemory::new(config.dedup.memory_bytes_max);
        let mut topics = BTreeMap::new();
        for (name, entry) in &entries {
            remove_uncounted_partitions(storage, &logs.join(&entry.id), entry.partitions)?;
            let topic = open_topic(&env, &dir, &config, &dedup_memory, name, entry)?;
            topics.insert(name.clone(), Arc::new(topic));
        }
        let known: Vec<&str> = entries.values().map(|e| e.id.as_str()).collect();
        remove_unknown(storage, &logs, &known, "the logs")?;
        let dedup_dir = dir.join(DEDUP_DIR);
        if storage.exists(&dedup_dir) {
            remove_unknown(storage, &dedup_dir, &known, "the dedup window")?;
        }
        let producer_ids = ProducerIds::open(storage, &dir)?;
        let groups = GroupCoordinator::open(env.clone(), &dir.join(GROUPS_DIR), config.groups)?;
        for topic in groups.topics_with_offsets() {
            if !topics.contains_key(&topic) {
                tracing::info!(topic = %topic, "removing committed offsets of a topic that no longer exists");
                groups.delete_topic_offsets(&topic)?;
            }
        }
        let share_store = LogShareStore::open(env.clone(), &dir.join(SHARE_DIR))?;
        let ids: Vec<TopicId> = topics.values().map(|t| t.id).collect();
        let share = ShareCoordinator::open(env.clone(), config.share, Box::new(share_store), &|id| ids.contains(id))?;
        let txn_store = crate::txn::LogTxnStore::open(env.clone(), &dir.join(TRANSACTIONS_DIR))?;
        let txn = crate::txn::TxnCoordinator::open(env.clone(), config.transactions, Box::new(txn_store))?;
        let redriver = Redriver::open(Box::new(LogRedriveStore::open(env.clone(), &dir.join(REDRIVE_DIR))?))?;
        let route_store = crate::routes::LogRouteStore::open(env.clone(), &dir.join(ROUTES_DIR))?;
        let router = crate::routes::Router::open(Box::new(route_store))?;
        let quota_store = crate::quotas::FileQuotaStore::new(env.storage.clone(), &dir);
        let quotas = crate::quotas::Quotas::open(config.quotas, env.clock.clone(), Arc::new(quota_store))?;
        let acl_store = crate::acl::FileAclStore::new(env.storage.clone(), &dir);
        let authorizer = crate::acl::Authorizer::open(Arc::new(acl_store), config.acl.clone())?;
        let credential_store = crate::auth::FileCredentialStore::new(env.storage.clone(), &dir);
        // Unknown users' decoys stay the same across restarts, as real
        // users' salts do.
        let decoy = crate::auth::DecoyKey::new(secret_file(&env, &dir, SASL_DECOY_FILE)?);
        // Bearer tokens stay valid across restarts.
        let http_tokens = crate::auth::TokenKey::new(secret_file(&env, &dir, HTTP_TOKEN_SECRET_FILE)?);
        let credentials =
            crate::auth::Credentials::open_with_decoy(config.credentials, Arc::new(credential_store), decoy)?;
        let metrics = Metrics::new(config.metrics_enabled);
        env.set_fsync_observer(metrics.fsync_observer());
        tracing::info!(dir = %dir.display(), topics = topics.len(), "broker opened");
        Ok(Broker {
            cleaner_totals: crate::compaction::CleanerTotals::default(),
            lag_source: RwLock::new(None),
            metrics,
            producer_ids,
            groups,
            share,
            txn,
            redriver,
            router,
            quotas,
            authorizer,
            credentials,
            http_tokens,
            disk: crate::disk::DiskState::default(),
            env,
            dir,
            config,
            topics: RwLock::new(topics),
            dedup_memory,
            catalog: Mutex::new(entries),
            _dir_lock: dir_lock,
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The broker's metrics registry and engine metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The storage and clock the broker runs on.
    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The topics recorded in the data directory `dir`, by name, with their
    /// partition counts and settings, read without opening the broker: nothing
    /// is locked, opened for writing or created. For plans made before a start.
    pub fn recorded_topics(dir: &Path) -> Result<BTreeMap<String, (u32, TopicConfig)>> {
        Ok(catalog::read_only(dir)?
            .into_iter()
            .map(|(name, e)| (name, (e.partitions, e.config)))
            .collect())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// All topics, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>> {
        let t = self
            .topic(topic)
            .ok_or_else(|| CoreError::UnknownTopic(topic.to_owned()))?;
        t.partition(partition).cloned().ok_or(CoreError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        })
    }

    /// A partition, and its topic's duplicate window if it has one.
    pub fn partition_and_dedup(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(Arc<Partition>, Option<Arc<TopicDedup>>)> {
        let t = self
            .topic(topic)
            .ok_or_else(|| CoreError::UnknownTopic(topic.to_owned()))?;
        let p = t.partition(partition).cloned().ok_or(CoreError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        })?;
        Ok((p, t.dedup.clone()))
    }

    /// Creates a topic with `partitions` partitions (the broker default if `None`).
    pub fn create_topic(&self, name: &str, partitions: Option<u32>, config: TopicConfig) -> Result<Arc<Topic>> {
        let count = partitions.unwrap_or(self.config.default_partitions);
        self.create_topic_with_id(name, new_topic_id(), count, config)
    }

    /// Creates a topic whose id was chosen elsewhere: a copy of a topic of
    /// the shared metadata store, with the same id on every broker.
    pub fn create_topic_with_id(&self, name: &str, id: TopicId, count: u32, config: TopicConfig) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        self.check_partitions(i64::from(count))?;
        let log_config = config.log_config(&self.config.log);
        log_config
            .validate()
            .map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        config.validate_dedup(&log_config).map_err(CoreError::InvalidConfig)?;
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        if catalog.contains_key(name) {
            return Err(CoreError::TopicExists(name.to_owned()));
        }
        if catalog.len() >= self.config.topics_max {
            return Err(CoreError::LimitReached(format!(
                "topics_max ({})",
                self.config.topics_max
            )));
        }
        let total: u32 = catalog.values().map(|e| e.partitions).sum();
        if total.saturating_add(count) > self.config.partitions_total_max {
            return Err(CoreError::LimitReached(format!(
                "partitions_total_max ({})",
                self.config.partitions_total_max
            )));
        }
        let entry = TopicEntry {
            id: id_hex(&id),
            partitions: count,
            config,
        };
        // The partitions are opened before the catalogue names the topic: a
        // creation that cannot be served fails here and leaves no trace, rather
        // than a topic the next start cannot open.
        let topic_dir = self.dir.join(LOGS_DIR).join(&entry.id);
        let topic = match open_topic(&self.env, &self.dir, &self.config, &self.dedup_memory, name, &entry) {
            Ok(topic) => Arc::new(topic),
            Err(e) => {
                self.discard_dirs(&[topic_dir]);
                return Err(e);
            }
        };
        let mut next = catalog.clone();
        next.insert(name.to_owned(), entry.clone());
        if let Err(e) = catalog::store(&*self.env.storage, &self.dir, &next) {
            drop(topic);
            self.discard_dirs(&[topic_dir]);
            return Err(e);
        }
        *catalog = next;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), topic.clone());
        tracing::info!(topic = name, partitions = count, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data; returns the id it had. The catalogue change is
    /// made durable first; the directories follow, and a restart finishes an
    /// interrupted deletion.
    pub fn delete_topic(&self, name: &str) -> Result<TopicId> {
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        if !catalog.contains_key(name) {
            return Err(CoreError::UnknownTopic(name.to_owned()));
        }
        self.remove_topic(&mut catalog, name)
    }

    /// Deletes the topic with this id, whatever its name; returns the name it had
    /// (Kafka's DeleteTopics by id). The id is looked up under the same lock that
    /// deletes, so a topic deleted and re-created under the same name in the
    /// meantime, which has a new id, is never deleted by mistake.
    pub fn delete_topic_by_id(&self, id: &TopicId) -> Result<String> {
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let hex = id_hex(id);
        let Some(name) = catalog.iter().find(|(_, e)| e.id == hex).map(|(n, _)| n.clone()) else {
            return Err(CoreError::UnknownTopicId(hex));
        };
        self.remove_topic(&mut catalog, &name)?;
        Ok(name)
    }

    /// Removes `name`, which the caller checked is in `catalog`, from the
    /// catalogue, the topic map and the disk; returns its id.
    fn remove_topic(&self, catalog: &mut BTreeMap<String, TopicEntry>, name: &str) -> Result<TopicId> {
        let entry = catalog[name].clone();
        // Offsets first: a crash in between leaves the topic without offsets,
        // never a later topic of the same name with the old topic's offsets.
        self.groups.delete_topic_offsets(name)?;
        let mut next = catalog.clone();
        next.remove(name);
        catalog::store(&*self.env.storage, &self.dir, &next)?;
        *catalog = next;
        if let Some(topic) = self.topics.write().unwrap_or_else(|p| p.into_inner()).remove(name) {
            // No housekeeping or append may write into the directory once it is
            // being removed.
            for p in &topic.partitions {
                p.log().retire("the topic was deleted");
                p.publish_high_watermark();
            }
        }
        let path = self.dir.join(LOGS_DIR).join(&entry.id);
        if let Err(e) = self.env.storage.remove_dir_all(&path) {
            tracing::warn!(dir = %path.display(), error = %e, "could not remove a deleted topic's logs; the next start will");
        }
        let path = self.dir.join(DEDUP_DIR).join(&entry.id);
        if self.env.storage.exists(&path)
            && let Err(e) = self.env.storage.remove_dir_all(&path)
        {
            tracing::warn!(dir = %path.display(), error = %e, "could not remove a deleted topic's dedup window; the next start will");
        }
        tracing::info!(topic = name, "deleted topic");
        // Catalogue ids always parse: `open` refuses a catalogue with a bad one and
        // new ones are written by `id_hex`.
        let id = parse_id(&entry.id).unwrap_or_default();
        // After the catalogue: share state is keyed by the topic id, which no
        // later topic gets, so a crash in between leaves only state that the
        // next start removes.
        if let Err(e) = self.share.delete_topic(&id) {
            tracing::warn!(topic = name, error = %e, "could not remove a deleted topic's share-group state; the next start will");
        }
        Ok(id)
    }

    /// Grows a topic to `total` partitions (Kafka's CreatePartitions).
    pub fn create_partitions(&self, name: &str, total: u32) -> Result<Arc<Topic>> {
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let entry = self.check_growth(&catalog, name, total)?;
        let grown = TopicEntry {
            partitions: total,
            ..entry.clone()
        };
        let old = self
            .topic(name)
            .ok_or_else(|| CoreError::UnknownTopic(name.to_owned()))?;
        // As in `create_topic`: the new partitions are opened before the
        // catalogue counts them, and removed again if any cannot be.
        let topic_dir = self.dir.join(LOGS_DIR).join(&entry.id);
        let new_dirs: Vec<PathBuf> = (entry.partitions..total)
            .map(|i| topic_dir.join(i.to_string()))
            .collect();
        let mut partitions = old.partitions.clone();
        for index in entry.partitions..total {
            match open_partition(&self.env, &self.dir, &self.config, &grown, index) {
                Ok(p) => partitions.push(Arc::new(p)),
                Err(e) => {
                    drop(partitions);
                    self.discard_dirs(&new_dirs);
                    return Err(e);
                }
            }
        }
        let mut next = catalog.clone();
        next.insert(name.to_owned(), grown);
        if let Err(e) = catalog::store(&*self.env.storage, &self.dir, &next) {
            drop(partitions);
            self.discard_dirs(&new_dirs);
            return Err(e);
        }
        *catalog = next;
        // The window is topic-wide: the new partitions join it.
        let topic = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            config: old.config.clone(),
            partitions,
            dedup: old.dedup.clone(),
        });
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    /// Removes the directories of partitions opened for a creation that failed
    /// before the catalogue named them. A failure is only logged: nothing was
    /// written in them, and the next start removes what the catalogue does not
    /// name.
    fn discard_dirs(&self, dirs: &[PathBuf]) {
        for dir in dirs {
            match self.env.storage.remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove the directory of a partition that was not created")
                }
            }
        }
    }

    /// Changes a topic's settings: `change` edits a copy of them, the result is
    /// validated against the broker's defaults, made durable in the catalogue and
    /// applied to every partition's running log. With `validate_only` nothing
    /// changes. Returns the new settings.
    pub fn alter_topic_config(
        &self,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&mut TopicConfig) -> std::result::Result<(), String>,
    ) -> Result<TopicConfig> {
        let mut catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = catalog.get(name).cloned() else {
            return Err(CoreError::UnknownTopic(name.to_owned()));
        };
        let mut config = entry.config.clone();
        change(&mut config).map_err(CoreError::InvalidConfig)?;
        let log_config = config.log_config(&self.config.log);
        log_config
            .validate()
            .map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        config.validate_dedup(&log_config).map_err(CoreError::InvalidConfig)?;
        if validate_only || config == entry.config {
            return Ok(config);
        }
        let old = self
            .topic(name)
            .ok_or_else(|| CoreError::UnknownTopic(name.to_owned()))?;
        // A changed window is rebuilt from its snapshot and the logs' durable
        // records; an unchanged one carries over.
        let dedup = match config.dedup() {
            None => None,
            Some(settings) if old.dedup.as_ref().is_some_and(|d| *d.settings() == settings) => old.dedup.clone(),
            Some(settings) => Some(Arc::new(open_dedup(
                &self.env,
                &self.dir,
                &self.config,
                &self.dedup_memory,
                &entry.id,
                settings,
                &old.partitions,
            )?)),
        };
        let mut next = catalog.clone();
        next.insert(
            name.to_owned(),
            TopicEntry {
                config: config.clone(),
                ..entry
            },
        );
        catalog::store(&*self.env.storage, &self.dir, &next)?;
        *catalog = next;
        let topic = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            config: config.clone(),
            partitions: old.partitions.clone(),
            dedup,
        });
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), topic);
        for p in &old.partitions {
            p.log().set_config(log_config)?;
        }
        tracing::info!(topic = name, ?config, "altered topic config");
        Ok(config)
    }

    /// Replaces a topic's settings whole (a copy of the shared metadata
    /// store's), checked as [`Broker::alter_topic_config`] checks a change.
    pub fn replace_topic_config(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.alter_topic_config(name, false, |c| {
            *c = config;
            Ok(())
        })
        .map(|_| ())
    }

    /// Runs every check of [`Broker::create_partitions`] and changes nothing
    /// (CreatePartitions with `validate_only`). A later `create_partitions` can
    /// still fail if another change lands in between.
    pub fn validate_create_partitions(&self, name: &str, total: u32) -> Result<()> {
        let catalog = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        self.check_growth(&catalog, name, total).map(|_| ())
    }

    /// Whether topic `name` may grow to `total` partitions; returns its entry.
    /// Growing counts against `partitions_total_max` like creating does.
    fn check_growth(&self, catalog: &BTreeMap<String, TopicEntry>, name: &str, total: u32) -> Result<TopicEntry> {
        let Some(entry) = catalog.get(name).cloned() else {
            return Err(CoreError::UnknownTopic(name.to_owned()));
        };
        if total <= entry.partitions {
            return Err(CoreError::InvalidPartitions {
                count: i64::from(total),
                reason: format!("topic `{name}` already has {} partitions", entry.partitions),
            });
        }
        self.check_partitions(i64::from(total))?;
        let others: u32 = catalog.values().map(|e| e.partitions).sum::<u32>() - entry.partitions;
        if others.saturating_add(total) > self.config.partitions_total_max {
            return Err(CoreError::LimitReached(format!(
                "partitions_total_max ({})",
                self.config.partitions_total_max
            )));
        }
        Ok(entry)
    }

    fn check_partitions(&self, count: i64) -> Result<()> {
        if count < 1 {
            return Err(CoreError::InvalidPartitions {
                count,
                reason: "a topic needs at least one partition".into(),
            });
        }
        if count > i64::from(self.config.partitions_per_topic_max) {
            return Err(CoreError::InvalidPartitions {
                count,
                reason: format!(
                    "the limit is partitions_per_topic_max = {}",
                    self.config.partitions_per_topic_max
                ),
            });
        }
        Ok(())
    }

    /// Housekeeping for every partition (rolling, retention, interval flushes);
    /// called periodically by the host. Errors are logged: one partition's
    /// trouble must not stop the others'.
    pub fn tick(&self) {
        for topic in self.topics() {
            for p in &topic.partitions {
                match p.log().tick() {
                    Ok(outcome) if outcome.flushed || outcome.rolled => p.publish_high_watermark(),
                    Ok(_) => {}
                    // A topic deleted while its housekeeping ran: nothing to report.
                    Err(_) if self.topic(&topic.name).is_none_or(|t| t.id != topic.id) => {}
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = p.index, error = %e, "housekeeping failed")
                    }
                }
            }
        }
        for topic in self.topics() {
            if let Some(dedup) = &topic.dedup
                && let Err(e) = dedup.housekeep(&topic.partitions)
            {
                tracing::error!(topic = %topic.name, error = %e, "saving the dedup window's snapshot failed");
            }
        }
        self.read_disk();
        self.groups.tick(&|name| self.topic_meta(name));
        self.share.tick();
        self.tick_transactions();
        self.write_dead_letters();
        self.run_redrives();
    }

    /// Reads the data directory's free space and sets the disk level;
    /// crossings logged and counted.
    fn read_disk(&self) {
        let space = match self.env.storage.space(&self.dir) {
            Ok(Some(space)) => space,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the data directory's free space");
                return;
            }
        };
        let level = self.config.disk.level(space.available_bytes, space.total_bytes);
        let before = self
            .disk
            .set(level, space.available_bytes, self.env.clock.monotonic_ms());
        self.metrics.disk_available_bytes.set(space.available_bytes as i64);
        self.metrics.disk_level.set(level as i64);
        if level == before {
            return;
        }
        self.metrics.disk_crossings.with_label_values(&[level.name()]).inc();
        if level > before {
            tracing::warn!(
                level = level.name(),
                available_bytes = space.available_bytes,
                total_bytes = space.total_bytes,
                "disk watermark crossed: produce to lower tiers is refused until space comes back"
            );
        } else {
            tracing::info!(
                level = level.name(),
                available_bytes = space.available_bytes,
                "disk watermark cleared"
            );
        }
    }

    /// Whether produce to a topic of `tier` is accepted now, as the disk
    /// watermarks say; the level when it is not.
    pub fn disk_admits(&self, tier: crate::Tier) -> Result<(), crate::disk::DiskLevel> {
        if self.disk.stale(self.env.clock.monotonic_ms()) {
            self.read_disk();
        }
        let level = self.disk.level();
        if level.admits(tier) { Ok(()) } else { Err(level) }
    }

    /// The disk level and the free bytes, as last read.
    pub fn disk(&self) -> &crate::disk::DiskState {
        &self.disk
    }

    /// A topic as consumer-protocol assignors see it.
    pub fn topic_meta(&self, name: &str) -> Option<TopicMeta> {
        self.topic(name).map(|t| TopicMeta {
            id: t.id,
            partitions: u32::try_from(t.partitions.len()).unwrap_or(u32::MAX),
        })
    }

    /// The consumer group coordinator.
    pub fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }

    /// The topic with this id, if it still exists.
    pub fn topic_by_id(&self, id: &TopicId) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|t| t.id == *id)
            .cloned()
    }

    /// The share group coordinator.
    pub fn share(&self) -> &ShareCoordinator {
        &self.share
    }

    /// Client quotas and the rates measured against them.
    pub fn quotas(&self) -> &crate::quotas::Quotas {
        &self.quotas
    }

    /// ACLs, and whether a principal may do an operation.
    pub fn authorizer(&self) -> &crate::acl::Authorizer {
        &self.authorizer
    }

    /// SCRAM credentials.
    pub fn credentials(&self) -> &crate::auth::Credentials {
        &self.credentials
    }

    /// The key the HTTP API's bearer tokens are signed with.
    pub fn http_tokens(&self) -> &crate::auth::TokenKey {
        &self.http_tokens
    }

    /// Redrive jobs of dead letters.
    pub fn redriver(&self) -> &Redriver {
        &self.redriver
    }

    /// The routes and their readers' progress.
    pub fn router(&self) -> &crate::routes::Router {
        &self.router
    }

    /// A new producer id for an idempotent producer (its epoch starts at 0).
    /// Never returns an id twice, restarts included.
    pub fn init_producer_id(&self) -> Result<i64> {
        self.producer_ids.allocate(&*self.env.storage)
    }

    /// Closes every partition and the offsets log cleanly (fsync, index written,
    /// clean marker).
    pub fn close(&self) {
        self.groups.close();
        self.share.close();
        self.txn.close();
        self.redriver.close();
        self.router.close(self.env.clock.now_ms());
        for topic in self.topics() {
            for p in &topic.partitions {
                if let Err(e) = p.log().close() {
                    tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "closing partition");
                }
                p.publish_high_watermark();
            }
        }
    }
}

/// Removes partition directories of a topic past its catalogued count: what a
/// CreatePartitions that failed or crashed before the catalogue counted them
/// left behind, so that a later one starts them empty.
fn remove_uncounted_partitions(storage: &dyn Storage, topic_dir: &Path, partitions: u32) -> Result<()> {
    let names = match storage.list_dir(topic_dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CoreError::Io {
                op: "list",
                path: topic_dir.to_path_buf(),
                source,
            });
        }
    };
    for name in names {
        if name.parse::<u32>().is_ok_and(|i| i >= partitions) {
            let path = topic_dir.join(&name);
            tracing::warn!(dir = %path.display(), "removing a partition the catalogue does not count");
            storage.remove_dir_all(&path).map_err(|source| CoreError::Io {
                op: "remove",
                path,
                source,
            })?;
        }
    }
    Ok(())
}

/// Removes the directories under `parent` named by no topic id in `known`:
/// what a deletion interrupted by a crash left.
fn remove_unknown(storage: &dyn Storage, parent: &Path, known: &[&str], what: &str) -> Result<()> {
    let names = storage.list_dir(parent).map_err(|e| CoreError::Io {
        op: "list",
        path: parent.to_path_buf(),
        source: e,
    })?;
    for name in names {
        if !known.contains(&name.as_str()) {
            let path = parent.join(&name);
            tracing::warn!(dir = %path.display(), "removing {what} of a deleted topic");
            storage.remove_dir_all(&path).map_err(|e| CoreError::Io {
                op: "remove",
                path,
                source: e,
            })?;
        }
    }
    Ok(())
}

fn open_dedup(
    env: &Arc<Env>,
    dir: &Path,
    config: &BrokerConfig,
    memory: &Arc<DedupMemory>,
    topic_id: &str,
    settings: DedupSettings,
    partitions: &[Arc<Partition>],
) -> Result<TopicDedup> {
    TopicDedup::open(
        env,
        &dir.join(DEDUP_DIR).join(topic_id),
        settings,
        config.dedup,
        memory.clone(),
        partitions,
    )
}

fn open_partition(
    env: &Arc<Env>,
    dir: &Path,
    config: &BrokerConfig,
    entry: &TopicEntry,
    index: u32,
) -> Result<Partition> {
    let path = dir.join(LOGS_DIR).join(&entry.id).join(index.to_string());
    let log = Log::open(env.clone(), path, entry.config.log_config(&config.log))?;
    Ok(Partition::new(index as i32, log))
}

fn open_topic(
    env: &Arc<Env>,
    dir: &Path,
    config: &BrokerConfig,
    dedup_memory: &Arc<DedupMemory>,
    name: &str,
    entry: &TopicEntry,
) -> Result<Topic> {
    let id = parse_id(&entry.id).ok_or_else(|| CoreError::Catalog {
        path: dir.join(catalog::CATALOG_FILE),
        reason: format!("topic `{name}` has an invalid id `{}`", entry.id),
    })?;
    let partitions = (0..entry.partitions)
        .map(|i| open_partition(env, dir, config, entry, i).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let dedup = match entry.config.dedup() {
        Some(settings) => Some(Arc::new(open_dedup(
            env,
            dir,
            config,
            dedup_memory,
            &entry.id,
            settings,
            &partitions,
        )?)),
        None => None,
    };
    Ok(Topic {
        name: name.to_owned(),
        id,
        config: entry.config.clone(),
        partitions,
        dedup,
    })
}

/// The file of the secret behind SCRAM's answers to unknown users.
pub const SASL_DECOY_FILE: &str = "sasl-decoy-secret";

/// The file of the key the HTTP API's bearer tokens are signed with.
pub const HTTP_TOKEN_SECRET_FILE: &str = "http-token-secret";

/// Bytes of each secret file.
const SECRET_BYTES: usize = 32;
const _: () = assert!(SECRET_BYTES == crate::auth::DECOY_KEY_BYTES && SECRET_BYTES == crate::auth::TOKEN_KEY_BYTES);

/// The secret in the file `name` of `dir`, made (random, stored durably) the
/// first time. A file of the wrong length (torn by a crash while it was
/// first written) is made anew: a secret protects no data, only the answers
/// to unknown users (SCRAM's decoys) or the tokens issued before it.
fn secret_file(env: &Env, dir: &Path, name: &str) -> Result<[u8; SECRET_BYTES]> {
    let path = dir.join(name);
    let io = |op, source| CoreError::Io {
        op,
        path: path.clone(),
        source,
    };
    if env.storage.exists(&path) {
        let file = env
            .storage
            .open(&path, veltrix_log::io::OpenMode::Existing)
            .map_err(|e| io("open", e))?;
        if file.len().map_err(|e| io("stat", e))? == SECRET_BYTES as u64 {
            let mut secret = [0u8; SECRET_BYTES];
            file.read_exact_at(&mut secret, 0).map_err(|e| io("read", e))?;
            return Ok(secret);
        }
    }
    let secret: [u8; SECRET_BYTES] = rand::random();
    veltrix_log::checkpoint::replace_file(env.storage.as_ref(), dir, name, &secret).map_err(|e| io("write", e))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use veltrix_log::batch::build;
    use veltrix_log::sim::{SimClock, SimStorage};

    fn broker(storage: &SimStorage) -> Broker {
        let env = Env::new(
            Arc::new(storage.clone()),
            Arc::new(SimClock::new(1_700_000_000_000)),
            64,
        );
        Broker::open(env, "/data", BrokerConfig::default()).unwrap()
    }

    /// Two brokers on one directory would both hand out the same offsets; after
    /// a restart half of the acknowledged records were gone.

    #[test]
    fn topic_ids_are_random_uuids_written_as_32_hex_digits() {
        let a = new_topic_id();
        assert_ne!(a, new_topic_id());
        assert_eq!(uuid::Uuid::from_bytes(a).get_version_num(), 4);
        let hex = id_hex(&a);
        assert_eq!(hex.len(), 32);
        assert_eq!(parse_id(&hex), Some(a));
        assert_eq!(parse_id(&uuid::Uuid::from_bytes(a).hyphenated().to_string()), None);
    }
    #[test]
    fn a_second_broker_cannot_open_a_data_directory_in_use_until_the_first_is_gone() {
        let storage = SimStorage::new();
        let first = broker(&storage);
        let env = Env::new(
            Arc::new(storage.clone()),
            Arc::new(SimClock::new(1_700_000_000_000)),
            64,
        );
        let second = Broker::open(env.clone(), "/data", BrokerConfig::default());
        assert!(
            matches!(&second, Err(CoreError::DataDirInUse { dir }) if dir == Path::new("/data")),
            "{second:?}"
        );
        let other_dir = Broker::open(env.clone(), "/elsewhere", BrokerConfig::default());
        assert!(other_dir.is_ok(), "another directory is not locked");
        drop(first);
        assert!(Broker::open(env, "/data", BrokerConfig::default()).is_ok());
    }

    #[test]
    fn altered_settings_apply_to_running_logs_and_survive_a_crash() {
        let storage = SimStorage::new();
        let b = broker(&storage);
        let relaxed = TopicConfig {
            flush_interval_ms: Some(1000),
            ..TopicConfig::default()
        };
        b.create_topic("t", Some(2), relaxed).unwrap();
        let p = b.partition("t", 1).unwrap();
        let a = p.append(&build::batch(build::Spec::default(), 100, 1)).unwrap();
        p.commit(a.next_offset).unwrap();
        assert!(p.log().stats().relaxed_durability.load(Ordering::Relaxed));

        // Back to fsync-per-append: what the interval left unsynced is flushed first.
        let config = b
            .alter_topic_config("t", false, |c| {
                c.flush_interval_ms = None;
                c.batch_bytes_max = Some(4096);
                Ok(())
            })
            .unwrap();
        assert_eq!(config.batch_bytes_max, Some(4096));
        assert!(!p.log().stats().relaxed_durability.load(Ordering::Relaxed));
        assert_eq!(p.log().config().batch_bytes_max, 4096);
        assert!(p.append(&build::batch(build::Spec::default(), 5000, 1)).is_err());
        assert_eq!(b.topic("t").unwrap().config.batch_bytes_max, Some(4096));

        // A change that breaks a cross-field rule changes nothing.
        let err = b
            .alter_topic_config("t", false, |c| {
                c.segment_bytes_max = Some(4096);
                c.batch_bytes_max = Some(8192);
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, CoreError::InvalidConfig(_)), "{err}");
        assert_eq!(p.log().config().batch_bytes_max, 4096);

        drop((p, b));
        storage.crash(false, 3);
        let b = broker(&storage);
        let p = b.partition("t", 0).unwrap();
        assert_eq!(p.log().config().batch_bytes_max, 4096);
        assert_eq!(p.log().config().flush, veltrix_log::FlushPolicy::EveryAppend);
        assert_eq!(
            b.partition("t", 1).unwrap().log().high_watermark(),
            1,
            "flushed by the switch"
        );
    }

    #[test]
    fn deleting_a_topic_deletes_its_committed_offsets() {
        use crate::groups::{Committer, OffsetCommit};
        let storage = SimStorage::new();
        let b = broker(&storage);
        b.create_topic("t", Some(1), TopicConfig::default()).unwrap();
        let commit = OffsetCommit {
            topic: "t".into(),
            partition: 0,
            offset: 9,
            leader_epoch: -1,
            metadata: String::new(),
        };
        let standalone = Committer {
            generation: -1,
            ..Committer::default()
        };
        let ok = b
            .groups()
            .commit("g", &standalone, vec![commit], |t, p| b.partition(t, p).is_ok());
        assert_eq!(ok, vec![Ok(())]);
        b.delete_topic("t").unwrap();
        b.create_topic("t", Some(1), TopicConfig::default()).unwrap();
        assert_eq!(
            b.groups().fetch_offsets("g", Some(&[("t".into(), 0)]))[0].committed,
            None
        );
    }

    #[test]
    fn topics_survive_a_restart_with_their_data() {
        let storage = SimStorage::new();
        let b = broker(&storage);
        b.create_topic("clicks", Some(3), TopicConfig::default()).unwrap();
        let p = b.partition("clicks", 2).unwrap();
        let batch = build::batch(build::Spec::default(), 100, 1);
        let a = p.append(&batch).unwrap();
        p.commit(a.next_offset).unwrap();
        drop((p, b));
        storage.crash(true, 1);
        let b = broker(&storage);
        let t = b.topic("clicks").unwrap();
        assert_eq!(t.partitions.len(), 3);
        assert_eq!(t.partitions[2].log().high_watermark(), 1);
    }

    #[test]
    fn a_recreated_topic_starts_empty_with_a_new_id() {
        let storage = SimStorage::new();
        let b = broker(&storage);
        let old = b.create_topic("t", Some(1), TopicConfig::default()).unwrap();
        let p = b.partition("t", 0).unwrap();
        let a = p.append(&build::batch(build::Spec::default(), 100, 1)).unwrap();
        p.commit(a.next_offset).unwrap();
        drop(p);
        b.delete_topic("t").unwrap();
        assert!(matches!(b.partition("t", 0), Err(CoreError::UnknownTopic(_))));
        let new = b.create_topic("t", Some(1), TopicConfig::default()).unwrap();
        assert_ne!(old.id, new.id);
        assert_eq!(new.partitions[0].log().log_end(), 0);
    }

    #[test]
    fn names_counts_and_configs_are_checked() {
        let storage = SimStorage::new();
        let b = broker(&storage);
        for name in ["", ".", "..", "a/b", "sp ace", &"x".repeat(250)] {
            assert!(matches!(
                b.create_topic(name, Some(1), TopicConfig::default()),
                Err(CoreError::InvalidTopicName { .. })
            ));
        }
        assert!(matches!(
            b.create_topic("t", Some(0), TopicConfig::default()),
            Err(CoreError::InvalidPartitions { .. })
        ));
        let bad = TopicConfig {
            batch_bytes_max: Some(10),
            ..TopicConfig::default()
        };
        assert!(matches!(
            b.create_topic("t", Some(1), bad),
            Err(CoreError::InvalidConfig(_))
        ));
        b.create_topic("t", Some(1), TopicConfig::default()).unwrap();
        assert!(matches!(
            b.create_topic("t", Some(1), TopicConfig::default()),
            Err(CoreError::TopicExists(_))
        ));
        assert!(matches!(
            b.create_partitions("t", 1),
            Err(CoreError::InvalidPartitions { .. })
        ));
        assert_eq!(b.create_partitions("t", 4).unwrap().partitions.len(), 4);
    }

    /// Deleting by id removes exactly the topic that has that id: after a
    /// re-creation under the same name, the old id matches nothing and the new
    /// topic survives; deleting by name reports the id the topic had.
    #[test]
    fn deleting_by_id_never_hits_a_recreated_topic() {
        let storage = SimStorage::new();
        let b = broker(&storage);
        let old = b.create_topic("t", Some(1), TopicConfig::default()).unwrap();
        assert_eq!(b.delete_topic("t").unwrap(), old.id);
        let new = b.create_topic("t", Some(2), TopicConfig::default()).unwrap();
        assert!(matches!(
            b.delete_topic_by_id(&old.id),
            Err(CoreError::UnknownTopicId(hex)) if hex == id_hex(&old.id)
        ));
        assert_eq!(b.topic("t").unwrap().partitions.len(), 2);
        assert_eq!(b.delete_topic_by_id(&new.id).unwrap(), "t");
        assert!(b.topic("t").is_none());
        assert!(!storage.exists(&Path::new("/data/logs").join(id_hex(&new.id))));
        drop(b);
        assert!(broker(&storage).topics().is_empty(), "the deletion is durable");
    }

    /// Validating a partition increase applies the same checks as the increase
    /// and changes nothing.
    #[test]
    fn validating_partition_growth_changes_nothing() {
        let storage = SimStorage::new();
        let b = broker(&storage);
        b.create_topic("t", Some(2), TopicConfig::default()).unwrap();
        b.validate_create_partitions("t", 5).unwrap();
        assert_eq!(b.topic("t").unwrap().partitions.len(), 2);
        for total in [1, 2] {
            assert!(matches!(
                b.validate_create_partitions("t", total),
                Err(CoreError::InvalidPartitions { .. })
            ));
        }
        assert!(matches!(
            b.validate_create_partitions("nope", 5),
            Err(CoreError::UnknownTopic(_))
        ));
        drop(b);
        assert_eq!(broker(&storage).topic("t").unwrap().partitions.len(), 2);
    }

    /// Growing a topic counts against `partitions_total_max` like creating one.
    #[test]
    fn growing_a_topic_respects_the_total_partition_limit() {
        let storage = SimStorage::new();
        let env = Env::new(Arc::new(storage.clone()), Arc::new(SimClock::new(0)), 64);
        let config = BrokerConfig {
            partitions_total_max: 5,
            ..BrokerConfig::default()
        };
        let b = Broker::open(env, "/data", config).unwrap();
        b.create_topic("a", Some(2), TopicConfig::default()).unwrap();
        b.create_topic("b", Some(1), TopicConfig::default()).unwrap();
        assert!(matches!(b.create_partitions("b", 4), Err(CoreError::LimitReached(_))));
        assert!(matches!(
            b.validate_create_partitions("b", 4),
            Err(CoreError::LimitReached(_))
        ));
        assert_eq!(b.create_partitions("b", 3).unwrap().partitions.len(), 3);
    }

    #[test]
    fn logs_of_deleted_topics_left_behind_are_removed_at_start() {
        let storage = SimStorage::new();
        let orphan = Path::new("/data/logs/00112233445566778899aabbccddeeff/0");
        storage.create_dir_all(orphan).unwrap();
        let _b = broker(&storage);
        assert!(!storage.exists(orphan));
    }

    #[test]
    fn a_damaged_catalogue_stops_the_broker_instead_of_forgetting_topics() {
        let storage = SimStorage::new();
        let b = broker(&storage);
        b.create_topic("t", Some(1), TopicConfig::default()).unwrap();
        drop(b);
        let path = Path::new("/data/topics.json");
        let len = storage.read_file(path).unwrap().len() as u64;
        storage.corrupt(path, len / 2, 0x01).unwrap();
        let env = Env::new(Arc::new(storage.clone()), Arc::new(SimClock::new(0)), 64);
        assert!(matches!(
            Broker::open(env, "/data", BrokerConfig::default()),
            Err(CoreError::Catalog { .. })
        ));
    }

    #[test]
    fn a_creation_whose_partitions_cannot_be_opened_fails_before_the_catalogue_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Broker::open(Env::system(), dir.path(), BrokerConfig::default()).unwrap();
        let b = open();
        b.create_topic("kept", Some(1), TopicConfig::default()).unwrap();
        let logs = dir.path().join(LOGS_DIR);
        let kept_dir = logs.join(id_hex(&b.topic("kept").unwrap().id));
        // Partition 2 cannot be created: a file stands where its directory goes.
        std::fs::write(kept_dir.join("2"), b"").unwrap();
        assert!(b.create_partitions("kept", 3).is_err());
        assert_eq!(b.topic("kept").unwrap().partitions.len(), 1);
        assert!(
            !kept_dir.join("1").exists(),
            "the partition opened before the failure is removed"
        );
        // No topic directory can be created: a file stands where `logs` was.
        std::fs::rename(&logs, dir.path().join("logs.aside")).unwrap();
        std::fs::write(&logs, b"").unwrap();
        assert!(b.create_topic("new", Some(2), TopicConfig::default()).is_err());
        assert!(b.topic("new").is_none());
        drop(b);
        std::fs::remove_file(&logs).unwrap();
        std::fs::rename(dir.path().join("logs.aside"), &logs).unwrap();
        std::fs::remove_file(kept_dir.join("2")).unwrap();

        let b = open();
        assert!(b.topic("new").is_none(), "the failed topic is not in the catalogue");
        assert_eq!(
            b.topic("kept").unwrap().partitions.len(),
            1,
            "nor the failed partitions"
        );
        b.create_topic("new", Some(2), TopicConfig::default()).unwrap();
        b.create_partitions("kept", 3).unwrap();
    }

    /// The broker's default duplicate-window limits are the index's own
    /// defaults, and every window a topic may have is a valid index under them
    /// and under the widest limits `[dedup]` accepts.
    #[test]
    fn the_default_dedup_limits_are_the_index_s_and_fit_every_window() {
        use crate::dedup::{DEDUP_ID_BYTES_MAX, DEDUP_IDS_MAX, DEDUP_WINDOW_MS_MAX, DedupConfig, DedupLimits};
        let limits = BrokerConfig::default().dedup;
        assert_eq!(limits.config(120_000), DedupConfig::new(120_000));
        let widest = DedupLimits {
            ids_max: DEDUP_IDS_MAX,
            id_bytes_max: DEDUP_ID_BYTES_MAX,
            ..limits
        };
        for l in [limits, widest] {
            for window_ms in [1, 120_000, DEDUP_WINDOW_MS_MAX] {
                assert_eq!(l.config(window_ms).validate(), Ok(()), "{l:?} {window_ms}");
            }
        }
        let over = DedupLimits {
            ids_max: DEDUP_IDS_MAX + 1,
            ..limits
        };
        assert!(over.config(1).validate().is_err());
    }
}
