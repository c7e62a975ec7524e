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
