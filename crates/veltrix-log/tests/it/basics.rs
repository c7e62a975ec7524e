//! Appends, reads, rolls, restarts and retention through the public API.

use veltrix_log::{FlushPolicy, LogConfig, LogError};

use crate::support::*;

#[test]
fn appended_batches_read_back_byte_for_byte_with_assigned_offsets() {
    let w = World::new();
    let log = w.open(small_config());
    let mut expected = Vec::new();
    for i in 0..50u8 {
        let mut b = make_batch(i32::from(i % 3) + 1, 100 + usize::from(i) * 7, T0 + i64::from(i), i);
        let a = log.append_durable(&mut b).unwrap();
        expected.push((a.base_offset, b));
    }
    assert!(log.segment_count() > 1, "small segments must have rolled");
    assert_eq!(read_all(&log, 0), expected);
    // Reading from the middle of a batch starts at that batch.
    let (base, _) = expected[10];
    let r = log.read(base + 1, 1).unwrap();
    let first = split_batches(&r.records)[0].0;
    assert!(first <= base + 1 && first >= base);
}

#[test]
fn unsynced_appends_are_invisible_until_durable() {
    let w = World::new();
    let log = w.open(small_config());
    let a = log.append(&mut make_batch(1, 100, T0, 1)).unwrap();
    assert_eq!(log.high_watermark(), 0);
    assert!(log.read(0, 1000).unwrap().records.is_empty());
    log.wait_durable(a.next_offset).unwrap();
    assert_eq!(log.high_watermark(), 1);
}

#[test]
fn state_survives_clean_and_unclean_restarts() {
    let w = World::new();
    let log = w.open(small_config());
    for i in 0..40u8 {
        log.append_durable(&mut make_batch(2, 150, T0, i)).unwrap();
    }
    let before = read_all(&log, 0);
    log.close().unwrap();
    assert!(matches!(
        log.append(&mut make_batch(1, 100, T0, 0)),
        Err(LogError::Poisoned { .. })
    ));
    drop(log);
    let log = w.open(small_config());
    assert_eq!(read_all(&log, 0), before);
    drop(log);
    w.storage.crash(true, 7);
    let log = w.open(small_config());
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.log_end(), 80);
}

#[test]
fn timestamp_lookup_finds_the_first_batch_at_or_after() {
    let w = World::new();
    let log = w.open(small_config());
    let stamps = [10, 20, 15, 40, 30, 50];
    for (i, ts) in stamps.iter().enumerate() {
        for _ in 0..5 {
            log.append_durable(&mut make_batch(1, 200, T0 + ts, i as u8)).unwrap();
        }
    }
    let hit = |ts: i64| log.offset_for_timestamp(T0 + ts).unwrap().map(|h| h.offset);
    assert_eq!(hit(0), Some(0));
    assert_eq!(hit(11), Some(5));
    assert_eq!(hit(16), Some(5));
    assert_eq!(hit(21), Some(15));
    assert_eq!(hit(45), Some(25));
    assert_eq!(hit(51), None);
}

#[test]
fn delete_records_and_retention_advance_the_log_start() {
    let w = World::new();
    let config = LogConfig {
        retention_ms: Some(60_000),
        ..small_config()
    };
    let log = w.open(config);
    for i in 0..60u8 {
        log.append_durable(&mut make_batch(1, 300, T0 + i64::from(i), i))
            .unwrap();
    }
    assert_eq!(log.delete_records(7).unwrap(), 7);
    assert!(matches!(log.read(6, 100), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(split_batches(&log.read(7, 1).unwrap().records)[0].0, 7);
    drop(log);
    let log = w.open(config);
    assert_eq!(log.log_start(), 7, "log start survives restart");
    w.clock.advance(120_000);
    let outcome = log.tick().unwrap();
    assert!(outcome.segments_deleted > 0);
    assert_eq!(log.log_start(), 60);
    assert_eq!(log.high_watermark(), 60);
    log.append_durable(&mut make_batch(1, 300, T0 + 200_000, 0)).unwrap();
    assert_eq!(read_all(&log, 60).len(), 1);
}

/// librdkafka's C++ API can send batches whose header says the largest timestamp
/// is 0. Judged by that alone, a batch written a moment ago is 56 years past any
/// retention: the segment was rolled and deleted on the next tick, before any
/// consumer read it.
#[test]
fn a_batch_with_timestamp_zero_survives_retention_until_the_period_has_passed_since_its_append() {
    let w = World::new();
    let config = LogConfig {
        retention_ms: Some(60_000),
        ..small_config()
    };
    let log = w.open(config);
    for i in 0..20u8 {
        log.append_durable(&mut make_batch(1, 300, 0, i)).unwrap();
    }
    for _ in 0..5 {
        w.clock.advance(10_000);
        let outcome = log.tick().unwrap();
        assert_eq!(outcome.segments_deleted, 0, "deleted within the retention period");
    }
    assert_eq!(log.log_start(), 0);
    assert_eq!(read_all(&log, 0).len(), 20);
    drop(log);
    // After a restart too: the time of the last append is not known for the
    // active segment, and must be taken as late, not early.
    let log = w.open(config);
    log.tick().unwrap();
    assert_eq!(read_all(&log, 0).len(), 20);
    w.clock.advance(61_000);
    log.tick().unwrap();
    log.tick().unwrap();
    assert_eq!(log.log_start(), 20, "deleted once the period has passed");
}

#[test]
fn retention_by_size_keeps_at_most_the_limit_in_sealed_segments() {
    let w = World::new();
    let log = w.open(LogConfig {
        retention_bytes: Some(10_000),
        ..small_config()
    });
    for i in 0..200u8 {
        log.append_durable(&mut make_batch(1, 500, T0, i)).unwrap();
    }
    log.tick().unwrap();
    assert!(log.size_bytes() < 10_000 + 4096, "size {}", log.size_bytes());
    assert!(log.log_start() > 0);
    let all = read_all(&log, log.log_start());
    assert_eq!(all.last().unwrap().0, 199);
}

#[test]
fn relaxed_topics_acknowledge_before_fsync_and_flush_on_tick() {
    let w = World::new();
    let log = w.open(LogConfig {
        flush: FlushPolicy::Interval { flush_interval_ms: 100 },
        ..small_config()
    });
    assert!(
        log.stats()
            .relaxed_durability
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let (syncs_before, _) = w.storage.sync_counts();
    log.append_durable(&mut make_batch(1, 100, T0, 1)).unwrap();
    assert_eq!(log.high_watermark(), 1, "visible at once");
    assert_eq!(w.storage.sync_counts().0, syncs_before, "no fsync yet");
    assert!(!log.tick().unwrap().flushed);
    w.clock.advance(100);
    assert!(log.tick().unwrap().flushed);
    assert_eq!(w.storage.sync_counts().0, syncs_before + 1);
}

#[test]
fn segments_roll_by_age() {
    let w = World::new();
    let log = w.open(LogConfig {
        segment_age_ms_max: 1000,
        ..small_config()
    });
    log.append_durable(&mut make_batch(1, 100, T0, 1)).unwrap();
    assert!(!log.tick().unwrap().rolled);
    w.clock.advance(1000);
    assert!(log.tick().unwrap().rolled);
    assert_eq!(log.segment_count(), 2);
    assert!(exists(&w, "00000000000000000001.log"));
}

#[test]
fn a_batch_made_durable_by_close_is_acknowledged() {
    // Regression: waiters checked for poison before checking the durable point, so
    // a batch that close() had fsynced was reported as failed.
    let w = World::new();
    let log = w.open(small_config());
    let a = log.append(&mut make_batch(1, 100, T0, 1)).unwrap();
    log.close().unwrap();
    log.wait_durable(a.next_offset).unwrap();
}

#[test]
fn a_retired_log_refuses_appends_and_its_housekeeping_touches_nothing() {
    let w = World::new();
    let log = w.open(small_config());
    log.append_durable(&mut make_batch(1, 100, 1, 0)).unwrap();
    let files = w.storage.files();
    log.retire("the topic was deleted");
    assert!(matches!(
        log.append(&mut make_batch(1, 100, 1, 0)),
        Err(veltrix_log::LogError::Poisoned { .. })
    ));
    w.clock.advance(10_000);
    log.tick().unwrap();
    assert_eq!(w.storage.files(), files, "no file written after retiring");
    assert_eq!(log.read(0, 1 << 20).unwrap().next_offset, 1, "reads still work");
}

/// What the duplicate filter (`veltrix-core`'s `dedup::filter`) leaves of a
/// batch, a record count below `last_offset_delta + 1` (down to none), is
/// refused as a producer's batch, which must be dense, and appended as a
/// filtered one: it keeps all its offsets, as a compacted batch does, so the
/// next batch starts after them.
#[test]
fn thinned_batches_are_refused_from_producers_and_appended_when_filtered() {
    let w = World::new();
    let log = w.open(small_config());
    for kept in [2, 0] {
        let mut b = make_batch(3, 200, T0, 1);
        veltrix_log::batch::set_record_fields(&mut b, kept, T0, T0);
        let refused = log.append(&mut b.clone());
        assert!(
            matches!(
                refused,
                Err(LogError::InvalidBatch(veltrix_log::batch::BatchError::BadCount { .. }))
            ),
            "{kept} records: {refused:?}"
        );
    }
    assert_eq!(log.log_end(), 0, "nothing was written");
    for (kept, base) in [(2, 0), (0, 3)] {
        let mut b = make_batch(3, 200, T0, 1);
        veltrix_log::batch::set_record_fields(&mut b, kept, T0, T0);
        let verified = veltrix_log::batch::Verified::filtered(&b, 2048).unwrap();
        let appended = log.append_verified(verified).unwrap();
        assert_eq!((appended.base_offset, appended.next_offset), (base, base + 3));
    }
    let mut too_many = make_batch(3, 200, T0, 1);
    veltrix_log::batch::set_record_fields(&mut too_many, 4, T0, T0);
    assert!(veltrix_log::batch::Verified::filtered(&too_many, 2048).is_err());
    log.append_durable(&mut make_batch(1, 200, T0, 2)).unwrap();
    let counts: Vec<_> = read_all(&log, 0)
        .iter()
        .map(|(base, b)| (*base, veltrix_log::batch::verify(b).unwrap().record_count))
        .collect();
    assert_eq!(counts, vec![(0, 2), (3, 0), (6, 1)]);
}
