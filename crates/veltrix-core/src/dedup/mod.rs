//! Duplicate detection on an application message id (issue 17): a window,
//! per topic, of the ids of records stored recently, so that a record sent
//! again by a restarted producer (a new producer id, which Kafka's idempotence
//! cannot recognise) or by the application above it is dropped, and the rest
//! of its batch stored.
//!
//! [`DedupIndex`] is the window itself, plain data with the time as a
//! parameter; [`DedupStore`] keeps its snapshots durably, and the index is
//! rebuilt at open from the newest snapshot plus the partitions' log tails
//! after it, so nothing that was not durable is ever trusted. [`filter`] is
//! the pure part on one batch's bytes: the ids of its records, and the batch
//! re-encoded without some of them.

pub mod filter;
mod index;
mod store;
#[cfg(test)]
mod tests;

pub use index::{
    DEDUP_ENTRY_OVERHEAD_BYTES, DEDUP_ID_BYTES_MAX, DEDUP_ID_BYTES_MAX_DEFAULT, DEDUP_IDS_MAX, DEDUP_IDS_MAX_DEFAULT,
    DEDUP_WINDOW_MS_MAX, DedupConfig, DedupError, DedupIndex, DedupStats, LoggedId, Mark, Original, Outcome,
    Reservation, Ticket, Waiter,
};
pub use store::{
    DEDUP_PARTITIONS_MAX, DEDUP_SNAPSHOT_FILE, DedupStore, LogDedupStore, MemDedupStore, Snapshot, SnapshotEntry,
    decode_snapshot, encode_snapshot,
};

/// The broker-wide bounds of every topic's duplicate window (`[dedup]` in
/// `veltrix.toml`): how many ids one topic remembers and how long one id may
/// be. A topic's own settings say how long ids are remembered
/// ([`crate::TopicConfig::dedup`]); these bound what that costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupLimits {
    /// Ids remembered per topic at most, 1..=[`DEDUP_IDS_MAX`]; past it the
    /// oldest are forgotten early and the window effectively shrinks.
    pub ids_max: usize,
    /// The longest message id accepted, 1..=[`DEDUP_ID_BYTES_MAX`].
    pub id_bytes_max: usize,
}

impl Default for DedupLimits {
    fn default() -> Self {
        DedupLimits {
            ids_max: DEDUP_IDS_MAX_DEFAULT,
            id_bytes_max: DEDUP_ID_BYTES_MAX_DEFAULT,
        }
    }
}

impl DedupLimits {
    /// The index settings of a window of `window_ms` under these limits.
    pub fn config(&self, window_ms: u64) -> DedupConfig {
        DedupConfig {
            window_ms,
            ids_max: self.ids_max,
            id_bytes_max: self.id_bytes_max,
        }
    }
}
