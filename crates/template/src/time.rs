//! Times and durations as templates see them: `Time` prints like Go's
//! `time.Time.String()` in UTC and formats with Go reference layouts
//! (`2006-01-02 15:04:05`); `Duration` prints like Go's `time.Duration`.

use crate::value::{Object, Value};
use std::fmt::Write as _;
use std::sync::Arc;

/// An instant in UTC, exposed to templates like Go's `time.Time`: prints as
/// `2006-01-02 15:04:05.999999999 +0000 UTC` and has the methods `Unix`,
/// `UnixMilli`, `UnixNano`, `UTC`, `Local`, `Format` and `String`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second, 0..1e9.
    pub nanos: u32,
}

impl Time {
    /// The time `secs` seconds plus `nanos` nanoseconds after the epoch.
    pub fn new(secs: i64, nanos: u32) -> Time {
        let secs = secs.saturating_add(i64::from(nanos / 1_000_000_000));
        Time {
            secs,
            nanos: nanos % 1_000_000_000,
        }
    }

    /// A template value holding this time.
    pub fn value(self) -> Value {
        Value::Object(Arc::new(self))
    }

    /// Formats with a Go reference layout (`Mon Jan 2 15:04:05 MST 2006`).
    pub fn format(&self, layout: &str) -> String {
        format_layout(*self, layout)
    }

    /// The current time from the system clock.
    pub fn now() -> Time {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Time::new(d.as_secs() as i64, d.subsec_nanos()),
            Err(_) => Time::new(0, 0),
        }
    }
}

impl Object for Time {
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let no_args = |v: Value| {
            if args.is_empty() {
                Ok(v)
            } else {
                Err(format!(
                    "wrong number of args for {name}: want 0 got {}",
                    args.len()
                ))
            }
        };
        Some(match name {
            "Unix" => no_args(Value::Int(self.secs)),
            "UnixMilli" => no_args(Value::Int(
                self.secs
                    .saturating_mul(1000)
                    .saturating_add(i64::from(self.nanos / 1_000_000)),
            )),
            "UnixNano" => no_args(Value::Int(
                self.secs
                    .saturating_mul(1_000_000_000)
                    .saturating_add(i64::from(self.nanos)),
            )),
            "UTC" | "Local" => no_args(self.value()),
            "String" => no_args(Value::Str(self.display())),
            "Format" => match args {
                [Value::Str(layout)] => Ok(Value::Str(self.format(layout))),
                _ => Err("Format wants one string argument".to_string()),
            },
            _ => return None,
        })
    }

    fn display(&self) -> String {
        let mut layout = String::from("2006-01-02 15:04:05");
        if self.nanos != 0 {
            layout.push_str(".999999999");
        }
        layout.push_str(" -0700 MST");
        self.format(&layout)
    }
}

/// A span of time, exposed like Go's `time.Duration` (prints `1h2m3.5s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration {
    pub nanos: i64,
}

impl Duration {
    /// A template value holding this duration.
    pub fn value(self) -> Value {
        Value::Object(Arc::new(self))
    }
}

impl Object for Duration {
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if !args.is_empty() {
            return None;
        }
        Some(Ok(match name {
            "Seconds" => Value::Float(self.nanos as f64 / 1e9),
            "Minutes" => Value::Float(self.nanos as f64 / 6e10),
            "Hours" => Value::Float(self.nanos as f64 / 3.6e12),
            "Milliseconds" => Value::Int(self.nanos / 1_000_000),
            "Nanoseconds" => Value::Int(self.nanos),
            "String" => Value::Str(duration_string(self.nanos)),
            _ => return None,
        }))
    }

    fn display(&self) -> String {
        duration_string(self.nanos)
    }
}

/// Go's `time.Duration.String()`.
pub fn duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let negative = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Sub-second: one unit with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
        return out;
    }
    let hours = u / 3_600_000_000_000;
    let minutes = (u / 60_000_000_000) % 60;
    let secs_nanos = u % 60_000_000_000;
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    out.push_str(&fraction(secs_nanos, 1_000_000_000));
    out.push('s');
    out
}

/// `value / scale` with the fraction's trailing zeros dropped.
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Appends one layout element's text.
type Writer<'a> = &'a dyn Fn(&mut String);

/// Formats `t` (UTC) with a Go reference layout.
fn format_layout(t: Time, layout: &str) -> String {
    let days = t.secs.div_euclid(86_400);
    let secs_of_day = t.secs.rem_euclid(86_400);
    let (year, month, day) = model::time::civil_from_days(days);
    let hour = secs_of_day / 3600;
    let minute = (secs_of_day / 60) % 60;
    let second = secs_of_day % 60;
    let month_name = MONTHS[(month as usize - 1) % 12];
    let day_name = DAYS[model::time::weekday(days) as usize];
    let year_day = model::time::day_of_year(days);
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        // Longest tokens first, as Go's nextStdChunk does.
        let tokens: &[(&str, Writer)] = &[
            ("January", &|o| o.push_str(month_name)),
            ("Jan", &|o| o.push_str(&month_name[..3])),
            ("Monday", &|o| o.push_str(day_name)),
            ("Mon", &|o| o.push_str(&day_name[..3])),
            ("MST", &|o| o.push_str("UTC")),
            ("2006", &|o| {
                let _ = write!(o, "{year:04}");
            }),
            ("-07:00:00", &|o| o.push_str("+00:00:00")),
            ("-0700", &|o| o.push_str("+0000")),
            ("-07:00", &|o| o.push_str("+00:00")),
            ("-07", &|o| o.push_str("+00")),
            ("Z07:00:00", &|o| o.push('Z')),
            ("Z07:00", &|o| o.push('Z')),
            ("Z0700", &|o| o.push('Z')),
            ("Z07", &|o| o.push('Z')),
            ("002", &|o| {
                let _ = write!(o, "{year_day:03}");
            }),
            ("01", &|o| {
                let _ = write!(o, "{month:02}");
            }),
            ("02", &|o| {
                let _ = write!(o, "{day:02}");
            }),
            ("_2", &|o| {
                let _ = write!(o, "{day:>2}");
            }),
            ("03", &|o| {
                let _ = write!(o, "{:02}", twelve(hour));
            }),
            ("04", &|o| {
                let _ = write!(o, "{minute:02}");
            }),
            ("05", &|o| {
                let _ = write!(o, "{second:02}");
            }),
            ("06", &|o| {
                let _ = write!(o, "{:02}", year.rem_euclid(100));
            }),
            ("15", &|o| {
                let _ = write!(o, "{hour:02}");
            }),
            ("PM", &|o| o.push_str(if hour >= 12 { "PM" } else { "AM" })),
            ("pm", &|o| o.push_str(if hour >= 12 { "pm" } else { "am" })),
            ("1", &|o| {
                let _ = write!(o, "{month}");
            }),
            ("2", &|o| {
                let _ = write!(o, "{day}");
            }),
            ("3", &|o| {
                let _ = write!(o, "{}", twelve(hour));
            }),
            ("4", &|o| {
                let _ = write!(o, "{minute}");
            }),
            ("5", &|o| {
                let _ = write!(o, "{second}");
            }),
        ];
        // Fractional seconds: `.000` / `,000` (fixed) or `.999` (trimmed),
        // only when not followed by another digit.
        let bytes = rest.as_bytes();
        if (bytes[0] == b'.' || bytes[0] == b',')
            && bytes.len() > 1
            && (bytes[1] == b'0' || bytes[1] == b'9')
        {
            let digit = bytes[1];
            let n = bytes[1..].iter().take_while(|&&b| b == digit).count();
            if !bytes.get(1 + n).is_some_and(u8::is_ascii_digit) {
                let n = n.min(9);
                let frac = format!("{:09}", t.nanos);
                let mut digits = frac[..n].to_string();
                if digit == b'9' {
                    digits = digits.trim_end_matches('0').to_string();
                    if !digits.is_empty() {
                        out.push(bytes[0] as char);
                        out.push_str(&digits);
                    }
                } else {
                    out.push(bytes[0] as char);
                    out.push_str(&digits);
                }
                rest = &rest[1 + n..];
                continue;
            }
        }
        if let Some((token, write)) = tokens.iter().find(|(token, _)| rest.starts_with(token)) {
            write(&mut out);
            rest = &rest[token.len()..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn twelve(hour: i64) -> i64 {
    match hour % 12 {
        0 => 12,
        h => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_prints_like_go() {
        assert_eq!(Time::new(0, 0).display(), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            Time::new(1_700_000_000, 500_000_000).display(),
            "2023-11-14 22:13:20.5 +0000 UTC"
        );
        assert_eq!(Time::new(-1, 0).display(), "1969-12-31 23:59:59 +0000 UTC");
        assert_eq!(
            Time::new(1_700_000_000, 0).format("Mon, 02 Jan 2006 3:04PM .000 002 _2 06"),
            "Tue, 14 Nov 2023 10:13PM .000 318 14 23"
        );
        assert_eq!(Time::new(951_782_400, 0).format("2006-01-02"), "2000-02-29");
    }

    #[test]
    fn durations_print_like_go() {
        for (nanos, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_500_000_000, "1.5s"),
            (3_723_000_000_000, "1h2m3s"),
            (60_000_000_000, "1m0s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(duration_string(nanos), want);
        }
    }
}
