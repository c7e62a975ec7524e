//! The metadata store's interface: what the writer, reader and orphan
//! collector need from PostgreSQL, and nothing more.
//!
//! [`crate::PgCatalog`] is the real one; [`crate::MemCatalog`] keeps the same
//! rules in memory for unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::error::Result;

/// An idempotent producer's stamp on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
}

/// One batch of an object, as the writer commits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Records in the batch (its `last_offset_delta + 1`).
    pub record_count: i32,
    pub max_timestamp: i64,
    pub producer: Option<ProducerStamp>,
    /// Where the batch lies in the object.
    pub byte_start: u64,
    pub byte_len: u32,
    /// CRC32C of the batch's bytes, checked by the reader.
    pub crc32c: u32,
}

/// An object written to the bucket, with its batches, to commit at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCommit {
    pub key: String,
    pub size: u64,
    pub batches: Vec<BatchEntry>,
}

/// Where a committed batch's records are in its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch was a retry of one already committed: these are the
    /// original's offsets and nothing was added.
    pub duplicate: bool,
}

/// A committed batch, as the reader looks it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub object_key: String,
    pub byte_start: u64,
    pub byte_len: u32,
    pub crc32c: u32,
}

/// What the catalog knows of an object's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectState {
    /// Batches in it were committed.
    Committed,
    /// Claimed by the orphan collector: never committed, deleted or being deleted.
    Orphan,
    /// Committed, and no batch refers to it any more (retention or a deleted
    /// topic released them): deleted or being deleted, then forgotten.
    Dropped,
}

/// A committed batch as the merger moves it: where it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedBatch {
    pub topic: Arc<str>,
    pub partition: i32,
    pub base_offset: i64,
    pub object_key: String,
    pub byte_start: u64,
    pub byte_len: u32,
    pub crc32c: u32,
}

/// A batch's new place, in a merged object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub topic: Arc<str>,
    pub partition: i32,
    pub base_offset: i64,
    /// The object it must still be in for the move to apply (retention or a
    /// deleted topic may have removed it meanwhile).
    pub from_key: String,
    pub byte_start: u64,
}

/// What one retention pass over a partition did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Batches removed.
    pub batches: u64,
    /// The partition's start offset after the pass (its earliest offset).
    pub start_offset: i64,
}

/// The metadata store.
pub trait Catalog: Send + Sync + 'static {
    /// Creates the partitions `0..count` of a topic that do not exist yet,
    /// each starting at offset 0.
    fn create_partitions(&self, topic: &str, count: i32) -> impl Future<Output = Result<()>> + Send;

    /// One transaction: records the object as committed (refused with
    /// [`crate::Error::ObjectCollected`] if the collector claimed it), checks
    /// each idempotent batch against its producer's state, assigns each new
    /// batch the next offsets of its partition, in the object's order, and
    /// records where it lies. Answers one outcome per batch, in order; a
    /// batch refused (unknown partition, sequence, epoch) takes no offsets.
    /// `Err` means nothing was committed, or, when the connection was lost
    /// during COMMIT, that it is unknown whether it was.
    fn commit(&self, object: &ObjectCommit) -> impl Future<Output = Result<Vec<Result<Appended>>>> + Send;

    /// The partition's next offset (its high watermark); `None` if unknown.
    fn end_offset(&self, topic: &str, partition: i32) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Up to `rows_max` committed batches of a partition, in offset order,
    /// from the one holding `offset`.
    fn batches(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        rows_max: usize,
    ) -> impl Future<Output = Result<Vec<BatchRow>>> + Send;

    /// What is known of these keys; a key absent from the answer is unknown.
    fn object_states(&self, keys: &[String]) -> impl Future<Output = Result<HashMap<String, ObjectState>>> + Send;

    /// Claims unknown keys as orphans, so no commit can take them any more;
    /// answers the keys claimed (a key committed meanwhile is not).
    fn claim_orphans(&self, keys: &[(String, u64)]) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The partition's first offset still kept (0 until retention removes
    /// batches); `None` if unknown.
    fn start_offset(&self, topic: &str, partition: i32) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Retention, one transaction: removes up to `rows_max` of the
    /// partition's first batches whose largest timestamp is before
    /// `before_ms` and that were committed before it too (a producer's
    /// timestamps alone cannot age what it just wrote), stopping at the
    /// first that is not (the log keeps no holes), moves its start offset past them and releases their objects
    /// to [`Catalog::drop_released`]. `None` if the partition is unknown.
    fn trim(
        &self,
        topic: &str,
        partition: i32,
        before_ms: i64,
        rows_max: usize,
    ) -> impl Future<Output = Result<Option<Trimmed>>> + Send;

    /// DeleteRecords, one transaction: the partition's start offset moved
    /// up to `offset` (never back; never past its end, where `offset` is
    /// clamped), and up to `rows_max` of the batches wholly below it removed,
    /// their objects released. Call again while a whole `rows_max` was
    /// removed. `None` if the partition is unknown.
    fn delete_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        rows_max: usize,
    ) -> impl Future<Output = Result<Option<Trimmed>>> + Send;

    /// Looks at up to `rows_max` objects released at least `grace_ms` ago
    /// (by [`Catalog::trim`] or a deleted topic): those no batch refers to
    /// any more are marked [`ObjectState::Dropped`] and answered, to delete
    /// from the bucket and then [`Catalog::forget`]. The grace lets reads
    /// that looked their batches up before the release finish.
    fn drop_released(&self, grace_ms: i64, rows_max: usize) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Forgets up to `rows_max` idempotent producers' states in partitions
    /// where they have committed nothing for `idle_ms` or more; such a
    /// producer's next batch there is taken as a new producer's. Answers
    /// how many were forgotten.
    fn expire_producers(&self, idle_ms: i64, rows_max: usize) -> impl Future<Output = Result<u64>> + Send;

    /// Prunes up to `rows_max` orphan claims ([`Catalog::claim_orphans`])
    /// made `age_ms` or more ago. Answers how many were pruned.
    fn prune_orphan_claims(&self, age_ms: i64, rows_max: usize) -> impl Future<Output = Result<u64>> + Send;

    /// Forgets dropped objects deleted from the bucket.
    fn forget(&self, keys: &[String]) -> impl Future<Output = Result<()>> + Send;

    /// Up to `count_max` committed objects smaller than `size_below`,
    /// committed at least `age_min_ms` ago, oldest first: what the merger
    /// may rewrite. With their sizes.
    fn small_objects(
        &self,
        size_below: u64,
        age_min_ms: i64,
        count_max: usize,
    ) -> impl Future<Output = Result<Vec<(String, u64)>>> + Send;

    /// Every batch that lies in one of `keys`.
    fn batches_in(&self, keys: &[String]) -> impl Future<Output = Result<Vec<PlacedBatch>>> + Send;

    /// One transaction: records `merged` as committed, points each batch of
    /// `moves` still in its `from_key` at its place in `merged`, and
    /// releases the `sources` to [`Catalog::drop_released`]. Answers the
    /// batches moved; when none was (all removed meanwhile), nothing is
    /// recorded and `merged` is left an orphan.
    fn rewrite(
        &self,
        merged: &str,
        size: u64,
        moves: &[Moved],
        sources: &[String],
    ) -> impl Future<Output = Result<usize>> + Send;
}
