//! Calendar arithmetic and RFC 3339 text for Unix times: UTC, the proleptic
//! Gregorian calendar, and the text forms Go's `time` package (and so
//! Prometheus and Alertmanager) print and read.
//!
//! Day counts are days since 1970-01-01; dates are `(year, month 1-12,
//! day 1-31)`. The date arithmetic is Howard Hinnant's `days_from_civil`
//! and `civil_from_days`, exact for every `i64` day count a time in
//! milliseconds can reach. Time zones other than UTC are not here (the
//! alert manager's time intervals read TZif files for those).

use std::fmt::Write as _;

/// Seconds in a day.
const DAY_SECONDS: i64 = 86_400;

/// The date of a day count since 1970-01-01: `(year, month 1-12, day 1-31)`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days end a year, then
    // count 400-year eras, years within the era and days within the year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // The casts are exact: month is 1..=12 and day 1..=31 by construction.
    (year, month as u32, day as u32)
}

/// The day count since 1970-01-01 of a date (the inverse of
/// [`civil_from_days`]). `month` must be 1-12; a `day` past the month's
/// end counts on into the next month, as Go's `time.Date` does.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let month = i64::from(month);
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Whether `year` has a 29 February.
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The number of days of `month` (1-12) in `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The day of the week of a day count, 0 for Sunday to 6 for Saturday
/// (1970-01-01 was a Thursday).
pub fn weekday(days: i64) -> u32 {
    // The cast is exact: rem_euclid(7) is 0..=6.
    (days + 4).rem_euclid(7) as u32
}

/// The day of the year of a day count, 1 for 1 January.
pub fn day_of_year(days: i64) -> u32 {
    let (year, _, _) = civil_from_days(days);
    // The cast is exact: a day of the year is 1..=366.
    (days - days_from_civil(year, 1, 1) + 1) as u32
}

/// How many digits of a second's fraction RFC 3339 text carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fraction {
    /// Go's `time.RFC3339Nano`, which `time.Time` uses in JSON: up to nine
    /// digits with trailing zeros dropped, none on a whole second.
    Trimmed,
    /// Exactly three digits, as go-openapi's `strfmt.DateTime` prints
    /// (Alertmanager's API v2).
    Millis,
    /// Exactly nine digits, as Prometheus prints a target's `lastScrape`.
    Nanos,
}

/// A time as RFC 3339 text in UTC (`2023-11-14T22:13:20.5Z`): `secs`
/// seconds and `nanos` nanoseconds (below 1e9) after the epoch.
pub fn format_rfc3339(secs: i64, nanos: u32, fraction: Fraction) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(DAY_SECONDS));
    let second_of_day = secs.rem_euclid(DAY_SECONDS);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    );
    let nanos = nanos % 1_000_000_000;
    match fraction {
        Fraction::Trimmed if nanos != 0 => {
            let digits = format!("{nanos:09}");
            text.push('.');
            text.push_str(digits.trim_end_matches('0'));
        }
        Fraction::Trimmed => {}
        Fraction::Millis => {
            let _ = write!(text, ".{:03}", nanos / 1_000_000);
        }
        Fraction::Nanos => {
            let _ = write!(text, ".{nanos:09}");
        }
    }
    text.push('Z');
    text
}

/// Milliseconds since the epoch as RFC 3339 text in UTC.
pub fn format_rfc3339_ms(ms: i64, fraction: Fraction) -> String {
    // The cast is exact: rem_euclid(1000) is 0..=999.
    let nanos = ms.rem_euclid(1000) as u32 * 1_000_000;
    format_rfc3339(ms.div_euclid(1000), nanos, fraction)
}

/// Which RFC 3339 texts a parser accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rfc3339Grammar {
    /// What Go's `time.Parse(time.RFC3339Nano, s)` reads, as Prometheus's
    /// API reads time parameters: `YYYY-MM-DDTHH:MM:SS[.f](Z|±HH:MM)` with
    /// an upper-case `T` and `Z`, seconds up to 59 and one to nine
    /// fraction digits.
    Go,
    /// RFC 3339 itself (section 5.6 and its notes), as osprey's alert
    /// manager reads API times: also a lower-case `t` or a space for `T`, a
    /// lower-case `z`, a leap second (`:60`, read as the next minute's
    /// first), and any number of fraction digits (those past nine are
    /// dropped).
    Rfc,
}

/// Parses RFC 3339 text into seconds and nanoseconds since the epoch, or
/// `None` when it is not a valid time of `grammar` (a 30 February, an
/// offset of 24 hours and any malformed text alike).
pub fn parse_rfc3339(text: &str, grammar: Rfc3339Grammar) -> Option<(i64, u32)> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            part.iter()
                .fold(0i64, |acc, digit| acc * 10 + i64::from(digit - b'0')),
        )
    };
    let relaxed = grammar == Rfc3339Grammar::Rfc;
    let date_time_separator = match b[10] {
        b'T' => true,
        b't' | b' ' => relaxed,
        _ => false,
    };
    if b[4] != b'-' || b[7] != b'-' || !date_time_separator || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let month = u32::try_from(month).ok().filter(|m| (1..=12).contains(m))?;
    let day = u32::try_from(day).ok()?;
    let max_second = if relaxed { 60 } else { 59 };
    if day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > max_second
    {
        return None;
    }
    let mut position = 19;
    let mut nanos: u32 = 0;
    if b.get(position) == Some(&b'.') {
        let start = position + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let count = end - start;
        if count == 0 || (!relaxed && count > 9) {
            return None;
        }
        for k in 0..9 {
            let digit = if k < count { b[start + k] - b'0' } else { 0 };
            nanos = nanos * 10 + u32::from(digit);
        }
        position = end;
    }
    let offset_seconds = match &b[position..] {
        [b'Z'] => 0,
        [b'z'] if relaxed => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = number(position + 1..position + 3)?;
            let minutes = number(position + 4..position + 6)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * DAY_SECONDS + hour * 3600 + minute * 60 + second - offset_seconds;
    Some((seconds, nanos))
}

/// [`parse_rfc3339`] in milliseconds since the epoch; digits past the
/// millisecond are dropped, as Prometheus's `timestamp.FromTime` does.
pub fn parse_rfc3339_ms(text: &str, grammar: Rfc3339Grammar) -> Option<i64> {
    let (seconds, nanos) = parse_rfc3339(text, grammar)?;
    Some(seconds * 1000 + i64::from(nanos / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix days of dates as Go's `time.Date(y, m, d, 0, 0, 0, 0,
    /// time.UTC).Unix() / 86400` gives them (Python's `date.toordinal`
    /// agrees), across leap years, century rules and year 0.
    const DATES: [((i64, u32, u32), i64); 10] = [
        ((1970, 1, 1), 0),
        ((1969, 12, 31), -1),
        ((2000, 2, 29), 11_016),
        ((2000, 3, 1), 11_017),
        ((1900, 3, 1), -25_508),
        ((2023, 11, 14), 19_675),
        ((2024, 12, 31), 20_088),
        ((1, 1, 1), -719_162),
        ((-1, 12, 31), -719_529),
        ((9999, 12, 31), 2_932_896),
    ];

    #[test]
    fn dates_known_answers() {
        for (date, days) in DATES {
            assert_eq!(civil_from_days(days), date, "{days}");
            assert_eq!(days_from_civil(date.0, date.1, date.2), days, "{date:?}");
        }
        // A day past the month's end counts on, as in Go's time.Date.
        assert_eq!(days_from_civil(2023, 2, 31), days_from_civil(2023, 3, 3));
    }

    #[test]
    fn dates_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (year, month, day) = civil_from_days(days);
            assert!(day >= 1 && day <= days_in_month(year, month));
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }

    #[test]
    fn calendar_facts() {
        assert!(is_leap_year(2000) && is_leap_year(2024) && is_leap_year(-4));
        assert!(!is_leap_year(1900) && !is_leap_year(2023));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 12), 31);
        assert_eq!(weekday(0), 4); // Thursday
        assert_eq!(weekday(19_675), 2); // 2023-11-14, a Tuesday
        assert_eq!(weekday(-1), 3);
        assert_eq!(day_of_year(19_675), 318);
        assert_eq!(day_of_year(20_088), 366);
        assert_eq!(day_of_year(0), 1);
    }

    /// Go's `t.UTC().Format(time.RFC3339Nano)` and go-openapi's
    /// `strfmt.DateTime` of the same instants.
    #[test]
    fn formats_known_answers() {
        let cases: [(i64, u32, &str, &str, &str); 5] = [
            (
                0,
                0,
                "1970-01-01T00:00:00Z",
                "1970-01-01T00:00:00.000Z",
                "1970-01-01T00:00:00.000000000Z",
            ),
            (
                1_700_000_000,
                5,
                "2023-11-14T22:13:20.000000005Z",
                "2023-11-14T22:13:20.000Z",
                "2023-11-14T22:13:20.000000005Z",
            ),
            (
                1_700_000_000,
                500_000_000,
                "2023-11-14T22:13:20.5Z",
                "2023-11-14T22:13:20.500Z",
                "2023-11-14T22:13:20.500000000Z",
            ),
            (
                951_782_400,
                120_000_000,
                "2000-02-29T00:00:00.12Z",
                "2000-02-29T00:00:00.120Z",
                "2000-02-29T00:00:00.120000000Z",
            ),
            (
                -1,
                999_000_000,
                "1969-12-31T23:59:59.999Z",
                "1969-12-31T23:59:59.999Z",
                "1969-12-31T23:59:59.999000000Z",
            ),
        ];
        for (secs, nanos, trimmed, millis, full) in cases {
            assert_eq!(format_rfc3339(secs, nanos, Fraction::Trimmed), trimmed);
            assert_eq!(format_rfc3339(secs, nanos, Fraction::Millis), millis);
            assert_eq!(format_rfc3339(secs, nanos, Fraction::Nanos), full);
        }
        assert_eq!(
            format_rfc3339_ms(1_763_791_440_120, Fraction::Trimmed),
            "2025-11-22T06:04:00.12Z"
        );
        assert_eq!(
            format_rfc3339_ms(-1, Fraction::Millis),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn parses_what_go_parses() {
        use Rfc3339Grammar::{Go, Rfc};
        let cases: [(&str, Option<i64>, Option<i64>); 18] = [
            ("1970-01-01T00:00:00Z", Some(0), Some(0)),
            (
                "2019-07-07T20:01:02Z",
                Some(1_562_529_662_000),
                Some(1_562_529_662_000),
            ),
            (
                "2019-07-07T20:47:40+03:00",
                Some(1_562_521_660_000),
                Some(1_562_521_660_000),
            ),
            (
                "1970-01-01T00:00:00-01:30",
                Some(5_400_000),
                Some(5_400_000),
            ),
            (
                "2019-07-07T20:01:02.123456789Z",
                Some(1_562_529_662_123),
                Some(1_562_529_662_123),
            ),
            (
                "2000-02-29T00:00:00Z",
                Some(951_782_400_000),
                Some(951_782_400_000),
            ),
            ("2019-02-29T00:00:00Z", None, None),
            ("2019-04-31T00:00:00Z", None, None),
            ("2019-07-07T24:00:00Z", None, None),
            ("2019-07-07T20:01:02+24:00", None, None),
            ("2019-07-07T20:01:02", None, None),
            ("2019-07-07T20:01:02.Z", None, None),
            ("2019-07-07 20:01:02Z", None, Some(1_562_529_662_000)),
            ("2019-07-07t20:01:02z", None, Some(1_562_529_662_000)),
            ("2016-12-31T23:59:60Z", None, Some(1_483_228_800_000)),
            (
                "2019-07-07T20:01:02.1234567891Z",
                None,
                Some(1_562_529_662_123),
            ),
            ("x", None, None),
            ("2019-07-07T20:01:02Zjunk", None, None),
        ];
        for (text, go, rfc) in cases {
            assert_eq!(parse_rfc3339_ms(text, Go), go, "Go grammar: {text:?}");
            assert_eq!(parse_rfc3339_ms(text, Rfc), rfc, "RFC grammar: {text:?}");
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.000000005Z", Go),
            Some((1_700_000_000, 5))
        );
        // Text that is not ASCII where digits belong is refused, not a panic.
        assert_eq!(parse_rfc3339("2019-07-07T20:01:0é", Rfc), None);
        assert_eq!(parse_rfc3339("2019-07-07T20:01:02.é", Rfc), None);
    }
}
