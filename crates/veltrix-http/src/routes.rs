//! Routes over HTTP: `/api/v1/routes` (every route, with its lag and
//! counts) and `/api/v1/routes/{name}` (one, with each source partition).
//! Read-only: routes are declared in the configuration file. Both take
//! DESCRIBE on the cluster.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use veltrix_core::acl::AclOperation;

use crate::security::Caller;
use crate::server::{HttpState, error};

pub async fn routes(State(s): State<HttpState>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(denied) = caller.check_cluster(&s, AclOperation::Describe) {
        return denied.into_response();
    }
    let b = s.broker.clone();
    match tokio::task::spawn_blocking(move || b.routes()).await {
        Ok(routes) => axum::Json(json!({ "routes": routes })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub async fn route(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    if let Err(denied) = caller.check_cluster(&s, AclOperation::Describe) {
        return denied.into_response();
    }
    let b = s.broker.clone();
    let lookup = name.clone();
    match tokio::task::spawn_blocking(move || b.route(&lookup)).await {
        Ok(Some(r)) => axum::Json(r).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no route {name}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
