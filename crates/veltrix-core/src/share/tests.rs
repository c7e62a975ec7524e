//! Share groups with simulated storage and time: acquisition, acknowledgement,
//! lock timeouts, sessions, and crashes (the state store on simulated disk).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use veltrix_log::batch::build;
use veltrix_log::io::Clock;
use veltrix_log::sim::{SimClock, SimStorage};
use veltrix_log::{Env, Log, LogConfig};

use super::*;

const TOPIC: TopicId = [7; 16];

pub(super) struct World {
    storage: SimStorage,
    pub(super) clock: Arc<SimClock>,
    pub(super) config: ShareConfig,
}

pub(super) struct Open {
    pub(super) share: ShareCoordinator,
    pub(super) log: Log,
}

impl World {
    pub(super) fn new() -> World {
        let mut config = ShareConfig::default();
        config.defaults.auto_offset_reset = AutoOffsetReset::Earliest;
        // Records come back at once unless a test asks for a backoff.
        config.defaults.backoff_initial_ms = 0;
        World {
            storage: SimStorage::new(),
            clock: Arc::new(SimClock::new(1_700_000_000_000)),
            config,
        }
    }

    fn env(&self) -> Arc<Env> {
        Env::new(Arc::new(self.storage.clone()), self.clock.clone(), 16)
    }

    pub(super) fn open(&self) -> Open {
        let env = self.env();
        let store = LogShareStore::open(env.clone(), Path::new("/data/share")).unwrap();
        let share = ShareCoordinator::open(env.clone(), self.config, Box::new(store), &|_| true).unwrap();
        let log = Log::open(env, Path::new("/data/logs/t/0"), LogConfig::default()).unwrap();
        Open { share, log }
    }

    pub(super) fn crash(&self, seed: u64) {
        self.storage.crash(true, seed);
    }
}

/// Appends `batches` batches of `per` records each, durably.
pub(super) fn produce(log: &Log, batches: usize, per: i32) {
    for _ in 0..batches {
        let mut b = build::batch(
            build::Spec {
                record_count: per,
                ..build::Spec::default()
            },
            200,
            1,
        );
        let a = log.append(&mut b).unwrap();
        log.wait_durable(a.next_offset).unwrap();
    }
}

pub(super) fn join(share: &ShareCoordinator, member: &str) -> ShareHeartbeatReply {
    share
        .heartbeat(
            ShareHeartbeat {
                group: "g".into(),
                member_id: member.into(),
                member_epoch: 0,
                subscribed: Some(vec!["t".into()]),
                ..ShareHeartbeat::default()
            },
            &|name| {
                (name == "t").then_some(crate::groups::TopicMeta {
                    id: TOPIC,
                    partitions: 1,
                })
            },
        )
        .unwrap()
}

/// A world opened with `batches` batches of `per` records in the log and
/// member `a` joined to group `g`: where most tests start.
pub(super) fn opened_with_member(batches: usize, per: i32) -> (World, Open) {
    let w = World::new();
    let o = w.open();
    produce(&o.log, batches, per);
    join(&o.share, "a");
    (w, o)
}

pub(super) fn acquire(o: &Open, member: &str, max: usize) -> Vec<Acquired> {
    o.share
        .acquire("g", member, TOPIC, 0, &o.log, max, 1 << 20)
        .unwrap()
        .acquired
}

pub(super) fn ack(o: &Open, member: &str, first: i64, last: i64, t: i8) -> Result<(), ShareError> {
    o.share
        .acknowledge(
            "g",
            member,
            &[PartitionAcks {
                topic: TOPIC,
                partition: 0,
                batches: vec![AckBatch {
                    first,
                    last,
                    types: vec![t],
                }],
            }],
        )
        .remove(0)
}

fn summary(o: &Open) -> Summary {
    o.share.stats().first().map(|s| s.summary).unwrap_or_default()
}

#[test]
fn records_are_acquired_by_one_member_at_a_time_and_accepted_once() {
    let (_w, o) = opened_with_member(3, 10);
    join(&o.share, "b");
    let a = acquire(&o, "a", 15);
    // Rounded up to the end of the batch holding the 15th record.
    assert_eq!(
        a,
        vec![Acquired {
            first: 0,
            last: 19,
            deliveries: 1
        }]
    );
    let b = acquire(&o, "b", 100);
    assert_eq!(
        b,
        vec![Acquired {
            first: 20,
            last: 29,
            deliveries: 1
        }]
    );
    assert!(acquire(&o, "b", 100).is_empty(), "nothing left to hand out");
    // b cannot acknowledge a's records.
    assert!(matches!(ack(&o, "b", 0, 0, 1), Err(ShareError::InvalidRecordState(_))));
    ack(&o, "a", 0, 19, 1).unwrap();
    assert!(
        matches!(ack(&o, "a", 0, 0, 1), Err(ShareError::InvalidRecordState(_))),
        "twice"
    );
    ack(&o, "b", 20, 29, 1).unwrap();
    let s = summary(&o);
    assert_eq!((s.start, s.end, s.acquired), (30, 30, 0));
}

#[test]
fn released_records_come_back_with_a_higher_delivery_count_and_rejected_ones_never() {
    let (_w, o) = opened_with_member(1, 10);
    acquire(&o, "a", 10);
    o.share.acknowledge(
        "g",
        "a",
        &[PartitionAcks {
            topic: TOPIC,
            partition: 0,
            batches: vec![AckBatch {
                first: 0,
                last: 9,
                types: vec![1, 2, 1, 3, 1, 1, 1, 1, 1, 2],
            }],
        }],
    )[0]
    .clone()
    .unwrap();
    let again = acquire(&o, "a", 10);
    assert_eq!(
        again,
        vec![
            Acquired {
                first: 1,
                last: 1,
                deliveries: 2
            },
            Acquired {
                first: 9,
                last: 9,
                deliveries: 2
            }
        ]
    );
    ack(&o, "a", 1, 1, 1).unwrap();
    ack(&o, "a", 9, 9, 1).unwrap();
    assert_eq!(summary(&o).start, 10);
    let stats = &o.share.stats()[0].outcomes;
    assert_eq!((stats.accepted, stats.released, stats.rejected), (9, 2, 1));
}

#[test]
fn a_lock_that_runs_out_releases_the_record_and_the_delivery_limit_archives_it() {
    let mut w = World::new();
    w.config.defaults.delivery_count_limit = 3;
    w.config.defaults.record_lock_duration_ms = 1_000;
    w.config.session_timeout_ms = 1_000_000;
    let o = w.open();
    produce(&o.log, 1, 1);
    join(&o.share, "a");
    for delivery in 1..=3u16 {
        let got = acquire(&o, "a", 10);
        assert_eq!(
            got,
            vec![Acquired {
                first: 0,
                last: 0,
                deliveries: delivery
            }]
        );
        w.clock.advance(1_001);
        o.share.tick();
    }
    // Third lock ran out at the limit: archived, never handed out again.
    assert!(acquire(&o, "a", 10).is_empty());
    assert_eq!(summary(&o).start, 1);
    let out = o.share.stats()[0].outcomes;
    assert_eq!((out.lock_timeouts, out.archived), (3, 1));
}

#[test]
fn sessions_check_their_epochs_and_their_limit() {
    let mut w = World::new();
    w.config.sessions_max = 2;
    let o = w.open();
    let req = |member: &str, epoch: i32| SessionRequest {
        group: "g".into(),
        member: member.into(),
        epoch,
        add: vec![(TOPIC, 0)],
        ..SessionRequest::default()
    };
    assert_eq!(
        o.share.begin_session(&req("a", 1), SessionUse::Fetch),
        Err(ShareError::ShareSessionNotFound)
    );
    o.share.begin_session(&req("a", 0), SessionUse::Fetch).unwrap();
    o.share.begin_session(&req("a", 1), SessionUse::Fetch).unwrap();
    assert_eq!(
        o.share.begin_session(&req("a", 1), SessionUse::Fetch),
        Err(ShareError::InvalidShareSessionEpoch { got: 1, expected: 2 })
    );
    // The bad epoch closed the session.
    assert_eq!(
        o.share.begin_session(&req("a", 2), SessionUse::Fetch),
        Err(ShareError::ShareSessionNotFound)
    );
    o.share.begin_session(&req("a", 0), SessionUse::Fetch).unwrap();
    o.share.begin_session(&req("b", 0), SessionUse::Fetch).unwrap();
    assert_eq!(
        o.share.begin_session(&req("c", 0), SessionUse::Fetch),
        Err(ShareError::ShareSessionLimitReached(2))
    );
    let mut with_acks = req("a", 0);
    with_acks.has_acks = true;
    assert!(matches!(
        o.share.begin_session(&with_acks, SessionUse::Fetch),
        Err(ShareError::InvalidRequest(_))
    ));
    assert!(matches!(
        o.share.begin_session(&req("a", 0), SessionUse::Acknowledge),
        Err(ShareError::InvalidShareSessionEpoch { .. })
    ));
}

/// A client that keeps naming new partitions in its session, or repeats a
/// partition's acknowledgements, or acknowledges a range reaching far past
/// the window: each is refused at once, and nothing changes.
#[test]
fn hostile_sessions_and_acknowledgements_are_bounded() {
    use super::fetch::SESSION_PARTITIONS_MAX;
    let w = World::new();
    let o = w.open();
    let many = |from: i32, n: usize| (from..from + n as i32).map(|p| (TOPIC, p)).collect::<Vec<_>>();
    let mut req = SessionRequest {
        group: "g".into(),
        member: "a".into(),
        epoch: 0,
        add: many(0, SESSION_PARTITIONS_MAX + 1),
        ..SessionRequest::default()
    };
    assert!(matches!(
        o.share.begin_session(&req, SessionUse::Fetch),
        Err(ShareError::InvalidRequest(_))
    ));
    req.add = many(0, SESSION_PARTITIONS_MAX);
    assert_eq!(
        o.share.begin_session(&req, SessionUse::Fetch).unwrap().len(),
        SESSION_PARTITIONS_MAX
    );
    req.epoch = 1;
    req.add = many(SESSION_PARTITIONS_MAX as i32, 1);
    assert!(matches!(
        o.share.begin_session(&req, SessionUse::Fetch),
        Err(ShareError::InvalidRequest(_))
    ));
    // The refusal did not use up the epoch; forgetting one makes room for one.
    req.forget = many(0, 1);
    assert_eq!(
        o.share.begin_session(&req, SessionUse::Fetch).unwrap().len(),
        SESSION_PARTITIONS_MAX
    );

    produce(&o.log, 1, 10);
    join(&o.share, "m");
    acquire(&o, "m", 10);
    let before = o.share.stats();
    let batch = |first, last| AckBatch {
        first,
        last,
        types: vec![1],
    };
    let twice = [0, 1].map(|_| PartitionAcks {
        topic: TOPIC,
        partition: 0,
        batches: vec![batch(0, 0)],
    });
    let results = o.share.acknowledge("g", "m", &twice);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(ShareError::InvalidRequest(_))));
    assert_eq!(o.share.stats()[0].outcomes.accepted, before[0].outcomes.accepted + 1);
    let far = [PartitionAcks {
        topic: TOPIC,
        partition: 0,
        batches: vec![batch(1, i64::MAX)],
    }];
    assert!(matches!(
        o.share.acknowledge("g", "m", &far)[0],
        Err(ShareError::InvalidRecordState(_))
    ));
    assert_eq!(summary(&o).acquired, 9);
}

/// A ShareFetch may name any group id: a client cycling them makes a
/// share-partition per group only up to `groups_max` groups; groups that
/// have one already go on.
#[test]
fn share_fetches_naming_ever_new_groups_stop_at_groups_max() {
    let mut w = World::new();
    w.config.groups_max = 3;
    let o = w.open();
    produce(&o.log, 1, 4);
    let fetch = |group: &str| o.share.acquire(group, "m", TOPIC, 0, &o.log, 1, 1 << 20);
    for group in ["g1", "g2", "g3"] {
        assert_eq!(fetch(group).unwrap().acquired.len(), 1, "{group}");
    }
    for group in ["g4", "g5"] {
        assert_eq!(fetch(group).unwrap_err(), ShareError::TooManyGroups(3), "{group}");
    }
    assert_eq!(o.share.stats().len(), 3, "no share-partition made for the refused");
    // A group id that sorts between two held ones is counted as new too.
    assert_eq!(fetch("g1\0").unwrap_err(), ShareError::TooManyGroups(3));
    for group in ["g1", "g2", "g3"] {
        assert!(fetch(group).is_ok(), "{group} goes on");
    }
}

#[test]
fn closing_a_connection_releases_its_sessions_records_at_once() {
    let (_w, o) = opened_with_member(1, 5);
    let mut req = SessionRequest {
        group: "g".into(),
        member: "a".into(),
        epoch: 0,
        add: vec![(TOPIC, 0)],
        ..SessionRequest::default()
    };
    req.connection = 42;
    o.share.begin_session(&req, SessionUse::Fetch).unwrap();
    acquire(&o, "a", 5);
    assert_eq!(summary(&o).acquired, 5);
    o.share.connection_closed(42);
    assert_eq!(summary(&o).acquired, 0);
    assert_eq!(acquire(&o, "b", 5)[0].deliveries, 2);
}

/// A record that crashes its consumer whenever it is delivered (a poison
/// record), acquired in one run with nine good ones: the good ones must not
/// reach the delivery limit with it. Runs shrink on redelivery and a last
/// delivery goes alone, so the consumer that takes the good records one by one
/// accepts them, and only the poison record is archived.
#[test]
fn records_acquired_beside_a_poison_record_are_not_archived_with_it() {
    let mut w = World::new();
    w.config.defaults.delivery_count_limit = 3;
    w.config.defaults.record_lock_duration_ms = 1_000;
    w.config.session_timeout_ms = 1_000_000;
    let o = w.open();
    produce(&o.log, 1, 10);
    join(&o.share, "a");
    let poison = 7;
    let mut deliveries_of_poison = Vec::new();
    for _ in 0..40 {
        let got = acquire(&o, "a", 10);
        if got.is_empty() {
            break;
        }
        let run: Vec<i64> = got.iter().flat_map(|a| a.first..=a.last).collect();
        if run.contains(&poison) {
            // The consumer crashes: the whole run's locks run out.
            deliveries_of_poison.push(
                got.iter()
                    .find(|a| a.first <= poison && poison <= a.last)
                    .unwrap()
                    .deliveries,
            );
            w.clock.advance(1_001);
            o.share.tick();
        } else {
            for a in &got {
                ack(&o, "a", a.first, a.last, 1).unwrap();
            }
        }
    }
    assert_eq!(deliveries_of_poison, vec![1, 2, 3]);
    let out = o.share.stats()[0].outcomes;
    assert_eq!((out.accepted, out.archived), (9, 1), "{out:?}");
    assert_eq!(summary(&o).start, 10);
}

/// The same across partitions, as the client-suite poison test found: a
/// consumer crashing on a poison record of one partition also held, each
/// time, records of another partition fetched in the same answer; at their
/// third delivery they went with the poison's, and were archived unprocessed.
/// A last delivery now goes alone in its whole answer, whichever partition
/// the answer starts at.
#[test]
fn a_last_delivery_goes_alone_in_its_answer_across_partitions() {
    let mut w = World::new();
    w.config.defaults.delivery_count_limit = 3;
    w.config.session_timeout_ms = 1_000_000;
    let o = w.open();
    let topic: TopicId = [9; 16];
    let parts: Vec<Arc<crate::topic::Partition>> = (0..2)
        .map(|i| {
            let log = Log::open(w.env(), Path::new(&format!("/data/logs/u/{i}")), LogConfig::default()).unwrap();
            Arc::new(crate::topic::Partition::new(i, log))
        })
        .collect();
    let keys = [(topic, 0), (topic, 1)];
    let log_of = |_: &TopicId, p: i32| {
        parts
            .get(p as usize)
            .cloned()
            .map(|p| p as Arc<dyn super::ShareSource>)
            .ok_or(ShareError::UnknownTopicOrPartition)
    };
    join(&o.share, "a");
    let fetch = || -> Vec<(i32, Acquired)> {
        o.share
            .acquire_all("g", "a", &keys, &log_of, 100, 1 << 20)
            .into_iter()
            .flat_map(|((_, p), r)| r.unwrap().acquired.into_iter().map(move |a| (p, a)))
            .collect()
    };
    // Partition 0's records delivered twice to a consumer that crashed.
    produce(parts[0].log(), 1, 5);
    for _ in 0..2 {
        assert_eq!(fetch().len(), 1);
        o.share.release_member("g", "a", None);
    }
    // New records on partition 1; answers start at either partition.
    produce(parts[1].log(), 5, 1);
    for _ in 0..20 {
        w.clock.advance(1);
        let got = fetch();
        if got.is_empty() {
            break;
        }
        if got.iter().any(|(_, a)| a.deliveries == 3) {
            assert_eq!(got.len(), 1, "a last delivery shares its answer: {got:?}");
            assert_eq!(got[0].1.first, got[0].1.last, "{got:?}");
            o.share.release_member("g", "a", None);
            continue;
        }
        let acks: Vec<PartitionAcks> = got
            .iter()
            .map(|(p, a)| PartitionAcks {
                topic,
                partition: *p,
                batches: vec![AckBatch {
                    first: a.first,
                    last: a.last,
                    types: vec![1],
                }],
            })
            .collect();
        assert!(o.share.acknowledge("g", "a", &acks).iter().all(Result::is_ok));
    }
    let outcomes = o.share.stats().iter().fold(Outcomes::default(), |mut t, s| {
        t.add(&s.outcomes);
        t
    });
    assert_eq!((outcomes.accepted, outcomes.archived), (5, 5), "{outcomes:?}");
}

#[test]
fn backoff_grows_by_the_multiplier_up_to_the_maximum_less_at_most_a_tenth() {
    let b = super::partition::Backoff {
        initial_ms: 1_000,
        max_ms: 10_000,
        multiplier: 3,
    };
    for offset in 0..500 {
        for (deliveries, full) in [
            (1, 1_000),
            (2, 3_000),
            (3, 9_000),
            (4, 10_000),
            (9, 10_000),
            (u16::MAX, 10_000),
        ] {
            let d = b.delay_ms(deliveries, offset);
            assert!(
                full - full / 10 <= d && d <= full,
                "{deliveries} deliveries of {offset}: {d}"
            );
        }
    }
    // The jitter spreads records released together.
    let waits: std::collections::BTreeSet<i64> = (0..100).map(|o| b.delay_ms(2, o)).collect();
    assert!(waits.len() > 50, "{waits:?}");
    let off = super::partition::Backoff::default();
    assert_eq!(off.delay_ms(3, 7), 0);
}

/// A released record waits out its backoff, growing with each delivery,
/// while the records behind it are handed out; fetchers waiting for records
/// are woken when it ends.
#[test]
fn a_released_record_waits_out_its_backoff_without_holding_up_the_others() {
    let mut w = World::new();
    w.config.defaults.backoff_initial_ms = 1_000;
    w.config.defaults.backoff_multiplier = 2;
    w.config.defaults.backoff_max_ms = 60_000;
    w.config.defaults.delivery_count_limit = 5;
    let o = w.open();
    produce(&o.log, 1, 1);
    join(&o.share, "a");
    let mut gaps = Vec::new();
    let mut got = acquire(&o, "a", 1);
    for deliveries in 1..=4u16 {
        assert_eq!(
            got,
            vec![Acquired {
                first: 0,
                last: 0,
                deliveries
            }]
        );
        ack(&o, "a", 0, 0, 2).unwrap();
        assert_eq!(summary(&o).backing_off, 1);
        // More records arrive; they are handed out while offset 0 waits.
        produce(&o.log, 1, 1);
        let next = o.log.high_watermark() - 1;
        assert_eq!(
            acquire(&o, "a", 10),
            vec![Acquired {
                first: next,
                last: next,
                deliveries: 1
            }]
        );
        ack(&o, "a", next, next, 1).unwrap();
        let mut woken = o.share.watch_available();
        woken.mark_unchanged();
        let released_at = w.clock.now_ms();
        loop {
            assert!(w.clock.now_ms() - released_at < 100_000, "offset 0 never came back");
            w.clock.advance(50);
            o.share.tick();
            got = acquire(&o, "a", 1);
            if !got.is_empty() {
                break;
            }
        }
        assert!(woken.has_changed().unwrap(), "the end of the backoff woke no one");
        gaps.push(w.clock.now_ms() - released_at);
    }
    // 1 s, 2 s, 4 s, 8 s, each less up to a tenth, to the next 50 ms step.
    for (gap, full) in gaps.iter().zip([1_000, 2_000, 4_000, 8_000]) {
        assert!(full - full / 10 <= *gap && *gap <= full + 50, "{gaps:?}");
    }
}

#[test]
fn redelivered_runs_halve_and_a_last_delivery_goes_alone() {
    use super::partition::redelivery_run_max;
    assert_eq!(redelivery_run_max(500, 0, 5), 500);
    assert_eq!(redelivery_run_max(500, 1, 5), 250);
    assert_eq!(redelivery_run_max(500, 3, 5), 62);
    assert_eq!(redelivery_run_max(500, 4, 5), 1);
    assert_eq!(redelivery_run_max(1, 1, 5), 1);
    assert_eq!(redelivery_run_max(500, 1, 2), 1);
    assert_eq!(redelivery_run_max(usize::MAX, 200, 255), usize::MAX >> 16);
}

#[test]
fn the_window_bounds_what_a_member_that_never_acknowledges_can_pin() {
    let mut w = World::new();
    w.config.defaults.partition_max_record_locks = 100;
    let o = w.open();
    produce(&o.log, 30, 10);
    join(&o.share, "a");
    let got: i64 = acquire(&o, "a", 1_000).iter().map(|a| a.last - a.first + 1).sum();
    assert_eq!(got, 100);
    assert!(acquire(&o, "a", 1_000).is_empty());
}

#[test]
fn acknowledgements_and_delivery_counts_survive_a_crash_and_locks_do_not() {
    let (w, o) = opened_with_member(2, 10);
    acquire(&o, "a", 20);
    ack(&o, "a", 0, 9, 1).unwrap();
    drop(o);
    w.crash(1);
    let o = w.open();
    let again = acquire(&o, "b", 100);
    assert_eq!(
        again,
        vec![Acquired {
            first: 10,
            last: 19,
            deliveries: 2
        }]
    );
}

#[test]
fn members_get_every_partition_and_share_them_when_outnumbering_them() {
    let w = World::new();
    let o = w.open();
    let topics = |name: &str| {
        (name == "t").then_some(crate::groups::TopicMeta {
            id: TOPIC,
            partitions: 2,
        })
    };
    let hb = |m: &str, epoch: i32| ShareHeartbeat {
        group: "g".into(),
        member_id: m.into(),
        member_epoch: epoch,
        subscribed: Some(vec!["t".into()]),
        ..ShareHeartbeat::default()
    };
    let a = o.share.heartbeat(hb("a", 0), &topics).unwrap();
    assert_eq!(a.assignment, Some(vec![(TOPIC, vec![0, 1])]));
    o.share.heartbeat(hb("b", 0), &topics).unwrap();
    o.share.heartbeat(hb("c", 0), &topics).unwrap();
    let a2 = o.share.heartbeat(hb("a", a.member_epoch), &topics).unwrap();
    assert_eq!(a2.assignment, Some(vec![(TOPIC, vec![0])]));
    assert!(a2.member_epoch > a.member_epoch);
    // The previous epoch is still accepted (its answer may have been lost),
    // anything older is fenced.
    o.share.heartbeat(hb("a", a.member_epoch), &topics).unwrap();
    assert!(matches!(
        o.share.heartbeat(hb("a", a2.member_epoch + 5), &topics),
        Err(ShareError::FencedMemberEpoch { .. })
    ));
    assert_eq!(
        o.share.heartbeat(hb("zz", 3), &topics),
        Err(ShareError::UnknownMemberId)
    );
    let d = o.share.describe("g").unwrap();
    assert_eq!(d.members.len(), 3);
    let covered: std::collections::BTreeSet<i32> = d
        .members
        .iter()
        .flat_map(|m| m.assignment.iter().flat_map(|(_, p)| p.clone()))
        .collect();
    assert_eq!(covered.into_iter().collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn compaction_keeps_the_state() {
    let (w, o) = opened_with_member(3, 10);
    acquire(&o, "a", 30);
    ack(&o, "a", 0, 4, 1).unwrap();
    ack(&o, "a", 7, 7, 3).unwrap();
    ack(&o, "a", 8, 8, 2).unwrap();
    o.share.compact().unwrap();
    drop(o);
    w.crash(2);
    let o = w.open();
    let s = summary(&o);
    assert_eq!((s.start, s.end), (5, 30));
    let again = acquire(&o, "b", 100);
    let offsets: Vec<(i64, i64, u16)> = again.iter().map(|a| (a.first, a.last, a.deliveries)).collect();
    assert_eq!(offsets, vec![(5, 6, 2), (8, 29, 2)]);
}

/// What the model does.
#[derive(Debug, Clone)]
enum Op {
    Produce(u8),
    Acquire {
        member: u8,
        max: u8,
    },
    /// Acknowledge the `nth` range `member` holds, with `kind`.
    Ack {
        member: u8,
        nth: u8,
        kind: u8,
    },
    /// A range the member does not hold: must change nothing.
    BadAck {
        member: u8,
        offset: u8,
    },
    Advance(u16),
    LeaveMember(u8),
    Crash(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..6).prop_map(Op::Produce),
        (0u8..3, 1u8..12).prop_map(|(member, max)| Op::Acquire { member, max }),
        (0u8..3, any::<u8>(), 1u8..4).prop_map(|(member, nth, kind)| Op::Ack { member, nth, kind }),
        (0u8..3, any::<u8>()).prop_map(|(member, offset)| Op::BadAck { member, offset }),
        (1u16..3000).prop_map(Op::Advance),
        (0u8..3).prop_map(Op::LeaveMember),
        any::<u64>().prop_map(Op::Crash),
    ]
}

/// The model of one record: done (accepted or archived) or not, its
/// durable delivery count, and who holds it now.
#[derive(Debug, Clone, Default)]
struct ModelRecord {
    done: bool,
    deliveries: u16,
    holder: Option<(u8, i64)>,
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// Random acquire / acknowledge / release / reject / timeout / crash
    /// sequences against a simple model: no record is handed to two members
    /// at once, none is handed out after being accepted or archived, delivery
    /// counts never go backwards (not even across crashes), and a record is
    /// archived exactly when it reaches the delivery limit.
    #[test]
    fn share_partition_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        w.config.defaults.delivery_count_limit = 3;
        w.config.defaults.record_lock_duration_ms = 2_000;
        w.config.defaults.partition_max_record_locks = 100;
        w.config.session_timeout_ms = 1_000_000_000;
        let limit = 3u16;
        let mut o = w.open();
        let mut model: Vec<ModelRecord> = Vec::new();
        let mut held: BTreeMap<u8, Vec<Acquired>> = BTreeMap::new();
        let names = ["m0", "m1", "m2"];
        for op in ops {
            match op {
                Op::Produce(n) => {
                    produce(&o.log, 1, i32::from(n));
                    model.extend((0..n).map(|_| ModelRecord::default()));
                }
                Op::Acquire { member, max } => {
                    let now = w.clock.now_ms();
                    let got = acquire(&o, names[member as usize], max as usize);
                    if got.iter().any(|a| a.deliveries == limit) {
                        let n: i64 = got.iter().map(|a| a.last - a.first + 1).sum();
                        prop_assert_eq!(n, 1, "a last delivery goes alone: {:?}", got);
                    }
                    for a in &got {
                        for off in a.first..=a.last {
                            let r = &mut model[off as usize];
                            prop_assert!(!r.done, "offset {} handed out after it was done", off);
                            prop_assert!(
                                r.holder.is_none_or(|(_, deadline)| deadline <= now),
                                "offset {} handed out while held", off
                            );
                            prop_assert_eq!(a.deliveries, r.deliveries + 1, "offset {}", off);
                            prop_assert!(a.deliveries <= limit);
                            r.deliveries = a.deliveries;
                            r.holder = Some((member, now + 2_000));
                        }
                    }
                    held.entry(member).or_default().extend(got);
                }
                Op::Ack { member, nth, kind } => {
                    let list = held.entry(member).or_default();
                    if list.is_empty() {
                        continue;
                    }
                    let a = list.remove(nth as usize % list.len());
                    let now = w.clock.now_ms();
                    let still_held = (a.first..=a.last).all(|off| {
                        model[off as usize].holder.is_some_and(|(m, deadline)| m == member && deadline > now)
                    });
                    let result = ack(&o, names[member as usize], a.first, a.last, kind as i8);
                    prop_assert_eq!(result.is_ok(), still_held, "{:?} kind {}", a, kind);
                    if still_held {
                        for off in a.first..=a.last {
                            let r = &mut model[off as usize];
                            r.holder = None;
                            r.done = kind == 1 || kind == 3 || (kind == 2 && r.deliveries >= limit);
                        }
                    }
                }
                Op::BadAck { member, offset } => {
                    let off = i64::from(offset);
                    let now = w.clock.now_ms();
                    let holds = model
                        .get(offset as usize)
                        .is_some_and(|r| r.holder.is_some_and(|(m, d)| m == member && d > now));
                    if !holds {
                        let before = o.share.stats();
                        prop_assert!(ack(&o, names[member as usize], off, off, 1).is_err());
                        prop_assert_eq!(o.share.stats(), before);
                    }
                }
                Op::Advance(ms) => {
                    w.clock.advance(u64::from(ms));
                    o.share.tick();
                    let now = w.clock.now_ms();
                    for r in &mut model {
                        if r.holder.is_some_and(|(_, d)| d <= now) {
                            r.holder = None;
                            r.done |= r.deliveries >= limit;
                        }
                    }
                }
                Op::LeaveMember(member) => {
                    o.share.close_session("g", names[member as usize]);
                    let _ = o.share.heartbeat(
                        ShareHeartbeat {
                            group: "g".into(),
                            member_id: names[member as usize].into(),
                            member_epoch: -1,
                            ..ShareHeartbeat::default()
                        },
                        &|_| None,
                    );
                    o.share.release_member("g", names[member as usize], None);
                    for r in &mut model {
                        if r.holder.is_some_and(|(m, _)| m == member) {
                            r.holder = None;
                            r.done |= r.deliveries >= limit;
                        }
                    }
                    held.remove(&member);
                }
                Op::Crash(seed) => {
                    drop(o);
                    w.crash(seed);
                    o = w.open();
                    held.clear();
                    for r in &mut model {
                        if r.holder.take().is_some() {
                            r.done |= r.deliveries >= limit;
                        }
                    }
                }
            }
        }
        // Everything not done is handed out eventually, and nothing done is.
        w.clock.advance(10_000);
        o.share.tick();
        for r in &mut model {
            if r.holder.take().is_some() {
                r.done |= r.deliveries >= limit;
            }
        }
        let mut seen = vec![false; model.len()];
        // Bounded: each round hands out at least one record, and there are
        // fewer than 60 × 255 of them.
        for _ in 0..model.len() + 1 {
            let got = acquire(&o, "final", 1_000);
            if got.is_empty() {
                break;
            }
            for a in got {
                for off in a.first..=a.last {
                    prop_assert!(!model[off as usize].done, "offset {} was done", off);
                    seen[off as usize] = true;
                }
                ack(&o, "final", a.first, a.last, 1).unwrap();
            }
        }
        for (off, r) in model.iter().enumerate() {
            prop_assert_eq!(seen[off], !r.done, "offset {}", off);
        }
    }
}

#[test]
fn a_record_archived_for_its_dead_letter_keeps_its_reason_and_the_start_across_crashes() {
    use super::settings::DEAD_LETTER_TOPIC_KEY;
    let (w, o) = opened_with_member(1, 3);
    let set = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    o.share
        .set_settings(
            "g",
            vec![
                set("share.auto.offset.reset", "earliest"),
                set("veltrix.share.backoff.initial.ms", "0"),
                set("share.delivery.count.limit", "2"),
                set("share.record.lock.duration.ms", "1000"),
                set(DEAD_LETTER_TOPIC_KEY, "dlq.t"),
            ],
        )
        .unwrap();
    // Offset 0 is held until its lock runs out, twice; 1 and 2 are accepted.
    for round in 0..2 {
        let got = acquire(&o, "a", 3);
        assert_eq!(got[0].first, 0, "round {round}");
        let last = got.last().unwrap().last;
        if last >= 1 {
            ack(&o, "a", 1, last, 1).unwrap();
        }
        w.clock.advance(1_001);
        o.share.tick();
    }
    let work = o.share.dead_letter_work(100);
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].topic.as_deref(), Some("dlq.t"));
    let pending = &work[0].records;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].offset, pending[0].reason, pending[0].deliveries),
        (0, DeadLetterReason::LockTimeout, 2)
    );
    assert_eq!(pending[0].last_owner.as_deref(), Some("a"));
    assert_eq!(summary(&o).start, 0, "the start waits for the letter");
    assert_eq!(summary(&o).dead_letters_pending, 1);
    drop(o);

    w.crash(3);
    let o = w.open();
    let work = o.share.dead_letter_work(100);
    assert_eq!(work.len(), 1, "still owed after a crash");
    assert_eq!(work[0].records[0].reason, DeadLetterReason::LockTimeout);
    assert_eq!(
        work[0].records[0].first_delivery_ms, 0,
        "times are not kept across a restart"
    );
    assert_eq!(o.share.dead_letters_written(&work[0].key, &[0]).unwrap(), 1);
    assert_eq!(summary(&o).start, 3);
    assert!(o.share.dead_letter_work(100).is_empty());
    drop(o);

    w.crash(4);
    let o = w.open();
    assert_eq!(summary(&o).start, 3, "the mark is durable");
    assert!(o.share.dead_letter_work(100).is_empty());
}
