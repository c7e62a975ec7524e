//! Transactions in one partition: the last stable offset, `read_committed`
//! reads, aborted ranges, markers that fence an older epoch, and all of it
//! across restarts and crashes.

use veltrix_log::batch::{self, build};
use veltrix_log::io::Storage;
use veltrix_log::txn::AbortedTxn;
use veltrix_log::{Log, LogError};

use crate::support::{World, read_all, small_config};

const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// A transactional batch of `count` records of producer `pid`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Vec<u8> {
    build::batch(
        build::Spec {
            record_count: count,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            attributes: TRANSACTIONAL,
            ..build::Spec::default()
        },
        200,
        pid as u8,
    )
}

/// The marker ending `pid`'s transaction, as the broker writes it.
fn marker(pid: i64, epoch: i16, commit: bool) -> Vec<u8> {
    let mut record = vec![0u8, 0, 0, 8]; // attributes, deltas, key length 4
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&i16::from(commit).to_be_bytes());
    record.push(12); // value length 6
    record.extend_from_slice(&[0; 6]);
    record.push(0); // headers
    let mut buf = vec![0u8; batch::HEADER_BYTES];
    buf.push((record.len() as u8) << 1);
    buf.extend_from_slice(&record);
    build::write_into(
        &mut buf,
        build::Spec {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: -1,
            attributes: TRANSACTIONAL | CONTROL,
            ..build::Spec::default()
        },
    );
    buf
}

/// A plain batch (no producer).
fn plain() -> Vec<u8> {
    build::batch(build::Spec::default(), 150, 1)
}

/// Base offsets of the batches a `read_committed` reader sees from 0.
fn committed_bases(log: &Log) -> Vec<i64> {
    let mut out = Vec::new();
    let mut at = log.log_start();
    loop {
        let r = log.read_isolated(at, 1 << 20, true).unwrap();
        if r.records.is_empty() {
            return out;
        }
        let mut rest = &r.records[..];
        while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
            out.push(batch::parse_fixed(&rest[..batch::HEADER_BYTES]).unwrap().base_offset);
            rest = &rest[size..];
        }
        at = r.next_offset;
    }
}

#[test]
fn read_committed_stops_at_the_oldest_open_transaction() {
    let w = World::new();
    let log = w.open(small_config());
    log.append_durable(&mut plain()).unwrap(); // 0
    log.append_durable(&mut txn_batch(7, 0, 0, 2)).unwrap(); // 1..=2
    log.append_durable(&mut plain()).unwrap(); // 3
    log.append_durable(&mut txn_batch(8, 0, 0, 1)).unwrap(); // 4
    assert_eq!(log.high_watermark(), 5);
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(committed_bases(&log), [0]);
    assert_eq!(read_all(&log, 0).len(), 4, "read_uncommitted sees everything");
    // Reading between the LSO and the high watermark is no error.
    assert!(log.read_isolated(3, 1 << 20, true).unwrap().records.is_empty());
    log.append_durable(&mut marker(7, 0, true)).unwrap(); // 5
    assert_eq!(log.last_stable_offset(), 4, "producer 8's transaction is still open");
    assert_eq!(committed_bases(&log), [0, 1, 3]);
    log.append_durable(&mut marker(8, 0, false)).unwrap(); // 6
    assert_eq!(log.last_stable_offset(), log.high_watermark());
    assert_eq!(committed_bases(&log), [0, 1, 3, 4, 5, 6]);
    assert_eq!(
        log.aborted_transactions(0, 7),
        [AbortedTxn {
            producer_id: 8,
            first_offset: 4,
            last_offset: 6
        }]
    );
    assert!(log.aborted_transactions(0, 4).is_empty(), "a range before it");
    assert_eq!(log.transaction_counts(), (0, 1));
}

#[test]
fn a_fencing_marker_refuses_the_older_epoch_and_lets_the_new_one_start() {
    let w = World::new();
    let log = w.open(small_config());
    log.append_durable(&mut txn_batch(7, 0, 0, 1)).unwrap();
    // The coordinator fenced epoch 0 and aborts with epoch 1.
    log.append_durable(&mut marker(7, 1, false)).unwrap();
    assert!(matches!(
        log.append_durable(&mut txn_batch(7, 0, 1, 1)),
        Err(LogError::InvalidProducerEpoch { current: 1, got: 0, .. })
    ));
    assert!(
        matches!(
            log.append_durable(&mut marker(7, 0, true)),
            Err(LogError::InvalidProducerEpoch { .. })
        ),
        "a marker of an older epoch"
    );
    log.append_durable(&mut txn_batch(7, 2, 0, 1)).unwrap();
    assert_eq!(log.last_stable_offset(), 2);
}

#[test]
fn open_and_aborted_transactions_survive_restarts_and_crashes() {
    let w = World::new();
    let config = small_config();
    {
        let log = w.open(config);
        // Enough batches to seal segments (and write producer snapshots)
        // between the transaction's start and its marker.
        log.append_durable(&mut txn_batch(5, 0, 0, 1)).unwrap(); // 0
        for _ in 0..40 {
            log.append_durable(&mut plain()).unwrap();
        }
        log.append_durable(&mut marker(5, 0, false)).unwrap(); // 41
        log.append_durable(&mut txn_batch(6, 0, 0, 1)).unwrap(); // 42
        for _ in 0..40 {
            log.append_durable(&mut plain()).unwrap();
        }
        assert!(log.segment_count() > 2);
        log.close().unwrap();
    }
    let expected = [AbortedTxn {
        producer_id: 5,
        first_offset: 0,
        last_offset: 41,
    }];
    let log = w.open(config);
    assert_eq!(log.last_stable_offset(), 42, "after a clean close");
    assert_eq!(log.aborted_transactions(0, 100), expected);
    drop(log);
    w.storage.crash(true, 7);
    let log = w.open(config);
    assert_eq!(log.last_stable_offset(), 42, "after a crash");
    assert_eq!(log.aborted_transactions(0, 100), expected);
    // With every snapshot gone, the batches alone tell the same.
    drop(log);
    for f in w.storage.files() {
        if f.extension().is_some_and(|e| e == "producers") {
            w.storage.remove_file(&f).unwrap();
        }
    }
    let log = w.open(config);
    assert_eq!(log.last_stable_offset(), 42, "rebuilt from the batches");
    assert_eq!(log.aborted_transactions(0, 100), expected);
    log.append_durable(&mut marker(6, 0, true)).unwrap();
    assert_eq!(log.last_stable_offset(), log.high_watermark());
}

/// An abort for a transaction seen open is appended only while that very
/// transaction is still open: once it ended and the producer began its next
/// one, the late marker is not written (it would end the next one).
#[test]
fn a_conditional_marker_is_written_only_while_its_transaction_is_open() {
    let w = World::new();
    let log = w.open(small_config());
    log.append_durable(&mut txn_batch(7, 0, 0, 2)).unwrap();
    let seen = log.open_transactions();
    assert_eq!(seen, vec![(7, 0, 0)]);
    // The transaction ends, and the next one begins, before the abort.
    log.append_durable(&mut marker(7, 0, true)).unwrap();
    log.append_durable(&mut txn_batch(7, 0, 2, 1)).unwrap();
    let end = log.high_watermark();
    assert_eq!(log.append_marker_if_open(&mut marker(7, 0, false), 0).unwrap(), None);
    assert_eq!(log.high_watermark(), end, "nothing written");
    assert_eq!(log.open_transactions(), vec![(7, 0, 3)], "the next one is still open");
    // While it is the one seen, it is ended.
    let appended = log.append_marker_if_open(&mut marker(7, 0, false), 3).unwrap();
    assert_eq!(appended.map(|a| a.base_offset), Some(4));
    assert!(log.open_transactions().is_empty());
    assert_eq!(
        log.aborted_transactions(0, 5),
        vec![AbortedTxn {
            producer_id: 7,
            first_offset: 3,
            last_offset: 4
        }]
    );
}
