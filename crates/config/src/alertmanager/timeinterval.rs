//! Time intervals (`time_intervals`, `mute_time_intervals`,
//! `active_time_intervals`) with Alertmanager's semantics.
//!
//! An interval holds when every field it sets holds: the clock time is in
//! one of `times` (start inclusive, end exclusive, minutes of the day), the
//! weekday, day of month (negative counts from the month's end), month and
//! year are in one of their ranges. All of them are read in the interval's
//! `location`: UTC by default, `Local`, or an IANA zone read from the
//! system's zoneinfo files (TZif), as Go's `time.LoadLocation` does.

use std::sync::Arc;

/// One entry of a named interval's `time_intervals` list.
#[derive(Clone, Debug, Default)]
pub struct TimeInterval {
    /// `(start, end)` minutes of the day, end exclusive, up to 1440.
    pub times: Vec<(u32, u32)>,
    /// Inclusive ranges, 0 = Sunday.
    pub weekdays: Vec<(u32, u32)>,
    /// Inclusive ranges; negative values count from the month's end.
    pub days_of_month: Vec<(i32, i32)>,
    /// Inclusive ranges, 1 = January.
    pub months: Vec<(u32, u32)>,
    pub years: Vec<(i32, i32)>,
    pub location: Location,
}

/// A time zone: a fixed list of UTC offset changes.
#[derive(Clone, Debug, Default)]
pub struct Location {
    name: String,
    /// `(transition time in Unix seconds, UTC offset in seconds)`, sorted.
    transitions: Arc<[(i64, i32)]>,
    /// The offset before the first transition (0 for UTC).
    initial_offset: i32,
}

impl Location {
    /// `""` and `UTC` are UTC; `Local` is the system zone; anything else
    /// is a zoneinfo name such as `Europe/Berlin`.
    pub fn load(name: &str) -> Result<Location, String> {
        if name.is_empty() || name == "UTC" {
            return Ok(Location {
                name: "UTC".to_string(),
                ..Location::default()
            });
        }
        let path = if name == "Local" {
            std::path::PathBuf::from("/etc/localtime")
        } else {
            if name.starts_with('/') || name.split('/').any(|part| part == "..") {
                return Err(format!("unknown time zone {name}"));
            }
            let directory = std::env::var_os("ZONEINFO")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::path::PathBuf::from("/usr/share/zoneinfo"));
            directory.join(name)
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(_) if name == "Local" => return Location::load("UTC"),
            Err(_) => return Err(format!("unknown time zone {name}")),
        };
        let (transitions, initial_offset) =
            parse_tzif(&bytes).ok_or_else(|| format!("invalid time zone file for {name}"))?;
        Ok(Location {
            name: name.to_string(),
            transitions: transitions.into(),
            initial_offset,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The UTC offset in seconds at a Unix time.
    pub fn offset_at(&self, unix_seconds: i64) -> i32 {
        let index = self
            .transitions
            .partition_point(|&(at, _)| at <= unix_seconds);
        match index.checked_sub(1).and_then(|i| self.transitions.get(i)) {
            Some(&(_, offset)) => offset,
            None => self.initial_offset,
        }
    }
}

/// Reads the transitions of a TZif file (version 1, or the 64-bit data of
/// version 2 and later). Times past the last transition keep its offset.
fn parse_tzif(bytes: &[u8]) -> Option<(Vec<(i64, i32)>, i32)> {
    let header = |data: &[u8]| -> Option<[usize; 6]> {
        if data.get(..4)? != b"TZif" {
            return None;
        }
        let mut counts = [0usize; 6];
        for (index, count) in counts.iter_mut().enumerate() {
            let start = 20 + index * 4;
            let raw: [u8; 4] = data.get(start..start + 4)?.try_into().ok()?;
            *count = u32::from_be_bytes(raw) as usize;
        }
        Some(counts)
    };
    let [isut, isstd, leap, time_count, type_count, char_count] = header(bytes)?;
    let version = *bytes.get(4)?;
    let v1_length = time_count * 5 + type_count * 6 + char_count + leap * 8 + isstd + isut;
    let (data, time_size, counts) = if version >= b'2' {
        let second = bytes.get(44 + v1_length..)?;
        (second.get(44..)?, 8, header(second)?)
    } else {
        (
            bytes.get(44..)?,
            4,
            [isut, isstd, leap, time_count, type_count, char_count],
        )
    };
    let [_, _, _, time_count, type_count, _] = counts;
    let times_end = time_count * time_size;
    let indices = data.get(times_end..times_end + time_count)?;
    let types_start = times_end + time_count;
    let mut offsets = Vec::with_capacity(type_count);
    let mut first_standard = None;
    for index in 0..type_count {
        let entry = data.get(types_start + index * 6..types_start + index * 6 + 6)?;
        let offset = i32::from_be_bytes(entry.get(..4)?.try_into().ok()?);
        if first_standard.is_none() && entry.get(4) == Some(&0) {
            first_standard = Some(offset);
        }
        offsets.push(offset);
    }
    let mut transitions = Vec::with_capacity(time_count);
    for index in 0..time_count {
        let raw = data.get(index * time_size..(index + 1) * time_size)?;
        let at = if time_size == 8 {
            i64::from_be_bytes(raw.try_into().ok()?)
        } else {
            i64::from(i32::from_be_bytes(raw.try_into().ok()?))
        };
        let offset = *offsets.get(usize::from(*indices.get(index)?))?;
        transitions.push((at, offset));
    }
    let initial = first_standard
        .or_else(|| offsets.first().copied())
        .unwrap_or(0);
    Some((transitions, initial))
}

impl TimeInterval {
    /// Whether the interval holds at a Unix time in milliseconds.
    pub fn contains(&self, unix_ms: i64) -> bool {
        let seconds = unix_ms.div_euclid(1000);
        let local = seconds + i64::from(self.location.offset_at(seconds));
        let days = local.div_euclid(86_400);
        let minute_of_day = (local.rem_euclid(86_400) / 60) as u32;
        let (full_year, month, day) = model::time::civil_from_days(days);
        let year = i32::try_from(full_year).unwrap_or(i32::MAX);
        let (month, day) = (month as i32, day as i32);
        let weekday = model::time::weekday(days);
        if !self.times.is_empty()
            && !self
                .times
                .iter()
                .any(|&(start, end)| minute_of_day >= start && minute_of_day < end)
        {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let month_days = model::time::days_in_month(full_year, month as u32) as i32;
            let found = self.days_of_month.iter().any(|&(begin, end)| {
                let begin = if begin < 0 {
                    month_days + begin + 1
                } else {
                    begin
                };
                let end = if end < 0 { month_days + end + 1 } else { end };
                if begin > month_days {
                    return false;
                }
                let begin = begin.clamp(-month_days, month_days);
                let end = end.clamp(-month_days, month_days);
                day >= begin && day <= end
            });
            if !found {
                return false;
            }
        }
        if !self.months.is_empty()
            && !self
                .months
                .iter()
                .any(|&(begin, end)| month as u32 >= begin && month as u32 <= end)
        {
            return false;
        }
        if !self.weekdays.is_empty()
            && !self
                .weekdays
                .iter()
                .any(|&(begin, end)| weekday >= begin && weekday <= end)
        {
            return false;
        }
        if !self.years.is_empty()
            && !self
                .years
                .iter()
                .any(|&(begin, end)| year >= begin && year <= end)
        {
            return false;
        }
        true
    }
}

/// Whether any interval of a named list holds.
pub fn any_contains(intervals: &[TimeInterval], unix_ms: i64) -> bool {
    intervals.iter().any(|interval| interval.contains(unix_ms))
}

/// `HH:MM` (00:00 to 24:00) as minutes of the day.
pub fn parse_clock(text: &str) -> Result<u32, String> {
    let bad = || format!("couldn't parse timestamp {text}, invalid format");
    let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(bad());
    }
    let hours: u32 = hours.parse().map_err(|_| bad())?;
    let minutes: u32 = minutes.parse().map_err(|_| bad())?;
    if minutes > 59 || hours > 24 || (hours == 24 && minutes != 0) {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `begin:end` or a single value, each part read by `one`.
fn range<T: Copy>(text: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<(T, T), String> {
    match text.split_once(':') {
        Some((begin, end)) => Ok((one(begin)?, one(end)?)),
        None => {
            let value = one(text)?;
            Ok((value, value))
        }
    }
}

pub fn parse_weekday_range(text: &str) -> Result<(u32, u32), String> {
    let (begin, end) = range(text, |part| {
        let lower = part.trim().to_lowercase();
        WEEKDAYS
            .iter()
            .position(|name| *name == lower)
            .map(|index| index as u32)
            .ok_or_else(|| format!("{part} is not a valid weekday"))
    })?;
    if begin > end {
        return Err("start day cannot be before end day".to_string());
    }
    Ok((begin, end))
}

pub fn parse_month_range(text: &str) -> Result<(u32, u32), String> {
    let (begin, end) = range(text, |part| {
        let lower = part.trim().to_lowercase();
        if let Some(index) = MONTHS.iter().position(|name| *name == lower) {
            return Ok(index as u32 + 1);
        }
        match lower.parse::<u32>() {
            Ok(number) if (1..=12).contains(&number) => Ok(number),
            _ => Err(format!("{part} is not a valid month")),
        }
    })?;
    if begin > end {
        return Err("end month must be after start month".to_string());
    }
    Ok((begin, end))
}

pub fn parse_day_of_month_range(text: &str) -> Result<(i32, i32), String> {
    let (begin, end) = range(text, |part| match part.trim().parse::<i32>() {
        Ok(day) if day != 0 && (-31..=31).contains(&day) => Ok(day),
        Ok(day) => Err(format!(
            "{day} is not a valid day of the month: out of range"
        )),
        Err(_) => Err(format!("{part} is not a valid day of the month")),
    })?;
    if (begin > 0 && end > 0 || begin < 0 && end < 0) && begin > end {
        return Err("end day must be greater than start day".to_string());
    }
    if begin < 0 && end > 0 {
        return Err("end day must be negative if start day is negative".to_string());
    }
    Ok((begin, end))
}

pub fn parse_year_range(text: &str) -> Result<(i32, i32), String> {
    let (begin, end) = range(text, |part| match part.trim().parse::<i32>() {
        Ok(year) if year > 0 => Ok(year),
        _ => Err(format!("{part} is not a valid year")),
    })?;
    if begin > end {
        return Err("end year must be equal or greater than start year".to_string());
    }
    Ok((begin, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix milliseconds of a UTC date and time.
    fn utc(year: i32, month: i32, day: i32, hour: i64, minute: i64) -> i64 {
        let days = model::time::days_from_civil(i64::from(year), month as u32, day as u32);
        (days * 86_400 + hour * 3600 + minute * 60) * 1000
    }

    #[test]
    fn business_hours() {
        let interval = TimeInterval {
            times: vec![(parse_clock("09:00").unwrap(), parse_clock("17:00").unwrap())],
            weekdays: vec![parse_weekday_range("monday:friday").unwrap()],
            ..TimeInterval::default()
        };
        // 2026-11-20 is a Friday, 2026-11-21 a Saturday.
        assert!(interval.contains(utc(2026, 11, 20, 9, 0)));
        assert!(interval.contains(utc(2026, 11, 20, 16, 59)));
        assert!(!interval.contains(utc(2026, 11, 20, 17, 0)));
        assert!(!interval.contains(utc(2026, 11, 21, 12, 0)));
    }

    #[test]
    fn days_from_the_end_of_the_month() {
        let interval = TimeInterval {
            days_of_month: vec![parse_day_of_month_range("-1").unwrap()],
            months: vec![parse_month_range("february").unwrap()],
            years: vec![parse_year_range("2024:2025").unwrap()],
            ..TimeInterval::default()
        };
        assert!(interval.contains(utc(2024, 2, 29, 12, 0)));
        assert!(!interval.contains(utc(2024, 2, 28, 12, 0)));
        assert!(interval.contains(utc(2025, 2, 28, 12, 0)));
        assert!(!interval.contains(utc(2026, 2, 28, 12, 0)));
    }

    #[test]
    fn bad_values() {
        assert!(parse_clock("25:00").is_err());
        assert!(parse_clock("9:00").is_err());
        assert_eq!(parse_clock("24:00"), Ok(1440));
        assert!(parse_weekday_range("friday:monday").is_err());
        assert!(parse_weekday_range("funday").is_err());
        assert!(parse_day_of_month_range("0").is_err());
        assert!(parse_month_range("13").is_err());
        assert!(Location::load("No/Such_Zone").is_err());
    }

    #[test]
    fn zones_from_zoneinfo() {
        let Ok(berlin) = Location::load("Europe/Berlin") else {
            eprintln!("skipping: no zoneinfo for Europe/Berlin on this machine");
            return;
        };
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(berlin.offset_at(utc(2026, 1, 15, 12, 0) / 1000), 3600);
        assert_eq!(berlin.offset_at(utc(2026, 7, 15, 12, 0) / 1000), 7200);
        let interval = TimeInterval {
            times: vec![(9 * 60, 10 * 60)],
            location: berlin,
            ..TimeInterval::default()
        };
        assert!(interval.contains(utc(2026, 7, 15, 7, 30)));
        assert!(!interval.contains(utc(2026, 7, 15, 9, 30)));
    }
}
