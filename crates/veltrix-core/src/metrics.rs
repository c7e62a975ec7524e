//! The broker's Prometheus metrics: one registry, shared by the engine and the
//! adapters that record into it (the Kafka adapter registers its own request
//! metrics here; the HTTP adapter renders the registry).
//!
//! Label cardinality is bounded by design: no label names a client, a
//! connection or a member. Labels are the API (a fixed set), the topic
//! (bounded by `topics_max`), the group (by `groups_max`), and, for lag only,
//! the partition, capped by [`LAG_PARTITION_SERIES_MAX`] series in all (past
//! it, only the per-group-and-topic totals are exported and
//! `veltrix_group_lag_series_dropped` says how many were left out).

use std::sync::Arc;

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use veltrix_log::FsyncObserver;

use crate::alerts::AlertStatus;
use crate::broker::Broker;
use crate::lag::{PartitionLag, TopicLag};

/// Per-partition lag series exported at most; see the module docs.
pub const LAG_PARTITION_SERIES_MAX: usize = 10_000;

/// Buckets of latencies in seconds, 50 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The engine's metrics, and the registry every adapter adds to.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Off: adapters skip recording on hot paths (for measuring the overhead).
    enabled: bool,
    pub fsync_seconds: Histogram,
    pub fsync_batches: Histogram,
    pub log_bytes: IntGaugeVec,
    pub log_segments: IntGaugeVec,
    pub partitions: IntGaugeVec,
    pub poisoned_partitions: IntGauge,
    pub relaxed_partitions: IntGauge,
    pub groups: IntGaugeVec,
    pub group_members: IntGaugeVec,
    pub lag_records: IntGaugeVec,
    pub lag_seconds: GaugeVec,
    pub group_lag_records: IntGaugeVec,
    pub group_lag_seconds: GaugeVec,
    pub lag_series_dropped: IntGauge,
    pub lag_evaluations: IntCounter,
    pub alert_firing: IntGaugeVec,
    pub alert_transitions: IntCounterVec,
    pub uptime_seconds: Gauge,
    /// Front doors (recorded by the adapters).
    pub requests: IntCounterVec,
    pub request_errors: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub connections: IntGauge,
    pub connections_accepted: IntCounter,
    /// Kafka connections the broker closed, by why: `request_body_timeout`,
    /// `idle`.
    pub connections_closed: IntCounterVec,
    /// Kafka connections closed at once for being over `connections_max`.
    pub connections_refused: IntCounter,
    /// Failed accepts, by `kind`: `file_handles` (out of descriptors) or
    /// `other`.
    pub accept_errors: IntCounterVec,
    /// Warnings left out of the log by the rate limiter, by kind.
    pub warnings_suppressed: IntCounterVec,
    pub http_connections: IntGauge,
    /// HTTP connections closed on accept for being over the limit.
    pub http_connections_refused: IntCounter,
    /// HTTP connections the broker closed, by why: `idle`.
    pub http_connections_closed: IntCounterVec,
    pub in_flight_bytes: IntGauge,
    pub in_flight_bytes_max: IntGauge,
    pub memory_wait_seconds: Histogram,
    pub fetch_memory_waits: IntCounter,
    pub fetch_bytes_clamped: IntCounter,
    pub produce_bytes: IntCounterVec,
    pub produce_records: IntCounterVec,
    pub fetch_bytes: IntCounterVec,
    pub fetch_records: IntCounterVec,
}

fn check<T>(r: prometheus::Result<T>) -> T {
    // Only a name clash or an invalid name fails, both fixed at compile time.
    r.expect("metric definitions are valid and registered once")
}

impl Metrics {
    /// Creates the registry and the engine's metrics.
    pub fn new(enabled: bool) -> Metrics {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| check(registry.register(c));
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = check(Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)));
            reg(Box::new(h.clone()));
            h
        };
        let int_gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = check(IntGaugeVec::new(Opts::new(name, help), labels));
            reg(Box::new(g.clone()));
            g
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = check(GaugeVec::new(Opts::new(name, help), labels));
            reg(Box::new(g.clone()));
            g
        };
        let int_gauge = |name: &str, help: &str| {
            let g = check(IntGauge::new(name, help));
            reg(Box::new(g.clone()));
            g
        };
        let build = check(IntGaugeVec::new(
            Opts::new("veltrix_build_info", "The running broker's version (always 1)."),
            &["version"],
        ));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        reg(Box::new(build));
        let lag_evaluations = check(IntCounter::new(
            "veltrix_group_lag_evaluations_total",
            "Times the broker computed every group's lag (and evaluated the alerts).",
        ));
        reg(Box::new(lag_evaluations.clone()));
        let alert_transitions = check(IntCounterVec::new(
            Opts::new(
                "veltrix_alert_transitions_total",
                "Alert state changes: to firing, or to resolved.",
            ),
            &["alert", "to"],
        ));
        reg(Box::new(alert_transitions.clone()));
        let uptime_seconds = check(Gauge::new(
            "veltrix_uptime_seconds",
            "Seconds since the broker started.",
        ));
        reg(Box::new(uptime_seconds.clone()));
        let int_counter = |name: &str, help: &str| {
            let c = check(IntCounter::new(name, help));
            reg(Box::new(c.clone()));
            c
        };
        let int_counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = check(IntCounterVec::new(Opts::new(name, help), labels));
            reg(Box::new(c.clone()));
            c
        };
        let request_seconds = check(HistogramVec::new(
            HistogramOpts::new(
                "veltrix_kafka_request_duration_seconds",
                "Time from a Kafka request read to its response ready (produce: durable), per API.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["api"],
        ));
        reg(Box::new(request_seconds.clone()));
        let connections_accepted = check(IntCounter::new(
            "veltrix_kafka_connections_accepted_total",
            "Kafka connections accepted.",
        ));
        reg(Box::new(connections_accepted.clone()));
        Metrics {
            enabled,
            fsync_seconds: histogram(
                "veltrix_log_fsync_duration_seconds",
                "Duration of each fsync that made appended batches durable.",
                LATENCY_BUCKETS.to_vec(),
            ),
            fsync_batches: histogram(
                "veltrix_log_fsync_batches",
                "Batches made durable by one fsync (group commit).",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
            ),
            log_bytes: int_gauge_vec(
                "veltrix_log_size_bytes",
                "Bytes on disk of a topic's partitions.",
                &["topic"],
            ),
            log_segments: int_gauge_vec(
                "veltrix_log_segments",
                "Segments on disk of a topic's partitions.",
                &["topic"],
            ),
            partitions: int_gauge_vec("veltrix_topic_partitions", "Partitions of a topic.", &["topic"]),
            poisoned_partitions: int_gauge(
                "veltrix_log_poisoned_partitions",
                "Partitions refusing writes after a failed write or fsync.",
            ),
            relaxed_partitions: int_gauge(
                "veltrix_log_relaxed_durability_partitions",
                "Partitions acknowledging appends before fsync (flush interval).",
            ),
            groups: int_gauge_vec(
                "veltrix_groups",
                "Consumer groups by protocol and state.",
                &["type", "state"],
            ),
            group_members: int_gauge_vec("veltrix_group_members", "Members of a consumer group.", &["group"]),
            lag_records: int_gauge_vec(
                "veltrix_group_partition_lag_records",
                "Records between a group's committed offset and the partition's end.",
                &["group", "topic", "partition"],
            ),
            lag_seconds: gauge_vec(
                "veltrix_group_partition_lag_seconds",
                "Age of the oldest record a group has not committed past (0 when caught up).",
                &["group", "topic", "partition"],
            ),
            group_lag_records: int_gauge_vec(
                "veltrix_group_lag_records",
                "Records a group has not committed past, summed over a topic's partitions.",
                &["group", "topic"],
            ),
            group_lag_seconds: gauge_vec(
                "veltrix_group_lag_seconds",
                "Age of the oldest record a group has not committed past, over a topic's partitions.",
                &["group", "topic"],
            ),
            lag_series_dropped: int_gauge(
                "veltrix_group_lag_series_dropped",
                "Per-partition lag series left out over the series limit.",
            ),
            lag_evaluations,
            alert_firing: int_gauge_vec(
                "veltrix_alert_firing",
                "1 while a declared lag alert fires, else 0.",
                &["alert", "group", "topic"],
            ),
            alert_transitions,
            uptime_seconds,
            requests: int_counter_vec(
                "veltrix_kafka_requests_total",
                "Kafka requests served, per API.",
                &["api"],
            ),
            request_errors: int_counter_vec(
                "veltrix_kafka_request_errors_total",
                "Kafka requests or partitions answered with an error code, per API and error.",
                &["api", "error"],
            ),
            request_seconds,
            connections: int_gauge("veltrix_kafka_connections", "Open Kafka connections."),
            connections_accepted,
            connections_closed: int_counter_vec(
                "veltrix_kafka_connections_closed_total",
                "Kafka connections the broker closed for a limit, by reason.",
                &["reason"],
            ),
            connections_refused: {
                let c = check(IntCounter::new(
                    "veltrix_kafka_connections_refused_total",
                    "Kafka connections closed on accept for being over connections_max.",
                ));
                reg(Box::new(c.clone()));
                c
            },
            accept_errors: int_counter_vec(
                "veltrix_kafka_accept_errors_total",
                "Failed accepts of Kafka connections, by kind (file_handles: out of file descriptors).",
                &["kind"],
            ),
            http_connections: int_gauge("veltrix_http_connections", "Open HTTP connections."),
            http_connections_refused: {
                let c = check(IntCounter::new(
                    "veltrix_http_connections_refused_total",
                    "HTTP connections closed on accept for being over http_connections_max.",
                ));
                reg(Box::new(c.clone()));
                c
            },
            http_connections_closed: int_counter_vec(
                "veltrix_http_connections_closed_total",
                "HTTP connections the broker closed for a limit, by reason (idle: no whole request head within http_idle_ms_max).",
                &["reason"],
            ),
            warnings_suppressed: int_counter_vec(
                "veltrix_warnings_suppressed_total",
                "Warnings left out of the log by its rate limit, by kind.",
                &["kind"],
            ),
            in_flight_bytes: int_gauge(
                "veltrix_kafka_in_flight_bytes",
                "Request bytes held in memory now (the memory budget in use).",
            ),
            in_flight_bytes_max: int_gauge(
                "veltrix_kafka_in_flight_bytes_max",
                "The memory budget for requests (in_flight_bytes_max).",
            ),
            memory_wait_seconds: histogram(
                "veltrix_kafka_throttle_seconds",
                "Time a request waited for room in the memory budget before being read.",
                LATENCY_BUCKETS.to_vec(),
            ),
            fetch_memory_waits: int_counter(
                "veltrix_kafka_fetch_memory_waits_total",
                "Fetches that waited for room in the memory budget before reading from disk.",
            ),
            fetch_bytes_clamped: int_counter(
                "veltrix_kafka_fetch_bytes_clamped_total",
                "Fetches whose max_bytes was cut to fetch_bytes_max.",
            ),
            produce_bytes: int_counter_vec(
                "veltrix_produce_bytes_total",
                "Record batch bytes appended, per topic.",
                &["topic"],
            ),
            produce_records: int_counter_vec(
                "veltrix_produce_records_total",
                "Records appended, per topic.",
                &["topic"],
            ),
            fetch_bytes: int_counter_vec(
                "veltrix_fetch_bytes_total",
                "Record batch bytes fetched, per topic.",
                &["topic"],
            ),
            fetch_records: int_counter_vec(
                "veltrix_fetch_records_total",
                "Records fetched (whole batches), per topic.",
                &["topic"],
            ),
            registry,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Sets the gauges read off the engine's state: sizes on disk, segments,
    /// partitions, groups and their members. Called before each scrape.
    pub fn refresh(&self, broker: &Broker) {
        self.log_bytes.reset();
        self.log_segments.reset();
        self.partitions.reset();
        let (mut poisoned, mut relaxed) = (0, 0);
        for topic in broker.topics() {
            let (mut bytes, mut segments) = (0u64, 0usize);
            for p in &topic.partitions {
                let log = p.log();
                bytes += log.size_bytes();
                segments += log.segment_count();
                let stats = log.stats();
                poisoned += i64::from(stats.poisoned.load(std::sync::atomic::Ordering::Relaxed));
                relaxed += i64::from(stats.relaxed_durability.load(std::sync::atomic::Ordering::Relaxed));
            }
            let name = [topic.name.as_str()];
            self.log_bytes
                .with_label_values(&name)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            self.log_segments.with_label_values(&name).set(segments as i64);
            self.partitions
                .with_label_values(&name)
                .set(topic.partitions.len() as i64);
        }
        self.poisoned_partitions.set(poisoned);
        self.relaxed_partitions.set(relaxed);
        self.groups.reset();
        self.group_members.reset();
        for g in broker.groups().list() {
            self.groups.with_label_values(&[g.group_type, g.state]).inc();
            self.group_members
                .with_label_values(&[g.group_id.as_str()])
                .set(g.members as i64);
        }
    }

    /// Publishes a lag evaluation: per partition up to
    /// [`LAG_PARTITION_SERIES_MAX`] series, per group and topic always.
    pub fn publish_lag(&self, partitions: &[PartitionLag], topics: &[TopicLag]) {
        self.lag_evaluations.inc();
        self.lag_records.reset();
        self.lag_seconds.reset();
        for p in partitions.iter().take(LAG_PARTITION_SERIES_MAX) {
            let partition = p.partition.to_string();
            let labels = [p.group.as_str(), p.topic.as_str(), partition.as_str()];
            self.lag_records.with_label_values(&labels).set(p.lag_records);
            self.lag_seconds
                .with_label_values(&labels)
                .set(p.lag_ms as f64 / 1000.0);
        }
        self.lag_series_dropped
            .set(partitions.len().saturating_sub(LAG_PARTITION_SERIES_MAX) as i64);
        self.group_lag_records.reset();
        self.group_lag_seconds.reset();
        for t in topics {
            let labels = [t.group.as_str(), t.topic.as_str()];
            self.group_lag_records.with_label_values(&labels).set(t.lag_records);
            self.group_lag_seconds
                .with_label_values(&labels)
                .set(t.lag_ms as f64 / 1000.0);
        }
    }

    /// Publishes the alerts' states.
    pub fn publish_alerts(&self, statuses: &[AlertStatus]) {
        for s in statuses {
            let firing = matches!(s.state, crate::alerts::AlertState::Firing { .. });
            self.alert_firing
                .with_label_values(&[s.rule.name.as_str(), s.rule.group.as_str(), s.rule.topic.as_str()])
                .set(i64::from(firing));
        }
    }

    /// Counts an alert transition.
    pub fn alert_transition(&self, alert: &str, to: &str) {
        self.alert_transitions.with_label_values(&[alert, to]).inc();
    }

    /// The observer that feeds the fsync histograms.
    pub fn fsync_observer(&self) -> Arc<dyn FsyncObserver> {
        Arc::new(FsyncMetrics {
            seconds: self.fsync_seconds.clone(),
            batches: self.fsync_batches.clone(),
        })
    }
}

/// Registers a metric defined by an adapter.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    check(registry.register(Box::new(c.clone())));
    c
}

struct FsyncMetrics {
    seconds: Histogram,
    batches: Histogram,
}

impl FsyncObserver for FsyncMetrics {
    fn fsynced(&self, micros: u64, batches: u64) {
        self.seconds.observe(micros as f64 / 1e6);
        self.batches.observe(batches as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_help_and_type() {
        let m = Metrics::new(true);
        m.fsync_observer().fsynced(1500, 3);
        m.log_bytes.with_label_values(&["t"]).set(10);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&m.registry().gather())
            .unwrap();
        assert!(
            text.contains("veltrix_log_fsync_duration_seconds_bucket{le=\"0.0025\"} 1"),
            "{text}"
        );
        assert!(text.contains("veltrix_log_fsync_batches_sum 3"), "{text}");
        assert!(text.contains("# TYPE veltrix_log_size_bytes gauge"));
        assert!(text.contains("veltrix_build_info{version="));
    }
}
