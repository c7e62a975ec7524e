//! The rules: each function reads the settings (the file's values and the
//! client's defaults) and returns its findings, in the words of the
//! catalogue in `rules.rs`.
//!
//! A value the client would not accept is reported once, by the
//! invalid-value rule, and the other rules then skip that setting rather
//! than guess what it means.

use std::collections::HashMap;

use crate::client::{Dialect, Role, Settings, Value, parse_bool};
use crate::diagnostic::{Finding, Fix};
use crate::keys::{self, Convert};
use crate::parse::{Entry, Format, ValueKind};
use crate::rules::{self, Severity};
use crate::{
    BUFFER_BYTES_MAX_SAFE, BUFFER_BYTES_MIN_SAFE, BUFFER_MESSAGES_MIN_SAFE, DELIVERY_TIMEOUT_MS_MIN_SAFE, LintOptions,
};

/// Every finding about the file read with `settings` in `role`.
pub(crate) fn run(s: &Settings<'_>, role: Role, options: &LintOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    if s.file.entries.is_empty() && s.file.error.is_none() {
        out.push(
            Finding::new(
                &rules::EMPTY_FILE,
                "the file sets nothing: every setting is the client's default",
            )
            .help("check that this is the file the client reads, and that it was written whole")
            .why("an empty configuration is more often a wrong path or a failed copy than a choice"),
        );
    }
    syntax(s, &mut out);
    undetermined(s, role, options, &mut out);
    keys_and_values(s, &mut out);
    duplicates(s, &mut out);
    crate::security::check(s, options, &mut out);
    bootstrap(s, &mut out);
    // Past a syntax error the settings are unknown: a rule about a default
    // could be wrong about a setting the file makes further down.
    if s.file.error.is_some() {
        return out;
    }
    if role.produces() {
        acks(s, &mut out);
        idempotence(s, &mut out);
        timeouts(s, &mut out);
        buffers(s, &mut out);
        max_block(s, &mut out);
        request_size(s, options, &mut out);
        partitioner(s, &mut out);
        transactions(s, &mut out);
    }
    if role.consumes() {
        commits(s, &mut out);
        offset_reset(s, options, &mut out);
        isolation(s, &mut out);
        group_timings(s, options, &mut out);
        group_id(s, &mut out);
        crcs(s, &mut out);
    }
    out
}

/// `true`/`false` as the file's syntax writes them.
fn flag(v: bool) -> &'static str {
    if v { "true" } else { "false" }
}

/// How the finding names a setting: ``acks=1`` when the file sets it, ``acks``
/// (default 1) when it does not.
pub(crate) fn setting<T: std::fmt::Display + Copy>(key: &str, v: &Value<'_, T>) -> String {
    match v {
        Value::Set(e, _) => format!("`{}={}`", e.key, e.value),
        Value::Default(d) => format!("`{key}` left at its default `{d}`"),
    }
}

// ---------------------------------------------------------------------------
// The file

fn syntax(s: &Settings<'_>, out: &mut Vec<Finding>) {
    if let Some(err) = &s.file.error {
        let finding = match s.file.format {
            Format::Properties => Finding::new(
                &rules::SYNTAX,
                format!("the file cannot be loaded: {}", err.message),
            )
            .at(err.span.clone(), err.message.clone())
            .help("write the character as `\\u` and four hex digits (`\\u00e9` for é), or `\\\\u` for a backslash and a u")
            .why("Java's Properties.load throws on a malformed `\\uxxxx` escape, so the client never starts"),
            Format::Json => Finding::new(
                &rules::SYNTAX,
                format!("the file is not a valid JSON object: {}", err.message),
            )
            .at(err.span.clone(), err.message.clone())
            .help("write the configuration as one JSON object of settings: `{\"acks\": \"all\"}`")
            .why("nothing after this point was read, so its settings are not checked"),
        };
        out.push(finding);
    }
}

fn undetermined(s: &Settings<'_>, role: Role, options: &LintOptions, out: &mut Vec<Finding>) {
    let dialect_unknown = options.client.is_none() && crate::client::detect_dialect(s.file).is_none();
    let role_unknown = options.role.is_none() && crate::client::detect_role(s.file).is_none();
    if !dialect_unknown && !role_unknown {
        return;
    }
    let mut what = Vec::new();
    let mut help = Vec::new();
    if dialect_unknown {
        what.push(format!("which client this is for (read as {})", s.dialect.title()));
        help.push("`--client java` or `--client librdkafka`");
    }
    if role_unknown {
        what.push(format!(
            "whether it is for a producer or a consumer (checked as {})",
            role.name()
        ));
        help.push("`--role producer`, `--role consumer` or `--role both`");
    }
    out.push(
        Finding::new(
            &rules::CLIENT_UNDETERMINED,
            format!("the keys do not tell {}", what.join(", nor ")),
        )
        .help(format!("pass {}", help.join(" and ")))
        .why("the clients' keys and defaults differ; a finding about a default may not apply to the client actually used"),
    );
}

/// The type of a setting's value, as the client checks it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Bool,
    Int(i64, i64),
    Words(&'static [&'static str]),
}

const INT_MAX: i64 = i32::MAX as i64;

/// The type of `key` (its canonical name) in `dialect`, for the keys the
/// rules read.
pub(crate) fn kind_of(dialect: Dialect, key: &str) -> Option<Kind> {
    use Dialect::{Java, Librdkafka};
    use Kind::{Bool, Int, Words};
    let k = match (dialect, key) {
        (_, "enable.idempotence" | "enable.auto.commit" | "check.crcs" | "allow.auto.create.topics") => Bool,
        (Java, "partitioner.ignore.keys") => Bool,
        (Librdkafka, "enable.auto.offset.store" | "enable.partition.eof") => Bool,
        (_, "acks") => Words(&["all", "-1", "0", "1"]),
        (_, "isolation.level") => Words(&["read_committed", "read_uncommitted"]),
        (_, "group.protocol") => Words(&["classic", "consumer"]),
        (Java, "auto.offset.reset") => Words(&["latest", "earliest", "none"]),
        (Librdkafka, "auto.offset.reset") => {
            Words(&["smallest", "earliest", "beginning", "largest", "latest", "end", "error"])
        }
        (_, "compression.type") => Words(&["none", "gzip", "snappy", "lz4", "zstd"]),
        (Librdkafka, "compression.codec") => Words(&["none", "gzip", "snappy", "lz4", "zstd", "inherit"]),
        (Librdkafka, "partitioner") => Words(&[
            "random",
            "consistent",
            "consistent_random",
            "murmur2",
            "murmur2_random",
            "fnv1a",
            "fnv1a_random",
        ]),
        (_, "retries") => Int(0, INT_MAX),
        (Java, "max.in.flight.requests.per.connection") => Int(1, INT_MAX),
        (Librdkafka, "max.in.flight.requests.per.connection") => Int(1, 1_000_000),
        (Java, "linger.ms") => Int(0, i64::MAX),
        (Librdkafka, "queue.buffering.max.ms") => Int(0, 900_000),
        (Java, "delivery.timeout.ms") => Int(0, INT_MAX),
        (Librdkafka, "message.timeout.ms") => Int(0, INT_MAX),
        (Java, "request.timeout.ms") => Int(0, INT_MAX),
        (Librdkafka, "request.timeout.ms") => Int(1, 900_000),
        (Java, "batch.size") => Int(0, INT_MAX),
        (Librdkafka, "batch.size") => Int(1, INT_MAX),
        (Java, "buffer.memory" | "max.block.ms") => Int(0, i64::MAX),
        (Java, "max.request.size") => Int(0, INT_MAX),
        (Librdkafka, "message.max.bytes") => Int(1000, 1_000_000_000),
        (Librdkafka, "queue.buffering.max.kbytes") => Int(1, INT_MAX),
        (Librdkafka, "queue.buffering.max.messages") => Int(0, INT_MAX),
        (Java, "session.timeout.ms" | "heartbeat.interval.ms") => Int(i64::from(i32::MIN), INT_MAX),
        (Librdkafka, "session.timeout.ms" | "heartbeat.interval.ms") => Int(1, 3_600_000),
        (Java, "max.poll.interval.ms" | "max.poll.records") => Int(1, INT_MAX),
        (Librdkafka, "max.poll.interval.ms") => Int(1, 86_400_000),
        (Java, "auto.commit.interval.ms") => Int(0, INT_MAX),
        (Librdkafka, "auto.commit.interval.ms") => Int(0, 86_400_000),
        (Java, "fetch.max.bytes" | "max.partition.fetch.bytes") => Int(0, INT_MAX),
        (Librdkafka, "fetch.max.bytes") => Int(0, 2_147_483_135),
        (Librdkafka, "fetch.message.max.bytes") => Int(1, 1_000_000_000),
        _ => return None,
    };
    Some(k)
}

/// The name `kind_of` knows `key` by: librdkafka's aliases resolved to one
/// of their names.
pub(crate) fn canonical(dialect: Dialect, key: &str) -> &str {
    if dialect == Dialect::Java {
        return key;
    }
    match key {
        "request.required.acks" => "acks",
        "message.send.max.retries" => "retries",
        "linger.ms" => "queue.buffering.max.ms",
        "delivery.timeout.ms" => "message.timeout.ms",
        "max.in.flight" => "max.in.flight.requests.per.connection",
        "max.partition.fetch.bytes" => "fetch.message.max.bytes",
        other => other,
    }
}

/// The value a word setting should have, to suggest as its fix.
fn safe_word(key: &str) -> Option<&'static str> {
    match key {
        "acks" => Some("all"),
        "isolation.level" => Some("read_committed"),
        "auto.offset.reset" => Some("earliest"),
        "compression.type" | "compression.codec" => Some("none"),
        "group.protocol" => Some("classic"),
        "partitioner" => Some("murmur2_random"),
        _ => None,
    }
}

/// A duration or size written with a unit (`5s`, `64MB`), as the plain number
/// the key's unit needs: milliseconds for `*.ms` keys, bytes for sizes.
fn with_unit(key: &str, value: &str) -> Option<i64> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = v.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let factor: i64 = if key.ends_with(".ms") {
        match unit.as_str() {
            "ms" => 1,
            "s" | "sec" | "secs" => 1_000,
            "m" | "min" | "mins" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        }
    } else if key.ends_with("bytes") || key == "buffer.memory" || key == "max.request.size" || key == "batch.size" {
        match unit.as_str() {
            "b" => 1,
            "kb" => 1_000,
            "kib" | "k" => 1 << 10,
            "mb" => 1_000_000,
            "mib" | "m" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" | "g" => 1 << 30,
            _ => return None,
        }
    } else {
        return None;
    };
    n.checked_mul(factor)
}

fn keys_and_values(s: &Settings<'_>, out: &mut Vec<Finding>) {
    for entry in &s.file.entries {
        if let Some(finding) = swallowed_key(s, entry) {
            out.push(finding);
            continue;
        }
        if keys::is_known(s.dialect, &entry.key) {
            invalid_value(s, entry, out);
            continue;
        }
        let other = s.dialect.other();
        if keys::is_known(other, &entry.key) {
            out.push(other_client_key(s, entry, other));
            continue;
        }
        if let Some(finding) = byte_order_mark(s, entry) {
            out.push(finding);
            continue;
        }
        let finding = Finding::new(
            &rules::UNKNOWN_KEY,
            format!("unknown key `{}` for a {} client", entry.key, s.dialect.title()),
        );
        let ignored = ignored_by(s.dialect);
        out.push(match keys::did_you_mean(s.dialect, &entry.key) {
            Some(known) => finding
                .at(entry.key_span.clone(), format!("did you mean `{known}`?"))
                .help(format!("rename the key to `{known}`"))
                .why(format!("{ignored}; the setting this line seems to make is not made"))
                .fix(Fix::replace(s.file, entry, known, &entry.value)),
            None => finding
                .severity(Severity::Warning)
                .at(entry.key_span.clone(), "not a key of the client")
                .help("check the spelling; if a serializer, an interceptor or a newer client version reads this key, ignore this warning")
                .why(ignored),
        });
    }
}

/// D002 for a first key that starts with a byte-order mark: Java's
/// `Properties.load` reads the invisible U+FEFF as part of the key (before a
/// comment, it turns the comment into a setting).
fn byte_order_mark(s: &Settings<'_>, entry: &Entry) -> Option<Finding> {
    let key = entry.key.strip_prefix('\u{feff}')?;
    let comment = key.starts_with('#') || key.starts_with('!');
    let what = if comment {
        "the comment on this line is read as a setting".to_owned()
    } else {
        format!("the key read is `\\uFEFF{key}`, not `{key}`")
    };
    let finding = Finding::new(
        &rules::UNKNOWN_KEY,
        format!("the file starts with a byte-order mark (U+FEFF): {what}"),
    )
    .at(entry.key_span.clone(), "an invisible U+FEFF before this")
    .help("save the file without a byte-order mark (\"UTF-8\", not \"UTF-8 with BOM\")")
    .why(format!(
        "a `.properties` reader keeps the mark as part of the first key; {}",
        ignored_by(s.dialect)
    ));
    Some(if comment {
        finding.fix(Fix::delete(entry))
    } else {
        finding.fix(Fix::replace(s.file, entry, key, &entry.value))
    })
}

/// D008: a `.properties` line ending in `\` continues on the next one, so a
/// setting written there is read as part of this one's value.
fn swallowed_key(s: &Settings<'_>, entry: &Entry) -> Option<Finding> {
    if s.file.format != Format::Properties {
        return None;
    }
    let text = s.source_of(entry.span.clone())?;
    let lines: Vec<&str> = text.split('\n').collect();
    let key_of = |line: &str| -> Option<String> {
        let t = line.trim_start();
        let end = t.find(['=', ':', ' ', '\t']).unwrap_or(t.len());
        let key = &t[..end];
        (keys::is_known(s.dialect, key) || keys::is_known(s.dialect.other(), key)).then(|| key.to_owned())
    };
    let swallowed: Vec<(usize, String)> = lines
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(i, l)| key_of(l).map(|k| (i, k)))
        .collect();
    let (first_line, first_key) = swallowed.first()?.clone();
    // The fix: each line a swallowed setting starts on becomes its own line.
    let fixed: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let next_swallowed = swallowed.iter().any(|(j, _)| *j == i + 1);
            let l = if i > 0 && swallowed.iter().any(|(j, _)| *j == i) {
                l.trim_start()
            } else {
                l
            };
            if next_swallowed {
                l.trim_end().trim_end_matches('\\').trim_end().to_owned()
            } else {
                (*l).to_owned()
            }
        })
        .collect();
    let first = fixed[0].clone();
    let text = fixed.join("\n");
    let line_no = s.line_of(entry.span.start) + first_line - 1;
    Some(
        Finding::new(
            &rules::CONTINUATION_SWALLOWS_KEY,
            format!(
                "line {line_no} ends with `\\`: `{first_key}` on the next line is read as part of `{}`, not as a setting",
                entry.key
            ),
        )
        .at(entry.value_span.clone(), format!("`{}` is `{}`", entry.key, entry.value))
        .help(format!("remove the `\\` at the end of line {line_no}, so that `{first_key}` is a setting of its own"))
        .why("a backslash at the end of a `.properties` line joins the next line to its value; the setting there is never made, and the value it joins is wrong")
        .fix(Fix {
            kind: crate::diagnostic::FixKind::Replace,
            line: first,
            span: entry.span.clone(),
            text,
        }),
    )
}

/// D010: a `bootstrap.servers` that is not a comma-separated `host:port` list.
fn bootstrap(s: &Settings<'_>, out: &mut Vec<Finding>) {
    let Some(entry) = s.entry("bootstrap.servers") else {
        return;
    };
    // A value that swallowed the next key is D008's, with the right fix.
    if swallowed_key(s, entry).is_some() {
        return;
    }
    let Some((problem, fixed)) = bootstrap_problem(&entry.value) else {
        return;
    };
    let finding = Finding::new(
        &rules::BOOTSTRAP_MALFORMED,
        format!("`bootstrap.servers={}`: {problem}", entry.value),
    )
    .at(entry.value_span.clone(), problem.clone())
    .why("the Java client refuses to start with it, and librdkafka looks for brokers that do not exist");
    out.push(match fixed {
        Some(fixed) => finding
            .help(format!("write `bootstrap.servers={fixed}`"))
            .fix(Fix::replace(s.file, entry, &entry.key, &fixed)),
        None => {
            finding.help("write a comma-separated list of `host:port` pairs, such as `broker-1:9092,broker-2:9092`")
        }
    });
}

/// What is wrong with a `bootstrap.servers` value, and the list written
/// right when it can be.
fn bootstrap_problem(value: &str) -> Option<(String, Option<String>)> {
    let mut problems = Vec::new();
    if value.contains(';') || value.split(',').any(|p| p.trim().contains(char::is_whitespace)) {
        problems.push("servers are separated by commas only");
    }
    let parts: Vec<&str> = value
        .split([',', ';', ' ', '\t'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Some(("no server".to_owned(), None));
    }
    // Something that cannot be a host: no list can be written for it (a
    // `#` line continued with `\` is part of the value, not a comment).
    let host_like = |p: &str| {
        p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']' | '/'))
    };
    if let Some(odd) = parts.iter().find(|p| !host_like(p)) {
        let hint = if odd.starts_with('#') || odd.starts_with('!') {
            " (a line continued with `\\` is part of the value, never a comment)"
        } else {
            ""
        };
        return Some((format!("`{odd}` is no `host:port`{hint}"), None));
    }
    let mut fixed = Vec::new();
    for part in &parts {
        let bare = match part.split_once("://") {
            Some((_, rest)) => {
                problems.push("servers take no scheme (`kafka://`, `PLAINTEXT://` are for listeners)");
                rest.trim_end_matches('/')
            }
            None => part,
        };
        let port = bare.rsplit_once(':').map(|(_, p)| p);
        match port {
            Some(p) if p.parse::<u16>().is_ok_and(|p| p > 0) => fixed.push(bare.to_owned()),
            Some(_) => {
                problems.push("a port is not a number from 1 to 65535");
                return Some((dedup(problems), None));
            }
            None => {
                problems.push("every server needs a port");
                fixed.push(format!("{bare}:9092"));
            }
        }
    }
    (!problems.is_empty()).then(|| (dedup(problems), Some(fixed.join(","))))
}

fn dedup(mut problems: Vec<&str>) -> String {
    problems.dedup();
    problems.join("; ")
}

/// What a client does with a key it does not know.
fn ignored_by(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => "the Java client logs that it \"isn't a known config\" and ignores it",
        Dialect::Librdkafka => "librdkafka refuses to start: \"No such configuration property\"",
    }
}

fn other_client_key(s: &Settings<'_>, entry: &Entry, other: Dialect) -> Finding {
    let finding = Finding::new(
        &rules::OTHER_CLIENT_KEY,
        format!(
            "`{}` is a {} key, not a {} one",
            entry.key,
            other.title(),
            s.dialect.title()
        ),
    )
    .at(entry.key_span.clone(), format!("only {} knows this key", other.title()))
    .why(ignored_by(s.dialect).to_owned() + ", so the setting is not made");
    // librdkafka refuses a key it does not know: the client never starts.
    let finding = match s.dialect {
        Dialect::Librdkafka => finding.severity(Severity::Error),
        Dialect::Java => finding,
    };
    match keys::equivalent(other, &entry.key) {
        Some((own, convert)) => match convert.apply(&entry.value) {
            Some(value) => {
                let unit = match convert {
                    Convert::Times(_) | Convert::Over(_) => " (converted to its unit)",
                    _ => "",
                };
                finding
                    .help(format!(
                        "the {} key for this setting is `{own}`{unit}",
                        s.dialect.title()
                    ))
                    .fix(Fix::replace(s.file, entry, own, &value))
            }
            None => finding.help(format!(
                "the {} key for this setting is `{own}`, whose values differ; see its documentation",
                s.dialect.title()
            )),
        },
        None => finding
            .help(format!("{} has no such setting; delete the line", s.dialect.title()))
            .fix(Fix::delete(entry)),
    }
}

fn invalid_value(s: &Settings<'_>, entry: &Entry, out: &mut Vec<Finding>) {
    let key = canonical(s.dialect, &entry.key);
    let Some(kind) = kind_of(s.dialect, key) else {
        return;
    };
    let v = entry.value.trim();
    let (ok, allowed) = match (kind, entry.kind) {
        (_, ValueKind::Null | ValueKind::Array) => (false, describe(kind)),
        (Kind::Bool, _) => (parse_bool(s.dialect, v).is_some(), describe(kind)),
        (Kind::Int(lo, hi), ValueKind::Text | ValueKind::Number) => {
            (v.parse::<i64>().is_ok_and(|n| (lo..=hi).contains(&n)), describe(kind))
        }
        (Kind::Int(..), ValueKind::Bool) => (false, describe(kind)),
        (Kind::Words(words), _) => {
            let found = match s.dialect {
                Dialect::Java if key == "group.protocol" => words.iter().any(|w| w.eq_ignore_ascii_case(v)),
                Dialect::Java if key == "auto.offset.reset" => words.contains(&v) || v.starts_with("by_duration:"),
                Dialect::Java => words.contains(&v),
                Dialect::Librdkafka => words.iter().any(|w| w.eq_ignore_ascii_case(v)),
            };
            (found, describe(kind))
        }
    };
    if ok {
        return;
    }
    let mut finding = Finding::new(
        &rules::INVALID_VALUE,
        format!("`{}` cannot be `{}`", entry.key, entry.value),
    )
    .at(entry.value_span.clone(), format!("expected {allowed}"))
    .help(format!("`{}` takes {allowed}", entry.key))
    .why("the client refuses to start with this value");
    let fix = match kind {
        Kind::Int(lo, hi) => with_unit(key, v)
            .filter(|n| (lo..=hi).contains(n))
            .map(|n| n.to_string())
            .or_else(|| {
                let n: i64 = v.parse().ok()?;
                Some(n.clamp(lo, hi).to_string())
            }),
        Kind::Bool => None,
        Kind::Words(words) => nearest_word(words, v).or_else(|| safe_word(key)).map(str::to_owned),
    };
    if let Some(value) = fix {
        finding = finding.fix(Fix::replace(s.file, entry, &entry.key, &value));
    }
    out.push(finding);
}

/// The allowed word nearest to a misspelt `value` (`lz5`: `lz4`, `earlist`:
/// `earliest`), when one is close enough to be what was meant: within one edit,
/// plus one per six characters, ignoring case.
fn nearest_word(words: &[&'static str], value: &str) -> Option<&'static str> {
    // Numbers are not spelt: `acks=2` is one edit from `0`, which would lose
    // records. The key's safe value is the fix for them.
    if !value.chars().any(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = value.to_ascii_lowercase();
    let limit = 1 + value.chars().count() / 6;
    words
        .iter()
        .map(|&w| (strsim::damerau_levenshtein(&value, &w.to_ascii_lowercase()), w))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, w)| w)
}

/// The values a kind allows, in words.
fn describe(kind: Kind) -> String {
    match kind {
        Kind::Bool => "`true` or `false`".to_owned(),
        Kind::Int(lo, hi) if hi == i64::MAX => format!("an integer of at least {lo}"),
        Kind::Int(lo, hi) => format!("an integer from {lo} to {hi}"),
        Kind::Words(words) => {
            let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
            format!("one of {}", quoted.join(", "))
        }
    }
}

fn duplicates(s: &Settings<'_>, out: &mut Vec<Finding>) {
    let mut seen: HashMap<String, &Entry> = HashMap::new();
    for entry in &s.file.entries {
        let names = keys::names_of(s.dialect, &entry.key);
        let id = names.iter().min().copied().unwrap_or(&entry.key).to_owned();
        if let Some(earlier) = seen.insert(id, entry) {
            let same = earlier.key == entry.key;
            let message = if same {
                format!("`{}` is set more than once", entry.key)
            } else {
                format!("`{}` and `{}` are one setting, set twice", earlier.key, entry.key)
            };
            out.push(
                Finding::new(&rules::DUPLICATE_KEY, message)
                    .at(earlier.span.clone(), "this value is ignored")
                    .related(Some(entry), "this one wins")
                    .help("delete all but one")
                    .why("the client keeps only the last value; the first reads as if it were in force")
                    .fix(Fix::delete(earlier)),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Producers

fn acks(s: &Settings<'_>, out: &mut Vec<Finding>) {
    let Some(acks) = s.acks() else { return };
    let fix = Fix::set(s, "acks", "all");
    match acks.get() {
        0 => out.push(
            Finding::new(&rules::ACKS_ZERO, format!("{}: the broker never confirms a write", setting("acks", &acks)))
                .at_value(acks.entry(), "the producer does not wait for any answer")
                .help("use `acks=all`: the broker answers once the batch is durable")
                .why("if the broker is down, refuses the batch or crashes before it reaches disk, the record is lost and no one is told")
                .fix(fix),
        ),
        1 => out.push(
            Finding::new(
                &rules::ACKS_ONE,
                format!("{}: records are acknowledged before they are safe", setting("acks", &acks)),
            )
            .at_value(acks.entry(), "only the leader has the batch when it answers")
            .help("use `acks=all`")
            .why("if the leader fails before its followers copy the batch (on Veltrix: before the fsync), acknowledged records are lost")
            .fix(fix),
        ),
        _ => {}
    }
}

/// A setting that idempotence cannot work with, set explicitly.
struct Conflict<'a> {
    entry: &'a Entry,
    what: String,
}

fn idempotence_conflicts<'a>(s: &Settings<'a>) -> Vec<Conflict<'a>> {
    let mut conflicts = Vec::new();
    if let Some(Value::Set(e, a)) = s.acks()
        && a != -1
    {
        conflicts.push(Conflict {
            entry: e,
            what: "idempotence needs `acks=all`".to_owned(),
        });
    }
    if let Some(Value::Set(e, 0)) = s.int("retries") {
        conflicts.push(Conflict {
            entry: e,
            what: "idempotence needs `retries` of at least 1".to_owned(),
        });
    }
    if let Some(Value::Set(e, n)) = s.int("max.in.flight.requests.per.connection")
        && n > 5
    {
        conflicts.push(Conflict {
            entry: e,
            what: "idempotence allows at most 5 requests in flight".to_owned(),
        });
    }
    conflicts
}

fn idempotence(s: &Settings<'_>, out: &mut Vec<Finding>) {
    let Some(idem) = s.bool("enable.idempotence") else {
        return;
    };
    let conflicts = idempotence_conflicts(s);
    let explicit_on = matches!(idem, Value::Set(_, true));
    // With acks=0 there is no answer, so nothing is retried: no duplicates
    // and no reordering, only the losses acks-zero reports.
    let acks_zero = s.acks().is_some_and(|a| a.get() == 0);
    let mut effective = idem.get();
    for c in &conflicts {
        let fix = Fix::delete(c.entry);
        if explicit_on {
            out.push(
                Finding::new(
                    &rules::IDEMPOTENCE_CONFLICT,
                    format!(
                        "`{}={}` conflicts with `enable.idempotence=true`",
                        c.entry.key, c.entry.value
                    ),
                )
                .at(c.entry.value_span.clone(), c.what.clone())
                .related(idem.entry(), "idempotence is enabled here")
                .help("delete the line: the idempotent producer sets the right value itself")
                .why(match s.dialect {
                    Dialect::Java => "the producer throws a ConfigException when it is created, and sends nothing",
                    Dialect::Librdkafka => "librdkafka fails to create the producer, which sends nothing",
                })
                .fix(fix),
            );
        } else if s.dialect == Dialect::Java && idem.get() && !acks_zero {
            effective = false;
            out.push(
                Finding::new(
                    &rules::IDEMPOTENCE_SILENTLY_DISABLED,
                    format!("`{}={}` silently turns idempotence off", c.entry.key, c.entry.value),
                )
                .at(c.entry.value_span.clone(), c.what.clone())
                .help("delete the line, and set `enable.idempotence=true` so that a conflict stops the producer instead")
                .why("the producer starts without idempotence, logging one line: a retry after a lost answer stores the record twice")
                .fix(fix),
            );
        }
    }
    if acks_zero {
        return;
    }
    let retries = s.int("retries").map_or(0, |v| v.get());
    let in_flight = s.int("max.in.flight.requests.per.connection").map_or(1, |v| v.get());
    if !idem.get() {
        let reorder = if retries > 0 && in_flight > 1 {
            format!(
                ", and with up to {in_flight} requests in flight a retried batch can land after a later one, reordering records"
            )
        } else {
            String::new()
        };
        out.push(
            Finding::new(&rules::IDEMPOTENCE_DISABLED, format!("{}: retries can duplicate records", setting("enable.idempotence", &idem)))
                .at_value(idem.entry(), "idempotence is off")
                .help("set `enable.idempotence=true`")
                .why(format!("if an answer is lost after the broker stored a batch, the retry stores it again: consumers see the records twice{reorder}"))
                .fix(Fix::set(s, "enable.idempotence", "true")),
        );
    } else if !effective && retries > 0 && in_flight > 1 {
        let entry = s.entry("max.in.flight.requests.per.connection");
        out.push(
            Finding::new(
                &rules::REORDERING_ON_RETRY,
                format!("{in_flight} requests in flight without idempotence: retries can reorder records"),
            )
            .at_value(entry, "several batches of a partition can be in flight at once")
            .help("enable idempotence, or allow one request in flight")
            .why("a batch that fails and is retried lands after a later batch that succeeded: records of one key are stored out of order")
            .fix(Fix::set(s, "max.in.flight.requests.per.connection", "1")),
        );
    }
    if let Some(Value::Set(e, 0)) = s.int("retries")
        && !explicit_on
    {
        out.push(
            Finding::new(&rules::RETRIES_ZERO, "`retries=0`: a transient error loses the record")
                .at(e.value_span.clone(), "no retry")
                .help("delete the line to keep the default, and bound retrying with the delivery timeout")
                .why("a leader election or broker restart fails the records in flight; unless the application resends them, they are lost")
                .fix(Fix::delete(e)),
        );
    }
}

fn timeouts(s: &Settings<'_>, out: &mut Vec<Finding>) {
    let Some(delivery) = s.int("delivery.timeout.ms") else {
        return;
    };
    let linger = s.int("linger.ms");
    let d = delivery.get();
    match s.dialect {
        Dialect::Java => {
            if let (Some(linger), Some(request)) = (&linger, s.int("request.timeout.ms"))
                && let Value::Set(e, _) = delivery
                && d < linger.get().saturating_add(request.get())
            {
                let needed = linger.get().saturating_add(request.get());
                out.push(
                    Finding::new(
                        &rules::DELIVERY_TIMEOUT_INCONSISTENT,
                        format!("`delivery.timeout.ms={d}` is less than `linger.ms` + `request.timeout.ms` = {needed}"),
                    )
                    .at(e.value_span.clone(), format!("must be at least {needed}"))
                    .related(linger.entry(), "waits this long for a batch")
                    .related(request.entry(), "then this long for the answer")
                    .help("raise `delivery.timeout.ms`, or lower the others")
                    .why("the producer throws a ConfigException when it is created, and sends nothing")
                    .fix(Fix::set(
                        s,
                        "delivery.timeout.ms",
                        &needed.max(DELIVERY_TIMEOUT_MS_MIN_SAFE).to_string(),
                    )),
                );
                return;
            }
        }
        Dialect::Librdkafka => {
            if let (Value::Set(e, _), Some(linger)) = (&delivery, linger.as_ref().filter(|l| l.is_set()))
                && d != 0
                && d <= linger.get()
            {
                let suggested = linger.get().saturating_mul(2).max(300_000);
                out.push(
                    Finding::new(
                        &rules::DELIVERY_TIMEOUT_INCONSISTENT,
                        format!("`{}={d}` is not greater than `linger.ms={}`", e.key, linger.get()),
                    )
                    .at(e.value_span.clone(), format!("must be greater than {}", linger.get()))
                    .related(linger.entry(), "records wait this long for their batch")
                    .help("raise the message timeout, or lower `linger.ms`")
                    .why("librdkafka fails to create the producer, which sends nothing")
                    .fix(Fix::set(s, "message.timeout.ms", &suggested.to_string())),
                );
                return;
            }
            if let Value::Set(e, 0) = delivery {
                out.push(
                    Finding::new(&rules::MESSAGE_TIMEOUT_INFINITE, format!("`{}=0`: records never time out", e.key))
                        .at(e.value_span.clone(), "0 means no timeout")
                        .help("set a finite timeout and handle failures in the delivery report")
                        .why("a record that can never be delivered stays queued forever: flush() never returns, the queue fills and every later produce fails")
                        .fix(Fix::set(s, "message.timeout.ms", "300000")),
                );
                return;
            }
        }
    }
    if let Value::Set(e, _) = delivery
        && d > 0
        && d < DELIVERY_TIMEOUT_MS_MIN_SAFE
    {
        let default = match s.dialect {
            Dialect::Java => "120000",
            Dialect::Librdkafka => "300000",
        };
        out.push(
            Finding::new(&rules::DELIVERY_TIMEOUT_SHORT, format!("`{}={d}`: records fail after {d} ms of trying", e.key))
                .at(e.value_span.clone(), format!("shorter than {DELIVERY_TIMEOUT_MS_MIN_SAFE} ms"))
                .help(format!("allow at least {DELIVERY_TIMEOUT_MS_MIN_SAFE} ms; the default is {default}"))
                .why("a leader election or broker restart outlasts the timeout: the records waiting fail, and are lost unless the application resends them")
                .fix(Fix::set(s, &e.key, default)),
        );
    }
}

fn buffers(s: &Settings<'_>, out: &mut Vec<Finding>) {
    let why_small = match s.dialect {
        Dialect::Java => {
            "a burst or a slow broker fills it: send() blocks for max.block.ms and then throws, and records the application does not resend are lost"
        }
        Dialect::Librdkafka => {
            "a burst or a slow broker fills it: produce() fails with a full queue, and records the application does not resend are lost"
        }
    };
    let why_huge = "everything in the buffer is only in the process's memory: a crash, an out-of-memory kill or a deploy loses it all";
    match s.dialect {
        Dialect::Java => {
            let Some(Value::Set(e, bytes)) = s.int("buffer.memory") else {
                return;
            };
            let request = s.int("max.request.size").map_or(0, |v| v.get());
            if bytes < BUFFER_BYTES_MIN_SAFE || bytes < request {
                out.push(
                    Finding::new(
                        &rules::BUFFER_SMALL,
                        format!("`buffer.memory={bytes}` is a small producer buffer"),
                    )
                    .at(
                        e.value_span.clone(),
                        format!("less than {}", BUFFER_BYTES_MIN_SAFE.max(request)),
                    )
                    .help("keep the default of 32 MiB, or size it for a few seconds of peak traffic")
                    .why(why_small)
                    .fix(Fix::set(s, "buffer.memory", "33554432")),
                );
            } else if bytes > BUFFER_BYTES_MAX_SAFE {
                out.push(
                    Finding::new(
                        &rules::BUFFER_HUGE,
                        format!("`buffer.memory={bytes}` buffers more than 1 GiB"),
                    )
                    .at(e.value_span.clone(), "more than 1 GiB")
                    .help("size it for a few seconds of peak traffic")
                    .why(why_huge),
                );
            }
        }
        Dialect::Librdkafka => {
            if let Some(Value::Set(e, kb)) = s.int("queue.buffering.max.kbytes") {
                let bytes = kb.saturating_mul(1024);
                if bytes < BUFFER_BYTES_MIN_SAFE {
                    out.push(
                        Finding::new(
                            &rules::BUFFER_SMALL,
                            format!("`queue.buffering.max.kbytes={kb}` is a small producer queue"),
                        )
                        .at(e.value_span.clone(), "less than 1 MiB")
                        .help("keep the default of 1048576 (1 GiB), or size it for a few seconds of peak traffic")
                        .why(why_small)
                        .fix(Fix::set(s, "queue.buffering.max.kbytes", "1048576")),
                    );
                } else if bytes > BUFFER_BYTES_MAX_SAFE {
                    out.push(
                        Finding::new(
                            &rules::BUFFER_HUGE,
                            format!("`queue.buffering.max.kbytes={kb}` buffers more than 1 GiB"),
                        )
                        .at(e.value_span.clone(), "more than 1 GiB")
                        .help("size it for a few seconds of peak traffic")
                        .why(why_huge),
                    );
                }
            }
            if let Some(Value::Set(e, n)) = s.int("queue.buffering.max.messages")
                && n > 0
                && n < BUFFER_MESSAGES_MIN_SAFE
            {
                out.push(
                    Finding::new(
                        &rules::BUFFER_SMALL,
                        format!("`queue.buffering.max.messages={n}` is a small producer queue"),
                    )
                    .at(
                        e.value_span.clone(),
                        format!("fewer than {BUFFER_MESSAGES_MIN_SAFE} records"),
                    )
                    .help("keep the default of 100000")
                    .why(why_small)
                    .fix(Fix::set(s, "queue.buffering.max.messages", "100000")),
                );
            }
        }
    }
}

fn max_block(s: &Settings<'_>, out: &mut Vec<Finding>) {
    if s.dialect == Dialect::Java
        && let Some(Value::Set(e, 0)) = s.int("max.block.ms")
    {
        out.push(
            Finding::new(&rules::MAX_BLOCK_ZERO, "`max.block.ms=0`: send() never waits for metadata or buffer space")
                .at(e.value_span.clone(), "no wait at all")
                .help("allow a few seconds; the default is 60000")
                .why("the first record to every topic fails (its metadata is not there yet), and so does every record of a burst; records the application does not resend are lost")
                .fix(Fix::set(s, "max.block.ms", "60000")),
        );
    }
}

fn request_size(s: &Settings<'_>, options: &LintOptions, out: &mut Vec<Finding>) {
    let Some(limits) = &options.broker else { return };
    let key = match s.dialect {
        Dialect::Java => "max.request.size",
        Dialect::Librdkafka => "message.max.bytes",
    };
    let Some(size) = s.int(key) else { return };
    let mut smallest: Option<(u64, String)> = limits
        .message_max_bytes
        .map(|b| (b, format!("the broker's `message.max.bytes` ({b})")));
    for t in &limits.topics {
        if let Some(b) = t.max_message_bytes
            && smallest.as_ref().is_none_or(|(s, _)| b < *s)
        {
            smallest = Some((b, format!("topic `{}`'s `max.message.bytes` ({b})", t.name)));
        }
    }
    let Some((limit, what)) = smallest else { return };
    let Ok(ours) = u64::try_from(size.get()) else { return };
    if ours <= limit {
        return;
    }
    out.push(
        Finding::new(
            &rules::REQUEST_OVER_BROKER_LIMIT,
            format!("{} is larger than {what} at {}", setting(key, &size), limits.source),
        )
        .at_value(size.entry(), format!("the broker refuses batches over {limit} bytes"))
        .help(format!("set `{key}` to at most {limit}"))
        .why(format!(
            "a record of {} to {ours} bytes is accepted by the producer and refused by the broker (MESSAGE_TOO_LARGE): it fails in the delivery callback, and is lost unless the application checks every result",
            limit + 1
        ))
        .fix(Fix::set(s, key, &limit.to_string())),
    );
}

fn partitioner(s: &Settings<'_>, out: &mut Vec<Finding>) {
    match s.dialect {
        Dialect::Java => {
            if let Some(Value::Set(e, true)) = s.bool("partitioner.ignore.keys") {
                out.push(
                    Finding::new(
                        &rules::PARTITIONER_IGNORES_KEYS,
                        "`partitioner.ignore.keys=true`: keyed records spread over partitions",
                    )
                    .at(e.value_span.clone(), "keys are ignored")
                    .help("delete the line unless the keys carry no meaning")
                    .why("records of one key land on several partitions, so consumers see them out of order")
                    .fix(Fix::delete(e)),
                );
            }
        }
        Dialect::Librdkafka => {
            let Some(p) = s.text("partitioner") else { return };
            let name = p.get();
            let fix = Fix::set(s, "partitioner", "murmur2_random");
            if name.eq_ignore_ascii_case("random") {
                out.push(
                    Finding::new(
                        &rules::PARTITIONER_IGNORES_KEYS,
                        "`partitioner=random`: keyed records spread over partitions",
                    )
                    .at_value(p.entry(), "keys are ignored")
                    .help("use `partitioner=murmur2_random`, the Java producer's partitioning")
                    .why("records of one key land on several partitions, so consumers see them out of order")
                    .fix(fix),
                );
            } else if ["consistent_random", "consistent", "fnv1a", "fnv1a_random"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            {
                out.push(
                    Finding::new(
                        &rules::PARTITIONER_MISMATCH,
                        format!("{}: keys hash differently than in Java clients", setting("partitioner", &p)),
                    )
                    .at_value(p.entry(), "not murmur2")
                    .help("use `partitioner=murmur2_random`, which places keys as the Java producer does")
                    .why("when Java and librdkafka producers write one topic, the same key lands on two partitions: per-key order and per-key state break")
                    .fix(fix),
                );
            }
        }
    }
}

fn transactions(s: &Settings<'_>, out: &mut Vec<Finding>) {
    if s.dialect != Dialect::Librdkafka {
        return;
    }
    let Some(e) = s.entry("transactional.id") else { return };
    if e.value.is_empty() {
        return;
    }
    let strategy = s.text("metadata.recovery.strategy");
    if strategy.as_ref().is_some_and(|v| v.get().eq_ignore_ascii_case("none")) {
        return;
    }
    let finding = Finding::new(
        &rules::TRANSACTIONAL_REBOOTSTRAP,
        "a transactional librdkafka producer re-bootstraps when its only broker restarts, and can hang",
    );
    let finding = match strategy.as_ref().and_then(Value::entry) {
        Some(set) => finding.at(set.value_span.clone(), "re-bootstraps when every broker is down"),
        None => finding.at(e.span.clone(), "re-bootstraps by default when every broker is down"),
    };
    out.push(
        finding
            .help("set `metadata.recovery.strategy=none`")
            .why("after a re-bootstrap, send_offsets_to_transaction waits for the decommissioned coordinator forever (librdkafka issue 5511)")
            .fix(Fix::set(s, "metadata.recovery.strategy", "none")),
    );
}

// ---------------------------------------------------------------------------
// Consumers

fn commits(s: &Settings<'_>, out: &mut Vec<Finding>) {
    let Some(auto) = s.bool("enable.auto.commit") else {
        return;
    };
    if !auto.get() {
        return;
    }
    match s.dialect {
        Dialect::Librdkafka => {
            let Some(store) = s.bool("enable.auto.offset.store") else {
                return;
            };
            if !store.get() {
                return;
            }
            out.push(
                Finding::new(
                    &rules::AUTO_OFFSET_STORE,
                    format!("{} with auto-commit: offsets are committed before processing", setting("enable.auto.offset.store", &store)),
                )
                .at_value(
                    store.entry().or(auto.entry()),
                    if store.is_set() {
                        "stores each offset when the message is handed over"
                    } else {
                        "commits the stored offsets in the background"
                    },
                )
                .help("set `enable.auto.offset.store=false` and store each offset (`store_offsets()`) after processing the message")
                .why("a background thread commits the offsets of messages still being processed: if the application crashes, those messages are never processed")
                .fix(Fix::set(s, "enable.auto.offset.store", "false")),
            );
        }
        Dialect::Java => {
            // Without a group id Java turns auto-commit off; group_id() reports it.
            if !s.is_set("group.id") {
                return;
            }
            out.push(
                Finding::new(
                    &rules::AUTO_COMMIT_IN_POLL,
                    format!("{}: poll() commits what the previous poll() returned", setting("enable.auto.commit", &auto)),
                )
                .at_value(auto.entry(), "commits inside poll()")
                .help("if records are processed outside the poll loop, set `enable.auto.commit=false` and commit after processing")
                .why("records handed to other threads are committed before they are processed; a crash then loses them")
                .fix(Fix::set(s, "enable.auto.commit", "false")),
            );
        }
    }
}

/// `d` milliseconds in the largest whole unit: `7d`, `36h`, `90s`.
fn human_ms(ms: u64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms} ms")
}

fn offset_reset(s: &Settings<'_>, options: &LintOptions, out: &mut Vec<Finding>) {
    let Some(reset) = s.text("auto.offset.reset") else {
        return;
    };
    let v = reset.get().to_ascii_lowercase();
    if ["latest", "largest", "end"].contains(&v.as_str()) {
        let mut why = "a new group, a new partition, or a group whose committed offset expired starts at the end of the log: every record already there is skipped, without an error".to_owned();
        if let Some(limits) = &options.broker {
            let kept: Vec<String> = limits
                .topics
                .iter()
                .filter_map(|t| {
                    t.retention_ms
                        .map(|r| format!("`{}` keeps records for {}", t.name, human_ms(r)))
                })
                .collect();
            if !kept.is_empty() {
                why.push_str(&format!(
                    " ({}; a group stopped longer than that loses records either way)",
                    kept.join(", ")
                ));
            }
        }
        out.push(
            Finding::new(
                &rules::OFFSET_RESET_LATEST,
                format!(
                    "{}: consumers without a committed offset skip records",
                    setting("auto.offset.reset", &reset)
                ),
            )
            .at_value(reset.entry(), "starts at the end of the log")
            .help("use `auto.offset.reset=earliest`: a gap is silent, a duplicate is not")
            .why(why)
            .fix(Fix::set(s, "auto.offset.reset", "earliest")),
        );
    } else if ["none", "error"].contains(&v.as_str()) {
        out.push(
            Finding::new(
                &rules::OFFSET_RESET_NONE,
                format!(
                    "{}: consumers without a committed offset fail",
                    setting("auto.offset.reset", &reset)
                ),
            )
            .at_value(reset.entry(), "no automatic starting point")
            .help("make sure the application reports the error; `veltrix group reset-offsets` sets a starting point")
            .why("every new group, new partition and expired offset stops consumption until an operator intervenes"),
        );
    }
}

fn isolation(s: &Settings<'_>, out: &mut Vec<Finding>) {
    let Some(level) = s.text("isolation.level") else { return };
    if level.get() != "read_uncommitted" {
        return;
    }
    out.push(
        Finding::new(
            &rules::READ_UNCOMMITTED,
            format!(
                "{}: records of aborted transactions would be delivered",
                setting("isolation.level", &level)
            ),
        )
        .at_value(level.entry(), "reads uncommitted data")
        .help("set `isolation.level=read_committed`")
        .why("when transactional producers write to the topic, this consumer acts on records that were rolled back")
        .fix(Fix::set(s, "isolation.level", "read_committed")),
    );
}

fn group_timings(s: &Settings<'_>, options: &LintOptions, out: &mut Vec<Finding>) {
    let classic = s
        .text("group.protocol")
        .is_none_or(|p| !p.get().eq_ignore_ascii_case("consumer"));
    let (Some(session), Some(heartbeat), Some(poll)) = (
        s.int("session.timeout.ms"),
        s.int("heartbeat.interval.ms"),
        s.int("max.poll.interval.ms"),
    ) else {
        return;
    };
    let (sess, hb, poll_ms) = (session.get(), heartbeat.get(), poll.get());
    if classic && (heartbeat.is_set() || session.is_set()) && hb.saturating_mul(3) > sess {
        let at_or_above = hb >= sess;
        let finding = Finding::new(
            &rules::HEARTBEAT_VS_SESSION,
            format!(
                "`heartbeat.interval.ms={hb}` is {} `session.timeout.ms={sess}`",
                if at_or_above {
                    "not below"
                } else {
                    "more than a third of"
                }
            ),
        );
        let finding = match heartbeat.entry() {
            Some(e) => finding.at(
                e.value_span.clone(),
                format!("at most {} for a session of {sess} ms", sess / 3),
            ),
            None => finding.at_value(session.entry(), format!("heartbeats come every {hb} ms")),
        };
        out.push(
            finding
                .severity(if at_or_above { Severity::Error } else { Severity::Warning })
                .related(if heartbeat.is_set() { session.entry() } else { None }, "the session")
                .help(format!("set `heartbeat.interval.ms` to at most a third of the session timeout: {}", sess / 3))
                .why("one or two late heartbeats expel a healthy member: the group rebalances, and records processed but not yet committed are processed again")
                .fix(Fix::set(s, "heartbeat.interval.ms", &(sess / 3).max(1).to_string())),
        );
    }
    let (lo, hi) = options.session_timeout_ms_range;
    if classic
        && let Value::Set(e, _) = session
        && !(lo..=hi).contains(&sess)
    {
        out.push(
            Finding::new(&rules::SESSION_TIMEOUT_RANGE, format!("`session.timeout.ms={sess}` is outside the broker's {lo} .. {hi}"))
                .at(e.value_span.clone(), if sess < lo { format!("below {lo}") } else { format!("above {hi}") })
                .help(format!("choose a session timeout from {lo} to {hi} ms; the default is 45000"))
                .why("the broker refuses the member's JoinGroup (INVALID_SESSION_TIMEOUT): the consumer never gets partitions")
                .fix(Fix::set(s, "session.timeout.ms", &sess.clamp(lo, hi).to_string())),
        );
    }
    if classic && s.dialect == Dialect::Librdkafka && poll_ms < sess {
        out.push(
            Finding::new(
                &rules::POLL_INTERVAL_BELOW_SESSION,
                format!("`max.poll.interval.ms={poll_ms}` is below `session.timeout.ms={sess}`"),
            )
            .at_value(poll.entry().or(session.entry()), format!("must be at least {sess}"))
            .related(if poll.is_set() { session.entry() } else { None }, "the session")
            .help("raise `max.poll.interval.ms` (default 300000) or lower the session timeout")
            .why("librdkafka fails to create the consumer, which reads nothing")
            .fix(Fix::set(s, "max.poll.interval.ms", &sess.max(300_000).to_string())),
        );
    }
    if let Some(processing) = options.processing_ms.and_then(|p| i64::try_from(p).ok())
        && processing >= poll_ms
    {
        let per = match s.dialect {
            Dialect::Java => format!(
                " (up to {} records per poll)",
                s.int("max.poll.records").map_or(500, |v| v.get())
            ),
            Dialect::Librdkafka => String::new(),
        };
        let suggested = processing.saturating_mul(2);
        out.push(
            Finding::new(
                &rules::POLL_INTERVAL_BELOW_PROCESSING,
                format!(
                    "one poll's records{per} take up to {processing} ms to process, longer than {}",
                    setting("max.poll.interval.ms", &poll)
                ),
            )
            .at_value(poll.entry(), format!("shorter than the {processing} ms of processing"))
            .help(format!("raise `max.poll.interval.ms` above the processing time, with a margin: {suggested}"))
            .why("the consumer is declared stuck and leaves the group mid-batch: its partitions move, its commits fail, and the records it was processing are processed again")
            .fix(Fix::set(s, "max.poll.interval.ms", &suggested.to_string())),
        );
    }
}

fn group_id(s: &Settings<'_>, out: &mut Vec<Finding>) {
    if s.entry("group.id").is_some_and(|e| !e.value.is_empty()) {
        return;
    }
    let group_keys = [
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "partition.assignment.strategy",
        "group.instance.id",
        "group.protocol",
        "group.remote.assignor",
    ];
    let Some(first) = s.file.entries.iter().find(|e| group_keys.contains(&e.key.as_str())) else {
        return;
    };
    let refused = s.dialect == Dialect::Java && matches!(s.bool("enable.auto.commit"), Some(Value::Set(_, true)));
    let why = if refused {
        "the Java consumer refuses to start: enable.auto.commit cannot be true without a group id"
    } else {
        "the consumer cannot subscribe or commit: every restart begins again at auto.offset.reset, skipping or repeating records"
    };
    out.push(
        Finding::new(
            &rules::GROUP_ID_MISSING,
            format!("`{}` is set but `group.id` is not", first.key),
        )
        .severity(if refused { Severity::Error } else { Severity::Warning })
        .at(first.key_span.clone(), "a group setting without a group")
        .help("add `group.id` with a name that stays the same across restarts and deployments")
        .why(why),
    );
}

fn crcs(s: &Settings<'_>, out: &mut Vec<Finding>) {
    if let Some(Value::Set(e, false)) = s.bool("check.crcs") {
        out.push(
            Finding::new(
                &rules::CHECK_CRCS_DISABLED,
                "`check.crcs=false`: corrupted records are delivered as if they were good",
            )
            .at(e.value_span.clone(), "checksums are not verified")
            .help("set `check.crcs=true`")
            .why("a batch damaged on the network or on disk reaches the application without an error")
            .fix(Fix::set(s, "check.crcs", flag(true))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_convert_to_the_key_unit() {
        assert_eq!(with_unit("linger.ms", "5s"), Some(5_000));
        assert_eq!(with_unit("linger.ms", "20 ms"), Some(20));
        assert_eq!(with_unit("buffer.memory", "64MiB"), Some(64 << 20));
        assert_eq!(with_unit("retries", "5s"), None);
        assert_eq!(with_unit("linger.ms", "abc"), None);
    }

    #[test]
    fn durations_print_in_their_largest_whole_unit() {
        assert_eq!(human_ms(604_800_000), "7d");
        assert_eq!(human_ms(5_400_000), "90min");
        assert_eq!(human_ms(1_500), "1500 ms");
    }
}
