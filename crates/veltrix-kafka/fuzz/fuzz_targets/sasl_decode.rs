//! Fuzzes the SASL messages a client sends before it is authenticated: any
//! bytes as SCRAM's client-first message, as its client-final message after a
//! valid first one (for a known user and an unknown one, both mechanisms),
//! and as a PLAIN message. Each gives an answer or an error, never a panic,
//! and never an authentication: the fuzzer cannot forge a proof.
#![no_main]

use std::sync::LazyLock;

use veltrix_core::auth::{
    AuthError, DECOY_KEY_BYTES, DecoyKey, SERVER_NONCE_RANDOM_BYTES, ScramCredential, ScramMechanism, ScramServer,
    ScramStep, ServerNonce, authenticate_plain, parse_plain, validate_user_name,
};

/// The one known user's credentials, made once (PBKDF2 is slow).
static KNOWN: LazyLock<[ScramCredential; 2]> = LazyLock::new(|| {
    ScramMechanism::ALL.map(|m| ScramCredential::from_password(m, b"pencil", b"NaCl".to_vec(), 4096).unwrap())
});

fn known_user(mechanism: ScramMechanism) -> impl Fn(&str) -> Option<ScramCredential> {
    move |user: &str| (user == "user").then(|| KNOWN[usize::from(mechanism == ScramMechanism::Sha512)].clone())
}

fn server(mechanism: ScramMechanism) -> ScramServer {
    let nonce = ServerNonce::from_random([1; SERVER_NONCE_RANDOM_BYTES]);
    ScramServer::new(mechanism, nonce, &DecoyKey::new([2; DECOY_KEY_BYTES]))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let mechanism = if mode & 1 == 0 {
        ScramMechanism::Sha256
    } else {
        ScramMechanism::Sha512
    };
    let lookup = known_user(mechanism);
    match (mode >> 1) % 4 {
        0 => {
            let mut s = server(mechanism);
            match s.step(data, &lookup) {
                Ok(ScramStep::Continue(first)) => assert!(first.starts_with(b"r=") && !s.is_over()),
                Ok(done) => panic!("authenticated by a first message: {done:?}"),
                Err(_) => assert!(s.is_over()),
            }
        }
        known @ (1 | 2) => {
            let mut s = server(mechanism);
            let first: &[u8] = if known == 1 {
                b"n,,n=user,r=abc"
            } else {
                b"n,,n=nobody,r=abc"
            };
            assert!(matches!(s.step(first, &lookup), Ok(ScramStep::Continue(_))));
            let r = s.step(data, &lookup);
            assert!(r.is_err(), "authenticated by a forged final message: {r:?}");
            assert!(s.is_over() && s.step(data, &lookup).is_err());
        }
        _ => {
            let Ok(m) = parse_plain(data) else {
                return;
            };
            assert!(validate_user_name(m.user).is_ok() && !m.password.is_empty());
            assert!(m.authzid.is_empty() || m.authzid == m.user);
            let known = |user: &str, m: ScramMechanism| known_user(m)(user);
            match authenticate_plain(&m, &known) {
                Ok(user) => assert!(user == "user" && m.password == "pencil"),
                Err(e) => assert!(matches!(e, AuthError::BadCredentials { .. }), "{e:?}"),
            }
        }
    }
});
