//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::sync::Arc;

use veltrix_log::batch::{self, build};
use veltrix_log::sim::{SimClock, SimStorage};
use veltrix_log::{Env, Log, LogConfig};

/// A simulated world: storage with faults, a manual clock, and an env over them.
pub struct World {
    pub storage: SimStorage,
    pub clock: Arc<SimClock>,
    pub env: Arc<Env>,
    pub dir: PathBuf,
}

/// Wall time the simulated clock starts at (2026-01-01).
pub const T0: i64 = 1_767_225_600_000;

impl World {
    pub fn new() -> World {
        let storage = SimStorage::new();
        let clock = Arc::new(SimClock::new(T0));
        let env = Env::new(Arc::new(storage.clone()), clock.clone(), 16);
        World {
            storage,
            clock,
            env,
            dir: PathBuf::from("/data/topic-0"),
        }
    }

    pub fn open(&self, config: LogConfig) -> Log {
        Log::open(self.env.clone(), &self.dir, config).expect("open log")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A small config so tests cross segment boundaries quickly.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        batch_bytes_max: 2048,
        index_interval_bytes: 256,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// A batch of `count` records, `size` bytes, with timestamps `ts`, whose payload
/// byte is derived from `tag` so tests can tell batches apart.
pub fn make_batch(count: i32, size: usize, ts: i64, tag: u8) -> Vec<u8> {
    build::batch(
        build::Spec {
            record_count: count,
            base_timestamp: ts,
            max_timestamp: ts,
            ..build::Spec::default()
        },
        size,
        tag,
    )
}

/// Splits bytes returned by a read into `(base_offset, batch bytes)`.
pub fn split_batches(mut bytes: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let size = batch::peek_size(bytes).expect("batch length");
        let h = batch::verify(&bytes[..size]).expect("valid batch");
        out.push((h.base_offset, bytes[..size].to_vec()));
        bytes = &bytes[size..];
    }
    out
}

/// Reads every visible batch from `from` to the high watermark.
pub fn read_all(log: &Log, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = from;
    for _ in 0..100_000 {
        let r = log.read(at, 1 << 16).expect("read");
        if r.records.is_empty() {
            assert_eq!(
                r.next_offset, r.high_watermark,
                "an empty read must be at the high watermark"
            );
            return out;
        }
        out.extend(split_batches(&r.records));
        at = r.next_offset;
    }
    panic!("read_all did not reach the high watermark");
}

pub fn exists(world: &World, name: &str) -> bool {
    world.storage.files().iter().any(|p: &PathBuf| p == &world.path(name))
}
