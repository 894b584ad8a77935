//! Prometheus durations: `30d`, `1h30m`, `500ms`.

/// Parses a Prometheus duration into milliseconds: one or more
/// `<integer><unit>` terms with units `y`, `w`, `d`, `h`, `m`, `s`, `ms`
/// in that order, each at most once (`1y`, `2w3d`, `1h30m`, `0`).
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    let units: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || format!("not a valid duration: {s:?} (expected e.g. 30d, 12h, 1h30m, 500ms)");
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    if bytes.is_empty() {
        return Err(bad());
    }
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return Err(bad());
        }
        let n: i64 = s[start..pos].parse().map_err(|_| bad())?;
        let ustart = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &s[ustart..pos];
        let idx = units[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .map(|i| i + next_unit)
            .ok_or_else(bad)?;
        next_unit = idx + 1;
        total = n
            .checked_mul(units[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    Ok(total)
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
    }
}
