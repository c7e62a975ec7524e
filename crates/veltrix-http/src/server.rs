//! The routes: `/metrics`, `/health`, `/ready`, `/alerts` and the JSON API
//! under `/api/v1/`, and the listener that serves them within its limits.
//!
//! The listener serves at most `connections_max` connections, closing one more
//! as soon as it is accepted, and closes a connection that does not send a
//! whole request head within `idle_ms_max` (from when it opens, or from its
//! previous response): idle keep-alive connections and clients that trickle
//! their headers alike. At most [`HTTP_REQUESTS_IN_FLIGHT_MAX`] requests are
//! served at once.
//!
//! With TLS (`HttpSecurity::tls`) every connection is HTTPS: its handshake
//! must finish within `idle_ms_max` too, and the certificate files are
//! looked at every 10 s and taken again when they change. Who each request
//! is, and what it may do, is `security.rs`'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use veltrix_core::warn_limit::WarnLimiter;
use veltrix_core::{Broker, Metrics};

use crate::monitor::Monitor;
use crate::security::{Caller, HttpSecurity, Peer};
use veltrix_core::acl::{AclOperation, ResourceType};

/// Requests served at once; more wait for a slot.
pub const HTTP_REQUESTS_IN_FLIGHT_MAX: usize = 64;

/// The pause after a failed accept: out of file descriptors, accepting again at
/// once would spin.
const HTTP_ACCEPT_PAUSE_MS: u64 = 100;

/// Limits of the HTTP listener. Names end in their unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; one more is closed as soon as it is
    /// accepted.
    pub connections_max: usize,
    /// Time a connection has to send a whole request head, from when it opens
    /// or from its previous response.
    pub idle_ms_max: u64,
    /// A repeated warning is logged at most once per this interval.
    pub warning_interval_ms: u64,
    /// At shutdown, how long connections may take to finish their requests.
    pub shutdown_drain_ms_max: u64,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            connections_max: 256,
            idle_ms_max: 30_000,
            warning_interval_ms: 10_000,
            shutdown_drain_ms_max: 10_000,
        }
    }
}

/// What the routes read.
#[derive(Clone)]
pub struct HttpState {
    pub broker: Arc<Broker>,
    pub monitor: Arc<Monitor>,
    pub started: Instant,
    /// Listeners, limits and settings the broker runs with, shown by
    /// `/api/v1/broker`.
    pub info: Value,
    /// Set once every listener is bound and the broker serves.
    pub ready: Arc<AtomicBool>,
    /// TLS, authentication and their limits.
    pub security: Arc<HttpSecurity>,
    /// What `veltrix check` said of the configuration the broker started
    /// with, as its JSON report (`file` null when it started without one),
    /// shown by `/api/v1/config/check`; `None` when the host did not say.
    pub config_check: Option<Arc<Value>>,
}

/// Serves HTTP on `listener` until `shutdown` turns true; then every
/// connection finishes the request it is serving (within
/// `shutdown_drain_ms_max`) and closes, and this returns once they have.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let tls = state.security.tls().cloned();
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "http listener ready");
    let metrics = state.broker.metrics().clone();
    if let Some(tls) = &tls {
        tokio::spawn(reload_tls(tls.clone(), metrics.clone(), shutdown.clone()));
    }
    let app = router(state);
    let limiter = WarnLimiter::new(
        Duration::from_millis(limits.warning_interval_ms),
        metrics.warnings_suppressed.clone(),
    );
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    if let Some(suppressed) = limiter.allow("http_accept_failed", None) {
                        tracing::warn!(error = %e, suppressed, "http accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(HTTP_ACCEPT_PAUSE_MS)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = stopped(&mut shutdown) => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.http.connections_refused.inc();
            if let Some(suppressed) = limiter.allow("http_connections_max", Some(peer.ip())) {
                tracing::warn!(%peer, limit = limits.connections_max, suppressed, "too many http connections; closing the new one");
            }
            continue;
        };
        let (app, metrics, stop, tls) = (app.clone(), metrics.clone(), shutdown.clone(), tls.clone());
        connections.spawn(async move {
            match tls {
                None => connection(stream, peer, app, limits, metrics, stop).await,
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_millis(limits.idle_ms_max), tls.acceptor().accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => connection(stream, peer, app, limits, metrics, stop).await,
                        Ok(Err(e)) => handshake_failed(&metrics, peer, &e.to_string()),
                        Err(_) => handshake_failed(&metrics, peer, "the TLS handshake did not finish in time"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let limit = Duration::from_millis(limits.shutdown_drain_ms_max);
    let finished = tokio::time::timeout(limit, async { while connections.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!(
            connections = connections.len(),
            limit_ms = limits.shutdown_drain_ms_max,
            "http requests still in flight at the shutdown drain limit; closing their connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Returns once `shutdown` is true.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A TLS handshake that failed: counted and logged at debug level (port
/// scanners and plain-HTTP clients make them all day).
fn handshake_failed(metrics: &Metrics, peer: std::net::SocketAddr, why: &str) {
    metrics.http.tls_handshake_failures.inc();
    tracing::debug!(%peer, reason = why, "http tls handshake failed");
}

/// Every [`veltrix_tls::RELOAD_CHECK_MS`], the certificate files looked at,
/// and the configuration taken again if they changed, until `shutdown`.
async fn reload_tls(tls: Arc<veltrix_tls::TlsServer>, metrics: Metrics, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(veltrix_tls::RELOAD_CHECK_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stopped(&mut shutdown) => return,
        }
        let server = tls.clone();
        match tokio::task::spawn_blocking(move || server.reload_if_changed()).await {
            Ok(Ok(true)) => {
                metrics.http.tls_reloads.with_label_values(&["ok"]).inc();
                tracing::info!("http listener's certificate loaded again");
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                metrics.http.tls_reloads.with_label_values(&["failed"]).inc();
                tracing::warn!(error = %e, "the http listener's changed certificate files do not load; the previous certificate stays in force");
            }
            Err(e) => tracing::warn!(error = %e, "checking the http listener's certificate files failed"),
        }
    }
}

/// Serves one connection until it closes, or until `shutdown`, after which it
/// finishes the request it is serving. Each request carries the client's
/// address ([`Peer`]).
async fn connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    app: Router,
    limits: HttpLimits,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    metrics.http.connections.inc();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.idle_ms_max));
    let app = tower::ServiceExt::map_request(app, move |mut request: axum::http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(Peer(peer));
        request
    });
    let served = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(served);
    let outcome = tokio::select! {
        outcome = served.as_mut() => outcome,
        () = stopped(&mut shutdown) => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = outcome
        && e.is_timeout()
    {
        metrics.http.connections_closed.with_label_values(&["idle"]).inc();
    }
    metrics.http.connections.dec();
}

/// Every route, behind [`crate::security::authenticate`].
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/alerts", get(alerts))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/broker", get(broker_info))
        .route("/api/v1/topics", get(topics))
        .route("/api/v1/topics/{name}", get(topic).delete(crate::delete::delete_topic))
        .route(
            "/api/v1/topics/{name}/records",
            get(crate::records::records).post(crate::produce::produce),
        )
        .route("/api/v1/config/check", get(config_check))
        .route("/api/v1/groups/{id}/lag-history", get(lag_history))
        .route("/api/v1/groups/{id}/offsets/reset", post(crate::offsets::reset))
        .route("/api/v1/groups", get(groups))
        .route("/api/v1/groups/{id}", get(group).delete(crate::delete::delete_group))
        .route("/api/v1/dlq/{topic}/letters", get(crate::dlq::letters))
        .route(
            "/api/v1/dlq/{topic}/letters/{partition}/{offset}",
            get(crate::dlq::letter),
        )
        .route("/api/v1/dlq/{topic}/redrive", post(crate::dlq::redrive))
        .route("/api/v1/routes", get(crate::routes::routes))
        .route("/api/v1/routes/{name}", get(crate::routes::route))
        .route("/api/v1/redrives", get(crate::dlq::redrives))
        .route("/api/v1/redrives/{id}", get(crate::dlq::redrive_job))
        .route("/api/v1/tokens", post(crate::security::issue_token))
        .merge(crate::console::routes())
        .fallback(not_found)
        .layer(tower::limit::ConcurrencyLimitLayer::new(HTTP_REQUESTS_IN_FLIGHT_MAX))
        // Outside the limit: requests waiting for a password check, or
        // held back after a failed one, take no slot of the routes'.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::security::authenticate,
        ))
        .with_state(state)
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/broker, /api/v1/topics, /api/v1/groups, /api/v1/dlq/TOPIC/letters, /api/v1/redrives, /api/v1/routes, /alerts, /metrics",
    )
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let broker = s.broker.clone();
    let started = s.started;
    let rendered = tokio::task::spawn_blocking(move || {
        let m = broker.metrics();
        m.refresh(&broker);
        m.uptime_seconds.set(started.elapsed().as_secs_f64());
        prometheus::TextEncoder::new().encode_to_string(&m.registry().gather())
    })
    .await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Ready once serving; a partition refusing writes (poisoned) is reported but
/// does not make the broker unready: its other partitions still serve.
async fn ready(State(s): State<HttpState>) -> Response {
    let poisoned: Vec<Value> = s
        .broker
        .topics()
        .iter()
        .flat_map(|t| {
            t.partitions.iter().filter_map(|p| {
                p.log()
                    .poisoned()
                    .map(|why| json!({ "topic": t.name, "partition": p.index, "cause": why.to_string() }))
            })
        })
        .collect();
    if s.ready.load(Ordering::Acquire) {
        axum::Json(json!({ "status": "ready", "poisoned_partitions": poisoned })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "starting" })),
        )
            .into_response()
    }
}

/// Alerts name groups and topics: DESCRIBE on the cluster.
async fn alerts(State(s): State<HttpState>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(denied) = caller.check_cluster(&s, AclOperation::Describe) {
        return denied.into_response();
    }
    axum::Json(json!({
        "evaluation_interval_ms": s.monitor.config().evaluation_interval_ms,
        "alerts": s.monitor.alerts(),
        "recent": s.monitor.history(),
    }))
    .into_response()
}

/// The broker's settings: DESCRIBE_CONFIGS on the cluster.
async fn broker_info(State(s): State<HttpState>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(denied) = caller.check_cluster(&s, AclOperation::DescribeConfigs) {
        return denied.into_response();
    }
    let m = s.broker.metrics();
    let topics = s.broker.topics();
    let groups = s.broker.groups().list();
    let log_bytes: u64 = topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.log().size_bytes())
        .sum();
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": s.started.elapsed().as_secs(),
        // When the totals below were read, for rates between two answers.
        "sampled_at_ms": s.started.elapsed().as_millis() as u64,
        "data_dir": s.broker.data_dir(),
        "topics": topics.len(),
        "partitions": topics.iter().map(|t| t.partitions.len()).sum::<usize>(),
        "groups": groups.len() + s.broker.share().list().len(),
        "memory": {
            "in_flight_bytes": m.in_flight_bytes.get(),
            "in_flight_bytes_max": m.in_flight_bytes_max.get(),
        },
        "traffic": m.traffic.totals(),
        "connections": {
            "kafka": m.kafka_connections.get(),
            "http": m.http.connections.get(),
        },
        "storage": {
            "log_bytes": log_bytes,
            "disk_available_bytes": m.disk_available_bytes.get(),
        },
        "settings": s.info,
    }))
    .into_response()
}

/// What `veltrix check` said of the configuration file the broker started
/// with: DESCRIBE_CONFIGS on the cluster, as the settings.
async fn config_check(State(s): State<HttpState>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(denied) = caller.check_cluster(&s, AclOperation::DescribeConfigs) {
        return denied.into_response();
    }
    match &s.config_check {
        Some(report) => axum::Json(report.as_ref()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "this broker was not told what `veltrix check` says of its configuration",
        ),
    }
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn topic_json(t: &veltrix_core::Topic) -> Value {
    let partitions: Vec<Value> = t
        .partitions
        .iter()
        .map(|p| {
            let log = p.log();
            json!({
                "partition": p.index,
                "log_start": log.log_start(),
                "end": log.high_watermark(),
                "size_bytes": log.size_bytes(),
                "segments": log.segment_count(),
                "poisoned": log.poisoned().map(|why| why.to_string()),
            })
        })
        .collect();
    let dedup = t.dedup.as_ref().map(|d| {
        let stats = d.stats();
        let settings = d.settings();
        json!({
            "window_ms": settings.window_ms,
            "id_source": settings.id_source.as_str(),
            "id_header": settings.id_header,
            "ids": stats.index.ids,
            "pending": stats.index.pending,
            "ids_max": d.config().ids_max,
            "duplicates_dropped": stats.index.duplicates_dropped,
            "records_without_id": stats.records_without_id,
            "evicted_early": stats.index.evicted_early,
            "effective_window_ms": stats.index.effective_window_ms,
            "memory_bytes": stats.index.memory_bytes,
            "snapshot_ms": (stats.snapshot_ms >= 0).then_some(stats.snapshot_ms),
        })
    });
    json!({
        "name": t.name,
        "id": hex(&t.id),
        "config": t.config,
        "partitions": partitions,
        "dedup": dedup,
    })
}

/// Topics listed at most per page.
pub const TOPICS_PAGE_MAX: usize = 1_000;

/// `GET /api/v1/topics`' paging: names containing `q`, from the `offset`th
/// in name order, `limit` of them (every one when none of the three is
/// given).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsQuery {
    q: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The topics the caller may DESCRIBE, as Metadata lists them, by name; a
/// page of them when asked (`total` counts every match).
async fn topics(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    axum::extract::Query(page): axum::extract::Query<TopicsQuery>,
) -> Response {
    let paged = page.q.is_some() || page.offset.is_some() || page.limit.is_some();
    let mut all: Vec<Arc<veltrix_core::Topic>> = s
        .broker
        .topics()
        .into_iter()
        .filter(|t| page.q.as_deref().is_none_or(|q| t.name.contains(q)))
        .filter(|t| caller.may(&s, AclOperation::Describe, ResourceType::Topic, &t.name))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let total = all.len();
    let offset = page.offset.unwrap_or(0);
    let limit = if paged {
        page.limit.unwrap_or(50).clamp(1, TOPICS_PAGE_MAX)
    } else {
        total
    };
    let list: Vec<Value> = all.iter().skip(offset).take(limit).map(|t| topic_json(t)).collect();
    if paged {
        axum::Json(json!({ "total": total, "offset": offset, "limit": limit, "topics": list })).into_response()
    } else {
        axum::Json(json!({ "total": total, "topics": list })).into_response()
    }
}

/// DESCRIBE on the topic, asked before whether it exists, so that a
/// refusal does not tell.
async fn topic(State(s): State<HttpState>, Extension(caller): Extension<Caller>, Path(name): Path<String>) -> Response {
    if let Err(denied) = caller.check(&s, AclOperation::Describe, ResourceType::Topic, &name) {
        return denied.into_response();
    }
    match s.broker.topic(&name) {
        Some(t) => {
            let mut answer = topic_json(&t);
            answer["deletion"] = crate::delete::topic_deletion(&s, &caller, &name);
            axum::Json(answer).into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("no topic `{name}`")),
    }
}

/// The groups the caller may DESCRIBE, as ListGroups lists them; their lag
/// by the topics the caller may DESCRIBE.
async fn groups(State(s): State<HttpState>, Extension(caller): Extension<Caller>) -> Response {
    let snapshot = s.monitor.snapshot();
    let visible = |group: &str| caller.may(&s, AclOperation::Describe, ResourceType::Group, group);
    let topic_lag = |snapshot: &crate::monitor::Snapshot, group: &str| {
        let mut lag = topic_lag(snapshot, group);
        lag.retain(|l| {
            l["topic"]
                .as_str()
                .is_some_and(|t| caller.may(&s, AclOperation::Describe, ResourceType::Topic, t))
        });
        lag
    };
    let mut list: Vec<Value> = s
        .broker
        .groups()
        .list()
        .into_iter()
        .filter(|g| visible(&g.group_id))
        .map(|g| {
            let lag = topic_lag(&snapshot, &g.group_id);
            json!({
                "group_id": g.group_id,
                "type": g.group_type,
                "protocol_type": g.protocol_type,
                "state": g.state,
                "members": g.members,
                "lag": lag,
            })
        })
        .collect();
    list.extend(
        s.broker
            .share()
            .list()
            .into_iter()
            .filter(|g| visible(&g.group_id))
            .map(|g| {
                json!({
                    "group_id": g.group_id,
                    "type": "share",
                    "protocol_type": "share",
                    "state": g.state,
                    "members": g.members.len(),
                    "lag": topic_lag(&snapshot, &g.group_id),
                })
            }),
    );
    axum::Json(json!({ "lag_evaluated_at_ms": snapshot.at_ms, "groups": list })).into_response()
}

fn topic_lag(snapshot: &crate::monitor::Snapshot, group: &str) -> Vec<Value> {
    snapshot
        .topics
        .iter()
        .filter(|t| t.group == group)
        .map(|t| json!({ "topic": t.topic, "lag_records": t.lag_records, "lag_seconds": t.lag_ms as f64 / 1000.0 }))
        .collect()
}

/// `group`'s total lag at each recent evaluation, for its chart: DESCRIBE
/// on the group, as the group itself.
async fn lag_history(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(denied) = caller.check(&s, AclOperation::Describe, ResourceType::Group, &id) {
        return denied.into_response();
    }
    match s.monitor.lag_history(&id) {
        Some(points) => axum::Json(json!({
            "interval_ms": s.monitor.config().evaluation_interval_ms,
            "points": points.iter().map(|(at, lag)| json!({ "at_ms": at, "lag_records": lag })).collect::<Vec<_>>(),
        }))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no lag evaluated for group `{id}`")),
    }
}

/// A share group: its members and their assignments, its settings, and per
/// share-partition the window (SPSO, SPEO), the records in flight, the
/// delivery counts of the records in the window, what happened to records
/// since the broker started, and the lag.
fn share_group(s: &HttpState, caller: &Caller, id: &str) -> Option<Value> {
    let share = s.broker.share();
    let group = share.describe(id)?;
    let names: std::collections::HashMap<[u8; 16], String> =
        s.broker.topics().iter().map(|t| (t.id, t.name.clone())).collect();
    let topic_name = |t: &[u8; 16]| names.get(t).cloned().unwrap_or_else(|| hex(t));
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "member_epoch": m.member_epoch,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "subscription": m.subscribed,
                "assignment": m.assignment.iter()
                    .map(|(t, ps)| json!({ "topic": topic_name(t), "partitions": ps }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let snapshot = s.monitor.snapshot();
    let partitions: Vec<Value> = share
        .stats()
        .into_iter()
        .filter(|p| p.key.group == id)
        .map(|p| (topic_name(&p.key.topic), p))
        .filter(|(topic, _)| caller.may(s, AclOperation::Describe, ResourceType::Topic, topic))
        .map(|(topic, p)| {
            let lag = snapshot
                .partitions
                .iter()
                .find(|l| l.group == id && l.topic == topic && l.partition == p.key.partition);
            let o = p.outcomes;
            json!({
                "topic": topic,
                "partition": p.key.partition,
                "start_offset": p.summary.start,
                "end_offset": p.summary.end,
                "in_flight": p.summary.acquired,
                "backing_off": p.summary.backing_off,
                "dead_letters_pending": p.summary.dead_letters_pending,
                "done_in_window": p.summary.done_in_window,
                "delivery_counts": {
                    "1": p.summary.deliveries[0],
                    "2": p.summary.deliveries[1],
                    "3": p.summary.deliveries[2],
                    "4": p.summary.deliveries[3],
                    "5+": p.summary.deliveries[4],
                },
                "records": {
                    "acquired": o.acquired,
                    "accepted": o.accepted,
                    "released": o.released,
                    "rejected": o.rejected,
                    "archived": o.archived,
                    "lock_timeouts": o.lock_timeouts,
                    "backoffs": o.backoffs,
                    "dead_lettered": o.dead_letters,
                },
                "log_end": lag.map(|l| l.end),
                "lag_records": lag.map(|l| l.lag_records),
                "lag_seconds": lag.map(|l| l.lag_ms as f64 / 1000.0),
            })
        })
        .collect();
    let mut settings: serde_json::Map<String, Value> = group
        .settings
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    settings.insert(
        veltrix_core::share::settings::DEAD_LETTER_TOPIC_KEY.to_owned(),
        Value::String(share.dead_letter_topic(id).as_deref().unwrap_or_default().to_owned()),
    );
    Some(json!({
        "group_id": group.group_id,
        "type": "share",
        "protocol_type": "share",
        "state": group.state,
        "group_epoch": group.epoch,
        "members": members,
        "settings": settings,
        "lag_evaluated_at_ms": snapshot.at_ms,
        "partitions": partitions,
    }))
}

/// What a group's member is under any protocol; a consumer-protocol member
/// adds its epoch, subscription and assignments.
fn member_json(member_id: &str, instance_id: Option<&str>, client_id: &str, client_host: &str) -> Value {
    json!({
        "member_id": member_id,
        "instance_id": instance_id,
        "client_id": client_id,
        "client_host": client_host,
    })
}

/// DESCRIBE on the group (asked before whether it exists); its offsets of
/// the topics the caller may DESCRIBE, as OffsetFetch answers.
async fn group(State(s): State<HttpState>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    if let Err(denied) = caller.check(&s, AclOperation::Describe, ResourceType::Group, &id) {
        return denied.into_response();
    }
    let coordinator = s.broker.groups();
    let Some(listing) = coordinator.list().into_iter().find(|g| g.group_id == id) else {
        // On the blocking pool: a share-partition's summary waits for an
        // acquisition that may hold it while it reads.
        let found = tokio::task::spawn_blocking(move || {
            let mut v = share_group(&s, &caller, &id).ok_or(id.clone())?;
            v["deletion"] = crate::delete::group_deletion(&s, &caller, &id);
            Ok::<_, String>(v)
        })
        .await;
        return match found {
            Ok(Ok(v)) => axum::Json(v).into_response(),
            Ok(Err(id)) => error(StatusCode::NOT_FOUND, format!("no group `{id}`")),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    };
    let names: std::collections::HashMap<[u8; 16], String> =
        s.broker.topics().iter().map(|t| (t.id, t.name.clone())).collect();
    let assignment = |a: &veltrix_core::groups::Assignment| -> Vec<Value> {
        a.iter()
            .map(|(t, ps)| json!({ "topic": names.get(t).cloned().unwrap_or_else(|| hex(t)), "partitions": ps }))
            .collect()
    };
    let members: Vec<Value> = if listing.group_type == "consumer" {
        coordinator
            .describe_consumer(&id)
            .map(|d| {
                d.members
                    .iter()
                    .map(|m| {
                        let mut member =
                            member_json(&m.member_id, m.instance_id.as_deref(), &m.client_id, &m.client_host);
                        member["member_epoch"] = json!(m.member_epoch);
                        member["subscription"] = json!(m.subscribed_topic_names);
                        member["assignment"] = json!(assignment(&m.assignment));
                        member["target_assignment"] = json!(assignment(&m.target_assignment));
                        member
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        coordinator
            .describe(&id)
            .map(|d| {
                d.members
                    .iter()
                    .map(|m| member_json(&m.member_id, m.instance_id.as_deref(), &m.client_id, &m.client_host))
                    .collect()
            })
            .unwrap_or_default()
    };
    let snapshot = s.monitor.snapshot();
    let offsets: Vec<Value> = snapshot
        .partitions
        .iter()
        .filter(|p| p.group == id && caller.may(&s, AclOperation::Describe, ResourceType::Topic, &p.topic))
        .map(|p| {
            json!({
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "end": p.end,
                "lag_records": p.lag_records,
                "lag_seconds": p.lag_ms as f64 / 1000.0,
            })
        })
        .collect();
    axum::Json(json!({
        "group_id": listing.group_id,
        "type": listing.group_type,
        "protocol_type": listing.protocol_type,
        "state": listing.state,
        "members": members,
        "lag_evaluated_at_ms": snapshot.at_ms,
        "offsets": offsets,
        "deletion": crate::delete::group_deletion(&s, &caller, &id),
    }))
    .into_response()
}
