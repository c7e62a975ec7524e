//! Finding and administering groups: FindCoordinator (v0 to v4), ListGroups (v0
//! to v5), DescribeGroups (v0 to v5) and DeleteGroups (v0 to v2).
//!
//! This broker coordinates every group, so FindCoordinator always names it.
//! Share groups are listed with the others (type `share`) and deleted like
//! them, when they have no members. DescribeGroups describes classic groups
//! only: as Kafka 4 does, a share group's id gets the answer for a group it
//! does not know (Dead, no error; GROUP_ID_NOT_FOUND from v6), since its
//! members are described by ShareGroupDescribe.
//! It is also every transactional id's coordinator (key type 1).
//!
//! Authorization is Kafka's: FindCoordinator needs DESCRIBE on the group (or
//! transactional id) looked up, DescribeGroups DESCRIBE and DeleteGroups
//! DELETE on each group (GROUP_AUTHORIZATION_FAILED for it); ListGroups
//! lists every group for DESCRIBE on the cluster, else only the groups the
//! principal may DESCRIBE.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};

use super::authz::{GROUP_DENIED, TRANSACTIONAL_ID_DENIED};
use super::{Ctx, operations};
use crate::errors::{self, Refusal, ResponseError, group_error, share_error};

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Whether this broker coordinates `key` of `key_type` for the principal:
/// groups it may DESCRIBE only.
fn lookup(ctx: &Ctx, key_type: i8, key: &str) -> Result<(), Refusal> {
    let who = ctx.who();
    match key_type {
        KEY_GROUP if who.allowed(AclOperation::Describe, ResourceType::Group, key) => Ok(()),
        KEY_GROUP => Err(Refusal::new(ResponseError::GroupAuthorizationFailed, GROUP_DENIED)),
        KEY_TRANSACTION if !who.allowed(AclOperation::Describe, ResourceType::TransactionalId, key) => {
            Err(Refusal::new(
                ResponseError::TransactionalIdAuthorizationFailed,
                TRANSACTIONAL_ID_DENIED,
            ))
        }
        KEY_TRANSACTION => veltrix_core::txn::check_transactional_id(key)
            .map_err(|e| Refusal::new(ResponseError::InvalidRequest, e.to_string())),
        _ => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("coordinator key type {key_type}: only groups (0) and transactional ids (1) have coordinators"),
        )),
    }
}

/// The broker that coordinates `key`: this one, or on shared storage the
/// live broker the group's name places it on (transactions are not served
/// there).
fn coordinator(ctx: &Ctx, key_type: i8, key: &str) -> Result<(BrokerId, StrBytes, i32), Refusal> {
    lookup(ctx, key_type, key)?;
    let own = || {
        (
            text(&ctx.listener.advertised_host),
            i32::from(ctx.listener.advertised_port),
        )
    };
    let Some(shared) = &ctx.config.shared else {
        let (host, port) = own();
        return Ok((BrokerId(0), host, port));
    };
    if key_type == KEY_TRANSACTION {
        return Err(Refusal::new(
            ResponseError::CoordinatorNotAvailable,
            "transactions are not served on shared storage (docs/scale-out.md)",
        ));
    }
    let c = shared.node().coordinator_of(key);
    if c.broker_id == shared.broker_id() {
        let (host, port) = own();
        return Ok((BrokerId(c.broker_id), host, port));
    }
    let (host, port) = c.address_on(&ctx.listener.name);
    Ok((BrokerId(c.broker_id), text(host), port))
}

pub(super) fn find_coordinator(ctx: &Ctx, r: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let key_type = if ctx.version >= 1 { r.key_type } else { KEY_GROUP };
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        resp.coordinators = r
            .coordinator_keys
            .iter()
            .map(|key| {
                let found = coordinator(ctx, key_type, key.as_str());
                let at = found.as_ref().ok().cloned();
                let (code, message) = errors::code_and_message(found.map(|_| ()));
                let c = Coordinator::default()
                    .with_key(key.clone())
                    .with_error_code(code)
                    .with_error_message(message);
                match at {
                    Some((node, host, port)) => c.with_node_id(node).with_host(host).with_port(port),
                    None => c.with_node_id(BrokerId(-1)).with_port(-1),
                }
            })
            .collect();
        return resp;
    }
    let found = coordinator(ctx, key_type, r.key.as_str());
    let at = found.as_ref().ok().cloned();
    let (code, message) = errors::code_and_message(found.map(|_| ()));
    resp.error_code = code;
    if ctx.version >= 1 {
        resp.error_message = message;
    }
    if let Some((node, host, port)) = at {
        resp.node_id = node;
        resp.host = host;
        resp.port = port;
    } else {
        resp.node_id = BrokerId(-1);
        resp.port = -1;
    }
    resp
}

pub(super) fn list_groups(ctx: &Ctx, r: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = if ctx.version >= 4 {
        r.states_filter.iter().map(|s| s.as_str().to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if ctx.version >= 5 {
        r.types_filter.iter().map(|s| s.as_str().to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let shares = ctx
        .broker
        .share()
        .list()
        .into_iter()
        .map(|g| veltrix_core::groups::GroupListing {
            group_id: g.group_id,
            protocol_type: "share".to_owned(),
            state: g.state,
            group_type: "share",
            members: g.members.len(),
        });
    // As Kafka: every group for DESCRIBE on the cluster, else those the
    // principal may DESCRIBE; neither check is audited.
    let who = ctx.who();
    let all = who.allowed_quietly(AclOperation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    let groups = ctx
        .broker
        .groups()
        .list()
        .into_iter()
        .chain(shares)
        .filter(|g| all || who.allowed_quietly(AclOperation::Describe, ResourceType::Group, &g.group_id))
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut out = ListedGroup::default()
                .with_group_id(GroupId(text(&g.group_id)))
                .with_protocol_type(text(&g.protocol_type));
            if ctx.version >= 4 {
                out.group_state = text(g.state);
            }
            if ctx.version >= 5 {
                out.group_type = text(g.group_type);
            }
            out
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(super) fn describe_groups(ctx: &Ctx, r: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = ctx.version;
    let groups = r
        .groups
        .iter()
        .map(|id| {
            let mut g = DescribedGroup::default().with_group_id(id.clone());
            if !ctx
                .who()
                .allowed(AclOperation::Describe, ResourceType::Group, id.0.as_str())
            {
                g.error_code = ResponseError::GroupAuthorizationFailed.code();
                if v >= 6 {
                    g.error_message = Some(text(GROUP_DENIED));
                }
                return g;
            }
            if id.0.is_empty() {
                g.error_code = ResponseError::InvalidGroupId.code();
                return g;
            }
            if ctx.broker.share().contains(id.0.as_str()) {
                g.group_state = text("Dead");
                if v >= 6 {
                    g.error_code = ResponseError::GroupIdNotFound.code();
                    g.error_message = Some(text(&format!(
                        "group `{}` is a share group: ShareGroupDescribe describes it",
                        id.0.as_str()
                    )));
                }
                return g;
            }
            let d = match ctx.broker.groups().describe(id.0.as_str()) {
                Ok(d) => d,
                Err(e) => {
                    g.error_code = group_error(&e).code();
                    if v >= 6 {
                        g.error_message = Some(text(&e.to_string()));
                    }
                    return g;
                }
            };
            g.group_state = text(d.state.name());
            g.protocol_type = text(&d.protocol_type);
            g.protocol_data = text(&d.protocol);
            g.members = d
                .members
                .iter()
                .map(|m| {
                    let mut out = DescribedGroupMember::default()
                        .with_member_id(text(&m.member_id))
                        .with_client_id(text(&m.client_id))
                        .with_client_host(text(&m.client_host))
                        .with_member_metadata(m.metadata.clone())
                        .with_member_assignment(m.assignment.clone());
                    if v >= 4 {
                        out.group_instance_id = m.instance_id.as_deref().map(text);
                    }
                    out
                })
                .collect();
            g
        })
        .map(|mut g| {
            // From v3, for a group answered without an error, as in Kafka.
            if v >= 3 && g.error_code == errors::NONE {
                g.authorized_operations = operations::answered(
                    ctx,
                    r.include_authorized_operations,
                    ResourceType::Group,
                    g.group_id.0.as_str(),
                );
            }
            g
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) async fn delete_groups(ctx: Ctx, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    tokio::task::spawn_blocking(move || {
        // A group named twice is answered once, as Kafka does.
        let mut seen = std::collections::HashSet::new();
        let results = r
            .groups_names
            .iter()
            .filter(|id| seen.insert(id.0.as_str()))
            .map(|id| {
                let id_str = id.0.as_str();
                let deleted = if !ctx.who().allowed(AclOperation::Delete, ResourceType::Group, id_str) {
                    Err(ResponseError::GroupAuthorizationFailed)
                } else if super::share_shared::coordinated_elsewhere(&ctx, id_str) {
                    Err(ResponseError::NotCoordinator)
                } else if ctx.broker.share().contains(id_str) {
                    ctx.broker.share().delete_group(id_str).map_err(|e| share_error(&e))
                } else {
                    ctx.broker.groups().delete_group(id_str).map_err(|e| group_error(&e))
                };
                let code = deleted.err().map_or(errors::NONE, |e| e.code());
                errors::count_error(&ctx.metrics, "DeleteGroups", code);
                DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(code)
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    })
    .await
    .unwrap_or_default()
}
