//! `veltrix topic create|list|describe|delete`: topic administration.
//!
//! `list` prints one topic per line, its name and partition count separated by
//! a tab, sorted by name, for scripts. `describe` prints the partitions with
//! their leader, replicas, log start and end offsets (ListOffsets), then the
//! configuration as DescribeConfigs reports it, each entry with its source,
//! and, for a topic with a duplicate window, the window's figures from the
//! HTTP API (`--http`), which the Kafka protocol has no answer for.

use anyhow::Context;
use veltrix_client::{Client, OffsetSpec, config_source_name};

use super::{ConnectArgs, aligned, block_on, plural, print_table};

#[derive(clap::Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TopicCommand {
    /// Creates a topic.
    Create(CreateArgs),
    /// Lists the topics: name and partition count, tab-separated.
    List(ConnectArgs),
    /// Shows a topic's partitions, their offsets, and its configuration.
    Describe(DescribeArgs),
    /// Deletes a topic and all its records.
    Delete(DeleteArgs),
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// The topic's name.
    name: String,
    /// Number of partitions (the broker's default if not given).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// A topic setting under its Kafka name, e.g. `retention.ms=86400000`;
    /// repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
    configs: Vec<(String, String)>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    /// The topic's name.
    name: String,
    /// The broker's HTTP listener, HOST:PORT, for a duplicate window's
    /// figures (ids in the window, duplicates dropped).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args, Debug)]
struct DeleteArgs {
    /// The topic's name.
    name: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, not `{s}`")),
    }
}

pub fn run(args: TopicArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            TopicCommand::Create(a) => create(a).await,
            TopicCommand::List(a) => list(a).await,
            TopicCommand::Describe(a) => describe(a).await,
            TopicCommand::Delete(a) => delete(a).await,
        }
    })
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let mut client = args.connect.connect().await?;
    let created = client.create_topic(&args.name, args.partitions, &args.configs).await?;
    match created.partitions {
        Some(n) => println!(
            "created topic {} with {}",
            created.name,
            plural(n.unsigned_abs(), "partition")
        ),
        None => println!("created topic {}", created.name),
    }
    Ok(())
}

async fn list(connect: ConnectArgs) -> anyhow::Result<()> {
    let mut client = connect.connect().await?;
    let mut topics = client.metadata(None).await?.topics;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    for t in topics {
        match t.error {
            None => println!("{}\t{}", t.name, t.partitions.len()),
            Some(e) => println!("{}\t{e}", t.name),
        }
    }
    Ok(())
}

/// A partition's log start and end offsets (-1 when unknown).
struct LogRange {
    start: i64,
    end: i64,
}

/// The log start and end offset of every partition.
async fn offsets(client: &mut Client, topic: &str, partitions: &[i32]) -> anyhow::Result<Vec<LogRange>> {
    let ask = |spec| partitions.iter().map(|p| (*p, spec)).collect::<Vec<_>>();
    let starts = client.list_offsets(topic, &ask(OffsetSpec::Earliest)).await?;
    let ends = client.list_offsets(topic, &ask(OffsetSpec::Latest)).await?;
    Ok(starts
        .iter()
        .zip(&ends)
        .map(|(s, e)| LogRange {
            start: s.offset.unwrap_or(-1),
            end: e.offset.unwrap_or(-1),
        })
        .collect())
}

fn node_list(nodes: &[i32]) -> String {
    nodes.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let mut client = args.connect.connect().await?;
    let topic = client.topic(&args.name).await?;
    let indexes: Vec<i32> = topic.partitions.iter().map(|p| p.index).collect();
    let offsets = offsets(&mut client, &args.name, &indexes)
        .await
        .with_context(|| format!("reading the offsets of topic `{}`", args.name))?;
    let configs = client.describe_topic_configs(&args.name).await?;
    println!("Topic: {}", topic.name);
    if let Some(id) = &topic.id {
        println!("Id: {id}");
    }
    println!("Partitions: {}", topic.partitions.len());
    println!();
    // An error column only when a partition has one.
    let errors = topic.partitions.iter().any(|p| p.error.is_some());
    let rows: Vec<Vec<String>> = topic
        .partitions
        .iter()
        .zip(offsets)
        .map(|(p, LogRange { start, end })| {
            let mut row = vec![
                p.index.to_string(),
                p.leader.to_string(),
                node_list(&p.replicas),
                node_list(&p.isr),
                start.to_string(),
                end.to_string(),
            ];
            row.extend(p.error.as_ref().map(ToString::to_string));
            row
        })
        .collect();
    let header = ["PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START", "END", "ERROR"];
    print_table(&header[..if errors { 7 } else { 6 }], &rows);
    println!();
    println!("Configs:");
    let rows: Vec<Vec<String>> = configs
        .iter()
        .map(|c| {
            let value = match (&c.value, c.sensitive) {
                (_, true) => "(sensitive)",
                (Some(v), false) => v.as_str(),
                (None, false) => "(null)",
            };
            vec![
                format!("  {}", c.name),
                format!("= {value}"),
                format!("({})", config_source_name(c.source)),
            ]
        })
        .collect();
    print!("{}", aligned(&rows));
    let window_ms = configs
        .iter()
        .find(|c| c.name == "veltrix.dedup.window.ms")
        .and_then(|c| c.value.as_deref())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    match dedup_figures(&args.http, &args.name, args.connect.timeout_ms).await {
        Ok(Some(dedup)) => {
            println!();
            println!("Duplicate window:");
            print!("{}", aligned(&dedup_rows(&dedup)));
        }
        Ok(None) => {}
        Err(e) if window_ms > 0 => {
            println!();
            println!("Duplicate window: {window_ms} ms; its figures are unavailable ({e:#}); pass --http HOST:PORT");
        }
        Err(_) => {}
    }
    Ok(())
}

/// The topic's `dedup` object from `GET /api/v1/topics/{name}`, `None` if it
/// has no window.
async fn dedup_figures(http: &str, name: &str, timeout_ms: u64) -> anyhow::Result<Option<serde_json::Value>> {
    let url = format!("{}/api/v1/topics/{name}", super::dlq::base_url(http));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(timeout_ms))
        .build()?;
    let topic: serde_json::Value = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("GET {url}"))?;
    Ok(topic.get("dedup").filter(|d| !d.is_null()).cloned())
}

/// The window's figures as `name = value` rows.
fn dedup_rows(dedup: &serde_json::Value) -> Vec<Vec<String>> {
    let field = |key: &str| match dedup.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".to_owned(),
        Some(v) => v.to_string(),
    };
    let source = match field("id_source").as_str() {
        "key" => "the record key".to_owned(),
        _ => format!("header `{}`", field("id_header")),
    };
    [
        ("window", format!("{} ms, id from {source}", field("window_ms"))),
        (
            "ids in the window",
            format!("{} (at most {})", field("ids"), field("ids_max")),
        ),
        ("duplicates dropped", field("duplicates_dropped")),
        ("records without an id", field("records_without_id")),
        ("forgotten early", field("evicted_early")),
        ("effective window", format!("{} ms", field("effective_window_ms"))),
        ("memory", format!("{} bytes", field("memory_bytes"))),
    ]
    .into_iter()
    .map(|(k, v)| vec![format!("  {k}"), format!("= {v}")])
    .collect()
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let mut client = args.connect.connect().await?;
    client.delete_topic(&args.name).await?;
    println!("deleted topic {}", args.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_key_value_pairs() {
        assert_eq!(
            parse_config("retention.ms=1000"),
            Ok(("retention.ms".into(), "1000".into()))
        );
        assert_eq!(parse_config("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_config("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_config("novalue").is_err());
        assert!(parse_config("=x").is_err());
    }

    #[test]
    fn a_duplicate_windows_figures_read_as_rows() {
        let dedup = serde_json::json!({
            "window_ms": 120000, "id_source": "header", "id_header": "message-id", "ids": 7, "ids_max": 1000,
            "duplicates_dropped": 3, "records_without_id": 0, "evicted_early": 0,
            "effective_window_ms": 120000, "memory_bytes": 900, "snapshot_ms": null,
        });
        let text = aligned(&dedup_rows(&dedup));
        assert!(
            text.contains("  window                 = 120000 ms, id from header `message-id`"),
            "{text}"
        );
        assert!(text.contains("ids in the window      = 7 (at most 1000)"), "{text}");
        assert!(text.contains("duplicates dropped     = 3"), "{text}");
        let by_key = dedup_rows(&serde_json::json!({"id_source": "key", "window_ms": 5}));
        assert_eq!(by_key[0][1], "= 5 ms, id from the record key");
    }
}
