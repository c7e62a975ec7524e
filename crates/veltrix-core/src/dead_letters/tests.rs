//! The dead-letter writer on a broker with simulated storage: letters with
//! their story, exactly once across a crash between the copy and the mark.

use std::collections::HashMap;
use std::sync::Arc;

use veltrix_log::Env;
use veltrix_log::sim::{SimClock, SimStorage};

use super::*;
use crate::broker::BrokerConfig;
use crate::share::settings::DEAD_LETTER_TOPIC_KEY;
use crate::share::{AckBatch, PartitionAcks, ShareHeartbeat};

const GROUP: &str = "g";

fn broker(storage: &SimStorage) -> Broker {
    let env = Env::new(
        Arc::new(storage.clone()),
        Arc::new(SimClock::new(1_700_000_000_000)),
        64,
    );
    Broker::open(env, "/data", BrokerConfig::default()).unwrap()
}

/// Topic `orders` (2 partitions) with `n` records in partition 1, each with
/// a key, a value and a header; group `g` reading it with a dead-letter
/// topic, member `m` joined.
fn setup(b: &Broker, n: u8, dlq: &str) {
    b.create_topic("orders", Some(2), TopicConfig::default()).unwrap();
    let records: Vec<OwnedRecord> = (0..n)
        .map(|i| OwnedRecord {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            headers: vec![(b"trace".to_vec(), Some(vec![i]))],
            timestamp_ms: 1_600_000_000_000 + i64::from(i),
        })
        .collect();
    if !records.is_empty() {
        let p = b.partition("orders", 1).unwrap();
        let a = p.append_batches(&encode_batch(&records)).unwrap();
        p.commit(a.next_offset).unwrap();
    }
    let set = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    b.share()
        .set_settings(
            GROUP,
            vec![
                set("share.auto.offset.reset", "earliest"),
                set("veltrix.share.backoff.initial.ms", "0"),
                set(DEAD_LETTER_TOPIC_KEY, dlq),
            ],
        )
        .unwrap();
    join(b);
}

fn join(b: &Broker) {
    b.share()
        .heartbeat(
            ShareHeartbeat {
                group: GROUP.into(),
                member_id: "m".into(),
                member_epoch: 0,
                subscribed: Some(vec!["orders".into()]),
                client_id: "billing-7".into(),
                client_host: "127.0.0.1".into(),
            },
            &|name| b.topic_meta(name),
        )
        .unwrap();
}

/// Acquires everything in partition 1 and rejects `offsets`, accepting the rest.
fn reject(b: &Broker, offsets: &[i64]) {
    let t = b.topic("orders").unwrap();
    let p = t.partition(1).unwrap();
    loop {
        let got = b.share().acquire(GROUP, "m", t.id, 1, p.log(), 500, 1 << 20).unwrap();
        let (Some(first), Some(last)) = (
            got.acquired.iter().map(|a| a.first).min(),
            got.acquired.iter().map(|a| a.last).max(),
        ) else {
            return;
        };
        let types: Vec<i8> = (first..=last)
            .map(|o| if offsets.contains(&o) { 3 } else { 1 })
            .collect();
        let acks = [PartitionAcks {
            topic: t.id,
            partition: 1,
            batches: vec![AckBatch { first, last, types }],
        }];
        for r in b.share().acknowledge(GROUP, "m", &acks) {
            r.unwrap();
        }
    }
}

/// Every letter in the dead-letter topic: (partition, record).
fn letters(b: &Broker, name: &str) -> Vec<(i32, OwnedRecord)> {
    let Some(t) = b.topic(name) else { return Vec::new() };
    let mut out = Vec::new();
    for p in &t.partitions {
        let log = p.log();
        let mut at = log.log_start();
        while at < log.high_watermark() {
            let read = log.read(at, 1 << 20).unwrap();
            let mut rest = &read.records[..];
            while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
                let h = batch::parse_fixed(&rest[..size]).unwrap();
                for o in h.base_offset..=h.last_offset() {
                    if let Some(r) = record_at(&rest[..size], o).unwrap() {
                        out.push((p.index, r));
                    }
                }
                rest = &rest[size..];
            }
            at = read.next_offset;
        }
    }
    out
}

fn headers(r: &OwnedRecord) -> HashMap<String, String> {
    r.headers
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

fn start(b: &Broker) -> i64 {
    let id = b.topic("orders").unwrap().id;
    b.share()
        .stats()
        .into_iter()
        .find(|s| s.key.topic == id && s.key.partition == 1)
        .unwrap()
        .summary
        .start
}

#[test]
fn a_rejected_record_gets_one_letter_with_its_story_and_holds_the_start_until_then() {
    let storage = SimStorage::new();
    let b = broker(&storage);
    setup(&b, 4, "dlq.orders");
    reject(&b, &[1, 2]);
    assert_eq!(start(&b), 1, "the start waits for the letters");
    let round = b.write_dead_letters();
    assert_eq!(
        round,
        DeadLetterRound {
            written: 2,
            skipped: 0,
            failed: 0
        }
    );
    assert_eq!(start(&b), 4);
    let dlq = b.topic("dlq.orders").expect("created on demand");
    assert!(dlq.dedup.is_some(), "created with a duplicate window on the letter id");
    let got = letters(&b, "dlq.orders");
    assert_eq!(got.len(), 2);
    let (partition, letter) = &got[0];
    assert_eq!(*partition, 1 % dlq.partitions.len() as i32);
    assert_eq!(letter.key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(letter.value.as_deref(), Some(&b"v1"[..]));
    let h = headers(letter);
    assert_eq!(h["trace"], "\u{1}", "the record's own headers are copied");
    assert_eq!(h["__dlq.errors.topic"], "orders");
    assert_eq!(h["__dlq.errors.partition"], "1");
    assert_eq!(h["__dlq.errors.offset"], "1");
    assert_eq!(h["__dlq.errors.group"], GROUP);
    assert_eq!(h["__dlq.errors.delivery.count"], "1");
    assert!(h["__dlq.errors.message"].contains("rejected"), "{h:?}");
    assert_eq!(h["veltrix.dlq.reason"], "rejected");
    assert_eq!(h["veltrix.dlq.original.timestamp"], "1600000000001");
    assert_eq!(h["veltrix.dlq.first.delivery.ms"], "1700000000000");
    assert_eq!(h["veltrix.dlq.last.member.id"], "m");
    assert_eq!(h["veltrix.dlq.last.client.id"], "billing-7");
    assert_eq!(headers(&got[1].1)["__dlq.errors.offset"], "2");
    // Nothing more to write.
    assert_eq!(b.write_dead_letters(), DeadLetterRound::default());
}

#[test]
fn a_crash_between_the_copy_and_the_mark_leaves_exactly_one_letter() {
    let storage = SimStorage::new();
    let b = broker(&storage);
    setup(&b, 3, "dlq.orders");
    reject(&b, &[0, 2]);
    // The copy is made and durable; the broker dies before marking it.
    let work = b.share().dead_letter_work(DEAD_LETTERS_PER_ROUND_MAX);
    assert_eq!(work.len(), 1);
    let done = b.copy_letters(&work[0], &mut DeadLetterRound::default()).unwrap();
    assert_eq!(done, vec![0, 2]);
    drop(b);
    storage.crash(true, 7);
    let b = broker(&storage);
    assert_eq!(start(&b), 0, "the records are still archiving after the restart");
    let round = b.write_dead_letters();
    assert_eq!(round.written, 2, "written again, and dropped by the window");
    let got = letters(&b, "dlq.orders");
    let offsets: Vec<String> = got
        .iter()
        .map(|(_, r)| headers(r)["__dlq.errors.offset"].clone())
        .collect();
    assert_eq!(offsets, ["0", "2"], "one letter per record");
    assert_eq!(start(&b), 3);
}

#[test]
fn records_at_the_delivery_limit_get_letters_saying_so() {
    let storage = SimStorage::new();
    let b = broker(&storage);
    setup(&b, 1, "dlq.orders");
    b.share()
        .set_settings(
            GROUP,
            vec![
                ("share.auto.offset.reset".into(), "earliest".into()),
                ("veltrix.share.backoff.initial.ms".into(), "0".into()),
                ("share.delivery.count.limit".into(), "2".into()),
                (DEAD_LETTER_TOPIC_KEY.into(), "dlq.orders".into()),
            ],
        )
        .unwrap();
    let t = b.topic("orders").unwrap();
    let p = t.partition(1).unwrap();
    for _ in 0..2 {
        let got = b.share().acquire(GROUP, "m", t.id, 1, p.log(), 10, 1 << 20).unwrap();
        assert_eq!(got.acquired.len(), 1);
        let release = [PartitionAcks {
            topic: t.id,
            partition: 1,
            batches: vec![AckBatch {
                first: 0,
                last: 0,
                types: vec![2],
            }],
        }];
        b.share().acknowledge(GROUP, "m", &release).remove(0).unwrap();
    }
    b.write_dead_letters();
    let got = letters(&b, "dlq.orders");
    assert_eq!(got.len(), 1);
    let h = headers(&got[0].1);
    assert_eq!(h["veltrix.dlq.reason"], "delivery_limit");
    assert_eq!(h["__dlq.errors.delivery.count"], "2");
}

#[test]
fn without_a_topic_it_may_not_create_the_records_wait_and_are_written_once_it_exists() {
    let storage = SimStorage::new();
    let clock = Arc::new(SimClock::new(1_700_000_000_000));
    let env = Env::new(Arc::new(storage.clone()), clock.clone(), 64);
    let mut config = BrokerConfig::default();
    config.share.dead_letter_topics_auto_create = false;
    let b = Broker::open(env.clone(), "/data", config).unwrap();
    setup(&b, 2, "dlq.orders");
    reject(&b, &[0]);
    let round = b.write_dead_letters();
    assert_eq!(round.failed, 1);
    assert!(b.topic("dlq.orders").is_none());
    assert_eq!(start(&b), 0, "nothing is lost: the record waits");
    b.create_topic("dlq.orders", Some(1), TopicConfig::default()).unwrap();
    // Tried again after the retry delay.
    assert_eq!(
        b.write_dead_letters(),
        DeadLetterRound::default(),
        "not before the delay"
    );
    clock.advance(RETRY_MS as u64);
    assert_eq!(b.write_dead_letters().written, 1);
    assert_eq!(letters(&b, "dlq.orders").len(), 1);
    assert_eq!(start(&b), 2);
}

#[test]
fn a_group_without_a_dead_letter_topic_archives_at_once() {
    let storage = SimStorage::new();
    let b = broker(&storage);
    setup(&b, 2, "");
    reject(&b, &[0]);
    assert_eq!(start(&b), 2);
    assert_eq!(b.write_dead_letters(), DeadLetterRound::default());
}

#[test]
fn a_dead_letter_topic_must_start_with_the_prefix() {
    let storage = SimStorage::new();
    let b = broker(&storage);
    let err = b
        .share()
        .set_settings(GROUP, vec![(DEAD_LETTER_TOPIC_KEY.into(), "payments".into())])
        .unwrap_err();
    assert!(err.to_string().contains("dlq.payments"), "{err}");
    let err = b
        .share()
        .set_settings(GROUP, vec![(DEAD_LETTER_TOPIC_KEY.into(), "dlq.a b".into())])
        .unwrap_err();
    assert!(err.to_string().contains("only ASCII"), "{err}");
}

#[test]
fn a_group_reading_its_own_dead_letter_topic_writes_no_letters_there() {
    let storage = SimStorage::new();
    let b = broker(&storage);
    b.create_topic("dlq.orders", Some(1), TopicConfig::default()).unwrap();
    let p = b.partition("dlq.orders", 0).unwrap();
    let one = OwnedRecord {
        value: Some(b"x".to_vec()),
        ..OwnedRecord::default()
    };
    let a = p.append_batches(&encode_batch(&[one])).unwrap();
    p.commit(a.next_offset).unwrap();
    let set = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    b.share()
        .set_settings(
            GROUP,
            vec![
                set("share.auto.offset.reset", "earliest"),
                set(DEAD_LETTER_TOPIC_KEY, "dlq.orders"),
            ],
        )
        .unwrap();
    b.share()
        .heartbeat(
            ShareHeartbeat {
                group: GROUP.into(),
                member_id: "m".into(),
                member_epoch: 0,
                subscribed: Some(vec!["dlq.orders".into()]),
                client_id: "c".into(),
                client_host: "h".into(),
            },
            &|name| b.topic_meta(name),
        )
        .unwrap();
    let t = b.topic("dlq.orders").unwrap();
    b.share().acquire(GROUP, "m", t.id, 0, p.log(), 10, 1 << 20).unwrap();
    let acks = [PartitionAcks {
        topic: t.id,
        partition: 0,
        batches: vec![AckBatch {
            first: 0,
            last: 0,
            types: vec![3],
        }],
    }];
    b.share().acknowledge(GROUP, "m", &acks).remove(0).unwrap();
    assert_eq!(
        b.write_dead_letters(),
        DeadLetterRound {
            written: 0,
            skipped: 1,
            failed: 0
        }
    );
    assert_eq!(p.log().high_watermark(), 1, "nothing written back into it");
}

/// Found by the client test: with exactly `DEAD_LETTERS_PER_ROUND_MAX`
/// letters owed by the partitions before one more, the last two were never
/// written (the round filled up on the last partition it looked at and did
/// not ask for another look).
#[test]
fn letters_past_a_full_round_are_written_in_the_next() {
    let storage = SimStorage::new();
    let b = broker(&storage);
    setup(&b, 0, "dlq.orders");
    let p = b.partition("orders", 1).unwrap();
    let n = DEAD_LETTERS_PER_ROUND_MAX as i64 + 2;
    let records: Vec<OwnedRecord> = (0..n)
        .map(|i| OwnedRecord {
            value: Some(i.to_string().into_bytes()),
            ..OwnedRecord::default()
        })
        .collect();
    let a = p.append_batches(&encode_batch(&records)).unwrap();
    p.commit(a.next_offset).unwrap();
    reject(&b, &(0..n).collect::<Vec<_>>());
    let first = b.write_dead_letters();
    assert_eq!(first.written, DEAD_LETTERS_PER_ROUND_MAX as u64);
    assert_eq!(b.write_dead_letters().written, 2, "the rest in the next round");
    assert_eq!(start(&b), n);
    assert_eq!(letters(&b, "dlq.orders").len() as i64, n);
}
