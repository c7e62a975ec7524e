//! The checked configuration: every setting resolved, defaults applied, in the
//! engine's own types.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use veltrix_core::share::ShareGroupSettings;
use veltrix_core::{BrokerConfig, TopicConfig};
use veltrix_http::HttpLimits;
use veltrix_log::{FlushPolicy, LogConfig};

/// The data directory of `veltrix serve` without a configuration.
pub const DEFAULT_DATA_DIR: &str = "./veltrix-data";
/// The Kafka listener of `veltrix serve` without a configuration.
pub const DEFAULT_KAFKA_LISTENER: &str = "127.0.0.1:9092";
/// The HTTP listener of `veltrix serve` without a configuration.
pub const DEFAULT_HTTP_LISTENER: &str = "127.0.0.1:8080";

/// Which lints apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Schema and cross-field rules only.
    #[default]
    Development,
    /// Also the production lints (V2xx).
    Production,
}

/// A topic's priority tier: the engine's.
pub use veltrix_core::Tier;
/// A `[[route]]` and its `[[route.rule]]`s: the engine's.
pub use veltrix_core::routes::{RouteSpec, RuleSpec};

/// A `[[topic]]`: what the broker makes true at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredTopic {
    pub name: String,
    pub partitions: u32,
    /// Settings that differ from the broker's defaults, as the catalogue stores
    /// them (`None` inherits `[defaults]`).
    pub config: TopicConfig,
    /// Losing or delaying its records is an incident (`critical = true` or
    /// `tier = "critical"`).
    pub critical: bool,
    pub tier: Option<Tier>,
    /// Producers send keyed records whose per-key order matters.
    pub keyed: bool,
    /// Expected peak produce rate.
    pub peak_records_per_second: Option<u64>,
}

/// A `[[share_group]]`: the settings the broker gives the group at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredShareGroup {
    pub name: String,
    /// The settings the entry sets, by Kafka's names
    /// (`share.record.lock.duration.ms`) and as text, in schema order: what
    /// the group's own settings become, as IncrementalAlterConfigs would
    /// store them.
    pub overrides: Vec<(String, String)>,
    /// The group's effective settings: the entry's over `[share]`'s.
    pub settings: ShareGroupSettings,
}

/// What a lag alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagThreshold {
    Records(u64),
    Ms(u64),
    /// Dead letters a minute (share groups with a dead-letter topic).
    DeadLettersPerMinute(u64),
}

/// An `[[alert]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// As declared; `None` for the default name.
    pub name: Option<String>,
    pub group: String,
    pub topic: String,
    pub threshold: LagThreshold,
    /// How long the lag must stay over the threshold before the alert fires.
    pub for_ms: u64,
}

/// The Kafka listener's limits, the `[limits]` table: plain data, so that
/// this crate needs no part of the Kafka adapter. The binary copies them into
/// the adapter's `KafkaConfig`, and a test there checks that the defaults
/// below are the adapter's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaLimits {
    /// Largest request accepted (Kafka's `socket.request.max.bytes`).
    pub request_bytes_max: usize,
    /// The memory budget for requests: their bytes held at once across all
    /// connections.
    pub in_flight_bytes_max: usize,
    /// Connections served at once.
    pub connections_max: usize,
    /// Requests of one connection read but not yet answered.
    pub requests_in_flight_per_connection_max: usize,
    /// Upper bound on a fetch's `max_wait_ms`.
    pub fetch_wait_ms_max: u64,
    /// The largest fetch response.
    pub fetch_bytes_max: usize,
    /// Time a request has, once its length is read, to arrive whole.
    pub request_body_ms_max: u64,
    /// A connection that sends nothing for this long is closed.
    pub connection_idle_ms_max: u64,
    /// A repeated warning a client can trigger is logged at most once per
    /// this interval.
    pub warning_interval_ms: u64,
    /// Longest pause of the accept loop after a failed accept.
    pub accept_backoff_ms_max: u64,
    /// At shutdown, how long connections may take to answer what they read.
    pub shutdown_drain_ms_max: u64,
    /// Produce and fetch of bulk topics are throttled once the memory budget
    /// is this full (percent).
    pub tier_bulk_throttle_percent: u8,
    /// Standard topics' once it is this full (percent).
    pub tier_standard_throttle_percent: u8,
    /// The wait asked of a throttled client when the budget is full.
    pub tier_throttle_ms_max: u64,
    /// Critical produces taking longer than this (read to answered) throttle
    /// bulk, then standard, requests; 0: off.
    pub tier_critical_latency_target_ms: u64,
    /// Connections open at once from one client address.
    pub connections_per_ip_max: usize,
    /// New connections a second from one client address.
    pub connections_per_ip_per_second_max: u32,
    /// Refused produce requests a second a client id may send before it is
    /// slowed.
    pub failing_produce_requests_per_second_max: u32,
    /// The longest wait asked of such a producer per response.
    pub failing_produce_throttle_ms_max: u64,
}

impl Default for KafkaLimits {
    fn default() -> Self {
        KafkaLimits {
            request_bytes_max: 100 << 20,
            in_flight_bytes_max: 512 << 20,
            connections_max: 1000,
            requests_in_flight_per_connection_max: 16,
            fetch_wait_ms_max: 30_000,
            fetch_bytes_max: 55 << 20,
            request_body_ms_max: 30_000,
            connection_idle_ms_max: 600_000,
            warning_interval_ms: 10_000,
            accept_backoff_ms_max: 1_000,
            shutdown_drain_ms_max: 10_000,
            tier_bulk_throttle_percent: 70,
            tier_standard_throttle_percent: 85,
            tier_throttle_ms_max: 1_000,
            tier_critical_latency_target_ms: 5,
            connections_per_ip_max: 1000,
            connections_per_ip_per_second_max: 1000,
            failing_produce_requests_per_second_max: 50,
            failing_produce_throttle_ms_max: 1_000,
        }
    }
}

/// A checked configuration with every default applied.
#[derive(Debug, Clone)]
pub struct VeltrixConfig {
    pub profile: Profile,
    /// As written; relative paths are relative to the broker's working directory.
    pub data_dir: PathBuf,
    pub kafka_listener: SocketAddr,
    /// The principal of the `kafka` listener's connections.
    pub kafka_principal: String,
    pub http_listener: SocketAddr,
    /// The engine's settings, topic defaults and group settings included.
    pub broker: BrokerConfig,
    pub limits: KafkaLimits,
    /// The HTTP listener's limits.
    pub http_limits: HttpLimits,
    /// The HTTP listener's certificate chain and key, when it serves HTTPS.
    pub http_tls: Option<HttpTlsFiles>,
    /// Who may use the HTTP listener's paths, and its authentication limits.
    pub http_security: veltrix_http::HttpSecurityConfig,
    /// The declared topics, in file order.
    pub topics: Vec<DeclaredTopic>,
    /// The declared alerts, in file order.
    pub alerts: Vec<Alert>,
    /// The declared share groups, in file order.
    pub share_groups: Vec<DeclaredShareGroup>,
    /// The declared client quotas, in file order.
    pub quotas: Vec<DeclaredQuota>,
    /// The declared routes, in file order, each dead-letter topic named
    /// (`<name>.dead-letters` when the entry names none).
    pub routes: Vec<RouteSpec>,
    pub observability: Observability,
    /// The `[[listener]]`s: Kafka listeners beside `[listeners] kafka`, each
    /// with its security protocol.
    pub listeners: Vec<DeclaredListener>,
    pub security: Security,
    /// `[storage]` in shared mode: where the partitions' batches, offsets and
    /// the cluster's state are kept instead of the data directory. `None`:
    /// local storage (the default).
    pub storage: Option<SharedStorage>,
}

/// `[storage]` with `mode = "shared"`: record batches in objects of an
/// S3-compatible bucket, their offsets and the cluster's state in PostgreSQL
/// (docs/scale-out.md). Plain data: the binary turns it into the shared
/// storage crate's settings. The bucket's credentials are not here: they come
/// from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and
/// the other `AWS_*` variables), as the S3 client reads them.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedStorage {
    /// This broker's id (Kafka's node id), unique among the brokers sharing
    /// one catalog (0..=1023).
    pub broker_id: i32,
    /// The bucket's name.
    pub bucket: String,
    /// An S3-compatible server (`https://minio.internal:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Plain HTTP to `endpoint`: tests on loopback only.
    pub allow_http: bool,
    /// Prefix of every key the brokers write in the bucket.
    pub key_prefix: String,
    /// The catalog: a libpq URL (`postgresql://veltrix@db:5432/veltrix`),
    /// password included when one is needed (best given by the environment,
    /// `VELTRIX_STORAGE__POSTGRES_URL`). Never printed whole: see
    /// [`SharedStorage::postgres_url_redacted`].
    pub postgres_url: String,
    /// The least time between the starts of two objects: a batch's longest wait.
    pub flush_interval_ms: u64,
    /// An object is written once its batches reach this size.
    pub flush_bytes_max: usize,
    /// Bytes accepted and not yet answered, across the object being written
    /// and the next one filling.
    pub buffered_bytes_max: usize,
    /// The local read cache of batches' bytes; 0: none.
    pub cache_bytes_max: usize,
    /// An object's PUT, retries included.
    pub put_timeout_ms: u64,
    /// An object's commit transaction, retries included.
    pub commit_timeout_ms: u64,
    /// A ranged GET, retries included.
    pub get_timeout_ms: u64,
    /// PostgreSQL connections kept at most.
    pub postgres_connections_max: usize,
    /// The server's `statement_timeout` and `lock_timeout`, and the client's
    /// deadline for one statement.
    pub postgres_statement_timeout_ms: u64,
    /// A broker's lease: a broker that does not renew it within this long is
    /// taken for dead.
    pub lease_ms: u64,
    /// An object written and never committed is deleted once this old.
    pub orphan_grace_ms: u64,
    /// Committed objects smaller than this are merged into larger ones; 0:
    /// never.
    pub merge_small_bytes_max: usize,
    /// One merged object's size at most.
    pub merged_bytes_max: usize,
    /// Objects younger than this are not merged.
    pub merge_age_ms_min: u64,
}

impl SharedStorage {
    /// The settings with every default, for the three that have none.
    pub fn new(broker_id: i32, bucket: impl Into<String>, postgres_url: impl Into<String>) -> SharedStorage {
        SharedStorage {
            broker_id,
            bucket: bucket.into(),
            endpoint: None,
            region: "us-east-1".to_owned(),
            allow_http: false,
            key_prefix: "veltrix".to_owned(),
            postgres_url: postgres_url.into(),
            flush_interval_ms: 50,
            flush_bytes_max: 8 << 20,
            buffered_bytes_max: 64 << 20,
            cache_bytes_max: 256 << 20,
            put_timeout_ms: 10_000,
            commit_timeout_ms: 10_000,
            get_timeout_ms: 10_000,
            postgres_connections_max: 4,
            postgres_statement_timeout_ms: 5_000,
            lease_ms: 10_000,
            orphan_grace_ms: 3_600_000,
            merge_small_bytes_max: 4 << 20,
            merged_bytes_max: 64 << 20,
            merge_age_ms_min: 60_000,
        }
    }

    /// `postgres_url` with its password, if any, replaced by `***`: for logs
    /// and messages.
    pub fn postgres_url_redacted(&self) -> String {
        redact_password(&self.postgres_url)
    }
}

/// The password of a libpq URL (`postgresql://user:secret@host/db`) or
/// key=value string (`host=db password=secret`) replaced by `***`; other
/// text as it is.
pub fn redact_password(text: &str) -> String {
    match crate::storage_lints::password_span(text) {
        Some(span) => format!("{}***{}", &text[..span.start], &text[span.end..]),
        None => text.to_owned(),
    }
}

impl std::fmt::Debug for SharedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStorage")
            .field("broker_id", &self.broker_id)
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("key_prefix", &self.key_prefix)
            .field("postgres_url", &self.postgres_url_redacted())
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("flush_bytes_max", &self.flush_bytes_max)
            .field("buffered_bytes_max", &self.buffered_bytes_max)
            .field("cache_bytes_max", &self.cache_bytes_max)
            .field("put_timeout_ms", &self.put_timeout_ms)
            .field("commit_timeout_ms", &self.commit_timeout_ms)
            .field("get_timeout_ms", &self.get_timeout_ms)
            .field("postgres_connections_max", &self.postgres_connections_max)
            .field("postgres_statement_timeout_ms", &self.postgres_statement_timeout_ms)
            .field("lease_ms", &self.lease_ms)
            .field("orphan_grace_ms", &self.orphan_grace_ms)
            .field("merge_small_bytes_max", &self.merge_small_bytes_max)
            .field("merged_bytes_max", &self.merged_bytes_max)
            .field("merge_age_ms_min", &self.merge_age_ms_min)
            .finish()
    }
}

/// A `[[listener]]`: a Kafka listener and how its connections are secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredListener {
    pub name: String,
    pub address: SocketAddr,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: String,
    /// Host and port told to clients; the bound address's when not set.
    pub advertised_host: Option<String>,
    pub advertised_port: Option<u16>,
    /// SASL mechanisms offered, in order (`SCRAM-SHA-512`, `SCRAM-SHA-256`,
    /// `PLAIN`); SASL listeners only.
    pub sasl_mechanisms: Vec<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    /// `none`, `requested` or `required`.
    pub tls_client_auth: String,
    /// Kafka's `ssl.principal.mapping.rules`, one rule a string.
    pub principal_mapping_rules: Vec<String>,
}

impl DeclaredListener {
    pub fn tls(&self) -> bool {
        self.protocol.ends_with("SSL")
    }

    pub fn sasl(&self) -> bool {
        self.protocol.starts_with("SASL_")
    }
}

/// The SASL mechanisms a SASL listener offers when it names none: SCRAM
/// only (PLAIN sends the password itself, so it is offered only when named).
pub const DEFAULT_SASL_MECHANISMS: &[&str] = &["SCRAM-SHA-512", "SCRAM-SHA-256"];

/// The `[security]` table: authorization, and authentication's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Kafka ACLs enforced: once on, a principal without an ACL allowing an
    /// operation may not do it.
    pub authorization: bool,
    /// Principals allowed everything (`User:admin`).
    pub super_users: Vec<String>,
    pub authentication_ms_max: u64,
    pub unauthenticated_request_bytes_max: usize,
    pub reauthentication_ms_max: u64,
    pub authentication_failure_delay_ms: u64,
}

impl Default for Security {
    fn default() -> Security {
        Security {
            authorization: false,
            super_users: Vec::new(),
            authentication_ms_max: 10_000,
            unauthenticated_request_bytes_max: 524_288,
            reauthentication_ms_max: 0,
            authentication_failure_delay_ms: 100,
        }
    }
}

/// `[listeners] http_tls_cert_file` and `http_tls_key_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A `[[quota]]`: who it is for, and its rates.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredQuota {
    pub entity: veltrix_core::quotas::QuotaEntity,
    pub values: veltrix_core::quotas::QuotaValues,
}

/// Where alert transitions are POSTed, and how hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub timeout_ms: u64,
    pub retries_max: u32,
    pub retry_backoff_ms: u64,
    pub queue_max: usize,
}

/// The `[observability]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observability {
    pub metrics_enabled: bool,
    pub lag_evaluation_interval_ms: u64,
    /// Evaluations of each group's lag kept for its chart.
    pub lag_history_points_max: usize,
    pub webhook: Option<Webhook>,
}

impl Default for Observability {
    fn default() -> Self {
        Observability {
            metrics_enabled: true,
            lag_evaluation_interval_ms: 5_000,
            lag_history_points_max: 720,
            webhook: None,
        }
    }
}

impl Default for VeltrixConfig {
    /// The embedded default: what `veltrix serve` runs without a file.
    fn default() -> Self {
        VeltrixConfig {
            profile: Profile::Development,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            kafka_listener: DEFAULT_KAFKA_LISTENER.parse().expect("valid default address"),
            kafka_principal: "User:ANONYMOUS".to_owned(),
            http_listener: DEFAULT_HTTP_LISTENER.parse().expect("valid default address"),
            broker: BrokerConfig::default(),
            limits: KafkaLimits::default(),
            http_limits: HttpLimits::default(),
            http_tls: None,
            http_security: veltrix_http::HttpSecurityConfig::default(),
            topics: Vec::new(),
            alerts: Vec::new(),
            share_groups: Vec::new(),
            quotas: Vec::new(),
            routes: Vec::new(),
            observability: Observability::default(),
            listeners: Vec::new(),
            security: Security::default(),
            storage: None,
        }
    }
}

impl VeltrixConfig {
    /// The engine's settings.
    pub fn broker_config(&self) -> BrokerConfig {
        self.broker.clone()
    }

    /// The topics whose loss is an incident (`critical = true`).
    pub fn critical_topics(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().filter(|t| t.critical).map(|t| t.name.as_str())
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The declared topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&DeclaredTopic> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// The declared share group named `name`.
    pub fn share_group(&self, name: &str) -> Option<&DeclaredShareGroup> {
        self.share_groups.iter().find(|g| g.name == name)
    }

    /// The declared route named `name`.
    pub fn route(&self, name: &str) -> Option<&RouteSpec> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// A declared topic's effective log settings.
    pub fn topic_log_config(&self, topic: &DeclaredTopic) -> LogConfig {
        topic.config.log_config(&self.broker.log)
    }

    /// Whether a declared topic acknowledges appends before they are fsynced.
    pub fn topic_is_relaxed(&self, topic: &DeclaredTopic) -> bool {
        matches!(self.topic_log_config(topic).flush, FlushPolicy::Interval { .. })
    }
}
