//! Committed offsets: OffsetCommit (v2 to v9), OffsetFetch (v1 to v9) and
//! OffsetDelete (v0). From v9 a member of a consumer-protocol group (KIP-848)
//! gives its member epoch where a classic member gives its generation.
//!
//! A commit is answered once it is durable (the coordinator fsyncs the offsets
//! log), so it runs on the blocking pool. A partition never committed is
//! fetched as offset -1 with no error, as Kafka answers it.

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::groups::{Committed, CommittedPartition, Committer, OffsetCommit};

use super::{Ctx, name};
use crate::errors::{self, ResponseError, group_error};

pub(super) async fn offset_commit(ctx: Ctx, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.version;
    tokio::task::spawn_blocking(move || {
        let committer = Committer {
            member_id: r.member_id.as_str().to_owned(),
            instance_id: if v >= 7 {
                r.group_instance_id.as_ref().map(|i| i.as_str().to_owned())
            } else {
                None
            },
            generation: r.generation_id_or_member_epoch,
        };
        let offsets: Vec<OffsetCommit> = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| OffsetCommit {
                    topic: t.name.0.as_str().to_owned(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default(),
                })
            })
            .collect();
        let broker = ctx.broker.clone();
        let outcomes = ctx
            .broker
            .groups()
            .commit(r.group_id.0.as_str(), &committer, offsets, |topic, partition| {
                broker.partition(topic, partition).is_ok()
            });
        let mut outcomes = outcomes.into_iter();
        let topics = r
            .topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                let code = match outcomes.next() {
                                    Some(Ok(())) => errors::NONE,
                                    Some(Err(e)) => group_error(&e).code(),
                                    None => ResponseError::UnknownServerError.code(),
                                };
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    })
    .await
    .unwrap_or_default()
}

/// One topic's partitions of an OffsetFetch answer, in the order asked.
struct TopicCommits {
    topic: String,
    partitions: Vec<CommittedPartition>,
}

/// Partitions grouped by topic, topics in first-seen order.
fn by_topic(rows: Vec<CommittedPartition>) -> Vec<TopicCommits> {
    let mut out: Vec<TopicCommits> = Vec::new();
    for row in rows {
        match out.iter_mut().find(|t| t.topic == row.topic) {
            Some(t) => t.partitions.push(row),
            None => out.push(TopicCommits {
                topic: row.topic.clone(),
                partitions: vec![row],
            }),
        }
    }
    out
}

/// The committed offsets of `group` a fetch asks for, grouped by topic:
/// `wanted` partitions (of each topic, its name and indexes), or all.
fn fetch_topics<'a>(
    ctx: &Ctx,
    group: &str,
    wanted: Option<impl Iterator<Item = (&'a str, &'a [i32])>>,
) -> Vec<TopicCommits> {
    let wanted: Option<Vec<(String, i32)>> = wanted.map(|topics| {
        topics
            .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (topic.to_owned(), *p)))
            .collect()
    });
    by_topic(ctx.broker.groups().fetch_offsets(group, wanted.as_deref()))
}

/// What OffsetFetch answers for a commit, or Kafka's "none" (-1) for none.
struct CommittedFields {
    offset: i64,
    leader_epoch: i32,
    metadata: StrBytes,
}

impl From<Option<Committed>> for CommittedFields {
    fn from(c: Option<Committed>) -> CommittedFields {
        match c {
            Some(c) => CommittedFields {
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: StrBytes::from_string(c.metadata),
            },
            None => CommittedFields {
                offset: -1,
                leader_epoch: -1,
                metadata: StrBytes::default(),
            },
        }
    }
}

pub(super) fn offset_fetch(ctx: &Ctx, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if ctx.version >= 8 {
        resp.groups = r.groups.iter().map(|g| fetch_group(ctx, g)).collect();
        return resp;
    }
    let wanted = r.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partition_indexes.as_slice()))
    });
    resp.topics = fetch_topics(ctx, r.group_id.0.as_str(), wanted)
        .into_iter()
        .map(|t| {
            let partitions = t.partitions.into_iter().map(|p| {
                let c = CommittedFields::from(p.committed);
                let mut out = OffsetFetchResponsePartition::default()
                    .with_partition_index(p.partition)
                    .with_committed_offset(c.offset)
                    .with_metadata(Some(c.metadata));
                // The leader epoch exists from v5 on.
                if ctx.version >= 5 {
                    out.committed_leader_epoch = c.leader_epoch;
                }
                out
            });
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(t.topic)))
                .with_partitions(partitions.collect())
        })
        .collect();
    resp
}

/// One group of an OffsetFetch of v8 on, which asks for several. From v9 a
/// consumer-protocol member must give its current member epoch.
fn fetch_group(ctx: &Ctx, g: &OffsetFetchRequestGroup) -> OffsetFetchResponseGroup {
    let group_id = g.group_id.0.as_str();
    let member_id = g.member_id.as_ref().map(|m| m.as_str()).unwrap_or_default();
    if ctx.version >= 9
        && let Err(e) = ctx
            .broker
            .groups()
            .check_offset_fetch(group_id, member_id, g.member_epoch)
    {
        return OffsetFetchResponseGroup::default()
            .with_group_id(g.group_id.clone())
            .with_error_code(group_error(&e).code());
    }
    let wanted = g.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partition_indexes.as_slice()))
    });
    let topics = fetch_topics(ctx, group_id, wanted)
        .into_iter()
        .map(|t| {
            let partitions = t.partitions.into_iter().map(|p| {
                let c = CommittedFields::from(p.committed);
                OffsetFetchResponsePartitions::default()
                    .with_partition_index(p.partition)
                    .with_committed_offset(c.offset)
                    .with_committed_leader_epoch(c.leader_epoch)
                    .with_metadata(Some(c.metadata))
            });
            OffsetFetchResponseTopics::default()
                .with_name(name(&t.topic))
                .with_partitions(partitions.collect())
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(g.group_id.clone())
        .with_topics(topics)
}

pub(super) async fn offset_delete(ctx: Ctx, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    tokio::task::spawn_blocking(move || {
        let partitions: Vec<(String, i32)> = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.as_str().to_owned(), p.partition_index))
            })
            .collect();
        let outcome = ctx.broker.groups().delete_offsets(r.group_id.0.as_str(), &partitions);
        let mut resp = OffsetDeleteResponse::default();
        let partition_code = match &outcome {
            Err(e @ veltrix_core::groups::GroupError::GroupSubscribedToTopic) => group_error(e).code(),
            _ => errors::NONE,
        };
        if let Err(e) = &outcome
            && partition_code == errors::NONE
        {
            resp.error_code = group_error(e).code();
        }
        resp.topics = r
            .topics
            .iter()
            .map(|t| {
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(partition_code)
                            })
                            .collect(),
                    )
            })
            .collect();
        resp
    })
    .await
    .unwrap_or_default()
}
