//! Model-based property test: the log against a list of acknowledged batches.
//!
//! Random sequences of appends, reads by offset and by time, delete-records,
//! retention ticks with the clock moving, and clean and unclean reboots (with torn
//! writes) are applied to the log and to a plain `Vec` model. After every step the
//! log's answers must match the model's. Retention deletes whole segments, whose
//! boundaries the model does not know, so for retention the model checks what
//! must hold instead: the log start only moves forward, every batch that went had
//! expired (or the size bound required it), and what remains reads back intact.
//!
//! Producers' timestamps are not trusted: some batches carry a header timestamp
//! of 0, -1, years in the past or far in the future. With retention by size off,
//! the second test checks the strict rule: retention by time never deletes a
//! batch that the log appended within the retention period by its own clock.

use proptest::prelude::*;
use veltrix_log::batch;
use veltrix_log::{Log, LogConfig, LogError};

use crate::support::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: i32,
        size: usize,
        ts_delta: i64,
    },
    /// An append whose header timestamp has nothing to do with the clock.
    AppendSkewed {
        size: usize,
        ts: SkewedTs,
    },
    /// Several appends followed by one wait, as concurrent producers would.
    AppendMany {
        n: usize,
        size: usize,
    },
    /// Appends not waited for: a crash may tear them, keeping only whole batches.
    AppendUnacked {
        n: usize,
        size: usize,
    },
    Read {
        at: u16,
        bytes_max: usize,
    },
    ReadByTime {
        back_ms: u32,
    },
    DeleteRecords {
        at: u16,
    },
    Tick {
        advance_ms: u32,
    },
    CleanReboot,
    CrashReboot {
        torn: bool,
        seed: u64,
    },
    /// Power loss with unsynced writes reaching the disk in no particular order.
    CrashReordered {
        seed: u64,
    },
}

/// Header timestamps producers really send: librdkafka's C++ API can leave the
/// largest timestamp at 0, -1 means none, and clocks are wrong both ways.
#[derive(Debug, Clone, Copy)]
enum SkewedTs {
    Zero,
    None,
    YearsAgo,
    FarFuture,
}

impl SkewedTs {
    fn at(self, now: i64) -> i64 {
        match self {
            SkewedTs::Zero => 0,
            SkewedTs::None => -1,
            SkewedTs::YearsAgo => now - 3 * 365 * 86_400_000,
            SkewedTs::FarFuture => now + 100_000,
        }
    }
}

fn skewed_ts() -> impl Strategy<Value = SkewedTs> {
    prop_oneof![
        Just(SkewedTs::Zero),
        Just(SkewedTs::None),
        Just(SkewedTs::YearsAgo),
        Just(SkewedTs::FarFuture)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1..5i32, 61..700usize, -500..2000i64).prop_map(|(count, size, ts_delta)| Op::Append { count, size, ts_delta }),
        2 => (61..700usize, skewed_ts()).prop_map(|(size, ts)| Op::AppendSkewed { size, ts }),
        2 => (2..6usize, 61..400usize).prop_map(|(n, size)| Op::AppendMany { n, size }),
        2 => (1..4usize, 61..900usize).prop_map(|(n, size)| Op::AppendUnacked { n, size }),
        4 => (any::<u16>(), prop_oneof![Just(1usize), 100..3000usize]).prop_map(|(at, bytes_max)| Op::Read { at, bytes_max }),
        2 => (0..60_000u32).prop_map(|back_ms| Op::ReadByTime { back_ms }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        2 => (0..30_000u32).prop_map(|advance_ms| Op::Tick { advance_ms }),
        1 => Just(Op::CleanReboot),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(torn, seed)| Op::CrashReboot { torn, seed }),
        1 => any::<u64>().prop_map(|seed| Op::CrashReordered { seed }),
    ]
}

/// One batch the log was given.
#[derive(Debug, Clone)]
struct Entry {
    offset: i64,
    bytes: Vec<u8>,
    /// The largest timestamp its header claims.
    ts: i64,
    /// The log's wall clock when it was appended.
    appended_ms: i64,
}

impl Entry {
    fn next(&self) -> i64 {
        next_of(self.offset, &self.bytes)
    }

    fn pair(&self) -> (i64, Vec<u8>) {
        (self.offset, self.bytes.clone())
    }
}

/// What the log must contain: acknowledged batches with their max timestamps, and
/// batches written but not yet known to be durable.
#[derive(Default)]
struct Model {
    batches: Vec<Entry>,
    pending: Vec<Entry>,
    log_start: i64,
    next: i64,
    ts: i64,
    /// Retention by size is off: every deletion must be by time.
    time_only: bool,
}

impl Model {
    /// Batches still readable: those ending above the log start.
    fn live(&self) -> impl Iterator<Item = &Entry> {
        self.batches.iter().filter(|e| e.next() > self.log_start)
    }

    fn now(&self) -> i64 {
        T0 + self.ts
    }

    fn push(&mut self, offset: i64, bytes: Vec<u8>, ts: i64) {
        let appended_ms = self.now();
        self.pending.push(Entry {
            offset,
            bytes,
            ts,
            appended_ms,
        });
    }

    /// Pending batches below `hw` have become durable (a later fsync or a roll
    /// covered them).
    fn settle(&mut self, hw: i64) {
        let n = self.pending.iter().take_while(|e| e.next() <= hw).count();
        self.batches.extend(self.pending.drain(..n));
        if let Some(e) = self.batches.last() {
            self.next = self.next.max(e.next());
        }
    }

    fn log_end(&self) -> i64 {
        self.pending.last().map_or(self.next, Entry::next)
    }

    fn pick(&self, at: u16) -> i64 {
        let span = (self.next - self.log_start + 1).max(1);
        self.log_start + i64::from(at) % span
    }
}

fn next_of(offset: i64, b: &[u8]) -> i64 {
    offset + i64::from(batch::parse_fixed(b).unwrap().last_offset_delta) + 1
}

fn config(time_only: bool) -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        batch_bytes_max: 1024,
        index_interval_bytes: 300,
        retention_ms: Some(40_000),
        retention_bytes: (!time_only).then_some(20_000),
        ..LogConfig::default()
    }
}

fn check_matches(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_start(), model.log_start);
    prop_assert_eq!(log.high_watermark(), model.next);
    prop_assert_eq!(log.log_end(), model.log_end());
    let want: Vec<(i64, Vec<u8>)> = model.live().map(Entry::pair).collect();
    prop_assert_eq!(read_all(log, model.log_start), want);
    Ok(())
}

fn step(w: &World, log: &mut Log, model: &mut Model, op: &Op, tag: &mut u8) -> Result<(), TestCaseError> {
    *tag = tag.wrapping_add(1);
    match *op {
        Op::Append { count, size, ts_delta } => {
            let ts = T0 + model.ts + ts_delta;
            let mut b = make_batch(count, size, ts, *tag);
            let a = log.append_durable(&mut b).unwrap();
            prop_assert_eq!(a.base_offset, model.log_end());
            model.push(a.base_offset, b, ts);
            model.settle(a.next_offset);
        }
        Op::AppendSkewed { size, ts } => {
            let ts = ts.at(model.now());
            let mut b = make_batch(1, size, ts, *tag);
            let a = log.append_durable(&mut b).unwrap();
            model.push(a.base_offset, b, ts);
            model.settle(a.next_offset);
        }
        Op::AppendMany { n, size } => {
            let mut last = 0;
            for i in 0..n {
                let ts = T0 + model.ts;
                let mut b = make_batch(1, size + i, ts, tag.wrapping_add(i as u8));
                let a = log.append(&mut b).unwrap();
                last = a.next_offset;
                model.push(a.base_offset, b, ts);
            }
            log.wait_durable(last).unwrap();
            model.settle(last);
        }
        Op::AppendUnacked { n, size } => {
            for i in 0..n {
                let ts = T0 + model.ts;
                let mut b = make_batch(2, size + i, ts, tag.wrapping_add(i as u8));
                let a = log.append(&mut b).unwrap();
                model.push(a.base_offset, b, ts);
            }
            model.settle(log.high_watermark());
        }
        Op::Read { at, bytes_max } => {
            let offset = model.pick(at);
            let r = log.read(offset, bytes_max).unwrap();
            let got = split_batches(&r.records);
            let want: Vec<(i64, Vec<u8>)> = model
                .live()
                .filter(|e| e.next() > offset)
                .take(got.len())
                .map(Entry::pair)
                .collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(got.is_empty(), offset == model.next);
            let total: usize = got.iter().map(|(_, b)| b.len()).sum();
            prop_assert!(got.len() <= 1 || total <= bytes_max, "read over its byte limit");
            if offset < model.next {
                let first = &got[0];
                prop_assert!(first.0 <= offset && offset < next_of(first.0, &first.1));
            }
        }
        Op::ReadByTime { back_ms } => {
            let target = T0 + model.ts - i64::from(back_ms);
            let want = model
                .live()
                .find(|e| e.ts >= target)
                .map(|e| e.offset.max(model.log_start));
            prop_assert_eq!(log.offset_for_timestamp(target).unwrap().map(|h| h.offset), want);
        }
        Op::DeleteRecords { at } => {
            let offset = model.pick(at);
            prop_assert_eq!(log.delete_records(offset).unwrap(), offset.max(model.log_start));
            model.log_start = model.log_start.max(offset);
            let beyond = log.delete_records(model.next + 1);
            prop_assert!(matches!(beyond, Err(LogError::OffsetOutOfRange { .. })), "{:?}", beyond);
        }
        Op::Tick { advance_ms } => {
            w.clock.advance(u64::from(advance_ms));
            model.ts += i64::from(advance_ms);
            let before = model.log_start;
            log.tick().unwrap();
            model.settle(log.high_watermark());
            let after = log.log_start();
            prop_assert!(after >= before, "log start moved back");
            let horizon = model.now() - 40_000;
            let gone: Vec<_> = model
                .batches
                .iter()
                .filter(|e| e.next() <= after && e.next() > before)
                .collect();
            // A deleted batch had expired both by its own timestamp and by the
            // time the log appended it.
            let expired = |e: &&Entry| e.ts < horizon && e.appended_ms < horizon;
            if model.time_only {
                let early: Vec<(i64, i64, i64)> = gone
                    .iter()
                    .filter(|e| !expired(e))
                    .map(|e| (e.offset, e.ts, e.appended_ms))
                    .collect();
                prop_assert!(
                    early.is_empty(),
                    "batches (offset, ts, appended) went before they expired: {:?}",
                    early
                );
            } else {
                let size_bound = config(false).retention_bytes.unwrap() + config(false).segment_bytes_max;
                prop_assert!(
                    gone.iter().all(expired) || log.size_bytes() <= size_bound,
                    "a batch went before it expired"
                );
                prop_assert!(log.size_bytes() <= size_bound, "size retention not applied");
            }
            model.log_start = after;
        }
        Op::CleanReboot => {
            log.close().unwrap();
            *log = w.open(config(model.time_only));
            model.settle(i64::MAX);
        }
        Op::CrashReboot { .. } | Op::CrashReordered { .. } => {
            match *op {
                Op::CrashReboot { torn, seed } => w.storage.crash(torn, seed),
                Op::CrashReordered { seed } => w.storage.crash_reordered(seed),
                _ => unreachable!("matched above"),
            }
            *log = w.open(config(model.time_only));
            // Of the unacknowledged batches, a prefix of whole ones may survive.
            let survived: Vec<(i64, Vec<u8>)> = split_batches(&log.read(model.next, usize::MAX).unwrap().records);
            let want: Vec<(i64, Vec<u8>)> = model.pending.iter().take(survived.len()).map(Entry::pair).collect();
            prop_assert_eq!(&survived, &want, "only whole unacknowledged batches, in order");
            model.pending.truncate(survived.len());
            model.settle(i64::MAX);
        }
    }
    check_matches(log, model)
}

// Case count: proptest's default (256), or PROPTEST_CASES for a longer hunt.
fn run(ops: &[Op], time_only: bool) -> Result<(), TestCaseError> {
    let w = World::new();
    let mut model = Model {
        time_only,
        ..Model::default()
    };
    let mut log = w.open(config(time_only));
    let mut tag = 0u8;
    for op in ops {
        step(&w, &mut log, &mut model, op, &mut tag)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn log_matches_the_model_through_appends_reads_retention_and_reboots(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops, false)?;
    }

    #[test]
    fn retention_by_time_never_deletes_what_was_appended_within_the_period(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops, true)?;
    }
}
