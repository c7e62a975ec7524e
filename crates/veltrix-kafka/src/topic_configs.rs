//! Topic settings under their Kafka names: parsing and validating one setting,
//! shared by CreateTopics, AlterConfigs and IncrementalAlterConfigs.
//!
//! Only the settings the engine implements are accepted; any other name is
//! refused with a message naming it, so a client never believes a setting took
//! effect when it did not. Cross-field rules (e.g. a batch must fit a segment)
//! are the engine's, checked when the whole config is applied.

use veltrix_core::TopicConfig;

/// The topic settings that can be set, by Kafka name.
pub(crate) const SETTABLE: [&str; 6] = [
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "flush.ms",
];

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
        other => return Err(unsupported(other)),
    }
    Ok(())
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

    #[test]
    fn every_settable_name_can_be_set_and_unset() {
        for key in SETTABLE {
            let mut c = TopicConfig::default();
            set(&mut c, key, Some("5000")).unwrap();
            assert_ne!(c, TopicConfig::default(), "{key}");
            unset(&mut c, key).unwrap();
            assert_eq!(c, TopicConfig::default(), "{key}");
        }
    }

    #[test]
    fn bad_values_and_names_say_what_is_wrong() {
        let mut c = TopicConfig::default();
        assert!(
            set(&mut c, "retention.ms", Some("-2"))
                .unwrap_err()
                .contains("-1 for no limit")
        );
        assert!(
            set(&mut c, "segment.bytes", Some("1GB"))
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(
            set(&mut c, "cleanup.policy", Some("compact"))
                .unwrap_err()
                .contains("settable")
        );
        assert!(set(&mut c, "segment.ms", None).unwrap_err().contains("no value"));
        assert!(
            from_pairs([("retention.ms", Some("1")), ("retention.ms", Some("2"))])
                .unwrap_err()
                .contains("twice")
        );
    }
}
