//! Fetch responses against the memory budget, with a real broker process whose
//! resident memory is measured: clients that ask for huge responses and never
//! read them must not grow the broker past its budget, and everyone else must
//! keep being served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::common::{BIN, Serve, exclusive, frame, resident_bytes};

const BUDGET_BYTES: u64 = 64 << 20;
/// What the broker may use beyond its budget: code, runtime, caches, the
/// allocator's slack.
const OVERHEAD_BYTES: u64 = 64 << 20;

/// Sends a Metadata request on a new connection and reads its answer, all
/// within `limit`.
fn metadata_within(addr: &str, limit: Duration) -> bool {
    let started = Instant::now();
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    s.set_read_timeout(Some(limit)).unwrap();
    s.write_all(&frame(&MetadataRequest::default(), 1, 1)).unwrap();
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).is_err() {
        return false;
    }
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).is_ok() && started.elapsed() <= limit
}

fn fetch_everything(topic: &str) -> FetchRequest {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = 0;
    p.partition_max_bytes = i32::MAX;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.to_owned()));
    t.partitions = vec![p];
    let mut f = FetchRequest::default();
    f.replica_id = BrokerId(-1);
    f.max_wait_ms = 0;
    f.min_bytes = 1;
    f.max_bytes = i32::MAX;
    f.topics = vec![t];
    f
}

fn veltrix(args: &[&str]) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Twelve connections asking for 2 GiB responses and never reading them held
/// 3.1-3.6 GiB. Now every response is cut to `fetch_bytes_max` and counted in
/// the memory budget, of which fetches hold at most half; a fetch waits for
/// room instead of allocating. The broker stays within budget plus overhead,
/// a Metadata request is answered within a second throughout, and after the
/// attackers leave an ordinary consumer reads everything.
#[test]
fn fetchers_that_never_read_their_answers_cannot_grow_the_broker_past_its_budget() {
    let _machine = exclusive();
    let broker = Serve::new()
        .env("VELTRIX_LIMITS__IN_FLIGHT_BYTES_MAX", &BUDGET_BYTES.to_string())
        .env("VELTRIX_LIMITS__REQUEST_BYTES_MAX", &(8u64 << 20).to_string())
        .start();
    let addr = broker.addr.clone();
    veltrix(&["topic", "create", "big", "--partitions", "1", "--bootstrap", &addr]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.txt");
    let line = "x".repeat(1000);
    let mut text = String::with_capacity(48 * 1024 * 1001);
    for _ in 0..48 * 1024 {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();
    veltrix(&["produce", "big", "--file", file.to_str().unwrap(), "--bootstrap", &addr]);

    let before = resident_bytes(broker.pid());
    let mut attackers = Vec::new();
    for _ in 0..12 {
        let mut s = TcpStream::connect(&addr).unwrap();
        for id in 0..3 {
            s.write_all(&frame(&fetch_everything("big"), 4, id)).unwrap();
        }
        attackers.push(s);
    }
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        peak = peak.max(resident_bytes(broker.pid()));
        assert!(
            metadata_within(&addr, Duration::from_secs(1)),
            "a Metadata request waited over 1 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let limit = before + BUDGET_BYTES + OVERHEAD_BYTES;
    eprintln!("resident: {} MiB before, {} MiB at the peak", before >> 20, peak >> 20);
    assert!(
        peak <= limit,
        "resident memory peaked at {} MiB, over {} MiB (before the attack: {} MiB)",
        peak >> 20,
        limit >> 20,
        before >> 20
    );
    drop(attackers);
    // Recovered without a restart: a consumer reads the whole topic.
    let out = Command::new(BIN)
        .args([
            "consume",
            "big",
            "--from-beginning",
            "--bootstrap",
            &addr,
            "--timeout-ms",
            "20000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), 48 * 1024);
}
