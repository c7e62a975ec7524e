//! One consumer group under the classic protocol: its members, generation and
//! the rebalance state machine.
//!
//! ```text
//!            join (first member)           all known members joined,
//!   Empty ------------------------> Preparing ------------------------> Completing
//!     ^        (after the initial      ^  |     or rebalance timeout        |
//!     |         rebalance delay)       |  |                                 | leader's SyncGroup
//!     |                                |  +--- last member gone ---> Empty  v
//!     +------- last member leaves -----+-------- join, leave, expiry --- Stable
//! ```
//!
//! Everything here is plain data and takes the time as a parameter; nothing
//! sleeps or reads a clock. Responses that Kafka delays (JoinGroup until the
//! join phase ends, SyncGroup until the leader's assignment arrives) are
//! one-shot channels completed by a later call or by [`Group::tick`].

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{GroupConfig, GroupError, JoinRequest, Joined, MemberSummary};

/// Kafka's group states, as DescribeGroups and ListGroups name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

pub(crate) type JoinReply = oneshot::Sender<Result<Joined, GroupError>>;
pub(crate) type SyncReply = oneshot::Sender<Result<Bytes, GroupError>>;

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: u64,
    pub(crate) rebalance_timeout_ms: u64,
    /// `(protocol name, metadata)` in the member's order of preference.
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    /// Time of the last heartbeat, join or sync.
    pub(crate) last_seen_ms: i64,
    pub(crate) awaiting_join: Option<JoinReply>,
    pub(crate) awaiting_sync: Option<SyncReply>,
    /// Joined since the current rebalance began.
    pub(crate) joined: bool,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    /// By member id.
    pub(crate) members: BTreeMap<String, Member>,
    /// Static members: instance id to member id.
    pub(crate) instances: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and until when they may
    /// come back with them.
    pub(crate) pending: BTreeMap<String, i64>,
    /// When the join phase of the current rebalance ends at the latest.
    pub(crate) join_deadline_ms: i64,
    /// The current join phase waits for its deadline even when every member has
    /// joined: the group was empty, and more members are likely on their way
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    pub(crate) initial_delay: bool,
    /// When the group became empty (for offset expiry).
    pub(crate) empty_since_ms: i64,
}

impl Group {
    pub(crate) fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            instances: BTreeMap::new(),
            pending: BTreeMap::new(),
            join_deadline_ms: 0,
            initial_delay: false,
            empty_since_ms: now_ms,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// JoinGroup. Returns a receiver for the (possibly delayed) answer.
    pub(crate) fn join(
        &mut self,
        config: &GroupConfig,
        request: JoinRequest,
        new_member_id: impl FnOnce() -> String,
        now_ms: i64,
    ) -> oneshot::Receiver<Result<Joined, GroupError>> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.check_join(config, &request) {
            let _ = tx.send(Err(e));
            return rx;
        }
        if request.member_id.is_empty() {
            self.join_new(config, request, new_member_id(), tx, now_ms);
        } else {
            self.join_known(config, request, tx, now_ms);
        }
        rx
    }

    fn check_join(&self, config: &GroupConfig, r: &JoinRequest) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let session = ms(r.session_timeout_ms);
        if !(config.session_timeout_ms_min..=config.session_timeout_ms_max).contains(&session) {
            return Err(GroupError::InvalidSessionTimeout {
                got: r.session_timeout_ms,
                min: config.session_timeout_ms_min,
                max: config.session_timeout_ms_max,
            });
        }
        if r.protocol_type.is_empty() || r.protocols.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if !self.is_empty() {
            let same_type = self.protocol_type.as_deref() == Some(r.protocol_type.as_str());
            // A known member may change its own protocols; it is checked against
            // the others when the join phase ends.
            let others_ok = self
                .members
                .values()
                .filter(|m| m.id != r.member_id)
                .all(|m| r.protocols.iter().any(|(p, _)| m.protocols.iter().any(|(q, _)| q == p)));
            if !same_type || !others_ok {
                return Err(GroupError::InconsistentGroupProtocol);
            }
        }
        Ok(())
    }

    fn join_new(&mut self, config: &GroupConfig, r: JoinRequest, member_id: String, tx: JoinReply, now_ms: i64) {
        if let Some(instance) = r.group_instance_id.clone() {
            if let Some(old_id) = self.instances.get(&instance).cloned() {
                self.replace_static_member(config, r, &old_id, member_id, tx, now_ms);
                return;
            }
        } else if r.require_known_member_id {
            // KIP-394: the member must come back with this id, so that a client
            // that lost the answer does not leave a ghost member behind.
            self.pending
                .insert(member_id.clone(), now_ms + i64::from(r.session_timeout_ms));
            let _ = tx.send(Err(GroupError::MemberIdRequired(member_id)));
            return;
        }
        if self.members.len() >= config.group_members_max {
            let _ = tx.send(Err(GroupError::GroupMaxSizeReached));
            return;
        }
        self.add_member(config, r, member_id, tx, now_ms);
    }

    fn join_known(&mut self, config: &GroupConfig, r: JoinRequest, tx: JoinReply, now_ms: i64) {
        if self.pending.remove(&r.member_id).is_some() {
            if self.members.len() >= config.group_members_max {
                let _ = tx.send(Err(GroupError::GroupMaxSizeReached));
                return;
            }
            let id = r.member_id.clone();
            self.add_member(config, r, id, tx, now_ms);
            return;
        }
        if let Err(e) = self.check_instance(&r.member_id, r.group_instance_id.as_deref()) {
            let _ = tx.send(Err(e));
            return;
        }
        let is_leader = self.is_leader(&r.member_id);
        let Some(member) = self.members.get_mut(&r.member_id) else {
            let _ = tx.send(Err(GroupError::UnknownMemberId));
            return;
        };
        member.last_seen_ms = now_ms;
        if let Some(earlier) = member.awaiting_join.take() {
            // A second JoinGroup before the first was answered: the newer wins.
            let _ = earlier.send(Err(GroupError::RebalanceInProgress));
        }
        let unchanged = member.protocols == r.protocols;
        member.protocols = r.protocols;
        member.session_timeout_ms = ms(r.session_timeout_ms);
        member.rebalance_timeout_ms = ms(r.rebalance_timeout_ms);
        match self.state {
            GroupState::PreparingRebalance => {
                member.awaiting_join = Some(tx);
                member.joined = true;
                self.maybe_complete_join(now_ms);
            }
            // A repeated join with nothing new (the member may have missed the
            // answer): the current generation stands. A leader rejoining a stable
            // group asks for a rebalance (its topics' partitions may have
            // changed), as in Kafka.
            GroupState::CompletingRebalance if unchanged => {
                let _ = tx.send(Ok(self.joined_reply(&r.member_id)));
            }
            GroupState::Stable if unchanged && !is_leader => {
                let _ = tx.send(Ok(self.joined_reply(&r.member_id)));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.awaiting_join = Some(tx);
                member.joined = true;
                self.prepare_rebalance(config, now_ms);
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(Err(GroupError::UnknownMemberId));
            }
        }
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// A static member's known instance id must go with its current member id.
    pub(crate) fn check_instance(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        if let Some(instance) = instance_id
            && let Some(current) = self.instances.get(instance)
            && current != member_id
        {
            return Err(GroupError::FencedInstanceId);
        }
        Ok(())
    }

    fn add_member(&mut self, config: &GroupConfig, r: JoinRequest, member_id: String, tx: JoinReply, now_ms: i64) {
        if self.is_empty() {
            self.protocol_type = Some(r.protocol_type.clone());
        }
        if let Some(instance) = &r.group_instance_id {
            self.instances.insert(instance.clone(), member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                instance_id: r.group_instance_id,
                client_id: r.client_id,
                client_host: r.client_host,
                session_timeout_ms: ms(r.session_timeout_ms),
                rebalance_timeout_ms: ms(r.rebalance_timeout_ms),
                protocols: r.protocols,
                assignment: Bytes::new(),
                last_seen_ms: now_ms,
                awaiting_join: Some(tx),
                awaiting_sync: None,
                joined: true,
            },
        );
        self.prepare_rebalance(config, now_ms);
    }

    /// A static member rejoining with a new member id: the old id is fenced. If
    /// the group is stable and nothing changed, it gets the old assignment back
    /// without a rebalance (KIP-345).
    fn replace_static_member(
        &mut self,
        config: &GroupConfig,
        r: JoinRequest,
        old_id: &str,
        new_id: String,
        tx: JoinReply,
        now_ms: i64,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            self.instances
                .remove(r.group_instance_id.as_deref().unwrap_or_default());
            self.add_member(config, r, new_id, tx, now_ms);
            return;
        };
        if let Some(waiting) = member.awaiting_join.take() {
            let _ = waiting.send(Err(GroupError::FencedInstanceId));
        }
        if let Some(waiting) = member.awaiting_sync.take() {
            let _ = waiting.send(Err(GroupError::FencedInstanceId));
        }
        let unchanged = member.protocols == r.protocols;
        member.id = new_id.clone();
        member.last_seen_ms = now_ms;
        member.client_id = r.client_id;
        member.client_host = r.client_host;
        member.session_timeout_ms = ms(r.session_timeout_ms);
        member.rebalance_timeout_ms = ms(r.rebalance_timeout_ms);
        member.protocols = r.protocols;
        if let Some(instance) = &member.instance_id {
            self.instances.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        let stable = self.state == GroupState::Stable;
        self.members.insert(new_id.clone(), member);
        if stable && unchanged {
            let _ = tx.send(Ok(self.joined_reply(&new_id)));
            return;
        }
        if let Some(m) = self.members.get_mut(&new_id) {
            m.awaiting_join = Some(tx);
            m.joined = true;
        }
        self.prepare_rebalance(config, now_ms);
    }

    /// Starts a rebalance (or keeps the current one going): every member must
    /// join again within the longest rebalance timeout. Then, as Kafka's
    /// `prepareRebalance` does, the join phase ends at once if every member has
    /// already joined: a member alone in its group that rejoins (a changed
    /// subscription, a leader's rejoin) does not wait out its rebalance timeout.
    /// Only a group that was empty waits, for the initial rebalance delay.
    fn prepare_rebalance(&mut self, config: &GroupConfig, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            self.start_rebalance(config, now_ms);
        }
        self.maybe_complete_join(now_ms);
    }

    /// Enters PreparingRebalance: the old generation's pending syncs fail, the
    /// join deadline is set, members not already waiting must join again.
    fn start_rebalance(&mut self, config: &GroupConfig, now_ms: i64) {
        // Anyone waiting for an assignment of the old generation must rejoin.
        for m in self.members.values_mut() {
            if let Some(waiting) = m.awaiting_sync.take() {
                let _ = waiting.send(Err(GroupError::RebalanceInProgress));
            }
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        let delay = if self.state == GroupState::Empty {
            config.initial_rebalance_delay_ms.min(timeout)
        } else {
            timeout
        };
        self.join_deadline_ms = now_ms + i64::try_from(delay).unwrap_or(i64::MAX);
        self.initial_delay = self.state == GroupState::Empty && config.initial_rebalance_delay_ms > 0;
        self.state = GroupState::PreparingRebalance;
        for m in self.members.values_mut() {
            if m.awaiting_join.is_none() {
                m.joined = false;
            }
        }
    }

    /// Ends the join phase if every member has joined (and no initial delay is
    /// running).
    fn maybe_complete_join(&mut self, now_ms: i64) {
        if self.state == GroupState::PreparingRebalance
            && !self.initial_delay
            && self.members.values().all(|m| m.awaiting_join.is_some())
        {
            self.complete_join(now_ms);
        }
    }

    /// Ends the join phase: members that did not join are removed, a new
    /// generation starts, the leader gets every member's metadata.
    fn complete_join(&mut self, now_ms: i64) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        self.initial_delay = false;
        if self.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.empty_since_ms = now_ms;
            return;
        }
        self.protocol = self.choose_protocol();
        if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let reply = self.joined_reply(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_seen_ms = now_ms;
                m.assignment = Bytes::new();
                if let Some(waiting) = m.awaiting_join.take() {
                    let _ = waiting.send(Ok(reply));
                }
            }
        }
    }

    /// The protocol every member supports that most members prefer (each member
    /// votes for its first choice among those all support), as Kafka picks it.
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(p, _)| p)
            .filter(|p| self.members.values().all(|m| m.protocols.iter().any(|(q, _)| q == *p)))
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((p, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p))
                && let Some(v) = votes.iter_mut().find(|(_, c)| *c == p)
            {
                v.0 += 1;
            }
        }
        // Most votes; ties go to the first member's preference.
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes.iter().find(|(n, _)| *n == best).map(|(_, p)| (*p).clone())
    }

    /// The JoinGroup answer for `member_id` in the current generation.
    pub(crate) fn joined_reply(&self, member_id: &str) -> Joined {
        let protocol = self.protocol.clone();
        let is_leader = self.is_leader(member_id);
        let members = if is_leader {
            // The leader computes the assignments: it gets every member's
            // metadata, and no assignment yet.
            self.summaries()
                .into_iter()
                .map(|m| MemberSummary {
                    assignment: Bytes::new(),
                    ..m
                })
                .collect()
        } else {
            Vec::new()
        };
        Joined {
            generation: self.generation,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.unwrap_or_default(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members,
        }
    }

    /// Checks that `member_id` is a member of generation `generation`.
    pub(crate) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_instance(member_id, instance_id)?;
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                got: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    /// SyncGroup. The leader's call carries every member's assignment.
    pub(crate) fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> oneshot::Receiver<Result<Bytes, GroupError>> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            let _ = tx.send(Err(e));
            return rx;
        }
        let is_leader = self.is_leader(member_id);
        let state = self.state;
        let Some(member) = self.members.get_mut(member_id) else {
            let _ = tx.send(Err(GroupError::UnknownMemberId));
            return rx;
        };
        member.last_seen_ms = now_ms;
        match state {
            GroupState::PreparingRebalance => {
                let _ = tx.send(Err(GroupError::RebalanceInProgress));
            }
            GroupState::Stable => {
                let _ = tx.send(Ok(member.assignment.clone()));
            }
            GroupState::CompletingRebalance => {
                member.awaiting_sync = Some(tx);
                if is_leader {
                    let mut given: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                        if let Some(waiting) = m.awaiting_sync.take() {
                            let _ = waiting.send(Ok(m.assignment.clone()));
                        }
                    }
                    self.state = GroupState::Stable;
                }
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(Err(GroupError::UnknownMemberId));
            }
        }
        rx
    }

    /// Heartbeat: keeps the member's session alive and tells it when to rejoin.
    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        self.check_instance(member_id, instance_id)?;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        member.last_seen_ms = now_ms;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                got: generation,
                current: self.generation,
            });
        }
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for a static
    /// member that does not know its member id).
    pub(crate) fn leave(
        &mut self,
        config: &GroupConfig,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let id = match instance_id {
            Some(instance) => {
                let current = self.instances.get(instance).ok_or(GroupError::UnknownMemberId)?.clone();
                if !member_id.is_empty() && member_id != current {
                    return Err(GroupError::FencedInstanceId);
                }
                current
            }
            None => member_id.to_owned(),
        };
        if self.pending.remove(&id).is_some() {
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.remove_member(&id);
        self.after_departure(config, now_ms);
        Ok(())
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(instance) = &m.instance_id {
                self.instances.remove(instance);
            }
            if let Some(waiting) = m.awaiting_join.take() {
                let _ = waiting.send(Err(GroupError::UnknownMemberId));
            }
            if let Some(waiting) = m.awaiting_sync.take() {
                let _ = waiting.send(Err(GroupError::UnknownMemberId));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// After members left or expired: an empty group rests, any other rebalances.
    fn after_departure(&mut self, config: &GroupConfig, now_ms: i64) {
        if self.is_empty() && self.state != GroupState::PreparingRebalance {
            self.state = GroupState::Empty;
            self.generation = self.generation.wrapping_add(1).max(1);
            self.protocol = None;
            self.leader = None;
            self.empty_since_ms = now_ms;
            return;
        }
        // A join phase under way may now be complete; otherwise one starts.
        self.prepare_rebalance(config, now_ms);
    }

    /// Time passes: sessions expire, the join phase ends at its deadline, and
    /// member ids handed out but never used are forgotten.
    pub(crate) fn tick(&mut self, config: &GroupConfig, now_ms: i64) {
        self.pending.retain(|_, until| *until > now_ms);
        let expired: Vec<String> = self
            .members
            .values()
            // A member waiting for its JoinGroup answer is bound by the join
            // deadline instead.
            .filter(|m| m.awaiting_join.is_none())
            .filter(|m| now_ms - m.last_seen_ms >= i64::try_from(m.session_timeout_ms).unwrap_or(i64::MAX))
            .map(|m| m.id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "member's session expired");
                self.remove_member(id);
            }
            self.after_departure(config, now_ms);
        }
        if self.state == GroupState::PreparingRebalance && now_ms >= self.join_deadline_ms {
            self.complete_join(now_ms);
        }
    }

    /// What DescribeGroups reports.
    pub(crate) fn summaries(&self) -> Vec<MemberSummary> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| MemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect()
    }
}

/// A timeout from the wire, negative values as 0.
fn ms(v: i32) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
