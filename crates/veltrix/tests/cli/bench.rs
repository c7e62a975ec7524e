//! `veltrix bench` against a real `veltrix serve` on an ephemeral port of
//! 127.0.0.1: short runs of every workload, checking that what the JSON
//! reports is consistent and was really written and read.

use std::process::{Command, Output};

use crate::common::{BIN, exclusive, start_broker};
use serde_json::Value;

fn bench(addr: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .args(["--bootstrap", addr])
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("`{key}` in {v}"))
}

#[test]
fn a_closed_loop_run_then_a_read_through_agree() {
    let _machine = exclusive();
    let broker = start_broker();
    let addr = broker.addr.as_str();
    let produced = json(&bench(
        addr,
        &[
            "produce",
            "--topic",
            "t",
            "--partitions",
            "3",
            "--producers",
            "2",
            "--record-bytes",
            "100",
            "--batch-bytes",
            "16384",
            "--duration-s",
            "1",
            "--warmup-s",
            "0.2",
            "--json",
            "--system",
            "veltrix",
        ],
    ));
    assert_eq!(produced["tool"], "veltrix bench");
    assert_eq!(produced["system"], "veltrix");
    assert_eq!(produced["workload"], "produce");
    assert_eq!(produced["acks"], "all");
    assert_eq!(u(&produced, "partitions"), 3);
    assert_eq!(u(&produced, "errors"), 0);
    let records = u(&produced, "records");
    assert!(records > 0, "{produced}");
    assert_eq!(u(&produced, "bytes"), records * 100);
    let rate = produced["records_per_s"].as_f64().unwrap();
    assert!((rate - records as f64).abs() < 1.0, "1 s measured: {produced}");
    let ack = &produced["produce_latency_us"];
    assert_eq!(u(ack, "count"), records);
    assert!(
        u(ack, "p50") <= u(ack, "p99") && u(ack, "p99") <= u(ack, "max"),
        "{ack}"
    );
    // The consumer read at least every measured record back.
    assert!(u(&produced, "consumed") >= records, "{produced}");
    assert!(u(&produced["e2e_latency_us"], "count") >= records, "{produced}");

    // Everything written, warm-up included, reads back once.
    let consumed = json(&bench(addr, &["consume", "--topic", "t", "--consumers", "2", "--json"]));
    assert_eq!(consumed["workload"], "consume");
    assert!(u(&consumed, "records") >= records, "{consumed}");
    assert_eq!(u(&consumed, "records"), u(&produced, "consumed"));
    assert_eq!(u(&consumed, "bytes"), u(&consumed, "records") * 100);
}

/// Consumers in a group: the broker's assignment covers every partition once,
/// so together they read everything written exactly once, and they leave the
/// group at the end.
#[test]
fn consumers_in_a_group_read_every_record_once() {
    let _machine = exclusive();
    let broker = start_broker();
    let addr = broker.addr.as_str();
    let produced = json(&bench(
        addr,
        &[
            "produce",
            "--topic",
            "grouped",
            "--partitions",
            "6",
            "--group",
            "readers",
            "--consumers",
            "3",
            "--rate",
            "3000",
            "--record-bytes",
            "64",
            "--duration-s",
            "1.5",
            "--warmup-s",
            "0.3",
            "--json",
        ],
    ));
    assert_eq!(produced["consumer_group"], "readers");
    assert_eq!(u(&produced, "errors"), 0, "{produced}");
    let records = u(&produced, "records");
    assert!(records > 0, "{produced}");
    assert!(u(&produced["e2e_latency_us"], "count") >= records, "{produced}");
    let consumed = json(&bench(addr, &["consume", "--topic", "grouped", "--json"]));
    assert_eq!(
        u(&produced, "consumed"),
        u(&consumed, "records"),
        "the members read each record once: {produced}"
    );
    let described = Command::new(BIN)
        .args(["group", "describe", "readers", "--bootstrap", addr])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&described.stdout);
    assert!(text.contains("Members: 0"), "the members left: {text}");
}

#[test]
fn an_open_loop_run_holds_its_rate() {
    let _machine = exclusive();
    let broker = start_broker();
    let v = json(&bench(
        &broker.addr,
        &[
            "produce",
            "--topic",
            "paced",
            "--rate",
            "2000",
            "--record-bytes",
            "64",
            "--keys",
            "50",
            "--duration-s",
            "2",
            "--warmup-s",
            "0.5",
            "--json",
        ],
    ));
    let rate = v["records_per_s"].as_f64().unwrap();
    assert!((1800.0..=2200.0).contains(&rate), "asked for 2000/s: {v}");
    assert_eq!(u(&v, "errors"), 0);
}

#[test]
fn the_treasure_hunt_writes_every_kind_of_event() {
    let _machine = exclusive();
    let broker = start_broker();
    let v = json(&bench(
        &broker.addr,
        &[
            "treasure-hunt",
            "--rate",
            "2000",
            "--players",
            "500",
            "--spike-at-s",
            "0.5",
            "--spike-s",
            "0.5",
            "--spike-factor",
            "4",
            "--duration-s",
            "1.5",
            "--warmup-s",
            "0.2",
            "--telemetry-acks",
            "1",
            "--json",
        ],
    ));
    assert_eq!(v["workload"], "treasure-hunt");
    let streams = v["streams"].as_array().unwrap();
    let names: Vec<&str> = streams.iter().map(|s| s["stream"].as_str().unwrap()).collect();
    assert_eq!(names, ["location_ping", "clue_found", "reward_granted", "purchase"]);
    for s in streams {
        assert!(u(s, "records") > 0, "{s}");
        assert_eq!(u(s, "errors"), 0, "{s}");
    }
    assert_eq!(streams[0]["acks"], "1");
    assert_eq!(streams[3]["acks"], "all");
    // 2000/s for 1.5 s with a 4x spike for 0.5 s: 3000 + 3 * 1000 = 6000.
    let total = u(&v, "records");
    assert!((5000..=7000).contains(&total), "{v}");
}

#[test]
fn failures_are_reported_and_exit_1() {
    let _machine = exclusive();
    // Nothing listens on port 1.
    let o = bench("127.0.0.1:1", &["produce", "--duration-s", "1", "--timeout-ms", "2000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error: benchmarking 127.0.0.1:1"));
    let o = bench(
        "127.0.0.1:1",
        &["produce", "--record-bytes", "4096", "--batch-bytes", "2048"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("do not fit"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
