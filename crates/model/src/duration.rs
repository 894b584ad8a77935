//! Prometheus durations: `30d`, `1h30m`, `500ms`.

/// The units of a Prometheus duration, largest first, in milliseconds.
const UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Why a text is not a Prometheus duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// Not the syntax: empty, no digits, an unknown unit, units out of
    /// order or repeated, a sign or a fraction.
    Invalid,
    /// The syntax, but more milliseconds than an `i64` holds.
    OutOfRange,
}

/// Parses a Prometheus duration into milliseconds: one or more
/// `<integer><unit>` terms with units `y`, `w`, `d`, `h`, `m`, `s`, `ms`
/// in that order, each at most once (`1y`, `2w3d`, `1h30m`, `0`), as
/// `model.ParseDuration` reads them. Callers word the error their way.
pub fn parse_ms(s: &str) -> Result<i64, DurationError> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(DurationError::Invalid);
    }
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return Err(DurationError::Invalid);
        }
        // Go reads the number as a uint64: one that does not fit is no
        // number, one that does but overflows with its unit is too large.
        let n: u64 = s[start..pos].parse().map_err(|_| DurationError::Invalid)?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &s[unit_start..pos];
        let index = UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
            .map(|i| i + next_unit)
            .ok_or(DurationError::Invalid)?;
        next_unit = index + 1;
        total = i64::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(UNITS[index].1))
            .and_then(|ms| total.checked_add(ms))
            .ok_or(DurationError::OutOfRange)?;
    }
    Ok(total)
}

/// [`parse_ms`] with the messages config files report.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    parse_ms(s).map_err(|error| match error {
        DurationError::Invalid => {
            format!("not a valid duration: {s:?} (expected e.g. 30d, 12h, 1h30m, 500ms)")
        }
        DurationError::OutOfRange => format!("duration {s:?} is too large"),
    })
}

/// Milliseconds as Prometheus prints a duration (`model.Duration.String`,
/// and PromQL's printer for ranges and offsets): every unit from the
/// largest down that fits, `0s` for zero, `-` before a negative one
/// (`1h30m`, `5m`, `-5m`). Years and weeks are used only when they divide
/// the duration exactly, as prometheus/common does ("it is often easier
/// to read 90d than 12w6d"): `14d` is `2w`, `30d` stays `30d`.
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    if ms < 0 {
        text.push('-');
    }
    let mut rest = ms.unsigned_abs();
    for (unit, size) in UNITS {
        let size = size.unsigned_abs();
        let exact_only = matches!(unit, "y" | "w");
        if exact_only && !rest.is_multiple_of(size) {
            continue;
        }
        if rest >= size {
            text.push_str(&(rest / size).to_string());
            text.push_str(unit);
            rest %= size;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1y"), Ok(365 * 86_400_000));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        for bad in [
            "",
            "30",
            "d",
            "1m1h",
            "1h1h",
            "1.5h",
            "-1d",
            "1x",
            "99999999999999999y",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(parse_ms("1m1h"), Err(DurationError::Invalid));
        assert_eq!(parse_ms("0h0h"), Err(DurationError::Invalid));
        assert_eq!(
            parse_ms("99999999999999999999y"),
            Err(DurationError::Invalid)
        );
        assert_eq!(
            parse_ms("10000000000000000000ms"),
            Err(DurationError::OutOfRange)
        );
        assert_eq!(parse_ms("300000000y"), Err(DurationError::OutOfRange));
        assert_eq!(parse_ms("9223372036854775807ms"), Ok(i64::MAX));
    }

    /// Cases of prometheus/common's `TestParseDuration` (model/time_test.go):
    /// the text, its milliseconds, and how `model.Duration.String` prints it
    /// back (years and weeks only when exact, so `14d` is `2w` and
    /// `3w2d1h` is `23d1h`).
    #[test]
    fn known_answers() {
        for (text, ms, printed) in [
            ("0", 0, "0s"),
            ("0s", 0, "0s"),
            ("324ms", 324, "324ms"),
            ("3s", 3_000, "3s"),
            ("5m", 300_000, "5m"),
            ("1h", 3_600_000, "1h"),
            ("4d", 4 * 86_400_000, "4d"),
            ("4d1h", 4 * 86_400_000 + 3_600_000, "4d1h"),
            ("14d", 14 * 86_400_000, "2w"),
            ("3w", 21 * 86_400_000, "3w"),
            ("3w2d1h", 23 * 86_400_000 + 3_600_000, "23d1h"),
            ("10y", 10 * 365 * 86_400_000, "10y"),
        ] {
            assert_eq!(parse_ms(text), Ok(ms), "{text}");
            assert_eq!(format_duration_ms(ms), printed, "{text}");
        }
        assert_eq!(format_duration_ms(90_500), "1m30s500ms");
        assert_eq!(format_duration_ms(90_000), "1m30s");
        assert_eq!(format_duration_ms(15_000), "15s");
        assert_eq!(format_duration_ms(100), "100ms");
        assert_eq!(format_duration_ms(-300_000), "-5m");
        // Sloth's generated rules, written with prometheus/common, name
        // windows `30d` and `4w` (28 days); 90 days stays `90d`.
        assert_eq!(format_duration_ms(30 * 86_400_000), "30d");
        assert_eq!(format_duration_ms(28 * 86_400_000), "4w");
        assert_eq!(format_duration_ms(90 * 86_400_000), "90d");
        assert_eq!(format_duration_ms(366 * 86_400_000), "366d");
    }
}
