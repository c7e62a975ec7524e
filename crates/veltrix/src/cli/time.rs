//! Record timestamps as people write them: RFC 3339 in and out, or plain
//! milliseconds since the Unix epoch (Kafka's unit). The calendar is jiff's.

use jiff::Timestamp;

/// Parses `--from-time`: epoch milliseconds (`1700000000000`) or RFC 3339
/// (`2023-11-14T22:13:20Z`, `2023-11-14T23:13:20.5+01:00`; the fraction is
/// truncated to milliseconds). A time without an offset is refused: it would
/// mean a different instant on every machine. Times before the epoch are
/// refused too: Kafka gives negative timestamps special meanings.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let ms = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<i64>()
            .map_err(|_| format!("`{s}` is too large for milliseconds"))?
    } else {
        let time: Timestamp = s.parse().map_err(|_| {
            format!("`{s}` is neither milliseconds since the epoch nor an RFC 3339 time like 2024-05-01T12:00:00Z")
        })?;
        time.as_millisecond()
    };
    if ms < 0 {
        return Err(format!("`{s}` is before 1970-01-01T00:00:00Z"));
    }
    Ok(ms)
}

/// `ms` since the epoch as RFC 3339 in UTC with milliseconds
/// (`2023-11-14T22:13:20.000Z`), or the bare number when it is outside the
/// years -9999 to 9999 that RFC 3339 can write.
pub fn format_time(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(time) => time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds in a day.
    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn known_instants() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T23:13:20.123+01:00"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14t17:43:20.1234567-04:30"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2000-02-29 00:00:00.5z"), Ok(951_782_400_500));
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_time(951_782_400_500), "2000-02-29T00:00:00.500Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_time(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn invalid_times_are_refused() {
        for bad in [
            "",
            "yesterday",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:61Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20Zjunk",
            "1969-12-31T23:59:59Z",
            "99999999999999999999",
            "-5",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formatting_and_parsing_agree_over_centuries() {
        // Every 7 days and 13 ms or so, from 1970 to beyond 2400.
        let mut ms = 0i64;
        while ms < 14_000_000_000_000 {
            assert_eq!(parse_time(&format_time(ms)), Ok(ms), "{ms}");
            ms += 7 * DAY_MS + 13_013;
        }
    }
}
