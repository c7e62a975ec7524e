//! Fault injection: torn writes, flipped bits, failing fsyncs and writes, a full
//! disk, and a damaged index. Each test drives the log through [`SimStorage`],
//! injects one fault, and checks that nothing acknowledged is lost, nothing
//! unacknowledged is half-present, and the failure is reported, not hidden.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use veltrix_log::batch;
use veltrix_log::{FlushPolicy, Log, LogConfig, LogError, RECOVERY_POINT_INTERVAL_MS};

use crate::support::*;

/// Appends `n` durable batches of varying size; returns them as `(offset, bytes)`.
fn fill(log: &Log, n: usize, tag: u8) -> Vec<(i64, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let mut b = make_batch(
                (i % 3 + 1) as i32,
                120 + (i * 37) % 400,
                T0 + i as i64,
                tag.wrapping_add(i as u8),
            );
            let a = log.append_durable(&mut b).expect("durable append");
            (a.base_offset, b)
        })
        .collect()
}

/// Offset after the last of `batches`.
fn end_of(batches: &[(i64, Vec<u8>)]) -> i64 {
    batches
        .last()
        .map_or(0, |(_, b)| batch::verify(b).unwrap().next_offset())
}

/// Position of the batch at `offset` inside its segment file, found by walking it.
fn position_in(file: &[u8], offset: i64) -> usize {
    let mut pos = 0;
    while pos < file.len() {
        let size = batch::peek_size(&file[pos..]).expect("size");
        let h = batch::parse_fixed(&file[pos..]).expect("header");
        if h.base_offset <= offset && offset <= h.last_offset() {
            return pos;
        }
        pos += size;
    }
    panic!("offset {offset} not in segment");
}

#[test]
fn torn_writes_after_the_last_fsync_leave_a_clean_prefix() {
    // Many seeds: each keeps a different prefix of the unsynced writes, the last one
    // cut at a different byte. Acknowledged batches must all be there; of the rest,
    // only whole batches, in order, may survive.
    for seed in 0..200 {
        let w = World::new();
        let log = w.open(small_config());
        let acked = fill(&log, 12, 1);
        let mut pending = Vec::new();
        for i in 0..6u8 {
            let mut b = make_batch(2, 150 + usize::from(i) * 90, T0, 100 + i);
            let a = log.append(&mut b).unwrap();
            pending.push((a.base_offset, b));
        }
        drop(log);
        w.storage.crash(true, seed);
        let log = w.open(small_config());
        let got = read_all(&log, 0);
        assert!(got.len() >= acked.len(), "seed {seed}: acknowledged batches lost");
        assert_eq!(got[..acked.len()], acked[..], "seed {seed}");
        let extra = &got[acked.len()..];
        assert_eq!(
            extra,
            &pending[..extra.len()],
            "seed {seed}: unacknowledged tail must be whole batches"
        );
        assert_eq!(log.log_end(), end_of(&got));
        // The log accepts appends right after recovery, at the next offset.
        let a = log.append_durable(&mut make_batch(1, 100, T0, 9)).unwrap();
        assert_eq!(a.base_offset, log.log_end() - 1);
    }
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_fails_only_reads_of_that_batch() {
    let w = World::new();
    let log = w.open(small_config());
    let acked = fill(&log, 60, 2);
    assert!(log.segment_count() > 3);
    drop(log);
    let first = w.path("00000000000000000000.log");
    let bytes = w.storage.read_file(&first).unwrap();
    let (victim, _) = acked[3];
    let pos = position_in(&bytes, victim);
    w.storage.corrupt(&first, (pos + 70) as u64, 0x04).unwrap();
    let log = w.open(small_config());
    assert_eq!(log.log_end(), end_of(&acked), "recovery does not look at sealed data");
    let err = log.read(victim, 1 << 20).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("CRC"), "error names the cause: {err}");
    assert_eq!(log.stats().corruptions_found.load(Ordering::Relaxed), 1);
    for (offset, b) in acked.iter().filter(|(o, _)| *o != victim) {
        let r = log.read(*offset, 1).unwrap();
        assert_eq!(&split_batches(&r.records)[0].1, b, "batch at {offset}");
    }
}

#[test]
fn a_flipped_byte_mid_tail_keeps_every_valid_batch_after_it() {
    // The damage is in the newest segment, which recovery scans, below the
    // recovery point the last tick recorded. It must not be taken for a torn tail:
    // the valid batches after it stay, its offsets fail loudly.
    let w = World::new();
    let log = w.open(LogConfig {
        segment_bytes_max: 1 << 20,
        ..small_config()
    });
    let acked = fill(&log, 20, 3);
    w.clock.advance(RECOVERY_POINT_INTERVAL_MS);
    log.tick().unwrap();
    drop(log);
    let seg = w.path("00000000000000000000.log");
    let bytes = w.storage.read_file(&seg).unwrap();
    let (victim, _) = acked[9];
    let pos = position_in(&bytes, victim);
    w.storage.corrupt(&seg, (pos + 80) as u64, 0x80).unwrap();
    w.storage.crash(false, 0);
    let log = w.open(small_config());
    assert_eq!(log.log_end(), end_of(&acked));
    assert_eq!(log.stats().corruptions_found.load(Ordering::Relaxed), 1);
    assert_eq!(log.stats().recovery_truncated_bytes.load(Ordering::Relaxed), 0);
    assert!(matches!(log.read(victim, 1 << 20), Err(LogError::Corrupt { .. })));
    for (offset, b) in acked.iter().filter(|(o, _)| *o != victim) {
        let r = log.read(*offset, 1).unwrap();
        assert_eq!(&split_batches(&r.records)[0].1, b, "batch at {offset}");
    }
}

#[test]
fn damage_past_the_recovery_point_is_cut_like_a_torn_write() {
    // Without a recovery point covering them, valid batches after damage in the
    // newest segment may be unsynced writes that reached the disk out of order, so
    // they go with the damage rather than leave a hole no consumer can read past.
    let w = World::new();
    let log = w.open(LogConfig {
        segment_bytes_max: 1 << 20,
        ..small_config()
    });
    let acked = fill(&log, 20, 13);
    drop(log);
    let seg = w.path("00000000000000000000.log");
    let bytes = w.storage.read_file(&seg).unwrap();
    let pos = position_in(&bytes, acked[9].0);
    w.storage.corrupt(&seg, (pos + 80) as u64, 0x80).unwrap();
    w.storage.crash(false, 0);
    let log = w.open(small_config());
    assert_eq!(read_all(&log, 0), acked[..9]);
    assert_eq!(log.stats().corruptions_found.load(Ordering::Relaxed), 0);
    assert!(log.stats().recovery_truncated_bytes.load(Ordering::Relaxed) > 0);
}

#[test]
fn writes_reaching_the_disk_out_of_order_leave_a_readable_prefix() {
    // Power loss with unsynced writes persisted in no particular order: an earlier
    // batch torn, a later one whole. Recovery keeps acknowledged batches and a
    // readable run of whole batches after them, never a hole.
    for seed in 0..300 {
        let w = World::new();
        let log = w.open(LogConfig {
            segment_bytes_max: 1 << 20,
            ..small_config()
        });
        let acked = fill(&log, 8, 14);
        w.clock.advance(RECOVERY_POINT_INTERVAL_MS);
        log.tick().unwrap();
        let acked = [acked, fill(&log, 3, 15)].concat();
        let mut pending = Vec::new();
        for i in 0..6u8 {
            let mut b = make_batch(1, 300 + usize::from(i) * 50, T0, 100 + i);
            let a = log.append(&mut b).unwrap();
            pending.push((a.base_offset, b));
        }
        drop(log);
        w.storage.crash_reordered(seed);
        let log = w.open(small_config());
        let got = read_all(&log, 0);
        assert_eq!(got[..acked.len()], acked[..], "seed {seed}");
        let extra = &got[acked.len()..];
        assert_eq!(extra, &pending[..extra.len()], "seed {seed}");
    }
}

#[test]
fn a_flipped_byte_in_the_last_batch_is_cut_like_a_torn_write() {
    // With nothing valid after it, a damaged last batch cannot be told apart from a
    // torn write, so recovery cuts it and says how much it cut.
    let w = World::new();
    let log = w.open(small_config());
    let acked = fill(&log, 5, 4);
    drop(log);
    let seg = w.path("00000000000000000000.log");
    let len = w.storage.read_file(&seg).unwrap().len() as u64;
    w.storage.corrupt(&seg, len - 1, 0xff).unwrap();
    w.storage.crash(false, 0);
    let log = w.open(small_config());
    assert_eq!(read_all(&log, 0), acked[..4]);
    assert_eq!(
        log.stats().recovery_truncated_bytes.load(Ordering::Relaxed),
        acked[4].1.len() as u64
    );
}

#[test]
fn a_failed_fsync_poisons_the_partition_and_is_never_retried() {
    let w = World::new();
    let log = w.open(small_config());
    let acked = fill(&log, 5, 5);
    w.storage.fail_syncs(true);
    let err = log.append_durable(&mut make_batch(1, 100, T0, 9)).unwrap_err();
    assert!(matches!(err, LogError::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("fsync"), "the cause is kept: {err}");
    assert!(log.stats().poisoned.load(Ordering::Relaxed));
    // The disk recovers, but the partition must not pretend the lost write is safe.
    w.storage.fail_syncs(false);
    let (syncs, failed) = w.storage.sync_counts();
    assert!(matches!(
        log.append_durable(&mut make_batch(1, 100, T0, 9)),
        Err(LogError::Poisoned { .. })
    ));
    assert!(matches!(
        log.wait_durable(log.log_end()),
        Err(LogError::Poisoned { .. })
    ));
    assert_eq!(w.storage.sync_counts(), (syncs, failed), "no fsync after the failure");
    // Reads of what was durable continue; the unacknowledged batch is not visible.
    assert_eq!(log.high_watermark(), end_of(&acked));
    assert_eq!(read_all(&log, 0), acked);
    drop(log);
    w.storage.crash(true, 1);
    let log = w.open(small_config());
    assert_eq!(read_all(&log, 0)[..acked.len()], acked[..]);
}

#[test]
fn every_waiter_of_a_failed_group_commit_gets_the_error() {
    let w = World::new();
    let log = Arc::new(w.open(small_config()));
    w.storage.set_sync_delay(Some(Duration::from_millis(20)));
    w.storage.fail_syncs(true);
    let handles: Vec<_> = (0..6u8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || log.append_durable(&mut make_batch(1, 200, T0, t)))
        })
        .collect();
    for h in handles {
        assert!(matches!(h.join().unwrap(), Err(LogError::Poisoned { .. })));
    }
    assert_eq!(log.high_watermark(), 0, "nothing was acknowledged, nothing is visible");
}

#[test]
fn a_failed_fsync_while_rolling_poisons_too() {
    let w = World::new();
    let log = w.open(small_config());
    fill(&log, 8, 6);
    let segments = log.segment_count();
    w.storage.fail_syncs(true);
    let mut result = Ok(());
    for _ in 0..40 {
        if let Err(e) = log.append(&mut make_batch(1, 1000, T0, 7)) {
            result = Err(e);
            break;
        }
    }
    assert!(matches!(result, Err(LogError::Poisoned { .. })), "{result:?}");
    assert_eq!(log.segment_count(), segments, "no new segment after a failed seal");
}

#[test]
fn a_full_disk_refuses_the_batch_cleanly_and_recovers_when_space_returns() {
    let w = World::new();
    let log = w.open(LogConfig {
        segment_bytes_max: 1 << 20,
        ..small_config()
    });
    let mut acked = fill(&log, 10, 8);
    let used = w.storage.live_bytes();
    w.storage.set_capacity(Some(used + 150));
    let err = log.append_durable(&mut make_batch(1, 400, T0, 9)).unwrap_err();
    assert!(matches!(err, LogError::DiskFull { .. }), "{err}");
    assert!(
        log.poisoned().is_none(),
        "a full disk is not a reason to distrust the data"
    );
    let seg = w.path("00000000000000000000.log");
    assert_eq!(
        w.storage.read_file(&seg).unwrap().len() as u64,
        used,
        "partial write removed"
    );
    w.storage.set_capacity(None);
    let mut b = make_batch(1, 400, T0, 10);
    let a = log.append_durable(&mut b).unwrap();
    acked.push((a.base_offset, b));
    assert_eq!(read_all(&log, 0), acked);
    drop(log);
    w.storage.crash(true, 3);
    assert_eq!(read_all(&w.open(small_config()), 0), acked);
}

#[test]
fn a_failed_write_poisons_the_partition() {
    let w = World::new();
    let log = w.open(small_config());
    let acked = fill(&log, 3, 9);
    w.storage.fail_writes(true);
    assert!(matches!(
        log.append(&mut make_batch(1, 100, T0, 1)),
        Err(LogError::Poisoned { .. })
    ));
    w.storage.fail_writes(false);
    assert!(matches!(
        log.append(&mut make_batch(1, 100, T0, 1)),
        Err(LogError::Poisoned { .. })
    ));
    assert_eq!(read_all(&log, 0), acked);
}

#[test]
fn a_damaged_sealed_index_is_rebuilt_from_its_segment() {
    let w = World::new();
    let log = w.open(small_config());
    let acked = fill(&log, 40, 10);
    drop(log);
    let index = w.path("00000000000000000000.index");
    let len = w.storage.read_file(&index).unwrap().len() as u64;
    w.storage.corrupt(&index, len - 3, 0x01).unwrap();
    let log = w.open(small_config());
    assert_eq!(read_all(&log, 0), acked);
    for (offset, b) in &acked {
        assert_eq!(&split_batches(&log.read(*offset, 1).unwrap().records)[0].1, b);
    }
}

#[test]
fn garbage_index_entries_only_cost_a_longer_walk() {
    // Entries are hints: a sealed index whose body is garbage (footer intact) must
    // not make reads return the wrong batch.
    let w = World::new();
    let log = w.open(small_config());
    let acked = fill(&log, 40, 11);
    drop(log);
    let index = w.path("00000000000000000000.index");
    let body = w.storage.read_file(&index).unwrap().len() - veltrix_log::index::FOOTER_BYTES;
    for at in (0..body).step_by(5) {
        w.storage.corrupt(&index, at as u64, 0x5a).unwrap();
    }
    let log = w.open(small_config());
    for (offset, b) in &acked {
        match log.read(*offset, 1) {
            Ok(r) => assert_eq!(&split_batches(&r.records)[0].1, b, "offset {offset}"),
            Err(e) => assert!(matches!(e, LogError::Corrupt { .. }), "offset {offset}: {e}"),
        }
    }
}

#[test]
fn concurrent_appenders_share_fsyncs() {
    let w = World::new();
    let log = Arc::new(w.open(LogConfig {
        segment_bytes_max: 1 << 24,
        ..small_config()
    }));
    w.storage.set_sync_delay(Some(Duration::from_millis(2)));
    let threads = 8;
    let per_thread = 25;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    log.append_durable(&mut make_batch(1, 200, T0, (t * per_thread + i) as u8))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let appends = (threads * per_thread) as u64;
    let fsyncs = log.stats().fsyncs.load(Ordering::Relaxed);
    assert_eq!(log.stats().fsync_batches.load(Ordering::Relaxed), appends);
    assert!(
        fsyncs * 2 < appends,
        "{fsyncs} fsyncs for {appends} appends: no group commit"
    );
    assert_eq!(read_all(&log, 0).len(), appends as usize);
}

#[test]
fn recovery_reads_one_segment_however_long_the_log() {
    // Recovery trusts sealed segments by their index footer, so the bytes it reads
    // are bounded by the newest segment, not by the size of the log.
    for segments in [5usize, 50] {
        let w = World::new();
        let config = LogConfig {
            segment_bytes_max: 8192,
            ..small_config()
        };
        let log = w.open(config);
        while log.segment_count() < segments {
            log.append_durable(&mut make_batch(1, 1000, T0, 1)).unwrap();
        }
        drop(log);
        w.storage.crash(true, 5);
        let before = w.storage.bytes_read();
        let log = w.open(config);
        let read = w.storage.bytes_read() - before;
        let bound = config.segment_bytes_max + 64 * segments as u64;
        assert!(
            read <= bound,
            "{segments} segments: recovery read {read} bytes, bound {bound}"
        );
        assert!(log.log_end() > 0);
    }
}

#[test]
fn relaxed_durability_can_lose_acknowledged_batches_and_says_so() {
    // The documented price of a flush interval: a crash before the flush loses
    // acknowledged batches. What remains is still a clean prefix.
    let w = World::new();
    let config = LogConfig {
        flush: FlushPolicy::Interval {
            flush_interval_ms: 1000,
        },
        ..small_config()
    };
    let log = w.open(config);
    assert!(log.stats().relaxed_durability.load(Ordering::Relaxed));
    let acked = fill(&log, 10, 12);
    drop(log);
    w.storage.crash(false, 0);
    let log = w.open(config);
    let got = read_all(&log, 0);
    assert!(got.len() < acked.len(), "unsynced acknowledged batches are gone");
    assert_eq!(got[..], acked[..got.len()]);
}

/// Out of file descriptors, writing the recovery point failed at its open and
/// poisoned the partition, which then refused every append for good. Nothing
/// was written, so the round is skipped and counted instead, and the next
/// interval writes the point.
#[test]
fn a_recovery_point_that_cannot_be_opened_is_skipped_without_poisoning() {
    let w = World::new();
    let log = w.open(small_config());
    fill(&log, 3, 1);
    w.clock.advance(RECOVERY_POINT_INTERVAL_MS);
    w.storage.fail_opens(true);
    log.tick().unwrap();
    w.storage.fail_opens(false);
    assert!(log.poisoned().is_none(), "{:?}", log.poisoned());
    assert_eq!(log.stats().recovery_point_skips.load(Ordering::Relaxed), 1);
    log.append_durable(&mut make_batch(1, 100, T0, 9)).unwrap();
    w.clock.advance(RECOVERY_POINT_INTERVAL_MS);
    log.tick().unwrap();
    let point = veltrix_log::checkpoint::read_checkpoint(&w.storage, &w.dir, "recovery-point").unwrap();
    assert_eq!(point, Some(log.log_end()));
}
