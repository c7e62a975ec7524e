//! Regression tests found in review.
//!
//! Each test drives the log into one situation where it breaks a promise of the
//! engine (durability of acknowledged appends, reads that never stall or panic,
//! retention that deletes only what has expired, a poisoned partition after any
//! failed fsync) and asserts the promised behaviour.

use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use veltrix_log::batch;
use veltrix_log::io::{OpenMode, Storage, StorageFile};
use veltrix_log::sim::{SimClock, SimStorage};
use veltrix_log::{Env, Log, LogConfig, LogError};

use crate::support::*;

const SEGMENT_0: &str = "00000000000000000000.log";
const INDEX_0: &str = "00000000000000000000.index";

/// Appends durable batches of `size` bytes with timestamp `ts` until the log has
/// `segments` segments; returns them as `(offset, bytes)`.
fn fill_segments(log: &Log, segments: usize, size: usize, ts: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut tag = 0u8;
    while log.segment_count() < segments {
        let mut b = make_batch(1, size, ts, tag);
        let a = log.append_durable(&mut b).expect("durable append");
        out.push((a.base_offset, b));
        tag = tag.wrapping_add(1);
    }
    out
}

/// The one batch at `offset`, read on its own.
fn read_one(log: &Log, offset: i64) -> Result<Vec<u8>, LogError> {
    let r = log.read(offset, 1)?;
    Ok(split_batches(&r.records)
        .into_iter()
        .next()
        .map(|(_, b)| b)
        .unwrap_or_default())
}

// ---------------------------------------------------------------------------
// A storage wrapper with hooks, to put another operation exactly between two I/O
// steps of the log. The simulator alone can only fail a step, not pause it.
// ---------------------------------------------------------------------------

type SyncHook = Box<dyn FnOnce(io::Result<()>) -> io::Result<()> + Send>;
type ReadHook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Hooks {
    /// Runs once, on the next `sync` of the file at the path, with its outcome.
    sync: Mutex<Option<(PathBuf, SyncHook)>>,
    /// Runs once, before the next `read_at` of the file at the path.
    read: Mutex<Option<(PathBuf, ReadHook)>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hooks")
    }
}

impl Hooks {
    fn take_sync(&self, path: &Path) -> Option<SyncHook> {
        let mut slot = self.sync.lock().unwrap();
        match slot.as_ref() {
            Some((p, _)) if p == path => slot.take().map(|(_, h)| h),
            _ => None,
        }
    }

    fn take_read(&self, path: &Path) -> Option<ReadHook> {
        let mut slot = self.read.lock().unwrap();
        match slot.as_ref() {
            Some((p, _)) if p == path => slot.take().map(|(_, h)| h),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct HookedStorage {
    inner: SimStorage,
    hooks: Arc<Hooks>,
}

#[derive(Debug)]
struct HookedFile {
    inner: Arc<dyn StorageFile>,
    path: PathBuf,
    hooks: Arc<Hooks>,
}

impl StorageFile for HookedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // The hook runs before the inner file's lock is taken, so it may use the log.
        if let Some(hook) = self.hooks.take_read(&self.path) {
            hook();
        }
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        let outcome = self.inner.sync();
        match self.hooks.take_sync(&self.path) {
            Some(hook) => hook(outcome),
            None => outcome,
        }
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Storage for HookedStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(HookedFile {
            inner,
            path: path.to_path_buf(),
            hooks: self.hooks.clone(),
        }))
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<veltrix_log::io::LockGuard> {
        self.inner.lock_exclusive(path)
    }
}

/// A simulated world whose storage can run hooks between the log's I/O steps.
struct HookedWorld {
    storage: SimStorage,
    hooks: Arc<Hooks>,
    env: Arc<Env>,
    clock: Arc<SimClock>,
    dir: PathBuf,
}

impl HookedWorld {
    fn new() -> HookedWorld {
        let storage = SimStorage::new();
        let hooks = Arc::new(Hooks::default());
        let hooked = HookedStorage {
            inner: storage.clone(),
            hooks: hooks.clone(),
        };
        let clock = Arc::new(SimClock::new(T0));
        let env = Env::new(Arc::new(hooked), clock.clone(), 16);
        HookedWorld {
            storage,
            hooks,
            env,
            clock,
            dir: PathBuf::from("/data/topic-0"),
        }
    }

    fn open(&self, config: LogConfig) -> Log {
        Log::open(self.env.clone(), &self.dir, config).expect("open log")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

// ---------------------------------------------------------------------------
// Durability and poisoning
// ---------------------------------------------------------------------------

/// The recovery point's fsync ran under the state lock, so every append to the
/// partition waited for it once a second: a slow fsync of that small file
/// stalled producers for its whole duration. An append must go through while
/// it is in flight.
#[test]
fn appends_do_not_wait_for_the_recovery_point_fsync() {
    let w = HookedWorld::new();
    let log = Arc::new(w.open(small_config()));
    log.append_durable(&mut make_batch(1, 100, T0, 1)).unwrap();
    w.clock.advance(veltrix_log::RECOVERY_POINT_INTERVAL_MS);
    let (outcome_tx, outcome_rx) = mpsc::channel::<Option<bool>>();
    let during = log.clone();
    *w.hooks.sync.lock().unwrap() = Some((
        w.path("recovery-point"),
        Box::new(move |outcome| {
            let (done_tx, done_rx) = mpsc::channel();
            thread::spawn(move || {
                let appended = during.append(&mut make_batch(1, 100, T0, 2)).is_ok();
                let _ = done_tx.send(appended);
            });
            // Bounded: a log that holds the lock here would block the append
            // until this fsync returns.
            let _ = outcome_tx.send(done_rx.recv_timeout(Duration::from_secs(2)).ok());
            outcome
        }),
    ));
    log.tick().unwrap();
    let appended = outcome_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the recovery point was written");
    assert_eq!(appended, Some(true), "the append waited for the recovery point's fsync");
}

/// Proves that what asynchronous callers ask of a log never waits for a roll's
/// fsync, which runs under the state lock: `try_durable` (every acks=all
/// produce polls it), the log start, end and size (metadata, fetch, metrics),
/// and `try_append_shared` (produce requests appended on an async task), which
/// gives up instead. On a disk that stalls an fsync for a second, each of these
/// froze every connection on its worker thread.
#[test]
fn nothing_an_async_caller_asks_waits_for_a_rolls_fsync() {
    let w = HookedWorld::new();
    let log = Arc::new(w.open(small_config()));
    for i in 0..2u8 {
        log.append_durable(&mut make_batch(1, 1500, T0, i)).unwrap();
    }
    let (outcome_tx, outcome_rx) = mpsc::channel::<Option<(bool, i64, i64, u64, bool)>>();
    let during = log.clone();
    *w.hooks.sync.lock().unwrap() = Some((
        w.path(SEGMENT_0),
        Box::new(move |outcome| {
            let (done_tx, done_rx) = mpsc::channel();
            let log = during.clone();
            thread::spawn(move || {
                let durable = log.try_durable(1).is_some();
                let (start, end, size) = (log.log_start(), log.log_end(), log.size_bytes());
                let deferred = matches!(log.try_append_shared(&make_batch(1, 100, T0, 9)), Ok(None));
                let _ = done_tx.send((durable, start, end, size, deferred));
            });
            // Bounded: a log that makes them wait for the lock blocks them
            // until this fsync returns.
            let _ = outcome_tx.send(done_rx.recv_timeout(Duration::from_secs(2)).ok());
            outcome
        }),
    ));
    // Does not fit in segment 0: seals it (fsync under the state lock) first.
    log.append_durable(&mut make_batch(1, 1500, T0, 10)).unwrap();
    let answered = outcome_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the roll fsynced segment 0");
    let (durable, start, end, _size, deferred) = answered.expect("an async caller waited for the roll's fsync");
    assert!(durable, "offsets fsynced before the roll are durable");
    assert_eq!((start, end), (0, 2));
    assert!(deferred, "the append gave up instead of rolling or waiting");
    assert_eq!(log.log_end(), 3);
    assert!(log.stats().appends_deferred.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

/// Proves that a batch whose group-commit fsync failed is not acknowledged just
/// because a roll fsynced the same segment again after the failure. After a failed
/// fsync the kernel may have dropped the dirty pages, so the roll's successful
/// fsync says nothing about them; the waiter must get `Poisoned`.
#[test]
fn a_roll_after_a_failed_group_commit_fsync_does_not_acknowledge_the_lost_batch() {
    let w = HookedWorld::new();
    let log = Arc::new(w.open(small_config()));
    for i in 0..3u8 {
        log.append_durable(&mut make_batch(1, 1000, T0, i)).unwrap();
    }
    let (failed_tx, failed_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    // The leader's fsync fails, then stays in flight until the roll below is done.
    *w.hooks.sync.lock().unwrap() = Some((
        w.path(SEGMENT_0),
        Box::new(move |outcome| {
            failed_tx.send(()).unwrap();
            release_rx.recv_timeout(Duration::from_secs(5)).unwrap();
            outcome
        }),
    ));
    w.storage.fail_syncs(true);
    let leader = {
        let log = log.clone();
        thread::spawn(move || log.append_durable(&mut make_batch(1, 500, T0, 10)))
    };
    failed_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    w.storage.fail_syncs(false);
    // This append does not fit in segment 0, so it seals (and fsyncs) it first. It
    // runs on its own thread so that a log which makes the roll wait for the fsync in
    // flight does not deadlock the test; the wait for it is bounded.
    let (rolled_tx, rolled_rx) = mpsc::channel::<()>();
    let roller = {
        let log = log.clone();
        thread::spawn(move || {
            let r = log.append(&mut make_batch(1, 1000, T0, 11));
            let _ = rolled_tx.send(());
            r
        })
    };
    let _ = rolled_rx.recv_timeout(Duration::from_millis(500));
    release_tx.send(()).unwrap();
    let result = leader.join().unwrap();
    let _ = roller.join().unwrap();
    assert!(
        matches!(result, Err(LogError::Poisoned { .. })),
        "a batch whose fsync failed was acknowledged: {result:?}"
    );
}

/// Proves that a failed directory fsync while retention deletes segments poisons
/// the partition, as every other failed fsync does. Otherwise the next roll or
/// retention fsyncs the directory again (a retried fsync), and a crash in between
/// brings deleted segments back, moving the log start backwards.
#[test]
fn a_failed_directory_fsync_during_retention_poisons_the_partition() {
    let w = World::new();
    let log = w.open(LogConfig {
        retention_bytes: Some(5000),
        ..small_config()
    });
    fill_segments(&log, 5, 1000, T0);
    w.storage.fail_syncs(true);
    let result = log.tick();
    assert!(result.is_err(), "the failed directory fsync is reported: {result:?}");
    assert!(
        log.poisoned().is_some(),
        "a failed directory fsync must poison the partition, got {result:?} and no poison"
    );
}

/// Proves that when recovery finds the log start checkpoint past the recovered end
/// (here: the last batch was damaged on disk and cut), batches appended and
/// acknowledged afterwards stay readable after the next restart. The clamped log
/// start is kept only in memory, so the next open applies the old checkpoint again
/// and hides the acknowledged batch below it.
#[test]
fn an_append_acknowledged_after_recovery_clamped_the_log_start_survives_a_restart() {
    let w = World::new();
    let log = w.open(small_config());
    for i in 0..5u8 {
        log.append_durable(&mut make_batch(1, 200, T0, i)).unwrap();
    }
    assert_eq!(log.delete_records(5).unwrap(), 5);
    drop(log);
    let seg = w.path(SEGMENT_0);
    let len = w.storage.read_file(&seg).unwrap().len() as u64;
    w.storage.corrupt(&seg, len - 1, 0xff).unwrap();
    w.storage.crash(false, 0);

    let log = w.open(small_config());
    let mut b = make_batch(1, 200, T0, 42);
    let a = log.append_durable(&mut b).unwrap();
    drop(log);

    let log = w.open(small_config());
    match read_one(&log, a.base_offset) {
        Ok(got) => assert_eq!(got, b, "the acknowledged batch reads back"),
        Err(e) => panic!(
            "acknowledged batch at offset {} lost after restart (log start {}): {e}",
            a.base_offset,
            log.log_start()
        ),
    }
}

/// Proves that a full disk while an append rolls the segment (the index write is
/// the one that runs out of space) fails the append cleanly with `DiskFull`, as a
/// full disk does mid-segment, instead of poisoning the partition until restart.
#[test]
fn a_full_disk_while_rolling_is_disk_full_not_poison() {
    let w = World::new();
    let log = w.open(small_config());
    let mut acked = Vec::new();
    for i in 0..3u8 {
        let mut b = make_batch(1, 1000, T0, i);
        let a = log.append_durable(&mut b).unwrap();
        acked.push((a.base_offset, b));
    }
    let used = w.storage.live_bytes();
    w.storage.set_capacity(Some(used + 20));
    let err = log.append_durable(&mut make_batch(1, 1200, T0, 9)).unwrap_err();
    assert!(matches!(err, LogError::DiskFull { .. }), "{err}");
    assert!(log.poisoned().is_none(), "a full disk must not poison the partition");
    w.storage.set_capacity(None);
    let mut b = make_batch(1, 1200, T0, 10);
    let a = log.append_durable(&mut b).unwrap();
    acked.push((a.base_offset, b));
    assert_eq!(read_all(&log, 0), acked);
}

/// Proves that `wait_durable` with an offset the log has not reached returns
/// instead of looping forever, issuing one fsync after another.
#[test]
fn waiting_for_an_offset_past_the_log_end_does_not_spin_forever() {
    let w = World::new();
    let log = Arc::new(w.open(small_config()));
    log.append_durable(&mut make_batch(1, 100, T0, 1)).unwrap();
    let target = log.log_end() + 10;
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = {
        let log = log.clone();
        thread::spawn(move || {
            let r = log.wait_durable(target);
            let _ = done_tx.send(());
            r
        })
    };
    let returned = done_rx.recv_timeout(Duration::from_millis(300)).is_ok();
    let fsyncs = log.stats().fsyncs.load(std::sync::atomic::Ordering::Relaxed);
    // A waiter that is still looping stops at the first failed fsync, which poisons.
    w.storage.fail_syncs(true);
    let _ = waiter.join();
    assert!(
        returned,
        "wait_durable({target}) with log end {} had not returned after 300 ms ({fsyncs} fsyncs so far)",
        log.log_end()
    );
}

// ---------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------

/// Proves that a retention time above `i64::MAX` milliseconds (for instance Kafka's
/// -1, "forever", cast to `u64`) keeps everything. The `as i64` cast turns it into
/// a negative number, the horizon lands in the future, and every segment goes.
#[test]
fn a_retention_time_beyond_i64_max_deletes_nothing() {
    let w = World::new();
    let log = w.open(LogConfig {
        retention_ms: Some(u64::MAX),
        ..small_config()
    });
    let acked = fill_segments(&log, 4, 1000, T0);
    let outcome = log.tick().unwrap();
    assert_eq!(outcome.segments_deleted, 0, "{outcome:?}");
    assert_eq!(log.log_start(), 0);
    assert_eq!(read_all(&log, 0), acked);
}

/// Proves that batches without timestamps (Kafka's -1, NO_TIMESTAMP) are not taken
/// for expired: they were acknowledged a moment ago, yet the first tick rolls the
/// active segment and deletes them. Kafka falls back to the segment's modification
/// time for such segments.
#[test]
fn batches_without_timestamps_are_not_deleted_by_time_retention_at_once() {
    let w = World::new();
    let log = w.open(LogConfig {
        retention_ms: Some(60_000),
        ..small_config()
    });
    let mut acked = Vec::new();
    for i in 0..3u8 {
        let mut b = make_batch(1, 200, -1, i);
        let a = log.append_durable(&mut b).unwrap();
        acked.push((a.base_offset, b));
    }
    let outcome = log.tick().unwrap();
    assert_eq!(outcome.segments_deleted, 0, "{outcome:?}");
    assert_eq!(log.log_start(), 0);
    assert_eq!(read_all(&log, 0), acked);
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

/// Proves that a timestamp lookup racing with delete-records is not answered with
/// an I/O error. The lookup snapshots the segment list, the segments are deleted
/// while it walks the first one, and opening the next (now deleted) file fails
/// with `Io` (KAFKA_STORAGE_ERROR) instead of an answer from what remains. `read`
/// has the same unguarded gap between its snapshot and the open.
#[test]
fn a_timestamp_lookup_while_delete_records_removes_segments_is_not_an_io_error() {
    let w = HookedWorld::new();
    let log = Arc::new(w.open(small_config()));
    // Segment 0: offset 0 is the only late batch, and it lies below the log start.
    log.append_durable(&mut make_batch(1, 1000, T0 + 1000, 0)).unwrap();
    for i in 1..4u8 {
        log.append_durable(&mut make_batch(1, 1000, T0, i)).unwrap();
    }
    for (ts, tag) in [(T0 + 2000, 10u8), (T0 + 3000, 20)] {
        for i in 0..4u8 {
            log.append_durable(&mut make_batch(1, 1000, ts, tag + i)).unwrap();
        }
    }
    log.append_durable(&mut make_batch(1, 1000, T0 + 4000, 30)).unwrap();
    assert_eq!(log.segment_count(), 4, "segments at 0, 4, 8 and the active one at 12");
    log.delete_records(1).unwrap();

    let shared: Arc<OnceLock<Arc<Log>>> = Arc::new(OnceLock::new());
    shared.set(log.clone()).unwrap();
    let hook_log = shared.clone();
    *w.hooks.read.lock().unwrap() = Some((
        w.path(SEGMENT_0),
        Box::new(move || {
            // Another client deletes segments 0 and 4 while the lookup walks segment 0.
            hook_log.get().unwrap().delete_records(8).unwrap();
        }),
    ));
    let result = log.offset_for_timestamp(T0 + 500);
    match result {
        Ok(Some(hit)) => assert!(hit.offset == 4 || hit.offset == 8, "{hit:?}"),
        other => panic!("expected the batch at offset 4 or 8, got {other:?}"),
    }
}

/// Proves that reading at an offset that is missing between two segments (the
/// damaged last batch of a sealed segment whose index also had to be rebuilt)
/// fails loudly or moves on, rather than returning an empty result below the high
/// watermark forever, which stalls every consumer at that offset.
#[test]
fn reading_an_offset_missing_between_segments_does_not_stall() {
    let w = World::new();
    let log = w.open(small_config());
    let acked = fill_segments(&log, 2, 1000, T0);
    drop(log);
    damage_tail_and_index_of_segment_0(&w);
    let log = w.open(small_config());
    let missing = 3;
    assert_eq!(acked[missing as usize].0, missing);
    let hw = log.high_watermark();
    match log.read(missing, 1 << 16) {
        Err(_) => {}
        Ok(r) => assert!(
            !r.records.is_empty() || r.next_offset > missing,
            "empty read at {missing} below the high watermark {hw}: next_offset {}",
            r.next_offset
        ),
    }
}

/// Proves that a read at a log start that lies in a gap before the active segment
/// does not panic. Delete-records deleted the only sealed segment, whose end (cut
/// short by damage) is below the active segment's base; the read then indexes the
/// empty list of sealed segments.
#[test]
fn reading_at_a_log_start_in_a_gap_before_the_active_segment_does_not_panic() {
    let w = World::new();
    let log = w.open(small_config());
    fill_segments(&log, 2, 1000, T0);
    drop(log);
    damage_tail_and_index_of_segment_0(&w);
    let log = w.open(small_config());
    // Offset 3 was lost with the damaged batch, so the log start moves on to the
    // first offset that exists: the active segment's base.
    assert_eq!(log.delete_records(3).unwrap(), 4);
    assert_eq!(log.segment_count(), 1);
    let result = catch_unwind(AssertUnwindSafe(|| log.read(3, 1 << 16).map(|r| r.next_offset)));
    assert!(result.is_ok(), "read at the log start panicked");
}

/// Flips a byte of the last batch of segment 0 and of its index footer, so that
/// recovery scans segment 0 and ends it one batch early.
fn damage_tail_and_index_of_segment_0(w: &World) {
    let seg = w.path(SEGMENT_0);
    let len = w.storage.read_file(&seg).unwrap().len() as u64;
    w.storage.corrupt(&seg, len - 1, 0xff).unwrap();
    let index = w.path(INDEX_0);
    let len = w.storage.read_file(&index).unwrap().len() as u64;
    w.storage.corrupt(&index, len - 1, 0x01).unwrap();
}

/// Proves that an index rebuilt by recovery for a sealed segment with a damaged
/// tail is trusted on later opens. The rebuilt footer records the valid length,
/// not the file's length, so every later open finds a mismatch and scans the whole
/// segment again, breaking "recovery time is bounded by one segment".
#[test]
fn a_rebuilt_index_is_trusted_on_the_next_open() {
    let w = World::new();
    let log = w.open(small_config());
    fill_segments(&log, 3, 1000, T0);
    drop(log);
    damage_tail_and_index_of_segment_0(&w);
    // The first open rebuilds the index; a clean close lets the next open skip the
    // active segment, so all it should read is footers and the active index.
    w.open(small_config()).close().unwrap();
    let before = w.storage.bytes_read();
    let _log = w.open(small_config());
    let read = w.storage.bytes_read() - before;
    assert!(
        read < 1000,
        "a clean open read {read} bytes: segment 0 was scanned again"
    );
}

/// Proves that a flipped bit in one entry of a sealed index (whose footer is
/// intact, so the index is trusted) does not make reads of intact batches fail:
/// index entries are hints that may cost a longer walk, never a wrong answer. The
/// entries' checksum in the footer is never checked on the read path.
#[test]
fn a_flipped_bit_in_a_sealed_index_entry_does_not_fail_reads_of_intact_batches() {
    let w = World::new();
    let log = w.open(small_config());
    let mut acked = Vec::new();
    for i in 0..12u8 {
        let mut b = make_batch(1, 300, T0, i);
        let a = log.append_durable(&mut b).unwrap();
        acked.push((a.base_offset, b));
    }
    fill_segments(&log, 2, 300, T0);
    drop(log);
    let index = w.path(INDEX_0);
    // Low byte of entry 2's position: the entry now points one byte off a batch.
    w.storage.corrupt(&index, 2 * 16 + 7, 0x01).unwrap();
    let log = w.open(small_config());
    for (offset, b) in &acked {
        match read_one(&log, *offset) {
            Ok(got) => assert_eq!(&got, b, "offset {offset}"),
            Err(e) => panic!("intact batch at offset {offset} unreadable: {e}"),
        }
    }
}

/// Proves that a partition directory deleted and created again (a topic deleted
/// and re-created under the same name) is not served from file handles the shared
/// `Env` cached for the old files: the read must return the new batch, not the old
/// one, which still passes its checksum.
#[test]
fn a_recreated_partition_is_not_read_through_stale_cached_handles() {
    let w = World::new();
    let log = w.open(small_config());
    fill_segments(&log, 3, 1000, T0);
    read_all(&log, 0);
    drop(log);
    w.storage.remove_dir_all(&w.dir).unwrap();

    let log = w.open(small_config());
    let mut fresh = Vec::new();
    while log.segment_count() < 3 {
        let mut b = make_batch(1, 1000, T0, 200 + fresh.len() as u8);
        let a = log.append_durable(&mut b).unwrap();
        fresh.push((a.base_offset, b));
    }
    let got = read_one(&log, 0).unwrap();
    assert_eq!(batch::verify(&got).unwrap().base_offset, 0, "a whole batch at offset 0");
    // The payload byte tells the batches apart: the old one was filled with 0.
    let payload = got[batch::HEADER_BYTES];
    assert!(
        got == fresh[0].1,
        "offset 0 was served from the deleted directory's file (payload byte {payload}, expected 200)"
    );
}

/// Proves that a timestamp lookup does not answer from a batch whose header fails
/// its checksum. The walk reads headers only, so a flipped bit in a batch's
/// `max_timestamp` (covered by the CRC) makes the lookup return that batch's offset
/// and bogus timestamp, where a read of the same batch reports it as corrupt.
#[test]
fn a_timestamp_lookup_does_not_answer_from_a_batch_that_fails_its_checksum() {
    let w = World::new();
    // One index entry per segment, so the lookup walks over the damaged batch.
    let config = LogConfig {
        index_interval_bytes: 4096,
        ..small_config()
    };
    let log = w.open(config);
    for i in 0..10u8 {
        log.append_durable(&mut make_batch(1, 300, T0 + i64::from(i), i))
            .unwrap();
    }
    fill_segments(&log, 2, 300, T0 + 100);
    drop(log);
    // Batch 2 starts at byte 600; its max_timestamp is bytes 35..43 of the batch.
    // Byte 37 is the third byte of the timestamp; setting a bit there pushes it
    // centuries into the future, past every lookup target.
    w.storage.corrupt(&w.path(SEGMENT_0), 600 + 37, 0x10).unwrap();
    let log = w.open(config);
    assert!(matches!(log.read(2, 1), Err(LogError::Corrupt { .. })));
    match log.offset_for_timestamp(T0 + 5) {
        Err(LogError::Corrupt { .. }) => {}
        Ok(Some(hit)) if hit.offset == 5 => {}
        other => panic!("expected offset 5 or a corrupt-data error, got {other:?}"),
    }
}
