//! Rules that look at more than one value: topics against each other and
//! against the broker's limits, alerts against topics, and the production
//! lints. Each rule points at the setting to change, and adds the related
//! settings as context.

use std::collections::HashSet;
use std::net::SocketAddr;

use veltrix_core::{CoreError, validate_topic_name};
use veltrix_log::{FlushPolicy, LogConfig};

use crate::check::{Ctx, by_name, resolve_alert};
use crate::model::{DeclaredTopic, LagThreshold, VeltrixConfig};
use crate::probe::Probe;
use crate::raw::{Origin, Raw, RawTable};
use crate::rules;
use crate::schema;

/// A keyed topic at or above this rate is high-volume (lint V203).
pub const HIGH_VOLUME_RECORDS_PER_SECOND: i64 = 1_000;
/// Session timeouts below this let pauses remove healthy members (lint V211);
/// Kafka's default `group.min.session.timeout.ms`.
pub const SESSION_TIMEOUT_MS_MIN_SAFE: u64 = 6_000;
/// Session timeouts above this let a hung member stall partitions (lint V212);
/// Kafka's default `group.max.session.timeout.ms`.
pub const SESSION_TIMEOUT_MS_MAX_SAFE: u64 = 1_800_000;

/// Runs every rule that relates settings; production lints run always and are
/// dropped by the caller unless the profile is production.
pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, probe: &dyn Probe) {
    topic_names(ctx, raw);
    partition_limits(ctx, raw, c);
    durability(ctx, raw);
    let defaults = raw.table("defaults");
    let request_at = raw.table("limits").set_at("request_bytes_max");
    log_scope(
        ctx,
        &Scope {
            request_at: request_at.clone(),
            ..Scope::defaults(defaults, c)
        },
    );
    let named = raw.topics.iter().filter(|t| t.str("name").is_some());
    for (t, topic) in named.zip(&c.topics) {
        log_scope(
            ctx,
            &Scope {
                request_at: request_at.clone(),
                ..Scope::topic(t, defaults, topic, c)
            },
        );
        critical_topic(ctx, t, topic, c);
    }
    alerts(ctx, raw, c);
    broker(ctx, raw, c, probe);
    crate::path_lints::run(ctx, raw, probe);
    crate::unit_lints::run(ctx, raw, c);
    crate::quota_lints::run(ctx, raw);
    crate::share_lints::run(ctx, raw, c);
    crate::dedup_lints::run(ctx, raw, c);
    crate::compaction_lints::run(ctx, raw, c);
    production(ctx, raw, c, probe);
}

/// Where a missing setting's production lint points: the profile setting,
/// which is what turned the lint on.
fn profile_at(raw: &Raw) -> Option<Origin> {
    raw.table("broker").set_at("profile")
}

fn topic_names(ctx: &mut Ctx<'_>, raw: &Raw) {
    for t in &raw.topics {
        let (Some(name), Some(at)) = (t.str("name"), t.set_at("name")) else {
            continue;
        };
        if let Err(CoreError::InvalidTopicName { reason, .. }) = validate_topic_name(name) {
            let cleaned: String = name
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || ".-_".contains(ch) {
                        ch
                    } else {
                        '-'
                    }
                })
                .take(veltrix_core::TOPIC_NAME_BYTES_MAX)
                .collect();
            let help = if cleaned != name && !cleaned.is_empty() && cleaned != "." && cleaned != ".." {
                format!("rename it, for example `\"{cleaned}\"`")
            } else {
                "use 1 to 249 ASCII letters, digits, `.`, `_` or `-`".to_owned()
            };
            ctx.emit(
                &rules::INVALID_TOPIC_NAME,
                Some(&at),
                format!("invalid topic name `{name}`"),
            )
            .label(reason)
            .help(help)
            .note("Kafka clients and the broker refuse such a name; the topic could never be created");
        }
    }
    declared_twice(ctx, &raw.topics, &rules::DUPLICATE_TOPIC, "topic");
}

/// V008 and V012: an entry of `[[table]]` whose name an earlier one has.
pub(crate) fn declared_twice(ctx: &mut Ctx<'_>, entries: &[RawTable], rule: &'static rules::Rule, table: &str) {
    let what = table.replace('_', " ");
    for (name, decls) in by_name(entries) {
        for dup in decls.iter().skip(1) {
            ctx.emit(
                rule,
                dup.set_at("name").as_ref(),
                format!("{what} `{}` is declared twice", shown(name)),
            )
            .label("declared again here")
            .related(decls[0].set_at("name"), "first declared here")
            .help(format!("merge the two `[[{table}]]` entries into one"))
            .note("with two declarations it is undecided which settings the broker applies");
        }
    }
}

/// A name as diagnostics show it: escaped, and cut if it is very long.
pub(crate) fn shown(name: &str) -> String {
    let escaped = name.escape_debug().to_string();
    match escaped.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &escaped[..i]),
        None => escaped,
    }
}

fn partition_limits(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let b = raw.table("broker");
    let per_topic = c.broker.partitions_per_topic_max;
    let d = raw.table("defaults");
    if c.broker.default_partitions > per_topic {
        ctx.emit(
            &rules::PARTITIONS_OVER_TOPIC_MAX,
            d.at("partitions").as_ref(),
            format!(
                "the default partition count {} is above `partitions_per_topic_max` ({per_topic})",
                c.broker.default_partitions
            ),
        )
        .label("too many partitions")
        .related(b.set_at("partitions_per_topic_max"), "the limit")
        .help(format!(
            "lower it to {per_topic} or less, or raise `[broker] partitions_per_topic_max`"
        ))
        .note("every topic created without a count would be refused");
    }
    let named = raw.topics.iter().filter(|t| t.str("name").is_some());
    let mut total: u64 = 0;
    let mut over_total = false;
    for (i, (t, topic)) in named.zip(&c.topics).enumerate() {
        if topic.partitions > per_topic && t.declares("partitions") {
            ctx.emit(
                &rules::PARTITIONS_OVER_TOPIC_MAX,
                t.at("partitions").as_ref(),
                format!(
                    "topic `{}` has {} partitions, above `partitions_per_topic_max` ({per_topic})",
                    topic.name, topic.partitions
                ),
            )
            .label("too many partitions")
            .related(b.set_at("partitions_per_topic_max"), "the limit")
            .help(format!(
                "lower it to {per_topic} or less, or raise `[broker] partitions_per_topic_max`"
            ))
            .note("the broker refuses to create such a topic, so it could not be applied at start");
        }
        total += u64::from(topic.partitions);
        if !over_total && total > u64::from(c.broker.partitions_total_max) {
            over_total = true;
            ctx.emit(
                &rules::PARTITIONS_OVER_TOTAL_MAX,
                t.at("partitions").as_ref(),
                format!(
                    "the declared topics up to `{}` have {total} partitions, above `partitions_total_max` ({})",
                    topic.name, c.broker.partitions_total_max
                ),
            )
            .label("the total passes the limit here")
            .related(b.set_at("partitions_total_max"), "the limit")
            .help(format!(
                "raise `[broker] partitions_total_max` to at least {}, or lower partition counts",
                c.topics.iter().map(|t| u64::from(t.partitions)).sum::<u64>()
            ))
            .note("topics past the limit could not be created at start");
        }
        if i == c.broker.topics_max {
            ctx.emit(
                &rules::TOPICS_OVER_MAX,
                t.set_at("name").as_ref(),
                format!(
                    "{} topics are declared, more than `topics_max` ({})",
                    c.topics.len(),
                    c.broker.topics_max
                ),
            )
            .label("this topic is past the limit")
            .related(b.set_at("topics_max"), "the limit")
            .help(format!("raise `[broker] topics_max` to at least {}", c.topics.len()))
            .note("the broker refuses to create topics past the limit, so some could not be applied at start");
        }
    }
}

/// V109, V110, V111: durability keys that contradict each other.
fn durability(ctx: &mut Ctx<'_>, raw: &Raw) {
    let d = raw.table("defaults");
    let default_interval = d.str("durability") == Some("interval");
    let mut tables = vec![("`[defaults]`".to_owned(), d, default_interval, false)];
    for t in &raw.topics {
        let name = format!("topic `{}`", t.str("name").unwrap_or("?"));
        let interval = match t.str("durability") {
            Some(word) => word == "interval",
            None => default_interval,
        };
        tables.push((name, t, interval, true));
    }
    for (what, t, interval, is_topic) in tables {
        if !interval && t.settings.contains_key("flush_interval_ms") {
            let inherited = if is_topic && !t.declares("durability") {
                " (it inherits `fsync` from `[defaults]`)"
            } else {
                ""
            };
            ctx.emit(
                &rules::FLUSH_INTERVAL_WITHOUT_INTERVAL,
                t.at("flush_interval_ms").as_ref(),
                format!("{what} sets `flush_interval_ms` but its durability is `fsync`{inherited}"),
            )
            .label("has no effect with `fsync` durability")
            .related(t.set_at("durability"), "durability set here")
            .help("remove `flush_interval_ms`, or add `durability = \"interval\"` if acknowledged records may be lost on power loss")
            .note("with `fsync` durability every append is fsynced before it is acknowledged; the interval would do nothing");
        }
        let own_interval = t.str("durability") == Some("interval");
        let inherits_interval = is_topic && default_interval && d.settings.contains_key("flush_interval_ms");
        if own_interval && !t.declares("flush_interval_ms") && !inherits_interval {
            ctx.emit(
                &rules::INTERVAL_WITHOUT_FLUSH_INTERVAL,
                t.at("durability").as_ref(),
                format!("{what} uses `interval` durability without `flush_interval_ms`"),
            )
            .label("interval durability needs an interval")
            .help("add `flush_interval_ms = 1000` (or the longest window of acknowledged records you can lose)")
            .note("the interval bounds how much acknowledged data a power loss can take");
        }
        if is_topic && default_interval && t.str("durability") == Some("fsync") {
            ctx.emit(
                &rules::FSYNC_UNDER_INTERVAL_DEFAULT,
                t.at("durability").as_ref(),
                format!("{what} asks for `fsync` durability, but `[defaults]` uses `interval`"),
            )
            .label("cannot override an `interval` default")
            .related(d.set_at("durability"), "the default")
            .help("set `durability = \"fsync\"` in `[defaults]` and `durability = \"interval\"` on the topics that may lose acknowledged records")
            .note("the topic catalogue records only a departure towards a flush interval, so a topic cannot opt back into fsync");
        }
    }
}

/// The log settings of `[defaults]` or of one topic, with where they are set.
struct Scope<'a> {
    /// `[defaults]` or "topic `name`".
    what: String,
    table: &'a RawTable,
    /// For a topic: the defaults it inherits from.
    defaults: Option<&'a RawTable>,
    log: LogConfig,
    request_bytes_max: usize,
    /// Where `[limits] request_bytes_max` is set, if it is.
    request_at: Option<Origin>,
}

impl<'a> Scope<'a> {
    fn defaults(table: &'a RawTable, c: &VeltrixConfig) -> Scope<'a> {
        Scope {
            what: "`[defaults]`".to_owned(),
            table,
            defaults: None,
            log: c.broker.log,
            request_bytes_max: c.limits.request_bytes_max,
            request_at: None,
        }
    }

    fn topic(table: &'a RawTable, defaults: &'a RawTable, topic: &DeclaredTopic, c: &VeltrixConfig) -> Scope<'a> {
        Scope {
            what: format!("topic `{}`", topic.name),
            table,
            defaults: Some(defaults),
            log: c.topic_log_config(topic),
            request_bytes_max: c.limits.request_bytes_max,
            request_at: None,
        }
    }

    /// Whether this scope sets any of `keys` itself. A topic that sets none
    /// inherits the defaults, whose scope reports their problems once.
    fn sets_any(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.table.settings.contains_key(k))
    }

    /// Where `key` is set: in this scope, in the defaults, or the scope itself.
    fn at(&self, key: &str) -> Option<Origin> {
        self.table
            .set_at(key)
            .or_else(|| self.defaults.and_then(|d| d.set_at(key)))
            .or_else(|| self.table.header.clone().map(Origin::File))
    }

    /// Where `key` is set, if it is set anywhere.
    fn set_at(&self, key: &str) -> Option<Origin> {
        self.table
            .set_at(key)
            .or_else(|| self.defaults.and_then(|d| d.set_at(key)))
    }
}

/// The rules about one scope's log settings (`[defaults]` or a topic).
fn log_scope(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    batch_over_segment(ctx, s);
    retention_unit(ctx, s);
    retention_under_segment_age(ctx, s);
    batch_over_request(ctx, s);
    retention_bytes_under_segment(ctx, s);
    unbounded_retention(ctx, s);
}

/// V101: the largest batch must fit in a segment.
fn batch_over_segment(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    let log = &s.log;
    let rejected = |k: &str| s.table.rejected.contains(k);
    if u64::from(log.batch_bytes_max) > log.segment_bytes_max
        && s.sets_any(&["batch_bytes_max", "segment_bytes_max"])
        && !rejected("batch_bytes_max")
        && !rejected("segment_bytes_max")
    {
        let key = if s.table.settings.contains_key("batch_bytes_max") {
            "batch_bytes_max"
        } else {
            "segment_bytes_max"
        };
        let other = if key == "batch_bytes_max" {
            "segment_bytes_max"
        } else {
            "batch_bytes_max"
        };
        ctx.emit(
            &rules::BATCH_LARGER_THAN_SEGMENT,
            s.at(key).as_ref(),
            format!(
                "{}: `batch_bytes_max` ({}) is larger than `segment_bytes_max` ({})",
                s.what,
                human_bytes(u64::from(log.batch_bytes_max)),
                human_bytes(log.segment_bytes_max)
            ),
        )
        .label("the largest batch would not fit in a segment")
        .related(s.set_at(other), format!("`{other}` set here"))
        .help(format!(
            "raise `segment_bytes_max` to at least {} or lower `batch_bytes_max` to at most {}",
            log.batch_bytes_max, log.segment_bytes_max
        ))
        .note("a batch is never split across segments; the log engine refuses such a topic");
    }
}

/// A retention below this reads as seconds or minutes written where
/// milliseconds are meant (V136); V116 then stays silent, since its fix
/// would shorten the segments to match the mistake.
pub const RETENTION_MS_MIN_SAFE: u64 = 60_000;

/// V136: a retention of a few milliseconds.
fn retention_unit(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    let Some(retention) = s.log.retention_ms.filter(|r| (1..RETENTION_MS_MIN_SAFE).contains(r)) else {
        return;
    };
    let Some(at) = s.set_at("retention_ms") else {
        return;
    };
    let readings = crate::raw::ms_readings("retention_ms", retention as i64, 1, i64::MAX);
    ctx.emit(
        &rules::RETENTION_UNIT,
        Some(&at),
        format!("{}: a retention of {retention} ms", s.what),
    )
    .label(format!("records are deleted {retention} milliseconds after they are written"))
    .help(format!("the value is in milliseconds: write {}", readings.join(", or ")))
    .note("a retention under a minute deletes records before most consumers read them; it is almost always seconds, hours or days written where milliseconds are meant");
}

/// V116: retention deletes whole segments, so one that rolls late keeps
/// records past the retention.
fn retention_under_segment_age(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    let log = &s.log;
    if let Some(retention) = log.retention_ms
        && retention < log.segment_age_ms_max
        && retention >= RETENTION_MS_MIN_SAFE
        && s.sets_any(&["retention_ms", "segment_age_ms_max"])
    {
        ctx.emit(
            &rules::RETENTION_UNDER_SEGMENT_AGE,
            s.at("retention_ms").as_ref(),
            format!(
                "{}: `retention_ms` ({}) is shorter than `segment_age_ms_max` ({})",
                s.what,
                human_ms(retention),
                human_ms(log.segment_age_ms_max)
            ),
        )
        .label("records can outlive this retention")
        .related(s.set_at("segment_age_ms_max"), "segments roll this late")
        .help(format!("add `segment_age_ms_max = {retention}` (or less) next to it"))
        .note("retention deletes whole sealed segments; a quiet topic's records live up to `segment_age_ms_max + retention_ms`");
    }
}

/// V117: a batch must fit in a request.
fn batch_over_request(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    let log = &s.log;
    if log.batch_bytes_max as usize > s.request_bytes_max && (s.defaults.is_none() || s.sets_any(&["batch_bytes_max"]))
    {
        ctx.emit(
            &rules::BATCH_OVER_REQUEST,
            s.at("batch_bytes_max").or_else(|| s.request_at.clone()).as_ref(),
            format!(
                "{}: `batch_bytes_max` ({}) is larger than `[limits] request_bytes_max` ({})",
                s.what,
                human_bytes(u64::from(log.batch_bytes_max)),
                human_bytes(s.request_bytes_max as u64)
            ),
        )
        .label("no request can carry a batch this large")
        .help(format!(
            "lower `batch_bytes_max` below {}, or raise `[limits] request_bytes_max`",
            s.request_bytes_max
        ))
        .note("a request over `request_bytes_max` closes the connection, so producers get a dropped connection instead of MESSAGE_TOO_LARGE");
    }
}

/// V118: size retention never deletes the active segment.
fn retention_bytes_under_segment(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    let log = &s.log;
    if let Some(bytes) = log.retention_bytes
        && bytes < log.segment_bytes_max
        && s.sets_any(&["retention_bytes", "segment_bytes_max"])
    {
        ctx.emit(
            &rules::RETENTION_BYTES_UNDER_SEGMENT,
            s.at("retention_bytes").as_ref(),
            format!(
                "{}: `retention_bytes` ({}) is smaller than one segment (`segment_bytes_max` = {})",
                s.what,
                human_bytes(bytes),
                human_bytes(log.segment_bytes_max)
            ),
        )
        .label("partitions will hold up to a segment more than this")
        .related(s.set_at("segment_bytes_max"), "segment size")
        .help(format!(
            "add `segment_bytes_max = {}` (a tenth of the retention) next to it",
            (bytes / 10).max(veltrix_log::config::SEGMENT_BYTES_MIN)
        ))
        .note("size retention deletes whole sealed segments and never the active one");
    }
}

/// V209: a topic that grows until the disk is full.
fn unbounded_retention(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    if s.log.retention_ms.is_none()
        && s.log.retention_bytes.is_none()
        && s.sets_any(&["retention_ms", "retention_bytes"])
    {
        ctx.emit(
            &rules::UNBOUNDED_RETENTION,
            s.at("retention_ms").as_ref(),
            format!("{} keeps records forever without a size limit", s.what),
        )
        .label("no time limit, and no `retention_bytes`")
        .help("add `retention_bytes = ...` so the partition cannot fill the disk")
        .note("when the disk is full every partition on it refuses appends");
    }
}

fn critical_topic(ctx: &mut Ctx<'_>, t: &RawTable, topic: &DeclaredTopic, c: &VeltrixConfig) {
    let marked_at = t.set_at("critical").or_else(|| t.set_at("tier"));
    if t.bool("critical") == Some(true)
        && let Some(tier) = topic.tier.filter(|tier| tier.name() != "critical")
    {
        ctx.emit(
            &rules::CRITICAL_TIER_CONFLICT,
            t.at("tier").as_ref(),
            format!(
                "topic `{}` is marked critical but is in the `{}` tier",
                topic.name,
                tier.name()
            ),
        )
        .label("contradicts `critical = true`")
        .related(t.set_at("critical"), "marked critical here")
        .help("set `tier = \"critical\"`, or remove `critical = true`")
        .note("tools that shed the lowest tier first under overload would shed records marked critical");
    }
    if topic.critical
        && let FlushPolicy::Interval { flush_interval_ms } = c.topic_log_config(topic).flush
    {
        let at = t
            .set_at("durability")
            .or_else(|| t.set_at("flush_interval_ms"))
            .or(marked_at.clone());
        ctx.emit(
            &rules::RELAXED_FSYNC_CRITICAL,
            at.as_ref(),
            format!(
                "critical topic `{}` acknowledges records before they are fsynced",
                topic.name
            ),
        )
        .label(format!(
            "records acknowledged up to {} before they are durable",
            human_ms(flush_interval_ms)
        ))
        .related(marked_at.clone(), "marked critical here")
        .help("use `durability = \"fsync\"` for this topic")
        .note("a power loss or kernel crash loses records that producers were told are stored");
    }
    if topic.critical && !c.alerts.iter().any(|a| a.topic == topic.name) {
        ctx.emit(
            &rules::CRITICAL_WITHOUT_ALERT,
            marked_at.as_ref(),
            format!("critical topic `{}` has no lag alert", topic.name),
        )
        .label("critical, but no `[[alert]]` watches it")
        .help(format!(
            "add `[[alert]]` with `group = \"...\"`, `topic = \"{}\"` and `lag_ms_max = 60000` for each consuming group",
            topic.name
        ))
        .note("a backlog on a critical topic should page someone before it becomes an outage");
    }
}

fn alerts(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let declared: HashSet<&str> = c.topics.iter().map(|t| t.name.as_str()).collect();
    let names: Vec<&str> = c.topics.iter().map(|t| t.name.as_str()).collect();
    for a in &raw.alerts {
        let thresholds: Vec<&str> = ["lag_records_max", "lag_ms_max", "dead_letters_per_minute_max"]
            .into_iter()
            .filter(|k| a.declares(k))
            .collect();
        match thresholds.as_slice() {
            [] => {
                ctx.emit(
                    &rules::ALERT_THRESHOLD,
                    a.at("topic").as_ref(),
                    "the alert has no threshold",
                )
                .label("none of `lag_records_max`, `lag_ms_max` and `dead_letters_per_minute_max`")
                .help("add `lag_ms_max = 60000` (an age) or `lag_records_max = 10000` (a count)")
                .note("an alert without a threshold can never fire");
            }
            [_] => {}
            [first, second, ..] => {
                ctx.emit(
                    &rules::ALERT_THRESHOLD,
                    a.at(second).as_ref(),
                    "the alert has two thresholds",
                )
                .label(format!("`{first}` and `{second}` in one alert"))
                .related(a.set_at(first), "the other threshold")
                .help("keep one of them, and declare a second `[[alert]]` for the other")
                .note("with two thresholds it is unclear which one fires the alert");
            }
        }
        if let Some(topic) = a.str("topic")
            && !declared.contains(topic)
        {
            let help = match crate::raw::suggest(topic, &names) {
                Some(s) => format!("did you mean `\"{s}\"`?"),
                None => format!("declare it with `[[topic]]` and `name = \"{topic}\"`"),
            };
            ctx.emit(
                &rules::ALERT_UNKNOWN_TOPIC,
                a.at("topic").as_ref(),
                format!("the alert watches topic `{topic}`, which is not declared"),
            )
            .label("no `[[topic]]` has this name")
            .help(help)
            .note("an alert on a topic that does not exist never fires");
        }
    }
    // Retention against the time an alert takes to fire.
    let topics = by_name(&raw.topics);
    let defaults = raw.table("defaults");
    for a in &raw.alerts {
        let Some(alert) = resolve_alert(a) else {
            continue;
        };
        let LagThreshold::Ms(lag_ms) = alert.threshold else {
            continue;
        };
        let Some(topic) = c.topic(&alert.topic) else {
            continue;
        };
        let Some(retention) = c.topic_log_config(topic).retention_ms else {
            continue;
        };
        let horizon = lag_ms.saturating_add(alert.for_ms);
        // A retention of seconds is V136's: most likely in the wrong unit.
        if retention > horizon || retention < RETENTION_MS_MIN_SAFE {
            continue;
        }
        let t = topics.get(topic.name.as_str()).and_then(|v| v.first());
        let at = t
            .and_then(|t| t.set_at("retention_ms"))
            .or_else(|| defaults.set_at("retention_ms"))
            .or_else(|| t.and_then(|t| t.header.clone().map(Origin::File)));
        ctx.emit(
            &rules::RETENTION_UNDER_ALERT_HORIZON,
            at.as_ref(),
            format!(
                "topic `{}` keeps records {}, but the lag alert of group `{}` fires only after {}",
                topic.name,
                human_ms(retention),
                alert.group,
                human_ms(horizon)
            ),
        )
        .label("records are deleted before the alert can fire")
        .related(a.set_at("lag_ms_max"), "alert threshold")
        .help(format!(
            "make `retention_ms` much longer than {horizon} (for example {}), or alert sooner",
            horizon.saturating_mul(4).max(86_400_000)
        ))
        .note("unconsumed records would be deleted silently, which is what the alert exists to prevent");
    }
}

/// The cross-field rules of the broker's own tables.
fn broker(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, probe: &dyn Probe) {
    memory_limits(ctx, raw, c, probe);
    tier_thresholds(ctx, raw, c);
    group_timeouts(ctx, raw, c);
    listeners(ctx, raw, c);
}

/// V102 and V114: a request must fit in the memory budget, and the budget in
/// the machine.
fn memory_limits(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, probe: &dyn Probe) {
    let k = raw.table("limits");
    let limits = &c.limits;
    if limits.request_bytes_max > limits.in_flight_bytes_max {
        let key = if k.settings.contains_key("request_bytes_max") {
            "request_bytes_max"
        } else {
            "in_flight_bytes_max"
        };
        ctx.emit(
            &rules::REQUEST_OVER_MEMORY_BUDGET,
            k.at(key).as_ref(),
            format!(
                "`request_bytes_max` ({}) is larger than the memory budget `in_flight_bytes_max` ({})",
                human_bytes(limits.request_bytes_max as u64),
                human_bytes(limits.in_flight_bytes_max as u64)
            ),
        )
        .label("a request this large could never be read")
        .related(
            if key == "request_bytes_max" {
                k.set_at("in_flight_bytes_max")
            } else {
                k.set_at("request_bytes_max")
            },
            "the other limit",
        )
        .help(format!(
            "lower `request_bytes_max` to at most {} or raise `in_flight_bytes_max` to at least {}",
            limits.in_flight_bytes_max, limits.request_bytes_max
        ))
        .note("a request is read only once its bytes fit in the budget; the broker refuses to start with these limits");
    }
    if let Some(ram) = probe.memory_bytes_total()
        && limits.in_flight_bytes_max as u64 > ram
    {
        ctx.emit(
            &rules::MEMORY_BUDGET_OVER_RAM,
            k.at("in_flight_bytes_max").as_ref(),
            format!(
                "the memory budget ({}) is larger than this machine's memory ({})",
                human_bytes(limits.in_flight_bytes_max as u64),
                human_bytes(ram)
            ),
        )
        .label("bounds nothing on this machine")
        .help(format!(
            "set `in_flight_bytes_max` to a fraction of the memory, such as {}",
            ram / 4
        ))
        .note("under load the out-of-memory killer would stop the broker before the budget pushed back on producers");
    }
}

/// V112 and V119: session timeouts and heartbeats that cannot work.
fn group_timeouts(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let g = raw.table("groups");
    let groups = &c.broker.groups;
    if groups.session_timeout_ms_min > groups.session_timeout_ms_max {
        ctx.emit(
            &rules::SESSION_TIMEOUT_BOUNDS,
            g.at("session_timeout_ms_min").as_ref(),
            format!(
                "`session_timeout_ms_min` ({}) is above `session_timeout_ms_max` ({})",
                groups.session_timeout_ms_min, groups.session_timeout_ms_max
            ),
        )
        .label("no session timeout is acceptable")
        .related(g.set_at("session_timeout_ms_max"), "the maximum")
        .help("make `session_timeout_ms_min` at most `session_timeout_ms_max`")
        .note("every consumer group join would fail with INVALID_SESSION_TIMEOUT");
    }
    heartbeat_over_session(
        ctx,
        &rules::HEARTBEAT_OVER_SESSION,
        g,
        ["consumer_heartbeat_interval_ms", "consumer_session_timeout_ms"],
        [
            groups.consumer_heartbeat_interval_ms,
            groups.consumer_session_timeout_ms,
        ],
        "healthy consumer-protocol members would be fenced again and again, and their partitions keep moving",
    );
}

/// V119 and V121: members told to heartbeat no more often than the session
/// timeout that removes them. `keys` and `ms` are the interval's and the
/// timeout's, of `table`; `note` says what that costs these members.
pub(crate) fn heartbeat_over_session(
    ctx: &mut Ctx<'_>,
    rule: &'static rules::Rule,
    table: &RawTable,
    [interval_key, timeout_key]: [&str; 2],
    [interval_ms, timeout_ms]: [u64; 2],
    note: &str,
) {
    if interval_ms < timeout_ms {
        return;
    }
    ctx.emit(
        rule,
        table.set_at(interval_key).or_else(|| table.at(timeout_key)).as_ref(),
        format!(
            "`{interval_key}` ({}) is not below `{timeout_key}` ({})",
            human_ms(interval_ms),
            human_ms(timeout_ms)
        ),
    )
    .label("members would be removed between two heartbeats")
    .related(table.set_at(timeout_key), "the session timeout")
    .help(format!(
        "make `{interval_key}` a fraction of the session timeout, such as {}",
        (timeout_ms / 9).max(100)
    ))
    .note(note);
}

/// V113: two listeners on one port.
fn listeners(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let l = raw.table("listeners");
    if conflict(c.kafka_listener, c.http_listener) {
        ctx.emit(
            &rules::LISTENER_CONFLICT,
            l.at("http").or_else(|| l.at("kafka")).as_ref(),
            format!(
                "the HTTP listener {} and the Kafka listener {} use the same port",
                c.http_listener, c.kafka_listener
            ),
        )
        .label("port already taken by the Kafka listener")
        .related(l.set_at("kafka"), "the Kafka listener")
        .help("give the HTTP listener its own port, such as 8080")
        .note("the second listener could not bind, and the broker would fail to start");
    }
}

/// Whether two listeners would fight over one port.
fn conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The production lints (V2xx), one function a table.
fn production(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, probe: &dyn Probe) {
    let profile = profile_at(raw);
    production_topics(ctx, raw, c);
    production_listeners(ctx, raw, c);
    production_memory(ctx, raw, c, profile.clone());
    production_data_dir(ctx, raw, c, probe, profile.clone());
    production_defaults(ctx, raw, c, profile.clone());
    production_groups(ctx, raw, c);
    crate::share_lints::production(ctx, raw, c);
    offsets_retention(ctx, raw, c, profile);
}

/// V202 and V203: topics a typo creates, keyed topics that cannot grow.
fn production_topics(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let b = raw.table("broker");
    if c.broker.auto_create_topics {
        ctx.emit(
            &rules::AUTO_CREATE_TOPICS,
            b.at("auto_create_topics").as_ref(),
            "topic auto-creation is on",
        )
        .label("a misspelt topic name creates a topic")
        .help("set `auto_create_topics = false` and declare every topic with `[[topic]]`")
        .note("records sent to a typo land in a new topic nobody consumes instead of failing loudly");
    }
    let named = raw.topics.iter().filter(|t| t.str("name").is_some());
    for (t, topic) in named.zip(&c.topics) {
        let rate = t.int("peak_records_per_second").unwrap_or(0);
        if topic.keyed && rate >= HIGH_VOLUME_RECORDS_PER_SECOND && topic.partitions == 1 {
            ctx.emit(
                &rules::SINGLE_PARTITION_KEYED,
                t.at("partitions").or_else(|| t.at("keyed")).as_ref(),
                format!(
                    "keyed topic `{}` expects {rate} records per second on a single partition",
                    topic.name
                ),
            )
            .label("one partition: one consumer per group")
            .related(t.set_at("peak_records_per_second"), "expected rate")
            .help("set `partitions` to the parallelism you will need (for example 12) now")
            .note("adding partitions later moves keys to other partitions, which breaks per-key order under load");
        }
    }
}

/// V204: listeners reachable from the network.
fn production_listeners(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let l = raw.table("listeners");
    for (key, addr) in [("kafka", c.kafka_listener), ("http", c.http_listener)] {
        // HTTPS: authentication is V220's.
        let encrypted = key == "http" && c.http_tls.is_some();
        if !addr.ip().is_loopback() && !encrypted {
            let what = if addr.ip().is_unspecified() {
                "every interface"
            } else {
                "a non-loopback address"
            };
            ctx.emit(
                &rules::NON_LOOPBACK_LISTENER,
                l.at(key).as_ref(),
                format!("the {key} listener {addr} is reachable from the network, without TLS or authentication"),
            )
            .label(format!("listens on {what}"))
            .help(format!(
                "listen on loopback (`\"127.0.0.1:{}\"`) and reach it through a path you control, such as a TLS-terminating proxy",
                addr.port()
            ))
            .note("anyone who can reach the port can produce, consume, reset offsets and delete topics");
        }
    }
}

/// V140: bulk must be throttled no later than standard.
fn tier_thresholds(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    disk_thresholds(ctx, raw, c);
    let (bulk, standard) = (
        c.limits.tier_bulk_throttle_percent,
        c.limits.tier_standard_throttle_percent,
    );
    if bulk <= standard {
        return;
    }
    let k = raw.table("limits");
    ctx.emit(
        &rules::TIER_THRESHOLDS_REVERSED,
        k.at("tier_bulk_throttle_percent")
            .or_else(|| k.at("tier_standard_throttle_percent"))
            .as_ref(),
        format!("bulk topics are throttled at {bulk}% of the memory budget, after standard ones at {standard}%"),
    )
    .label("bulk would flow while standard traffic is slowed")
    .related(k.set_at("tier_standard_throttle_percent"), "standard's threshold")
    .help(format!(
        "lower `tier_bulk_throttle_percent` to {standard} or less (the default is 70, standard's 85)"
    ))
    .note("tiers exist so that the least important traffic slows first; reversed, a flood of bulk records would push out standard ones");
}

/// V140 for the disk: bulk must be refused no later than standard.
fn disk_thresholds(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let (bulk, standard) = (
        c.broker.disk.bulk_free_percent_min,
        c.broker.disk.standard_free_percent_min,
    );
    if bulk >= standard {
        return;
    }
    let b = raw.table("broker");
    ctx.emit(
        &rules::TIER_THRESHOLDS_REVERSED,
        b.set_at("disk_bulk_free_percent_min")
            .or_else(|| b.at("disk_standard_free_percent_min"))
            .as_ref(),
        format!("bulk produce is refused below {bulk}% free disk, after standard produce at {standard}%"),
    )
    .label("bulk would keep writing while standard produce is refused")
    .related(b.set_at("disk_standard_free_percent_min"), "standard's threshold")
    .help(format!(
        "raise `disk_bulk_free_percent_min` to {standard} or more (the default is 5, standard's 2)"
    ))
    .note("tiers exist so that the least important traffic stops first as the disk fills");
}

/// V205: no memory budget sized for the machine.
fn production_memory(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, profile: Option<Origin>) {
    let k = raw.table("limits");
    if !k.declares("in_flight_bytes_max") {
        ctx.emit(
            &rules::NO_MEMORY_BUDGET,
            k.header.clone().map(Origin::File).or(profile).as_ref(),
            "no memory budget is declared",
        )
        .label("`in_flight_bytes_max` is not set")
        .help(format!(
            "add `in_flight_bytes_max = ...` to `[limits]`, sized for this machine (the default is {})",
            human_bytes(c.limits.in_flight_bytes_max as u64)
        ))
        .note("past the budget producers are pushed back through TCP; without one sized for the machine, overload meets the out-of-memory killer");
    }
}

/// V206 and V208: a data directory in memory, or relative to where the
/// broker happens to start.
fn production_data_dir(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, probe: &dyn Probe, profile: Option<Origin>) {
    let b = raw.table("broker");
    let data_at = b.set_at("data_dir");
    let data_label = if data_at.is_some() {
        String::new()
    } else {
        format!(" (the default `{}`)", c.data_dir.display())
    };
    if let Some(fs) = probe
        .filesystem_type(&c.data_dir)
        .filter(|fs| fs == "tmpfs" || fs == "ramfs")
    {
        ctx.emit(
            &rules::DATA_DIR_ON_TMPFS,
            data_at.clone().or(profile.clone()).as_ref(),
            format!("the data directory{data_label} is on {fs}"),
        )
        .label("held in memory: gone after a reboot")
        .help("put `data_dir` on a disk-backed file system")
        .note("every acknowledged record and the topic catalogue would be lost on reboot; fsync does nothing on tmpfs");
    }
    // A rejected value was reported as such, and a path written wrong (V018,
    // V019) is relative only because of the mistake.
    let rejected = b.declares("data_dir") && data_at.is_none();
    let miswritten = b
        .str("data_dir")
        .is_some_and(|p| crate::paths::stray_ends(p).is_some() || !crate::paths::placeholders(p).is_empty());
    if c.data_dir.is_relative() && !rejected && !miswritten {
        ctx.emit(
            &rules::RELATIVE_DATA_DIR,
            data_at.clone().or(profile.clone()).as_ref(),
            format!("the data directory{data_label} is a relative path"),
        )
        .label("relative to wherever the broker is started")
        .help("use an absolute path, such as `data_dir = \"/var/lib/veltrix\"`")
        .note("started from another directory the broker opens an empty data directory and serves no data");
    }
}

/// V207 and V210: `[defaults]` every topic created without settings gets.
fn production_defaults(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, profile: Option<Origin>) {
    let d = raw.table("defaults");
    if d.str("durability") == Some("interval") {
        ctx.emit(
            &rules::RELAXED_DURABILITY_DEFAULT,
            d.at("durability").as_ref(),
            "every topic defaults to interval durability",
        )
        .label("a development setting")
        .help("use `durability = \"fsync\"` here, and `interval` on the topics that may lose acknowledged records")
        .note("auto-created topics and topics created through the admin API would acknowledge records before they are durable");
    }
    // A rejected value was reported as such; its default is not judged.
    let rejected = |t: &RawTable, key: &str| t.declares(key) && t.set_at(key).is_none();
    if c.broker.default_partitions == 1 && !rejected(d, "partitions") {
        ctx.emit(
            &rules::SINGLE_DEFAULT_PARTITION,
            d.set_at("partitions")
                .or_else(|| d.header.clone().map(Origin::File))
                .or(profile.clone())
                .as_ref(),
            "topics created without a partition count get a single partition",
        )
        .label("`[defaults] partitions` is 1")
        .help("set `partitions = 3` (or more) in `[defaults]`")
        .note("one partition means one consumer per group, and growing it later reorders keyed records");
    }
}

/// V211 and V212: session timeouts consumers may ask for.
fn production_groups(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let g = raw.table("groups");
    let groups = &c.broker.groups;
    if groups.session_timeout_ms_min < SESSION_TIMEOUT_MS_MIN_SAFE {
        ctx.emit(
            &rules::SESSION_TIMEOUT_MIN_LOW,
            g.at("session_timeout_ms_min").as_ref(),
            format!(
                "consumers may ask for session timeouts of {}",
                human_ms(groups.session_timeout_ms_min)
            ),
        )
        .label(format!("below {}", human_ms(SESSION_TIMEOUT_MS_MIN_SAFE)))
        .help(format!("set `session_timeout_ms_min = {SESSION_TIMEOUT_MS_MIN_SAFE}`"))
        .note("a pause or network hiccup that short removes healthy members, and each removal stops the group for a rebalance");
    }
    if groups.session_timeout_ms_max > SESSION_TIMEOUT_MS_MAX_SAFE {
        ctx.emit(
            &rules::SESSION_TIMEOUT_MAX_HIGH,
            g.at("session_timeout_ms_max").as_ref(),
            format!(
                "consumers may ask for session timeouts of {}",
                human_ms(groups.session_timeout_ms_max)
            ),
        )
        .label(format!("above {}", human_ms(SESSION_TIMEOUT_MS_MAX_SAFE)))
        .help(format!(
            "set `session_timeout_ms_max = {SESSION_TIMEOUT_MS_MAX_SAFE}` or less"
        ))
        .note("a hung consumer keeps its partitions, unconsumed, until its session times out");
    }
}

/// V213: committed offsets must outlive the records they point into.
fn offsets_retention(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, profile: Option<Origin>) {
    let offsets = c.broker.groups.offsets_retention_ms;
    let named = raw.topics.iter().filter(|t| t.str("name").is_some());
    let mut longest: Option<(Option<u64>, String, Option<Origin>)> = None;
    let defaults = raw.table("defaults");
    let candidates = std::iter::once((
        c.broker.log.retention_ms,
        "`[defaults]`".to_owned(),
        defaults.set_at("retention_ms"),
    ))
    .chain(named.zip(&c.topics).map(|(t, topic)| {
        (
            c.topic_log_config(topic).retention_ms,
            format!("topic `{}`", topic.name),
            t.set_at("retention_ms"),
        )
    }));
    for (retention, what, at) in candidates {
        let longer = match (&longest, retention) {
            (None, _) => true,
            (Some((Some(l), ..)), None) => l < &u64::MAX,
            (Some((Some(l), ..)), Some(r)) => r > *l,
            (Some((None, ..)), _) => false,
        };
        if longer {
            longest = Some((retention, what, at));
        }
    }
    let Some((retention, what, at)) = longest else {
        return;
    };
    if retention.is_some_and(|r| r <= offsets) {
        return;
    }
    let g = raw.table("groups");
    let kept = retention.map_or("forever".to_owned(), human_ms);
    ctx.emit(
        &rules::OFFSETS_RETENTION_UNDER_TOPIC,
        g.set_at("offsets_retention_ms")
            .or_else(|| g.header.clone().map(Origin::File))
            .or(profile)
            .as_ref(),
        format!(
            "committed offsets are kept {} after a group empties, but {what} keeps records {kept}",
            human_ms(offsets)
        ),
    )
    .label("offsets are forgotten before the records")
    .related(at, "retention set here")
    .help(match retention {
        Some(r) => format!("set `offsets_retention_ms = {r}` (or more) in `[groups]`"),
        None => "give the topic a time limit, or raise `offsets_retention_ms` to the longest outage you plan for".to_owned(),
    })
    .note("a consumer back from a long outage finds its records but not its position, and restarts from its reset policy: duplicates or skipped records");
}

/// Milliseconds for people: `604_800_000 ms (7 days)`.
pub(crate) fn human_ms(ms: u64) -> String {
    let units = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    let n = schema::group_digits(ms.min(i64::MAX as u64) as i64);
    for (size, name) in units {
        if ms >= size && ms.is_multiple_of(size) {
            let count = ms / size;
            let plural = if count == 1 { "" } else { "s" };
            return format!("{n} ms ({count} {name}{plural})");
        }
    }
    format!("{n} ms")
}

/// Bytes for people: `1_073_741_824 bytes (1 GiB)`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    let n = schema::group_digits(bytes.min(i64::MAX as u64) as i64);
    for (size, name) in units {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{n} bytes ({} {name})", bytes / size);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_well() {
        assert_eq!(human_ms(604_800_000), "604_800_000 ms (7 days)");
        assert_eq!(human_ms(1_500), "1_500 ms");
        assert_eq!(human_bytes(1 << 30), "1_073_741_824 bytes (1 GiB)");
        assert_eq!(human_bytes(1000), "1_000 bytes");
    }

    #[test]
    fn listeners_conflict_on_the_same_port_of_overlapping_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(conflict(a("127.0.0.1:9092"), a("127.0.0.1:9092")));
        assert!(conflict(a("0.0.0.0:9092"), a("127.0.0.1:9092")));
        assert!(!conflict(a("127.0.0.1:9092"), a("127.0.0.2:9092")));
        assert!(!conflict(a("127.0.0.1:0"), a("127.0.0.1:0")));
        assert!(!conflict(a("127.0.0.1:9092"), a("127.0.0.1:8080")));
    }
}
