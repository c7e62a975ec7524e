//! The Kafka wire protocol front door: framing, limits, and one handler per API.
//!
//! This crate turns bytes on a TCP connection into calls on
//! [`veltrix_core::Broker`] and back. It owns nothing durable; every decision about
//! data is the engine's. Kafka error codes are chosen here, at the edge
//! ([`errors`]), from the engine's typed errors.

mod breaker;
mod budget;
pub mod errors;
mod handlers;
mod memory;
pub mod metrics;
mod per_ip;
mod quota;
pub mod security;
mod server;
pub mod shared;
pub mod shared_lag;
pub mod shared_share;
pub mod tiers;
pub use breaker::BreakerLimits;
mod topic_configs;
pub mod warnings;

pub use handlers::list_offsets::LIST_OFFSETS_DECOMPRESSED_BYTES_MAX;
pub use handlers::produce::INLINE_APPEND_BYTES_MAX;
pub use handlers::{SERVED_APIS, ServedApi, served_api};
pub use metrics::KafkaMetrics;
pub use server::{DecodeError, Decoded, KafkaConfig, KafkaListener, decode_request, serve, serve_listeners};
