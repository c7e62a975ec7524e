//! Consumer groups: the coordinator of Kafka's classic group protocol and of
//! the consumer protocol of KIP-848, and the durable store of committed offsets.
//!
//! The coordinator ([`GroupCoordinator`]) keeps every group's membership and
//! rebalance state in memory ([`group`] for classic groups, where a member
//! assigns the partitions, [`consumer`] for consumer-protocol groups, where the
//! coordinator does); a group is of one kind at a time, and an empty group
//! becomes whichever kind joins it next. Time comes from the injected clock and
//! advances through [`GroupCoordinator::tick`], so tests control it without
//! sleeping. JoinGroup and SyncGroup answers that Kafka delays come back as
//! one-shot receivers that a later call or a tick completes.
//!
//! Committed offsets are durable ([`offsets`]): a commit is acknowledged only
//! after the log record holding it is fsynced, and the store is rebuilt from
//! that log at start. Group membership is not persisted: after a restart every
//! member is unknown, gets UNKNOWN_MEMBER_ID on its next heartbeat or commit,
//! and rejoins, which clients do by themselves; no commit of an old generation
//! can slip through.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::oneshot;
use veltrix_log::Env;

pub mod consumer;
pub mod group;
pub mod offsets;

use consumer::ConsumerGroup;
pub use consumer::{
    Assignment, ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatReply, ConsumerMemberDescription,
    TopicMeta,
};
use group::Group;
pub use group::GroupState;
use offsets::OffsetStore;
pub use offsets::{Committed, CommittedPartition};

use crate::error::Result;

/// Limits and timings of consumer groups. Names end in their unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// Shortest session timeout a member may ask for (Kafka's
    /// `group.min.session.timeout.ms`).
    pub session_timeout_ms_min: u64,
    /// Longest session timeout a member may ask for.
    pub session_timeout_ms_max: u64,
    /// How long the first rebalance of an empty group waits for more members.
    pub initial_rebalance_delay_ms: u64,
    /// Members per group (Kafka's `group.max.size`).
    pub group_members_max: usize,
    /// Groups the coordinator keeps.
    pub groups_max: usize,
    /// Largest metadata string stored with a committed offset.
    pub offset_metadata_bytes_max: usize,
    /// Committed offsets of a group that has been empty this long are deleted
    /// (Kafka's `offsets.retention.minutes`).
    pub offsets_retention_ms: u64,
    /// Consumer protocol: a member that sends no heartbeat for this long is
    /// removed (Kafka's `group.consumer.session.timeout.ms`).
    pub consumer_session_timeout_ms: u64,
    /// Consumer protocol: how often members heartbeat (Kafka's
    /// `group.consumer.heartbeat.interval.ms`). Partitions a member gives up
    /// reach the next owner on that owner's next heartbeat.
    pub consumer_heartbeat_interval_ms: u64,
    /// Consumer protocol: the assignor of groups whose members name none.
    pub consumer_assignor: ConsumerAssignor,
}

/// The server-side assignors of the consumer protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsumerAssignor {
    /// Spreads partitions evenly and moves as few as it can.
    Uniform,
    /// Consecutive ranges of each topic's partitions, per topic.
    Range,
}

impl ConsumerAssignor {
    /// By the name clients use (`group.remote.assignor`).
    pub fn parse(name: &str) -> Option<ConsumerAssignor> {
        match name {
            "uniform" => Some(ConsumerAssignor::Uniform),
            "range" => Some(ConsumerAssignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConsumerAssignor::Uniform => "uniform",
            ConsumerAssignor::Range => "range",
        }
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            group_members_max: 1_000,
            groups_max: 10_000,
            offset_metadata_bytes_max: 4_096,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_assignor: ConsumerAssignor::Uniform,
        }
    }
}

/// Why a group request fails. Adapters map each to its Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the group id must not be empty")]
    InvalidGroupId,
    #[error("session timeout {got} ms is outside {min}..={max} ms")]
    InvalidSessionTimeout { got: i32, min: u64, max: u64 },
    #[error("the member is not in the group")]
    UnknownMemberId,
    #[error("generation {got} is not the group's current generation {current}")]
    IllegalGeneration { got: i32, current: i32 },
    #[error("the group is rebalancing; rejoin")]
    RebalanceInProgress,
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    /// KIP-394: join again with this member id.
    #[error("join again with member id {0}")]
    MemberIdRequired(String),
    #[error("another member with the same group.instance.id has joined")]
    FencedInstanceId,
    #[error("the group has reached its maximum number of members")]
    GroupMaxSizeReached,
    #[error("the coordinator is not available for this group")]
    CoordinatorNotAvailable,
    #[error("the group has members; it can only be deleted when empty")]
    NonEmptyGroup,
    #[error("no group has this id")]
    GroupIdNotFound,
    #[error("the offset's metadata is {len} bytes, over the limit of {max}")]
    OffsetMetadataTooLarge { len: usize, max: usize },
    #[error("topic `{topic}` has no partition {partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    #[error("the group is consuming the topic; offsets of an active subscription cannot be deleted")]
    GroupSubscribedToTopic,
    #[error("the broker keeps at most {0} groups")]
    TooManyGroups(usize),
    #[error("storing offsets failed: {0}")]
    Storage(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("no server-side assignor is named `{0}`; there are `uniform` and `range`")]
    UnsupportedAssignor(String),
    #[error("a member with the same group.instance.id is still in the group")]
    UnreleasedInstanceId,
    #[error("member epoch {got} is not the member's epoch {current}; rejoin")]
    FencedMemberEpoch { got: i32, current: i32 },
    #[error("member epoch {got} is not the member's current epoch {current}")]
    StaleMemberEpoch { got: i32, current: i32 },
    /// The group exists under the other protocol.
    #[error("group `{group}` is a {kind} group")]
    WrongGroupType { group: String, kind: &'static str },
}

/// A JoinGroup request, in the engine's terms.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// `(name, metadata)` in order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// The client understands MEMBER_ID_REQUIRED (JoinGroup v4+).
    pub require_known_member_id: bool,
}

/// A successful JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<MemberSummary>,
}

/// A member as DescribeGroups and the leader's JoinGroup answer show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberSummary>,
}

/// One offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// Who commits: a member of a generation, or (generation -1, no member id) a
/// consumer that assigns partitions itself and only uses the group for offsets.
#[derive(Debug, Clone, Default)]
pub struct Committer {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
}

/// The coordinator of every group on this broker.
#[derive(Debug)]
pub struct GroupCoordinator {
    env: Arc<Env>,
    config: GroupConfig,
    groups: Mutex<BTreeMap<String, AnyGroup>>,
    offsets: OffsetStore,
    /// Member ids: client id, the time the coordinator started, a counter.
    started_ms: i64,
    next_member: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A group of either protocol.
#[derive(Debug)]
enum AnyGroup {
    Classic(Group),
    Consumer(ConsumerGroup),
}

impl AnyGroup {
    fn id(&self) -> &str {
        match self {
            AnyGroup::Classic(g) => &g.id,
            AnyGroup::Consumer(g) => &g.id,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            AnyGroup::Classic(g) => g.is_empty(),
            AnyGroup::Consumer(g) => g.is_empty(),
        }
    }

    fn is_dead(&self) -> bool {
        match self {
            AnyGroup::Classic(g) => g.state == GroupState::Dead,
            AnyGroup::Consumer(g) => g.dead,
        }
    }

    /// Marks the group dead while it is being deleted, or back to empty.
    fn set_dead(&mut self, dead: bool) {
        match self {
            AnyGroup::Classic(g) => g.state = if dead { GroupState::Dead } else { GroupState::Empty },
            AnyGroup::Consumer(g) => g.dead = dead,
        }
    }

    fn empty_since_ms(&self) -> i64 {
        match self {
            AnyGroup::Classic(g) => g.empty_since_ms,
            AnyGroup::Consumer(g) => g.empty_since_ms,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AnyGroup::Classic(_) => "classic",
            AnyGroup::Consumer(_) => "consumer",
        }
    }
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for both a classic consumer group and a consumer-protocol
    /// group; empty for a classic group nobody has joined.
    pub protocol_type: String,
    /// The state's name: a classic group's ([`GroupState::name`]), or a
    /// consumer-protocol group's (`Empty`, `Reconciling`, `Stable`, `Dead`).
    pub state: &'static str,
    /// `classic` or `consumer` (ListGroups v5's group type).
    pub group_type: &'static str,
    pub members: usize,
}

impl GroupCoordinator {
    /// Opens the offsets store in `dir` (created if missing).
    pub fn open(env: Arc<Env>, dir: &Path, config: GroupConfig) -> Result<GroupCoordinator> {
        let offsets = OffsetStore::open(env.clone(), dir)?;
        let started_ms = env.clock.now_ms();
        let mut groups = BTreeMap::new();
        for offsets::GroupCommits {
            group_id: id,
            last_commit_ms,
        } in offsets.groups()
        {
            // Empty since its last commit, as far as offsets retention goes: a
            // restart does not give an abandoned group's offsets a new lease.
            groups.insert(
                id.clone(),
                AnyGroup::Classic(Group::new(&id, last_commit_ms.min(started_ms))),
            );
        }
        Ok(GroupCoordinator {
            env,
            config,
            groups: Mutex::new(groups),
            offsets,
            started_ms,
            next_member: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn now_ms(&self) -> i64 {
        self.env.clock.now_ms()
    }

    /// Runs `f` on group `id`, creating it (an empty classic group) if
    /// `create`.
    fn with_any<T>(
        &self,
        id: &str,
        create: bool,
        f: impl FnOnce(&mut AnyGroup) -> std::result::Result<T, GroupError>,
    ) -> std::result::Result<T, GroupError> {
        if id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let mut groups = lock(&self.groups);
        if !groups.contains_key(id) {
            if !create {
                return Err(GroupError::UnknownMemberId);
            }
            if groups.len() >= self.config.groups_max {
                return Err(GroupError::TooManyGroups(self.config.groups_max));
            }
            groups.insert(id.to_owned(), AnyGroup::Classic(Group::new(id, self.now_ms())));
        }
        f(groups.get_mut(id).expect("present"))
    }

    /// Runs `f` on classic group `id`. An empty consumer-protocol group becomes
    /// a classic one; a consumer-protocol group with members fails with
    /// `in_use`.
    fn with_group<T>(
        &self,
        id: &str,
        create: bool,
        in_use: GroupError,
        f: impl FnOnce(&mut Group) -> std::result::Result<T, GroupError>,
    ) -> std::result::Result<T, GroupError> {
        self.with_any(id, create, |any| {
            if let AnyGroup::Consumer(c) = any {
                if !c.is_empty() || c.dead {
                    return Err(in_use);
                }
                *any = AnyGroup::Classic(Group::new(id, c.empty_since_ms));
            }
            match any {
                AnyGroup::Classic(g) => f(g),
                AnyGroup::Consumer(_) => unreachable!("replaced above"),
            }
        })
    }

    /// ConsumerGroupHeartbeat (KIP-848). `topics` resolves subscribed topic
    /// names; it is called with the coordinator's lock held, so it must not
    /// call back into the coordinator.
    pub fn consumer_heartbeat(
        &self,
        request: ConsumerHeartbeat,
        topics: &dyn Fn(&str) -> Option<TopicMeta>,
    ) -> std::result::Result<ConsumerHeartbeatReply, GroupError> {
        let now = self.now_ms();
        let group_id = request.group_id.clone();
        let create = request.member_epoch == 0;
        let new_id = || {
            let n = self.next_member.fetch_add(1, Ordering::Relaxed);
            let client_id = if request.client_id.is_empty() {
                "member"
            } else {
                request.client_id.as_str()
            };
            format!("{client_id}-{:x}-{n}", self.started_ms)
        };
        let config = self.config;
        self.with_any(&group_id, create, |any| {
            if let AnyGroup::Classic(g) = any {
                if !g.is_empty() || g.state == GroupState::Dead {
                    return Err(GroupError::WrongGroupType {
                        group: group_id.clone(),
                        kind: "classic",
                    });
                }
                *any = AnyGroup::Consumer(ConsumerGroup::new(&g.id, g.empty_since_ms, config.consumer_assignor));
            }
            let AnyGroup::Consumer(g) = any else {
                unreachable!("replaced above")
            };
            if g.dead {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            let reply = g.heartbeat(&config, request.clone(), new_id, topics, now);
            g.note_departure(now);
            reply
        })
    }

    /// ConsumerGroupDescribe for one group.
    pub fn describe_consumer(&self, group_id: &str) -> std::result::Result<ConsumerGroupDescription, GroupError> {
        match lock(&self.groups).get(group_id) {
            Some(AnyGroup::Consumer(g)) => Ok(g.describe()),
            Some(AnyGroup::Classic(g)) if !g.is_empty() => Err(GroupError::WrongGroupType {
                group: group_id.to_owned(),
                kind: "classic",
            }),
            // An empty classic group (offsets only) is an empty group of either
            // kind.
            Some(AnyGroup::Classic(g)) => Ok(ConsumerGroupDescription {
                group_id: group_id.to_owned(),
                state: if g.state == GroupState::Dead { "Dead" } else { "Empty" },
                group_epoch: 0,
                assignment_epoch: 0,
                assignor: self.config.consumer_assignor.name().to_owned(),
                members: Vec::new(),
            }),
            None => Err(GroupError::GroupIdNotFound),
        }
    }

    /// OffsetFetch v9: a member of a consumer-protocol group that gives its
    /// epoch must be at it.
    pub fn check_offset_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> std::result::Result<(), GroupError> {
        match lock(&self.groups).get(group_id) {
            Some(AnyGroup::Consumer(g)) if member_epoch >= 0 => g.check_member(member_id, None, member_epoch),
            Some(AnyGroup::Consumer(_)) | Some(AnyGroup::Classic(_)) => Ok(()),
            None if member_epoch >= 0 && !member_id.is_empty() => Err(GroupError::UnknownMemberId),
            None => Ok(()),
        }
    }

    /// JoinGroup. The answer may come later: when the join phase ends.
    pub fn join(&self, request: JoinRequest) -> oneshot::Receiver<std::result::Result<Joined, GroupError>> {
        let now = self.now_ms();
        let client_id = if request.client_id.is_empty() {
            "member".to_owned()
        } else {
            request.client_id.clone()
        };
        let new_id = || {
            let n = self.next_member.fetch_add(1, Ordering::Relaxed);
            format!("{client_id}-{:x}-{n}", self.started_ms)
        };
        let group_id = request.group_id.clone();
        let outcome = self.with_group(&group_id, true, GroupError::InconsistentGroupProtocol, |g| {
            Ok(g.join(&self.config, request, new_id, now))
        });
        outcome.unwrap_or_else(|e| {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(e));
            rx
        })
    }

    /// SyncGroup. A follower's answer comes when the leader's assignment does.
    pub fn sync(
        &self,
        group_id: &str,
        committer: &Committer,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<std::result::Result<Bytes, GroupError>> {
        let now = self.now_ms();
        let outcome = self.with_group(group_id, false, GroupError::UnknownMemberId, |g| {
            Ok(g.sync(
                &committer.member_id,
                committer.instance_id.as_deref(),
                committer.generation,
                assignments,
                now,
            ))
        });
        outcome.unwrap_or_else(|e| {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(e));
            rx
        })
    }

    pub fn heartbeat(&self, group_id: &str, committer: &Committer) -> std::result::Result<(), GroupError> {
        let now = self.now_ms();
        self.with_group(group_id, false, GroupError::UnknownMemberId, |g| {
            g.heartbeat(
                &committer.member_id,
                committer.instance_id.as_deref(),
                committer.generation,
                now,
            )
        })
    }

    /// LeaveGroup: `(member id, instance id)` per leaving member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> std::result::Result<Vec<std::result::Result<(), GroupError>>, GroupError> {
        let now = self.now_ms();
        self.with_group(group_id, false, GroupError::UnknownMemberId, |g| {
            Ok(members
                .iter()
                .map(|(member, instance)| g.leave(&self.config, member, instance.as_deref(), now))
                .collect())
        })
    }

    /// OffsetCommit: validates the committer and every offset, then makes the
    /// valid ones durable together. Blocks for the fsync. Returns one outcome per
    /// offset, in order.
    pub fn commit(
        &self,
        group_id: &str,
        committer: &Committer,
        offsets: Vec<OffsetCommit>,
        partition_exists: impl Fn(&str, i32) -> bool,
    ) -> Vec<std::result::Result<(), GroupError>> {
        let now = self.now_ms();
        let allowed = self.committer_allowed(group_id, committer, false);
        tracing::debug!(
            group = group_id,
            member = committer.member_id,
            generation = committer.generation,
            outcome = ?allowed,
            "offset commit"
        );
        self.commit_valid(allowed, offsets, partition_exists, |valid| {
            self.offsets.commit(group_id, valid, now)
        })
    }

    /// TxnOffsetCommit: as [`GroupCoordinator::commit`], but the offsets stay
    /// pending in the transaction of `producer_id` until
    /// [`GroupCoordinator::end_transaction`]. The caller has checked the
    /// producer against its transaction. As in Kafka, a committer naming no
    /// member and no generation is not checked against the group's members.
    pub fn txn_commit(
        &self,
        group_id: &str,
        producer_id: i64,
        committer: &Committer,
        offsets: Vec<OffsetCommit>,
        partition_exists: impl Fn(&str, i32) -> bool,
    ) -> Vec<std::result::Result<(), GroupError>> {
        let now = self.now_ms();
        let allowed = self.committer_allowed(group_id, committer, true);
        self.commit_valid(allowed, offsets, partition_exists, |valid| {
            self.offsets.txn_commit(group_id, producer_id, valid, now)
        })
    }

    /// The transaction of `producer_id` ended: its offsets pending for
    /// `group_id` are applied (`commit`) or dropped, durably. Blocks for the
    /// fsync; with nothing pending, writes nothing.
    pub fn end_transaction(&self, group_id: &str, producer_id: i64, commit: bool) -> Result<()> {
        self.offsets.txn_end(group_id, producer_id, commit, self.now_ms())
    }

    /// The partitions of `group_id` with offsets pending in an open
    /// transaction: OffsetFetch with `require_stable` answers
    /// UNSTABLE_OFFSET_COMMIT for them (KIP-447).
    pub fn unstable_partitions(&self, group_id: &str) -> std::collections::BTreeSet<(String, i32)> {
        self.offsets.pending_partitions(group_id)
    }

    /// Whether `committer` may commit offsets of `group_id` now.
    fn committer_allowed(
        &self,
        group_id: &str,
        committer: &Committer,
        transactional: bool,
    ) -> std::result::Result<(), GroupError> {
        self.with_any(group_id, true, |any| {
            if transactional && any.is_empty() {
                // No member to check against: a transaction's commit is
                // fenced by its producer's epoch. (After a restart this
                // broker knows no member, where Kafka still knows them.)
                return Ok(());
            }
            let simple = committer.generation < 0 && committer.member_id.is_empty();
            if simple {
                // Only a group that no consumer coordinates may be written this
                // way; to a group with members the committer is an unknown
                // member, as Kafka answers it. A transaction's commit is not
                // checked (Kafka's TxnOffsetCommit before KIP-447's fields).
                return if any.is_empty() || transactional {
                    Ok(())
                } else {
                    Err(GroupError::UnknownMemberId)
                };
            }
            let g = match any {
                // The generation is the member's epoch.
                AnyGroup::Consumer(c) => {
                    return c.check_member(
                        &committer.member_id,
                        committer.instance_id.as_deref(),
                        committer.generation,
                    );
                }
                AnyGroup::Classic(g) => g,
            };
            g.check_member(
                &committer.member_id,
                committer.instance_id.as_deref(),
                committer.generation,
            )?;
            if transactional {
                // Kafka checks a transaction's commit against the member and
                // generation only: refusing it during a rebalance would hold
                // the producer's transaction while its consumer, blocked in
                // the same application thread, cannot finish the rebalance.
                return Ok(());
            }
            match g.state {
                // A member of the current generation may still commit while the
                // group prepares a rebalance: consumers commit what they have
                // processed when told to give up their partitions.
                GroupState::Stable | GroupState::PreparingRebalance => Ok(()),
                GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
                GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            }
        })
    }

    /// Checks each offset, then stores the valid ones with `store`. Returns
    /// one outcome per offset, in order.
    fn commit_valid(
        &self,
        allowed: std::result::Result<(), GroupError>,
        offsets: Vec<OffsetCommit>,
        partition_exists: impl Fn(&str, i32) -> bool,
        store: impl FnOnce(&[OffsetCommit]) -> Result<()>,
    ) -> Vec<std::result::Result<(), GroupError>> {
        if let Err(e) = allowed {
            return offsets.iter().map(|_| Err(e.clone())).collect();
        }
        let mut outcomes = Vec::with_capacity(offsets.len());
        let mut valid = Vec::new();
        for o in offsets {
            let check = if o.metadata.len() > self.config.offset_metadata_bytes_max {
                Err(GroupError::OffsetMetadataTooLarge {
                    len: o.metadata.len(),
                    max: self.config.offset_metadata_bytes_max,
                })
            } else if !partition_exists(&o.topic, o.partition) {
                Err(GroupError::UnknownTopicOrPartition {
                    topic: o.topic.clone(),
                    partition: o.partition,
                })
            } else {
                Ok(())
            };
            if check.is_ok() {
                valid.push(o);
            }
            outcomes.push(check);
        }
        if !valid.is_empty()
            && let Err(e) = store(&valid)
        {
            let failed = GroupError::Storage(e.to_string());
            for o in outcomes.iter_mut().filter(|o| o.is_ok()) {
                *o = Err(failed.clone());
            }
        }
        outcomes
    }

    /// OffsetFetch: the committed offsets of `partitions`, or of every partition
    /// the group has committed for when `None`.
    pub fn fetch_offsets(&self, group_id: &str, partitions: Option<&[(String, i32)]>) -> Vec<CommittedPartition> {
        self.offsets.fetch(group_id, partitions)
    }

    /// ListGroups.
    pub fn list(&self) -> Vec<GroupListing> {
        lock(&self.groups)
            .values()
            .map(|any| match any {
                AnyGroup::Classic(g) => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state.name(),
                    group_type: any.kind(),
                    members: g.members.len(),
                },
                AnyGroup::Consumer(g) => GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: "consumer".to_owned(),
                    state: g.state_name(),
                    group_type: any.kind(),
                    members: g.members.values().filter(|m| !m.departed).count(),
                },
            })
            .collect()
    }

    /// DescribeGroups for one group; an unknown group is reported Dead, as Kafka
    /// does. A consumer-protocol group with members is not a classic group.
    pub fn describe(&self, group_id: &str) -> std::result::Result<GroupDescription, GroupError> {
        let groups = lock(&self.groups);
        Ok(match groups.get(group_id) {
            Some(AnyGroup::Consumer(g)) if !g.is_empty() => {
                return Err(GroupError::WrongGroupType {
                    group: group_id.to_owned(),
                    kind: "consumer",
                });
            }
            Some(AnyGroup::Consumer(g)) => GroupDescription {
                group_id: g.id.clone(),
                state: if g.dead { GroupState::Dead } else { GroupState::Empty },
                protocol_type: String::new(),
                protocol: String::new(),
                generation: 0,
                members: Vec::new(),
            },
            Some(AnyGroup::Classic(g)) => GroupDescription {
                group_id: g.id.clone(),
                state: g.state,
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                protocol: g.protocol.clone().unwrap_or_default(),
                generation: g.generation,
                members: g.summaries(),
            },
            None => GroupDescription {
                group_id: group_id.to_owned(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                generation: -1,
                members: Vec::new(),
            },
        })
    }

    /// DeleteGroups: an empty group and its offsets. The group is marked Dead
    /// while its offsets are deleted (joins are told to retry), so the fsync runs
    /// without the coordinator's lock.
    pub fn delete_group(&self, group_id: &str) -> std::result::Result<(), GroupError> {
        {
            let mut groups = lock(&self.groups);
            match groups.get_mut(group_id) {
                None => return Err(GroupError::GroupIdNotFound),
                Some(g) if g.is_dead() => return Err(GroupError::GroupIdNotFound),
                Some(g) if !g.is_empty() => return Err(GroupError::NonEmptyGroup),
                Some(g) => g.set_dead(true),
            }
        }
        let outcome = self.offsets.delete_group(group_id, self.now_ms());
        let mut groups = lock(&self.groups);
        match outcome {
            Ok(()) => {
                groups.remove(group_id);
                Ok(())
            }
            Err(e) => {
                if let Some(g) = groups.get_mut(group_id) {
                    g.set_dead(false);
                }
                Err(GroupError::Storage(e.to_string()))
            }
        }
    }

    /// Deletes every group's offsets of a deleted topic, so that a topic created
    /// again under the name starts with none.
    pub fn delete_topic_offsets(&self, topic: &str) -> Result<()> {
        self.offsets.delete_topic(topic, self.now_ms())
    }

    /// Topics some group has committed offsets for.
    pub fn topics_with_offsets(&self) -> Vec<String> {
        self.offsets.topics()
    }

    /// OffsetDelete: offsets of partitions the group does not consume. Only an
    /// empty group's offsets can be deleted here; an active group's members may
    /// be consuming any of its partitions. The check and the (fsynced) deletion
    /// are not atomic: a member joining in between finds the offsets gone, as if
    /// the deletion had come just before it.
    pub fn delete_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> std::result::Result<(), GroupError> {
        match lock(&self.groups).get(group_id) {
            None => return Err(GroupError::GroupIdNotFound),
            Some(g) if g.is_dead() => return Err(GroupError::GroupIdNotFound),
            Some(g) if !g.is_empty() => return Err(GroupError::GroupSubscribedToTopic),
            Some(_) => {}
        }
        self.offsets
            .delete(group_id, partitions, self.now_ms())
            .map_err(|e| GroupError::Storage(e.to_string()))
    }

    /// Time passes: sessions expire, join phases end, empty groups' offsets
    /// expire, and the offsets log is compacted when it has grown.
    pub fn tick(&self, topics: &dyn Fn(&str) -> Option<TopicMeta>) {
        let now = self.now_ms();
        let mut expired = Vec::new();
        {
            let mut groups = lock(&self.groups);
            for any in groups.values_mut() {
                match any {
                    AnyGroup::Classic(g) => g.tick(&self.config, now),
                    AnyGroup::Consumer(g) => {
                        g.tick(&self.config, topics, now);
                    }
                }
                let idle = now - any.empty_since_ms();
                if any.is_empty()
                    && !any.is_dead()
                    && idle >= i64::try_from(self.config.offsets_retention_ms).unwrap_or(i64::MAX)
                {
                    expired.push(any.id().to_owned());
                }
            }
            for id in &expired {
                groups.remove(id);
            }
        }
        for id in expired {
            tracing::info!(group = %id, "group empty past offsets retention: its offsets are deleted");
            if let Err(e) = self.offsets.delete_group(&id, now) {
                tracing::error!(group = %id, error = %e, "deleting expired offsets failed");
            }
        }
        if let Err(e) = self.offsets.tick(now) {
            tracing::error!(error = %e, "housekeeping of the offsets log failed");
        }
    }

    /// Closes the offsets log cleanly.
    pub fn close(&self) {
        self.offsets.close();
    }
}

#[cfg(test)]
mod consumer_tests;
#[cfg(test)]
mod tests;
