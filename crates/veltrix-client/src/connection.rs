//! One TCP connection to a broker: framing, correlation ids, timeouts and
//! ApiVersions negotiation.
//!
//! A request is a 4-byte big-endian length and that many bytes: a request header
//! (API key, version, correlation id, client id) and the body. The answer has
//! the same framing and echoes the correlation id. Requests go out one at a
//! time and each waits for its answer, so answers cannot arrive out of order; a
//! mismatched correlation id is a protocol violation.
//!
//! Every read is bounded: a response frame longer than
//! [`ClientConfig::response_bytes_max`] is refused before its body is read, and
//! every request is bounded in time by [`ClientConfig::request_timeout`]. After
//! a failure that can leave the byte stream out of step (an I/O error, a bad
//! frame, a timeout with a response possibly still on its way) the connection is
//! marked broken and refuses further requests rather than misreading them.
//!
//! With [`Security`], the connection runs TLS ([`TlsSettings`]) and
//! authenticates with SASL ([`SaslSettings`]) as Kafka's `SSL`, `SASL_PLAINTEXT`
//! and `SASL_SSL` clients do: the TLS handshake, ApiVersions, then
//! SaslHandshake and SaslAuthenticate, all within
//! [`ClientConfig::connect_timeout`], and no answer before authentication
//! longer than [`UNAUTHENTICATED_RESPONSE_BYTES_MAX`]. A connection without
//! TLS answered in TLS fails with [`ClientError::TlsListener`], so a client of
//! the wrong protocol hears why.
//!
//! On connect the client asks the broker which versions of each API it serves
//! (ApiVersions) and from then on uses, for each API, the highest version that
//! both the broker and this client speak ([`CLIENT_VERSIONS`]). An API with no
//! common version fails with [`ClientError::Unsupported`], naming both ranges.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{ClientError, KafkaError};
use crate::sasl::SaslSettings;
use crate::stream::{Stream, StreamReader, StreamWriter};
use crate::tls::{self, TlsSettings};

/// The largest answer read before the connection has authenticated
/// (ApiVersions, SaslHandshake, SaslAuthenticate): a few kilobytes in
/// practice.
pub const UNAUTHENTICATED_RESPONSE_BYTES_MAX: usize = 1 << 20;

/// How a connection protects itself: Kafka's security protocols are the
/// four combinations (`PLAINTEXT` is the default, neither).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// TLS (`SSL`, `SASL_SSL`).
    pub tls: Option<TlsSettings>,
    /// SASL authentication (`SASL_PLAINTEXT`, `SASL_SSL`).
    pub sasl: Option<SaslSettings>,
}

/// Settings of a connection. Names end in their unit.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Sent in every request header; brokers show it in their logs.
    pub client_id: String,
    /// Upper bound on establishing the TCP connection and negotiating versions.
    pub connect_timeout: Duration,
    /// Upper bound on one request, from sending it to having decoded its answer.
    /// Long-polling fetches add their own wait on top.
    pub request_timeout: Duration,
    /// The largest response frame accepted; a longer one breaks the connection
    /// before its body is read.
    pub response_bytes_max: usize,
    /// TLS and SASL; by default neither.
    pub security: Security,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            client_id: "veltrix-client".to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            response_bytes_max: 64 << 20,
            security: Security::default(),
        }
    }
}

/// The versions of each API this client speaks: what its typed helpers build
/// requests for and read responses of.
pub const CLIENT_VERSIONS: [(ApiKey, i16, i16); 27] = [
    (ApiKey::ApiVersions, 0, 3),
    // v1: the SASL messages in SaslAuthenticate requests (KIP-152).
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::Produce, 3, 12),
    // From v13 on, Fetch names topics by id only.
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    // From v2 on, a null topic list asks for every committed offset; v9 is for
    // members of KIP-848 groups.
    (ApiKey::OffsetFetch, 2, 8),
    // v9 is for members of KIP-848 groups.
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    // Share groups (KIP-932): v1 is the first version of the final protocol
    // (v0 was the early-access one), and the newest the codec has.
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    // Security administration: v1 is the first with pattern types.
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// The client's range for `api`, if it speaks it at all.
pub fn client_versions(api: ApiKey) -> Option<(i16, i16)> {
    CLIENT_VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

/// The highest version in both ranges, if they overlap.
pub fn pick_version(client: (i16, i16), broker: (i16, i16)) -> Option<i16> {
    let low = client.0.max(broker.0);
    let high = client.1.min(broker.1);
    (low <= high).then_some(high)
}

/// The API key of a request type.
fn api_of<R: Request>() -> Result<ApiKey, ClientError> {
    ApiKey::try_from(R::KEY).map_err(|()| ClientError::InvalidArgument(format!("unknown API key {}", R::KEY)))
}

/// A connection to one broker, with the versions negotiated for it.
#[derive(Debug)]
pub struct Connection {
    /// Where the connection goes, as given; used in error messages.
    addr: String,
    stream: Stream,
    config: ClientConfig,
    /// The id of the last request sent.
    correlation_id: i32,
    /// What the broker said it serves: API key to (min, max) version.
    broker_versions: HashMap<i16, (i16, i16)>,
    /// Set after a failure that may leave the stream out of step.
    broken: bool,
    /// Where responses are read; reused once the previous one is dropped.
    read_buf: BytesMut,
    /// Until authenticated, answers are at most
    /// [`UNAUTHENTICATED_RESPONSE_BYTES_MAX`].
    authenticated: bool,
}

impl Connection {
    /// Connects to `addr` (`HOST:PORT`), runs the TLS handshake if asked,
    /// negotiates API versions and authenticates if asked, all within
    /// `config.connect_timeout`.
    pub async fn connect(addr: &str, config: ClientConfig) -> Result<Connection, ClientError> {
        let timeout = config.connect_timeout;
        tokio::time::timeout(timeout, Connection::open(addr, config))
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout_ms: duration_ms(timeout),
            })?
    }

    async fn open(addr: &str, config: ClientConfig) -> Result<Connection, ClientError> {
        // The TLS settings are read before anything is sent.
        let tls = match &config.security.tls {
            Some(settings) => Some((tls::client_config(settings)?, tls_server_name(addr, settings)?)),
            None => None,
        };
        let tcp = TcpStream::connect(addr).await.map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        // Requests are small and each waits for its answer: Nagle's delay would
        // only add latency.
        tcp.set_nodelay(true).map_err(|source| ClientError::Io {
            addr: addr.to_owned(),
            source,
        })?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some((tls_config, name)) => {
                let shown = name.to_str().into_owned();
                let tls = tokio_rustls::TlsConnector::from(tls_config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| handshake_error(addr, &shown, e))?;
                Stream::Tls(Box::new(tls))
            }
        };
        let sasl = config.security.sasl.clone();
        let mut connection = Connection {
            addr: addr.to_owned(),
            stream,
            config,
            correlation_id: 0,
            broker_versions: HashMap::new(),
            broken: false,
            read_buf: BytesMut::new(),
            authenticated: false,
        };
        connection.negotiate().await?;
        if let Some(sasl) = &sasl {
            crate::sasl::authenticate(&mut connection, sasl).await?;
        }
        connection.authenticated = true;
        Ok(connection)
    }

    /// Whether the connection runs TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The settings the connection runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The versions of `api` the broker serves, if any.
    pub fn broker_versions(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.broker_versions.get(&(api as i16)).copied()
    }

    /// The version to use for `api`: the highest both sides speak.
    pub fn version(&self, api: ApiKey) -> Result<i16, ClientError> {
        let unsupported = |client, broker| ClientError::Unsupported {
            addr: self.addr.clone(),
            api,
            client,
            broker,
        };
        let client = client_versions(api).ok_or_else(|| unsupported((0, -1), self.broker_versions(api)))?;
        let broker = self.broker_versions(api).ok_or_else(|| unsupported(client, None))?;
        pick_version(client, broker).ok_or_else(|| unsupported(client, Some(broker)))
    }

    /// Asks the broker which versions it serves. Sends the newest ApiVersions
    /// this client speaks; a broker that does not serve it answers
    /// UNSUPPORTED_VERSION in the v0 layout with its own range, and the request
    /// is repeated once at the highest version both speak, as Kafka clients do.
    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let api = ApiKey::ApiVersions;
        let (_, mut version) = client_versions(api).unwrap_or((0, 0));
        for _ in 0..2 {
            let mut request = ApiVersionsRequest::default();
            if version >= 3 {
                request.client_software_name = StrBytes::from_static_str("veltrix-client");
                request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
            }
            let id = self.write_request(&request, version).await?;
            let mut frame = self.read_frame().await?;
            // The ApiVersions response header is v0 at every version, so that a
            // client can read it whatever version the broker fell back to.
            self.check_header::<ApiVersionsRequest>(&mut frame, 0, id)?;
            let response = match ApiVersionsResponse::decode(&mut frame.clone(), version) {
                Ok(r) => r,
                Err(_) => ApiVersionsResponse::decode(&mut frame, 0).map_err(|e| ClientError::Decode {
                    api,
                    version,
                    message: e.to_string(),
                })?,
            };
            let served: HashMap<i16, (i16, i16)> = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            if response.error_code == UNSUPPORTED_VERSION {
                let fallback = served.get(&(api as i16)).and_then(|b| pick_version((0, version), *b));
                match fallback {
                    Some(v) if v < version => {
                        version = v;
                        continue;
                    }
                    _ => {
                        return Err(ClientError::Unsupported {
                            addr: self.addr.clone(),
                            api,
                            client: client_versions(api).unwrap_or((0, 0)),
                            broker: served.get(&(api as i16)).copied(),
                        });
                    }
                }
            }
            crate::error::check(response.error_code, None, || format!("ApiVersions from {}", self.addr))?;
            self.broker_versions = served;
            return Ok(());
        }
        Err(ClientError::UnexpectedResponse(format!(
            "{} kept answering ApiVersions with UNSUPPORTED_VERSION",
            self.addr
        )))
    }

    /// Sends `request` at `version` and waits for its answer, within the
    /// configured request timeout.
    pub async fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, ClientError> {
        self.call_within(request, version, self.config.request_timeout).await
    }

    /// As [`Connection::call`], with an explicit time limit.
    pub async fn call_within<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let api = api_of::<R>()?;
        let exchange = async {
            let id = self.write_request(request, version).await?;
            let mut frame = self.read_frame().await?;
            self.check_header::<R>(&mut frame, R::Response::header_version(version), id)?;
            R::Response::decode(&mut frame, version).map_err(|e| ClientError::Decode {
                api,
                version,
                message: e.to_string(),
            })
        };
        let result = tokio::time::timeout(timeout, exchange).await;
        self.settle(api, timeout, result)
    }

    /// Sends `request` without waiting for an answer: for a produce with
    /// acks=0, which gets none.
    pub async fn send_only<R: Request>(&mut self, request: &R, version: i16) -> Result<(), ClientError> {
        let api = api_of::<R>()?;
        let timeout = self.config.request_timeout;
        let result = tokio::time::timeout(timeout, self.write_request(request, version)).await;
        self.settle(api, timeout, result).map(|_| ())
    }

    /// The result of an exchange of `api` bounded by `timeout`, with running
    /// out of time as an error; the connection is marked broken when the
    /// error can leave the stream out of step with the requests.
    fn settle<T>(
        &mut self,
        api: ApiKey,
        timeout: Duration,
        result: Result<Result<T, ClientError>, tokio::time::error::Elapsed>,
    ) -> Result<T, ClientError> {
        let result = result.unwrap_or_else(|_| {
            Err(ClientError::Timeout {
                api,
                addr: self.addr.clone(),
                timeout_ms: duration_ms(timeout),
            })
        });
        if let Err(e) = &result {
            self.broken |= breaks_stream(e);
        }
        result
    }

    /// Encodes and writes one request frame; returns its correlation id.
    async fn write_request<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ClientError> {
        if self.broken {
            return Err(ClientError::Broken {
                addr: self.addr.clone(),
            });
        }
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(&self.config.client_id, self.correlation_id, request, version)?;
        let written = async {
            self.stream.write_all(&frame).await?;
            // TLS keeps records until flushed; TCP's flush does nothing.
            self.stream.flush().await
        };
        if let Err(e) = written.await {
            self.broken = true;
            return Err(io_error(&self.addr, e));
        }
        Ok(self.correlation_id)
    }

    /// Splits the connection into a half that sends requests and a half that
    /// reads their answers, so that several requests can be in flight at once
    /// (pipelining): the broker answers in the order it was asked, and the
    /// caller matches answers to requests by their correlation ids. After any
    /// error on either half both must be dropped: the stream may be out of step.
    pub fn into_split(self) -> Result<(ConnectionWriter, ConnectionReader), ClientError> {
        if self.broken {
            return Err(ClientError::Broken { addr: self.addr });
        }
        let (read, write) = self.stream.into_split();
        let writer = ConnectionWriter {
            addr: self.addr.clone(),
            write,
            client_id: self.config.client_id.clone(),
            correlation_id: self.correlation_id,
        };
        let reader = ConnectionReader {
            addr: self.addr,
            read,
            read_buf: self.read_buf,
            response_bytes_max: self.config.response_bytes_max,
        };
        Ok((writer, reader))
    }

    /// Reads one response frame, refusing lengths outside `4..=response_bytes_max`
    /// before reading the body.
    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let max = if self.authenticated {
            self.config.response_bytes_max
        } else {
            self.config.response_bytes_max.min(UNAUTHENTICATED_RESPONSE_BYTES_MAX)
        };
        let result = read_frame(&mut self.stream, &mut self.read_buf, &self.addr, max).await;
        self.broken |= result.is_err();
        result
    }

    /// Decodes the response header and checks its correlation id.
    fn check_header<R: Request>(&mut self, frame: &mut Bytes, header_version: i16, id: i32) -> Result<(), ClientError> {
        let result = check_header::<R>(frame, header_version, id);
        self.broken |= result.is_err();
        result
    }
}

/// The sending half of a split [`Connection`].
#[derive(Debug)]
pub struct ConnectionWriter {
    addr: String,
    write: StreamWriter,
    client_id: String,
    correlation_id: i32,
}

impl ConnectionWriter {
    /// Encodes and writes one request; returns its correlation id, which the
    /// reading half needs to read the answer. Not bounded in time: a broker
    /// that stops reading blocks it once the socket's buffers are full, so
    /// callers bound it themselves.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(&self.client_id, self.correlation_id, request, version)?;
        let written = async {
            self.write.write_all(&frame).await?;
            self.write.flush().await
        };
        written.await.map_err(|e| io_error(&self.addr, e))?;
        Ok(self.correlation_id)
    }
}

/// The reading half of a split [`Connection`].
#[derive(Debug)]
pub struct ConnectionReader {
    addr: String,
    read: StreamReader,
    read_buf: BytesMut,
    response_bytes_max: usize,
}

impl ConnectionReader {
    /// Reads the next answer, which must be the one to the request sent at
    /// `version` with `correlation_id`. Not bounded in time (see
    /// [`ConnectionWriter::send`]).
    pub async fn receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> Result<R::Response, ClientError> {
        let api = api_of::<R>()?;
        let mut frame = read_frame(&mut self.read, &mut self.read_buf, &self.addr, self.response_bytes_max).await?;
        check_header::<R>(&mut frame, R::Response::header_version(version), correlation_id)?;
        R::Response::decode(&mut frame, version).map_err(|e| ClientError::Decode {
            api,
            version,
            message: e.to_string(),
        })
    }
}

/// Room for the frame length and a request header, besides the client id.
const REQUEST_HEADER_BYTES_HINT: usize = 32;

/// One request frame: length, header and body.
fn encode_request<R: Request>(
    client_id: &str,
    correlation_id: i32,
    request: &R,
    version: i16,
) -> Result<BytesMut, ClientError> {
    let api = api_of::<R>()?;
    let encode_error = |e: anyhow::Error| ClientError::Encode {
        api,
        version,
        message: e.to_string(),
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    // Sized up front: a produce request carries up to megabytes of batches,
    // which a growing buffer would copy at every doubling.
    let body_bytes = request.compute_size(version).unwrap_or(0);
    let mut frame = BytesMut::with_capacity(body_bytes + REQUEST_HEADER_BYTES_HINT + client_id.len());
    frame.put_i32(0);
    header
        .encode(&mut frame, R::header_version(version))
        .map_err(encode_error)?;
    request.encode(&mut frame, version).map_err(encode_error)?;
    let len = i32::try_from(frame.len() - 4).map_err(|_| ClientError::Encode {
        api,
        version,
        message: format!("a request of {} bytes exceeds the protocol's limit", frame.len() - 4),
    })?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// Reads one response frame, refusing lengths outside `4..=max` before
/// reading the body. The body is read into `buf`, whose memory is used again
/// once the caller has dropped the previous frame: large fetch responses then
/// do not each cost fresh pages from the kernel.
async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    addr: &str,
    max: usize,
) -> Result<Bytes, ClientError> {
    let read_error = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ClientError::Closed { addr: addr.to_owned() }
        } else {
            io_error(addr, e)
        }
    };
    let mut len_bytes = [0u8; 4];
    stream.read_exact(&mut len_bytes).await.map_err(read_error)?;
    let len = i32::from_be_bytes(len_bytes);
    let size = usize::try_from(len).ok().filter(|n| (4..=max).contains(n));
    let Some(size) = size else {
        if looks_like_tls(len_bytes) {
            return Err(ClientError::TlsListener { addr: addr.to_owned() });
        }
        return Err(ClientError::BadFrame {
            addr: addr.to_owned(),
            len: i64::from(len),
            max,
        });
    };
    buf.clear();
    buf.resize(size, 0);
    stream.read_exact(&mut buf[..]).await.map_err(read_error)?;
    Ok(buf.split().freeze())
}

/// Whether the first bytes of an answer are a TLS record's header (an alert
/// or a handshake record, TLS 1.0 to 1.3): the answer of a TLS listener to
/// a request sent in clear. As a frame length that is over 350 MB, which no
/// answer of this client may be.
fn looks_like_tls(first: [u8; 4]) -> bool {
    matches!(first, [0x15 | 0x16, 0x03, 0x00..=0x04, _])
}

/// An I/O error, as the TLS failure it carries when there is one.
fn io_error(addr: &str, e: std::io::Error) -> ClientError {
    match tls::failure(&e, "") {
        Some(failure) => ClientError::Tls {
            addr: addr.to_owned(),
            failure,
        },
        None => ClientError::Io {
            addr: addr.to_owned(),
            source: e,
        },
    }
}

/// A failed TLS handshake with `addr`, the certificate checked for `name`.
fn handshake_error(addr: &str, name: &str, e: std::io::Error) -> ClientError {
    let failure = match tls::failure(&e, name) {
        Some(f) => f,
        // The peer closed the connection, or reset it, instead of answering
        // the ClientHello: what a listener without TLS does with one.
        None if matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ) =>
        {
            tls::TlsFailure::NotTls
        }
        None => {
            return ClientError::Io {
                addr: addr.to_owned(),
                source: e,
            };
        }
    };
    ClientError::Tls {
        addr: addr.to_owned(),
        failure,
    }
}

/// The name the broker's certificate must be valid for: the settings', or
/// the host of `addr`.
fn tls_server_name(addr: &str, settings: &TlsSettings) -> Result<rustls::pki_types::ServerName<'static>, ClientError> {
    match &settings.server_name {
        Some(name) => tls::server_name(name),
        None => {
            let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
            tls::server_name(host)
        }
    }
}

/// Decodes the response header and checks its correlation id.
fn check_header<R: Request>(frame: &mut Bytes, header_version: i16, id: i32) -> Result<(), ClientError> {
    let api = api_of::<R>()?;
    let header = ResponseHeader::decode(frame, header_version).map_err(|e| ClientError::Decode {
        api,
        version: header_version,
        message: format!("response header: {e}"),
    })?;
    if header.correlation_id != id {
        return Err(ClientError::CorrelationMismatch {
            api,
            expected: id,
            got: header.correlation_id,
        });
    }
    Ok(())
}

/// Whether an error can leave the byte stream out of step with the requests.
fn breaks_stream(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Timeout { .. }
            | ClientError::Io { .. }
            | ClientError::Closed { .. }
            | ClientError::BadFrame { .. }
            | ClientError::CorrelationMismatch { .. }
            | ClientError::Tls { .. }
            | ClientError::TlsListener { .. }
    )
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Turns a Kafka error code into a result, for helpers.
pub(crate) fn kafka_error(code: i16, message: Option<&StrBytes>) -> Option<KafkaError> {
    KafkaError::from_code(code, message.map(|m| m.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_common_version_is_picked() {
        assert_eq!(pick_version((3, 12), (3, 11)), Some(11));
        assert_eq!(pick_version((4, 12), (0, 18)), Some(12));
        assert_eq!(pick_version((1, 9), (1, 1)), Some(1));
        assert_eq!(pick_version((4, 12), (0, 3)), None);
        assert_eq!(pick_version((4, 12), (13, 18)), None);
    }

    #[test]
    fn client_ranges_are_within_the_codec() {
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::Message;
        let codec = |api| match api {
            ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
            ApiKey::SaslHandshake => SaslHandshakeRequest::VERSIONS,
            ApiKey::SaslAuthenticate => SaslAuthenticateRequest::VERSIONS,
            ApiKey::Metadata => MetadataRequest::VERSIONS,
            ApiKey::Produce => ProduceRequest::VERSIONS,
            ApiKey::Fetch => FetchRequest::VERSIONS,
            ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
            ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
            ApiKey::DeleteTopics => DeleteTopicsRequest::VERSIONS,
            ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
            ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
            ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
            ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
            ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
            ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
            ApiKey::ConsumerGroupDescribe => kafka_protocol::messages::ConsumerGroupDescribeRequest::VERSIONS,
            ApiKey::ConsumerGroupHeartbeat => kafka_protocol::messages::ConsumerGroupHeartbeatRequest::VERSIONS,
            ApiKey::ShareGroupHeartbeat => ShareGroupHeartbeatRequest::VERSIONS,
            ApiKey::ShareFetch => ShareFetchRequest::VERSIONS,
            ApiKey::ShareAcknowledge => ShareAcknowledgeRequest::VERSIONS,
            ApiKey::ShareGroupDescribe => kafka_protocol::messages::ShareGroupDescribeRequest::VERSIONS,
            ApiKey::DescribeShareGroupOffsets => kafka_protocol::messages::DescribeShareGroupOffsetsRequest::VERSIONS,
            ApiKey::CreateAcls => kafka_protocol::messages::CreateAclsRequest::VERSIONS,
            ApiKey::DescribeAcls => kafka_protocol::messages::DescribeAclsRequest::VERSIONS,
            ApiKey::DeleteAcls => kafka_protocol::messages::DeleteAclsRequest::VERSIONS,
            ApiKey::DescribeUserScramCredentials => {
                kafka_protocol::messages::DescribeUserScramCredentialsRequest::VERSIONS
            }
            ApiKey::AlterUserScramCredentials => kafka_protocol::messages::AlterUserScramCredentialsRequest::VERSIONS,
            other => panic!("{other:?} is not in the table"),
        };
        for (api, min, max) in CLIENT_VERSIONS {
            let range = codec(api);
            assert!(range.min <= min && min <= max && max <= range.max, "{api:?}");
        }
    }
}
