//! The broker's HTTP adapter: Prometheus metrics (`/metrics`), health
//! (`/health`, `/ready`), the JSON API (`/api/v1/broker`, `/api/v1/topics`,
//! `/api/v1/groups`, dead letters and their redrive under `/api/v1/dlq/` and
//! `/api/v1/redrives`, routes under `/api/v1/routes`), the alerts (`/alerts`), and the monitor that computes
//! consumer lag, evaluates the declared backlog alerts and notifies a webhook.
//!
//! Changes (producing, offset resets, redrives, deleting topics and groups)
//! are refused unless `[listeners] http_mutations = true`.
//!
//! The web console (`/`, `/console/*`) is served from the same listener: its
//! pages read the JSON API.
//!
//! TLS, authentication (the broker's users: basic credentials or bearer
//! tokens) and the broker's ACLs guard every route (`security.rs`).
//!
//! Like the Kafka adapter it is thin: every number comes from the engine
//! (`veltrix-core`'s lag, alerts and metrics).

pub mod console;
pub mod delete;
pub mod dlq;
pub mod monitor;
pub mod offsets;
pub mod produce;
pub mod records;
pub mod routes;
pub mod security;
pub mod server;

pub use monitor::{Monitor, MonitorConfig, WebhookConfig};
pub use security::{Access, HttpSecurity, HttpSecurityConfig};
pub use server::{HttpLimits, HttpState, router, serve};
