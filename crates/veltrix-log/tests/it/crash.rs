//! Kill -9 crash tests: a child process appends batches with acknowledged fsyncs on
//! the real file system and is killed with SIGKILL at a random moment; the parent
//! then reopens the log and checks that every acknowledged batch survived, byte for
//! byte at its acknowledged offset, and that nothing after them is half-present.
//!
//! The child is this test binary run again with a filter that selects only
//! [`child_entry`], told what to do through environment variables. Its appender
//! threads report each acknowledged batch on stdout the moment it is acknowledged;
//! the parent reads the pipe in a thread, kills the child, drains what is left and
//! counts only complete lines. Every batch is a pure function of the round's seed,
//! the appending thread and its sequence number, and carries the thread and the
//! sequence number in its header, so the parent can recompute anything it finds in
//! the log, including batches that were written but never acknowledged, and compare
//! it byte for byte.
//!
//! Several rounds share a directory, so each recovery starts from what the previous
//! ones left and the log grows across many small segments; kills land during
//! appends, group commits, segment rolls and clean shutdowns. The directories are
//! made under `TMPDIR`, which must be a disk-backed file system for the fsyncs to be
//! real (not tmpfs).
//!
//! A killed process leaves the page cache behind, so this checks the engine's own
//! ordering (a batch is acknowledged only once written and covered by an fsync,
//! segments roll in a recoverable order, recovery cuts exactly the torn tail) with
//! real files and real concurrency. Losing the page cache, as on power failure, is
//! the business of the fault tests, which simulate the disk.
//!
//! `VELTRIX_CRASH_ROUNDS` sets the number of rounds (default 50). `VELTRIX_CRASH_SEED`
//! replays a run: it fixes every round's plan (threads, sizes, segment size, when to
//! kill), though not where the kill lands, which depends on the scheduler.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use veltrix_log::batch::{self, HEADER_BYTES, build};
use veltrix_log::index::read_footer;
use veltrix_log::io::{FsStorage, OpenMode, Storage};
use veltrix_log::segment::{index_file_name, parse_file_name};
use veltrix_log::{Env, LEADER_EPOCH, Log, LogConfig};

use crate::support::{T0, read_all};

/// Name of the test that the re-executed binary runs, as libtest spells it.
const CHILD_TEST: &str = "crash::child_entry";
/// Set only in the child: the partition directory to append to.
const ENV_CHILD_DIR: &str = "VELTRIX_CRASH_CHILD_DIR";
/// Set only in the child: the round's [`Plan`], encoded.
const ENV_CHILD_PLAN: &str = "VELTRIX_CRASH_CHILD_PLAN";
const ENV_ROUNDS: &str = "VELTRIX_CRASH_ROUNDS";
const ENV_SEED: &str = "VELTRIX_CRASH_SEED";
const ROUNDS_DEFAULT: u64 = 50;
/// Rounds that reuse one directory before a fresh one is started. Reuse exercises
/// recovery on top of earlier recoveries; fresh directories exercise a crash in a
/// log's first moments.
const ROUNDS_PER_DIR: u64 = 10;
/// A directory holding more than this is replaced early, because the parent rereads
/// the whole log after every round and that must stay cheap in a debug build.
const DIR_BYTES_MAX: usize = 24 << 20;
/// Marks the child's report lines. libtest may print the test's name on the same
/// line before the test's own output, so lines are matched on this mark, not on
/// their start.
const MARK: &str = "#crash ";
/// A child that is never killed stops appending after this long, so a parent that
/// fails to kill it cannot leave it running.
const CHILD_LIFETIME: Duration = Duration::from_secs(5);
/// How long the parent waits for a child to open its log before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest batch any round appends; no larger than the smallest segment.
const BATCH_BYTES_MAX: usize = 64 << 10;

/// Proves that kill -9 never loses an acknowledged batch nor leaves a partial one.
///
/// Each round re-executes this binary as a child that appends with
/// [`Log::append_durable`] from one to four threads and reports acknowledgements;
/// the parent sends SIGKILL after a random delay, reopens the log and checks it with
/// [`check_round`]. Rounds vary batch sizes, record counts, segment sizes, index
/// density and thread counts, and some end with a clean close that the kill may or
/// may not interrupt.
#[test]
fn kill_9_loses_no_acknowledged_batch_and_leaves_no_partial_one() {
    let rounds = env_u64(ENV_ROUNDS).unwrap_or(ROUNDS_DEFAULT);
    let master = env_u64(ENV_SEED).unwrap_or_else(rand::random);
    println!("crash test: {rounds} rounds, master seed {master:#018x} (replay with {ENV_SEED}={master:#x})");
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut dir: Option<tempfile::TempDir> = None;
    let mut known: Vec<(i64, Vec<u8>)> = Vec::new();
    for round in 0..rounds {
        let known_bytes: usize = known.iter().map(|(_, b)| b.len()).sum();
        if round % ROUNDS_PER_DIR == 0 || known_bytes > DIR_BYTES_MAX {
            dir = Some(tempfile::tempdir().expect("temporary directory"));
            known.clear();
        }
        // A subdirectory that does not exist yet, so the first open creates it.
        let log_dir = dir.as_ref().expect("directory made above").path().join("topic-0");
        let plan = Plan::new(mix(master ^ mix(round)), round);
        let context = format!("round {round} (master seed {master:#x}, round seed {:#x})", plan.seed);
        println!("{context}: {plan:?}");
        let report = run_child(&log_dir, &plan, &context);
        let outcome = check_round(&log_dir, &plan, &report, &mut known, &context);
        println!(
            "{context}: {} acknowledged, {} unacknowledged but whole, log end {}, {} segments, {} torn bytes cut{}{}",
            report.acks.len(),
            outcome.unacknowledged,
            outcome.log_end,
            outcome.segments,
            outcome.truncated_bytes,
            if report.closed { ", closed cleanly" } else { "" },
            if outcome.mid_roll { ", killed inside a roll" } else { "" },
        );
        totals.add(&report, &outcome);
    }
    println!(
        "crash test: {rounds} rounds in {:.1} s: {} killed, {} closed cleanly, {} acknowledged batches, \
         {} unacknowledged batches kept whole, {} kills inside a roll, {} torn tails cut, at most {} segments",
        started.elapsed().as_secs_f64(),
        totals.killed,
        totals.closed,
        totals.acked,
        totals.unacknowledged,
        totals.mid_roll_kills,
        totals.torn_rounds,
        totals.segments_max,
    );
    // Guards against a test that passes because it exercised nothing: a child that
    // never got to append, or segments that never rolled.
    if rounds >= 10 {
        assert!(totals.killed > 0, "no round killed its child");
        assert!(totals.acked > 0, "no round acknowledged a single batch");
        assert!(totals.segments_max > 1, "no log ever rolled a segment");
    }
}

/// The child side of [`kill_9_loses_no_acknowledged_batch_and_leaves_no_partial_one`].
///
/// In a normal test run the child variables are unset and this returns at once. In
/// the re-executed child it opens the log, reports `READY` with the recovered end,
/// and appends from the plan's threads until it is killed, its lifetime runs out or,
/// in a closing round, every thread has appended its quota and the log is closed.
#[test]
fn child_entry() {
    let Some(dir) = std::env::var_os(ENV_CHILD_DIR) else {
        return;
    };
    let plan = Plan::decode(&std::env::var(ENV_CHILD_PLAN).expect("the child is given a plan"));
    // A failure anywhere in the child (a panic on an appender thread included) is
    // told to the parent on the report channel: the parent kills the child at a time
    // of its own choosing and would otherwise mistake the failure for a kill.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        say(&format!("FAIL {}", info.to_string().replace('\n', " | ")));
        default_hook(info);
    }));
    append_until_stopped(Path::new(&dir), &plan);
}

/// The child's work. Each thread reports an acknowledgement as soon as
/// [`Log::append_durable`] returns and before it builds its next batch, so a thread
/// never has more than one batch in flight beyond those it has reported; the
/// parent's checks rely on that.
fn append_until_stopped(dir: &Path, plan: &Plan) {
    let log = Log::open(Env::system(), dir, plan.config()).expect("child: open the log");
    say(&format!("READY {}", log.log_end()));
    let deadline = Instant::now() + CHILD_LIFETIME;
    thread::scope(|s| {
        for thread in 0..plan.threads {
            let log = &log;
            s.spawn(move || {
                let (mut seq, mut first_sequence) = (0, 0);
                while Instant::now() < deadline && (plan.close_after == 0 || seq < plan.close_after) {
                    let mut batch = batch_for(plan, thread, seq, first_sequence);
                    let appended = log.append_durable(&mut batch).expect("child: durable append");
                    say(&format!("ACK {} {thread} {seq}", appended.base_offset));
                    seq += 1;
                    first_sequence += (appended.last_offset - appended.base_offset + 1) as i32;
                }
            });
        }
    });
    if plan.close_after > 0 {
        log.close().expect("child: close the log");
        say("CLOSED");
    }
}

/// Writes one report line to the parent. The line goes out in a single write and is
/// flushed at once, so a kill can cut at most the line being written, and the
/// parent ignores a line without its newline.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{MARK}{line}\n").as_bytes())
        .and_then(|()| out.flush())
        .expect("child: write to the parent");
}

/// What one round does, derived from its seed so that the parent and the child agree
/// on it and a failing round can be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    seed: u64,
    round: u64,
    threads: u32,
    segment_bytes_max: u64,
    index_interval_bytes: u32,
    batch_bytes_min: usize,
    batch_bytes_max: usize,
    records_max: i32,
    /// Appends per thread after which the child closes the log cleanly; 0 for never.
    close_after: u32,
    /// Delay between the child's `READY` and the kill. Only the parent uses it.
    kill_after_ms: u64,
}

impl Plan {
    fn new(seed: u64, round: u64) -> Plan {
        let mut rng = SmallRng::seed_from_u64(seed);
        // Tiny batches put group commit under pressure; large ones fill a segment in
        // a few appends, so rolls, and kills during rolls, are frequent.
        let (batch_bytes_min, batch_bytes_max) = match rng.random_range(0..4) {
            0 => (HEADER_BYTES, 256),
            1 => (HEADER_BYTES, 4096),
            2 => (1024, 16 << 10),
            _ => (8 << 10, BATCH_BYTES_MAX),
        };
        Plan {
            seed,
            round,
            threads: rng.random_range(1..=4),
            segment_bytes_max: rng.random_range(64 << 10..=256 << 10),
            index_interval_bytes: rng.random_range(128..=8192),
            batch_bytes_min,
            batch_bytes_max,
            records_max: [1, 3, 50, 1000][rng.random_range(0..4)],
            close_after: if rng.random_ratio(1, 8) {
                rng.random_range(1..=40)
            } else {
                0
            },
            // Mostly after the appends are under way; sometimes right at the start.
            kill_after_ms: if rng.random_ratio(1, 10) {
                rng.random_range(0..20)
            } else {
                rng.random_range(20..=300)
            },
        }
    }

    fn config(&self) -> LogConfig {
        LogConfig {
            segment_bytes_max: self.segment_bytes_max,
            batch_bytes_max: BATCH_BYTES_MAX as u32,
            index_interval_bytes: self.index_interval_bytes,
            retention_ms: None,
            ..LogConfig::default()
        }
    }

    fn encode(&self) -> String {
        [
            self.seed,
            self.round,
            u64::from(self.threads),
            self.segment_bytes_max,
            u64::from(self.index_interval_bytes),
            self.batch_bytes_min as u64,
            self.batch_bytes_max as u64,
            self.records_max as u64,
            u64::from(self.close_after),
            self.kill_after_ms,
        ]
        .map(|n| n.to_string())
        .join(" ")
    }

    fn decode(text: &str) -> Plan {
        let n: Vec<u64> = text.split(' ').map(|f| f.parse().expect("plan field")).collect();
        assert_eq!(n.len(), 10, "malformed plan {text:?}");
        Plan {
            seed: n[0],
            round: n[1],
            threads: n[2] as u32,
            segment_bytes_max: n[3],
            index_interval_bytes: n[4] as u32,
            batch_bytes_min: n[5] as usize,
            batch_bytes_max: n[6] as usize,
            records_max: n[7] as i32,
            close_after: n[8] as u32,
            kill_after_ms: n[9],
        }
    }
}

/// The batch that `thread` appends as its `seq`-th in the round, as the producer
/// sends it (base offset 0). Its size, record count and payload come from the round
/// seed; its header names the thread (producer id) and the round (producer epoch),
/// and, as an idempotent producer's would, carries the sequence number of its first
/// record, `first_sequence` (the records of the thread's earlier batches this
/// round). So each round is a new epoch of each thread's producer, and the log's
/// producer state, rebuilt after every kill, must accept it.
fn batch_for(plan: &Plan, thread: u32, seq: u32, first_sequence: i32) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(mix(plan.seed ^ mix((u64::from(thread) << 32) | u64::from(seq))));
    let size = rng.random_range(plan.batch_bytes_min..=plan.batch_bytes_max);
    let record_count = rng.random_range(1..=plan.records_max);
    let mut buf = vec![0u8; size];
    rng.fill_bytes(&mut buf[HEADER_BYTES..]);
    let ts = T0 + i64::from(seq);
    build::write_into(
        &mut buf,
        build::Spec {
            record_count,
            base_timestamp: ts,
            max_timestamp: ts,
            producer_id: i64::from(thread),
            producer_epoch: round_tag(plan.round),
            base_sequence: first_sequence,
            attributes: 0,
        },
    );
    buf
}

fn round_tag(round: u64) -> i16 {
    (round % 30_000) as i16
}

/// SplitMix64's finaliser: spreads nearby inputs (round numbers, sequence numbers)
/// over unrelated seeds.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}")))
}

/// An acknowledgement the parent received in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    base_offset: i64,
    thread: u32,
    seq: u32,
}

/// What the parent learnt from one child.
#[derive(Debug)]
struct ChildReport {
    /// Log end the child recovered when it opened the log.
    ready_end: i64,
    acks: Vec<Ack>,
    closed: bool,
    status: ExitStatus,
}

/// Owns a child process and makes sure it is killed and reaped however the round
/// ends, a failed assertion included, so that no process and no zombie outlives the
/// test.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Sends SIGKILL to the child's pid (a no-op if it already exited) and reaps it.
    fn kill_and_wait(&mut self) -> ExitStatus {
        let mut child = self.0.take().expect("the child is reaped only once");
        // `Child::kill` is SIGKILL on Unix and succeeds on an exited, unreaped child.
        let _ = child.kill();
        child.wait().expect("reap the child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs one child on `dir` and kills it `plan.kill_after_ms` after it is ready.
fn run_child(dir: &Path, plan: &Plan, context: &str) -> ChildReport {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(ENV_CHILD_DIR, dir)
        .env(ENV_CHILD_PLAN, plan.encode())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let mut guard = ChildGuard(Some(child));
    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = thread::spawn(move || read_report_lines(stdout, &ready_tx));
    let ready = ready_rx.recv_timeout(READY_TIMEOUT);
    if ready.is_ok() {
        thread::sleep(Duration::from_millis(plan.kill_after_ms));
    }
    let status = guard.kill_and_wait();
    // The child is gone, so the pipe reaches its end and the reader returns.
    let lines = reader.join().expect("the reader thread does not panic");
    let fails: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{context}: the child failed ({status}): {fails:?}");
    // A child that exits by itself must have succeeded; otherwise it died of our kill.
    assert!(
        status.success() || status.signal() == Some(libc::SIGKILL),
        "{context}: the child died on its own: {status}; it said {lines:?}"
    );
    assert!(
        ready.is_ok(),
        "{context}: the child never became ready ({status}); it said {lines:?}"
    );
    let mut report = ChildReport {
        ready_end: -1,
        acks: Vec::new(),
        closed: false,
        status,
    };
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let number = |i: usize| -> i64 {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .unwrap_or_else(|| panic!("{context}: malformed report line {line:?}"))
        };
        match fields[0] {
            "READY" => report.ready_end = number(1),
            "ACK" => report.acks.push(Ack {
                base_offset: number(1),
                thread: number(2) as u32,
                seq: number(3) as u32,
            }),
            "CLOSED" => report.closed = true,
            _ => panic!("{context}: unknown report line {line:?}"),
        }
    }
    report
}

/// Collects the child's complete report lines (without the mark) until its stdout
/// ends, signalling `ready` at the first `READY`. A last line without its newline was
/// cut by the kill and is dropped; lines without the mark are libtest's and are
/// ignored.
fn read_report_lines(stdout: impl Read, ready: &mpsc::Sender<()>) -> Vec<String> {
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return lines,
            Ok(_) if buf.last() != Some(&b'\n') => return lines,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf[..buf.len() - 1]);
        if let Some(at) = text.find(MARK) {
            let line = text[at + MARK.len()..].to_owned();
            if line.starts_with("READY") {
                let _ = ready.send(());
            }
            lines.push(line);
        }
    }
}

/// What the parent found after reopening the log.
#[derive(Debug)]
struct Outcome {
    log_end: i64,
    /// Batches of this round present in the log but never acknowledged.
    unacknowledged: usize,
    segments: usize,
    truncated_bytes: u64,
    /// The kill interrupted a segment roll (see [`killed_mid_roll`]).
    mid_roll: bool,
}

/// Reopens the log after a round and checks it against everything known:
///
/// - recovery finds no corruption, and the log is a dense run of whole, CRC-valid
///   batches starting at offset 0, both through reads and in the files on disk;
/// - the batches verified after earlier rounds (`known`) are still there, unchanged;
/// - each of this round's batches is exactly the one its header claims to be, with
///   every thread's batches in order and none missing in between;
/// - every acknowledged batch is present at its acknowledged offset, and each thread
///   has at most one batch beyond its acknowledged ones (the one it was appending
///   when it was killed), none after a clean close.
///
/// On success `known` becomes the whole recovered log.
fn check_round(
    dir: &Path,
    plan: &Plan,
    report: &ChildReport,
    known: &mut Vec<(i64, Vec<u8>)>,
    context: &str,
) -> Outcome {
    let known_end = known.last().map_or(0, |(_, b)| next_offset(b));
    assert_eq!(
        report.ready_end, known_end,
        "{context}: the child recovered a different log end"
    );
    // Looked at before the reopen, which may change the files.
    let mid_roll = plan.close_after == 0 && killed_mid_roll(dir, known_end);

    let log = Log::open(Env::system(), dir, plan.config()).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
    let corruptions = log.stats().corruptions_found.load(Ordering::Relaxed);
    assert_eq!(corruptions, 0, "{context}: recovery found corruption after a kill");
    assert_eq!(log.log_start(), 0, "{context}: log start moved");
    let all = read_all(&log, 0);
    let mut at = 0;
    for (base, bytes) in &all {
        assert_eq!(*base, at, "{context}: offsets are not dense at {at}");
        at = next_offset(bytes);
    }
    assert_eq!(log.log_end(), at, "{context}: log end disagrees with the batches read");
    assert_eq!(log.high_watermark(), at, "{context}: high watermark after recovery");
    assert_eq!(
        on_disk(dir, context),
        all,
        "{context}: segment files differ from what reads return"
    );

    assert!(
        all.len() >= known.len(),
        "{context}: the log lost batches of earlier rounds"
    );
    for (i, (was, is)) in known.iter().zip(&all).enumerate() {
        assert!(
            was == is,
            "{context}: batch {i} of an earlier round (offset {}) changed",
            was.0
        );
    }

    let mut found: HashMap<(u32, u32), i64> = HashMap::new();
    let mut next_seq = vec![0u32; plan.threads as usize];
    let mut next_first_sequence = vec![0i32; plan.threads as usize];
    for (base, bytes) in &all[known.len()..] {
        let h = batch::verify(bytes).expect("read_all verified it");
        assert_eq!(
            h.producer_epoch,
            round_tag(plan.round),
            "{context}: batch at {base} is not of this round"
        );
        let thread = u32::try_from(h.producer_id).expect("thread id");
        assert!(
            thread < plan.threads,
            "{context}: batch at {base} names thread {thread}"
        );
        let t = thread as usize;
        let seq = next_seq[t];
        assert_eq!(
            h.base_sequence, next_first_sequence[t],
            "{context}: thread {thread}'s batches are out of order or have a gap at offset {base}"
        );
        next_seq[t] += 1;
        next_first_sequence[t] += h.record_count;
        let mut expected = batch_for(plan, thread, seq, h.base_sequence);
        batch::assign(&mut expected, *base, LEADER_EPOCH);
        assert!(
            *bytes == expected,
            "{context}: batch at {base} (thread {thread} seq {seq}) differs from what was appended"
        );
        found.insert((thread, seq), *base);
    }

    let mut acked = vec![0u32; plan.threads as usize];
    for ack in &report.acks {
        assert_eq!(
            found.get(&(ack.thread, ack.seq)),
            Some(&ack.base_offset),
            "{context}: acknowledged batch (thread {} seq {} at offset {}) is missing after recovery",
            ack.thread,
            ack.seq,
            ack.base_offset
        );
        assert_eq!(
            ack.seq, acked[ack.thread as usize],
            "{context}: acknowledgements out of order"
        );
        acked[ack.thread as usize] += 1;
    }
    for (thread, (&present, &acked)) in next_seq.iter().zip(&acked).enumerate() {
        let extra = if report.closed { 0 } else { 1 };
        assert!(
            present <= acked + extra,
            "{context}: thread {thread} has {present} batches in the log but only {acked} acknowledged"
        );
        if report.closed {
            assert_eq!(
                acked, plan.close_after,
                "{context}: thread {thread} did not finish before the close"
            );
        }
    }
    let unacknowledged = all.len() - known.len() - report.acks.len();
    let outcome = Outcome {
        log_end: at,
        unacknowledged,
        segments: log.segment_count(),
        truncated_bytes: log.stats().recovery_truncated_bytes.load(Ordering::Relaxed),
        mid_roll,
    };
    *known = all;
    outcome
}

/// Whether the files show a roll that the kill interrupted: the newest segment was
/// sealed (its index describes the whole file) but its successor was never created,
/// or the successor was created but not yet written to. Only segments that hold or
/// start after batches of this round count, so what earlier rounds left is not
/// mistaken for this round's work. Rounds that close the log are not asked, since a
/// close seals the newest segment too.
fn killed_mid_roll(dir: &Path, known_end: i64) -> bool {
    let Some((base, path)) = segment_paths(dir).pop() else {
        return false;
    };
    let len = std::fs::metadata(&path).expect("stat the newest segment").len();
    if len == 0 {
        return base > known_end;
    }
    let index_path = dir.join(index_file_name(base));
    let Ok(index) = FsStorage.open(&index_path, OpenMode::Existing) else {
        return false;
    };
    let index_len = index.len().expect("stat the newest index");
    read_footer(&*index, index_len).is_some_and(|footer| {
        u64::from(footer.file_bytes) == len && base + i64::from(footer.next_rel_offset) > known_end
    })
}

fn next_offset(bytes: &[u8]) -> i64 {
    batch::verify(bytes).expect("a verified batch").next_offset()
}

/// Every batch in the segment files of `dir`, in offset order, read straight from
/// the files. Fails unless each file is exactly a run of whole, CRC-valid batches
/// starting at the file's base offset.
fn on_disk(dir: &Path, context: &str) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for (base, path) in segment_paths(dir) {
        let bytes = std::fs::read(&path).expect("read a segment file");
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let size = batch::peek_size(rest)
                .filter(|&size| size <= rest.len())
                .unwrap_or_else(|| panic!("{context}: {} ends in a partial batch at byte {pos}", path.display()));
            let h = batch::verify(&rest[..size])
                .unwrap_or_else(|e| panic!("{context}: {} has a bad batch at byte {pos}: {e}", path.display()));
            if pos == 0 {
                assert_eq!(
                    h.base_offset,
                    base,
                    "{context}: {} starts at the wrong offset",
                    path.display()
                );
            }
            out.push((h.base_offset, rest[..size].to_vec()));
            pos += size;
        }
    }
    out
}

/// The segment files in `dir` with their base offsets, oldest first.
fn segment_paths(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut segments: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .expect("list the log directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            Some((parse_file_name(name, "log")?, path))
        })
        .collect();
    segments.sort();
    segments
}

#[derive(Debug, Default)]
struct Totals {
    killed: u64,
    closed: u64,
    acked: u64,
    unacknowledged: u64,
    torn_rounds: u64,
    mid_roll_kills: u64,
    segments_max: usize,
}

impl Totals {
    fn add(&mut self, report: &ChildReport, outcome: &Outcome) {
        self.killed += u64::from(report.status.signal() == Some(libc::SIGKILL));
        self.closed += u64::from(report.closed);
        self.acked += report.acks.len() as u64;
        self.unacknowledged += outcome.unacknowledged as u64;
        self.torn_rounds += u64::from(outcome.truncated_bytes > 0);
        self.mid_roll_kills += u64::from(outcome.mid_roll);
        self.segments_max = self.segments_max.max(outcome.segments);
    }
}
