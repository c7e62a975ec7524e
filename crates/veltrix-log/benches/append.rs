//! Durable append throughput of the log engine, measured on the real disk.
//!
//! Every append here is acknowledged the way a producer with `acks=all` would be:
//! only after an fsync covers it ([`Log::append_durable`] under the default
//! [`veltrix_log::FlushPolicy::EveryAppend`]). The matrix is record sizes of 100 B,
//! 1 KiB and 16 KiB, packed into batches of about 64 KiB, appended by one thread to
//! one partition, by eight threads to one partition (so group commit can share
//! fsyncs), and by eight threads to eight partitions (one each, no sharing).
//!
//! Batches are built before the clock starts and reused, so the timed loop measures
//! the log (CRC check, write, fsync, wake-ups), not batch building. Each cell runs a
//! short warm-up and then a fixed time; throughput counts the appends acknowledged
//! inside that window, and the fsync counters come from [`Log::stats`].
//!
//! ```text
//! cargo bench -p veltrix-log --bench append -- [--seconds S] [--warmup S] [--smoke]
//!     [--json] [--dir DIR] [--filter TEXT] [--batch-bytes N]
//! ```
//!
//! Run without `--bench` (which `cargo bench` passes and `cargo test --benches`
//! does not), it runs the smoke matrix so that tests check it still works without
//! spending minutes on it. `scripts/bench-log` runs it next to `fio` and prints the
//! comparison that `docs/BENCHMARKS.md` records.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use veltrix_log::batch::{self, build};
use veltrix_log::{Env, Log, LogConfig, LogStats};

/// Record sizes of the matrix, in bytes.
const RECORD_SIZES: [usize; 3] = [100, 1024, 16 * 1024];
/// (appender threads, partitions) of the matrix. Threads are spread evenly over the
/// partitions.
const SHAPES: [(usize, usize); 3] = [(1, 1), (8, 1), (8, 8)];
/// Target size of a batch's records; the batch header comes on top.
const BATCH_BYTES_DEFAULT: usize = 64 * 1024;
/// Largest `--batch-bytes`: with the header and one extra record it must still fit
/// the default `batch_bytes_max` (about 1 MiB).
const BATCH_BYTES_MAX: usize = 1_000_000;
/// Pre-built batches per thread. A few rather than one so that consecutive appends
/// do not write the very same buffer, as they would not in a broker.
const POOL_BATCHES: usize = 4;
/// Longest cell the bench accepts; anything longer is a typo.
const SECONDS_MAX: f64 = 600.0;

const PHASE_WARMUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;

const USAGE: &str =
    "usage: append [--seconds S] [--warmup S] [--smoke] [--json] [--dir DIR] [--filter TEXT] [--batch-bytes N]

  --seconds S       measured time per cell (default 5)
  --warmup S        unmeasured time before each cell (default 1)
  --smoke           about 0.2 s per cell, to check that the bench works
  --json            print one JSON document instead of the table
  --dir DIR         where the logs are written (default: the target dir's tmp);
                    must be on the disk under test, not tmpfs
  --filter TEXT     only run cells whose name contains TEXT, e.g. 1KiB/8x1
  --batch-bytes N   record bytes per batch (default 65536, at most 1000000)";

#[derive(Debug, Clone)]
struct Options {
    /// Measured time per cell.
    seconds: f64,
    /// Time before each measurement, so that file creation and the first
    /// allocations are not counted.
    warmup: f64,
    /// One JSON document for scripts instead of the table.
    json: bool,
    /// Parent of the scratch directory; it must be on the disk under test.
    dir: PathBuf,
    /// Only cells whose name contains this run.
    filter: Option<String>,
    /// Record bytes per batch; the header comes on top.
    batch_bytes: usize,
}

impl Options {
    fn parse(args: Vec<String>) -> Result<Options, String> {
        // `cargo bench` passes `--bench`; `cargo test --benches` runs the binary
        // without it, possibly with test-harness flags this bench does not know.
        // That case is a smoke test and ignores everything else.
        let under_test = !args.iter().any(|a| a == "--bench");
        let mut o = Options {
            seconds: 5.0,
            warmup: 1.0,
            json: false,
            dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
            filter: None,
            batch_bytes: BATCH_BYTES_DEFAULT,
        };
        let mut smoke = under_test;
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--bench" => {}
                "--smoke" => smoke = true,
                "--json" => o.json = true,
                "--seconds" => o.seconds = parse_seconds("--seconds", &value("--seconds")?)?,
                "--warmup" => o.warmup = parse_seconds("--warmup", &value("--warmup")?)?,
                "--dir" => o.dir = PathBuf::from(value("--dir")?),
                "--filter" => o.filter = Some(value("--filter")?),
                "--batch-bytes" => {
                    let v = value("--batch-bytes")?;
                    o.batch_bytes = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=BATCH_BYTES_MAX).contains(n))
                        .ok_or_else(|| format!("--batch-bytes {v}: expected 1..={BATCH_BYTES_MAX}"))?;
                }
                // An empty error asks for the usage text and a clean exit.
                "--help" | "-h" if !under_test => return Err(String::new()),
                _ if under_test => {}
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if smoke {
            o.seconds = 0.2;
            o.warmup = 0.05;
        }
        if o.seconds == 0.0 {
            return Err("--seconds must be above 0".into());
        }
        Ok(o)
    }
}

fn parse_seconds(name: &str, v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| (0.0..=SECONDS_MAX).contains(s))
        .ok_or_else(|| format!("{name} {v}: expected a number of seconds in 0..={SECONDS_MAX}"))
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy)]
struct Cell {
    record_bytes: usize,
    appenders: usize,
    partitions: usize,
}

impl Cell {
    /// A short, stable name that scripts key on: `<size>/<appenders>x<partitions>`.
    fn name(&self) -> String {
        let size = if self.record_bytes.is_multiple_of(1024) {
            format!("{}KiB", self.record_bytes / 1024)
        } else {
            format!("{}B", self.record_bytes)
        };
        format!("{size}/{}x{}", self.appenders, self.partitions)
    }
}

/// What one cell measured.
#[derive(Debug)]
struct Outcome {
    cell: Cell,
    records_per_batch: usize,
    batch_bytes: usize,
    elapsed_s: f64,
    /// Appends acknowledged (durable) inside the measured window.
    acked: u64,
    fsyncs: u64,
    fsync_batches: u64,
    fsync_micros: u64,
    latency: Histogram,
}

impl Outcome {
    fn appends_per_s(&self) -> f64 {
        self.acked as f64 / self.elapsed_s
    }
    fn records_per_s(&self) -> f64 {
        self.appends_per_s() * self.records_per_batch as f64
    }
    /// Batch bytes (header included) per second, in 10^6 bytes as `fio` reports.
    fn mb_per_s(&self) -> f64 {
        self.appends_per_s() * self.batch_bytes as f64 / 1e6
    }
    fn fsyncs_per_s(&self) -> f64 {
        self.fsyncs as f64 / self.elapsed_s
    }
    fn batches_per_fsync(&self) -> f64 {
        if self.fsyncs == 0 {
            0.0
        } else {
            self.fsync_batches as f64 / self.fsyncs as f64
        }
    }
    fn fsync_mean_us(&self) -> f64 {
        if self.fsyncs == 0 {
            0.0
        } else {
            self.fsync_micros as f64 / self.fsyncs as f64
        }
    }
}

/// Latencies in nanoseconds, log-linear: 64 buckets per power of two, so any
/// percentile is within 1.6% of the true value, in fixed memory and without
/// allocating in the timed loop.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Histogram {
    const SUB_BITS: u32 = 6;
    const SUB: u64 = 1 << Self::SUB_BITS;
    const BUCKETS: usize = ((64 - Self::SUB_BITS as usize) + 1) * Self::SUB as usize;

    fn new() -> Histogram {
        Histogram {
            counts: vec![0; Self::BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < Self::SUB {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - Self::SUB_BITS;
        let sub = (v >> shift) - Self::SUB;
        ((u64::from(shift) + 1) * Self::SUB + sub) as usize
    }

    /// Middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < Self::SUB {
            return i;
        }
        let shift = i / Self::SUB - 1;
        let lower = (Self::SUB + i % Self::SUB) << shift;
        lower + (1 << shift) / 2
    }

    fn record(&mut self, nanos: u64) {
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1), in microseconds; 0 when empty.
    fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max) as f64 / 1e3;
            }
        }
        self.max as f64 / 1e3
    }
}

/// Counters of all partitions of a cell, added up.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    fsyncs: u64,
    fsync_batches: u64,
    fsync_micros: u64,
}

fn counters(logs: &[Arc<Log>]) -> Counters {
    let mut c = Counters::default();
    for log in logs {
        let s: &LogStats = log.stats();
        c.fsyncs += s.fsyncs.load(Ordering::Relaxed);
        c.fsync_batches += s.fsync_batches.load(Ordering::Relaxed);
        c.fsync_micros += s.fsync_micros_total.load(Ordering::Relaxed);
    }
    c
}

/// Builds the batches one thread appends, with filler that differs per batch so
/// the disk never sees a run of identical blocks.
fn batch_pool(records_per_batch: usize, batch_bytes: usize, seed: u64) -> Vec<Vec<u8>> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let spec = build::Spec {
        record_count: i32::try_from(records_per_batch).expect("records per batch fit i32"),
        base_timestamp: now_ms,
        max_timestamp: now_ms,
        ..build::Spec::default()
    };
    let mut state = seed | 1;
    (0..POOL_BATCHES)
        .map(|_| {
            let mut buf = vec![0u8; batch_bytes];
            for chunk in buf.chunks_mut(8) {
                // xorshift64: cheap, and good enough to defeat any block dedup.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            build::write_into(&mut buf, spec);
            buf
        })
        .collect()
}

/// Appends durably until told to stop; counts and times the acknowledgements that
/// complete inside the measured window.
fn appender(log: &Log, mut pool: Vec<Vec<u8>>, phase: &AtomicU8, ready: &Barrier) -> Result<(u64, Histogram), String> {
    let mut latency = Histogram::new();
    let mut acked = 0u64;
    ready.wait();
    for i in 0.. {
        if phase.load(Ordering::Acquire) == PHASE_STOP {
            break;
        }
        let batch = &mut pool[i % POOL_BATCHES];
        let started = Instant::now();
        log.append_durable(batch).map_err(|e| e.to_string())?;
        let nanos = started.elapsed().as_nanos() as u64;
        if phase.load(Ordering::Acquire) == PHASE_MEASURE {
            acked += 1;
            latency.record(nanos);
        }
    }
    Ok((acked, latency))
}

fn run_cell(cell: Cell, o: &Options, root: &Path) -> Result<Outcome, String> {
    let records_per_batch = (o.batch_bytes / cell.record_bytes).max(1);
    let batch_bytes = batch::HEADER_BYTES + records_per_batch * cell.record_bytes;
    let dir = root.join(cell.name().replace('/', "-"));
    let env = Env::system();
    let logs = (0..cell.partitions)
        .map(|p| Log::open(env.clone(), dir.join(format!("p{p}")), LogConfig::default()).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("opening a log under {}: {e}", dir.display()))?;

    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let ready = Arc::new(Barrier::new(cell.appenders + 1));
    let workers: Vec<_> = (0..cell.appenders)
        .map(|t| {
            let log = logs[t % cell.partitions].clone();
            let pool = batch_pool(records_per_batch, batch_bytes, 0x9E37_79B9_7F4A_7C15 ^ t as u64);
            let (phase, ready) = (phase.clone(), ready.clone());
            thread::spawn(move || appender(&log, pool, &phase, &ready))
        })
        .collect();

    ready.wait();
    thread::sleep(Duration::from_secs_f64(o.warmup));
    let before = counters(&logs);
    let started = Instant::now();
    phase.store(PHASE_MEASURE, Ordering::Release);
    thread::sleep(Duration::from_secs_f64(o.seconds));
    phase.store(PHASE_STOP, Ordering::Release);
    let elapsed_s = started.elapsed().as_secs_f64();
    let after = counters(&logs);

    let mut acked = 0;
    let mut latency = Histogram::new();
    let mut failure = None;
    for w in workers {
        match w.join().map_err(|_| "an appender panicked".to_string()).and_then(|r| r) {
            Ok((n, h)) => {
                acked += n;
                latency.merge(&h);
            }
            Err(e) => failure = Some(e),
        }
    }
    drop(logs);
    std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    if let Some(e) = failure {
        return Err(format!("{}: {e}", cell.name()));
    }
    Ok(Outcome {
        cell,
        records_per_batch,
        batch_bytes,
        elapsed_s,
        acked,
        fsyncs: after.fsyncs - before.fsyncs,
        fsync_batches: after.fsync_batches - before.fsync_batches,
        fsync_micros: after.fsync_micros - before.fsync_micros,
        latency,
    })
}

fn table_header() -> String {
    format!(
        "{:<11} {:>7} {:>11} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "cell", "batch B", "records/s", "MB/s", "appends/s", "fsyncs/s", "batch/fs", "fsync µs", "p50 µs", "p99 µs"
    )
}

fn table_row(r: &Outcome) -> String {
    format!(
        "{:<11} {:>7} {:>11.0} {:>8.1} {:>9.0} {:>9.0} {:>8.2} {:>9.0} {:>9.0} {:>9.0}",
        r.cell.name(),
        r.batch_bytes,
        r.records_per_s(),
        r.mb_per_s(),
        r.appends_per_s(),
        r.fsyncs_per_s(),
        r.batches_per_fsync(),
        r.fsync_mean_us(),
        r.latency.quantile_us(0.50),
        r.latency.quantile_us(0.99),
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json(o: &Options, results: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\n  \"dir\": {},\n  \"seconds\": {},\n  \"warmup_seconds\": {},\n  \"batch_record_bytes\": {},\n  \"cells\": [",
        json_string(&o.dir.display().to_string()),
        o.seconds,
        o.warmup,
        o.batch_bytes
    );
    for (i, r) in results.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n    {{\"name\": {}, \"record_bytes\": {}, \"records_per_batch\": {}, \"batch_bytes\": {}, \
             \"appenders\": {}, \"partitions\": {}, \"elapsed_s\": {:.3}, \"appends\": {}, \
             \"records_per_s\": {:.1}, \"mb_per_s\": {:.3}, \"appends_per_s\": {:.1}, \"fsyncs\": {}, \
             \"fsyncs_per_s\": {:.1}, \"batches_per_fsync\": {:.3}, \"fsync_us_mean\": {:.1}, \
             \"ack_us_p50\": {:.1}, \"ack_us_p99\": {:.1}, \"ack_us_max\": {:.1}}}",
            if i == 0 { "" } else { "," },
            json_string(&r.cell.name()),
            r.cell.record_bytes,
            r.records_per_batch,
            r.batch_bytes,
            r.cell.appenders,
            r.cell.partitions,
            r.elapsed_s,
            r.acked,
            r.records_per_s(),
            r.mb_per_s(),
            r.appends_per_s(),
            r.fsyncs,
            r.fsyncs_per_s(),
            r.batches_per_fsync(),
            r.fsync_mean_us(),
            r.latency.quantile_us(0.50),
            r.latency.quantile_us(0.99),
            r.latency.max as f64 / 1e3,
        );
    }
    out.push_str("\n  ]\n}");
    out
}

fn main() -> ExitCode {
    let o = match Options::parse(std::env::args().skip(1).collect()) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("append: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cells: Vec<Cell> = RECORD_SIZES
        .iter()
        .flat_map(|&record_bytes| {
            SHAPES.iter().map(move |&(appenders, partitions)| Cell {
                record_bytes,
                appenders,
                partitions,
            })
        })
        .filter(|c| o.filter.as_ref().is_none_or(|f| c.name().contains(f.as_str())))
        .collect();
    if cells.is_empty() {
        eprintln!("append: no cell matches the filter");
        return ExitCode::from(2);
    }

    // A directory of its own, so that a crashed run's leftovers never mix with the
    // next run's logs, and so that cleaning up cannot touch anything else.
    let root = o.dir.join(format!("veltrix-bench-append-{}", std::process::id()));
    if !o.json {
        println!(
            "durable append (fsync before ack), {} s per cell after {} s warm-up, in {}",
            o.seconds,
            o.warmup,
            o.dir.display()
        );
        println!("{}", table_header());
    }
    let mut results = Vec::with_capacity(cells.len());
    for cell in cells {
        match run_cell(cell, &o, &root) {
            Ok(r) => {
                if !o.json {
                    println!("{}", table_row(&r));
                }
                results.push(r);
            }
            Err(e) => {
                eprintln!("append: {e}");
                let _ = std::fs::remove_dir_all(&root);
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    if o.json {
        println!("{}", json(&o, &results));
    }
    ExitCode::SUCCESS
}
