//! Committed offsets: OffsetCommit (v2 to v9), OffsetFetch (v1 to v9) and
//! OffsetDelete (v0). From v9 a member of a consumer-protocol group (KIP-848)
//! gives its member epoch where a classic member gives its generation.
//!
//! A commit is answered once it is durable (the coordinator fsyncs the offsets
//! log), so it runs on the blocking pool. A partition never committed is
//! fetched as offset -1 with no error, as Kafka answers it. Authorization is
//! Kafka's, described at each handler.

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
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::groups::{Committed, CommittedPartition, Committer, OffsetCommit};

use super::{Ctx, name};
use crate::errors::{self, ResponseError, group_error};

/// Every partition of a commit answered with `code`.
pub(super) fn commit_answer(r: &OffsetCommitRequest, code: impl Fn(&TopicName) -> i16) -> OffsetCommitResponse {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code(&t.name))
            });
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions.collect())
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// As Kafka: READ on the group (GROUP_AUTHORIZATION_FAILED for every
/// partition), then READ on each topic (TOPIC_AUTHORIZATION_FAILED for its
/// partitions, which are not committed).
pub(super) async fn offset_commit(ctx: Ctx, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.version;
    if !super::authz::allowed(&ctx, AclOperation::Read, ResourceType::Group, r.group_id.0.as_str()) {
        return commit_answer(&r, |_| ResponseError::GroupAuthorizationFailed.code());
    }
    let readable = ctx.who().names(
        AclOperation::Read,
        ResourceType::Topic,
        r.topics.iter().map(|t| t.name.0.as_str()),
    );
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
            .filter(|t| readable.contains(t.name.0.as_str()))
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
        // Nothing to commit: the coordinator is not asked, as in Kafka.
        let outcomes = if offsets.is_empty() {
            Vec::new()
        } else {
            let broker = ctx.broker.clone();
            ctx.broker
                .groups()
                .commit(r.group_id.0.as_str(), &committer, offsets, |topic, partition| {
                    broker.partition(topic, partition).is_ok()
                })
        };
        let outcomes = std::cell::RefCell::new(outcomes.into_iter());
        commit_answer(&r, |topic| {
            if !readable.contains(topic.0.as_str()) {
                return ResponseError::TopicAuthorizationFailed.code();
            }
            match outcomes.borrow_mut().next() {
                Some(Ok(())) => errors::NONE,
                Some(Err(e)) => group_error(&e).code(),
                None => ResponseError::UnknownServerError.code(),
            }
        })
    })
    .await
    .unwrap_or_default()
}

/// One topic's partitions of an OffsetFetch answer, in the order asked.
struct TopicCommits {
    topic: String,
    partitions: Vec<CommittedPartition>,
    /// Named without DESCRIBE on the topic: every partition is answered
    /// TOPIC_AUTHORIZATION_FAILED.
    denied: bool,
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
                denied: false,
            }),
        }
    }
    out
}

/// The committed offsets of `group` a fetch asks for, grouped by topic:
/// `wanted` partitions (of each topic, its name and indexes), or all. As
/// in Kafka, a client sees no offsets of a topic it may not DESCRIBE: left
/// out of "all", and named ones come after the others, denied.
/// The committed offsets of a group: the engine's, or on shared storage
/// those read from the metadata store for this request.
fn committed(ctx: &Ctx, group: &str, partitions: Option<&[(String, i32)]>) -> Vec<CommittedPartition> {
    let Some(stored) = ctx.shared_commits.as_ref() else {
        return ctx.broker.groups().fetch_offsets(group, partitions);
    };
    let rows = stored.get(group).map(Vec::as_slice).unwrap_or_default();
    let of = |r: &veltrix_shared::OffsetRow| CommittedPartition {
        topic: r.topic.clone(),
        partition: r.partition,
        committed: Some(Committed {
            offset: r.offset,
            leader_epoch: r.leader_epoch,
            metadata: r.metadata.clone(),
            commit_ms: 0,
        }),
    };
    match partitions {
        None => rows.iter().map(of).collect(),
        Some(asked) => asked
            .iter()
            .map(
                |(t, p)| match rows.iter().find(|r| r.topic == *t && r.partition == *p) {
                    Some(r) => of(r),
                    None => CommittedPartition {
                        topic: t.clone(),
                        partition: *p,
                        committed: None,
                    },
                },
            )
            .collect(),
    }
}

fn fetch_topics<'a>(
    ctx: &Ctx,
    group: &str,
    wanted: Option<impl Iterator<Item = (&'a str, &'a [i32])>>,
) -> Vec<TopicCommits> {
    let who = ctx.who();
    let Some(wanted) = wanted else {
        let mut all = by_topic(committed(ctx, group, None));
        all.retain(|t| who.allowed_quietly(AclOperation::Describe, ResourceType::Topic, &t.topic));
        return all;
    };
    let wanted: Vec<(&str, &[i32])> = wanted.collect();
    let describable = who.names(
        AclOperation::Describe,
        ResourceType::Topic,
        wanted.iter().map(|(t, _)| *t),
    );
    let (allowed, denied): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(t, _)| describable.contains(t));
    let asked: Vec<(String, i32)> = allowed
        .iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(move |p| ((*topic).to_owned(), *p)))
        .collect();
    let mut out = if asked.is_empty() && !denied.is_empty() {
        Vec::new()
    } else {
        by_topic(committed(ctx, group, Some(&asked)))
    };
    out.extend(denied.into_iter().map(|(topic, partitions)| {
        TopicCommits {
            topic: topic.to_owned(),
            partitions: partitions
                .iter()
                .map(|p| CommittedPartition {
                    topic: topic.to_owned(),
                    partition: *p,
                    committed: None,
                })
                .collect(),
            denied: true,
        }
    }));
    out
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

/// The error of a topic's partitions in an OffsetFetch answer.
fn topic_code(t: &TopicCommits) -> i16 {
    if t.denied {
        ResponseError::TopicAuthorizationFailed.code()
    } else {
        errors::NONE
    }
}

/// OffsetFetch before v8 for a group the principal may not DESCRIBE: v1
/// has no request-level error, so every partition asked for carries it.
fn fetch_group_denied(ctx: &Ctx, r: &OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    let code = ResponseError::GroupAuthorizationFailed.code();
    if ctx.version >= 2 {
        resp.error_code = code;
        return resp;
    }
    resp.topics = r
        .topics
        .iter()
        .flatten()
        .map(|t| {
            let partitions = t.partition_indexes.iter().map(|p| {
                OffsetFetchResponsePartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(-1)
                    .with_error_code(code)
            });
            OffsetFetchResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions.collect())
        })
        .collect();
    resp
}

/// As Kafka: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED), and no
/// offsets of a topic the principal may not DESCRIBE.
pub(super) fn offset_fetch(ctx: &Ctx, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if ctx.version >= 8 {
        resp.groups = r.groups.iter().map(|g| fetch_group(ctx, g, r.require_stable)).collect();
        return resp;
    }
    if !super::authz::allowed(ctx, AclOperation::Describe, ResourceType::Group, r.group_id.0.as_str()) {
        return fetch_group_denied(ctx, &r);
    }
    let wanted = r.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partition_indexes.as_slice()))
    });
    let unstable = unstable(ctx, r.group_id.0.as_str(), ctx.version >= 7 && r.require_stable);
    resp.topics = fetch_topics(ctx, r.group_id.0.as_str(), wanted)
        .into_iter()
        .map(|t| {
            let code = topic_code(&t);
            let partitions = t.partitions.into_iter().map(|p| {
                let code = unstable_code(&unstable, &t.topic, p.partition, code);
                let c = CommittedFields::from(p.committed);
                let mut out = OffsetFetchResponsePartition::default()
                    .with_partition_index(p.partition)
                    .with_committed_offset(c.offset)
                    .with_metadata(Some(c.metadata))
                    .with_error_code(code);
                // The leader epoch exists from v5 on.
                if ctx.version >= 5 {
                    out.committed_leader_epoch = c.leader_epoch;
                }
                out
            });
            OffsetFetchResponseTopic::default()
                .with_partitions(partitions.collect())
                .with_name(TopicName(StrBytes::from_string(t.topic.clone())))
        })
        .collect();
    resp
}

/// The partitions of `group` with offsets pending in an open transaction,
/// when the fetch requires stable offsets (KIP-447).
fn unstable(ctx: &Ctx, group: &str, require_stable: bool) -> std::collections::BTreeSet<(String, i32)> {
    if require_stable {
        ctx.broker.groups().unstable_partitions(group)
    } else {
        Default::default()
    }
}

/// UNSTABLE_OFFSET_COMMIT for a partition in `unstable` (the consumer
/// retries until the transaction ends), `code` otherwise.
fn unstable_code(unstable: &std::collections::BTreeSet<(String, i32)>, topic: &str, partition: i32, code: i16) -> i16 {
    if code == crate::errors::NONE && unstable.contains(&(topic.to_owned(), partition)) {
        ResponseError::UnstableOffsetCommit.code()
    } else {
        code
    }
}

/// One group of an OffsetFetch of v8 on, which asks for several. From v9 a
/// consumer-protocol member must give its current member epoch.
fn fetch_group(ctx: &Ctx, g: &OffsetFetchRequestGroup, require_stable: bool) -> OffsetFetchResponseGroup {
    let group_id = g.group_id.0.as_str();
    let member_id = g.member_id.as_ref().map(|m| m.as_str()).unwrap_or_default();
    let failed = |code: i16| {
        OffsetFetchResponseGroup::default()
            .with_group_id(g.group_id.clone())
            .with_error_code(code)
    };
    if !super::authz::allowed(ctx, AclOperation::Describe, ResourceType::Group, group_id) {
        return failed(ResponseError::GroupAuthorizationFailed.code());
    }
    if ctx.version >= 9
        && let Err(e) = ctx
            .broker
            .groups()
            .check_offset_fetch(group_id, member_id, g.member_epoch)
    {
        return failed(group_error(&e).code());
    }
    let wanted = g.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partition_indexes.as_slice()))
    });
    let unstable = unstable(ctx, group_id, require_stable);
    let topics = fetch_topics(ctx, group_id, wanted)
        .into_iter()
        .map(|t| {
            let code = topic_code(&t);
            let partitions = t.partitions.into_iter().map(|p| {
                let code = unstable_code(&unstable, &t.topic, p.partition, code);
                let c = CommittedFields::from(p.committed);
                OffsetFetchResponsePartitions::default()
                    .with_partition_index(p.partition)
                    .with_committed_offset(c.offset)
                    .with_committed_leader_epoch(c.leader_epoch)
                    .with_metadata(Some(c.metadata))
                    .with_error_code(code)
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

/// As Kafka: DELETE on the group (GROUP_AUTHORIZATION_FAILED for the
/// request), then READ on each topic (TOPIC_AUTHORIZATION_FAILED for its
/// partitions, whose offsets stay).
pub(super) async fn offset_delete(ctx: Ctx, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if !super::authz::allowed(&ctx, AclOperation::Delete, ResourceType::Group, r.group_id.0.as_str()) {
        return OffsetDeleteResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let readable = ctx.who().names(
        AclOperation::Read,
        ResourceType::Topic,
        r.topics.iter().map(|t| t.name.0.as_str()),
    );
    tokio::task::spawn_blocking(move || {
        let partitions: Vec<(String, i32)> = r
            .topics
            .iter()
            .filter(|t| readable.contains(t.name.0.as_str()))
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
                let code = if readable.contains(t.name.0.as_str()) {
                    partition_code
                } else {
                    ResponseError::TopicAuthorizationFailed.code()
                };
                let partitions = t.partitions.iter().map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                });
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions.collect())
            })
            .collect();
        resp
    })
    .await
    .unwrap_or_default()
}
