//! Tests of `auth/`, and what they share: a SCRAM client written in the test
//! from ring's primitives, independently of the server's code.

mod credentials;
mod plain;
mod scram;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};

use super::*;

/// A decoy key with a fixed secret.
fn decoy() -> DecoyKey {
    DecoyKey::new([7; DECOY_KEY_BYTES])
}

fn nonce(s: &str) -> ServerNonce {
    ServerNonce::from_printable(s).unwrap()
}

fn mac(m: ScramMechanism, key: &[u8], message: &[u8]) -> Vec<u8> {
    let alg = match m {
        ScramMechanism::Sha256 => hmac::HMAC_SHA256,
        ScramMechanism::Sha512 => hmac::HMAC_SHA512,
    };
    hmac::sign(&hmac::Key::new(alg, key), message).as_ref().to_vec()
}

fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    let alg = match m {
        ScramMechanism::Sha256 => &digest::SHA256,
        ScramMechanism::Sha512 => &digest::SHA512,
    };
    digest::digest(alg, data).as_ref().to_vec()
}

fn hi(m: ScramMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let (alg, len) = match m {
        ScramMechanism::Sha256 => (pbkdf2::PBKDF2_HMAC_SHA256, 32),
        ScramMechanism::Sha512 => (pbkdf2::PBKDF2_HMAC_SHA512, 64),
    };
    let mut out = vec![0; len];
    pbkdf2::derive(alg, iterations.try_into().unwrap(), salt, password, &mut out);
    out
}

/// The client's side of an exchange, as RFC 5802 describes it.
struct TestClient {
    mechanism: ScramMechanism,
    /// As sent: `=2C` and `=3D` escaped.
    user: String,
    password: Vec<u8>,
    nonce: String,
    gs2_header: String,
    /// Appended to the client-final message before its proof: `,k=v`.
    final_extensions: String,
}

impl TestClient {
    fn new(mechanism: ScramMechanism, user: &str, password: &str) -> TestClient {
        TestClient {
            mechanism,
            user: user.replace('=', "=3D").replace(',', "=2C"),
            password: password.as_bytes().to_vec(),
            nonce: "fyko+d2lbbFgONRv9qkxdawL".to_owned(),
            gs2_header: "n,,".to_owned(),
            final_extensions: String::new(),
        }
    }

    fn bare(&self) -> String {
        format!("n={},r={}", self.user, self.nonce)
    }

    fn first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.bare()).into_bytes()
    }

    /// The client-final message answering `server_first`, and the
    /// server-final message the client expects.
    fn last(&self, server_first: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(k))
                .unwrap()
                .to_owned()
        };
        let (r, s, i) = (attr("r="), attr("s="), attr("i="));
        assert!(r.starts_with(&self.nonce), "{r}");
        let m = self.mechanism;
        let salted = hi(m, &self.password, &B64.decode(s).unwrap(), i.parse().unwrap());
        let client_key = mac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c={},r={r}{}", B64.encode(&self.gs2_header), self.final_extensions);
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
