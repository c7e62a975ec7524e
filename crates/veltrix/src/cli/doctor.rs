//! `veltrix doctor FILE`: lints a Kafka client's configuration (`.properties`
//! or JSON) for settings that lose, duplicate or reorder records, and
//! `veltrix doctor --explain [RULE]`: its rule catalogue.
//!
//! The linting is `veltrix-doctor`'s; this module reads the file, and with
//! `--broker` asks a running broker (DescribeConfigs) for its and the
//! topics' size limits and retention, and for its listeners (protocol,
//! address, SASL mechanisms), handed to the lint as plain data. At one of
//! the client's own addresses it connects as the client does (TLS and SASL
//! from the file, `veltrix_doctor::broker_connection`); at another, in
//! clear. A connection that fails because of the client's settings (TLS
//! trust, credentials, protocol, mechanism) is handed to the lint too, which
//! reports why. It prints every finding (rustc's layout, or JSON with `--format json`) and a
//! summary line. Exit status: 0 without errors, 1 with one (or, with
//! `--strict`, a warning), 2 when the check could not run: a usage error, an
//! unreadable file, a broker that cannot be asked, an unknown rule.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use veltrix_client::kafka_protocol::messages::SaslHandshakeRequest;
use veltrix_client::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use veltrix_client::kafka_protocol::messages::{ApiKey, DescribeConfigsRequest};
use veltrix_client::kafka_protocol::protocol::StrBytes;
use veltrix_client::{
    Client, ClientCertificate, ClientConfig, ClientError, Password, SaslMechanism, SaslSettings, Security, TlsFailure,
    TlsSettings, error_name,
};
use veltrix_doctor::{
    BrokerConnection, BrokerFailure, BrokerLimits, ConnectFailure, Dialect, LintOptions, Role, TopicLimits, rules,
};

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
    /// and the security settings with its listeners. One of the client's
    /// `bootstrap.servers` (or, alone, the first of them) is reached as the
    /// client does, with its TLS and SASL settings; another address without
    /// them (the broker's loopback PLAINTEXT listener).
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "")]
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
    let mut options = LintOptions {
        client: args.client.as_deref().and_then(Dialect::from_name),
        role: args.role.as_deref().and_then(Role::from_name),
        processing_ms: args.processing_ms,
        ..LintOptions::default()
    };
    if let Some(broker) = &args.broker {
        let wanted = Some(broker.as_str()).filter(|b| !b.is_empty());
        let connection = veltrix_doctor::broker_connection(&path.display().to_string(), &source, &options, wanted);
        let (limits, failure) = ask_broker(&connection, &args.topics, args.timeout_ms)?;
        options.broker = limits;
        options.broker_failure = failure.map(|failure| BrokerFailure { connection, failure });
    }
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

/// The broker's limits and listeners read through `connection`, and the
/// failure the client's settings explain, if any; an error when the broker
/// cannot be asked at all (not running, a timeout, a refusal of the request).
/// Settings the doctor cannot follow are reported, and the broker is asked
/// in clear instead: its listeners still judge the client's protocol.
fn ask_broker(
    connection: &BrokerConnection,
    topics: &[String],
    timeout_ms: u64,
) -> anyhow::Result<(Option<BrokerLimits>, Option<ConnectFailure>)> {
    if let Some(problem) = &connection.problem {
        let settings = Some(ConnectFailure::Settings(problem.clone()));
        if connection.address.is_empty() {
            return Ok((None, settings));
        }
        let plain = BrokerConnection {
            tls: None,
            sasl: None,
            problem: None,
            ..connection.clone()
        };
        return Ok(match ask_broker(&plain, topics, timeout_ms)? {
            (Some(limits), _) => (Some(limits), settings),
            (None, _) => (None, settings),
        });
    }
    let addr = connection.address.as_str();
    let timeout = Duration::from_millis(timeout_ms);
    let config = ClientConfig {
        client_id: "veltrix-doctor".to_owned(),
        connect_timeout: timeout,
        request_timeout: timeout,
        security: security(connection)?,
        ..ClientConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match broker_limits(addr, config.clone(), topics).await {
            Ok(limits) => Ok((Some(limits), None)),
            Err(e) => match failure_of(&e, addr, &config).await {
                Some(failure) => Ok((None, Some(failure))),
                None => Err(e.context(format!("reading the limits of the broker at {addr}"))),
            },
        }
    })
}

/// The client library's settings for the doctor's connection.
fn security(c: &BrokerConnection) -> anyhow::Result<Security> {
    let tls = c.tls.as_ref().map(|t| TlsSettings {
        ca_file: t.ca_file.as_ref().map(PathBuf::from),
        client_certificate: match (&t.cert_file, &t.key_file) {
            (Some(cert), Some(key)) => Some(ClientCertificate {
                cert_file: cert.into(),
                key_file: key.into(),
            }),
            _ => None,
        },
        server_name: None,
        verify_name: t.verify_name,
    });
    let sasl = match &c.sasl {
        Some(s) => Some(SaslSettings {
            mechanism: SaslMechanism::from_name(&s.mechanism)
                .with_context(|| format!("the SASL mechanism `{}` is not spoken", s.mechanism))?,
            user: s.user.clone(),
            password: Password::new(s.password.clone()),
        }),
        None => None,
    };
    Ok(Security { tls, sasl })
}

/// What a failed connection says about the client's settings, if anything:
/// a TLS handshake or file, the credentials, the protocol or the mechanism.
/// A connection without SASL closed at its first request is probed once
/// more with a SaslHandshake, whose answer lists the listener's mechanisms.
async fn failure_of(e: &anyhow::Error, addr: &str, config: &ClientConfig) -> Option<ConnectFailure> {
    let error = e.downcast_ref::<ClientError>()?;
    Some(match error {
        ClientError::TlsFile { what, path, message } => ConnectFailure::TlsFile {
            what: (*what).to_owned(),
            path: path.display().to_string(),
            message: message.clone(),
        },
        ClientError::TlsSettings(message) => ConnectFailure::Settings(message.clone()),
        ClientError::Tls { failure, .. } => tls_failure(failure),
        ClientError::TlsListener { .. } => ConnectFailure::ListenerIsTls,
        ClientError::SaslMechanism { mechanism, offered, .. } => ConnectFailure::MechanismNotEnabled {
            mechanism: (*mechanism).to_owned(),
            offered: offered.clone(),
        },
        ClientError::SaslNotEnabled { .. } => ConnectFailure::SaslNotEnabled,
        ClientError::Authentication {
            mechanism,
            user,
            message,
            ..
        } => ConnectFailure::AuthenticationFailed {
            mechanism: (*mechanism).to_owned(),
            user: user.clone(),
            message: message.clone(),
        },
        ClientError::Sasl { error, .. } => ConnectFailure::ServerNotProven(error.to_string()),
        ClientError::Closed { .. } if config.security.sasl.is_none() => ConnectFailure::SaslRequired {
            offered: sasl_offered(addr, config).await?,
        },
        _ => return None,
    })
}

fn tls_failure(failure: &TlsFailure) -> ConnectFailure {
    match failure {
        TlsFailure::UnknownCa => ConnectFailure::UnknownCa,
        TlsFailure::NameMismatch { expected, presented } => ConnectFailure::NameMismatch {
            expected: expected.clone(),
            presented: presented.clone(),
        },
        TlsFailure::Expired => ConnectFailure::BadCertificate("it has expired".into()),
        TlsFailure::NotYetValid => ConnectFailure::BadCertificate("it is not valid yet".into()),
        TlsFailure::BadCertificate(why) => ConnectFailure::BadCertificate(why.clone()),
        TlsFailure::Refused(alert) => ConnectFailure::HandshakeRefused(alert.clone()),
        TlsFailure::NotTls => ConnectFailure::ListenerNotTls,
        other => ConnectFailure::HandshakeRefused(other.to_string()),
    }
}

/// The mechanisms a listener offers, from its answer to a SaslHandshake on a
/// connection of its own; `None` when it has no SASL.
async fn sasl_offered(addr: &str, config: &ClientConfig) -> Option<Vec<String>> {
    // Kafka's UNSUPPORTED_SASL_MECHANISM.
    const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    let mut client = Client::connect(addr, config.clone()).await.ok()?;
    let connection = client.connection();
    let version = connection.version(ApiKey::SaslHandshake).ok()?;
    let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let response = connection.call(&request, version).await.ok()?;
    // Accepted, or refused with the list: either way a SASL listener.
    matches!(response.error_code, 0 | UNSUPPORTED_SASL_MECHANISM).then(|| {
        response
            .mechanisms
            .iter()
            .take(32)
            .map(|m| m.as_str().chars().take(64).collect())
            .collect()
    })
}

/// The broker's `message.max.bytes` and listeners and, for each topic, its
/// `max.message.bytes` and `retention.ms`, as DescribeConfigs reports them.
async fn broker_limits(addr: &str, config: ClientConfig, topics: &[String]) -> anyhow::Result<BrokerLimits> {
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
