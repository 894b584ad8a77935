//! The `otlp:` section: how OTLP metrics are translated (Prometheus 3's
//! `otlp:` settings, same names and defaults) and where osprey's own
//! OTLP/HTTP listener binds (`docs/otlp.md`).
//!
//! ```yaml
//! otlp:
//!   translation_strategy: UnderscoreEscapingWithSuffixes
//!   promote_resource_attributes: [k8s.namespace.name, cloud.region]
//!   keep_identifying_resource_attributes: false
//!   http_listen_address: 127.0.0.1:4318
//!   grpc_listen_address: 127.0.0.1:4317
//! ```

use std::net::SocketAddr;

use crate::ConfigError;
use crate::decode::Decoder;
use yaml::Node;

/// Prometheus's `otlp.translation_strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationStrategy {
    UnderscoreEscapingWithSuffixes,
    UnderscoreEscapingWithoutSuffixes,
    NoUTF8EscapingWithSuffixes,
    NoTranslation,
}

/// The `otlp:` section.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    pub translation_strategy: TranslationStrategy,
    /// Resource attributes copied onto every series, in the file's order,
    /// without duplicates.
    pub promote_resource_attributes: Vec<String>,
    /// Promote every resource attribute but `ignore_resource_attributes`.
    pub promote_all_resource_attributes: bool,
    pub ignore_resource_attributes: Vec<String>,
    /// Scope name, version, schema URL and attributes as labels.
    pub promote_scope_metadata: bool,
    pub keep_identifying_resource_attributes: bool,
    /// Prometheus's `label_name_underscore_sanitization` (default true).
    pub label_name_underscore_sanitization: bool,
    /// Prometheus's `label_name_preserve_multiple_underscores` (default
    /// true).
    pub label_name_preserve_multiple_underscores: bool,
    /// A listener serving only the OTLP/HTTP paths (`/v1/metrics`), beside
    /// the main port, which always serves them. `None`: no such listener.
    pub http_listen_address: Option<SocketAddr>,
    /// A listener serving OTLP/gRPC (`MetricsService/Export`). `None`: no
    /// such listener.
    pub grpc_listen_address: Option<SocketAddr>,
}

impl Default for OtlpConfig {
    /// Prometheus's defaults, no dedicated listener.
    fn default() -> OtlpConfig {
        OtlpConfig {
            translation_strategy: TranslationStrategy::UnderscoreEscapingWithSuffixes,
            promote_resource_attributes: Vec::new(),
            promote_all_resource_attributes: false,
            ignore_resource_attributes: Vec::new(),
            promote_scope_metadata: false,
            keep_identifying_resource_attributes: false,
            label_name_underscore_sanitization: true,
            label_name_preserve_multiple_underscores: true,
            http_listen_address: None,
            grpc_listen_address: None,
        }
    }
}

pub(crate) fn decode(decoder: &Decoder, node: &Node) -> Result<OtlpConfig, ConfigError> {
    let mut config = OtlpConfig::default();
    // Where the promotion keys are, for the checks between them.
    let mut lines: Vec<(&'static str, u64)> = Vec::new();
    for field in decoder.fields(node, "otlp")? {
        match field.name.as_str() {
            "translation_strategy" => {
                let text = decoder.string(field.value, &field.path)?;
                config.translation_strategy = match text.as_str() {
                    "UnderscoreEscapingWithSuffixes" => {
                        TranslationStrategy::UnderscoreEscapingWithSuffixes
                    }
                    "UnderscoreEscapingWithoutSuffixes" => {
                        TranslationStrategy::UnderscoreEscapingWithoutSuffixes
                    }
                    "NoUTF8EscapingWithSuffixes" => TranslationStrategy::NoUTF8EscapingWithSuffixes,
                    "NoTranslation" => TranslationStrategy::NoTranslation,
                    other => {
                        return Err(decoder.error(
                            field.key.line,
                            &field.path,
                            format!(
                                "unknown translation strategy {other:?}: one of UnderscoreEscapingWithSuffixes, UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes, NoTranslation"
                            ),
                        ));
                    }
                };
            }
            key @ ("promote_resource_attributes" | "ignore_resource_attributes") => {
                let name: &'static str = if key == "promote_resource_attributes" {
                    "promote_resource_attributes"
                } else {
                    "ignore_resource_attributes"
                };
                let mut seen = Vec::new();
                for attr in decoder.string_list(field.value, &field.path)? {
                    let attr = attr.trim().to_string();
                    if attr.is_empty() {
                        return Err(decoder.error(
                            field.key.line,
                            &field.path,
                            "an attribute name is empty",
                        ));
                    }
                    if seen.contains(&attr) {
                        return Err(decoder.error(
                            field.key.line,
                            &field.path,
                            format!("duplicated OTel resource attribute {attr:?}"),
                        ));
                    }
                    seen.push(attr);
                }
                if name == "promote_resource_attributes" {
                    config.promote_resource_attributes = seen;
                } else {
                    config.ignore_resource_attributes = seen;
                }
                lines.push((name, field.key.line));
            }
            "promote_all_resource_attributes" => {
                config.promote_all_resource_attributes = decoder.bool(field.value, &field.path)?;
                lines.push(("promote_all_resource_attributes", field.key.line));
            }
            "promote_scope_metadata" => {
                config.promote_scope_metadata = decoder.bool(field.value, &field.path)?;
            }
            "keep_identifying_resource_attributes" => {
                config.keep_identifying_resource_attributes =
                    decoder.bool(field.value, &field.path)?;
            }
            "label_name_underscore_sanitization" => {
                config.label_name_underscore_sanitization =
                    decoder.bool(field.value, &field.path)?;
            }
            "label_name_preserve_multiple_underscores" => {
                config.label_name_preserve_multiple_underscores =
                    decoder.bool(field.value, &field.path)?;
            }
            name @ ("http_listen_address" | "grpc_listen_address") => {
                let text = decoder.string(field.value, &field.path)?;
                let addr = text.parse::<SocketAddr>().map_err(|e| {
                    decoder.error(
                        field.key.line,
                        &field.path,
                        format!("{text:?} is not an address such as 127.0.0.1:4318: {e}"),
                    )
                })?;
                if name == "http_listen_address" {
                    config.http_listen_address = Some(addr);
                } else {
                    config.grpc_listen_address = Some(addr);
                }
            }
            "convert_histograms_to_nhcb" => {
                return Err(decoder.unsupported(&field, "native histograms with custom buckets"));
            }
            _ => return Err(decoder.unknown(&field)),
        }
    }
    let line_of = |key: &str| {
        lines
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, line)| *line)
    };
    // As Prometheus: the two ways of promoting exclude each other, and an
    // ignore list only means something with `promote_all`.
    if config.promote_all_resource_attributes && !config.promote_resource_attributes.is_empty() {
        return Err(decoder.error(
            line_of("promote_resource_attributes"),
            "otlp.promote_resource_attributes",
            "cannot be set together with promote_all_resource_attributes: true",
        ));
    }
    if !config.promote_all_resource_attributes && !config.ignore_resource_attributes.is_empty() {
        return Err(decoder.error(
            line_of("ignore_resource_attributes"),
            "otlp.ignore_resource_attributes",
            "only applies with promote_all_resource_attributes: true",
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OtlpConfig, String> {
        crate::parse("osprey.yml", text, None)
            .map(|c| c.otlp)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_prometheus_settings_and_the_listener() {
        assert_eq!(parse("global: {}\n").expect("parse"), OtlpConfig::default());
        let all = parse(
            "otlp:\n  promote_all_resource_attributes: true\n  ignore_resource_attributes: [service.instance.id]\n  promote_scope_metadata: true\n",
        )
        .expect("parse");
        assert!(all.promote_all_resource_attributes && all.promote_scope_metadata);
        assert_eq!(all.ignore_resource_attributes, ["service.instance.id"]);
        let config = parse(
            "otlp:\n  translation_strategy: NoUTF8EscapingWithSuffixes\n  promote_resource_attributes: [k8s.namespace.name, ' cloud.region ']\n  keep_identifying_resource_attributes: true\n  label_name_underscore_sanitization: false\n  http_listen_address: 127.0.0.1:4318\n  grpc_listen_address: '[::1]:4317'\n",
        )
        .expect("parse");
        assert_eq!(
            config,
            OtlpConfig {
                translation_strategy: TranslationStrategy::NoUTF8EscapingWithSuffixes,
                promote_resource_attributes: vec![
                    "k8s.namespace.name".to_string(),
                    "cloud.region".to_string()
                ],
                promote_all_resource_attributes: false,
                ignore_resource_attributes: Vec::new(),
                promote_scope_metadata: false,
                keep_identifying_resource_attributes: true,
                label_name_underscore_sanitization: false,
                label_name_preserve_multiple_underscores: true,
                http_listen_address: Some("127.0.0.1:4318".parse().expect("addr")),
                grpc_listen_address: Some("[::1]:4317".parse().expect("addr")),
            }
        );
    }

    #[test]
    fn bad_settings_name_file_line_and_field() {
        for (text, want) in [
            (
                "otlp:\n  translation_strategy: Legacy\n",
                "osprey.yml:2: otlp.translation_strategy: unknown translation strategy",
            ),
            (
                "otlp:\n  promote_resource_attributes: [a, a]\n",
                "otlp.promote_resource_attributes: duplicated",
            ),
            (
                "otlp:\n  http_listen_address: localhost\n",
                "otlp.http_listen_address: \"localhost\" is not an address",
            ),
            (
                "otlp:\n  grpc_listen_address: 4317\n",
                "otlp.grpc_listen_address",
            ),
            (
                "otlp:\n  promote_all_resource_attributes: true\n  promote_resource_attributes: [a]\n",
                "osprey.yml:3: otlp.promote_resource_attributes: cannot be set together",
            ),
            (
                "otlp:\n  ignore_resource_attributes: [a]\n",
                "otlp.ignore_resource_attributes: only applies",
            ),
            (
                "otlp:\n  convert_histograms_to_nhcb: true\n",
                "otlp.convert_histograms_to_nhcb",
            ),
            ("otlp:\n  colour: blue\n", "otlp.colour"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
