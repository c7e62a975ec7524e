//! Listeners' security, end to end: SASL (SCRAM-SHA-512, SCRAM-SHA-256 and
//! PLAIN) on SASL_SSL and SASL_PLAINTEXT listeners, TLS with and without
//! client certificates, certificate reload, and what hostile clients get. A
//! broker in this process serves `serve_listeners` on ephemeral 127.0.0.1
//! ports; certificates are made here with rcgen, TLS clients are rustls, and
//! the SCRAM client is written from ring's primitives (RFC 5802), apart from
//! the server's code.
//!
//! Time limits are short (`authentication_ms_max` 500 ms where it is what a
//! test is about, long elsewhere so that a slow build never trips it) and
//! every wait polls against a deadline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, MetadataRequest, MetadataResponse, ProduceRequest, RequestHeader,
    ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::Compression;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use veltrix_core::auth::{ScramCredential, ScramMechanism};
use veltrix_core::{Broker, BrokerConfig};
use veltrix_kafka::security::{
    ANONYMOUS, AuthLimits, ClientAuth, ListenerSpec, PrincipalMapping, SaslMechanism, SecurityProtocol, TlsFiles,
    TlsServer,
};
use veltrix_kafka::{KafkaConfig, KafkaListener, errors, serve_listeners};
use veltrix_log::Env;

use super::{fetch_request, records, topic};

const SASL_AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;

/// How long any single answer or close may take before a test fails.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Certificates

/// A CA, the certificates it signs, and a directory for their files.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

/// A certificate and its key.
struct Leaf {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn distinguished(names: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (kind, value) in names {
        dn.push(kind.clone(), *value);
    }
    dn
}

/// Parameters of a leaf certificate for `localhost`.
fn leaf_params(names: &[(DnType, &str)], serial: u64, usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name = distinguished(names);
    params.serial_number = Some(SerialNumber::from(serial));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name = distinguished(&[(DnType::CommonName, "Veltrix test CA")]);
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A certificate the CA signed.
    fn issue(&self, names: &[(DnType, &str)], serial: u64, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names, serial, usage).signed_by(&key, &self.ca).unwrap();
        Leaf {
            der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `localhost`, with common name `cn`.
    fn server(&self, cn: &str, serial: u64) -> Leaf {
        self.issue(&[(DnType::CommonName, cn)], serial, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with subject `names`.
    fn client(&self, names: &[(DnType, &str)]) -> Leaf {
        self.issue(names, 7, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// TLS serving `leaf` from files named after `name`; client
    /// certificates checked against this CA as `client_auth` says.
    fn server_tls(&self, name: &str, leaf: &Leaf, client_auth: ClientAuth) -> Arc<TlsServer> {
        let files = TlsFiles {
            cert: self.write(&format!("{name}.crt"), &leaf.cert_pem),
            key: self.write(&format!("{name}.key"), &leaf.key_pem),
            client_ca: (client_auth != ClientAuth::None).then(|| self.write("ca.crt", &self.ca.pem())),
            client_auth,
        };
        Arc::new(TlsServer::load(files).unwrap())
    }

    /// A TLS client trusting this CA, presenting `identity` if given.
    fn connector(&self, identity: Option<&Leaf>) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            Some(leaf) => builder
                .with_client_auth_cert(
                    vec![leaf.der.clone()],
                    PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        TlsConnector::from(Arc::new(config))
    }
}

/// A client certificate no CA signed.
fn self_signed_client(cn: &str) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(&[(DnType::CommonName, cn)], 9, ExtendedKeyUsagePurpose::ClientAuth)
        .self_signed(&key)
        .unwrap();
    Leaf {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

// ---------------------------------------------------------------------------
// The broker

/// A broker serving some listeners until dropped.
struct Secured {
    broker: Arc<Broker>,
    /// Each listener's address, in the order given.
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Drop for Secured {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A listener's specification (its port is filled in when it is bound).
fn listener(
    name: &str,
    protocol: SecurityProtocol,
    sasl: &[SaslMechanism],
    tls: Option<Arc<TlsServer>>,
) -> ListenerSpec {
    ListenerSpec {
        name: name.to_owned(),
        protocol,
        advertised_host: "localhost".to_owned(),
        advertised_port: 0,
        sasl_mechanisms: sasl.to_vec(),
        tls,
        principal_mapping: PrincipalMapping::default(),
        unauthenticated_principal: ANONYMOUS.to_owned(),
    }
}

/// Limits for tests that are not about them: long enough for a slow build.
fn relaxed() -> AuthLimits {
    AuthLimits {
        authentication_ms_max: 10_000,
        unauthenticated_request_bytes_max: 4096,
        reauthentication_ms_max: 0,
        authentication_failure_delay_ms: 20,
    }
}

async fn serve_secured(specs: Vec<ListenerSpec>, auth: AuthLimits) -> Secured {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(Env::system(), dir.path(), BrokerConfig::default()).unwrap());
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for mut spec in specs {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        spec.advertised_port = addr.port();
        listeners.push(KafkaListener { tcp, spec });
        addrs.push(addr);
    }
    let mut config = KafkaConfig::new(addrs[0]);
    config.auth = auth;
    config.warning_interval_ms = 60_000;
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve_listeners(listeners, broker.clone(), config, stop_rx));
    Secured {
        broker,
        addrs,
        stop,
        _dir: dir,
    }
}

/// `user` with `password` for both SCRAM mechanisms (PLAIN checks against
/// them).
fn add_user(broker: &Broker, user: &str, password: &str) {
    for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        let salt = format!("salt of {user}").into_bytes();
        let credential = ScramCredential::from_password(m, password.as_bytes(), salt, 4096).unwrap();
        broker.credentials().upsert(user, credential).unwrap();
    }
}

/// The sum of a counter family's series whose labels include `labels`.
fn counter(broker: &Broker, name: &str, labels: &[(&str, &str)]) -> f64 {
    broker
        .metrics()
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            labels
                .iter()
                .all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v))
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}

// ---------------------------------------------------------------------------
// A client over TCP or TLS

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A bare Kafka connection, plain or TLS.
struct Conn {
    io: Box<dyn Io>,
    correlation_id: i32,
}

impl Conn {
    async fn plain(addr: SocketAddr) -> Conn {
        Conn {
            io: Box::new(TcpStream::connect(addr).await.unwrap()),
            correlation_id: 0,
        }
    }

    /// A TLS connection (the handshake done, as the client sees it) and the
    /// certificate the server presented.
    async fn tls(addr: SocketAddr, connector: &TlsConnector) -> (Conn, CertificateDer<'static>) {
        let stream = tls_connect(addr, connector).await.expect("a TLS handshake");
        let leaf = stream.get_ref().1.peer_certificates().expect("a server certificate")[0].clone();
        let conn = Conn {
            io: Box::new(stream),
            correlation_id: 0,
        };
        (conn, leaf)
    }

    /// Sends a request; a write error is left for the next read to find.
    async fn send<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("security-it")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).unwrap();
        request.encode(&mut body, version).unwrap();
        self.write_frame(&body).await;
        self.correlation_id
    }

    async fn write_frame(&mut self, body: &[u8]) {
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(body);
        let _ = self.io.write_all(&frame).await;
        let _ = self.io.flush().await;
    }

    /// One response frame; `None` if the broker closed the connection.
    async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(WAIT, self.io.read_exact(&mut len))
            .await
            .expect("an answer or a close within 10 s")
            .ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.io.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    /// The answer to `request`; `None` if the connection closed instead.
    async fn try_call<R: Request>(&mut self, request: R, version: i16) -> Option<R::Response> {
        let id = self.send(&request, version).await;
        let mut frame = self.read_frame().await?;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, id);
        Some(R::Response::decode(&mut frame, version).unwrap())
    }

    async fn call<R: Request>(&mut self, request: R, version: i16) -> R::Response {
        let api = R::KEY;
        self.try_call(request, version)
            .await
            .unwrap_or_else(|| panic!("the broker closed the connection instead of answering {api:?}"))
    }

    /// Waits (at most 10 s) for the broker to close the connection; any
    /// byte it sends meanwhile fails the test.
    async fn assert_closed(&mut self, what: &str) {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(WAIT, self.io.read(&mut buf)).await {
            Err(_) => panic!("{what}: the connection is still open after 10 s"),
            Ok(Ok(0) | Err(_)) => {}
            Ok(Ok(n)) => panic!("{what}: expected the connection closed, got {n} bytes"),
        }
    }

    async fn metadata(&mut self) -> Option<MetadataResponse> {
        self.try_call(MetadataRequest::default().with_topics(Some(Vec::new())), 12)
            .await
    }
}

async fn tls_connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("a TLS handshake's end within 10 s")
}

/// Whether a TLS client is refused: its handshake fails, or (TLS 1.3: the
/// server judges the client's certificate after the client is done) its
/// first request gets no answer.
async fn tls_refused(addr: SocketAddr, connector: &TlsConnector) -> bool {
    let Ok(stream) = tls_connect(addr, connector).await else {
        return true;
    };
    let mut c = Conn {
        io: Box::new(stream),
        correlation_id: 0,
    };
    c.try_call(ApiVersionsRequest::default(), 3).await.is_none()
}

// ---------------------------------------------------------------------------
// SASL, the client's side

async fn handshake(c: &mut Conn, mechanism: &str) -> SaslHandshakeResponse {
    let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.to_owned()));
    c.call(request, 1).await
}

async fn authenticate(c: &mut Conn, bytes: Vec<u8>, version: i16) -> SaslAuthenticateResponse {
    c.call(
        SaslAuthenticateRequest::default().with_auth_bytes(bytes.into()),
        version,
    )
    .await
}

fn plain_message(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// A PLAIN handshake and authentication: the answer.
async fn plain_login(c: &mut Conn, user: &str, password: &str) -> SaslAuthenticateResponse {
    assert_eq!(handshake(c, "PLAIN").await.error_code, errors::NONE);
    authenticate(c, plain_message(user, password), 2).await
}

/// A SCRAM handshake and exchange at SaslAuthenticate `version`: the last
/// answer. On success the server's signature is checked.
async fn scram_login(
    c: &mut Conn,
    m: ScramMechanism,
    user: &str,
    password: &str,
    version: i16,
) -> SaslAuthenticateResponse {
    let h = handshake(c, m.name()).await;
    assert_eq!(h.error_code, errors::NONE, "handshake for {}", m.name());
    let client = ScramClient::new(m, user, password);
    let first = authenticate(c, client.first(), version).await;
    assert_eq!(first.error_code, errors::NONE, "{:?}", first.error_message);
    let (last, expected) = client.last(&first.auth_bytes);
    let done = authenticate(c, last, version).await;
    if done.error_code == errors::NONE {
        assert_eq!(done.auth_bytes, expected, "the server's signature");
    }
    done
}

/// The client's side of SCRAM (RFC 5802), from ring's primitives.
struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: Vec<u8>,
    nonce: String,
}

impl ScramClient {
    fn new(mechanism: ScramMechanism, user: &str, password: &str) -> ScramClient {
        ScramClient {
            mechanism,
            user: user.replace('=', "=3D").replace(',', "=2C"),
            password: password.as_bytes().to_vec(),
            nonce: format!("{:032x}", rand::random::<u128>()),
        }
    }

    fn bare(&self) -> String {
        format!("n={},r={}", self.user, self.nonce)
    }

    fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.bare()).into_bytes()
    }

    /// The client-final message answering `server_first`, and the
    /// server-final message the client expects.
    fn last(&self, server_first: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {server_first}"))
                .to_owned()
        };
        let (r, s, i) = (attr("r="), attr("s="), attr("i="));
        assert!(r.starts_with(&self.nonce), "{r}");
        let m = self.mechanism;
        let salted = hi(m, &self.password, &B64.decode(s).unwrap(), i.parse().unwrap());
        let client_key = mac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c={},r={r}", B64.encode("n,,"));
        let auth = format!("{},{server_first},{without_proof}", self.bare());
        let signature = mac(m, &stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_key = mac(m, &salted, b"Server Key");
        let v = format!("v={}", B64.encode(mac(m, &server_key, auth.as_bytes())));
        (
            format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
            v.into_bytes(),
        )
    }
}

fn mac(m: ScramMechanism, key: &[u8], message: &[u8]) -> Vec<u8> {
    let alg = match m {
        ScramMechanism::Sha256 => ring::hmac::HMAC_SHA256,
        ScramMechanism::Sha512 => ring::hmac::HMAC_SHA512,
    };
    ring::hmac::sign(&ring::hmac::Key::new(alg, key), message)
        .as_ref()
        .to_vec()
}

fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    let alg = match m {
        ScramMechanism::Sha256 => &ring::digest::SHA256,
        ScramMechanism::Sha512 => &ring::digest::SHA512,
    };
    ring::digest::digest(alg, data).as_ref().to_vec()
}

fn hi(m: ScramMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let (alg, len) = match m {
        ScramMechanism::Sha256 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
        ScramMechanism::Sha512 => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
    };
    let mut out = vec![0; len];
    ring::pbkdf2::derive(alg, iterations.try_into().unwrap(), salt, password, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Requests once authenticated

async fn create_topic(c: &mut Conn, name: &str) {
    let mut t = CreatableTopic::default();
    t.name = topic(name);
    t.num_partitions = 1;
    t.replication_factor = 1;
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![t]), 5).await;
    assert_eq!(r.topics[0].error_code, errors::NONE, "{:?}", r.topics[0].error_message);
}

async fn produce(c: &mut Conn, name: &str, values: &[&str]) -> i16 {
    let pd = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records(values, Compression::None)));
    let td = TopicProduceData::default()
        .with_name(topic(name))
        .with_partition_data(vec![pd]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![td]);
    c.call(request, 9).await.responses[0].partition_responses[0].error_code
}

/// Creates `name`, produces two records and fetches them back.
async fn produce_and_fetch(c: &mut Conn, name: &str) {
    create_topic(c, name).await;
    assert_eq!(produce(c, name, &["one", "two"]).await, errors::NONE);
    let r = c.call(fetch_request(name, 0, 0, 0), 11).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, errors::NONE);
    assert_eq!(p.high_watermark, 2);
    assert!(p.records.as_ref().is_some_and(|b| !b.is_empty()));
}

/// Polls `metadata` on `c` every 20 ms while `until` has not passed; each
/// must be answered.
async fn served_until(c: &mut Conn, until: Instant, what: &str) {
    while Instant::now() < until {
        assert!(c.metadata().await.is_some(), "{what}: closed before its session ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// SASL_SSL with SCRAM

#[tokio::test]
async fn sasl_ssl_scram_sha_512_and_256_authenticate_then_metadata_produce_and_fetch_are_served() {
    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::None);
    let mechanisms = [SaslMechanism::ScramSha512, SaslMechanism::ScramSha256];
    let s = serve_secured(
        vec![listener("secure", SecurityProtocol::SaslSsl, &mechanisms, Some(tls))],
        relaxed(),
    )
    .await;
    add_user(&s.broker, "alice", "alice-secret");
    let connector = pki.connector(None);
    for (i, m) in [ScramMechanism::Sha512, ScramMechanism::Sha256].into_iter().enumerate() {
        let (mut c, _) = Conn::tls(s.addrs[0], &connector).await;
        // Clients ask ApiVersions before authenticating.
        let versions = c.call(ApiVersionsRequest::default(), 3).await;
        assert_eq!(versions.error_code, errors::NONE);
        for api in [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate] {
            assert!(
                versions.api_keys.iter().any(|k| k.api_key == api as i16),
                "{api:?} advertised"
            );
        }
        let done = scram_login(&mut c, m, "alice", "alice-secret", 2).await;
        assert_eq!(done.error_code, errors::NONE, "{}: {:?}", m.name(), done.error_message);
        let md = c.metadata().await.expect("Metadata once authenticated");
        // The listener's own advertised address.
        assert_eq!(md.brokers[0].host.as_str(), "localhost");
        assert_eq!(md.brokers[0].port, i32::from(s.addrs[0].port()));
        produce_and_fetch(&mut c, &format!("scram-{i}")).await;
    }
    for m in ["SCRAM-SHA-512", "SCRAM-SHA-256"] {
        let ok = counter(
            &s.broker,
            "veltrix_kafka_authentications_total",
            &[("mechanism", m), ("result", "ok")],
        );
        assert_eq!(ok, 1.0, "{m}");
    }
}

#[tokio::test]
async fn sasl_authenticate_v1_and_later_carry_the_session_lifetime_when_sessions_are_limited() {
    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::None);
    let spec = || {
        listener(
            "secure",
            SecurityProtocol::SaslSsl,
            &[SaslMechanism::ScramSha256],
            Some(tls.clone()),
        )
    };
    let limited = serve_secured(
        vec![spec()],
        AuthLimits {
            reauthentication_ms_max: 60_000,
            ..relaxed()
        },
    )
    .await;
    let forever = serve_secured(vec![spec()], relaxed()).await;
    let connector = pki.connector(None);
    for (s, expected) in [(&limited, [0, 60_000, 60_000]), (&forever, [0, 0, 0])] {
        add_user(&s.broker, "alice", "pw-alice");
        for version in 0..=2 {
            let (mut c, _) = Conn::tls(s.addrs[0], &connector).await;
            let done = scram_login(&mut c, ScramMechanism::Sha256, "alice", "pw-alice", version).await;
            assert_eq!(done.error_code, errors::NONE);
            // v0 has no such field: its clients are not told (and are
            // closed at the session's end).
            assert_eq!(done.session_lifetime_ms, expected[version as usize], "v{version}");
            assert!(c.metadata().await.is_some());
        }
    }
}

#[tokio::test]
async fn re_authentication_as_the_same_user_keeps_the_connection_and_as_another_closes_it() {
    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::None);
    let spec = listener(
        "secure",
        SecurityProtocol::SaslSsl,
        &[SaslMechanism::ScramSha512],
        Some(tls),
    );
    let limits = AuthLimits {
        reauthentication_ms_max: 60_000,
        ..relaxed()
    };
    let s = serve_secured(vec![spec], limits).await;
    add_user(&s.broker, "alice", "pw-alice");
    add_user(&s.broker, "bob", "pw-bob");
    let (mut c, _) = Conn::tls(s.addrs[0], &pki.connector(None)).await;
    let sha512 = ScramMechanism::Sha512;
    assert_eq!(
        scram_login(&mut c, sha512, "alice", "pw-alice", 2).await.error_code,
        errors::NONE
    );
    assert!(c.metadata().await.is_some());
    // KIP-368: the same user again, on the same connection.
    let again = scram_login(&mut c, sha512, "alice", "pw-alice", 2).await;
    assert_eq!(again.error_code, errors::NONE, "{:?}", again.error_message);
    assert_eq!(again.session_lifetime_ms, 60_000);
    assert!(c.metadata().await.is_some(), "served after re-authenticating");
    // Bob's password is right, but the connection is Alice's.
    let other = scram_login(&mut c, sha512, "bob", "pw-bob", 2).await;
    assert_eq!(other.error_code, SASL_AUTHENTICATION_FAILED);
    c.assert_closed("re-authentication as another user").await;
    let failed = counter(
        &s.broker,
        "veltrix_kafka_authentications_total",
        &[("mechanism", "SCRAM-SHA-512"), ("result", "failed")],
    );
    assert_eq!(failed, 1.0);
}

#[tokio::test]
async fn an_expired_session_closes_the_connection_at_its_next_request_and_re_authentication_extends_it() {
    const LIFETIME: Duration = Duration::from_millis(2000);
    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::None);
    let spec = listener(
        "secure",
        SecurityProtocol::SaslSsl,
        &[SaslMechanism::ScramSha256],
        Some(tls),
    );
    let limits = AuthLimits {
        reauthentication_ms_max: LIFETIME.as_millis() as u64,
        ..relaxed()
    };
    let s = serve_secured(vec![spec], limits).await;
    add_user(&s.broker, "alice", "pw-alice");
    let connector = pki.connector(None);
    let sha256 = ScramMechanism::Sha256;

    // Never re-authenticates: served until the session ends, then the next
    // request closes the connection.
    let expiring = async {
        let (mut c, _) = Conn::tls(s.addrs[0], &connector).await;
        let started = Instant::now();
        let done = scram_login(&mut c, sha256, "alice", "pw-alice", 2).await;
        assert_eq!(done.session_lifetime_ms, LIFETIME.as_millis() as i64);
        assert!(c.metadata().await.is_some(), "served right after authenticating");
        let deadline = started + LIFETIME + WAIT;
        loop {
            assert!(Instant::now() < deadline, "still served 10 s after the session ended");
            if c.metadata().await.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(started.elapsed() >= LIFETIME, "closed after {:?}", started.elapsed());
    };
    // Re-authenticates halfway: served past the first session's end.
    let renewing = async {
        let (mut c, _) = Conn::tls(s.addrs[0], &connector).await;
        let started = Instant::now();
        assert_eq!(
            scram_login(&mut c, sha256, "alice", "pw-alice", 2).await.error_code,
            errors::NONE
        );
        served_until(&mut c, started + LIFETIME / 2, "first session").await;
        assert_eq!(
            scram_login(&mut c, sha256, "alice", "pw-alice", 2).await.error_code,
            errors::NONE
        );
        // The first session ended at `started + LIFETIME` at the latest; the
        // second lasts until at least `started + LIFETIME * 3 / 2`.
        served_until(&mut c, started + LIFETIME * 5 / 4, "renewed session").await;
    };
    tokio::join!(expiring, renewing);
}

// ---------------------------------------------------------------------------
// SASL_PLAINTEXT with PLAIN

#[tokio::test]
async fn sasl_plaintext_plain_with_the_right_password_is_served() {
    let spec = listener("sasl", SecurityProtocol::SaslPlaintext, &[SaslMechanism::Plain], None);
    let s = serve_secured(vec![spec], relaxed()).await;
    add_user(&s.broker, "alice", "pw-alice");
    let mut c = Conn::plain(s.addrs[0]).await;
    assert_eq!(c.call(ApiVersionsRequest::default(), 3).await.error_code, errors::NONE);
    let done = plain_login(&mut c, "alice", "pw-alice").await;
    assert_eq!(done.error_code, errors::NONE, "{:?}", done.error_message);
    assert_eq!(done.session_lifetime_ms, 0);
    produce_and_fetch(&mut c, "plain").await;
    let ok = counter(
        &s.broker,
        "veltrix_kafka_authentications_total",
        &[("mechanism", "PLAIN"), ("result", "ok")],
    );
    assert_eq!(ok, 1.0);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_delayed_failure_then_a_close() {
    const DELAY_MS: u64 = 400;
    let spec = listener("sasl", SecurityProtocol::SaslPlaintext, &[SaslMechanism::Plain], None);
    let limits = AuthLimits {
        authentication_failure_delay_ms: DELAY_MS,
        ..relaxed()
    };
    let s = serve_secured(vec![spec], limits).await;
    add_user(&s.broker, "alice", "pw-alice");
    let mut answers = Vec::new();
    for (user, password) in [("alice", "not-her-password"), ("mallory", "pw-alice")] {
        let mut c = Conn::plain(s.addrs[0]).await;
        assert_eq!(handshake(&mut c, "PLAIN").await.error_code, errors::NONE);
        let sent = Instant::now();
        let r = authenticate(&mut c, plain_message(user, password), 2).await;
        let took = sent.elapsed();
        assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED, "{user}");
        assert!(
            took >= Duration::from_millis(DELAY_MS),
            "{user}: answered after {took:?}"
        );
        c.assert_closed(user).await;
        answers.push((r.error_code, r.error_message, r.auth_bytes));
    }
    // Nothing tells a user that exists from one that does not.
    assert_eq!(answers[0], answers[1]);
    // The broker still serves the right password.
    let mut c = Conn::plain(s.addrs[0]).await;
    assert_eq!(plain_login(&mut c, "alice", "pw-alice").await.error_code, errors::NONE);
}

#[tokio::test]
async fn a_mechanism_not_offered_is_refused_with_the_offered_list() {
    let offered = [SaslMechanism::ScramSha512, SaslMechanism::Plain];
    let s = serve_secured(
        vec![listener("sasl", SecurityProtocol::SaslPlaintext, &offered, None)],
        relaxed(),
    )
    .await;
    for mechanism in ["SCRAM-SHA-256", "GSSAPI", "plain"] {
        let mut c = Conn::plain(s.addrs[0]).await;
        let r = handshake(&mut c, mechanism).await;
        assert_eq!(r.error_code, UNSUPPORTED_SASL_MECHANISM, "{mechanism}");
        let listed: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
        assert_eq!(listed, ["SCRAM-SHA-512", "PLAIN"], "{mechanism}");
    }
    // An offered one is accepted, with the same list.
    let mut c = Conn::plain(s.addrs[0]).await;
    let r = handshake(&mut c, "PLAIN").await;
    assert_eq!(r.error_code, errors::NONE);
    assert_eq!(r.mechanisms.len(), 2);
}

#[tokio::test]
async fn sasl_authenticate_without_a_handshake_is_refused_and_closes_the_connection() {
    let spec = listener("sasl", SecurityProtocol::SaslPlaintext, &[SaslMechanism::Plain], None);
    let s = serve_secured(vec![spec], relaxed()).await;
    add_user(&s.broker, "alice", "pw-alice");
    let mut c = Conn::plain(s.addrs[0]).await;
    let r = authenticate(&mut c, plain_message("alice", "pw-alice"), 2).await;
    assert_eq!(r.error_code, ILLEGAL_SASL_STATE);
    c.assert_closed("SaslAuthenticate without a handshake").await;
}

#[tokio::test]
async fn a_request_before_authentication_closes_the_connection() {
    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::None);
    let s = serve_secured(
        vec![
            listener("sasl", SecurityProtocol::SaslPlaintext, &[SaslMechanism::Plain], None),
            listener(
                "secure",
                SecurityProtocol::SaslSsl,
                &[SaslMechanism::ScramSha256],
                Some(tls),
            ),
        ],
        relaxed(),
    )
    .await;
    add_user(&s.broker, "alice", "pw-alice");
    // Metadata first thing.
    let mut c = Conn::plain(s.addrs[0]).await;
    assert!(c.metadata().await.is_none(), "Metadata answered before authentication");
    let (mut c, _) = Conn::tls(s.addrs[1], &pki.connector(None)).await;
    assert!(
        c.metadata().await.is_none(),
        "Metadata answered before authentication (TLS)"
    );
    // Metadata between the handshake and the authentication.
    let mut c = Conn::plain(s.addrs[0]).await;
    assert_eq!(handshake(&mut c, "PLAIN").await.error_code, errors::NONE);
    assert!(c.metadata().await.is_none(), "Metadata answered mid-authentication");
    // Produce, which would write, likewise.
    let mut c = Conn::plain(s.addrs[0]).await;
    let pd = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records(&["x"], Compression::None)));
    let request = ProduceRequest::default().with_acks(-1).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(topic("t"))
            .with_partition_data(vec![pd]),
    ]);
    assert!(
        c.try_call(request, 9).await.is_none(),
        "Produce answered before authentication"
    );
}

// ---------------------------------------------------------------------------
// Hostile clients

#[tokio::test]
async fn garbage_to_an_ssl_listener_closes_that_connection_and_good_clients_are_still_served() {
    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::None);
    let s = serve_secured(vec![listener("ssl", SecurityProtocol::Ssl, &[], Some(tls))], relaxed()).await;
    let connector = pki.connector(None);
    // A Kafka ApiVersions v0 frame, in the clear.
    let kafka_in_clear = {
        let mut header = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(0)
            .encode(&mut header, 1)
            .unwrap();
        let mut frame = (header.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&header);
        frame
    };
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &kafka_in_clear,
        // A handshake record's header announcing more than a record may hold.
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb, 0x03, 0x03],
    ];
    for (i, bytes) in garbage.into_iter().enumerate() {
        let mut c = Conn::plain(s.addrs[0]).await;
        c.io.write_all(bytes).await.unwrap();
        // Closed, after at most a TLS alert (record type 21).
        let mut answer = Vec::new();
        let read = tokio::time::timeout(WAIT, c.io.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "garbage {i}: still open after 10 s");
        assert!(
            answer.first().is_none_or(|&t| t == 21),
            "garbage {i}: answered {answer:?}"
        );
        // Each time, a good client is served.
        let (mut good, _) = Conn::tls(s.addrs[0], &connector).await;
        assert_eq!(
            good.call(ApiVersionsRequest::default(), 3).await.error_code,
            errors::NONE
        );
        assert!(good.metadata().await.is_some());
    }
    let failures = counter(
        &s.broker,
        "veltrix_kafka_tls_handshake_failures_total",
        &[("listener", "ssl")],
    );
    assert!(failures >= 3.0, "{failures}");
}

#[tokio::test]
async fn a_tls_client_that_never_finishes_its_handshake_is_closed_after_authentication_ms_max() {
    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::None);
    let limits = AuthLimits {
        authentication_ms_max: 500,
        ..relaxed()
    };
    let s = serve_secured(vec![listener("ssl", SecurityProtocol::Ssl, &[], Some(tls))], limits).await;
    // One sends nothing, one stops halfway through its ClientHello.
    let partial: [&[u8]; 2] = [b"", &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]];
    for bytes in partial {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(s.addrs[0]).await.unwrap();
        tcp.write_all(bytes).await.unwrap();
        let mut c = Conn {
            io: Box::new(tcp),
            correlation_id: 0,
        };
        c.assert_closed("a stalled TLS handshake").await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(500), "closed after {took:?}");
        assert!(took < Duration::from_secs(5), "closed after {took:?}");
    }
    let (mut good, _) = Conn::tls(s.addrs[0], &pki.connector(None)).await;
    assert!(good.metadata().await.is_some());
}

#[tokio::test]
async fn a_sasl_client_that_stalls_or_only_asks_api_versions_is_closed_after_authentication_ms_max() {
    let spec = listener("sasl", SecurityProtocol::SaslPlaintext, &[SaslMechanism::Plain], None);
    let limits = AuthLimits {
        authentication_ms_max: 500,
        ..relaxed()
    };
    let s = serve_secured(vec![spec], limits).await;
    add_user(&s.broker, "alice", "pw-alice");
    // Handshakes, then says nothing.
    let started = Instant::now();
    let mut c = Conn::plain(s.addrs[0]).await;
    assert_eq!(handshake(&mut c, "PLAIN").await.error_code, errors::NONE);
    c.assert_closed("stalled after the handshake").await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // Keeps busy with what is allowed before authenticating, never
    // authenticates: the limit holds whatever it sends.
    let started = Instant::now();
    let mut c = Conn::plain(s.addrs[0]).await;
    let mut answered = 0;
    while c.try_call(ApiVersionsRequest::default(), 3).await.is_some() {
        answered += 1;
        assert!(started.elapsed() < WAIT, "still open after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    assert!(answered > 0);
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    let timeouts = counter(
        &s.broker,
        "veltrix_kafka_connections_closed_total",
        &[("reason", "authentication_timeout")],
    );
    assert_eq!(timeouts, 2.0);
    // A prompt client is served.
    let mut c = Conn::plain(s.addrs[0]).await;
    assert_eq!(plain_login(&mut c, "alice", "pw-alice").await.error_code, errors::NONE);
}

/// `authentication_ms_max` runs from the accept: time spent on the TLS
/// handshake is not given again to SASL.
#[tokio::test]
async fn on_sasl_ssl_the_tls_handshake_and_sasl_share_one_authentication_limit() {
    const LIMIT: Duration = Duration::from_millis(1000);
    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::None);
    let spec = listener("secure", SecurityProtocol::SaslSsl, &[SaslMechanism::Plain], Some(tls));
    let limits = AuthLimits {
        authentication_ms_max: LIMIT.as_millis() as u64,
        ..relaxed()
    };
    let s = serve_secured(vec![spec], limits).await;
    let started = Instant::now();
    let tcp = TcpStream::connect(s.addrs[0]).await.unwrap();
    // A slow client: most of the limit passes before its ClientHello (the
    // pause is the client's behaviour, not a wait for the broker).
    tokio::time::sleep(LIMIT * 6 / 10).await;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = pki.connector(None).connect(name, tcp).await.expect("a TLS handshake");
    let mut c = Conn {
        io: Box::new(stream),
        correlation_id: 0,
    };
    assert_eq!(handshake(&mut c, "PLAIN").await.error_code, errors::NONE);
    c.assert_closed("stalled after the SASL handshake").await;
    let took = started.elapsed();
    assert!(took >= LIMIT, "closed after {took:?}");
    // Not the TLS handshake's time plus a whole limit again.
    assert!(
        took < LIMIT * 14 / 10,
        "closed after {took:?}, the limit being {LIMIT:?}"
    );
}

#[tokio::test]
async fn a_frame_over_the_unauthenticated_limit_closes_the_connection_without_being_allocated() {
    const LIMIT: usize = 4096;
    let spec = listener("sasl", SecurityProtocol::SaslPlaintext, &[SaslMechanism::Plain], None);
    // The authentication limit long, so that only the size can close.
    let s = serve_secured(vec![spec], relaxed()).await;
    add_user(&s.broker, "alice", "pw-alice");
    let gauge = s.broker.metrics().in_flight_bytes.clone();
    // The memory budget in use, watched while the client sends.
    let (peak, watching) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicBool::new(true)));
    let watcher = tokio::spawn({
        let (peak, watching, gauge) = (peak.clone(), watching.clone(), gauge.clone());
        async move {
            while watching.load(Ordering::Relaxed) {
                peak.fetch_max(gauge.get(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    for len in [64 << 20, LIMIT as i32 + 1] {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(s.addrs[0]).await.unwrap();
        tcp.write_all(&len.to_be_bytes()).await.unwrap();
        // Some of the announced body; the broker may be gone already.
        let _ = tcp.write_all(&vec![0u8; 64 << 10]).await;
        let mut c = Conn {
            io: Box::new(tcp),
            correlation_id: 0,
        };
        c.assert_closed(&format!("a frame of {len} bytes before authentication"))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed after {:?}",
            started.elapsed()
        );
    }
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak < LIMIT as i64, "the broker held {peak} bytes for a refused frame");
    assert_eq!(gauge.get(), 0);
    // Once authenticated, the connection's limit is request_bytes_max.
    let mut c = Conn::plain(s.addrs[0]).await;
    assert_eq!(plain_login(&mut c, "alice", "pw-alice").await.error_code, errors::NONE);
    create_topic(&mut c, "big").await;
    let value = "v".repeat(4 * LIMIT);
    assert_eq!(produce(&mut c, "big", &[&value]).await, errors::NONE);
}

#[tokio::test]
async fn a_wrong_password_loop_is_refused_every_time_counted_and_logged_once() {
    const TRIES: usize = 8;
    let spec = listener("sasl", SecurityProtocol::SaslPlaintext, &[SaslMechanism::Plain], None);
    let s = serve_secured(vec![spec], relaxed()).await;
    add_user(&s.broker, "alice", "pw-alice");
    for i in 0..TRIES {
        let mut c = Conn::plain(s.addrs[0]).await;
        let r = plain_login(&mut c, "alice", &format!("guess-{i}")).await;
        assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED, "try {i}");
        c.assert_closed(&format!("try {i}")).await;
    }
    let count = |result| {
        counter(
            &s.broker,
            "veltrix_kafka_authentications_total",
            &[("mechanism", "PLAIN"), ("result", result)],
        )
    };
    assert_eq!(count("failed"), TRIES as f64);
    assert_eq!(count("ok"), 0.0);
    // The audit log's line for this address is rate limited: one logged,
    // the rest counted as left out.
    let suppressed = counter(
        &s.broker,
        "veltrix_warnings_suppressed_total",
        &[("kind", "authentication_failed")],
    );
    assert_eq!(suppressed, (TRIES - 1) as f64);
    let mut c = Conn::plain(s.addrs[0]).await;
    assert_eq!(plain_login(&mut c, "alice", "pw-alice").await.error_code, errors::NONE);
}

// ---------------------------------------------------------------------------
// Client certificates

#[tokio::test]
async fn mtls_required_serves_a_client_the_ca_signed_and_refuses_one_without_or_self_signed() {
    let pki = Pki::new();
    let server = pki.server("broker", 1);
    let mapping = PrincipalMapping::parse(&["RULE:^CN=([^,]+).*$/$1/L"]).unwrap();
    let required = ListenerSpec {
        principal_mapping: mapping.clone(),
        ..listener(
            "mtls",
            SecurityProtocol::Ssl,
            &[],
            Some(pki.server_tls("required", &server, ClientAuth::Required)),
        )
    };
    let requested = ListenerSpec {
        principal_mapping: mapping,
        ..listener(
            "mtls-optional",
            SecurityProtocol::Ssl,
            &[],
            Some(pki.server_tls("requested", &server, ClientAuth::Requested)),
        )
    };
    let s = serve_secured(vec![required, requested], relaxed()).await;
    let alice = pki.client(&[(DnType::OrganizationName, "Example"), (DnType::CommonName, "Alice")]);
    let with_cert = pki.connector(Some(&alice));
    let without = pki.connector(None);
    let forged = pki.connector(Some(&self_signed_client("Alice")));
    for addr in &s.addrs {
        let (mut c, _) = Conn::tls(*addr, &with_cert).await;
        assert_eq!(c.call(ApiVersionsRequest::default(), 3).await.error_code, errors::NONE);
        assert!(c.metadata().await.is_some());
        // A certificate the CA did not sign is refused either way.
        assert!(
            tls_refused(*addr, &forged).await,
            "self-signed certificate served on {addr}"
        );
    }
    assert!(tls_refused(s.addrs[0], &without).await, "served without a certificate");
    // Requested: a client without a certificate is served (anonymously).
    let (mut c, _) = Conn::tls(s.addrs[1], &without).await;
    assert!(c.metadata().await.is_some());
    let failures = counter(
        &s.broker,
        "veltrix_kafka_tls_handshake_failures_total",
        &[("listener", "mtls")],
    );
    assert!(failures >= 2.0, "{failures}");
}

/// The principal a certificate maps to is not visible on the wire (no
/// handler answers with it yet), but the mapping is applied: a verified
/// certificate whose subject no rule matches is refused, as in Kafka.
#[tokio::test]
async fn a_client_certificate_no_principal_mapping_rule_matches_is_refused() {
    let pki = Pki::new();
    let mapping = PrincipalMapping::parse(&["RULE:^CN=([^,]+),O=Trusted$/$1/L"]).unwrap();
    let spec = ListenerSpec {
        principal_mapping: mapping,
        ..listener(
            "mtls",
            SecurityProtocol::Ssl,
            &[],
            Some(pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::Required)),
        )
    };
    let s = serve_secured(vec![spec], relaxed()).await;
    let trusted = pki.client(&[(DnType::OrganizationName, "Trusted"), (DnType::CommonName, "Alice")]);
    let (mut c, _) = Conn::tls(s.addrs[0], &pki.connector(Some(&trusted))).await;
    assert!(c.metadata().await.is_some());
    let other = pki.client(&[(DnType::OrganizationName, "Elsewhere"), (DnType::CommonName, "Mallory")]);
    assert!(tls_refused(s.addrs[0], &pki.connector(Some(&other))).await);
}

// ---------------------------------------------------------------------------
// Certificate reload

#[tokio::test]
async fn a_reloaded_certificate_serves_new_connections_old_ones_keep_theirs_and_a_broken_file_changes_nothing() {
    let pki = Pki::new();
    let first = pki.server("broker-one", 1);
    let tls = pki.server_tls("broker", &first, ClientAuth::None);
    let s = serve_secured(
        vec![listener("ssl", SecurityProtocol::Ssl, &[], Some(tls.clone()))],
        relaxed(),
    )
    .await;
    let connector = pki.connector(None);
    let (mut old, seen) = Conn::tls(s.addrs[0], &connector).await;
    assert_eq!(seen, first.der);
    assert!(old.metadata().await.is_some());

    // A renewed certificate (another serial, another name, another key):
    // the file sizes differ, so the change is seen whatever the clock's
    // granularity.
    let second = pki.server("broker-number-two", 2);
    let files = tls.files().clone();
    std::fs::write(&files.key, &second.key_pem).unwrap();
    std::fs::write(&files.cert, &second.cert_pem).unwrap();
    assert!(tls.reload_if_changed().unwrap(), "the change was not seen");
    let (mut new, seen) = Conn::tls(s.addrs[0], &connector).await;
    assert_eq!(seen, second.der, "a new connection gets the new certificate");
    assert!(new.metadata().await.is_some());
    assert!(old.metadata().await.is_some(), "the old connection is still served");

    // A broken certificate file: the error is reported, the second stays.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    assert!(tls.reload_if_changed().is_err());
    let (mut c, seen) = Conn::tls(s.addrs[0], &connector).await;
    assert_eq!(seen, second.der, "a broken file replaced the certificate");
    assert!(c.metadata().await.is_some());
    // A key that does not match the certificate: the same.
    let third = pki.server("broker-3", 3);
    std::fs::write(&files.cert, &third.cert_pem).unwrap();
    assert!(tls.reload_if_changed().is_err());
    let (_, seen) = Conn::tls(s.addrs[0], &connector).await;
    assert_eq!(seen, second.der, "a mismatched key replaced the certificate");
    // Fixed: taken.
    // (A trailing newline: a size of its own, for the same reason as above.)
    std::fs::write(&files.key, format!("{}\n", third.key_pem)).unwrap();
    assert!(tls.reload_if_changed().unwrap());
    let (mut c, seen) = Conn::tls(s.addrs[0], &connector).await;
    assert_eq!(seen, third.der);
    assert!(c.metadata().await.is_some());
    assert!(old.metadata().await.is_some());
}

// ---------------------------------------------------------------------------
// The listeners, as DescribeConfigs tells them

/// The broker's DescribeConfigs answers, read-only and from the broker's
/// configuration, every listener on every listener: where each is bound and
/// advertised, its protocol, the mechanisms of the SASL ones (all together,
/// and each its own), a TLS listener's client certificate policy. Asked on
/// the PLAINTEXT listener, it describes the SASL_SSL one too, which is what
/// `veltrix doctor --broker` relies on.
#[tokio::test]
async fn describe_configs_tells_every_listener_protocol_address_and_mechanisms() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

    let pki = Pki::new();
    let tls = pki.server_tls("broker", &pki.server("broker", 1), ClientAuth::Requested);
    let mechanisms = [SaslMechanism::ScramSha512, SaslMechanism::Plain];
    let s = serve_secured(
        vec![
            listener("kafka", SecurityProtocol::Plaintext, &[], None),
            listener("secure", SecurityProtocol::SaslSsl, &mechanisms, Some(tls)),
        ],
        relaxed(),
    )
    .await;
    let (plain, secure) = (s.addrs[0].port(), s.addrs[1].port());
    let mut c = Conn::plain(s.addrs[0]).await;
    let resource = DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("0"))
        .with_configuration_keys(None);
    let r: DescribeConfigsResponse = c
        .call(DescribeConfigsRequest::default().with_resources(vec![resource]), 4)
        .await;
    let broker = &r.results[0];
    assert_eq!(broker.error_code, errors::NONE);
    let value = |name: &str| {
        let found: Vec<_> = broker.configs.iter().filter(|e| e.name.as_str() == name).collect();
        assert_eq!(found.len(), 1, "`{name}` once");
        let e = found[0];
        assert!(e.read_only, "{name} is read-only");
        assert_eq!(e.config_source, 4, "{name} is STATIC_BROKER_CONFIG");
        e.value.as_ref().map(|v| v.as_str().to_owned()).unwrap_or_default()
    };
    assert_eq!(
        value("listeners"),
        format!("kafka://127.0.0.1:{plain},secure://127.0.0.1:{secure}")
    );
    assert_eq!(
        value("advertised.listeners"),
        format!("kafka://localhost:{plain},secure://localhost:{secure}")
    );
    assert_eq!(
        value("listener.security.protocol.map"),
        "kafka:PLAINTEXT,secure:SASL_SSL"
    );
    assert_eq!(value("sasl.enabled.mechanisms"), "SCRAM-SHA-512,PLAIN");
    assert_eq!(
        value("listener.name.secure.sasl.enabled.mechanisms"),
        "SCRAM-SHA-512,PLAIN"
    );
    assert_eq!(value("listener.name.secure.ssl.client.auth"), "requested");
    // The PLAINTEXT listener has no SASL and no TLS setting of its own.
    assert!(
        !broker
            .configs
            .iter()
            .any(|e| e.name.starts_with("listener.name.kafka.")),
        "no per-listener keys for `kafka`"
    );
}
