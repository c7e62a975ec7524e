//! Redrives on a broker with simulated storage: what moves, where, once.

use std::sync::Arc;

use veltrix_log::Env;
use veltrix_log::io::Clock;
use veltrix_log::sim::{SimClock, SimStorage};

use super::*;
use crate::broker::{Broker, BrokerConfig};
use crate::catalog::TopicConfig;
use crate::records::{OwnedRecord, encode_batch, record_at};

fn broker(storage: &SimStorage, clock: &Arc<SimClock>) -> Broker {
    let env = Env::new(Arc::new(storage.clone()), clock.clone(), 64);
    Broker::open(env, "/data", BrokerConfig::default()).unwrap()
}

/// A letter as the dead-letter writer makes it.
fn letter(i: i64, reason: &str) -> OwnedRecord {
    let h = |k: &str, v: String| (k.as_bytes().to_vec(), Some(v.into_bytes()));
    OwnedRecord {
        key: Some(format!("k{i}").into_bytes()),
        value: Some(format!("v{i}").into_bytes()),
        headers: vec![
            h("trace", format!("t{i}")),
            h("__dlq.errors.topic", "orders".into()),
            h("__dlq.errors.partition", (i % 2).to_string()),
            h("__dlq.errors.offset", i.to_string()),
            h("__dlq.errors.group", "g".into()),
            h("veltrix.dlq.reason", reason.into()),
        ],
        timestamp_ms: 1_700_000_000_000 + i,
    }
}

/// `orders` (2 partitions) and `dlq.orders` (1) holding `n` letters, every
/// third one a lock timeout, the others rejected.
fn setup(b: &Broker, n: i64) {
    b.create_topic("orders", Some(2), TopicConfig::default()).unwrap();
    b.create_topic("dlq.orders", Some(1), TopicConfig::default()).unwrap();
    let letters: Vec<OwnedRecord> = (0..n)
        .map(|i| letter(i, if i % 3 == 0 { "lock_timeout" } else { "rejected" }))
        .collect();
    let p = b.partition("dlq.orders", 0).unwrap();
    for chunk in letters.chunks(7) {
        let a = p.append_batches(&encode_batch(chunk)).unwrap();
        p.commit(a.next_offset).unwrap();
    }
}

/// Every record of `topic`'s partition `p`.
fn records(b: &Broker, topic: &str, p: i32) -> Vec<OwnedRecord> {
    let part = b.partition(topic, p).unwrap();
    let log = part.log();
    let mut out = Vec::new();
    let mut at = log.log_start();
    while at < log.high_watermark() {
        let read = log.read(at, 1 << 20).unwrap();
        let mut rest = &read.records[..];
        while let Some(size) = veltrix_log::batch::peek_size(rest).filter(|s| *s <= rest.len()) {
            let h = veltrix_log::batch::parse_fixed(&rest[..size]).unwrap();
            for o in h.base_offset..=h.last_offset() {
                out.extend(record_at(&rest[..size], o).unwrap());
            }
            rest = &rest[size..];
        }
        at = read.next_offset;
    }
    out
}

fn values(records: &[OwnedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect()
}

fn run_to_end(b: &Broker, clock: &SimClock, id: u64) -> RedriveJob {
    for _ in 0..10_000 {
        clock.advance(100);
        b.run_redrives();
        let job = b.redriver().job(id).unwrap();
        if job.state != JobState::Running {
            return job;
        }
    }
    panic!("the redrive did not finish");
}

fn spec(reason: Option<&str>) -> RedriveSpec {
    RedriveSpec {
        topic: "dlq.orders".into(),
        filter: LetterFilter {
            reason: reason.map(str::to_owned),
            ..LetterFilter::default()
        },
        records_per_second: Some(100),
        ..RedriveSpec::default()
    }
}

#[test]
fn a_redrive_moves_the_selected_letters_back_once_and_a_second_moves_nothing() {
    let storage = SimStorage::new();
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let b = broker(&storage, &clock);
    setup(&b, 60);
    let plan = b.plan_redrive(&spec(Some("rejected"))).unwrap();
    assert_eq!((plan.selected, plan.already_redriven, plan.scanned), (40, 0, 60));
    assert_eq!(plan.moves["orders"][&0] + plan.moves["orders"][&1], 40);
    assert_eq!(records(&b, "orders", 0).len(), 0, "a plan moves nothing");

    let job = b.start_redrive(spec(Some("rejected"))).unwrap();
    let done = run_to_end(&b, &clock, job.id);
    assert_eq!(done.state, JobState::Done);
    assert_eq!((done.moved, done.skipped), (40, 20));
    let p0 = records(&b, "orders", 0);
    let p1 = records(&b, "orders", 1);
    assert_eq!(p0.len() + p1.len(), 40);
    // Each to the partition it came from, in order, without the letter's headers.
    let want0: Vec<String> = (0..60)
        .filter(|i| i % 2 == 0 && i % 3 != 0)
        .map(|i| format!("v{i}"))
        .collect();
    assert_eq!(values(&p0), want0);
    let r = &p1[0];
    assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
    let keys: Vec<&[u8]> = r.headers.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [&b"trace"[..], b"veltrix.redrive.from"]);

    let again = b.plan_redrive(&spec(Some("rejected"))).unwrap();
    assert_eq!((again.selected, again.already_redriven), (40, 40));
    assert!(again.moves.is_empty());
    let job = b.start_redrive(spec(None)).unwrap();
    let done = run_to_end(&b, &clock, job.id);
    assert_eq!(done.moved, 20, "only the letters not redriven before");
    assert_eq!(records(&b, "orders", 0).len() + records(&b, "orders", 1).len(), 60);
}

#[test]
fn a_step_whose_progress_was_lost_moves_nothing_twice() {
    let storage = SimStorage::new();
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let b = broker(&storage, &clock);
    setup(&b, 30);
    let mut job = b.start_redrive(spec(None)).unwrap();
    let before_state = super::lock(&b.redriver().state).clone();
    let before_job = job.clone();
    b.redrive_step(&mut job, clock.now_ms()).unwrap();
    let moved = job.moved;
    assert!(moved > 0);
    // The step's append is durable, its progress record lost (a crash in
    // between): the job takes the same step again.
    *super::lock(&b.redriver().state) = before_state;
    let mut again = before_job;
    b.redrive_step(&mut again, clock.now_ms()).unwrap();
    assert_eq!(again.moved, moved);
    let total = records(&b, "orders", 0).len() + records(&b, "orders", 1).len();
    assert_eq!(total as u64, moved, "the log recognised the step's batch");
}

#[test]
fn a_redrive_survives_a_crash_and_finishes_without_duplicates() {
    let storage = SimStorage::new();
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let b = broker(&storage, &clock);
    setup(&b, 50);
    let job = b.start_redrive(spec(None)).unwrap();
    for _ in 0..3 {
        clock.advance(100);
        b.run_redrives();
    }
    assert_eq!(b.redriver().job(job.id).unwrap().state, JobState::Running);
    drop(b);
    storage.crash(true, 11);
    let b = broker(&storage, &clock);
    let done = run_to_end(&b, &clock, job.id);
    assert_eq!(done.moved, 50);
    let mut all = values(&records(&b, "orders", 0));
    all.extend(values(&records(&b, "orders", 1)));
    all.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn a_redrive_keeps_its_rate() {
    let storage = SimStorage::new();
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let b = broker(&storage, &clock);
    setup(&b, 100);
    // 20 records a second, in steps of 2.
    let job = b
        .start_redrive(RedriveSpec {
            records_per_second: Some(20),
            ..spec(None)
        })
        .unwrap();
    for _ in 0..10 {
        clock.advance(100);
        b.run_redrives();
    }
    let moved = b.redriver().job(job.id).unwrap().moved;
    assert!((18..=22).contains(&moved), "{moved} in one second");
}

#[test]
fn refused_redrives_say_why() {
    let storage = SimStorage::new();
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let b = broker(&storage, &clock);
    setup(&b, 3);
    assert!(
        b.start_redrive(RedriveSpec {
            topic: "nope".into(),
            ..spec(None)
        })
        .is_err()
    );
    let into_itself = RedriveSpec {
        target: Some("dlq.orders".into()),
        ..spec(None)
    };
    assert!(
        b.start_redrive(into_itself)
            .unwrap_err()
            .to_string()
            .contains("cannot write into")
    );
    let too_fast = RedriveSpec {
        records_per_second: Some(RATE_RECORDS_PER_SECOND_MAX + 1),
        ..spec(None)
    };
    assert!(b.start_redrive(too_fast).is_err());
    b.start_redrive(spec(None)).unwrap();
    assert!(
        b.start_redrive(spec(None))
            .unwrap_err()
            .to_string()
            .contains("still running")
    );
}

#[test]
fn range_sets_merge_and_trim() {
    let mut r = RangeSet::default();
    r.insert(5, 7);
    r.insert(9, 9);
    r.insert(8, 8);
    assert_eq!(r.ranges().collect::<Vec<_>>(), [(5, 9)]);
    r.insert(1, 2);
    r.insert(20, 30);
    r.insert(3, 25);
    assert_eq!(r.ranges().collect::<Vec<_>>(), [(1, 30)]);
    assert!(r.contains(1) && r.contains(30) && !r.contains(0) && !r.contains(31));
    r.trim_below(10);
    assert_eq!(r.ranges().collect::<Vec<_>>(), [(10, 30)]);
}
