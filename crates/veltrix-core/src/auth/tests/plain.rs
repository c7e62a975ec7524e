use proptest::prelude::*;

use super::*;

fn credential(m: ScramMechanism, password: &str) -> ScramCredential {
    ScramCredential::from_password(m, password.as_bytes(), b"salt".to_vec(), 4096).unwrap()
}

fn malformed<T: std::fmt::Debug>(r: Result<T, AuthError>) -> bool {
    matches!(r, Err(AuthError::Malformed(_)))
}

#[test]
fn plain_messages_parse() {
    let m = parse_plain(b"\0alice\0secret").unwrap();
    assert_eq!((m.authzid, m.user, m.password), ("", "alice", "secret"));
    let m = parse_plain("alice\0alice\0p\u{e4}ss\0word".as_bytes());
    // A NUL in the password is a fourth field.
    assert!(malformed(m));
    let m = parse_plain("élan\0élan\0pässword".as_bytes()).unwrap();
    assert_eq!((m.authzid, m.user, m.password), ("élan", "élan", "pässword"));
    // Debug never shows the password.
    assert!(!format!("{m:?}").contains("pässword"));
}

#[test]
fn malformed_plain_messages_are_refused() {
    let long = [b"\0alice\0".as_slice(), &[b'x'; PLAIN_MESSAGE_BYTES_MAX]].concat();
    let long_name = format!("\0{}\0pw", "u".repeat(USER_NAME_BYTES_MAX + 1));
    let bad: Vec<&[u8]> = vec![
        b"",
        b"alice",
        b"\0alice",
        b"\0alice\0",
        b"\0\0pw",
        b"\0alice\0pw\0",
        b"\0al\x01ice\0pw",
        b"\0alice\0\xff",
        &long,
        long_name.as_bytes(),
    ];
    for input in bad {
        assert!(malformed(parse_plain(input)), "{:?}", String::from_utf8_lossy(input));
    }
    assert!(matches!(
        parse_plain(b"admin\0alice\0pw"),
        Err(AuthError::Unsupported(_))
    ));
    let most = [b"\0alice\0".as_slice(), &[b'x'; PLAIN_MESSAGE_BYTES_MAX - 7]].concat();
    assert!(parse_plain(&most).is_ok());
}

#[test]
fn any_of_a_users_credentials_verifies_the_password() {
    let sha256 = credential(ScramMechanism::Sha256, "old");
    let sha512 = credential(ScramMechanism::Sha512, "new");
    let lookup = |user: &str, m: ScramMechanism| match (user, m) {
        ("alice", ScramMechanism::Sha256) => Some(sha256.clone()),
        ("alice", ScramMechanism::Sha512) | ("bob", ScramMechanism::Sha512) => Some(sha512.clone()),
        _ => None,
    };
    let auth = |input: &[u8]| authenticate_plain(&parse_plain(input).unwrap(), &lookup);
    assert_eq!(auth(b"\0alice\0old"), Ok("alice".into()));
    assert_eq!(auth(b"alice\0alice\0new"), Ok("alice".into()));
    assert_eq!(auth(b"\0bob\0new"), Ok("bob".into()));
    let bad = |user: &str| Err(AuthError::BadCredentials { user: user.into() });
    assert_eq!(auth(b"\0bob\0old"), bad("bob"));
    assert_eq!(auth(b"\0alice\0other"), bad("alice"));
    assert_eq!(auth(b"\0carol\0new"), bad("carol"));
    // A lookup answering with another mechanism's credential is not trusted.
    let confused = |_: &str, _: ScramMechanism| Some(sha512.clone());
    let m = parse_plain(b"\0alice\0new").unwrap();
    assert_eq!(authenticate_plain(&m, &confused), Ok("alice".into()));
}

proptest! {
    /// Any bytes: a message or an error, never a panic.
    #[test]
    fn parsing_plain_never_panics(data in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[a\\x00\\x01é]{0,12}".prop_map(String::into_bytes),
    ]) {
        if let Ok(m) = parse_plain(&data) {
            prop_assert!(validate_user_name(m.user).is_ok());
            prop_assert!(!m.password.is_empty());
            prop_assert!(m.authzid.is_empty() || m.authzid == m.user);
        }
    }
}
