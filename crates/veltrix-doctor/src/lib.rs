//! `veltrix doctor`: a linter for Kafka client configurations.
//!
//! A client configuration, a Java `.properties` file or a JSON object, is
//! read with the place of every key and value ([`parse`]), for one client
//! family ([`Dialect`]: the Java clients or librdkafka, told from the keys or
//! given) and one [`Role`] (producer, consumer or both). Each setting is read
//! as that client reads it, defaults included: a key the file leaves out is
//! not neutral, and the two clients disagree on several defaults that decide
//! whether records are lost or duplicated. Then the rules of the [`rules`]
//! catalogue run: unknown keys (with "did you mean"), keys of the other
//! client, values of the wrong type, and the settings that lose, duplicate or
//! reorder records: acks, idempotence and what silently disables it,
//! retries, timeouts, buffers, auto-commit, offset reset, group timings,
//! isolation, partitioners, and record sizes against the broker's limits;
//! and whether the client can connect at all: its security protocol and SASL
//! mechanism against what Veltrix serves and what the broker's listener at
//! the client's address wants ([`security`]).
//!
//! Each [`Finding`] names the place (file, line and column, or the default in
//! force), says what is wrong, what it leads to in plain words, how to fix it,
//! and, when one line fixes it, the exact edit; it renders like rustc's
//! diagnostics. The broker's limits and listeners come in as plain data
//! ([`BrokerLimits`]), so the crate does no I/O: the `veltrix` binary reads
//! the file and asks the broker, connecting as the client does
//! ([`broker_connection`] reads how from the file) and reporting a failed
//! connection back ([`BrokerFailure`]), which becomes a finding.

mod checks;
pub mod client;
pub mod connect;
mod diagnostic;
pub mod keys;
pub mod parse;
pub mod rules;
pub mod security;

use serde_json::{Value, json};
use veltrix_diagnostic::LineIndex;

pub use client::{Dialect, Role, Settings};
pub use connect::{BrokerConnection, BrokerFailure, ConnectFailure, SaslCredentials, TlsFiles, broker_connection};
pub use diagnostic::{Finding, Fix, FixKind, Location};
pub use parse::{Format, ParsedFile};
pub use rules::{CATALOGUE, Rule, Scope, Severity};
pub use security::{Protocol, broker_listeners};

/// The session timeouts a Veltrix broker accepts by default (its
/// `[groups] session_timeout_ms_min` and `session_timeout_ms_max`).
pub const SESSION_TIMEOUT_MS_MIN: i64 = 6_000;
/// See [`SESSION_TIMEOUT_MS_MIN`].
pub const SESSION_TIMEOUT_MS_MAX: i64 = 1_800_000;

/// Below this, a delivery timeout does not outlast a leader election or a
/// broker restart.
pub const DELIVERY_TIMEOUT_MS_MIN_SAFE: i64 = 30_000;
/// A producer buffer smaller than this fills on the first burst.
pub const BUFFER_BYTES_MIN_SAFE: i64 = 1 << 20;
/// A producer buffer larger than this holds a lot to lose with the process.
pub const BUFFER_BYTES_MAX_SAFE: i64 = 1 << 30;
/// librdkafka's `queue.buffering.max.messages` below this (and not 0) fills
/// on the first burst.
pub const BUFFER_MESSAGES_MIN_SAFE: i64 = 1_000;

/// Limits of the broker and topics a client talks to, read from a running
/// broker (DescribeConfigs) by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerLimits {
    /// Where the limits come from, for messages (`127.0.0.1:9092`).
    pub source: String,
    /// The broker's `message.max.bytes`: the largest record batch it accepts
    /// on topics that do not override it.
    pub message_max_bytes: Option<u64>,
    /// The topics the client uses.
    pub topics: Vec<TopicLimits>,
    /// The broker's Kafka listeners, as its DescribeConfigs tells them
    /// ([`broker_listeners`]); empty when it does not, and then the client's
    /// security settings are not compared with them.
    pub listeners: Vec<BrokerListener>,
}

/// One Kafka listener of the broker: what a client connecting to its address
/// must speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerListener {
    /// Its name (`kafka`, `secure`), for messages.
    pub name: String,
    /// Its security protocol, which the client's `security.protocol` must be.
    pub protocol: Protocol,
    /// The `host:port` clients are told to connect to (`advertised.listeners`).
    pub advertised: String,
    /// The `host:port` it is bound to (`listeners`), when known; a wildcard
    /// host (`0.0.0.0`, `::`, none) takes connections to any of the
    /// machine's addresses.
    pub bound: Option<String>,
    /// The SASL mechanisms it offers, in the broker's order (SASL listeners
    /// only).
    pub mechanisms: Vec<String>,
}

/// One topic's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLimits {
    /// The topic's name.
    pub name: String,
    /// Its `max.message.bytes`: the largest record batch it accepts.
    pub max_message_bytes: Option<u64>,
    /// Its `retention.ms`; `None` when unlimited or unknown.
    pub retention_ms: Option<u64>,
}

/// What the caller knows beyond the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintOptions {
    /// The file's syntax; by default from its name and text.
    pub format: Option<Format>,
    /// The client; by default told from the keys.
    pub client: Option<Dialect>,
    /// The role; by default told from the keys.
    pub role: Option<Role>,
    /// The broker's and topics' limits, when known.
    pub broker: Option<BrokerLimits>,
    /// Why the connection to the broker failed, when it did: reported as a
    /// finding ([`connect`]).
    pub broker_failure: Option<BrokerFailure>,
    /// The longest time the application spends on the records of one poll,
    /// in milliseconds, when known.
    pub processing_ms: Option<u64>,
    /// The session timeouts the broker accepts, inclusive.
    pub session_timeout_ms_range: (i64, i64),
}

impl Default for LintOptions {
    fn default() -> LintOptions {
        LintOptions {
            format: None,
            client: None,
            role: None,
            broker: None,
            broker_failure: None,
            processing_ms: None,
            session_timeout_ms_range: (SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX),
        }
    }
}

/// Everything a lint found about one file.
#[derive(Debug, Clone)]
pub struct Report {
    /// The file's name, as given.
    pub path: String,
    /// Its text.
    pub source: String,
    /// The file as read.
    pub file: ParsedFile,
    /// The client it was read for.
    pub dialect: Dialect,
    /// Whether the client was given or told from the keys (rather than
    /// assumed).
    pub dialect_known: bool,
    /// The role it was read for.
    pub role: Role,
    /// Findings in file order; those without a place (defaults in force) last.
    pub findings: Vec<Finding>,
}

/// Lints `source`, the text of the file named `path`.
pub fn lint(path: &str, source: &str, options: &LintOptions) -> Report {
    let format = options.format.unwrap_or_else(|| Format::detect(path, source));
    let file = ParsedFile::parse(source, format);
    let detected_dialect = client::detect_dialect(&file);
    let dialect = options.client.or(detected_dialect).unwrap_or(Dialect::Java);
    let role = options
        .role
        .or_else(|| client::detect_role(&file))
        .unwrap_or(Role::Both);
    let settings = Settings {
        file: &file,
        dialect,
        source,
    };
    let mut findings = checks::run(&settings, role, options);
    let lines = LineIndex::new(source);
    for f in &mut findings {
        if let Some(loc) = &mut f.location {
            let (line, column) = lines.line_col(source, loc.span.start);
            loc.line = line;
            loc.column = column;
        }
    }
    findings.sort_by_key(|f| {
        (
            f.location.as_ref().map_or(usize::MAX, |l| l.span.start),
            f.rule.id,
            f.severity,
        )
    });
    Report {
        path: path.to_owned(),
        source: source.to_owned(),
        dialect_known: options.client.is_some() || detected_dialect.is_some(),
        file,
        dialect,
        role,
        findings,
    }
}

impl Report {
    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }

    /// The exit status: 1 with an error (or, when `strict`, a warning), else 0.
    pub fn exit_code(&self, strict: bool) -> i32 {
        let failing = self.count(Severity::Error) > 0 || (strict && self.count(Severity::Warning) > 0);
        i32::from(failing)
    }

    /// Every finding rendered, then a summary line.
    pub fn render(&self, styled: bool) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&f.render(&self.path, &self.source, styled));
            out.push_str("\n\n");
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// `FILE: 1 error, 2 warnings (librdkafka producer)`, or `FILE: ok (Java consumer)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (severity, noun) in [
            (Severity::Error, "error"),
            (Severity::Warning, "warning"),
            (Severity::Note, "note"),
        ] {
            match self.count(severity) {
                0 => {}
                1 => parts.push(format!("1 {noun}")),
                n => parts.push(format!("{n} {noun}s")),
            }
        }
        let role = match self.role {
            Role::Both => "producer and consumer",
            r => r.name(),
        };
        let what = format!("{} {role}", self.dialect.title());
        if self.count(Severity::Error) + self.count(Severity::Warning) == 0 {
            let notes = if parts.is_empty() {
                String::new()
            } else {
                format!(", {}", parts.join(", "))
            };
            format!("{}: ok ({what}{notes})", self.path)
        } else {
            format!("{}: {} ({what})", self.path, parts.join(", "))
        }
    }

    /// The report as JSON: the client and role it was read for, and every
    /// finding.
    pub fn to_json(&self) -> Value {
        json!({
            "file": self.path,
            "format": self.file.format.name(),
            "client": self.dialect.name(),
            "role": self.role.name(),
            "errors": self.count(Severity::Error),
            "warnings": self.count(Severity::Warning),
            "notes": self.count(Severity::Note),
            "findings": self.findings.iter().map(|f| f.to_json(&self.path)).collect::<Vec<_>>(),
        })
    }
}

/// The reference part of `docs/doctor.md`: the catalogue and every rule's
/// explanation. A test keeps the document equal to it.
pub fn docs_reference() -> String {
    format!(
        "## Rules\n\n{}\n## Rule explanations\n\n{}",
        rules::catalogue_markdown(),
        rules::explanations_markdown()
    )
}
