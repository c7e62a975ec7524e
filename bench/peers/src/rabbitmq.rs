//! `bench-peers rabbitmq produce|consume`: a durable RabbitMQ queue filled
//! with persistent messages under publisher confirms, then drained by
//! consumers with manual acknowledgements, through `lapin` (AMQP 0-9-1).
//!
//! - `produce`: `--producers` connections, each a channel in confirm mode
//!   publishing persistent messages (delivery mode 2) to the queue through the
//!   default exchange, with at most `--window` publishes awaiting their
//!   confirm. Stops after `--records` confirmed messages in all.
//! - `consume`: `--consumers` connections, each one channel with a prefetch
//!   (`basic.qos`) and one consumer in manual-acknowledgement mode, acking
//!   with `multiple` set once every `--ack-batch` deliveries. Counts the
//!   deliveries acknowledged during the measured window, which ends after
//!   `--duration-s` or once `--records` messages have been acknowledged in
//!   all, whichever comes first. Then, with every consumer closed, asks the
//!   queue how many messages it still holds, so the report shows that the
//!   acknowledgements took effect.
//!
//! AMQP 0-9-1 answers no `basic.ack` of a consumer: an acknowledgement counts
//! once it is written to the connection. What the broker does with it (and
//! whether it is on disk) depends on the queue type: see bench/README.md.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::json;

use crate::{Outcome, histogram, record, summary};

/// The most messages a produce run publishes.
const RECORDS_MAX: u64 = 100_000_000;
/// The most connections a run opens.
const CONNECTIONS_MAX: usize = 256;
/// The most publishes awaiting their confirm per connection.
const WINDOW_MAX: usize = 100_000;
/// A consumer that receives nothing for this long stops: the queue is empty
/// or the broker stalled, and either way the run is over.
const IDLE_MS_MAX: u64 = 5_000;
/// How long a consumer holding unacknowledged deliveries waits for more
/// before it acknowledges what it has.
const ACK_PAUSE_MS: u64 = 2;
/// AMQP persistent delivery mode: the message is written to disk.
const DELIVERY_MODE_PERSISTENT: u8 = 2;

#[derive(clap::Subcommand)]
pub enum Op {
    /// Publish persistent messages to a durable queue, with publisher confirms.
    Produce(ProduceArgs),
    /// Consume the queue with manual acknowledgements.
    Consume(ConsumeArgs),
}

/// What both sides name: the broker and the queue.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// amqp://HOST:PORT/%2f
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "bench")]
    queue: String,
    /// `quorum` (Raft log, fsync'd before a publish is confirmed) or
    /// `classic` (message store fsync'd in batches before the confirm).
    #[arg(long, default_value = "quorum", value_parser = ["quorum", "classic"])]
    queue_type: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    target: Target,
    /// Messages to publish and have confirmed, in all.
    #[arg(long)]
    records: u64,
    /// Bytes of each message body.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Connections publishing at once.
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Publishes awaiting their confirm per connection.
    #[arg(long, default_value_t = 256)]
    window: usize,
}

#[derive(clap::Args, Clone)]
pub struct ConsumeArgs {
    #[command(flatten)]
    target: Target,
    /// Messages in the queue at the start: the run stops once all of them
    /// are acknowledged.
    #[arg(long)]
    records: u64,
    /// Consumers, each on its own connection and channel.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Unacknowledged deliveries per channel (`basic.qos`).
    #[arg(long, default_value_t = 256)]
    prefetch: u16,
    /// Deliveries per acknowledgement (`basic.ack` with `multiple`).
    #[arg(long, default_value_t = 64)]
    ack_batch: u16,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
}

pub async fn run(op: &Op) -> anyhow::Result<()> {
    match op {
        Op::Produce(a) => produce(a).await,
        Op::Consume(a) => consume(a).await,
    }
}

async fn connect(url: &str) -> anyhow::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Declares the queue (durable, of the chosen type); returns how many ready
/// messages it holds.
async fn declare(channel: &Channel, target: &Target) -> anyhow::Result<u32> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(target.queue_type.as_str().into()),
    );
    let queue = channel
        .queue_declare(
            target.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .with_context(|| format!("declaring the {} queue `{}`", target.queue_type, target.queue))?;
    Ok(queue.message_count())
}

async fn produce(a: &ProduceArgs) -> anyhow::Result<()> {
    if !(1..=RECORDS_MAX).contains(&a.records) {
        bail!("--records must be 1 to {RECORDS_MAX}");
    }
    if !(1..=CONNECTIONS_MAX).contains(&a.producers) || !(1..=WINDOW_MAX).contains(&a.window) {
        bail!("--producers must be 1 to {CONNECTIONS_MAX} and --window 1 to {WINDOW_MAX}");
    }
    let mut channels = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..a.producers {
        let connection = connect(&a.target.url).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channels.push(channel);
        connections.push(connection);
    }
    declare(&channels[0], &a.target).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, channel) in channels.into_iter().enumerate() {
        // The remainder goes to the first producers, one each.
        let share = a.records / a.producers as u64 + u64::from((i as u64) < a.records % a.producers as u64);
        let (queue, bytes, window) = (a.target.queue.clone(), a.record_bytes, a.window);
        tasks.push(tokio::spawn(publish(channel, queue, bytes, window, share)));
    }
    let mut total = Outcome::default();
    let mut h = histogram();
    for t in tasks {
        let o = t.await?;
        total.merge(o, &mut h);
    }
    let elapsed = started.elapsed().as_secs_f64();
    for c in connections {
        let _ = c.close(200, "done".into()).await;
    }
    let bytes = total.records * a.record_bytes as u64;
    let v = json!({
        "tool": "bench-peers",
        "system": format!("rabbitmq-{}", a.target.queue_type),
        "workload": "produce",
        "target": a.target.url,
        "queue": a.target.queue,
        "record_bytes": a.record_bytes,
        "producers": a.producers,
        "window": a.window,
        "rate": 0,
        "duration_s": elapsed,
        "records": total.records,
        "bytes": bytes,
        "records_per_s": total.records as f64 / elapsed,
        "mb_per_s": bytes as f64 / elapsed / 1e6,
        "produce_latency_us": summary(&h),
        "e2e_latency_us": null,
        "errors": total.errors,
        "first_error": total.first_error,
    });
    report(&v, a.target.json);
    if total.errors > 0 || total.records != a.records {
        bail!(
            "{} of {} messages confirmed, {} errors; the first: {}",
            total.records,
            a.records,
            total.errors,
            total.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// Publishes `count` messages on one channel with at most `window` awaiting
/// their confirm.
async fn publish(channel: Channel, queue: String, record_bytes: usize, window: usize, count: u64) -> Outcome {
    let body = vec![0x5a_u8; record_bytes];
    let properties = BasicProperties::default().with_delivery_mode(DELIVERY_MODE_PERSISTENT);
    let mut out = Outcome::default();
    let mut h = histogram();
    let mut pending: VecDeque<(Instant, lapin::PublisherConfirm)> = VecDeque::new();
    let mut sent = 0u64;
    while sent < count || !pending.is_empty() {
        if pending.len() >= window || sent == count {
            let Some((at, confirm)) = pending.pop_front() else {
                break;
            };
            match confirm.await {
                Ok(c) if c.is_ack() => {
                    out.records += 1;
                    record(&mut h, at, 1);
                }
                Ok(_) => {
                    out.errors += 1;
                    out.first_error
                        .get_or_insert_with(|| "the broker nacked a publish".to_owned());
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert_with(|| e.to_string());
                }
            }
            continue;
        }
        let at = Instant::now();
        match channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await
        {
            Ok(confirm) => pending.push_back((at, confirm)),
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
                break;
            }
        }
        sent += 1;
    }
    out.latency = Some(h);
    out
}

/// What all consumers share while they run.
struct Shared {
    /// Deliveries acknowledged since the start, warm-up included.
    acked: AtomicU64,
    /// Microseconds from the start to when the last expected message was
    /// acknowledged; 0 until then.
    drained_us: AtomicU64,
    records: u64,
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Shared {
    fn done(&self) -> bool {
        Instant::now() >= self.end || self.drained_us.load(Ordering::Relaxed) > 0
    }

    /// Counts `n` acknowledged deliveries; notes when the last one was.
    fn acked(&self, n: u64) {
        let before = self.acked.fetch_add(n, Ordering::Relaxed);
        if before < self.records && before + n >= self.records {
            let us = self.start.elapsed().as_micros().max(1) as u64;
            self.drained_us.store(us, Ordering::Relaxed);
        }
    }
}

/// One consumer's counts.
#[derive(Default)]
struct Consumed {
    /// Deliveries acknowledged inside the measured window.
    measured: u64,
    body_bytes: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn consume(a: &ConsumeArgs) -> anyhow::Result<()> {
    if !(1..=CONNECTIONS_MAX).contains(&a.consumers) || a.prefetch == 0 || a.ack_batch == 0 {
        bail!("--consumers must be 1 to {CONNECTIONS_MAX}, --prefetch and --ack-batch above 0");
    }
    if a.ack_batch > a.prefetch {
        bail!(
            "--ack-batch {} exceeds --prefetch {}: the broker would stop delivering",
            a.ack_batch,
            a.prefetch
        );
    }
    if !(a.duration_s > 0.0 && a.duration_s <= 86_400.0 && (0.0..=86_400.0).contains(&a.warmup_s)) {
        bail!("--duration-s must be above 0 and both durations at most 86400");
    }
    let admin = connect(&a.target.url).await?;
    let admin_channel = admin.create_channel().await?;
    let ready = declare(&admin_channel, &a.target).await?;
    if u64::from(ready) < a.records {
        bail!("the queue holds {ready} messages, fewer than --records {}", a.records);
    }
    let mut consumers = Vec::new();
    for i in 0..a.consumers {
        let connection = connect(&a.target.url).await?;
        let channel = connection.create_channel().await?;
        channel.basic_qos(a.prefetch, BasicQosOptions::default()).await?;
        let consumer = channel
            .basic_consume(
                a.target.queue.as_str().into(),
                format!("bench-{i}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        consumers.push((connection, channel, consumer));
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(a.warmup_s);
    let shared = Arc::new(Shared {
        acked: AtomicU64::new(0),
        drained_us: AtomicU64::new(0),
        records: a.records,
        start,
        measure_from,
        end: measure_from + Duration::from_secs_f64(a.duration_s),
    });
    let mut tasks = Vec::new();
    for (connection, channel, consumer) in consumers {
        let (shared, batch) = (shared.clone(), u64::from(a.ack_batch));
        tasks.push(tokio::spawn(async move {
            let out = drain(&channel, consumer, batch, &shared).await;
            // Unacknowledged deliveries go back to the queue when the
            // channel closes.
            let _ = channel.close(200, "done".into()).await;
            let _ = connection.close(200, "done".into()).await;
            out
        }));
    }
    let mut total = Consumed::default();
    for t in tasks {
        let c = t.await?;
        total.measured += c.measured;
        total.body_bytes += c.body_bytes;
        total.errors += c.errors;
        if total.first_error.is_none() {
            total.first_error = c.first_error;
        }
    }
    let drained_us = shared.drained_us.load(Ordering::Relaxed);
    let window_end = if drained_us > 0 {
        (start + Duration::from_micros(drained_us)).min(shared.end)
    } else {
        shared.end
    };
    let window = window_end.saturating_duration_since(measure_from).as_secs_f64();
    if window <= 0.0 {
        bail!(
            "all {} messages were acknowledged during the {} s warm-up: fill the queue with more",
            a.records,
            a.warmup_s
        );
    }
    let acked_total = shared.acked.load(Ordering::Relaxed);
    // A passive declare with every consumer gone: what the queue still holds.
    let remaining = admin_channel
        .queue_declare(
            a.target.queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|q| q.message_count())
        .ok();
    let _ = admin.close(200, "done".into()).await;
    let record_bytes = total.body_bytes.checked_div(total.measured).unwrap_or(0);
    let bytes = total.body_bytes;
    let v = json!({
        "tool": "bench-peers",
        "system": format!("rabbitmq-{}", a.target.queue_type),
        "workload": "share-consume",
        "target": a.target.url,
        "queue": a.target.queue,
        "record_bytes": record_bytes,
        "consumers": a.consumers,
        "prefetch": a.prefetch,
        "ack_batch": a.ack_batch,
        "rate": 0,
        "duration_s": window,
        "drained": drained_us > 0 && window_end < shared.end,
        "records": total.measured,
        "acked_total": acked_total,
        "queue_remaining": remaining,
        "bytes": bytes,
        "records_per_s": total.measured as f64 / window,
        "mb_per_s": bytes as f64 / window / 1e6,
        "produce_latency_us": null,
        "e2e_latency_us": null,
        "errors": total.errors,
        "first_error": total.first_error,
    });
    report(&v, a.target.json);
    if total.errors > 0 {
        bail!(
            "{} errors; the first: {}",
            total.errors,
            total.first_error.unwrap_or_default()
        );
    }
    // The queue must hold what was not acknowledged: if it holds more, acks
    // were lost on the way.
    if let Some(left) = remaining
        && u64::from(left) + acked_total > u64::from(ready)
    {
        bail!("{acked_total} acknowledged of {ready}, yet the queue still holds {left} messages");
    }
    Ok(())
}

/// Receives and acknowledges until the run is over; every `batch` deliveries
/// one `basic.ack` with `multiple` covers them, and so does a pause in the
/// deliveries, so that the last ones of the queue are not held back.
async fn drain(channel: &Channel, mut consumer: lapin::Consumer, batch: u64, shared: &Shared) -> Consumed {
    let mut out = Consumed::default();
    let (mut unacked, mut unacked_bytes, mut last_tag) = (0u64, 0u64, 0u64);
    while !shared.done() {
        let wait = if unacked > 0 { ACK_PAUSE_MS } else { IDLE_MS_MAX };
        let delivery = match tokio::time::timeout(Duration::from_millis(wait), consumer.next()).await {
            Err(_) if unacked > 0 => None,
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
                break;
            }
            Ok(Some(Ok(d))) => Some(d),
        };
        if let Some(d) = &delivery {
            unacked += 1;
            unacked_bytes += d.data.len() as u64;
            last_tag = d.delivery_tag;
        }
        if unacked >= batch || (delivery.is_none() && unacked > 0) {
            if let Err(e) = ack(channel, last_tag, unacked, unacked_bytes, shared, &mut out).await {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
                break;
            }
            (unacked, unacked_bytes) = (0, 0);
        }
    }
    out
}

/// Acknowledges every delivery up to `tag` and counts them.
async fn ack(
    channel: &Channel,
    tag: u64,
    n: u64,
    bytes: u64,
    shared: &Shared,
    out: &mut Consumed,
) -> anyhow::Result<()> {
    channel.basic_ack(tag, BasicAckOptions { multiple: true }).await?;
    let now = Instant::now();
    if now >= shared.measure_from && now < shared.end {
        out.measured += n;
        out.body_bytes += bytes;
    }
    shared.acked(n);
    Ok(())
}

fn report(v: &serde_json::Value, json: bool) {
    if json {
        println!("{v}");
    } else {
        println!(
            "{} {}: {:.0} records/s, {:.1} MB/s over {:.2} s",
            v["system"].as_str().unwrap_or("rabbitmq"),
            v["workload"].as_str().unwrap_or(""),
            v["records_per_s"].as_f64().unwrap_or(0.0),
            v["mb_per_s"].as_f64().unwrap_or(0.0),
            v["duration_s"].as_f64().unwrap_or(0.0),
        );
    }
}
