//! Log compaction on the real disk: how fast a round cleans (MB/s read and
//! rewritten), and what a running round does to the latency of durable
//! appends to the same partition.
//!
//! A partition is filled with `--records` uncompressed records (values of
//! 100 bytes, `--keys` distinct keys, 100 records per batch), all sealed.
//! Then, `--runs` times on a fresh copy of that data:
//!
//! - **clean**: one full compaction (rounds until the key map is not cut
//!   short), timed; MB/s cleaned is the log's size before it per second
//!   (the dirty part is read twice: once for the key map, once to rewrite);
//! - **produce alone**: one thread appends one-record batches with
//!   `append_durable` (an fsync each, as `acks=all`) for as long as the
//!   clean took, recording each append's latency;
//! - **produce during clean**: the same appends while a compaction runs on
//!   the same partition.
//!
//! Medians over the runs are printed.
//!
//! ```text
//! cargo bench -p veltrix-log --bench compact -- [--records N] [--keys N] [--runs N] [--dir DIR]
//!     [--io-rate BYTES_PER_SEC]
//! ```
//!
//! Without `--bench` (`cargo test --benches`) it runs a small smoke case.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use veltrix_log::{CleanLimits, CompactionConfig, Env, Log, LogConfig};

#[path = "../tests/it/kv.rs"]
#[allow(dead_code, reason = "shared with the tests, which use all of it")]
mod kv;

const RECORDS_PER_BATCH: usize = 100;
const VALUE_BYTES: usize = 100;

struct Options {
    records: usize,
    keys: usize,
    runs: usize,
    dir: PathBuf,
    /// The cleaner's I/O limit in bytes per second (`--io-rate`), none by default.
    io_rate: Option<u64>,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let bench = args.iter().any(|a| a == "--bench");
        let mut o = Options {
            records: if bench { 2_000_000 } else { 20_000 },
            keys: if bench { 20_000 } else { 500 },
            runs: if bench { 5 } else { 1 },
            dir: std::env::temp_dir(),
            io_rate: None,
        };
        let mut it = args.iter().filter(|a| *a != "--bench");
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            let number = |v: &String| v.parse::<usize>().map_err(|_| format!("{flag}: {v} is not a number"));
            match flag.as_str() {
                "--records" => o.records = number(value()?)?,
                "--keys" => o.keys = number(value()?)?.max(1),
                "--runs" => o.runs = number(value()?)?.max(1),
                "--dir" => o.dir = PathBuf::from(value()?),
                "--io-rate" => o.io_rate = Some(number(value()?)? as u64),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(o)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 20,
        segment_age_ms_max: 3_600_000,
        retention_ms: None,
        compaction: Some(CompactionConfig {
            min_cleanable_dirty_ppm: 0,
            ..CompactionConfig::default()
        }),
        ..LogConfig::default()
    }
}

/// A partition holding `records` records over `keys` keys, all in sealed
/// segments (the last one rolled by a tick past a 1 ms age limit).
fn fill(dir: &PathBuf, o: &Options) -> Log {
    let log = Log::open(Env::system(), dir, config()).expect("open");
    let mut n = 0usize;
    while n < o.records {
        let kvs: Vec<kv::Kv> = (0..RECORDS_PER_BATCH)
            .map(|i| {
                let key = format!("key-{:08}", (n + i) % o.keys).into_bytes();
                (Some(key), Some(vec![(n + i) as u8; VALUE_BYTES]))
            })
            .collect();
        let mut b = kv::batch_of(&kvs, 1_700_000_000_000, (-1, -1, -1));
        log.append(&mut b).expect("append");
        n += RECORDS_PER_BATCH;
    }
    log.wait_durable(log.log_end()).expect("sync");
    log.set_config(LogConfig {
        segment_age_ms_max: 1,
        ..config()
    })
    .expect("config");
    std::thread::sleep(Duration::from_millis(5));
    log.tick().expect("roll");
    log.set_config(config()).expect("config");
    log
}

fn clean_all(log: &Log, io_rate: Option<u64>) -> (Duration, u64, u64) {
    let started = Instant::now();
    let (mut read, mut written) = (0, 0);
    let limits = CleanLimits {
        io_bytes_per_sec_max: io_rate,
        ..CleanLimits::default()
    };
    loop {
        let o = log.clean(&kv::KvRewriter, &limits).expect("clean");
        read += o.bytes_read;
        written += o.bytes_written;
        if !o.key_map_full {
            return (started.elapsed(), read, written);
        }
    }
}

/// Durable one-record appends until `stop`; their latencies in microseconds.
fn produce(log: &Log, stop: &AtomicBool) -> Vec<u64> {
    let mut latencies = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let kvs: Vec<kv::Kv> = vec![(Some(format!("p-{}", i % 100).into_bytes()), Some(vec![1; VALUE_BYTES]))];
        let mut b = kv::batch_of(&kvs, 1_700_000_000_000, (-1, -1, -1));
        let t = Instant::now();
        log.append_durable(&mut b).expect("append");
        latencies.push(t.elapsed().as_micros() as u64);
        i += 1;
    }
    latencies
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Run {
    /// The log's bytes before the clean, per second of it.
    cleaned_mb_s: f64,
    /// Bytes read (the dirty part twice: key map, then rewrite), per second.
    clean_mb_s: f64,
    clean_s: f64,
    written_ratio: f64,
    alone: (u64, u64),
    during: (u64, u64),
}

fn one_run(root: &std::path::Path, o: &Options, run: usize) -> Run {
    let dir = root.join(format!("run-{run}"));
    let log = Arc::new(fill(&dir, o));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || produce(&log, &stop))
    };
    let before = log.size_bytes();
    let (took, read, written) = clean_all(&log, o.io_rate);
    stop.store(true, Ordering::Relaxed);
    let mut during = producer.join().expect("producer");
    // As long again without compaction, on the compacted partition.
    stop.store(false, Ordering::Relaxed);
    let producer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || produce(&log, &stop))
    };
    std::thread::sleep(took.max(Duration::from_millis(200)));
    stop.store(true, Ordering::Relaxed);
    let mut alone = producer.join().expect("producer");
    during.sort_unstable();
    alone.sort_unstable();
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        cleaned_mb_s: before as f64 / 1e6 / took.as_secs_f64(),
        clean_mb_s: read as f64 / 1e6 / took.as_secs_f64(),
        clean_s: took.as_secs_f64(),
        written_ratio: written as f64 / read.max(1) as f64,
        alone: (percentile(&alone, 0.5), percentile(&alone, 0.99)),
        during: (percentile(&during, 0.5), percentile(&during, 0.99)),
    }
}

fn main() {
    let o = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compact: {e}");
            std::process::exit(2);
        }
    };
    let root = o.dir.join(format!("veltrix-bench-compact-{}", std::process::id()));
    let runs: Vec<Run> = (0..o.runs).map(|r| one_run(&root, &o, r)).collect();
    let _ = std::fs::remove_dir_all(&root);
    let med = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    println!(
        "compaction of {} records over {} keys ({} runs, medians, I/O limit {}):",
        o.records,
        o.keys,
        o.runs,
        o.io_rate.map_or("none".to_owned(), |r| format!("{r} B/s"))
    );
    println!(
        "  clean: {:.1} MB/s of log cleaned ({:.1} MB/s read), {:.2} s, written/read {:.3}",
        med(&|r| r.cleaned_mb_s),
        med(&|r| r.clean_mb_s),
        med(&|r| r.clean_s),
        med(&|r| r.written_ratio)
    );
    println!(
        "  durable append latency alone:        p50 {:.0} us, p99 {:.0} us",
        med(&|r| r.alone.0 as f64),
        med(&|r| r.alone.1 as f64)
    );
    println!(
        "  durable append latency during clean: p50 {:.0} us, p99 {:.0} us",
        med(&|r| r.during.0 as f64),
        med(&|r| r.during.1 as f64)
    );
}
