//! `veltrix user` and `veltrix acl` against a broker with authorization on,
//! the tools acting as the loopback listener's principal, a super user.

use crate::common::{Serve, shared};

const SECURED: &str = r#"
[listeners]
kafka_principal = "User:local-admin"

[security]
authorization = true
super_users = ["User:local-admin"]
"#;

#[test]
fn users_are_added_listed_updated_and_deleted_without_a_password_on_the_command_line() {
    let _machine = shared();
    let broker = Serve::new().config(SECURED).start();
    let added = broker.ok_with(&["user", "add", "alice", "--password-stdin"], b"s3cret-alice\n");
    assert_eq!(added.stdout, "user `alice` set for SCRAM-SHA-512, SCRAM-SHA-256\n");
    broker.ok_with(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--mechanism",
            "SCRAM-SHA-256",
            "--iterations",
            "4096",
        ],
        b"s3cret-bob",
    );
    let listed = broker.ok(&["user", "list"]).stdout;
    let rows: Vec<Vec<&str>> = listed.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [
            ["alice", "SCRAM-SHA-256", "8192"],
            ["alice", "SCRAM-SHA-512", "8192"],
            ["bob", "SCRAM-SHA-256", "4096"]
        ],
        "{listed}"
    );
    // A new password for a user: the same command.
    broker.ok_with(
        &["user", "add", "bob", "--password-stdin", "--mechanism", "SCRAM-SHA-256"],
        b"new\n",
    );
    assert!(broker.ok(&["user", "list", "bob"]).stdout.contains("8192"));
    broker.ok(&["user", "delete", "alice"]);
    let after = broker.ok(&["user", "list"]).stdout;
    assert!(!after.contains("alice") && after.contains("bob"), "{after}");
    broker.fails_with(&["user", "delete", "alice"], b"", "has no credentials");
    broker.fails_with(
        &["user", "add", "carol", "--password-stdin"],
        b"\n",
        "the password is empty",
    );
    broker.fails_with(
        &["user", "add", "carol", "--password-stdin", "--iterations", "100"],
        b"x\n",
        "--iterations must be 4096 to 16384",
    );
    let credentials = std::fs::read_to_string(broker.data_dir().join("credentials.json")).unwrap();
    assert!(
        !credentials.contains("s3cret") && credentials.contains("bob"),
        "{credentials}"
    );
}

#[test]
fn acls_are_added_listed_and_deleted() {
    let _machine = shared();
    let broker = Serve::new().config(SECURED).start();
    let added = broker.ok(&[
        "acl",
        "add",
        "--principal",
        "User:alice",
        "--operation",
        "READ",
        "--operation",
        "DESCRIBE",
        "--topic",
        "payments.",
        "--prefixed",
    ]);
    assert_eq!(added.stdout.lines().count(), 2, "{}", added.stdout);
    broker.ok(&[
        "acl",
        "add",
        "--principal",
        "User:mallory",
        "--deny",
        "--operation",
        "ALL",
        "--topic",
        "*",
    ]);
    let all = broker.ok(&["acl", "list"]).stdout;
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(all.contains("PREFIXED") && all.contains("DENY"), "{all}");
    let alice = broker.ok(&["acl", "list", "--principal", "User:alice"]).stdout;
    assert_eq!(alice.lines().count(), 3, "{alice}");
    broker.fails_with(&["acl", "delete"], b"", "pass --all");
    broker.fails_with(
        &["acl", "add", "--principal", "User:x", "--operation", "READ"],
        b"",
        "name the resource",
    );
    broker.fails_with(
        &[
            "acl",
            "add",
            "--principal",
            "User:x",
            "--operation",
            "SHOUT",
            "--topic",
            "t",
        ],
        b"",
        "SHOUT",
    );
    let deleted = broker.ok(&["acl", "delete", "--principal", "User:mallory"]);
    assert!(deleted.stderr.contains("1 ACL deleted"), "{deleted:?}");
    assert_eq!(broker.ok(&["acl", "list"]).stdout.lines().count(), 3);
}

#[test]
fn acls_are_refused_while_authorization_is_off() {
    let _machine = shared();
    let broker = Serve::new().start();
    broker.fails_with(&["acl", "list"], b"", "SECURITY_DISABLED");
}

/// A CA and a certificate for 127.0.0.1 it signed, in `dir`: the paths of the
/// CA's PEM, the certificate's and its key's.
fn http_certificates(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let paths = [dir.join("ca.pem"), dir.join("http.pem"), dir.join("http.key")];
    std::fs::write(&paths[0], ca.pem()).unwrap();
    std::fs::write(&paths[1], cert.pem()).unwrap();
    std::fs::write(&paths[2], key.serialize_pem()).unwrap();
    paths
}

#[test]
fn the_http_api_over_https_takes_the_brokers_users() {
    let _machine = shared();
    let certs = tempfile::tempdir().unwrap();
    let [ca, cert, key] = http_certificates(certs.path());
    let config = format!(
        "[listeners]\nkafka_principal = \"User:local-admin\"\nhttp_tls_cert_file = \"{}\"\nhttp_tls_key_file = \"{}\"\nhttp_authentication = \"required\"\n\n[security]\nauthorization = true\nsuper_users = [\"User:local-admin\"]\n",
        cert.display(),
        key.display()
    );
    let broker = Serve::new().config(&config).start();
    broker.ok_with(&["user", "add", "alice", "--password-stdin"], b"s3cret-alice\n");
    let url = format!("https://{}", broker.http);
    let routes = |user: Option<(&str, &str)>| {
        let mut c = std::process::Command::new(crate::common::BIN);
        c.args(["route", "list", "--http", &url, "--http-ca-file"]).arg(&ca);
        if let Some((name, password)) = user {
            c.args(["--http-user", name]).env("VELTRIX_HTTP_PASSWORD", password);
        }
        crate::common::run(c, b"")
    };
    let anonymous = routes(None);
    assert_eq!(anonymous.code, Some(1), "{anonymous:?}");
    assert!(anonymous.stderr.contains("401"), "{anonymous:?}");
    let wrong = routes(Some(("alice", "guess")));
    assert!(wrong.stderr.contains("invalid credentials"), "{wrong:?}");
    // Authenticated, but no ACL yet.
    let denied = routes(Some(("alice", "s3cret-alice")));
    assert!(
        denied.stderr.contains("User:alice may not DESCRIBE the cluster"),
        "{denied:?}"
    );
    broker.ok(&[
        "acl",
        "add",
        "--principal",
        "User:alice",
        "--operation",
        "DESCRIBE",
        "--cluster",
    ]);
    let allowed = routes(Some(("alice", "s3cret-alice")));
    assert_eq!(allowed.code, Some(0), "{allowed:?}");
    // Plain HTTP to the HTTPS listener gets nowhere.
    let mut plain = std::process::Command::new(crate::common::BIN);
    plain.args(["route", "list", "--http", &broker.http, "--timeout-ms", "5000"]);
    assert_eq!(crate::common::run(plain, b"").code, Some(1));
    let failures = broker
        .messages()
        .into_iter()
        .filter(|m| m["target"] == "veltrix::audit" && m["fields"]["event"] == "authentication_failed");
    assert!(failures.count() >= 1, "{}", broker.log());
}

#[test]
fn a_password_file_other_users_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let _machine = shared();
    let broker = Serve::new().config(SECURED).start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "s3cret-carol\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = file.to_str().unwrap();
    broker.fails_with(
        &["user", "add", "carol", "--password-file", path],
        b"",
        "is open to other users (mode 644)",
    );
    assert!(!broker.ok(&["user", "list"]).stdout.contains("carol"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    broker.ok(&["user", "add", "carol", "--password-file", path]);
    assert!(broker.ok(&["user", "list"]).stdout.contains("carol"));
}
