//! Share-group membership: ShareGroupHeartbeat and the assignment.
//!
//! A member picks its own id (a UUID) and joins with epoch 0; it leaves with
//! epoch -1. The coordinator assigns it partitions of the topics it
//! subscribes to, at once: unlike a consumer group, a partition needs no
//! revoking before another member gets it, since records, not partitions,
//! are what members hold. Per topic, with `m` subscribed members and `p`
//! partitions: when `m <= p` each partition goes to one member (round robin),
//! otherwise each member gets one partition and partitions are shared.
//!
//! A member's epoch changes only in an answer to that member (when its
//! assignment changed), so a request carries either its current epoch or,
//! if that answer was lost, the one before; anything else is fenced.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{ShareCoordinator, ShareError, ShareGroup, lock};
use crate::groups::TopicMeta;
use crate::topic::TopicId;

/// A ShareGroupHeartbeat request, in the engine's terms.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareHeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment: set when it changed (or on join).
    pub assignment: Option<Vec<(TopicId, Vec<i32>)>>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Member {
    epoch: i32,
    previous_epoch: i32,
    subscribed: Vec<String>,
    /// What the member was last told.
    assignment: Vec<(TopicId, Vec<i32>)>,
    last_seen_ms: i64,
    pub(super) client_id: String,
    client_host: String,
}

/// A member as describe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    pub assignment: Vec<(TopicId, Vec<i32>)>,
}

impl Member {
    pub(super) fn describe(&self, id: &str) -> MemberDescription {
        MemberDescription {
            member_id: id.to_owned(),
            member_epoch: self.epoch,
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed: self.subscribed.clone(),
            assignment: self.assignment.clone(),
        }
    }
}

/// Member ids up to this long are accepted (Kafka's are 22-character UUIDs).
pub const MEMBER_ID_BYTES_MAX: usize = 128;
/// Topics one member may subscribe to.
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;

/// The target assignment of every member of `group`.
fn target(
    members: &BTreeMap<String, Member>,
    topics: &dyn Fn(&str) -> Option<TopicMeta>,
) -> BTreeMap<String, Vec<(TopicId, Vec<i32>)>> {
    let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, m) in members {
        for t in &m.subscribed {
            by_topic.entry(t.as_str()).or_default().push(id.as_str());
        }
    }
    let mut out: BTreeMap<String, Vec<(TopicId, Vec<i32>)>> =
        members.keys().map(|id| (id.clone(), Vec::new())).collect();
    for (topic, ids) in by_topic {
        let Some(meta) = topics(topic) else { continue };
        let p = meta.partitions as usize;
        if p == 0 {
            continue;
        }
        let m = ids.len();
        let mut per: Vec<Vec<i32>> = vec![Vec::new(); m];
        if m <= p {
            for part in 0..p {
                per[part % m].push(part as i32);
            }
        } else {
            for (i, list) in per.iter_mut().enumerate() {
                list.push((i % p) as i32);
            }
        }
        for (id, parts) in ids.into_iter().zip(per) {
            if let Some(list) = out.get_mut(id) {
                list.push((meta.id, parts));
            }
        }
    }
    out
}

/// The checks a heartbeat passes before it touches any group.
fn validate(hb: &ShareHeartbeat) -> Result<(), ShareError> {
    super::check_group_id(&hb.group)?;
    if hb.member_id.is_empty() || hb.member_id.len() > MEMBER_ID_BYTES_MAX {
        return Err(ShareError::InvalidRequest(format!(
            "the member id must be 1 to {MEMBER_ID_BYTES_MAX} bytes"
        )));
    }
    if hb.subscribed.as_ref().is_some_and(|s| s.len() > SUBSCRIBED_TOPICS_MAX) {
        return Err(ShareError::InvalidRequest(format!(
            "at most {SUBSCRIBED_TOPICS_MAX} topics may be subscribed to"
        )));
    }
    Ok(())
}

impl ShareGroup {
    /// Adds the member (epoch 0, at most `members_max` of them) or notes
    /// that it is alive, with its new subscription if it sent one.
    fn join_or_stay(&mut self, hb: &ShareHeartbeat, now_ms: i64, members_max: usize) -> Result<(), ShareError> {
        match self.members.get_mut(&hb.member_id) {
            None if hb.member_epoch != 0 => Err(ShareError::UnknownMemberId),
            None => {
                if self.members.len() >= members_max {
                    return Err(ShareError::GroupMaxSizeReached(members_max));
                }
                let Some(subscribed) = hb.subscribed.clone() else {
                    return Err(ShareError::InvalidRequest(
                        "a joining member must name the topics it subscribes to".into(),
                    ));
                };
                self.members.insert(
                    hb.member_id.clone(),
                    Member {
                        subscribed,
                        client_id: hb.client_id.clone(),
                        client_host: hb.client_host.clone(),
                        last_seen_ms: now_ms,
                        epoch: 0,
                        previous_epoch: 0,
                        assignment: Vec::new(),
                    },
                );
                Ok(())
            }
            Some(m) => {
                if hb.member_epoch != 0 && hb.member_epoch != m.epoch && hb.member_epoch != m.previous_epoch {
                    return Err(ShareError::FencedMemberEpoch {
                        got: hb.member_epoch,
                        current: m.epoch,
                    });
                }
                if let Some(s) = &hb.subscribed {
                    m.subscribed = s.clone();
                }
                m.last_seen_ms = now_ms;
                Ok(())
            }
        }
    }

    /// Recomputes the target assignment (a new group epoch when any member's
    /// changes) and answers the member that sent `hb`: its assignment, with a
    /// new epoch, when it joined or its assignment changed.
    fn reconcile(
        &mut self,
        hb: ShareHeartbeat,
        topics: &dyn Fn(&str) -> Option<TopicMeta>,
        heartbeat_interval_ms: i32,
    ) -> ShareHeartbeatReply {
        let targets = target(&self.members, topics);
        let changed_any = self
            .members
            .iter()
            .any(|(id, m)| targets.get(id).is_some_and(|t| *t != m.assignment));
        if changed_any {
            self.epoch = self.epoch.wrapping_add(1).max(1);
        }
        let group_epoch = self.epoch.max(1);
        let m = self.members.get_mut(&hb.member_id).expect("joined or found before");
        let mine = targets.get(&hb.member_id).cloned().unwrap_or_default();
        let send = hb.member_epoch == 0 || mine != m.assignment || m.epoch == 0;
        if send {
            m.previous_epoch = if hb.member_epoch == 0 { 0 } else { m.epoch };
            m.epoch = group_epoch;
            m.assignment = mine.clone();
        }
        ShareHeartbeatReply {
            member_id: hb.member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms,
            assignment: send.then_some(mine),
        }
    }
}

impl ShareCoordinator {
    /// ShareGroupHeartbeat: join, stay, leave.
    pub fn heartbeat(
        &self,
        hb: ShareHeartbeat,
        topics: &dyn Fn(&str) -> Option<TopicMeta>,
    ) -> Result<ShareHeartbeatReply, ShareError> {
        validate(&hb)?;
        let interval = i32::try_from(self.config.heartbeat_interval_ms).unwrap_or(i32::MAX);
        if hb.member_epoch == -1 {
            return self.leave(hb, interval);
        }
        let now = self.now_ms();
        let mut groups = lock(&self.groups);
        if !groups.contains_key(&hb.group) && groups.len() >= self.config.groups_max {
            return Err(ShareError::TooManyGroups(self.config.groups_max));
        }
        let defaults = self.config.defaults;
        let g = groups.entry(hb.group.clone()).or_insert_with(|| ShareGroup {
            settings: defaults,
            ..ShareGroup::default()
        });
        g.join_or_stay(&hb, now, self.config.group_members_max)?;
        Ok(g.reconcile(hb, topics, interval))
    }

    /// A member leaving (epoch -1): removed, and what it held released.
    fn leave(&self, hb: ShareHeartbeat, heartbeat_interval_ms: i32) -> Result<ShareHeartbeatReply, ShareError> {
        let removed = {
            let mut groups = lock(&self.groups);
            let g = groups.get_mut(&hb.group).ok_or(ShareError::UnknownMemberId)?;
            g.members.remove(&hb.member_id).is_some()
        };
        if removed {
            self.member_gone(&hb.group, &hb.member_id);
        }
        Ok(ShareHeartbeatReply {
            member_id: hb.member_id,
            member_epoch: -1,
            heartbeat_interval_ms,
            assignment: None,
        })
    }

    /// Removes members whose session timed out, releasing their records.
    pub(super) fn expire_members(&self, now_ms: i64) {
        let timeout = i64::try_from(self.config.session_timeout_ms).unwrap_or(i64::MAX);
        let mut gone = Vec::new();
        {
            let mut groups = lock(&self.groups);
            for (group, g) in groups.iter_mut() {
                g.members.retain(|id, m| {
                    let alive = now_ms.saturating_sub(m.last_seen_ms) < timeout;
                    if !alive {
                        gone.push((group.clone(), id.clone()));
                    }
                    alive
                });
            }
        }
        for (group, member) in gone {
            tracing::info!(group = %group, member = %member, "share-group member timed out");
            self.member_gone(&group, &member);
        }
    }

    /// A member left or timed out: its session closes and its records are
    /// released.
    fn member_gone(&self, group: &str, member: &str) {
        lock(&self.sessions).remove(&(group.to_owned(), member.to_owned()));
        self.release_member(group, member, None);
    }

    /// Releases what `member` holds in `group` (on `only` those
    /// share-partitions if given).
    pub(super) fn release_member(&self, group: &str, member: &str, only: Option<&[(TopicId, i32)]>) {
        let now = self.now_ms();
        let limits = self.limits(group);
        let partitions: Vec<(super::Key, Arc<std::sync::Mutex<super::SharePartition>>)> = lock(&self.partitions)
            .iter()
            .filter(|(k, _)| k.group == group && only.is_none_or(|o| o.contains(&(k.topic, k.partition))))
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        let mut released = 0;
        let mut ticket = None;
        {
            let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
            for (key, p) in partitions {
                let mut persist = Vec::new();
                let mut p = lock(&p);
                let n = p.release_owner(member, now, &limits, &mut persist);
                if n > 0 {
                    released += n;
                    match self.append_records(&key, &p, None, persist, now) {
                        Ok(t) => ticket = Some(t),
                        Err(e) => tracing::error!(error = %e, "storing share-group state"),
                    }
                }
            }
        }
        // Not waited for: a release that a crash takes back is a release
        // anyway (records acquired come back available on recovery).
        let _ = ticket;
        if released > 0 {
            self.wake();
        }
    }
}
