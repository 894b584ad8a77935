//! Request parameters as Prometheus reads them: the URL query merged with a
//! form-encoded POST body, timestamps as RFC 3339 or Unix seconds, limits,
//! and `match[]` selectors.

use model::Matcher;

use crate::ApiError;

/// The error for a `match[]` whose matchers all match the empty string.
const EMPTY_MATCHERS: &str =
    "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher";

/// The smallest timestamp Prometheus's API accepts, in milliseconds:
/// `time.Unix(math.MinInt64/1000+62135596801, 0)`.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;

/// The largest timestamp Prometheus's API accepts, in milliseconds:
/// `time.Unix(math.MaxInt64/1000-62135596801, 999999999)`.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;

/// How Go formats [`MIN_TIME_MS`] (clients send this literal string; Go
/// prints the year with its own negative-year convention, hence the day
/// that a proleptic calendar puts one later).
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";

/// How Go formats [`MAX_TIME_MS`].
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// All parameters of one request, in order, with repeats.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Collects the URL query and, when the body is form-encoded, the body
    /// (Prometheus's `r.Form`: body values come first, then the query's).
    pub fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Params {
        let mut pairs = Vec::new();
        if let Some(body) = form_body {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(query) = query {
            pairs.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    /// The first non-absent value of `name` (Go's `FormValue`); an empty
    /// value counts as absent, as in Prometheus.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Time parameter `name`, or `default` when absent. The message follows
    /// Prometheus's metadata endpoints.
    pub fn time_or(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(s) => parse_time(s)
                .map_err(|e| ApiError::bad_data(format!("invalid time value for '{name}': {e}"))),
        }
    }

    /// `start` and `end`, each defaulting to the whole range.
    pub fn time_range(&self) -> Result<(i64, i64), ApiError> {
        let start = self.time_or("start", MIN_TIME_MS)?;
        let end = self.time_or("end", MAX_TIME_MS)?;
        if end < start {
            return Err(ApiError::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        Ok((start, end))
    }

    /// `limit`: absent or 0 means no limit; negative or non-numeric is bad data.
    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        let Some(s) = self.get("limit") else {
            return Ok(None);
        };
        let n: i64 = s.parse().map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"limit\": cannot parse {s:?} to a valid integer"
            ))
        })?;
        if n < 0 {
            return Err(ApiError::bad_data(
                "invalid parameter \"limit\": limit must be non-negative",
            ));
        }
        Ok(usize::try_from(n).ok().filter(|&n| n > 0))
    }

    /// Every `match[]` parsed. `required` makes an absent `match[]` an
    /// error. Each set must have a matcher that rejects the empty string.
    pub fn matcher_sets(&self, required: bool) -> Result<Vec<Vec<Matcher>>, ApiError> {
        let raw = self.all("match[]");
        if raw.is_empty() && required {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let mut sets = Vec::with_capacity(raw.len());
        for s in raw {
            // The PromQL parser refuses a selector whose matchers all match
            // the empty string; Prometheus's API parses it and then refuses
            // it with its own message, which clients see.
            let matchers = promql::parse_series_selector(s).map_err(|e| {
                let message = e.to_string();
                if message.contains("at least one non-empty matcher") {
                    ApiError::bad_data(EMPTY_MATCHERS)
                } else {
                    ApiError::bad_data(format!("invalid parameter \"match[]\": {message}"))
                }
            })?;
            if matchers.iter().all(Matcher::matches_empty) {
                return Err(ApiError::bad_data(EMPTY_MATCHERS));
            }
            sets.push(matchers);
        }
        Ok(sets)
    }
}

/// Encodes parameters as a form body (`application/x-www-form-urlencoded`),
/// what [`Params::parse`] reads back.
pub fn encode_form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

/// Parses a timestamp as Prometheus does: Unix seconds as a float (rounded
/// to milliseconds), RFC 3339 with optional fraction and offset, or the two
/// sentinel strings for the minimum and maximum time. Returns milliseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {s:?} to a valid timestamp");
    if let Some(ms) = parse_unix_seconds(s) {
        return ms.ok_or_else(cannot);
    }
    if let Some(ms) = parse_rfc3339_ms(s) {
        return Ok(ms);
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(cannot()),
    }
}

/// `None` when `s` is not a number at all; `Some(None)` when it is a number
/// that is no time (NaN, infinite).
fn parse_unix_seconds(s: &str) -> Option<Option<i64>> {
    // Go's ParseFloat accepts what Rust's does, minus Rust's lone "inf"
    // spelled words being equally accepted; both reject empty strings.
    let is_numeric = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    let seconds: f64 = if is_numeric {
        s.parse().ok()?
    } else {
        let lower = s.to_ascii_lowercase();
        let unsigned = lower.trim_start_matches(['+', '-']);
        if matches!(unsigned, "inf" | "infinity" | "nan") {
            return Some(None);
        }
        return None;
    };
    if !seconds.is_finite() {
        return Some(None);
    }
    let whole = seconds.trunc();
    let fraction_ms = ((seconds - whole) * 1000.0).round();
    let ms = whole * 1000.0 + fraction_ms;
    Some(Some(if ms <= MIN_TIME_MS as f64 {
        MIN_TIME_MS
    } else if ms >= MAX_TIME_MS as f64 {
        MAX_TIME_MS
    } else {
        // Exact for the values that matter: whole seconds times 1000 plus a
        // rounded millisecond count are integers well inside i64.
        ms as i64
    }))
}

/// RFC 3339 as Go's `time.Parse(time.RFC3339Nano, s)` reads it, in
/// milliseconds (sub-millisecond digits truncated, as Prometheus's
/// `timestamp.FromTime` does).
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    model::time::parse_rfc3339_ms(s, model::time::Rfc3339Grammar::Go)
}

/// A duration parameter (`step`, `timeout`) in milliseconds: Unix-style
/// float seconds (`15`, `0.5`) or a Prometheus duration (`15s`, `1m30s`).
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {s:?} to a valid duration");
    if let Ok(secs) = s.parse::<f64>() {
        let ms = secs * 1000.0;
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 / 2.0 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms.round() as i64);
    }
    model::duration::parse_duration_ms(s).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_time_forms() {
        let cases: &[(&str, Result<i64, ()>)] = &[
            ("1562529662", Ok(1_562_529_662_000)),
            ("1562529662.324", Ok(1_562_529_662_324)),
            ("-1.5", Ok(-1500)),
            ("1e3", Ok(1_000_000)),
            ("2019-07-07T20:01:02Z", Ok(1_562_529_662_000)),
            ("2019-07-07T20:47:40+03:00", Ok(1_562_521_660_000)),
            ("2019-07-07T20:01:02.123456789Z", Ok(1_562_529_662_123)),
            ("1970-01-01T00:00:00Z", Ok(0)),
            ("2000-02-29T00:00:00Z", Ok(951_782_400_000)),
            ("-292273086-05-16T16:47:06Z", Ok(MIN_TIME_MS)),
            ("292277025-08-18T07:12:54.999999999Z", Ok(MAX_TIME_MS)),
            ("x", Err(())),
            ("", Err(())),
            ("NaN", Err(())),
            ("+Inf", Err(())),
            ("2019-02-29T00:00:00Z", Err(())),
            ("2019-07-07 20:01:02Z", Err(())),
            ("2019-07-07T20:01:02", Err(())),
            ("2019-07-07T20:01:02.Z", Err(())),
        ];
        for (input, want) in cases {
            let got = parse_time(input).map_err(|_| ());
            assert_eq!(&got, want, "input {input:?}");
        }
        assert_eq!(
            parse_time("x").unwrap_err(),
            "cannot parse \"x\" to a valid timestamp"
        );
    }

    #[test]
    fn params_merge_body_and_query_and_keep_repeats() {
        let p = Params::parse(
            Some("match[]=a&limit=5&start="),
            Some(b"match[]=b%7Bjob%3D%22x%22%7D"),
        );
        assert_eq!(p.all("match[]"), vec!["b{job=\"x\"}", "a"]);
        assert_eq!(p.limit().unwrap(), Some(5));
        assert_eq!(p.get("start"), None);
        assert!(Params::parse(Some("limit=-1"), None).limit().is_err());
        assert!(Params::parse(Some("limit=x"), None).limit().is_err());
        assert_eq!(Params::parse(Some("limit=0"), None).limit().unwrap(), None);
    }
}
