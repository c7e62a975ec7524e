//! `veltrix doctor` as a user runs it: exit statuses (0 clean, 1 on errors,
//! 1 on warnings with `--strict`, 2 when the check cannot run), rendered and
//! JSON reports, `--explain`, and `--broker` reading the limits and the
//! listeners of a real `veltrix serve` on ephemeral ports of 127.0.0.1.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{BIN, BrokerGuard, Serve, eventually, shared, start_broker};

const CLEAN: &str = "bootstrap.servers=127.0.0.1:9092\nkey.serializer=org.apache.kafka.common.serialization.StringSerializer\nacks=all\nenable.idempotence=true\n";
const ERROR: &str = "bootstrap.servers=127.0.0.1:9092\nacks=0\n";
/// A Java producer's settings that no rule but D009 finds fault with.
const CLEAN_PRODUCER: &str =
    "key.serializer=org.apache.kafka.common.serialization.StringSerializer\nacks=all\nenable.idempotence=true\n";
const WARNING: &str = "bootstrap.servers=127.0.0.1:9092\nkey.serializer=x\nacks=1\nenable.idempotence=false\n";

fn doctor(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .arg("doctor")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_clean_file_exits_0_even_when_strict() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "producer.properties", CLEAN);
    for args in [&["producer.properties"][..], &["producer.properties", "--strict"]] {
        let o = doctor(dir.path(), args);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        assert_eq!(stdout(&o), "producer.properties: ok (Java producer)\n");
    }
}

#[test]
fn errors_exit_1_with_the_diagnostic() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.properties", ERROR);
    let o = doctor(
        dir.path(),
        &["bad.properties", "--client", "java", "--role", "producer"],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("error[D101]: `acks=0`: the broker never confirms a write"),
        "{out}"
    );
    assert!(out.contains("--> bad.properties:2:6"), "{out}");
    assert!(out.contains("2 + acks=all"), "the fix is shown as an edit: {out}");
    assert!(out.ends_with("bad.properties: 1 error (Java producer)\n"), "{out}");
}

#[test]
fn warnings_fail_only_when_strict() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "warn.properties", WARNING);
    let o = doctor(dir.path(), &["warn.properties"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("warning[D102]"), "{}", stdout(&o));
    let o = doctor(dir.path(), &["warn.properties", "--strict"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn json_output_lists_every_finding_with_its_place_and_fix() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "consumer.json",
        "{\n  \"group.id\": \"billing\",\n  \"enable.auto.offset.store\": true\n}\n",
    );
    let o = doctor(
        dir.path(),
        &["consumer.json", "--client", "librdkafka", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["client"], "librdkafka");
    assert_eq!(v["role"], "consumer");
    let findings = v["findings"].as_array().unwrap();
    let store = findings.iter().find(|f| f["rule"] == "D201").expect("D201");
    assert_eq!(store["line"], 3);
    assert_eq!(store["column"], 31);
    assert_eq!(store["fix"]["line"], "\"enable.auto.offset.store\": false");
}

/// Whatever went wrong, `--format json` prints JSON.
#[test]
fn json_output_is_json_when_the_file_cannot_be_read() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let o = doctor(dir.path(), &["missing.properties", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["error"].as_str().unwrap().contains("missing.properties"), "{v}");
    assert_eq!(v["findings"], serde_json::json!([]));
}

#[test]
fn the_check_that_cannot_run_exits_2() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let o = doctor(dir.path(), &["missing.properties"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: cannot read missing.properties"),
        "{}",
        stderr(&o)
    );
    write(dir.path(), "c.properties", CLEAN);
    let o = doctor(dir.path(), &["c.properties", "--client", "python"]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    let o = doctor(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(2), "no file");
    // Nothing listens on port 1.
    let o = doctor(
        dir.path(),
        &["c.properties", "--broker", "127.0.0.1:1", "--timeout-ms", "2000"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("reading the limits of the broker at 127.0.0.1:1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn explain_prints_a_rule_or_the_catalogue() {
    let _machine = shared();
    let dir = tempfile::tempdir().unwrap();
    let o = doctor(dir.path(), &["--explain", "partitioner-mismatch"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).starts_with("D115 partitioner-mismatch (warning, producer)"),
        "{}",
        stdout(&o)
    );
    let o = doctor(dir.path(), &["--explain"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).lines().count() >= 30, "{}", stdout(&o));
    assert!(stdout(&o).contains("D201  warning"), "{}", stdout(&o));
    let o = doctor(dir.path(), &["--explain", "D999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no rule `D999`"), "{}", stderr(&o));
}

#[test]
fn broker_limits_come_from_a_running_broker() {
    let _machine = shared();
    let broker = start_broker();
    let created = Command::new(BIN)
        .args(["topic", "create", "orders", "--partitions", "1"])
        .args([
            "--config",
            "max.message.bytes=100000",
            "--config",
            "retention.ms=86400000",
        ])
        .args(["--bootstrap", &broker.addr, "--timeout-ms", "10000"])
        .output()
        .unwrap();
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));

    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "service.properties",
        &format!(
            "bootstrap.servers={}\ngroup.id=billing\nenable.auto.commit=false\nisolation.level=read_committed\nauto.offset.reset=latest\nacks=all\nmax.request.size=524288\n",
            broker.addr
        ),
    );
    let args = [
        "service.properties",
        "--client",
        "java",
        "--broker",
        &broker.addr,
        "--topic",
        "orders",
    ];
    let o = doctor(dir.path(), &args);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains(&format!(
            "warning[D114]: `max.request.size=524288` is larger than topic `orders`'s `max.message.bytes` (100000) at {}",
            broker.addr
        )),
        "{out}"
    );
    assert!(out.contains("7 + max.request.size=100000"), "{out}");
    assert!(out.contains("`orders` keeps records for 1d"), "{out}");
    let o = doctor(dir.path(), &[&args[..], &["--strict"]].concat());
    assert_eq!(o.status.code(), Some(1));

    // Without a topic, the broker's own limit (1048588 by default) applies.
    let o = doctor(
        dir.path(),
        &["service.properties", "--client", "java", "--broker", &broker.addr],
    );
    assert!(!stdout(&o).contains("D114"), "{}", stdout(&o));
    write(
        dir.path(),
        "big.properties",
        "key.serializer=x\nacks=all\nmax.request.size=2097152\n",
    );
    let o = doctor(dir.path(), &["big.properties", "--broker", &broker.addr]);
    assert!(
        stdout(&o).contains("is larger than the broker's `message.max.bytes` (1048588)"),
        "{}",
        stdout(&o)
    );
    // An unknown topic cannot be compared with: the check does not run.
    let o = doctor(
        dir.path(),
        &["big.properties", "--broker", &broker.addr, "--topic", "nope"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("UNKNOWN_TOPIC_OR_PARTITION"), "{}", stderr(&o));
}

/// A broker with its loopback PLAINTEXT listener and a SASL_PLAINTEXT one
/// offering SCRAM-SHA-512 only, both on ephemeral ports.
const TWO_LISTENERS: &str = r#"
[[listener]]
name = "secure"
address = "127.0.0.1:0"
protocol = "SASL_PLAINTEXT"
sasl_mechanisms = ["SCRAM-SHA-512"]
"#;

/// The address of the broker's listener `name`, from its "kafka listener
/// ready" log line (the harness keeps one Kafka address, whichever listener
/// logged last).
fn listener_addr(broker: &BrokerGuard, name: &str) -> String {
    let mut addr = None;
    let logged = eventually(std::time::Duration::from_secs(10), || {
        addr = broker.messages().into_iter().find_map(|v| {
            let f = &v["fields"];
            (f["message"] == "kafka listener ready" && f["listener"] == name)
                .then(|| f["addr"].as_str().unwrap_or_default().to_owned())
        });
        addr.is_some()
    });
    assert!(logged, "no listener `{name}` in:\n{}", broker.log());
    addr.unwrap_or_default()
}

/// `--broker` on the PLAINTEXT listener reads every listener: a client file
/// for the SASL listener that says PLAINTEXT, and one for the PLAINTEXT
/// listener that says SASL_SSL, are errors naming the listener at their
/// address, with its protocol as the fix; a mechanism that listener does
/// not offer is one too; the right settings pass.
#[test]
fn broker_listeners_decide_the_security_protocol_and_mechanism() {
    let _machine = shared();
    let broker = Serve::new().config(TWO_LISTENERS).start();
    let plain = listener_addr(&broker, "kafka");
    let secure = listener_addr(&broker, "secure");
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, settings: &str| {
        write(
            dir.path(),
            name,
            &format!("bootstrap.servers={settings}{CLEAN_PRODUCER}"),
        );
        let o = doctor(dir.path(), &[name, "--client", "java", "--broker", &plain]);
        (o.status.code(), stdout(&o), stderr(&o))
    };

    let (code, out, err) = check(
        "to-secure.properties",
        &format!("{secure}\nsecurity.protocol=PLAINTEXT\n"),
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!(
            "error[D009]: `security.protocol=PLAINTEXT`, but the listener `secure` at {secure} is SASL_PLAINTEXT"
        )),
        "{out}"
    );
    assert!(out.contains("help: write `security.protocol=SASL_PLAINTEXT`"), "{out}");
    // The Java client's default mechanism, GSSAPI, is not offered; the
    // listener's is the fix.
    assert!(out.contains("left at its default `GSSAPI`"), "{out}");
    assert!(out.contains("help: add `sasl.mechanism=SCRAM-SHA-512`"), "{out}");

    let (code, out, err) = check(
        "to-plain.properties",
        &format!("{plain}\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"),
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!(
            "error[D009]: `security.protocol=SASL_SSL`, but the listener `kafka` at {plain} is PLAINTEXT"
        )),
        "{out}"
    );
    assert!(out.contains("help: write `security.protocol=PLAINTEXT`"), "{out}");

    let (code, out, err) = check(
        "wrong-mechanism.properties",
        &format!("{secure}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"),
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!("the listener `secure` at {secure} offers SCRAM-SHA-512")),
        "{out}"
    );

    let (code, out, err) = check(
        "right.properties",
        &format!("{secure}\nsecurity.protocol=sasl_plaintext\nsasl.mechanism=SCRAM-SHA-512\n"),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("D009"), "{out}");
}
