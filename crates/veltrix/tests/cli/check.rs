//! `veltrix check` and `veltrix explain` as a user runs them: exit statuses
//! (0 clean, 1 on errors, 1 on warnings with `--strict`), the rendered and
//! JSON reports, environment overrides, and the rule catalogue; and what
//! `veltrix serve` applies from the file (declared topics, `[share]` and
//! declared share groups).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{BIN, BrokerGuard, Serve, shared};

/// Runs `veltrix` in `dir` with only the given `VELTRIX_` variables set.
fn veltrix(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("VELTRIX_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const CLEAN: &str = "[broker]\nprofile = \"development\"\n\n[[topic]]\nname = \"orders\"\npartitions = 3\n";
const WARNING: &str = "[[topic]]\nname = \"orders\"\nretention_ms = 3_600_000\n";
const ERROR: &str = "[broker]\nprofle = \"production\"\n";

#[test]
fn a_clean_file_exits_0_even_when_strict() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "veltrix.toml", CLEAN);
    let o = veltrix(dir.path(), &["check"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("veltrix.toml: ok (development profile, 1 topic)"),
        "{}",
        stdout(&o)
    );
    let o = veltrix(dir.path(), &["check", "veltrix.toml", "--strict"], &[]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn errors_exit_1_with_the_diagnostic() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.toml", ERROR);
    let o = veltrix(dir.path(), &["check", "bad.toml"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("error[V002]: unknown key `profle` in `[broker]`"), "{out}");
    assert!(out.contains("--> bad.toml:2:1"), "{out}");
    assert!(out.contains("= help: did you mean `profile`?"), "{out}");
}

#[test]
fn warnings_exit_0_unless_strict() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "veltrix.toml", WARNING);
    let o = veltrix(dir.path(), &["check"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("warning[V116]"));
    let o = veltrix(dir.path(), &["check", "--strict"], &[]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn json_output_carries_rule_line_and_fix() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "veltrix.toml", ERROR);
    let o = veltrix(dir.path(), &["check", "--format", "json"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["errors"], 1);
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["rule"].as_str(), d["line"].as_u64(), d["column"].as_u64()),
        (Some("V002"), Some(2), Some(1))
    );
    assert_eq!(d["help"], "did you mean `profile`?");
}

/// Whatever went wrong, `--format json` prints JSON: a file that cannot be
/// read gives a report with the reason.
#[test]
fn json_output_is_json_when_the_file_cannot_be_read() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let o = veltrix(dir.path(), &["check", "missing.toml", "--format", "json"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["errors"], 1);
    assert!(v["error"].as_str().unwrap().contains("cannot read missing.toml"), "{v}");
    assert_eq!(v["diagnostics"], serde_json::json!([]));
    // Not UTF-8: a diagnostic like any other.
    std::fs::write(
        dir.path().join("latin1.toml"),
        b"[broker]\ndata_dir = \"/srv/caf\xe9\"\n",
    )
    .unwrap();
    let o = veltrix(dir.path(), &["check", "latin1.toml", "--format", "json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["rule"], "V016");
}

#[test]
fn environment_overrides_are_checked_too() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "veltrix.toml", CLEAN);
    let o = veltrix(dir.path(), &["check"], &[("VELTRIX_DEFAULTS__PARTITIONS", "0")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("VELTRIX_DEFAULTS__PARTITIONS=0"), "{}", stdout(&o));
}

#[test]
fn a_missing_file_is_an_error() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let o = veltrix(dir.path(), &["check"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: cannot read veltrix.toml"));
}

#[test]
fn the_shipped_examples_pass_strict_checking() {
    let _machine = shared();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    // Through the binary the probe is the real machine's (file system under
    // the data directory, memory), so the production example is held to "no
    // errors" here; the library's tests hold it to "no warnings" on a fixed
    // probe.
    let o = veltrix(&config, &["check", "development.toml", "--strict"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = veltrix(&config, &["check", "production.toml"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn explain_lists_and_explains_rules() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let o = veltrix(dir.path(), &["explain"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let list = stdout(&o);
    assert!(
        list.contains("V204") && list.contains("non-loopback-listener"),
        "{list}"
    );
    let o = veltrix(dir.path(), &["explain", "v204"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("V204 non-loopback-listener (warning, production profile)"));
    let o = veltrix(dir.path(), &["explain", "V999"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no rule `V999`"));
}

/// Starts `veltrix serve` with `args`, waits until its Kafka listener is
/// ready, then kills it. Returns everything it logged.
fn serve_until_ready(dir: &Path, args: &[&str]) -> String {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let mut child = Command::new(BIN)
        .current_dir(dir)
        .arg("serve")
        .args(args)
        .args([
            "--kafka-listener",
            "127.0.0.1:0",
            "--http-listener",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut log = String::new();
    let ready = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains("kafka listener ready") {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "the broker did not start:\n{log}");
    log
}

#[test]
fn serve_refuses_to_start_on_errors() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "veltrix.toml", ERROR);
    let o = veltrix(dir.path(), &["serve", "--config", "veltrix.toml"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error[V002]"), "{err}");
    assert!(err.contains("refusing to start: veltrix.toml has 1 error"), "{err}");
}

#[test]
fn serve_applies_declared_topics_and_flags_win_over_the_file() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let config = "[broker]\ndata_dir = \"from-file\"\n\n[[topic]]\nname = \"orders\"\npartitions = 2\nretention_ms = 86_400_000\n";
    write(dir.path(), "veltrix.toml", config);
    let log = serve_until_ready(dir.path(), &["--config", "veltrix.toml", "--data-dir", "from-flag"]);
    assert!(log.contains("created declared topic"), "{log}");
    assert!(!dir.path().join("from-file").exists());
    let catalog = std::fs::read_to_string(dir.path().join("from-flag/topics.json")).unwrap();
    assert!(catalog.contains("\"orders\""), "{catalog}");

    // A shorter retention on the live topic needs --allow-data-loss.
    write(
        dir.path(),
        "veltrix.toml",
        &config.replace("86_400_000", "3_600_000\nsegment_age_ms_max = 600_000"),
    );
    let o = veltrix(
        dir.path(),
        &["serve", "--config", "veltrix.toml", "--data-dir", "from-flag"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("topic `orders`") && err.contains("--allow-data-loss"),
        "{err}"
    );
    // Told like `check` tells: the rule, the file and the line of the change,
    // before the data directory is opened (the lock file is not even touched).
    assert!(err.contains("error[V302]"), "{err}");
    assert!(err.contains("--> veltrix.toml:7:16"), "{err}");
    let lock = dir.path().join("from-flag/lock");
    let locked_at = std::fs::metadata(&lock).unwrap().modified().unwrap();
    // Fewer partitions: refused at the line, whatever the flag says.
    write(
        dir.path(),
        "veltrix.toml",
        &config.replace("partitions = 2", "partitions = 1"),
    );
    let o = veltrix(
        dir.path(),
        &[
            "serve",
            "--config",
            "veltrix.toml",
            "--data-dir",
            "from-flag",
            "--allow-data-loss",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error[V301]"), "{err}");
    assert!(err.contains("--> veltrix.toml:6:14"), "{err}");
    assert!(err.contains("declare `partitions = 2` or more"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
    assert_eq!(std::fs::metadata(&lock).unwrap().modified().unwrap(), locked_at);
    write(
        dir.path(),
        "veltrix.toml",
        &config.replace("86_400_000", "3_600_000\nsegment_age_ms_max = 600_000"),
    );
    let log = serve_until_ready(
        dir.path(),
        &[
            "--config",
            "veltrix.toml",
            "--data-dir",
            "from-flag",
            "--allow-data-loss",
        ],
    );
    assert!(log.contains("updated declared topic"), "{log}");
}

/// A declared topic's duplicate window reaches the catalogue at its creation,
/// and a changed window on the next start, like any setting.
#[test]
fn serve_applies_a_declared_duplicate_window_and_its_changes() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let config = "[dedup]\nids_max = 2_000_000\n\n[[topic]]\nname = \"rewards\"\nretention_ms = 86_400_000\ndedup_window_ms = 600_000\ndedup_id_header = \"reward-id\"\n";
    write(dir.path(), "veltrix.toml", config);
    let catalog = || std::fs::read_to_string(dir.path().join("data/topics.json")).unwrap();
    let log = serve_until_ready(dir.path(), &["--config", "veltrix.toml", "--data-dir", "data"]);
    assert!(log.contains("created declared topic"), "{log}");
    assert!(catalog().contains("\"dedup_window_ms\": 600000"), "{}", catalog());
    assert!(
        catalog().contains("\"dedup_id_header\": \"reward-id\""),
        "{}",
        catalog()
    );

    write(dir.path(), "veltrix.toml", &config.replace("600_000", "3_600_000"));
    let log = serve_until_ready(dir.path(), &["--config", "veltrix.toml", "--data-dir", "data"]);
    assert!(log.contains("updated declared topic"), "{log}");
    assert!(catalog().contains("\"dedup_window_ms\": 3600000"), "{}", catalog());

    // A window past the retention is refused before anything changes.
    write(dir.path(), "veltrix.toml", &config.replace("600_000", "172_800_000"));
    let o = veltrix(
        dir.path(),
        &["serve", "--config", "veltrix.toml", "--data-dir", "data"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error[V124]"), "{err}");
    assert!(catalog().contains("\"dedup_window_ms\": 3600000"), "{}", catalog());
}

/// Sends `request` at `version` on a new connection to `addr`.
fn kafka_call<R: veltrix_client::kafka_protocol::protocol::Request>(
    runtime: &tokio::runtime::Runtime,
    addr: &str,
    request: &R,
    version: Option<i16>,
) -> R::Response {
    use veltrix_client::{Client, ClientConfig};
    runtime.block_on(async {
        let mut connection = Client::connect(addr, ClientConfig::default())
            .await
            .unwrap()
            .into_connection();
        // The negotiated version unless the caller names one.
        let api = veltrix_client::kafka_protocol::messages::ApiKey::try_from(R::KEY).unwrap();
        let version = version.unwrap_or_else(|| connection.version(api).unwrap());
        connection.call(request, version).await.unwrap()
    })
}

/// A share group's settings as DescribeConfigs (resource GROUP) reports them:
/// each key's value and source.
fn group_configs(runtime: &tokio::runtime::Runtime, addr: &str, group: &str) -> Vec<(String, String, i8)> {
    use veltrix_client::kafka_protocol::messages::DescribeConfigsRequest;
    use veltrix_client::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use veltrix_client::kafka_protocol::protocol::StrBytes;

    let resource = DescribeConfigsResource::default()
        .with_resource_type(RESOURCE_GROUP)
        .with_resource_name(StrBytes::from_string(group.to_owned()));
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let response = kafka_call(runtime, addr, &request, None);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.as_str().to_owned()).unwrap_or_default();
            (c.name.as_str().to_owned(), value, c.config_source)
        })
        .collect()
}

/// Sets one share-group setting with IncrementalAlterConfigs, as an operator
/// would between two starts.
fn alter_group_config(runtime: &tokio::runtime::Runtime, addr: &str, group: &str, key: &str, value: &str) {
    use veltrix_client::kafka_protocol::messages::IncrementalAlterConfigsRequest;
    use veltrix_client::kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use veltrix_client::kafka_protocol::protocol::StrBytes;

    let set = AlterableConfig::default()
        .with_name(StrBytes::from_string(key.to_owned()))
        .with_config_operation(0)
        .with_value(Some(StrBytes::from_string(value.to_owned())));
    let resource = AlterConfigsResource::default()
        .with_resource_type(RESOURCE_GROUP)
        .with_resource_name(StrBytes::from_string(group.to_owned()))
        .with_configs(vec![set]);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    // The client's tools never alter configs, so it negotiates no version of
    // this API; v1 is the broker's.
    let response = kafka_call(runtime, addr, &request, Some(1));
    let r = &response.responses[0];
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
}

/// DescribeConfigs' resource type of a group, and the sources of its values.
const RESOURCE_GROUP: i8 = 32;
const SOURCE_GROUP: i8 = 8;
const SOURCE_STATIC_BROKER: i8 = 4;

fn setting<'a>(configs: &'a [(String, String, i8)], key: &str) -> (&'a str, i8) {
    let (_, value, source) = configs
        .iter()
        .find(|(k, ..)| k == key)
        .unwrap_or_else(|| panic!("{key} not in {configs:?}"));
    (value, *source)
}

/// `[share]` and `[[share_group]]` reach the running broker: DescribeConfigs
/// on the GROUP resource shows the declared group's own settings and
/// `[share]`'s defaults under them, a `[share]` limit is enforced over the
/// Kafka protocol, and at the next start the file wins over what
/// IncrementalAlterConfigs set in between.
#[test]
fn serve_applies_share_settings_and_declared_share_groups() {
    use veltrix_client::{Client, ClientConfig, ShareConsumer, ShareFetchOptions};

    let _machine = shared();
    let config = r#"
[share]
group_members_max = 1
deliveries_max = 4

[[share_group]]
name = "jobs"
record_lock_duration_ms = 50_000
auto_offset_reset = "earliest"
"#;
    let mut b = Serve::new().config(config).start();
    assert!(b.logged("created declared share group"), "{}", b.log());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let declared = |b: &BrokerGuard| {
        let jobs = group_configs(&runtime, &b.addr, "jobs");
        assert_eq!(setting(&jobs, "share.record.lock.duration.ms"), ("50000", SOURCE_GROUP));
        assert_eq!(setting(&jobs, "share.auto.offset.reset"), ("earliest", SOURCE_GROUP));
        // Left out of the entry: `[share]`'s, the broker's value.
        assert_eq!(
            setting(&jobs, "share.delivery.count.limit"),
            ("4", SOURCE_STATIC_BROKER)
        );
    };
    declared(&b);
    // A group the file does not name gets `[share]`'s settings.
    let other = group_configs(&runtime, &b.addr, "other");
    assert_eq!(
        setting(&other, "share.delivery.count.limit"),
        ("4", SOURCE_STATIC_BROKER)
    );
    assert_eq!(setting(&other, "share.record.lock.duration.ms").0, "30000");

    // `[share] group_members_max = 1`: a second member is refused.
    b.ok(&["topic", "create", "tasks", "--partitions", "1"]);
    let join = |member: &str| {
        runtime.block_on(async {
            let connection = Client::connect(&b.addr, ClientConfig::default())
                .await
                .unwrap()
                .into_connection();
            ShareConsumer::join(connection, "jobs", "tasks", member.into(), ShareFetchOptions::default()).await
        })
    };
    let first = join("member-one").unwrap();
    let Err(second) = join("member-two") else {
        panic!("a second member joined past `group_members_max = 1`");
    };
    assert!(second.to_string().contains("GROUP_MAX_SIZE_REACHED"), "{second}");
    drop(first);

    // Between starts the protocol changes a declared group; at the next
    // start the file wins again.
    alter_group_config(&runtime, &b.addr, "jobs", "share.delivery.count.limit", "2");
    let jobs = group_configs(&runtime, &b.addr, "jobs");
    assert_eq!(setting(&jobs, "share.delivery.count.limit"), ("2", SOURCE_GROUP));
    b.stop_and_restart(std::time::Duration::from_secs(20));
    assert!(b.logged("set declared share group's settings"), "{}", b.log());
    declared(&b);
}
