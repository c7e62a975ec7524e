//! Disk watermarks by tier: as the data directory's file system fills,
//! produce to `bulk` topics is refused first (below `bulk_free_percent_min`
//! free), then to `standard` ones (below `standard_free_percent_min`);
//! `critical` ones keep writing until only `reserve_bytes_min` is left, kept
//! for the broker's own state (catalogue, offsets, share-group state). A
//! refused produce gets a retriable error and nothing is lost: the producer
//! retries. The level is read from the file system at each housekeeping
//! round, so it clears by itself when space comes back (retention, a deleted
//! topic). Crossings are logged and counted.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::catalog::Tier;

/// When each tier's produce is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskWatermarks {
    /// Bulk produce is refused below this much free space, in percent of
    /// the file system.
    pub bulk_free_percent_min: u8,
    /// Standard produce too below this.
    pub standard_free_percent_min: u8,
    /// Critical produce too below this many free bytes: the broker's own
    /// reserve.
    pub reserve_bytes_min: u64,
}

impl Default for DiskWatermarks {
    fn default() -> DiskWatermarks {
        DiskWatermarks {
            bulk_free_percent_min: 5,
            standard_free_percent_min: 2,
            reserve_bytes_min: 64 << 20,
        }
    }
}

/// How full the disk is, as a refusal level: what is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum DiskLevel {
    /// Everything accepted.
    Ok = 0,
    /// Bulk refused.
    Bulk = 1,
    /// Bulk and standard refused.
    Standard = 2,
    /// Everything refused: the reserve is reached.
    Reserve = 3,
}

impl DiskLevel {
    fn from_u8(n: u8) -> DiskLevel {
        match n {
            0 => DiskLevel::Ok,
            1 => DiskLevel::Bulk,
            2 => DiskLevel::Standard,
            _ => DiskLevel::Reserve,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DiskLevel::Ok => "ok",
            DiskLevel::Bulk => "bulk_refused",
            DiskLevel::Standard => "standard_refused",
            DiskLevel::Reserve => "reserve",
        }
    }

    /// Whether produce to a topic of `tier` is accepted at this level.
    pub fn admits(self, tier: Tier) -> bool {
        match tier {
            Tier::Bulk => self == DiskLevel::Ok,
            Tier::Standard => self <= DiskLevel::Bulk,
            Tier::Critical => self <= DiskLevel::Standard,
        }
    }
}

impl DiskWatermarks {
    /// The level for `available` of `total` bytes.
    pub fn level(&self, available: u64, total: u64) -> DiskLevel {
        if available < self.reserve_bytes_min {
            return DiskLevel::Reserve;
        }
        let percent = if total == 0 {
            100.0
        } else {
            available as f64 * 100.0 / total as f64
        };
        if percent < f64::from(self.standard_free_percent_min) {
            DiskLevel::Standard
        } else if percent < f64::from(self.bulk_free_percent_min) {
            DiskLevel::Bulk
        } else {
            DiskLevel::Ok
        }
    }
}

/// How old a reading may be when a produce asks: between housekeeping
/// rounds a fast producer could otherwise write far past a watermark.
pub const DISK_READING_MS_MAX: u64 = 10;

/// The level now, as last read.
#[derive(Debug, Default)]
pub struct DiskState {
    level: AtomicU8,
    available_bytes: AtomicU64,
    /// When it was read (the clock's monotonic ms, plus one; 0: never).
    read_at_ms: AtomicU64,
}

impl DiskState {
    pub fn level(&self) -> DiskLevel {
        DiskLevel::from_u8(self.level.load(Ordering::Relaxed))
    }

    pub fn available_bytes(&self) -> u64 {
        self.available_bytes.load(Ordering::Relaxed)
    }

    /// Whether the last reading is older than [`DISK_READING_MS_MAX`] at `now_ms`.
    pub(crate) fn stale(&self, now_ms: u64) -> bool {
        let at = self.read_at_ms.load(Ordering::Relaxed);
        at == 0 || now_ms + 1 >= at + DISK_READING_MS_MAX
    }

    /// Records a new reading taken at `now_ms`; the level before it.
    pub(crate) fn set(&self, level: DiskLevel, available: u64, now_ms: u64) -> DiskLevel {
        self.read_at_ms.store(now_ms + 1, Ordering::Relaxed);
        self.available_bytes.store(available, Ordering::Relaxed);
        DiskLevel::from_u8(self.level.swap(level as u8, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_refused_in_order_as_the_disk_fills() {
        let w = DiskWatermarks::default();
        let total = 100 << 30;
        let at = |percent: u64| w.level(total / 100 * percent, total);
        assert_eq!(at(50), DiskLevel::Ok);
        assert_eq!(at(4), DiskLevel::Bulk);
        assert_eq!(at(1), DiskLevel::Standard);
        assert_eq!(w.level(10 << 20, total), DiskLevel::Reserve);
        assert!(DiskLevel::Bulk.admits(Tier::Standard) && !DiskLevel::Bulk.admits(Tier::Bulk));
        assert!(DiskLevel::Standard.admits(Tier::Critical) && !DiskLevel::Standard.admits(Tier::Standard));
        assert!(!DiskLevel::Reserve.admits(Tier::Critical));
    }
}

#[cfg(test)]
mod broker_tests {
    use std::sync::Arc;

    use veltrix_log::Env;
    use veltrix_log::sim::{SimClock, SimStorage};

    use crate::disk::DiskLevel;
    use crate::{Broker, BrokerConfig, Tier, TopicConfig};

    /// Housekeeping reads the free space: as a topic fills a 10 MiB disk,
    /// bulk is refused first, then standard, critical last; deleting the
    /// topic clears it.
    #[test]
    fn the_level_follows_the_disk_and_clears_when_space_returns() {
        let storage = SimStorage::new();
        storage.set_capacity(Some(10 << 20));
        let env = Env::new(
            Arc::new(storage.clone()),
            Arc::new(SimClock::new(1_700_000_000_000)),
            64,
        );
        let config = BrokerConfig {
            disk: crate::disk::DiskWatermarks {
                bulk_free_percent_min: 50,
                standard_free_percent_min: 20,
                reserve_bytes_min: 1 << 20,
            },
            ..BrokerConfig::default()
        };
        let b = Broker::open(env, "/data", config).unwrap();
        b.tick();
        assert_eq!(b.disk().level(), DiskLevel::Ok);
        let filler = TopicConfig {
            segment_bytes_max: Some(1 << 20),
            batch_bytes_max: Some(128 << 10),
            ..TopicConfig::default()
        };
        b.create_topic("fill", Some(1), filler).unwrap();
        let p = b.partition("fill", 0).unwrap();
        let batch = veltrix_log::batch::build::batch(Default::default(), 64 << 10, b'x');
        let mut levels = vec![b.disk().level()];
        for _ in 0..200 {
            if p.log().append_durable(&mut batch.clone()).is_err() {
                break;
            }
            b.tick();
            if levels.last() != Some(&b.disk().level()) {
                levels.push(b.disk().level());
            }
        }
        assert_eq!(
            levels,
            [DiskLevel::Ok, DiskLevel::Bulk, DiskLevel::Standard, DiskLevel::Reserve]
        );
        assert!(b.disk_admits(Tier::Critical).is_err());
        b.delete_topic("fill").unwrap();
        b.tick();
        assert_eq!(b.disk().level(), DiskLevel::Ok);
        assert!(b.disk_admits(Tier::Bulk).is_ok());
    }
}
