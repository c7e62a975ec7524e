//! The checked configuration: every setting resolved, defaults applied, in the
//! engine's own types.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use veltrix_core::{BrokerConfig, TopicConfig};
use veltrix_http::HttpLimits;
use veltrix_kafka::KafkaConfig;
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

/// A topic's priority tier: a label for lints and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Critical,
    Standard,
    Bulk,
}

impl Tier {
    /// The tier's word in the file.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Standard => "standard",
            Tier::Bulk => "bulk",
        }
    }
}

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

/// What a lag alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagThreshold {
    Records(u64),
    Ms(u64),
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

/// The Kafka listener's limits (the fields of [`KafkaConfig`] that come from
/// the file; the advertised address is known only once bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaLimits {
    pub request_bytes_max: usize,
    /// The memory budget for requests.
    pub in_flight_bytes_max: usize,
    pub connections_max: usize,
    pub requests_in_flight_per_connection_max: usize,
    pub fetch_wait_ms_max: u64,
    /// The largest fetch response.
    pub fetch_bytes_max: usize,
    pub request_body_ms_max: u64,
    pub connection_idle_ms_max: u64,
    pub warning_interval_ms: u64,
    pub accept_backoff_ms_max: u64,
    pub shutdown_drain_ms_max: u64,
}

/// A checked configuration with every default applied.
#[derive(Debug, Clone)]
pub struct VeltrixConfig {
    pub profile: Profile,
    /// As written; relative paths are relative to the broker's working directory.
    pub data_dir: PathBuf,
    pub kafka_listener: SocketAddr,
    pub http_listener: SocketAddr,
    /// The engine's settings, topic defaults and group settings included.
    pub broker: BrokerConfig,
    pub limits: KafkaLimits,
    /// The HTTP listener's limits.
    pub http_limits: HttpLimits,
    /// The declared topics, in file order.
    pub topics: Vec<DeclaredTopic>,
    /// The declared alerts, in file order.
    pub alerts: Vec<Alert>,
    pub observability: Observability,
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
    pub webhook: Option<Webhook>,
}

impl Default for Observability {
    fn default() -> Self {
        Observability {
            metrics_enabled: true,
            lag_evaluation_interval_ms: 5_000,
            webhook: None,
        }
    }
}

impl Default for VeltrixConfig {
    /// The embedded default: what `veltrix serve` runs without a file.
    fn default() -> Self {
        let kafka = KafkaConfig::new(DEFAULT_KAFKA_LISTENER.parse().expect("valid default address"));
        VeltrixConfig {
            profile: Profile::Development,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            kafka_listener: DEFAULT_KAFKA_LISTENER.parse().expect("valid default address"),
            http_listener: DEFAULT_HTTP_LISTENER.parse().expect("valid default address"),
            broker: BrokerConfig::default(),
            limits: KafkaLimits {
                request_bytes_max: kafka.request_bytes_max,
                in_flight_bytes_max: kafka.in_flight_bytes_max,
                connections_max: kafka.connections_max,
                requests_in_flight_per_connection_max: kafka.requests_in_flight_per_connection_max,
                fetch_wait_ms_max: kafka.fetch_wait_ms_max,
                fetch_bytes_max: kafka.fetch_bytes_max,
                request_body_ms_max: kafka.request_body_ms_max,
                connection_idle_ms_max: kafka.connection_idle_ms_max,
                warning_interval_ms: kafka.warning_interval_ms,
                accept_backoff_ms_max: kafka.accept_backoff_ms_max,
                shutdown_drain_ms_max: kafka.shutdown_drain_ms_max,
            },
            http_limits: HttpLimits::default(),
            topics: Vec::new(),
            alerts: Vec::new(),
            observability: Observability::default(),
        }
    }
}

impl VeltrixConfig {
    /// The engine's settings.
    pub fn broker_config(&self) -> BrokerConfig {
        self.broker.clone()
    }

    /// The Kafka listener's settings, advertising `advertised` to clients;
    /// producers writing to critical topics with acks=0 or 1 are warned about.
    pub fn kafka_config(&self, advertised: SocketAddr) -> KafkaConfig {
        let mut k = KafkaConfig::new(advertised);
        k.request_bytes_max = self.limits.request_bytes_max;
        k.in_flight_bytes_max = self.limits.in_flight_bytes_max;
        k.connections_max = self.limits.connections_max;
        k.requests_in_flight_per_connection_max = self.limits.requests_in_flight_per_connection_max;
        k.fetch_wait_ms_max = self.limits.fetch_wait_ms_max;
        k.fetch_bytes_max = self.limits.fetch_bytes_max;
        k.request_body_ms_max = self.limits.request_body_ms_max;
        k.connection_idle_ms_max = self.limits.connection_idle_ms_max;
        k.warning_interval_ms = self.limits.warning_interval_ms;
        k.accept_backoff_ms_max = self.limits.accept_backoff_ms_max;
        k.shutdown_drain_ms_max = self.limits.shutdown_drain_ms_max;
        k.critical_topics = self
            .topics
            .iter()
            .filter(|t| t.critical)
            .map(|t| t.name.clone())
            .collect();
        k
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The declared topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&DeclaredTopic> {
        self.topics.iter().find(|t| t.name == name)
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
