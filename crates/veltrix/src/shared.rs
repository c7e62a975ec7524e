//! `[storage] mode = "shared"`: the broker's node on shared storage
//! (docs/scale-out.md) started from the configuration, its background work
//! (the topics kept in step with the metadata store, orphans collected), and
//! its stop.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use veltrix_config::SharedStorage as StorageConfig;
use veltrix_core::Broker;
use veltrix_shared::{
    CollectorConfig, ListenerAddr, MergeConfig, Merger, NodeConfig, OrphanCollector, PgCatalog, ReaderConfig, S3Config,
    Shared, SharedNode, SharedStats, WriterConfig,
};

/// The file in the data directory that keeps this broker's incarnation: its
/// restarts take over its own lease at once.
const INCARNATION_FILE: &str = "shared-incarnation";
/// How often the topics are read from the metadata store.
const TOPIC_SYNC_MS: u64 = 1_000;
/// How often the bucket is searched for objects never committed.
const ORPHAN_ROUND_MS: u64 = 300_000;
/// How often each broker applies the topics' time retention to the
/// partitions it leads (Kafka's `log.retention.check.interval.ms` is 5 min).
const RETENTION_ROUND_MS: u64 = 60_000;
/// How often the broker placed on [`HOUSEKEEPER`] merges small objects at
/// most seldom (half of `merge_age_ms_min` when that is shorter).
const MERGE_ROUND_MS_MAX: u64 = 30_000;
/// The name placed on one live broker like a group's (`coordinator_of`):
/// that broker merges. When the live set changes two may for a round,
/// which is harmless (a batch already moved is not moved again).
const HOUSEKEEPER: &str = "veltrix.housekeeping";
/// How often the high watermarks of long-polled partitions are read.
const WATCH_POLL_MS: u64 = 20;

/// A running node and its background tasks.
pub struct Running {
    pub node: Arc<SharedNode<PgCatalog>>,
    pub storage: veltrix_kafka::shared::SharedStorage,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn incarnation(data_dir: &Path) -> anyhow::Result<i64> {
    let path = data_dir.join(INCARNATION_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(n) = text.trim().parse::<i64>()
    {
        return Ok(n);
    }
    let n = rand::random::<i64>() & i64::MAX;
    let tmp = data_dir.join(format!("{INCARNATION_FILE}.tmp"));
    std::fs::write(&tmp, format!("{n}\n")).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

fn node_config(
    s: &StorageConfig,
    incarnation: i64,
    advertised: SocketAddr,
    listeners: Vec<ListenerAddr>,
) -> NodeConfig {
    let writer = WriterConfig {
        flush_interval_ms: s.flush_interval_ms,
        flush_bytes_max: s.flush_bytes_max,
        batch_bytes_max: s.flush_bytes_max.min(WriterConfig::default().batch_bytes_max),
        buffered_bytes_max: s.buffered_bytes_max,
        put_timeout_ms: s.put_timeout_ms,
        commit_timeout_ms: s.commit_timeout_ms,
        key_prefix: s.key_prefix.clone(),
        writer_id: format!("broker-{}", s.broker_id),
        ..WriterConfig::default()
    };
    let reader = ReaderConfig {
        cache_bytes_max: s.cache_bytes_max,
        get_timeout_ms: s.get_timeout_ms,
        ..ReaderConfig::default()
    };
    NodeConfig {
        broker_id: s.broker_id,
        incarnation,
        host: advertised.ip().to_string(),
        port: i32::from(advertised.port()),
        listeners,
        lease_ms: s.lease_ms,
        watch_poll_ms: WATCH_POLL_MS,
        writer,
        reader,
    }
}

/// The bucket's settings for serving: the probe's, with the client's
/// default timeouts and retries.
fn s3_config(s: &StorageConfig) -> S3Config {
    let defaults = S3Config::default();
    S3Config {
        connect_timeout_ms: defaults.connect_timeout_ms,
        request_timeout_ms: defaults.request_timeout_ms,
        retries_max: defaults.retries_max,
        ..crate::cli::check_online::s3_config(s)
    }
}

/// Connects to PostgreSQL (creating or migrating the schema) and the bucket,
/// registers the broker, reads the topics, and starts the background work.
pub async fn start(
    s: &StorageConfig,
    data_dir: &Path,
    advertised: SocketAddr,
    listeners: Vec<ListenerAddr>,
    broker: &Arc<Broker>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    // A data directory that served local storage holds records only it
    // has; on shared storage its topics would be replaced by the catalog's.
    let local_topics = broker.topics().len();
    if local_topics > 0 && !data_dir.join(INCARNATION_FILE).exists() {
        anyhow::bail!(
            "{} holds {local_topics} topic(s) of local storage; shared storage keeps only a copy of the catalog's \
             topics there and would drop them: give [broker] data_dir an empty directory for shared mode",
            data_dir.display()
        );
    }
    let pg = crate::cli::check_online::pg_config(s);
    let catalog = Arc::new(
        PgCatalog::open(&pg)
            .await
            .with_context(|| format!("opening the catalog at {}", s.postgres_url_redacted()))?,
    );
    let store = s3_config(s).build().context("the bucket's settings")?;
    let config = node_config(s, incarnation(data_dir)?, advertised, listeners);
    let node = SharedNode::start(config, catalog.clone(), store.clone())
        .await
        .context("registering the broker in the catalog")?;
    let storage = veltrix_kafka::shared::SharedStorage::new(node.clone());
    storage.attach(broker);
    storage
        .sync(broker)
        .await
        .context("reading the topics from the catalog")?;
    let metrics = SharedMetrics::new(broker.metrics().registry());
    let producer_idle_ms = broker.config().log.producer_id_expiration_ms;
    let mut tasks = housekeeping((s, producer_idle_ms), (catalog, store), &node, &metrics, &stop)?;
    tasks.extend([
        tokio::spawn(sync_topics(storage.clone(), broker.clone(), stop.clone())),
        tokio::spawn(enforce_retention(storage.clone(), broker.clone(), stop.clone())),
        tokio::spawn(export_metrics(node.clone(), metrics, stop)),
    ]);
    tracing::info!(broker_id = s.broker_id, bucket = %s.bucket, "serving from shared storage");
    Ok(Running { node, storage, tasks })
}

/// The collector of orphans, released objects, idle producers' states and
/// old orphan claims (on every broker), and the merger of small objects (on
/// the one [`HOUSEKEEPER`] places).
fn housekeeping(
    (s, producer_idle_ms): (&StorageConfig, u64),
    (catalog, store): (Arc<PgCatalog>, Arc<dyn veltrix_shared::ObjectStore>),
    node: &Arc<SharedNode<PgCatalog>>,
    metrics: &SharedMetrics,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let collector = OrphanCollector::new(
        CollectorConfig {
            grace_ms: s.orphan_grace_ms,
            key_prefix: s.key_prefix.clone(),
            producer_idle_ms,
            ..CollectorConfig::default()
        },
        catalog.clone(),
        store.clone(),
    )?;
    let merger = Merger::new(
        MergeConfig {
            small_bytes_max: s.merge_small_bytes_max as u64,
            merged_bytes_max: s.merged_bytes_max as u64,
            age_min_ms: s.merge_age_ms_min,
            key_prefix: s.key_prefix.clone(),
            writer_id: format!("merge-{}", s.broker_id),
            ..MergeConfig::default()
        },
        catalog,
        store,
    )?;
    Ok(vec![
        tokio::spawn(collect_orphans(collector, metrics.collected(), stop.clone())),
        tokio::spawn(merge_small_objects(
            node.clone(),
            (merger, (s.merge_age_ms_min / 2).clamp(1_000, MERGE_ROUND_MS_MAX)),
            metrics.objects_merged.clone(),
            stop.clone(),
        )),
    ])
}

/// The node, when `[storage]` says shared: started (registered with the
/// Kafka listeners' advertised addresses), and the declared topics (when a
/// file was given) created in the catalog.
pub async fn start_if_shared(
    config: &veltrix_config::VeltrixConfig,
    declared: bool,
    (listeners, advertised): (&[veltrix_kafka::KafkaListener], SocketAddr),
    broker: &Arc<Broker>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Option<Running>> {
    let Some(storage) = &config.storage else {
        return Ok(None);
    };
    let listeners = listeners
        .iter()
        .map(|l| ListenerAddr {
            name: l.spec.name.clone(),
            host: l.spec.advertised_host.clone(),
            port: i32::from(l.spec.advertised_port),
        })
        .collect();
    let mut running = start(storage, &config.data_dir, advertised, listeners, broker, stop.clone()).await?;
    running.tasks.push(tokio::spawn(measure_lag(
        running.storage.clone(),
        broker.clone(),
        config.observability.lag_evaluation_interval_ms,
        stop.clone(),
    )));
    if declared {
        apply_declared(&running, broker, config).await;
    }
    Ok(Some(running))
}

/// Declared topics missing from the metadata store are created there.
pub async fn apply_declared(running: &Running, broker: &Arc<Broker>, config: &veltrix_config::VeltrixConfig) {
    for t in &config.topics {
        if broker.topic(&t.name).is_some() {
            continue;
        }
        let (storage, b, t) = (running.storage.clone(), broker.clone(), t.clone());
        let created = tokio::task::spawn_blocking(move || {
            storage.create_topic_blocking(&b, &t.name, Some(t.partitions), t.config)
        })
        .await;
        match created {
            Ok(Ok(topic)) => tracing::info!(topic = %topic.name, "created declared topic in the catalog"),
            Ok(Err(e)) => tracing::warn!(error = %e, "creating a declared topic in the catalog failed"),
            Err(e) => tracing::warn!(error = %e, "creating a declared topic in the catalog failed"),
        }
    }
}

async fn sync_topics(
    storage: veltrix_kafka::shared::SharedStorage,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_millis(TOPIC_SYNC_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = storage.sync(&broker).await {
                    tracing::debug!(error = %e, "reading the topics from the catalog failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn enforce_retention(
    storage: veltrix_kafka::shared::SharedStorage,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_millis(RETENTION_ROUND_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let removed = storage.enforce_retention(&broker, now_ms).await;
                if removed > 0 {
                    tracing::info!(batches = removed, "retention removed batches");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// The lag of the groups this broker coordinates and the share-partitions
/// it serves, measured from the catalog as often as the monitor evaluates
/// it (`[observability] lag_evaluation_interval_ms`).
async fn measure_lag(
    storage: veltrix_kafka::shared::SharedStorage,
    broker: Arc<Broker>,
    interval_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_millis(interval_ms.max(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = storage.measure_lag(&broker).await {
                    tracing::warn!(error = %e, "measuring the groups' lag failed; next round");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn merge_small_objects(
    node: Arc<SharedNode<PgCatalog>>,
    (merger, round_ms): (Merger<PgCatalog>, u64),
    merged: prometheus::IntCounter,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_millis(round_ms));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if !node.coordinates(HOUSEKEEPER) {
                    continue;
                }
                match merger.run_once().await {
                    Ok(report) => {
                        merged.inc_by(report.objects_merged as u64);
                        if report.objects_merged > 0 {
                            tracing::debug!(?report, "small objects merged");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "a merge round failed; next round"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn collect_orphans(
    collector: OrphanCollector<PgCatalog>,
    [deleted, producers_expired, claims_pruned]: [prometheus::IntCounter; 3],
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_millis(ORPHAN_ROUND_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => match collector.run_once().await {
                Ok(report) => {
                    deleted.inc_by(report.deleted as u64);
                    producers_expired.inc_by(report.producers_expired);
                    claims_pruned.inc_by(report.claims_pruned);
                    tracing::debug!(?report, "orphan collection round");
                }
                Err(e) => tracing::warn!(error = %e, "an orphan collection round failed"),
            },
            _ = stop.changed() => return,
        }
    }
}

/// The node's counters as Prometheus metrics (docs/observability.md).
struct SharedMetrics {
    objects: prometheus::IntCounter,
    bytes: prometheus::IntCounter,
    batches: prometheus::IntCounter,
    flushes_failed: prometheus::IntCounter,
    reads_failed: prometheus::IntCounter,
    renewals_failed: prometheus::IntCounter,
    leases_lost: prometheus::IntCounter,
    cache_bytes: prometheus::IntGauge,
    live_brokers: prometheus::IntGauge,
    batches_trimmed: prometheus::IntCounter,
    objects_deleted: prometheus::IntCounter,
    objects_merged: prometheus::IntCounter,
    producers_expired: prometheus::IntCounter,
    orphan_claims_pruned: prometheus::IntCounter,
    gets: prometheus::IntCounter,
    bytes_read: prometheus::IntCounter,
    flush_seconds: prometheus::Counter,
}

impl SharedMetrics {
    fn new(registry: &prometheus::Registry) -> SharedMetrics {
        let r = veltrix_core::metrics::Registrar::new(registry);
        SharedMetrics {
            objects: r.int_counter("veltrix_shared_objects_written_total", "objects written to the bucket"),
            bytes: r.int_counter("veltrix_shared_bytes_written_total", "bytes written to the bucket"),
            batches: r.int_counter(
                "veltrix_shared_batches_committed_total",
                "batches committed in the catalog",
            ),
            flushes_failed: r.int_counter(
                "veltrix_shared_flushes_failed_total",
                "flushes whose PUT or commit failed: nothing of them acknowledged",
            ),
            reads_failed: r.int_counter(
                "veltrix_shared_reads_failed_total",
                "fetches from shared storage that failed (bucket or catalog unreachable, object missing or damaged)",
            ),
            renewals_failed: r.int_counter(
                "veltrix_shared_lease_renewals_failed_total",
                "lease renewals that did not reach the catalog",
            ),
            leases_lost: r.int_counter("veltrix_shared_leases_lost_total", "times this broker's lease expired"),
            cache_bytes: r.int_gauge("veltrix_shared_cache_bytes", "bytes in the read cache"),
            live_brokers: r.int_gauge("veltrix_shared_live_brokers", "brokers with a live lease, as last read"),
            batches_trimmed: r.int_counter(
                "veltrix_shared_batches_trimmed_total",
                "batches this broker's retention removed from the catalog",
            ),
            objects_merged: r.int_counter(
                "veltrix_shared_objects_merged_total",
                "small objects this broker rewrote into larger ones",
            ),
            objects_deleted: r.int_counter(
                "veltrix_shared_objects_deleted_total",
                "objects this broker's collector deleted: orphans, and objects no batch refers to any more",
            ),
            gets: r.int_counter(
                "veltrix_shared_gets_total",
                "GET requests this broker's reads sent to the bucket (reads from the cache send none)",
            ),
            bytes_read: r.int_counter(
                "veltrix_shared_bytes_read_total",
                "bytes this broker's reads got from the bucket",
            ),
            flush_seconds: r
                .counter_vec(
                    "veltrix_shared_flush_seconds_total",
                    "time from each flush's first batch's arrival to its commit, summed over this broker's flushes (over veltrix_shared_objects_written_total: the mean a batch waits at most)",
                    &[],
                )
                .with_label_values(&[] as &[&str]),
            producers_expired: r.int_counter(
                "veltrix_shared_producers_expired_total",
                "idempotent producers' states (one per producer and partition) this broker's collector forgot after producer_id_expiration_ms idle",
            ),
            orphan_claims_pruned: r.int_counter(
                "veltrix_shared_orphan_claims_pruned_total",
                "orphans' claims this broker's collector pruned from the catalog a day after they were made",
            ),
        }
    }

    /// The collector's counters: objects deleted, producers expired, orphan
    /// claims pruned.
    fn collected(&self) -> [prometheus::IntCounter; 3] {
        [
            self.objects_deleted.clone(),
            self.producers_expired.clone(),
            self.orphan_claims_pruned.clone(),
        ]
    }

    fn update(&self, now: SharedStats, before: SharedStats) {
        let add = |c: &prometheus::IntCounter, now: u64, before: u64| c.inc_by(now.saturating_sub(before));
        add(&self.objects, now.objects_written, before.objects_written);
        add(&self.bytes, now.bytes_written, before.bytes_written);
        add(&self.batches, now.batches_committed, before.batches_committed);
        add(&self.flushes_failed, now.flushes_failed, before.flushes_failed);
        add(&self.reads_failed, now.reads_failed, before.reads_failed);
        add(
            &self.renewals_failed,
            now.lease_renewals_failed,
            before.lease_renewals_failed,
        );
        add(&self.leases_lost, now.leases_lost, before.leases_lost);
        add(&self.batches_trimmed, now.batches_trimmed, before.batches_trimmed);
        add(&self.gets, now.gets, before.gets);
        add(&self.bytes_read, now.bytes_read, before.bytes_read);
        let flush_micros = now.flush_micros_total.saturating_sub(before.flush_micros_total);
        self.flush_seconds.inc_by(flush_micros as f64 / 1e6);
        self.cache_bytes.set(i64::try_from(now.cache_bytes).unwrap_or(i64::MAX));
        self.live_brokers
            .set(i64::try_from(now.live_brokers).unwrap_or(i64::MAX));
    }
}

/// Copies the node's counters into the metrics every second.
async fn export_metrics(node: Arc<SharedNode<PgCatalog>>, metrics: SharedMetrics, mut stop: watch::Receiver<bool>) {
    let mut before = SharedStats::default();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {
                let now = Shared::stats(&*node);
                metrics.update(now, before);
                before = now;
            }
            _ = stop.changed() => return,
        }
    }
}

impl Running {
    /// Flushes what the writer holds, resigns the lease and stops.
    pub async fn stop(self) {
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        drop(self.storage);
        self.node.close().await;
    }
}
