//! Bearer tokens for the HTTP API: what a browser or a script holds instead
//! of a password after one authentication with it.
//!
//! A token names a user, when it expires, and a digest of the user's
//! credentials when it was issued ([`super::Credentials::fingerprint`]),
//! signed with HMAC-SHA256 under a key the broker keeps in its data
//! directory. Nothing is stored per token: checking one costs an HMAC, not a
//! PBKDF2 run, and a token ends when it expires, when the user's password
//! changes, or when the user is deleted (their digest no longer matches).
//! A new key (a new data directory) ends every token.
//!
//! Written as `vx1.<payload>.<mac>`, both parts base64url without padding;
//! the payload is the expiry (milliseconds since the epoch, 8 bytes big
//! endian), the first 16 bytes of the credentials' digest, and the user's
//! name in UTF-8.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use subtle::ConstantTimeEq;

use super::validate_user_name;

/// Bytes of the key tokens are signed with.
pub const TOKEN_KEY_BYTES: usize = 32;

/// The longest token read; a longer one is refused before any decoding.
pub const TOKEN_CHARS_MAX: usize = 1024;

const PREFIX: &str = "vx1.";
const EXPIRY_BYTES: usize = 8;
const FINGERPRINT_BYTES: usize = 16;
const MAC_BYTES: usize = 32;

/// Why a token was refused. Never contains the token or its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is not a Veltrix token")]
    Malformed,
    #[error("the bearer token's signature does not verify")]
    BadSignature,
    #[error("the bearer token of user `{user}` has expired")]
    Expired { user: String },
    #[error("the bearer token of user `{user}` was revoked: the user's credentials changed or were deleted")]
    Revoked { user: String },
}

/// The key tokens are signed and checked with. Its `Debug` does not show it.
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").finish_non_exhaustive()
    }
}

impl TokenKey {
    pub fn new(secret: [u8; TOKEN_KEY_BYTES]) -> TokenKey {
        TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        }
    }

    /// A token for `user`, whose credentials' digest is `fingerprint`,
    /// valid until `expires_at_ms`.
    pub fn issue(&self, user: &str, fingerprint: &[u8; 32], expires_at_ms: u64) -> String {
        let mut payload = Vec::with_capacity(EXPIRY_BYTES + FINGERPRINT_BYTES + user.len());
        payload.extend_from_slice(&expires_at_ms.to_be_bytes());
        payload.extend_from_slice(&fingerprint[..FINGERPRINT_BYTES]);
        payload.extend_from_slice(user.as_bytes());
        let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&payload));
        let mac = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    }

    /// The user a token was issued to, if its signature verifies, it has
    /// not expired at `now_ms`, and `fingerprint_of` (the user's
    /// credentials' digest now, as [`super::Credentials::fingerprint`]
    /// answers) is the one it was issued with. The signature is checked
    /// first, in constant time: nothing of an unsigned token is read.
    pub fn verify(
        &self,
        token: &str,
        now_ms: u64,
        fingerprint_of: &dyn Fn(&str) -> Option<[u8; 32]>,
    ) -> Result<String, TokenError> {
        if token.len() > TOKEN_CHARS_MAX {
            return Err(TokenError::Malformed);
        }
        let (signed, mac) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let body = signed.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| TokenError::Malformed)?;
        if mac.len() != MAC_BYTES {
            return Err(TokenError::Malformed);
        }
        hmac::verify(&self.key, signed.as_bytes(), &mac).map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Malformed)?;
        if payload.len() <= EXPIRY_BYTES + FINGERPRINT_BYTES {
            return Err(TokenError::Malformed);
        }
        let (expiry, rest) = payload.split_at(EXPIRY_BYTES);
        let (fingerprint, user) = rest.split_at(FINGERPRINT_BYTES);
        let user = std::str::from_utf8(user).map_err(|_| TokenError::Malformed)?;
        validate_user_name(user).map_err(|_| TokenError::Malformed)?;
        let user = user.to_owned();
        let expires_at_ms = u64::from_be_bytes(expiry.try_into().map_err(|_| TokenError::Malformed)?);
        if now_ms >= expires_at_ms {
            return Err(TokenError::Expired { user });
        }
        let current = fingerprint_of(&user);
        let same = current.is_some_and(|c| bool::from(c[..FINGERPRINT_BYTES].ct_eq(fingerprint)));
        if !same {
            return Err(TokenError::Revoked { user });
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: [u8; 32] = [7; 32];

    fn fp_of(user: &str) -> Option<[u8; 32]> {
        (user == "alice").then_some(FP)
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let key = TokenKey::new([1; 32]);
        let token = key.issue("alice", &FP, 1_000);
        assert!(token.starts_with("vx1."));
        assert_eq!(key.verify(&token, 999, &fp_of).unwrap(), "alice");
        assert_eq!(
            key.verify(&token, 1_000, &fp_of),
            Err(TokenError::Expired { user: "alice".into() })
        );
    }

    #[test]
    fn changed_credentials_revoke_it() {
        let key = TokenKey::new([1; 32]);
        let token = key.issue("alice", &FP, 1_000);
        let changed = |_: &str| Some([8; 32]);
        assert_eq!(
            key.verify(&token, 0, &changed),
            Err(TokenError::Revoked { user: "alice".into() })
        );
        assert_eq!(
            key.verify(&token, 0, &|_| None),
            Err(TokenError::Revoked { user: "alice".into() })
        );
    }

    #[test]
    fn another_key_or_an_edit_does_not_verify() {
        let key = TokenKey::new([1; 32]);
        let token = key.issue("alice", &FP, 1_000);
        assert_eq!(
            TokenKey::new([2; 32]).verify(&token, 0, &fp_of),
            Err(TokenError::BadSignature)
        );
        // The same signature over a later expiry.
        let (_, mac) = token.rsplit_once('.').unwrap();
        let mut payload = Vec::new();
        payload.extend_from_slice(&u64::MAX.to_be_bytes());
        payload.extend_from_slice(&FP[..16]);
        payload.extend_from_slice(b"alice");
        let forged = format!("vx1.{}.{mac}", URL_SAFE_NO_PAD.encode(&payload));
        assert_eq!(key.verify(&forged, 0, &fp_of), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        let key = TokenKey::new([1; 32]);
        for junk in [
            "",
            "vx1.",
            "vx1..",
            "abc.def",
            "vx1.AAAA.AAAA",
            &"x".repeat(TOKEN_CHARS_MAX + 1),
        ] {
            assert_eq!(key.verify(junk, 0, &fp_of), Err(TokenError::Malformed), "{junk:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_refused_without_panicking(s in "\\PC{0,200}") {
            let key = TokenKey::new([1; 32]);
            proptest::prop_assert!(key.verify(&s, 0, &fp_of).is_err());
        }
    }
}
