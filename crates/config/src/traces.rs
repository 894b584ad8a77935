//! The `traces:` section: how long the trace store keeps spans and whether
//! span metrics are written (`docs/traces.md`).
//!
//! ```yaml
//! traces:
//!   retention_time: 7d
//!   retention_size: 10GB
//!   span_metrics: true
//! ```

use crate::ConfigError;
use crate::decode::Decoder;
use yaml::Node;

/// The `traces:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracesConfig {
    /// Milliseconds spans are kept; 0 keeps them until `retention_size`.
    pub retention_time_ms: i64,
    /// Bytes the store may take (blocks and WAL); 0: no limit.
    pub retention_size_bytes: u64,
    /// Whether spans are counted into the spanmetrics connector's series.
    pub span_metrics: bool,
}

impl Default for TracesConfig {
    /// 7 days, no size limit, span metrics on.
    fn default() -> TracesConfig {
        TracesConfig {
            retention_time_ms: 7 * 24 * 3600 * 1000,
            retention_size_bytes: 0,
            span_metrics: true,
        }
    }
}

pub(crate) fn decode(decoder: &Decoder, node: &Node) -> Result<TracesConfig, ConfigError> {
    let mut config = TracesConfig::default();
    for field in decoder.fields(node, "traces")? {
        match field.name.as_str() {
            "retention_time" => {
                let ms = decoder.duration(field.value, &field.path)?;
                if ms < 0 {
                    return Err(decoder.error(field.key.line, &field.path, "must not be negative"));
                }
                config.retention_time_ms = ms;
            }
            "retention_size" => {
                config.retention_size_bytes = decoder.byte_size(field.value, &field.path)?;
            }
            "span_metrics" => config.span_metrics = decoder.bool(field.value, &field.path)?,
            _ => return Err(decoder.unknown(&field)),
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TracesConfig, String> {
        crate::parse("osprey.yml", text, None)
            .map(|c| c.traces)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_section_and_names_bad_fields() {
        assert_eq!(
            parse("global: {}\n").expect("parse"),
            TracesConfig::default()
        );
        assert_eq!(
            parse("traces:\n  retention_time: 2d\n  retention_size: 1GB\n  span_metrics: false\n")
                .expect("parse"),
            TracesConfig {
                retention_time_ms: 2 * 24 * 3600 * 1000,
                retention_size_bytes: 1 << 30,
                span_metrics: false,
            }
        );
        for (text, want) in [
            (
                "traces:\n  retention_time: soon\n",
                "osprey.yml:2: traces.retention_time",
            ),
            (
                "traces:\n  retention_size: lots\n",
                "traces.retention_size: invalid size",
            ),
            ("traces:\n  colour: blue\n", "traces.colour"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
