//! `check`: parse, read against the schema, apply environment overrides,
//! resolve, run the rules, and report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use toml::de::DeTable;
use veltrix_core::TopicConfig;
use veltrix_core::groups::ConsumerAssignor;
use veltrix_core::share::ShareGroupSettings;
use veltrix_log::FlushPolicy;

use veltrix_diagnostic::LineIndex;

use crate::diagnostic::{Diagnostic, Location};
use crate::lints;
use crate::model::{Alert, DeclaredShareGroup, DeclaredTopic, LagThreshold, Profile, Tier, VeltrixConfig, Webhook};
use crate::probe::{Probe, SystemProbe};
use crate::raw::{self, Origin, Raw, RawTable};
use crate::rules::{self, Rule, RuleProfile, Severity};
use crate::schema::SHARE_GROUP_SETTINGS;

/// Collects diagnostics while a file is checked.
pub(crate) struct Ctx<'a> {
    source: &'a str,
    lines: LineIndex,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(source: &'a str) -> Ctx<'a> {
        Ctx {
            source,
            lines: LineIndex::new(source),
            diagnostics: Vec::new(),
        }
    }

    /// Records a problem found by `rule` at `at`; the caller fills in the
    /// label, help and note.
    pub(crate) fn emit(
        &mut self,
        rule: &'static Rule,
        at: Option<&Origin>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let location = at.map(|o| match o {
            Origin::File(span) => {
                let (line, column) = self.lines.line_col(self.source, span.start);
                Location::File {
                    span: span.clone(),
                    line,
                    column,
                }
            }
            // A PostgreSQL URL's password is never shown, wherever it is.
            Origin::Env { var, value, name } => Location::Env {
                var: var.clone(),
                value: crate::model::redact_password(value),
                name: *name,
            },
        });
        self.diagnostics.push(Diagnostic {
            rule,
            severity: rule.severity,
            message: message.into(),
            location,
            label: String::new(),
            related: Vec::new(),
            help: String::new(),
            note: String::new(),
        });
        self.diagnostics.last_mut().expect("just pushed")
    }

    /// What was found.
    pub(crate) fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }

    /// The file's text.
    pub(crate) fn source(&self) -> &'a str {
        self.source
    }

    /// The 1-based line of `at`, when it is a place in the file.
    pub(crate) fn line(&self, at: Option<&Origin>) -> Option<usize> {
        match at? {
            Origin::File(span) => Some(self.lines.line_col(self.source, span.start).0),
            Origin::Env { .. } => None,
        }
    }

    /// Errors found so far.
    pub(crate) fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

impl Diagnostic {
    pub(crate) fn label(&mut self, label: impl Into<String>) -> &mut Self {
        self.label = label.into();
        self
    }

    pub(crate) fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = help.into();
        self
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) -> &mut Self {
        self.note = note.into();
        self
    }

    /// Adds a related place in the file; places in the environment are skipped.
    pub(crate) fn related(&mut self, at: Option<Origin>, label: impl Into<String>) -> &mut Self {
        if let Some(Origin::File(span)) = at {
            self.related.push((span, label.into()));
        }
        self
    }
}

/// The outcome of checking one configuration.
#[derive(Debug)]
pub struct Report {
    /// The file's name as diagnostics show it.
    pub path: String,
    /// The file's text, a PostgreSQL password in it replaced by `*`s.
    pub source: String,
    /// Every problem, in file order (environment overrides last).
    pub diagnostics: Vec<Diagnostic>,
    /// The resolved configuration, when there is no error.
    pub config: Option<VeltrixConfig>,
}

impl Report {
    /// Problems of severity error.
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    /// Problems of severity warning.
    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == severity).count()
    }

    /// `veltrix check`'s exit status: 1 on errors, and with `strict` on
    /// warnings too; 0 otherwise.
    pub fn exit_code(&self, strict: bool) -> i32 {
        i32::from(self.errors() > 0 || (strict && self.warnings() > 0))
    }

    /// A refusal of `serve --config` to apply this file to a data directory
    /// (V301, V302), as a diagnostic at the line that asks for the change: the
    /// topic's `partitions` or retention key, else `[defaults]`' retention,
    /// else the topic's table. `None` for refusals of another kind.
    pub fn refusal(&self, e: &crate::ApplyError) -> Option<Diagnostic> {
        use crate::ApplyError;
        let (rule, topic, key) = match e {
            ApplyError::PartitionsDecrease { topic, .. } => (&rules::PARTITIONS_DECREASE, topic, Some("partitions")),
            ApplyError::DataLoss { topic, key, .. } => (&rules::DATA_LOSS_REFUSED, topic, *key),
            _ => return None,
        };
        let mut ctx = Ctx::new(&self.source);
        let raw = DeTable::parse(&self.source)
            .map(|doc| raw::read(&mut ctx, &doc))
            .unwrap_or_default();
        let table = raw.topics.iter().find(|t| t.str("name") == Some(topic.as_str()));
        let at = key.and_then(|k| {
            table
                .and_then(|t| t.set_at(k))
                .or_else(|| (k != "partitions").then(|| raw.table("defaults").set_at(k)).flatten())
                .or_else(|| table.and_then(|t| t.header.clone().map(Origin::File)))
        });
        let (label, help) = match e {
            ApplyError::PartitionsDecrease { live, .. } => (
                format!("the topic has {live} partitions"),
                format!("declare `partitions = {live}` or more"),
            ),
            _ if key.is_some() => (
                "deletes stored records".to_owned(),
                "restore the longer value, or start once with `--allow-data-loss` if the loss is intended".to_owned(),
            ),
            _ => (
                String::new(),
                format!("declare `[[topic]]` `{topic}` again, or start once with `--allow-data-loss` to delete it"),
            ),
        };
        ctx.emit(rule, at.as_ref(), format!("refusing to start: {e}"))
            .label(label)
            .help(help)
            .note("nothing was changed: the data directory was not opened");
        ctx.diagnostics.pop()
    }

    /// Every diagnostic rendered, then a summary line.
    pub fn render(&self, styled: bool) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&d.render(&self.path, &self.source, styled));
            out.push_str("\n\n");
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// One line: what was found.
    pub fn summary(&self) -> String {
        let count = |n: usize, what: &str| match n {
            1 => format!("1 {what}"),
            n => format!("{n} {what}s"),
        };
        match (self.errors(), self.warnings(), &self.config) {
            (0, 0, Some(c)) => format!(
                "{}: ok ({} profile, {})",
                self.path,
                profile_name(c.profile),
                count(c.topics.len(), "topic")
            ),
            (0, w, _) => format!("{}: {}", self.path, count(w, "warning")),
            (e, 0, _) => format!("{}: {}", self.path, count(e, "error")),
            (e, w, _) => format!("{}: {}, {}", self.path, count(e, "error"), count(w, "warning")),
        }
    }

    /// The report as JSON: the file, counts and every diagnostic.
    pub fn to_json(&self) -> Value {
        json!({
            "file": self.path,
            "errors": self.errors(),
            "warnings": self.warnings(),
            "diagnostics": self.diagnostics.iter().map(|d| d.to_json(&self.path)).collect::<Vec<_>>(),
        })
    }
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Development => "development",
        Profile::Production => "production",
    }
}

/// The `VELTRIX_*` variables of this process, sorted, for [`check_source`].
pub fn process_env() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("VELTRIX_"))
        .collect();
    vars.sort();
    vars
}

/// Checks the file at `path` with this process's environment overrides and
/// the real machine's probe.
pub fn check_file(path: &Path) -> std::io::Result<Report> {
    let bytes = std::fs::read(path)?;
    Ok(check_bytes(
        &path.display().to_string(),
        &bytes,
        &process_env(),
        &SystemProbe,
    ))
}

/// [`check_source`] of a file's bytes: bytes that are not UTF-8 are reported
/// where they are (V016), as a diagnostic like any other.
pub fn check_bytes(path: &str, bytes: &[u8], env: &[(String, String)], probe: &dyn Probe) -> Report {
    match std::str::from_utf8(bytes) {
        Ok(source) => check_source(path, source, env, probe),
        Err(e) => {
            let source = String::from_utf8_lossy(bytes);
            let at = e.valid_up_to();
            let mut ctx = Ctx::new(&source);
            // The first bad byte is U+FFFD, three bytes, in the text shown.
            let span = at..(at + 3).min(source.len());
            ctx.emit(
                &rules::NOT_UTF8,
                Some(&Origin::File(span)),
                format!(
                    "the file is not UTF-8 text: byte 0x{:02x} cannot start a character",
                    bytes[at]
                ),
            )
            .label("not UTF-8")
            .help("save the file as UTF-8 (an editor's \"encoding\" setting, or `iconv -f latin1 -t utf-8`)")
            .note("a TOML file is UTF-8 by definition; nothing else in the file is checked until it is");
            let diagnostics = ctx.diagnostics;
            Report {
                path: path.to_owned(),
                source: source.to_string(),
                diagnostics,
                config: None,
            }
        }
    }
}

/// Where the key or table that a "duplicate key" error at `span` names was
/// first declared: an earlier line of the same table setting the same key,
/// or an earlier header of the same table.
fn first_declaration(source: &str, span: &std::ops::Range<usize>) -> Option<std::ops::Range<usize>> {
    let name = source.get(span.clone())?.trim();
    let line_start = source[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let is_table = source[line_start..span.start].trim_start().starts_with('[');
    let mut end = line_start;
    while end > 0 {
        let start = source[..end - 1].rfind('\n').map_or(0, |i| i + 1);
        let line = &source[start..end - 1];
        end = start;
        let text = line.trim_start();
        let indent = line.len() - text.len();
        if is_table {
            // Without a trailing comment: `[limits] # first`.
            let code = text.split('#').next().unwrap_or(text);
            let header = code.trim_end().trim_start_matches('[').trim_end_matches(']').trim();
            if text.starts_with('[') && header == name {
                let at = start + indent + text.find(name)?;
                return Some(at..at + name.len());
            }
            continue;
        }
        if text.starts_with('[') {
            return None;
        }
        if let Some(rest) = text.strip_prefix(name)
            && rest.trim_start().starts_with('=')
        {
            return Some(start + indent..start + indent + name.len());
        }
    }
    None
}

/// Checks `source`, shown as `path` in diagnostics, with `env` as the
/// environment (only `VELTRIX_<TABLE>__<KEY>` variables matter) and `probe`
/// answering questions about the machine.
pub fn check_source(path: &str, source: &str, env: &[(String, String)], probe: &dyn Probe) -> Report {
    let mut ctx = Ctx::new(source);
    // Settings from the environment alone leave the file empty on purpose.
    if source.trim_start_matches('\u{feff}').trim().is_empty() && !env.iter().any(|(k, _)| k.starts_with("VELTRIX_")) {
        ctx.emit(
            &rules::EMPTY_FILE,
            None,
            "the file is empty: every setting takes its default",
        )
        .help("check that this is the file you meant to write, and that it was written whole")
        .note("an empty file is a valid configuration, but more often a wrong path or a failed copy");
    }
    let mut raw = match DeTable::parse(source) {
        Ok(doc) => raw::read(&mut ctx, &doc),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let span = if span.is_empty() {
                span.start..(span.start + 1).min(source.len())
            } else {
                span
            };
            let first = e
                .message()
                .contains("duplicate key")
                .then(|| first_declaration(source, &span))
                .flatten();
            ctx.emit(
                &rules::TOML_SYNTAX,
                Some(&Origin::File(span)),
                "the file is not valid TOML",
            )
            .label(e.message().trim().to_owned())
            .related(first.map(Origin::File), "first declared here")
            .help("fix the TOML syntax at this point; nothing else in the file is checked until it parses")
            .note("strings are quoted, tables are declared once, and keys appear once per table (https://toml.io)");
            Raw::default()
        }
    };
    let parsed = ctx.errors() == 0 || ctx.diagnostics.iter().all(|d| d.rule.id != rules::TOML_SYNTAX.id);
    if parsed {
        raw::apply_env(&mut ctx, &mut raw, env);
    }
    let config = resolve(&raw);
    if parsed {
        lints::run(&mut ctx, &raw, &config, probe);
        crate::route_lints::run(&mut ctx, &raw, &config);
        crate::security_lints::run(&mut ctx, &raw, &config, probe);
        crate::storage_lints::run(&mut ctx, &raw);
    }
    let production = config.profile == Profile::Production;
    let mut diagnostics = ctx.diagnostics;
    diagnostics.retain(|d| production || d.rule.applies == RuleProfile::Always);
    // File order; overrides from the environment after the file's problems.
    diagnostics.sort_by_key(|d| match &d.location {
        Some(Location::File { span, .. }) => (0, span.start, String::new()),
        Some(Location::Env { var, .. }) => (1, 0, var.clone()),
        None => (2, 0, String::new()),
    });
    let ok = diagnostics.iter().all(|d| d.severity != Severity::Error);
    Report {
        path: path.to_owned(),
        source: crate::storage_lints::redact_source(source, &raw),
        diagnostics,
        config: ok.then_some(config),
    }
}

/// Builds the typed configuration from what was accepted; rejected and missing
/// settings take their defaults.
fn resolve(raw: &Raw) -> VeltrixConfig {
    let mut c = VeltrixConfig::default();
    resolve_broker(&mut c, raw.table("broker"));
    resolve_listeners(&mut c, raw.table("listeners"));
    resolve_limits(&mut c, raw.table("limits"));
    let d = raw.table("defaults");
    resolve_defaults(&mut c, d);
    resolve_groups(&mut c, raw.table("groups"));
    resolve_share(&mut c, raw.table("share"));
    resolve_dedup(&mut c, raw.table("dedup"));
    resolve_quotas(&mut c, raw.table("quotas"));
    resolve_observability(&mut c, raw.table("observability"));
    let default_partitions = c.broker.default_partitions;
    c.topics = raw
        .topics
        .iter()
        .filter_map(|t| resolve_topic(t, d, default_partitions))
        .collect();
    c.alerts = raw.alerts.iter().filter_map(resolve_alert).collect();
    let share_defaults = c.broker.share.defaults;
    c.share_groups = raw
        .share_groups
        .iter()
        .filter_map(|g| resolve_share_group(g, share_defaults))
        .collect();
    c.quotas = raw.quotas.iter().filter_map(resolve_quota).collect();
    c.routes = raw.routes.iter().filter_map(crate::route_lints::resolve).collect();
    c.listeners = raw
        .listeners
        .iter()
        .filter_map(crate::security_lints::resolve)
        .collect();
    crate::security_lints::resolve_security(&mut c.security, raw.table("security"));
    crate::security_lints::resolve_http(&mut c, raw);
    c.storage = crate::storage_lints::resolve(raw.table("storage"));
    c.broker.acl.enabled = c.security.authorization;
    c.broker.acl.super_users = c.security.super_users.iter().cloned().collect();
    c
}

/// `[broker]`.
fn resolve_broker(c: &mut VeltrixConfig, b: &RawTable) {
    if b.str("profile") == Some("production") {
        c.profile = Profile::Production;
    }
    if let Some(d) = b.str("data_dir") {
        c.data_dir = PathBuf::from(d);
    }
    if let Some(v) = b.bool("auto_create_topics") {
        c.broker.auto_create_topics = v;
    }
    set(&mut c.broker.topics_max, b.int("topics_max"));
    set(
        &mut c.broker.partitions_per_topic_max,
        b.int("partitions_per_topic_max"),
    );
    set(&mut c.broker.partitions_total_max, b.int("partitions_total_max"));
    set(&mut c.broker.open_files_max, b.int("open_files_max"));
    set(
        &mut c.broker.disk.bulk_free_percent_min,
        b.int("disk_bulk_free_percent_min"),
    );
    set(
        &mut c.broker.disk.standard_free_percent_min,
        b.int("disk_standard_free_percent_min"),
    );
    set(&mut c.broker.disk.reserve_bytes_min, b.int("disk_reserve_bytes_min"));
    set(&mut c.broker.active_files_max, b.int("active_files_max"));
    set(
        &mut c.broker.compaction.key_map_bytes_max,
        b.int("compaction_key_map_bytes_max"),
    );
    if let Some(rate) = b.int("compaction_io_byte_rate_max") {
        c.broker.compaction.io_bytes_per_sec_max = u64::try_from(rate).ok();
    }
}

/// `[listeners]`.
fn resolve_listeners(c: &mut VeltrixConfig, l: &RawTable) {
    if let Some(a) = l.str("kafka").and_then(|s| s.parse().ok()) {
        c.kafka_listener = a;
    }
    if let Some(a) = l.str("http").and_then(|s| s.parse().ok()) {
        c.http_listener = a;
    }
    if let Some(p) = l.str("kafka_principal") {
        c.kafka_principal = p.trim().to_owned();
    }
}

/// `[limits]`, the Kafka and the HTTP listeners'.
fn resolve_limits(c: &mut VeltrixConfig, k: &RawTable) {
    set(&mut c.limits.request_bytes_max, k.int("request_bytes_max"));
    set(&mut c.limits.in_flight_bytes_max, k.int("in_flight_bytes_max"));
    set(&mut c.limits.connections_max, k.int("connections_max"));
    set(
        &mut c.limits.requests_in_flight_per_connection_max,
        k.int("requests_in_flight_per_connection_max"),
    );
    set(&mut c.limits.fetch_wait_ms_max, k.int("fetch_wait_ms_max"));
    set(&mut c.limits.fetch_bytes_max, k.int("fetch_bytes_max"));
    set(&mut c.limits.request_body_ms_max, k.int("request_body_ms_max"));
    set(&mut c.limits.connection_idle_ms_max, k.int("connection_idle_ms_max"));
    set(&mut c.limits.warning_interval_ms, k.int("warning_interval_ms"));
    set(&mut c.limits.accept_backoff_ms_max, k.int("accept_backoff_ms_max"));
    set(
        &mut c.limits.tier_bulk_throttle_percent,
        k.int("tier_bulk_throttle_percent"),
    );
    set(
        &mut c.limits.tier_standard_throttle_percent,
        k.int("tier_standard_throttle_percent"),
    );
    set(&mut c.limits.tier_throttle_ms_max, k.int("tier_throttle_ms_max"));
    set(
        &mut c.limits.tier_critical_latency_target_ms,
        k.int("tier_critical_latency_target_ms"),
    );
    set(&mut c.limits.connections_per_ip_max, k.int("connections_per_ip_max"));
    set(
        &mut c.limits.failing_produce_requests_per_second_max,
        k.int("failing_produce_requests_per_second_max"),
    );
    set(
        &mut c.limits.failing_produce_throttle_ms_max,
        k.int("failing_produce_throttle_ms_max"),
    );
    set(
        &mut c.limits.connections_per_ip_per_second_max,
        k.int("connections_per_ip_per_second_max"),
    );
    set(&mut c.http_limits.connections_max, k.int("http_connections_max"));
    set(&mut c.http_limits.idle_ms_max, k.int("http_idle_ms_max"));
    c.http_limits.warning_interval_ms = c.limits.warning_interval_ms;
    set(&mut c.limits.shutdown_drain_ms_max, k.int("shutdown_drain_ms_max"));
    c.http_limits.shutdown_drain_ms_max = c.limits.shutdown_drain_ms_max;
    let txn = &mut c.broker.transactions;
    set(&mut txn.transaction_timeout_ms_max, k.int("transaction_timeout_ms_max"));
    set(&mut txn.transactional_ids_max, k.int("transactional_ids_max"));
    set(&mut txn.transaction_partitions_max, k.int("transaction_partitions_max"));
    set(&mut txn.transaction_groups_max, k.int("transaction_groups_max"));
    set(
        &mut txn.transactional_id_expiration_ms,
        k.int("transactional_id_expiration_ms"),
    );
}

/// `[defaults]`: the partition count and log settings of topics.
fn resolve_defaults(c: &mut VeltrixConfig, d: &RawTable) {
    let log = &mut c.broker.log;
    set(&mut c.broker.default_partitions, d.int("partitions"));
    if let Some(n) = d.int("retention_ms") {
        log.retention_ms = u64::try_from(n).ok();
    }
    if let Some(n) = d.int("retention_bytes") {
        log.retention_bytes = u64::try_from(n).ok();
    }
    set(&mut log.segment_bytes_max, d.int("segment_bytes_max"));
    set(&mut log.segment_age_ms_max, d.int("segment_age_ms_max"));
    set(&mut log.batch_bytes_max, d.int("batch_bytes_max"));
    set(&mut log.index_interval_bytes, d.int("index_interval_bytes"));
    set(&mut log.producers_max, d.int("producers_max"));
    set(&mut log.producer_id_expiration_ms, d.int("producer_id_expiration_ms"));
    if let (Some("interval"), Some(ms)) = (d.str("durability"), d.int("flush_interval_ms")) {
        log.flush = FlushPolicy::Interval {
            flush_interval_ms: ms.unsigned_abs(),
        };
    }
}

/// `[groups]`.
fn resolve_groups(c: &mut VeltrixConfig, g: &RawTable) {
    let groups = &mut c.broker.groups;
    set(&mut groups.session_timeout_ms_min, g.int("session_timeout_ms_min"));
    set(&mut groups.session_timeout_ms_max, g.int("session_timeout_ms_max"));
    set(
        &mut groups.initial_rebalance_delay_ms,
        g.int("initial_rebalance_delay_ms"),
    );
    set(&mut groups.group_members_max, g.int("group_members_max"));
    set(&mut groups.groups_max, g.int("groups_max"));
    set(
        &mut groups.offset_metadata_bytes_max,
        g.int("offset_metadata_bytes_max"),
    );
    set(&mut groups.offsets_retention_ms, g.int("offsets_retention_ms"));
    set(
        &mut groups.consumer_session_timeout_ms,
        g.int("consumer_session_timeout_ms"),
    );
    set(
        &mut groups.consumer_heartbeat_interval_ms,
        g.int("consumer_heartbeat_interval_ms"),
    );
    if let Some(a) = g.str("consumer_assignor").and_then(ConsumerAssignor::parse) {
        groups.consumer_assignor = a;
    }
}

/// `[share]`: limits, timings and the default group settings.
fn resolve_share(c: &mut VeltrixConfig, s: &RawTable) {
    let share = &mut c.broker.share;
    set(&mut share.groups_max, s.int("groups_max"));
    set(&mut share.group_members_max, s.int("group_members_max"));
    set(&mut share.sessions_max, s.int("sessions_max"));
    set(&mut share.session_timeout_ms, s.int("session_timeout_ms"));
    set(&mut share.heartbeat_interval_ms, s.int("heartbeat_interval_ms"));
    if let Some(on) = s.bool("dead_letter_topics_auto_create") {
        share.dead_letter_topics_auto_create = on;
    }
    let overrides = share_overrides(s);
    if let Ok(defaults) = ShareGroupSettings::resolve(share.defaults, &overrides) {
        share.defaults = defaults;
    }
}

/// `[dedup]`: the bounds of every topic's duplicate window.
fn resolve_dedup(c: &mut VeltrixConfig, d: &RawTable) {
    set(&mut c.broker.dedup.ids_max, d.int("ids_max"));
    set(&mut c.broker.dedup.id_bytes_max, d.int("id_bytes_max"));
    set(&mut c.broker.dedup.memory_bytes_max, d.int("memory_bytes_max"));
}

/// `[quotas]`.
fn resolve_quotas(c: &mut VeltrixConfig, q: &RawTable) {
    set(&mut c.broker.quotas.windows.burst_ms, q.int("burst_ms"));
    set(&mut c.broker.quotas.windows.throttle_ms_max, q.int("throttle_ms_max"));
    set(&mut c.broker.quotas.entities_max, q.int("entities_max"));
    set(&mut c.broker.quotas.sensors_max, q.int("sensors_max"));
}

/// A `[[quota]]`'s entity: each part named, the default, or left out; `None`
/// when it names neither part, or a part both ways (V022, V023).
pub(crate) fn quota_entity(q: &RawTable) -> Option<veltrix_core::quotas::QuotaEntity> {
    use veltrix_core::quotas::EntityName;
    let part = |name: &str, default: &str| match (q.str(name), q.bool(default) == Some(true)) {
        (Some(_), true) => Err(()),
        (Some(n), false) => Ok(Some(EntityName::Named(n.to_owned()))),
        (None, true) => Ok(Some(EntityName::Default)),
        (None, false) => Ok(None),
    };
    let entity = veltrix_core::quotas::QuotaEntity {
        user: part("user", "user_default").ok()?,
        client_id: part("client_id", "client_id_default").ok()?,
    };
    (entity.user.is_some() || entity.client_id.is_some()).then_some(entity)
}

fn resolve_quota(q: &RawTable) -> Option<crate::model::DeclaredQuota> {
    use veltrix_core::quotas::QuotaKind;
    let entity = quota_entity(q)?;
    let values = QuotaKind::ALL
        .into_iter()
        .filter_map(|k| Some((k, q.int(k.key())? as f64)))
        .collect();
    Some(crate::model::DeclaredQuota { entity, values })
}

/// The share-group settings `t` sets, by Kafka's names, as text.
pub(crate) fn share_overrides(t: &RawTable) -> Vec<(String, String)> {
    SHARE_GROUP_SETTINGS
        .iter()
        .filter_map(|(key, kafka)| {
            let text = match &t.settings.get(key)?.val {
                raw::Val::Int(n) => n.to_string(),
                raw::Val::Str(s) => s.clone(),
                raw::Val::Bool(b) => b.to_string(),
                raw::Val::List(_) | raw::Val::Map(_) | raw::Val::Tables(_) => return None,
            };
            Some(((*kafka).to_owned(), text))
        })
        .collect()
}

/// A `[[share_group]]` over the `[share]` defaults. Its values passed the
/// schema, whose ranges are the engine's, so resolving cannot fail unless a
/// value was rejected, and then the configuration is withheld anyway.
fn resolve_share_group(g: &RawTable, defaults: ShareGroupSettings) -> Option<DeclaredShareGroup> {
    let overrides = share_overrides(g);
    let settings = ShareGroupSettings::resolve(defaults, &overrides).ok()?;
    Some(DeclaredShareGroup {
        name: g.str("name")?.to_owned(),
        overrides,
        settings,
    })
}

/// `[observability]`.
fn resolve_observability(c: &mut VeltrixConfig, o: &RawTable) {
    let obs = &mut c.observability;
    if let Some(on) = o.bool("metrics_enabled") {
        obs.metrics_enabled = on;
    }
    c.broker.metrics_enabled = obs.metrics_enabled;
    set(&mut obs.lag_evaluation_interval_ms, o.int("lag_evaluation_interval_ms"));
    set(&mut obs.lag_history_points_max, o.int("lag_history_points_max"));
    if let Some(url) = o.str("webhook_url") {
        let mut w = Webhook {
            url: url.to_owned(),
            timeout_ms: 5_000,
            retries_max: 3,
            retry_backoff_ms: 500,
            queue_max: 1_000,
        };
        set(&mut w.timeout_ms, o.int("webhook_timeout_ms"));
        set(&mut w.retries_max, o.int("webhook_retries_max"));
        set(&mut w.retry_backoff_ms, o.int("webhook_retry_backoff_ms"));
        set(&mut w.queue_max, o.int("webhook_queue_max"));
        obs.webhook = Some(w);
    }
}

/// Sets `field` to `value` when there is one. Values were range-checked
/// against the schema, whose ranges fit every field's type.
fn set<T: TryFrom<i64>>(field: &mut T, value: Option<i64>) {
    if let Some(v) = value.and_then(|v| T::try_from(v).ok()) {
        *field = v;
    }
}

fn resolve_topic(t: &RawTable, defaults: &RawTable, default_partitions: u32) -> Option<DeclaredTopic> {
    let name = t.str("name")?.to_owned();
    let mut partitions = default_partitions;
    set(&mut partitions, t.int("partitions"));
    let unsigned = |key| t.int(key).and_then(|n| u64::try_from(n).ok());
    let interval = t.str("durability").or(defaults.str("durability")) == Some("interval");
    let tier = t.str("tier").and_then(Tier::parse);
    let critical = t.bool("critical") == Some(true) || tier == Some(Tier::Critical);
    Some(DeclaredTopic {
        name,
        partitions,
        config: TopicConfig {
            retention_ms: t.int("retention_ms"),
            retention_bytes: t.int("retention_bytes"),
            segment_bytes_max: unsigned("segment_bytes_max"),
            segment_age_ms_max: unsigned("segment_age_ms_max"),
            batch_bytes_max: t.int("batch_bytes_max").and_then(|n| u32::try_from(n).ok()),
            flush_interval_ms: unsigned("flush_interval_ms").filter(|_| interval),
            dedup_window_ms: unsigned("dedup_window_ms"),
            dedup_id_header: t.str("dedup_id_header").map(str::to_owned),
            dedup_id_source: t.str("dedup_id_source").and_then(veltrix_core::DedupIdSource::parse),
            // `critical = true` makes the topic critical for admission too.
            tier: if critical { Some(Tier::Critical) } else { tier },
            cleanup_policy: t
                .str("cleanup_policy")
                .and_then(|p| veltrix_core::CleanupPolicy::parse(p).ok()),
            delete_retention_ms: unsigned("delete_retention_ms"),
            min_compaction_lag_ms: unsigned("compaction_lag_ms_min"),
            max_compaction_lag_ms: unsigned("compaction_lag_ms_max"),
            min_cleanable_dirty_ppm: t
                .int("cleanable_dirty_percent_min")
                .and_then(|p| u32::try_from(p).ok())
                .map(|p| p * 10_000),
        },
        critical,
        tier,
        keyed: t.bool("keyed") == Some(true),
        peak_records_per_second: unsigned("peak_records_per_second"),
    })
}

pub(crate) fn resolve_alert(a: &RawTable) -> Option<Alert> {
    let threshold = match (
        a.int("lag_records_max"),
        a.int("lag_ms_max"),
        a.int("dead_letters_per_minute_max"),
    ) {
        (Some(n), None, None) => LagThreshold::Records(n.unsigned_abs()),
        (None, Some(ms), None) => LagThreshold::Ms(ms.unsigned_abs()),
        (None, None, Some(n)) => LagThreshold::DeadLettersPerMinute(n.unsigned_abs()),
        _ => return None,
    };
    Some(Alert {
        name: a.str("name").map(str::to_owned),
        group: a.str("group")?.to_owned(),
        topic: a.str("topic")?.to_owned(),
        threshold,
        for_ms: a.int("for_ms").unwrap_or(0).unsigned_abs(),
    })
}

/// Declared entries (`[[topic]]`s, `[[share_group]]`s) by name, first
/// declaration first.
pub(crate) fn by_name(entries: &[RawTable]) -> HashMap<&str, Vec<&RawTable>> {
    let mut by_name: HashMap<&str, Vec<&RawTable>> = HashMap::with_capacity(entries.len());
    for t in entries {
        if let Some(name) = t.str("name") {
            by_name.entry(name).or_default().push(t);
        }
    }
    by_name
}
