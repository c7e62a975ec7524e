//! The engine's side of log compaction: reading keys and tombstones out of
//! stored batches of any codec, re-encoding a batch with some of its records
//! (`veltrix_log::RecordRewriter`), and the cleaner's round over every
//! compacted partition, which the host runs on a thread that may block.
//!
//! Records are read with the validator's walker (`validate/records.rs`):
//! the same rules and memory bounds as when they were produced, compressed
//! records streamed through the codec's decoder. A batch is re-encoded by the
//! duplicate filter's `without` (`dedup/filter.rs`): same codec, base offset,
//! `last_offset_delta` and producer fields, kept records at their offsets.

use std::sync::atomic::{AtomicU64, Ordering};

use veltrix_log::batch;
use veltrix_log::{CleanLimits, RecordRewriter, RecordView, Rewritten};

use crate::Broker;
use crate::validate::{self, Deltas, Field, InvalidBatch, Reading};

/// Default of `[broker] compaction_key_map_bytes_max`.
pub const KEY_MAP_BYTES_MAX_DEFAULT: u64 = 64 << 20;

/// The key and whether the value is null, from a record's bytes after its
/// length: attributes, timestamp delta, offset delta, key, value.
fn key_and_tombstone(body: &[u8]) -> Option<(Option<&[u8]>, bool)> {
    let mut at = 1usize;
    varint(body, &mut at)?;
    varint(body, &mut at)?;
    let key_len = varint(body, &mut at)?;
    let key = if key_len < 0 {
        None
    } else {
        let end = at.checked_add(usize::try_from(key_len).ok()?)?;
        let key = body.get(at..end)?;
        at = end;
        Some(key)
    };
    Some((key, varint(body, &mut at)? < 0))
}

/// A zigzag varint (or varlong) at `at`.
fn varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut u = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        u |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((u >> 1) as i64) ^ -((u & 1) as i64));
        }
    }
    None
}

/// Reads the records of stored batches for the cleaner.
#[derive(Debug, Default)]
pub struct EngineRewriter;

const WHOLE: Reading<'static> = Reading {
    deltas: Deltas::Rising,
    field: Field::Nothing,
    field_bytes_max: 0,
    body: true,
};

fn walk(bytes: &[u8], visit: &mut dyn FnMut(i32, RecordView<'_>)) -> Result<(), String> {
    let header = batch::parse_header(bytes).map_err(|e| e.to_string())?;
    validate::read_records(bytes, &header, &WHOLE, &mut |seen| {
        let (key, tombstone) = key_and_tombstone(seen.body).ok_or(InvalidBatch::Record {
            index: seen.offset_delta,
            problem: validate::RecordProblem::Truncated,
        })?;
        let offset = header.base_offset + i64::from(seen.offset_delta);
        visit(seen.offset_delta, RecordView { offset, key, tombstone });
        Ok(())
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

impl RecordRewriter for EngineRewriter {
    fn records(&self, bytes: &[u8], visit: &mut dyn FnMut(RecordView<'_>)) -> Result<(), String> {
        walk(bytes, &mut |_, r| visit(r))
    }

    fn retain(&self, bytes: &[u8], keep: &mut dyn FnMut(RecordView<'_>) -> bool) -> Result<Rewritten, String> {
        let mut drop = Vec::new();
        let mut count = 0usize;
        walk(bytes, &mut |delta, r| {
            count += 1;
            if !keep(r) {
                drop.push(delta);
            }
        })?;
        if drop.is_empty() {
            return Ok(Rewritten::Unchanged);
        }
        if drop.len() == count {
            return Ok(Rewritten::Emptied);
        }
        crate::dedup::filter::without(bytes, &drop)
            .map(Rewritten::Rebuilt)
            .map_err(|e| e.to_string())
    }
}

/// The cleaner's counters across partitions, for the metrics.
#[derive(Debug, Default)]
pub struct CleanerTotals {
    pub rounds: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_removed: AtomicU64,
    pub records_removed: AtomicU64,
    pub key_map_full: AtomicU64,
    pub failures: AtomicU64,
    pub micros: AtomicU64,
}

/// The cleaner's metrics, set from [`CleanerTotals`] before each scrape.
#[derive(Debug, Clone)]
pub(crate) struct CleanerMetrics {
    /// One counter per total of [`CleanerTotals`], in its order.
    counters: [prometheus::IntCounter; 7],
    seconds: prometheus::Counter,
}

impl CleanerMetrics {
    pub(crate) fn new(r: &crate::metrics::Registrar<'_>) -> CleanerMetrics {
        let c = |name: &str, help: &str| r.int_counter(name, help);
        CleanerMetrics {
            counters: [
                c("veltrix_log_cleaner_rounds_total", "Compaction rounds that ran."),
                c(
                    "veltrix_log_cleaner_read_bytes_total",
                    "Bytes of sealed segments compaction read.",
                ),
                c(
                    "veltrix_log_cleaner_written_bytes_total",
                    "Bytes of compacted segments written.",
                ),
                c(
                    "veltrix_log_cleaner_removed_bytes_total",
                    "Bytes compaction removed from the logs.",
                ),
                c(
                    "veltrix_log_cleaner_removed_records_total",
                    "Records compaction removed (superseded, expired tombstones, keyless).",
                ),
                c(
                    "veltrix_log_cleaner_key_map_full_total",
                    "Compaction rounds cut short by the key map's limit (key_map_bytes_max); the rest waited for the next round.",
                ),
                c(
                    "veltrix_log_cleaner_failures_total",
                    "Compaction rounds abandoned on an error (the log left as it was).",
                ),
            ],
            seconds: r
                .counter_vec(
                    "veltrix_log_cleaner_seconds_total",
                    "Time compaction rounds took, throttle included.",
                    &[],
                )
                .with_label_values(&[] as &[&str]),
        }
    }

    pub(crate) fn refresh(&self, broker: &Broker) {
        let t = broker.cleaner_totals();
        let totals = [
            &t.rounds,
            &t.bytes_read,
            &t.bytes_written,
            &t.bytes_removed,
            &t.records_removed,
            &t.key_map_full,
            &t.failures,
        ];
        for (counter, total) in self.counters.iter().zip(totals) {
            let total = total.load(Ordering::Relaxed);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let seconds = t.micros.load(Ordering::Relaxed) as f64 / 1e6;
        self.seconds.inc_by((seconds - self.seconds.get()).max(0.0));
    }
}

impl Broker {
    /// One pass of the cleaner over every compacted partition: a round where
    /// one is due (see `veltrix_log::Log::clean`). Blocks for the rounds'
    /// I/O and throttle: the host calls it on a thread that may block, one
    /// pass at a time. Returns whether any round ran. An error abandons that
    /// partition's round only (logged and counted by the log).
    pub fn run_cleaner(&self, limits: &CleanLimits) -> bool {
        let mut ran = false;
        for topic in self.topics() {
            for p in &topic.partitions {
                if p.log().config().compaction.is_none() {
                    continue;
                }
                let t = &self.cleaner_totals;
                match p.log().clean(&EngineRewriter, limits) {
                    Ok(o) if o.ran => {
                        ran = true;
                        t.rounds.fetch_add(1, Ordering::Relaxed);
                        t.bytes_read.fetch_add(o.bytes_read, Ordering::Relaxed);
                        t.bytes_written.fetch_add(o.bytes_written, Ordering::Relaxed);
                        t.bytes_removed.fetch_add(o.bytes_removed, Ordering::Relaxed);
                        t.records_removed.fetch_add(o.records_removed, Ordering::Relaxed);
                        t.key_map_full.fetch_add(u64::from(o.key_map_full), Ordering::Relaxed);
                        t.micros.fetch_add(o.micros, Ordering::Relaxed);
                        tracing::debug!(topic = %topic.name, partition = p.index, ?o, "compaction round");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        t.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "compaction round failed");
                    }
                }
            }
        }
        ran
    }

    /// The cleaner's counters across partitions.
    pub fn cleaner_totals(&self) -> &CleanerTotals {
        &self.cleaner_totals
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use veltrix_client::kafka_protocol::records::{Compression, Record};
    use veltrix_log::Env;
    use veltrix_log::sim::{SimClock, SimStorage};

    use super::*;
    use crate::{BrokerConfig, CleanupPolicy, CoreError, TopicConfig};

    const COMPRESSIONS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn record(i: i64, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            key: key.map(|k| Bytes::from(k.to_owned())),
            value: value.map(|v| Bytes::from(v.to_owned())),
            // offset minus sequence constant: one batch per encode.
            ..veltrix_client::plain_record(i, i as i32, 1_700_000_000_000 + i)
        }
    }

    fn compacted_topic(clock: &Arc<SimClock>) -> Broker {
        let storage = SimStorage::new();
        let env = Env::new(Arc::new(storage), clock.clone(), 64);
        let b = Broker::open(env, "/data", BrokerConfig::default()).unwrap();
        let config = TopicConfig {
            cleanup_policy: Some(CleanupPolicy::parse("compact").unwrap()),
            min_cleanable_dirty_ppm: Some(0),
            segment_age_ms_max: Some(1000),
            ..TopicConfig::default()
        };
        b.create_topic("c", Some(1), config).unwrap();
        b
    }

    /// Compressed batches of every codec, compacted through the broker: the
    /// latest value of each key at its offset, the tombstone kept, the
    /// rest gone, and the batches still readable by the client's decoder.
    #[test]
    fn every_codec_is_compacted_to_the_latest_value_per_key_at_original_offsets() {
        for compression in COMPRESSIONS {
            let clock = Arc::new(SimClock::new(1_700_000_000_000));
            let b = compacted_topic(&clock);
            let p = b.topic("c").unwrap().partitions[0].clone();
            let rounds: [&[(&str, Option<&str>)]; 3] = [
                &[("a", Some("a1")), ("b", Some("b1")), ("c", Some("c1"))],
                &[("a", Some("a2")), ("b", None)],
                &[("c", Some("c2")), ("a", Some("a3"))],
            ];
            let mut offset = 0;
            for round in rounds {
                let records: Vec<Record> = round
                    .iter()
                    .map(|(k, v)| {
                        offset += 1;
                        record(offset - 1, Some(k), *v)
                    })
                    .collect();
                let bytes = veltrix_client::encode_records(&records, compression).unwrap();
                let appended = p.append_batches(&bytes).unwrap();
                p.commit(appended.next_offset).unwrap();
            }
            clock.advance(2000);
            p.log().tick().unwrap();
            assert!(b.run_cleaner(&CleanLimits::default()), "{compression:?}: a round ran");
            let read = p.log().read(0, 1 << 20).unwrap();
            let batches = veltrix_client::decode_batches(&read.records, &Default::default()).unwrap();
            let got: Vec<(i64, String, Option<String>)> = batches
                .iter()
                .flat_map(|b| &b.records)
                .map(|r| {
                    let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
                    (r.offset, text(r.key.as_ref().unwrap()), r.value.as_ref().map(text))
                })
                .collect();
            let want = [(4, "b", None), (5, "c", Some("c2")), (6, "a", Some("a3"))]
                .map(|(o, k, v)| (o, k.to_owned(), v.map(str::to_owned)));
            assert_eq!(got, want, "{compression:?}");
            assert_eq!(batches.last().unwrap().last_offset, 6, "{compression:?}");
        }
    }

    #[test]
    fn a_compacted_topic_refuses_a_record_without_a_key() {
        let clock = Arc::new(SimClock::new(1_700_000_000_000));
        let b = compacted_topic(&clock);
        let p = b.topic("c").unwrap().partitions[0].clone();
        let records = [record(0, Some("k"), Some("v")), record(1, None, Some("v"))];
        let bytes = veltrix_client::encode_records(&records, Compression::Lz4).unwrap();
        match p.append_batches(&bytes) {
            Err(CoreError::InvalidBatch {
                source:
                    InvalidBatch::Record {
                        index: 1,
                        problem: validate::RecordProblem::KeyMissing,
                    },
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(p.log().log_end(), 0, "nothing of the batch was stored");
    }

    #[test]
    fn keys_and_tombstones_are_read_from_a_record_body() {
        // attributes 0, ts delta 0, offset delta 1, key "ab", value null, 0 headers
        let body = [0u8, 0, 2, 4, b'a', b'b', 1, 0];
        assert_eq!(key_and_tombstone(&body), Some((Some(&b"ab"[..]), true)));
        let keyless = [0u8, 0, 0, 1, 2, b'x', 0];
        assert_eq!(key_and_tombstone(&keyless), Some((None, false)));
        assert_eq!(key_and_tombstone(&[0u8, 0, 0, 8, b'a']), None, "a key past the end");
    }
}
