//! A share group's settings: Kafka's group configs of share groups, with the
//! broker's defaults, set per group with IncrementalAlterConfigs (the GROUP
//! resource) or in `veltrix.toml`.

use serde::{Deserialize, Serialize};

/// Where a share group starts reading a partition it has no state for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutoOffsetReset {
    /// Records produced from now on.
    Latest,
    /// Every record the partition still has.
    Earliest,
    /// Records produced at most this long ago.
    ByDuration { ms: i64 },
}

impl AutoOffsetReset {
    /// `latest`, `earliest` or `by_duration:<ISO 8601 duration>` (such as
    /// `by_duration:PT1H` or `by_duration:P1DT12H`), as Kafka spells them.
    pub fn parse(s: &str) -> Result<AutoOffsetReset, String> {
        match s {
            "latest" => Ok(AutoOffsetReset::Latest),
            "earliest" => Ok(AutoOffsetReset::Earliest),
            _ => match s.strip_prefix("by_duration:") {
                Some(d) => parse_iso_duration_ms(d)
                    .map(|ms| AutoOffsetReset::ByDuration { ms })
                    .ok_or_else(|| format!("`{d}` is not an ISO 8601 duration such as PT1H or P1DT12H")),
                None => Err(format!(
                    "`{s}` is not `latest`, `earliest` or `by_duration:<ISO 8601 duration>`"
                )),
            },
        }
    }

    pub fn to_config_string(self) -> String {
        match self {
            AutoOffsetReset::Latest => "latest".into(),
            AutoOffsetReset::Earliest => "earliest".into(),
            AutoOffsetReset::ByDuration { ms } => format!("by_duration:PT{}S", ms as f64 / 1000.0),
        }
    }
}

/// `PnDTnHnMnS` (days, hours, minutes, seconds, each optional, seconds may
/// have a fraction) in milliseconds.
fn parse_iso_duration_ms(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut ms: f64 = 0.0;
    let mut any = false;
    if !days.is_empty() {
        let n: f64 = days.strip_suffix('D')?.parse().ok()?;
        ms += n * 86_400_000.0;
        any = true;
    }
    if let Some(mut t) = time {
        if t.is_empty() {
            return None;
        }
        for (unit, scale) in [('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)] {
            if let Some(i) = t.find(unit) {
                let n: f64 = t[..i].parse().ok()?;
                ms += n * scale;
                t = &t[i + 1..];
                any = true;
            }
        }
        if !t.is_empty() {
            return None;
        }
    }
    (any && ms.is_finite() && (0.0..9.0e15).contains(&ms)).then_some(ms as i64)
}

/// A share group's settings. Names end in their unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareGroupSettings {
    /// `share.auto.offset.reset`.
    pub auto_offset_reset: AutoOffsetReset,
    /// `share.record.lock.duration.ms`: how long an acquired record stays
    /// locked to its member.
    pub record_lock_duration_ms: u64,
    /// `share.delivery.count.limit`: deliveries after which a record is
    /// archived.
    pub delivery_count_limit: u16,
    /// `share.partition.max.record.locks`: the in-flight window per partition.
    pub partition_max_record_locks: usize,
    /// `veltrix.share.backoff.initial.ms`: the wait before a record released
    /// or timed out is delivered again, after its first delivery (0: none).
    pub backoff_initial_ms: u64,
    /// `veltrix.share.backoff.multiplier`: the wait grows this many times
    /// with each further delivery.
    pub backoff_multiplier: u16,
    /// `veltrix.share.backoff.max.ms`: the longest wait.
    pub backoff_max_ms: u64,
    /// Whether the group names a dead-letter topic
    /// ([`DEAD_LETTER_TOPIC_KEY`]); the name itself is one of the group's
    /// own settings, read with the coordinator's `dead_letter_topic`.
    pub dead_letters: bool,
    /// `veltrix.share.delay.enable`: records are not handed out before
    /// their `veltrix.deliver.at` / `veltrix.delay.ms`.
    pub delays: bool,
    /// `veltrix.share.delay.max.ms`: the longest delay honoured.
    pub delay_max_ms: u64,
    /// `veltrix.share.priority.enable`: higher `veltrix.priority` first,
    /// among the records in the window.
    pub priority: bool,
    /// `veltrix.share.key.order.enable`: a record waits while an earlier
    /// one with its key is in flight or waiting.
    pub key_order: bool,
}

impl Default for ShareGroupSettings {
    fn default() -> Self {
        ShareGroupSettings {
            auto_offset_reset: AutoOffsetReset::Latest,
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            partition_max_record_locks: 2_000,
            backoff_initial_ms: 1_000,
            backoff_multiplier: 2,
            backoff_max_ms: 60_000,
            dead_letters: false,
            delays: false,
            delay_max_ms: 3_600_000,
            priority: false,
            key_order: false,
        }
    }
}

/// KIP-1191's group config naming the group's dead-letter topic (empty:
/// none).
pub const DEAD_LETTER_TOPIC_KEY: &str = "errors.deadletterqueue.topic.name";
/// What every dead-letter topic's name starts with (KIP-1191's
/// `errors.deadletterqueue.topic.name.prefix` default): a group cannot be
/// made to write into a topic that is not meant for dead letters, and readers
/// of a topic see at once that its records were written there by a broker.
pub const DEAD_LETTER_TOPIC_PREFIX: &str = "dlq.";
/// What DescribeConfigs says of [`DEAD_LETTER_TOPIC_KEY`].
pub const DEAD_LETTER_TOPIC_DOC: &str = "the topic records archived by the group (rejected, or at the delivery limit) are copied to, with headers telling why; it must start with `dlq.`; empty: no dead letters";

/// Checks a dead-letter topic name as the group config takes it.
pub fn check_dead_letter_topic(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Ok(());
    }
    if !name.starts_with(DEAD_LETTER_TOPIC_PREFIX) {
        return Err(format!(
            "`{DEAD_LETTER_TOPIC_KEY}` = `{name}` does not start with `{DEAD_LETTER_TOPIC_PREFIX}`: dead-letter topics \
             are named so, so that no group writes into a topic not meant for them (try `{DEAD_LETTER_TOPIC_PREFIX}{name}`)"
        ));
    }
    crate::broker::validate_topic_name(name).map_err(|e| format!("`{DEAD_LETTER_TOPIC_KEY}`: {e}"))
}

/// A setting's key, range and meaning, for validation and DescribeConfigs.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    pub key: &'static str,
    /// Inclusive range of numeric settings.
    pub range: Option<(i64, i64)>,
    pub doc: &'static str,
}

pub const RECORD_LOCK_DURATION_MS_RANGE: (i64, i64) = (1_000, 3_600_000);
pub const DELIVERY_COUNT_LIMIT_RANGE: (i64, i64) = (2, 10);
pub const PARTITION_MAX_RECORD_LOCKS_RANGE: (i64, i64) = (100, 10_000);
pub const BACKOFF_INITIAL_MS_RANGE: (i64, i64) = (0, 3_600_000);
pub const BACKOFF_MULTIPLIER_RANGE: (i64, i64) = (1, 10);
pub const BACKOFF_MAX_MS_RANGE: (i64, i64) = (0, 86_400_000);
pub const DELAY_MAX_MS_RANGE: (i64, i64) = (0, 604_800_000);

pub const SETTINGS: [SettingSpec; 11] = [
    SettingSpec {
        key: "share.auto.offset.reset",
        range: None,
        doc: "where a share group starts on a partition it has no state for: latest, earliest or by_duration:<ISO 8601 duration>",
    },
    SettingSpec {
        key: "share.record.lock.duration.ms",
        range: Some(RECORD_LOCK_DURATION_MS_RANGE),
        doc: "how long an acquired record stays locked to the member that holds it",
    },
    SettingSpec {
        key: "share.delivery.count.limit",
        range: Some(DELIVERY_COUNT_LIMIT_RANGE),
        doc: "deliveries after which a record is archived instead of delivered again",
    },
    SettingSpec {
        key: "share.partition.max.record.locks",
        range: Some(PARTITION_MAX_RECORD_LOCKS_RANGE),
        doc: "records in flight (between the share-partition start and end offsets) per partition",
    },
    SettingSpec {
        key: "veltrix.share.backoff.initial.ms",
        range: Some(BACKOFF_INITIAL_MS_RANGE),
        doc: "how long a record released or timed out after its first delivery waits before it is delivered again (0: at once)",
    },
    SettingSpec {
        key: "veltrix.share.backoff.multiplier",
        range: Some(BACKOFF_MULTIPLIER_RANGE),
        doc: "how many times longer the wait grows with each further delivery",
    },
    SettingSpec {
        key: "veltrix.share.backoff.max.ms",
        range: Some(BACKOFF_MAX_MS_RANGE),
        doc: "the longest wait before a record is delivered again",
    },
    SettingSpec {
        key: "veltrix.share.delay.enable",
        range: None,
        doc: "true: a record is not handed out before its `veltrix.deliver.at` header (epoch ms or RFC 3339) or its timestamp plus `veltrix.delay.ms`",
    },
    SettingSpec {
        key: "veltrix.share.delay.max.ms",
        range: Some(DELAY_MAX_MS_RANGE),
        doc: "the longest delay honoured, from when the broker first reads the record (a delayed record holds a place in the window)",
    },
    SettingSpec {
        key: "veltrix.share.priority.enable",
        range: None,
        doc: "true: among the records in the in-flight window, those with a higher `veltrix.priority` header (0 to 9) are handed out first",
    },
    SettingSpec {
        key: "veltrix.share.key.order.enable",
        range: None,
        doc: "true: a record is not handed out while an earlier record with the same key in its partition is in flight or waiting, so each key's records are processed in order",
    },
];

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{key}` must be true or false, not `{value}`")),
    }
}

fn ranged(key: &str, value: &str, (lo, hi): (i64, i64)) -> Result<i64, String> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{key}` must be an integer, not `{value}`"))?;
    if !(lo..=hi).contains(&n) {
        return Err(format!("`{key}` = {n} is outside {lo}..={hi}"));
    }
    Ok(n)
}

impl ShareGroupSettings {
    /// `self` with `key` set to `value`, or why it cannot be.
    pub fn with(mut self, key: &str, value: &str) -> Result<ShareGroupSettings, String> {
        match key {
            "share.auto.offset.reset" => self.auto_offset_reset = AutoOffsetReset::parse(value)?,
            "share.record.lock.duration.ms" => {
                self.record_lock_duration_ms = ranged(key, value, RECORD_LOCK_DURATION_MS_RANGE)? as u64
            }
            "share.delivery.count.limit" => {
                self.delivery_count_limit = ranged(key, value, DELIVERY_COUNT_LIMIT_RANGE)? as u16
            }
            "share.partition.max.record.locks" => {
                self.partition_max_record_locks = ranged(key, value, PARTITION_MAX_RECORD_LOCKS_RANGE)? as usize
            }
            "veltrix.share.backoff.initial.ms" => {
                self.backoff_initial_ms = ranged(key, value, BACKOFF_INITIAL_MS_RANGE)? as u64
            }
            "veltrix.share.backoff.multiplier" => {
                self.backoff_multiplier = ranged(key, value, BACKOFF_MULTIPLIER_RANGE)? as u16
            }
            "veltrix.share.backoff.max.ms" => self.backoff_max_ms = ranged(key, value, BACKOFF_MAX_MS_RANGE)? as u64,
            "veltrix.share.delay.enable" => self.delays = flag(key, value)?,
            "veltrix.share.delay.max.ms" => self.delay_max_ms = ranged(key, value, DELAY_MAX_MS_RANGE)? as u64,
            "veltrix.share.priority.enable" => self.priority = flag(key, value)?,
            "veltrix.share.key.order.enable" => self.key_order = flag(key, value)?,
            DEAD_LETTER_TOPIC_KEY => {
                check_dead_letter_topic(value)?;
                self.dead_letters = !value.is_empty();
            }
            _ => {
                let mut known: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
                known.push(DEAD_LETTER_TOPIC_KEY);
                return Err(format!(
                    "`{key}` is not a share group config; there are {}",
                    known.join(", ")
                ));
            }
        }
        Ok(self)
    }

    /// Every setting as `(key, value)`, as DescribeConfigs shows them.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("share.auto.offset.reset", self.auto_offset_reset.to_config_string()),
            (
                "share.record.lock.duration.ms",
                self.record_lock_duration_ms.to_string(),
            ),
            ("share.delivery.count.limit", self.delivery_count_limit.to_string()),
            (
                "share.partition.max.record.locks",
                self.partition_max_record_locks.to_string(),
            ),
            ("veltrix.share.backoff.initial.ms", self.backoff_initial_ms.to_string()),
            ("veltrix.share.backoff.multiplier", self.backoff_multiplier.to_string()),
            ("veltrix.share.backoff.max.ms", self.backoff_max_ms.to_string()),
            ("veltrix.share.delay.enable", self.delays.to_string()),
            ("veltrix.share.delay.max.ms", self.delay_max_ms.to_string()),
            ("veltrix.share.priority.enable", self.priority.to_string()),
            ("veltrix.share.key.order.enable", self.key_order.to_string()),
        ]
    }

    /// The defaults with `overrides` applied in order.
    pub fn resolve(defaults: ShareGroupSettings, overrides: &[(String, String)]) -> Result<ShareGroupSettings, String> {
        overrides.iter().try_fold(defaults, |s, (k, v)| s.with(k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_iso_duration_ms("PT1H"), Some(3_600_000));
        assert_eq!(parse_iso_duration_ms("P1DT12H"), Some(129_600_000));
        assert_eq!(parse_iso_duration_ms("PT0.5S"), Some(500));
        assert_eq!(parse_iso_duration_ms("PT1M30S"), Some(90_000));
        assert_eq!(parse_iso_duration_ms("P2D"), Some(172_800_000));
        for bad in ["", "P", "PT", "1H", "PT1X", "PTH", "P-1D", "PT1H2", "P1e300D"] {
            assert_eq!(parse_iso_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let d = ShareGroupSettings::default();
        assert_eq!(
            d.with("share.delivery.count.limit", "3").unwrap().delivery_count_limit,
            3
        );
        assert!(
            d.with("share.delivery.count.limit", "1")
                .unwrap_err()
                .contains("2..=10")
        );
        assert!(d.with("share.record.lock.duration.ms", "x").is_err());
        assert!(
            d.with("share.unknown", "1")
                .unwrap_err()
                .contains("share.delivery.count.limit")
        );
        assert_eq!(
            d.with("share.auto.offset.reset", "by_duration:PT1M")
                .unwrap()
                .auto_offset_reset,
            AutoOffsetReset::ByDuration { ms: 60_000 }
        );
        assert!(d.with("share.auto.offset.reset", "newest").is_err());
    }
}
