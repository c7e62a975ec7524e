//! `DELETE /api/v1/topics/{name}` and `DELETE /api/v1/groups/{id}`: a topic
//! with its records, or an empty group with its committed offsets, deleted
//! as the Kafka APIs delete them (the engine's `delete_topic`, and
//! DeleteGroups' `delete_group`), on the blocking pool (they write the
//! catalogue or a change log, and remove directories).
//!
//! Only with `[listeners] http_mutations = true`. ACLs as Kafka's: a topic
//! takes DeleteTopics' (DELETE on the cluster, or else DESCRIBE on the
//! topic, refused whether it exists or not, and DELETE on it); a group
//! DELETE on the group. Veltrix keeps its own state (committed offsets,
//! transactions, share groups, redrives, routes) in change logs under the
//! data directory, never in topics, so no topic is internal: as over the
//! Kafka protocol, none is refused for being one.
//!
//! A topic's and a group's `GET` answers carry `deletion`: whether the
//! caller could delete it now, and why not, asked without a trace in the
//! audit log. The console offers deletion only when `allowed`.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use veltrix_core::CoreError;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};
use veltrix_core::groups::GroupError;
use veltrix_core::share::ShareError;

use crate::security::{Caller, Denied};
use crate::server::{HttpState, error};

/// The other way to delete a topic, which a refusal names.
const TOPIC_INSTEAD: &str = "delete it with `veltrix topic delete`";
/// The other way to delete a group.
const GROUP_INSTEAD: &str = "delete it with `veltrix group delete`";

/// DeleteTopics' authorization: DELETE on the cluster, or else DESCRIBE on
/// the topic (asked before whether it exists, so a refusal does not tell)
/// and DELETE on it when it exists.
fn authorize_topic(s: &HttpState, caller: &Caller, name: &str) -> Result<(), Denied> {
    if caller.may(s, AclOperation::Delete, ResourceType::Cluster, CLUSTER_NAME) {
        return Ok(());
    }
    caller.check(s, AclOperation::Describe, ResourceType::Topic, name)?;
    if s.broker.topic(name).is_some() {
        caller.check(s, AclOperation::Delete, ResourceType::Topic, name)?;
    }
    Ok(())
}

pub async fn delete_topic(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    if let Err(denied) = authorize_topic(&s, &caller, &name) {
        return denied.into_response();
    }
    if let Err(off) = s.security.allow_change(Some(TOPIC_INSTEAD)) {
        return off.into_response();
    }
    let broker = s.broker.clone();
    let topic = name.clone();
    match tokio::task::spawn_blocking(move || broker.delete_topic(&topic)).await {
        Ok(Ok(id)) => {
            let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
            tracing::info!(topic = name, principal = caller.principal, "topic deleted over HTTP");
            axum::Json(json!({ "deleted": name, "id": id })).into_response()
        }
        Ok(Err(e @ CoreError::UnknownTopic(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) => {
            tracing::warn!(topic = name, error = %e, "deleting a topic failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Why a group was not deleted, from either kind of group.
#[derive(Debug, thiserror::Error)]
enum GroupRefused {
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Share(#[from] ShareError),
}

impl GroupRefused {
    fn status(&self) -> StatusCode {
        use GroupRefused::{Group, Share};
        match self {
            Group(GroupError::GroupIdNotFound) | Share(ShareError::GroupIdNotFound) => StatusCode::NOT_FOUND,
            Group(GroupError::NonEmptyGroup) | Share(ShareError::NonEmptyGroup) => StatusCode::CONFLICT,
            Group(GroupError::InvalidGroupId) | Share(ShareError::InvalidGroupId | ShareError::GroupIdTooLong(_)) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// DeleteGroups' one group: DELETE on it; a share group or another kind,
/// only while it has no members (409 otherwise).
pub async fn delete_group(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(denied) = caller.check(&s, AclOperation::Delete, ResourceType::Group, &id) {
        return denied.into_response();
    }
    if let Err(off) = s.security.allow_change(Some(GROUP_INSTEAD)) {
        return off.into_response();
    }
    let broker = s.broker.clone();
    let group = id.clone();
    let deleted = tokio::task::spawn_blocking(move || {
        if broker.share().contains(&group) {
            broker.share().delete_group(&group).map_err(GroupRefused::from)
        } else {
            broker.groups().delete_group(&group).map_err(GroupRefused::from)
        }
    })
    .await;
    match deleted {
        Ok(Ok(())) => {
            tracing::info!(group = id, principal = caller.principal, "group deleted over HTTP");
            axum::Json(json!({ "deleted": id })).into_response()
        }
        Ok(Err(e)) => error(e.status(), format!("group `{id}`: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `{"allowed": true}`, or `{"allowed": false, "why_not": ...}`: changes
/// off, or `may` (the ACLs, asked quietly) false.
fn deletion(s: &HttpState, caller: &Caller, may: bool, instead: &'static str, what: &str) -> Value {
    let why_not = match s.security.allow_change(Some(instead)) {
        Err(off) => Some(off.message()),
        Ok(()) if !may => Some(format!("{} may not DELETE {what}", caller.principal)),
        Ok(()) => None,
    };
    json!({ "allowed": why_not.is_none(), "why_not": why_not })
}

/// Whether the caller could delete topic `name` now (it may describe it).
pub fn topic_deletion(s: &HttpState, caller: &Caller, name: &str) -> Value {
    let may = caller.may(s, AclOperation::Delete, ResourceType::Cluster, CLUSTER_NAME)
        || caller.may(s, AclOperation::Delete, ResourceType::Topic, name);
    deletion(s, caller, may, TOPIC_INSTEAD, &format!("topic `{name}`"))
}

/// Whether the caller could delete group `id` now, members aside.
pub fn group_deletion(s: &HttpState, caller: &Caller, id: &str) -> Value {
    let may = caller.may(s, AclOperation::Delete, ResourceType::Group, id);
    deletion(s, caller, may, GROUP_INSTEAD, &format!("group `{id}`"))
}
