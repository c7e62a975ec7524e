//! Share groups' start offsets (KIP-932): DescribeShareGroupOffsets,
//! AlterShareGroupOffsets and DeleteShareGroupOffsets, all at v0.
//!
//! As Kafka answers them: a group this broker does not know has no offsets
//! to describe (every partition named gets start offset -1, no error); an
//! alteration is refused whole with NON_EMPTY_GROUP while the group has
//! members and creates a group that does not exist; a deletion needs a group
//! that exists and has no members, and answers per topic. A consumer group's
//! id is GROUP_ID_NOT_FOUND to the two that change state. Unknown topics and
//! partitions are UNKNOWN_TOPIC_OR_PARTITION where they are named.
//!
//! Beyond Kafka: a start offset must lie within its log (log start to high
//! watermark), else OFFSET_OUT_OF_RANGE for its partition; a request names
//! at most `OFFSETS_PARTITIONS_MAX` topic-partitions (DeleteShareGroupOffsets:
//! topics) and a describe at most `groups_max` groups (on shared storage,
//! where each group is a query of the catalog, `SHARED_DESCRIBE_GROUPS_MAX`).
//!
//! Every partition is checked before anything changes; what passes is
//! altered or deleted as one stored change, answered once durable, so all
//! three run on the blocking pool (a describe reads share-partitions that an
//! acquisition may hold while it reads the disk).
//!
//! Authorization is Kafka's (KIP-932): describing needs DESCRIBE on the
//! group (GROUP_AUTHORIZATION_FAILED for it) and on each topic (a topic
//! named without it is TOPIC_AUTHORIZATION_FAILED for its partitions; one
//! not named is left out); altering READ on the group (the request) and on
//! each topic (its partitions); deleting DELETE on the group (the request)
//! and READ on each topic (the topic).

use std::sync::Arc;

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::share::{OFFSETS_PARTITIONS_MAX, PartitionStart, ShareError, check_group_id};
use veltrix_core::{Broker, TOPIC_NAME_BYTES_MAX, Topic};

use super::Ctx;
use super::authz::{GROUP_DENIED, TOPIC_DENIED, Who};
use crate::errors::{self, Refusal, ResponseError, share_error};
use crate::shared::SharedStorage;

/// Groups one DescribeShareGroupOffsets may name on shared storage, where
/// each is a query of the catalog (on local storage: `groups_max`).
pub(crate) const SHARED_DESCRIBE_GROUPS_MAX: usize = 100;

/// A start offset Kafka reports for a share-partition without one.
const NO_START: i64 = -1;
/// The leader epoch reported with a start offset: this broker keeps none.
const NO_LEADER_EPOCH: i32 = -1;

fn text(s: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.to_owned()))
}

fn refusal(e: &ShareError) -> Refusal {
    Refusal::new(share_error(e), e.to_string())
}

/// A group id that cannot name a share group, or that names a consumer group.
fn check_group(broker: &Broker, group: &str) -> Result<(), Refusal> {
    check_group_id(group).map_err(|e| refusal(&e))?;
    if super::share::is_consumer_group(broker, group) {
        return Err(refusal(&ShareError::WrongGroupType(group.to_owned())));
    }
    Ok(())
}

/// The topic a request names, or why it cannot be used.
fn lookup(broker: &Broker, name: &TopicName) -> Result<Arc<Topic>, Refusal> {
    let name = name.0.as_str();
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(Refusal::new(
            ResponseError::UnknownTopicOrPartition,
            format!(
                "topic names have at most {TOPIC_NAME_BYTES_MAX} bytes, this one has {}",
                name.len()
            ),
        ));
    }
    broker
        .topic(name)
        .ok_or_else(|| Refusal::new(ResponseError::UnknownTopicOrPartition, format!("no topic `{name}`")))
}

fn no_partition(topic: &Topic, partition: i32) -> Refusal {
    Refusal::new(
        ResponseError::UnknownTopicOrPartition,
        format!(
            "topic `{}` has partitions 0 to {}, not {partition}",
            topic.name,
            topic.partitions.len().saturating_sub(1)
        ),
    )
}

pub(super) async fn describe_share_group_offsets(
    ctx: Ctx,
    r: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let asker = ctx.asker();
    // On shared storage each group is a query of the catalog.
    let groups_max = if ctx.config.shared.is_some() {
        ctx.broker.share().config().groups_max.min(SHARED_DESCRIBE_GROUPS_MAX)
    } else {
        ctx.broker.share().config().groups_max
    };
    let resp = tokio::task::spawn_blocking(move || describe(asker.who(), &r, groups_max))
        .await
        .unwrap_or_default();
    for g in &resp.groups {
        errors::count_error(&ctx.metrics, "DescribeShareGroupOffsets", g.error_code);
        for p in g.topics.iter().flat_map(|t| &t.partitions) {
            errors::count_error(&ctx.metrics, "DescribeShareGroupOffsets", p.error_code);
        }
    }
    resp
}

fn describe(
    who: Who<'_>,
    r: &DescribeShareGroupOffsetsRequest,
    groups_max: usize,
) -> DescribeShareGroupOffsetsResponse {
    let named: usize = r
        .groups
        .iter()
        .flat_map(|g| g.topics.iter().flatten())
        .map(|t| t.partitions.len())
        .sum();
    let too_many = if r.groups.len() > groups_max {
        Some(format!(
            "at most {groups_max} groups per request, this one names {}",
            r.groups.len()
        ))
    } else if named > OFFSETS_PARTITIONS_MAX {
        Some(format!(
            "at most {OFFSETS_PARTITIONS_MAX} partitions per request, this one names {named}"
        ))
    } else {
        None
    };
    let groups = match too_many {
        // Answered without looking anything up, and no larger than the
        // broker's own list of groups.
        Some(message) => r
            .groups
            .iter()
            .take(groups_max)
            .map(|g| {
                DescribeShareGroupOffsetsResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(text(&message))
            })
            .collect(),
        None => r.groups.iter().map(|g| describe_group(who, g)).collect(),
    };
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

fn describe_group(who: Who<'_>, g: &DescribeShareGroupOffsetsRequestGroup) -> DescribeShareGroupOffsetsResponseGroup {
    let broker = who.broker();
    let out = DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id.clone());
    let id = g.group_id.0.as_str();
    if !who.allowed(AclOperation::Describe, ResourceType::Group, id) {
        return out
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_error_message(text(GROUP_DENIED));
    }
    if let Err(e) = check_group_id(id) {
        return out
            .with_error_code(share_error(&e).code())
            .with_error_message(text(&e.to_string()));
    }
    // Sorted by topic id and partition.
    let starts = match broker.share().start_offsets(id) {
        Ok(starts) => starts,
        Err(e) => {
            return out
                .with_error_code(share_error(&e).code())
                .with_error_message(text(&e.to_string()));
        }
    };
    let topics = match &g.topics {
        None => {
            let mut all = every_topic(broker, &starts);
            all.retain(|t| who.allowed_quietly(AclOperation::Describe, ResourceType::Topic, t.topic_name.0.as_str()));
            all
        }
        Some(topics) => {
            let names = topics.iter().map(|t| t.topic_name.0.as_str());
            let describable = who.names(AclOperation::Describe, ResourceType::Topic, names);
            topics
                .iter()
                .map(|t| {
                    if describable.contains(t.topic_name.0.as_str()) {
                        named_topic(broker, &starts, t)
                    } else {
                        denied_topic(t)
                    }
                })
                .collect()
        }
    };
    out.with_topics(topics)
}

fn partition_start(partition: i32, start: i64) -> DescribeShareGroupOffsetsResponsePartition {
    DescribeShareGroupOffsetsResponsePartition::default()
        .with_partition_index(partition)
        .with_start_offset(start)
        .with_leader_epoch(NO_LEADER_EPOCH)
}

/// Every topic the group has state for (topics since deleted left out).
fn every_topic(broker: &Broker, starts: &[PartitionStart]) -> Vec<DescribeShareGroupOffsetsResponseTopic> {
    let mut out = Vec::new();
    for run in starts.chunk_by(|a, b| a.topic == b.topic) {
        let Some(topic) = broker.topic_by_id(&run[0].topic) else {
            continue;
        };
        out.push(
            DescribeShareGroupOffsetsResponseTopic::default()
                .with_topic_name(super::name(&topic.name))
                .with_topic_id(Uuid::from_bytes(topic.id))
                .with_partitions(run.iter().map(|s| partition_start(s.partition, s.start)).collect()),
        );
    }
    out
}

/// A topic named without DESCRIBE on it: every partition refused, as Kafka
/// answers it (no topic id).
fn denied_topic(t: &DescribeShareGroupOffsetsRequestTopic) -> DescribeShareGroupOffsetsResponseTopic {
    let partitions = t.partitions.iter().map(|p| {
        partition_start(*p, NO_START)
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_error_message(text(TOPIC_DENIED))
    });
    DescribeShareGroupOffsetsResponseTopic::default()
        .with_topic_name(t.topic_name.clone())
        .with_partitions(partitions.collect())
}

fn named_topic(
    broker: &Broker,
    starts: &[PartitionStart],
    t: &DescribeShareGroupOffsetsRequestTopic,
) -> DescribeShareGroupOffsetsResponseTopic {
    let out = DescribeShareGroupOffsetsResponseTopic::default().with_topic_name(t.topic_name.clone());
    let topic = match lookup(broker, &t.topic_name) {
        Ok(topic) => topic,
        Err(r) => {
            let failed = |p: &i32| {
                partition_start(*p, NO_START)
                    .with_error_code(r.error.code())
                    .with_error_message(text(&r.message))
            };
            return out.with_partitions(t.partitions.iter().map(failed).collect());
        }
    };
    let partitions = t
        .partitions
        .iter()
        .map(|&p| {
            if topic.partition(p).is_none() {
                let r = no_partition(&topic, p);
                return partition_start(p, NO_START)
                    .with_error_code(r.error.code())
                    .with_error_message(text(&r.message));
            }
            let start = starts
                .binary_search_by(|s| (s.topic, s.partition).cmp(&(topic.id, p)))
                .map_or(NO_START, |i| starts[i].start);
            partition_start(p, start)
        })
        .collect();
    out.with_topic_id(Uuid::from_bytes(topic.id))
        .with_partitions(partitions)
}

pub(super) async fn alter_share_group_offsets(
    ctx: Ctx,
    r: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    if super::share_shared::coordinated_elsewhere(&ctx, r.group_id.0.as_str()) {
        return alter_refused(&not_coordinator());
    }
    let asker = ctx.asker();
    let shared = ctx.config.shared.clone();
    let resp = tokio::task::spawn_blocking(move || alter(asker.who(), shared.as_ref(), &r))
        .await
        .unwrap_or_else(|_| {
            alter_refused(&Refusal::new(
                ResponseError::UnknownServerError,
                "the alteration failed",
            ))
        });
    errors::count_error(&ctx.metrics, "AlterShareGroupOffsets", resp.error_code);
    for p in resp.responses.iter().flat_map(|t| &t.partitions) {
        errors::count_error(&ctx.metrics, "AlterShareGroupOffsets", p.error_code);
    }
    resp
}

fn alter_refused(r: &Refusal) -> AlterShareGroupOffsetsResponse {
    AlterShareGroupOffsetsResponse::default()
        .with_error_code(r.error.code())
        .with_error_message(text(&r.message))
}

/// On shared storage the group's coordinator alone changes its state.
fn not_coordinator() -> Refusal {
    Refusal::new(
        ResponseError::NotCoordinator,
        "another broker coordinates this group: find its coordinator",
    )
}

/// A partition's first and next offsets: its log's, or on shared storage
/// the catalog's (blocks: called on the blocking pool).
fn log_bounds(shared: Option<&SharedStorage>, topic: &Topic, partition: i32) -> Result<(i64, i64), Refusal> {
    let Some(p) = topic.partition(partition) else {
        return Err(no_partition(topic, partition));
    };
    let Some(shared) = shared else {
        return Ok((p.log().log_start(), p.log().high_watermark()));
    };
    let node = shared.node();
    tokio::runtime::Handle::current()
        .block_on(async {
            let first = node.start_offset(&topic.name, partition).await?;
            let end = node.end_offset(&topic.name, partition).await?;
            Ok::<_, veltrix_shared::Error>((first, end))
        })
        .map_err(|e| {
            Refusal::new(
                ResponseError::KafkaStorageError,
                format!("reading the partition's offsets: {e}"),
            )
        })
}

/// Where one partition of an alteration stands once checked.
fn check_start(
    shared: Option<&SharedStorage>,
    topic: &Topic,
    partition: i32,
    start: i64,
) -> Result<PartitionStart, Refusal> {
    let (first, end) = log_bounds(shared, topic, partition)?;
    if !(first..=end).contains(&start) {
        return Err(Refusal::new(
            ResponseError::OffsetOutOfRange,
            format!(
                "start offset {start} is outside {}-{partition}'s log, {first} to {end}",
                topic.name
            ),
        ));
    }
    Ok(PartitionStart {
        topic: topic.id,
        partition,
        start,
    })
}

fn alter(
    who: Who<'_>,
    shared: Option<&SharedStorage>,
    r: &AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let broker = who.broker();
    let group = r.group_id.0.as_str();
    if !who.allowed(AclOperation::Read, ResourceType::Group, group) {
        return alter_refused(&Refusal::new(ResponseError::GroupAuthorizationFailed, GROUP_DENIED));
    }
    if let Err(refused) = check_group(broker, group) {
        return alter_refused(&refused);
    }
    let named: usize = r.topics.iter().map(|t| t.partitions.len()).sum();
    if named > OFFSETS_PARTITIONS_MAX {
        return alter_refused(&Refusal::new(
            ResponseError::InvalidRequest,
            format!("at most {OFFSETS_PARTITIONS_MAX} partitions per request, this one names {named}"),
        ));
    }
    let mut starts = Vec::with_capacity(named);
    let readable = who.names(
        AclOperation::Read,
        ResourceType::Topic,
        r.topics.iter().map(|t| t.topic_name.0.as_str()),
    );
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let topic = if readable.contains(t.topic_name.0.as_str()) {
                lookup(broker, &t.topic_name)
            } else {
                Err(Refusal::new(ResponseError::TopicAuthorizationFailed, TOPIC_DENIED))
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out =
                        AlterShareGroupOffsetsResponsePartition::default().with_partition_index(p.partition_index);
                    let checked = topic
                        .as_ref()
                        .map_err(Clone::clone)
                        .and_then(|topic| check_start(shared, topic, p.partition_index, p.start_offset));
                    match checked {
                        Ok(start) => {
                            starts.push(start);
                            out
                        }
                        Err(r) => out.with_error_code(r.error.code()).with_error_message(text(&r.message)),
                    }
                })
                .collect();
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(topic.map_or(Uuid::nil(), |t| Uuid::from_bytes(t.id)))
                .with_partitions(partitions)
        })
        .collect();
    match broker.share().alter_start_offsets(group, &starts) {
        Ok(()) => AlterShareGroupOffsetsResponse::default().with_responses(topics),
        Err(e) => alter_refused(&refusal(&e)),
    }
}

pub(super) async fn delete_share_group_offsets(
    ctx: Ctx,
    r: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    if super::share_shared::coordinated_elsewhere(&ctx, r.group_id.0.as_str()) {
        return delete_refused(&not_coordinator());
    }
    let asker = ctx.asker();
    let resp = tokio::task::spawn_blocking(move || delete(asker.who(), &r))
        .await
        .unwrap_or_else(|_| delete_refused(&Refusal::new(ResponseError::UnknownServerError, "the deletion failed")));
    errors::count_error(&ctx.metrics, "DeleteShareGroupOffsets", resp.error_code);
    for t in &resp.responses {
        errors::count_error(&ctx.metrics, "DeleteShareGroupOffsets", t.error_code);
    }
    resp
}

fn delete_refused(r: &Refusal) -> DeleteShareGroupOffsetsResponse {
    DeleteShareGroupOffsetsResponse::default()
        .with_error_code(r.error.code())
        .with_error_message(text(&r.message))
}

fn delete(who: Who<'_>, r: &DeleteShareGroupOffsetsRequest) -> DeleteShareGroupOffsetsResponse {
    let broker = who.broker();
    let group = r.group_id.0.as_str();
    if !who.allowed(AclOperation::Delete, ResourceType::Group, group) {
        return delete_refused(&Refusal::new(ResponseError::GroupAuthorizationFailed, GROUP_DENIED));
    }
    if let Err(refused) = check_group(broker, group) {
        return delete_refused(&refused);
    }
    if r.topics.len() > OFFSETS_PARTITIONS_MAX {
        return delete_refused(&Refusal::new(
            ResponseError::InvalidRequest,
            format!(
                "at most {OFFSETS_PARTITIONS_MAX} topics per request, this one names {}",
                r.topics.len()
            ),
        ));
    }
    let readable = who.names(
        AclOperation::Read,
        ResourceType::Topic,
        r.topics.iter().map(|t| t.topic_name.0.as_str()),
    );
    let found: Vec<Result<Arc<Topic>, Refusal>> = r
        .topics
        .iter()
        .map(|t| {
            if readable.contains(t.topic_name.0.as_str()) {
                lookup(broker, &t.topic_name)
            } else {
                Err(Refusal::new(ResponseError::TopicAuthorizationFailed, TOPIC_DENIED))
            }
        })
        .collect();
    let ids: Vec<_> = found.iter().flatten().map(|t| t.id).collect();
    let deleted = match broker.share().delete_start_offsets(group, &ids) {
        Ok(deleted) => deleted,
        Err(e) => return delete_refused(&refusal(&e)),
    };
    let topics = r
        .topics
        .iter()
        .zip(found)
        .map(|(t, found)| {
            let out = DeleteShareGroupOffsetsResponseTopic::default().with_topic_name(t.topic_name.clone());
            let r = match found {
                Ok(topic) if deleted.contains(&topic.id) => {
                    return out.with_topic_id(Uuid::from_bytes(topic.id));
                }
                // Kafka's words for a topic the group has no state for.
                Ok(topic) => Refusal::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("There is no offset information to delete for `{}`.", topic.name),
                ),
                Err(r) => r,
            };
            out.with_error_code(r.error.code()).with_error_message(text(&r.message))
        })
        .collect();
    DeleteShareGroupOffsetsResponse::default().with_responses(topics)
}
