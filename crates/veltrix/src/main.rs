//! `veltrix`: the broker (`veltrix serve`) and the command-line tools (`veltrix
//! topic`, `produce`, `consume`, `group`; see [`cli`]).
//!
//! The binary is thin: it parses flags, sets up logging, opens the engine and
//! hands sockets to the protocol adapters.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use veltrix_core::{Broker, CoreError};
use veltrix_log::Env;
use veltrix_log::io::{FsStorage, SystemClock};

mod cli;
mod files;
mod listeners;
mod shared;

/// How often partitions get their housekeeping (rolling, retention, flushes).
const TICK_INTERVAL_MS: u64 = 100;
/// How often routes look for new source records when they have caught up.
const ROUTE_INTERVAL_MS: u64 = 10;
/// Calls of `run_routes` one wake-up makes at most while they have work.
const ROUTE_RUNS_PER_WAKE_MAX: usize = 16;

#[derive(Parser)]
#[command(name = "veltrix", version, about = "A durable, Kafka-compatible event broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the broker.
    Serve(ServeArgs),
    /// Creates, lists, describes and deletes topics.
    Topic(cli::topic::TopicArgs),
    /// Produces each line of stdin or a file as a record.
    Produce(cli::produce::ProduceArgs),
    /// Prints the records of a topic.
    Consume(cli::consume::ConsumeArgs),
    /// Lists, describes, resets the offsets of, and deletes consumer groups.
    Group(cli::group::GroupArgs),
    /// Lists and shows share groups' dead letters, and redrives them.
    Dlq(cli::dlq::DlqArgs),
    /// Lists and describes the routes a broker runs (declared in its
    /// configuration file).
    Route(cli::route::RouteArgs),
    /// Adds, lists and deletes SCRAM users (SASL).
    User(cli::user::UserArgs),
    /// Adds, lists and deletes ACLs.
    Acl(cli::acl::AclArgs),
    /// Validates a configuration file without starting anything.
    Check(cli::check::CheckArgs),
    /// Explains a rule of `veltrix check`, or lists them all.
    Explain(cli::check::ExplainArgs),
    /// Lints a Kafka client's configuration for settings that lose,
    /// duplicate or reorder records.
    Doctor(cli::doctor::DoctorArgs),
    /// Load over the Kafka protocol: throughput and latency of this or any
    /// Kafka-compatible broker.
    Bench(cli::bench::BenchArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file (see `veltrix check`); without it, the embedded
    /// default. The flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Apply declared-topic changes that lose data: a shorter retention on a
    /// live topic, deleting a topic no longer declared.
    #[arg(long)]
    allow_data_loss: bool,
    /// Directory holding the topic catalogue and every partition's log
    /// [default: ./veltrix-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address the Kafka protocol listens on [default: 127.0.0.1:9092].
    #[arg(long)]
    kafka_listener: Option<SocketAddr>,
    /// Address of the HTTP API: /metrics, /health, /ready, /alerts, /api/v1/
    /// [default: 127.0.0.1:8080].
    #[arg(long)]
    http_listener: Option<SocketAddr>,
    /// Create topics on first use (off by default: a typo should fail loudly).
    #[arg(long)]
    auto_create_topics: bool,
    /// Partitions of topics created without a count [default: 1].
    #[arg(long)]
    default_partitions: Option<u32>,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text")]
    log_format: String,
}

/// Every command's failure ends here: one `error:` line and exit status 1.
/// `main` never returns an error itself, since Rust would print it with
/// `{:?}`, and with a backtrace when `RUST_BACKTRACE` is set.
fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Topic(args) => cli::topic::run(args),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
        Command::Group(args) => cli::group::run(args),
        Command::Dlq(args) => cli::dlq::run(args),
        Command::Route(args) => cli::route::run(args),
        Command::User(args) => cli::user::run(args),
        Command::Acl(args) => cli::acl::run(args),
        Command::Check(args) => cli::check::run_check(args),
        Command::Explain(args) => cli::check::run_explain(args),
        Command::Doctor(args) => cli::doctor::run(args),
        Command::Bench(args) => cli::bench::run(args),
    };
    cli::exit_on_error(result);
}

/// Logs to stderr, in colour only when stderr is a terminal: a file or a
/// journal would otherwise hold escape codes.
fn init_logging(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        "text" => builder.init(),
        "json" => builder.json().init(),
        other => anyhow::bail!("--log-format must be `text` or `json`, not `{other}`"),
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format)?;
    let overrides = cli::check::ServeOverrides {
        data_dir: args.data_dir,
        kafka_listener: args.kafka_listener,
        http_listener: args.http_listener,
        auto_create_topics: args.auto_create_topics,
        default_partitions: args.default_partitions,
        allow_data_loss: args.allow_data_loss,
    };
    let (mut config, config_check) = cli::check::serve_config(args.config.as_deref(), overrides)?;
    let limit = files::raise_limit();
    let worker_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    files::fit_caches(&mut config, limit.soft, files::files_reserve(worker_threads));
    let env = Env::with_bounds(
        Arc::new(FsStorage),
        Arc::new(SystemClock::default()),
        config.broker.open_files_max,
        config.broker.active_files_max,
    );
    let broker = match Broker::open(env, &config.data_dir, config.broker_config()) {
        Ok(broker) => Arc::new(broker),
        // Says which directory already.
        Err(e @ CoreError::DataDirInUse { .. }) => return Err(e.into()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("opening data directory {}", config.data_dir.display())));
        }
    };
    // On shared storage the topics are the catalog's: declared ones are
    // created there once the node runs.
    if args.config.is_some() && config.storage.is_none() {
        cli::check::apply_declared(&broker, &config, args.allow_data_loss)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .max_blocking_threads(files::BLOCKING_THREADS_MAX)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (kafka_listeners, advertised) = listeners::bind(&config).await?;
        let http_listener = tokio::net::TcpListener::bind(config.http_listener)
            .await
            .with_context(|| format!("binding the HTTP listener to {}", config.http_listener))?;
        let http_bound = http_listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let at = (&kafka_listeners[..], advertised);
        let shared = shared::start_if_shared(&config, args.config.is_some(), at, &broker, &stop_rx).await?;
        let monitor = veltrix_http::Monitor::new(broker.clone(), monitor_config(&config));
        let monitoring = tokio::spawn(monitor.clone().run(stop_rx.clone()));
        let ready = Arc::new(AtomicBool::new(false));
        let http = tokio::spawn(veltrix_http::serve(
            http_listener,
            veltrix_http::HttpState {
                broker: broker.clone(),
                monitor,
                started: Instant::now(),
                info: settings_json(&config, advertised, http_bound),
                ready: ready.clone(),
                security: Arc::new(listeners::http_security(&config, broker.metrics())?),
                config_check: Some(Arc::new(config_check)),
            },
            config.http_limits,
            stop_rx.clone(),
        ));
        let ticker = spawn_ticker(broker.clone(), stop_rx.clone());
        let router = spawn_routes(broker.clone(), stop_rx.clone());
        let server = tokio::spawn(veltrix_kafka::serve_listeners(
            kafka_listeners,
            broker.clone(),
            veltrix_kafka::KafkaConfig {
                shared: shared.as_ref().map(|s| s.storage.clone()),
                ..kafka_config(&config, advertised)
            },
            stop_rx,
        ));
        ready.store(true, Ordering::Release);
        shutdown_signal().await;
        tracing::info!("shutting down");
        ready.store(false, Ordering::Release);
        let _ = stop_tx.send(true);
        let _ = server.await;
        let _ = ticker.await;
        let _ = router.await;
        let _ = monitoring.await;
        let _ = http.await;
        if let Some(shared) = shared {
            shared.stop().await;
        }
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.close()).await?;
        tracing::info!("stopped cleanly");
        anyhow::Ok(())
    })
}

/// The engine's housekeeping (`Broker::tick`) on the blocking pool every
/// [`TICK_INTERVAL_MS`], until `stop`.
fn spawn_ticker(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let b = broker.clone();
                    let _ = tokio::task::spawn_blocking(move || b.tick()).await;
                }
                _ = stop.changed() => return,
            }
        }
    })
}

/// Routes' readers: steps taken on the blocking pool while they have work,
/// then a look every [`ROUTE_INTERVAL_MS`] for new records, until `stop`.
fn spawn_routes(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    // The log cleaner runs beside the routes and stops with them.
    let cleaner = spawn_cleaner(broker.clone(), stop.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(ROUTE_INTERVAL_MS));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let b = broker.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        // Bounded, so that a stop is seen soon.
                        for _ in 0..ROUTE_RUNS_PER_WAKE_MAX {
                            if !b.run_routes() {
                                break;
                            }
                        }
                    })
                    .await;
                }
                _ = stop.changed() => {
                    let _ = cleaner.await;
                    return;
                }
            }
        }
    })
}

/// How often the log cleaner looks for compacted partitions due a round.
const CLEANER_INTERVAL_MS: u64 = 1000;

/// The log cleaner: a pass over the compacted partitions on the blocking pool
/// every [`CLEANER_INTERVAL_MS`] within `[broker]`'s compaction bounds, one
/// pass at a time, until `stop` (a round in progress finishes first: the logs
/// are closed after it).
fn spawn_cleaner(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(CLEANER_INTERVAL_MS));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let limits = broker.config().compaction;
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let b = broker.clone();
                    let _ = tokio::task::spawn_blocking(move || b.run_cleaner(&limits)).await;
                }
                _ = stop.changed() => return,
            }
        }
    })
}

/// The Kafka adapter's settings: `[limits]`, advertising `advertised` to
/// clients; producers writing to critical topics with acks=0 or 1 are warned
/// about. Every limit is named, so a new one cannot be left out.
fn kafka_config(config: &veltrix_config::VeltrixConfig, advertised: SocketAddr) -> veltrix_kafka::KafkaConfig {
    let veltrix_config::KafkaLimits {
        request_bytes_max,
        in_flight_bytes_max,
        connections_max,
        requests_in_flight_per_connection_max,
        fetch_wait_ms_max,
        fetch_bytes_max,
        request_body_ms_max,
        connection_idle_ms_max,
        warning_interval_ms,
        accept_backoff_ms_max,
        shutdown_drain_ms_max,
        tier_bulk_throttle_percent,
        tier_standard_throttle_percent,
        tier_throttle_ms_max,
        tier_critical_latency_target_ms,
        connections_per_ip_max,
        connections_per_ip_per_second_max,
        failing_produce_requests_per_second_max,
        failing_produce_throttle_ms_max,
    } = config.limits;
    veltrix_kafka::KafkaConfig {
        request_bytes_max,
        in_flight_bytes_max,
        connections_max,
        requests_in_flight_per_connection_max,
        fetch_wait_ms_max,
        fetch_bytes_max,
        request_body_ms_max,
        connection_idle_ms_max,
        warning_interval_ms,
        accept_backoff_ms_max,
        shutdown_drain_ms_max,
        critical_topics: config.critical_topics().map(str::to_owned).collect(),
        connections_per_ip_max,
        connections_per_ip_per_second_max,
        breaker: veltrix_kafka::BreakerLimits {
            failing_requests_per_second_max: failing_produce_requests_per_second_max,
            failing_throttle_ms_max: failing_produce_throttle_ms_max,
        },
        tiers: veltrix_kafka::tiers::TierLimits {
            bulk_throttle_percent: tier_bulk_throttle_percent,
            standard_throttle_percent: tier_standard_throttle_percent,
            throttle_ms_max: tier_throttle_ms_max,
            critical_latency_target_ms: tier_critical_latency_target_ms,
        },
        auth: listeners::auth_limits(config),
        ..veltrix_kafka::KafkaConfig::new(advertised)
    }
}

/// The monitor's settings: the declared alerts and `[observability]`.
fn monitor_config(config: &veltrix_config::VeltrixConfig) -> veltrix_http::MonitorConfig {
    use veltrix_config::LagThreshold;
    use veltrix_core::alerts::{AlertRule, Threshold};
    let alerts = config
        .alerts
        .iter()
        .map(|a| {
            let threshold = match a.threshold {
                LagThreshold::Records(n) => Threshold::LagRecords(n),
                LagThreshold::Ms(ms) => Threshold::LagMs(ms),
                LagThreshold::DeadLettersPerMinute(n) => Threshold::DeadLettersPerMinute(n),
            };
            AlertRule {
                name: a
                    .name
                    .clone()
                    .unwrap_or_else(|| AlertRule::default_name(&a.group, &a.topic, threshold)),
                group: a.group.clone(),
                topic: a.topic.clone(),
                threshold,
                for_ms: a.for_ms,
            }
        })
        .collect();
    let o = &config.observability;
    veltrix_http::MonitorConfig {
        evaluation_interval_ms: o.lag_evaluation_interval_ms,
        lag_history_points_max: o.lag_history_points_max,
        alerts,
        webhook: o.webhook.as_ref().map(|w| veltrix_http::WebhookConfig {
            url: w.url.clone(),
            timeout_ms: w.timeout_ms,
            retries_max: w.retries_max,
            retry_backoff_ms: w.retry_backoff_ms,
            queue_max: w.queue_max,
        }),
        ..veltrix_http::MonitorConfig::default()
    }
}

/// `none` or `required`, as the configuration writes it.
fn access_word(access: veltrix_http::Access) -> &'static str {
    match access {
        veltrix_http::Access::Open => "none",
        veltrix_http::Access::Authenticated => "required",
    }
}

/// What `/api/v1/broker` shows of the settings.
fn settings_json(config: &veltrix_config::VeltrixConfig, kafka: SocketAddr, http: SocketAddr) -> serde_json::Value {
    let g = &config.broker.groups;
    serde_json::json!({
        "profile": format!("{:?}", config.profile).to_lowercase(),
        "kafka_listener": kafka.to_string(),
        "http_listener": http.to_string(),
        "http_tls": config.http_tls.is_some(),
        "http_authentication": {
            "api": access_word(config.http_security.api),
            "metrics": access_word(config.http_security.metrics),
            "health": access_word(config.http_security.health),
        },
        "authorization": config.security.authorization,
        "auto_create_topics": config.broker.auto_create_topics,
        "default_partitions": config.broker.default_partitions,
        "limits": {
            "request_bytes_max": config.limits.request_bytes_max,
            "in_flight_bytes_max": config.limits.in_flight_bytes_max,
            "connections_max": config.limits.connections_max,
            "requests_in_flight_per_connection_max": config.limits.requests_in_flight_per_connection_max,
            "fetch_wait_ms_max": config.limits.fetch_wait_ms_max,
            "fetch_bytes_max": config.limits.fetch_bytes_max,
            "request_body_ms_max": config.limits.request_body_ms_max,
            "connection_idle_ms_max": config.limits.connection_idle_ms_max,
            "warning_interval_ms": config.limits.warning_interval_ms,
            "accept_backoff_ms_max": config.limits.accept_backoff_ms_max,
            "http_connections_max": config.http_limits.connections_max,
            "http_idle_ms_max": config.http_limits.idle_ms_max,
            "shutdown_drain_ms_max": config.limits.shutdown_drain_ms_max,
            "topics_max": config.broker.topics_max,
            "partitions_per_topic_max": config.broker.partitions_per_topic_max,
            "partitions_total_max": config.broker.partitions_total_max,
            "open_files_max": config.broker.open_files_max,
            "active_files_max": config.broker.active_files_max,
            "groups_max": g.groups_max,
            "group_members_max": g.group_members_max,
        },
        "metrics_enabled": config.observability.metrics_enabled,
        "lag_evaluation_interval_ms": config.observability.lag_evaluation_interval_ms,
        "share": {
            "groups_max": config.broker.share.groups_max,
            "group_members_max": config.broker.share.group_members_max,
            "sessions_max": config.broker.share.sessions_max,
            "session_timeout_ms": config.broker.share.session_timeout_ms,
            "heartbeat_interval_ms": config.broker.share.heartbeat_interval_ms,
            "declared_groups": config.share_groups.len(),
        },
        "dedup": {
            "ids_max": config.broker.dedup.ids_max,
            "id_bytes_max": config.broker.dedup.id_bytes_max,
            "memory_bytes_max": config.broker.dedup.memory_bytes_max,
        },
        "alerts": config.alerts.len(),
        "webhook": config.observability.webhook.is_some(),
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[limits]` is plain data in veltrix-config; its defaults must be the
    /// Kafka adapter's, or a broker without a file would run on other limits
    /// than the adapter's own tests do.
    #[test]
    fn the_configuration_s_kafka_limits_default_to_the_adapter_s() {
        let addr: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        let from_file = kafka_config(&veltrix_config::VeltrixConfig::default(), addr);
        let adapter = veltrix_kafka::KafkaConfig::new(addr);
        assert_eq!(format!("{from_file:?}"), format!("{adapter:?}"));
    }
}
