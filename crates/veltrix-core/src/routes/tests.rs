//! Routes on a broker with simulated storage: where records go, and that
//! each goes exactly once whatever interrupts a step.

use std::collections::BTreeMap;
use std::sync::Arc;

use veltrix_log::Env;
use veltrix_log::sim::{SimClock, SimStorage};

use super::*;
use crate::broker::{Broker, BrokerConfig};
use crate::catalog::TopicConfig;
use crate::records::{OwnedRecord, encode_batch, records_of};

fn broker(storage: &SimStorage, clock: &Arc<SimClock>) -> Broker {
    let env = Env::new(Arc::new(storage.clone()), clock.clone(), 64);
    Broker::open(env, "/data", BrokerConfig::default()).unwrap()
}

fn rule(when: &str, to: &[&str]) -> RuleSpec {
    RuleSpec {
        when: when.to_owned(),
        to: to.iter().map(|t| (*t).to_owned()).collect(),
        headers: Vec::new(),
    }
}

/// `events` (3 partitions) sorted by `value.type` into `critical`
/// (rewards and purchases, 2 partitions), `standard` (clues) and `bulk`
/// (pings); anything else to `other`; failures to `errors`.
fn spec() -> RouteSpec {
    let mut critical = rule(r#"value.type == "reward" || value.type == "purchase""#, &["critical"]);
    critical.headers = vec![("lane".into(), "critical".into())];
    RouteSpec {
        name: "by-type".into(),
        source: "events".into(),
        rules: vec![
            critical,
            rule(r#"value.type == "clue""#, &["standard"]),
            rule(r#"value.type == "ping""#, &["bulk"]),
        ],
        default: vec!["other".into()],
        dead_letter: "errors".into(),
    }
}

fn setup(b: &Broker) {
    b.create_topic("events", Some(3), TopicConfig::default()).unwrap();
    for (t, n) in [
        ("critical", 2),
        ("standard", 1),
        ("bulk", 1),
        ("other", 1),
        ("errors", 1),
    ] {
        b.create_topic(t, Some(n), TopicConfig::default()).unwrap();
    }
}

const TYPES: [&str; 6] = ["reward", "purchase", "clue", "ping", "ping", "quest"];

/// Event `i` of player `i % 7`: its type, or a value that is not JSON
/// every 50th.
fn event(i: u64) -> OwnedRecord {
    let value = if i % 50 == 49 {
        b"not json".to_vec()
    } else {
        format!(r#"{{"type": "{}", "seq": {i}}}"#, TYPES[(i % 6) as usize]).into_bytes()
    };
    OwnedRecord {
        key: Some(format!("player-{}", i % 7).into_bytes()),
        value: Some(value),
        headers: Vec::new(),
        timestamp_ms: 1_700_000_000_000 + i as i64,
    }
}

/// Where event `i` must end up.
fn expected_target(i: u64) -> &'static str {
    if i % 50 == 49 {
        return "errors";
    }
    match TYPES[(i % 6) as usize] {
        "reward" | "purchase" => "critical",
        "clue" => "standard",
        "ping" => "bulk",
        _ => "other",
    }
}

/// Produces events `from..to` to `events`, by key, in batches of 13.
fn produce(b: &Broker, from: u64, to: u64) {
    let mut by_partition: BTreeMap<i32, Vec<OwnedRecord>> = BTreeMap::new();
    for i in from..to {
        let r = event(i);
        let p = (crc32c::crc32c(r.key.as_ref().unwrap()) % 3) as i32;
        by_partition.entry(p).or_default().push(r);
    }
    for (p, records) in by_partition {
        let part = b.partition("events", p).unwrap();
        for chunk in records.chunks(13) {
            let a = part.append_batches(&encode_batch(chunk)).unwrap();
            part.commit(a.next_offset).unwrap();
        }
    }
}

/// Every record of every partition of `topic`.
fn all(b: &Broker, topic: &str) -> Vec<OwnedRecord> {
    let t = b.topic(topic).unwrap();
    let mut out = Vec::new();
    for p in &t.partitions {
        let log = p.log();
        let mut at = log.log_start();
        while at < log.high_watermark() {
            let read = log.read(at, 1 << 20).unwrap();
            let mut rest = &read.records[..];
            while let Some(size) = veltrix_log::batch::peek_size(rest).filter(|s| *s <= rest.len()) {
                out.extend(
                    records_of(&rest[..size], 0, usize::MAX)
                        .unwrap()
                        .into_iter()
                        .map(|(_, r)| r),
                );
                rest = &rest[size..];
            }
            at = read.next_offset;
        }
    }
    out
}

fn seq_of(r: &OwnedRecord) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(r.value.as_ref().unwrap()).unwrap();
    v["seq"].as_u64().unwrap()
}

/// Runs the routes until they have caught up, the clock moving on 100 ms
/// each round (a reader whose step failed waits before it tries again).
fn run_until_idle(b: &Broker, clock: &SimClock) {
    for _ in 0..10_000 {
        if !b.run_routes() && b.routes().iter().all(|r| r.lag_records == 0) {
            return;
        }
        clock.advance(100);
    }
    panic!("routes never caught up");
}

/// Checks that events `0..n` are each in their target exactly once, in
/// per-player order, and nowhere else.
fn assert_exactly_once(b: &Broker, n: u64) {
    let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
    for topic in ["critical", "standard", "bulk", "other"] {
        let records = all(b, topic);
        let mut last: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for r in &records {
            let i = seq_of(r);
            assert!(seen.insert(i, topic).is_none(), "event {i} twice");
            assert_eq!(expected_target(i), topic, "event {i}");
            let k = r.key.clone().unwrap();
            if let Some(prev) = last.insert(k, i) {
                assert!(prev < i, "per-player order in {topic}: {prev} then {i}");
            }
        }
    }
    let errors = all(b, "errors");
    for r in &errors {
        let header = |k: &str| {
            r.headers
                .iter()
                .find(|(hk, _)| hk == k.as_bytes())
                .and_then(|(_, v)| v.clone())
        };
        let reason = String::from_utf8(header(ERROR_HEADER).unwrap()).unwrap();
        assert!(reason.contains("value.type"), "{reason}");
        assert_eq!(header(ROUTE_HEADER).unwrap(), b"by-type");
        let source = String::from_utf8(header(SOURCE_HEADER).unwrap()).unwrap();
        assert!(source.starts_with("events/"), "{source}");
    }
    let dead = errors.len() as u64;
    assert_eq!(dead, (0..n).filter(|i| i % 50 == 49).count() as u64, "dead letters");
    assert_eq!(seen.len() as u64 + dead, n, "every event somewhere");
}

#[test]
fn records_go_to_the_first_rule_that_holds_else_the_default_and_failures_to_dead_letters() {
    let (storage, clock) = (SimStorage::new(), Arc::new(SimClock::new(1_700_000_000_000)));
    let b = broker(&storage, &clock);
    setup(&b);
    b.apply_routes(vec![spec()]).unwrap();
    produce(&b, 0, 600);
    run_until_idle(&b, &clock);
    assert_exactly_once(&b, 600);
    let critical = all(&b, "critical");
    assert!(
        critical
            .iter()
            .all(|r| r.headers.contains(&(b"lane".to_vec(), Some(b"critical".to_vec())))),
        "the rule's headers are added"
    );
    let view = b.route("by-type").unwrap();
    assert_eq!(view.counts.records_in, 600);
    assert_eq!(view.counts.errors, 12);
    assert_eq!(view.counts.out["critical"], critical.len() as u64);
    assert_eq!(view.lag_records, 0);
    // More records later: only they are routed.
    produce(&b, 600, 700);
    assert_eq!(b.route("by-type").unwrap().lag_records, 100);
    run_until_idle(&b, &clock);
    assert_exactly_once(&b, 700);
}

/// A broker that routed 300 events with `spec()` until its first step
/// failed after `appends` appends, as a crash would interrupt it, and then
/// crashed (the disk losing what was not synced); opened again with
/// `after` as its route.
fn crashed_mid_step(appends: usize, after: RouteSpec) -> (Broker, Arc<SimClock>) {
    let (storage, clock) = (SimStorage::new(), Arc::new(SimClock::new(1_700_000_000_000)));
    let b = broker(&storage, &clock);
    setup(&b);
    b.apply_routes(vec![spec()]).unwrap();
    produce(&b, 0, 300);
    *lock(&b.router().appends_left) = Some(appends);
    b.run_routes();
    storage.crash(false, appends as u64);
    drop(b);
    let b = broker(&storage, &clock);
    b.apply_routes(vec![after]).unwrap();
    (b, clock)
}

#[test]
fn a_step_interrupted_after_any_append_and_a_crash_leave_each_record_once() {
    for appends in 0..6 {
        let (b, clock) = crashed_mid_step(appends, spec());
        run_until_idle(&b, &clock);
        assert_exactly_once(&b, 300);
        // And a step interrupted without a crash is taken again too.
        produce(&b, 300, 400);
        *lock(&b.router().appends_left) = Some(appends);
        b.run_routes();
        *lock(&b.router().appends_left) = None;
        // A reader whose step failed waits before it tries again; the
        // others go on.
        let failing: Vec<(String, i32)> = lock(&b.router().failing).keys().cloned().collect();
        assert!(!failing.is_empty());
        let next = |b: &Broker| -> Vec<i64> {
            let view = b.route("by-type").unwrap();
            failing.iter().map(|(_, p)| view.partitions[*p as usize].next).collect()
        };
        let stuck_at = next(&b);
        b.run_routes();
        assert_eq!(next(&b), stuck_at, "tried again at once");
        clock.advance(1_000);
        b.run_routes();
        assert!(
            next(&b).iter().zip(&stuck_at).all(|(now, before)| now > before),
            "not tried again after its wait"
        );
        assert!(lock(&b.router().failing).is_empty());
        run_until_idle(&b, &clock);
        assert_exactly_once(&b, 400);
    }
}

#[test]
fn progress_survives_a_restart_and_a_route_no_longer_declared_is_forgotten() {
    let (storage, clock) = (SimStorage::new(), Arc::new(SimClock::new(1_700_000_000_000)));
    let b = broker(&storage, &clock);
    setup(&b);
    b.apply_routes(vec![spec()]).unwrap();
    produce(&b, 0, 200);
    run_until_idle(&b, &clock);
    b.close();
    drop(b);
    let b = broker(&storage, &clock);
    b.apply_routes(vec![spec()]).unwrap();
    run_until_idle(&b, &clock);
    assert_exactly_once(&b, 200);
    b.apply_routes(Vec::new()).unwrap();
    assert!(lock(&b.router().readers).is_empty());
    assert!(b.routes().is_empty());
}

#[test]
fn routes_naming_missing_topics_or_bad_expressions_or_making_a_cycle_are_refused() {
    let (storage, clock) = (SimStorage::new(), Arc::new(SimClock::new(1_700_000_000_000)));
    let b = broker(&storage, &clock);
    setup(&b);
    let mut missing = spec();
    missing.rules[1].to = vec!["nowhere".into()];
    let e = b.apply_routes(vec![missing]).unwrap_err().to_string();
    assert!(e.contains("target topic `nowhere` does not exist"), "{e}");
    let mut bad = spec();
    bad.rules[0].when = "value.type ==".into();
    let e = b.apply_routes(vec![bad]).unwrap_err().to_string();
    assert!(e.contains("rule 1") && e.contains("1:"), "{e}");
    let back = RouteSpec {
        name: "back".into(),
        source: "critical".into(),
        rules: vec![rule("true", &["events"])],
        default: Vec::new(),
        dead_letter: "errors".into(),
    };
    let e = b.apply_routes(vec![spec(), back]).unwrap_err().to_string();
    assert!(e.contains("cycle"), "{e}");
    assert!(b.routes().is_empty(), "nothing applied");
}

#[test]
fn a_record_too_large_for_its_target_is_a_dead_letter_and_the_route_goes_on() {
    let (storage, clock) = (SimStorage::new(), Arc::new(SimClock::new(1_700_000_000_000)));
    let b = broker(&storage, &clock);
    b.create_topic("events", Some(3), TopicConfig::default()).unwrap();
    let small = TopicConfig {
        batch_bytes_max: Some(2_048),
        ..TopicConfig::default()
    };
    b.create_topic("critical", Some(2), small).unwrap();
    for (t, n) in [("standard", 1), ("bulk", 1), ("other", 1), ("errors", 1)] {
        b.create_topic(t, Some(n), TopicConfig::default()).unwrap();
    }
    b.apply_routes(vec![spec()]).unwrap();
    let big = OwnedRecord {
        key: Some(b"player-1".to_vec()),
        value: Some(format!(r#"{{"type": "reward", "seq": 1000, "pad": "{}"}}"#, "x".repeat(4_000)).into_bytes()),
        headers: Vec::new(),
        timestamp_ms: 1_700_000_000_000,
    };
    let p = b.partition("events", 0).unwrap();
    let a = p.append_batches(&encode_batch(&[big, event(0)])).unwrap();
    p.commit(a.next_offset).unwrap();
    run_until_idle(&b, &clock);
    let letters = all(&b, "errors");
    assert_eq!(letters.len(), 1);
    let reason = letters[0]
        .headers
        .iter()
        .find(|(k, _)| k == ERROR_HEADER.as_bytes())
        .and_then(|(_, v)| v.clone())
        .unwrap();
    let reason = String::from_utf8(reason).unwrap();
    assert!(reason.contains("does not fit a batch of topic `critical`"), "{reason}");
    // The record after it was routed.
    assert_eq!(all(&b, "critical").iter().map(seq_of).collect::<Vec<_>>(), [0]);
    assert_eq!(b.route("by-type").unwrap().counts.errors, 1);
}

/// `spec()` with the critical and standard lanes swapped.
fn swapped() -> RouteSpec {
    let mut s = spec();
    s.rules[0].to = vec!["standard".into()];
    s.rules[1].to = vec!["critical".into()];
    s
}

/// Every event of `0..n` somewhere (targets or dead letters), and how many
/// are in more than one place.
fn everywhere(b: &Broker, n: u64) -> u64 {
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for topic in ["critical", "standard", "bulk", "other"] {
        for r in all(b, topic) {
            *seen.entry(seq_of(&r)).or_default() += 1;
        }
    }
    let letters = all(b, "errors").len() as u64;
    let expected_letters = (0..n).filter(|i| i % 50 == 49).count() as u64;
    assert!(letters >= expected_letters, "{letters} letters");
    let sortable: Vec<u64> = (0..n).filter(|i| i % 50 != 49).collect();
    for i in &sortable {
        assert!(seen.contains_key(i), "event {i} lost");
    }
    seen.values().filter(|c| **c > 1).count() as u64 + (letters - expected_letters)
}

#[test]
fn rules_changed_across_a_clean_restart_apply_to_new_records_and_take_no_step_again() {
    let (storage, clock) = (SimStorage::new(), Arc::new(SimClock::new(1_700_000_000_000)));
    let b = broker(&storage, &clock);
    setup(&b);
    b.apply_routes(vec![spec()]).unwrap();
    produce(&b, 0, 300);
    run_until_idle(&b, &clock);
    b.close();
    drop(b);
    let b = broker(&storage, &clock);
    b.apply_routes(vec![swapped()]).unwrap();
    produce(&b, 300, 400);
    run_until_idle(&b, &clock);
    assert_eq!(everywhere(&b, 400), 0, "no record twice");
    // The new records went by the new rules.
    let standard: Vec<u64> = all(&b, "standard").iter().map(seq_of).filter(|i| *i >= 300).collect();
    assert!(
        standard
            .iter()
            .all(|i| matches!(TYPES[(*i % 6) as usize], "reward" | "purchase")),
        "{standard:?}"
    );
    assert_eq!(
        b.metrics()
            .routes
            .steps_retaken_anew
            .with_label_values(&["by-type"])
            .get(),
        0
    );
}

#[test]
fn rules_changed_across_a_crash_mid_step_lose_nothing() {
    for appends in 0..4 {
        let (b, clock) = crashed_mid_step(appends, swapped());
        run_until_idle(&b, &clock);
        // Nothing lost; a step that cannot be taken again as it was is
        // written anew (its records perhaps twice), and counted.
        let twice = everywhere(&b, 300);
        let anew = b
            .metrics()
            .routes
            .steps_retaken_anew
            .with_label_values(&["by-type"])
            .get();
        assert!(anew > 0, "appends {appends}: the steps were planned under other rules");
        assert!(twice <= 3 * super::STEP_RECORDS_MAX as u64, "{twice}");
    }
}

#[test]
fn sequences_wrap_to_zero_after_the_largest() {
    assert_eq!(super::run::next_sequence(5, 10), 15);
    assert_eq!(super::run::next_sequence(i32::MAX - 1, 1), i32::MAX);
    assert_eq!(super::run::next_sequence(i32::MAX, 1), 0);
    assert_eq!(super::run::next_sequence(i32::MAX - 2, 10), 7);
}

#[test]
fn a_target_named_twice_is_refused() {
    let mut twice = spec();
    twice.rules[2].to = vec!["bulk".into(), "bulk".into()];
    let e = CompiledRoute::compile(twice).unwrap_err().to_string();
    assert!(e.contains("named twice"), "{e}");
}
