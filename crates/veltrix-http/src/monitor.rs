//! The monitor: every evaluation interval it computes every group's lag,
//! publishes it as metrics, evaluates the declared alerts, and reports their
//! transitions to the log, to `/alerts`, to a metric and to the webhook.
//!
//! The webhook never holds anything up: transitions go through a bounded queue
//! to one sender task; when the queue is full the oldest unsent notification is
//! dropped (and counted), and each POST has a timeout and a bounded number of
//! retries with exponential backoff.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntCounterVec;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use veltrix_core::Broker;
use veltrix_core::alerts::{AlertEvent, AlertRule, AlertStatus, Alerts};
use veltrix_core::lag::{self, LagCache, PartitionLag, TopicLag};

/// Where and how alert notifications are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL that receives a POST of JSON per transition.
    pub url: String,
    /// Upper bound on one POST, connection included.
    pub timeout_ms: u64,
    /// Retries after a failed POST (so at most `retries_max + 1` attempts).
    pub retries_max: u32,
    /// Wait before the first retry; doubles for each further one.
    pub retry_backoff_ms: u64,
    /// Notifications waiting to be sent; past it the oldest is dropped.
    pub queue_max: usize,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            timeout_ms: 5_000,
            retries_max: 3,
            retry_backoff_ms: 500,
            queue_max: 1_000,
        }
    }
}

/// What the monitor does and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// How often lag is computed and alerts evaluated.
    pub evaluation_interval_ms: u64,
    pub alerts: Vec<AlertRule>,
    pub webhook: Option<WebhookConfig>,
    /// Transitions kept for `/alerts`.
    pub history_max: usize,
    /// Evaluations of each group's lag kept for its chart
    /// (`/api/v1/groups/{id}/lag-history`): at the default interval of 5 s,
    /// 720 points are the last hour. Groups that are gone are forgotten, so
    /// the whole is bounded by the broker's groups.
    pub lag_history_points_max: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            evaluation_interval_ms: 5_000,
            alerts: Vec::new(),
            webhook: None,
            history_max: 100,
            lag_history_points_max: 720,
        }
    }
}

/// The last evaluation, as the HTTP API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// When it was computed (milliseconds since the epoch); 0 before the first.
    pub at_ms: i64,
    pub partitions: Vec<PartitionLag>,
    pub topics: Vec<TopicLag>,
}

/// Each group's total lag over its last evaluations.
#[derive(Debug, Default)]
struct LagHistory(std::collections::HashMap<String, VecDeque<(i64, i64)>>);

impl LagHistory {
    fn get(&self, group: &str) -> Option<&VecDeque<(i64, i64)>> {
        self.0.get(group)
    }

    /// Adds one point per group of `topics` (their lags summed); forgets
    /// groups no longer there; keeps `points_max` points per group.
    fn record(&mut self, at_ms: i64, topics: &[TopicLag], points_max: usize) {
        let mut totals: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for t in topics {
            *totals.entry(t.group.as_str()).or_default() += t.lag_records;
        }
        self.0.retain(|group, _| totals.contains_key(group.as_str()));
        for (group, lag) in totals {
            let points = self.0.entry(group.to_owned()).or_default();
            points.push_back((at_ms, lag));
            while points.len() > points_max.max(1) {
                points.pop_front();
            }
        }
    }
}

/// Lag, alerts and their notifications.
pub struct Monitor {
    broker: Arc<Broker>,
    config: MonitorConfig,
    alerts: Mutex<Alerts>,
    cache: Mutex<LagCache>,
    snapshot: Mutex<Arc<Snapshot>>,
    history: Mutex<VecDeque<AlertEvent>>,
    lag_history: Mutex<LagHistory>,
    outbox: Mutex<VecDeque<AlertEvent>>,
    outbox_ready: Notify,
    webhook_outcomes: IntCounterVec,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").field("config", &self.config).finish()
    }
}

impl Monitor {
    pub fn new(broker: Arc<Broker>, config: MonitorConfig) -> Arc<Monitor> {
        let webhook_outcomes = veltrix_core::metrics::register(
            broker.metrics().registry(),
            IntCounterVec::new(
                prometheus::Opts::new(
                    "veltrix_alert_webhook_notifications_total",
                    "Alert notifications by outcome: sent, failed (retries exhausted) or dropped (queue full).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
        );
        for outcome in ["sent", "failed", "dropped"] {
            webhook_outcomes.with_label_values(&[outcome]);
        }
        let alerts = Alerts::new(config.alerts.clone());
        broker.metrics().publish_alerts(alerts.statuses());
        Arc::new(Monitor {
            broker,
            alerts: Mutex::new(alerts),
            cache: Mutex::new(LagCache::default()),
            snapshot: Mutex::new(Arc::new(Snapshot::default())),
            history: Mutex::new(VecDeque::new()),
            lag_history: Mutex::new(LagHistory::default()),
            outbox: Mutex::new(VecDeque::new()),
            outbox_ready: Notify::new(),
            webhook_outcomes,
            config,
        })
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// The last lag evaluation.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        lock(&self.snapshot).clone()
    }

    /// Every alert's state.
    pub fn alerts(&self) -> Vec<AlertStatus> {
        lock(&self.alerts).statuses().to_vec()
    }

    /// `group`'s total lag (records) at each of the last evaluations, oldest
    /// first: `(at_ms, lag_records)`. `None` for a group none saw.
    pub fn lag_history(&self, group: &str) -> Option<Vec<(i64, i64)>> {
        lock(&self.lag_history)
            .get(group)
            .map(|points| points.iter().copied().collect())
    }

    /// The latest transitions, oldest first.
    pub fn history(&self) -> Vec<AlertEvent> {
        lock(&self.history).iter().cloned().collect()
    }

    /// One evaluation: lag, metrics, alerts, notifications. Reads the disk (a
    /// batch header per partition whose committed offset moved); run it off the
    /// async threads.
    pub fn evaluate(&self) {
        let partitions = self.broker.lag(&mut lock(&self.cache));
        let topics = lag::by_topic(&partitions);
        let now = self.broker.env().clock.now_ms();
        let metrics = self.broker.metrics();
        metrics.publish_lag(&partitions, &topics);
        let events = {
            let mut alerts = lock(&self.alerts);
            let events = alerts.evaluate_all(&topics, &dead_letter_counts(&self.broker), now);
            metrics.publish_alerts(alerts.statuses());
            events
        };
        lock(&self.lag_history).record(now, &topics, self.config.lag_history_points_max);
        *lock(&self.snapshot) = Arc::new(Snapshot {
            at_ms: now,
            partitions,
            topics,
        });
        for e in events {
            match e.status {
                "firing" => tracing::warn!(
                    alert = %e.alert, group = %e.group, topic = %e.topic, value = e.value,
                    threshold = ?e.threshold, "alert firing"
                ),
                _ => tracing::info!(
                    alert = %e.alert, group = %e.group, topic = %e.topic, value = e.value, "alert resolved"
                ),
            }
            metrics.alert_transition(&e.alert, e.status);
            {
                let mut history = lock(&self.history);
                if history.len() >= self.config.history_max.max(1) {
                    history.pop_front();
                }
                history.push_back(e.clone());
            }
            if let Some(webhook) = &self.config.webhook {
                let mut outbox = lock(&self.outbox);
                if outbox.len() >= webhook.queue_max.max(1) {
                    outbox.pop_front();
                    self.webhook_outcomes.with_label_values(&["dropped"]).inc();
                    tracing::warn!("alert webhook queue full: the oldest notification was dropped");
                }
                outbox.push_back(e);
                self.outbox_ready.notify_one();
            }
        }
    }

    /// Evaluates every interval until `shutdown`; sends notifications
    /// meanwhile.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let sender = self.config.webhook.clone().map(|webhook| {
            let me = self.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move { me.send_notifications(webhook, stop).await })
        });
        let mut every = tokio::time::interval(Duration::from_millis(self.config.evaluation_interval_ms.max(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.evaluate()).await;
                }
                _ = shutdown.changed() => break,
            }
        }
        if let Some(sender) = sender {
            let _ = sender.await;
        }
    }

    async fn send_notifications(&self, webhook: WebhookConfig, mut shutdown: watch::Receiver<bool>) {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_millis(webhook.timeout_ms))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "the alert webhook client cannot be built; notifications are off");
                return;
            }
        };
        loop {
            let next = lock(&self.outbox).pop_front();
            let Some(event) = next else {
                tokio::select! {
                    _ = self.outbox_ready.notified() => continue,
                    _ = shutdown.changed() => return,
                }
            };
            let mut backoff = Duration::from_millis(webhook.retry_backoff_ms);
            let mut attempt = 0;
            let sent = loop {
                match client.post(&webhook.url).json(&event).send().await {
                    Ok(r) if r.status().is_success() => break true,
                    Ok(r) => {
                        tracing::warn!(status = %r.status(), attempt, alert = %event.alert, "alert webhook refused")
                    }
                    Err(e) => tracing::warn!(error = %e, attempt, alert = %event.alert, "alert webhook failed"),
                }
                if attempt >= webhook.retries_max {
                    break false;
                }
                attempt += 1;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = backoff.saturating_mul(2);
            };
            let outcome = if sent { "sent" } else { "failed" };
            if !sent {
                tracing::error!(alert = %event.alert, status = event.status, "alert notification given up after retries");
            }
            self.webhook_outcomes.with_label_values(&[outcome]).inc();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Dead letters written per share group and topic since the broker started.
fn dead_letter_counts(broker: &veltrix_core::Broker) -> Vec<veltrix_core::alerts::DeadLetterCount> {
    let names: std::collections::HashMap<veltrix_core::TopicId, String> =
        broker.topics().iter().map(|t| (t.id, t.name.clone())).collect();
    let mut totals: std::collections::BTreeMap<(String, String), u64> = std::collections::BTreeMap::new();
    for s in broker.share().stats() {
        if let Some(topic) = names.get(&s.key.topic) {
            *totals.entry((s.key.group, topic.clone())).or_default() += s.outcomes.dead_letters;
        }
    }
    totals
        .into_iter()
        .map(|((group, topic), total)| veltrix_core::alerts::DeadLetterCount { group, topic, total })
        .collect()
}
