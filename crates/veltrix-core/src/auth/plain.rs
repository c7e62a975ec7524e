//! SASL PLAIN (RFC 4616): one message, `authzid NUL authcid NUL passwd`,
//! checked against the user's SCRAM credentials ([`ScramCredential::verify_password`]),
//! so the broker keeps no password for PLAIN either. As with Kafka, the
//! authorization identity is empty or the user itself, and the password
//! travels in the clear: PLAIN belongs on TLS listeners.

use super::{AuthError, ITERATIONS_MIN, ScramCredential, ScramMechanism, credentials::validate_user_name};

/// The SASL mechanism's name, as clients ask for it in SaslHandshake.
pub const PLAIN_MECHANISM: &str = "PLAIN";

/// The longest PLAIN message read; longer ones are refused unread (RFC 4616
/// asks servers to accept fields of 255 bytes).
pub const PLAIN_MESSAGE_BYTES_MAX: usize = 4096;

/// A PLAIN message, its fields borrowed from the client's bytes. Its `Debug`
/// does not show the password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    /// The authorization identity: empty, or the same as `user`.
    pub authzid: &'a str,
    /// The authentication identity (`authcid`): a valid user name.
    pub user: &'a str,
    /// Not empty.
    pub password: &'a str,
}

impl std::fmt::Debug for PlainMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Reads a PLAIN message: three UTF-8 fields separated by NUL, the user a
/// valid user name ([`validate_user_name`]), the password not empty, the
/// authorization identity empty or the user's.
pub fn parse_plain(input: &[u8]) -> Result<PlainMessage<'_>, AuthError> {
    if input.len() > PLAIN_MESSAGE_BYTES_MAX {
        return Err(AuthError::Malformed(format!(
            "a PLAIN message is at most {PLAIN_MESSAGE_BYTES_MAX} bytes; got {}",
            input.len()
        )));
    }
    let text = std::str::from_utf8(input).map_err(|_| malformed("a PLAIN message is UTF-8"))?;
    let mut fields = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(
            "a PLAIN message is an authorization identity, a user and a password, separated by NUL",
        ));
    };
    validate_user_name(user).map_err(|reason| AuthError::Malformed(format!("user name: {reason}")))?;
    if password.is_empty() {
        return Err(malformed("the PLAIN password is empty"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::Unsupported(
            "an authorization identity other than the user".into(),
        ));
    }
    Ok(PlainMessage {
        authzid,
        user,
        password,
    })
}

/// Authenticates a PLAIN message against the user's credentials
/// (`lookup(user, mechanism)`, as [`super::Credentials::get`] answers): the
/// password is accepted if any of the user's SCRAM credentials verifies it,
/// and the user's name is returned. A user without credentials costs a
/// PBKDF2 run like a user with one, so the time taken does not tell whether
/// the user exists.
pub fn authenticate_plain(
    message: &PlainMessage<'_>,
    lookup: &dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
) -> Result<String, AuthError> {
    let password = message.password.as_bytes();
    let mut known = false;
    for mechanism in ScramMechanism::ALL {
        let Some(credential) = lookup(message.user, mechanism).filter(|c| c.mechanism() == mechanism) else {
            continue;
        };
        known = true;
        if credential.verify_password(password) {
            return Ok(message.user.to_owned());
        }
    }
    if !known {
        let decoy = ScramCredential::from_password(ScramMechanism::Sha256, password, b"decoy".to_vec(), ITERATIONS_MIN);
        std::hint::black_box(decoy).ok();
    }
    Err(AuthError::BadCredentials {
        user: message.user.to_owned(),
    })
}

fn malformed(reason: &str) -> AuthError {
    AuthError::Malformed(reason.to_owned())
}
