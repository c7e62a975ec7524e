//! Who an HTTP request is, and what it may do.
//!
//! The HTTP listener takes the broker's users and ACLs as the Kafka
//! listeners do. A request authenticates with basic credentials (a user's
//! password, checked against their SCRAM credentials as SASL PLAIN is) or a
//! bearer token (`POST /api/v1/tokens` issues one to basic credentials); its
//! principal is then `User:<name>`. A request without credentials is
//! refused (401) where authentication is required, and is the listener's
//! anonymous principal where it is not. Credentials that do not verify are
//! refused everywhere, never taken as anonymous.
//!
//! Three kinds of path are set apart: the API (`/api/v1/`, `/alerts`),
//! `/metrics`, and the health checks (`/health`, `/ready`). Each either
//! requires authentication or not. The API's routes check ACLs as the Kafka
//! APIs reading the same things do; `/metrics`, when authenticated, needs
//! DESCRIBE on the cluster; the health checks need no ACL.
//!
//! A password is checked with PBKDF2 off the async threads, at most
//! `password_checks_in_flight_max` at once, and remembered (an HMAC of it
//! under a key held in memory, [`VerifiedPasswords`]) while the user's
//! credentials stay the same, so a client sending its basic credentials
//! with every request pays once. A failed authentication is answered after
//! `authentication_failure_delay_ms`, counted, and written to the audit log.
//!
//! Requests that change something (any method but GET and HEAD) sent by a
//! browser from another site are refused: an `Origin` not this host, or
//! `Sec-Fetch-Site: cross-site`. With basic credentials a browser would
//! otherwise attach them to a form another site posts.
//!
//! The routes that change what the Kafka APIs change (produce, offset
//! resets, redrives, deleting topics and groups) are off unless
//! `[listeners] http_mutations = true`: each asks
//! [`HttpSecurity::allow_change`] after its ACLs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use tokio::sync::Semaphore;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};
use veltrix_core::auth::{PlainMessage, TokenError, VerifiedPasswords, authenticate_plain, validate_user_name};
use veltrix_core::warn_limit::WarnLimiter;
use veltrix_tls::TlsServer;

use crate::server::HttpState;

/// The principal of a request nothing authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The longest `Authorization` header read; a longer one is refused unread.
pub const AUTHORIZATION_BYTES_MAX: usize = 4096;

/// Whether a kind of path requires authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Served without credentials (as the anonymous principal).
    #[default]
    Open,
    /// Refused (401) without valid credentials.
    Authenticated,
}

impl Access {
    /// `none` or `required`, as the configuration writes them.
    pub fn parse(word: &str) -> Option<Access> {
        match word {
            "none" => Some(Access::Open),
            "required" => Some(Access::Authenticated),
            _ => None,
        }
    }
}

/// How the HTTP listener authenticates, and its limits. Names end in their
/// unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSecurityConfig {
    /// `/api/v1/` and `/alerts`.
    pub api: Access,
    pub metrics: Access,
    /// `/health` and `/ready`.
    pub health: Access,
    /// The principal of requests without credentials where access is open.
    pub anonymous_principal: String,
    /// The longest a bearer token may live, and how long one lives unless
    /// asked for less.
    pub token_ttl_ms_max: u64,
    /// How long the answer to a failed authentication is held back.
    pub authentication_failure_delay_ms: u64,
    /// Password checks remembered (0: none).
    pub verified_passwords_max: usize,
    /// PBKDF2 runs at once; more wait.
    pub password_checks_in_flight_max: usize,
    /// An audit line of one kind and client address at most once per this
    /// interval.
    pub warning_interval_ms: u64,
    /// Whether requests may change things the Kafka APIs change (produce a
    /// record, reset a group's offsets, redrive dead letters, delete a topic
    /// or a group); off by default, so an HTTP listener opened for looking
    /// is only for looking.
    pub mutations: bool,
    /// The largest body of a record produced over HTTP
    /// (`POST /api/v1/topics/{name}/records`).
    pub produce_bytes_max: usize,
}

impl Default for HttpSecurityConfig {
    fn default() -> HttpSecurityConfig {
        HttpSecurityConfig {
            api: Access::Open,
            metrics: Access::Open,
            health: Access::Open,
            anonymous_principal: ANONYMOUS.to_owned(),
            token_ttl_ms_max: 3_600_000,
            authentication_failure_delay_ms: 100,
            verified_passwords_max: 1024,
            password_checks_in_flight_max: 2,
            warning_interval_ms: 10_000,
            mutations: false,
            produce_bytes_max: 1 << 20,
        }
    }
}

/// The listener's TLS and authentication, built once at start.
pub struct HttpSecurity {
    config: HttpSecurityConfig,
    tls: Option<Arc<TlsServer>>,
    verified: VerifiedPasswords,
    password_checks: Semaphore,
    limiter: WarnLimiter,
}

impl std::fmt::Debug for HttpSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSecurity")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpSecurity {
    /// `tls`: the listener serves HTTPS only. `metrics`: where the audit
    /// log's suppressed lines are counted.
    pub fn new(
        config: HttpSecurityConfig,
        tls: Option<Arc<TlsServer>>,
        metrics: &veltrix_core::Metrics,
    ) -> HttpSecurity {
        HttpSecurity {
            verified: VerifiedPasswords::new(rand::random(), config.verified_passwords_max),
            password_checks: Semaphore::new(config.password_checks_in_flight_max.max(1)),
            limiter: WarnLimiter::new(
                Duration::from_millis(config.warning_interval_ms),
                metrics.warnings_suppressed.clone(),
            ),
            tls,
            config,
        }
    }

    /// Plain HTTP, nothing required: what the one-command start serves.
    pub fn open(metrics: &veltrix_core::Metrics) -> HttpSecurity {
        HttpSecurity::new(HttpSecurityConfig::default(), None, metrics)
    }

    pub fn config(&self) -> &HttpSecurityConfig {
        &self.config
    }

    pub fn tls(&self) -> Option<&Arc<TlsServer>> {
        self.tls.as_ref()
    }

    pub(crate) fn limiter(&self) -> &WarnLimiter {
        &self.limiter
    }

    /// `Ok` when the listener takes changes (`[listeners] http_mutations`);
    /// else the refusal to answer. `instead`: another way to make the
    /// change, which the refusal names.
    pub fn allow_change(&self, instead: Option<&'static str>) -> Result<(), ChangesOff> {
        if self.config.mutations {
            Ok(())
        } else {
            Err(ChangesOff { instead })
        }
    }
}

/// The setting that lets the HTTP API change things, as refusals name it
/// (in `error`, and alone in `setting`, which `veltrix` reads).
pub const MUTATIONS_SETTING: &str = "[listeners] http_mutations";

/// A change refused because the listener takes none: answered 403.
#[derive(Debug)]
pub struct ChangesOff {
    instead: Option<&'static str>,
}

impl ChangesOff {
    /// What the refusal says.
    pub fn message(&self) -> String {
        let mut message = format!("changes over HTTP are off: set `{MUTATIONS_SETTING} = true`");
        if let Some(instead) = self.instead {
            message.push_str(&format!(" (or {instead})"));
        }
        message
    }
}

impl IntoResponse for ChangesOff {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message(), "setting": MUTATIONS_SETTING });
        (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Anonymous,
    Basic,
    Bearer,
}

/// Who sent a request: put in its extensions by [`authenticate`], read by
/// the routes.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `User:<name>`, or the anonymous principal.
    pub principal: String,
    /// The client's address, for ACLs' hosts.
    pub host: IpAddr,
    pub via: Via,
}

impl Caller {
    /// The user's name, when credentials authenticated the request.
    pub fn user(&self) -> Option<&str> {
        (self.via != Via::Anonymous).then(|| self.principal.strip_prefix("User:").unwrap_or(&self.principal))
    }

    /// Whether the caller may do `operation` on the resource, without a
    /// trace when not: for leaving things out of a listing.
    pub fn may(&self, s: &HttpState, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        s.broker
            .authorizer()
            .authorize(&self.principal, self.host, operation, resource_type, name)
            .is_allowed()
    }

    /// `Ok` if the caller may do `operation` on the resource; else the 403
    /// to answer, the denial counted and written to the audit log.
    pub fn check(
        &self,
        s: &HttpState,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<(), Denied> {
        if self.may(s, operation, resource_type, name) {
            return Ok(());
        }
        let (op, rt) = (operation.name(), resource_type.name());
        s.broker
            .metrics()
            .http
            .authorization_denied
            .with_label_values(&[op, rt])
            .inc();
        veltrix_core::audit::denied(
            s.security.limiter(),
            SocketAddr::new(self.host, 0),
            &self.principal,
            op,
            rt,
            name,
        );
        let what = match resource_type {
            ResourceType::Cluster => "the cluster".to_owned(),
            _ => format!("{} `{name}`", rt.to_lowercase()),
        };
        Err(Denied(format!("{} may not {op} {what}", self.principal)))
    }

    /// [`Caller::check`] on the cluster.
    pub fn check_cluster(&self, s: &HttpState, operation: AclOperation) -> Result<(), Denied> {
        self.check(s, operation, ResourceType::Cluster, CLUSTER_NAME)
    }
}

/// A refusal for want of an ACL: answered 403 with its message.
#[derive(Debug)]
pub struct Denied(String);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        crate::server::error(StatusCode::FORBIDDEN, self.0)
    }
}

/// The client's address, put in each request's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Which setting governs a path.
fn access_of(s: &HttpState, path: &str) -> Access {
    let config = s.security.config();
    match path {
        "/metrics" => config.metrics,
        "/health" | "/ready" => config.health,
        _ => config.api,
    }
}

/// A failed authentication: why, for the audit log and the answer.
struct Refusal {
    method: &'static str,
    user: Option<String>,
    reason: String,
}

/// The middleware in front of every route: the request's [`Caller`], or a
/// 401 (after the failure delay) or 403 (a cross-site change).
pub async fn authenticate(State(s): State<HttpState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<Peer>()
        .map_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0), |p| p.0);
    if let Some(refused) = cross_site_change(request.method(), request.headers()) {
        return refused;
    }
    let access = access_of(&s, request.uri().path());
    let caller = match identify(&s, request.headers(), peer.ip()).await {
        Ok(Some(caller)) => caller,
        Ok(None) if access == Access::Open => Caller {
            principal: s.security.config().anonymous_principal.clone(),
            host: peer.ip(),
            via: Via::Anonymous,
        },
        Ok(None) => {
            return unauthorized(
                "this path requires authentication: basic credentials or a bearer token",
                false,
            );
        }
        Err(refusal) => return refuse(&s, peer, refusal).await,
    };
    if request.uri().path() == "/metrics"
        && access == Access::Authenticated
        && let Err(denied) = caller.check_cluster(&s, AclOperation::Describe)
    {
        return denied.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The request's credentials checked: `None` when it has none.
async fn identify(s: &HttpState, headers: &HeaderMap, host: IpAddr) -> Result<Option<Caller>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let refusal = |method, reason: &str| Refusal {
        method,
        user: None,
        reason: reason.to_owned(),
    };
    if value.len() > AUTHORIZATION_BYTES_MAX {
        return Err(refusal("", "the Authorization header is too long"));
    }
    let value = value
        .to_str()
        .map_err(|_| refusal("", "the Authorization header is not ASCII"))?;
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    let (user, via) = if scheme.eq_ignore_ascii_case("basic") {
        (basic(s, credentials).await?, Via::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        (bearer(s, credentials)?, Via::Bearer)
    } else {
        return Err(refusal("", "unknown authorization scheme; use Basic or Bearer"));
    };
    let method = if via == Via::Basic { "basic" } else { "bearer" };
    s.broker
        .metrics()
        .http
        .authentications
        .with_label_values(&[method, "ok"])
        .inc();
    Ok(Some(Caller {
        principal: format!("User:{user}"),
        host,
        via,
    }))
}

/// Basic credentials (RFC 7617): the user's name, if the password verifies.
async fn basic(s: &HttpState, encoded: &str) -> Result<String, Refusal> {
    let refusal = |user: Option<&str>, reason: &str| Refusal {
        method: "basic",
        user: user.map(str::to_owned),
        reason: reason.to_owned(),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| refusal(None, "basic credentials are not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| refusal(None, "basic credentials are not UTF-8"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| refusal(None, "basic credentials have no `:`"))?;
    validate_user_name(user).map_err(|why| refusal(None, why))?;
    if password.is_empty() {
        return Err(refusal(Some(user), "empty password"));
    }
    let security = &s.security;
    let fingerprint = s.broker.credentials().fingerprint(user);
    if security.verified.contains(user, password.as_bytes(), fingerprint) {
        return Ok(user.to_owned());
    }
    let _slot = match security.password_checks.try_acquire() {
        Ok(slot) => slot,
        Err(_) => {
            s.broker.metrics().http.password_checks_waited.inc();
            security
                .password_checks
                .acquire()
                .await
                .map_err(|_| refusal(Some(user), "shutting down"))?
        }
    };
    let broker = s.broker.clone();
    let (name, secret) = (user.to_owned(), password.to_owned());
    let checked = tokio::task::spawn_blocking(move || {
        let message = PlainMessage {
            authzid: "",
            user: &name,
            password: &secret,
        };
        authenticate_plain(&message, &|u, m| broker.credentials().get(u, m))
    })
    .await;
    match checked {
        Ok(Ok(_)) => {
            if let Some(fingerprint) = fingerprint {
                let evicted = security.verified.insert(user, password.as_bytes(), fingerprint);
                s.broker
                    .metrics()
                    .http
                    .verified_passwords_evicted
                    .inc_by(evicted as u64);
            }
            Ok(user.to_owned())
        }
        Ok(Err(_)) => Err(refusal(Some(user), "invalid credentials")),
        Err(_) => Err(refusal(Some(user), "the password check failed")),
    }
}

/// A bearer token: its user's name, if it verifies.
fn bearer(s: &HttpState, token: &str) -> Result<String, Refusal> {
    let now_ms = s.broker.env().clock.now_ms().max(0) as u64;
    let credentials = s.broker.credentials();
    s.broker
        .http_tokens()
        .verify(token, now_ms, &|user| credentials.fingerprint(user))
        .map_err(|e| Refusal {
            method: "bearer",
            user: match &e {
                TokenError::Expired { user } | TokenError::Revoked { user } => Some(user.clone()),
                TokenError::Malformed | TokenError::BadSignature => None,
            },
            reason: e.to_string(),
        })
}

/// Counted, audited, held back, then answered 401.
async fn refuse(s: &HttpState, peer: SocketAddr, refusal: Refusal) -> Response {
    let method = if refusal.method.is_empty() {
        "unknown"
    } else {
        refusal.method
    };
    s.broker
        .metrics()
        .http
        .authentications
        .with_label_values(&[method, "failed"])
        .inc();
    veltrix_core::audit::authentication_failed(
        s.security.limiter(),
        peer,
        "http",
        method,
        refusal.user.as_deref(),
        &refusal.reason,
    );
    let delay = s.security.config().authentication_failure_delay_ms;
    tokio::time::sleep(Duration::from_millis(delay)).await;
    unauthorized(
        &format!("authentication failed: {}", refusal.reason),
        refusal.method == "bearer",
    )
}

fn unauthorized(message: &str, bearer: bool) -> Response {
    let challenge = if bearer {
        r#"Bearer realm="veltrix", error="invalid_token""#
    } else {
        r#"Basic realm="veltrix", charset="UTF-8""#
    };
    let mut response = crate::server::error(StatusCode::UNAUTHORIZED, message);
    if let Ok(value) = challenge.parse() {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// A change a browser sent on another site's behalf, refused.
fn cross_site_change(method: &Method, headers: &HeaderMap) -> Option<Response> {
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    let refused = || {
        Some(crate::server::error(
            StatusCode::FORBIDDEN,
            "a cross-site request may not change anything",
        ))
    };
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site" | "same-site")) {
        return refused();
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (None, _) => None,
        // Scheme, then `//host[:port]`; anything else is not this host.
        (Some(origin), Some(host)) if origin.split_once("://").is_some_and(|(_, h)| h == host) => None,
        _ => refused(),
    }
}

/// `POST /api/v1/tokens`: a bearer token for the user whose basic
/// credentials the request carries, living `ttl_ms` (at most, and by
/// default, `token_ttl_ms_max`).
pub async fn issue_token(
    State(s): State<HttpState>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Option<axum::Json<TokenRequest>>,
) -> Response {
    let max = s.security.config().token_ttl_ms_max;
    let Some(user) = caller.user().filter(|_| caller.via == Via::Basic) else {
        return unauthorized("a token is issued to basic credentials only", false);
    };
    let ttl_ms = body.and_then(|b| b.0.ttl_ms).unwrap_or(max);
    if ttl_ms == 0 || ttl_ms > max {
        return crate::server::error(
            StatusCode::BAD_REQUEST,
            format!("ttl_ms must be 1 to {max} (token_ttl_ms_max); got {ttl_ms}"),
        );
    }
    let Some(fingerprint) = s.broker.credentials().fingerprint(user) else {
        return unauthorized("the user's credentials were deleted", false);
    };
    let now_ms = s.broker.env().clock.now_ms().max(0) as u64;
    let expires_at_ms = now_ms.saturating_add(ttl_ms);
    let token = s.broker.http_tokens().issue(user, &fingerprint, expires_at_ms);
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "token_type": "Bearer",
            "principal": caller.principal,
            "expires_at_ms": expires_at_ms,
        })),
    )
        .into_response()
}

/// The body of `POST /api/v1/tokens`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub ttl_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cross_site_changes_are_refused() {
        let post = Method::POST;
        assert!(cross_site_change(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")])).is_none());
        assert!(cross_site_change(&post, &headers(&[])).is_none());
        assert!(cross_site_change(&post, &headers(&[("sec-fetch-site", "same-origin")])).is_none());
        assert!(cross_site_change(&post, &headers(&[("sec-fetch-site", "cross-site")])).is_some());
        let same = [("origin", "https://broker:8080"), ("host", "broker:8080")];
        assert!(cross_site_change(&post, &headers(&same)).is_none());
        let other = [("origin", "https://evil.example"), ("host", "broker:8080")];
        assert!(cross_site_change(&post, &headers(&other)).is_some());
        assert!(cross_site_change(&post, &headers(&[("origin", "null")])).is_some());
    }

    #[test]
    fn access_words() {
        assert_eq!(Access::parse("none"), Some(Access::Open));
        assert_eq!(Access::parse("required"), Some(Access::Authenticated));
        assert_eq!(Access::parse("yes"), None);
    }
}
