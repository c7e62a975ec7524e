//! Delays, priorities and per-key order, with simulated storage and time.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use veltrix_log::Log;
use veltrix_log::io::Clock;

use super::tests::{Open, World, ack, acquire, join};
use super::*;
use crate::records::{OwnedRecord, encode_batch};

/// A record to produce: its key and headers.
type Spec<'a> = (Option<&'a str>, Vec<(&'a str, String)>);

/// Appends one batch of records durably.
fn produce(log: &Log, records: &[Spec<'_>], timestamp_ms: i64) {
    let records: Vec<OwnedRecord> = records
        .iter()
        .map(|(key, headers)| OwnedRecord {
            key: key.map(|k| k.as_bytes().to_vec()),
            value: Some(b"v".to_vec()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.clone().into_bytes())))
                .collect(),
            timestamp_ms,
        })
        .collect();
    let mut b = encode_batch(&records);
    let a = log.append(&mut b).unwrap();
    log.wait_durable(a.next_offset).unwrap();
}

fn open_with(settings: &[(&str, &str)]) -> (World, Open) {
    let w = World::new();
    let o = w.open();
    join(&o.share, "a");
    let mut all = vec![
        ("share.auto.offset.reset".to_owned(), "earliest".to_owned()),
        ("veltrix.share.backoff.initial.ms".to_owned(), "0".to_owned()),
    ];
    all.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    o.share.set_settings("g", all).unwrap();
    (w, o)
}

fn offsets(got: &[Acquired]) -> Vec<i64> {
    got.iter().flat_map(|a| a.first..=a.last).collect()
}

#[test]
fn higher_priorities_are_handed_out_first_within_the_window() {
    let (_w, o) = open_with(&[("veltrix.share.priority.enable", "true")]);
    let plain: Vec<_> = (0..30).map(|_| (None, vec![])).collect();
    produce(&o.log, &plain, 1);
    let urgent: Vec<_> = (0..5)
        .map(|_| (None, vec![("veltrix.priority", "9".to_owned())]))
        .collect();
    produce(&o.log, &urgent, 1);
    produce(&o.log, &[(None, vec![("veltrix.priority", "5".to_owned())])], 1);
    assert_eq!(offsets(&acquire(&o, "a", 5)), [30, 31, 32, 33, 34]);
    assert_eq!(offsets(&acquire(&o, "a", 3)), [0, 1, 35], "then 5, then offset order");
}

#[test]
fn a_delayed_record_waits_and_the_records_behind_it_do_not() {
    let (w, o) = open_with(&[("veltrix.share.delay.enable", "true")]);
    let now = w.clock.now_ms();
    produce(&o.log, &[(None, vec![("veltrix.delay.ms", "2000".to_owned())])], now);
    produce(
        &o.log,
        &[(None, vec![]), (None, vec![("veltrix.delay.ms", "soon".to_owned())])],
        now,
    );
    assert_eq!(offsets(&acquire(&o, "a", 10)), [1, 2], "a bad header is ignored");
    assert_eq!(o.share.stats()[0].outcomes.bad_headers, 1);
    w.clock.advance(1_999);
    assert!(acquire(&o, "a", 10).is_empty());
    w.clock.advance(1);
    assert_eq!(offsets(&acquire(&o, "a", 10)), [0]);
}

#[test]
fn a_delay_is_capped() {
    let (w, o) = open_with(&[
        ("veltrix.share.delay.enable", "true"),
        ("veltrix.share.delay.max.ms", "1000"),
    ]);
    let far = (w.clock.now_ms() + 86_400_000).to_string();
    produce(&o.log, &[(None, vec![("veltrix.deliver.at", far)])], w.clock.now_ms());
    assert!(acquire(&o, "a", 10).is_empty());
    w.clock.advance(1_000);
    assert_eq!(offsets(&acquire(&o, "a", 10)), [0]);
}

#[test]
fn a_key_waits_for_its_earlier_record() {
    let (_w, o) = open_with(&[("veltrix.share.key.order.enable", "true")]);
    produce(
        &o.log,
        &[
            (Some("a"), vec![]),
            (Some("a"), vec![]),
            (Some("b"), vec![]),
            (None, vec![]),
        ],
        1,
    );
    assert_eq!(offsets(&acquire(&o, "a", 10)), [0, 2, 3]);
    // Released, the first comes back before the second.
    ack(&o, "a", 0, 0, 2).unwrap();
    assert_eq!(offsets(&acquire(&o, "a", 10)), [0]);
    ack(&o, "a", 0, 0, 1).unwrap();
    assert_eq!(offsets(&acquire(&o, "a", 10)), [1]);
}

#[derive(Debug, Clone)]
enum KeyOp {
    Acquire {
        member: u8,
        max: u8,
    },
    /// Acknowledge the held record `nth` of `member`: release or accept.
    Ack {
        member: u8,
        nth: u8,
        release: bool,
    },
}

fn key_op() -> impl Strategy<Value = KeyOp> {
    prop_oneof![
        (0..3u8, 1..6u8).prop_map(|(member, max)| KeyOp::Acquire { member, max }),
        (0..3u8, 0..8u8, any::<bool>()).prop_map(|(member, nth, release)| KeyOp::Ack { member, nth, release }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// Against a model of per-key order: at any time at most one record per
    /// key is held, it is the key's earliest record not yet accepted, and
    /// each key's records are accepted in the order they were produced.
    #[test]
    fn per_key_order_holds_under_random_releases(
        keys in proptest::collection::vec(0..4u8, 1..40),
        ops in proptest::collection::vec(key_op(), 1..80),
    ) {
        let (_w, o) = open_with(&[
            ("veltrix.share.key.order.enable", "true"),
            ("share.delivery.count.limit", "10"),
        ]);
        join(&o.share, "m1");
        join(&o.share, "m2");
        let names = ["a", "m1", "m2"];
        let key_names: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
        let records: Vec<_> = key_names.iter().map(|k| (Some(k.as_str()), vec![])).collect();
        produce(&o.log, &records, 1);
        let key_of = |offset: i64| keys[offset as usize];
        let mut held: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        let mut accepted: HashMap<u8, Vec<i64>> = HashMap::new();
        let mut done: std::collections::HashSet<i64> = Default::default();
        for op in ops {
            match op {
                KeyOp::Acquire { member, max } => {
                    let got = acquire(&o, names[member as usize], max as usize);
                    held.entry(member).or_default().extend(offsets(&got));
                }
                KeyOp::Ack { member, nth, release } => {
                    let list = held.entry(member).or_default();
                    if list.is_empty() {
                        continue;
                    }
                    let offset = list.remove(nth as usize % list.len());
                    ack(&o, names[member as usize], offset, offset, if release { 2 } else { 1 }).unwrap();
                    if !release {
                        done.insert(offset);
                        accepted.entry(key_of(offset)).or_default().push(offset);
                    }
                }
            }
            let all_held: Vec<i64> = held.values().flatten().copied().collect();
            for &h in &all_held {
                let k = key_of(h);
                prop_assert_eq!(all_held.iter().filter(|&&x| key_of(x) == k).count(), 1, "one record of a key at a time");
                let earliest = (0..keys.len() as i64).find(|o| key_of(*o) == k && !done.contains(o));
                prop_assert_eq!(earliest, Some(h), "the held record is its key's earliest not done");
            }
        }
        for offsets in accepted.values() {
            prop_assert!(offsets.windows(2).all(|w| w[0] < w[1]), "accepted in order: {:?}", offsets);
        }
    }
}
