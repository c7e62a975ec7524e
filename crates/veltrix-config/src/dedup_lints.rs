//! The rules of topics' duplicate windows (`dedup_window_ms`,
//! `dedup_id_header`, `dedup_id_source`, and `[dedup]`'s bounds): a window
//! the broker would refuse because it outlasts the retention, one that reads
//! as the wrong unit, id settings that do nothing or contradict each other, a
//! header name with stray white space, and a window holding more ids than
//! `[dedup] ids_max` lets it remember. Each points at the topic's own line.

use veltrix_core::DedupIdSource;
use veltrix_core::dedup::{DEDUP_ENTRY_OVERHEAD_BYTES, DEDUP_IDS_MAX, DEDUP_WINDOW_MS_MAX};

use crate::check::Ctx;
use crate::lints::{human_ms, shown};
use crate::model::{DeclaredTopic, VeltrixConfig};
use crate::raw::{Origin, Raw, RawTable};
use crate::rules;
use crate::schema::group_digits;

/// Below this a window reads as seconds written where milliseconds are
/// meant (lint V125): no producer resends within a second of its original
/// on purpose.
pub const DEDUP_WINDOW_MS_MIN_SAFE: u64 = 1_000;
/// The id length the memory estimate of lint V129 assumes: a UUID in text.
pub const DEDUP_ID_BYTES_TYPICAL: u64 = 36;

/// One declared topic's duplicate window, with where it is set.
struct Scope<'a> {
    /// "topic `name`".
    what: String,
    table: &'a RawTable,
    defaults: &'a RawTable,
    topic: &'a DeclaredTopic,
    /// The window, when the file sets one the schema accepted; 0 is off.
    window_ms: Option<u64>,
}

/// Runs the duplicate-window rules on every declared topic.
pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let defaults = raw.table("defaults");
    let named = raw.topics.iter().filter(|t| t.str("name").is_some());
    for (table, topic) in named.zip(&c.topics) {
        let s = Scope {
            what: format!("topic `{}`", topic.name),
            table,
            defaults,
            topic,
            window_ms: table.int("dedup_window_ms").and_then(|n| u64::try_from(n).ok()),
        };
        over_retention(ctx, &s, c);
        wrong_unit(ctx, &s, c);
        id_without_window(ctx, &s);
        source_conflict(ctx, &s);
        header_white_space(ctx, &s);
        over_ids_max(ctx, &s, raw, c);
    }
}

/// " (line N)" for a place in the file, "" for one in the environment.
fn on_line(ctx: &Ctx<'_>, at: Option<&Origin>) -> String {
    ctx.line(at).map_or_else(String::new, |n| format!(" (line {n})"))
}

/// V124: a window longer than the retention, which the broker refuses. The
/// fix is the window or a longer retention; a shorter retention would delete
/// records to make the two agree.
fn over_retention(ctx: &mut Ctx<'_>, s: &Scope<'_>, c: &VeltrixConfig) {
    let Some(window) = s.window_ms.filter(|&w| w > 0) else {
        return;
    };
    if s.table.rejected.contains("retention_ms") || s.defaults.rejected.contains("retention_ms") {
        return;
    }
    let Some(retention) = c.topic_log_config(s.topic).retention_ms else {
        return;
    };
    if window <= retention {
        return;
    }
    let window_at = s.table.set_at("dedup_window_ms");
    let own = s.table.set_at("retention_ms");
    let inherited = s.defaults.set_at("retention_ms");
    let window_fix = format!(
        "shorten `dedup_window_ms`{} to at most {retention}",
        on_line(ctx, window_at.as_ref())
    );
    let retention_fix = match (&own, &inherited) {
        (Some(at), _) => format!("raise `retention_ms`{} to at least {window}", on_line(ctx, Some(at))),
        (None, Some(at)) => format!(
            "add `retention_ms = {window}` (or more) to this topic, over `[defaults] retention_ms`{}",
            on_line(ctx, Some(at))
        ),
        (None, None) => format!("add `retention_ms = {window}` (or more) to this topic, over the default retention"),
    };
    ctx.emit(
        &rules::DEDUP_WINDOW_OVER_RETENTION,
        s.table.at("dedup_window_ms").as_ref(),
        format!(
            "{}: its duplicate window, {}, is longer than its retention, {}",
            s.what,
            human_ms(window),
            human_ms(retention)
        ),
    )
    .label("ids would outlive the records they stand for")
    .related(own.or(inherited), "the retention")
    .help(format!("{window_fix}, or {retention_fix}"))
    .note("the broker refuses such a topic: a record resent after retention deleted its original would be dropped as a duplicate of a record no longer stored, and lost");
}

/// V125: a window so short it reads as seconds or minutes written where
/// milliseconds are meant.
fn wrong_unit(ctx: &mut Ctx<'_>, s: &Scope<'_>, c: &VeltrixConfig) {
    let Some(window) = s.window_ms.filter(|&w| (1..DEDUP_WINDOW_MS_MIN_SAFE).contains(&w)) else {
        return;
    };
    let longest = c
        .topic_log_config(s.topic)
        .retention_ms
        .map_or(DEDUP_WINDOW_MS_MAX, |r| r.min(DEDUP_WINDOW_MS_MAX));
    let plural = if window == 1 { "" } else { "s" };
    let readings: Vec<String> = [(1_000, "second"), (60_000, "minute")]
        .into_iter()
        .map(|(unit, name)| (window * unit, name))
        .filter(|&(ms, _)| ms <= longest)
        .map(|(ms, name)| {
            format!(
                "`dedup_window_ms = {}` for {window} {name}{plural}",
                group_digits(ms as i64)
            )
        })
        .collect();
    let help = match readings.as_slice() {
        [] => "write the window in milliseconds".to_owned(),
        [one] => format!("the window is in milliseconds: write {one}"),
        [seconds, minutes, ..] => format!("the window is in milliseconds: write {seconds}, or {minutes}"),
    };
    ctx.emit(
        &rules::DEDUP_WINDOW_UNIT,
        s.table.at("dedup_window_ms").as_ref(),
        format!("{}: a duplicate window of {window} ms", s.what),
    )
    .label(format!("{window} milliseconds: is this {window} second{plural}?"))
    .help(help)
    .note("a window under a second catches only a resend within that second, not the resend after a producer restart or a broker outage it is there for");
}

/// V126: the id's header or source set on a topic whose window is off.
fn id_without_window(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    if s.window_ms.is_some_and(|w| w > 0) || s.table.rejected.contains("dedup_window_ms") {
        return;
    }
    let mut set: Vec<(&str, Origin)> = ["dedup_id_header", "dedup_id_source"]
        .into_iter()
        .filter_map(|k| Some((k, s.table.set_at(k)?)))
        .collect();
    set.sort_by_key(|(_, at)| match at {
        Origin::File(span) => span.start,
        Origin::Env { .. } => usize::MAX,
    });
    let Some((key, at)) = set.first().cloned() else {
        return;
    };
    let keys: Vec<String> = set.iter().map(|(k, _)| format!("`{k}`")).collect();
    let window_at = s.table.set_at("dedup_window_ms");
    let turn_on = match &window_at {
        Some(w) => format!("set `dedup_window_ms`{} to 120_000", on_line(ctx, Some(w))),
        None => "add `dedup_window_ms = 120_000`".to_owned(),
    };
    ctx.emit(
        &rules::DEDUP_ID_WITHOUT_WINDOW,
        Some(&at),
        format!("{} sets `{key}`, but has no duplicate window", s.what),
    )
    .label("does nothing while the window is off")
    .related(window_at.clone(), "the window is off here")
    .related(set.get(1).map(|(_, at)| at.clone()), "does nothing either")
    .help(format!(
        "{turn_on} (two minutes, or as long after a send as producers may resend it) to turn the window on, or remove {}",
        keys.join(" and ")
    ))
    .note("with the window off every record is stored, whatever its id");
}

/// V127: ids from the record key, and a header named for them too.
fn source_conflict(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    let key = Some(DedupIdSource::Key.as_str());
    let (true, Some(header)) = (s.table.str("dedup_id_source") == key, s.table.str("dedup_id_header")) else {
        return;
    };
    let header_at = s.table.set_at("dedup_id_header");
    let source_at = s.table.set_at("dedup_id_source");
    let help = format!(
        "remove `dedup_id_header`{} to deduplicate on the record key, or remove `dedup_id_source = \"key\"`{} to take the id from the header `{}`",
        on_line(ctx, header_at.as_ref()),
        on_line(ctx, source_at.as_ref()),
        shown(header)
    );
    ctx.emit(
        &rules::DEDUP_ID_SOURCE_CONFLICT,
        source_at.as_ref(),
        format!(
            "{} takes message ids from the record key, and names the header `{}` for them too",
            s.what,
            shown(header)
        ),
    )
    .label("the id is the key: `dedup_id_header` is never read")
    .related(header_at, "never read")
    .help(help)
    .note("keys are often shared by many messages (a player, an account): deduplicating on the key when producers put the id in a header drops every record whose key was seen within the window");
}

/// V128: a header name with white space at either end, which no producer
/// is likely to send.
fn header_white_space(ctx: &mut Ctx<'_>, s: &Scope<'_>) {
    let Some(header) = s.table.str("dedup_id_header") else {
        return;
    };
    let trimmed = header.trim();
    if trimmed == header {
        return;
    }
    let help = if trimmed.is_empty() {
        "write the name of the header your producers put the message id in".to_owned()
    } else {
        format!(
            "write `dedup_id_header = \"{}\"` if that is the header your producers send",
            shown(trimmed)
        )
    };
    ctx.emit(
        &rules::DEDUP_ID_HEADER_WHITE_SPACE,
        s.table.at("dedup_id_header").as_ref(),
        format!(
            "{}: the header name `\"{}\"` begins or ends with white space",
            s.what,
            shown(header)
        ),
    )
    .label("header names are compared byte for byte")
    .help(help)
    .note("a producer sending the name without the white space would not match: its records would be stored without their ids, and no duplicate caught");
}

/// V129: more ids in the window at the topic's declared peak rate than
/// `[dedup] ids_max` lets it remember.
fn over_ids_max(ctx: &mut Ctx<'_>, s: &Scope<'_>, raw: &Raw, c: &VeltrixConfig) {
    let (Some(window), Some(rate)) = (
        s.window_ms.filter(|&w| w > 0),
        s.topic.peak_records_per_second.filter(|&r| r > 0),
    ) else {
        return;
    };
    let ids_max = c.broker.dedup.ids_max as u64;
    let ids = ids_in_window(rate, window);
    if ids <= ids_max {
        return;
    }
    // The window that `ids_max` ids cover at the peak rate.
    let effective_ms = ids_max.saturating_mul(1_000) / rate;
    let fits_ms = (DEDUP_IDS_MAX as u64).saturating_mul(1_000) / rate;
    let d = raw.table("dedup");
    let help = if ids <= DEDUP_IDS_MAX as u64 {
        // `memory_bytes_max` bounds all windows together: raising `ids_max`
        // alone does not help if this one window would not fit in it.
        let memory = ids.saturating_mul(DEDUP_ENTRY_OVERHEAD_BYTES as u64 + DEDUP_ID_BYTES_TYPICAL);
        let memory_too = if memory > c.broker.dedup.memory_bytes_max as u64 {
            format!(
                " and `memory_bytes_max = {}` (or more, for the other topics' windows too)",
                group_digits(memory.min(i64::MAX as u64) as i64)
            )
        } else {
            String::new()
        };
        format!(
            "set `ids_max = {}`{memory_too} in `[dedup]` ({} of memory for this topic, with {DEDUP_ID_BYTES_TYPICAL}-byte ids), or shorten `dedup_window_ms` to at most {effective_ms}",
            group_digits(ids as i64),
            about_bytes(memory)
        )
    } else {
        format!(
            "shorten `dedup_window_ms` to at most {fits_ms} and set `ids_max = {}` in `[dedup]`: no `ids_max` holds {} ids",
            group_digits(DEDUP_IDS_MAX as i64),
            group_digits(ids.min(i64::MAX as u64) as i64)
        )
    };
    ctx.emit(
        &rules::DEDUP_WINDOW_OVER_IDS_MAX,
        s.table.at("dedup_window_ms").as_ref(),
        format!(
            "{}: at its peak of {} records per second, its duplicate window of {} holds {} ids, more than `[dedup] ids_max` ({})",
            s.what,
            group_digits(rate.min(i64::MAX as u64) as i64),
            human_ms(window),
            group_digits(ids.min(i64::MAX as u64) as i64),
            group_digits(ids_max as i64)
        ),
    )
    .label(format!("effectively {} at the peak rate", human_ms(effective_ms)))
    .related(s.table.set_at("peak_records_per_second"), "the peak rate")
    .related(d.set_at("ids_max"), "the limit")
    .help(help)
    .note("past `ids_max` the oldest ids are forgotten before their time: the window shrinks, and a record resent after its id was forgotten is stored again");
}

/// Ids a window of `window_ms` holds at `rate` records per second, each with
/// its own id.
fn ids_in_window(rate: u64, window_ms: u64) -> u64 {
    let ids = u128::from(rate) * u128::from(window_ms) / 1_000;
    u64::try_from(ids).unwrap_or(u64::MAX)
}

/// An estimate of memory for people: `about 157 MiB`, `about 12 GiB`.
fn about_bytes(bytes: u64) -> String {
    if bytes >= 10 << 30 {
        format!("about {} GiB", bytes >> 30)
    } else {
        format!("about {} MiB", (bytes >> 20).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_a_window_are_the_rate_times_its_seconds() {
        assert_eq!(ids_in_window(5_000, 120_000), 600_000);
        assert_eq!(ids_in_window(1, 999), 0);
        assert_eq!(ids_in_window(u64::MAX, u64::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn memory_estimates_read_well() {
        assert_eq!(about_bytes(1_000_000 * 164), "about 156 MiB");
        assert_eq!(about_bytes(100), "about 1 MiB");
        assert_eq!(about_bytes(20 << 30), "about 20 GiB");
    }
}
