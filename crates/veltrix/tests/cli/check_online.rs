//! `veltrix check --online` as an operator runs it against a real
//! PostgreSQL and S3 server (moto), started as the shared storage's own
//! tests start them (`crates/veltrix-shared/tests/it/support.rs`): what it
//! says of reachable services, of unreachable and silent ones (an error
//! within the configured timeouts, never a hang), that it never prints the
//! catalog's password, and that without `--online` nothing is contacted.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{BIN, shared};

// The shared storage's own harness (PostgreSQL and moto on ephemeral ports,
// stopped by PID), used as it is.
#[path = "../../../veltrix-shared/tests/it/support.rs"]
mod support;

/// Runs `veltrix` in `dir` with only the given `VELTRIX_` and `AWS_`
/// variables set.
fn veltrix(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("VELTRIX_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The bucket's test credentials: moto takes any.
const AWS: [(&str, &str); 2] = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];

fn storage(postgres_url: &str, endpoint: &str, bucket: &str) -> String {
    format!(
        "[storage]\nmode = \"shared\"\nbroker_id = 1\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nallow_http = true\n\
         postgres_url = \"{postgres_url}\"\npostgres_statement_timeout_ms = 500\nget_timeout_ms = 1_000\n"
    )
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn online_reports_a_reachable_catalog_and_bucket_and_creates_nothing() {
    let _machine = shared();
    let Some(binaries) = support::binaries() else { return };
    let pg = support::Postgres::start(binaries);
    let moto = support::Moto::start(binaries);
    moto.create_bucket("veltrix-data");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("veltrix.toml"),
        storage(&pg.url(), &moto.endpoint(), "veltrix-data"),
    )
    .unwrap();

    let o = veltrix(dir.path(), &["check", "--online"], &AWS);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("note[V401]"), "{out}");
    assert!(out.contains("they will be created at first start"), "{out}");
    assert!(out.contains("note[V404]"), "{out}");
    assert!(out.contains("listed under `veltrix/`: no object yet"), "{out}");
    // The notes point at the keys they are about.
    assert!(out.contains("veltrix.toml:7:"), "{out}");
    assert!(out.contains("veltrix.toml:4:"), "{out}");

    // Twice: the check created no table, so the catalog is still absent.
    let o = veltrix(dir.path(), &["check", "--online", "--format", "json"], &AWS);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rules: Vec<&str> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["V401", "V404"], "{json}");
    assert!(
        json["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no catalog tables yet")
    );

    // A bucket that does not exist is an error naming it.
    std::fs::write(
        dir.path().join("missing.toml"),
        storage(&pg.url(), &moto.endpoint(), "no-such-bucket"),
    )
    .unwrap();
    let o = veltrix(dir.path(), &["check", "missing.toml", "--online"], &AWS);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("error[V405]") && out.contains("no such bucket"), "{out}");
    assert!(out.contains("create the bucket"), "{out}");
}

#[test]
fn online_ends_with_errors_within_the_timeouts_when_nothing_answers() {
    let _machine = shared();
    // PostgreSQL's port accepts connections and never answers; nothing
    // listens on the bucket's.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let pg_port = silent.local_addr().unwrap().port();
    let url = format!("postgresql://veltrix:hunter2@127.0.0.1:{pg_port}/veltrix");
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let dir = tempfile::tempdir().unwrap();
    // The URL, password included, comes from the environment, as it should.
    let file = storage("postgresql://veltrix@127.0.0.1/veltrix", &endpoint, "veltrix-data");
    std::fs::write(dir.path().join("veltrix.toml"), file).unwrap();
    let env = [AWS[0], AWS[1], ("VELTRIX_STORAGE__POSTGRES_URL", url.as_str())];

    let started = Instant::now();
    let o = veltrix(dir.path(), &["check", "--online"], &env);
    let took = started.elapsed();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("error[V402]") && out.contains("PostgreSQL could not be used"),
        "{out}"
    );
    assert!(out.contains("error[V405]") && out.contains("not reachable"), "{out}");
    assert!(out.contains("VELTRIX_STORAGE__POSTGRES_URL"), "{out}");
    assert!(!out.contains("hunter2"), "the password is never printed: {out}");
    // The connection's 5 s, at once with the bucket's 1 s: not a hang.
    assert!(took < Duration::from_secs(10), "{took:?}\n{out}");
    assert!(out.contains("no answer to the connection within 5s"), "{out}");

    // Without --online nothing is contacted: the file is fine as it is.
    let o = veltrix(dir.path(), &["check"], &env);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("V40"), "{out}");
    drop(silent);
}

#[test]
fn online_says_why_it_contacts_nothing_for_local_storage() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("veltrix.toml"), "[broker]\nprofile = \"development\"\n").unwrap();
    let o = veltrix(dir.path(), &["check", "--online"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("--online: [storage] mode is local"), "{}", text(&o));
}
