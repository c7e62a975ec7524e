//! Committed offsets: OffsetCommit (v2 to v9), OffsetFetch (v1 to v9) and
//! OffsetDelete (v0). From v9 a member of a consumer-protocol group (KIP-848)
//! gives its member epoch where a classic member gives its generation.
//!
//! A commit is answered once it is durable (the coordinator fsyncs the offsets
//! log), so it runs on the blocking pool. A partition never committed is
//! fetched as offset -1 with no error, as Kafka answers it.

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::groups::{Committed, Committer, OffsetCommit};

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

/// One topic's `(partition, committed)` rows.
type TopicRows = (String, Vec<(i32, Option<Committed>)>);

/// `(topic, partition, committed)` rows grouped by topic, in first-seen order.
fn by_topic(rows: Vec<(String, i32, Option<Committed>)>) -> Vec<TopicRows> {
    let mut out: Vec<TopicRows> = Vec::new();
    for (topic, partition, c) in rows {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, list)) => list.push((partition, c)),
            None => out.push((topic, vec![(partition, c)])),
        }
    }
    out
}

/// The committed offsets a group fetch asks for: listed partitions, or all.
fn fetch_rows(ctx: &Ctx, group: &str, wanted: Option<Vec<(String, i32)>>) -> Vec<(String, i32, Option<Committed>)> {
    ctx.broker.groups().fetch_offsets(group, wanted.as_deref())
}

pub(super) fn offset_fetch(ctx: &Ctx, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.version;
    let mut resp = OffsetFetchResponse::default();
    if v >= 8 {
        resp.groups = r
            .groups
            .iter()
            .map(|g| {
                if v >= 9
                    && let Err(e) = ctx.broker.groups().check_offset_fetch(
                        g.group_id.0.as_str(),
                        g.member_id.as_ref().map(|m| m.as_str()).unwrap_or_default(),
                        g.member_epoch,
                    )
                {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(group_error(&e).code());
                }
                let wanted = g.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.0.as_str().to_owned(), *p)))
                        .collect()
                });
                let rows = fetch_rows(ctx, g.group_id.0.as_str(), wanted);
                let topics = by_topic(rows)
                    .into_iter()
                    .map(|(topic, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(name(&topic))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, c)| {
                                        let (offset, epoch, metadata) = committed_fields(c);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(metadata))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics)
            })
            .collect();
        return resp;
    }
    let wanted = r.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.0.as_str().to_owned(), *p)))
            .collect()
    });
    let rows = fetch_rows(ctx, r.group_id.0.as_str(), wanted);
    resp.topics = by_topic(rows)
        .into_iter()
        .map(|(topic, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, c)| {
                            let (offset, epoch, metadata) = committed_fields(c);
                            let mut out = OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_metadata(Some(metadata));
                            if v >= 5 {
                                out.committed_leader_epoch = epoch;
                            }
                            out
                        })
                        .collect(),
                )
        })
        .collect();
    resp
}

/// Offset, leader epoch and metadata of a commit, or Kafka's "none" (-1).
fn committed_fields(c: Option<Committed>) -> (i64, i32, StrBytes) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, StrBytes::from_string(c.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
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
