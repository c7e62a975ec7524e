//! The HTTP listener's TLS, authentication and ACLs, against an in-process
//! broker on 127.0.0.1 with an ephemeral port: HTTPS with a certificate from
//! a CA made for the test, basic credentials and bearer tokens checked
//! against the broker's users, tokens revoked by a password change, each
//! route's ACL, and requests a browser sends on another site's behalf.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::watch;
use veltrix_core::acl::{AclBinding, AclConfig, AclOperation, AclPermissionType, PatternType, ResourceType};
use veltrix_core::auth::{ScramCredential, ScramMechanism};
use veltrix_core::{Broker, BrokerConfig, TopicConfig};
use veltrix_http::{Access, HttpLimits, HttpSecurity, HttpSecurityConfig, HttpState, Monitor, MonitorConfig};
use veltrix_log::Env;
use veltrix_tls::{ClientAuth, TlsFiles, TlsServer};

struct Running {
    _dir: tempfile::TempDir,
    broker: Arc<Broker>,
    addr: SocketAddr,
    client: reqwest::Client,
    scheme: &'static str,
    _stop: watch::Sender<bool>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}://localhost:{}{path}", self.scheme, self.addr.port())
    }

    async fn get(&self, path: &str, auth: Auth<'_>) -> (StatusCode, Value) {
        let request = auth.apply(self.client.get(self.url(path)));
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn add_user(&self, user: &str, password: &str) {
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, password.as_bytes(), b"salt-0123".to_vec(), 4096)
                .unwrap();
        self.broker.credentials().upsert(user, credential).unwrap();
    }

    fn allow(&self, principal: &str, op: AclOperation, rt: ResourceType, name: &str, pattern: PatternType) {
        let binding = AclBinding {
            resource_type: rt,
            resource_name: name.to_owned(),
            pattern_type: pattern,
            principal: principal.to_owned(),
            host: "*".to_owned(),
            operation: op,
            permission: AclPermissionType::Allow,
        };
        for r in self.broker.authorizer().create(&[binding]) {
            r.unwrap();
        }
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let families = self.broker.metrics().registry().gather();
        let Some(family) = families.iter().find(|f| f.name() == name) else {
            return 0.0;
        };
        family
            .get_metric()
            .iter()
            .filter(|m| {
                labels
                    .iter()
                    .all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v))
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

impl Auth<'_> {
    fn apply(self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => r,
            Auth::Basic(u, p) => r.basic_auth(u, Some(p)),
            Auth::Bearer(t) => r.bearer_auth(t),
        }
    }
}

/// A CA, and a certificate for `localhost` it signed, as PEM files in `dir`;
/// the CA's PEM.
fn certificates(dir: &std::path::Path) -> (TlsFiles, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (cert_path, key_path) = (dir.join("http.pem"), dir.join("http.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let files = TlsFiles {
        cert: cert_path,
        key: key_path,
        client_ca: None,
        client_auth: ClientAuth::None,
    };
    (files, ca.pem())
}

/// A broker and its HTTP listener: HTTPS when `tls`, with `security`, and
/// ACLs enforced when `authorization` (`User:admin` a super user).
async fn start(security: HttpSecurityConfig, tls: bool, authorization: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        acl: AclConfig {
            enabled: authorization,
            super_users: BTreeSet::from(["User:admin".to_owned()]),
            ..AclConfig::default()
        },
        ..BrokerConfig::default()
    };
    let broker = Arc::new(Broker::open(Env::system(), dir.path().join("data"), config).unwrap());
    let (tls_server, client) = if tls {
        let (files, ca) = certificates(dir.path());
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        (Some(Arc::new(TlsServer::load(files).unwrap())), client)
    } else {
        (None, reqwest::Client::new())
    };
    let monitor = Monitor::new(broker.clone(), MonitorConfig::default());
    let (stop, stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = HttpState {
        broker: broker.clone(),
        monitor,
        started: Instant::now(),
        info: serde_json::json!({}),
        ready: Arc::new(AtomicBool::new(true)),
        security: Arc::new(HttpSecurity::new(security, tls_server, broker.metrics())),
        config_check: None,
    };
    tokio::spawn(veltrix_http::serve(listener, state, HttpLimits::default(), stop_rx));
    Running {
        _dir: dir,
        broker,
        addr,
        client,
        scheme: if tls { "https" } else { "http" },
        _stop: stop,
    }
}

fn required() -> HttpSecurityConfig {
    HttpSecurityConfig {
        api: Access::Authenticated,
        metrics: Access::Authenticated,
        health: Access::Open,
        authentication_failure_delay_ms: 0,
        ..HttpSecurityConfig::default()
    }
}

#[tokio::test]
async fn https_with_basic_credentials_and_bearer_tokens() {
    let r = start(required(), true, false).await;
    r.add_user("alice", "correct horse");
    assert_eq!(r.get("/health", Auth::None).await.0, StatusCode::OK);
    let response = r.client.get(r.url("/api/v1/topics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Basic realm=\"veltrix\""), "{challenge}");
    assert_eq!(r.get("/metrics", Auth::None).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = r.get("/api/v1/topics", Auth::Basic("alice", "wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().unwrap().contains("invalid credentials"),
        "{body}"
    );
    assert_eq!(
        r.get("/api/v1/topics", Auth::Basic("mallory", "x")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        r.metric("veltrix_http_authentications_total", &[("result", "failed")]),
        2.0
    );
    for _ in 0..3 {
        assert_eq!(
            r.get("/api/v1/topics", Auth::Basic("alice", "correct horse")).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        r.get("/metrics", Auth::Basic("alice", "correct horse")).await.0,
        StatusCode::OK
    );

    let issued = r
        .client
        .post(r.url("/api/v1/tokens"))
        .basic_auth("alice", Some("correct horse"))
        .json(&serde_json::json!({ "ttl_ms": 60_000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), StatusCode::CREATED);
    let issued: Value = issued.json().await.unwrap();
    assert_eq!(issued["principal"], "User:alice");
    let token = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(r.get("/api/v1/groups", Auth::Bearer(&token)).await.0, StatusCode::OK);
    // A token does not mint another.
    let again = r
        .client
        .post(r.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = r.get("/api/v1/groups", Auth::Bearer("vx1.AAAA.AAAA")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A new password ends the token and the remembered old password.
    r.add_user("alice", "battery staple");
    let (status, body) = r.get("/api/v1/groups", Auth::Bearer(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("revoked"), "{body}");
    assert_eq!(
        r.get("/api/v1/topics", Auth::Basic("alice", "correct horse")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        r.get("/api/v1/topics", Auth::Basic("alice", "battery staple")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn plain_http_to_the_https_listener_is_refused() {
    let r = start(required(), true, false).await;
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/health", r.addr.port()))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while r.metric("veltrix_http_tls_handshake_failures_total", &[]) < 1.0 {
        assert!(Instant::now() < deadline, "the failed handshake was not counted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn token_lifetimes_are_bounded() {
    let r = start(required(), false, false).await;
    r.add_user("alice", "pw");
    let post = |body: Value| {
        r.client
            .post(r.url("/api/v1/tokens"))
            .basic_auth("alice", Some("pw"))
            .json(&body)
            .send()
    };
    let too_long = post(serde_json::json!({ "ttl_ms": 3_600_001 })).await.unwrap();
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
    let unknown = post(serde_json::json!({ "ttl": 5 })).await.unwrap();
    assert!(unknown.status().is_client_error());
    let default = post(serde_json::json!({})).await.unwrap();
    assert_eq!(default.status(), StatusCode::CREATED);
    let body: Value = default.json().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let expires = body["expires_at_ms"].as_u64().unwrap();
    assert!(expires > now && expires <= now + 3_600_000, "{expires} vs {now}");
}

#[tokio::test]
async fn each_route_checks_its_acl() {
    let r = start(required(), false, true).await;
    r.add_user("alice", "pw");
    r.add_user("admin", "pw");
    for t in ["orders", "order-events", "payments"] {
        r.broker.create_topic(t, Some(1), TopicConfig::default()).unwrap();
    }
    let alice = Auth::Basic("alice", "pw");
    let names = |body: &Value| -> Vec<String> {
        let mut n: Vec<String> = body["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    let (status, body) = r.get("/api/v1/topics", alice).await;
    assert_eq!(status, StatusCode::OK);
    assert!(names(&body).is_empty(), "no ACL, no topic: {body}");
    r.allow(
        "User:alice",
        AclOperation::Read,
        ResourceType::Topic,
        "order",
        PatternType::Prefixed,
    );
    let (_, body) = r.get("/api/v1/topics", alice).await;
    assert_eq!(names(&body), ["order-events", "orders"]);
    assert_eq!(r.get("/api/v1/topics/orders", alice).await.0, StatusCode::OK);
    let (status, body) = r.get("/api/v1/topics/payments", alice).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "User:alice may not DESCRIBE topic `payments`");
    // Whether a topic exists is not told to who may not describe it.
    assert_eq!(r.get("/api/v1/topics/nope", alice).await.0, StatusCode::FORBIDDEN);
    for path in [
        "/api/v1/broker",
        "/alerts",
        "/api/v1/routes",
        "/api/v1/redrives",
        "/metrics",
    ] {
        assert_eq!(r.get(path, alice).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    r.allow(
        "User:alice",
        AclOperation::Describe,
        ResourceType::Cluster,
        "kafka-cluster",
        PatternType::Literal,
    );
    for path in ["/alerts", "/api/v1/routes", "/api/v1/redrives", "/metrics"] {
        assert_eq!(r.get(path, alice).await.0, StatusCode::OK, "{path}");
    }
    assert_eq!(r.get("/api/v1/broker", alice).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        r.get("/api/v1/dlq/payments/letters", alice).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(r.get("/api/v1/groups/billing", alice).await.0, StatusCode::FORBIDDEN);
    // A super user sees everything.
    let (_, body) = r.get("/api/v1/topics", Auth::Basic("admin", "pw")).await;
    assert_eq!(names(&body), ["order-events", "orders", "payments"]);
    assert!(r.metric("veltrix_http_authorization_denied_total", &[("resource_type", "TOPIC")]) >= 3.0);
    // A redrive writes: WRITE on its target, or ALTER on the cluster.
    let redrive = r
        .client
        .post(r.url("/api/v1/dlq/orders/redrive"))
        .basic_auth("alice", Some("pw"))
        .json(&serde_json::json!({ "dry_run": true, "target": "payments" }))
        .send()
        .await
        .unwrap();
    assert_eq!(redrive.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn open_paths_act_as_the_anonymous_principal() {
    let security = HttpSecurityConfig {
        api: Access::Open,
        metrics: Access::Open,
        anonymous_principal: "User:local".to_owned(),
        ..HttpSecurityConfig::default()
    };
    let r = start(security, false, true).await;
    r.broker
        .create_topic("orders", Some(1), TopicConfig::default())
        .unwrap();
    let (status, body) = r.get("/api/v1/topics", Auth::None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["topics"].as_array().unwrap().len(), 0);
    r.allow(
        "User:local",
        AclOperation::Describe,
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
    );
    let (_, body) = r.get("/api/v1/topics", Auth::None).await;
    assert_eq!(body["topics"].as_array().unwrap().len(), 1);
    // Open metrics need no ACL; bad credentials are refused even on open paths.
    assert_eq!(r.get("/metrics", Auth::None).await.0, StatusCode::OK);
    assert_eq!(
        r.get("/metrics", Auth::Basic("ghost", "x")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Producing over HTTP takes WRITE on the topic (asked before whether it
/// exists) and is refused from another site; the configuration's check
/// takes DESCRIBE_CONFIGS on the cluster.
#[tokio::test]
async fn a_produce_takes_write_on_the_topic_and_the_same_site() {
    let security = HttpSecurityConfig {
        mutations: true,
        ..required()
    };
    let r = start(security, false, true).await;
    r.add_user("alice", "pw");
    r.broker
        .create_topic("orders", Some(1), TopicConfig::default())
        .unwrap();
    let produce = |topic: &str, origin: Option<&str>| {
        let mut request = r
            .client
            .post(r.url(&format!("/api/v1/topics/{topic}/records")))
            .basic_auth("alice", Some("pw"))
            .json(&serde_json::json!({ "value": "v" }));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(produce("orders", None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(produce("nope", None).await.unwrap().status(), StatusCode::FORBIDDEN);
    r.allow(
        "User:alice",
        AclOperation::Write,
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
    );
    assert_eq!(produce("orders", None).await.unwrap().status(), StatusCode::CREATED);
    let same = format!("http://localhost:{}", r.addr.port());
    assert_eq!(
        produce("orders", Some(&same)).await.unwrap().status(),
        StatusCode::CREATED
    );
    let cross = produce("orders", Some("https://evil.example")).await.unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.broker.partition("orders", 0).unwrap().log().high_watermark(), 2);
    let alice = Auth::Basic("alice", "pw");
    assert_eq!(r.get("/api/v1/config/check", alice).await.0, StatusCode::FORBIDDEN);
}

/// A change sent with basic credentials and, when given, an `Origin`.
fn change(
    r: &Running,
    method: reqwest::Method,
    path: &str,
    user: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> reqwest::RequestBuilder {
    let mut request = r.client.request(method, r.url(path)).basic_auth(user, Some("pw"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request
}

/// A redrive that moves letters takes its ACLs (READ on the dead-letter
/// topic, WRITE on the target) and is refused from another site, before
/// anything is started.
#[tokio::test]
async fn a_redrive_takes_its_acls_and_the_same_site() {
    let security = HttpSecurityConfig {
        mutations: true,
        ..required()
    };
    let r = start(security, false, true).await;
    r.add_user("alice", "pw");
    for t in ["dlq", "orders"] {
        r.broker.create_topic(t, Some(1), TopicConfig::default()).unwrap();
    }
    let body = serde_json::json!({ "target": "orders" });
    let redrive = |origin: Option<&str>| {
        change(
            &r,
            reqwest::Method::POST,
            "/api/v1/dlq/dlq/redrive",
            "alice",
            origin,
            Some(body.clone()),
        )
        .send()
    };
    assert_eq!(redrive(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    r.allow(
        "User:alice",
        AclOperation::Read,
        ResourceType::Topic,
        "dlq",
        PatternType::Literal,
    );
    assert_eq!(redrive(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    r.allow(
        "User:alice",
        AclOperation::Write,
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
    );
    for cross in [
        redrive(Some("https://evil.example")).await.unwrap(),
        change(
            &r,
            reqwest::Method::POST,
            "/api/v1/dlq/dlq/redrive",
            "alice",
            None,
            Some(body.clone()),
        )
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap(),
    ] {
        assert_eq!(cross.status(), StatusCode::FORBIDDEN);
        let answer: Value = cross.json().await.unwrap();
        assert_eq!(answer["error"], "a cross-site request may not change anything");
    }
    assert!(r.broker.redriver().jobs().is_empty());
    let same = format!("http://localhost:{}", r.addr.port());
    assert_eq!(redrive(Some(&same)).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(r.broker.redriver().jobs().len(), 1);
}

/// Deleting a topic takes DeleteTopics' ACLs: DELETE on the cluster, or
/// else DESCRIBE on the topic (refused whether it exists or not) and DELETE
/// on it; a group takes DELETE on the group. Both are refused from another
/// site, and `deletion` says beforehand whether the caller could.
#[tokio::test]
async fn deleting_takes_kafkas_acls_and_the_same_site() {
    let security = HttpSecurityConfig {
        mutations: true,
        ..required()
    };
    let r = start(security, false, true).await;
    r.add_user("alice", "pw");
    r.add_user("admin", "pw");
    for t in ["orders", "payments"] {
        r.broker.create_topic(t, Some(1), TopicConfig::default()).unwrap();
    }
    let delete =
        |path: &str, origin: Option<&str>| change(&r, reqwest::Method::DELETE, path, "alice", origin, None).send();
    let status = |path: &'static str| async move { delete(path, None).await.unwrap().status() };
    assert_eq!(status("/api/v1/topics/orders").await, StatusCode::FORBIDDEN);
    assert_eq!(status("/api/v1/topics/nope").await, StatusCode::FORBIDDEN);
    r.allow(
        "User:alice",
        AclOperation::Describe,
        ResourceType::Topic,
        "*",
        PatternType::Literal,
    );
    assert_eq!(status("/api/v1/topics/nope").await, StatusCode::NOT_FOUND);
    let refused = delete("/api/v1/topics/orders", None).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"], "User:alice may not DELETE topic `orders`");
    let alice = Auth::Basic("alice", "pw");
    let (_, topic) = r.get("/api/v1/topics/orders", alice).await;
    assert_eq!(topic["deletion"]["allowed"], false);
    assert_eq!(topic["deletion"]["why_not"], "User:alice may not DELETE topic `orders`");

    r.allow(
        "User:alice",
        AclOperation::Delete,
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
    );
    let (_, topic) = r.get("/api/v1/topics/orders", alice).await;
    assert_eq!(topic["deletion"]["allowed"], true);
    let cross = delete("/api/v1/topics/orders", Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(r.broker.topic("orders").is_some());
    let same = format!("http://localhost:{}", r.addr.port());
    assert_eq!(
        delete("/api/v1/topics/orders", Some(&same)).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(r.broker.topic("orders").is_none());
    // DELETE on the cluster is enough for any topic.
    assert_eq!(status("/api/v1/topics/payments").await, StatusCode::FORBIDDEN);
    r.allow(
        "User:alice",
        AclOperation::Delete,
        ResourceType::Cluster,
        "kafka-cluster",
        PatternType::Literal,
    );
    let (_, topic) = r.get("/api/v1/topics/payments", alice).await;
    assert_eq!(topic["deletion"]["allowed"], true);
    assert_eq!(status("/api/v1/topics/payments").await, StatusCode::OK);

    // A group: DELETE on it (asked before whether it exists).
    assert_eq!(status("/api/v1/groups/nobody").await, StatusCode::FORBIDDEN);
    r.allow(
        "User:alice",
        AclOperation::Delete,
        ResourceType::Group,
        "nobody",
        PatternType::Literal,
    );
    assert_eq!(status("/api/v1/groups/nobody").await, StatusCode::NOT_FOUND);
    let admin = change(
        &r,
        reqwest::Method::DELETE,
        "/api/v1/groups/nobody",
        "admin",
        None,
        None,
    );
    assert_eq!(admin.send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert!(r.metric("veltrix_http_authorization_denied_total", &[("operation", "DELETE")]) >= 3.0);
}

#[tokio::test]
async fn cross_site_changes_are_refused() {
    let r = start(required(), false, false).await;
    r.add_user("alice", "pw");
    let post = |origin: &str| {
        r.client
            .post(r.url("/api/v1/tokens"))
            .basic_auth("alice", Some("pw"))
            .header("origin", origin)
            .send()
    };
    assert_eq!(
        post("https://evil.example").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let same = format!("http://localhost:{}", r.addr.port());
    assert_eq!(post(&same).await.unwrap().status(), StatusCode::CREATED);
    let fetch_cross = r
        .client
        .post(r.url("/api/v1/tokens"))
        .basic_auth("alice", Some("pw"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(fetch_cross.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn remembered_passwords_are_bounded() {
    let security = HttpSecurityConfig {
        verified_passwords_max: 1,
        ..required()
    };
    let r = start(security, false, false).await;
    r.add_user("alice", "pw");
    r.add_user("bob", "pw");
    for _ in 0..2 {
        for user in ["alice", "bob"] {
            assert_eq!(r.get("/api/v1/topics", Auth::Basic(user, "pw")).await.0, StatusCode::OK);
        }
    }
    assert_eq!(r.metric("veltrix_http_verified_passwords_evicted_total", &[]), 3.0);
}

/// A password guesser holding many requests open (each waiting for its
/// check, then held back after failing) takes none of the routes' slots:
/// health checks and authenticated users are still served.
#[tokio::test]
async fn a_flood_of_wrong_passwords_does_not_starve_others() {
    let security = HttpSecurityConfig {
        authentication_failure_delay_ms: 5_000,
        password_checks_in_flight_max: 1,
        ..required()
    };
    let r = Arc::new(start(security, false, false).await);
    r.add_user("alice", "pw");
    assert_eq!(
        r.get("/api/v1/topics", Auth::Basic("alice", "pw")).await.0,
        StatusCode::OK
    );
    let flood: Vec<_> = (0..100)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move {
                let password = format!("guess-{i}");
                let sent = Instant::now();
                let status = r.get("/api/v1/topics", Auth::Basic("alice", &password)).await.0;
                (status, sent.elapsed())
            })
        })
        .collect();
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while r.metric("veltrix_http_authentications_total", &[("result", "failed")]) < 80.0 {
        assert!(Instant::now() < deadline, "the guesses were not checked");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // More than HTTP_REQUESTS_IN_FLIGHT_MAX guesses are held back now.
    assert_eq!(r.get("/health", Auth::None).await.0, StatusCode::OK);
    assert_eq!(
        r.get("/api/v1/topics", Auth::Basic("alice", "pw")).await.0,
        StatusCode::OK
    );
    // Each guess was held back its whole delay, however long the checks
    // before it took on a loaded machine.
    for f in flood {
        let (status, took) = f.await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            took >= std::time::Duration::from_millis(5_000),
            "a guess was answered after {took:?}, not held back"
        );
    }
}
