//! `bench-peers nats|redis|rabbitmq`: load on NATS JetStream, Redis Streams
//! and RabbitMQ, each through its own native Rust client, reporting the same
//! JSON as `veltrix bench` so that `bench/compare` can put them side by side.
//!
//! - NATS JetStream: `--producers` connections, each publishing
//!   asynchronously with at most `--window` publishes awaiting their
//!   acknowledgement (the JetStream PubAck, sent once the stream stored it).
//!   With `--msg-ids` every message carries a unique `Nats-Msg-Id`, which the
//!   stream checks against its duplicate window (`--duplicate-window-s`).
//! - Redis Streams: `--producers` connections, each sending pipelines of
//!   `--window` XADD commands and waiting for their replies.
//!
//! - RabbitMQ: a durable queue filled under publisher confirms, then consumed
//!   with manual acknowledgements (`rabbitmq.rs`).
//!
//! Latency is per record, from the send to its acknowledgement. Records due
//! in the warm-up are not counted. MB are 10^6 bytes of record payload.

mod rabbitmq;

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::context::Publish;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde_json::json;

/// The largest latency recorded, in microseconds (10 minutes).
const LATENCY_US_MAX: u64 = 600_000_000;
/// The most connections a run opens.
const PRODUCERS_MAX: usize = 256;
/// The most records outstanding per connection.
const WINDOW_MAX: usize = 100_000;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    system: System,
}

#[derive(Subcommand)]
enum System {
    /// NATS JetStream: async publish to a file-storage stream.
    Nats(Load),
    /// Redis Streams: pipelined XADD.
    Redis(Load),
    /// RabbitMQ: fill a durable queue, or consume it with manual acks.
    Rabbitmq {
        #[command(subcommand)]
        op: rabbitmq::Op,
    },
}

#[derive(clap::Args, Clone)]
struct Load {
    /// nats://HOST:PORT or redis://HOST:PORT.
    #[arg(long)]
    url: String,
    /// Payload bytes of each record.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Connections publishing at once.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Publishes awaiting acknowledgement per connection (NATS), or XADDs per
    /// pipeline (Redis).
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// The stream (NATS: created with file storage and subject NAME.records;
    /// Redis: the key).
    #[arg(long, default_value = "bench")]
    stream: String,
    /// NATS: a unique `Nats-Msg-Id` header on every message, so that the
    /// stream checks each against its duplicate window.
    #[arg(long)]
    msg_ids: bool,
    /// NATS: the stream's duplicate window in seconds; the server's default
    /// (2 minutes) when not given.
    #[arg(long)]
    duplicate_window_s: Option<f64>,
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
pub(crate) struct Outcome {
    records: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Option<Histogram<u64>>,
}

impl Outcome {
    /// Adds another connection's outcome; its latencies go into `h`.
    pub(crate) fn merge(&mut self, o: Outcome, h: &mut Histogram<u64>) {
        self.records += o.records;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        if let Some(l) = o.latency {
            h.add(&l).ok();
        }
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// When the measured part runs, relative to one start.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

impl Window {
    fn measured(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.end
    }
}

pub(crate) fn record(h: &mut Histogram<u64>, since: Instant, n: u64) {
    let us = (since.elapsed().as_micros() as u64).clamp(1, LATENCY_US_MAX);
    let _ = h.record_n(us, n);
}

/// Unique message ids for `--msg-ids`: `<run>-<producer>-<count>`, the run
/// being the nanosecond it started, so that a second run on the same stream
/// within its window is not taken for duplicates of the first.
struct MsgIds {
    prefix: String,
    next: u64,
}

impl MsgIds {
    fn new(run_ns: u128, producer: usize) -> MsgIds {
        MsgIds {
            prefix: format!("{run_ns:x}-{producer:x}-"),
            next: 0,
        }
    }

    fn next_id(&mut self) -> String {
        let mut id = String::with_capacity(self.prefix.len() + 16);
        id.push_str(&self.prefix);
        let _ = write!(id, "{:016x}", self.next);
        self.next += 1;
        id
    }
}

async fn nats_producer(
    js: async_nats::jetstream::Context,
    subject: String,
    load: Load,
    w: Window,
    mut ids: Option<MsgIds>,
) -> Outcome {
    let payload = Bytes::from(vec![0x5a_u8; load.record_bytes]);
    let mut h = histogram();
    let mut out = Outcome::default();
    let mut pending: VecDeque<(Instant, async_nats::jetstream::context::PublishAckFuture)> = VecDeque::new();
    loop {
        let now = Instant::now();
        let finished = now >= w.end;
        if pending.len() >= load.window || (finished && !pending.is_empty()) {
            let Some((sent, ack)) = pending.pop_front() else { break };
            match ack.await {
                // Every id is new: a message the stream took for a duplicate
                // was not stored, and is counted as a failure.
                Ok(ack) if ack.duplicate => {
                    out.errors += 1;
                    out.first_error
                        .get_or_insert_with(|| format!("message {} taken for a duplicate", ack.sequence));
                }
                Ok(_) if w.measured(sent) => {
                    out.records += 1;
                    record(&mut h, sent, 1);
                }
                Ok(_) => {}
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert_with(|| e.to_string());
                }
            }
            continue;
        }
        if finished {
            break;
        }
        let mut publish = Publish::build().payload(payload.clone());
        if let Some(ids) = ids.as_mut() {
            publish = publish.message_id(ids.next_id());
        }
        match js.send_publish(subject.clone(), publish).await {
            Ok(ack) => pending.push_back((now, ack)),
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
                break;
            }
        }
    }
    out.latency = Some(h);
    out
}

async fn redis_producer(client: redis::Client, key: String, load: Load, w: Window) -> Outcome {
    let mut out = Outcome::default();
    let mut h = histogram();
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => {
            out.errors += 1;
            out.first_error = Some(e.to_string());
            return out;
        }
    };
    let payload = vec![0x5a_u8; load.record_bytes];
    let mut pipe = redis::pipe();
    for _ in 0..load.window {
        pipe.cmd("XADD").arg(&key).arg("*").arg("v").arg(&payload);
    }
    while Instant::now() < w.end {
        let sent = Instant::now();
        let reply: redis::RedisResult<Vec<String>> = pipe.query_async(&mut conn).await;
        match reply {
            Ok(ids) if ids.len() == load.window => {
                if w.measured(sent) {
                    out.records += ids.len() as u64;
                    record(&mut h, sent, ids.len() as u64);
                }
            }
            Ok(ids) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert_with(|| format!("{} replies to {} XADDs", ids.len(), load.window));
                break;
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
                break;
            }
        }
    }
    out.latency = Some(h);
    out
}

pub(crate) fn summary(h: &Histogram<u64>) -> serde_json::Value {
    if h.is_empty() {
        return serde_json::Value::Null;
    }
    json!({
        "count": h.len(),
        "p50": h.value_at_quantile(0.5),
        "p90": h.value_at_quantile(0.9),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

/// The systems whose produce load is a stream of appends.
#[derive(Clone, Copy)]
enum Streams {
    Nats,
    Redis,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    match Args::parse().system {
        System::Nats(load) => produce(Streams::Nats, load).await,
        System::Redis(load) => produce(Streams::Redis, load).await,
        System::Rabbitmq { op } => rabbitmq::run(&op).await,
    }
}

/// Closed-loop appends to a NATS JetStream stream or a Redis stream.
async fn produce(kind: Streams, load: Load) -> anyhow::Result<()> {
    let system = match kind {
        Streams::Nats => "nats-jetstream",
        Streams::Redis => "redis-streams",
    };
    if !(1..=PRODUCERS_MAX).contains(&load.producers) {
        bail!("--producers must be 1 to {PRODUCERS_MAX}");
    }
    if !(1..=WINDOW_MAX).contains(&load.window) {
        bail!("--window must be 1 to {WINDOW_MAX}");
    }
    if !(load.duration_s > 0.0 && load.duration_s <= 86_400.0 && (0.0..=86_400.0).contains(&load.warmup_s)) {
        bail!("--duration-s must be above 0 and both durations at most 86400");
    }
    if matches!(kind, Streams::Redis) && (load.msg_ids || load.duplicate_window_s.is_some()) {
        bail!("--msg-ids and --duplicate-window-s are NATS settings");
    }
    let mut tasks = Vec::new();
    let start;
    match kind {
        Streams::Nats => {
            let mut contexts = Vec::new();
            let subject = format!("{}.records", load.stream);
            for _ in 0..load.producers {
                let client = async_nats::connect(&load.url)
                    .await
                    .with_context(|| format!("connecting to {}", load.url))?;
                contexts.push(async_nats::jetstream::new(client));
            }
            let duplicate_window = match load.duplicate_window_s {
                Some(s) if s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
                Some(_) => bail!("--duplicate-window-s must be above 0 and at most 86400"),
                // Zero leaves the server's default.
                None => Duration::ZERO,
            };
            contexts[0]
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: load.stream.clone(),
                    subjects: vec![subject.clone()],
                    storage: async_nats::jetstream::stream::StorageType::File,
                    duplicate_window,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("creating stream {}: {e}", load.stream))?;
            start = Instant::now();
            let w = window(start, &load);
            let run_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            for (producer, js) in contexts.into_iter().enumerate() {
                let ids = load.msg_ids.then(|| MsgIds::new(run_ns, producer));
                tasks.push(tokio::spawn(nats_producer(js, subject.clone(), load.clone(), w, ids)));
            }
        }
        Streams::Redis => {
            let client = redis::Client::open(load.url.as_str()).with_context(|| format!("opening {}", load.url))?;
            // Fail early on a server that is not there.
            let mut probe = client.get_multiplexed_async_connection().await?;
            let _: String = redis::cmd("PING").query_async(&mut probe).await?;
            start = Instant::now();
            let w = window(start, &load);
            for _ in 0..load.producers {
                tasks.push(tokio::spawn(redis_producer(
                    client.clone(),
                    load.stream.clone(),
                    load.clone(),
                    w,
                )));
            }
        }
    }
    let mut total = Outcome::default();
    let mut h = histogram();
    for t in tasks {
        total.merge(t.await?, &mut h);
    }
    let duration = load.duration_s;
    let bytes = total.records * load.record_bytes as u64;
    let v = json!({
        "tool": "bench-peers",
        "system": system,
        "workload": "produce",
        "target": load.url,
        "record_bytes": load.record_bytes,
        "msg_ids": load.msg_ids,
        "duplicate_window_s": load.duplicate_window_s,
        "producers": load.producers,
        "window": load.window,
        "rate": 0,
        "duration_s": duration,
        "records": total.records,
        "bytes": bytes,
        "records_per_s": total.records as f64 / duration,
        "mb_per_s": bytes as f64 / duration / 1e6,
        "produce_latency_us": summary(&h),
        "e2e_latency_us": null,
        "errors": total.errors,
        "first_error": total.first_error,
    });
    if load.json {
        println!("{v}");
    } else {
        println!(
            "{system}: {:.0} records/s, {:.1} MB/s ({} B records, {} producers, window {}); ack p50 {} us, p99 {} us",
            total.records as f64 / duration,
            bytes as f64 / duration / 1e6,
            load.record_bytes,
            load.producers,
            load.window,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99)
        );
    }
    if total.errors > 0 {
        bail!(
            "{} errors; the first: {}",
            total.errors,
            total.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

fn window(start: Instant, load: &Load) -> Window {
    let measure_from = start + Duration::from_secs_f64(load.warmup_s);
    Window {
        measure_from,
        end: measure_from + Duration::from_secs_f64(load.duration_s),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::MsgIds;

    #[test]
    fn message_ids_differ_across_producers_and_runs() {
        let mut seen = HashSet::new();
        for run_ns in [1_700_000_000_000_000_000, 1_700_000_000_000_000_001] {
            for producer in 0..3 {
                let mut ids = MsgIds::new(run_ns, producer);
                for _ in 0..1000 {
                    assert!(seen.insert(ids.next_id()), "an id was handed out twice");
                }
            }
        }
    }
}
