//! Resetting a group's committed offsets on a topic, planned before done:
//! to the log start, the end, the first record at or after a time, or an
//! offset (brought within the log). The plan shows each partition's
//! committed offset, the new one, and whether the wanted one had to move;
//! executing it commits the new offsets as an administrator's commit
//! (generation -1, no member), which the coordinator accepts only while no
//! consumer is in the group, as Kafka does. The HTTP API (and through it
//! the console) calls these; `veltrix group reset-offsets` does the same
//! over the Kafka protocol.

use serde::Serialize;

use crate::groups::{Committer, GroupError, OffsetCommit};
use crate::{Broker, CoreError, Result};

/// Where offsets are reset to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    /// The first record stamped at or after this time (ms since the epoch),
    /// or the end if none is.
    Time(i64),
    Offset(i64),
}

/// One partition of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetStep {
    pub partition: i32,
    /// The offset committed now, if any.
    pub current: Option<i64>,
    pub new: i64,
    /// The log's start and end when planned.
    pub log_start: i64,
    pub log_end: i64,
    /// The wanted offset was outside the log and was brought within it.
    pub clamped: bool,
}

/// Why a reset was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    #[error(
        "group `{group}` has {members} active member(s); stop them first: offsets can be reset only while no consumer is in the group"
    )]
    Active { group: String, members: usize },
    #[error("partition {partition}: {error}")]
    Commit { partition: i32, error: GroupError },
}

impl Broker {
    /// What resetting `group`'s offsets of `topic` (its `partitions`, or all
    /// when empty) to `to` would commit. Changes nothing.
    pub fn plan_offset_reset(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
        to: ResetTo,
    ) -> Result<Vec<ResetStep>> {
        let t = self
            .topic(topic)
            .ok_or_else(|| CoreError::UnknownTopic(topic.to_owned()))?;
        let chosen: Vec<i32> = if partitions.is_empty() {
            t.partitions.iter().map(|p| p.index).collect()
        } else {
            partitions.to_vec()
        };
        let asked: Vec<(String, i32)> = chosen.iter().map(|p| (topic.to_owned(), *p)).collect();
        let committed = self.groups().fetch_offsets(group, Some(&asked));
        chosen
            .iter()
            .map(|&index| {
                let partition = self.partition(topic, index)?;
                let log = partition.log();
                let (start, end) = (log.log_start(), log.high_watermark());
                let wanted = match to {
                    ResetTo::Earliest => start,
                    ResetTo::Latest => end,
                    ResetTo::Time(ms) => log.offset_for_timestamp(ms)?.map_or(end, |hit| hit.offset),
                    ResetTo::Offset(o) => o,
                };
                let current = committed
                    .iter()
                    .find(|c| c.partition == index)
                    .and_then(|c| c.committed.as_ref())
                    .map(|c| c.offset);
                Ok(ResetStep {
                    partition: index,
                    current,
                    new: wanted.clamp(start, end),
                    log_start: start,
                    log_end: end,
                    clamped: !(start..=end).contains(&wanted),
                })
            })
            .collect()
    }

    /// Commits `plan`'s new offsets for `group` on `topic` in one commit
    /// (one fsync): refused while the group has members.
    pub fn execute_offset_reset(
        &self,
        group: &str,
        topic: &str,
        plan: &[ResetStep],
    ) -> std::result::Result<(), ResetError> {
        let members = self
            .groups()
            .list()
            .into_iter()
            .find(|g| g.group_id == group)
            .map_or(0, |g| g.members);
        if members > 0 {
            return Err(ResetError::Active {
                group: group.to_owned(),
                members,
            });
        }
        let admin = Committer {
            member_id: String::new(),
            instance_id: None,
            generation: -1,
        };
        let offsets = plan
            .iter()
            .map(|s| OffsetCommit {
                topic: topic.to_owned(),
                partition: s.partition,
                offset: s.new,
                leader_epoch: -1,
                metadata: String::new(),
            })
            .collect();
        let outcomes = self
            .groups()
            .commit(group, &admin, offsets, |t, p| self.partition(t, p).is_ok());
        for (step, outcome) in plan.iter().zip(outcomes) {
            if let Err(error) = outcome {
                return Err(match error {
                    GroupError::UnknownMemberId => ResetError::Active {
                        group: group.to_owned(),
                        members: 1,
                    },
                    error => ResetError::Commit {
                        partition: step.partition,
                        error,
                    },
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use veltrix_log::Env;
    use veltrix_log::sim::{SimClock, SimStorage};

    use super::*;
    use crate::groups::JoinRequest;
    use crate::records::{OwnedRecord, encode_batch};
    use crate::{BrokerConfig, TopicConfig};

    fn broker() -> Broker {
        let env = Env::new(
            Arc::new(SimStorage::new()),
            Arc::new(SimClock::new(1_700_000_000_000)),
            64,
        );
        let b = Broker::open(env, "/data", BrokerConfig::default()).unwrap();
        b.create_topic("t", Some(2), TopicConfig::default()).unwrap();
        let p = b.partition("t", 1).unwrap();
        let records: Vec<_> = (0..5)
            .map(|i| OwnedRecord {
                value: Some(vec![i as u8]),
                timestamp_ms: 1_000 + i,
                ..OwnedRecord::default()
            })
            .collect();
        let appended = p.append(&encode_batch(&records)).unwrap();
        p.commit(appended.next_offset).unwrap();
        b
    }

    #[test]
    fn a_plan_changes_nothing_and_its_execution_commits_it() {
        let b = broker();
        let plan = b.plan_offset_reset("g", "t", &[], ResetTo::Latest).unwrap();
        let news: Vec<(i32, Option<i64>, i64)> = plan.iter().map(|s| (s.partition, s.current, s.new)).collect();
        assert_eq!(news, [(0, None, 0), (1, None, 5)]);
        assert!(b.groups().fetch_offsets("g", None).is_empty());
        b.execute_offset_reset("g", "t", &plan).unwrap();
        let by_time = b.plan_offset_reset("g", "t", &[1], ResetTo::Time(1_003)).unwrap();
        assert_eq!(
            (by_time[0].current, by_time[0].new),
            (Some(5), 0),
            "the batch holding 1003 starts at 0"
        );
        let clamped = b.plan_offset_reset("g", "t", &[1], ResetTo::Offset(-3)).unwrap();
        assert_eq!((clamped[0].new, clamped[0].clamped), (0, true));
        assert!(b.plan_offset_reset("g", "nope", &[], ResetTo::Latest).is_err());
        assert!(b.plan_offset_reset("g", "t", &[7], ResetTo::Latest).is_err());
    }

    #[test]
    fn a_group_with_members_is_not_reset() {
        let b = broker();
        let joined = b.groups().join(JoinRequest {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::new())],
            require_known_member_id: false,
        });
        drop(joined);
        let plan = b.plan_offset_reset("g", "t", &[], ResetTo::Earliest).unwrap();
        assert!(matches!(
            b.execute_offset_reset("g", "t", &plan),
            Err(ResetError::Active { members: 1, .. })
        ));
        assert!(b.groups().fetch_offsets("g", None).is_empty());
    }
}
