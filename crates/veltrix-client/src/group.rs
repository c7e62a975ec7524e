//! Consumer group administration: ListGroups, DescribeGroups (and
//! ConsumerGroupDescribe for groups of the KIP-848 consumer protocol),
//! OffsetFetch, OffsetCommit (from outside the group) and DeleteGroups.
//!
//! These requests go to the bootstrap broker like every other. A Veltrix broker
//! coordinates every group; a Kafka broker that does not coordinate the group
//! answers NOT_COORDINATOR, which is reported as such rather than followed.
//!
//! Offsets are committed the way an administrator (or a consumer that assigns
//! its own partitions) commits them: generation -1 and no member id. Brokers
//! accept such a commit only for a group with no active members; for an active
//! group they refuse it (Kafka with UNKNOWN_MEMBER_ID or
//! REBALANCE_IN_PROGRESS, Veltrix with ILLEGAL_GENERATION), which
//! [`is_active_group_error`] recognises.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest, OffsetFetchResponse, TopicName, consumer_group_describe_response,
    share_group_describe_response,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::topic_name;
use crate::connection::kafka_error;
use crate::consumer_protocol::TopicPartitions;
use crate::error::{ClientError, KafkaError, check};
use crate::{CONSUMER_PROTOCOL_TYPE, Client};

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// `consumer` for Kafka consumers; empty for a group that only stores
    /// offsets.
    pub protocol_type: String,
    /// `Stable`, `Empty`, ...; reported from ListGroups v4 on.
    pub state: Option<String>,
}

/// One group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`, or
    /// `Dead` (which brokers also report for a group they do not know).
    pub state: String,
    pub protocol_type: String,
    /// The chosen protocol, e.g. the assignor (`range`), once there is one.
    pub protocol: String,
    pub members: Vec<GroupMember>,
    /// `classic`, `consumer` for a group of the KIP-848 consumer protocol
    /// (whose `protocol` is the broker's assignor), or `share` for a share
    /// group (KIP-932).
    pub group_type: String,
}

/// The protocol type share groups are listed with.
pub const SHARE_PROTOCOL_TYPE: &str = "share";

/// A share-partition's start offset (SPSO): the oldest record of the
/// partition the share group has not yet acknowledged or archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStartOffset {
    pub topic: String,
    pub partition: i32,
    pub start_offset: i64,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    /// The static membership id (`group.instance.id`), from DescribeGroups v4.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's metadata for the chosen protocol; for consumers, its
    /// subscription ([`crate::decode_subscription`]).
    pub metadata: Bytes,
    /// What the leader assigned it; for consumers, partitions
    /// ([`crate::decode_assignment`]). Empty while none is known.
    pub assignment: Bytes,
    /// A consumer-protocol member's subscription and assignment, as the broker
    /// reports them (`metadata` and `assignment` are then empty).
    pub subscribed: Option<Vec<String>>,
    pub assigned: Option<Vec<TopicPartitions>>,
}

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// `None` when the group has committed nothing for the partition.
    pub offset: Option<i64>,
    /// The leader epoch stored with the offset (OffsetFetch v5 on), if any.
    pub leader_epoch: Option<i32>,
    /// The metadata string stored with the offset.
    pub metadata: Option<String>,
}

/// An offset to commit: the next record of `topic`'s `partition` to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetToCommit<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Whether a refused commit from outside the group means that the group has
/// active members (or is forming): the codes Kafka and Veltrix answer then.
pub fn is_active_group_error(e: &KafkaError) -> bool {
    matches!(
        e.name().as_str(),
        "UNKNOWN_MEMBER_ID" | "ILLEGAL_GENERATION" | "REBALANCE_IN_PROGRESS"
    )
}

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_owned()))
}

/// `(topic, partitions)` of `(topic, partition)` pairs, topics sorted.
fn by_topic<'a>(partitions: &[(&'a str, i32)]) -> BTreeMap<&'a str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        out.entry(topic).or_default().push(*partition);
    }
    out
}

/// `group`'s entry in an `api` answer that names groups, once its error is
/// checked (an error fails, in `context`). Each such answer has a type of its
/// own for an entry: `fields` reads its id, error code and error message.
fn group_entry<'a, G>(
    groups: &'a [G],
    group: &str,
    api: &str,
    fields: impl Fn(&G) -> (&GroupId, i16, Option<&StrBytes>),
    context: impl FnOnce() -> String,
) -> Result<&'a G, ClientError> {
    let g = groups
        .iter()
        .find(|g| fields(g).0.0.as_str() == group)
        .ok_or_else(|| ClientError::UnexpectedResponse(format!("{api} does not mention group `{group}`")))?;
    let (_, code, message) = fields(g);
    check(code, message.map(|m| m.as_str().to_owned()), context)?;
    Ok(g)
}

/// A group of the consumer protocol or a share group, as the broker describes
/// it, members still to add: the protocol type is the group's type and the
/// protocol is the broker's assignor.
fn reported_group(group: &str, group_type: &str, state: &StrBytes, assignor: &StrBytes) -> GroupDescription {
    GroupDescription {
        group_id: group.to_owned(),
        state: state.as_str().to_owned(),
        protocol_type: group_type.to_owned(),
        protocol: assignor.as_str().to_owned(),
        members: Vec::new(),
        group_type: group_type.to_owned(),
    }
}

/// A member of a consumer-protocol or share group, with no static membership
/// id. The broker reports its subscription and assignment itself, so there
/// are no metadata or assignment bytes.
fn reported_member(
    member_id: &StrBytes,
    client_id: &StrBytes,
    client_host: &StrBytes,
    subscribed: &[TopicName],
    assigned: Vec<TopicPartitions>,
) -> GroupMember {
    GroupMember {
        member_id: member_id.as_str().to_owned(),
        instance_id: None,
        client_id: client_id.as_str().to_owned(),
        client_host: client_host.as_str().to_owned(),
        metadata: Bytes::new(),
        assignment: Bytes::new(),
        subscribed: Some(subscribed.iter().map(|t| t.0.as_str().to_owned()).collect()),
        assigned: Some(assigned),
    }
}

/// An OffsetFetch request for `group`'s offsets of the `wanted` partitions of
/// each topic, or of every partition when `None`. From v8 a request names
/// groups in a list; before, it names one group.
fn offset_fetch_request(version: i16, group: &str, wanted: Option<&BTreeMap<&str, Vec<i32>>>) -> OffsetFetchRequest {
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        let topics = wanted.map(|w| {
            w.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        });
        request.groups = vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(topics),
        ];
    } else {
        request.group_id = group_id(group);
        request.topics = wanted.map(|w| {
            w.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        });
    }
    request
}

/// One partition of an OffsetFetch answer, as it came (-1 for none).
struct FetchedOffset {
    topic: String,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
    error_code: i16,
}

/// The partitions of `group` in an OffsetFetch answer of `version`; an error
/// for the whole group fails.
fn fetched_offsets(
    response: &OffsetFetchResponse,
    version: i16,
    group: &str,
) -> Result<Vec<FetchedOffset>, ClientError> {
    let context = || format!("fetching the committed offsets of group `{group}`");
    if version >= 8 {
        let g = response
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| ClientError::UnexpectedResponse(format!("OffsetFetch does not mention group `{group}`")))?;
        check(g.error_code, None, context)?;
        return Ok(g
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| FetchedOffset {
                    topic: t.name.0.as_str().to_owned(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.metadata.as_ref().map(|m| m.as_str().to_owned()),
                    error_code: p.error_code,
                })
            })
            .collect());
    }
    check(response.error_code, None, context)?;
    Ok(response
        .topics
        .iter()
        .flat_map(|t| {
            // The leader epoch exists from v5 on; the codec's default before
            // that is -1 too.
            t.partitions.iter().map(|p| FetchedOffset {
                topic: t.name.0.as_str().to_owned(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.metadata.as_ref().map(|m| m.as_str().to_owned()),
                error_code: p.error_code,
            })
        })
        .collect())
}

impl Client {
    /// Every group the broker coordinates.
    pub async fn list_groups(&mut self) -> Result<Vec<ListedGroup>, ClientError> {
        let version = self.connection.version(ApiKey::ListGroups)?;
        let response = self.connection.call(&ListGroupsRequest::default(), version).await?;
        check(response.error_code, None, || "listing groups".to_owned())?;
        Ok(response
            .groups
            .iter()
            .map(|g| ListedGroup {
                group_id: g.group_id.0.as_str().to_owned(),
                protocol_type: g.protocol_type.as_str().to_owned(),
                state: (version >= 4).then(|| g.group_state.as_str().to_owned()),
            })
            .collect())
    }

    /// The broker that coordinates `group`, as `HOST:PORT` (FindCoordinator
    /// v1 to v3): where its membership and descriptions are served.
    pub async fn find_coordinator(&mut self, group: &str) -> Result<String, ClientError> {
        use kafka_protocol::messages::FindCoordinatorRequest;
        let version = self.connection.version(ApiKey::FindCoordinator)?.min(3);
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        let r = self.connection.call(&request, version).await?;
        let message = r.error_message.as_ref().map(|m| m.as_str().to_owned());
        check(r.error_code, message, || {
            format!("finding the coordinator of group `{group}`")
        })?;
        Ok(format!("{}:{}", r.host.as_str(), r.port))
    }

    /// Describes the named groups, in the order given. An error for any group
    /// fails the call, naming the group.
    pub async fn describe_groups(&mut self, groups: &[&str]) -> Result<Vec<GroupDescription>, ClientError> {
        let version = self.connection.version(ApiKey::DescribeGroups)?;
        let request = DescribeGroupsRequest::default().with_groups(groups.iter().map(|g| group_id(g)).collect());
        let response = self.connection.call(&request, version).await?;
        groups
            .iter()
            .map(|id| {
                let g = group_entry(
                    &response.groups,
                    id,
                    "DescribeGroups",
                    |g| (&g.group_id, g.error_code, g.error_message.as_ref()),
                    || format!("describing group `{id}`"),
                )?;
                Ok(GroupDescription {
                    group_id: (*id).to_owned(),
                    state: g.group_state.as_str().to_owned(),
                    protocol_type: g.protocol_type.as_str().to_owned(),
                    protocol: g.protocol_data.as_str().to_owned(),
                    members: g
                        .members
                        .iter()
                        .map(|m| GroupMember {
                            member_id: m.member_id.as_str().to_owned(),
                            instance_id: m.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
                            client_id: m.client_id.as_str().to_owned(),
                            client_host: m.client_host.as_str().to_owned(),
                            metadata: m.member_metadata.clone(),
                            assignment: m.member_assignment.clone(),
                            subscribed: None,
                            assigned: None,
                        })
                        .collect(),
                    group_type: "classic".to_owned(),
                })
            })
            .collect()
    }

    /// Describes one group of any type: DescribeGroups, and when the broker
    /// answers that the group is not a classic one, ConsumerGroupDescribe,
    /// then ShareGroupDescribe.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        let mut described = match self.describe_groups(&[group]).await {
            Err(ClientError::Kafka { error, .. }) if error.name() == "GROUP_ID_NOT_FOUND" => {
                return match self.describe_consumer_group(group).await {
                    Err(ClientError::Kafka { error, .. }) if error.name() == "GROUP_ID_NOT_FOUND" => {
                        self.describe_share_group(group).await
                    }
                    other => other,
                };
            }
            other => other?,
        };
        described
            .pop()
            .ok_or_else(|| ClientError::UnexpectedResponse(format!("DescribeGroups does not mention group `{group}`")))
    }

    /// ShareGroupDescribe: a share group (KIP-932).
    pub async fn describe_share_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        use kafka_protocol::messages::ShareGroupDescribeRequest;
        let version = self.connection.version(ApiKey::ShareGroupDescribe)?;
        let request = ShareGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
        let response = self.connection.call(&request, version).await?;
        let g = group_entry(
            &response.groups,
            group,
            "ShareGroupDescribe",
            |g| (&g.group_id, g.error_code, g.error_message.as_ref()),
            || format!("describing share group `{group}`"),
        )?;
        let member = |m: &share_group_describe_response::Member| {
            let subscribed = &m.subscribed_topic_names;
            let assigned = m.assignment.topic_partitions.iter();
            let assigned = assigned.map(|tp| TopicPartitions::of(&tp.topic_name, &tp.partitions));
            reported_member(
                &m.member_id,
                &m.client_id,
                &m.client_host,
                subscribed,
                assigned.collect(),
            )
        };
        let mut described = reported_group(group, SHARE_PROTOCOL_TYPE, &g.group_state, &g.assignor_name);
        described.members = g.members.iter().map(member).collect();
        Ok(described)
    }

    /// DescribeShareGroupOffsets: the start offset (SPSO) of each of a share
    /// group's share-partitions, sorted by topic and partition. An error for
    /// the group or any partition fails the call, naming it.
    pub async fn share_start_offsets(&mut self, group: &str) -> Result<Vec<ShareStartOffset>, ClientError> {
        use kafka_protocol::messages::DescribeShareGroupOffsetsRequest;
        use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
        let version = self.connection.version(ApiKey::DescribeShareGroupOffsets)?;
        let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            // No topics named (null, not empty): every topic the group has state for.
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(None),
        ]);
        let response = self.connection.call(&request, version).await?;
        let g = group_entry(
            &response.groups,
            group,
            "DescribeShareGroupOffsets",
            |g| (&g.group_id, g.error_code, g.error_message.as_ref()),
            || format!("describing share group `{group}`'s offsets"),
        )?;
        let mut out = Vec::new();
        for t in &g.topics {
            let topic = t.topic_name.0.as_str();
            for p in &t.partitions {
                check(
                    p.error_code,
                    p.error_message.as_ref().map(|m| m.as_str().to_owned()),
                    || format!("share group `{group}`, {topic}/{}", p.partition_index),
                )?;
                out.push(ShareStartOffset {
                    topic: topic.to_owned(),
                    partition: p.partition_index,
                    start_offset: p.start_offset,
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// ConsumerGroupDescribe: a group of the KIP-848 consumer protocol.
    pub async fn describe_consumer_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        use kafka_protocol::messages::ConsumerGroupDescribeRequest;
        let version = self.connection.version(ApiKey::ConsumerGroupDescribe)?;
        let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
        let response = self.connection.call(&request, version).await?;
        let g = group_entry(
            &response.groups,
            group,
            "ConsumerGroupDescribe",
            |g| (&g.group_id, g.error_code, g.error_message.as_ref()),
            || format!("describing group `{group}`"),
        )?;
        let member = |m: &consumer_group_describe_response::Member| {
            let subscribed = &m.subscribed_topic_names;
            let assigned = m.assignment.topic_partitions.iter();
            let assigned = assigned.map(|tp| TopicPartitions::of(&tp.topic_name, &tp.partitions));
            GroupMember {
                instance_id: m.instance_id.as_ref().map(|i| i.as_str().to_owned()),
                ..reported_member(
                    &m.member_id,
                    &m.client_id,
                    &m.client_host,
                    subscribed,
                    assigned.collect(),
                )
            }
        };
        let mut described = reported_group(group, CONSUMER_PROTOCOL_TYPE, &g.group_state, &g.assignor_name);
        described.members = g.members.iter().map(member).collect();
        Ok(described)
    }

    /// The offsets `group` has committed for the given `(topic, partition)`s,
    /// or for every partition it has committed for when `None`; sorted by
    /// topic and partition. An error for the group or for any partition fails
    /// the call, naming it.
    pub async fn committed_offsets(
        &mut self,
        group: &str,
        partitions: Option<&[(&str, i32)]>,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let version = self.connection.version(ApiKey::OffsetFetch)?;
        let request = offset_fetch_request(version, group, partitions.map(by_topic).as_ref());
        let response = self.connection.call(&request, version).await?;
        let mut out = Vec::new();
        for row in fetched_offsets(&response, version, group)? {
            if let Some(error) = kafka_error(row.error_code, None) {
                return Err(ClientError::Kafka {
                    context: format!(
                        "fetching the committed offset of group `{group}` for topic `{}` partition {}",
                        row.topic, row.partition
                    ),
                    error,
                });
            }
            out.push(CommittedOffset {
                topic: row.topic,
                partition: row.partition,
                offset: (row.offset >= 0).then_some(row.offset),
                leader_epoch: (row.leader_epoch >= 0).then_some(row.leader_epoch),
                metadata: row.metadata,
            });
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        if let Some(wanted) = partitions {
            for (topic, partition) in wanted {
                if !out.iter().any(|c| c.topic == *topic && c.partition == *partition) {
                    return Err(ClientError::UnexpectedResponse(format!(
                        "OffsetFetch does not mention topic `{topic}` partition {partition}"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` for `group` from outside it (generation -1, no
    /// member id), as an administrator resetting offsets does. The broker
    /// accepts this only while the group has no active members; see
    /// [`is_active_group_error`]. If any partition is refused the call fails,
    /// naming the first refused one and how many were refused; the others may
    /// have been committed.
    pub async fn commit_offsets(&mut self, group: &str, offsets: &[OffsetToCommit<'_>]) -> Result<(), ClientError> {
        let version = self.connection.version(ApiKey::OffsetCommit)?;
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for o in offsets {
            topics.entry(o.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(o.partition)
                    .with_committed_offset(o.offset),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let response = self.connection.call(&request, version).await?;
        let mut refused = 0;
        let mut first_refused: Option<(&OffsetToCommit<'_>, KafkaError)> = None;
        for o in offsets {
            let code = response
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == o.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == o.partition)
                .map(|p| p.error_code)
                .ok_or_else(|| {
                    ClientError::UnexpectedResponse(format!(
                        "OffsetCommit does not mention topic `{}` partition {}",
                        o.topic, o.partition
                    ))
                })?;
            if let Some(e) = kafka_error(code, None) {
                refused += 1;
                first_refused.get_or_insert((o, e));
            }
        }
        let Some((first, error)) = first_refused else {
            return Ok(());
        };
        let context = if refused == offsets.len() {
            format!("committing offsets for group `{group}`")
        } else {
            format!(
                "committing offsets for group `{group}`: {refused} of {} partitions refused, the first topic `{}` partition {}",
                offsets.len(),
                first.topic,
                first.partition
            )
        };
        Err(ClientError::Kafka { context, error })
    }

    /// Deletes a group and its committed offsets. Brokers refuse while it has
    /// members (NON_EMPTY_GROUP) and for a group they do not know
    /// (GROUP_ID_NOT_FOUND).
    pub async fn delete_group(&mut self, group: &str) -> Result<(), ClientError> {
        let version = self.connection.version(ApiKey::DeleteGroups)?;
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        let response = self.connection.call(&request, version).await?;
        let result = response
            .results
            .iter()
            .find(|r| r.group_id.0.as_str() == group)
            .ok_or_else(|| ClientError::UnexpectedResponse(format!("DeleteGroups does not mention group `{group}`")))?;
        check(result.error_code, None, || format!("deleting group `{group}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_an_active_group_are_recognised() {
        for code in [22, 25, 27] {
            assert!(
                is_active_group_error(&KafkaError::from_code(code, None).unwrap()),
                "{code}"
            );
        }
        for code in [3, 16, 68, 69] {
            assert!(
                !is_active_group_error(&KafkaError::from_code(code, None).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn partitions_are_grouped_by_topic() {
        let grouped = by_topic(&[("b", 1), ("a", 0), ("b", 0)]);
        assert_eq!(
            grouped.into_iter().collect::<Vec<_>>(),
            [("a", vec![0]), ("b", vec![1, 0])]
        );
    }
}
