//! The `limits:` section: series limits against cardinality explosions
//! (`docs/limits.md`). Global values, and overrides per scrape job and
//! per remote-write sender keyed by name, so that `scrape_configs` stay
//! exactly as Prometheus reads them.
//!
//! ```yaml
//! limits:
//!   max_head_series: 2000000
//!   max_series_per_metric: 200000
//!   max_new_series_per_minute: 100000
//!   jobs:
//!     checkout: {max_head_series: 50000, max_new_series_per_minute: 5000}
//!   senders:
//!     team-a: {max_new_series_per_minute: 20000}
//! ```

use model::limits::{LimitsSpec, SeriesLimits};

use crate::ConfigError;
use crate::decode::Decoder;
use yaml::Node;

/// Decodes `limits:` into the spec the store takes.
pub fn decode(decoder: &Decoder, node: &Node, field: &str) -> Result<LimitsSpec, ConfigError> {
    let mut spec = LimitsSpec::default();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "jobs" | "senders" => {
                for entry in decoder.fields(f.value, &f.path)? {
                    if entry.name.is_empty() && f.name == "jobs" {
                        return Err(decoder.error(
                            entry.key.line,
                            &entry.path,
                            "a job name must not be empty",
                        ));
                    }
                    let mut limits = SeriesLimits::default();
                    for l in decoder.fields(entry.value, &entry.path)? {
                        if !set_limit(decoder, &mut limits, &l)? {
                            return Err(decoder.unknown(&l));
                        }
                    }
                    let map = if f.name == "jobs" {
                        &mut spec.jobs
                    } else {
                        &mut spec.senders
                    };
                    map.insert(entry.name.clone(), limits);
                }
            }
            _ => {
                if !set_limit(decoder, &mut spec.global, &f)? {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    Ok(spec)
}

/// Sets the limit `field` names; `false` when it names none.
fn set_limit(
    decoder: &Decoder,
    limits: &mut SeriesLimits,
    field: &crate::decode::Field<'_>,
) -> Result<bool, ConfigError> {
    let slot = match field.name.as_str() {
        "max_head_series" => &mut limits.max_head_series,
        "max_series_per_metric" => &mut limits.max_series_per_metric,
        "max_new_series_per_minute" => &mut limits.max_new_series_per_minute,
        _ => return Ok(false),
    };
    *slot = Some(decoder.unsigned(field.value, &field.path)?);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use model::limits::{LimitKind, WriteOrigin};

    fn parse(text: &str) -> Result<model::limits::LimitsSpec, String> {
        crate::parse("osprey.yml", text, None)
            .map(|c| c.limits)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn global_values_and_overrides() {
        let spec = parse(
            "limits:\n  max_head_series: 1000\n  max_new_series_per_minute: 50\n  jobs:\n    bomb:\n      max_head_series: 10\n  senders:\n    team-a: {max_series_per_metric: 7}\n",
        )
        .unwrap();
        assert_eq!(spec.global.max_head_series, Some(1000));
        let bomb = spec.for_origin(Some(&WriteOrigin::Job("bomb".into())));
        assert_eq!(bomb.get(LimitKind::NewSeriesPerMinute), 50);
        let team = spec.for_origin(Some(&WriteOrigin::Sender("team-a".into())));
        assert_eq!(team.get(LimitKind::SeriesPerMetric), 7);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        assert_eq!(
            parse("limits:\n  max_head_series: -1\n").unwrap_err(),
            "osprey.yml:2: limits.max_head_series: expected a non-negative integer, got -1"
        );
        let error = parse("limits:\n  jobs:\n    a:\n      max_samples: 3\n").unwrap_err();
        assert!(
            error.starts_with("osprey.yml:4: limits.jobs.a.max_samples:"),
            "{error}"
        );
        let error = parse("limits:\n  max_series: 3\n").unwrap_err();
        assert!(
            error.starts_with("osprey.yml:2: limits.max_series:"),
            "{error}"
        );
    }
}
