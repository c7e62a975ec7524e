//! Topic settings under their Kafka names: parsing and validating one setting,
//! shared by CreateTopics, AlterConfigs and IncrementalAlterConfigs.
//!
//! Only the settings the engine implements are accepted; any other name is
//! refused with a message naming it, so a client never believes a setting took
//! effect when it did not. Cross-field rules (e.g. a batch must fit a segment,
//! a duplicate window must not outlast the retention) are the engine's,
//! checked when the whole config is applied.
//!
//! The duplicate window's settings are Veltrix's own, under a `veltrix.`
//! prefix so that they can never collide with a setting Kafka adds later.

use veltrix_core::dedup::DEDUP_WINDOW_MS_MAX;
use veltrix_core::{CleanupPolicy, DEDUP_ID_HEADER_BYTES_MAX, DedupIdSource, TopicConfig};

/// `veltrix.dedup.window.ms`: how long a message id is remembered, 0 for off.
pub(crate) const DEDUP_WINDOW_MS: &str = "veltrix.dedup.window.ms";
/// `veltrix.dedup.id.header`: the header that carries the message id.
pub(crate) const DEDUP_ID_HEADER: &str = "veltrix.dedup.id.header";
/// `veltrix.dedup.id.source`: `header` or `key`.
pub(crate) const DEDUP_ID_SOURCE: &str = "veltrix.dedup.id.source";
/// `veltrix.tier`: `critical`, `standard` or `bulk`.
pub(crate) const TIER: &str = "veltrix.tier";

/// `cleanup.policy`: `delete`, `compact` or both, a list.
pub(crate) const CLEANUP_POLICY: &str = "cleanup.policy";

/// The topic settings that can be set, by Kafka name.
pub(crate) const SETTABLE: [&str; 15] = [
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "flush.ms",
    CLEANUP_POLICY,
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    DEDUP_WINDOW_MS,
    DEDUP_ID_HEADER,
    DEDUP_ID_SOURCE,
    TIER,
];

/// IncrementalAlterConfigs' APPEND (`append`) or SUBTRACT of the words in
/// `value` to or from the topic's `cleanup.policy` (the default `delete` when
/// unset), as Kafka does for list settings: words already there (or absent)
/// are ignored; a list left empty is refused.
pub(crate) fn append_or_subtract(
    c: &mut TopicConfig,
    key: &str,
    value: Option<&str>,
    append: bool,
) -> Result<(), String> {
    if key != CLEANUP_POLICY {
        return Err(format!("APPEND and SUBTRACT change list settings; `{key}` is not one"));
    }
    let value = value.ok_or_else(|| format!("`{key}` has no value"))?;
    let mut policy = c.cleanup_policy.unwrap_or(CleanupPolicy::DELETE);
    for word in value.split(',').map(str::trim) {
        let one = CleanupPolicy::parse(word)?;
        if append {
            policy.delete |= one.delete;
            policy.compact |= one.compact;
        } else {
            policy.delete &= !one.delete;
            policy.compact &= !one.compact;
        }
    }
    if !policy.delete && !policy.compact {
        return Err(format!("`{key}` would be left empty; keep `delete`, `compact` or both"));
    }
    c.cleanup_policy = Some(policy);
    Ok(())
}

/// `min.cleanable.dirty.ratio`: a number from 0 to 1, kept in millionths.
fn dirty_ratio(key: &str, value: &str) -> Result<u32, String> {
    let ratio: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{key}` = `{value}` is not a number"))?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!("`{key}` = {value} must be between 0 and 1"));
    }
    Ok((ratio * 1_000_000.0).round() as u32)
}

/// Sets `key` to `value` in `c`.
pub(crate) fn set(c: &mut TopicConfig, key: &str, value: Option<&str>) -> Result<(), String> {
    let value = value.ok_or_else(|| format!("`{key}` has no value"))?;
    let num = || {
        value
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("`{key}` = `{value}` is not a whole number"))
    };
    let non_negative = |n: i64| u64::try_from(n).map_err(|_| format!("`{key}` = {n} must be at least 0"));
    // Kafka accepts -1 (no limit) or a non-negative limit; anything else is a
    // mistake worth refusing rather than guessing at.
    let limit = |n: i64| {
        if n >= -1 {
            Ok(n)
        } else {
            Err(format!("`{key}` = {n}: use -1 for no limit or a value of at least 0"))
        }
    };
    match key {
        "retention.ms" => c.retention_ms = Some(limit(num()?)?),
        "retention.bytes" => c.retention_bytes = Some(limit(num()?)?),
        "segment.bytes" => c.segment_bytes_max = Some(non_negative(num()?)?),
        "segment.ms" => c.segment_age_ms_max = Some(non_negative(num()?)?),
        "max.message.bytes" => {
            let n = num()?;
            c.batch_bytes_max = Some(u32::try_from(n).map_err(|_| format!("`{key}` = {n} is out of range"))?);
        }
        "flush.ms" => c.flush_interval_ms = Some(non_negative(num()?)?),
        CLEANUP_POLICY => c.cleanup_policy = Some(CleanupPolicy::parse(value)?),
        "delete.retention.ms" => c.delete_retention_ms = Some(non_negative(num()?)?),
        "min.compaction.lag.ms" => c.min_compaction_lag_ms = Some(non_negative(num()?)?),
        "max.compaction.lag.ms" => {
            let n = non_negative(num()?)?;
            if n == 0 {
                return Err(format!("`{key}` = 0 must be at least 1"));
            }
            c.max_compaction_lag_ms = Some(n);
        }
        "min.cleanable.dirty.ratio" => c.min_cleanable_dirty_ppm = Some(dirty_ratio(key, value)?),
        DEDUP_WINDOW_MS => c.dedup_window_ms = Some(dedup_window_ms(non_negative(num()?)?)?),
        DEDUP_ID_HEADER => c.dedup_id_header = Some(dedup_id_header(value)?),
        DEDUP_ID_SOURCE => c.dedup_id_source = Some(dedup_id_source(value)?),
        TIER => {
            c.tier = Some(
                veltrix_core::Tier::parse(value)
                    .ok_or_else(|| format!("`{TIER}` = `{value}`: use `critical`, `standard` or `bulk`"))?,
            )
        }
        other => return Err(unsupported(other)),
    }
    Ok(())
}

/// A window of at most a year: anything longer is surely in the wrong unit.
fn dedup_window_ms(ms: u64) -> Result<u64, String> {
    if ms > DEDUP_WINDOW_MS_MAX {
        return Err(format!(
            "`{DEDUP_WINDOW_MS}` = {ms} is longer than a year ({DEDUP_WINDOW_MS_MAX} ms); it is in milliseconds, \
             and 0 turns the window off"
        ));
    }
    Ok(ms)
}

/// A header name as given, not trimmed: header names are compared byte for
/// byte, so the setting must be exactly the name producers send.
fn dedup_id_header(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err(format!(
            "`{DEDUP_ID_HEADER}` is empty: name the record header that carries the message id, or delete the \
             setting for the default `{}`",
            veltrix_core::DEDUP_ID_HEADER_DEFAULT
        ));
    }
    if name.len() > DEDUP_ID_HEADER_BYTES_MAX {
        return Err(format!(
            "`{DEDUP_ID_HEADER}` is {} bytes long; a header name may be at most {DEDUP_ID_HEADER_BYTES_MAX}",
            name.len()
        ));
    }
    Ok(name.to_owned())
}

fn dedup_id_source(word: &str) -> Result<DedupIdSource, String> {
    DedupIdSource::parse(word).ok_or_else(|| {
        format!(
            "`{DEDUP_ID_SOURCE}` = `{word}`: use `header` (the id is the value of the header `{DEDUP_ID_HEADER}` \
             names) or `key` (the id is the record's key)"
        )
    })
}

/// Removes `key` from `c`, so the broker's default applies again.
pub(crate) fn unset(c: &mut TopicConfig, key: &str) -> Result<(), String> {
    match key {
        "retention.ms" => c.retention_ms = None,
        "retention.bytes" => c.retention_bytes = None,
        "segment.bytes" => c.segment_bytes_max = None,
        "segment.ms" => c.segment_age_ms_max = None,
        "max.message.bytes" => c.batch_bytes_max = None,
        "flush.ms" => c.flush_interval_ms = None,
        CLEANUP_POLICY => c.cleanup_policy = None,
        "delete.retention.ms" => c.delete_retention_ms = None,
        "min.compaction.lag.ms" => c.min_compaction_lag_ms = None,
        "max.compaction.lag.ms" => c.max_compaction_lag_ms = None,
        "min.cleanable.dirty.ratio" => c.min_cleanable_dirty_ppm = None,
        DEDUP_WINDOW_MS => c.dedup_window_ms = None,
        DEDUP_ID_HEADER => c.dedup_id_header = None,
        DEDUP_ID_SOURCE => c.dedup_id_source = None,
        TIER => c.tier = None,
        other => return Err(unsupported(other)),
    }
    Ok(())
}

/// Applies `(name, value)` pairs to the default config, refusing duplicates.
pub(crate) fn from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<TopicConfig, String> {
    let mut c = TopicConfig::default();
    let mut seen = Vec::new();
    for (key, value) in pairs {
        if seen.contains(&key) {
            return Err(format!("`{key}` is given twice"));
        }
        seen.push(key);
        set(&mut c, key, value)?;
    }
    Ok(c)
}

fn unsupported(key: &str) -> String {
    format!(
        "unknown or unsupported topic config `{key}`; settable: {}",
        SETTABLE.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid value for every settable name.
    const VALID: [(&str, &str); 15] = [
        ("retention.ms", "5000"),
        ("retention.bytes", "5000"),
        ("segment.bytes", "5000"),
        ("segment.ms", "5000"),
        ("max.message.bytes", "5000"),
        ("flush.ms", "5000"),
        (CLEANUP_POLICY, "compact"),
        ("delete.retention.ms", "5000"),
        ("min.compaction.lag.ms", "5000"),
        ("max.compaction.lag.ms", "5000"),
        ("min.cleanable.dirty.ratio", "0.25"),
        (DEDUP_WINDOW_MS, "120000"),
        (DEDUP_ID_HEADER, "event-id"),
        (DEDUP_ID_SOURCE, "key"),
        (TIER, "bulk"),
    ];

    #[test]
    fn every_settable_name_can_be_set_and_unset() {
        assert_eq!(VALID.map(|(k, _)| k), SETTABLE, "one valid value per settable name");
        for (key, value) in VALID {
            let mut c = TopicConfig::default();
            set(&mut c, key, Some(value)).unwrap();
            assert_ne!(c, TopicConfig::default(), "{key}");
            unset(&mut c, key).unwrap();
            assert_eq!(c, TopicConfig::default(), "{key}");
        }
    }

    #[test]
    fn cleanup_policy_is_a_list_in_any_order_and_appends_and_subtracts() {
        let mut c = TopicConfig::default();
        set(&mut c, CLEANUP_POLICY, Some(" delete , compact")).unwrap();
        assert_eq!(c.cleanup_policy.unwrap().name(), "compact,delete");
        for (bad, why) in [
            ("compact,compact", "twice"),
            ("", "empty"),
            ("compact,", "empty"),
            ("Compact", "unknown"),
        ] {
            let e = set(&mut TopicConfig::default(), CLEANUP_POLICY, Some(bad)).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let mut c = TopicConfig::default();
        append_or_subtract(&mut c, CLEANUP_POLICY, Some("compact"), true).unwrap();
        assert_eq!(
            c.cleanup_policy.unwrap().name(),
            "compact,delete",
            "appended to the default delete"
        );
        append_or_subtract(&mut c, CLEANUP_POLICY, Some("compact"), true).unwrap();
        append_or_subtract(&mut c, CLEANUP_POLICY, Some("delete"), false).unwrap();
        assert_eq!(c.cleanup_policy.unwrap().name(), "compact");
        let e = append_or_subtract(&mut c, CLEANUP_POLICY, Some("compact"), false).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        assert!(
            append_or_subtract(&mut c, "retention.ms", Some("1"), true)
                .unwrap_err()
                .contains("list settings")
        );
        let mut r = TopicConfig::default();
        assert!(
            set(&mut r, "min.cleanable.dirty.ratio", Some("1.5"))
                .unwrap_err()
                .contains("between 0 and 1")
        );
        assert!(
            set(&mut r, "max.compaction.lag.ms", Some("0"))
                .unwrap_err()
                .contains("at least 1")
        );
        set(&mut r, "min.cleanable.dirty.ratio", Some("0.1")).unwrap();
        assert_eq!(r.min_cleanable_dirty_ppm, Some(100_000));
    }

    #[test]
    fn the_duplicate_window_settings_take_their_whole_range() {
        let year = DEDUP_WINDOW_MS_MAX.to_string();
        let longest = "h".repeat(DEDUP_ID_HEADER_BYTES_MAX);
        let c = from_pairs([
            (DEDUP_WINDOW_MS, Some(year.as_str())),
            (DEDUP_ID_HEADER, Some(longest.as_str())),
            (DEDUP_ID_SOURCE, Some("header")),
        ])
        .unwrap();
        assert_eq!(c.dedup_window_ms, Some(DEDUP_WINDOW_MS_MAX));
        assert_eq!(c.dedup_id_header.as_deref(), Some(longest.as_str()));
        assert_eq!(c.dedup_id_source, Some(DedupIdSource::Header));
        let off = from_pairs([(DEDUP_WINDOW_MS, Some("0")), (DEDUP_ID_HEADER, Some(" id "))]).unwrap();
        assert_eq!(off.dedup_window_ms, Some(0), "0 is off, and accepted");
        assert_eq!(off.dedup_id_header.as_deref(), Some(" id "), "kept as given");
        assert_eq!(off.dedup(), None);
    }

    #[test]
    fn bad_values_and_names_say_what_is_wrong() {
        let year_and_a_ms = (DEDUP_WINDOW_MS_MAX + 1).to_string();
        let too_long = "h".repeat(DEDUP_ID_HEADER_BYTES_MAX + 1);
        let refused: [(&str, Option<&str>, &str); 13] = [
            ("retention.ms", Some("-2"), "-1 for no limit"),
            ("segment.bytes", Some("1GB"), "not a whole number"),
            ("cleanup.policy", Some("compact,shred"), "unknown policy `shred`"),
            ("segment.ms", None, "no value"),
            (DEDUP_WINDOW_MS, Some("-1"), "must be at least 0"),
            (DEDUP_WINDOW_MS, Some("2m"), "not a whole number"),
            (
                DEDUP_WINDOW_MS,
                Some(&year_and_a_ms),
                "longer than a year (31536000000 ms)",
            ),
            (DEDUP_WINDOW_MS, None, "no value"),
            (DEDUP_ID_HEADER, Some(""), "is empty"),
            (
                DEDUP_ID_HEADER,
                Some(&too_long),
                "256 bytes long; a header name may be at most 255",
            ),
            (DEDUP_ID_SOURCE, Some("value"), "use `header`"),
            (DEDUP_ID_SOURCE, Some("Key"), "or `key`"),
            (TIER, Some("urgent"), "use `critical`, `standard` or `bulk`"),
        ];
        for (key, value, why) in refused {
            let mut c = TopicConfig::default();
            let message = set(&mut c, key, value).unwrap_err();
            assert!(
                message.contains(why),
                "{key} = {value:?}: {message:?} should say {why:?}"
            );
            assert!(message.contains(key), "{message:?} names the setting");
            assert_eq!(c, TopicConfig::default(), "{key} = {value:?} changed nothing");
        }
        assert!(
            from_pairs([("retention.ms", Some("1")), ("retention.ms", Some("2"))])
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            set(&mut TopicConfig::default(), "veltrix.dedup.window", Some("1"))
                .unwrap_err()
                .contains(DEDUP_WINDOW_MS),
            "the refusal lists the settable names"
        );
    }
}
