//! `[storage]`: resolved, and its rules (V006's shared-mode keys, V149 to
//! V154): the keys shared mode needs, plain HTTP to the bucket, keys set
//! while the mode is local, a PostgreSQL password in the file, the buffer
//! under one object's size, and the declared features shared mode does not
//! serve yet. And the findings of `veltrix check --online`, which the binary
//! makes (this crate opens no sockets) and [`Report::add_online`] places at
//! their key.

use std::ops::Range;

use toml::de::DeTable;

use crate::check::{Ctx, Report};
use crate::lints::shown;
use crate::model::SharedStorage;
use crate::raw::{self, Origin, Raw, RawTable};
use crate::rules::{self, Rule};

/// The keys shared mode cannot do without.
const REQUIRED_SHARED: [&str; 3] = ["broker_id", "bucket", "postgres_url"];

/// `[storage]`: `Some` in shared mode with its three required keys.
pub(crate) fn resolve(s: &RawTable) -> Option<SharedStorage> {
    if s.str("mode") != Some("shared") {
        return None;
    }
    let broker_id = i32::try_from(s.int("broker_id")?).ok()?;
    let mut c = SharedStorage::new(broker_id, s.str("bucket")?, s.str("postgres_url")?);
    c.endpoint = s.str("endpoint").map(str::to_owned);
    if let Some(r) = s.str("region") {
        c.region = r.to_owned();
    }
    if let Some(b) = s.bool("allow_http") {
        c.allow_http = b;
    }
    if let Some(p) = s.str("key_prefix") {
        c.key_prefix = p.to_owned();
    }
    let set = |field: &mut u64, key: &str| {
        if let Some(n) = s.int(key).and_then(|n| u64::try_from(n).ok()) {
            *field = n;
        }
    };
    set(&mut c.flush_interval_ms, "flush_interval_ms");
    set(&mut c.put_timeout_ms, "put_timeout_ms");
    set(&mut c.commit_timeout_ms, "commit_timeout_ms");
    set(&mut c.get_timeout_ms, "get_timeout_ms");
    set(&mut c.postgres_statement_timeout_ms, "postgres_statement_timeout_ms");
    set(&mut c.lease_ms, "lease_ms");
    set(&mut c.orphan_grace_ms, "orphan_grace_ms");
    set(&mut c.merge_age_ms_min, "merge_age_ms_min");
    let size = |field: &mut usize, key: &str| {
        if let Some(n) = s.int(key).and_then(|n| usize::try_from(n).ok()) {
            *field = n;
        }
    };
    size(&mut c.flush_bytes_max, "flush_bytes_max");
    size(&mut c.buffered_bytes_max, "buffered_bytes_max");
    size(&mut c.cache_bytes_max, "cache_bytes_max");
    size(&mut c.postgres_connections_max, "postgres_connections_max");
    size(&mut c.merge_small_bytes_max, "merge_small_bytes_max");
    size(&mut c.merged_bytes_max, "merged_bytes_max");
    Some(c)
}

/// Every rule of `[storage]`.
pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw) {
    let s = raw.table("storage");
    password_in_file(ctx, s);
    if s.str("mode") != Some("shared") {
        if !s.rejected.contains("mode") {
            ignored_while_local(ctx, s);
        }
        return;
    }
    missing_keys(ctx, s);
    http_endpoint(ctx, s);
    buffer_under_flush(ctx, s);
    unsupported(ctx, raw);
}

/// V006: shared mode without its broker id, bucket or catalog.
fn missing_keys(ctx: &mut Ctx<'_>, s: &RawTable) {
    for key in REQUIRED_SHARED {
        if s.declares(key) {
            continue;
        }
        let example = match key {
            "broker_id" => "broker_id = 0",
            "bucket" => "bucket = \"veltrix-data\"",
            _ => "postgres_url = \"postgresql://veltrix@db.internal:5432/veltrix\"",
        };
        ctx.emit(
            &rules::MISSING_KEY,
            s.at("mode").as_ref(),
            format!("shared storage needs `{key}`"),
        )
        .label(format!("`mode = \"shared\"` without `{key}`"))
        .help(format!(
            "add `{example}` to `[storage]` (or set `{}`)",
            raw::env_var("storage", key)
        ))
        .note(
            crate::schema::table("storage")
                .and_then(|t| t.key(key))
                .map_or("", |k| k.doc),
        );
    }
}

/// V149 and V150: plain HTTP to the bucket.
fn http_endpoint(ctx: &mut Ctx<'_>, s: &RawTable) {
    let Some(endpoint) = s.str("endpoint") else {
        return;
    };
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return;
    };
    if s.bool("allow_http") != Some(true) {
        ctx.emit(
            &rules::STORAGE_HTTP_NOT_ALLOWED,
            s.at("endpoint").as_ref(),
            "the bucket's endpoint is plain HTTP but `allow_http` is off",
        )
        .label("an http:// endpoint")
        .help(format!("write `endpoint = \"https://{rest}\"`; for a test server on loopback, add `allow_http = true`"))
        .note("the S3 client refuses plain HTTP unless allowed: every PUT and GET would fail, and no produce would be acknowledged");
        return;
    }
    if is_loopback(host(rest)) {
        return;
    }
    ctx.emit(
        &rules::STORAGE_HTTP_IN_CLEAR,
        s.at("allow_http").as_ref(),
        format!("records go to `{}` in clear", host(rest)),
    )
    .label("plain HTTP allowed")
    .related(s.set_at("endpoint"), "not a loopback address")
    .help(format!("write `endpoint = \"https://{rest}\"` and remove `allow_http`"))
    .note("over plain HTTP every record batch, and the requests signed with the bucket's credentials, cross the network readable by anyone on the path; `allow_http` is for a test server on this host");
}

/// The host of a URL's rest after `scheme://`, without user, port or path.
fn host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// V154: a buffer that cannot hold one object.
fn buffer_under_flush(ctx: &mut Ctx<'_>, s: &RawTable) {
    let defaults = SharedStorage::new(0, "", "");
    let flush = s.int("flush_bytes_max").unwrap_or(defaults.flush_bytes_max as i64);
    let buffered = s
        .int("buffered_bytes_max")
        .unwrap_or(defaults.buffered_bytes_max as i64);
    if buffered >= flush {
        return;
    }
    let at = s.set_at("buffered_bytes_max").or_else(|| s.at("flush_bytes_max"));
    ctx.emit(
        &rules::STORAGE_BUFFER_UNDER_FLUSH,
        at.as_ref(),
        format!("`buffered_bytes_max` ({buffered}) is below `flush_bytes_max` ({flush})"),
    )
    .label("cannot hold one object's batches")
    .related(s.set_at("flush_bytes_max"), "one object's size")
    .help(format!("set `buffered_bytes_max = {}` or more", flush.saturating_mul(2)))
    .note("the buffer holds the object being written and the next one filling; the shared storage refuses a buffer smaller than one object");
}

/// V151: shared-mode keys in a local configuration.
fn ignored_while_local(ctx: &mut Ctx<'_>, s: &RawTable) {
    let mut set = s
        .settings
        .iter()
        .filter(|(k, _)| **k != "mode")
        .map(|(k, v)| (*k, v.origin.clone()));
    let Some((first, at)) = set.next() else {
        return;
    };
    let others: Vec<(&str, Origin)> = set.collect();
    let d = ctx.emit(
        &rules::STORAGE_SETTINGS_WHILE_LOCAL,
        Some(&at),
        match others.len() {
            0 => format!("`[storage] {first}` is ignored: the storage is local"),
            n => format!("`[storage] {first}` and {n} more are ignored: the storage is local"),
        },
    );
    d.label("ignored");
    for (_, at) in others {
        d.related(Some(at), "ignored too");
    }
    d.related(s.set_at("mode"), "local storage")
        .help("add `mode = \"shared\"` to `[storage]` if the brokers are to share a bucket and a catalog; otherwise remove the other keys")
        .note("these keys configure shared storage only; with `mode = \"local\"` (the default) the broker keeps every partition in `data_dir` and contacts neither a bucket nor PostgreSQL");
}

/// V152: the catalog's password written in the file.
fn password_in_file(ctx: &mut Ctx<'_>, s: &RawTable) {
    let Some(url) = s.str("postgres_url") else {
        return;
    };
    let Some(Origin::File(span)) = s.set_at("postgres_url") else {
        return;
    };
    if password_span(url).is_none() {
        return;
    }
    let at = password_in_source(ctx.source(), s).unwrap_or(span);
    let without = crate::model::redact_password(url).replace(":***@", "@");
    ctx.emit(
        &rules::STORAGE_PASSWORD_IN_FILE,
        Some(&Origin::File(at)),
        "the PostgreSQL password is written in the configuration file",
    )
    .label("a password")
    .help(format!(
        "write `postgres_url = \"{}\"` here and give the whole URL, password included, to the broker as `VELTRIX_STORAGE__POSTGRES_URL` (the environment wins over the file)",
        shown(&without)
    ))
    .note("configuration files are copied, committed to repositories and shown in reviews and support tickets; a password there spreads with them. Diagnostics never print it");
}

/// Where the file's `[storage] postgres_url` has its password, when the
/// string is written plainly (no escape before the password).
fn password_in_source(source: &str, s: &RawTable) -> Option<Range<usize>> {
    let url = s.str("postgres_url")?;
    let Some(Origin::File(span)) = s.set_at("postgres_url") else {
        return None;
    };
    let password = password_span(url)?;
    let start = span.start + 1 + password.start;
    let end = start + password.len();
    (source.get(start..end) == Some(&url[password])).then_some(start..end)
}

/// `source` with the password of its `[storage] postgres_url`, if any,
/// replaced by as many `*`: the text diagnostics show, so that no rendering
/// prints it. Lines, columns and spans stay as they were.
pub(crate) fn redact_source(source: &str, raw: &Raw) -> String {
    let Some(span) = password_in_source(source, raw.table("storage")) else {
        return source.to_owned();
    };
    let mut shown = source.to_owned();
    shown.replace_range(span.clone(), &"*".repeat(span.len()));
    shown
}

/// V153: declared features shared mode does not serve yet.
fn unsupported(ctx: &mut Ctx<'_>, raw: &Raw) {
    let mode = raw.table("storage").set_at("mode");
    let mut emit = |at: Option<Origin>, feature: String, help: &str| {
        ctx.emit(
            &rules::SHARED_STORAGE_UNSUPPORTED,
            at.as_ref(),
            format!("shared storage does not serve {feature} yet"),
        )
        .label("not served in shared mode")
        .related(mode.clone(), "shared storage")
        .help(help.to_owned())
        .note("docs/scale-out.md lists what shared storage serves and what is still to build; the broker refuses to start rather than leave a declared guarantee unkept");
    };
    let defaults = raw.table("defaults");
    if defaults.int("retention_bytes").is_some_and(|b| b >= 0) {
        emit(
            defaults.set_at("retention_bytes"),
            "size retention (`[defaults] retention_bytes`)".to_owned(),
            "remove `retention_bytes` (time retention, `retention_ms`, is served)",
        );
    }
    for t in &raw.topics {
        let name = shown(t.str("name").unwrap_or("?"));
        if t.str("cleanup_policy").is_some_and(|p| p.contains("compact")) {
            emit(
                t.set_at("cleanup_policy"),
                format!("compacted topics (`{name}`)"),
                "write `cleanup_policy = \"delete\"`, or keep this topic on a broker with local storage",
            );
        }
        if t.int("retention_bytes").is_some_and(|b| b >= 0) {
            emit(
                t.set_at("retention_bytes"),
                format!("size retention (`{name}`)"),
                "remove `retention_bytes` (time retention, `retention_ms`, is served), or keep this topic on a broker with local storage",
            );
        }
        if t.int("dedup_window_ms").is_some_and(|w| w > 0) {
            emit(
                t.set_at("dedup_window_ms"),
                format!("duplicate windows (`{name}`)"),
                "remove `dedup_window_ms`, or keep this topic on a broker with local storage",
            );
        }
    }
    for g in &raw.share_groups {
        emit(
            g.at("name"),
            format!("declared share groups (`{}`)", shown(g.str("name").unwrap_or("?"))),
            "remove the `[[share_group]]` and set the group's settings with IncrementalAlterConfigs \
             (`kafka-configs --alter --entity-type groups`), which shared storage keeps in PostgreSQL for every broker",
        );
    }
    for r in &raw.routes {
        emit(
            r.at("name"),
            format!("routes (`{}`)", shown(r.str("name").unwrap_or("?"))),
            "remove the `[[route]]`, or run routes on a broker with local storage",
        );
    }
}

/// Where the password is in a libpq URL (`postgresql://user:secret@host/db`,
/// or `?password=secret`) or key=value string (`password=secret`,
/// `password='a secret'`); `None` when there is none.
pub(crate) fn password_span(text: &str) -> Option<Range<usize>> {
    if let Some(scheme) = text.find("://") {
        let start = scheme + 3;
        let authority_end = text[start..].find(['/', '?', '#']).map_or(text.len(), |i| start + i);
        if let Some(at) = text[start..authority_end].rfind('@') {
            let userinfo = start..start + at;
            if let Some(colon) = text[userinfo.clone()].find(':') {
                let span = userinfo.start + colon + 1..userinfo.end;
                if !span.is_empty() {
                    return Some(span);
                }
            }
        }
    }
    let mut from = 0;
    while let Some(i) = text[from..].find("password") {
        let key = from + i;
        from = key + "password".len();
        let before = text[..key].chars().next_back();
        if !matches!(before, None | Some(' ' | '\t' | '\n' | '?' | '&')) {
            continue;
        }
        let rest = &text[from..];
        let Some(after_eq) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let value_start = text.len() - after_eq.trim_start().len();
        let value = &text[value_start..];
        let len = match value.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or(value.len(), |e| e + 2),
            None => value.find([' ', '\t', '\n', '&', '#']).unwrap_or(value.len()),
        };
        if len > 0 {
            return Some(value_start..value_start + len);
        }
    }
    None
}

/// One finding of `veltrix check --online` about a key of `[storage]`.
#[derive(Debug, Clone)]
pub struct OnlineFinding {
    /// V401 to V405.
    pub rule: &'static Rule,
    /// The key of `[storage]` the finding is about (`postgres_url`,
    /// `bucket`); the diagnostic points at it.
    pub key: &'static str,
    pub message: String,
    pub label: String,
    pub help: String,
    pub note: String,
}

impl Report {
    /// Adds the findings of `veltrix check --online`, each at the line (or
    /// environment variable) that sets its key, after the file's own. `env`
    /// is the environment the file was checked with.
    pub fn add_online(&mut self, env: &[(String, String)], findings: Vec<OnlineFinding>) {
        let source = self.source.clone();
        let mut ctx = Ctx::new(&source);
        let mut raw = DeTable::parse(&source)
            .map(|doc| raw::read(&mut ctx, &doc))
            .unwrap_or_default();
        raw::apply_env(&mut ctx, &mut raw, env);
        let mut ctx = Ctx::new(&source);
        let storage = raw.table("storage");
        for f in findings {
            let at = storage.at(f.key).or_else(|| storage.at("mode"));
            ctx.emit(f.rule, at.as_ref(), f.message)
                .label(f.label)
                .help(f.help)
                .note(f.note);
        }
        self.diagnostics.extend(ctx.into_diagnostics());
        if self.errors() > 0 {
            self.config = None;
        }
    }
}
