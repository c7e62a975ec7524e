//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat (v0 and v1)
//! and ConsumerGroupDescribe (v0 and v1). The coordinator assigns partitions;
//! these handlers translate between topic ids on the wire and the engine.
//!
//! Authorization is Kafka's (4.x): a heartbeat needs READ on the group
//! (GROUP_AUTHORIZATION_FAILED) and DESCRIBE on every topic it subscribes to
//! by name (TOPIC_AUTHORIZATION_FAILED); a description DESCRIBE on the group,
//! and a group whose members' assignments name a topic the principal may not
//! DESCRIBE is answered TOPIC_AUTHORIZATION_FAILED without its members.

use kafka_protocol::messages::consumer_group_describe_response::{self as describe, DescribedGroup};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::groups::{Assignment, ConsumerHeartbeat, GroupError};

use super::authz::{GROUP_DENIED, Names, TOPIC_DENIED};
use super::{Ctx, name, operations};
use crate::errors::{ResponseError, group_error};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Why a heartbeat is refused for want of an ACL, if it is.
fn heartbeat_refused(ctx: &Ctx, r: &ConsumerGroupHeartbeatRequest) -> Option<(ResponseError, &'static str)> {
    let who = ctx.who();
    if !who.allowed(AclOperation::Read, ResourceType::Group, r.group_id.0.as_str()) {
        return Some((ResponseError::GroupAuthorizationFailed, GROUP_DENIED));
    }
    let subscribed = r.subscribed_topic_names.iter().flatten().map(|t| t.0.as_str());
    match who.names(AclOperation::Describe, ResourceType::Topic, subscribed) {
        Names::Only(allowed)
            if r.subscribed_topic_names
                .iter()
                .flatten()
                .any(|t| !allowed.contains(t.0.as_str())) =>
        {
            Some((ResponseError::TopicAuthorizationFailed, TOPIC_DENIED))
        }
        _ => None,
    }
}

pub(super) fn consumer_group_heartbeat(ctx: &Ctx, r: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    if let Some((error, message)) = heartbeat_refused(ctx, &r) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(message)));
    }
    let request = ConsumerHeartbeat {
        group_id: r.group_id.0.as_str().to_owned(),
        member_id: r.member_id.as_str().to_owned(),
        member_epoch: r.member_epoch,
        instance_id: r.instance_id.as_ref().map(|s| s.as_str().to_owned()),
        rack_id: r.rack_id.as_ref().map(|s| s.as_str().to_owned()),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        subscribed_topic_names: r
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.as_str().to_owned()).collect()),
        subscribed_topic_regex: r.subscribed_topic_regex.as_ref().map(|s| s.as_str().to_owned()),
        server_assignor: r.server_assignor.as_ref().map(|s| s.as_str().to_owned()),
        owned: r.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (*tp.topic_id.as_bytes(), tp.partitions.clone()))
                .collect()
        }),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    if request.group_id.is_empty() {
        resp.error_code = ResponseError::InvalidGroupId.code();
        return resp;
    }
    let broker = &ctx.broker;
    match broker
        .groups()
        .consumer_heartbeat(request, &|topic| broker.topic_meta(topic))
    {
        Ok(reply) => {
            resp.member_id = Some(text(&reply.member_id));
            resp.member_epoch = reply.member_epoch;
            resp.heartbeat_interval_ms = reply.heartbeat_interval_ms;
            resp.assignment = reply.assignment.map(|a| {
                heartbeat::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(topic, partitions)| {
                            heartbeat::TopicPartitions::default()
                                .with_topic_id(Uuid::from_bytes(topic))
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect(),
                )
            });
        }
        Err(e) => {
            resp.error_code = group_error(&e).code();
            resp.error_message = Some(text(&e.to_string()));
            if matches!(e, GroupError::Storage(_)) {
                tracing::error!(error = %e, "consumer group heartbeat failed");
            }
        }
    }
    resp
}

/// Topic names for the ids of an assignment (a topic deleted meanwhile is
/// named by its id alone).
fn described(ctx: &Ctx, a: &Assignment) -> describe::Assignment {
    let topics = ctx.broker.topics();
    describe::Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, partitions)| {
                let topic_name = topics
                    .iter()
                    .find(|t| t.id == *id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                describe::TopicPartitions::default()
                    .with_topic_id(Uuid::from_bytes(*id))
                    .with_topic_name(name(&topic_name))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}

pub(super) fn consumer_group_describe(ctx: &Ctx, r: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let groups = r
        .group_ids
        .iter()
        .map(|id| describe_one(ctx, id, r.include_authorized_operations))
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// A group's answer; its authorized operations only when asked for and
/// described without an error, as in Kafka.
fn describe_one(ctx: &Ctx, id: &GroupId, include_authorized_operations: bool) -> DescribedGroup {
    let mut g = DescribedGroup::default()
        .with_group_id(id.clone())
        .with_authorized_operations(operations::NOT_ASKED);
    if !ctx
        .who()
        .allowed(AclOperation::Describe, ResourceType::Group, id.0.as_str())
    {
        g.error_code = ResponseError::GroupAuthorizationFailed.code();
        g.error_message = Some(text(GROUP_DENIED));
        return g;
    }
    if id.0.is_empty() {
        g.error_code = ResponseError::InvalidGroupId.code();
        return g;
    }
    let d = match ctx.broker.groups().describe_consumer(id.0.as_str()) {
        Ok(d) => d,
        Err(e) => {
            g.error_code = group_error(&e).code();
            g.error_message = Some(text(&e.to_string()));
            return g;
        }
    };
    g.authorized_operations =
        operations::answered(ctx, include_authorized_operations, ResourceType::Group, id.0.as_str());
    g.group_state = text(d.state);
    g.group_epoch = d.group_epoch;
    g.assignment_epoch = d.assignment_epoch;
    g.assignor_name = text(&d.assignor);
    g.members = d
        .members
        .iter()
        .map(|m| {
            let mut out = describe::Member::default()
                .with_member_id(text(&m.member_id))
                .with_instance_id(m.instance_id.as_deref().map(text))
                .with_rack_id(m.rack_id.as_deref().map(text))
                .with_member_epoch(m.member_epoch)
                .with_client_id(text(&m.client_id))
                .with_client_host(text(&m.client_host))
                .with_subscribed_topic_names(m.subscribed_topic_names.iter().map(|t| name(t)).collect())
                .with_assignment(described(ctx, &m.assignment))
                .with_target_assignment(described(ctx, &m.target_assignment));
            if ctx.version >= 1 {
                // 1: a member of the consumer protocol (0 would be classic).
                out.member_type = 1;
            }
            out
        })
        .collect();
    hide_undescribable_topics(ctx, g)
}

/// A group whose members' assignments (current or target) name a topic
/// the principal may not DESCRIBE, answered as Kafka 4 does: without its
/// members, TOPIC_AUTHORIZATION_FAILED.
fn hide_undescribable_topics(ctx: &Ctx, g: DescribedGroup) -> DescribedGroup {
    let topics = || {
        g.members
            .iter()
            .flat_map(|m| {
                m.assignment
                    .topic_partitions
                    .iter()
                    .chain(&m.target_assignment.topic_partitions)
            })
            .map(|tp| tp.topic_name.0.as_str())
            .filter(|n| !n.is_empty())
    };
    let describable = ctx.who().names(AclOperation::Describe, ResourceType::Topic, topics());
    if topics().all(|t| describable.contains(t)) {
        return g;
    }
    DescribedGroup::default()
        .with_group_id(g.group_id)
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
        .with_error_message(Some(text(
            "The group has described topic(s) that the client is not authorized to describe.",
        )))
        .with_authorized_operations(operations::NOT_ASKED)
}
