//! Log compaction: a model test (random keys, values, tombstones, appends,
//! rounds, and processes stopped at an exact step of a round then crashed)
//! and one test per setting.

use std::collections::BTreeMap;

use proptest::prelude::*;
use veltrix_log::io::Clock;
use veltrix_log::{CleanLimits, CompactionConfig, Log, LogConfig};

use crate::kv::{Kv, KvRewriter, batch_of, decode};
use crate::support::{World, read_all};

fn config(c: CompactionConfig) -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        segment_age_ms_max: 1000,
        batch_bytes_max: 2048,
        index_interval_bytes: 128,
        retention_ms: None,
        compaction: Some(c),
        ..LogConfig::default()
    }
}

fn always() -> CompactionConfig {
    CompactionConfig {
        min_cleanable_dirty_ppm: 0,
        ..CompactionConfig::default()
    }
}

/// Every record readable from `from`, as `(offset, key, value)`.
/// A record as read back: offset, key, value.
type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn records_from(log: &Log, from: i64) -> Vec<Row> {
    let mut out = Vec::new();
    for (_, b) in read_all(log, from) {
        for r in decode(&b).unwrap() {
            if r.offset >= from {
                out.push((r.offset, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec)));
            }
        }
    }
    out
}

/// Rolls everything into sealed segments, then cleans until a round is not
/// cut short by the key map.
fn clean_all(w: &World, log: &Log, limits: &CleanLimits) {
    w.clock.advance(2000);
    log.tick().unwrap();
    for _ in 0..100 {
        let o = log.clean(&KvRewriter, limits).unwrap();
        if !o.key_map_full {
            return;
        }
    }
    panic!("compaction did not finish in 100 rounds");
}

type Model = BTreeMap<i64, (u8, Option<u8>)>;

/// The latest record of each key, by offset.
fn latest(model: &Model) -> BTreeMap<i64, (u8, Option<u8>)> {
    let mut by_key = BTreeMap::new();
    for (&o, &(k, v)) in model {
        by_key.insert(k, (o, v));
    }
    by_key.into_iter().map(|(k, (o, v))| (o, (k, v))).collect()
}

fn as_rows(m: &BTreeMap<i64, (u8, Option<u8>)>, from: i64) -> Vec<Row> {
    m.range(from..)
        .map(|(&o, &(k, v))| (o, Some(vec![k]), v.map(|v| vec![v; 3])))
        .collect()
}

/// After a full compaction, a read from any offset returns exactly the
/// latest record of each key at or after it, at its original offset.
fn assert_compacted(log: &Log, model: &Model) {
    let want = latest(model);
    let end = model.keys().last().map_or(0, |o| o + 1);
    for from in 0..=end {
        assert_eq!(records_from(log, from), as_rows(&want, from), "reading from {from}");
    }
}

/// After an interrupted round: every latest record is there, and whatever
/// else is there is a record the model holds at that offset.
fn assert_nothing_lost(log: &Log, model: &Model) {
    let rows = records_from(log, 0);
    let all = as_rows(model, 0);
    for row in &rows {
        assert!(all.contains(row), "{row:?} was never written at that offset");
    }
    for row in as_rows(&latest(model), 0) {
        assert!(rows.contains(&row), "latest record {row:?} lost");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(u8, Option<u8>)>),
    Clean,
    /// The process stops after this many changes of a round, then the
    /// machine crashes (torn or not).
    CrashDuringClean(u64, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u8..24, prop::option::weighted(0.8, any::<u8>())), 1..6).prop_map(Op::Append),
        1 => Just(Op::Clean),
        1 => (0u64..40, any::<bool>()).prop_map(|(n, t)| Op::CrashDuringClean(n, t)),
    ]
}

fn append(log: &Log, model: &mut Model, records: &[(u8, Option<u8>)], ts: i64) {
    let kvs: Vec<Kv> = records
        .iter()
        .map(|&(k, v)| (Some(vec![k]), v.map(|v| vec![v; 3])))
        .collect();
    let mut b = batch_of(&kvs, ts, (-1, -1, -1));
    let a = log.append_durable(&mut b).unwrap();
    for (i, r) in records.iter().enumerate() {
        model.insert(a.base_offset + i as i64, *r);
    }
}

fn run(ops: Vec<Op>) {
    let w = World::new();
    let cfg = config(always());
    // Small enough that a round over 24 keys often fills it.
    let limits = CleanLimits {
        key_map_bytes_max: 512,
        io_bytes_per_sec_max: None,
    };
    let mut log = w.open(cfg);
    let mut model = Model::new();
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append(records) => append(&log, &mut model, &records, w.clock.now_ms()),
            Op::Clean => {
                clean_all(&w, &log, &limits);
                assert_compacted(&log, &model);
            }
            Op::CrashDuringClean(n, torn) => {
                w.clock.advance(2000);
                w.storage.stop_after(Some(n));
                let _ = log.tick();
                let _ = log.clean(&KvRewriter, &limits);
                w.storage.stop_after(None);
                drop(log);
                w.storage.crash(torn, i as u64);
                log = w.open(cfg);
                assert_nothing_lost(&log, &model);
            }
        }
    }
    clean_all(&w, &log, &limits);
    assert_compacted(&log, &model);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn compacted_log_equals_the_latest_record_per_key_from_every_offset(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}

/// A process stopped after every possible number of changes of a round
/// (its roll, its writes and fsyncs, the renames, the marker, the swap, the
/// directory fsync), then crashed with torn writes or without: every latest
/// record survives, nothing else appears, and a full compaction afterwards
/// reaches the latest-per-key view. The steps run until a round completes
/// untouched, and some crashes must have come after a commit point (a swap
/// marker on disk), so that recovery's completion of a swap is exercised.
#[test]
fn a_crash_at_every_step_of_a_round_leaves_the_old_or_the_new_segments() {
    let limits = CleanLimits {
        key_map_bytes_max: 512,
        io_bytes_per_sec_max: None,
    };
    let mut after_commit = 0;
    for n in 0.. {
        assert!(n < 2_000, "a round never completed");
        let w = World::new();
        let cfg = config(always());
        let mut log = w.open(cfg);
        let mut model = Model::new();
        for i in 0..40u8 {
            append(&log, &mut model, &[(i % 7, Some(i))], w.clock.now_ms());
        }
        w.clock.advance(2000);
        w.storage.stop_after(Some(n));
        let _ = log.tick();
        let outcome = log.clean(&KvRewriter, &limits);
        w.storage.stop_after(None);
        let stopped = outcome.as_ref().map_or(true, |o| !o.ran) || log.poisoned().is_some();
        after_commit += usize::from(
            w.storage
                .files()
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "swapping")),
        );
        drop(log);
        w.storage.crash(n % 2 == 1, n);
        log = w.open(cfg);
        assert_nothing_lost(&log, &model);
        append(&log, &mut model, &[(3, None)], w.clock.now_ms());
        clean_all(&w, &log, &limits);
        assert_compacted(&log, &model);
        if !stopped {
            break;
        }
    }
    assert!(after_commit > 0, "no crash came after a swap's commit point");
}

fn fill(w: &World, log: &Log, keys: u8, rounds: u8) -> Model {
    let mut model = Model::new();
    for r in 0..rounds {
        for k in 0..keys {
            append(log, &mut model, &[(k, Some(r))], w.clock.now_ms());
        }
    }
    model
}

#[test]
fn tombstones_stay_for_delete_retention_after_their_first_compaction() {
    let w = World::new();
    let c = CompactionConfig {
        delete_retention_ms: 60_000,
        ..always()
    };
    let log = w.open(config(c));
    let mut model = fill(&w, &log, 4, 3);
    append(&log, &mut model, &[(1, None)], w.clock.now_ms());
    let limits = CleanLimits::default();
    clean_all(&w, &log, &limits);
    assert!(
        records_from(&log, 0)
            .iter()
            .any(|r| r.1 == Some(vec![1]) && r.2.is_none())
    );
    w.clock.advance(30_000);
    append(&log, &mut model, &[(2, Some(9))], w.clock.now_ms());
    clean_all(&w, &log, &limits);
    assert!(
        records_from(&log, 0).iter().any(|r| r.1 == Some(vec![1])),
        "kept within the retention"
    );
    w.clock.advance(40_000);
    append(&log, &mut model, &[(3, Some(9))], w.clock.now_ms());
    clean_all(&w, &log, &limits);
    let rows = records_from(&log, 0);
    assert!(!rows.iter().any(|r| r.1 == Some(vec![1])), "removed after it: {rows:?}");
    assert_eq!(rows.len(), 3);
}

#[test]
fn segments_younger_than_the_minimum_lag_are_not_compacted() {
    let w = World::new();
    let c = CompactionConfig {
        min_compaction_lag_ms: 10_000,
        ..always()
    };
    let log = w.open(config(c));
    let model = fill(&w, &log, 3, 4);
    w.clock.advance(2000);
    log.tick().unwrap();
    let o = log.clean(&KvRewriter, &CleanLimits::default()).unwrap();
    assert!(!o.ran, "everything is younger than the lag");
    assert_eq!(records_from(&log, 0).len(), model.len());
    w.clock.advance(10_000);
    let o = log.clean(&KvRewriter, &CleanLimits::default()).unwrap();
    assert!(o.ran && o.records_removed == 9, "{o:?}");
}

#[test]
fn the_dirty_ratio_waits_and_the_maximum_lag_forces_a_round() {
    let w = World::new();
    let c = CompactionConfig {
        min_cleanable_dirty_ppm: 990_000,
        max_compaction_lag_ms: 60_000,
        ..CompactionConfig::default()
    };
    let log = w.open(config(c));
    fill(&w, &log, 3, 4);
    clean_all(&w, &log, &CleanLimits::default());
    assert!(log.clean_point().is_some(), "a first round: everything is dirty");
    fill(&w, &log, 1, 1);
    w.clock.advance(2000);
    log.tick().unwrap();
    let o = log.clean(&KvRewriter, &CleanLimits::default()).unwrap();
    assert!(!o.ran, "little is dirty: {o:?}");
    w.clock.advance(60_000);
    let o = log.clean(&KvRewriter, &CleanLimits::default()).unwrap();
    assert!(o.ran && o.forced, "{o:?}");
}

#[test]
fn records_without_a_key_are_dropped_by_the_cleaner() {
    let w = World::new();
    let log = w.open(config(always()));
    let mut b = batch_of(
        &[(None, Some(vec![1])), (Some(vec![7]), Some(vec![2]))],
        0,
        (-1, -1, -1),
    );
    log.append_durable(&mut b).unwrap();
    clean_all(&w, &log, &CleanLimits::default());
    assert_eq!(records_from(&log, 0), vec![(1, Some(vec![7]), Some(vec![2]))]);
}

#[test]
fn an_idempotent_producer_keeps_its_sequence_across_compaction_and_a_reopen() {
    let w = World::new();
    let mut log = w.open(config(always()));
    for seq in 0..5 {
        let mut b = batch_of(&[(Some(vec![1]), Some(vec![seq as u8]))], 0, (42, 0, seq));
        log.append_durable(&mut b).unwrap();
    }
    clean_all(&w, &log, &CleanLimits::default());
    drop(log);
    // Snapshots gone: the state is rebuilt from the compacted headers alone.
    for f in w.storage.files() {
        if f.extension().is_some_and(|e| e == "producers") {
            veltrix_log::io::Storage::remove_file(&w.storage, &f).unwrap();
        }
    }
    log = w.open(config(always()));
    let mut retry = batch_of(&[(Some(vec![1]), Some(vec![4]))], 0, (42, 0, 4));
    assert!(
        log.append_durable(&mut retry).unwrap().duplicate,
        "a retry of the last batch is recognised"
    );
    let mut next = batch_of(&[(Some(vec![1]), Some(vec![5]))], 0, (42, 0, 5));
    assert!(!log.append_durable(&mut next).unwrap().duplicate);
}

#[test]
fn reads_running_during_rounds_never_fail_or_skip_a_latest_record() {
    let w = World::new();
    let log = std::sync::Arc::new(w.open(config(always())));
    let mut model = Model::new();
    for r in 0..30u8 {
        for k in 0..10 {
            append(&log, &mut model, &[(k, Some(r))], 0);
        }
    }
    w.clock.advance(2000);
    log.tick().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, done, model) = (log.clone(), done.clone(), model.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || reads < 20 {
                assert_nothing_lost(&log, &model);
                reads += 1;
            }
        })
    };
    let limits = CleanLimits {
        key_map_bytes_max: 256,
        io_bytes_per_sec_max: None,
    };
    for _ in 0..20 {
        log.clean(&KvRewriter, &limits).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    assert_compacted(&log, &model);
}

/// Records of the non-control batches, as `(offset, key, value)`.
fn data_records(log: &Log) -> Vec<Row> {
    let mut out = Vec::new();
    for (_, b) in read_all(log, 0) {
        if veltrix_log::batch::parse_header(&b).unwrap().is_control() {
            continue;
        }
        for r in decode(&b).unwrap() {
            out.push((r.offset, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec)));
        }
    }
    out
}

#[test]
fn aborted_records_are_removed_and_open_transactions_supersede_nothing() {
    use crate::kv::{marker, with_attributes};
    let w = World::new();
    let log = w.open(config(always()));
    let txn = |records: &[Kv], pid: i64, seq: i32| with_attributes(batch_of(records, 0, (pid, 0, seq)), 0x10);
    let kv = |k: &str, v: &str| (Some(k.as_bytes().to_vec()), Some(v.as_bytes().to_vec()));
    let mut batches = vec![
        txn(&[kv("a", "committed")], 7, 0),
        marker(7, 0, true),
        txn(&[kv("a", "aborted"), kv("c", "aborted")], 7, 1),
        marker(7, 0, false),
        batch_of(&[kv("b", "plain")], 0, (-1, -1, -1)),
        txn(&[kv("a", "pending")], 8, 0),
        batch_of(&[kv("b", "after")], 0, (-1, -1, -1)),
    ];
    for b in &mut batches {
        log.append_durable(b).unwrap();
    }
    clean_all(&w, &log, &CleanLimits::default());
    let rows = data_records(&log);
    let row = |o: i64, k: &str, v: &str| (o, Some(k.as_bytes().to_vec()), Some(v.as_bytes().to_vec()));
    assert_eq!(
        rows,
        vec![
            row(0, "a", "committed"),
            row(5, "b", "plain"),
            row(6, "a", "pending"),
            row(7, "b", "after")
        ],
        "the aborted records are gone and superseded nothing; past the open transaction nothing is compacted"
    );
}

/// The control batches of a log, as `(offset, producer id)`.
fn markers(log: &Log) -> Vec<(i64, i64)> {
    read_all(log, 0)
        .iter()
        .map(|(_, b)| veltrix_log::batch::parse_header(b).unwrap())
        .filter(|h| h.is_control())
        .map(|h| (h.base_offset, h.producer_id))
        .collect()
}

/// A marker goes once nothing of its transaction is left and
/// delete_retention_ms has passed since the round that first compacted it;
/// a transaction with a record left, or a batch the producer state keeps,
/// keeps its marker. Offsets never change, and the log reopened from its
/// snapshots or from nothing has no transaction open.
#[test]
fn markers_go_once_their_transaction_is_gone_and_delete_retention_has_passed() {
    use crate::kv::{marker, with_attributes};
    let w = World::new();
    let c = CompactionConfig {
        delete_retention_ms: 60_000,
        ..always()
    };
    let mut log = w.open(config(c));
    let txn = |records: &[Kv], seq: i32| with_attributes(batch_of(records, 0, (7, 0, seq)), 0x10);
    let kv = |k: &str, v: &str| (Some(k.as_bytes().to_vec()), Some(v.as_bytes().to_vec()));
    let mut batches = vec![
        // 0, 1: committed, its record superseded at 15 below.
        txn(&[kv("a", "committed")], 0),
        marker(7, 0, true),
        // 2..4: aborted.
        txn(&[kv("b", "aborted"), kv("c", "aborted")], 1),
        marker(7, 0, false),
        // 5, 6: committed, its record the latest of its key.
        txn(&[kv("d", "kept")], 3),
    ];
    batches.push(marker(7, 0, true));
    // 7..16: five more transactions, all of one key: the producer state
    // keeps their batches, so their markers stay whatever their records.
    for seq in 4..9 {
        batches.push(txn(&[kv("z", &seq.to_string())], seq));
        batches.push(marker(7, 0, true));
    }
    batches.push(batch_of(&[kv("a", "plain")], 0, (-1, -1, -1)));
    for b in &mut batches {
        log.append_durable(b).unwrap();
    }
    let before: Vec<i64> = markers(&log).iter().map(|m| m.0).collect();
    assert_eq!(before, vec![1, 4, 6, 8, 10, 12, 14, 16]);
    let limits = CleanLimits::default();
    clean_all(&w, &log, &limits);
    assert_eq!(
        markers(&log).iter().map(|m| m.0).collect::<Vec<_>>(),
        before,
        "within delete_retention_ms every marker stays"
    );
    w.clock.advance(61_000);
    log.append_durable(&mut batch_of(&[kv("y", "1")], 0, (-1, -1, -1)))
        .unwrap();
    clean_all(&w, &log, &limits);
    assert_eq!(
        markers(&log).iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![6, 8, 10, 12, 14, 16],
        "the markers of the superseded and the aborted transaction are gone"
    );
    let rows = data_records(&log);
    let offsets: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![5, 15, 17, 18], "{rows:?}");
    let end = log.high_watermark();
    assert_eq!(log.last_stable_offset(), end);
    drop(log);
    log = w.open(config(c));
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (end, end));
    assert!(log.open_transactions().is_empty());
    drop(log);
    // From nothing: every batch header replayed.
    for f in w.storage.files() {
        if f.extension().is_some_and(|e| e == "producers") {
            veltrix_log::io::Storage::remove_file(&w.storage, &f).unwrap();
        }
    }
    log = w.open(config(c));
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (end, end));
    assert!(log.open_transactions().is_empty(), "{:?}", log.open_transactions());
}
