//! Share groups (KIP-932): queues on the log.
//!
//! Any number of members of a share group read the same partitions; each
//! record is acquired by one member at a time, for a limited time, and then
//! accepted, released (delivered again) or rejected on its own. The
//! coordinator keeps:
//!
//! - membership ([`membership`]): members join with a heartbeat, and every
//!   member is assigned partitions of the topics it subscribes to (a partition
//!   can go to several members when there are more members than partitions);
//!   a member that stops heartbeating is removed and its records released;
//! - share sessions ([`fetch`]): one per member, opened by ShareFetch with
//!   epoch 0, its epoch checked on every request, at most `sessions_max`;
//! - one [`SharePartition`] per group and partition consumed: the records in
//!   flight and their delivery counts.
//!
//! Durability: every change of a share-partition's state (records acquired,
//! with their delivery counts, and acknowledgements) goes to the
//! [`ShareStateStore`] before the answer that reports it, so after a crash no
//! accepted record is delivered again, every record not acknowledged is, and
//! delivery counts never go backwards. Locks are not kept: after a restart,
//! records that were acquired are available again. Changes reach the store in
//! the order they are applied in memory (appended under the share-partition's
//! lock); the wait for their fsync happens after that lock is released.
//!
//! Time comes from the injected clock; lock timeouts and member expiry happen
//! in [`ShareCoordinator::tick`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use veltrix_log::Env;

use crate::error::CoreError;
use crate::topic::TopicId;

pub mod admin;
pub mod dead_letter;
pub mod fetch;
pub mod membership;
pub mod order;
pub mod partition;
pub mod settings;
pub mod source;
pub mod store;

#[cfg(test)]
mod admin_tests;
#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod tests;

pub use admin::{GROUP_ID_BYTES_MAX, OFFSETS_PARTITIONS_MAX, PartitionStart, check_group_id};
pub use dead_letter::DeadLetterWork;
pub use fetch::{AckBatch, AcquiredData, PartitionAcks, SessionRequest, SessionUse};
pub use membership::{ShareHeartbeat, ShareHeartbeatReply};
pub use partition::{
    AckType, Acquired, DeadLetterReason, Outcomes, PendingDeadLetter, Persist, RecordState, SharePartition, Summary,
};
pub use settings::{AutoOffsetReset, ShareGroupSettings};
pub use source::{ShareSource, SourceOf};
pub use store::{Claimed, LogShareStore, ShareChange, ShareStateStore, Ticket};

use partition::Limits;

/// Broker-wide limits and timings of share groups. Names end in their unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareConfig {
    /// Share groups the broker keeps.
    pub groups_max: usize,
    /// Members per share group (Kafka's `group.share.max.size`).
    pub group_members_max: usize,
    /// Share sessions open at once (Kafka's `group.share.max.share.sessions`).
    pub sessions_max: usize,
    /// A member that sends no heartbeat for this long is removed, and a
    /// session not used for this long is closed (Kafka's
    /// `group.share.session.timeout.ms`).
    pub session_timeout_ms: u64,
    /// How often members heartbeat (`group.share.heartbeat.interval.ms`).
    pub heartbeat_interval_ms: u64,
    /// Settings of groups that set none of their own.
    pub defaults: ShareGroupSettings,
    /// Whether a group's dead-letter topic is created when its first letter
    /// is written and the topic does not exist (KIP-1191's
    /// `errors.deadletterqueue.auto.create.topics.enable`).
    pub dead_letter_topics_auto_create: bool,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            groups_max: 10_000,
            group_members_max: 200,
            sessions_max: 2_000,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            defaults: ShareGroupSettings::default(),
            dead_letter_topics_auto_create: true,
        }
    }
}

/// Why a share-group request fails. Adapters map each to its Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("the group id must not be empty")]
    InvalidGroupId,
    #[error("a share group id has at most {GROUP_ID_BYTES_MAX} bytes, this one has {0}")]
    GroupIdTooLong(usize),
    #[error("the member is not in the group")]
    UnknownMemberId,
    #[error("member epoch {got} is not the member's epoch {current}; rejoin")]
    FencedMemberEpoch { got: i32, current: i32 },
    #[error("the share group has reached its maximum of {0} members")]
    GroupMaxSizeReached(usize),
    #[error("the broker keeps at most {0} share groups")]
    TooManyGroups(usize),
    #[error("group `{0}` is not a share group")]
    WrongGroupType(String),
    #[error("no share session is open for this member")]
    ShareSessionNotFound,
    #[error("share session epoch {got} is not the expected {expected}")]
    InvalidShareSessionEpoch { got: i32, expected: i32 },
    #[error("the broker has {0} share sessions open, its maximum")]
    ShareSessionLimitReached(usize),
    #[error("{0}")]
    InvalidRecordState(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("no share group has this id")]
    GroupIdNotFound,
    #[error("the share group has members; stop them first")]
    NonEmptyGroup,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("{0}")]
    InvalidConfig(String),
    #[error("storing share-group state failed: {0}")]
    Storage(String),
    /// The partition is served by another broker (shared storage).
    #[error("{0}")]
    NotLeader(String),
}

impl From<CoreError> for ShareError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::ShareStateMoved { .. } => ShareError::NotLeader(e.to_string()),
            e => ShareError::Storage(e.to_string()),
        }
    }
}

/// A group's settings as the cluster has them: its own (as set), resolved.
type Adopted = (Vec<(String, String)>, ShareGroupSettings);

/// A share-partition's identity: group, topic id, partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub group: String,
    pub topic: TopicId,
    pub partition: i32,
}

/// Topic ids as the store writes them.
pub fn topic_hex(id: &TopicId) -> String {
    crate::broker::id_hex(id)
}

/// A topic id as the store writes it, read back.
pub fn topic_from_hex(s: &str) -> Option<TopicId> {
    crate::broker::parse_id(s)
}

/// A share group's membership and settings.
#[derive(Debug, Default)]
struct ShareGroup {
    /// Bumped whenever the target assignment changes.
    epoch: i32,
    members: BTreeMap<String, membership::Member>,
    /// Settings set for this group, in the order they were set.
    overrides: Vec<(String, String)>,
    settings: ShareGroupSettings,
    /// The topic archived records are copied to, if the group names one.
    dead_letter_topic: Option<Arc<str>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The coordinator of every share group on this broker.
#[derive(Debug)]
pub struct ShareCoordinator {
    env: Arc<Env>,
    config: ShareConfig,
    groups: Mutex<BTreeMap<String, ShareGroup>>,
    sessions: Mutex<HashMap<(String, String), fetch::Session>>,
    partitions: Mutex<BTreeMap<Key, Arc<Mutex<SharePartition>>>>,
    /// Replaced once, before serving, by [`attach_store`](Self::attach_store).
    store: RwLock<Arc<dyn ShareStateStore>>,
    /// Held while a share-partition is loaded from an on-demand store, so
    /// one broker claims it once.
    loading: Mutex<()>,
    /// With an on-demand store: every group's settings as the cluster has
    /// them (overrides, resolved), by group. Never held while taking
    /// another lock.
    adopted: Mutex<BTreeMap<String, Adopted>>,
    /// Shared by writers of the store, exclusive while compacting, so a
    /// snapshot sees every change before it and none after. Always taken
    /// before a share-partition's lock.
    writers: RwLock<()>,
    /// Bumped whenever records become available again (released, lock
    /// timed out): wakes share fetches waiting for records.
    available: tokio::sync::watch::Sender<i64>,
    /// Set when a record may have been archived with its dead letter to
    /// write: the dead-letter writer looks at the share-partitions only then.
    dead_letters_due: std::sync::atomic::AtomicBool,
    /// The writer does not look before this (ms): a write failed.
    dead_letters_retry_ms: std::sync::atomic::AtomicI64,
}

/// One share-partition as describe and metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartitionStats {
    pub key: Key,
    pub summary: Summary,
    pub outcomes: Outcomes,
}

/// A share group as ListGroups and describe show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    pub group_id: String,
    /// `Empty` or `Stable`, as Kafka names share groups' states.
    pub state: &'static str,
    pub epoch: i32,
    pub members: Vec<membership::MemberDescription>,
    pub settings: ShareGroupSettings,
}

impl ShareCoordinator {
    /// Opens the coordinator over `store`, replaying its changes. State of
    /// topics for which `topic_exists` says no is dropped.
    pub fn open(
        env: Arc<Env>,
        config: ShareConfig,
        store: Box<dyn ShareStateStore>,
        topic_exists: &dyn Fn(&TopicId) -> bool,
    ) -> crate::Result<ShareCoordinator> {
        let (available, _) = tokio::sync::watch::channel(0);
        let coordinator = ShareCoordinator {
            env,
            config,
            groups: Mutex::new(BTreeMap::new()),
            sessions: Mutex::new(HashMap::new()),
            partitions: Mutex::new(BTreeMap::new()),
            store: RwLock::new(Arc::from(store)),
            loading: Mutex::new(()),
            adopted: Mutex::new(BTreeMap::new()),
            writers: RwLock::new(()),
            available,
            // Replayed state may hold records archived before a crash.
            dead_letters_due: std::sync::atomic::AtomicBool::new(true),
            dead_letters_retry_ms: std::sync::atomic::AtomicI64::new(0),
        };
        for change in coordinator.store().replay()? {
            coordinator.apply_replayed(change);
        }
        let gone: Vec<TopicId> = {
            let partitions = lock(&coordinator.partitions);
            let mut ids: Vec<TopicId> = partitions.keys().map(|k| k.topic).collect();
            ids.dedup();
            ids.into_iter().filter(|id| !topic_exists(id)).collect()
        };
        for id in gone {
            tracing::info!(topic = %topic_hex(&id), "removing share-group state of a topic that no longer exists");
            coordinator
                .delete_topic(&id)
                .map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        }
        Ok(coordinator)
    }

    /// The store changes go to.
    fn store(&self) -> Arc<dyn ShareStateStore> {
        self.store.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the store, before the coordinator serves anything: a
    /// broker on shared storage keeps share-group state in the cluster's
    /// store, not on its disk. What memory holds is dropped and the old
    /// store closed.
    pub fn attach_store(&self, store: Box<dyn ShareStateStore>) {
        let _exclusive = self.writers.write().unwrap_or_else(|p| p.into_inner());
        lock(&self.partitions).clear();
        lock(&self.sessions).clear();
        lock(&self.groups).clear();
        let old = std::mem::replace(
            &mut *self.store.write().unwrap_or_else(|p| p.into_inner()),
            Arc::from(store),
        );
        old.close();
    }

    /// Drops from memory the share-partitions `keep` says no (a broker on
    /// shared storage that no longer serves their partitions), without
    /// storing anything: their state stays where the store has it, and
    /// their records' locks go. Answers how many were dropped.
    pub fn retain_partitions(&self, keep: &dyn Fn(&Key) -> bool) -> usize {
        let mut partitions = lock(&self.partitions);
        let before = partitions.len();
        partitions.retain(|k, _| keep(k));
        before - partitions.len()
    }

    /// Drops `group`'s share-partitions of these (topic id in hex,
    /// partition) from memory.
    fn forget_partitions(&self, group: &str, partitions: impl IntoIterator<Item = (String, i32)>) {
        let mut all = lock(&self.partitions);
        for (topic, partition) in partitions {
            if let Some(topic) = topic_from_hex(&topic) {
                all.remove(&Key {
                    group: group.to_owned(),
                    topic,
                    partition,
                });
            }
        }
    }

    fn apply_replayed(&self, change: ShareChange) {
        let mut groups = lock(&self.groups);
        self.apply(&mut groups, change);
    }

    /// Applies a stored change to memory. The caller holds the groups' lock
    /// (always taken before the share-partitions'), so a change checked
    /// against a group and applied here is atomic to everything that reads
    /// or changes the group.
    fn apply(&self, groups: &mut BTreeMap<String, ShareGroup>, change: ShareChange) {
        match change {
            ShareChange::Records {
                group,
                topic,
                partition,
                start,
                ranges,
            } => {
                let Some(topic) = topic_from_hex(&topic) else { return };
                let offset_ok = |o: i64| (0..=partition::STORED_OFFSET_MAX).contains(&o);
                if partition < 0
                    || !start.is_none_or(offset_ok)
                    || !ranges
                        .iter()
                        .all(|r| offset_ok(r.first) && offset_ok(r.last) && r.first <= r.last)
                {
                    tracing::warn!(group = %group, partition, "ignoring a stored share-state change with offsets no log has");
                    return;
                }
                let first = start.or(ranges.first().map(|r| r.first)).unwrap_or(0);
                let p = self.replayed_partition(&group, topic, partition, first);
                let mut p = lock(&p);
                if let Some(start) = start {
                    p.move_start(start);
                }
                for r in &ranges {
                    p.restore(r);
                }
                groups.entry(group).or_insert_with(|| self.new_group());
            }
            ShareChange::Starts { group, starts } if self.store().on_demand() => {
                // Stored whole: whoever serves each one loads it again.
                self.forget_partitions(&group, starts.into_iter().map(|(t, p, _)| (t, p)));
                groups.entry(group).or_insert_with(|| self.new_group());
            }
            ShareChange::Starts { group, starts } => {
                for (topic, partition, start) in starts {
                    if partition < 0 || !(0..=partition::STORED_OFFSET_MAX).contains(&start) {
                        tracing::warn!(group = %group, partition, "ignoring a stored share start offset no log has");
                        continue;
                    }
                    let Some(topic) = topic_from_hex(&topic) else { continue };
                    let p = self.replayed_partition(&group, topic, partition, start);
                    lock(&p).move_start(start);
                }
                groups.entry(group).or_insert_with(|| self.new_group());
            }
            ShareChange::DeletePartitions { group, partitions } => self.forget_partitions(&group, partitions),
            ShareChange::DeleteGroup { group } => {
                lock(&self.partitions).retain(|k, _| k.group != group);
                lock(&self.sessions).retain(|(g, _), _| *g != group);
                groups.remove(&group);
            }
            ShareChange::DeleteTopic { topic } => {
                if let Some(topic) = topic_from_hex(&topic) {
                    lock(&self.partitions).retain(|k, _| k.topic != topic);
                }
            }
            ShareChange::Settings { group, settings } => {
                // Each setting on its own: one this version refuses (a range
                // narrowed since it was stored) is dropped, not the others.
                let valid: Vec<(String, String)> = settings
                    .into_iter()
                    .filter(
                        |kv| match ShareGroupSettings::resolve(self.config.defaults, std::slice::from_ref(kv)) {
                            Ok(_) => true,
                            Err(e) => {
                                tracing::warn!(group = %group, error = %e, "ignoring a stored share-group setting");
                                false
                            }
                        },
                    )
                    .collect();
                let resolved = ShareGroupSettings::resolve(self.config.defaults, &valid);
                let g = groups.entry(group.clone()).or_insert_with(|| self.new_group());
                g.settings = resolved.unwrap_or(self.config.defaults);
                g.dead_letter_topic = valid
                    .iter()
                    .rev()
                    .find(|(k, _)| k == settings::DEAD_LETTER_TOPIC_KEY)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(_, v)| Arc::from(v.as_str()));
                g.overrides = valid;
            }
        }
    }

    /// The share-partition a stored change names, created at `first` if
    /// memory has none yet.
    fn replayed_partition(
        &self,
        group: &str,
        topic: TopicId,
        partition: i32,
        first: i64,
    ) -> Arc<Mutex<SharePartition>> {
        let key = Key {
            group: group.to_owned(),
            topic,
            partition,
        };
        lock(&self.partitions)
            .entry(key)
            .or_insert_with(|| Arc::new(Mutex::new(SharePartition::new(first))))
            .clone()
    }

    fn new_group(&self) -> ShareGroup {
        ShareGroup {
            settings: self.config.defaults,
            ..ShareGroup::default()
        }
    }

    pub fn config(&self) -> &ShareConfig {
        &self.config
    }

    fn now_ms(&self) -> i64 {
        self.env.clock.now_ms()
    }

    /// A receiver that changes whenever records become available again.
    pub fn watch_available(&self) -> tokio::sync::watch::Receiver<i64> {
        self.available.subscribe()
    }

    fn wake(&self) {
        self.available.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn limits(&self, group: &str) -> Limits {
        limits_of(&self.settings(group))
    }

    /// The settings of `group` (the defaults if it has none).
    pub fn settings(&self, group: &str) -> ShareGroupSettings {
        if let Some(adopted) = self.adopted(group) {
            return adopted.1;
        }
        lock(&self.groups)
            .get(group)
            .map_or(self.config.defaults, |g| g.settings)
    }

    /// With an on-demand store, a group's settings as the cluster has them
    /// (the store's, adopted by [`adopt_settings`](Self::adopt_settings),
    /// or set here): `Some` always, the defaults for a group that sets none.
    /// Takes only the adopted settings' lock.
    fn adopted(&self, group: &str) -> Option<Adopted> {
        if !self.store().on_demand() {
            return None;
        }
        Some(
            lock(&self.adopted)
                .get(group)
                .cloned()
                .unwrap_or_else(|| (Vec::new(), self.config.defaults)),
        )
    }

    /// Takes every group's settings as the cluster's store has them (groups
    /// that set none left out): on shared storage, each broker applies them
    /// to the share-partitions it serves. Settings that no longer resolve
    /// are dropped with a warning, as on replay.
    /// Takes one group's settings as the cluster's store has them (empty:
    /// the defaults), like [`adopt_settings`](Self::adopt_settings).
    pub(super) fn adopt_group_settings(&self, group: &str, overrides: Vec<(String, String)>) {
        if overrides.is_empty() {
            lock(&self.adopted).remove(group);
            return;
        }
        match ShareGroupSettings::resolve(self.config.defaults, &overrides) {
            Ok(resolved) => {
                lock(&self.adopted).insert(group.to_owned(), (overrides, resolved));
            }
            Err(e) => tracing::warn!(group = %group, error = %e, "ignoring a stored share group's settings"),
        }
    }

    pub fn adopt_settings(&self, all: Vec<(String, Vec<(String, String)>)>) {
        let mut adopted = BTreeMap::new();
        for (group, overrides) in all {
            match ShareGroupSettings::resolve(self.config.defaults, &overrides) {
                Ok(resolved) => {
                    adopted.insert(group, (overrides, resolved));
                }
                Err(e) => tracing::warn!(group = %group, error = %e, "ignoring a stored share group's settings"),
            }
        }
        *lock(&self.adopted) = adopted;
    }

    /// Whether `group` is a share group this broker knows.
    pub fn contains(&self, group: &str) -> bool {
        lock(&self.groups).contains_key(group)
    }

    /// Durably replaces the settings `group` sets itself (an empty list goes
    /// back to the defaults). Creates the group if needed.
    pub fn set_settings(&self, group: &str, overrides: Vec<(String, String)>) -> Result<(), ShareError> {
        check_group_id(group)?;
        // Checked here so that only settings that resolve are stored.
        let resolved =
            ShareGroupSettings::resolve(self.config.defaults, &overrides).map_err(ShareError::InvalidConfig)?;
        let change = ShareChange::Settings {
            group: group.to_owned(),
            settings: overrides.clone(),
        };
        self.write_then_apply(change, |groups| self.check_room(groups, group))?;
        if self.store().on_demand() {
            let mut adopted = lock(&self.adopted);
            if overrides.is_empty() {
                adopted.remove(group);
            } else {
                adopted.insert(group.to_owned(), (overrides, resolved));
            }
        }
        Ok(())
    }

    /// The settings `group` sets itself.
    pub fn overrides(&self, group: &str) -> Vec<(String, String)> {
        if let Some(adopted) = self.adopted(group) {
            return adopted.0;
        }
        lock(&self.groups)
            .get(group)
            .map(|g| g.overrides.clone())
            .unwrap_or_default()
    }

    /// Every share group, sorted by id.
    pub fn list(&self) -> Vec<ShareGroupDescription> {
        let mut all: Vec<ShareGroupDescription> = {
            let groups = lock(&self.groups);
            groups.iter().map(|(id, g)| describe_group(id, g)).collect()
        };
        for d in &mut all {
            d.settings = self.settings(&d.group_id);
        }
        all
    }

    pub fn describe(&self, group: &str) -> Option<ShareGroupDescription> {
        let mut d = lock(&self.groups).get(group).map(|g| describe_group(group, g))?;
        d.settings = self.settings(group);
        Some(d)
    }

    /// Every share-partition's state, sorted by group, topic and partition.
    pub fn stats(&self) -> Vec<SharePartitionStats> {
        let partitions = self.partitions_snapshot();
        let now = self.now_ms();
        partitions
            .into_iter()
            .map(|(key, p)| {
                let p = lock(&p);
                SharePartitionStats {
                    key,
                    summary: p.summary(now),
                    outcomes: p.outcomes,
                }
            })
            .collect()
    }

    fn partition(&self, key: &Key) -> Option<Arc<Mutex<SharePartition>>> {
        lock(&self.partitions).get(key).cloned()
    }

    /// Every share-partition with its key, copied out so that each can be
    /// locked in turn without holding the map's lock.
    fn partitions_snapshot(&self) -> Vec<(Key, Arc<Mutex<SharePartition>>)> {
        lock(&self.partitions)
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect()
    }

    /// Lock timeouts, member and session expiry, store housekeeping and
    /// compaction. Called periodically by the host.
    pub fn tick(&self) {
        let now = self.now_ms();
        self.expire_members(now);
        self.expire_sessions(now);
        let mut released = 0;
        let mut backoffs_ended = false;
        let mut ticket = None;
        {
            let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
            let partitions = self.partitions_snapshot();
            for (key, p) in partitions {
                let limits = self.limits(&key.group);
                let mut persist = Vec::new();
                let mut p = lock(&p);
                let n = p.expire(now, &limits, &mut persist);
                if p.backoff_ended(now) {
                    // Records waited out their backoff: fetchers waiting
                    // for records look again.
                    backoffs_ended = true;
                }
                if n > 0 {
                    released += n;
                    match self.append_records(&key, &p, None, persist, now) {
                        Ok(t) => ticket = Some(t),
                        Err(e) => tracing::error!(error = %e, "storing share-group state"),
                    }
                }
            }
        }
        if let Some(t) = ticket
            && let Err(e) = self.store().wait_durable(t)
        {
            tracing::error!(error = %e, "storing share-group state");
        }
        if released > 0 || backoffs_ended {
            self.wake();
        }
        if let Err(e) = self.store().tick() {
            tracing::error!(error = %e, "share-group state housekeeping");
        }
        if self.store().compaction_due()
            && let Err(e) = self.compact()
        {
            tracing::error!(error = %e, "compacting share-group state");
        }
    }

    /// Replaces the store's history by the current state.
    pub fn compact(&self) -> Result<(), ShareError> {
        let _exclusive = self.writers.write().unwrap_or_else(|p| p.into_inner());
        let mut state = Vec::new();
        for (group, g) in lock(&self.groups).iter() {
            if !g.overrides.is_empty() {
                state.push(ShareChange::Settings {
                    group: group.clone(),
                    settings: g.overrides.clone(),
                });
            }
        }
        let partitions = self.partitions_snapshot();
        for (key, p) in partitions {
            let p = lock(&p);
            state.push(ShareChange::Records {
                group: key.group.clone(),
                topic: topic_hex(&key.topic),
                partition: key.partition,
                start: Some(p.start()),
                ranges: p.persisted(),
            });
        }
        self.store().replace_with(state, self.now_ms())?;
        Ok(())
    }

    /// Appends a change of one share-partition `p`; the caller holds
    /// `writers` (shared) and `p`'s lock. An on-demand store gets `p`'s
    /// whole state; when it refuses it, `p` is dropped from memory (it
    /// changed before the store took the change) and loaded again on its
    /// next use.
    fn append_records(
        &self,
        key: &Key,
        p: &SharePartition,
        start: Option<i64>,
        ranges: Vec<partition::Persist>,
        now_ms: i64,
    ) -> crate::Result<store::Ticket> {
        if ranges.iter().any(|r| matches!(r.state, RecordState::Archiving(_))) {
            self.dead_letters_due.store(true, std::sync::atomic::Ordering::Release);
        }
        let store = self.store();
        let on_demand = store.on_demand();
        let (start, ranges) = if on_demand {
            (Some(p.start()), p.persisted())
        } else {
            (start, ranges)
        };
        let change = ShareChange::Records {
            group: key.group.clone(),
            topic: topic_hex(&key.topic),
            partition: key.partition,
            start,
            ranges,
        };
        let appended = store.append(&change, now_ms);
        if appended.is_err() && on_demand {
            // `p`'s lock is held; nothing takes the map's lock and then a
            // share-partition's.
            lock(&self.partitions).remove(key);
        }
        appended
    }

    pub fn close(&self) {
        self.store().close();
    }
}

fn limits_of(s: &ShareGroupSettings) -> Limits {
    Limits {
        lock_ms: i64::try_from(s.record_lock_duration_ms).unwrap_or(i64::MAX),
        delivery_count_limit: s.delivery_count_limit,
        record_locks_max: s.partition_max_record_locks,
        backoff: partition::Backoff {
            initial_ms: i64::try_from(s.backoff_initial_ms).unwrap_or(i64::MAX),
            max_ms: i64::try_from(s.backoff_max_ms).unwrap_or(i64::MAX),
            multiplier: u32::from(s.backoff_multiplier),
        },
        dead_letters: s.dead_letters,
        order: partition::Order {
            delays: s.delays,
            delay_ms_max: i64::try_from(s.delay_max_ms).unwrap_or(i64::MAX),
            priority: s.priority,
            key_order: s.key_order,
        },
    }
}

fn describe_group(id: &str, g: &ShareGroup) -> ShareGroupDescription {
    ShareGroupDescription {
        group_id: id.to_owned(),
        state: if g.members.is_empty() { "Empty" } else { "Stable" },
        epoch: g.epoch,
        members: g.members.iter().map(|(id, m)| m.describe(id)).collect(),
        settings: g.settings,
    }
}
