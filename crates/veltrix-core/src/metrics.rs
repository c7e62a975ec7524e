//! The broker's Prometheus metrics: one registry, shared by the engine and the
//! adapters that record into it (the Kafka adapter defines and registers its
//! own, through a [`Registrar`]; the HTTP adapter renders the registry).
//!
//! Label cardinality is bounded by design: no label names a client, a
//! connection or a member. Labels are the API (a fixed set), the topic
//! (bounded by `topics_max`), the group (by `groups_max`), and, for lag only,
//! the partition, capped by [`LAG_PARTITION_SERIES_MAX`] series in all (past
//! it, only the per-group-and-topic totals are exported and
//! `veltrix_group_lag_series_dropped` says how many were left out).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The logs: fsyncs, sizes, partitions.
    pub log: LogMetrics,
    /// Consumer groups, their lag and the lag alerts.
    pub groups: GroupMetrics,
    /// The HTTP listener's connections.
    pub http: HttpMetrics,
    /// Share groups: what happened to their records, what is in flight.
    pub share: ShareMetrics,
    /// Topics' duplicate windows.
    pub dedup: DedupMetrics,
    /// Routes: records in and out, errors, lag.
    pub routes: RouteMetrics,
    /// Seconds since the broker started, set before each scrape.
    pub uptime_seconds: Gauge,
    /// Warnings left out of the log by the rate limiter, by kind.
    pub warnings_suppressed: IntCounterVec,
    /// Request bytes held in memory now: the memory budget in use (the Kafka
    /// adapter holds them; the HTTP API shows them).
    pub in_flight_bytes: IntGauge,
    /// The memory budget for requests (`in_flight_bytes_max`).
    pub in_flight_bytes_max: IntGauge,
    /// Open Kafka connections (the Kafka adapter counts them; the HTTP API
    /// shows them).
    pub kafka_connections: IntGauge,
    /// Bytes and records produced and fetched since start, over every topic.
    pub traffic: Traffic,
    /// Free bytes of the data directory's file system, as last read.
    pub disk_available_bytes: IntGauge,
    /// The disk watermark level: 0 all accepted, 1 bulk refused, 2 standard
    /// too, 3 the reserve reached (critical too).
    pub disk_level: IntGauge,
    /// Watermark crossings, by the level crossed into.
    pub disk_crossings: IntCounterVec,
    /// The log cleaner's work (`compaction.rs`).
    cleaner: crate::compaction::CleanerMetrics,
    /// The transaction coordinator's decisions and state (`txn`).
    transactions: crate::txn::metrics::TxnMetrics,
}

/// Bytes and records produced and fetched since the broker started, over
/// every topic: the totals the HTTP API answers (and the console turns into
/// rates). Not in the registry: `/metrics` has them per topic
/// (`veltrix_produce_bytes_total`...). Four relaxed atomic additions per
/// request that moves records.
#[derive(Debug, Clone, Default)]
pub struct Traffic(Arc<TrafficTotals>);

/// The counters behind [`Traffic`].
#[derive(Debug, Default)]
struct TrafficTotals {
    produce_bytes: AtomicU64,
    produce_records: AtomicU64,
    fetch_bytes: AtomicU64,
    fetch_records: AtomicU64,
}

/// What [`Traffic`] counted, as of one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TrafficTotalsSnapshot {
    pub produce_bytes: u64,
    pub produce_records: u64,
    pub fetch_bytes: u64,
    pub fetch_records: u64,
}

impl Traffic {
    /// Record batch bytes and records appended for producers.
    pub fn produced(&self, bytes: u64, records: u64) {
        self.0.produce_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.0.produce_records.fetch_add(records, Ordering::Relaxed);
    }

    /// Record batch bytes and records sent to consumers.
    pub fn fetched(&self, bytes: u64, records: u64) {
        self.0.fetch_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.0.fetch_records.fetch_add(records, Ordering::Relaxed);
    }

    pub fn totals(&self) -> TrafficTotalsSnapshot {
        TrafficTotalsSnapshot {
            produce_bytes: self.0.produce_bytes.load(Ordering::Relaxed),
            produce_records: self.0.produce_records.load(Ordering::Relaxed),
            fetch_bytes: self.0.fetch_bytes.load(Ordering::Relaxed),
            fetch_records: self.0.fetch_records.load(Ordering::Relaxed),
        }
    }
}

/// The logs' metrics.
#[derive(Debug, Clone)]
pub struct LogMetrics {
    /// Duration of each fsync that made appended batches durable.
    pub fsync_seconds: Histogram,
    /// Batches made durable by one fsync (group commit).
    pub fsync_batches: Histogram,
    /// Bytes on disk per topic.
    pub bytes: IntGaugeVec,
    /// Segments on disk per topic.
    pub segments: IntGaugeVec,
    /// Partitions per topic.
    pub partitions: IntGaugeVec,
    /// Partitions refusing writes after a failed write or fsync.
    pub poisoned_partitions: IntGauge,
    /// Partitions acknowledging appends before fsync.
    pub relaxed_partitions: IntGauge,
}

/// Consumer groups' metrics, their lag and the lag alerts.
#[derive(Debug, Clone)]
pub struct GroupMetrics {
    /// Groups by protocol type and state.
    pub groups: IntGaugeVec,
    /// Members per group.
    pub members: IntGaugeVec,
    /// Lag in records per group, topic and partition (bounded in series).
    pub lag_records: IntGaugeVec,
    /// Lag in seconds per group, topic and partition (bounded in series).
    pub lag_seconds: GaugeVec,
    /// Lag in records per group and topic.
    pub topic_lag_records: IntGaugeVec,
    /// Lag in seconds per group and topic.
    pub topic_lag_seconds: GaugeVec,
    /// Per-partition series left out over [`LAG_PARTITION_SERIES_MAX`].
    pub lag_series_dropped: IntGauge,
    /// Lag evaluations done.
    pub lag_evaluations: IntCounter,
    /// 1 while an alert fires.
    pub alert_firing: IntGaugeVec,
    /// Alert state changes, by alert and new state.
    pub alert_transitions: IntCounterVec,
}

/// Share groups' metrics, read off the share coordinator before each scrape.
#[derive(Debug, Clone)]
pub struct ShareMetrics {
    /// Share groups by state.
    pub groups: IntGaugeVec,
    /// Members per share group.
    pub members: IntGaugeVec,
    /// Open share sessions.
    pub sessions: IntGauge,
    /// Records per group, topic and outcome: `acquired`, `accepted`,
    /// `released`, `rejected`, `archived` (delivery limit reached),
    /// `lock_timeout` (the acquisition lock ran out), `backoff` (made to
    /// wait before its next delivery), `dead_lettered` (archived for good
    /// once its dead letter was written).
    pub records: IntCounterVec,
    /// Records acquired and not yet acknowledged, per group and topic.
    pub in_flight: IntGaugeVec,
    /// Records available again but waiting out their backoff, per group and
    /// topic.
    pub backing_off: IntGaugeVec,
    /// Records in flight or waiting to be delivered again, per group, topic
    /// and delivery count so far (`1` to `4`, `5+`): how retries pile up.
    pub by_deliveries: IntGaugeVec,
    /// Archived records whose dead letter is not written yet, per group and
    /// topic: a dead-letter topic that cannot be written holds them (and the
    /// start offset) back.
    pub dead_letters_pending: IntGaugeVec,
    /// Rounds of the dead-letter writer that failed for a share-partition
    /// (retried a second later).
    pub dead_letter_failures: IntCounter,
    /// Archived records given no letter: no record at their offset any
    /// more, or their group no longer names a dead-letter topic.
    pub dead_letters_skipped: IntCounter,
    /// Dead letters moved back by redrives.
    pub redriven: IntCounter,
    /// Dead letters written, per group, topic and reason (`rejected`,
    /// `delivery_limit`, `lock_timeout`).
    pub dead_letters: IntCounterVec,
    /// Group-and-topic series left out over [`LAG_PARTITION_SERIES_MAX`].
    pub series_dropped: IntGauge,
    /// The totals last published, so that counters move by what happened
    /// since (the engine's own counts restart with the broker).
    last: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), crate::share::Outcomes>>>,
}

/// The HTTP listener's metrics.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    /// Open HTTP connections.
    pub connections: IntGauge,
    /// HTTP connections closed on accept for being over the limit.
    pub connections_refused: IntCounter,
    /// HTTP connections the broker closed, by why: `idle`.
    pub connections_closed: IntCounterVec,
    /// Requests' authentications, by `method` (`basic`, `bearer`) and
    /// `result` (`ok`, `failed`).
    pub authentications: IntCounterVec,
    /// Requests refused for want of an ACL, by operation and resource type.
    pub authorization_denied: IntCounterVec,
    /// TLS handshakes that failed or did not finish in time.
    pub tls_handshake_failures: IntCounter,
    /// Certificates loaded again after their files changed, by `result`.
    pub tls_reloads: IntCounterVec,
    /// Remembered password checks dropped to keep within
    /// `http_verified_passwords_max`.
    pub verified_passwords_evicted: IntCounter,
    /// Password checks that waited for one of the
    /// `http_password_checks_in_flight_max` slots.
    pub password_checks_waited: IntCounter,
    /// Records produced over HTTP refused for their body, by `reason`:
    /// `too_large` (past `http_produce_bytes_max`), `slow_body`.
    pub produce_refused: IntCounterVec,
}

fn check<T>(r: prometheus::Result<T>) -> T {
    // Only a name clash or an invalid name fails, both fixed at compile time.
    r.expect("metric definitions are valid and registered once")
}

/// The routes' metrics; labelled by route (at most `ROUTES_MAX`) and
/// target topic (at most a route's targets).
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub records_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub errors: IntCounterVec,
    pub unmatched: IntCounterVec,
    pub lag_records: IntGaugeVec,
    pub lag_seconds: GaugeVec,
    pub steps_retaken_anew: IntCounterVec,
    pub skipped: IntCounterVec,
}

impl RouteMetrics {
    fn new(r: &Registrar<'_>) -> RouteMetrics {
        RouteMetrics {
            records_in: r.int_counter_vec(
                "veltrix_route_records_in_total",
                "Source records a route has read and sorted.",
                &["route"],
            ),
            records_out: r.int_counter_vec(
                "veltrix_route_records_out_total",
                "Records a route wrote, by target topic (its dead-letter topic included).",
                &["route", "target"],
            ),
            errors: r.int_counter_vec(
                "veltrix_route_errors_total",
                "Source records on which a route's expression failed (sent to its dead-letter topic).",
                &["route"],
            ),
            unmatched: r.int_counter_vec(
                "veltrix_route_unmatched_total",
                "Source records no rule of a route held for and that had no default target.",
                &["route"],
            ),
            lag_records: r.int_gauge_vec(
                "veltrix_route_lag_records",
                "Durable source records a route has not sorted yet, over its source's partitions.",
                &["route"],
            ),
            steps_retaken_anew: r.int_counter_vec(
                "veltrix_route_steps_retaken_anew_total",
                "Steps a crash interrupted that could not be taken again as they were (settings changed across the \
                 crash): written again under a new producer id, their records perhaps twice.",
                &["route"],
            ),
            skipped: r.int_counter_vec(
                "veltrix_route_skipped_records_total",
                "Source records a route never sorted because retention removed them first.",
                &["route"],
            ),
            lag_seconds: r.gauge_vec(
                "veltrix_route_lag_seconds",
                "Age of the oldest source record a route has not sorted yet (0 when caught up).",
                &["route"],
            ),
        }
    }
}

/// Makes metrics and registers them in a registry, one call each: the
/// engine's here, and each adapter's in its own crate.
pub struct Registrar<'a>(&'a Registry);

impl<'a> Registrar<'a> {
    pub fn new(registry: &'a Registry) -> Registrar<'a> {
        Registrar(registry)
    }

    /// Registers `c`. One registered before with the same names (an earlier
    /// listener on the same broker) is replaced, so its values start again.
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: prometheus::Result<C>) -> C {
        let c = check(c);
        match self.0.register(Box::new(c.clone())) {
            Err(prometheus::Error::AlreadyReg) => {
                // Collectors are told apart by their descriptions: this
                // removes the old one.
                check(self.0.unregister(Box::new(c.clone())));
                check(self.0.register(Box::new(c.clone())));
            }
            other => check(other),
        }
        c
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        self.add(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        ))
    }

    pub fn histogram_vec(&self, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
        self.add(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        ))
    }

    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::new(name, help))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(GaugeVec::new(Opts::new(name, help), labels))
    }

    pub fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help))
    }

    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels))
    }

    pub fn int_counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help))
    }

    pub fn int_counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels))
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::CounterVec {
        self.add(prometheus::CounterVec::new(Opts::new(name, help), labels))
    }
}

impl LogMetrics {
    fn new(r: &Registrar<'_>) -> LogMetrics {
        const FSYNC_BATCHES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];
        let fsync = "Duration of each fsync that made appended batches durable.";
        LogMetrics {
            fsync_seconds: r.histogram("veltrix_log_fsync_duration_seconds", fsync, LATENCY_BUCKETS),
            fsync_batches: r.histogram(
                "veltrix_log_fsync_batches",
                "Batches made durable by one fsync (group commit).",
                FSYNC_BATCHES,
            ),
            bytes: r.int_gauge_vec(
                "veltrix_log_size_bytes",
                "Bytes on disk of a topic's partitions.",
                &["topic"],
            ),
            segments: r.int_gauge_vec(
                "veltrix_log_segments",
                "Segments on disk of a topic's partitions.",
                &["topic"],
            ),
            partitions: r.int_gauge_vec("veltrix_topic_partitions", "Partitions of a topic.", &["topic"]),
            poisoned_partitions: r.int_gauge(
                "veltrix_log_poisoned_partitions",
                "Partitions refusing writes after a failed write or fsync.",
            ),
            relaxed_partitions: r.int_gauge(
                "veltrix_log_relaxed_durability_partitions",
                "Partitions acknowledging appends before fsync (flush interval).",
            ),
        }
    }
}

impl GroupMetrics {
    fn new(r: &Registrar<'_>) -> GroupMetrics {
        let partition = &["group", "topic", "partition"];
        let topic = &["group", "topic"];
        GroupMetrics {
            groups: r.int_gauge_vec(
                "veltrix_groups",
                "Consumer groups by protocol and state.",
                &["type", "state"],
            ),
            members: r.int_gauge_vec("veltrix_group_members", "Members of a consumer group.", &["group"]),
            lag_records: r.int_gauge_vec(
                "veltrix_group_partition_lag_records",
                "Records between a group's committed offset and the partition's end.",
                partition,
            ),
            lag_seconds: r.gauge_vec(
                "veltrix_group_partition_lag_seconds",
                "Age of the oldest record a group has not committed past (0 when caught up).",
                partition,
            ),
            topic_lag_records: r.int_gauge_vec(
                "veltrix_group_lag_records",
                "Records a group has not committed past, summed over a topic's partitions.",
                topic,
            ),
            topic_lag_seconds: r.gauge_vec(
                "veltrix_group_lag_seconds",
                "Age of the oldest record a group has not committed past, over a topic's partitions.",
                topic,
            ),
            lag_series_dropped: r.int_gauge(
                "veltrix_group_lag_series_dropped",
                "Per-partition lag series left out over the series limit.",
            ),
            lag_evaluations: r.int_counter(
                "veltrix_group_lag_evaluations_total",
                "Times the broker computed every group's lag (and evaluated the alerts).",
            ),
            alert_firing: r.int_gauge_vec(
                "veltrix_alert_firing",
                "1 while a declared lag alert fires, else 0.",
                &["alert", "group", "topic"],
            ),
            alert_transitions: r.int_counter_vec(
                "veltrix_alert_transitions_total",
                "Alert state changes: to firing, or to resolved.",
                &["alert", "to"],
            ),
        }
    }
}

/// Topics' duplicate windows, read off each window before a scrape.
#[derive(Debug, Clone)]
pub struct DedupMetrics {
    pub ids: IntGaugeVec,
    pub memory_bytes: IntGaugeVec,
    pub window_seconds: GaugeVec,
    pub effective_window_seconds: GaugeVec,
    pub records: IntCounterVec,
    pub evicted_early: IntCounterVec,
    pub waits: IntCounterVec,
}

impl DedupMetrics {
    fn new(r: &Registrar<'_>) -> DedupMetrics {
        DedupMetrics {
            ids: r.int_gauge_vec(
                "veltrix_dedup_ids",
                "Message ids in a topic's duplicate window, stored or being stored.",
                &["topic"],
            ),
            memory_bytes: r.int_gauge_vec(
                "veltrix_dedup_memory_bytes",
                "Memory a topic's duplicate window holds (ids and their entries, estimated).",
                &["topic"],
            ),
            window_seconds: r.gauge_vec(
                "veltrix_dedup_window_seconds",
                "A topic's duplicate window as configured (veltrix.dedup.window.ms).",
                &["topic"],
            ),
            effective_window_seconds: r.gauge_vec(
                "veltrix_dedup_effective_window_seconds",
                "How far back a topic's ids are certainly remembered: the window, or less while ids_max made \
                 the window forget ids early.",
                &["topic"],
            ),
            records: r.int_counter_vec(
                "veltrix_dedup_records_total",
                "Records produced to a topic with a duplicate window, by outcome: dropped (a duplicate), \
                 without_id (stored, no id to check).",
                &["topic", "outcome"],
            ),
            evicted_early: r.int_counter_vec(
                "veltrix_dedup_evicted_early_total",
                "Ids forgotten before their window ended to stay within [dedup] ids_max or memory_bytes_max.",
                &["topic"],
            ),
            waits: r.int_counter_vec(
                "veltrix_dedup_waits_total",
                "Produces that met an id another produce was storing and waited for its fsync.",
                &["topic"],
            ),
        }
    }

    /// Publishes every window's figures since it was opened.
    fn refresh(&self, broker: &Broker) {
        self.ids.reset();
        self.memory_bytes.reset();
        self.window_seconds.reset();
        self.effective_window_seconds.reset();
        self.records.reset();
        self.evicted_early.reset();
        self.waits.reset();
        for topic in broker.topics() {
            let Some(dedup) = &topic.dedup else { continue };
            let stats = dedup.stats();
            let name = topic.name.as_str();
            self.ids.with_label_values(&[name]).set(stats.index.ids as i64);
            self.memory_bytes
                .with_label_values(&[name])
                .set(stats.index.memory_bytes as i64);
            self.window_seconds
                .with_label_values(&[name])
                .set(dedup.config().window_ms as f64 / 1000.0);
            self.effective_window_seconds
                .with_label_values(&[name])
                .set(stats.index.effective_window_ms as f64 / 1000.0);
            self.records
                .with_label_values(&[name, "dropped"])
                .inc_by(stats.index.duplicates_dropped);
            self.records
                .with_label_values(&[name, "without_id"])
                .inc_by(stats.records_without_id);
            self.waits.with_label_values(&[name]).inc_by(stats.waits);
            self.evicted_early
                .with_label_values(&[name])
                .inc_by(stats.index.evicted_early);
        }
    }
}

impl ShareMetrics {
    fn new(r: &Registrar<'_>) -> ShareMetrics {
        ShareMetrics {
            groups: r.int_gauge_vec("veltrix_share_groups", "Share groups by state.", &["state"]),
            members: r.int_gauge_vec("veltrix_share_group_members", "Members of a share group.", &["group"]),
            sessions: r.int_gauge("veltrix_share_sessions", "Open share sessions."),
            records: r.int_counter_vec(
                "veltrix_share_records_total",
                "Share-group records by outcome: acquired, accepted, released, rejected, archived (delivery limit reached), lock_timeout, backoff (made to wait before the next delivery), dead_lettered (archived once its dead letter was written), bad_header (a delay or priority header that did not parse, ignored).",
                &["group", "topic", "outcome"],
            ),
            in_flight: r.int_gauge_vec(
                "veltrix_share_records_in_flight",
                "Share-group records acquired and not yet acknowledged.",
                &["group", "topic"],
            ),
            backing_off: r.int_gauge_vec(
                "veltrix_share_records_backing_off",
                "Share-group records available again but waiting out their backoff before the next delivery.",
                &["group", "topic"],
            ),
            by_deliveries: r.int_gauge_vec(
                "veltrix_share_records_by_deliveries",
                "Share-group records not yet done, by deliveries so far (1 to 4, 5+): retries piling up.",
                &["group", "topic", "deliveries"],
            ),
            dead_letters_pending: r.int_gauge_vec(
                "veltrix_share_dead_letters_pending",
                "Share-group records archived whose dead letter is not written yet (they hold the start offset back).",
                &["group", "topic"],
            ),
            dead_letter_failures: r.int_counter(
                "veltrix_share_dead_letter_failures_total",
                "Failed attempts to write a share-partition's dead letters (tried again a second later).",
            ),
            dead_letters_skipped: r.int_counter(
                "veltrix_share_dead_letters_skipped_total",
                "Archived records given no dead letter: no record at their offset any more, or the group no longer names a dead-letter topic.",
            ),
            dead_letters: r.int_counter_vec(
                "veltrix_share_dead_letters_total",
                "Dead letters written for a share group's records of a topic, by reason: rejected, delivery_limit, lock_timeout.",
                &["group", "topic", "reason"],
            ),
            redriven: r.int_counter(
                "veltrix_share_redriven_total",
                "Dead letters moved back to a topic by redrives.",
            ),
            series_dropped: r.int_gauge(
                "veltrix_share_series_dropped",
                "Share group-and-topic series left out over the series limit.",
            ),
            last: Arc::default(),
        }
    }

    /// Publishes the share coordinator's state: groups, members, sessions,
    /// and per group and topic the records in flight and the outcomes since
    /// the last call.
    fn refresh(&self, broker: &Broker) {
        let share = broker.share();
        self.groups.reset();
        self.members.reset();
        for g in share.list() {
            self.groups.with_label_values(&[g.state]).inc();
            self.members
                .with_label_values(&[g.group_id.as_str()])
                .set(g.members.len() as i64);
        }
        self.sessions.set(share.sessions() as i64);
        let names: std::collections::HashMap<crate::TopicId, String> =
            broker.topics().iter().map(|t| (t.id, t.name.clone())).collect();
        #[derive(Default)]
        struct Totals {
            outcomes: crate::share::Outcomes,
            in_flight: usize,
            backing_off: usize,
            dead_letters_pending: usize,
            deliveries: [u64; 5],
        }
        let mut totals: std::collections::BTreeMap<(String, String), Totals> = std::collections::BTreeMap::new();
        for s in share.stats() {
            let Some(topic) = names.get(&s.key.topic) else { continue };
            let entry = totals.entry((s.key.group, topic.clone())).or_default();
            entry.outcomes.add(&s.outcomes);
            entry.in_flight += s.summary.acquired;
            entry.backing_off += s.summary.backing_off;
            entry.dead_letters_pending += s.summary.dead_letters_pending;
            for (t, n) in entry.deliveries.iter_mut().zip(s.summary.deliveries) {
                *t += n;
            }
        }
        self.series_dropped
            .set(totals.len().saturating_sub(LAG_PARTITION_SERIES_MAX) as i64);
        self.in_flight.reset();
        self.backing_off.reset();
        self.dead_letters_pending.reset();
        self.by_deliveries.reset();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = std::collections::HashMap::with_capacity(totals.len().min(LAG_PARTITION_SERIES_MAX));
        for ((group, topic), t) in totals.into_iter().take(LAG_PARTITION_SERIES_MAX) {
            let labels = [group.as_str(), topic.as_str()];
            self.in_flight.with_label_values(&labels).set(t.in_flight as i64);
            self.backing_off.with_label_values(&labels).set(t.backing_off as i64);
            self.dead_letters_pending
                .with_label_values(&labels)
                .set(t.dead_letters_pending as i64);
            for (deliveries, n) in ["1", "2", "3", "4", "5+"].into_iter().zip(t.deliveries) {
                self.by_deliveries
                    .with_label_values(&[group.as_str(), topic.as_str(), deliveries])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let now = t.outcomes;
            let before = last.remove(&(group.clone(), topic.clone())).unwrap_or_default();
            self.count_outcomes(&group, &topic, &now, &before);
            next.insert((group, topic), now);
        }
        // Series of groups or topics gone since are dropped.
        for (group, topic) in last.keys() {
            self.drop_series(group, topic);
        }
        *last = next;
    }

    /// Moves the counters of a group and topic by what happened since
    /// `before`.
    fn count_outcomes(&self, group: &str, topic: &str, now: &crate::share::Outcomes, before: &crate::share::Outcomes) {
        // A count below the last one was started again (the group or topic
        // was deleted and made anew): all of it is new.
        let delta = |now_n: u64, before_n: u64| if now_n >= before_n { now_n - before_n } else { now_n };
        for ((outcome, now_n), (_, before_n)) in outcome_counts(now).into_iter().zip(outcome_counts(before)) {
            let d = delta(now_n, before_n);
            if d > 0 || before_n == 0 {
                self.records.with_label_values(&[group, topic, outcome]).inc_by(d);
            }
        }
        for reason in crate::share::DeadLetterReason::ALL {
            let i = reason.index();
            let d = delta(now.dead_letters_by_reason[i], before.dead_letters_by_reason[i]);
            if d > 0 {
                self.dead_letters
                    .with_label_values(&[group, topic, reason.as_str()])
                    .inc_by(d);
            }
        }
    }

    /// Drops every series of a group and topic.
    fn drop_series(&self, group: &str, topic: &str) {
        for (outcome, _) in outcome_counts(&crate::share::Outcomes::default()) {
            let _ = self.records.remove_label_values(&[group, topic, outcome]);
        }
        for reason in crate::share::DeadLetterReason::ALL {
            let _ = self.dead_letters.remove_label_values(&[group, topic, reason.as_str()]);
        }
    }
}

/// Share-group outcomes by the `outcome` label of `veltrix_share_records_total`.
fn outcome_counts(o: &crate::share::Outcomes) -> [(&'static str, u64); 9] {
    [
        ("acquired", o.acquired),
        ("accepted", o.accepted),
        ("released", o.released),
        ("rejected", o.rejected),
        ("archived", o.archived),
        ("lock_timeout", o.lock_timeouts),
        ("backoff", o.backoffs),
        ("dead_lettered", o.dead_letters),
        ("bad_header", o.bad_headers),
    ]
}

impl HttpMetrics {
    fn new(r: &Registrar<'_>) -> HttpMetrics {
        HttpMetrics {
            connections: r.int_gauge("veltrix_http_connections", "Open HTTP connections."),
            connections_refused: r.int_counter(
                "veltrix_http_connections_refused_total",
                "HTTP connections closed on accept for being over http_connections_max.",
            ),
            connections_closed: r.int_counter_vec(
                "veltrix_http_connections_closed_total",
                "HTTP connections the broker closed for a limit, by reason (idle: no whole request head within http_idle_ms_max).",
                &["reason"],
            ),
            authentications: r.int_counter_vec(
                "veltrix_http_authentications_total",
                "HTTP requests' authentications, by method (basic, bearer) and result (ok, failed).",
                &["method", "result"],
            ),
            authorization_denied: r.int_counter_vec(
                "veltrix_http_authorization_denied_total",
                "HTTP requests refused for want of an ACL, by operation and resource type.",
                &["operation", "resource_type"],
            ),
            tls_handshake_failures: r.int_counter(
                "veltrix_http_tls_handshake_failures_total",
                "TLS handshakes of HTTP connections that failed or did not finish within http_idle_ms_max.",
            ),
            tls_reloads: r.int_counter_vec(
                "veltrix_http_tls_reloads_total",
                "The HTTP listener's certificate loaded again after its files changed, by result (failed: the previous one stays in force).",
                &["result"],
            ),
            verified_passwords_evicted: r.int_counter(
                "veltrix_http_verified_passwords_evicted_total",
                "Remembered HTTP password checks dropped to keep within http_verified_passwords_max (the next request with that password runs PBKDF2 again).",
            ),
            password_checks_waited: r.int_counter(
                "veltrix_http_password_checks_waited_total",
                "HTTP password checks (PBKDF2) that waited for one of the http_password_checks_in_flight_max slots.",
            ),
            produce_refused: r.int_counter_vec(
                "veltrix_http_produce_refused_total",
                "Records produced over HTTP refused for their body, by reason (too_large: past http_produce_bytes_max; slow_body: not whole within 10 s).",
                &["reason"],
            ),
        }
    }
}

impl Metrics {
    /// Creates the registry and the engine's metrics.
    pub fn new(enabled: bool) -> Metrics {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        let build = r.int_gauge_vec(
            "veltrix_build_info",
            "The running broker's version (always 1).",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Metrics {
            enabled,
            log: LogMetrics::new(&r),
            groups: GroupMetrics::new(&r),
            http: HttpMetrics::new(&r),
            share: ShareMetrics::new(&r),
            dedup: DedupMetrics::new(&r),
            routes: RouteMetrics::new(&r),
            cleaner: crate::compaction::CleanerMetrics::new(&r),
            transactions: crate::txn::metrics::TxnMetrics::new(&r),
            uptime_seconds: r.gauge("veltrix_uptime_seconds", "Seconds since the broker started."),
            warnings_suppressed: r.int_counter_vec(
                "veltrix_warnings_suppressed_total",
                "Warnings left out of the log by its rate limit, by kind.",
                &["kind"],
            ),
            in_flight_bytes: r.int_gauge(
                "veltrix_kafka_in_flight_bytes",
                "Request bytes held in memory now (the memory budget in use).",
            ),
            in_flight_bytes_max: r.int_gauge(
                "veltrix_kafka_in_flight_bytes_max",
                "The memory budget for requests (in_flight_bytes_max).",
            ),
            kafka_connections: r.int_gauge("veltrix_kafka_connections", "Open Kafka connections."),
            traffic: Traffic::default(),
            disk_available_bytes: r.int_gauge(
                "veltrix_disk_available_bytes",
                "Free bytes of the data directory's file system, as last read by housekeeping.",
            ),
            disk_level: r.int_gauge(
                "veltrix_disk_watermark_level",
                "Disk watermark level: 0 everything accepted, 1 bulk produce refused, 2 standard too, 3 the reserve reached (critical too).",
            ),
            disk_crossings: r.int_counter_vec(
                "veltrix_disk_watermark_crossings_total",
                "Disk watermark crossings, by the level crossed into (ok when space came back).",
                &["level"],
            ),
            registry,
        }
    }

    /// The registry every metric is in, adapters' included.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether hot paths record metrics.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Sets the gauges read off the engine's state: sizes on disk, segments,
    /// partitions, groups and their members. Called before each scrape.
    pub fn refresh(&self, broker: &Broker) {
        self.log.bytes.reset();
        self.log.segments.reset();
        self.log.partitions.reset();
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
            self.log
                .bytes
                .with_label_values(&name)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            self.log.segments.with_label_values(&name).set(segments as i64);
            self.log
                .partitions
                .with_label_values(&name)
                .set(topic.partitions.len() as i64);
        }
        self.log.poisoned_partitions.set(poisoned);
        self.log.relaxed_partitions.set(relaxed);
        self.routes.lag_records.reset();
        self.routes.lag_seconds.reset();
        for r in broker.routes() {
            let name = [r.spec.name.as_str()];
            self.routes.lag_records.with_label_values(&name).set(r.lag_records);
            self.routes.lag_seconds.with_label_values(&name).set(r.lag_seconds);
        }
        self.groups.groups.reset();
        self.groups.members.reset();
        for g in broker.groups().list() {
            self.groups.groups.with_label_values(&[g.group_type, g.state]).inc();
            self.groups
                .members
                .with_label_values(&[g.group_id.as_str()])
                .set(g.members as i64);
        }
        self.share.refresh(broker);
        self.dedup.refresh(broker);
        self.cleaner.refresh(broker);
        self.transactions.refresh(broker);
    }

    /// Publishes a lag evaluation: per partition up to
    /// [`LAG_PARTITION_SERIES_MAX`] series, per group and topic always.
    pub fn publish_lag(&self, partitions: &[PartitionLag], topics: &[TopicLag]) {
        self.groups.lag_evaluations.inc();
        self.groups.lag_records.reset();
        self.groups.lag_seconds.reset();
        for p in partitions.iter().take(LAG_PARTITION_SERIES_MAX) {
            let partition = p.partition.to_string();
            let labels = [p.group.as_str(), p.topic.as_str(), partition.as_str()];
            self.groups.lag_records.with_label_values(&labels).set(p.lag_records);
            self.groups
                .lag_seconds
                .with_label_values(&labels)
                .set(p.lag_ms as f64 / 1000.0);
        }
        self.groups
            .lag_series_dropped
            .set(partitions.len().saturating_sub(LAG_PARTITION_SERIES_MAX) as i64);
        self.groups.topic_lag_records.reset();
        self.groups.topic_lag_seconds.reset();
        for t in topics {
            let labels = [t.group.as_str(), t.topic.as_str()];
            self.groups
                .topic_lag_records
                .with_label_values(&labels)
                .set(t.lag_records);
            self.groups
                .topic_lag_seconds
                .with_label_values(&labels)
                .set(t.lag_ms as f64 / 1000.0);
        }
    }

    /// Publishes the alerts' states.
    pub fn publish_alerts(&self, statuses: &[AlertStatus]) {
        for s in statuses {
            let firing = matches!(s.state, crate::alerts::AlertState::Firing { .. });
            self.groups
                .alert_firing
                .with_label_values(&[s.rule.name.as_str(), s.rule.group.as_str(), s.rule.topic.as_str()])
                .set(i64::from(firing));
        }
    }

    /// Counts an alert transition.
    pub fn alert_transition(&self, alert: &str, to: &str) {
        self.groups.alert_transitions.with_label_values(&[alert, to]).inc();
    }

    /// The observer that feeds the fsync histograms.
    pub fn fsync_observer(&self) -> Arc<dyn FsyncObserver> {
        Arc::new(FsyncMetrics {
            seconds: self.log.fsync_seconds.clone(),
            batches: self.log.fsync_batches.clone(),
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
        m.log.bytes.with_label_values(&["t"]).set(10);
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
