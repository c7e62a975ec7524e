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

use bytes::{Bytes, BytesMut};
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

/// A decoded request frame.
#[derive(Debug)]
pub enum Decoded {
    /// A request the broker serves, at a version it serves.
    Request {
        correlation_id: i32,
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
    let served = handlers::supported(api).is_some_and(|(lo, hi)| (lo..=hi).contains(&version));
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
        api,
        version,
        request: Box::new(request),
    })
}

/// Decodes one request and runs it; `None` when no response is due (acks=0).
async fn handle_frame(
    frame: Bytes,
    peer: SocketAddr,
    broker: &Arc<Broker>,
    config: &Arc<KafkaConfig>,
) -> Result<Option<Bytes>, Close> {
    let (correlation_id, api, version, request) = match decode_request(frame) {
        Ok(Decoded::Request {
            correlation_id,
            api,
            version,
            request,
        }) => (correlation_id, api, version, request),
        Ok(Decoded::ApiVersionsUnsupported { correlation_id }) => {
            let body = handlers::api_versions_unsupported();
            return Ok(Some(encode(ApiKey::ApiVersions, 0, correlation_id, &body)?));
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "refusing request; closing the connection");
            return Err(Close::Protocol(e.to_string()));
        }
    };
    let ctx = handlers::Ctx {
        broker: broker.clone(),
        config: config.clone(),
        version,
    };
    let Some(response) = handlers::handle(ctx, *request).await else {
        return Ok(None);
    };
    Ok(Some(encode(api, version, correlation_id, &response)?))
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
