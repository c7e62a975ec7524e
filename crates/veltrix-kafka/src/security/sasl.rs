//! A connection's SASL authentication, as Kafka runs it: SaslHandshake names
//! a mechanism, then SaslAuthenticate carries its messages until the
//! mechanism is done (KIP-152). On a SASL listener nothing but ApiVersions
//! and these two is served before that; a request of another API closes the
//! connection, as does a failed authentication (after its answer, held back
//! `authentication_failure_delay_ms`, so a password guesser gains little by
//! reconnecting). With `reauthentication_ms_max`, the session's lifetime
//! goes in the answer; the client authenticates again on the same
//! connection before it ends (KIP-368), as the same user, or its next
//! request closes the connection.
//!
//! Credentials are the engine's (`veltrix_core::auth`): SCRAM keys salted
//! and iterated; PLAIN is checked against them, so no password is stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::Broker;
use veltrix_core::auth::{AuthError, ScramMechanism, ScramServer, ScramStep, ServerNonce};

use super::{AuthLimits, ListenerSpec, SaslMechanism};

/// Where a mechanism's exchange is.
enum Exchange {
    /// No handshake yet (or the last exchange finished).
    Idle,
    /// A handshake chose this mechanism; SaslAuthenticate comes next.
    Chosen(SaslMechanism),
    /// A SCRAM exchange after its first message.
    Scram(SaslMechanism, Box<ScramServer>),
}

/// What a SaslAuthenticate came to.
pub(crate) enum Outcome {
    /// More messages are due.
    Continue,
    /// Authenticated (again) as the connection's principal.
    Done,
    /// Refused: answer, then close the connection.
    Failed { reason: String, user: Option<String> },
}

/// One connection's authentication state.
pub(crate) struct ConnectionAuth {
    listener: Arc<ListenerSpec>,
    limits: AuthLimits,
    principal: Arc<str>,
    /// SASL's user once authenticated: a re-authentication must be the same.
    user: Option<String>,
    /// The mechanism it authenticated with: a re-authentication uses it too.
    mechanism: Option<SaslMechanism>,
    /// Whether requests other than ApiVersions and SASL's are served.
    authenticated: bool,
    exchange: Exchange,
    /// When the SASL session ends, if it does.
    expires: Option<Instant>,
    /// When the connection was accepted: `authentication_ms_max` runs from
    /// then, the TLS handshake included.
    accepted: tokio::time::Instant,
}

impl ConnectionAuth {
    /// A new connection of `listener`, accepted at `accepted`, with the
    /// principal its client certificate gave, if any.
    pub(crate) fn new(
        listener: Arc<ListenerSpec>,
        limits: AuthLimits,
        certificate: Option<String>,
        accepted: tokio::time::Instant,
    ) -> ConnectionAuth {
        let authenticated = !listener.protocol.sasl();
        let principal: Arc<str> = match certificate {
            Some(name) => format!("User:{name}").into(),
            None => listener.unauthenticated_principal.as_str().into(),
        };
        ConnectionAuth {
            listener,
            limits,
            principal,
            user: None,
            mechanism: None,
            authenticated,
            exchange: Exchange::Idle,
            expires: None,
            accepted,
        }
    }

    /// When the connection must have authenticated by.
    pub(crate) fn authenticate_by(&self) -> tokio::time::Instant {
        self.accepted + Duration::from_millis(self.limits.authentication_ms_max)
    }

    /// Who the connection is now.
    pub(crate) fn principal(&self) -> Arc<str> {
        self.principal.clone()
    }

    /// Whether the connection has finished authenticating.
    pub(crate) fn authenticated(&self) -> bool {
        self.authenticated
    }

    pub(crate) fn listener(&self) -> &Arc<ListenerSpec> {
        &self.listener
    }

    /// Whether a request of `api` (not a SASL one) may be served now; why not
    /// otherwise (the connection is then closed).
    pub(crate) fn admits(&self, api: ApiKey, now: Instant) -> Result<(), String> {
        if !self.authenticated {
            return match (api, &self.exchange) {
                (ApiKey::ApiVersions, Exchange::Idle) => Ok(()),
                _ => Err(format!("{api:?} before SASL authentication")),
            };
        }
        match self.expires {
            Some(at) if now >= at => Err("the SASL session expired without re-authentication".into()),
            _ => Ok(()),
        }
    }

    /// Largest request the connection may send now.
    pub(crate) fn request_bytes_max(&self, authenticated_max: usize) -> usize {
        if self.authenticated {
            authenticated_max
        } else {
            authenticated_max.min(self.limits.unauthenticated_request_bytes_max)
        }
    }

    /// Answers a SaslHandshake: the mechanism, if offered, is the next
    /// SaslAuthenticate's. `true` with the answer when the connection closes
    /// after it, as Kafka closes it: a mechanism not offered, a handshake in
    /// the middle of an exchange or on a listener without SASL, and a
    /// re-authentication after the session ended or with another mechanism.
    pub(crate) fn handshake(&mut self, request: &SaslHandshakeRequest, now: Instant) -> (SaslHandshakeResponse, bool) {
        let offered = &self.listener.sasl_mechanisms;
        let mechanisms = offered.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
        let expired = self.expires.is_some_and(|at| now >= at);
        if !matches!(self.exchange, Exchange::Idle) || !self.listener.protocol.sasl() || expired {
            return (response.with_error_code(ResponseError::IllegalSaslState.code()), true);
        }
        match SaslMechanism::parse(request.mechanism.as_str()).filter(|m| offered.contains(m)) {
            Some(m) if self.mechanism.is_none_or(|before| before == m) => {
                self.exchange = Exchange::Chosen(m);
                (response, false)
            }
            Some(_) => (response.with_error_code(ResponseError::IllegalSaslState.code()), true),
            None => (
                response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
                true,
            ),
        }
    }

    /// Answers a SaslAuthenticate of `version` with the mechanism's next
    /// message.
    pub(crate) async fn authenticate(
        &mut self,
        request: &SaslAuthenticateRequest,
        version: i16,
        broker: &Arc<Broker>,
        nonce: ServerNonce,
    ) -> (SaslAuthenticateResponse, Outcome) {
        let mechanism = self.mechanism_name();
        let chosen = match &self.exchange {
            Exchange::Chosen(m) | Exchange::Scram(m, _) => Some(*m),
            Exchange::Idle => None,
        };
        let exchange = std::mem::replace(&mut self.exchange, Exchange::Idle);
        let step = match exchange {
            Exchange::Idle => {
                let response = SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before a SaslHandshake named a mechanism",
                    )));
                let outcome = Outcome::Failed {
                    reason: "SaslAuthenticate without a handshake".into(),
                    user: None,
                };
                return (response, outcome);
            }
            Exchange::Chosen(SaslMechanism::Plain) => plain(broker, request.auth_bytes.clone()).await,
            Exchange::Chosen(m) => {
                let decoy = broker.credentials().decoy_key();
                let mut server = Box::new(ScramServer::new(scram(m), nonce, &decoy));
                scram_step(&mut server, broker, &request.auth_bytes).map(|step| match step {
                    ScramStep::Continue(bytes) => {
                        self.exchange = Exchange::Scram(m, server);
                        Step::Continue(bytes)
                    }
                    ScramStep::Done { user, response } => Step::Done { user, response },
                })
            }
            Exchange::Scram(_, mut server) => {
                scram_step(&mut server, broker, &request.auth_bytes).and_then(|step| match step {
                    ScramStep::Done { user, response } => Ok(Step::Done { user, response }),
                    ScramStep::Continue(_) => Err(AuthError::Malformed("SCRAM has two client messages".into())),
                })
            }
        };
        match step {
            Ok(Step::Continue(bytes)) => (
                SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                Outcome::Continue,
            ),
            Ok(Step::Done { user, response }) => self.finish(user, response, version, chosen),
            Err(e) => {
                let user = match &e {
                    AuthError::BadCredentials { user } => Some(user.clone()),
                    _ => None,
                };
                // Clients show this message; it says no more than Kafka's.
                let response = SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
                    ))));
                (
                    response,
                    Outcome::Failed {
                        reason: e.to_string(),
                        user,
                    },
                )
            }
        }
    }

    /// The mechanism of the exchange under way, if any (metrics' label).
    pub(crate) fn mechanism_name(&self) -> &'static str {
        match &self.exchange {
            Exchange::Chosen(m) | Exchange::Scram(m, _) => m.name(),
            Exchange::Idle => "",
        }
    }

    /// The exchange succeeded for `user`.
    fn finish(
        &mut self,
        user: String,
        response: Vec<u8>,
        version: i16,
        mechanism: Option<SaslMechanism>,
    ) -> (SaslAuthenticateResponse, Outcome) {
        if let Some(before) = &self.user
            && *before != user
        {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "re-authentication must be as the same user",
                )));
            let reason = format!("re-authentication as `{user}`, authenticated as `{before}`");
            return (
                response,
                Outcome::Failed {
                    reason,
                    user: Some(user),
                },
            );
        }
        self.principal = format!("User:{user}").into();
        self.user = Some(user);
        self.mechanism = mechanism;
        self.authenticated = true;
        let mut answer = SaslAuthenticateResponse::default().with_auth_bytes(response.into());
        let lifetime = self.limits.reauthentication_ms_max;
        if lifetime > 0 {
            self.expires = Some(Instant::now() + Duration::from_millis(lifetime));
            // Clients before v1 cannot be told; their connection closes
            // when the session ends.
            if version >= 1 {
                answer = answer.with_session_lifetime_ms(i64::try_from(lifetime).unwrap_or(i64::MAX));
            }
        }
        (answer, Outcome::Done)
    }
}

/// A mechanism's next message.
enum Step {
    Continue(Vec<u8>),
    Done { user: String, response: Vec<u8> },
}

fn scram(m: SaslMechanism) -> ScramMechanism {
    match m {
        SaslMechanism::ScramSha512 => ScramMechanism::Sha512,
        _ => ScramMechanism::Sha256,
    }
}

fn scram_step(server: &mut ScramServer, broker: &Broker, input: &[u8]) -> Result<ScramStep, AuthError> {
    let credentials = broker.credentials();
    let mechanism = server.mechanism();
    server.step(input, &|user: &str| credentials.get(user, mechanism))
}

/// PLAIN: the password checked against the user's SCRAM credentials, which
/// costs their iterations of PBKDF2, off the connection's task.
async fn plain(broker: &Arc<Broker>, message: bytes::Bytes) -> Result<Step, AuthError> {
    let broker = broker.clone();
    tokio::task::spawn_blocking(move || {
        let credentials = broker.credentials();
        let parsed = veltrix_core::auth::parse_plain(&message)?;
        veltrix_core::auth::authenticate_plain(&parsed, &|user, mechanism| credentials.get(user, mechanism)).map(
            |user| Step::Done {
                user,
                response: Vec::new(),
            },
        )
    })
    .await
    .unwrap_or_else(|e| Err(AuthError::Malformed(format!("PLAIN check failed: {e}"))))
}
