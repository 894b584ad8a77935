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
            "promote_resource_attributes" => {
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
                            format!("duplicated promoted OTel resource attribute {attr:?}"),
                        ));
                    }
                    seen.push(attr);
                }
                config.promote_resource_attributes = seen;
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
            "promote_all_resource_attributes"
            | "ignore_resource_attributes"
            | "convert_histograms_to_nhcb"
            | "promote_scope_metadata" => {
                return Err(decoder.unsupported(&field, "this OTLP translation setting"));
            }
            _ => return Err(decoder.unknown(&field)),
        }
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
                "otlp:\n  promote_all_resource_attributes: true\n",
                "otlp.promote_all_resource_attributes",
            ),
            ("otlp:\n  colour: blue\n", "otlp.colour"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
