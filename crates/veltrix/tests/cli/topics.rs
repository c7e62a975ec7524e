//! End-to-end tests of the command-line tools: each test starts the real
//! `veltrix serve` binary on a fresh data directory and drives `veltrix topic`,
//! `produce` and `consume` as a user would, checking their output and exit
//! status.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use veltrix_client::partitioner::partition_for_key;

use crate::common::{ChildGuard, each_says_no_broker, eventually, moment_between, shared, start_broker, wait_for};

/// The rows of `topic describe`'s partition table: index, leader, replicas,
/// ISR, log start, end.
fn partition_rows(describe: &str) -> Vec<Vec<String>> {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The number in `event-<n>`.
fn event_number(v: &Value) -> u32 {
    v["value"]
        .as_str()
        .unwrap()
        .strip_prefix("event-")
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn topics_records_and_offsets_end_to_end() {
    let _machine = shared();
    let b = start_broker();

    // Create, list, describe.
    let out = b.ok(&[
        "topic",
        "create",
        "events",
        "--partitions",
        "3",
        "--config",
        "retention.ms=86400000",
    ]);
    assert_eq!(out.stdout, "created topic events with 3 partitions\n");
    b.ok(&["topic", "create", "other", "--partitions", "1"]);
    assert_eq!(b.ok(&["topic", "list"]).stdout, "events\t3\nother\t1\n");
    let describe = b.ok(&["topic", "describe", "events"]).stdout;
    assert!(describe.starts_with("Topic: events\nId: "), "{describe}");
    assert!(describe.contains("\nPartitions: 3\n"), "{describe}");
    let rows = partition_rows(&describe);
    let want: Vec<Vec<String>> = (0..3)
        .map(|p| {
            [
                p.to_string(),
                "0".into(),
                "0".into(),
                "0".into(),
                "0".into(),
                "0".into(),
            ]
            .to_vec()
        })
        .collect();
    assert_eq!(rows, want);
    let configs: Vec<Vec<&str>> = describe
        .lines()
        .skip_while(|l| *l != "Configs:")
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        configs.contains(&vec!["retention.ms", "=", "86400000", "(DYNAMIC_TOPIC_CONFIG)"]),
        "{describe}"
    );
    assert!(
        configs.contains(&vec!["cleanup.policy", "=", "delete", "(DEFAULT_CONFIG)"]),
        "{describe}"
    );
    // Every column starts at the same place on every line.
    let value_columns: BTreeSet<usize> = describe
        .lines()
        .skip_while(|l| *l != "Configs:")
        .skip(1)
        .map(|l| l.find(" = ").unwrap())
        .collect();
    assert_eq!(value_columns.len(), 1, "{describe}");

    // 1000 keyed lines with headers, in small batches.
    let lines: String = (0..1000).map(|i| format!("user-{}:event-{i}\n", i % 37)).collect();
    let out = b.ok_with(
        &[
            "produce",
            "events",
            "--key-separator",
            ":",
            "--header",
            "source=cli-test",
            "--header",
            "run=1",
            "--batch-bytes-max",
            "4096",
        ],
        lines.as_bytes(),
    );
    let summary = out.stdout.lines().next().unwrap();
    let requests: u32 = summary
        .strip_prefix("acknowledged 1000 records in ")
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("{}", out.stdout))
        .parse()
        .unwrap();
    assert!(requests > 1, "4 KiB batches need several requests: {}", out.stdout);

    // Back in JSON: the same records, on the Java client's partitions, in order.
    let records = b.records("events", &["--from-beginning"]);
    assert_eq!(records.len(), 1000);
    let mut per_partition: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for r in &records {
        let key = r["key"].as_str().unwrap();
        let n = event_number(r);
        assert_eq!(key, format!("user-{}", n % 37));
        assert_eq!(r["headers"], json!({"source": "cli-test", "run": "1"}));
        let partition = r["partition"].as_u64().unwrap();
        assert_eq!(partition, u64::from(partition_for_key(key.as_bytes(), 3)), "{r}");
        per_partition.entry(partition).or_default().push(r);
    }
    let mut seen: Vec<u32> = records.iter().map(event_number).collect();
    seen.sort();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    let mut counts = HashMap::new();
    for (p, rs) in &per_partition {
        let offsets: Vec<i64> = rs.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
        assert_eq!(offsets, (0..rs.len() as i64).collect::<Vec<_>>(), "partition {p}");
        let order: Vec<u32> = rs.iter().map(|r| event_number(r)).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "partition {p} out of order");
        assert!(out.stdout.contains(&format!(
            "\n  partition {p}: {} records, offsets 0 to {}\n",
            rs.len(),
            rs.len() - 1
        )));
        counts.insert(p.to_string(), rs.len().to_string());
    }
    assert_eq!(per_partition.len(), 3, "37 keys spread over every partition");
    let rows = partition_rows(&b.ok(&["topic", "describe", "events"]).stdout);
    for row in rows {
        assert_eq!((row[4].as_str(), &row[5]), ("0", &counts[&row[0]]), "{row:?}");
    }

    // From an offset, bounded by --count.
    let from_offset = b.records("events", &["--partition", "1", "--offset", "10", "--count", "5"]);
    let want: Vec<&Value> = per_partition[&1][10..15].to_vec();
    assert_eq!(from_offset.iter().collect::<Vec<_>>(), want);

    // From a time: only records stamped at or after it. Unkeyed records go
    // round-robin.
    let t = moment_between();
    let late: String = (0..10).map(|i| format!("late-{i}\n")).collect();
    b.ok_with(&["produce", "events"], late.as_bytes());
    let after = b.records("events", &["--from-time", &t.to_string()]);
    let mut values: Vec<(String, u64)> = after
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap().to_owned(),
                r["partition"].as_u64().unwrap(),
            )
        })
        .collect();
    values.sort();
    let want: Vec<(String, u64)> = (0..10).map(|i| (format!("late-{i}"), i % 3)).collect();
    assert_eq!(values, want);
    assert!(
        after
            .iter()
            .all(|r| r["key"].is_null() && r["timestamp"].as_i64().unwrap() >= t)
    );
    // The same through RFC 3339, as text output prints it: from the first late
    // record of partition 2, at offset `count`.
    let first_late = per_partition[&2].len().to_string();
    let text = b
        .ok(&[
            "consume",
            "events",
            "--partition",
            "2",
            "--offset",
            &first_late,
            "--count",
            "1",
        ])
        .stdout;
    assert!(text.contains(" key=null headers={} value=late-2\n"), "{text}");
    let stamp = text.split("timestamp=").nth(1).unwrap().split(' ').next().unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
    let from_stamp = b.records("events", &["--partition", "2", "--from-time", stamp]);
    let values: Vec<&str> = from_stamp.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["late-2", "late-5", "late-8"]);
    // Past the last record: nothing, and the run ends.
    assert!(
        b.records("events", &["--from-time", &(t + 3_600_000).to_string()])
            .is_empty()
    );

    // Delete.
    assert_eq!(b.ok(&["topic", "delete", "events"]).stdout, "deleted topic events\n");
    assert_eq!(b.ok(&["topic", "list"]).stdout, "other\t1\n");
    b.fails_with(
        &["consume", "events", "--from-beginning"],
        b"",
        "topic `events`: UNKNOWN_TOPIC_OR_PARTITION",
    );
}

#[test]
fn errors_are_named_and_exit_with_status_1() {
    let _machine = shared();
    let b = start_broker();
    for args in [
        &["produce", "missing"][..],
        &["consume", "missing"],
        &["topic", "describe", "missing"],
    ] {
        let out = b.fails_with(args, b"a line\n", "topic `missing`: UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(out.stderr, "error: topic `missing`: UNKNOWN_TOPIC_OR_PARTITION\n");
        assert_eq!(out.stdout, "");
    }
    b.fails_with(
        &["topic", "delete", "missing"],
        b"",
        "deleting topic `missing`: UNKNOWN_TOPIC_OR_PARTITION",
    );
    b.ok(&[
        "topic",
        "create",
        "t",
        "--partitions",
        "2",
        "--config",
        "max.message.bytes=500",
    ]);
    b.fails_with(
        &["topic", "create", "t"],
        b"",
        "creating topic `t`: TOPIC_ALREADY_EXISTS",
    );
    b.fails_with(
        &["topic", "create", "u", "--config", "no.such=1"],
        b"",
        "INVALID_CONFIG",
    );
    b.fails_with(
        &["produce", "t", "--partition", "2"],
        b"x\n",
        "partition 2 does not exist",
    );
    b.fails_with(&["consume", "t", "--partition", "5"], b"", "partition 5 does not exist");
    b.fails_with(
        &["produce", "t", "--key-separator", ":"],
        b"k:v\nno separator\n",
        "line 2 has no key separator `:`",
    );
    // A batch over the topic's max.message.bytes: the broker refuses it, and
    // the run says so by the Kafka error's name.
    let lines: String = (0..100).map(|i| format!("{i:0>20}\n")).collect();
    let out = b.fails_with(
        &["produce", "t", "--partition", "0", "--batch-bytes-max", "4096"],
        lines.as_bytes(),
        "MESSAGE_TOO_LARGE",
    );
    assert!(out.stderr.contains("partition 0: "), "{out:?}");
    assert!(out.stdout.starts_with("acknowledged 0 records"), "{out:?}");
    // Small batches fit, and an offset outside the log is reported.
    b.ok_with(
        &["produce", "t", "--partition", "0", "--batch-bytes-max", "400"],
        lines.as_bytes(),
    );
    b.fails_with(
        &["consume", "t", "--partition", "0", "--offset", "101"],
        b"",
        "offset 101 is out of range: partition 0 of `t` holds offsets 0 to 100",
    );
    assert_eq!(
        b.records("t", &["--partition", "0", "--offset", "100"]),
        Vec::<Value>::new()
    );
}

#[test]
fn without_a_broker_every_tool_says_so() {
    let _machine = shared();
    each_says_no_broker(&[
        &["topic", "list"][..],
        &["topic", "create", "t"],
        &["produce", "t"],
        &["consume", "t"],
    ]);
}

#[test]
fn follow_waits_for_records_produced_later() {
    let _machine = shared();
    let b = start_broker();
    b.ok(&["topic", "create", "live", "--partitions", "2"]);
    let mut consumer = ChildGuard(
        b.command(&[
            "consume",
            "live",
            "--from-beginning",
            "--follow",
            "--count",
            "3",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    // It keeps waiting while there is nothing to read.
    let early = wait_for(&mut consumer.0, Duration::from_millis(700));
    assert!(early.is_none(), "stopped with nothing to read: {early:?}");
    b.ok_with(&["produce", "live", "--key-separator", "="], b"a=1\nb=2\nc=3\n");
    let status = wait_for(&mut consumer.0, Duration::from_secs(20)).expect("--follow saw the records");
    assert!(status.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut consumer.0.stdout.take().unwrap(), &mut stdout).unwrap();
    let mut got: Vec<(String, String)> = stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["key"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("a", "1"), ("b", "2"), ("c", "3")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[test]
fn files_explicit_partitions_and_acks_1() {
    let _machine = shared();
    let b = start_broker();
    b.ok(&["topic", "create", "f", "--partitions", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.txt");
    std::fs::write(&path, b"first\r\n\nthird \xc3\xa9\nno newline at the end").unwrap();
    let path = path.to_str().unwrap();
    let out = b.ok(&["produce", "f", "--file", path, "--partition", "2", "--acks", "1"]);
    assert_eq!(
        out.stdout,
        "acknowledged 4 records in 1 request to f\n  partition 2: 4 records, offsets 0 to 3\n"
    );
    // acks=1 answers before the fsync; the records are readable once it is
    // done, which a loaded machine can delay past the answer.
    let mut records = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            records = b.records("f", &["--from-beginning"]);
            records.len() >= 4
        }),
        "{records:?}"
    );
    let values: Vec<(u64, &str)> = records
        .iter()
        .map(|r| (r["partition"].as_u64().unwrap(), r["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        values,
        [(2, "first"), (2, ""), (2, "third é"), (2, "no newline at the end")]
    );
    // acks=0 gets no answer, but the records still land.
    let out = b.ok_with(&["produce", "f", "--partition", "0", "--acks", "0"], b"x\ny\n");
    assert!(
        out.stdout.starts_with("sent 2 records in 1 request to f (acks=0"),
        "{out:?}"
    );
    assert!(
        eventually(Duration::from_secs(10), || b
            .records("f", &["--from-beginning", "--partition", "0"])
            .len()
            >= 2),
        "acks=0 records never became visible"
    );
    b.fails_with(
        &["produce", "f", "--file", "/nonexistent/input"],
        b"",
        "opening /nonexistent/input",
    );
}

#[test]
fn keys_land_where_the_java_client_puts_them() {
    let _machine = shared();
    let b = start_broker();
    b.ok(&["topic", "create", "j", "--partitions", "7"]);
    b.ok_with(&["produce", "j", "--key-separator", ":"], b"21:java\n");
    // Java: toPositive(murmur2("21")) % 7 = (-973932308 & 0x7fffffff) % 7 = 3.
    let records = b.records("j", &["--from-beginning"]);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["partition"], 3);
}
