//! SASL authentication, the server's side, as Kafka brokers do it: SCRAM
//! (`SCRAM-SHA-256`, `SCRAM-SHA-512`; RFC 5802, RFC 7677) and PLAIN (RFC
//! 4616), both checked against SCRAM credentials, so no password is ever kept
//! (only a salt, an iteration count and two keys derived from the password).
//!
//! No sockets and no wire types: the Kafka adapter hands the bytes of each
//! SaslAuthenticate request to [`ScramServer::step`] or [`parse_plain`] and
//! decides which Kafka error an [`AuthError`] becomes. Randomness comes in as
//! parameters ([`ServerNonce::from_random`], [`DecoyKey::new`]), so every
//! exchange can be replayed exactly in a test.
//!
//! `scram.rs`: the mechanisms, [`ScramCredential`] (what is stored for a
//! user and a mechanism) and the [`ScramServer`] state machine. `plain.rs`:
//! PLAIN's one message and its check against a user's SCRAM credentials.
//! `credentials.rs`: the durable credentials ([`CredentialStore`],
//! [`FileCredentialStore`]: `credentials.json`, replaced whole and fsynced
//! on each change) and [`Credentials`], what AlterUserScramCredentials and
//! DescribeUserScramCredentials change and read, at most `users_max` users.

mod credentials;
mod plain;
mod scram;
#[cfg(test)]
mod tests;
mod token;
mod verified;

pub use credentials::{
    AllCredentials, CREDENTIALS_FILE, CredentialInfo, CredentialStore, Credentials, CredentialsConfig,
    FileCredentialStore, MemoryCredentialStore, USER_NAME_BYTES_MAX, USERS_MAX_DEFAULT, UserCredentials,
    UserDescription, decode as decode_credentials_file, validate_user_name,
};
pub use plain::{PLAIN_MECHANISM, PLAIN_MESSAGE_BYTES_MAX, PlainMessage, authenticate_plain, parse_plain};
pub use scram::{
    DECOY_KEY_BYTES, DecoyKey, ITERATIONS_MAX, ITERATIONS_MIN, SALT_BYTES_MAX, SCRAM_MESSAGE_BYTES_MAX,
    SERVER_NONCE_CHARS_MAX, SERVER_NONCE_RANDOM_BYTES, ScramCredential, ScramMechanism, ScramServer, ScramStep,
    ServerNonce,
};
pub use token::{TOKEN_CHARS_MAX, TOKEN_KEY_BYTES, TokenError, TokenKey};
pub use verified::VerifiedPasswords;

/// Why an authentication failed. Messages never contain a password, a key or
/// more of the client's bytes than a validated user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The client's message does not follow the mechanism's grammar, is too
    /// long, or came when none was expected.
    #[error("malformed SASL message: {0}")]
    Malformed(String),
    /// The user is unknown, has no credential for the mechanism, or the
    /// password (PLAIN) or proof (SCRAM) is wrong; which one is not said.
    #[error("authentication failed for user `{user}`: invalid credentials")]
    BadCredentials { user: String },
    /// Well formed, but asks for something the broker does not do: channel
    /// binding, an authorization identity other than the user, delegation
    /// tokens, unknown SCRAM extensions.
    #[error("unsupported SASL request: {0}")]
    Unsupported(String),
}

/// Why a credential, or a change of the stored credentials, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Iterations outside [`ITERATIONS_MIN`]`..=`[`ITERATIONS_MAX`].
    #[error("{mechanism} iterations must be {ITERATIONS_MIN} to {ITERATIONS_MAX}; got {iterations}")]
    Iterations { mechanism: ScramMechanism, iterations: u32 },
    /// An empty salt, or one longer than [`SALT_BYTES_MAX`].
    #[error("a SCRAM salt is 1 to {SALT_BYTES_MAX} bytes; got {len}")]
    Salt { len: usize },
    /// A salted password, stored key or server key not of the mechanism's
    /// hash length.
    #[error("a {mechanism} {what} is {expected} bytes; got {len}")]
    KeyLength {
        mechanism: ScramMechanism,
        what: &'static str,
        expected: usize,
        len: usize,
    },
    /// A user name [`validate_user_name`] refuses, with its reason.
    #[error("invalid user name: {0}")]
    UserName(&'static str),
    /// A new user past `users_max`.
    #[error("the broker keeps SCRAM credentials for at most {max} users")]
    TooMany { max: usize },
    /// The store failed; the change did not take effect.
    #[error("storing the credentials failed: {0}")]
    Store(String),
}
