//! Record timestamps as people write them: RFC 3339 in and out, or plain
//! milliseconds since the Unix epoch (Kafka's unit).
//!
//! Dates use the proleptic Gregorian calendar through Howard Hinnant's
//! `days_from_civil` and `civil_from_days`, which are exact for every date in
//! range; no time zone database is needed because RFC 3339 carries its offset.

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// Parses `--from-time`: epoch milliseconds (`1700000000000`) or RFC 3339
/// (`2023-11-14T22:13:20Z`, `2023-11-14T23:13:20.5+01:00`). Times before the
/// epoch are refused: Kafka gives negative timestamps special meanings.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let ms = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<i64>()
            .map_err(|_| format!("`{s}` is too large for milliseconds"))?
    } else {
        parse_rfc3339(s).ok_or_else(|| {
            format!("`{s}` is neither milliseconds since the epoch nor an RFC 3339 time like 2024-05-01T12:00:00Z")
        })?
    };
    if ms < 0 {
        return Err(format!("`{s}` is before 1970-01-01T00:00:00Z"));
    }
    Ok(ms)
}

/// Reads `n` ASCII digits as a number.
fn digits(s: &[u8], n: usize) -> Option<i64> {
    let part = s.get(..n)?;
    part.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `z` days after 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, as milliseconds since the
/// epoch (the fraction truncated to milliseconds).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (year, month, day) = (digits(b, 4)?, digits(b.get(5..)?, 2)?, digits(b.get(8..)?, 2)?);
    let (hour, minute, second) = (
        digits(b.get(11..)?, 2)?,
        digits(b.get(14..)?, 2)?,
        digits(b.get(17..)?, 2)?,
    );
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|(i, c)| b.get(*i) != Some(c)) || !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let first3 = &fraction[..n.min(3)];
        millis = digits(first3, first3.len())? * 10i64.pow(3 - first3.len() as u32);
        rest = &fraction[n..];
    }
    let offset_minutes = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2], 2)?, digits(&[*m1, *m2], 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((seconds - offset_minutes * 60) * 1000 + millis)
}

/// `ms` since the epoch as RFC 3339 in UTC with milliseconds:
/// `2023-11-14T22:13:20.000Z`.
pub fn format_time(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let of_day = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "2023-11-14T22:13:60Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
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
