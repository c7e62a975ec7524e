//! Open files: a broker's descriptors must not grow with its partition count.
//! The simulator counts open handles as a kernel counts descriptors; these tests
//! drive many partitions through appends, rolls, reads, fsyncs and reopening,
//! and check the count never exceeds the environment's two bounds, and that an
//! evicted handle costs neither durability nor a failed fsync's poison.

use std::path::PathBuf;
use std::sync::Arc;

use veltrix_log::sim::{SimClock, SimStorage};
use veltrix_log::{Env, Log, LogConfig, LogError};

use crate::support::{T0, make_batch, read_all, small_config};

const SEALED_MAX: usize = 4;
const ACTIVE_MAX: usize = 8;
/// Far more partitions than handles either cache may keep.
const PARTITIONS: usize = 60;
/// Files one operation holds open for a moment outside the caches: recovery
/// reads a segment and its index before the segment's handle is cached.
const TRANSIENT_MAX: u64 = 2;

fn env(storage: &SimStorage) -> Arc<Env> {
    Env::with_bounds(
        Arc::new(storage.clone()),
        Arc::new(SimClock::new(T0)),
        SEALED_MAX,
        ACTIVE_MAX,
    )
}

fn dir(p: usize) -> PathBuf {
    PathBuf::from(format!("/data/t/{p}"))
}

fn open_all(env: &Arc<Env>, config: LogConfig) -> Vec<Log> {
    (0..PARTITIONS)
        .map(|p| Log::open(env.clone(), dir(p), config).expect("open partition"))
        .collect()
}

#[test]
fn many_partitions_appending_round_robin_never_hold_more_handles_than_the_bounds() {
    let storage = SimStorage::new();
    let bound = (SEALED_MAX + ACTIVE_MAX) as u64;
    let env = env(&storage);
    let logs = open_all(&env, small_config());
    let open = storage.open_handles();
    assert!(open <= bound, "opening {PARTITIONS} partitions kept {open} files open");
    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); PARTITIONS];
    // Enough rounds that every partition rolls, so sealed segments are read too.
    for round in 0..12u8 {
        for (p, log) in logs.iter().enumerate() {
            let mut batch = make_batch(2, 700, T0 + i64::from(round), round ^ p as u8);
            log.append_durable(&mut batch).expect("append");
            sent[p].push(batch);
            let open = storage.open_handles();
            assert!(open <= bound, "round {round}, partition {p}: {open} handles open");
        }
    }
    for (p, log) in logs.iter().enumerate() {
        assert!(log.segment_count() > 1, "partition {p} rolled");
        let got: Vec<Vec<u8>> = read_all(log, 0).into_iter().map(|(_, b)| b).collect();
        assert_eq!(got, sent[p], "partition {p} reads back what was appended");
    }
    let peak = storage.take_open_handles_peak();
    assert!(peak <= bound, "{peak} handles were open at once, over {bound}");
    assert!(env.cached_active_files() <= ACTIVE_MAX && env.cached_files() <= SEALED_MAX);

    // A clean close and a reopen of every partition stay within the bounds too.
    for log in &logs {
        log.close().expect("close");
    }
    drop(logs);
    let env = self::env(&storage);
    let logs = open_all(&env, small_config());
    for (p, log) in logs.iter().enumerate() {
        let got: Vec<Vec<u8>> = read_all(log, 0).into_iter().map(|(_, b)| b).collect();
        assert_eq!(got, sent[p], "partition {p} after the restart");
    }
    let open = storage.open_handles();
    assert!(open <= bound, "{open} handles open after the restart");
    let peak = storage.take_open_handles_peak();
    assert!(
        peak <= bound + TRANSIENT_MAX,
        "{peak} handles were open at once during the restart"
    );
}

/// Two partitions and room for one active handle: every append to one evicts
/// the other's handle.
fn two_partitions_one_active_handle(storage: &SimStorage) -> (Arc<Env>, Log, Log) {
    let env = Env::with_bounds(Arc::new(storage.clone()), Arc::new(SimClock::new(T0)), 1, 1);
    let a = Log::open(env.clone(), dir(0), LogConfig::default()).unwrap();
    let b = Log::open(env.clone(), dir(1), LogConfig::default()).unwrap();
    (env, a, b)
}

#[test]
fn an_fsync_after_the_writing_handle_was_evicted_makes_the_write_durable() {
    let storage = SimStorage::new();
    let (_env, a, b) = two_partitions_one_active_handle(&storage);
    let mut first = make_batch(1, 200, T0, 1);
    let written = a.append(&mut first).unwrap();
    // Evicts and closes the handle `a` wrote through, before `a` fsyncs.
    b.append_durable(&mut make_batch(1, 200, T0, 2)).unwrap();
    assert_eq!(storage.open_handles(), 1, "the evicted handle is closed");
    a.wait_durable(written.next_offset).unwrap();
    drop((a, b));
    storage.crash(true, 7);
    let (_env, a, _b) = two_partitions_one_active_handle(&storage);
    let got: Vec<Vec<u8>> = read_all(&a, 0).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, vec![first], "the acknowledged batch survived the crash");
}

#[test]
fn a_failed_fsync_through_a_reopened_handle_still_poisons_the_partition() {
    let storage = SimStorage::new();
    let (_env, a, b) = two_partitions_one_active_handle(&storage);
    let written = a.append(&mut make_batch(1, 200, T0, 1)).unwrap();
    b.append_durable(&mut make_batch(1, 200, T0, 2)).unwrap();
    storage.fail_syncs(true);
    let err = a.wait_durable(written.next_offset).unwrap_err();
    assert!(matches!(err, LogError::Poisoned { .. }), "{err}");
    storage.fail_syncs(false);
    assert!(a.poisoned().is_some());
    assert!(
        a.append(&mut make_batch(1, 200, T0, 3)).is_err(),
        "a poisoned partition refuses appends"
    );
    assert!(
        a.wait_durable(written.next_offset).is_err(),
        "the fsync is never retried"
    );
}
