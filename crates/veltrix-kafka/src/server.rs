//! Connections: accepting, framing, decoding, dispatching, answering in order.
//!
//! A request is a 4-byte big-endian length and that many bytes. A length outside
//! `1..=request_bytes_max`, a header that does not decode, or an API or version
//! the broker does not serve closes the connection with a log line, as Kafka
//! does; a body that does not decode is answered with nothing and also closes
//! it. Requests on one connection are handled one at a time, so responses go out
//! in request order, which Kafka clients rely on.
//!
//! Memory for requests is bounded twice: one request per connection at a time,
//! of at most `request_bytes_max`, and `in_flight_bytes_max` across all
//! connections. A connection whose request does not fit the global budget waits
//! before reading its body, which pushes back on the client through TCP instead
//! of growing the broker's memory.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use veltrix_core::Broker;

use crate::handlers;

/// Settings of the Kafka listener. Names end in their unit.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Largest request accepted (Kafka's `socket.request.max.bytes`).
    pub request_bytes_max: usize,
    /// Request bytes held in memory across all connections at once.
    pub in_flight_bytes_max: usize,
    /// Connections served at once; more wait in the accept queue.
    pub connections_max: usize,
    /// Upper bound on a fetch's `max_wait_ms`.
    pub fetch_wait_ms_max: u64,
    /// Address put in Metadata responses for clients to connect to.
    pub advertised: SocketAddr,
}

impl KafkaConfig {
    pub fn new(advertised: SocketAddr) -> KafkaConfig {
        KafkaConfig {
            request_bytes_max: 100 << 20,
            in_flight_bytes_max: 512 << 20,
            connections_max: 1000,
            fetch_wait_ms_max: 30_000,
            advertised,
        }
    }
}

/// Serves Kafka clients on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: KafkaConfig,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    assert!(
        config.request_bytes_max <= config.in_flight_bytes_max,
        "request_bytes_max must fit in in_flight_bytes_max, or a largest request could never be read"
    );
    let memory = Arc::new(Semaphore::new(config.in_flight_bytes_max));
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.connections_max));
    tracing::info!(addr = %listener.local_addr()?, "kafka listener ready");
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
            _ = shutdown.changed() => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let broker = broker.clone();
        let config = config.clone();
        let shutdown = shutdown.clone();
        let memory = memory.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer, broker, config, memory, shutdown).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            drop(permit);
        });
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

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    config: Arc<KafkaConfig>,
    memory: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Close> {
    stream.set_nodelay(true)?;
    let mut out = BytesMut::new();
    loop {
        let mut len = [0u8; 4];
        tokio::select! {
            read = stream.read_exact(&mut len) => { read?; }
            _ = shutdown.changed() => return Ok(()),
        }
        let len = i32::from_be_bytes(len);
        if len < 4 || len as usize > config.request_bytes_max {
            tracing::warn!(%peer, len, limit = config.request_bytes_max, "request size out of range; closing");
            return Err(Close::Protocol(format!("request size {len}")));
        }
        // Held until the response is written: the request's bytes (and the
        // batches borrowed from it) live that long.
        let _budget = memory
            .clone()
            .acquire_many_owned(len as u32)
            .await
            .expect("semaphore never closed");
        let mut frame = BytesMut::zeroed(len as usize);
        stream.read_exact(&mut frame).await?;
        let Some(response) = handle_frame(frame.freeze(), peer, &broker, &config).await? else {
            continue;
        };
        out.clear();
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&response);
        let body = (out.len() - 4) as i32;
        out[0..4].copy_from_slice(&body.to_be_bytes());
        stream.write_all(&out).await?;
    }
}

/// Decodes one request and runs it; `None` when no response is due (acks=0).
async fn handle_frame(
    mut frame: Bytes,
    peer: SocketAddr,
    broker: &Arc<Broker>,
    config: &Arc<KafkaConfig>,
) -> Result<Option<Bytes>, Close> {
    let key = frame.clone().get_i16();
    let version = frame.clone().slice(2..).get_i16();
    let Ok(api) = ApiKey::try_from(key) else {
        tracing::warn!(%peer, key, "unknown API key; closing");
        return Err(Close::Protocol(format!("unknown API key {key}")));
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| Close::Protocol(format!("bad request header: {e}")))?;
    let supported = handlers::supported(api);
    if api == ApiKey::ApiVersions && !supported.is_some_and(|(lo, hi)| (lo..=hi).contains(&version)) {
        // Clients probe with their newest ApiVersions; the answer (v0 layout)
        // says which versions to use instead.
        let body = handlers::api_versions_unsupported();
        return Ok(Some(encode(api, 0, header.correlation_id, &body)?));
    }
    if !supported.is_some_and(|(lo, hi)| (lo..=hi).contains(&version)) {
        tracing::warn!(%peer, api = ?api, version, "unsupported API or version; closing");
        return Err(Close::Protocol(format!("unsupported {api:?} v{version}")));
    }
    let request = RequestKind::decode(api, &mut frame, version).map_err(|e| {
        tracing::warn!(%peer, api = ?api, version, error = %e, "undecodable request; closing");
        Close::Protocol(format!("bad {api:?} body: {e}"))
    })?;
    let ctx = handlers::Ctx {
        broker: broker.clone(),
        config: config.clone(),
        version,
    };
    let Some(response) = handlers::handle(ctx, request).await else {
        return Ok(None);
    };
    Ok(Some(encode(api, version, header.correlation_id, &response)?))
}

fn encode(api: ApiKey, version: i16, correlation_id: i32, response: &ResponseKind) -> Result<Bytes, Close> {
    let mut buf = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| Close::Protocol(format!("encoding response header: {e}")))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| Close::Protocol(format!("encoding {api:?} response: {e}")))?;
    Ok(buf.freeze())
}
