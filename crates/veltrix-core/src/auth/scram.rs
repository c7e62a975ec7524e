//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server's side,
//! as Apache Kafka's broker runs it: no channel binding (`n` or `y` in the
//! GS2 header, never `p=`), an authorization identity only if it is the user
//! itself, no delegation tokens (the `tokenauth` extension), and the
//! password used as its UTF-8 bytes, without SASLprep, as Kafka's clients
//! send it.
//!
//! A [`ScramCredential`] is what is kept of a password: a salt, an iteration
//! count, `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`, with
//! `SaltedPassword = PBKDF2-HMAC-H(password, salt, iterations)`. The
//! password cannot be recovered from it short of guessing.
//!
//! A [`ScramServer`] runs one exchange: the client-first message is answered
//! with the server-first (the salt and iteration count), the client-final
//! with the server-final (the server's signature) once the client's proof
//! checks. An unknown user is answered like a known one, with a salt and an
//! iteration count derived from the user name and the broker's
//! [`DecoyKey`], and fails at the proof, so the exchange does not reveal which
//! users exist.
//!
//! The hashes, HMAC and PBKDF2 are ring's; comparisons of keys are constant
//! time (`subtle`). Parsing is total: any bytes give an answer or an
//! [`AuthError`], never a panic, and no message over
//! [`SCRAM_MESSAGE_BYTES_MAX`] is read.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{AuthError, CredentialError, credentials::validate_user_name};

/// The fewest PBKDF2 iterations a credential may have (Kafka's minimum for
/// both mechanisms, and RFC 7677's recommendation).
pub const ITERATIONS_MIN: u32 = 4096;

/// The most PBKDF2 iterations a credential may have (Kafka's maximum): each
/// PLAIN authentication costs that many HMACs.
pub const ITERATIONS_MAX: u32 = 16_384;

/// The longest salt a credential may have. Kafka's tools make salts of about
/// 26 bytes; the salt goes in every server-first message.
pub const SALT_BYTES_MAX: usize = 256;

/// The longest client message a [`ScramServer`] reads; longer ones are
/// refused unread (Kafka's clients send about 100 bytes).
pub const SCRAM_MESSAGE_BYTES_MAX: usize = 4096;

/// Random bytes a [`ServerNonce`] is made from: 192 bits.
pub const SERVER_NONCE_RANDOM_BYTES: usize = 24;

/// The longest server nonce [`ServerNonce::from_printable`] accepts.
pub const SERVER_NONCE_CHARS_MAX: usize = 128;

/// The length of a [`DecoyKey`]'s secret.
pub const DECOY_KEY_BYTES: usize = 32;

/// A SCRAM mechanism: which hash its keys, HMAC and PBKDF2 are of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    /// `SCRAM-SHA-256` (RFC 7677).
    Sha256,
    /// `SCRAM-SHA-512`.
    Sha512,
}

impl ScramMechanism {
    /// Every mechanism, in the order of their codes.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism's name, as clients ask for it in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` exactly (SASL names are upper case).
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism's code in DescribeUserScramCredentials and
    /// AlterUserScramCredentials (`0` is Kafka's "unknown").
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of code `code`; `None` for 0 (unknown) and any other.
    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    /// The length of the hash: of a salted password, a stored key, a
    /// server key, a proof and a signature.
    pub fn key_bytes(self) -> usize {
        self.digest().output_len()
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// `HMAC(key, message)`.
    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), message).as_ref().to_vec()
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with the mechanism's HMAC,
    /// one block.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.key_bytes()];
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(self.pbkdf2(), iterations, salt, password, &mut out);
        out
    }

    /// `StoredKey` of a salted password.
    fn stored_key(self, salted_password: &[u8]) -> Vec<u8> {
        let client_key = self.mac(salted_password, b"Client Key");
        digest::digest(self.digest(), &client_key).as_ref().to_vec()
    }
}

impl std::fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Written as the SASL name, `"SCRAM-SHA-256"`.
impl Serialize for ScramMechanism {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ScramMechanism {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ScramMechanism, D::Error> {
        let name = String::deserialize(d)?;
        ScramMechanism::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown SCRAM mechanism `{name}`")))
    }
}

/// What is kept of a user's password for one mechanism. Built only through
/// its constructors, which check it: the iterations within
/// [`ITERATIONS_MIN`]`..=`[`ITERATIONS_MAX`], a salt of 1 to
/// [`SALT_BYTES_MAX`] bytes, keys of the mechanism's hash length.
///
/// Serialised with the salt and keys in base64 (standard alphabet, padded).
/// Its `Debug` shows neither keys nor salt.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CredentialRepr", into = "CredentialRepr")]
pub struct ScramCredential {
    mechanism: ScramMechanism,
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential of `password` (its bytes, as Kafka's clients send
    /// them: UTF-8, no SASLprep) with `salt` and `iterations`. Costs
    /// `iterations` HMACs.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        check_salt_and_iterations(mechanism, &salt, iterations)?;
        let salted = mechanism.salted_password(password, &salt, iterations);
        ScramCredential::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential of a salted password (`Hi(password, salt,
    /// iterations)`), as AlterUserScramCredentials sends it with its salt
    /// and iterations: the password itself never reaches the broker.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        check_salt_and_iterations(mechanism, &salt, iterations)?;
        check_key(mechanism, "salted password", salted_password)?;
        Ok(ScramCredential {
            mechanism,
            salt,
            iterations,
            stored_key: mechanism.stored_key(salted_password),
            server_key: mechanism.mac(salted_password, b"Server Key"),
        })
    }

    /// A credential from its stored parts, as a [`super::CredentialStore`]
    /// reads it back.
    pub fn from_keys(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        iterations: u32,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
    ) -> Result<ScramCredential, CredentialError> {
        check_salt_and_iterations(mechanism, &salt, iterations)?;
        check_key(mechanism, "stored key", &stored_key)?;
        check_key(mechanism, "server key", &server_key)?;
        Ok(ScramCredential {
            mechanism,
            salt,
            iterations,
            stored_key,
            server_key,
        })
    }

    /// The mechanism whose hash the keys are of.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// The salt, as the server-first message sends it (in base64).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// The PBKDF2 iteration count, as the server-first message sends it.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// `H(HMAC(SaltedPassword, "Client Key"))`: what a client's proof is
    /// checked against.
    pub fn stored_key(&self) -> &[u8] {
        &self.stored_key
    }

    /// `HMAC(SaltedPassword, "Server Key")`: what the server signs with.
    pub fn server_key(&self) -> &[u8] {
        &self.server_key
    }

    /// Whether `password` is the one this credential was made from: its
    /// salted password recomputed with the stored salt and iterations, its
    /// stored key compared in constant time. Costs `iterations` HMACs. For
    /// PLAIN, so that no password is kept in plain text.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let salted = self.mechanism.salted_password(password, &self.salt, self.iterations);
        bool::from(self.mechanism.stored_key(&salted).ct_eq(&self.stored_key))
    }
}

fn check_salt_and_iterations(mechanism: ScramMechanism, salt: &[u8], iterations: u32) -> Result<(), CredentialError> {
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        return Err(CredentialError::Iterations { mechanism, iterations });
    }
    if salt.is_empty() || salt.len() > SALT_BYTES_MAX {
        return Err(CredentialError::Salt { len: salt.len() });
    }
    Ok(())
}

fn check_key(mechanism: ScramMechanism, what: &'static str, key: &[u8]) -> Result<(), CredentialError> {
    if key.len() != mechanism.key_bytes() {
        return Err(CredentialError::KeyLength {
            mechanism,
            what,
            expected: mechanism.key_bytes(),
            len: key.len(),
        });
    }
    Ok(())
}

/// A credential as it is serialised.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialRepr {
    mechanism: ScramMechanism,
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl TryFrom<CredentialRepr> for ScramCredential {
    type Error = String;

    fn try_from(r: CredentialRepr) -> Result<ScramCredential, String> {
        let decode = |what: &str, s: &str| B64.decode(s).map_err(|e| format!("{what}: {e}"));
        ScramCredential::from_keys(
            r.mechanism,
            decode("salt", &r.salt)?,
            r.iterations,
            decode("stored_key", &r.stored_key)?,
            decode("server_key", &r.server_key)?,
        )
        .map_err(|e| e.to_string())
    }
}

impl From<ScramCredential> for CredentialRepr {
    fn from(c: ScramCredential) -> CredentialRepr {
        CredentialRepr {
            mechanism: c.mechanism,
            salt: B64.encode(&c.salt),
            iterations: c.iterations,
            stored_key: B64.encode(&c.stored_key),
            server_key: B64.encode(&c.server_key),
        }
    }
}

/// The server's part of the nonce of one exchange: printable ASCII without
/// `,`, appended to the client's nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNonce(String);

impl ServerNonce {
    /// The nonce of `random` bytes from a secure generator: their base64,
    /// 32 characters.
    pub fn from_random(random: [u8; SERVER_NONCE_RANDOM_BYTES]) -> ServerNonce {
        ServerNonce(B64.encode(random))
    }

    /// `nonce` itself, if it is 1 to [`SERVER_NONCE_CHARS_MAX`] printable
    /// ASCII characters other than `,` (RFC 5802's `printable`). For tests
    /// against published exchanges; a broker uses [`ServerNonce::from_random`].
    pub fn from_printable(nonce: &str) -> Option<ServerNonce> {
        (nonce.len() <= SERVER_NONCE_CHARS_MAX && is_printable(nonce)).then(|| ServerNonce(nonce.to_owned()))
    }

    /// The nonce as it is appended to the client's.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The broker's secret that unknown users' decoy credentials are derived
/// from: the same user always gets the same salt, so asking twice does not
/// tell a decoy from a real credential. The salt is shaped like those of
/// Kafka's tools (a base-36 number of 130 random bits, as ASCII), and the
/// iteration count is fixed (by default [`ITERATIONS_MIN`], what those tools
/// use unless told otherwise).
///
/// A broker should keep the secret across restarts: a decoy whose salt
/// changes at a restart, while real users' salts do not, tells them apart.
/// Its `Debug` does not show the secret.
#[derive(Clone)]
pub struct DecoyKey {
    secret: [u8; DECOY_KEY_BYTES],
    iterations: u32,
}

impl std::fmt::Debug for DecoyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoyKey")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl DecoyKey {
    /// A key of `secret` random bytes, with [`ITERATIONS_MIN`] iterations.
    pub fn new(secret: [u8; DECOY_KEY_BYTES]) -> DecoyKey {
        DecoyKey {
            secret,
            iterations: ITERATIONS_MIN,
        }
    }

    /// The same key announcing `iterations` (brought within
    /// [`ITERATIONS_MIN`]`..=`[`ITERATIONS_MAX`]) to unknown users: the count
    /// most real credentials have.
    pub fn with_iterations(self, iterations: u32) -> DecoyKey {
        DecoyKey {
            iterations: iterations.clamp(ITERATIONS_MIN, ITERATIONS_MAX),
            ..self
        }
    }

    /// The decoy credential of `user` for `mechanism`: a salt and a salted
    /// password that are HMACs of the user name under the secret.
    fn credential(&self, mechanism: ScramMechanism, user: &str) -> ScramCredential {
        let derive = |label: &str, m: ScramMechanism| {
            let mut message = Vec::with_capacity(64 + user.len());
            for part in ["veltrix scram decoy", label, mechanism.name(), user] {
                message.extend_from_slice(part.as_bytes());
                message.push(0);
            }
            m.mac(&self.secret, &message)
        };
        // 130 bits of the HMAC, written in base 36.
        let mut bits = derive("salt", ScramMechanism::Sha256);
        bits.truncate(17);
        bits[0] &= 0x03;
        let salt = base36(bits).into_bytes();
        let salted = derive("salted password", mechanism);
        ScramCredential {
            mechanism,
            iterations: self.iterations,
            stored_key: mechanism.stored_key(&salted),
            server_key: mechanism.mac(&salted, b"Server Key"),
            salt,
        }
    }
}

/// The big-endian number `n` in base 36, lower case, without leading zeros.
fn base36(mut n: Vec<u8>) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 36) as u8;
            rem = cur % 36;
        }
        digits.push(DIGITS[rem as usize]);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// What the server answers a client's message with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramStep {
    /// The server-first message (`r=…,s=…,i=…`); the client's final message
    /// comes next.
    Continue(Vec<u8>),
    /// The client proved it knows the password of `user`; `response` is the
    /// server-final message (`v=…`), which lets the client check the server.
    Done { user: String, response: Vec<u8> },
}

/// Where an exchange stands.
enum State {
    /// Waiting for the client-first message.
    First,
    /// The server-first message was sent; waiting for the client-final.
    Final(Box<Pending>),
    /// Authenticated, or failed: nothing more is read.
    Over,
}

/// What the client-final message is checked against.
struct Pending {
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// The client's nonce and the server's.
    nonce: String,
    credential: ScramCredential,
}

/// The server's side of one SCRAM exchange (one connection's
/// authentication). Plain data: the nonce and the decoy key come in, the
/// credentials are looked up through the closure given to each step.
pub struct ScramServer {
    mechanism: ScramMechanism,
    nonce: ServerNonce,
    decoy: DecoyKey,
    state: State,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::First => "first",
            State::Final(_) => "final",
            State::Over => "over",
        };
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// An exchange of `mechanism` whose nonce ends with `nonce`; unknown
    /// users are answered with `decoy`'s credentials.
    pub fn new(mechanism: ScramMechanism, nonce: ServerNonce, decoy: &DecoyKey) -> ScramServer {
        ScramServer {
            mechanism,
            nonce,
            decoy: decoy.clone(),
            state: State::First,
        }
    }

    /// The mechanism of the exchange.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Whether the exchange is over: authenticated or failed.
    pub fn is_over(&self) -> bool {
        matches!(self.state, State::Over)
    }

    /// Reads the client's next message. The first is answered with
    /// [`ScramStep::Continue`], the second, if its proof checks, with
    /// [`ScramStep::Done`]. `lookup` gives a user's credential for this
    /// exchange's mechanism; a user it does not know (or whose credential is
    /// of another mechanism) is answered with a decoy and fails at the
    /// proof. Any error ends the exchange, as does success: every later call
    /// is refused.
    pub fn step(
        &mut self,
        input: &[u8],
        lookup: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, AuthError> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::First => {
                let (pending, server_first) = self.first(input, lookup)?;
                self.state = State::Final(Box::new(pending));
                Ok(ScramStep::Continue(server_first.into_bytes()))
            }
            State::Final(pending) => self.last(input, &pending),
            State::Over => Err(AuthError::Malformed("the SCRAM exchange is over".into())),
        }
    }

    fn first(
        &self,
        input: &[u8],
        lookup: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> Result<(Pending, String), AuthError> {
        let first = parse_client_first(input)?;
        let credential = lookup(&first.user)
            .filter(|c| c.mechanism == self.mechanism)
            .unwrap_or_else(|| self.decoy.credential(self.mechanism, &first.user));
        let nonce = format!("{}{}", first.client_nonce, self.nonce.as_str());
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let pending = Pending {
            user: first.user,
            gs2_header: first.gs2_header.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
            credential,
        };
        Ok((pending, server_first))
    }

    fn last(&self, input: &[u8], p: &Pending) -> Result<ScramStep, AuthError> {
        let last = parse_client_final(input)?;
        if last.channel_binding != B64.encode(&p.gs2_header) {
            return Err(malformed("the channel binding does not repeat the GS2 header"));
        }
        let bad = || AuthError::BadCredentials { user: p.user.clone() };
        // Not this exchange's nonce: a final message replayed from another.
        if last.nonce != p.nonce {
            return Err(bad());
        }
        let m = self.mechanism;
        if last.proof.len() != m.key_bytes() {
            return Err(malformed("the client proof is not of the mechanism's hash length"));
        }
        let auth_message = format!("{},{},{}", p.client_first_bare, p.server_first, last.without_proof);
        let client_signature = m.mac(&p.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = last.proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        let stored_key = digest::digest(m.digest(), &client_key);
        if !bool::from(stored_key.as_ref().ct_eq(&p.credential.stored_key)) {
            return Err(bad());
        }
        let server_signature = m.mac(&p.credential.server_key, auth_message.as_bytes());
        Ok(ScramStep::Done {
            user: p.user.clone(),
            response: format!("v={}", B64.encode(server_signature)).into_bytes(),
        })
    }
}

fn malformed(reason: &str) -> AuthError {
    AuthError::Malformed(reason.to_owned())
}

/// `input` as text, if it is short enough and UTF-8.
fn text(input: &[u8]) -> Result<&str, AuthError> {
    if input.len() > SCRAM_MESSAGE_BYTES_MAX {
        return Err(AuthError::Malformed(format!(
            "a SCRAM message is at most {SCRAM_MESSAGE_BYTES_MAX} bytes; got {}",
            input.len()
        )));
    }
    std::str::from_utf8(input).map_err(|_| malformed("a SCRAM message is UTF-8"))
}

/// RFC 5802's `printable`: `%x21-2B / %x2D-7E`, at least one.
fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A `saslname` decoded: `=2C` is `,`, `=3D` is `=`, no other `=`.
fn decode_saslname(s: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at + 1..at + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => {
                return Err(malformed(
                    "a SCRAM name escapes `,` as =2C and `=` as =3D, and no other",
                ));
            }
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("a SCRAM name is not empty"));
    }
    Ok(out)
}

/// An attribute `k=v` of an extension: `k` letters, `v` not empty.
fn extension(attr: &str) -> Result<(&str, &str), AuthError> {
    match attr.split_once('=') {
        Some((k, v)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()) && !v.is_empty() => Ok((k, v)),
        _ => Err(malformed("a SCRAM attribute is a name of letters, `=` and a value")),
    }
}

struct ClientFirst<'a> {
    /// `n,,` or `y,,`, or with `a=…`: repeated by the client-final message.
    gs2_header: &'a str,
    user: String,
    client_nonce: &'a str,
    /// The message without its GS2 header, part of the signed message.
    bare: &'a str,
}

fn parse_client_first(input: &[u8]) -> Result<ClientFirst<'_>, AuthError> {
    let s = text(input)?;
    let (cbind, rest) = s.split_once(',').ok_or_else(|| malformed("no GS2 header"))?;
    match cbind {
        // `y`: the client could bind to the channel but thinks the server
        // cannot; as the server indeed cannot, that is no downgrade.
        "n" | "y" => {}
        _ if cbind.starts_with("p=") => return Err(AuthError::Unsupported("SCRAM channel binding".into())),
        _ => return Err(malformed("the GS2 header starts with n, y or p=")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or_else(|| malformed("the GS2 header ends with a comma"))?;
    let gs2_header = &s[..s.len() - bare.len()];
    let authzid = match authzid {
        "" => None,
        a => {
            let name = a
                .strip_prefix("a=")
                .ok_or_else(|| malformed("an authorization identity is a=name"))?;
            Some(decode_saslname(name)?)
        }
    };
    let mut attrs = bare.split(',');
    let user = attrs.next().unwrap_or_default();
    if user.starts_with("m=") {
        return Err(AuthError::Unsupported("SCRAM mandatory extensions (m=)".into()));
    }
    let user = user
        .strip_prefix("n=")
        .ok_or_else(|| malformed("the client-first message names the user first (n=)"))?;
    let user = decode_saslname(user)?;
    validate_user_name(&user).map_err(|reason| AuthError::Malformed(format!("user name: {reason}")))?;
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed("the client-first message has the client's nonce second (r=)"))?;
    if !is_printable(client_nonce) {
        return Err(malformed("a nonce is printable ASCII"));
    }
    // Kafka knows one extension, `tokenauth`, and this broker none.
    if let Some(attr) = attrs.next() {
        let (key, _) = extension(attr)?;
        return Err(AuthError::Unsupported(match key {
            "tokenauth" => "delegation tokens (SCRAM extension tokenauth)".to_owned(),
            k if k.len() <= 32 => format!("SCRAM extension `{k}`"),
            _ => "SCRAM extensions".to_owned(),
        }));
    }
    if authzid.is_some_and(|a| a != user) {
        return Err(AuthError::Unsupported(
            "an authorization identity other than the user".into(),
        ));
    }
    Ok(ClientFirst {
        gs2_header,
        user,
        client_nonce,
        bare,
    })
}

struct ClientFinal<'a> {
    /// Everything before `,p=`: part of the signed message.
    without_proof: &'a str,
    /// The base64 of the GS2 header, as the client sent it.
    channel_binding: &'a str,
    nonce: &'a str,
    proof: Vec<u8>,
}

fn parse_client_final(input: &[u8]) -> Result<ClientFinal<'_>, AuthError> {
    let s = text(input)?;
    let (without_proof, proof) = s
        .rsplit_once(",p=")
        .ok_or_else(|| malformed("the client-final message ends with the proof (p=)"))?;
    if proof.contains(',') {
        return Err(malformed("the client-final message ends with the proof (p=)"));
    }
    let proof = B64.decode(proof).map_err(|_| malformed("the client proof is base64"))?;
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(|| malformed("the client-final message starts with the channel binding (c=)"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed("the client-final message has the nonce second (r=)"))?;
    // Extensions of the final message are signed with it and otherwise
    // ignored, as Kafka does.
    for attr in attrs {
        extension(attr)?;
    }
    Ok(ClientFinal {
        without_proof,
        channel_binding,
        nonce,
        proof,
    })
}
