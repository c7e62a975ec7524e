//! The client's SCRAM exchange against the broker's server side
//! (`veltrix_core::auth::ScramServer`), in memory, and against RFC 7677's
//! published exchange.

use veltrix_core::auth::{DecoyKey, ScramCredential, ScramMechanism, ScramServer, ScramStep, ServerNonce};

use super::*;

const SERVER_NONCE: [u8; 24] = [7; 24];

fn mechanism(hash: ScramHash) -> ScramMechanism {
    match hash {
        ScramHash::Sha256 => ScramMechanism::Sha256,
        ScramHash::Sha512 => ScramMechanism::Sha512,
    }
}

/// A server knowing `alice` with `password` for the hash's mechanism.
fn server(hash: ScramHash) -> ScramServer {
    ScramServer::new(
        mechanism(hash),
        ServerNonce::from_random(SERVER_NONCE),
        &DecoyKey::new([9; 32]),
    )
}

fn alice(hash: ScramHash, password: &str) -> impl Fn(&str) -> Option<ScramCredential> {
    let credential =
        ScramCredential::from_password(mechanism(hash), password.as_bytes(), b"salt-of-alice".to_vec(), 4096).unwrap();
    move |user: &str| (user == "alice").then(|| credential.clone())
}

/// Runs one exchange; the server's verdict on the proof, and the client's on
/// the server's signature when the server accepted.
fn exchange(hash: ScramHash, user: &str, password: &str, stored: &str) -> Result<Result<(), ScramError>, String> {
    let lookup = alice(hash, stored);
    let mut server = server(hash);
    let mut client = ScramClient::new(hash, user, Password::new(password), "client-nonce-123");
    let ScramStep::Continue(server_first) = server.step(&client.client_first(), &lookup).unwrap() else {
        panic!("the first step does not finish");
    };
    let client_final = client.client_final(&server_first).unwrap();
    match server.step(&client_final, &lookup) {
        Ok(ScramStep::Done { user, response }) => {
            assert_eq!(user, "alice");
            Ok(client.verify_server_final(&response))
        }
        Ok(ScramStep::Continue(_)) => panic!("the second step finishes"),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn the_right_password_authenticates_and_the_server_proves_itself() {
    for hash in [ScramHash::Sha256, ScramHash::Sha512] {
        assert_eq!(exchange(hash, "alice", "pencil", "pencil"), Ok(Ok(())), "{hash:?}");
    }
}

#[test]
fn a_wrong_password_or_unknown_user_fails_at_the_proof() {
    for hash in [ScramHash::Sha256, ScramHash::Sha512] {
        let wrong = exchange(hash, "alice", "not-pencil", "pencil").unwrap_err();
        assert!(wrong.contains("invalid credentials"), "{wrong}");
        let unknown = exchange(hash, "mallory", "pencil", "pencil").unwrap_err();
        assert!(unknown.contains("invalid credentials"), "{unknown}");
    }
}

/// A server that does not hold the user's keys cannot sign: a tampered or
/// made-up signature, and the other mechanism's, are refused.
#[test]
fn a_server_without_the_keys_is_refused() {
    let hash = ScramHash::Sha512;
    let lookup = alice(hash, "pencil");
    let mut server = server(hash);
    let mut client = ScramClient::new(hash, "alice", Password::new("pencil"), "n0nce");
    let ScramStep::Continue(server_first) = server.step(&client.client_first(), &lookup).unwrap() else {
        panic!()
    };
    let client_final = client.client_final(&server_first).unwrap();
    let Ok(ScramStep::Done { response, .. }) = server.step(&client_final, &lookup) else {
        panic!()
    };
    let mut signature = B64.decode(&response[2..]).unwrap();
    signature[0] ^= 1;
    let forged = format!("v={}", B64.encode(&signature));
    assert_eq!(
        client.verify_server_final(forged.as_bytes()),
        Err(ScramError::ServerSignature)
    );

    // An impostor that accepts any proof and makes up a signature.
    let mut client = ScramClient::new(hash, "alice", Password::new("pencil"), "n0nce");
    let first = format!("r=n0nceXYZ,s={},i=4096", B64.encode(b"salt"));
    client.client_final(first.as_bytes()).unwrap();
    let made_up = format!("v={}", B64.encode([0u8; 64]));
    assert_eq!(
        client.verify_server_final(made_up.as_bytes()),
        Err(ScramError::ServerSignature)
    );
}

#[test]
fn server_messages_outside_the_bounds_are_refused() {
    let salt = B64.encode(b"salt");
    let client = || ScramClient::new(ScramHash::Sha256, "alice", Password::new("pencil"), "abc");
    for (first, want) in [
        (format!("r=abcdef,s={salt},i=4095"), ScramError::Iterations(4095)),
        (
            format!("r=abcdef,s={salt},i={}", SCRAM_ITERATIONS_MAX + 1),
            ScramError::Iterations(SCRAM_ITERATIONS_MAX + 1),
        ),
        (
            format!("r=xyzdef,s={salt},i=4096"),
            malformed("the server's nonce does not extend the client's"),
        ),
        (
            format!("r=abc,s={salt},i=4096"),
            malformed("the server's nonce does not extend the client's"),
        ),
        ("e=other-error".to_owned(), ScramError::Refused("other-error".into())),
        (
            format!("m=ext,r=abcdef,s={salt},i=4096"),
            malformed("the server asks for a mandatory extension (m=)"),
        ),
    ] {
        assert_eq!(client().client_final(first.as_bytes()), Err(want), "{first}");
    }
    let long = vec![b'r'; SCRAM_MESSAGE_BYTES_MAX + 1];
    assert!(matches!(client().client_final(&long), Err(ScramError::Malformed(_))));
    // Out of turn.
    let mut c = client();
    assert!(c.verify_server_final(b"v=AAAA").is_err());
}

/// RFC 7677, section 3: the published SCRAM-SHA-256 exchange.
#[test]
fn rfc_7677_exchange() {
    let mut client = ScramClient::new(
        ScramHash::Sha256,
        "user",
        Password::new("pencil"),
        "rOprNGfwEbeRWgbNEkqO",
    );
    assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let client_final = client.client_final(server_first).unwrap();
    assert_eq!(
        String::from_utf8(client_final).unwrap(),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    assert_eq!(
        client.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        Ok(())
    );
}

#[test]
fn user_names_are_escaped_and_passwords_never_shown() {
    let client = ScramClient::new(ScramHash::Sha256, "a=b,c", Password::new("hunter2"), "n");
    assert_eq!(client.client_first(), b"n,,n=a=3Db=2Cc,r=n");
    let settings = SaslSettings {
        mechanism: SaslMechanism::Plain,
        user: "alice".into(),
        password: Password::new("hunter2"),
    };
    assert!(!format!("{settings:?}{client:?}").contains("hunter2"));
}

#[test]
fn nonces_are_fresh_and_printable() {
    let (a, b) = (client_nonce().unwrap(), client_nonce().unwrap());
    assert_ne!(a, b);
    assert!(a.bytes().all(|c| (0x21..=0x7e).contains(&c) && c != b','));
}
