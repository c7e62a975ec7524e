//! `veltrix bench produce|consume|share-consume|treasure-hunt`: load over the Kafka
//! protocol against Veltrix or any Kafka-compatible broker; the work is
//! `veltrix-bench`'s. Prints a summary, or one JSON object with `--json`; a
//! progress bar on stderr while it runs. Exits with status 1 if any record
//! failed: a throughput with errors in it is not a result.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use veltrix_bench::consume::ConsumeSpec;
use veltrix_bench::produce::message_ids::MESSAGE_ID_HEADER_BYTES_MAX;
use veltrix_bench::report::{self, Context as ReportContext};
use veltrix_bench::share::ShareSpec;
use veltrix_bench::treasure::TreasureHunt;
use veltrix_bench::{Progress, Rate, RunSpec, Spike, StreamSpec};
use veltrix_client::{Acks, ShareFetchOptions};

/// The largest batch `--batch-bytes` accepts: Kafka's default largest
/// request is 100 MiB, and a batch must fit in one.
pub const BATCH_BYTES_MAX: usize = 64 << 20;
/// The most connections of one kind a run opens.
pub const CONNECTIONS_MAX: usize = 256;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(clap::Subcommand, Debug)]
enum BenchCommand {
    /// Produce to one topic, in a closed loop (`--rate 0`, the default) for
    /// throughput or at a fixed rate for latency, with consumers timing
    /// records end to end.
    Produce(ProduceArgs),
    /// Read a topic through from its first records to the high watermarks at
    /// the start, for fetch throughput.
    Consume(ConsumeArgs),
    /// Fill a topic, then drain it with a share group (KIP-932), every record
    /// accepted: records acknowledged per second.
    ShareConsume(ShareConsumeArgs),
    /// The treasure-hunt game: players as keys, frequent small telemetry and
    /// rare critical events, with a sale spike.
    TreasureHunt(TreasureArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// The broker, as HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The system's name in the report (`veltrix`, `tansu`, ...).
    #[arg(long, default_value = "kafka")]
    system: String,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    duration_s: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0, value_parser = seconds)]
    warmup_s: f64,
    /// Time limit of connecting and of each request, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Seed of the key choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// The end-to-end consumers join this consumer group (KIP-848 consumer
    /// protocol; `<group>-<stream>` per stream of the treasure hunt) and read
    /// the partitions the broker assigns them. Without it they divide the
    /// partitions among themselves.
    #[arg(long, value_parser = group_id)]
    group: Option<String>,
}

fn group_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 255 {
        return Err("a group id has 1 to 255 bytes".into());
    }
    Ok(s.to_owned())
}

#[derive(clap::Args, Debug, Clone)]
struct Batching {
    /// The largest batch per partition, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_parser = batch_bytes)]
    batch_bytes: usize,
    /// How long the first record of a batch may wait for more (open loop).
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Produce requests outstanding per connection.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    in_flight: u16,
}

#[derive(clap::Args, Debug)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    batching: Batching,
    /// The topic; created with `--partitions` if missing.
    #[arg(long, default_value = "veltrix-bench")]
    topic: String,
    /// Partitions of a topic this run creates.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    partitions: i32,
    /// Producer connections.
    #[arg(long, default_value_t = 1, value_parser = connections)]
    producers: usize,
    /// Bytes of each record's value; from 8 on, values carry their send time
    /// for the end-to-end latency.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16 << 20))]
    record_bytes: u32,
    /// Records keyed by player among this many (murmur2-partitioned); unkeyed
    /// without.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keys: Option<u64>,
    /// Put a unique `message-id` header on every record, for a topic with a
    /// duplicate window (`--topic-config veltrix.dedup.window.ms=120000`):
    /// every record is checked against the window and none is a duplicate.
    #[arg(long)]
    message_ids: bool,
    /// A setting of the topic if this run creates it, as KEY=VALUE
    /// (repeatable); an existing topic keeps its own.
    #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = topic_config)]
    topic_configs: Vec<(String, String)>,
    #[arg(long, default_value = "all", value_parser = acks)]
    acks: Acks,
    /// Records per second in all; 0 is a closed loop (as fast as it goes).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    rate: f64,
    /// Consumer connections reading the topic for the end-to-end latency; 0
    /// for none.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=256))]
    consumers: u16,
}

#[derive(clap::Args, Debug)]
struct ConsumeArgs {
    /// The broker, as HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "kafka")]
    system: String,
    #[arg(long, default_value = "veltrix-bench")]
    topic: String,
    /// Consumer connections sharing the partitions.
    #[arg(long, default_value_t = 1, value_parser = connections)]
    consumers: usize,
    /// Bytes of records per fetch.
    #[arg(long, default_value_t = 32 << 20, value_parser = clap::value_parser!(i32).range(1..=256 << 20))]
    fetch_bytes: i32,
    /// Bytes of records per partition in a fetch.
    #[arg(long, default_value_t = 8 << 20, value_parser = clap::value_parser!(i32).range(1..=256 << 20))]
    partition_fetch_bytes: i32,
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ShareConsumeArgs {
    /// The broker, as HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "kafka")]
    system: String,
    /// The topic: created with `--partitions` if missing, and filled.
    #[arg(long, default_value = "veltrix-share-bench")]
    topic: String,
    /// The share group.
    #[arg(long, default_value = "veltrix-share-bench", value_parser = group_id)]
    group: String,
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    partitions: i32,
    /// Members of the share group, each on its own connection.
    #[arg(long, default_value_t = 1, value_parser = connections)]
    consumers: usize,
    /// Records written before the clock starts; the run ends when all are
    /// acknowledged, if the duration has not run out first.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    records: u64,
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    record_bytes: u32,
    /// Records a member acquires per ShareFetch (`max.poll.records`).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i32).range(1..=1_000_000))]
    max_records: i32,
    /// Bytes of records per ShareFetch.
    #[arg(long, default_value_t = 16 << 20, value_parser = clap::value_parser!(i32).range(1..=256 << 20))]
    fetch_bytes: i32,
    /// How long the broker may wait for records before answering a ShareFetch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    max_wait_ms: u64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    duration_s: f64,
    #[arg(long, default_value_t = 1.0, value_parser = seconds)]
    warmup_s: f64,
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct TreasureArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    batching: Batching,
    /// Topics are PREFIX + the event's name.
    #[arg(long, default_value = "treasure-hunt.")]
    topic_prefix: String,
    /// Every kind of event to this one topic instead, each record naming
    /// its kind in an `event` header (a stream to sort with a route); no
    /// end-to-end consumers then.
    #[arg(long, conflicts_with = "topic_prefix")]
    one_topic: Option<String>,
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    partitions: i32,
    /// Players, the record keys.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    players: u64,
    /// Events per second in all, outside the sale.
    #[arg(long, default_value_t = 20_000.0, value_parser = positive_rate)]
    rate: f64,
    /// Seconds after the warm-up when the sale starts.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    spike_at_s: f64,
    /// Seconds the sale lasts; 0 for none.
    #[arg(long, default_value_t = 30.0, value_parser = seconds)]
    spike_s: f64,
    /// How many times the usual rate the sale brings.
    #[arg(long, default_value_t = 10.0, value_parser = positive_rate)]
    spike_factor: f64,
    /// Acks of location_ping and clue_found; reward_granted and purchase
    /// always use acks=all.
    #[arg(long, default_value = "all", value_parser = acks)]
    telemetry_acks: Acks,
    #[arg(long, default_value_t = 1, value_parser = connections)]
    producers_per_event: usize,
}

/// `s` as a number within `range`; `expected` says what is accepted.
fn within<T>(s: &str, range: RangeInclusive<T>, expected: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd,
    T::Err: Display,
{
    let v: T = s.parse().map_err(|e| format!("{e}"))?;
    if !range.contains(&v) {
        return Err(expected.into());
    }
    Ok(v)
}

/// `v` when it is more than 0; `expected` says so otherwise.
fn above_zero(v: f64, expected: &str) -> Result<f64, String> {
    if v <= 0.0 {
        return Err(expected.into());
    }
    Ok(v)
}

fn seconds(s: &str) -> Result<f64, String> {
    within(s, 0.0..=86_400.0, "expected seconds from 0 to 86400")
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    above_zero(seconds(s)?, "expected more than 0 seconds")
}

fn rate(s: &str) -> Result<f64, String> {
    within(
        s,
        0.0..=100_000_000.0,
        "expected records per second from 0 to 100000000",
    )
}

fn positive_rate(s: &str) -> Result<f64, String> {
    above_zero(rate(s)?, "expected more than 0")
}

fn connections(s: &str) -> Result<usize, String> {
    within(s, 1..=CONNECTIONS_MAX, &format!("expected 1 to {CONNECTIONS_MAX}"))
}

fn batch_bytes(s: &str) -> Result<usize, String> {
    within(
        s,
        1024..=BATCH_BYTES_MAX,
        &format!("expected 1024 to {BATCH_BYTES_MAX} bytes"),
    )
}

fn topic_config(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE, such as veltrix.dedup.window.ms=120000".into()),
    }
}

fn acks(s: &str) -> Result<Acks, String> {
    match s {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        _ => Err("expected 0, 1 or all".into()),
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Produce(a) => {
            let spec = StreamSpec {
                name: "produce".into(),
                topic: a.topic.clone(),
                partitions: Some(a.partitions),
                topic_configs: a.topic_configs,
                acks: a.acks,
                record_bytes: a.record_bytes as usize,
                players: a.keys,
                message_ids: a.message_ids,
                event: None,
                producers: a.producers,
                rate: Rate {
                    per_s: a.rate,
                    spikes: Vec::new(),
                },
                batch_bytes: a.batching.batch_bytes,
                linger: Duration::from_millis(a.batching.linger_ms),
                in_flight: usize::from(a.batching.in_flight),
                consumers: usize::from(a.consumers),
            };
            let header_bytes = if spec.message_ids {
                MESSAGE_ID_HEADER_BYTES_MAX
            } else {
                0
            };
            if spec.record_bytes + header_bytes + 64 > spec.batch_bytes {
                bail!(
                    "records of {} bytes do not fit batches of {} bytes",
                    spec.record_bytes,
                    spec.batch_bytes
                );
            }
            run_streams(&a.common, "produce", vec![spec])
        }
        BenchCommand::TreasureHunt(a) => {
            let spikes = if a.spike_s > 0.0 {
                vec![Spike {
                    start: Duration::from_secs_f64(a.spike_at_s),
                    length: Duration::from_secs_f64(a.spike_s),
                    factor: a.spike_factor,
                }]
            } else {
                Vec::new()
            };
            let profile = TreasureHunt {
                topic_prefix: a.topic_prefix,
                partitions: a.partitions,
                players: a.players,
                rate: a.rate,
                spikes,
                telemetry_acks: a.telemetry_acks,
                producers_per_kind: a.producers_per_event,
                batch_bytes: a.batching.batch_bytes,
                linger: Duration::from_millis(a.batching.linger_ms),
                in_flight: usize::from(a.batching.in_flight),
                consumers_per_kind: if a.one_topic.is_some() { 0 } else { 1 },
                one_topic: a.one_topic,
            };
            run_streams(&a.common, "treasure-hunt", profile.streams())
        }
        BenchCommand::Consume(a) => run_consume(a),
        BenchCommand::ShareConsume(a) => run_share_consume(a),
    }
}

fn runtime(threads: u16) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(threads))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A bar over `length` that shows what `progress` counts per second.
fn progress_bar(length: Option<Duration>, progress: Arc<Progress>, unit: &'static str) -> ProgressBar {
    let bar = match length {
        Some(l) => ProgressBar::new(l.as_millis() as u64).with_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    let ticker = bar.clone();
    std::thread::spawn(move || {
        let started = Instant::now();
        let (mut last, mut last_at) = (0u64, Instant::now());
        while !ticker.is_finished() {
            std::thread::sleep(Duration::from_millis(250));
            let now = progress.acked.load(Ordering::Relaxed);
            let per_s = (now - last) as f64 / last_at.elapsed().as_secs_f64().max(1e-3);
            (last, last_at) = (now, Instant::now());
            let errors = progress.errors.load(Ordering::Relaxed);
            ticker.set_position(started.elapsed().as_millis() as u64);
            let errors = if errors > 0 {
                format!(", {errors} failed")
            } else {
                String::new()
            };
            ticker.set_message(format!("{now} {unit} ({per_s:.0}/s{errors})"));
        }
    });
    bar
}

fn run_streams(common: &Common, workload: &str, streams: Vec<StreamSpec>) -> anyhow::Result<()> {
    let spec = RunSpec {
        bootstrap: common.bootstrap.clone(),
        client_id: "veltrix-bench".into(),
        warmup: Duration::from_secs_f64(common.warmup_s),
        duration: Duration::from_secs_f64(common.duration_s),
        request_timeout: Duration::from_millis(common.timeout_ms),
        seed: common.seed,
        group: common.group.clone(),
    };
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(Some(spec.warmup + spec.duration), progress.clone(), "records");
    let results = runtime(common.threads)?.block_on(veltrix_bench::produce::run(&spec, &streams, progress));
    bar.finish_and_clear();
    let results = results.with_context(|| format!("benchmarking {}", common.bootstrap))?;
    let ctx = ReportContext {
        system: common.system.clone(),
        target: common.bootstrap.clone(),
        duration: spec.duration,
    };
    if common.json {
        let v = if workload == "produce" {
            report::produce_json(&ctx, &streams[0], &results[0])
        } else {
            report::profile_json(&ctx, workload, &streams, &results)
        };
        println!("{v}");
    } else {
        print!("{}", report::streams_human(&streams, &results, spec.duration));
    }
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    if errors > 0 {
        let first = results.iter().find_map(|r| r.first_error.clone()).unwrap_or_default();
        bail!("{errors} records failed; the first: {first}");
    }
    Ok(())
}

fn run_consume(a: ConsumeArgs) -> anyhow::Result<()> {
    let spec = ConsumeSpec {
        bootstrap: a.bootstrap.clone(),
        client_id: "veltrix-bench".into(),
        topic: a.topic.clone(),
        consumers: a.consumers,
        fetch_bytes_max: a.fetch_bytes,
        partition_fetch_bytes_max: a.partition_fetch_bytes,
        request_timeout: Duration::from_millis(a.timeout_ms),
    };
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(None, progress.clone(), "records");
    let result = runtime(a.threads)?.block_on(veltrix_bench::consume::run(&spec, progress));
    bar.finish_and_clear();
    let result = result.with_context(|| format!("reading `{}` from {}", a.topic, a.bootstrap))?;
    if a.json {
        let ctx = ReportContext {
            system: a.system,
            target: a.bootstrap,
            duration: result.elapsed,
        };
        println!("{}", report::consume_json(&ctx, &a.topic, a.consumers, &result));
    } else {
        print!("{}", report::consume_human(&a.topic, &result));
    }
    Ok(())
}

fn run_share_consume(a: ShareConsumeArgs) -> anyhow::Result<()> {
    let spec = ShareSpec {
        bootstrap: a.bootstrap.clone(),
        client_id: "veltrix-bench".into(),
        topic: a.topic.clone(),
        group: a.group.clone(),
        partitions: a.partitions,
        consumers: a.consumers,
        fill: a.records,
        record_bytes: a.record_bytes as usize,
        fetch: ShareFetchOptions {
            max_wait: Duration::from_millis(a.max_wait_ms),
            min_bytes: 1,
            bytes_max: a.fetch_bytes,
            records_max: a.max_records,
            batch_size: a.max_records,
        },
        warmup: Duration::from_secs_f64(a.warmup_s),
        duration: Duration::from_secs_f64(a.duration_s),
        request_timeout: Duration::from_millis(a.timeout_ms),
    };
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(None, progress.clone(), "records acknowledged");
    let result = runtime(a.threads)?.block_on(veltrix_bench::share::run(&spec, progress));
    bar.finish_and_clear();
    let result = result.with_context(|| format!("share-consuming `{}` from {}", a.topic, a.bootstrap))?;
    if a.json {
        let ctx = ReportContext {
            system: a.system,
            target: a.bootstrap,
            duration: result.window,
        };
        println!("{}", report::share_json(&ctx, &spec, &result));
    } else {
        print!("{}", report::share_human(&spec, &result));
    }
    if result.errors > 0 {
        bail!(
            "{} records failed; the first: {}",
            result.errors,
            result.first_error.unwrap_or_default()
        );
    }
    Ok(())
}
