//! `veltrix serve` as an operator starts it: what it refuses, and what it takes
//! from the environment.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, shared, start_broker, wait_for};

/// Starts `veltrix serve` with `args` and, of the `VELTRIX_` variables, only `env`.
fn spawn_serve(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("VELTRIX_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `veltrix serve` with `args` and waits for it to exit, for at most
/// `limit`; a broker still running then is killed and reported as `None`.
fn serve_exit(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Option<(i32, String)> {
    let mut child = spawn_serve(args, env);
    let status = wait_for(&mut child, limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    status.map(|s| (s.code().unwrap_or(-1), stderr))
}

const EPHEMERAL: [&str; 4] = ["--kafka-listener", "127.0.0.1:0", "--http-listener", "127.0.0.1:0"];

/// Two brokers on one directory both acknowledged writes at the same offsets,
/// and a restart then kept half of them. The second must refuse at once, in
/// one line that names the directory.
#[test]
fn a_second_broker_on_a_data_directory_in_use_refuses_to_start_in_one_line() {
    let _machine = shared();
    let first = start_broker();
    let dir = first.data_dir().to_str().unwrap().to_owned();
    let mut args = EPHEMERAL.to_vec();
    args.extend(["--data-dir", &dir]);
    let (code, stderr) =
        serve_exit(&args, &[], Duration::from_secs(20)).expect("the second broker started on a directory in use");
    assert_eq!(code, 1, "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(&dir) && errors[0].contains("in use"), "{stderr}");
}

/// The lock is the kernel's, on an open file: a broker killed with SIGKILL
/// leaves no stale lock that would stop the next one.
#[test]
fn a_broker_killed_with_sigkill_leaves_its_data_directory_free() {
    let _machine = shared();
    let mut broker = start_broker();
    broker.kill_and_restart();
    assert!(broker.data_dir().join("lock").exists());
}

/// Without `--config` the environment's overrides were ignored: a bad value
/// started silently with the default. They are checked as with a file.
#[test]
fn without_a_config_file_a_bad_environment_override_stops_the_start() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = EPHEMERAL.to_vec();
    args.extend(["--data-dir", data.to_str().unwrap()]);
    let (code, stderr) = serve_exit(
        &args,
        &[("VELTRIX_BROKER__DEFAULT_PARTITIONS", "0")],
        Duration::from_secs(20),
    )
    .expect("the broker started with an invalid override");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("VELTRIX_BROKER__DEFAULT_PARTITIONS"), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(!data.exists(), "nothing is written before the configuration is valid");
}

/// A data directory with a placeholder nothing expanded, on the command line
/// or from the environment, is refused before a directory literally named
/// after the placeholder is created.
#[test]
fn a_data_dir_with_an_unexpanded_placeholder_is_refused_and_never_created() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let literal = dir.path().join("${DATA_ROOT}");
    let data = literal.join("veltrix");
    let data_str = data.to_str().unwrap().to_owned();
    let mut args = EPHEMERAL.to_vec();
    args.extend(["--data-dir", data_str.as_str()]);
    let (code, stderr) = serve_exit(&args, &[], Duration::from_secs(20)).expect("the broker started");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refusing to start: --data-dir"), "{stderr}");
    assert!(stderr.contains("`${DATA_ROOT}`, which nothing expanded"), "{stderr}");
    let env = [("VELTRIX_BROKER__DATA_DIR", data_str.as_str())];
    let (code, stderr) = serve_exit(&EPHEMERAL, &env, Duration::from_secs(20)).expect("the broker started");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("V018"), "{stderr}");
    assert!(!literal.exists(), "a directory named after the placeholder was created");
}

/// And a good override applies: the data directory comes from the environment.
#[test]
fn without_a_config_file_environment_overrides_apply() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-env");
    let data_str = data.to_str().unwrap().to_owned();
    let env = [("VELTRIX_BROKER__DATA_DIR", data_str.as_str())];
    let mut child = spawn_serve(&EPHEMERAL, &env);
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        if data.join("lock").exists() {
            break true;
        }
        if Instant::now() >= deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "no broker used {}", data.display());
}

/// `serve` fails like every other command, whatever `RUST_BACKTRACE` says: one
/// `error:` line after the diagnostics it renders, no backtrace, and no colour
/// codes in what it logs to a pipe.
#[test]
fn a_refused_start_prints_one_error_line_and_no_backtrace() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("veltrix.toml");
    std::fs::write(&config, "[broker]\nprofle = \"production\"\n").unwrap();
    let in_use = start_broker();
    let in_use_dir = in_use.data_dir().to_str().unwrap().to_owned();
    for backtrace in ["0", "1", "full"] {
        let env = [("RUST_BACKTRACE", backtrace)];
        let mut bad_config = EPHEMERAL.to_vec();
        bad_config.extend(["--config", config.to_str().unwrap()]);
        let mut dir_in_use = EPHEMERAL.to_vec();
        dir_in_use.extend(["--data-dir", &in_use_dir]);
        for args in [bad_config, dir_in_use] {
            let (code, stderr) =
                serve_exit(&args, &env, Duration::from_secs(20)).unwrap_or_else(|| panic!("serve {args:?} started"));
            assert_eq!(code, 1, "{stderr}");
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(errors.len(), 1, "RUST_BACKTRACE={backtrace}: {stderr}");
            assert!(stderr.ends_with(&format!("{}\n", errors[0])), "{stderr}");
            assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
            assert!(!stderr.contains('\u{1b}'), "colour codes in a pipe: {stderr:?}");
            if args.contains(&"--config") {
                assert!(stderr.starts_with("error[V002]: unknown key `profle`"), "{stderr}");
            }
        }
    }
}

/// A data directory of local storage holds records nowhere else; shared
/// storage keeps only a copy of the catalog's topics there and would drop
/// them. Such a start is refused before anything is contacted.
#[test]
fn shared_storage_refuses_a_data_directory_holding_local_topics() {
    let _machine = shared();
    let mut broker = start_broker();
    broker.ok(&["topic", "create", "kept", "--partitions", "1"]);
    broker.stop(Duration::from_secs(20));
    let dir = broker.data_dir().to_str().unwrap().to_owned();
    let mut args = EPHEMERAL.to_vec();
    args.extend(["--data-dir", &dir]);
    let env = [
        ("VELTRIX_STORAGE__MODE", "shared"),
        ("VELTRIX_STORAGE__BROKER_ID", "1"),
        ("VELTRIX_STORAGE__BUCKET", "b"),
        ("VELTRIX_STORAGE__ENDPOINT", "http://127.0.0.1:9"),
        ("VELTRIX_STORAGE__ALLOW_HTTP", "true"),
        (
            "VELTRIX_STORAGE__POSTGRES_URL",
            "postgresql://veltrix@127.0.0.1:9/veltrix",
        ),
    ];
    let (code, stderr) = serve_exit(&args, &env, Duration::from_secs(20)).expect("the broker started");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("1 topic(s) of local storage") && stderr.contains(&dir),
        "{stderr}"
    );
}
