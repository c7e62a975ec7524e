//! The Kafka front door's metrics: requests per API, errors, connections, the
//! memory budget's waits, and what is produced and fetched per topic. Defined
//! here and registered in the broker's one registry (`veltrix_core::Metrics`),
//! so `/metrics` shows them beside the engine's. Labels are bounded: the API
//! (the served set), the Kafka error's name, the topic (`topics_max`).

use std::sync::Arc;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge};
use veltrix_core::Metrics;
use veltrix_core::metrics::{LATENCY_BUCKETS, Registrar};

/// The front door's metrics, shared by every connection and request of a
/// listener: one `Arc`, so handing them to a request costs one increment.
#[derive(Debug, Clone)]
pub struct KafkaMetrics(Arc<KafkaMetricSet>);

impl std::ops::Deref for KafkaMetrics {
    type Target = KafkaMetricSet;

    fn deref(&self) -> &KafkaMetricSet {
        &self.0
    }
}

/// The metrics themselves.
#[derive(Debug)]
pub struct KafkaMetricSet {
    /// Off: hot paths skip recording (for measuring the overhead).
    enabled: bool,
    /// Kafka requests served, per API.
    pub requests: IntCounterVec,
    /// Requests or partitions answered with an error, per API and error.
    pub request_errors: IntCounterVec,
    /// Time from a request read to its response ready, per API.
    pub request_seconds: HistogramVec,
    /// Open connections: the engine's gauge, which the HTTP API shows too.
    pub connections: IntGauge,
    /// Connections accepted.
    pub connections_accepted: IntCounter,
    /// Connections the broker closed, by why: `request_body_timeout`, `idle`.
    pub connections_closed: IntCounterVec,
    /// Connections closed at once for being over `connections_max`.
    pub connections_refused: IntCounter,
    /// SASL authentications, by `mechanism` and `result` (`ok`, `failed`).
    pub authentications: IntCounterVec,
    /// TLS handshakes that failed or timed out, by `listener`.
    pub tls_handshake_failures: IntCounterVec,
    /// Listeners' certificates reloaded from changed files, by `result`
    /// (`ok`, `failed`: the previous one kept).
    pub tls_reloads: IntCounterVec,
    /// Operations refused for want of an ACL, by `operation` and
    /// `resource_type` (Kafka's names: `WRITE`, `TOPIC`...).
    pub authorization_denied: IntCounterVec,
    /// Connections closed at once for their address, by `reason`:
    /// `per_ip_max` (too many open) or `per_ip_rate` (opened too fast).
    pub connections_refused_per_ip: IntCounterVec,
    /// Failed accepts, by `kind`: `file_handles` (out of descriptors) or
    /// `other`.
    pub accept_errors: IntCounterVec,
    /// Request bytes held in memory now: the engine's gauge, which the HTTP
    /// API shows too.
    pub in_flight_bytes: IntGauge,
    /// The memory budget for requests: the engine's gauge.
    pub in_flight_bytes_max: IntGauge,
    /// Time a request waited for room in the memory budget.
    pub memory_wait_seconds: Histogram,
    /// Fetches that waited for room in the memory budget.
    pub fetch_memory_waits: IntCounter,
    /// Fetches whose `max_bytes` was cut to `fetch_bytes_max`.
    pub fetch_bytes_clamped: IntCounter,
    /// Responses that told their client to wait for its quota, by `kind`
    /// (`produce`, `fetch`) and the quota `entity` applied (one per declared
    /// entity: bounded by `[quotas] entities_max`).
    pub quota_throttled: IntCounterVec,
    /// The waits those responses asked for, in seconds, by the same labels.
    pub quota_throttle_seconds: prometheus::CounterVec,
    /// The wait a request of each tier would be told now (0: admitted), as
    /// of the last request that asked, by `tier`.
    pub tier_admission_throttle_seconds: prometheus::GaugeVec,
    /// Record bytes of produce requests held until answered, by `tier`.
    pub tier_in_flight_bytes: prometheus::IntGaugeVec,
    /// Produce responses that slowed a producer whose requests keep failing.
    pub failing_producers_throttled: IntCounter,
    /// Requests throttled for their tier as the memory budget filled, by
    /// `tier` and `kind` (`produce`, `fetch`).
    pub tier_throttled: IntCounterVec,
    /// The waits asked of them, in seconds, by the same labels.
    pub tier_throttle_seconds: prometheus::CounterVec,
    /// How long produce requests carrying critical records took from read
    /// to answered: what the critical tier's guard watches.
    pub tier_critical_produce_seconds: prometheus::Histogram,
    /// Record batch bytes appended, per topic.
    pub produce_bytes: IntCounterVec,
    /// Records appended, per topic.
    pub produce_records: IntCounterVec,
    /// Record batch bytes fetched, per topic.
    pub fetch_bytes: IntCounterVec,
    /// Records fetched (whole batches), per topic.
    pub fetch_records: IntCounterVec,
    /// The same, over every topic: the engine's totals, which the HTTP API
    /// shows.
    pub traffic: veltrix_core::metrics::Traffic,
}

impl KafkaMetrics {
    /// Makes the front door's metrics in the engine's registry.
    ///
    /// Long: one registration per metric, with its name and help, in the
    /// order of the struct; splitting it would only scatter the table.
    pub fn new(engine: &Metrics) -> KafkaMetrics {
        let r = Registrar::new(engine.registry());
        let topic = &["topic"];
        KafkaMetrics(Arc::new(KafkaMetricSet {
            enabled: engine.enabled(),
            requests: r.int_counter_vec(
                "veltrix_kafka_requests_total",
                "Kafka requests served, per API.",
                &["api"],
            ),
            request_errors: r.int_counter_vec(
                "veltrix_kafka_request_errors_total",
                "Kafka requests or partitions answered with an error code, per API and error.",
                &["api", "error"],
            ),
            request_seconds: r.histogram_vec(
                "veltrix_kafka_request_duration_seconds",
                "Time from a Kafka request read to its response ready (produce: durable), per API.",
                LATENCY_BUCKETS,
                &["api"],
            ),
            connections: engine.kafka_connections.clone(),
            connections_accepted: r.int_counter(
                "veltrix_kafka_connections_accepted_total",
                "Kafka connections accepted.",
            ),
            connections_closed: r.int_counter_vec(
                "veltrix_kafka_connections_closed_total",
                "Kafka connections the broker closed for a limit, by reason.",
                &["reason"],
            ),
            connections_refused: r.int_counter(
                "veltrix_kafka_connections_refused_total",
                "Kafka connections closed on accept for being over connections_max.",
            ),
            authentications: r.int_counter_vec(
                "veltrix_kafka_authentications_total",
                "SASL authentications of Kafka connections, by mechanism and result (ok, failed).",
                &["mechanism", "result"],
            ),
            tls_handshake_failures: r.int_counter_vec(
                "veltrix_kafka_tls_handshake_failures_total",
                "TLS handshakes of Kafka connections that failed or did not finish in time, by listener.",
                &["listener"],
            ),
            tls_reloads: r.int_counter_vec(
                "veltrix_kafka_tls_reloads_total",
                "Listener certificates loaded again after their files changed, by result (failed: the previous one stays in force).",
                &["result"],
            ),
            authorization_denied: r.int_counter_vec(
                "veltrix_kafka_authorization_denied_total",
                "Kafka operations refused for want of an ACL, by operation and resource type.",
                &["operation", "resource_type"],
            ),
            connections_refused_per_ip: r.int_counter_vec(
                "veltrix_kafka_connections_refused_per_ip_total",
                "Kafka connections closed on accept for their address: per_ip_max (connections_per_ip_max open) or per_ip_rate (over connections_per_ip_per_second_max).",
                &["reason"],
            ),
            accept_errors: r.int_counter_vec(
                "veltrix_kafka_accept_errors_total",
                "Failed accepts of Kafka connections, by kind (file_handles: out of file descriptors).",
                &["kind"],
            ),
            in_flight_bytes: engine.in_flight_bytes.clone(),
            in_flight_bytes_max: engine.in_flight_bytes_max.clone(),
            tier_critical_produce_seconds: r.histogram(
                "veltrix_tier_critical_produce_seconds",
                "Time produce requests carrying critical records took from read to answered (fsync included): what throttles bulk, then standard, requests when it exceeds tier_critical_latency_target_ms.",
                LATENCY_BUCKETS,
            ),
            memory_wait_seconds: r.histogram(
                "veltrix_kafka_throttle_seconds",
                "Time a request waited for room in the memory budget before being read.",
                LATENCY_BUCKETS,
            ),
            fetch_memory_waits: r.int_counter(
                "veltrix_kafka_fetch_memory_waits_total",
                "Fetches that waited for room in the memory budget before reading from disk.",
            ),
            quota_throttled: r.int_counter_vec(
                "veltrix_quota_throttled_total",
                "Responses over a client quota, which carried throttle_time_ms and muted the connection, by kind and quota entity.",
                &["kind", "entity"],
            ),
            quota_throttle_seconds: r.counter_vec(
                "veltrix_quota_throttle_seconds_total",
                "Time clients were told to wait for their quotas, by kind and quota entity.",
                &["kind", "entity"],
            ),
            tier_admission_throttle_seconds: r.gauge_vec(
                "veltrix_tier_admission_throttle_seconds",
                "The wait a produce or fetch of each tier would be told now for the memory budget (0: admitted), as of the last request that asked.",
                &["tier"],
            ),
            tier_in_flight_bytes: r.int_gauge_vec(
                "veltrix_tier_in_flight_bytes",
                "Record bytes of produce requests held from read until answered, by their tier: the memory budget's use by tier.",
                &["tier"],
            ),
            failing_producers_throttled: r.int_counter(
                "veltrix_kafka_failing_producers_throttled_total",
                "Produce responses that slowed a producer (throttle_time_ms, muted connection) because its requests keep being refused.",
            ),
            tier_throttled: r.int_counter_vec(
                "veltrix_tier_throttled_total",
                "Requests throttled for their topics' tier as the memory budget filled (bulk first, then standard), by tier and kind.",
                &["tier", "kind"],
            ),
            tier_throttle_seconds: r.counter_vec(
                "veltrix_tier_throttle_seconds_total",
                "Time clients were told to wait for their tier, by tier and kind.",
                &["tier", "kind"],
            ),
            fetch_bytes_clamped: r.int_counter(
                "veltrix_kafka_fetch_bytes_clamped_total",
                "Fetches whose max_bytes was cut to fetch_bytes_max.",
            ),
            produce_bytes: r.int_counter_vec(
                "veltrix_produce_bytes_total",
                "Record batch bytes appended, per topic.",
                topic,
            ),
            produce_records: r.int_counter_vec("veltrix_produce_records_total", "Records appended, per topic.", topic),
            fetch_bytes: r.int_counter_vec(
                "veltrix_fetch_bytes_total",
                "Record batch bytes fetched, per topic.",
                topic,
            ),
            fetch_records: r.int_counter_vec(
                "veltrix_fetch_records_total",
                "Records fetched (whole batches), per topic.",
                topic,
            ),
            traffic: engine.traffic.clone(),
        }))
    }
}

impl KafkaMetricSet {
    /// Whether hot paths record metrics.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}
