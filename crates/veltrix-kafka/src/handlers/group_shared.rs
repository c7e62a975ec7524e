//! Groups on shared storage. One live broker coordinates each group (by its
//! name among the live brokers, `SharedNode::coordinator_of`); the others
//! answer its membership and commit requests with NOT_COORDINATOR, and the
//! client finds the coordinator again. Membership lives in the
//! coordinator's engine, as on a single broker; a coordinator that dies
//! takes it along and the members join the next one. Committed offsets are
//! the metadata store's: a commit the engine accepts (member, generation)
//! is stored there, while this broker's lease is live, before it is
//! answered; OffsetFetch reads them there, on any broker. So a commit
//! acknowledged is never lost when its coordinator dies, and offsets never
//! go back.

use std::collections::HashMap;

use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, RequestKind, ResponseKind,
    ShareGroupHeartbeatResponse, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_shared::OffsetRow;

use super::Ctx;
use crate::errors::{ResponseError, shared_error};

/// The group a membership or commit request is about, if it is one that
/// only the coordinator serves.
fn coordinated_group(request: &RequestKind) -> Option<&str> {
    Some(match request {
        RequestKind::JoinGroup(r) => r.group_id.0.as_str(),
        RequestKind::SyncGroup(r) => r.group_id.0.as_str(),
        RequestKind::Heartbeat(r) => r.group_id.0.as_str(),
        RequestKind::LeaveGroup(r) => r.group_id.0.as_str(),
        RequestKind::OffsetCommit(r) => r.group_id.0.as_str(),
        RequestKind::ConsumerGroupHeartbeat(r) => r.group_id.0.as_str(),
        RequestKind::ShareGroupHeartbeat(r) => r.group_id.0.as_str(),
        _ => return None,
    })
}

/// NOT_COORDINATOR for a group request this broker does not coordinate on
/// shared storage; `None` to serve it.
pub(super) fn redirect(ctx: &Ctx, request: &RequestKind) -> Option<ResponseKind> {
    let shared = ctx.config.shared.as_ref()?;
    let group = coordinated_group(request)?;
    if shared.node().coordinator_of(group).broker_id == shared.broker_id() {
        return None;
    }
    let code = ResponseError::NotCoordinator.code();
    Some(match request {
        RequestKind::JoinGroup(_) => ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1),
        ),
        RequestKind::SyncGroup(_) => ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code)),
        RequestKind::Heartbeat(_) => ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code)),
        RequestKind::LeaveGroup(_) => ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(super::group_offsets::commit_answer(r, |_| code)),
        RequestKind::ConsumerGroupHeartbeat(_) => ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_static_str(
                    "this broker does not coordinate the group",
                ))),
        ),
        RequestKind::ShareGroupHeartbeat(_) => ResponseKind::ShareGroupHeartbeat(
            ShareGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_member_epoch(-1)
                .with_error_message(Some(StrBytes::from_static_str(
                    "this broker does not coordinate the group",
                ))),
        ),
        _ => return None,
    })
}

/// Topics a group member subscribes to that this broker does not know yet
/// (created through another broker an instant ago) are read from the store
/// before the assignment is computed: a member would otherwise get none and
/// wait a whole heartbeat interval for it.
pub(super) async fn learn_subscribed_topics(ctx: &Ctx, request: &RequestKind) {
    let Some(shared) = &ctx.config.shared else { return };
    let names: Vec<&str> = match request {
        RequestKind::ShareGroupHeartbeat(r) => r
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|t| t.0.as_str())
            .collect(),
        RequestKind::ConsumerGroupHeartbeat(r) => r
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|t| t.0.as_str())
            .collect(),
        _ => return,
    };
    if names.iter().any(|n| ctx.broker.topic(n).is_none()) {
        shared.sync_soon(&ctx.broker).await;
    }
}

/// OffsetCommit on shared storage: the engine checks the member and
/// generation (and keeps its own copy), then what it accepted is stored in
/// the metadata store before the answer; a store that fails or a lease lost
/// turns those partitions' answers into a retriable error.
pub(super) async fn offset_commit(ctx: Ctx, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let shared = ctx.config.shared.clone().expect("shared storage");
    let group = r.group_id.0.as_str().to_owned();
    let v = ctx.version;
    let asked: HashMap<(String, i32), OffsetRow> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let row = OffsetRow {
                    topic: t.name.0.as_str().to_owned(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default(),
                };
                ((row.topic.clone(), row.partition), row)
            })
        })
        .collect();
    let mut resp = super::group_offsets::offset_commit(ctx, r).await;
    let accepted: Vec<OffsetRow> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.error_code == crate::errors::NONE)
                .filter_map(|p| asked.get(&(t.name.0.as_str().to_owned(), p.partition_index)).cloned())
        })
        .collect();
    if accepted.is_empty() {
        return resp;
    }
    if let Err(e) = shared.node().commit_offsets(&group, &accepted).await {
        tracing::warn!(group, error = %e, "storing committed offsets in the metadata store failed");
        let code = match e {
            veltrix_shared::Error::LeaseLost(_) => ResponseError::NotCoordinator.code(),
            _ if e.is_retriable() => ResponseError::CoordinatorNotAvailable.code(),
            ref other => shared_error(other).code(),
        };
        for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            if p.error_code == crate::errors::NONE {
                p.error_code = code;
            }
        }
    }
    resp
}

/// OffsetFetch on shared storage: the groups' offsets read from the
/// metadata store, then answered as the engine's would be.
pub(super) async fn offset_fetch(mut ctx: Ctx, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let shared = ctx.config.shared.clone().expect("shared storage");
    let groups: Vec<String> = if ctx.version >= 8 {
        r.groups.iter().map(|g| g.group_id.0.as_str().to_owned()).collect()
    } else {
        vec![r.group_id.0.as_str().to_owned()]
    };
    let mut stored = HashMap::new();
    for g in groups {
        match shared.node().fetch_offsets(&g).await {
            Ok(rows) => {
                stored.insert(g, rows);
            }
            Err(e) => {
                tracing::warn!(group = g, error = %e, "reading committed offsets from the metadata store failed");
                let code = ResponseError::CoordinatorNotAvailable.code();
                let mut resp = OffsetFetchResponse::default();
                if ctx.version >= 8 {
                    resp.groups = r
                        .groups
                        .iter()
                        .map(|g| {
                            OffsetFetchResponseGroup::default()
                                .with_group_id(g.group_id.clone())
                                .with_error_code(code)
                        })
                        .collect();
                } else {
                    resp.error_code = code;
                }
                return resp;
            }
        }
    }
    ctx.shared_commits = Some(stored);
    super::group_offsets::offset_fetch(&ctx, r)
}
