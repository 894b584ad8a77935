//! The `slos:` section: which SLO spec files the server loads, and the
//! defaults for what a spec does not say.
//!
//! ```yaml
//! slos:
//!   files: [slos/*.yml]      # paths and globs, like rule_files
//!   default_period: 30d      # specs that name no period (Sloth's --default-slo-period)
//!   budget_method: time      # time (like Sloth) or events (like Pyrra)
//! ```
//!
//! A plain list (`slos: [slos/*.yml]`) is the `files` list alone. The
//! spec files themselves are read by the `slo` crate, through the same
//! [`Decoder`]; the types a spec and this section share ([`Period`],
//! [`BudgetMethod`]) and their decoding live here so that both read them
//! the same way.

use std::path::PathBuf;

use model::duration::parse_ms;
use yaml::{Node, NodeValue};

use crate::ConfigError;
use crate::decode::Decoder;

/// The period an SLO's objective and error budget are measured over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// The last `ms` milliseconds, always (`30d`, `28d`, `7d`, `90d`).
    Rolling { ms: i64 },
    /// The current calendar month, in UTC.
    Month,
    /// The current calendar quarter (January, April, July, October), in UTC.
    Quarter,
}

impl Period {
    /// The period's nominal length: its own for rolling periods, 30 days
    /// for a month and 90 for a quarter (the lengths alert windows are
    /// scaled by; budgets use the real length of the month or quarter).
    pub fn nominal_ms(&self) -> i64 {
        match self {
            Period::Rolling { ms } => *ms,
            Period::Month => 30 * DAY_MS,
            Period::Quarter => 90 * DAY_MS,
        }
    }

    /// Longest the period can be: the range its queries read.
    pub fn max_ms(&self) -> i64 {
        match self {
            Period::Rolling { ms } => *ms,
            Period::Month => 31 * DAY_MS,
            Period::Quarter => 92 * DAY_MS,
        }
    }

    /// How the period is written: `30d`, `month`, `quarter`.
    pub fn text(&self) -> String {
        match self {
            Period::Rolling { ms } => model::duration::format_duration_ms(*ms),
            Period::Month => "month".to_string(),
            Period::Quarter => "quarter".to_string(),
        }
    }

    pub fn is_calendar(&self) -> bool {
        !matches!(self, Period::Rolling { .. })
    }
}

const DAY_MS: i64 = 86_400_000;

/// The shortest period accepted: the longest alert window (3 days) must
/// fit in it.
pub const MIN_PERIOD_MS: i64 = 3 * DAY_MS;

/// How the error budget remaining is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetMethod {
    /// The time average of the error ratio over the period, as Sloth
    /// computes `slo:period_error_budget_remaining:ratio`: every
    /// evaluation weighs the same, busy or quiet.
    Time,
    /// Errors over events in the period, as Pyrra computes it: every
    /// event weighs the same. Needs an SLI with event counts.
    Events,
}

impl BudgetMethod {
    pub fn text(&self) -> &'static str {
        match self {
            BudgetMethod::Time => "time",
            BudgetMethod::Events => "events",
        }
    }
}

/// The `slos:` section, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct SlosConfig {
    /// File patterns, relative ones joined to the config's directory; see
    /// [`SlosConfig::files`].
    pub file_patterns: Vec<String>,
    /// The period of SLOs whose spec names none; 30 days.
    pub default_period: Period,
    /// The budget method of SLOs whose spec names none; `time`.
    pub budget_method: BudgetMethod,
}

impl Default for SlosConfig {
    fn default() -> SlosConfig {
        SlosConfig {
            file_patterns: Vec::new(),
            default_period: Period::Rolling { ms: 30 * DAY_MS },
            budget_method: BudgetMethod::Time,
        }
    }
}

impl SlosConfig {
    /// The files the patterns name now, sorted, without duplicates.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for pattern in &self.file_patterns {
            crate::glob::expand_glob(pattern, &mut files);
        }
        files.sort();
        files.dedup();
        files
    }
}

/// Decodes the `slos:` section.
pub fn decode(decoder: &Decoder, node: &Node, field: &str) -> Result<SlosConfig, ConfigError> {
    let mut config = SlosConfig::default();
    if let NodeValue::Sequence(_) = node.value {
        config.file_patterns = file_patterns(decoder, node, field)?;
        return Ok(config);
    }
    for entry in decoder.fields(node, field)? {
        match entry.name.as_str() {
            "files" => config.file_patterns = file_patterns(decoder, entry.value, &entry.path)?,
            "default_period" => {
                config.default_period = decode_period(decoder, entry.value, &entry.path)?
            }
            "budget_method" => {
                config.budget_method = decode_budget_method(decoder, entry.value, &entry.path)?
            }
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    Ok(config)
}

fn file_patterns(decoder: &Decoder, node: &Node, field: &str) -> Result<Vec<String>, ConfigError> {
    let mut patterns = Vec::new();
    for (index, (pattern, line)) in decoder
        .string_list_with_lines(node, field)?
        .into_iter()
        .enumerate()
    {
        if pattern.is_empty() {
            return Err(decoder.error(line, &format!("{field}[{index}]"), "empty file pattern"));
        }
        patterns.push(decoder.resolve(&pattern));
    }
    Ok(patterns)
}

/// A period: a Prometheus duration of at least three days (`30d`, `4w`),
/// `month` or `quarter`.
pub fn decode_period(decoder: &Decoder, node: &Node, field: &str) -> Result<Period, ConfigError> {
    let text = decoder.string(node, field)?;
    match text.as_str() {
        "month" => return Ok(Period::Month),
        "quarter" => return Ok(Period::Quarter),
        _ => {}
    }
    let ms = parse_ms(&text).map_err(|_| {
        decoder.error(
            node.line,
            field,
            format!("not a period: {text:?} (a duration such as 30d, or month, or quarter)"),
        )
    })?;
    check_rolling_period(ms).map_err(|message| decoder.error(node.line, field, message))?;
    Ok(Period::Rolling { ms })
}

/// Whether `ms` can be a rolling period: whole minutes, at least
/// [`MIN_PERIOD_MS`].
pub fn check_rolling_period(ms: i64) -> Result<(), String> {
    if ms < MIN_PERIOD_MS {
        return Err(format!(
            "the period {} is shorter than the longest alert window (3d)",
            model::duration::format_duration_ms(ms)
        ));
    }
    if ms % 60_000 != 0 {
        return Err("a period must be whole minutes".to_string());
    }
    Ok(())
}

/// `time` or `events`.
pub fn decode_budget_method(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<BudgetMethod, ConfigError> {
    match decoder.string(node, field)?.as_str() {
        "time" => Ok(BudgetMethod::Time),
        "events" => Ok(BudgetMethod::Events),
        other => Err(decoder.error(
            node.line,
            field,
            format!("unknown budget method {other:?} (time or events)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn section(text: &str) -> Result<SlosConfig, ConfigError> {
        let root = yaml::parse_document(text).unwrap();
        let decoder = Decoder::new("osprey.yml", Some(Path::new("/etc/osprey")));
        let fields = decoder.fields(&root, "").unwrap();
        decode(&decoder, fields[0].value, &fields[0].path)
    }

    #[test]
    fn a_list_is_the_files() {
        let config = section("slos: [a.yml, /abs/*.yml]\n").unwrap();
        assert_eq!(
            config.file_patterns,
            vec!["/etc/osprey/a.yml", "/abs/*.yml"]
        );
        assert_eq!(config.default_period, Period::Rolling { ms: 30 * DAY_MS });
        assert_eq!(config.budget_method, BudgetMethod::Time);
    }

    #[test]
    fn the_mapping_form_sets_defaults() {
        let config = section(
            "slos:\n  files: [s.yml]\n  default_period: quarter\n  budget_method: events\n",
        )
        .unwrap();
        assert_eq!(config.default_period, Period::Quarter);
        assert_eq!(config.budget_method, BudgetMethod::Events);
        let config = section("slos:\n  default_period: 4w\n").unwrap();
        assert_eq!(config.default_period, Period::Rolling { ms: 28 * DAY_MS });
    }

    #[test]
    fn mistakes_name_line_and_field() {
        let error = section("slos:\n  files: [s.yml]\n  default_period: 1h\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "osprey.yml:3: slos.default_period: the period 1h is shorter than the longest alert window (3d)"
        );
        let error = section("slos:\n  budget_method: requests\n").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("osprey.yml:2: slos.budget_method: unknown budget method")
        );
        let error = section("slos:\n  filez: []\n").unwrap_err();
        assert_eq!(error.to_string(), "osprey.yml:2: slos.filez: unknown field");
        let error = section("slos:\n  default_period: monthly\n").unwrap_err();
        assert!(error.to_string().contains("not a period"), "{error}");
    }
}
