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
mod topic;

pub use index::{
    DEDUP_ENTRY_OVERHEAD_BYTES, DEDUP_ID_BYTES_MAX, DEDUP_ID_BYTES_MAX_DEFAULT, DEDUP_IDS_MAX, DEDUP_IDS_MAX_DEFAULT,
    DEDUP_WINDOW_MS_MAX, DedupConfig, DedupError, DedupIndex, DedupMemory, DedupStats, LoggedId, Mark, Original,
    Outcome, Reservation, Ticket, Waiter,
};
pub use store::{
    DEDUP_PARTITIONS_MAX, DEDUP_SNAPSHOT_FILE, DedupStore, LogDedupStore, MemDedupStore, Snapshot, SnapshotEntry,
    decode_snapshot, encode_snapshot,
};
pub use topic::{
    DEDUP_IN_FLIGHT_WAIT_MS_MAX, DEDUP_MEMORY_BYTES_MAX_DEFAULT, DEDUP_REQUEST_RECORDS_MAX, DEDUP_SNAPSHOT_INTERVAL_MS,
    DedupLimits, TopicDedup, TopicDedupStats,
};
