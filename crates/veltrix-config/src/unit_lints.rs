//! Durations in the wrong unit (V137, V138): valid numbers of milliseconds
//! that read as seconds, minutes or days, and lag alerts shorter than the
//! interval at which they are evaluated. The fixes name the intended value in
//! each plausible unit and never shorten another setting to match.

use crate::check::Ctx;
use crate::lints::human_ms;
use crate::model::VeltrixConfig;
use crate::raw::{Raw, RawTable, ms_readings};
use crate::rules;

/// Duration keys whose valid range reaches far below any value that makes
/// sense, with the shortest value that does (in ms) and what it means. A value
/// from 1 to below it is most likely in another unit. Retention has its own
/// rule (V136), and keys whose range already starts at a sensible floor need
/// none (below it, V004 gives the same readings).
const SHORTEST_SENSIBLE_MS: [(&str, u64, &str); 7] = [
    ("segment_age_ms_max", 60_000, "a segment is rolled after"),
    (
        "producer_id_expiration_ms",
        60_000,
        "an idle producer's state is forgotten after",
    ),
    (
        "offsets_retention_ms",
        60_000,
        "an empty group's offsets are forgotten after",
    ),
    (
        "lag_ms_max",
        1_000,
        "the alert fires once the oldest unread record has waited",
    ),
    ("for_ms", 1_000, "the alert fires once over its threshold for"),
    ("webhook_timeout_ms", 100, "a webhook call gives up after"),
    ("shutdown_drain_ms_max", 100, "at shutdown, connections may answer for"),
];

/// The longest value the readings may propose: a year.
const READING_MS_MAX: i64 = 365 * 86_400_000;

pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let tables = raw
        .tables
        .values()
        .chain(&raw.topics)
        .chain(&raw.alerts)
        .chain(&raw.share_groups)
        .chain(&raw.quotas);
    for table in tables {
        for (key, floor, meaning) in SHORTEST_SENSIBLE_MS {
            duration_unit(ctx, table, key, floor, meaning);
        }
    }
    alerts_under_evaluation(ctx, raw, c);
}

/// The value of `key` when it is in 1..floor, most likely in another unit.
fn suspicious(table: &RawTable, key: &str, floor: u64) -> Option<u64> {
    let n = u64::try_from(table.int(key)?).ok()?;
    (1..floor).contains(&n).then_some(n)
}

/// V138 on one key of one table.
fn duration_unit(ctx: &mut Ctx<'_>, table: &RawTable, key: &str, floor: u64, meaning: &str) {
    let (Some(n), Some(at)) = (suspicious(table, key, floor), table.set_at(key)) else {
        return;
    };
    let readings = ms_readings(key, n as i64, floor as i64, READING_MS_MAX);
    if readings.is_empty() {
        return;
    }
    ctx.emit(&rules::DURATION_UNIT, Some(&at), format!("`{key}` is {n} milliseconds"))
        .label(format!("{meaning} {n} ms"))
        .help(format!(
            "the value is in milliseconds: write {}",
            readings.join(", or ")
        ))
        .note(format!(
            "values under {} are almost always seconds, minutes or days written where milliseconds are meant",
            human_ms(floor)
        ));
}

/// V137: a lag alert's age threshold shorter than the interval at which the
/// broker evaluates alerts. Values that read as seconds are V138's.
fn alerts_under_evaluation(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let interval = c.observability.lag_evaluation_interval_ms;
    let interval_at = raw.table("observability").set_at("lag_evaluation_interval_ms");
    for a in &raw.alerts {
        let Some(n) = a.int("lag_ms_max").and_then(|n| u64::try_from(n).ok()) else {
            continue;
        };
        let Some(at) = a.set_at("lag_ms_max") else {
            continue;
        };
        if n >= interval || suspicious(a, "lag_ms_max", 1_000).is_some() {
            continue;
        }
        let group = a.str("group").unwrap_or_default();
        ctx.emit(
            &rules::ALERT_UNDER_EVALUATION_INTERVAL,
            Some(&at),
            format!(
                "the lag alert of group `{group}` fires at {}, less than the evaluation interval of {}",
                human_ms(n),
                human_ms(interval)
            ),
        )
        .label(format!("lag is looked at every {}", human_ms(interval)))
        .related(interval_at.clone(), "the evaluation interval")
        .help(format!(
            "raise `lag_ms_max` to {} or more",
            crate::schema::group_digits(interval as i64)
        ))
        .note("the broker sees lag only once per interval: a threshold below it asks for a precision the evaluation does not have, and is most often a slip of unit; shortening the interval to match would only evaluate more often");
    }
}
