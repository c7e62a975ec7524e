//! Administering share groups' state: what DescribeShareGroupOffsets,
//! AlterShareGroupOffsets, DeleteShareGroupOffsets and DeleteGroups do, and
//! the removal of a deleted topic's state.
//!
//! Each change is decided and applied under the groups' lock, so no member
//! can join between the check that a group has none and the change; it is
//! one stored change, so a request that is refused or fails changes nothing;
//! and it is answered once the store says it is durable. The lock is held
//! while the change is written (not while it is waited for), which can make
//! heartbeats wait for one write: these requests are rare.

use std::collections::{BTreeMap, BTreeSet};

use super::{Key, ShareChange, ShareCoordinator, ShareError, ShareGroup, lock, topic_hex};
use crate::topic::TopicId;

/// Bytes of a share group id: the id is written in every stored change of
/// its group's state.
pub const GROUP_ID_BYTES_MAX: usize = 255;

/// Topic-partitions one AlterShareGroupOffsets or DescribeShareGroupOffsets
/// request may name (all its groups together), and topics one
/// DeleteShareGroupOffsets request may name. An alteration is one stored
/// change, which at this count stays far below the store's largest record
/// (a test checks it).
pub const OFFSETS_PARTITIONS_MAX: usize = 10_000;

/// A share-partition's start offset (SPSO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStart {
    pub topic: TopicId,
    pub partition: i32,
    pub start: i64,
}

/// Whether `group` can name a share group: not empty, at most
/// [`GROUP_ID_BYTES_MAX`] bytes.
pub fn check_group_id(group: &str) -> Result<(), ShareError> {
    if group.is_empty() {
        return Err(ShareError::InvalidGroupId);
    }
    if group.len() > GROUP_ID_BYTES_MAX {
        return Err(ShareError::GroupIdTooLong(group.len()));
    }
    Ok(())
}

/// The first key of `group`'s share-partitions in key order.
fn first_key(group: &str) -> Key {
    Key {
        group: group.to_owned(),
        topic: [0; 16],
        partition: i32::MIN,
    }
}

impl ShareCoordinator {
    /// The SPSO of each of `group`'s share-partitions, by topic id and
    /// partition: from memory, or from an on-demand store, which holds
    /// those other brokers serve too.
    pub fn start_offsets(&self, group: &str) -> Result<Vec<PartitionStart>, ShareError> {
        if let Some(stored) = self.store().stored_starts(group)? {
            let mut starts: Vec<PartitionStart> = stored
                .into_iter()
                .filter_map(|(topic, partition, start)| {
                    Some(PartitionStart {
                        topic: super::topic_from_hex(&topic)?,
                        partition,
                        start,
                    })
                })
                .collect();
            starts.sort_by_key(|s| (s.topic, s.partition));
            return Ok(starts);
        }
        Ok(lock(&self.partitions)
            .range(first_key(group)..)
            .take_while(|(k, _)| k.group == group)
            .map(|(k, p)| PartitionStart {
                topic: k.topic,
                partition: k.partition,
                start: lock(p).start(),
            })
            .collect())
    }

    /// AlterShareGroupOffsets: durably moves the start of `group`'s
    /// share-partitions (creating those it has no state for) to the given
    /// offsets; records before a start are done, records from it on are
    /// delivered afresh. The group must have no members; a group that does
    /// not exist is created, as Kafka does, to set where it will start.
    /// Offsets are the caller's to check against the logs.
    pub fn alter_start_offsets(&self, group: &str, starts: &[PartitionStart]) -> Result<(), ShareError> {
        check_group_id(group)?;
        if starts.len() > OFFSETS_PARTITIONS_MAX {
            return Err(ShareError::InvalidRequest(format!(
                "at most {OFFSETS_PARTITIONS_MAX} partitions per request, this one names {}",
                starts.len()
            )));
        }
        if let Some(s) = starts.iter().find(|s| s.start < 0) {
            return Err(ShareError::InvalidRequest(format!(
                "start offset {} is negative",
                s.start
            )));
        }
        self.change_group(|groups| {
            match groups.get(group) {
                Some(g) if !g.members.is_empty() => return Err(ShareError::NonEmptyGroup),
                Some(_) => {}
                None => self.check_room(groups, group)?,
            }
            Ok((!starts.is_empty()).then(|| ShareChange::Starts {
                group: group.to_owned(),
                starts: starts
                    .iter()
                    .map(|s| (topic_hex(&s.topic), s.partition, s.start))
                    .collect(),
            }))
        })
    }

    /// DeleteShareGroupOffsets: durably forgets the state of `group`'s
    /// share-partitions of `topics`; the group must exist and have no
    /// members. Returns the topics that had state (the others are Kafka's
    /// "no offset information to delete").
    pub fn delete_start_offsets(&self, group: &str, topics: &[TopicId]) -> Result<BTreeSet<TopicId>, ShareError> {
        check_group_id(group)?;
        if topics.len() > OFFSETS_PARTITIONS_MAX {
            return Err(ShareError::InvalidRequest(format!(
                "at most {OFFSETS_PARTITIONS_MAX} topics per request, this one names {}",
                topics.len()
            )));
        }
        let wanted: BTreeSet<TopicId> = topics.iter().copied().collect();
        // Read before the groups' lock: an on-demand store is asked, and
        // no share-partition of the group can appear meanwhile but by a
        // member, which the check below refuses.
        let states = self.start_offsets(group)?;
        let mut deleted = BTreeSet::new();
        self.change_group(|groups| {
            match groups.get(group) {
                // Known to the store alone: its coordinator moved here.
                None if self.store().on_demand() && !states.is_empty() => {}
                _ => check_empty(groups, group)?,
            }
            let partitions: Vec<(String, i32)> = states
                .iter()
                .filter(|s| wanted.contains(&s.topic))
                .map(|s| {
                    deleted.insert(s.topic);
                    (topic_hex(&s.topic), s.partition)
                })
                .collect();
            Ok((!partitions.is_empty()).then(|| ShareChange::DeletePartitions {
                group: group.to_owned(),
                partitions,
            }))
        })?;
        Ok(deleted)
    }

    /// DeleteGroups: durably deletes `group` (which must have no members)
    /// with its state and settings.
    pub fn delete_group(&self, group: &str) -> Result<(), ShareError> {
        check_group_id(group)?;
        self.change_group(|groups| {
            check_empty(groups, group)?;
            Ok(Some(ShareChange::DeleteGroup {
                group: group.to_owned(),
            }))
        })
    }

    /// Durably deletes every group's state of a deleted topic.
    pub fn delete_topic(&self, topic: &TopicId) -> Result<(), ShareError> {
        if !lock(&self.partitions).keys().any(|k| k.topic == *topic) {
            return Ok(());
        }
        let change = ShareChange::DeleteTopic {
            topic: topic_hex(topic),
        };
        self.write_then_apply(change, |_| Ok(()))
    }

    /// Stores `change` and applies it, if `check` allows it given the groups.
    pub(super) fn write_then_apply(
        &self,
        change: ShareChange,
        check: impl FnOnce(&BTreeMap<String, ShareGroup>) -> Result<(), ShareError>,
    ) -> Result<(), ShareError> {
        self.change_group(|groups| check(groups).map(|()| Some(change)))
    }

    /// The change `decide` makes of the groups (none, or an error that
    /// changes nothing), stored, applied, and waited for until durable.
    fn change_group(
        &self,
        decide: impl FnOnce(&BTreeMap<String, ShareGroup>) -> Result<Option<ShareChange>, ShareError>,
    ) -> Result<(), ShareError> {
        let ticket = {
            // Writers before groups, as compaction takes them.
            let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
            let mut groups = lock(&self.groups);
            let Some(change) = decide(&groups)? else {
                return Ok(());
            };
            let ticket = self.store().append(&change, self.now_ms())?;
            self.apply(&mut groups, change);
            ticket
        };
        self.store().wait_durable(ticket)?;
        Ok(())
    }

    /// Whether there is room for `group` if it is new: at most `groups_max`.
    pub(super) fn check_room(&self, groups: &BTreeMap<String, ShareGroup>, group: &str) -> Result<(), ShareError> {
        if !groups.contains_key(group) && groups.len() >= self.config.groups_max {
            return Err(ShareError::TooManyGroups(self.config.groups_max));
        }
        Ok(())
    }
}

/// A group that exists and has no members.
fn check_empty(groups: &BTreeMap<String, ShareGroup>, group: &str) -> Result<(), ShareError> {
    match groups.get(group) {
        None => Err(ShareError::GroupIdNotFound),
        Some(g) if !g.members.is_empty() => Err(ShareError::NonEmptyGroup),
        Some(_) => Ok(()),
    }
}
