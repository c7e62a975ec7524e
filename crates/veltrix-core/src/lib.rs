//! The broker engine: topics and their partitions, on the durable log.
//!
//! A [`Broker`] owns a data directory: the topic catalogue (`topics.json`,
//! replaced atomically on every change) and one [`veltrix_log::Log`] per
//! partition under `logs/<topic id>/<partition>/`. Topic ids are random and never
//! reused, so a topic deleted and created again under the same name never sees
//! the old topic's data, and directories left behind by an interrupted deletion
//! can be recognised and removed at start-up.
//!
//! Like the log, this crate knows nothing of sockets or wire formats: the Kafka
//! protocol, the HTTP API and the CLI are adapters over it. Of tokio it uses the
//! `sync` module (watch channels that wake fetches waiting on a partition,
//! the flush rounds a produce waits on, delayed group answers) and the
//! blocking pool, where each partition's flusher runs its fsyncs
//! ([`Partition::commit_async`]); it starts no runtime of its own.

pub mod acl;
pub mod alerts;
pub mod audit;
pub mod auth;
mod broker;
pub mod browse;
mod catalog;
mod changelog;
pub mod compaction;
pub mod dead_letters;
pub mod dedup;
pub mod disk;
mod error;
pub mod groups;
pub mod lag;
pub mod metrics;
pub mod offset_reset;
pub mod principal;
mod producer_ids;
pub mod quotas;
pub mod records;
pub mod redrive;
pub mod routes;
pub mod share;
mod small_file;
mod topic;
mod transactions;
pub mod txn;
pub mod validate;
pub mod warn_limit;

pub use broker::{Broker, BrokerConfig, DIR_LOCK_FILE, LOGS_DIR, TOPIC_NAME_BYTES_MAX, validate_topic_name};
pub use catalog::{
    CleanupPolicy, DEDUP_ID_HEADER_BYTES_MAX, DEDUP_ID_HEADER_DEFAULT, DedupIdSource, DedupSettings, Tier, TopicConfig,
};
pub use error::{CoreError, Result};
pub use metrics::Metrics;
pub use producer_ids::PRODUCER_ID_BLOCK;
pub use topic::{AppendProgress, AppendedBatches, Partition, Topic, TopicId};
