//! The file (and the environment's overrides) read against the schema: every
//! accepted setting with its value and where it came from, every rejected one
//! reported.
//!
//! Keys are checked one by one rather than through serde, so an unknown key, a
//! value of the wrong type or out of range each gets its own diagnostic with
//! the span the TOML parser kept, and reading goes on after the first problem.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use veltrix_core::share::AutoOffsetReset;

use crate::check::Ctx;
use crate::rules;
use crate::schema::{self, KeyDef, Kind, TableDef, Unit};

/// A value the schema accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    Int(i64),
    Bool(bool),
    Str(String),
    /// Strings, each with its place in the file (`to = ["a", "b"]`; a single
    /// string is a list of one).
    List(Vec<(String, Range<usize>)>),
    /// A table of strings (`headers = { "x-lane" = "critical" }`).
    Map(Vec<(String, String)>),
    /// Nested entries (`[[route.rule]]`), each read against its table.
    Tables(Vec<RawTable>),
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// This byte range of the file.
    File(Range<usize>),
    /// This environment variable; `name` when the problem is the variable's
    /// name rather than its value.
    Env { var: String, value: String, name: bool },
}

/// An accepted setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    pub val: Val,
    pub origin: Origin,
}

/// One table as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawTable {
    /// The table's header (`[broker]`) or, for a table made by dotted keys,
    /// the first key; `None` when the file does not have the table.
    pub header: Option<Range<usize>>,
    pub settings: BTreeMap<&'static str, Setting>,
    /// Keys present with a value that was rejected: they count as declared, so
    /// no rule complains that they are missing.
    pub rejected: BTreeSet<&'static str>,
}

impl RawTable {
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.settings.get(key)?.val {
            Val::Int(n) => Some(n),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.settings.get(key)?.val {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match &self.settings.get(key)?.val {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The strings of a list `key`, with their places.
    pub fn list(&self, key: &str) -> Option<&[(String, Range<usize>)]> {
        match &self.settings.get(key)?.val {
            Val::List(items) => Some(items),
            _ => None,
        }
    }

    /// The pairs of a table of strings `key`.
    pub fn map(&self, key: &str) -> Option<&[(String, String)]> {
        match &self.settings.get(key)?.val {
            Val::Map(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// The nested entries `key`; none when it is not set.
    pub fn tables(&self, key: &str) -> &[RawTable] {
        match self.settings.get(key).map(|s| &s.val) {
            Some(Val::Tables(t)) => t,
            _ => &[],
        }
    }

    /// Where `key` is set, or else where the table is.
    pub fn at(&self, key: &str) -> Option<Origin> {
        self.settings
            .get(key)
            .map(|s| s.origin.clone())
            .or_else(|| self.header.clone().map(Origin::File))
    }

    /// Where `key` is set, if it is.
    pub fn set_at(&self, key: &str) -> Option<Origin> {
        self.settings.get(key).map(|s| s.origin.clone())
    }

    /// Whether the file or the environment mentions `key`, valid or not.
    pub fn declares(&self, key: &str) -> bool {
        self.settings.contains_key(key) || self.rejected.contains(key)
    }
}

/// The whole file as read.
#[derive(Debug, Default)]
pub(crate) struct Raw {
    /// `[broker]`, `[listeners]`, `[limits]`, `[defaults]`, `[groups]`,
    /// `[share]`, `[dedup]`, `[observability]`, `[storage]`, by name.
    pub tables: BTreeMap<&'static str, RawTable>,
    pub topics: Vec<RawTable>,
    pub alerts: Vec<RawTable>,
    pub share_groups: Vec<RawTable>,
    pub quotas: Vec<RawTable>,
    pub routes: Vec<RawTable>,
    pub listeners: Vec<RawTable>,
}

impl Raw {
    /// A single table, empty if the file does not have it.
    pub fn table(&self, name: &str) -> &RawTable {
        static EMPTY: RawTable = RawTable {
            header: None,
            settings: BTreeMap::new(),
            rejected: BTreeSet::new(),
        };
        self.tables.get(name).unwrap_or(&EMPTY)
    }
}

/// Reads the parsed document against the schema.
pub(crate) fn read(ctx: &mut Ctx<'_>, doc: &Spanned<DeTable<'_>>) -> Raw {
    let mut raw = Raw::default();
    for (key, value) in doc.get_ref() {
        let name = key.get_ref().as_ref();
        let Some(def) = schema::table(name) else {
            unknown_top_level(ctx, name, key.span());
            continue;
        };
        if def.array {
            let Some(items) = value.get_ref().as_array() else {
                ctx.emit(
                    &rules::WRONG_TYPE,
                    Some(&Origin::File(value.span())),
                    format!("`{name}` must be an array of tables"),
                )
                .label(format!("`[{name}]` declares a single table"))
                .help(format!("declare each entry with `[[{name}]]` (two brackets)"))
                .note(def.doc);
                continue;
            };
            for item in items.iter() {
                if let Some(t) = table_of(ctx, def, item) {
                    let read = read_table(ctx, def, t, item.span());
                    match def.name {
                        "topic" => raw.topics.push(read),
                        "share_group" => raw.share_groups.push(read),
                        "quota" => raw.quotas.push(read),
                        "route" => raw.routes.push(read),
                        "listener" => raw.listeners.push(read),
                        _ => raw.alerts.push(read),
                    }
                }
            }
        } else if let Some(t) = table_of(ctx, def, value) {
            let read = read_table(ctx, def, t, value.span());
            raw.tables.insert(def.name, read);
        }
    }
    raw
}

/// The table in `value`, or a diagnostic.
fn table_of<'a, 'i>(ctx: &mut Ctx<'_>, def: &TableDef, value: &'a Spanned<DeValue<'i>>) -> Option<&'a DeTable<'i>> {
    if let Some(t) = value.get_ref().as_table() {
        return Some(t);
    }
    let header = if def.array {
        format!("[[{}]]", def.name)
    } else {
        format!("[{}]", def.name)
    };
    ctx.emit(
        &rules::WRONG_TYPE,
        Some(&Origin::File(value.span())),
        format!("`{}` must be a table", def.name),
    )
    .label(format!("found {}", value.get_ref().type_str()))
    .help(format!("write the settings under a `{header}` header"))
    .note(def.doc);
    None
}

fn unknown_top_level(ctx: &mut Ctx<'_>, name: &str, span: Range<usize>) {
    let names: Vec<&str> = schema::TABLES.iter().map(|t| t.name).collect();
    let owner = schema::TABLES.iter().find(|t| t.key(name).is_some());
    let help = match (suggest(name, &names), owner) {
        (Some(s), _) => format!("did you mean `{s}`?"),
        (None, Some(t)) => format!("`{name}` is a key of `[{}]`: move it under that header", t.name),
        (None, None) => format!("the tables are {}", quote_list(&names)),
    };
    ctx.emit(
        &rules::UNKNOWN_KEY,
        Some(&Origin::File(span)),
        format!("unknown table `{name}`"),
    )
    .label("not a table of veltrix.toml")
    .help(help)
    .note(
        "an unknown key is an error rather than ignored: a misspelt setting would otherwise leave the default in force",
    );
}

fn read_table(ctx: &mut Ctx<'_>, def: &'static TableDef, table: &DeTable<'_>, span: Range<usize>) -> RawTable {
    let mut out = RawTable {
        header: Some(span.clone()),
        ..RawTable::default()
    };
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        let Some(kd) = def.key(name) else {
            unknown_key(ctx, def, name, &Origin::File(key.span()));
            continue;
        };
        let origin = Origin::File(value.span());
        let val = match kd.kind {
            Kind::Topics { .. } | Kind::Strings { .. } => topic_list(ctx, kd, value),
            Kind::Headers { .. } => string_table(ctx, kd, value),
            Kind::Tables { table, .. } => nested_tables(ctx, kd, table, value),
            _ => from_toml(ctx, kd, value.get_ref(), &origin),
        };
        match val.and_then(|v| validate(ctx, def, kd, v, &origin)) {
            Some(val) => {
                out.settings.insert(kd.name, Setting { val, origin });
            }
            None => {
                out.rejected.insert(kd.name);
            }
        }
    }
    for kd in def.keys.iter().filter(|k| k.required && !out.declares(k.name)) {
        ctx.emit(
            &rules::MISSING_KEY,
            Some(&Origin::File(span.clone())),
            format!("`[[{}]]` without `{}`", def.name, kd.name),
        )
        .label(format!("this entry has no `{}`", kd.name))
        .help(format!("add `{} = ...` to the entry", kd.name))
        .note(kd.doc);
    }
    out
}

/// A topic name or a list of them; a value that is not a string is reported
/// where it is.
fn topic_list(ctx: &mut Ctx<'_>, kd: &KeyDef, value: &Spanned<DeValue<'_>>) -> Option<Val> {
    let items: Vec<&Spanned<DeValue<'_>>> = match value.get_ref() {
        DeValue::String(_) => vec![value],
        DeValue::Array(a) => a.iter().collect(),
        other => {
            let help = format!("write `{} = \"TOPIC\"` or `{} = [\"TOPIC\", ...]`", kd.name, kd.name);
            wrong_type(ctx, kd, &Origin::File(value.span()), other.type_str(), help);
            return None;
        }
    };
    let mut names = Vec::with_capacity(items.len());
    let mut valid = true;
    for item in items {
        match item.get_ref() {
            DeValue::String(s) => names.push((s.to_string(), item.span())),
            other => {
                let help = match other {
                    DeValue::Integer(i) => format!("quote it: `\"{}\"`", i.as_str()),
                    _ => "write each topic's name as a quoted string".to_owned(),
                };
                wrong_type(ctx, kd, &Origin::File(item.span()), other.type_str(), help);
                valid = false;
            }
        }
    }
    valid.then_some(Val::List(names))
}

/// A table whose values are strings (header names and values).
fn string_table(ctx: &mut Ctx<'_>, kd: &KeyDef, value: &Spanned<DeValue<'_>>) -> Option<Val> {
    let Some(table) = value.get_ref().as_table() else {
        let help = format!("write `{} = {{ \"NAME\" = \"VALUE\" }}`", kd.name);
        wrong_type(ctx, kd, &Origin::File(value.span()), value.get_ref().type_str(), help);
        return None;
    };
    let mut pairs = Vec::with_capacity(table.len());
    let mut valid = true;
    for (k, v) in table {
        match v.get_ref() {
            DeValue::String(s) => pairs.push((k.get_ref().to_string(), s.to_string())),
            other => {
                let help = match other {
                    DeValue::Integer(i) => format!("quote it: `\"{}\"`", i.as_str()),
                    DeValue::Boolean(b) => format!("quote it: `\"{b}\"`"),
                    _ => "write the header's value as a quoted string".to_owned(),
                };
                wrong_type(ctx, kd, &Origin::File(v.span()), other.type_str(), help);
                valid = false;
            }
        }
    }
    valid.then_some(Val::Map(pairs))
}

/// Entries nested in an entry (`[[route.rule]]`), each read against the
/// nested table's keys.
fn nested_tables(ctx: &mut Ctx<'_>, kd: &KeyDef, table: &str, value: &Spanned<DeValue<'_>>) -> Option<Val> {
    let def = schema::nested_table(table)?;
    let Some(items) = value.get_ref().as_array() else {
        ctx.emit(
            &rules::WRONG_TYPE,
            Some(&Origin::File(value.span())),
            format!("`{}` must be an array of tables", kd.name),
        )
        .label(format!("`[{table}]` declares a single table"))
        .help(format!("declare each entry with `[[{table}]]` (two brackets)"))
        .note(def.doc);
        return None;
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items.iter() {
        if let Some(t) = table_of(ctx, def, item) {
            entries.push(read_table(ctx, def, t, item.span()));
        }
    }
    Some(Val::Tables(entries))
}

fn unknown_key(ctx: &mut Ctx<'_>, def: &TableDef, name: &str, at: &Origin) {
    let names: Vec<&str> = def.keys.iter().map(|k| k.name).collect();
    let elsewhere = schema::TABLES
        .iter()
        .find(|t| t.name != def.name && t.key(name).is_some());
    let help = match (kafka_spelling(def, name), suggest(name, &names), elsewhere) {
        (Some((key, kafka)), ..) => format!("did you mean `{key}`? (Kafka's `{kafka}`)"),
        (None, Some(s), _) => format!("did you mean `{s}`?"),
        (None, None, Some(t)) => format!("`{name}` is a key of `[{}]`, not of `[{}]`", t.name, def.name),
        (None, None, None) => format!("the keys of `[{}]` are {}", def.name, quote_list(&names)),
    };
    let (message, help) = match at {
        Origin::Env { var, .. } => {
            let help = match suggest(name, &names) {
                Some(s) => format!("did you mean `{}`?", env_var(def.name, s)),
                None => help,
            };
            (format!("unknown environment override `{var}`"), help)
        }
        Origin::File(_) => (format!("unknown key `{name}` in `[{}]`", def.name), help),
    };
    ctx.emit(&rules::UNKNOWN_KEY, Some(at), message)
        .label("unknown key")
        .help(help)
        .note("an unknown key is an error rather than ignored: a misspelt setting would otherwise leave the default in force");
}

/// The key of `def` that `name` spells as Kafka does (`delivery_count_limit`
/// for Kafka's `share.delivery.count.limit`), with Kafka's name: the file
/// names limits `*_max`, so Kafka's spelling is a likely slip.
fn kafka_spelling(def: &TableDef, name: &str) -> Option<(&'static str, &'static str)> {
    schema::SHARE_GROUP_SETTINGS
        .iter()
        .find(|(key, kafka)| {
            *key != name && def.key(key).is_some() && kafka.trim_start_matches("share.").replace('.', "_") == name
        })
        .copied()
}

/// The variable that overrides `table.key`.
pub(crate) fn env_var(table: &str, key: &str) -> String {
    format!("VELTRIX_{}__{}", table.to_uppercase(), key.to_uppercase())
}

/// The closest candidate, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&lower, c), *c))
        .filter(|&(score, _)| score >= 0.82)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn quote_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// Converts a TOML value to the key's type, or reports it.
fn from_toml(ctx: &mut Ctx<'_>, kd: &KeyDef, value: &DeValue<'_>, at: &Origin) -> Option<Val> {
    let found = value.type_str();
    let help = match (kd.kind, value) {
        (Kind::Int { .. }, DeValue::Integer(i)) => {
            return match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Val::Int(n)),
                Err(_) => {
                    out_of_range(ctx, kd, at, "is too large");
                    None
                }
            };
        }
        (Kind::Bool, DeValue::Boolean(b)) => return Some(Val::Bool(*b)),
        (
            Kind::Word(_)
            | Kind::Address
            | Kind::Path
            | Kind::Name
            | Kind::HeaderName
            | Kind::Url
            | Kind::PostgresUrl
            | Kind::KeyPrefix
            | Kind::OffsetReset
            | Kind::Expression,
            DeValue::String(s),
        ) => {
            return Some(Val::Str(s.to_string()));
        }
        (Kind::Int { unit, .. }, DeValue::String(s)) => number_help(unit, s, "without quotes"),
        (Kind::Int { .. }, DeValue::Float(f)) => match f.as_str().parse::<f64>() {
            Ok(x) if x.fract() == 0.0 && x.abs() < 9e15 => format!("write it as an integer: `{}`", x as i64),
            _ => "write a whole number".to_owned(),
        },
        (Kind::Int { unit, .. }, _) => format!("write a whole number of {}", unit.name()),
        (Kind::Bool, DeValue::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
            format!("write `{}` without quotes", s.to_ascii_lowercase())
        }
        (Kind::Bool, _) => "write `true` or `false`".to_owned(),
        (_, DeValue::Integer(i)) => format!("quote it: `\"{}\"`", i.as_str()),
        (_, _) => "write a quoted string".to_owned(),
    };
    wrong_type(ctx, kd, at, found, help);
    None
}

fn wrong_type(ctx: &mut Ctx<'_>, kd: &KeyDef, at: &Origin, found: &str, help: String) {
    ctx.emit(
        &rules::WRONG_TYPE,
        Some(at),
        format!("`{}` expects {}, found {found}", kd.name, article(&kd.kind)),
    )
    .label(format!("expected {}", kd.kind.describe()))
    .help(help)
    .note(kd.doc);
}

fn article(kind: &Kind) -> String {
    match kind {
        Kind::Int { unit, .. } => format!("an integer number of {}", unit.name()),
        Kind::Bool => "a boolean".to_owned(),
        Kind::Topics { .. } => "a topic name or a list of them".to_owned(),
        Kind::Strings { .. } => "a list of strings".to_owned(),
        Kind::Headers { .. } => "a table of strings".to_owned(),
        Kind::Tables { .. } => "an array of tables".to_owned(),
        _ => "a string".to_owned(),
    }
}

/// Help for a quoted quantity where a number is expected: "7d" for a number
/// of milliseconds is shown as the number to write.
fn number_help(unit: Unit, text: &str, how: &str) -> String {
    match parse_quantity(text, unit) {
        Some(n) => format!("write `{}` ({text} in {})", schema::group_digits(n), unit.name()),
        None => format!("write a whole number of {} {how}", unit.name()),
    }
}

/// `"7d"`, `"30s"`, `"1GiB"`, `"1_000"` as a number of `unit`.
pub(crate) fn parse_quantity(text: &str, unit: Unit) -> Option<i64> {
    let t = text.trim().replace('_', "");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let factor: i64 = match (unit, suffix.trim()) {
        (_, "") => 1,
        (Unit::Milliseconds, "ms") => 1,
        (Unit::Milliseconds, "s") => 1_000,
        (Unit::Milliseconds, "m" | "min") => 60_000,
        (Unit::Milliseconds, "h") => 3_600_000,
        (Unit::Milliseconds, "d") => 86_400_000,
        (Unit::Milliseconds, "w") => 7 * 86_400_000,
        (Unit::Bytes, "B" | "b") => 1,
        (Unit::Bytes, "KiB" | "k" | "K") => 1 << 10,
        (Unit::Bytes, "MiB" | "M") => 1 << 20,
        (Unit::Bytes, "GiB" | "G") => 1 << 30,
        (Unit::Bytes, "TiB" | "T") => 1 << 40,
        (Unit::Bytes, "KB" | "kB") => 1_000,
        (Unit::Bytes, "MB") => 1_000_000,
        (Unit::Bytes, "GB") => 1_000_000_000,
        (Unit::Bytes, "TB") => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn out_of_range(ctx: &mut Ctx<'_>, kd: &KeyDef, at: &Origin, what: &str) {
    ctx.emit(&rules::OUT_OF_RANGE, Some(at), format!("`{}` {what}", kd.name))
        .label(format!("allowed: {}", kd.kind.range()))
        .help(format!("use a value in {}", kd.kind.range()))
        .note(kd.doc);
}

/// The readings of `n` of a `_ms` key in larger units that fall in
/// `min..=max`, as lines to write: `key = 45_000` for 45 seconds.
pub(crate) fn ms_readings(key: &str, n: i64, min: i64, max: i64) -> Vec<String> {
    let plural = if n == 1 { "" } else { "s" };
    [
        (1_000, "second"),
        (60_000, "minute"),
        (3_600_000, "hour"),
        (86_400_000, "day"),
    ]
    .into_iter()
    .filter_map(|(unit, name)| Some((n.checked_mul(unit)?, name)))
    .filter(|(ms, _)| (min..=max).contains(ms))
    .map(|(ms, name)| format!("`{key} = {}` for {n} {name}{plural}", schema::group_digits(ms)))
    .collect()
}

/// V004 for a `_ms` key below its minimum that reads as another unit: the
/// help gives the lines to write in each plausible one.
fn ms_below_min(ctx: &mut Ctx<'_>, kd: &KeyDef, at: &Origin, n: i64, min: i64, max: i64) -> bool {
    let readings = ms_readings(kd.name, n, min, max);
    if n <= 0 || readings.is_empty() {
        return false;
    }
    ctx.emit(
        &rules::OUT_OF_RANGE,
        Some(at),
        format!(
            "`{}` is {n}, below the minimum {}: milliseconds, not seconds",
            kd.name,
            schema::group_digits(min)
        ),
    )
    .label(format!("{n} milliseconds; allowed: {}", kd.kind.range()))
    .help(format!(
        "the value is in milliseconds: write {}; or use a value in {}",
        readings.join(", or "),
        kd.kind.range()
    ))
    .note(kd.doc);
    true
}

fn unit_is_ms(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Int {
            unit: Unit::Milliseconds,
            ..
        }
    )
}

/// Checks a value of the right type against the key's range or words; a
/// value out of them is reported and dropped.
fn validate(ctx: &mut Ctx<'_>, def: &TableDef, kd: &KeyDef, val: Val, at: &Origin) -> Option<Val> {
    let valid = match (&kd.kind, &val) {
        (Kind::Int { .. }, Val::Int(n)) => int_in_range(ctx, kd, *n, at),
        (Kind::Word(words), Val::Str(s)) => known_word(ctx, kd, words, s, at),
        (Kind::Url, Val::Str(s)) => http_url(ctx, kd, s, at),
        (Kind::PostgresUrl, Val::Str(s)) => postgres_url(ctx, kd, s, at),
        (Kind::KeyPrefix, Val::Str(s)) => key_prefix(ctx, kd, s, at),
        (Kind::Address, Val::Str(s)) => ip_and_port(ctx, def, kd, s, at),
        (Kind::Path | Kind::Name, Val::Str(s)) => not_empty(ctx, kd, s, at),
        (Kind::OffsetReset, Val::Str(s)) => offset_reset(ctx, kd, s, at),
        (Kind::HeaderName, Val::Str(s)) => header_name(ctx, kd, s, at),
        (Kind::Strings { max }, Val::List(items)) => strings(ctx, kd, *max, items, at),
        _ => true,
    };
    valid.then_some(val)
}

/// At most `max` strings, none empty.
fn strings(ctx: &mut Ctx<'_>, kd: &KeyDef, max: usize, items: &[(String, Range<usize>)], at: &Origin) -> bool {
    if items.len() > max {
        out_of_range(
            ctx,
            kd,
            at,
            &format!("has {} entries, above the maximum {max}", items.len()),
        );
        return false;
    }
    if let Some((_, span)) = items.iter().find(|(s, _)| s.trim().is_empty()) {
        out_of_range(ctx, kd, &Origin::File(span.clone()), "has an empty entry");
        return false;
    }
    true
}

/// An integer within the key's `min..=max`, or -1 where that means no limit.
fn int_in_range(ctx: &mut Ctx<'_>, kd: &KeyDef, n: i64, at: &Origin) -> bool {
    let Kind::Int {
        min, max, unlimited, ..
    } = kd.kind
    else {
        return true;
    };
    if (unlimited && n == -1) || (min..=max).contains(&n) {
        return true;
    }
    if n < min && unit_is_ms(&kd.kind) && ms_below_min(ctx, kd, at, n, min, max) {
        return false;
    }
    let what = if n < min {
        format!(
            "is {}, below the minimum {}",
            schema::group_digits(n),
            schema::group_digits(min)
        )
    } else {
        format!(
            "is {}, above the maximum {}",
            schema::group_digits(n),
            schema::group_digits(max)
        )
    };
    out_of_range(ctx, kd, at, &what);
    false
}

/// One of the key's words.
fn known_word(ctx: &mut Ctx<'_>, kd: &KeyDef, words: &[&str], s: &str, at: &Origin) -> bool {
    if words.contains(&s) {
        return true;
    }
    let help = match suggest(s, words) {
        Some(w) => format!("did you mean `\"{w}\"`?"),
        None => format!("use one of {}", quote_list(words)),
    };
    ctx.emit(
        &rules::UNKNOWN_VALUE,
        Some(at),
        format!("`{}` cannot be `\"{s}\"`", kd.name),
    )
    .label(format!(
        "expected {}",
        kd.kind.describe().trim_start_matches("string: ")
    ))
    .help(help)
    .note(kd.doc);
    false
}

/// An http:// or https:// URL with a host.
fn http_url(ctx: &mut Ctx<'_>, kd: &KeyDef, s: &str, at: &Origin) -> bool {
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    if rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace)) {
        return true;
    }
    let help = if rest.is_none() {
        format!(
            "start it with `http://` or `https://`, such as `\"https://{}\"`",
            s.trim_start_matches('/')
        )
    } else {
        "write a host after the scheme, such as `\"https://alerts.example.com/veltrix\"`".to_owned()
    };
    ctx.emit(
        &rules::INVALID_URL,
        Some(at),
        format!("`{}` is not an http(s) URL", kd.name),
    )
    .label("expected http://HOST/... or https://HOST/...")
    .help(help)
    .note(kd.doc);
    false
}

/// A connection string libpq (and the broker's client) takes: a
/// `postgresql://` or `postgres://` URL with a host or a socket directory, or
/// `key=value` pairs.
fn postgres_url(ctx: &mut Ctx<'_>, kd: &KeyDef, s: &str, at: &Origin) -> bool {
    let t = s.trim();
    let rest = t
        .strip_prefix("postgresql://")
        .or_else(|| t.strip_prefix("postgres://"));
    let fine = match rest {
        Some(r) => !r.is_empty() && !r.contains(char::is_whitespace),
        None => t.contains('=') && !t.contains("://"),
    };
    if fine {
        return true;
    }
    let help = match rest {
        Some(_) => {
            "write the server after the scheme, such as `\"postgresql://veltrix@db.internal:5432/veltrix\"`".to_owned()
        }
        None => "write a libpq URL, such as `\"postgresql://veltrix@db.internal:5432/veltrix\"`".to_owned(),
    };
    ctx.emit(
        &rules::INVALID_URL,
        Some(at),
        format!("`{}` is not a PostgreSQL URL", kd.name),
    )
    .label("expected postgresql://USER@HOST[:PORT]/DATABASE")
    .help(help)
    .note(kd.doc);
    false
}

/// 1 to 64 ASCII letters, digits, `.`, `_` and `-`: a part of the bucket's
/// keys the shared storage accepts.
fn key_prefix(ctx: &mut Ctx<'_>, kd: &KeyDef, s: &str, at: &Origin) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if (1..=schema::KEY_PREFIX_BYTES_MAX).contains(&s.len()) && s.bytes().all(allowed) {
        return true;
    }
    let what = if s.is_empty() {
        "is empty".to_owned()
    } else if s.len() > schema::KEY_PREFIX_BYTES_MAX {
        format!("is {} bytes long", s.len())
    } else {
        let bad = s.chars().find(|c| !c.is_ascii() || !allowed(*c as u8)).unwrap_or(' ');
        format!("has `{bad}` in it")
    };
    let fixed: String = s
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii() && allowed(c as u8) { c } else { '-' })
        .take(schema::KEY_PREFIX_BYTES_MAX)
        .collect();
    let help = if fixed.is_empty() {
        "write a name such as `\"veltrix\"`, or remove the line for the default".to_owned()
    } else {
        format!("write `{} = \"{fixed}\"`", kd.name)
    };
    ctx.emit(&rules::OUT_OF_RANGE, Some(at), format!("`{}` {what}", kd.name))
        .label(format!("allowed: {}", kd.kind.range()))
        .help(help)
        .note(kd.doc);
    false
}

/// `latest`, `earliest` or `by_duration:` and an ISO 8601 duration, as the
/// engine reads them.
fn offset_reset(ctx: &mut Ctx<'_>, kd: &KeyDef, s: &str, at: &Origin) -> bool {
    let Err(reason) = AutoOffsetReset::parse(s) else {
        return true;
    };
    let help = match s.split_once(':') {
        Some((_, d)) if s.starts_with("by_duration:") => {
            match parse_quantity(d, Unit::Milliseconds).filter(|ms| *ms > 0 && ms % 1000 == 0) {
                Some(ms) => format!("write `\"by_duration:{}\"` ({d} as ISO 8601)", iso_duration(ms)),
                None => {
                    "write the duration as ISO 8601: `PnDTnHnMnS`, such as `by_duration:PT1H` or `by_duration:P1DT12H`"
                        .to_owned()
                }
            }
        }
        _ => match suggest(s, &["latest", "earliest"]) {
            Some(w) => format!("did you mean `\"{w}\"`?"),
            None => "use `\"latest\"`, `\"earliest\"` or `\"by_duration:PT1H\"` (any ISO 8601 duration)".to_owned(),
        },
    };
    ctx.emit(
        &rules::INVALID_OFFSET_RESET,
        Some(at),
        format!("`{}` cannot be `\"{s}\"`", kd.name),
    )
    .label(reason)
    .help(help)
    .note(kd.doc);
    false
}

/// Whole seconds as the shortest ISO 8601 duration: `PT1H`, `P1DT12H`.
fn iso_duration(ms: i64) -> String {
    let s = ms / 1000;
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if hours + minutes + seconds > 0 {
        out.push('T');
        for (n, unit) in [(hours, 'H'), (minutes, 'M'), (seconds, 'S')] {
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
    }
    out
}

/// An IP address and a port.
fn ip_and_port(ctx: &mut Ctx<'_>, def: &TableDef, kd: &KeyDef, s: &str, at: &Origin) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let help = match s.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
            format!("host names are not resolved: write `\"127.0.0.1:{port}\"`")
        }
        Some((host, port)) if port.parse::<u16>().is_ok() && host.contains(':') => {
            format!("put an IPv6 address in brackets: `\"[{host}]:{port}\"`")
        }
        Some((_, port)) if port.parse::<u16>().is_err() => "the port must be 0..=65535".to_owned(),
        None => format!("add a port: `\"{s}:{}\"`", default_port(def, kd)),
        Some(_) => "write an IP address and a port, such as `\"127.0.0.1:9092\"`".to_owned(),
    };
    ctx.emit(
        &rules::INVALID_ADDRESS,
        Some(at),
        format!("`{}` is not an IP:PORT address", kd.name),
    )
    .label("expected IP:PORT")
    .help(help)
    .note(kd.doc);
    false
}

/// A path or a name that is not blank.
fn not_empty(ctx: &mut Ctx<'_>, kd: &KeyDef, s: &str, at: &Origin) -> bool {
    if !s.trim().is_empty() {
        return true;
    }
    ctx.emit(&rules::OUT_OF_RANGE, Some(at), format!("`{}` is empty", kd.name))
        .label("empty")
        .help(format!(
            "give `{}` a value, or remove the line for the default",
            kd.name
        ))
        .note(kd.doc);
    false
}

/// A record header's name the broker can look for: not empty, at most
/// `DEDUP_ID_HEADER_BYTES_MAX` bytes. White space at its ends is allowed
/// (header names are any string) and warned about by the dedup lints.
fn header_name(ctx: &mut Ctx<'_>, kd: &KeyDef, s: &str, at: &Origin) -> bool {
    let max = veltrix_core::DEDUP_ID_HEADER_BYTES_MAX;
    let (what, label, help) = if s.is_empty() {
        (
            "is empty".to_owned(),
            "an empty header name".to_owned(),
            format!(
                "write the header your producers put the message id in, or remove the line for the default `\"{}\"`",
                veltrix_core::DEDUP_ID_HEADER_DEFAULT
            ),
        )
    } else if s.len() > max {
        (
            format!("is {} bytes long", s.len()),
            format!("longer than the limit of {max} bytes"),
            format!("use a header name of at most {max} bytes, the one your producers send"),
        )
    } else {
        return true;
    };
    ctx.emit(&rules::INVALID_ID_HEADER, Some(at), format!("`{}` {what}", kd.name))
        .label(label)
        .help(help)
        .note(kd.doc);
    false
}

fn default_port(def: &TableDef, kd: &KeyDef) -> &'static str {
    match (def.name, kd.name) {
        ("listeners", "http") => "8080",
        _ => "9092",
    }
}

/// Applies `VELTRIX_<TABLE>__<KEY>` overrides. Variables without `__` are not
/// overrides and are left alone (other tools use the `VELTRIX_` prefix too).
pub(crate) fn apply_env(ctx: &mut Ctx<'_>, raw: &mut Raw, env: &[(String, String)]) {
    for (var, value) in env {
        let Some((table, key)) = var.strip_prefix("VELTRIX_").and_then(|rest| rest.split_once("__")) else {
            single_underscore(ctx, var, value);
            continue;
        };
        if quoted(value).is_some() {
            env_value_quoted(ctx, var, value);
            continue;
        }
        let at = Origin::Env {
            var: var.clone(),
            value: value.clone(),
            name: false,
        };
        let at_name = Origin::Env {
            var: var.clone(),
            value: value.clone(),
            name: true,
        };
        let (table, key) = (table.to_ascii_lowercase(), key.to_ascii_lowercase());
        let Some(def) = schema::table(&table).filter(|t| t.env) else {
            let names: Vec<&str> = schema::TABLES.iter().filter(|t| t.env).map(|t| t.name).collect();
            let help = match suggest(&table, &names) {
                Some(s) => format!("did you mean `{}`?", env_var(s, &key)),
                None => format!(
                    "overrides are `VELTRIX_<TABLE>__<KEY>` with a table among {}",
                    quote_list(&names)
                ),
            };
            ctx.emit(
                &rules::UNKNOWN_KEY,
                Some(&at_name),
                format!("unknown environment override `{var}`"),
            )
            .label(format!("no table `[{table}]` takes overrides"))
            .help(help)
            .note("topics, share groups and alerts are declared in the file only; the environment overrides single settings");
            continue;
        };
        let Some(kd) = def.key(&key) else {
            unknown_key(ctx, def, &key, &at_name);
            continue;
        };
        let entry = raw.tables.entry(def.name).or_default();
        match from_env(ctx, kd, value, &at).and_then(|v| validate(ctx, def, kd, v, &at)) {
            Some(val) => {
                entry.rejected.remove(kd.name);
                entry.settings.insert(kd.name, Setting { val, origin: at });
            }
            None => {
                entry.settings.remove(kd.name);
                entry.rejected.insert(kd.name);
            }
        }
    }
}

/// The text inside matching quotes around `value`, if it has them.
fn quoted(value: &str) -> Option<&str> {
    let v = value.trim();
    ['"', '\''].into_iter().find_map(|q| {
        v.strip_prefix(q)
            .and_then(|rest| rest.strip_suffix(q))
            .filter(|_| v.len() >= 2)
    })
}

/// V017: an override's value in quotes, which would become part of it.
fn env_value_quoted(ctx: &mut Ctx<'_>, var: &str, value: &str) {
    let inner = quoted(value).unwrap_or(value);
    let at = Origin::Env {
        var: var.to_owned(),
        value: value.to_owned(),
        name: false,
    };
    ctx.emit(&rules::ENV_VALUE_QUOTED, Some(&at), format!("the value of `{var}` is in quotes"))
        .label("the quotes would be part of the value")
        .help(format!("write `{var}={inner}`"))
        .note("the environment has no quoting: quotes that a shell, a `.env` file or a unit file left in place reach the broker as characters; a path would name a directory with quotes in its name");
}

/// V135: `VELTRIX_TABLE_KEY` with one underscore where the override syntax
/// has two: it overrides nothing.
fn single_underscore(ctx: &mut Ctx<'_>, var: &str, value: &str) {
    let Some(rest) = var.strip_prefix("VELTRIX_") else {
        return;
    };
    let rest = rest.to_ascii_lowercase();
    let meant = schema::TABLES.iter().filter(|t| t.env).find_map(|t| {
        let key = rest.strip_prefix(t.name)?.strip_prefix('_')?;
        t.key(key).map(|_| env_var(t.name, key))
    });
    let Some(meant) = meant else {
        return;
    };
    let at = Origin::Env {
        var: var.to_owned(),
        value: value.to_owned(),
        name: true,
    };
    ctx.emit(&rules::ENV_SINGLE_UNDERSCORE, Some(&at), format!("`{var}` overrides nothing"))
        .label("one underscore between the table and the key")
        .help(format!("did you mean `{meant}`?"))
        .note("overrides are `VELTRIX_<TABLE>__<KEY>`, with two underscores between the table and the key; any other variable is ignored");
}

/// Converts an environment variable's text to the key's type, or reports it.
fn from_env(ctx: &mut Ctx<'_>, kd: &KeyDef, value: &str, at: &Origin) -> Option<Val> {
    match kd.kind {
        Kind::Int { unit, .. } => {
            let digits = value.trim().replace('_', "");
            if let Ok(n) = digits.parse::<i64>() {
                return Some(Val::Int(n));
            }
            if !digits.is_empty() && digits.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) {
                out_of_range(ctx, kd, at, "is too large");
                return None;
            }
            wrong_type(ctx, kd, at, "text", number_help(unit, value, "of digits only"));
            None
        }
        Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" => Some(Val::Bool(true)),
            "false" => Some(Val::Bool(false)),
            _ => {
                wrong_type(ctx, kd, at, "text", "set it to `true` or `false`".to_owned());
                None
            }
        },
        // Comma-separated: `VELTRIX_SECURITY__SUPER_USERS=User:admin,User:ops`.
        Kind::Strings { .. } => Some(Val::List(
            value
                .split(',')
                .map(|s| (s.trim().to_owned(), 0..0))
                .filter(|(s, _)| !s.is_empty())
                .collect(),
        )),
        _ => Some(Val::Str(value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_convert_to_the_keys_unit() {
        assert_eq!(parse_quantity("7d", Unit::Milliseconds), Some(604_800_000));
        assert_eq!(parse_quantity("30s", Unit::Milliseconds), Some(30_000));
        assert_eq!(parse_quantity("1GiB", Unit::Bytes), Some(1 << 30));
        assert_eq!(parse_quantity("1_000", Unit::Records), Some(1000));
        assert_eq!(parse_quantity("1GiB", Unit::Milliseconds), None);
        assert_eq!(parse_quantity("soon", Unit::Milliseconds), None);
    }

    #[test]
    fn durations_are_written_as_iso_8601() {
        assert_eq!(iso_duration(3_600_000), "PT1H");
        assert_eq!(iso_duration(129_600_000), "P1DT12H");
        assert_eq!(iso_duration(604_800_000), "P7D");
        assert_eq!(iso_duration(90_000), "PT1M30S");
        for ms in [1_000, 90_000, 129_600_000, 694_861_000] {
            let reset = AutoOffsetReset::parse(&format!("by_duration:{}", iso_duration(ms)));
            assert_eq!(reset, Ok(AutoOffsetReset::ByDuration { ms }));
        }
    }

    #[test]
    fn suggestions_need_a_close_match() {
        assert_eq!(
            suggest("retention_sm", &["retention_ms", "retention_bytes"]),
            Some("retention_ms")
        );
        assert_eq!(suggest("colour", &["retention_ms", "partitions"]), None);
    }
}
