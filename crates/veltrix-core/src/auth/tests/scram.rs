use proptest::prelude::*;

use super::*;

const SHA256: ScramMechanism = ScramMechanism::Sha256;
const SHA512: ScramMechanism = ScramMechanism::Sha512;

/// A lookup knowing `user` with `credential`.
fn one(user: &'static str, credential: ScramCredential) -> impl Fn(&str) -> Option<ScramCredential> {
    move |u: &str| (u == user).then(|| credential.clone())
}

fn nobody(_: &str) -> Option<ScramCredential> {
    None
}

fn credential(m: ScramMechanism, password: &str) -> ScramCredential {
    ScramCredential::from_password(m, password.as_bytes(), b"a salt of some bytes".to_vec(), 4096).unwrap()
}

/// `credential(m, "pw")`, made once: PBKDF2 is slow in an unoptimised build.
fn pw(m: ScramMechanism) -> ScramCredential {
    static PW: std::sync::LazyLock<[ScramCredential; 2]> =
        std::sync::LazyLock::new(|| [credential(SHA256, "pw"), credential(SHA512, "pw")]);
    PW[usize::from(m == SHA512)].clone()
}

fn server(m: ScramMechanism) -> ScramServer {
    ScramServer::new(m, ServerNonce::from_random([3; SERVER_NONCE_RANDOM_BYTES]), &decoy())
}

fn continued(step: Result<ScramStep, AuthError>) -> Vec<u8> {
    match step {
        Ok(ScramStep::Continue(m)) => m,
        other => panic!("expected the server-first message, got {other:?}"),
    }
}

fn bad(user: &str) -> Result<ScramStep, AuthError> {
    Err(AuthError::BadCredentials { user: user.to_owned() })
}

fn is_malformed(r: &Result<ScramStep, AuthError>) -> bool {
    matches!(r, Err(AuthError::Malformed(_)))
}

fn is_unsupported(r: &Result<ScramStep, AuthError>) -> bool {
    matches!(r, Err(AuthError::Unsupported(_)))
}

#[test]
fn mechanisms_have_kafkas_names_and_codes() {
    for m in ScramMechanism::ALL {
        assert_eq!(ScramMechanism::from_name(m.name()), Some(m));
        assert_eq!(ScramMechanism::from_code(m.code()), Some(m));
    }
    assert_eq!(SHA256.name(), "SCRAM-SHA-256");
    assert_eq!(SHA512.name(), "SCRAM-SHA-512");
    assert_eq!((SHA256.code(), SHA512.code()), (1, 2));
    assert_eq!(ScramMechanism::from_code(0), None);
    assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
    assert_eq!((SHA256.key_bytes(), SHA512.key_bytes()), (32, 64));
    assert_eq!((ITERATIONS_MIN, ITERATIONS_MAX), (4096, 16384));
}

/// RFC 7677, section 3: the server's messages byte for byte.
#[test]
fn rfc_7677_exchange() {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let lookup = one(
        "user",
        ScramCredential::from_password(SHA256, b"pencil", salt, 4096).unwrap(),
    );
    let mut s = ScramServer::new(SHA256, nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"), &decoy());
    let first = s.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &lookup);
    assert_eq!(
        first,
        Ok(ScramStep::Continue(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
        ))
    );
    let last = s.step(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        &lookup,
    );
    assert_eq!(
        last,
        Ok(ScramStep::Done {
            user: "user".into(),
            response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
        })
    );
    assert!(s.is_over());
}

#[test]
fn sha512_round_trip_with_a_client_from_the_primitives() {
    let lookup = one("alice", credential(SHA512, "correct horse"));
    for gs2_header in ["n,,", "y,,", "n,a=alice,"] {
        let client = TestClient {
            gs2_header: gs2_header.into(),
            ..TestClient::new(SHA512, "alice", "correct horse")
        };
        let mut s = server(SHA512);
        let server_first = continued(s.step(&client.first(), &lookup));
        let (last, expected) = client.last(&server_first);
        assert_eq!(
            s.step(&last, &lookup),
            Ok(ScramStep::Done {
                user: "alice".into(),
                response: expected
            }),
            "{gs2_header}"
        );
    }
}

#[test]
fn a_credential_verifies_its_password_only() {
    for m in ScramMechanism::ALL {
        let c = credential(m, "pencil");
        assert!(c.verify_password(b"pencil"));
        assert!(!c.verify_password(b"pencil "));
        assert!(!c.verify_password(b""));
        // The same keys from the salted password, as AlterUserScramCredentials
        // sends it.
        let salted = hi(m, b"pencil", c.salt(), c.iterations());
        let again = ScramCredential::from_salted_password(m, &salted, c.salt().to_vec(), c.iterations()).unwrap();
        assert_eq!(again, c);
        assert_eq!(
            ScramCredential::from_keys(
                m,
                c.salt().to_vec(),
                4096,
                c.stored_key().to_vec(),
                c.server_key().to_vec()
            ),
            Ok(c.clone())
        );
        // The Debug of a credential shows no key.
        let debug = format!("{c:?}");
        assert!(!debug.contains("key") && !debug.contains("salt"), "{debug}");
    }
}

#[test]
fn credentials_are_checked_when_made() {
    let salt = || b"salt".to_vec();
    for iterations in [0, 4095, 16385] {
        assert_eq!(
            ScramCredential::from_password(SHA256, b"p", salt(), iterations),
            Err(CredentialError::Iterations {
                mechanism: SHA256,
                iterations
            })
        );
    }
    assert_eq!(
        ScramCredential::from_password(SHA256, b"p", Vec::new(), 4096),
        Err(CredentialError::Salt { len: 0 })
    );
    assert_eq!(
        ScramCredential::from_password(SHA256, b"p", vec![1; SALT_BYTES_MAX + 1], 4096),
        Err(CredentialError::Salt {
            len: SALT_BYTES_MAX + 1
        })
    );
    assert!(matches!(
        ScramCredential::from_salted_password(SHA512, &[0; 32], salt(), 4096),
        Err(CredentialError::KeyLength {
            expected: 64,
            len: 32,
            ..
        })
    ));
    assert!(matches!(
        ScramCredential::from_keys(SHA256, salt(), 4096, vec![0; 32], vec![0; 31]),
        Err(CredentialError::KeyLength { what: "server key", .. })
    ));
    assert!(ScramCredential::from_password(SHA512, b"p", vec![1; SALT_BYTES_MAX], 16384).is_ok());
}

#[test]
fn a_credential_serialises_with_base64_and_is_checked_when_read() {
    let c = credential(SHA256, "pencil");
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["mechanism"], "SCRAM-SHA-256");
    assert_eq!(json["salt"], B64.encode(c.salt()));
    assert_eq!(json["iterations"], 4096);
    assert_eq!(json["stored_key"], B64.encode(c.stored_key()));
    assert_eq!(json["server_key"], B64.encode(c.server_key()));
    assert_eq!(serde_json::from_value::<ScramCredential>(json.clone()).unwrap(), c);
    for (field, value) in [
        ("iterations", serde_json::json!(100)),
        ("stored_key", serde_json::json!("AAAA")),
        ("salt", serde_json::json!("not base64!")),
        ("mechanism", serde_json::json!("SCRAM-SHA-1")),
    ] {
        let mut bad = json.clone();
        bad[field] = value;
        assert!(serde_json::from_value::<ScramCredential>(bad).is_err(), "{field}");
    }
    let mut extra = json;
    extra["password"] = serde_json::json!("x");
    assert!(serde_json::from_value::<ScramCredential>(extra).is_err());
}

#[test]
fn a_wrong_password_fails_at_the_proof() {
    let lookup = one("alice", credential(SHA256, "right"));
    let client = TestClient::new(SHA256, "alice", "wrong");
    let mut s = server(SHA256);
    let (last, _) = client.last(&continued(s.step(&client.first(), &lookup)));
    assert_eq!(s.step(&last, &lookup), bad("alice"));
    assert!(s.is_over());
}

#[test]
fn a_final_message_with_another_nonce_fails() {
    let lookup = one("alice", credential(SHA256, "right"));
    let client = TestClient::new(SHA256, "alice", "right");
    let mut s = server(SHA256);
    let server_first = continued(s.step(&client.first(), &lookup));
    // The client's proof over a nonce the server did not send.
    let forged = String::from_utf8(server_first).unwrap().replacen(",s=", "x,s=", 1);
    let (last, _) = client.last(forged.as_bytes());
    assert_eq!(s.step(&last, &lookup), bad("alice"));
}

#[test]
fn a_replayed_final_message_is_refused() {
    let lookup = one("alice", credential(SHA256, "right"));
    let client = TestClient::new(SHA256, "alice", "right");
    let mut s = server(SHA256);
    let (last, _) = client.last(&continued(s.step(&client.first(), &lookup)));
    assert!(matches!(s.step(&last, &lookup), Ok(ScramStep::Done { .. })));
    // Again on the same exchange: it is over.
    assert!(is_malformed(&s.step(&last, &lookup)));
    // On another exchange, whose server nonce differs.
    let mut other = ScramServer::new(
        SHA256,
        ServerNonce::from_random([4; SERVER_NONCE_RANDOM_BYTES]),
        &decoy(),
    );
    continued(other.step(&client.first(), &lookup));
    assert_eq!(other.step(&last, &lookup), bad("alice"));
}

#[test]
fn the_channel_binding_must_repeat_the_gs2_header() {
    let lookup = one("alice", credential(SHA256, "right"));
    let client = TestClient::new(SHA256, "alice", "right");
    let mut s = server(SHA256);
    let (last, _) = client.last(&continued(s.step(&client.first(), &lookup)));
    let last = String::from_utf8(last).unwrap().replacen("c=biws", "c=eSws", 1);
    assert!(is_malformed(&s.step(last.as_bytes(), &lookup)));
}

#[test]
fn an_unknown_user_gets_a_stable_decoy_and_fails_at_the_proof() {
    let known = credential(SHA256, "right");
    let lookup = one("alice", known.clone());
    let first_of = |user: &str, key: &DecoyKey| {
        let client = TestClient::new(SHA256, user, "guess");
        let mut s = ScramServer::new(SHA256, nonce("server"), key);
        let server_first = continued(s.step(&client.first(), &lookup));
        let (last, _) = client.last(&server_first);
        (String::from_utf8(server_first).unwrap(), s.step(&last, &lookup))
    };
    let (mallory, result) = first_of("mallory", &decoy());
    assert_eq!(result, bad("mallory"));
    // Shaped like a real one: the nonce, a salt like Kafka's tools make (a
    // base-36 number of 130 bits), the usual iterations.
    let parts: Vec<&str> = mallory.split(',').collect();
    assert_eq!(parts[0], "r=fyko+d2lbbFgONRv9qkxdawLserver");
    let salt = B64.decode(parts[1].strip_prefix("s=").unwrap()).unwrap();
    assert!((20..=26).contains(&salt.len()), "{salt:?}");
    assert!(salt.iter().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
    assert_eq!(parts[2], "i=4096");
    assert_eq!(parts.len(), 3);
    // The same for the same user, another for another user or another key.
    assert_eq!(first_of("mallory", &decoy()).0, mallory);
    assert_ne!(first_of("trudy", &decoy()).0, mallory);
    assert_ne!(first_of("mallory", &DecoyKey::new([8; DECOY_KEY_BYTES])).0, mallory);
    let (many, _) = first_of("mallory", &decoy().with_iterations(1 << 30));
    assert!(many.ends_with(",i=16384"), "{many}");
    // A known user's credential of another mechanism is no credential.
    let client = TestClient::new(SHA512, "alice", "right");
    let mut s = server(SHA512);
    let server_first = continued(s.step(&client.first(), &lookup));
    let salt = B64.encode(known.salt());
    assert!(!String::from_utf8_lossy(&server_first).contains(&salt));
    let (last, _) = client.last(&server_first);
    assert_eq!(s.step(&last, &lookup), bad("alice"));
}

#[test]
fn escaped_user_names_are_decoded() {
    let lookup = one("a,b=c", credential(SHA256, "pw"));
    let client = TestClient::new(SHA256, "a,b=c", "pw");
    assert_eq!(client.user, "a=2Cb=3Dc");
    let mut s = server(SHA256);
    let (last, _) = client.last(&continued(s.step(&client.first(), &lookup)));
    assert!(matches!(s.step(&last, &lookup), Ok(ScramStep::Done { user, .. }) if user == "a,b=c"));
    // The authorization identity is decoded the same way.
    let mut s = server(SHA256);
    continued(s.step(b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=x", &lookup));
    for bad in ["=2c", "=41", "=", "=3", "a=", "x=3Dy=", "=2C=3E"] {
        let mut s = server(SHA256);
        let message = format!("n,,n={bad},r=x");
        assert!(is_malformed(&s.step(message.as_bytes(), &nobody)), "{bad}");
    }
}

#[test]
fn what_kafka_does_not_support_is_refused_as_such() {
    for message in [
        "p=tls-server-end-point,,n=user,r=x",
        "n,,m=ext,n=user,r=x",
        "n,,n=user,r=x,tokenauth=true",
        "n,,n=user,r=x,foo=bar",
        "n,,n=user,r=x,foo=bar,baz=1",
        "n,a=admin,n=user,r=x",
    ] {
        let r = server(SHA256).step(message.as_bytes(), &nobody);
        assert!(is_unsupported(&r), "{message}: {r:?}");
    }
    let r = server(SHA256).step(b"n,,n=user,r=x,tokenauth=true", &nobody);
    assert!(format!("{r:?}").contains("delegation tokens"), "{r:?}");
}

#[test]
fn malformed_messages_are_refused_and_end_the_exchange() {
    let long_name = format!("n,,n={},r=x", "u".repeat(USER_NAME_BYTES_MAX + 1));
    let long = format!("n,,n=user,r={}", "x".repeat(SCRAM_MESSAGE_BYTES_MAX));
    let firsts: Vec<&[u8]> = vec![
        b"",
        b"n",
        b"n,",
        b",,n=user,r=x",
        b"x,,n=user,r=x",
        b"nn,,n=user,r=x",
        b"n,b=x,n=user,r=x",
        b"n,a=,n=user,r=x",
        b"n,,r=x,n=user",
        b"n,,n=user",
        b"n,,n=user,r=",
        b"n,,n=user,r=a b",
        b"n,,n=user,r=x\x7f",
        b"n,,n=,r=x",
        b"n,,n=us\x01er,r=x",
        b"n,,n=user,r=x,1=2",
        b"n,,n=user,r=x,a",
        b"n,,n=user,r=x,a=",
        b"n,,n=user,r=x,",
        b"n,,n=\xff,r=x",
        long_name.as_bytes(),
        long.as_bytes(),
    ];
    for message in firsts {
        let mut s = server(SHA256);
        let r = s.step(message, &nobody);
        assert!(is_malformed(&r), "{:?}: {r:?}", String::from_utf8_lossy(message));
        assert!(s.is_over());
        assert!(is_malformed(&s.step(b"n,,n=user,r=x", &nobody)));
    }
    let lookup = one("user", credential(SHA256, "pw"));
    let client = TestClient::new(SHA256, "user", "pw");
    let good = {
        let mut s = server(SHA256);
        let (last, _) = client.last(&continued(s.step(&client.first(), &lookup)));
        String::from_utf8(last).unwrap()
    };
    let (without_proof, proof) = good.rsplit_once(",p=").unwrap();
    let lasts = [
        String::new(),
        "c=biws".into(),
        without_proof.to_owned(),
        format!("{without_proof},p="),
        format!("{without_proof},p=!!!!"),
        format!("{without_proof},p=AAAA"),
        format!("{without_proof},p={proof},x=1"),
        format!("r=x,{without_proof},p={proof}"),
        format!("c=biws,p={proof}"),
        format!("{without_proof},1=2,p={proof}"),
        format!("{without_proof},,p={proof}"),
        format!("{}{without_proof},p={proof}", " ".repeat(SCRAM_MESSAGE_BYTES_MAX)),
    ];
    for message in lasts {
        let mut s = server(SHA256);
        continued(s.step(&client.first(), &lookup));
        let r = s.step(message.as_bytes(), &lookup);
        assert!(is_malformed(&r), "{message}: {r:?}");
        assert!(s.is_over());
    }
    // Extensions of the final message are signed and otherwise ignored.
    let client = TestClient {
        final_extensions: ",x=1,yz=2".into(),
        ..client
    };
    let mut s = server(SHA256);
    let (last, expected) = client.last(&continued(s.step(&client.first(), &lookup)));
    assert!(String::from_utf8_lossy(&last).contains(",x=1,yz=2,p="));
    assert_eq!(
        s.step(&last, &lookup),
        Ok(ScramStep::Done {
            user: "user".into(),
            response: expected
        })
    );
}

#[test]
fn server_nonces_are_printable() {
    let n = ServerNonce::from_random([0xff; SERVER_NONCE_RANDOM_BYTES]);
    assert_eq!(n.as_str().len(), 32);
    assert!(ServerNonce::from_printable(n.as_str()).is_some());
    for bad in ["", "a,b", "a b", "é", &"x".repeat(SERVER_NONCE_CHARS_MAX + 1)] {
        assert_eq!(ServerNonce::from_printable(bad), None, "{bad}");
    }
    assert!(!format!("{:?}", decoy()).contains('7'));
}

/// Messages near the grammar: its letters and separators in any order.
fn scram_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[nypamrcvsi=,2CD3A-Za-z0-9+/!~ \\x00\\x7f\u{e9}]{0,80}".prop_map(String::into_bytes),
        "(n|y|p=x)?,(a=[a-z=23CD]{0,4})?,(m=x,)?n=[a-z=,23CD]{0,6},r=[!-~]{0,6}(,[a-z]{1,3}=[a-z]{0,2}){0,2}"
            .prop_map(String::into_bytes),
        "c=[a-zA-Z=]{0,6},r=[!-~]{0,40}(,[a-z]=[a-z]{0,2}){0,2},p=[A-Za-z0-9+/=]{0,90}".prop_map(String::into_bytes),
    ]
}

proptest! {
    /// Any bytes as the client-first message: an answer or an error.
    #[test]
    fn the_first_step_never_panics(data in scram_like(), known in any::<bool>()) {
        let lookup = one("user", pw(SHA256));
        let mut s = server(SHA256);
        let r = if known { s.step(&data, &lookup) } else { s.step(&data, &nobody) };
        prop_assert!(!matches!(r, Ok(ScramStep::Done { .. })), "{:?}", r);
        if r.is_err() {
            prop_assert!(s.is_over());
        }
    }

    /// Any bytes as the client-final message: never a panic, never a success.
    #[test]
    fn the_final_step_never_panics(data in scram_like(), m in prop_oneof![Just(SHA256), Just(SHA512)]) {
        let lookup = one("user", pw(m));
        let mut s = server(m);
        continued(s.step(b"n,,n=user,r=abc", &lookup));
        prop_assert!(s.step(&data, &lookup).is_err());
        prop_assert!(s.is_over());
        prop_assert!(s.step(&data, &lookup).is_err());
    }
}
