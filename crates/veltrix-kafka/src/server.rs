//! Connections: accepting, framing, decoding, dispatching, answering in order.
//!
//! A request is a 4-byte big-endian length and that many bytes. A length outside
//! `1..=request_bytes_max`, a header that does not decode, or an API or version
//! the broker does not serve closes the connection with a log line, as Kafka
//! does; a body that does not decode is answered with nothing and also closes
//! it.
//!
//! # Order and pipelining
//!
//! Requests on one connection take effect in request order and their responses
//! go out in request order, which Kafka clients rely on. Within that, consecutive
//! produce requests overlap: a produce is appended as soon as it is read, and
//! its wait for the fsync (acks=all) runs while the connection reads and appends
//! the next one, so one fsync can cover the batches of several requests of the
//! same producer. Any other request first waits until every earlier response is
//! written, then runs alone. A writer, beside the reader in the connection's
//! task, sends the responses in order; at most
//! `requests_in_flight_per_connection_max` requests of a connection are between
//! being read and being answered.
//!
//! Memory for requests is bounded twice: at most that many requests per
//! connection, each of at most `request_bytes_max` and held until its response is
//! written, and `in_flight_bytes_max` across all connections. A request reserves
//! its share of that budget as its bytes arrive ([`crate::budget`]), so a client
//! that announces a large request and stalls holds little; one that does not
//! send its request whole within `request_body_ms_max` is disconnected. A
//! connection whose request does not fit the budget stops reading, which pushes
//! back on the client through TCP instead of growing the broker's memory.
//!
//! # Connections
//!
//! At most `connections_max` are served; one more is closed as soon as it is
//! accepted, so that a client learns at once instead of hanging in the accept
//! queue. One with nothing in flight that sends nothing for
//! `connection_idle_ms_max` is closed. When `accept` fails for want of file
//! descriptors, the loop pauses (10 ms doubling up to `accept_backoff_ms_max`)
//! instead of spinning. Warnings a client can cause go through a
//! [`WarnLimiter`]. At shutdown the listener stops accepting, connections
//! answer what they read within `shutdown_drain_ms_max`, and [`serve`] returns
//! only once no connection task is left.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use veltrix_core::Broker;
use veltrix_core::warn_limit::WarnLimiter;

use crate::budget::{BodyError, Budget, MemoryBudget};
use crate::handlers;
use crate::memory::{Held, Reservation, ResponseMemory};
use crate::metrics::KafkaMetrics;
use crate::security::ListenerSpec;
use crate::security::sasl::{ConnectionAuth, Outcome};
use crate::warnings::ClientWarnings;

/// Settings of the Kafka listener. Names end in their unit.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Largest request accepted (Kafka's `socket.request.max.bytes`).
    pub request_bytes_max: usize,
    /// Request bytes held in memory across all connections at once.
    pub in_flight_bytes_max: usize,
    /// Connections served at once; a connection over it is closed as soon as
    /// it is accepted.
    pub connections_max: usize,
    /// A connection with no request in flight that sends nothing for this long
    /// is closed (Kafka's `connections.max.idle.ms`).
    pub connection_idle_ms_max: u64,
    /// Requests of one connection read but not yet answered (produce requests
    /// waiting for their fsync, pipelined by the client).
    pub requests_in_flight_per_connection_max: usize,
    /// Time a request has, once its length is read, to arrive whole (time
    /// waiting for the memory budget not counted).
    pub request_body_ms_max: u64,
    /// Upper bound on a fetch's `max_wait_ms`.
    pub fetch_wait_ms_max: u64,
    /// Largest fetch response: a client's `max_bytes` is cut to it (Kafka's
    /// `fetch.max.bytes`). Responses are also counted in `in_flight_bytes_max`,
    /// of which fetches together hold at most half.
    pub fetch_bytes_max: usize,
    /// At shutdown, how long connections may take to answer the requests they
    /// read; past it they are closed.
    pub shutdown_drain_ms_max: u64,
    /// Longest pause of the accept loop after an accept failed for want of
    /// resources (file descriptors, memory); pauses double up to it.
    pub accept_backoff_ms_max: u64,
    /// A repeated warning (same kind, same peer address) is logged at most
    /// once per this interval; the next line says how many were left out.
    pub warning_interval_ms: u64,
    /// Address put in Metadata responses for clients to connect to.
    pub advertised: SocketAddr,
    /// Topics whose loss is an incident: producers writing to them with
    /// acks=0 or 1 are warned about.
    pub critical_topics: BTreeSet<String>,
    /// When requests of each tier are throttled as the memory budget fills.
    pub tiers: crate::tiers::TierLimits,
    /// Connections open at once from one client address (Kafka's
    /// `max.connections.per.ip`); one more is closed at once.
    pub connections_per_ip_max: usize,
    /// New connections a second from one client address (KIP-612's
    /// `connection_creation_rate`), with a second's worth of burst.
    pub connections_per_ip_per_second_max: u32,
    /// How producers whose requests keep failing are slowed.
    pub breaker: crate::breaker::BreakerLimits,
    /// Authentication's time and size limits, for every listener.
    pub auth: crate::security::AuthLimits,
    /// Shared storage, when partitions live in a bucket and PostgreSQL
    /// rather than on local disk (docs/scale-out.md).
    pub shared: Option<crate::shared::SharedStorage>,
}

impl KafkaConfig {
    pub fn new(advertised: SocketAddr) -> KafkaConfig {
        KafkaConfig {
            request_bytes_max: 100 << 20,
            in_flight_bytes_max: 512 << 20,
            connections_max: 1000,
            connection_idle_ms_max: 600_000,
            requests_in_flight_per_connection_max: 16,
            request_body_ms_max: 30_000,
            fetch_wait_ms_max: 30_000,
            fetch_bytes_max: 55 << 20,
            shutdown_drain_ms_max: 10_000,
            accept_backoff_ms_max: 1_000,
            warning_interval_ms: 10_000,
            advertised,
            critical_topics: BTreeSet::new(),
            tiers: crate::tiers::TierLimits::default(),
            connections_per_ip_max: 1000,
            connections_per_ip_per_second_max: 1000,
            breaker: crate::breaker::BreakerLimits::default(),
            auth: crate::security::AuthLimits::default(),
            shared: None,
        }
    }
}

/// A Kafka listener: its socket and how its connections are secured.
pub struct KafkaListener {
    pub tcp: TcpListener,
    pub spec: ListenerSpec,
}

/// A listener as the broker describes it to clients (DescribeConfigs'
/// `listeners`, `advertised.listeners`, ...): every listener is told on
/// every one, so that a client, or `veltrix doctor`, reaching one learns
/// what the others want.
#[derive(Debug, Clone)]
pub(crate) struct BoundListener {
    /// Its name, protocol, advertised address and mechanisms; the same
    /// `Arc` its accept loop serves with.
    pub spec: Arc<ListenerSpec>,
    /// The address its socket is bound to (Kafka's `listeners`).
    pub bound: SocketAddr,
}

/// Serves Kafka clients on `listener` (PLAINTEXT, advertising
/// `config.advertised`) until `shutdown` turns true; see [`serve_listeners`].
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: KafkaConfig,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let spec = ListenerSpec::plaintext("kafka", config.advertised);
    serve_listeners(vec![KafkaListener { tcp: listener, spec }], broker, config, shutdown).await
}

/// Serves Kafka clients on every listener until `shutdown` turns true; then
/// stops accepting, lets every connection finish the requests it has read
/// (for at most `shutdown_drain_ms_max`, then cuts the rest off), and returns
/// once no connection's task is left, so that the broker can be closed. The
/// listeners share the limits: `connections_max`, the per-address ones and
/// the memory budget count all of their connections.
pub async fn serve_listeners(
    listeners: Vec<KafkaListener>,
    broker: Arc<Broker>,
    config: KafkaConfig,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let metrics = KafkaMetrics::new(broker.metrics());
    let memory = Arc::new(MemoryBudget::new(
        config.in_flight_bytes_max,
        config.request_bytes_max,
        metrics.clone(),
    ));
    let responses = ResponseMemory::new(memory.semaphore(), config.in_flight_bytes_max);
    let limiter = Arc::new(WarnLimiter::new(
        Duration::from_millis(config.warning_interval_ms),
        broker.metrics().warnings_suppressed.clone(),
    ));
    let common = Arc::new(Common {
        slots: Arc::new(Semaphore::new(config.connections_max)),
        per_ip: crate::per_ip::PerIp::new(config.connections_per_ip_max, config.connections_per_ip_per_second_max),
        shared: Shared {
            broker,
            metrics,
            memory,
            responses,
            warnings: Arc::new(ClientWarnings::default()),
            limiter,
            breakers: Arc::new(crate::breaker::Breakers::new(config.breaker)),
            guard: Arc::new(crate::tiers::CriticalGuard::new(&config.tiers, Instant::now())),
            config: Arc::new(config),
            listener: Arc::new(ListenerSpec::plaintext("kafka", ([127, 0, 0, 1], 0).into())),
            listeners: bound_listeners(&listeners)?,
        },
    });
    let mut loops = JoinSet::new();
    for (listener, described) in listeners.into_iter().zip(common.shared.listeners.iter()) {
        let spec = described.spec.clone();
        loops.spawn(accept_loop(listener.tcp, spec, common.clone(), shutdown.clone()));
    }
    let mut result = Ok(());
    while let Some(done) = loops.join_next().await {
        if let Ok(Err(e)) = done {
            result = Err(e);
        }
    }
    result
}

/// Every listener as DescribeConfigs tells it, in the order given.
fn bound_listeners(listeners: &[KafkaListener]) -> std::io::Result<Arc<[BoundListener]>> {
    listeners
        .iter()
        .map(|l| {
            Ok(BoundListener {
                spec: Arc::new(l.spec.clone()),
                bound: l.tcp.local_addr()?,
            })
        })
        .collect()
}

/// What the listeners share.
struct Common {
    /// Places among `connections_max`.
    slots: Arc<Semaphore>,
    per_ip: Arc<crate::per_ip::PerIp>,
    /// What connections share; `listener` is set per listener.
    shared: Shared,
}

/// Accepts one listener's connections until `shutdown`, then drains them.
async fn accept_loop(
    tcp: TcpListener,
    spec: Arc<ListenerSpec>,
    common: Arc<Common>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let shared = Shared {
        listener: spec.clone(),
        ..common.shared.clone()
    };
    let (config, metrics, limiter) = (&shared.config, &shared.metrics, &shared.limiter);
    tracing::info!(addr = %tcp.local_addr()?, listener = %spec.name, protocol = spec.protocol.name(), "kafka listener ready");
    let mut backoff = AcceptBackoff::new(config.accept_backoff_ms_max);
    let mut connections = JoinSet::new();
    let mut reload = tokio::time::interval(Duration::from_millis(crate::security::tls::RELOAD_CHECK_MS));
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    let pause = backoff.failed(&e, metrics, limiter);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => break,
                    }
                    continue;
                }
            },
            // Finished connections are reaped as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = reload.tick(), if spec.tls.is_some() => {
                reload_tls(&spec, metrics);
                continue;
            }
            _ = shutdown.changed() => break,
        };
        backoff.reset();
        let Some(open) = admit(&common, &shared, peer) else {
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        metrics.connections_accepted.inc();
        metrics.connections.inc();
        connections.spawn(async move {
            // Counted down even when the task is cut off at the drain limit.
            let _open = open;
            if let Err(e) = secure_connection(stream, peer, shared, shutdown).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
    drop(tcp);
    drain(connections, config.shutdown_drain_ms_max).await;
    Ok(())
}

/// A connection's place, or `None` (its socket is then dropped, closing it):
/// a storm from one address is cut off before it costs anything, and before
/// it can take the places of other addresses' clients; over the limit, a
/// client is told at once rather than left hanging in the accept queue.
fn admit(common: &Common, shared: &Shared, peer: SocketAddr) -> Option<OpenConnection> {
    let (metrics, limiter) = (&shared.metrics, &shared.limiter);
    let ip_slot = match common.per_ip.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(why) => {
            metrics
                .connections_refused_per_ip
                .with_label_values(&[why.reason()])
                .inc();
            if let Some(suppressed) = limiter.allow(why.reason(), Some(peer.ip())) {
                tracing::warn!(%peer, reason = why.reason(), suppressed, "too many connections from one address; closing the new one");
            }
            return None;
        }
    };
    let Ok(permit) = common.slots.clone().try_acquire_owned() else {
        metrics.connections_refused.inc();
        if let Some(suppressed) = limiter.allow("connections_max", Some(peer.ip())) {
            tracing::warn!(%peer, limit = shared.config.connections_max, suppressed, "too many connections; closing the new one");
        }
        return None;
    };
    Some(OpenConnection {
        metrics: metrics.clone(),
        _permit: permit,
        _ip_slot: ip_slot,
    })
}

/// Loads a listener's TLS files again if they changed.
fn reload_tls(spec: &ListenerSpec, metrics: &KafkaMetrics) {
    let Some(tls) = &spec.tls else { return };
    match tls.reload_if_changed() {
        Ok(false) => {}
        Ok(true) => {
            metrics.tls_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(listener = %spec.name, cert = %tls.files().cert.display(), "TLS certificate reloaded");
        }
        Err(e) => {
            metrics.tls_reloads.with_label_values(&["failed"]).inc();
            tracing::error!(listener = %spec.name, error = %e, "TLS files changed but do not load; the previous certificate stays in force");
        }
    }
}

/// A connection of a TLS listener finishes its handshake within
/// `authentication_ms_max` first; then it is served like any other.
async fn secure_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Shared,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Close> {
    let accepted = tokio::time::Instant::now();
    stream.set_nodelay(true)?;
    let listener = shared.listener.clone();
    let Some(tls) = &listener.tls else {
        let (reader, writer) = stream.into_split();
        let auth = ConnectionAuth::new(listener.clone(), shared.config.auth, None, accepted);
        return connection(reader, writer, peer, auth, shared, shutdown).await;
    };
    let limit = Duration::from_millis(shared.config.auth.authentication_ms_max);
    let handshake = tokio::time::timeout(limit, tls.acceptor().accept(stream)).await;
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        failed => {
            shared
                .metrics
                .tls_handshake_failures
                .with_label_values(&[&listener.name])
                .inc();
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no TLS handshake within {} ms", limit.as_millis()),
            };
            if let Some(suppressed) = shared.limiter.allow("tls_handshake", Some(peer.ip())) {
                tracing::warn!(%peer, listener = %listener.name, error = %why, suppressed, "TLS handshake failed; closing");
            }
            return Err(Close::Protocol(why));
        }
    };
    let certificate = match client_principal(&stream, &listener) {
        Ok(name) => name,
        Err(e) => {
            veltrix_core::audit::authentication_failed(&shared.limiter, peer, &listener.name, "SSL", None, &e);
            return Err(Close::Protocol(e));
        }
    };
    let auth = ConnectionAuth::new(listener.clone(), shared.config.auth, certificate, accepted);
    let (reader, writer) = tokio::io::split(stream);
    connection(reader, writer, peer, auth, shared, shutdown).await
}

/// The principal's name a verified client certificate maps to, if the
/// client presented one.
fn client_principal(
    stream: &tokio_rustls::server::TlsStream<TcpStream>,
    listener: &ListenerSpec,
) -> Result<Option<String>, String> {
    let Some(leaf) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return Ok(None);
    };
    let name = crate::security::subject_name(leaf).map_err(|e| e.to_string())?;
    listener
        .principal_mapping
        .map(&name)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// A connection's place among `connections_max`, and its count in
/// `veltrix_kafka_connections`, given back when its task ends or is cut off.
struct OpenConnection {
    metrics: KafkaMetrics,
    _permit: OwnedSemaphorePermit,
    _ip_slot: crate::per_ip::IpSlot,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

/// Waits for the connections to finish what they read, at most `drain_ms_max`;
/// then cuts off the rest and waits until their tasks are gone.
async fn drain(mut connections: JoinSet<()>, drain_ms_max: u64) {
    if connections.is_empty() {
        return;
    }
    tracing::info!(
        connections = connections.len(),
        "kafka listener closed; finishing requests in flight"
    );
    let limit = Duration::from_millis(drain_ms_max);
    let finished = tokio::time::timeout(limit, async { while connections.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!(
            connections = connections.len(),
            limit_ms = drain_ms_max,
            "requests still in flight at the shutdown drain limit; closing their connections"
        );
        connections.shutdown().await;
    }
}

/// The first pause of the accept loop after it ran out of a resource.
const ACCEPT_BACKOFF_MS_MIN: u64 = 10;

/// How long the accept loop pauses after a failed accept. Out of file
/// descriptors (or memory), `accept` fails at once for as long as the shortage
/// lasts, with the client still queued: retrying at once spins a core and
/// writes a warning per attempt. So the loop pauses, for twice as long each
/// time up to `accept_backoff_ms_max`, and warns at the limiter's pace.
struct AcceptBackoff {
    next_ms: u64,
    max_ms: u64,
}

impl AcceptBackoff {
    fn new(max_ms: u64) -> AcceptBackoff {
        AcceptBackoff {
            next_ms: ACCEPT_BACKOFF_MS_MIN.min(max_ms),
            max_ms,
        }
    }

    /// Counts and (rate-limited) logs the failure; returns the pause before the
    /// next accept.
    fn failed(&mut self, e: &std::io::Error, metrics: &KafkaMetrics, limiter: &WarnLimiter) -> Duration {
        let (kind, shortage) = match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => ("file_handles", true),
            Some(libc::ENOBUFS | libc::ENOMEM) => ("memory", true),
            // A client gone before it was accepted, and the like: that
            // connection's trouble, not the listener's.
            _ => ("other", false),
        };
        metrics.accept_errors.with_label_values(&[kind]).inc();
        let pause = if shortage {
            let pause = self.next_ms;
            self.next_ms = (self.next_ms * 2).min(self.max_ms);
            pause
        } else {
            0
        };
        if let Some(suppressed) = limiter.allow("accept_failed", None) {
            tracing::warn!(error = %e, kind, pause_ms = pause, suppressed, "accept failed");
        }
        Duration::from_millis(pause)
    }

    /// An accept succeeded: the next shortage starts from the first pause.
    fn reset(&mut self) {
        self.next_ms = ACCEPT_BACKOFF_MS_MIN.min(self.max_ms);
    }
}

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
enum Close {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

/// A request read from a connection whose response is not written yet.
struct InFlight {
    /// The encoded response, once ready; `None` when none is due (acks=0).
    response: Pin<Box<dyn Future<Output = Result<Option<Bytes>, Close>> + Send>>,
    /// The request's share of the global memory budget.
    _budget: Budget,
    /// What its response holds of the budget (fetch), until written.
    _response_budget: Option<Reservation>,
    /// The request's place in the connection's pipeline.
    _slot: OwnedSemaphorePermit,
}

/// Counts a served request and its latency, from when it was read to when its
/// response is ready.
fn observe(metrics: &KafkaMetrics, api: ApiKey, started: Instant) {
    if !metrics.enabled() {
        return;
    }
    let name = api_name(api);
    metrics.requests.with_label_values(&[name]).inc();
    metrics
        .request_seconds
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());
}

/// The API's name as metrics label it (`Produce`, `Fetch`, ...): one of the
/// served APIs, a fixed set.
pub(crate) fn api_name(api: ApiKey) -> &'static str {
    handlers::served_api(api).map_or("Other", |s| s.name)
}

/// What every connection of a listener shares.
#[derive(Clone)]
struct Shared {
    broker: Arc<Broker>,
    /// The front door's metrics.
    metrics: KafkaMetrics,
    config: Arc<KafkaConfig>,
    /// The memory budget for requests.
    memory: Arc<MemoryBudget>,
    /// Fetch responses' part of it.
    responses: ResponseMemory,
    warnings: Arc<ClientWarnings>,
    /// Rate limits the warnings that clients can trigger.
    limiter: Arc<WarnLimiter>,
    /// Producers' failed requests, to slow those that keep failing.
    breakers: Arc<crate::breaker::Breakers>,
    /// The critical tier's service, which throttles the other tiers.
    guard: Arc<crate::tiers::CriticalGuard>,
    /// The listener the connection came through.
    listener: Arc<ListenerSpec>,
    /// Every listener of the broker, for DescribeConfigs.
    listeners: Arc<[BoundListener]>,
}

async fn connection<R, W>(
    reader: R,
    writer: W,
    peer: SocketAddr,
    auth: ConnectionAuth,
    shared: Shared,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Close>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let depth = shared.config.requests_in_flight_per_connection_max.max(1);
    let (tx, rx) = mpsc::channel(depth);
    // One task, so that cutting it off at shutdown stops both halves. Once the
    // reader is done (closed, refused or shutting down), the writer finishes
    // what was read before, then the connection closes.
    let (read, written) = tokio::join!(
        read_requests(reader, peer, id, auth, &shared, shutdown, tx),
        write_responses(writer, rx)
    );
    // Share sessions live as long as their connection: what they hold goes
    // back to the other members now, not when its locks run out.
    let broker = shared.broker.clone();
    let _ = tokio::task::spawn_blocking(move || broker.share().connection_closed(id)).await;
    read.and(written)
}

/// Sends responses in request order, each once its request is done. Each is a
/// whole frame already, length included, so it goes out without a copy.
async fn write_responses<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<InFlight>) -> Result<(), Close> {
    while let Some(in_flight) = rx.recv().await {
        let Some(frame) = in_flight.response.await? else {
            continue;
        };
        writer.write_all(&frame).await?;
        // A TLS stream holds what it encrypted until flushed; a socket's
        // flush is free.
        writer.flush().await?;
    }
    Ok(())
}

/// A connection's requests between read and answered: at most `depth`.
struct Pipeline {
    slots: Arc<Semaphore>,
    depth: usize,
    /// Set by a response over a client quota: no request is read until then.
    mute: Arc<crate::quota::Mute>,
}

impl Pipeline {
    /// Nothing in flight: every slot free.
    fn idle(&self) -> bool {
        self.slots.available_permits() == self.depth
    }

    /// One slot: the request may start beside those in flight.
    async fn beside(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed")
    }

    /// Every slot: every earlier request is answered first.
    async fn after_all(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_many_owned(self.depth as u32)
            .await
            .expect("semaphore never closed")
    }
}

/// Reads requests and starts serving each, in order, handing them to the
/// writer; returns when the connection is done reading (closed, idle, refused
/// or shutting down).
async fn read_requests<R: AsyncRead + Unpin>(
    mut reader: R,
    peer: SocketAddr,
    connection: u64,
    mut auth: ConnectionAuth,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
    tx: mpsc::Sender<InFlight>,
) -> Result<(), Close> {
    let depth = shared.config.requests_in_flight_per_connection_max.max(1);
    let pipeline = Pipeline {
        slots: Arc::new(Semaphore::new(depth)),
        depth,
        mute: Arc::default(),
    };
    // A client has this long to authenticate, whatever it sends meanwhile
    // (counted from the accept: a TLS handshake's time is not given again).
    let authenticate_by = auth.authenticate_by();
    loop {
        // A client over its quota waits before its next request is read
        // (KIP-219), whether or not it honours `throttle_time_ms` itself.
        if let Some(until) = pipeline.mute.until() {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
        let bytes_max = auth.request_bytes_max(shared.config.request_bytes_max);
        let next = read_frame(&mut reader, peer, shared, bytes_max, &pipeline, &mut shutdown);
        let read = if auth.authenticated() {
            next.await?
        } else {
            match tokio::time::timeout_at(authenticate_by, next).await {
                Ok(read) => read?,
                Err(_) => {
                    shared
                        .metrics
                        .connections_closed
                        .with_label_values(&["authentication_timeout"])
                        .inc();
                    let why = "did not authenticate in time";
                    let listener = &auth.listener().name;
                    veltrix_core::audit::authentication_failed(&shared.limiter, peer, listener, "", None, why);
                    return Err(Close::Protocol(why.into()));
                }
            }
        };
        let Some((frame, budget)) = read else {
            return Ok(());
        };
        let decoded = decode_request(frame.freeze()).map_err(|e| {
            if let Some(suppressed) = shared.limiter.allow("bad_request", Some(peer.ip())) {
                tracing::warn!(%peer, error = %e, suppressed, "refusing request; closing the connection");
            }
            Close::Protocol(e.to_string())
        })?;
        if let Decoded::Request { api, .. } = &decoded {
            if matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
                let (in_flight, close) = sasl_in_flight(decoded, budget, peer, &mut auth, shared, &pipeline).await?;
                if tx.send(in_flight).await.is_err() || close {
                    return Ok(());
                }
                continue;
            }
            if let Err(why) = auth.admits(*api, Instant::now()) {
                if let Some(suppressed) = shared.limiter.allow("unauthenticated_request", Some(peer.ip())) {
                    tracing::warn!(%peer, listener = %auth.listener().name, reason = %why, suppressed, "refusing request; closing the connection");
                }
                return Err(Close::Protocol(why));
            }
        }
        let in_flight = dispatch(decoded, budget, peer, connection, &auth, shared, &pipeline, &shutdown).await?;
        if tx.send(in_flight).await.is_err() {
            // The writer stopped: the peer is gone.
            return Ok(());
        }
    }
}

/// A SaslHandshake or SaslAuthenticate, answered in order after every
/// earlier request; `true` when the connection closes after its answer (a
/// failed authentication, whose answer is held back a little).
async fn sasl_in_flight(
    decoded: Decoded,
    budget: Budget,
    peer: SocketAddr,
    auth: &mut ConnectionAuth,
    shared: &Shared,
    pipeline: &Pipeline,
) -> Result<(InFlight, bool), Close> {
    let Decoded::Request {
        correlation_id,
        api,
        version,
        request,
        ..
    } = decoded
    else {
        return Err(Close::Protocol("not a SASL request".into()));
    };
    let slot = pipeline.after_all().await;
    let answer = Answer {
        api,
        version,
        correlation_id,
        started: Instant::now(),
        metrics: shared.metrics.clone(),
    };
    let mut delay_ms = 0;
    let mut close = false;
    let response = match *request {
        RequestKind::SaslHandshake(r) => {
            let (response, refused) = auth.handshake(&r, Instant::now());
            close = refused;
            ResponseKind::SaslHandshake(response)
        }
        RequestKind::SaslAuthenticate(r) => {
            let mechanism = auth.mechanism_name();
            let nonce = veltrix_core::auth::ServerNonce::from_random(rand::random());
            let (response, outcome) = auth.authenticate(&r, version, &shared.broker, nonce).await;
            let result = match &outcome {
                Outcome::Continue => None,
                Outcome::Done => Some("ok"),
                Outcome::Failed { reason, user } => {
                    let listener = &auth.listener().name;
                    veltrix_core::audit::authentication_failed(
                        &shared.limiter,
                        peer,
                        listener,
                        mechanism,
                        user.as_deref(),
                        reason,
                    );
                    delay_ms = shared.config.auth.authentication_failure_delay_ms;
                    close = true;
                    Some("failed")
                }
            };
            if let Some(result) = result {
                shared
                    .metrics
                    .authentications
                    .with_label_values(&[mechanism, result])
                    .inc();
            }
            ResponseKind::SaslAuthenticate(response)
        }
        _ => return Err(Close::Protocol(format!("{api:?} is not a SASL request"))),
    };
    let frame = answer.encode(&response)?;
    answer.observe();
    let response = async move {
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        Ok(Some(frame))
    };
    let in_flight = InFlight {
        response: Box::pin(response),
        _budget: budget,
        _response_budget: None,
        _slot: slot,
    };
    Ok((in_flight, close))
}

/// The next request's bytes, with the memory budget they hold until the
/// response is written (the request's bytes, and the batches borrowed from
/// them, live that long). `None` once the connection is idle or the broker
/// shuts down; an error closes the connection (a length out of range, a body
/// too slow to arrive).
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    peer: SocketAddr,
    shared: &Shared,
    bytes_max: usize,
    pipeline: &Pipeline,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<(BytesMut, Budget)>, Close> {
    let config = &shared.config;
    let len = match read_length(reader, config.connection_idle_ms_max, || pipeline.idle(), shutdown).await? {
        Length::Read(len) => len,
        Length::Shutdown => return Ok(None),
        Length::Idle => {
            shared.metrics.connections_closed.with_label_values(&["idle"]).inc();
            tracing::debug!(%peer, limit_ms = config.connection_idle_ms_max, "idle connection; closing");
            return Ok(None);
        }
    };
    if len < 4 || len as usize > bytes_max {
        if let Some(suppressed) = shared.limiter.allow("request_size", Some(peer.ip())) {
            tracing::warn!(%peer, len, limit = bytes_max, suppressed, "request size out of range; closing");
        }
        return Err(Close::Protocol(format!("request size {len}")));
    }
    let body_limit = Duration::from_millis(config.request_body_ms_max);
    match shared.memory.read_body(reader, len as usize, body_limit).await {
        Ok(read) => Ok(Some(read)),
        Err(BodyError::Io(e)) => Err(e.into()),
        Err(e @ BodyError::TimedOut { .. }) => {
            shared
                .metrics
                .connections_closed
                .with_label_values(&["request_body_timeout"])
                .inc();
            if let Some(suppressed) = shared.limiter.allow("request_body_timeout", Some(peer.ip())) {
                tracing::warn!(%peer, error = %e, suppressed, "request too slow; closing");
            }
            Err(Close::Protocol(e.to_string()))
        }
    }
}

/// What waiting for the next request's length came to.
enum Length {
    Read(i32),
    /// Nothing arrived for `connection_idle_ms_max` with nothing in flight.
    Idle,
    Shutdown,
}

/// Reads the next request's 4-byte length. Every `idle_ms_max` without it,
/// the connection is idle if `idle()` says nothing is in flight (a produce
/// waiting for its fsync is not idleness).
async fn read_length<R: AsyncRead + Unpin>(
    reader: &mut R,
    idle_ms_max: u64,
    idle: impl Fn() -> bool,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<Length> {
    if *shutdown.borrow_and_update() {
        return Ok(Length::Shutdown);
    }
    let mut len = [0u8; 4];
    let mut got = 0;
    let idle_max = Duration::from_millis(idle_ms_max);
    let mut deadline = tokio::time::Instant::now() + idle_max;
    while got < len.len() {
        // `read` is cancel-safe: bytes read are never lost to the timer.
        tokio::select! {
            read = reader.read(&mut len[got..]) => match read? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            },
            _ = tokio::time::sleep_until(deadline) => {
                if idle() {
                    return Ok(Length::Idle);
                }
                deadline = tokio::time::Instant::now() + idle_max;
            }
            _ = shutdown.changed() => return Ok(Length::Shutdown),
        }
    }
    Ok(Length::Read(i32::from_be_bytes(len)))
}

/// Starts serving a decoded request, in order: a produce is appended now and
/// answered once durable; anything else runs once every earlier request is
/// answered.
#[allow(clippy::too_many_arguments)]
async fn dispatch(
    decoded: Decoded,
    budget: Budget,
    peer: SocketAddr,
    connection: u64,
    auth: &ConnectionAuth,
    shared: &Shared,
    pipeline: &Pipeline,
    shutdown: &watch::Receiver<bool>,
) -> Result<InFlight, Close> {
    let (correlation_id, client_id, api, version, request) = match decoded {
        Decoded::Request {
            correlation_id,
            client_id,
            api,
            version,
            request,
        } => (correlation_id, client_id, api, version, request),
        Decoded::ApiVersionsUnsupported { correlation_id } => {
            let slot = pipeline.after_all().await;
            let body = handlers::api_versions_unsupported();
            let response = encode(ApiKey::ApiVersions, 0, correlation_id, &body)?;
            return Ok(InFlight {
                response: Box::pin(std::future::ready(Ok(Some(response)))),
                _budget: budget,
                _response_budget: None,
                _slot: slot,
            });
        }
    };
    let ctx = handlers::Ctx {
        broker: shared.broker.clone(),
        metrics: shared.metrics.clone(),
        config: shared.config.clone(),
        version,
        client_id: client_id.unwrap_or_default(),
        peer,
        connection,
        warnings: shared.warnings.clone(),
        responses: shared.responses.clone(),
        held: Held::default(),
        limiter: shared.limiter.clone(),
        shutdown: shutdown.clone(),
        mute: pipeline.mute.clone(),
        guard: shared.guard.clone(),
        listener: shared.listener.clone(),
        listeners: shared.listeners.clone(),
        principal: auth.principal(),
        shared_commits: None,
    };
    let answer = Answer {
        api,
        version,
        correlation_id,
        started: Instant::now(),
        metrics: shared.metrics.clone(),
    };
    Ok(match *request {
        RequestKind::Produce(produce) => produce_in_flight(ctx, answer, produce, budget, peer, shared, pipeline).await,
        other => {
            // Every earlier request answered first: this one sees (and is
            // seen after) all of their effects.
            let slot = pipeline.after_all().await;
            let held = ctx.held.clone();
            let response = handlers::handle(ctx, other)
                .await
                .map(|r| answer.encode(&r))
                .transpose()?;
            answer.observe();
            InFlight {
                response: Box::pin(std::future::ready(Ok(response))),
                _budget: budget,
                _response_budget: held.take(),
                _slot: slot,
            }
        }
    })
}

/// A produce, appended now in order and answered once durable; the bytes
/// count against the client's quota as they arrive, and its tier's admission
/// and a failing producer's slowing go into its `throttle_time_ms`.
async fn produce_in_flight(
    ctx: handlers::Ctx,
    answer: Answer,
    produce: kafka_protocol::messages::ProduceRequest,
    budget: Budget,
    peer: SocketAddr,
    shared: &Shared,
    pipeline: &Pipeline,
) -> InFlight {
    // Appended now, in order; answered once durable. The bytes count
    // against the client's quota as they arrive.
    let slot = pipeline.beside().await;
    let bytes = handlers::produce::records_bytes(&produce);
    let quota_ms = crate::quota::record_produce(&ctx, bytes);
    let tier = crate::tiers::request_tier(&ctx, produce.topic_data.iter().map(|t| t.name.0.as_str()));
    let throttle_ms = quota_ms.max(crate::tiers::admit(&ctx, tier, "produce"));
    let held = crate::tiers::TierBytes::hold(&ctx, tier, bytes);
    let guard = (tier == veltrix_core::Tier::Critical)
        .then(|| (ctx.guard.clone(), ctx.metrics.tier_critical_produce_seconds.clone()));
    let failing = FailingProducer {
        breakers: shared.breakers.clone(),
        client_id: ctx.client_id.clone(),
        peer,
        mute: ctx.mute.clone(),
        metrics: ctx.metrics.clone(),
    };
    let written = handlers::produce::write(ctx, produce).await;
    let response = async move {
        let Some(written) = written else {
            return Err(Close::Protocol("produce task failed".into()));
        };
        let finished = written.finish().await.map(|r| {
            let slowed = failing.answered(&r);
            r.with_throttle_time_ms(throttle_ms.max(slowed))
        });
        drop(held);
        if let Some((guard, seconds)) = guard {
            let now = Instant::now();
            let took = now.saturating_duration_since(answer.started);
            seconds.observe(took.as_secs_f64());
            guard.answered(took, now);
        }
        answer.observe();
        finished.map(|r| answer.encode(&ResponseKind::Produce(r))).transpose()
    };
    InFlight {
        response: Box::pin(response),
        _budget: budget,
        _response_budget: None,
        _slot: slot,
    }
}

/// What a produce's answer needs to slow a producer that keeps failing.
struct FailingProducer {
    breakers: Arc<crate::breaker::Breakers>,
    client_id: String,
    peer: SocketAddr,
    mute: Arc<crate::quota::Mute>,
    metrics: KafkaMetrics,
}

impl FailingProducer {
    /// Counts `r` against its producer if a partition was refused for
    /// something the producer sent; the wait it owes (muted already).
    fn answered(&self, r: &kafka_protocol::messages::ProduceResponse) -> i32 {
        use kafka_protocol::ResponseError as E;
        let refused = [
            E::CorruptMessage,
            E::UnknownTopicOrPartition,
            E::MessageTooLarge,
            E::RecordListTooLarge,
            E::InvalidRequiredAcks,
            E::TopicAuthorizationFailed,
            E::InvalidTimestamp,
            E::UnsupportedForMessageFormat,
            E::InvalidRecord,
        ]
        .map(|e| e.code());
        let failed = r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .any(|p| refused.contains(&p.error_code));
        if !failed {
            return 0;
        }
        let Some(t) = self.breakers.failed(&self.client_id, tokio::time::Instant::now()) else {
            return 0;
        };
        self.mute.mute(t.ms);
        self.metrics.failing_producers_throttled.inc();
        if t.first {
            tracing::warn!(client_id = %self.client_id, peer = %self.peer, throttle_ms = t.ms, "a producer keeps sending requests the broker refuses; slowing it down");
        }
        i32::try_from(t.ms).unwrap_or(i32::MAX)
    }
}

/// What answering a request needs to know of it.
struct Answer {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    /// When it was read, for its latency.
    started: Instant,
    metrics: KafkaMetrics,
}

impl Answer {
    /// Counts the request and its latency, now that its response is ready.
    fn observe(&self) {
        observe(&self.metrics, self.api, self.started);
    }

    /// The response frame.
    fn encode(&self, response: &ResponseKind) -> Result<Bytes, Close> {
        encode(self.api, self.version, self.correlation_id, response)
    }
}

/// A decoded request frame.
#[derive(Debug)]
pub enum Decoded {
    /// A request the broker serves, at a version it serves.
    Request {
        correlation_id: i32,
        /// The client's self-chosen name, from the request header.
        client_id: Option<String>,
        api: ApiKey,
        version: i16,
        /// Boxed: request bodies are large and most are short-lived.
        request: Box<RequestKind>,
    },
    /// ApiVersions at a version the broker does not serve: clients probe with
    /// their newest one, and the answer (in the v0 layout) says what to use.
    ApiVersionsUnsupported { correlation_id: i32 },
}

/// Why a request frame cannot be served; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("bad request header: {0}")]
    BadHeader(String),
    #[error("{api:?} v{version} is not served")]
    Unsupported { api: ApiKey, version: i16 },
    #[error("bad {api:?} v{version} body: {reason}")]
    BadBody { api: ApiKey, version: i16, reason: String },
}

/// Decodes a request frame (the bytes after the length), checking that the API
/// and version are served. Pure and total: any bytes give `Ok` or `Err`, never a
/// panic; the fuzz target `request_decode` holds it to that.
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, DecodeError> {
    if frame.len() < 4 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|_| DecodeError::UnknownApi(key))?;
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| DecodeError::BadHeader(e.to_string()))?;
    let served = handlers::served_api(api).is_some_and(|s| s.serves(version));
    if !served {
        if api == ApiKey::ApiVersions {
            return Ok(Decoded::ApiVersionsUnsupported {
                correlation_id: header.correlation_id,
            });
        }
        return Err(DecodeError::Unsupported { api, version });
    }
    let request = RequestKind::decode(api, &mut frame, version).map_err(|e| DecodeError::BadBody {
        api,
        version,
        reason: e.to_string(),
    })?;
    Ok(Decoded::Request {
        correlation_id: header.correlation_id,
        client_id: header.client_id.as_ref().map(|c| c.as_str().to_owned()),
        api,
        version,
        request: Box::new(request),
    })
}

/// Room for the frame length and a response header (with tagged fields).
const RESPONSE_HEADER_BYTES_HINT: usize = 64;

/// One response frame: length, header and body.
fn encode(api: ApiKey, version: i16, correlation_id: i32, response: &ResponseKind) -> Result<Bytes, Close> {
    // A fetch response carries up to a fetch's worth of records: sized up
    // front, it is written once instead of growing through reallocations.
    let body_hint = match response {
        ResponseKind::Fetch(r) => r.compute_size(version).unwrap_or(0),
        _ => 0,
    };
    let mut buf = BytesMut::with_capacity(body_hint + RESPONSE_HEADER_BYTES_HINT);
    // The frame's length, filled in below.
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| Close::Protocol(format!("encoding response header: {e}")))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| Close::Protocol(format!("encoding {api:?} response: {e}")))?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| {
        Close::Protocol(format!(
            "a {api:?} response of {} bytes exceeds the protocol's limit",
            buf.len() - 4
        ))
    })?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}
