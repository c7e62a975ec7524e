use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

#[derive(Debug, Default)]
struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst) as i64
    }
    fn monotonic_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn named(s: &str) -> Option<EntityName> {
    Some(EntityName::Named(s.to_owned()))
}

fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
    QuotaEntity { user, client_id }
}

fn set(kind: QuotaKind, v: f64) -> QuotaOp {
    QuotaOp { kind, value: Some(v) }
}

fn quotas() -> (Quotas, Arc<TestClock>) {
    let clock = Arc::new(TestClock::default());
    let q = Quotas::open(
        QuotaConfig::default(),
        clock.clone(),
        Arc::new(MemoryQuotaStore::default()),
    )
    .unwrap();
    (q, clock)
}

const P: QuotaKind = QuotaKind::ProducerByteRate;

#[test]
fn the_most_specific_entity_wins_in_kafkas_order() {
    let (q, _) = quotas();
    let d = Some(EntityName::Default);
    let levels = [
        (entity(None, d.clone()), 8.0),
        (entity(None, named("app")), 7.0),
        (entity(d.clone(), None), 6.0),
        (entity(d.clone(), d.clone()), 5.0),
        (entity(d.clone(), named("app")), 4.0),
        (entity(named("alice"), None), 3.0),
        (entity(named("alice"), d.clone()), 2.0),
        (entity(named("alice"), named("app")), 1.0),
    ];
    // Added from least to most specific: each one takes over.
    for (e, v) in &levels {
        assert_eq!(q.alter(&[(e.clone(), vec![set(P, *v)])], false), vec![Ok(())]);
        assert_eq!(q.applied(P, "alice", "app").map(|a| a.quota), Some(*v), "{e}");
    }
    // Another user falls through alice's entries to the defaults.
    assert_eq!(q.applied(P, "bob", "app").map(|a| a.quota), Some(4.0));
    assert_eq!(q.applied(P, "bob", "other").map(|a| a.quota), Some(5.0));
    // Another kind has no quota.
    assert_eq!(q.applied(QuotaKind::ConsumerByteRate, "alice", "app"), None);
}

#[test]
fn clients_under_a_default_each_have_their_own_sensor_and_a_named_user_shares_one() {
    let (q, _) = quotas();
    let d = Some(EntityName::Default);
    q.alter(&[(entity(None, d), vec![set(P, 1_000.0)])], false);
    assert_eq!(
        q.applied(P, ANONYMOUS, "a").unwrap().sensor,
        (String::new(), "a".to_owned())
    );
    q.alter(&[(entity(named("alice"), None), vec![set(P, 1_000.0)])], false);
    assert_eq!(
        q.applied(P, "alice", "a").unwrap().sensor,
        q.applied(P, "alice", "b").unwrap().sensor
    );
}

#[test]
fn a_client_over_its_quota_is_told_to_wait_and_others_are_not() {
    let (q, clock) = quotas();
    q.alter(&[(entity(None, named("bulk")), vec![set(P, 1_000.0)])], false);
    assert_eq!(q.record(P, ANONYMOUS, "bulk", 500.0).ms, 0);
    // 20 kB at 1 kB/s, with 500 B of the 1 s burst left: 19.5 s owed, told
    // 10 s at most at a time.
    let t = q.record(P, ANONYMOUS, "bulk", 20_000.0);
    assert_eq!(t.ms, 10_000, "{t:?}");
    // A client without a quota is never throttled.
    assert_eq!(q.record(P, ANONYMOUS, "critical", 1e9).ms, 0);
    // Once the debt is paid, the client sends again at its rate.
    clock.0.store(20_000, Ordering::SeqCst);
    assert_eq!(q.record(P, ANONYMOUS, "bulk", 500.0).ms, 0);
    // A fetch while owing is withheld, counted for nothing.
    let t = q.record_unless_throttled(P, ANONYMOUS, "bulk", 5_000.0);
    assert!(!t.withheld && t.ms > 0, "{t:?}");
    let again = q.record_unless_throttled(P, ANONYMOUS, "bulk", 5_000.0);
    assert!(again.withheld && again.ms <= t.ms, "{again:?}");
}

#[test]
fn invalid_changes_are_refused_one_by_one_and_validate_only_changes_nothing() {
    let (q, _) = quotas();
    let ok = (entity(None, named("a")), vec![set(P, 10.0)]);
    let bad = (entity(None, named("b")), vec![set(P, 0.5)]);
    let empty = (entity(None, None), vec![set(P, 10.0)]);
    let results = q.alter(&[ok.clone(), bad, empty], true);
    assert_eq!(results[0], Ok(()));
    assert!(matches!(results[1], Err(QuotaError::InvalidValue { .. })));
    assert_eq!(results[2], Err(QuotaError::EmptyEntity));
    let long = (entity(None, named(&"c".repeat(256))), vec![set(P, 10.0)]);
    assert_eq!(q.alter(&[long], true), vec![Err(QuotaError::NameTooLong { len: 256 })]);
    assert!(q.entities().is_empty(), "validate_only changed nothing");
    q.alter(&[ok], false);
    assert_eq!(q.entities().len(), 1);
    // Removing the last quota removes the entity.
    q.alter(
        &[(entity(None, named("a")), vec![QuotaOp { kind: P, value: None }])],
        false,
    );
    assert!(q.entities().is_empty());
}

#[test]
fn entities_and_sensors_are_bounded() {
    let clock = Arc::new(TestClock::default());
    let config = QuotaConfig {
        entities_max: 2,
        sensors_max: 3,
        ..QuotaConfig::default()
    };
    let q = Quotas::open(config, clock.clone(), Arc::new(MemoryQuotaStore::default())).unwrap();
    let r = q.alter(
        &[
            (entity(None, named("a")), vec![set(P, 10.0)]),
            (entity(None, Some(EntityName::Default)), vec![set(P, 10.0)]),
            (entity(None, named("c")), vec![set(P, 10.0)]),
        ],
        false,
    );
    assert_eq!(r[2], Err(QuotaError::TooMany { max: 2 }));
    // A client inventing a new id per request keeps at most 3 sensors.
    for i in 0..100u64 {
        clock.0.store(i, Ordering::SeqCst);
        q.record(P, ANONYMOUS, &format!("id-{i}"), 1.0);
    }
    assert_eq!(q.sensors(), (3, 97));
}

#[test]
fn quotas_survive_a_restart_through_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn veltrix_log::io::Storage> = Arc::new(veltrix_log::io::FsStorage);
    let open = || {
        Quotas::open(
            QuotaConfig::default(),
            Arc::new(TestClock::default()),
            Arc::new(FileQuotaStore::new(storage.clone(), dir.path())),
        )
        .unwrap()
    };
    let q = open();
    q.alter(
        &[(
            entity(named("alice"), Some(EntityName::Default)),
            vec![set(P, 1_048_576.0)],
        )],
        false,
    );
    let again = open();
    assert_eq!(again.entities(), q.entities());
    assert_eq!(again.applied(P, "alice", "x").map(|a| a.quota), Some(1_048_576.0));
}

#[test]
fn the_file_decoder_refuses_what_the_store_never_writes() {
    assert!(decode_quotas_file(b"{").is_err());
    assert!(decode_quotas_file(br#"{"version":2,"entities":[]}"#).is_err());
    let no_entity = br#"{"version":1,"entities":[{"entity":{"user":null,"client_id":null},"quotas":{}}]}"#;
    assert!(decode_quotas_file(no_entity).is_err());
    let zero = br#"{"version":1,"entities":[{"entity":{"user":null,"client_id":"Default"},"quotas":{"ProducerByteRate":0.0}}]}"#;
    assert!(decode_quotas_file(zero).is_err());
    let good = br#"{"version":1,"entities":[{"entity":{"user":null,"client_id":"Default"},"quotas":{"ProducerByteRate":10.0}}]}"#;
    assert_eq!(decode_quotas_file(good).unwrap().len(), 1);
}
