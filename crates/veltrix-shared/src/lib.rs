//! Shared storage for stateless brokers: record batches in objects of an
//! S3-compatible bucket, their offsets sequenced in PostgreSQL transactions
//! (the design of docs/scale-out.md).
//!
//! - [`Writer`]: batches of any partitions gathered for a short interval,
//!   written as one object, then committed in one transaction that assigns
//!   their offsets and checks idempotent producers; callers are answered
//!   after the commit only.
//! - [`Reader`]: offsets to objects and byte ranges, ranged GETs, a bounded
//!   read cache.
//! - [`OrphanCollector`]: objects written and never committed, deleted.
//! - [`Catalog`]: the metadata store's narrow interface; [`PgCatalog`] on
//!   PostgreSQL, [`MemCatalog`] in memory for tests.
//! - [`Cluster`]: the cluster's state beside the log (brokers' leases,
//!   topics, producer ids, groups' offsets); [`PgCluster`] and
//!   [`MemCluster`], the same two types as the catalogs, on the same state.
//! - [`SharedNode`]: one broker process on all of it, what the Kafka front
//!   door serves from with `[storage] mode = "shared"`.

mod cache;
mod catalog;
mod cluster;
mod error;
mod limits;
mod mem;
mod mem_cluster;
mod merge;
mod node;
mod orphans;
mod pg;
mod probe;
mod reader;
pub mod sequence;
mod store;
mod writer;

pub use catalog::{
    Appended, BatchEntry, BatchRow, Catalog, Moved, ObjectCommit, ObjectState, PlacedBatch, ProducerStamp, Trimmed,
};
pub use cluster::{
    BrokerLease, Cluster, LEASE_MS_MAX, LEASE_MS_MIN, ListenerAddr, LiveBroker, OffsetRow, PRODUCER_IDS_MAX,
    SHARE_STATE_BYTES_MAX, ShareClaim, ShareKey, ShareState, TOPIC_PARTITIONS_MAX, TopicRow,
};
pub use error::{Error, Result};
pub use limits::{CollectorConfig, MergeConfig, ReaderConfig, WriterConfig};
pub use mem::MemCatalog;
pub use mem_cluster::MemCluster;
pub use merge::{MergeReport, Merger};
pub use node::{NodeConfig, NodeStats, Shared, SharedNode, SharedStats, TRIM_ROWS_MAX};
pub use object_store::ObjectStore;
pub use orphans::{CollectReport, OrphanCollector};
pub use pg::{PgCatalog, PgCluster, PgConfig};
pub use probe::{
    BUCKET_PROBE_OBJECTS_MAX, BucketProbeError, BucketProbeReport, BucketProblem, PgProbeReport, bucket_probe_deadline,
    postgres_probe_deadline, probe_bucket, probe_postgres,
};
pub use reader::{FetchedBatch, Reader};
pub use store::S3Config;
pub use writer::{AppendRequest, Submitted, Writer, WriterStats};
