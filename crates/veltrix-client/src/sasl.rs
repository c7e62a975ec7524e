//! SASL authentication, the client's side, as Kafka clients run it (KIP-152):
//! SaslHandshake names the mechanism, then SaslAuthenticate carries its
//! messages. Mechanisms: `PLAIN` (RFC 4616) and `SCRAM-SHA-256` /
//! `SCRAM-SHA-512` (RFC 5802, RFC 7677), without channel binding, the
//! password used as its UTF-8 bytes (no SASLprep), as Kafka's clients do.
//!
//! [`ScramClient`] is the exchange as plain data (the nonce comes in), so it
//! can be run against the broker's own implementation without a network.
//! It checks the server's signature: a server that does not know the
//! user's keys cannot pass for the broker. It refuses iteration counts
//! outside [`SCRAM_ITERATIONS_MIN`]`..=`[`SCRAM_ITERATIONS_MAX`] (fewer
//! would weaken what an eavesdropper can guess from, more would let a
//! server make the client spin) and server messages over
//! [`SCRAM_MESSAGE_BYTES_MAX`]. The hashes, HMAC and PBKDF2 are ring's, the
//! implementation the broker's side and rustls use.
//!
//! The client authenticates once per connection; it does not
//! re-authenticate (KIP-368), so a connection outliving a listener's
//! session lifetime is closed by the broker.

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use ring::{digest, hmac, pbkdf2};
use subtle::ConstantTimeEq;

use crate::connection::Connection;
use crate::error::ClientError;

/// The fewest PBKDF2 iterations accepted from a server (Kafka's minimum).
pub const SCRAM_ITERATIONS_MIN: u32 = 4096;

/// The most PBKDF2 iterations accepted from a server: Kafka allows 16384;
/// a PBKDF2 of this many costs a few hundred milliseconds at most.
pub const SCRAM_ITERATIONS_MAX: u32 = 100_000;

/// The longest server message of a SCRAM exchange read.
pub const SCRAM_MESSAGE_BYTES_MAX: usize = 4096;

/// Random bytes of the client's nonce (192 bits).
pub const CLIENT_NONCE_RANDOM_BYTES: usize = 24;

/// A password. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A SASL mechanism this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    /// The name SaslHandshake carries.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named exactly `name` (SASL names are upper case).
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        SaslMechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who to authenticate as, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    pub mechanism: SaslMechanism,
    pub user: String,
    pub password: Password,
}

/// A SCRAM exchange that failed on the client's side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The server's message does not follow SCRAM's grammar, or came out of
    /// turn.
    #[error("malformed SCRAM message from the server: {0}")]
    Malformed(String),
    /// The server's iteration count is outside what the client accepts.
    #[error(
        "the server asks for {0} PBKDF2 iterations; this client accepts {SCRAM_ITERATIONS_MIN} to {SCRAM_ITERATIONS_MAX}"
    )]
    Iterations(u32),
    /// The server's final message is an error (`e=`).
    #[error("the server refused the proof: {0}")]
    Refused(String),
    /// The server's signature is not the one the password gives: it does not
    /// know the user's keys.
    #[error("the server's signature does not match: it does not know this user's credentials")]
    ServerSignature,
}

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramHash::Sha256 => hmac::HMAC_SHA256,
            ScramHash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), message).as_ref().to_vec()
    }
}

/// Where a [`ScramClient`] is.
enum ScramState {
    /// The client-first message is to be sent, then the server-first read.
    First,
    /// The client-final message was sent; the server's signature is due.
    Final {
        server_signature: Vec<u8>,
    },
    Over,
}

/// The client's side of one SCRAM exchange: [`ScramClient::client_first`],
/// then [`ScramClient::client_final`] with the server-first message, then
/// [`ScramClient::verify_server_final`] with the server-final one.
pub struct ScramClient {
    hash: ScramHash,
    password: Password,
    nonce: String,
    client_first_bare: String,
    state: ScramState,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// The GS2 header: no channel binding, no authorization identity.
const GS2_HEADER: &str = "n,,";

impl ScramClient {
    /// An exchange for `user` with `password`, the client's nonce `nonce`
    /// (printable ASCII without `,`; [`client_nonce`] makes one).
    pub fn new(hash: ScramHash, user: &str, password: Password, nonce: &str) -> ScramClient {
        let client_first_bare = format!("n={},r={nonce}", saslname(user));
        ScramClient {
            hash,
            password,
            nonce: nonce.to_owned(),
            client_first_bare,
            state: ScramState::First,
        }
    }

    /// The client-first message.
    pub fn client_first(&self) -> Vec<u8> {
        format!("{GS2_HEADER}{}", self.client_first_bare).into_bytes()
    }

    /// Reads the server-first message and answers it with the client-final
    /// one (the proof). Costs the server's iteration count of HMACs.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ScramState::First) {
            return Err(malformed("a server-first message out of turn"));
        }
        self.state = ScramState::Over;
        let server_first = text(server_first)?;
        let first = parse_server_first(server_first)?;
        if !first.nonce.starts_with(&self.nonce) || first.nonce.len() == self.nonce.len() {
            return Err(malformed("the server's nonce does not extend the client's"));
        }
        if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&first.iterations) {
            return Err(ScramError::Iterations(first.iterations));
        }
        let h = self.hash;
        let mut salted = vec![0u8; h.digest().output_len()];
        let iterations = NonZeroU32::new(first.iterations).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(h.pbkdf2(), iterations, &first.salt, self.password.bytes(), &mut salted);
        let client_key = h.mac(&salted, b"Client Key");
        let stored_key = digest::digest(h.digest(), &client_key);
        let without_proof = format!("c={},r={}", B64.encode(GS2_HEADER), first.nonce);
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = h.mac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        let server_key = h.mac(&salted, b"Server Key");
        self.state = ScramState::Final {
            server_signature: h.mac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server's signature, which only
    /// a server holding the user's keys can make.
    pub fn verify_server_final(&mut self, server_final: &[u8]) -> Result<(), ScramError> {
        let ScramState::Final { server_signature } = std::mem::replace(&mut self.state, ScramState::Over) else {
            return Err(malformed("a server-final message out of turn"));
        };
        let server_final = text(server_final)?;
        if let Some(error) = server_final.strip_prefix("e=") {
            let shown: String = error.chars().take(64).filter(|c| !c.is_control()).collect();
            return Err(ScramError::Refused(shown));
        }
        let verifier = server_final
            .split(',')
            .next()
            .and_then(|a| a.strip_prefix("v="))
            .ok_or_else(|| malformed("the server-final message starts with its signature (v=)"))?;
        let verifier = B64
            .decode(verifier)
            .map_err(|_| malformed("the server's signature is base64"))?;
        if bool::from(verifier.ct_eq(&server_signature)) {
            Ok(())
        } else {
            Err(ScramError::ServerSignature)
        }
    }
}

/// A fresh client nonce: [`CLIENT_NONCE_RANDOM_BYTES`] from the system's
/// secure generator, in base64.
pub fn client_nonce() -> Result<String, ClientError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; CLIENT_NONCE_RANDOM_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ClientError::InvalidArgument("the system's random generator failed".into()))?;
    Ok(B64.encode(bytes))
}

struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

fn parse_server_first(s: &str) -> Result<ServerFirst<'_>, ScramError> {
    if s.starts_with("m=") {
        return Err(malformed("the server asks for a mandatory extension (m=)"));
    }
    if let Some(e) = s.strip_prefix("e=") {
        let shown: String = e.chars().take(64).filter(|c| !c.is_control()).collect();
        return Err(ScramError::Refused(shown));
    }
    let mut attrs = s.split(',');
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| n.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or_else(|| malformed("the server-first message starts with the nonce (r=)"))?;
    let salt = attrs
        .next()
        .and_then(|a| a.strip_prefix("s="))
        .ok_or_else(|| malformed("the server-first message has the salt second (s=)"))?;
    let salt = B64.decode(salt).map_err(|_| malformed("the salt is base64"))?;
    if salt.is_empty() {
        return Err(malformed("the salt is empty"));
    }
    let iterations = attrs
        .next()
        .and_then(|a| a.strip_prefix("i="))
        .and_then(|i| i.parse::<u32>().ok())
        .ok_or_else(|| malformed("the server-first message has the iteration count third (i=)"))?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// A user name as SCRAM writes it: `,` as `=2C`, `=` as `=3D`.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn text(input: &[u8]) -> Result<&str, ScramError> {
    if input.len() > SCRAM_MESSAGE_BYTES_MAX {
        return Err(ScramError::Malformed(format!(
            "a SCRAM message is at most {SCRAM_MESSAGE_BYTES_MAX} bytes; got {}",
            input.len()
        )));
    }
    std::str::from_utf8(input).map_err(|_| malformed("a SCRAM message is UTF-8"))
}

fn malformed(reason: &str) -> ScramError {
    ScramError::Malformed(reason.to_owned())
}

// ---------------------------------------------------------------------------
// On a connection

/// Kafka's SASL_AUTHENTICATION_FAILED.
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// Authenticates `connection` (after ApiVersions): SaslHandshake, then the
/// mechanism's messages in SaslAuthenticate requests.
pub(crate) async fn authenticate(connection: &mut Connection, settings: &SaslSettings) -> Result<(), ClientError> {
    let addr = connection.addr().to_owned();
    handshake(connection, settings.mechanism).await?;
    let version = connection.version(ApiKey::SaslAuthenticate)?;
    let refused = |message: Option<String>| ClientError::Authentication {
        addr: addr.clone(),
        mechanism: settings.mechanism.name(),
        user: settings.user.clone(),
        message,
    };
    match settings.mechanism {
        SaslMechanism::Plain => {
            let mut message = Vec::with_capacity(2 + settings.user.len() + settings.password.0.len());
            message.push(0);
            message.extend_from_slice(settings.user.as_bytes());
            message.push(0);
            message.extend_from_slice(settings.password.bytes());
            step(connection, version, message, &refused).await?;
            Ok(())
        }
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
            let hash = if settings.mechanism == SaslMechanism::ScramSha256 {
                ScramHash::Sha256
            } else {
                ScramHash::Sha512
            };
            let mut scram = ScramClient::new(hash, &settings.user, settings.password.clone(), &client_nonce()?);
            let server_first = step(connection, version, scram.client_first(), &refused).await?;
            let client_final = scram.client_final(&server_first).map_err(|e| scram_error(&addr, e))?;
            let server_final = step(connection, version, client_final, &refused).await?;
            scram
                .verify_server_final(&server_final)
                .map_err(|e| scram_error(&addr, e))
        }
    }
}

fn scram_error(addr: &str, error: ScramError) -> ClientError {
    ClientError::Sasl {
        addr: addr.to_owned(),
        error,
    }
}

/// SaslHandshake for `mechanism`: refused with the mechanisms the listener
/// offers, or because it has no SASL.
async fn handshake(connection: &mut Connection, mechanism: SaslMechanism) -> Result<(), ClientError> {
    let addr = connection.addr().to_owned();
    let version = connection.version(ApiKey::SaslHandshake)?;
    let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let response = match connection.call(&request, version).await {
        Ok(r) => r,
        // A listener without SASL may close the connection instead.
        Err(ClientError::Closed { .. }) => return Err(ClientError::SaslNotEnabled { addr }),
        Err(e) => return Err(e),
    };
    let offered: Vec<String> = response
        .mechanisms
        .iter()
        .take(32)
        .map(|m| m.as_str().chars().take(64).collect())
        .collect();
    match response.error_code {
        0 => Ok(()),
        code if code == ResponseError::UnsupportedSaslMechanism.code() => Err(ClientError::SaslMechanism {
            addr,
            mechanism: mechanism.name(),
            offered,
        }),
        code if code == ResponseError::IllegalSaslState.code() => Err(ClientError::SaslNotEnabled { addr }),
        code => crate::error::check(code, None, || format!("SaslHandshake with {addr}")),
    }
}

/// One SaslAuthenticate: `message` out, the server's answer back.
async fn step(
    connection: &mut Connection,
    version: i16,
    message: Vec<u8>,
    refused: &dyn Fn(Option<String>) -> ClientError,
) -> Result<Vec<u8>, ClientError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
    let response = match connection.call(&request, version).await {
        Ok(r) => r,
        // Closed instead of answered: a broker that refuses by disconnecting.
        Err(ClientError::Closed { .. }) => return Err(refused(None)),
        Err(e) => return Err(e),
    };
    let message = response
        .error_message
        .as_ref()
        .map(|m| m.as_str().chars().take(256).collect::<String>());
    match response.error_code {
        0 => Ok(response.auth_bytes.to_vec()),
        SASL_AUTHENTICATION_FAILED => Err(refused(message)),
        code => crate::error::check(code, message, || format!("SaslAuthenticate with {}", connection.addr()))
            .map(|()| Vec::new()),
    }
}

#[cfg(test)]
mod tests;
