//! Group membership over the classic protocol: JoinGroup (v0 to v9), SyncGroup
//! (v0 to v5), Heartbeat (v0 to v4) and LeaveGroup (v0 to v5).
//!
//! The coordinator in the core decides; these handlers translate. JoinGroup and
//! SyncGroup may wait (for the join phase to end, for the leader's assignment);
//! the wait is a one-shot receiver the coordinator completes, so no thread is
//! held. A connection waiting on one answers nothing else meanwhile, as in Kafka.
//! Each needs READ on the group (GROUP_AUTHORIZATION_FAILED), as in Kafka.

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::groups::{Committer, GroupError, JoinRequest};

use super::Ctx;
use crate::errors::{self, ResponseError, group_error};

/// Whether the principal may READ the group (take part in it).
fn may_read(ctx: &Ctx, group: &str) -> bool {
    ctx.who().allowed(AclOperation::Read, ResourceType::Group, group)
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(super) async fn join_group(ctx: Ctx, r: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.version;
    if !may_read(&ctx, r.group_id.0.as_str()) {
        let mut resp = JoinGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_member_id(r.member_id.clone());
        resp.protocol_name = if v >= 7 { None } else { Some(StrBytes::default()) };
        return resp;
    }
    let request = JoinRequest {
        group_id: r.group_id.0.as_str().to_owned(),
        member_id: r.member_id.as_str().to_owned(),
        group_instance_id: r.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout stands in, as in Kafka.
        rebalance_timeout_ms: if v >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        protocol_type: r.protocol_type.as_str().to_owned(),
        protocols: r
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_owned(), p.metadata.clone()))
            .collect(),
        require_known_member_id: v >= 4,
    };
    let answer = ctx.broker.groups().join(request).await;
    let mut resp = JoinGroupResponse::default();
    match answer.unwrap_or(Err(GroupError::CoordinatorNotAvailable)) {
        Ok(joined) => {
            resp.generation_id = joined.generation;
            if v >= 7 {
                resp.protocol_type = Some(text(&joined.protocol_type));
            }
            resp.protocol_name = Some(text(&joined.protocol));
            resp.leader = text(&joined.leader);
            resp.member_id = text(&joined.member_id);
            resp.members = joined
                .members
                .iter()
                .map(|m| {
                    let mut out = JoinGroupResponseMember::default()
                        .with_member_id(text(&m.member_id))
                        .with_metadata(m.metadata.clone());
                    if v >= 5 {
                        out.group_instance_id = m.instance_id.as_deref().map(text);
                    }
                    out
                })
                .collect();
        }
        Err(e) => {
            resp.error_code = group_error(&e).code();
            if let GroupError::MemberIdRequired(id) = &e {
                resp.member_id = text(id);
            } else {
                resp.member_id = r.member_id.clone();
            }
            resp.protocol_name = if v >= 7 { None } else { Some(StrBytes::default()) };
        }
    }
    resp
}

pub(super) async fn sync_group(ctx: Ctx, r: SyncGroupRequest) -> SyncGroupResponse {
    let v = ctx.version;
    let group_id = r.group_id.0.as_str().to_owned();
    let committer = Committer {
        member_id: r.member_id.as_str().to_owned(),
        instance_id: r.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
        generation: r.generation_id,
    };
    let mut resp = SyncGroupResponse::default();
    if !may_read(&ctx, &group_id) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    // v5 names the protocol; it must be the group's.
    if v >= 5 {
        let Ok(d) = ctx.broker.groups().describe(&group_id) else {
            resp.error_code = ResponseError::UnknownMemberId.code();
            return resp;
        };
        let type_ok = r.protocol_type.as_ref().is_none_or(|t| t.as_str() == d.protocol_type);
        let name_ok = r.protocol_name.as_ref().is_none_or(|n| n.as_str() == d.protocol);
        if !type_ok || !name_ok {
            resp.error_code = ResponseError::InconsistentGroupProtocol.code();
            return resp;
        }
        resp.protocol_type = Some(text(&d.protocol_type));
        resp.protocol_name = Some(text(&d.protocol));
    }
    let assignments = r
        .assignments
        .iter()
        .map(|a| (a.member_id.as_str().to_owned(), a.assignment.clone()))
        .collect();
    let answer = ctx.broker.groups().sync(&group_id, &committer, assignments).await;
    match answer.unwrap_or(Err(GroupError::CoordinatorNotAvailable)) {
        Ok(assignment) => resp.assignment = assignment,
        Err(e) => {
            resp.error_code = group_error(&e).code();
            resp.assignment = Bytes::new();
        }
    }
    resp
}

pub(super) fn heartbeat(ctx: &Ctx, r: HeartbeatRequest) -> HeartbeatResponse {
    if !may_read(ctx, r.group_id.0.as_str()) {
        return HeartbeatResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let committer = Committer {
        member_id: r.member_id.as_str().to_owned(),
        instance_id: r.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
        generation: r.generation_id,
    };
    let outcome = ctx.broker.groups().heartbeat(r.group_id.0.as_str(), &committer);
    HeartbeatResponse::default().with_error_code(outcome.err().map_or(errors::NONE, |e| group_error(&e).code()))
}

pub(super) fn leave_group(ctx: &Ctx, r: LeaveGroupRequest) -> LeaveGroupResponse {
    let batched = ctx.version >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.as_str().to_owned(),
                    m.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.as_str().to_owned(), None)]
    };
    let mut resp = LeaveGroupResponse::default();
    if !may_read(ctx, r.group_id.0.as_str()) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    match ctx.broker.groups().leave(r.group_id.0.as_str(), &members) {
        Err(e) => resp.error_code = group_error(&e).code(),
        Ok(outcomes) if batched => {
            resp.members = members
                .iter()
                .zip(outcomes)
                .map(|((member_id, instance_id), outcome)| {
                    MemberResponse::default()
                        .with_member_id(text(member_id))
                        .with_group_instance_id(instance_id.as_deref().map(text))
                        .with_error_code(outcome.err().map_or(errors::NONE, |e| group_error(&e).code()))
                })
                .collect();
        }
        Ok(outcomes) => {
            if let Some(Err(e)) = outcomes.first() {
                resp.error_code = group_error(e).code();
            }
        }
    }
    resp
}
