//! The durable partitioned log at the bottom of Veltrix.
//!
//! Each topic partition is a [`Log`]: a directory of segment files holding Kafka
//! RecordBatch v2 batches exactly as producers sent them, each segment with a sparse
//! offset and time index. An append is acknowledged only after an fsync covers it
//! (group commit shares one fsync among concurrent appends), unless the topic opts
//! into a flush interval. Recovery verifies the tail, cuts a torn write, keeps valid
//! data after a damaged batch, and takes time bounded by one segment. A failed write
//! or fsync poisons the partition: it refuses appends and keeps serving reads.
//!
//! The crate does no I/O of its own: files go through [`io::Storage`] and time
//! through [`io::Clock`], so [`sim`] can inject faults and control time. It knows
//! nothing of sockets, Kafka requests or configuration files.

pub mod batch;
pub mod checkpoint;
pub mod compact;
pub mod config;
pub mod env;
pub mod error;
pub mod index;
pub mod io;
mod log;
pub mod producer;
mod recovery;
pub mod segment;
pub mod sim;
mod swap;
pub mod txn;

pub use compact::{CleanLimits, CleanOutcome, CleanerStats, CompactionConfig, RecordRewriter, RecordView, Rewritten};
pub use config::{FlushPolicy, LogConfig};
pub use env::{Env, FsyncObserver};
pub use error::{LogError, Result};
pub use log::{
    Appended, LEADER_EPOCH, Log, LogStats, RECOVERY_POINT_INTERVAL_MS, ReadResult, TickOutcome, TimestampHit,
};
