//! The rules of compacted topics (`cleanup_policy` and the compaction
//! settings of `[[topic]]`): lags that contradict each other, settings that
//! do nothing on a topic that does not compact, a retention the broker does
//! not apply, and a duplicate window on the key of a compacted topic. Each
//! points at the topic's own line.

use veltrix_core::{CleanupPolicy, DedupIdSource};

use crate::check::Ctx;
use crate::lints::human_ms;
use crate::model::VeltrixConfig;
use crate::raw::{Raw, RawTable};
use crate::rules;

/// The settings that only compaction reads.
const COMPACTION_KEYS: [&str; 4] = [
    "delete_retention_ms",
    "compaction_lag_ms_min",
    "compaction_lag_ms_max",
    "cleanable_dirty_percent_min",
];

/// Runs the compaction rules on every declared topic.
pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let named = raw.topics.iter().filter(|t| t.str("name").is_some());
    for (table, topic) in named.zip(&c.topics) {
        let what = format!("topic `{}`", topic.name);
        let policy = topic.config.cleanup_policy.unwrap_or(CleanupPolicy::DELETE);
        lag_reversed(ctx, &what, table);
        if policy.compact {
            retention_on_compact_only(ctx, &what, table, policy);
            dedup_by_key(ctx, &what, table);
        } else {
            settings_without_compact(ctx, &what, table);
        }
    }
}

fn ms(table: &RawTable, key: &str) -> Option<u64> {
    table.int(key).and_then(|n| u64::try_from(n).ok())
}

/// V145: the minimum lag above the maximum.
fn lag_reversed(ctx: &mut Ctx<'_>, what: &str, t: &RawTable) {
    let (Some(min), Some(max)) = (ms(t, "compaction_lag_ms_min"), ms(t, "compaction_lag_ms_max")) else {
        return;
    };
    if min <= max {
        return;
    }
    ctx.emit(
        &rules::COMPACTION_LAG_REVERSED,
        t.set_at("compaction_lag_ms_min").as_ref(),
        format!(
            "{what}: `compaction_lag_ms_min` ({}) is above `compaction_lag_ms_max` ({})",
            human_ms(min),
            human_ms(max)
        ),
    )
    .label("no segment could be compacted in time")
    .related(t.set_at("compaction_lag_ms_max"), "the maximum")
    .help(format!(
        "lower `compaction_lag_ms_min` to {max} or less, or raise `compaction_lag_ms_max`"
    ))
    .note("the broker refuses these settings");
}

/// V146: compaction settings on a topic that does not compact.
fn settings_without_compact(ctx: &mut Ctx<'_>, what: &str, t: &RawTable) {
    let Some(key) = COMPACTION_KEYS.iter().find(|k| t.set_at(k).is_some()) else {
        return;
    };
    ctx.emit(
        &rules::COMPACTION_SETTINGS_WITHOUT_COMPACT,
        t.set_at(key).as_ref(),
        format!("{what} sets `{key}` but does not compact"),
    )
    .label("does nothing on a `delete` topic")
    .help("add `cleanup_policy = \"compact\"` (or `\"compact,delete\"`), or remove the compaction settings")
    .note("compaction settings are read only on a topic whose `cleanup_policy` includes `compact`");
}

/// V147: a retention the broker does not apply.
fn retention_on_compact_only(ctx: &mut Ctx<'_>, what: &str, t: &RawTable, policy: CleanupPolicy) {
    if policy.delete {
        return;
    }
    let Some(key) = ["retention_ms", "retention_bytes"]
        .into_iter()
        .find(|k| t.set_at(k).is_some())
    else {
        return;
    };
    ctx.emit(
        &rules::RETENTION_ON_COMPACT_ONLY,
        t.set_at(key).as_ref(),
        format!("{what} compacts only, so `{key}` is not applied"),
    )
    .label("never applied")
    .related(t.set_at("cleanup_policy"), "compaction only")
    .help(format!(
        "write `cleanup_policy = \"compact,delete\"` to apply `{key}` too, or remove `{key}`"
    ))
    .note("a compact-only topic keeps each key's latest record forever; retention applies only with `delete` in the policy");
}

/// V148: a duplicate window on the key of a compacted topic.
fn dedup_by_key(ctx: &mut Ctx<'_>, what: &str, t: &RawTable) {
    let by_key = t.str("dedup_id_source") == Some(DedupIdSource::Key.as_str());
    if !by_key || ms(t, "dedup_window_ms").is_none_or(|w| w == 0) {
        return;
    }
    ctx.emit(
        &rules::COMPACT_DEDUP_BY_KEY,
        t.set_at("dedup_id_source").as_ref(),
        format!("{what} is compacted and deduplicates on the record key"),
    )
    .label("a key's update within the window is dropped as a duplicate")
    .related(t.set_at("cleanup_policy"), "keeps each key's latest value")
    .help("take message ids from a header: `dedup_id_source = \"header\"` with `dedup_id_header`")
    .note("an update of a key within the window is dropped as a duplicate, and compaction then keeps the key's older value");
}
