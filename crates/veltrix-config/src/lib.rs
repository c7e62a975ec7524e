//! The Veltrix configuration file: schema, validation, diagnostics and
//! production lints.
//!
//! One TOML file (`veltrix.toml`) declares the broker (profile, data
//! directory, listeners, limits and memory budget), topic defaults, consumer
//! and share group settings, the topics and share groups themselves, the
//! routes that sort records between topics, and consumer lag alerts. Every
//! key, with its type, unit, range and default, is in [`schema`]; every
//! problem [`check_source`] can report is a rule of the [`rules`] catalogue,
//! with an id, a summary and an explanation.
//!
//! Checking never stops at the first problem: the file is parsed with the
//! TOML parser's spans, each key read against the schema, `VELTRIX_<TABLE>__<KEY>`
//! environment overrides applied and validated like the file's values, and
//! then the rules relating settings run: topics against the broker's limits,
//! alerts and routes against topics, routes' expressions compiled, and, with
//! `profile = "production"`, the production lints. Each [`Diagnostic`] names the place (file, line and column, or the
//! environment variable), says what is wrong, how to fix it and why it
//! matters, and renders like rustc's.
//!
//! A configuration without errors resolves to a [`VeltrixConfig`], in the
//! engine's own types ([`veltrix_core::BrokerConfig`], declared topics with
//! their [`veltrix_core::TopicConfig`]) and, for the Kafka adapter, plain
//! [`KafkaLimits`] the binary hands it; [`apply_topics`] makes a broker's topics
//! match the declared ones at start, and [`apply_share_groups`] gives the
//! declared share groups their settings; the declared routes, in the
//! engine's [`RouteSpec`], are handed to `Broker::apply_routes` as they are.
//! The crate opens no sockets; its only I/O is reading the file, the
//! [`Probe`] questions about the machine and the records of declared topics
//! and share groups in the data directory.

mod apply;
mod apply_quota;
mod apply_share;
mod check;
mod compaction_lints;
mod dedup_lints;
mod diagnostic;
mod lints;
mod model;
mod path_lints;
pub mod paths;
mod probe;
mod quota_lints;
mod raw;
mod route_lints;
pub mod rules;
pub mod schema;
mod security_lints;
mod share_lints;
mod storage_lints;
mod unit_lints;

pub use apply::{Applied, ApplyError, DECLARED_TOPICS_FILE, apply_topics, preflight_topics};
pub use apply_quota::{AppliedQuotas, DECLARED_QUOTAS_FILE, apply_quotas};
pub use apply_share::{AppliedShareGroups, DECLARED_SHARE_GROUPS_FILE, apply_share_groups};
pub use check::{Report, check_bytes, check_file, check_source, process_env};
pub use dedup_lints::{DEDUP_ID_BYTES_TYPICAL, DEDUP_WINDOW_MS_MIN_SAFE};
pub use diagnostic::{Diagnostic, Location};
pub use lints::{HIGH_VOLUME_RECORDS_PER_SECOND, SESSION_TIMEOUT_MS_MAX_SAFE, SESSION_TIMEOUT_MS_MIN_SAFE};
pub use model::{
    Alert, DEFAULT_DATA_DIR, DEFAULT_HTTP_LISTENER, DEFAULT_KAFKA_LISTENER, DEFAULT_SASL_MECHANISMS, DeclaredListener,
    DeclaredQuota, DeclaredShareGroup, DeclaredTopic, KafkaLimits, LagThreshold, Observability, Profile, RouteSpec,
    RuleSpec, Security, SharedStorage, Tier, VeltrixConfig, Webhook, redact_password,
};
pub use path_lints::data_dir_refusal;
pub use probe::{FixedProbe, Probe, SystemProbe};
pub use route_lints::default_dead_letter;
pub use rules::{Rule, RuleProfile, Severity};
pub use share_lints::POISON_RECORD_HOLD_MS_MAX_SAFE;
pub use storage_lints::OnlineFinding;

/// The reference part of `docs/configuration.md`: the rule catalogue, every
/// rule's explanation and every key. A test keeps the document equal to it.
pub fn docs_reference() -> String {
    format!(
        "## Rules\n\n{}\n## Keys\n\n{}## Rule explanations\n\n{}",
        rules::catalogue_markdown(),
        schema::reference_markdown(),
        rules::explanations_markdown()
    )
}
