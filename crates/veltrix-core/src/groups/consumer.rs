//! One consumer group under the consumer protocol of KIP-848: the broker
//! assigns partitions, and members converge on the assignment one heartbeat at
//! a time.
//!
//! The group has an epoch, bumped whenever what the assignment depends on
//! changes: members joining or leaving, subscriptions, the assignor, the
//! partition counts of subscribed topics. Each bump computes a new target
//! assignment at once (the assignors are plain functions), so the assignment
//! epoch always equals the group epoch.
//!
//! A member reconciles towards its target in two steps, so that no partition
//! is ever owned by two members:
//!
//! 1. partitions it owns but its target does not are revoked: its assignment
//!    shrinks, its epoch stays, and the partitions stay reserved for it until a
//!    heartbeat reports them gone (or its rebalance timeout passes, which fences
//!    it out of the group);
//! 2. then its epoch moves to the assignment epoch and it receives the target
//!    partitions that nobody owns. Partitions still being revoked by another
//!    member follow on a later heartbeat, once released.
//!
//! Everything here is plain data and takes the time as a parameter.

use std::collections::{BTreeMap, BTreeSet};

use super::{ConsumerAssignor, GroupConfig, GroupError};
use crate::topic::TopicId;

/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// A subscribed topic as the assignors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: TopicId,
    pub partitions: u32,
}

/// A ConsumerGroupHeartbeat request, in the engine's terms. `None` fields did
/// not change since the member's previous heartbeat.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    /// May be empty when joining: the coordinator then names the member.
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves for now (a static member that will be
    /// back), anything else is the epoch the member is at.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub owned: Option<Vec<(TopicId, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the member may not know it.
    pub assignment: Option<Assignment>,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    /// `Empty`, `Reconciling`, `Stable` or `Dead`.
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

#[derive(Debug)]
pub(crate) struct ConsumerMember {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) epoch: i32,
    pub(crate) previous_epoch: i32,
    pub(crate) rebalance_timeout_ms: u64,
    pub(crate) subscribed: BTreeSet<String>,
    pub(crate) assignor: Option<String>,
    /// What the member owns and has been told it owns.
    pub(crate) assigned: Assignment,
    /// Taken from the member, not yet confirmed given up: still its own.
    pub(crate) revoking: Assignment,
    /// The member is fenced if `revoking` is not confirmed by then.
    pub(crate) revoke_deadline_ms: i64,
    pub(crate) last_seen_ms: i64,
    /// A static member that left for now (epoch -2): its assignment waits for
    /// it until its session expires.
    pub(crate) departed: bool,
}

#[derive(Debug)]
pub(crate) struct ConsumerGroup {
    pub(crate) id: String,
    pub(crate) epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    /// Static members: instance id to member id.
    pub(crate) instances: BTreeMap<String, String>,
    /// Each member's target assignment for `assignment_epoch`.
    pub(crate) targets: BTreeMap<String, Assignment>,
    /// The assignor of the current target.
    pub(crate) assignor: ConsumerAssignor,
    /// Subscribed topics as last resolved; a change bumps the epoch.
    pub(crate) metadata: BTreeMap<String, TopicMeta>,
    /// Every owned partition (assigned or being revoked) and its owner.
    pub(crate) owners: BTreeMap<(TopicId, i32), String>,
    pub(crate) empty_since_ms: i64,
    pub(crate) dead: bool,
}

fn ms(v: i32) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A member's epoch and assignment after a reconciliation step.
struct Reconciled {
    epoch: i32,
    assignment: Assignment,
}

fn is_subset(part: &[(TopicId, Vec<i32>)], of: &Assignment) -> bool {
    part.iter()
        .all(|(t, ps)| ps.iter().all(|p| of.get(t).is_some_and(|s| s.contains(p))))
}

fn owned_set(owned: &[(TopicId, Vec<i32>)]) -> BTreeSet<(TopicId, i32)> {
    owned
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect()
}

fn flatten(a: &Assignment) -> impl Iterator<Item = (TopicId, i32)> + '_ {
    a.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn insert(a: &mut Assignment, t: TopicId, p: i32) {
    a.entry(t).or_default().insert(p);
}

fn remove(a: &mut Assignment, t: &TopicId, p: i32) {
    if let Some(set) = a.get_mut(t) {
        set.remove(&p);
        if set.is_empty() {
            a.remove(t);
        }
    }
}

impl ConsumerGroup {
    pub(crate) fn new(id: &str, now_ms: i64, assignor: ConsumerAssignor) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_owned(),
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            instances: BTreeMap::new(),
            targets: BTreeMap::new(),
            assignor,
            metadata: BTreeMap::new(),
            owners: BTreeMap::new(),
            empty_since_ms: now_ms,
            dead: false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn state_name(&self) -> &'static str {
        if self.dead {
            "Dead"
        } else if self.is_empty() {
            "Empty"
        } else if self.members.values().any(|m| {
            m.epoch != self.assignment_epoch
                || !m.revoking.is_empty()
                || self.targets.get(&m.id).is_some_and(|t| *t != m.assigned)
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// One heartbeat. `new_member_id` names a member that joins without an id;
    /// `topics` resolves a topic name.
    pub(crate) fn heartbeat(
        &mut self,
        config: &GroupConfig,
        r: ConsumerHeartbeat,
        new_member_id: impl FnOnce() -> String,
        topics: &dyn Fn(&str) -> Option<TopicMeta>,
        now_ms: i64,
    ) -> Result<ConsumerHeartbeatReply, GroupError> {
        if let Some(regex) = r.subscribed_topic_regex.as_deref().filter(|r| !r.is_empty()) {
            return Err(GroupError::InvalidRequest(format!(
                "subscribing by regular expression ({regex}) is not supported; subscribe to topic names"
            )));
        }
        if let Some(name) = &r.server_assignor
            && ConsumerAssignor::parse(name).is_none()
        {
            return Err(GroupError::UnsupportedAssignor(name.clone()));
        }
        let interval = i32::try_from(config.consumer_heartbeat_interval_ms).unwrap_or(i32::MAX);
        match r.member_epoch {
            -1 => {
                let id = self.leaving_member(&r)?;
                self.remove_member(&id);
                self.bump(config, topics, now_ms);
                Ok(ConsumerHeartbeatReply {
                    member_id: id,
                    member_epoch: -1,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                })
            }
            -2 => {
                if r.instance_id.is_none() {
                    return Err(GroupError::InvalidRequest(
                        "only a static member (with an instance id) can leave with epoch -2".into(),
                    ));
                }
                let id = self.leaving_member(&r)?;
                if let Some(m) = self.members.get_mut(&id) {
                    m.departed = true;
                    m.last_seen_ms = now_ms;
                }
                Ok(ConsumerHeartbeatReply {
                    member_id: id,
                    member_epoch: -2,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                })
            }
            0 => {
                if r.rebalance_timeout_ms <= 0 {
                    return Err(GroupError::InvalidRequest(
                        "a joining member must give its rebalance timeout".into(),
                    ));
                }
                if r.subscribed_topic_names.is_none() {
                    return Err(GroupError::InvalidRequest(
                        "a joining member must give its subscription".into(),
                    ));
                }
                let id = self.join(config, r, new_member_id, now_ms)?;
                self.bump(config, topics, now_ms);
                let Reconciled { epoch, assignment } = self.reconcile(&id, None, now_ms);
                Ok(ConsumerHeartbeatReply {
                    member_id: id,
                    member_epoch: epoch,
                    heartbeat_interval_ms: interval,
                    assignment: Some(assignment),
                })
            }
            epoch if epoch > 0 => self.beat(config, r, topics, now_ms, interval),
            other => Err(GroupError::InvalidRequest(format!("member epoch {other} is not valid"))),
        }
    }

    /// The member a leave request names, checked against its instance id.
    fn leaving_member(&self, r: &ConsumerHeartbeat) -> Result<String, GroupError> {
        if let Some(instance) = &r.instance_id {
            let current = self.instances.get(instance).ok_or(GroupError::UnknownMemberId)?;
            if !r.member_id.is_empty() && *current != r.member_id {
                return Err(GroupError::FencedInstanceId);
            }
            return Ok(current.clone());
        }
        if self.members.contains_key(&r.member_id) {
            Ok(r.member_id.clone())
        } else {
            Err(GroupError::UnknownMemberId)
        }
    }

    /// Epoch 0: a new member, a member starting over, or a static member coming
    /// back. Returns the member's id.
    fn join(
        &mut self,
        config: &GroupConfig,
        r: ConsumerHeartbeat,
        new_member_id: impl FnOnce() -> String,
        now_ms: i64,
    ) -> Result<String, GroupError> {
        let id = if r.member_id.is_empty() {
            new_member_id()
        } else {
            r.member_id.clone()
        };
        if let Some(instance) = &r.instance_id
            && let Some(old_id) = self.instances.get(instance).cloned()
        {
            let departed = self.members.get(&old_id).is_some_and(|m| m.departed);
            if old_id != id && !departed {
                return Err(GroupError::UnreleasedInstanceId);
            }
            if departed {
                // The static member is back: it takes over its assignment and
                // epoch under its new id, without a rebalance (KIP-345).
                self.rename_member(&old_id, &id);
                let m = self.members.get_mut(&id).expect("renamed");
                m.departed = false;
                m.last_seen_ms = now_ms;
                m.client_id = r.client_id;
                m.client_host = r.client_host;
                m.rack_id = r.rack_id;
                m.rebalance_timeout_ms = ms(r.rebalance_timeout_ms);
                let subscribed: BTreeSet<String> = r.subscribed_topic_names.unwrap_or_default().into_iter().collect();
                if subscribed != m.subscribed || r.server_assignor != m.assignor {
                    m.subscribed = subscribed;
                    m.assignor = r.server_assignor;
                    self.epoch = self.epoch.wrapping_add(1).max(1);
                }
                return Ok(id);
            }
        }
        // A member that starts over has given up everything it owned.
        if self.members.contains_key(&id) {
            self.remove_member(&id);
        } else if self.members.len() >= config.group_members_max {
            return Err(GroupError::GroupMaxSizeReached);
        }
        if let Some(instance) = &r.instance_id {
            self.instances.insert(instance.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            ConsumerMember {
                id: id.clone(),
                instance_id: r.instance_id,
                rack_id: r.rack_id,
                client_id: r.client_id,
                client_host: r.client_host,
                epoch: 0,
                previous_epoch: 0,
                rebalance_timeout_ms: ms(r.rebalance_timeout_ms),
                subscribed: r.subscribed_topic_names.unwrap_or_default().into_iter().collect(),
                assignor: r.server_assignor,
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                revoke_deadline_ms: 0,
                last_seen_ms: now_ms,
                departed: false,
            },
        );
        self.epoch = self.epoch.wrapping_add(1).max(1);
        Ok(id)
    }

    fn rename_member(&mut self, old_id: &str, new_id: &str) {
        if old_id == new_id {
            return;
        }
        if let Some(mut m) = self.members.remove(old_id) {
            m.id = new_id.to_owned();
            if let Some(instance) = &m.instance_id {
                self.instances.insert(instance.clone(), new_id.to_owned());
            }
            self.members.insert(new_id.to_owned(), m);
        }
        if let Some(t) = self.targets.remove(old_id) {
            self.targets.insert(new_id.to_owned(), t);
        }
        for owner in self.owners.values_mut() {
            if owner == old_id {
                *owner = new_id.to_owned();
            }
        }
    }

    /// A heartbeat of a member at a positive epoch.
    fn beat(
        &mut self,
        config: &GroupConfig,
        r: ConsumerHeartbeat,
        topics: &dyn Fn(&str) -> Option<TopicMeta>,
        now_ms: i64,
        interval: i32,
    ) -> Result<ConsumerHeartbeatReply, GroupError> {
        if let Some(instance) = &r.instance_id
            && self
                .instances
                .get(instance)
                .is_some_and(|current| *current != r.member_id)
        {
            return Err(GroupError::FencedInstanceId);
        }
        let Some(m) = self.members.get_mut(&r.member_id).filter(|m| !m.departed) else {
            return Err(GroupError::UnknownMemberId);
        };
        // The previous epoch is accepted while the member owns no more than it
        // is assigned: the answer that moved it on may have been lost.
        let current = r.member_epoch == m.epoch;
        let behind =
            r.member_epoch == m.previous_epoch && r.owned.as_deref().is_some_and(|owned| is_subset(owned, &m.assigned));
        if !current && !behind {
            return Err(GroupError::FencedMemberEpoch {
                got: r.member_epoch,
                current: m.epoch,
            });
        }
        m.last_seen_ms = now_ms;
        if r.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = ms(r.rebalance_timeout_ms);
        }
        if r.rack_id.is_some() {
            m.rack_id = r.rack_id.clone();
        }
        let mut changed = false;
        if let Some(names) = r.subscribed_topic_names {
            let subscribed: BTreeSet<String> = names.into_iter().collect();
            if subscribed != m.subscribed {
                m.subscribed = subscribed;
                changed = true;
            }
        }
        if r.server_assignor.is_some() && r.server_assignor != m.assignor {
            m.assignor = r.server_assignor;
            changed = true;
        }
        if changed {
            self.epoch = self.epoch.wrapping_add(1).max(1);
        }
        self.bump(config, topics, now_ms);
        let id = r.member_id;
        let before = self.members.get(&id).map(|m| (m.epoch, m.assigned.clone()));
        let Reconciled { epoch, assignment } = self.reconcile(&id, r.owned.as_deref(), now_ms);
        let owned_differs = r
            .owned
            .as_deref()
            .is_some_and(|owned| owned_set(owned) != flatten(&assignment).collect());
        let send = before != Some((epoch, assignment.clone())) || r.member_epoch != epoch || owned_differs;
        Ok(ConsumerHeartbeatReply {
            member_id: id,
            member_epoch: epoch,
            heartbeat_interval_ms: interval,
            assignment: send.then_some(assignment),
        })
    }

    /// Re-resolves the subscribed topics and, if the epoch moved or the topics
    /// changed, computes a new target assignment.
    fn bump(&mut self, config: &GroupConfig, topics: &dyn Fn(&str) -> Option<TopicMeta>, now_ms: i64) {
        let subscribed: BTreeSet<&String> = self.members.values().flat_map(|m| m.subscribed.iter()).collect();
        let metadata: BTreeMap<String, TopicMeta> = subscribed
            .into_iter()
            .filter_map(|name| topics(name).map(|meta| (name.clone(), meta)))
            .collect();
        if metadata != self.metadata {
            self.metadata = metadata;
            self.epoch = self.epoch.wrapping_add(1).max(1);
        }
        if self.is_empty() {
            self.targets.clear();
            self.assignment_epoch = self.epoch;
            return;
        }
        if self.assignment_epoch == self.epoch {
            return;
        }
        self.assignor = self.choose_assignor(config);
        let members: Vec<(&str, &BTreeSet<String>, Option<&str>)> = self
            .members
            .values()
            .map(|m| (m.id.as_str(), &m.subscribed, m.instance_id.as_deref()))
            .collect();
        self.targets = match self.assignor {
            ConsumerAssignor::Uniform => assign_uniform(&members, &self.metadata, &self.targets),
            ConsumerAssignor::Range => assign_range(&members, &self.metadata),
        };
        self.assignment_epoch = self.epoch;
        tracing::debug!(group = %self.id, epoch = self.epoch, now_ms, "new target assignment");
    }

    /// The assignor most members ask for; the broker's default when none does.
    fn choose_assignor(&self, config: &GroupConfig) -> ConsumerAssignor {
        let mut votes: BTreeMap<ConsumerAssignor, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.assignor.as_deref().and_then(ConsumerAssignor::parse) {
                *votes.entry(a).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, n)| *n == best)
            .map(|(a, _)| a)
            .unwrap_or(config.consumer_assignor)
    }

    /// Moves member `id` one step towards its target. Returns its epoch and
    /// assignment.
    fn reconcile(&mut self, id: &str, owned: Option<&[(TopicId, Vec<i32>)]>, now_ms: i64) -> Reconciled {
        let target = self.targets.get(id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(id) else {
            return Reconciled {
                epoch: 0,
                assignment: Assignment::new(),
            };
        };
        if !m.revoking.is_empty()
            && let Some(owned) = owned
        {
            let still = owned_set(owned);
            if flatten(&m.revoking).all(|tp| !still.contains(&tp)) {
                for (t, p) in flatten(&m.revoking) {
                    self.owners.remove(&(t, p));
                }
                m.revoking.clear();
            }
        }
        if !m.revoking.is_empty() {
            return Reconciled {
                epoch: m.epoch,
                assignment: m.assigned.clone(),
            };
        }
        if m.epoch != assignment_epoch {
            let revoke: Vec<(TopicId, i32)> = flatten(&m.assigned)
                .filter(|(t, p)| !target.get(t).is_some_and(|s| s.contains(p)))
                .collect();
            if !revoke.is_empty() {
                for (t, p) in revoke {
                    remove(&mut m.assigned, &t, p);
                    insert(&mut m.revoking, t, p);
                }
                m.revoke_deadline_ms = now_ms + i64::try_from(m.rebalance_timeout_ms).unwrap_or(i64::MAX);
                return Reconciled {
                    epoch: m.epoch,
                    assignment: m.assigned.clone(),
                };
            }
            m.previous_epoch = m.epoch;
            m.epoch = assignment_epoch;
        }
        for (t, p) in flatten(&target) {
            if let std::collections::btree_map::Entry::Vacant(free) = self.owners.entry((t, p)) {
                free.insert(id.to_owned());
                insert(&mut m.assigned, t, p);
            }
        }
        Reconciled {
            epoch: m.epoch,
            assignment: m.assigned.clone(),
        }
    }

    /// Removes a member: everything it owned is free again.
    fn remove_member(&mut self, id: &str) {
        if let Some(m) = self.members.remove(id) {
            if let Some(instance) = &m.instance_id
                && self.instances.get(instance).is_some_and(|current| current == id)
            {
                self.instances.remove(instance);
            }
            for tp in flatten(&m.assigned).chain(flatten(&m.revoking)) {
                self.owners.remove(&tp);
            }
            self.epoch = self.epoch.wrapping_add(1).max(1);
        }
        self.targets.remove(id);
    }

    /// Checks that member `member_id` at `epoch` may commit offsets.
    pub(crate) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), GroupError> {
        if let Some(instance) = instance_id
            && self.instances.get(instance).is_some_and(|current| current != member_id)
        {
            return Err(GroupError::FencedInstanceId);
        }
        let Some(m) = self.members.get(member_id).filter(|m| !m.departed) else {
            return Err(GroupError::UnknownMemberId);
        };
        if m.epoch != epoch {
            return Err(GroupError::StaleMemberEpoch {
                got: epoch,
                current: m.epoch,
            });
        }
        Ok(())
    }

    /// Time passes: members whose session expired, or who kept partitions past
    /// their rebalance timeout, are removed.
    pub(crate) fn tick(
        &mut self,
        config: &GroupConfig,
        topics: &dyn Fn(&str) -> Option<TopicMeta>,
        now_ms: i64,
    ) -> Vec<String> {
        let session = i64::try_from(config.consumer_session_timeout_ms).unwrap_or(i64::MAX);
        let gone: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if now_ms - m.last_seen_ms >= session {
                    Some((m.id.clone(), "session expired"))
                } else if !m.revoking.is_empty() && now_ms >= m.revoke_deadline_ms {
                    Some((m.id.clone(), "partitions not given up within the rebalance timeout"))
                } else {
                    None
                }
            })
            .collect();
        if gone.is_empty() {
            return Vec::new();
        }
        for (id, why) in &gone {
            tracing::info!(group = %self.id, member = %id, why, "member removed from the group");
            self.remove_member(id);
        }
        if self.is_empty() {
            self.empty_since_ms = now_ms;
        }
        self.bump(config, topics, now_ms);
        gone.into_iter().map(|(id, _)| id).collect()
    }

    pub(crate) fn describe(&self) -> ConsumerGroupDescription {
        ConsumerGroupDescription {
            group_id: self.id.clone(),
            state: self.state_name(),
            group_epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.name().to_owned(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed.iter().cloned().collect(),
                    assignment: m.assigned.clone(),
                    target_assignment: self.targets.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// After a leave through the coordinator: the group may have become empty.
    pub(crate) fn note_departure(&mut self, now_ms: i64) {
        if self.is_empty() {
            self.empty_since_ms = now_ms;
        }
    }
}

/// The `uniform` assignor: every member gets as many partitions as the others,
/// give or take one, and keeps as many of its current target's as it can.
/// Members with different subscriptions are balanced as well as their
/// subscriptions allow.
pub(crate) fn assign_uniform(
    members: &[(&str, &BTreeSet<String>, Option<&str>)],
    metadata: &BTreeMap<String, TopicMeta>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let subscribers = |topic: &str| -> Vec<usize> {
        members
            .iter()
            .enumerate()
            .filter(|(_, (_, subs, _))| subs.contains(topic))
            .map(|(i, _)| i)
            .collect()
    };
    // Every partition to assign, with the members that may take it.
    let mut partitions: Vec<(TopicId, i32, Vec<usize>)> = Vec::new();
    for (name, meta) in metadata {
        let eligible = subscribers(name);
        if eligible.is_empty() {
            continue;
        }
        for p in 0..i32::try_from(meta.partitions).unwrap_or(i32::MAX) {
            partitions.push((meta.id, p, eligible.clone()));
        }
    }
    let n = members.len().max(1);
    let cap = partitions.len().div_ceil(n);
    let mut counts = vec![0usize; members.len()];
    let mut owner: BTreeMap<(TopicId, i32), usize> = BTreeMap::new();
    // Keep what each member had, up to its fair share.
    for (i, (id, _, _)) in members.iter().enumerate() {
        let Some(before) = previous.get(*id) else { continue };
        for (t, p) in flatten(before) {
            let still = partitions
                .iter()
                .any(|(pt, pp, eligible)| *pt == t && *pp == p && eligible.contains(&i));
            if still && counts[i] < cap && !owner.contains_key(&(t, p)) {
                owner.insert((t, p), i);
                counts[i] += 1;
            }
        }
    }
    // The rest goes to the eligible member with the fewest.
    for (t, p, eligible) in &partitions {
        if owner.contains_key(&(*t, *p)) {
            continue;
        }
        if let Some(&i) = eligible.iter().min_by_key(|&&i| (counts[i], i)) {
            owner.insert((*t, *p), i);
            counts[i] += 1;
        }
    }
    // Even out: move a partition from the fullest member to the emptiest one
    // that may take it, while they differ by more than one. Every move lowers
    // the spread, so this ends.
    for _ in 0..partitions.len() {
        let mut moved = false;
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(counts[i]), i));
        'from: for &from in &order {
            for &to in order.iter().rev() {
                if counts[from] <= counts[to] + 1 {
                    continue;
                }
                let candidate = partitions
                    .iter()
                    .find(|(t, p, eligible)| owner.get(&(*t, *p)) == Some(&from) && eligible.contains(&to));
                if let Some((t, p, _)) = candidate {
                    owner.insert((*t, *p), to);
                    counts[from] -= 1;
                    counts[to] += 1;
                    moved = true;
                    break 'from;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(id, _, _)| ((*id).to_owned(), Assignment::new()))
        .collect();
    for ((t, p), i) in owner {
        if let Some(a) = out.get_mut(members[i].0) {
            insert(a, t, p);
        }
    }
    out
}

/// The `range` assignor: for each topic, its subscribers (by instance id, else
/// member id) get consecutive ranges of its partitions, the first ones one more
/// when they do not divide evenly. Co-partitioned topics line up.
pub(crate) fn assign_range(
    members: &[(&str, &BTreeSet<String>, Option<&str>)],
    metadata: &BTreeMap<String, TopicMeta>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(id, _, _)| ((*id).to_owned(), Assignment::new()))
        .collect();
    for (name, meta) in metadata {
        let mut subs: Vec<(&str, &str)> = members
            .iter()
            .filter(|(_, s, _)| s.contains(name))
            .map(|(id, _, instance)| (instance.unwrap_or(id), *id))
            .collect();
        if subs.is_empty() {
            continue;
        }
        subs.sort();
        let count = meta.partitions as usize;
        let each = count / subs.len();
        let extra = count % subs.len();
        let mut next = 0usize;
        for (k, (_, id)) in subs.iter().enumerate() {
            let take = each + usize::from(k < extra);
            let a = out.get_mut(*id).expect("every member has an entry");
            for p in next..next + take {
                insert(a, meta.id, i32::try_from(p).unwrap_or(i32::MAX));
            }
            next += take;
        }
    }
    out
}
