//! `veltrix bench`: a load generator that speaks the Kafka protocol, so it
//! drives Veltrix or any Kafka-compatible broker the same way.
//!
//! - [`produce`]: streams of records (producers × partitions × record size ×
//!   batch size × acks × rate), in a closed loop for throughput or an open
//!   loop at a fixed rate for latency, with consumers reading the topic back
//!   for the end-to-end latency.
//! - [`consume`]: read a topic through, for fetch throughput.
//! - [`share`]: a share group (KIP-932) draining a filled topic, every
//!   record accepted: acknowledged records per second.
//! - [`treasure`]: the treasure-hunt game's mix of events, with a sale spike.
//!
//! Results are records/s, MB/s (10^6 bytes of record values) and latency
//! percentiles from HDR histograms ([`stats`]); [`report`] renders them for
//! people or as JSON for scripts (`bench/compare`).

pub mod consume;
pub mod encode;
pub mod group;
pub mod produce;
pub mod report;
pub mod share;
pub mod stats;
pub mod treasure;

pub use produce::{Progress, Rate, RunSpec, Spike, StreamResult, StreamSpec};
