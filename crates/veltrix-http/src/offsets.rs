//! `POST /api/v1/groups/{id}/offsets/reset`: a group's committed offsets on a
//! topic reset, planned first (the engine's `offset_reset`). The body:
//!
//! ```json
//! {"topic": "orders", "partitions": [0, 1], "to": "earliest", "execute": false}
//! ```
//!
//! `to` is `earliest`, `latest`, `time` (with `time_ms`) or `offset` (with
//! `offset`); without `partitions`, every partition of the topic. Without
//! `"execute": true` nothing changes and the plan is answered (each
//! partition's committed and new offset); with it, the plan is committed,
//! which needs `[listeners] http_mutations = true` and a group without
//! members. ACLs as Kafka's: the plan DESCRIBE on the group and the topic,
//! the commit READ on both (OffsetCommit's).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use veltrix_core::CoreError;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::offset_reset::{ResetError, ResetTo};

use crate::security::Caller;
use crate::server::{HttpState, error};

/// Partitions named in one reset at most.
pub const RESET_PARTITIONS_MAX: usize = 10_000;

/// The body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    topic: String,
    #[serde(default)]
    partitions: Vec<i32>,
    to: String,
    time_ms: Option<i64>,
    offset: Option<i64>,
    #[serde(default)]
    execute: bool,
}

impl ResetBody {
    fn to(&self) -> Result<ResetTo, String> {
        match (self.to.as_str(), self.time_ms, self.offset) {
            ("earliest", None, None) => Ok(ResetTo::Earliest),
            ("latest", None, None) => Ok(ResetTo::Latest),
            ("time", Some(ms), None) => Ok(ResetTo::Time(ms)),
            ("offset", None, Some(o)) => Ok(ResetTo::Offset(o)),
            ("time", None, _) => Err("`to: time` needs `time_ms`".into()),
            ("offset", _, None) => Err("`to: offset` needs `offset`".into()),
            ("earliest" | "latest" | "time" | "offset", ..) => {
                Err(format!("`to: {}` takes no other target field", self.to))
            }
            (other, ..) => Err(format!("`to` is earliest, latest, time or offset; got `{other}`")),
        }
    }
}

pub async fn reset(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(group): Path<String>,
    axum::Json(body): axum::Json<ResetBody>,
) -> Response {
    let op = if body.execute {
        AclOperation::Read
    } else {
        AclOperation::Describe
    };
    let allowed = caller
        .check(&s, op, ResourceType::Group, &group)
        .and_then(|()| caller.check(&s, op, ResourceType::Topic, &body.topic));
    if let Err(denied) = allowed {
        return denied.into_response();
    }
    if body.execute
        && let Err(off) = s
            .security
            .allow_change(Some("reset with `veltrix group reset-offsets --execute`"))
    {
        return off.into_response();
    }
    let to = match body.to() {
        Ok(to) => to,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if body.partitions.len() > RESET_PARTITIONS_MAX {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {RESET_PARTITIONS_MAX} partitions at once"),
        );
    }
    let broker = s.broker.clone();
    let done = tokio::task::spawn_blocking(move || {
        let plan = broker.plan_offset_reset(&group, &body.topic, &body.partitions, to)?;
        if body.execute {
            broker
                .execute_offset_reset(&group, &body.topic, &plan)
                .map_err(Refused::Reset)?;
        }
        Ok::<_, Refused>((plan, body.execute))
    })
    .await;
    match done {
        Ok(Ok((plan, executed))) => axum::Json(json!({ "executed": executed, "plan": plan })).into_response(),
        Ok(Err(Refused::Core(e @ (CoreError::UnknownTopic(_) | CoreError::UnknownPartition { .. })))) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Ok(Err(Refused::Reset(e @ ResetError::Active { .. }))) => error(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Why a reset was not done.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Reset(ResetError),
}
