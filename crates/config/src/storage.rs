//! The `storage:` section: osprey's per-series retention
//! (`retention_rules`), resolution tiers (`tiers`, downsampling) and
//! Prometheus's `exemplars` (`max_exemplars`). Prometheus's own
//! `storage.tsdb` settings are refused with what to use instead.

use model::matcher::{MatchOp, Matcher};

use crate::ConfigError;
use crate::decode::Decoder;
use yaml::Node;

/// `storage:`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// In order: the first rule whose selector matches a series gives its
    /// retention; series no rule matches keep the global one.
    pub retention_rules: Vec<RetentionRule>,
    /// `exemplars.max_exemplars`: how many exemplars the in-memory store
    /// holds, of all series together; 0 keeps none.
    pub max_exemplars: u64,
    /// Resolution tiers, finest first; empty when not configured. When
    /// given, the first is always raw.
    pub tiers: Vec<Tier>,
}

/// Prometheus's default `storage.exemplars.max_exemplars`.
pub const DEFAULT_MAX_EXEMPLARS: u64 = 100_000;

/// The largest `max_exemplars` accepted: about 10 GB of memory at
/// Prometheus's estimate of 95 bytes an exemplar, so a mistyped size
/// fails the load instead of the server.
pub const MAX_MAX_EXEMPLARS: u64 = 100_000_000;

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            retention_rules: Vec::new(),
            max_exemplars: DEFAULT_MAX_EXEMPLARS,
            tiers: Vec::new(),
        }
    }
}

/// One `tiers` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Window length in milliseconds; 0 for raw samples.
    pub resolution_ms: i64,
    /// How long this tier keeps data, back from the newest sample.
    pub retention_ms: i64,
}

/// One `retention_rules` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionRule {
    /// The selector as written, for messages.
    pub selector: String,
    pub matchers: Vec<Matcher>,
    pub retention_ms: i64,
}

pub fn decode(decoder: &Decoder, node: &Node, field: &str) -> Result<StorageConfig, ConfigError> {
    let mut config = StorageConfig::default();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "retention_rules" => {
                for (index, item) in decoder.sequence(f.value, &f.path)?.iter().enumerate() {
                    let path = format!("{}[{index}]", f.path);
                    config.retention_rules.push(rule(decoder, item, &path)?);
                }
            }
            "tiers" => {
                let items = decoder.sequence(f.value, &f.path)?;
                for (index, item) in items.iter().enumerate() {
                    let path = format!("{}[{index}]", f.path);
                    let t = tier(decoder, item, &path)?;
                    check_tier(decoder, &config.tiers, &t, item.line, &path)?;
                    config.tiers.push(t);
                }
                if items.is_empty() {
                    return Err(decoder.error(
                        f.value.line,
                        &f.path,
                        "must list at least the raw tier",
                    ));
                }
            }
            "exemplars" => {
                for e in decoder.fields(f.value, &f.path)? {
                    match e.name.as_str() {
                        "max_exemplars" => {
                            let n = decoder.unsigned(e.value, &e.path)?;
                            if n > MAX_MAX_EXEMPLARS {
                                return Err(decoder.error(
                                    e.value.line,
                                    &e.path,
                                    format!("{n} is more than the {MAX_MAX_EXEMPLARS} allowed"),
                                ));
                            }
                            config.max_exemplars = n;
                        }
                        _ => return Err(decoder.unknown(&e)),
                    }
                }
            }
            "tsdb" => {
                return Err(decoder.unsupported(
                    &f,
                    "Prometheus's storage settings (use --retention.time and --retention.size)",
                ));
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(config)
}

/// The smallest resolution a downsampled tier may have: below a minute a
/// window holds a few samples at most and saves nothing.
pub const MIN_TIER_RESOLUTION_MS: i64 = 60_000;

fn tier(decoder: &Decoder, node: &Node, field: &str) -> Result<Tier, ConfigError> {
    let mut resolution_ms = None;
    let mut retention_ms = None;
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "resolution" => {
                let text = decoder.string(f.value, &f.path)?;
                resolution_ms = Some(if text == "raw" {
                    0
                } else {
                    let ms = decoder.positive_duration(f.value, &f.path)?;
                    if ms < MIN_TIER_RESOLUTION_MS {
                        return Err(decoder.error(
                            f.value.line,
                            &f.path,
                            format!(
                                "a downsampled tier's resolution must be at least 1m, got {text}"
                            ),
                        ));
                    }
                    ms
                });
            }
            "retention" => retention_ms = Some(decoder.positive_duration(f.value, &f.path)?),
            _ => return Err(decoder.unknown(&f)),
        }
    }
    let Some(resolution_ms) = resolution_ms else {
        return Err(decoder.error(node.line, &format!("{field}.resolution"), "missing"));
    };
    let Some(retention_ms) = retention_ms else {
        return Err(decoder.error(node.line, &format!("{field}.retention"), "missing"));
    };
    Ok(Tier {
        resolution_ms,
        retention_ms,
    })
}

/// Checks `t` against the tiers before it: raw first, resolutions
/// increasing, each a whole multiple of the one before (so a coarser tier
/// can be built from the finer one exactly), retentions not decreasing.
fn check_tier(
    decoder: &Decoder,
    before: &[Tier],
    t: &Tier,
    line: u64,
    field: &str,
) -> Result<(), ConfigError> {
    let resolution = format!("{field}.resolution");
    let Some(prev) = before.last() else {
        if t.resolution_ms != 0 {
            return Err(decoder.error(line, &resolution, "the first tier must be raw"));
        }
        return Ok(());
    };
    if t.resolution_ms == 0 {
        return Err(decoder.error(line, &resolution, "only the first tier may be raw"));
    }
    if t.resolution_ms <= prev.resolution_ms {
        return Err(decoder.error(
            line,
            &resolution,
            "resolutions must increase from one tier to the next",
        ));
    }
    if prev.resolution_ms > 0 && t.resolution_ms % prev.resolution_ms != 0 {
        return Err(decoder.error(
            line,
            &resolution,
            format!(
                "must be a whole multiple of the previous tier's resolution ({}ms), so it can be built from it",
                prev.resolution_ms
            ),
        ));
    }
    if t.retention_ms < prev.retention_ms {
        return Err(decoder.error(
            line,
            &format!("{field}.retention"),
            "a coarser tier must keep data at least as long as the finer one before it",
        ));
    }
    Ok(())
}

fn rule(decoder: &Decoder, node: &Node, field: &str) -> Result<RetentionRule, ConfigError> {
    let mut selector = None;
    let mut retention_ms = None;
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "selector" => {
                let text = decoder.string(f.value, &f.path)?;
                let matchers =
                    parse_selector(&text).map_err(|e| decoder.error(f.value.line, &f.path, e))?;
                selector = Some((text, matchers));
            }
            "retention" => retention_ms = Some(decoder.positive_duration(f.value, &f.path)?),
            _ => return Err(decoder.unknown(&f)),
        }
    }
    let Some((selector, matchers)) = selector else {
        return Err(decoder.error(node.line, &format!("{field}.selector"), "missing"));
    };
    let Some(retention_ms) = retention_ms else {
        return Err(decoder.error(node.line, &format!("{field}.retention"), "missing"));
    };
    Ok(RetentionRule {
        selector,
        matchers,
        retention_ms,
    })
}

/// A series selector: an optional metric name, then optionally matchers in
/// braces (`debug_requests_total`, `{team="ml", __name__=~"debug_.*"}`,
/// `up{job="x"}`). At least one matcher must not match the empty string,
/// as in PromQL, so a rule cannot select every series by accident.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, String> {
    let text = text.trim();
    let name_end = text
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
        })
        .map_or(text.len(), |(i, _)| i);
    let (name, rest) = text.split_at(name_end);
    let rest = rest.trim();
    let mut matchers = Vec::new();
    if !name.is_empty() {
        matchers.push(Matcher::equal("__name__", name));
    }
    if !rest.is_empty() {
        if !(rest.starts_with('{') && rest.ends_with('}')) {
            return Err(format!(
                "invalid selector {text:?}: expected name{{matchers}}"
            ));
        }
        let inner = &rest[1..rest.len() - 1];
        if !inner.trim().is_empty() {
            matchers.extend(
                crate::alertmanager::matchers::parse_matchers(inner)
                    .map_err(|e| format!("invalid selector {text:?}: {e}"))?,
            );
        }
    }
    if matchers.iter().all(Matcher::matches_empty) {
        return Err(format!(
            "selector {text:?} must contain at least one matcher that does not match the empty string"
        ));
    }
    if matchers
        .iter()
        .any(|m| m.name() == "__name__" && m.op() == MatchOp::Equal)
        && matchers.iter().filter(|m| m.name() == "__name__").count() > 1
        && !name.is_empty()
    {
        return Err(format!(
            "invalid selector {text:?}: the metric name is given twice"
        ));
    }
    Ok(matchers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StorageConfig, String> {
        crate::parse("osprey.yml", text, None)
            .map(|c| c.storage)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rules_parse_in_order() {
        let config = parse(
            "storage:\n  retention_rules:\n    - selector: '{__name__=~\"debug_.*\"}'\n      retention: 2d\n    - selector: 'revenue_total{team=\"biz\"}'\n      retention: 5y\n",
        )
        .unwrap();
        assert_eq!(config.retention_rules.len(), 2);
        assert_eq!(config.retention_rules[0].retention_ms, 2 * 86_400_000);
        assert_eq!(config.retention_rules[1].matchers.len(), 2);
        assert_eq!(
            config.retention_rules[1].matchers[0].value(),
            "revenue_total"
        );
    }

    #[test]
    fn tiers_parse_finest_first() {
        let config = parse(
            "storage:\n  tiers:\n    - resolution: raw\n      retention: 7d\n    - resolution: 5m\n      retention: 30d\n    - resolution: 1h\n      retention: 1y\n",
        )
        .unwrap();
        let day = 86_400_000;
        assert_eq!(
            config.tiers,
            vec![
                Tier {
                    resolution_ms: 0,
                    retention_ms: 7 * day
                },
                Tier {
                    resolution_ms: 300_000,
                    retention_ms: 30 * day
                },
                Tier {
                    resolution_ms: 3_600_000,
                    retention_ms: 365 * day
                },
            ]
        );
    }

    #[test]
    fn mistakes_name_file_line_and_field() {
        let cases = [
            (
                "storage:\n  retention_rules:\n    - selector: '{job=~\".*\"}'\n      retention: 1d\n",
                "osprey.yml:3: storage.retention_rules[0].selector: selector \"{job=~\\\".*\\\"}\" must contain at least one matcher that does not match the empty string",
            ),
            (
                "storage:\n  retention_rules:\n    - selector: up\n",
                "osprey.yml:3: storage.retention_rules[0].retention: missing",
            ),
            (
                "storage:\n  retention_rules:\n    - selector: 'up{job'\n      retention: 1d\n",
                "osprey.yml:3: storage.retention_rules[0].selector: invalid selector \"up{job\": expected name{matchers}",
            ),
            (
                "storage:\n  tiers:\n    - resolution: raw\n",
                "osprey.yml:3: storage.tiers[0].retention: missing",
            ),
            (
                "storage:\n  tiers:\n    - resolution: 5m\n      retention: 7d\n",
                "osprey.yml:3: storage.tiers[0].resolution: the first tier must be raw",
            ),
            (
                "storage:\n  tiers:\n    - {resolution: raw, retention: 7d}\n    - {resolution: 1h, retention: 30d}\n    - {resolution: 5m, retention: 1y}\n",
                "osprey.yml:5: storage.tiers[2].resolution: resolutions must increase from one tier to the next",
            ),
            (
                "storage:\n  tiers:\n    - {resolution: raw, retention: 7d}\n    - {resolution: 5m, retention: 30d}\n    - {resolution: 7m, retention: 1y}\n",
                "osprey.yml:5: storage.tiers[2].resolution: must be a whole multiple of the previous tier's resolution (300000ms), so it can be built from it",
            ),
            (
                "storage:\n  tiers:\n    - {resolution: raw, retention: 30d}\n    - {resolution: 5m, retention: 7d}\n",
                "osprey.yml:4: storage.tiers[1].retention: a coarser tier must keep data at least as long as the finer one before it",
            ),
            (
                "storage:\n  tiers:\n    - {resolution: raw, retention: 7d}\n    - {resolution: raw, retention: 8d}\n",
                "osprey.yml:4: storage.tiers[1].resolution: only the first tier may be raw",
            ),
            (
                "storage:\n  tiers:\n    - {resolution: raw, retention: 7d}\n    - {resolution: 10s, retention: 8d}\n",
                "osprey.yml:4: storage.tiers[1].resolution: a downsampled tier's resolution must be at least 1m, got 10s",
            ),
            (
                "storage:\n  tiers:\n    - {resolution: raw, retention: 7d, size: 1}\n",
                "osprey.yml:3: storage.tiers[0].size: unknown field",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err(), expected, "{text}");
        }
    }

    #[test]
    fn exemplars_take_prometheus_size_and_default() {
        assert_eq!(parse("").unwrap().max_exemplars, 100_000);
        assert_eq!(parse("storage: {}\n").unwrap().max_exemplars, 100_000);
        let config = parse("storage:\n  exemplars:\n    max_exemplars: 0\n").unwrap();
        assert_eq!(config.max_exemplars, 0);
        let config = parse("storage:\n  exemplars:\n    max_exemplars: 5000\n").unwrap();
        assert_eq!(config.max_exemplars, 5000);
        let cases = [
            (
                "storage:\n  exemplars:\n    max_exemplars: -1\n",
                "osprey.yml:3: storage.exemplars.max_exemplars: expected a non-negative integer, got -1",
            ),
            (
                "storage:\n  exemplars:\n    max_exemplar: 5\n",
                "osprey.yml:3: storage.exemplars.max_exemplar: unknown field",
            ),
            (
                "storage:\n  exemplars:\n    max_exemplars: 1000000000\n",
                "osprey.yml:3: storage.exemplars.max_exemplars: 1000000000 is more than the 100000000 allowed",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err(), expected, "{text}");
        }
    }
}
