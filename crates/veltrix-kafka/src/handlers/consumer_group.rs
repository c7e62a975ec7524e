//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat (v0 and v1)
//! and ConsumerGroupDescribe (v0 and v1). The coordinator assigns partitions;
//! these handlers translate between topic ids on the wire and the engine.

use kafka_protocol::messages::consumer_group_describe_response::{self as describe, DescribedGroup};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::groups::{Assignment, ConsumerHeartbeat, GroupError};

use super::{Ctx, name, operations};
use crate::errors::{ResponseError, group_error};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(super) fn consumer_group_heartbeat(ctx: &Ctx, r: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
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
    g.authorized_operations = operations::answered(include_authorized_operations, operations::GROUP_OPERATIONS);
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
    g
}
