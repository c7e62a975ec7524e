//! Idempotent producers: duplicates, sequence and epoch checks, and state that
//! survives clean restarts, power loss, damaged snapshots and expiry.

use veltrix_log::batch::{self, build};
use veltrix_log::io::Storage;
use veltrix_log::{LogConfig, LogError};

use crate::support::{World, read_all, small_config};

/// A batch of `count` records from producer `pid` starting at sequence `seq`.
fn idem(pid: i64, epoch: i16, seq: i32, count: i32) -> Vec<u8> {
    build::batch(
        build::Spec {
            record_count: count,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            base_timestamp: 1,
            max_timestamp: 1,
            ..build::Spec::default()
        },
        300,
        (seq % 251) as u8,
    )
}

/// `(producer id, base sequence)` of every batch in the log, in offset order.
fn sequences(log: &veltrix_log::Log) -> Vec<(i64, i32)> {
    read_all(log, log.log_start())
        .iter()
        .map(|(_, b)| {
            let h = batch::verify(b).unwrap();
            (h.producer_id, h.base_sequence)
        })
        .collect()
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_written_again() {
    let w = World::new();
    let log = w.open(small_config());
    let first = log.append_durable(&mut idem(7, 0, 0, 3)).unwrap();
    let second = log.append_durable(&mut idem(7, 0, 3, 2)).unwrap();
    let end = log.log_end();
    let retry = log.append_durable(&mut idem(7, 0, 0, 3)).unwrap();
    assert!(retry.duplicate);
    assert!(!first.duplicate);
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert_eq!(
        log.append_durable(&mut idem(7, 0, 3, 2)).unwrap().base_offset,
        second.base_offset
    );
    assert_eq!(log.log_end(), end, "a duplicate writes nothing");
    assert_eq!(log.stats().duplicates.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(sequences(&log), vec![(7, 0), (7, 3)]);
}

#[test]
fn gaps_and_fenced_epochs_are_refused_and_leave_no_trace() {
    let w = World::new();
    let log = w.open(small_config());
    log.append_durable(&mut idem(1, 2, 0, 1)).unwrap();
    let end = log.log_end();
    assert!(matches!(
        log.append(&mut idem(1, 2, 5, 1)),
        Err(LogError::OutOfOrderSequence {
            producer_id: 1,
            expected: 1,
            got: 5
        })
    ));
    assert!(matches!(
        log.append(&mut idem(1, 1, 1, 1)),
        Err(LogError::InvalidProducerEpoch { current: 2, got: 1, .. })
    ));
    assert!(matches!(
        log.append(&mut idem(1, 3, 4, 1)),
        Err(LogError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(log.log_end(), end);
    // A new epoch starts again at 0 and fences the old one.
    log.append_durable(&mut idem(1, 3, 0, 1)).unwrap();
    assert!(matches!(
        log.append(&mut idem(1, 2, 1, 1)),
        Err(LogError::InvalidProducerEpoch { current: 3, .. })
    ));
    // Other producers and plain batches are independent.
    log.append_durable(&mut idem(2, 0, 40, 1)).unwrap();
    log.append_durable(&mut crate::support::make_batch(1, 100, 1, 0))
        .unwrap();
}

/// Appends `n` single-record batches of producer 9 from sequence `from`; with
/// `small_config` they span several segments.
fn fill(log: &veltrix_log::Log, from: i32, n: i32) {
    for seq in from..from + n {
        log.append_durable(&mut idem(9, 0, seq, 1)).unwrap();
    }
}

fn assert_duplicate_of_last(log: &veltrix_log::Log, last_seq: i32) {
    let end = log.log_end();
    let retry = log.append_durable(&mut idem(9, 0, last_seq, 1)).unwrap();
    assert!(retry.duplicate, "retry of seq {last_seq} must be recognised");
    assert_eq!(retry.base_offset, end - 1);
    assert!(matches!(
        log.append(&mut idem(9, 0, last_seq + 2, 1)),
        Err(LogError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn state_survives_a_clean_restart_without_replaying() {
    let w = World::new();
    let log = w.open(small_config());
    fill(&log, 0, 40);
    assert!(log.segment_count() > 2);
    log.close().unwrap();
    drop(log);
    let before = w.storage.bytes_read();
    let log = w.open(small_config());
    assert!(w.storage.bytes_read() - before < 4096, "a clean open replays nothing");
    assert_duplicate_of_last(&log, 39);
}

#[test]
fn state_survives_power_loss_from_the_roll_snapshot_and_the_tail() {
    let w = World::new();
    let log = w.open(small_config());
    fill(&log, 0, 40);
    // Written but never made durable: power loss takes it back, so its retry
    // after the restart must be written, not answered as a duplicate.
    let lost = log.append(&mut idem(9, 0, 40, 1)).unwrap();
    drop(log);
    w.storage.crash(false, 1);
    let log = w.open(small_config());
    assert_eq!(log.log_end(), lost.base_offset);
    assert_duplicate_of_last(&log, 39);
    let again = log.append_durable(&mut idem(9, 0, 40, 1)).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, lost.base_offset);
}

/// The duplicate filter can drop every record of an idempotent producer's
/// batch: the batch of none stays in the log and carries the producer's
/// sequence numbers, at once and after power loss (the producer state is then
/// rebuilt from the log's tail), so its next batch is in sequence and a retry
/// of the thinned one is a duplicate.
#[test]
fn a_filtered_batch_carries_its_producers_sequences_across_power_loss() {
    let w = World::new();
    let log = w.open(small_config());
    log.append_durable(&mut idem(4, 0, 0, 2)).unwrap();
    for kept in [1, 0] {
        let mut thinned = idem(4, 0, 2 + (1 - kept) * 3, 3);
        batch::set_record_fields(&mut thinned, kept, 1, 1);
        let appended = log
            .append_verified(batch::Verified::filtered(&thinned, 2048).unwrap())
            .unwrap();
        assert!(!appended.duplicate);
    }
    log.wait_durable(log.log_end()).unwrap();
    drop(log);
    w.storage.crash(false, 3);
    let log = w.open(small_config());
    assert_eq!(log.log_end(), 8);
    let retry = log.append_durable(&mut idem(4, 0, 5, 3)).unwrap();
    assert!(
        retry.duplicate,
        "a retry of the batch of none is answered from the producer state"
    );
    assert_eq!(retry.base_offset, 5);
    let next = log.append_durable(&mut idem(4, 0, 8, 1)).unwrap();
    assert_eq!((next.base_offset, next.duplicate), (8, false));
    assert_eq!(sequences(&log), vec![(4, 0), (4, 2), (4, 5), (4, 8)]);
}

#[test]
fn a_damaged_or_missing_snapshot_costs_a_longer_replay_not_a_wrong_answer() {
    for damage in ["flip", "delete-all"] {
        let w = World::new();
        let log = w.open(small_config());
        fill(&log, 0, 40);
        drop(log);
        w.storage.crash(false, 2);
        let snapshots: Vec<_> = w
            .storage
            .files()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "producers"))
            .collect();
        assert_eq!(snapshots.len(), 2, "two snapshots are kept: {snapshots:?}");
        match damage {
            "flip" => w.storage.corrupt(snapshots.last().unwrap(), 12, 0x40).unwrap(),
            _ => {
                for s in &snapshots {
                    w.storage.remove_file(s).unwrap();
                }
            }
        }
        let log = w.open(small_config());
        assert_duplicate_of_last(&log, 39);
    }
}

#[test]
fn idle_producers_expire_and_are_then_accepted_from_any_sequence() {
    let w = World::new();
    let config = LogConfig {
        producer_id_expiration_ms: 60_000,
        ..small_config()
    };
    let log = w.open(config);
    log.append_durable(&mut idem(5, 0, 0, 1)).unwrap();
    w.clock.advance(59_000);
    assert_eq!(log.tick().unwrap().producers_expired, 0);
    w.clock.advance(1_000);
    assert_eq!(log.tick().unwrap().producers_expired, 1);
    assert_eq!(log.producer_count(), 0);
    assert!(!log.append_durable(&mut idem(5, 0, 17, 1)).unwrap().duplicate);
}

#[test]
fn producers_beyond_the_limit_evict_the_least_recently_active() {
    let w = World::new();
    let config = LogConfig {
        producers_max: 3,
        ..small_config()
    };
    let log = w.open(config);
    for pid in 0..5 {
        log.append_durable(&mut idem(pid, 0, 0, 1)).unwrap();
        w.clock.advance(10);
    }
    assert_eq!(log.producer_count(), 3);
    // Producer 4 is remembered, producer 0 was forgotten.
    assert!(log.append_durable(&mut idem(4, 0, 0, 1)).unwrap().duplicate);
    assert!(!log.append_durable(&mut idem(0, 0, 0, 1)).unwrap().duplicate);
}

mod model {
    //! A property test: idempotent producers sending, retrying and losing batches
    //! across clean and unclean reboots. Whatever happens, every acknowledged batch
    //! is in the log exactly once, and a retry is answered with its original offset.

    use std::collections::HashMap;

    use proptest::prelude::*;
    use veltrix_log::Log;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Producer `p` sends its next batch and waits for it to be durable.
        Send {
            p: i64,
            count: i32,
        },
        /// Producer `p` sends its next batch without waiting: a crash may take it.
        SendUnacked {
            p: i64,
            count: i32,
        },
        /// Producer `p` resends one of its last five acknowledged batches.
        Retry {
            p: i64,
            back: usize,
        },
        CleanReboot,
        Crash {
            torn: bool,
            seed: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..3i64, 1..4i32).prop_map(|(p, count)| Op::Send { p, count }),
            2 => (0..3i64, 1..4i32).prop_map(|(p, count)| Op::SendUnacked { p, count }),
            3 => (0..3i64, 0..5usize).prop_map(|(p, back)| Op::Retry { p, back }),
            1 => Just(Op::CleanReboot),
            1 => (any::<bool>(), any::<u64>()).prop_map(|(torn, seed)| Op::Crash { torn, seed }),
        ]
    }

    /// What a producer knows: its acknowledged batches and the ones in doubt.
    #[derive(Default)]
    struct Producer {
        next_seq: i32,
        /// `(first sequence, record count, base offset)`.
        acked: Vec<(i32, i32, i64)>,
        unacked: Vec<(i32, i32)>,
    }

    fn send(log: &Log, pid: i64, seq: i32, count: i32) -> i64 {
        let a = log.append_durable(&mut idem(pid, 0, seq, count)).unwrap();
        a.base_offset
    }

    fn check(log: &Log, producers: &HashMap<i64, Producer>) {
        let in_log = sequences(log);
        let mut seen = std::collections::HashSet::new();
        for key in &in_log {
            assert!(seen.insert(*key), "{key:?} is in the log twice: {in_log:?}");
        }
        for (pid, p) in producers {
            for (seq, _, _) in &p.acked {
                assert!(seen.contains(&(*pid, *seq)), "acknowledged ({pid}, {seq}) is missing");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn acknowledged_batches_are_in_the_log_exactly_once(ops in proptest::collection::vec(op(), 1..60)) {
            let w = World::new();
            let mut log = w.open(small_config());
            let mut producers: HashMap<i64, Producer> = HashMap::new();
            for op in ops {
                match op {
                    Op::Send { p, count } | Op::SendUnacked { p, count } => {
                        let pr = producers.entry(p).or_default();
                        // A producer resends what is in doubt before anything new,
                        // as librdkafka does after a timeout.
                        for (seq, n) in std::mem::take(&mut pr.unacked) {
                            let base = send(&log, p, seq, n);
                            pr.acked.push((seq, n, base));
                        }
                        let seq = pr.next_seq;
                        pr.next_seq += count;
                        if matches!(op, Op::Send { .. }) {
                            let base = send(&log, p, seq, count);
                            pr.acked.push((seq, count, base));
                        } else {
                            log.append(&mut idem(p, 0, seq, count)).unwrap();
                            pr.unacked.push((seq, count));
                        }
                    }
                    Op::Retry { p, back } => {
                        let Some(pr) = producers.get(&p) else { continue };
                        if !pr.unacked.is_empty() || back >= pr.acked.len().min(5) {
                            continue;
                        }
                        let (seq, count, base) = pr.acked[pr.acked.len() - 1 - back];
                        let a = log.append_durable(&mut idem(p, 0, seq, count)).unwrap();
                        prop_assert!(a.duplicate);
                        prop_assert_eq!(a.base_offset, base);
                    }
                    Op::CleanReboot => {
                        log.close().unwrap();
                        drop(log);
                        log = w.open(small_config());
                    }
                    Op::Crash { torn, seed } => {
                        drop(log);
                        w.storage.crash(torn, seed);
                        log = w.open(small_config());
                    }
                }
                check(&log, &producers);
            }
        }
    }
}
