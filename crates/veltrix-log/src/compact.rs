//! Log compaction's settings, its seam with the engine, and its bounded parts.
//!
//! The cleaner (`log/clean.rs`) keeps the latest record of each key in a
//! compacted log by rewriting sealed segments; the active segment is never
//! touched. The log crate knows batches, not records: what a record's key is,
//! whether its value is null (a tombstone) and how a batch is re-encoded with
//! fewer records (any codec) is the engine's, handed in as a
//! [`RecordRewriter`]. The crate keeps what makes a rewrite safe: offsets
//! never change (a kept record keeps its offset; a batch keeps its base offset
//! and `last_offset_delta`; batches whose records are all gone are folded into
//! empty batches covering their offsets, so segments stay contiguous and every
//! check that offsets follow on still holds), the producer state survives,
//! and a crash leaves the old or the new segments, never a mix.
//!
//! Memory is bounded by [`CleanLimits::key_map_bytes_max`] (the map from key
//! digest to latest offset; a dirty section that does not fit is compacted up
//! to where the map filled and the rest is left for the next round) and I/O by
//! [`CleanLimits::io_bytes_per_sec_max`] (reads and writes of a round).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The settings of a compacted log (Kafka's topic configs of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionConfig {
    /// A tombstone stays this long after the round that first compacted it,
    /// so that consumers reading from the start see the deletion
    /// (`delete.retention.ms`).
    pub delete_retention_ms: u64,
    /// A segment whose newest record is younger than this is not compacted
    /// (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: u64,
    /// Dirty data older than this is compacted whatever the dirty ratio, and
    /// the active segment is rolled once it is this old so it can be
    /// (`max.compaction.lag.ms`).
    pub max_compaction_lag_ms: u64,
    /// A round runs once this share of the log (in millionths) is dirty,
    /// written since the last round (`min.cleanable.dirty.ratio` x 10^6).
    pub min_cleanable_dirty_ppm: u32,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX as u64,
            min_cleanable_dirty_ppm: 500_000,
        }
    }
}

impl CompactionConfig {
    pub(crate) fn validate(&self) -> Result<(), crate::config::ConfigError> {
        let bad = |field, reason: String| Err(crate::config::ConfigError { field, reason });
        if self.min_cleanable_dirty_ppm > 1_000_000 {
            return bad(
                "min_cleanable_dirty_ratio",
                format!("{} ppm is over 1.0", self.min_cleanable_dirty_ppm),
            );
        }
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return bad(
                "min_compaction_lag_ms",
                format!(
                    "{} is above max_compaction_lag_ms ({}): no segment could ever be compacted in time",
                    self.min_compaction_lag_ms, self.max_compaction_lag_ms
                ),
            );
        }
        if self.max_compaction_lag_ms == 0 {
            return bad("max_compaction_lag_ms", "must be at least 1 ms".into());
        }
        Ok(())
    }
}

/// One record as the engine reads it out of a batch.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub offset: i64,
    /// `None` for a record without a key (a compacted topic refuses those at
    /// produce time; one written before the topic was compacted is dropped by
    /// the cleaner, as Kafka's does).
    pub key: Option<&'a [u8]>,
    /// The value is null: a deletion of the key.
    pub tombstone: bool,
}

/// What [`RecordRewriter::retain`] made of a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewritten {
    /// Every record is kept: the batch is stored as it was.
    Unchanged,
    /// Some records are kept: the batch re-encoded with them (same codec,
    /// base offset, `last_offset_delta`, producer fields; new count, length,
    /// timestamps, CRC).
    Rebuilt(Vec<u8>),
    /// No record is kept.
    Emptied,
}

/// The engine's part of compaction: reading records' keys and re-encoding a
/// batch with some of them. Both are handed verified, non-control batches.
/// An `Err` is a batch that cannot be read: the round is abandoned and
/// nothing changes.
pub trait RecordRewriter: Send + Sync {
    /// Hands every record of `batch` to `visit`, in offset order.
    fn records(&self, batch: &[u8], visit: &mut dyn FnMut(RecordView<'_>)) -> Result<(), String>;
    /// Re-encodes `batch` with the records `keep` answers true for.
    fn retain(&self, batch: &[u8], keep: &mut dyn FnMut(RecordView<'_>) -> bool) -> Result<Rewritten, String>;
}

/// Broker-wide bounds of a cleaning round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanLimits {
    /// Memory of the key map (digest to latest offset) of one round.
    pub key_map_bytes_max: u64,
    /// Bytes read and written per second by a round; `None` for no limit.
    pub io_bytes_per_sec_max: Option<u64>,
}

/// Smallest key map a round accepts: room for some thousands of keys, so a
/// round always makes progress.
pub const KEY_MAP_BYTES_MIN: u64 = 1 << 20;
/// Keys the map takes whatever its bound.
const KEY_MAP_KEYS_MIN: usize = 16;
/// Memory charged per slot of the key map: a 16-byte digest, an 8-byte
/// offset and the table's control byte (25 bytes a bucket), with the
/// table's spare room (at most 8 buckets for 7 slots: 28.6 bytes a slot).
pub const KEY_MAP_SLOT_BYTES: u64 = 32;

impl Default for CleanLimits {
    fn default() -> Self {
        CleanLimits {
            key_map_bytes_max: 64 << 20,
            io_bytes_per_sec_max: None,
        }
    }
}

/// What one call of `Log::clean` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanOutcome {
    /// A round ran (the log was compacted and dirty enough, or forced).
    pub ran: bool,
    /// Bytes of sealed segments read.
    pub bytes_read: u64,
    /// Bytes of cleaned segments written.
    pub bytes_written: u64,
    /// Bytes the log shrank by.
    pub bytes_removed: u64,
    /// Records removed (superseded, expired tombstones, keyless).
    pub records_removed: u64,
    /// Segment groups swapped in.
    pub segments_swapped: u64,
    /// The key map filled before the dirty section ended: the rest waits for
    /// the next round.
    pub key_map_full: bool,
    /// The round was forced by `max_compaction_lag_ms`.
    pub forced: bool,
    /// Time spent, in microseconds, sleeps of the throttle included.
    pub micros: u64,
}

/// Counters of a log's cleaner, for the metrics adapter. Monotonic.
#[derive(Debug, Default)]
pub struct CleanerStats {
    pub rounds: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_removed: AtomicU64,
    pub records_removed: AtomicU64,
    /// Rounds cut short by the key map's limit.
    pub key_map_full: AtomicU64,
    /// Rounds abandoned on an error (nothing changed).
    pub failures: AtomicU64,
    pub micros: AtomicU64,
}

impl CleanerStats {
    pub(crate) fn add(&self, o: &CleanOutcome) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(o.bytes_read, Ordering::Relaxed);
        self.bytes_written.fetch_add(o.bytes_written, Ordering::Relaxed);
        self.bytes_removed.fetch_add(o.bytes_removed, Ordering::Relaxed);
        self.records_removed.fetch_add(o.records_removed, Ordering::Relaxed);
        self.key_map_full
            .fetch_add(u64::from(o.key_map_full), Ordering::Relaxed);
        self.micros.fetch_add(o.micros, Ordering::Relaxed);
    }
}

/// A key's digest: 128 bits from two independently keyed SipHashes, so two
/// keys collide with odds of about 2^-128 per pair (a collision would drop
/// the older key's latest record). The keys are random per round: nothing
/// is stored.
pub(crate) struct Digester {
    a: RandomState,
    b: RandomState,
}

impl Digester {
    pub(crate) fn new() -> Digester {
        Digester {
            a: RandomState::new(),
            b: RandomState::new(),
        }
    }

    pub(crate) fn digest(&self, key: &[u8]) -> u128 {
        let mut a = self.a.build_hasher();
        a.write(key);
        let mut b = self.b.build_hasher();
        b.write(key);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }
}

/// Key digest to the latest offset of the key in the dirty section, within
/// a memory bound.
pub(crate) struct KeyMap {
    /// The digest as two words: a `u128` key would be 16-byte aligned and
    /// make each entry 32 bytes instead of 24.
    map: HashMap<(u64, u64), i64>,
    bytes_max: u64,
}

impl KeyMap {
    pub(crate) fn new(bytes_max: u64) -> KeyMap {
        KeyMap {
            map: HashMap::new(),
            bytes_max,
        }
    }

    /// Records `offset` as the latest of `digest`; `false` (nothing changed)
    /// when a new key would grow the table past the bound.
    pub(crate) fn put(&mut self, digest: u128, offset: i64) -> bool {
        let digest = split(digest);
        if let Some(o) = self.map.get_mut(&digest) {
            *o = offset;
            return true;
        }
        // At least a few keys whatever the bound, so every round progresses.
        if self.map.len() == self.map.capacity() && self.map.len() >= KEY_MAP_KEYS_MIN {
            let grown = (self.map.capacity() * 2).max(16) as u64;
            if grown * KEY_MAP_SLOT_BYTES > self.bytes_max {
                return false;
            }
        }
        self.map.insert(digest, offset);
        true
    }

    pub(crate) fn get(&self, digest: u128) -> Option<i64> {
        self.map.get(&split(digest)).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

fn split(digest: u128) -> (u64, u64) {
    ((digest >> 64) as u64, digest as u64)
}

/// Paces a round's I/O to a rate: each call after bytes moved sleeps until
/// the round's average is back under the limit.
pub(crate) struct Throttle {
    started: Instant,
    bytes: u64,
    per_sec: Option<u64>,
}

/// Longest single sleep of the throttle, so a round stays responsive to
/// shutdown between steps.
const THROTTLE_SLEEP_MAX: Duration = Duration::from_millis(200);

impl Throttle {
    pub(crate) fn new(per_sec: Option<u64>) -> Throttle {
        Throttle {
            started: Instant::now(),
            bytes: 0,
            per_sec,
        }
    }

    pub(crate) fn moved(&mut self, bytes: u64) {
        self.bytes += bytes;
        let Some(rate) = self.per_sec.filter(|r| *r > 0) else {
            return;
        };
        loop {
            let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
            let elapsed = self.started.elapsed();
            if elapsed >= due {
                return;
            }
            std::thread::sleep((due - elapsed).min(THROTTLE_SLEEP_MAX));
        }
    }
}

/// When ranges of offsets were first compacted, for tombstones: an offset
/// below `ends[i].0` (and not below the previous end) was first compacted at
/// `ends[i].1`. Bounded by merging the oldest two entries into the later
/// time, which keeps tombstones longer, never shorter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CleanHistory {
    pub(crate) ends: Vec<(i64, i64)>,
}

/// Entries [`CleanHistory`] keeps.
const HISTORY_ENTRIES_MAX: usize = 64;
const HISTORY_MAGIC: &[u8; 8] = b"VXCLN001";
/// File holding the clean point and [`CleanHistory`].
pub(crate) const CLEANER_STATE_FILE: &str = "cleaner-state";

impl CleanHistory {
    /// The offset below which the log has been compacted.
    pub(crate) fn clean_point(&self) -> i64 {
        self.ends.last().map_or(i64::MIN, |e| e.0)
    }

    /// When `offset` was first compacted; `None` if it has not been.
    pub(crate) fn compacted_at(&self, offset: i64) -> Option<i64> {
        let i = self.ends.partition_point(|e| e.0 <= offset);
        self.ends.get(i).map(|e| e.1)
    }

    pub(crate) fn push(&mut self, end: i64, now_ms: i64) {
        if end <= self.clean_point() {
            return;
        }
        self.ends.push((end, now_ms));
        if self.ends.len() > HISTORY_ENTRIES_MAX {
            let first = self.ends.remove(0);
            self.ends[0].1 = self.ends[0].1.max(first.1);
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.ends.len() * 16);
        out.extend_from_slice(HISTORY_MAGIC);
        out.extend_from_slice(&(self.ends.len() as u32).to_be_bytes());
        for (end, at) in &self.ends {
            out.extend_from_slice(&end.to_be_bytes());
            out.extend_from_slice(&at.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    pub(crate) fn decode(buf: &[u8]) -> Option<CleanHistory> {
        let (body, crc) = buf.split_at_checked(buf.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_be_bytes() != crc || body.get(..8)? != HISTORY_MAGIC {
            return None;
        }
        let count = u32::from_be_bytes(body.get(8..12)?.try_into().ok()?) as usize;
        if count > HISTORY_ENTRIES_MAX || body.len() != 12 + count * 16 {
            return None;
        }
        let ends = body[12..]
            .chunks_exact(16)
            .map(|c| {
                let end = i64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
                let at = i64::from_be_bytes(c[8..].try_into().expect("8 bytes"));
                (end, at)
            })
            .collect();
        Some(CleanHistory { ends })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_answers_when_an_offset_was_first_compacted_and_stays_bounded() {
        let mut h = CleanHistory::default();
        assert_eq!(h.compacted_at(0), None);
        h.push(10, 100);
        h.push(5, 150);
        h.push(20, 200);
        assert_eq!(h.compacted_at(0), Some(100));
        assert_eq!(h.compacted_at(9), Some(100));
        assert_eq!(h.compacted_at(10), Some(200));
        assert_eq!(h.compacted_at(20), None);
        assert_eq!(h.clean_point(), 20);
        for i in 0..200 {
            h.push(21 + i, 300 + i);
        }
        assert_eq!(h.ends.len(), HISTORY_ENTRIES_MAX);
        // Merged entries take the later time: tombstones kept longer.
        assert!(h.compacted_at(0).unwrap() >= 100);
        assert_eq!(CleanHistory::decode(&h.encode()), Some(h.clone()));
        let mut bad = h.encode();
        bad[20] ^= 1;
        assert_eq!(CleanHistory::decode(&bad), None);
    }

    #[test]
    fn the_key_map_refuses_new_keys_past_its_bound_but_updates_old_ones() {
        let mut m = KeyMap::new(KEY_MAP_BYTES_MIN);
        let mut n = 0u128;
        while m.put(n, n as i64) {
            n += 1;
        }
        assert!(m.len() as u64 * KEY_MAP_SLOT_BYTES <= KEY_MAP_BYTES_MIN);
        assert!(m.len() > 10_000);
        assert!(m.put(0, 99), "an update needs no room");
        assert_eq!(m.get(0), Some(99));
    }

    #[test]
    fn compaction_settings_are_checked() {
        CompactionConfig::default().validate().unwrap();
        let c = CompactionConfig {
            min_compaction_lag_ms: 10,
            max_compaction_lag_ms: 5,
            ..CompactionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "min_compaction_lag_ms");
        let c = CompactionConfig {
            min_cleanable_dirty_ppm: 1_000_001,
            ..CompactionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "min_cleanable_dirty_ratio");
    }
}
