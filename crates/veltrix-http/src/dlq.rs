//! Dead letters and their redrive over HTTP: `/api/v1/dlq/{topic}/letters`
//! (list, filtered), `/api/v1/dlq/{topic}/letters/{partition}/{offset}`
//! (one, whole), `POST /api/v1/dlq/{topic}/redrive` (a plan with
//! `"dry_run": true`, else a job, which moves records: only with
//! `[listeners] http_mutations = true`) and `/api/v1/redrives[/{id}]`. The
//! work is the engine's; reading logs and storing jobs happen on the
//! blocking pool.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use veltrix_core::CoreError;
use veltrix_core::redrive::{LetterFilter, LetterView, RedriveJob, RedriveSpec};

use veltrix_core::acl::{AclOperation, ResourceType};

use crate::security::Caller;
use crate::server::{HttpState, error};

/// Bytes of a key or value a listing shows; a single letter shows them whole.
pub const PREVIEW_BYTES_MAX: usize = 1024;

/// The filters of a listing or a redrive, as query parameters or JSON.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    group: Option<String>,
    reason: Option<String>,
    source_topic: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    offset_first: Option<i64>,
    offset_last: Option<i64>,
    partition: Option<i32>,
    header_key: Option<String>,
    header_value: Option<String>,
    limit: Option<usize>,
}

impl Filters {
    fn filter(&self) -> Result<LetterFilter, &'static str> {
        let header = match (&self.header_key, &self.header_value) {
            (Some(k), Some(v)) => Some((k.clone(), v.clone())),
            (None, None) => None,
            _ => return Err("header_key and header_value go together"),
        };
        Ok(LetterFilter {
            group: self.group.clone(),
            reason: self.reason.clone(),
            source_topic: self.source_topic.clone(),
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            offset_first: self.offset_first,
            offset_last: self.offset_last,
            partition: self.partition,
            header,
        })
    }
}

fn core_error(e: CoreError) -> Response {
    let status = match &e {
        CoreError::UnknownTopic(_) | CoreError::UnknownPartition { .. } => StatusCode::NOT_FOUND,
        CoreError::InvalidConfig(_) => StatusCode::BAD_REQUEST,
        CoreError::LimitReached(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// Bytes as text when they are UTF-8, else hex, cut at `max` bytes.
fn bytes_json(b: &Option<Vec<u8>>, max: usize) -> Value {
    let Some(b) = b else { return Value::Null };
    let cut = &b[..b.len().min(max)];
    match std::str::from_utf8(cut) {
        Ok(s) => json!({ "text": s, "bytes": b.len(), "truncated": cut.len() < b.len() }),
        Err(_) => {
            let hex: String = cut.iter().map(|x| format!("{x:02x}")).collect();
            json!({ "hex": hex, "bytes": b.len(), "truncated": cut.len() < b.len() })
        }
    }
}

fn letter_json(l: &LetterView, max: usize) -> Value {
    let header = |k: &str| l.headers.iter().find(|(hk, _)| hk == k).and_then(|(_, v)| v.clone());
    json!({
        "partition": l.partition,
        "offset": l.offset,
        "timestamp_ms": l.timestamp_ms,
        "source": {
            "topic": header("__dlq.errors.topic"),
            "partition": header("__dlq.errors.partition").and_then(|p| p.parse::<i32>().ok()),
            "offset": header("__dlq.errors.offset").and_then(|p| p.parse::<i64>().ok()),
        },
        "group": header("__dlq.errors.group"),
        "reason": header("veltrix.dlq.reason"),
        "deliveries": header("__dlq.errors.delivery.count").and_then(|p| p.parse::<u32>().ok()),
        "message": header("__dlq.errors.message"),
        "redriven": l.redriven,
        "key": bytes_json(&l.key, max),
        "value": bytes_json(&l.value, max),
        "headers": l.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
    })
}

pub fn job_json(j: &RedriveJob) -> Value {
    json!({
        "id": j.id,
        "topic": j.spec.topic,
        "target": j.spec.target,
        "filter": j.spec.filter,
        "records_per_second": j.spec.rate(),
        "state": j.state,
        "moved": j.moved,
        "skipped": j.skipped,
        "remaining": j.remaining(),
        "created_ms": j.created_ms,
        "updated_ms": j.updated_ms,
    })
}

/// `f` on the blocking pool: it reads logs or waits for an fsync.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, CoreError> + Send + 'static) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(core_error(e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// Listing or reading letters reads the dead-letter topic: READ on it.
pub async fn letters(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(topic): Path<String>,
    Query(q): Query<Filters>,
) -> Response {
    if let Err(denied) = caller.check(&s, AclOperation::Read, ResourceType::Topic, &topic) {
        return denied.into_response();
    }
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let limit = q.limit.unwrap_or(100);
    let broker = s.broker.clone();
    match blocking(move || broker.dead_letters(&topic, &filter, limit)).await {
        Ok((letters, truncated)) => axum::Json(json!({
            "letters": letters.iter().map(|l| letter_json(l, PREVIEW_BYTES_MAX)).collect::<Vec<_>>(),
            "more": truncated,
        }))
        .into_response(),
        Err(r) => r,
    }
}

pub async fn letter(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path((topic, partition, offset)): Path<(String, i32, i64)>,
) -> Response {
    if let Err(denied) = caller.check(&s, AclOperation::Read, ResourceType::Topic, &topic) {
        return denied.into_response();
    }
    let broker = s.broker.clone();
    let name = topic.clone();
    match blocking(move || broker.dead_letter(&name, partition, offset)).await {
        Ok(Some(l)) => axum::Json(letter_json(&l, usize::MAX)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no letter at offset {offset} of `{topic}` partition {partition}"),
        ),
        Err(r) => r,
    }
}

/// The body of `POST /api/v1/dlq/{topic}/redrive`.
#[derive(Debug, Default, Deserialize)]
pub struct RedriveBody {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    records_per_second: Option<u32>,
    #[serde(default)]
    dry_run: bool,
    #[serde(flatten)]
    filters: Filters,
}

/// A redrive reads the dead-letter topic and writes to its target: READ on
/// the one, WRITE on the other; without a target, letters go back to
/// whichever topics they came from, named in their headers, so it takes
/// ALTER on the cluster. The plan (`dry_run`) changes nothing and is always
/// answered; a job moves records, so it needs `[listeners] http_mutations`.
pub async fn redrive(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(topic): Path<String>,
    body: Option<axum::Json<RedriveBody>>,
) -> Response {
    let body = body.map(|b| b.0).unwrap_or_default();
    let allowed = caller
        .check(&s, AclOperation::Read, ResourceType::Topic, &topic)
        .and_then(|()| match &body.target {
            Some(target) => caller.check(&s, AclOperation::Write, ResourceType::Topic, target),
            None => caller.check_cluster(&s, AclOperation::Alter),
        });
    if let Err(denied) = allowed {
        return denied.into_response();
    }
    if !body.dry_run
        && let Err(off) = s.security.allow_change(None)
    {
        return off.into_response();
    }
    let filter = match body.filters.filter() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let spec = RedriveSpec {
        topic,
        target: body.target,
        filter,
        records_per_second: body.records_per_second,
    };
    let broker = s.broker.clone();
    if body.dry_run {
        return match blocking(move || broker.plan_redrive(&spec)).await {
            Ok(plan) => axum::Json(json!({ "dry_run": true, "plan": plan })).into_response(),
            Err(r) => r,
        };
    }
    match blocking(move || broker.start_redrive(spec)).await {
        Ok(job) => (StatusCode::CREATED, axum::Json(job_json(&job))).into_response(),
        Err(r) => r,
    }
}

/// Redrive jobs: DESCRIBE on the cluster.
pub async fn redrives(State(s): State<HttpState>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(denied) = caller.check_cluster(&s, AclOperation::Describe) {
        return denied.into_response();
    }
    let jobs: Vec<Value> = s.broker.redriver().jobs().iter().map(job_json).collect();
    axum::Json(json!({ "redrives": jobs })).into_response()
}

pub async fn redrive_job(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    if let Err(denied) = caller.check_cluster(&s, AclOperation::Describe) {
        return denied.into_response();
    }
    match s.broker.redriver().job(id) {
        Some(j) => axum::Json(job_json(&j)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no redrive {id}")),
    }
}
