//! `veltrix`: the broker (`veltrix serve`) and the command-line tools (`veltrix
//! topic`, `produce`, `consume`, `group`; see [`cli`]).
//!
//! The binary is thin: it parses flags, sets up logging, opens the engine and
//! hands sockets to the protocol adapters.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use veltrix_core::Broker;
use veltrix_log::Env;

mod cli;

// Counts read off the wire must never abort the broker; see the allocator's docs.
#[global_allocator]
static ALLOCATOR: veltrix_kafka::alloc::ReservingAllocator = veltrix_kafka::alloc::ReservingAllocator;

/// How often partitions get their housekeeping (rolling, retention, flushes).
const TICK_INTERVAL_MS: u64 = 100;

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
    /// Validates a configuration file without starting anything.
    Check(cli::check::CheckArgs),
    /// Explains a rule of `veltrix check`, or lists them all.
    Explain(cli::check::ExplainArgs),
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Topic(args) => cli::exit_on_error(cli::topic::run(args)),
        Command::Produce(args) => cli::exit_on_error(cli::produce::run(args)),
        Command::Consume(args) => cli::exit_on_error(cli::consume::run(args)),
        Command::Group(args) => cli::exit_on_error(cli::group::run(args)),
        Command::Check(args) => cli::check::run_check(args),
        Command::Explain(args) => cli::exit_on_error(cli::check::run_explain(args)),
    }
}

fn init_logging(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
        auto_create_topics: args.auto_create_topics,
        default_partitions: args.default_partitions,
    };
    let config = cli::check::serve_config(args.config.as_deref(), overrides)?;
    let broker = Arc::new(
        Broker::open(Env::system(), &config.data_dir, config.broker_config())
            .with_context(|| format!("opening data directory {}", config.data_dir.display()))?,
    );
    if args.config.is_some() {
        cli::check::apply_declared_topics(&broker, &config, args.allow_data_loss)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.kafka_listener)
            .await
            .with_context(|| format!("binding the Kafka listener to {}", config.kafka_listener))?;
        let advertised = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let ticker = {
            let broker = broker.clone();
            let mut stop = stop_rx.clone();
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
        };
        let server = tokio::spawn(veltrix_kafka::serve(
            listener,
            broker.clone(),
            config.kafka_config(advertised),
            stop_rx,
        ));
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        let _ = server.await;
        let _ = ticker.await;
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.close()).await?;
        tracing::info!("stopped cleanly");
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
