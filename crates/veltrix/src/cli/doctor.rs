//! `veltrix doctor FILE`: lints a Kafka client's configuration (`.properties`
//! or JSON) for settings that lose, duplicate or reorder records, and
//! `veltrix doctor --explain [RULE]`: its rule catalogue.
//!
//! The linting is `veltrix-doctor`'s; this module reads the file, and with
//! `--broker` asks a running broker (DescribeConfigs) for its and the
//! topics' size limits and retention, and for its listeners (protocol,
//! address, SASL mechanisms), handed to the lint as plain data. It connects
//! without TLS or SASL (`veltrix-client` has neither yet), so `--broker`
//! names a PLAINTEXT listener; the broker's answer describes all of them. It
//! prints every finding (rustc's layout, or JSON with `--format json`) and a
//! summary line. Exit status: 0 without errors, 1 with one (or, with
//! `--strict`, a warning), 2 when the check could not run: a usage error, an
//! unreadable file, a broker that cannot be asked, an unknown rule.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use veltrix_client::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use veltrix_client::kafka_protocol::messages::{ApiKey, DescribeConfigsRequest};
use veltrix_client::kafka_protocol::protocol::StrBytes;
use veltrix_client::{Client, ClientConfig, error_name};
use veltrix_doctor::{BrokerLimits, Dialect, LintOptions, Role, TopicLimits, rules};

/// The largest configuration file read: client configurations are a few
/// kilobytes, and a bound keeps a wrong path (a log, a binary) from being
/// read whole.
pub const FILE_BYTES_MAX: u64 = 1 << 20;

/// Exit status when the check could not run.
const EXIT_USAGE: i32 = 2;

/// DescribeConfigs resource type of a broker.
const RESOURCE_BROKER: i8 = 4;

/// Arguments of `veltrix doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The client configuration: a `.properties` file or a JSON object.
    #[arg(required_unless_present = "explain")]
    pub file: Option<PathBuf>,
    /// The client the file is for: `java` or `librdkafka` [default: told
    /// from the keys].
    #[arg(long, value_parser = ["java", "librdkafka"])]
    pub client: Option<String>,
    /// What the client does: `producer`, `consumer` or `both` [default: told
    /// from the keys].
    #[arg(long, value_parser = ["producer", "consumer", "both"])]
    pub role: Option<String>,
    /// Fail (exit status 1) on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Output format: `text` (rustc-style diagnostics) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// A running broker, as HOST:PORT, to compare record sizes with its limits
    /// and the security settings with its listeners. It is reached without
    /// TLS or SASL: name a PLAINTEXT listener.
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<String>,
    /// A topic the client uses, whose limits and retention `--broker` reads;
    /// repeatable.
    #[arg(long = "topic", value_name = "NAME", requires = "broker")]
    pub topics: Vec<String>,
    /// The longest time the application spends on the records of one poll,
    /// in milliseconds, to compare with `max.poll.interval.ms`.
    #[arg(long, value_name = "MS")]
    pub processing_ms: Option<u64>,
    /// Time limit of connecting to `--broker` and of each request, in
    /// milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Explains a rule (an id such as `D115`, or a name), or lists them all.
    #[arg(long, value_name = "RULE", num_args = 0..=1, default_missing_value = "")]
    pub explain: Option<String>,
}

/// Runs `veltrix doctor` and exits with its status.
pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let code = match check(&args) {
        Ok(code) => code,
        Err(e) => {
            if args.format == "json" {
                // Whatever went wrong, `--format json` prints JSON.
                let file = args.file.clone().unwrap_or_default();
                let json = super::check::failure_json(&file, &e, "findings");
                println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
            }
            eprintln!("error: {}", super::error_chain(&e));
            EXIT_USAGE
        }
    };
    std::process::exit(code);
}

/// Does the work; the exit status, or why the check could not run.
fn check(args: &DoctorArgs) -> anyhow::Result<i32> {
    if let Some(wanted) = &args.explain {
        explain(wanted)?;
        return Ok(0);
    }
    let Some(path) = &args.file else {
        anyhow::bail!("no file given");
    };
    let source = read(path)?;
    let broker = match &args.broker {
        Some(addr) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let limits = runtime
                .block_on(broker_limits(addr, &args.topics, args.timeout_ms))
                .with_context(|| format!("reading the limits of the broker at {addr}"))?;
            Some(limits)
        }
        None => None,
    };
    let options = LintOptions {
        client: args.client.as_deref().and_then(Dialect::from_name),
        role: args.role.as_deref().and_then(Role::from_name),
        broker,
        processing_ms: args.processing_ms,
        ..LintOptions::default()
    };
    let report = veltrix_doctor::lint(&path.display().to_string(), &source, &options);
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render(std::io::stdout().is_terminal()));
    }
    Ok(report.exit_code(args.strict))
}

/// The file's text, read within [`FILE_BYTES_MAX`]; bytes that are not UTF-8
/// become U+FFFD (Java reads `.properties` files as Latin-1, whose letters
/// beyond ASCII no client key uses).
fn read(path: &PathBuf) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        anyhow::bail!(
            "{} is larger than {FILE_BYTES_MAX} bytes; is it a client configuration?",
            path.display()
        );
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Prints a rule's explanation, or the catalogue when `wanted` is empty.
fn explain(wanted: &str) -> anyhow::Result<()> {
    if wanted.is_empty() {
        for rule in rules::CATALOGUE {
            println!(
                "{}  {:<8} {:<36} {}",
                rule.id,
                rule.severity.name(),
                rule.name,
                rule.summary
            );
        }
        return Ok(());
    }
    match rules::find(wanted) {
        Some(rule) => {
            print!("{}", rules::explain(rule));
            Ok(())
        }
        None => anyhow::bail!("no rule `{wanted}` (`veltrix doctor --explain` lists them)"),
    }
}

/// The broker's `message.max.bytes` and listeners and, for each topic, its
/// `max.message.bytes` and `retention.ms`, as DescribeConfigs reports them.
async fn broker_limits(addr: &str, topics: &[String], timeout_ms: u64) -> anyhow::Result<BrokerLimits> {
    let timeout = Duration::from_millis(timeout_ms);
    let config = ClientConfig {
        client_id: "veltrix-doctor".to_owned(),
        connect_timeout: timeout,
        request_timeout: timeout,
        ..ClientConfig::default()
    };
    let mut client = Client::connect(addr, config).await?;
    let metadata = client
        .metadata(Some(&[]))
        .await
        .context("reading the cluster's metadata")?;
    // The broker answering is the one whose limits apply to this client's
    // requests; without a match (an advertised name), the first one listed.
    let broker_id = metadata
        .brokers
        .iter()
        .find(|b| format!("{}:{}", b.host, b.port) == addr)
        .or_else(|| metadata.brokers.first())
        .map_or(0, |b| b.node_id);
    let configs = broker_configs(&mut client, broker_id).await?;
    let mut limits = BrokerLimits {
        source: addr.to_owned(),
        message_max_bytes: configs.get("message.max.bytes").and_then(|v| v.parse().ok()),
        topics: Vec::new(),
        listeners: veltrix_doctor::broker_listeners(&configs),
    };
    for name in topics {
        let entries = client
            .describe_topic_configs(name)
            .await
            .with_context(|| format!("describing topic `{name}`"))?;
        let value = |key: &str| entries.iter().find(|e| e.name == key).and_then(|e| e.value.clone());
        limits.topics.push(TopicLimits {
            name: name.clone(),
            max_message_bytes: value("max.message.bytes").and_then(|v| v.parse().ok()),
            // -1 is no limit.
            retention_ms: value("retention.ms").and_then(|v| v.parse().ok()),
        });
    }
    Ok(limits)
}

/// Every setting broker `broker_id` reports, by name. All of them are asked
/// for: the per-listener keys (`listener.name.<name>.sasl.enabled.mechanisms`)
/// cannot be named before the listeners are known.
async fn broker_configs(client: &mut Client, broker_id: i32) -> anyhow::Result<BTreeMap<String, String>> {
    let connection = client.connection();
    let version = connection.version(ApiKey::DescribeConfigs)?;
    let resource = DescribeConfigsResource::default()
        .with_resource_type(RESOURCE_BROKER)
        .with_resource_name(StrBytes::from_string(broker_id.to_string()))
        .with_configuration_keys(None);
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let response = connection.call(&request, version).await?;
    let Some(result) = response.results.iter().find(|r| r.resource_type == RESOURCE_BROKER) else {
        anyhow::bail!("DescribeConfigs does not mention broker {broker_id}");
    };
    if result.error_code != 0 {
        anyhow::bail!(
            "describing broker {broker_id}: {}{}",
            error_name(result.error_code),
            result
                .error_message
                .as_ref()
                .map(|m| format!(": {}", m.as_str()))
                .unwrap_or_default()
        );
    }
    Ok(result
        .configs
        .iter()
        .filter_map(|c| Some((c.name.as_str().to_owned(), c.value.as_ref()?.as_str().to_owned())))
        .collect())
}
