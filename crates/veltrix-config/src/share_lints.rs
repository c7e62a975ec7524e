//! The rules of share groups: the names and number of `[[share_group]]`s,
//! `[share]`'s timings and limits against each other, locks that the session
//! timeout cuts short, and the production lint on poison records. Each
//! group's settings are judged where they are set: a group that sets none
//! inherits `[share]`'s, whose diagnostic covers it once.

use std::collections::HashSet;

use veltrix_core::share::{GROUP_ID_BYTES_MAX, ShareGroupSettings};

use crate::check::{Ctx, share_overrides};
use crate::lints::{declared_twice, heartbeat_over_session, human_ms, shown};
use crate::model::VeltrixConfig;
use crate::raw::{Origin, Raw, RawTable};
use crate::rules;

/// A record that hangs its consumer may hold a share-partition for its
/// deliveries times its effective lock; past this, lint V215.
pub const POISON_RECORD_HOLD_MS_MAX_SAFE: u64 = 3_600_000;

/// The rules that apply under every profile.
pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    names(ctx, raw);
    dead_letter_topics(ctx, raw, c);
    count(ctx, raw, c);
    timings(ctx, raw, c);
    for scope in scopes(raw, c) {
        lock_over_session(ctx, &scope, c.broker.share.session_timeout_ms, raw.table("share"));
        backoff_max_below_initial(ctx, &scope, raw.table("share"));
        delay_cap_without_delays(ctx, &scope);
    }
}

/// The production lints (V215).
pub(crate) fn production(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    for scope in scopes(raw, c) {
        poison_stall(ctx, &scope, c.broker.share.session_timeout_ms, raw.table("share"));
        no_retry_backoff(ctx, &scope, raw.table("share"));
    }
}

/// `[share]`'s default settings or one `[[share_group]]`'s, with where they
/// are set.
struct Scope<'a> {
    /// "`[share]`" or "share group `name`".
    what: String,
    table: &'a RawTable,
    settings: ShareGroupSettings,
    /// `[share]` itself: it also owns the session timeout.
    defaults: bool,
}

fn scopes<'a>(raw: &'a Raw, c: &VeltrixConfig) -> Vec<Scope<'a>> {
    let mut out = vec![Scope {
        what: "`[share]`".to_owned(),
        table: raw.table("share"),
        settings: c.broker.share.defaults,
        defaults: true,
    }];
    // From each entry's own table rather than the resolved groups, so that a
    // rejected entry cannot shift the others' settings onto the wrong table.
    for t in &raw.share_groups {
        let Some(name) = t.str("name") else {
            continue;
        };
        let Ok(settings) = ShareGroupSettings::resolve(c.broker.share.defaults, &share_overrides(t)) else {
            continue;
        };
        out.push(Scope {
            what: format!("share group `{}`", shown(name)),
            table: t,
            settings,
            defaults: false,
        });
    }
    out
}

impl Scope<'_> {
    /// Whether this scope sets any of `keys` itself, or, for `[share]`, whether
    /// anything in the file could make the rule fire.
    fn sets_any(&self, keys: &[&str]) -> bool {
        self.defaults || keys.iter().any(|k| self.table.settings.contains_key(k))
    }
}

/// What is wrong with a share group's name, if anything.
fn name_problem(name: &str) -> Option<String> {
    if name.len() > GROUP_ID_BYTES_MAX {
        return Some(format!(
            "{} bytes long; the broker takes at most {GROUP_ID_BYTES_MAX}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Some("contains a control character".to_owned());
    }
    if name.trim() != name {
        return Some("begins or ends with white space".to_owned());
    }
    None
}

/// V011 and V012: names no consumer could use, and names declared twice.
fn names(ctx: &mut Ctx<'_>, raw: &Raw) {
    for g in &raw.share_groups {
        let (Some(name), Some(at)) = (g.str("name"), g.set_at("name")) else {
            continue;
        };
        let Some(reason) = name_problem(name) else {
            continue;
        };
        let cleaned: String = name.trim().chars().filter(|ch| !ch.is_control()).collect();
        let help = if cleaned.len() > GROUP_ID_BYTES_MAX {
            format!("shorten it to at most {GROUP_ID_BYTES_MAX} bytes, and give its consumers the same `group.id`")
        } else if !cleaned.is_empty() && name_problem(&cleaned).is_none() {
            format!("rename it `\"{}\"`, the id its consumers give", shown(&cleaned))
        } else {
            "use the group id its consumers give as `group.id`".to_owned()
        };
        ctx.emit(
            &rules::INVALID_GROUP_NAME,
            Some(&at),
            format!("invalid share group name `{}`", shown(name)),
        )
        .label(reason)
        .help(help)
        .note("the broker refuses a share group id over the limit (and would not start), and settings under a mistyped id land on a group no consumer joins");
    }
    declared_twice(ctx, &raw.share_groups, &rules::DUPLICATE_SHARE_GROUP, "share_group");
}

/// V015, V131, V132: each `[[share_group]]`'s dead-letter topic: its name,
/// and whether letters written to it are written exactly once.
fn dead_letter_topics(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    use veltrix_core::dead_letters::ID_HEADER;
    use veltrix_core::share::settings::{DEAD_LETTER_TOPIC_PREFIX, check_dead_letter_topic};
    for g in &raw.share_groups {
        let (Some(topic), Some(at)) = (g.str("dead_letter_topic"), g.set_at("dead_letter_topic")) else {
            continue;
        };
        let group = shown(g.str("name").unwrap_or_default());
        if let Err(reason) = check_dead_letter_topic(topic) {
            let cleaned: String = topic
                .trim()
                .chars()
                .filter(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
                .collect();
            let fixed = if cleaned.starts_with(DEAD_LETTER_TOPIC_PREFIX) {
                cleaned
            } else {
                format!("{DEAD_LETTER_TOPIC_PREFIX}{cleaned}")
            };
            ctx.emit(
                &rules::INVALID_DEAD_LETTER_TOPIC,
                Some(&at),
                format!("share group `{group}`: invalid dead-letter topic `{}`", shown(topic)),
            )
            .label(reason)
            .help(format!("name it `dead_letter_topic = \"{fixed}\"`"))
            .note("the broker refuses the name, so the group's settings could not be applied at start");
            continue;
        }
        let declared = raw.topics.iter().find(|t| t.str("name") == Some(topic));
        match declared {
            Some(t) => {
                let window = t.int("dedup_window_ms").unwrap_or(0) > 0;
                let header = t.str("dedup_id_header") == Some(ID_HEADER);
                let by_key = t.str("dedup_id_source") == Some("key");
                if window && header && !by_key {
                    continue;
                }
                let retention = t.int("retention_ms").filter(|r| *r > 0).unwrap_or(7 * 86_400_000);
                ctx.emit(
                    &rules::DEAD_LETTER_TOPIC_WITHOUT_WINDOW,
                    t.set_at("name").as_ref(),
                    format!(
                        "dead-letter topic `{}` of share group `{group}` has no duplicate window on `{ID_HEADER}`",
                        shown(topic)
                    ),
                )
                .label("a crash between writing a letter and archiving its record writes the letter twice")
                .related(Some(at), "named the group's dead-letter topic here")
                .help(format!(
                    "add `dedup_window_ms = {retention}` and `dedup_id_header = \"{ID_HEADER}\"` to the topic"
                ))
                .note("every letter carries a deterministic id in that header; the window drops a second copy of a letter, so each archived record has exactly one");
            }
            None if !c.broker.share.dead_letter_topics_auto_create => {
                ctx.emit(
                    &rules::DEAD_LETTER_TOPIC_MISSING,
                    Some(&at),
                    format!(
                        "dead-letter topic `{}` of share group `{group}` is not declared, and the broker may not create it",
                        shown(topic)
                    ),
                )
                .label("archived records wait until it exists")
                .help(format!(
                    "declare it: `[[topic]] name = \"{topic}\"` with `dedup_window_ms` and `dedup_id_header = \"{ID_HEADER}\"`, or set `[share] dead_letter_topics_auto_create = true`"
                ))
                .note("nothing is lost while it is missing, but the share-partition's start cannot pass an archived record without its letter, and the partition stops once `partition_record_locks_max` records are behind it");
            }
            None => {}
        }
    }
}

/// V120: the declared share groups against `[share] groups_max`.
fn count(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let groups_max = c.broker.share.groups_max;
    let mut seen = HashSet::new();
    let unique: Vec<&RawTable> = raw
        .share_groups
        .iter()
        .filter(|g| g.str("name").is_some_and(|n| seen.insert(n)))
        .collect();
    let Some(past) = unique.get(groups_max) else {
        return;
    };
    ctx.emit(
        &rules::SHARE_GROUPS_OVER_MAX,
        past.set_at("name").as_ref(),
        format!(
            "{} share groups are declared, more than `[share] groups_max` ({groups_max})",
            unique.len()
        ),
    )
    .label("this share group is past the limit")
    .related(raw.table("share").set_at("groups_max"), "the limit")
    .help(format!(
        "raise `[share] groups_max` to at least {}, with room for the groups consumers create",
        unique.len()
    ))
    .note("the broker refuses to create share groups past the limit, so some could not be applied at start");
}

/// V121 and V123: heartbeats against the session timeout, sessions against
/// the members of one group.
fn timings(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let s = raw.table("share");
    let share = &c.broker.share;
    heartbeat_over_session(
        ctx,
        &rules::SHARE_HEARTBEAT_OVER_SESSION,
        s,
        ["heartbeat_interval_ms", "session_timeout_ms"],
        [share.heartbeat_interval_ms, share.session_timeout_ms],
        "healthy members would be removed again and again, their records delivered again until they are archived unprocessed",
    );
    if share.sessions_max < share.group_members_max {
        ctx.emit(
            &rules::SESSIONS_UNDER_GROUP_MEMBERS,
            s.set_at("sessions_max").or_else(|| s.at("group_members_max")).as_ref(),
            format!(
                "`[share] sessions_max` ({}) is below `group_members_max` ({})",
                share.sessions_max, share.group_members_max
            ),
        )
        .label("one full group would run out of sessions")
        .related(s.set_at("group_members_max"), "members per group")
        .help(format!(
            "raise `sessions_max` to at least {}, or lower `group_members_max`",
            share.group_members_max
        ))
        .note("members past the session limit join but can never fetch (SHARE_SESSION_LIMIT_REACHED)");
    }
}

/// Where a scope's rule points: the first of `keys` the scope sets, then
/// `[share]`'s, then the scope's header.
fn at(scope: &Scope<'_>, share: &RawTable, keys: &[&str]) -> Option<Origin> {
    keys.iter()
        .find_map(|k| scope.table.set_at(k))
        .or_else(|| keys.iter().find_map(|k| share.set_at(k)))
        .or_else(|| scope.table.header.clone().map(Origin::File))
}

/// V122: a lock that the session timeout cuts short.
fn lock_over_session(ctx: &mut Ctx<'_>, scope: &Scope<'_>, session_timeout_ms: u64, share: &RawTable) {
    let lock = scope.settings.record_lock_duration_ms;
    if lock <= session_timeout_ms || !scope.sets_any(&["record_lock_duration_ms"]) {
        return;
    }
    ctx.emit(
        &rules::LOCK_OVER_SESSION_TIMEOUT,
        at(scope, share, &["record_lock_duration_ms", "session_timeout_ms"]).as_ref(),
        format!(
            "{}: records are locked for {}, but an unused share session closes after {}",
            scope.what,
            human_ms(lock),
            human_ms(session_timeout_ms)
        ),
    )
    .label("the lock past the session timeout is never given")
    .related(share.set_at("session_timeout_ms"), "the session timeout")
    .help(format!(
        "set `record_lock_duration_ms = {session_timeout_ms}` (or less), or raise `[share] session_timeout_ms` to {lock}"
    ))
    .note("a member working on a batch longer than the session timeout loses its records then: delivered again elsewhere, its acknowledgement refused");
}

/// V130: a maximum backoff below the initial one.
fn backoff_max_below_initial(ctx: &mut Ctx<'_>, scope: &Scope<'_>, share: &RawTable) {
    let s = &scope.settings;
    if s.backoff_initial_ms == 0
        || s.backoff_max_ms >= s.backoff_initial_ms
        || !scope.sets_any(&["backoff_ms_max", "backoff_initial_ms"])
    {
        return;
    }
    ctx.emit(
        &rules::BACKOFF_MAX_BELOW_INITIAL,
        at(scope, share, &["backoff_ms_max", "backoff_initial_ms"]).as_ref(),
        format!(
            "{}: the longest backoff ({}) is shorter than the first ({})",
            scope.what,
            human_ms(s.backoff_max_ms),
            human_ms(s.backoff_initial_ms)
        ),
    )
    .label("never waited: every retry waits the initial backoff")
    .related(
        scope
            .table
            .set_at("backoff_initial_ms")
            .or_else(|| share.set_at("backoff_initial_ms")),
        "the initial backoff",
    )
    .help(format!(
        "raise it: `backoff_ms_max = {}` lets the wait grow over {} retries",
        longest_backoff_ms(s),
        s.delivery_count_limit.saturating_sub(1)
    ))
    .note("shortening the initial backoff instead would retry faster against whatever made the record fail");
}

/// V133: `delay_ms_max` set where delays are off: it does nothing.
fn delay_cap_without_delays(ctx: &mut Ctx<'_>, scope: &Scope<'_>) {
    let Some(at) = scope.table.set_at("delay_ms_max") else {
        return;
    };
    if scope.settings.delays {
        return;
    }
    ctx.emit(
        &rules::DELAY_CAP_WITHOUT_DELAYS,
        Some(&at),
        format!("{}: `delay_ms_max` is set but delays are off", scope.what),
    )
    .label("no effect: `veltrix.deliver.at` and `veltrix.delay.ms` headers are ignored")
    .help("add `delay_enabled = true` to honour the headers, or remove this line")
    .note("with delays off every record is handed out as soon as it is available, whatever its headers say");
}

/// V216: released records delivered again at once, in production.
fn no_retry_backoff(ctx: &mut Ctx<'_>, scope: &Scope<'_>, share: &RawTable) {
    if scope.settings.backoff_initial_ms != 0 || !scope.sets_any(&["backoff_initial_ms"]) {
        return;
    }
    let Some(origin) = at(scope, share, &["backoff_initial_ms"]) else {
        return;
    };
    let default = ShareGroupSettings::default();
    ctx.emit(
        &rules::NO_RETRY_BACKOFF,
        Some(&origin),
        format!(
            "{}: a released record is delivered again at once, however often it failed",
            scope.what
        ),
    )
    .label("no wait between retries")
    .help(format!(
        "set `backoff_initial_ms = {}` (with `backoff_multiplier = {}` and `backoff_ms_max = {}`, the defaults)",
        default.backoff_initial_ms, default.backoff_multiplier, default.backoff_max_ms
    ))
    .note("consumers retrying at full speed keep a struggling dependency down, and records reach the delivery limit in moments");
}

/// The wait before the last delivery a record can get: the longest
/// `settings` make, jitter aside.
fn longest_backoff_ms(s: &ShareGroupSettings) -> u64 {
    let growth =
        u64::from(s.backoff_multiplier.max(1)).saturating_pow(u32::from(s.delivery_count_limit.saturating_sub(2)));
    s.backoff_initial_ms.saturating_mul(growth)
}

/// The waits between `deliveries` deliveries of one record, jitter aside.
fn backoff_total_ms(s: &ShareGroupSettings, deliveries: u64) -> u64 {
    let cap = s.backoff_max_ms.max(s.backoff_initial_ms);
    let mut wait = s.backoff_initial_ms;
    let mut total: u64 = 0;
    for _ in 1..deliveries {
        total = total.saturating_add(wait.min(cap));
        wait = wait.saturating_mul(u64::from(s.backoff_multiplier.max(1)));
    }
    total
}

/// How long one record that hangs its consumer on every one of
/// `deliveries` deliveries holds its partition: each held for `held_ms`,
/// with the backoffs between them.
fn stall_ms(s: &ShareGroupSettings, held_ms: u64, deliveries: u64) -> u64 {
    held_ms
        .saturating_mul(deliveries)
        .saturating_add(backoff_total_ms(s, deliveries))
}

/// V215: how long one record that hangs its consumers can stop a partition.
fn poison_stall(ctx: &mut Ctx<'_>, scope: &Scope<'_>, session_timeout_ms: u64, share: &RawTable) {
    let s = &scope.settings;
    let held_ms = s.record_lock_duration_ms.min(session_timeout_ms);
    let deliveries = u64::from(s.delivery_count_limit);
    let stall_ms = stall_ms(s, held_ms, deliveries);
    let keys_set = [
        "deliveries_max",
        "record_lock_duration_ms",
        "backoff_initial_ms",
        "backoff_ms_max",
    ];
    if stall_ms <= POISON_RECORD_HOLD_MS_MAX_SAFE || !scope.sets_any(&keys_set) {
        return;
    }
    // Point at what to change: the delivery limit while fewer deliveries can
    // still bring the stall under the bound, else the lock.
    let fewer = (2..deliveries)
        .rev()
        .find(|d| self::stall_ms(s, held_ms, *d) <= POISON_RECORD_HOLD_MS_MAX_SAFE)
        .unwrap_or(0);
    let (keys, help) = if fewer >= 2 {
        (
            ["deliveries_max", "record_lock_duration_ms"],
            format!("set `deliveries_max = {fewer}`, or shorten `record_lock_duration_ms`"),
        )
    } else {
        let waits = backoff_total_ms(s, deliveries);
        if waits < POISON_RECORD_HOLD_MS_MAX_SAFE / 2 {
            (
                ["record_lock_duration_ms", "deliveries_max"],
                format!(
                    "shorten `record_lock_duration_ms` to {} or less",
                    (POISON_RECORD_HOLD_MS_MAX_SAFE - waits) / deliveries
                ),
            )
        } else {
            // The waits alone are too long: the longest one, unless even
            // the first ones add up to too much.
            let key = if s.backoff_initial_ms.saturating_mul(deliveries - 1) >= POISON_RECORD_HOLD_MS_MAX_SAFE {
                "backoff_initial_ms"
            } else {
                "backoff_ms_max"
            };
            (
                [key, "deliveries_max"],
                format!(
                    "shorten `{key}`: the waits between deliveries come to {} of it",
                    human_ms(waits)
                ),
            )
        }
    };
    ctx.emit(
        &rules::POISON_RECORD_STALL,
        at(scope, share, &keys).as_ref(),
        format!(
            "{}: a record that hangs its consumer can stop its partition for {}",
            scope.what,
            human_ms(stall_ms)
        ),
    )
    .label(match backoff_total_ms(s, deliveries) {
        0 => format!("{deliveries} deliveries of {} each", human_ms(held_ms)),
        waits => format!(
            "{deliveries} deliveries of {} each, {} of backoff between them",
            human_ms(held_ms),
            human_ms(waits)
        ),
    })
    .related(
        scope.table.set_at(keys[1]).or_else(|| share.set_at(keys[1])),
        format!("`{}`", keys[1]),
    )
    .help(help)
    .note("until the record is archived the partition's start cannot pass it, and once the in-flight window is full nothing more is delivered");
}
