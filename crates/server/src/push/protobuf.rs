//! The Pushgateway's protobuf push format: length-delimited
//! `io.prometheus.client.MetricFamily` messages (`Content-Type:
//! application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
//! encoding=delimited`), the Go client's default. The messages and their
//! flattening into series are the scraper's (`scrape::protobuf`); a push
//! keeps only classic series (the pushgateway stores no native
//! histograms), with the grouping labels applied.

use std::collections::HashSet;

use model::{Labels, LabelsBuilder, METRIC_NAME};
use scrape::protobuf::{
    COUNTER, FlattenOptions, GAUGE, GAUGE_HISTOGRAM, HISTOGRAM, LabelPair, ProtoValue, SUMMARY,
    UNTYPED,
};

use super::path::Grouping;
use super::store::{Family, PushBody};

/// Reads a delimited protobuf push body into families, as
/// [`super::parse_push_body`] reads the text format.
pub fn parse_protobuf_body(body: &[u8], grouping: &Grouping) -> Result<PushBody, String> {
    let mut families: Vec<Family> = Vec::new();
    let mut names = HashSet::new();
    let mut has_timestamps = false;
    let options = FlattenOptions {
        native: false,
        classic_with_native: true,
        nhcb: false,
    };
    for family in scrape::protobuf::decode_families(body)? {
        let name = family.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err("a metric family has no name".to_string());
        }
        if !names.insert(name.clone()) {
            return Err(format!("metric family {name:?} given twice"));
        }
        let kind_code = family.r#type.unwrap_or(UNTYPED);
        let kind = match kind_code {
            COUNTER => "counter",
            GAUGE => "gauge",
            SUMMARY => "summary",
            UNTYPED => "untyped",
            HISTOGRAM => "histogram",
            GAUGE_HISTOGRAM => "gaugehistogram",
            other => return Err(format!("metric family {name:?} has unknown type {other}")),
        };
        let mut samples = Vec::new();
        for metric in &family.metric {
            has_timestamps |= metric.timestamp_ms.is_some();
            let base = base_labels(&name, &metric.label, grouping)?;
            for sample in scrape::protobuf::flatten(&name, kind_code, metric, options)? {
                let ProtoValue::Float(value) = sample.value else {
                    continue;
                };
                // A gauge histogram's sum and count are `_gsum` and
                // `_gcount` in the text formats the pushgateway serves.
                let suffix = match (kind_code, sample.suffix) {
                    (GAUGE_HISTOGRAM, "_sum") => "_gsum",
                    (GAUGE_HISTOGRAM, "_count") => "_gcount",
                    (_, suffix) => suffix,
                };
                let mut builder = LabelsBuilder::from_labels(&base);
                builder.set(METRIC_NAME, format!("{name}{suffix}"));
                // A grouping label wins, as in the text format.
                if let Some((label, number)) = sample.extra
                    && !grouping.contains_key(label)
                {
                    builder.set(label, format_float(number));
                }
                samples.push((builder.build(), value));
            }
        }
        if samples.is_empty() {
            continue;
        }
        families.push(Family {
            name,
            kind: kind.to_string(),
            help: family.help.unwrap_or_default(),
            push_time_ms: 0,
            samples,
        });
    }
    Ok(PushBody {
        families,
        has_timestamps,
    })
}

/// A metric's own labels, checked, with the grouping labels applied.
fn base_labels(family: &str, pairs: &[LabelPair], grouping: &Grouping) -> Result<Labels, String> {
    let mut seen = HashSet::new();
    let mut builder = LabelsBuilder::new();
    for pair in pairs {
        let name = pair.name.as_deref().unwrap_or("");
        if name.is_empty() || name == METRIC_NAME {
            return Err(format!(
                "metric family {family:?} has a label named {name:?}"
            ));
        }
        if !seen.insert(name) {
            return Err(format!("metric family {family:?} has label {name:?} twice"));
        }
        builder.set(name.to_string(), pair.value.clone().unwrap_or_default());
    }
    for (name, value) in grouping {
        builder.set(name.clone(), value.clone());
    }
    Ok(builder.build())
}

/// A bound or quantile as the text format writes it (`0.5`, `1`, `+Inf`).
fn format_float(f: f64) -> String {
    if f == f64::INFINITY {
        "+Inf".to_string()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else if f.is_nan() {
        "NaN".to_string()
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::path::parse_grouping_path;
    use prost::Message as _;
    use scrape::protobuf::{
        Bucket, Counter, Histogram, Metric, MetricFamily, Quantile, SingleValue, Summary,
    };

    fn family(name: &str, kind: i32, metric: Vec<Metric>) -> MetricFamily {
        MetricFamily {
            name: Some(name.to_string()),
            help: Some("Help.".to_string()),
            r#type: Some(kind),
            metric,
            unit: None,
        }
    }

    fn label(name: &str, value: &str) -> LabelPair {
        LabelPair {
            name: Some(name.to_string()),
            value: Some(value.to_string()),
        }
    }

    #[test]
    fn delimited_families_read_like_their_text_form() {
        let mut body = Vec::new();
        family(
            "jobs_total",
            COUNTER,
            vec![Metric {
                label: vec![label("queue", "a"), label("job", "overridden")],
                counter: Some(Counter {
                    value: Some(3.0),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        )
        .encode_length_delimited(&mut body)
        .expect("encode");
        family(
            "latency_seconds",
            HISTOGRAM,
            vec![Metric {
                histogram: Some(Histogram {
                    sample_count: Some(4),
                    sample_sum: Some(2.5),
                    bucket: vec![
                        Bucket {
                            cumulative_count: Some(1),
                            upper_bound: Some(0.5),
                            ..Default::default()
                        },
                        Bucket {
                            cumulative_count: Some(3),
                            upper_bound: Some(1.0),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        )
        .encode_length_delimited(&mut body)
        .expect("encode");
        family(
            "rpc_seconds",
            SUMMARY,
            vec![Metric {
                summary: Some(Summary {
                    sample_count: Some(2),
                    sample_sum: Some(1.0),
                    quantile: vec![Quantile {
                        quantile: Some(0.99),
                        value: Some(0.7),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        )
        .encode_length_delimited(&mut body)
        .expect("encode");
        let grouping = parse_grouping_path("job/batch/instance/h").expect("path");
        let parsed = parse_protobuf_body(&body, &grouping).expect("parse");
        assert!(!parsed.has_timestamps);
        let mut lines: Vec<String> = parsed
            .families
            .iter()
            .flat_map(|f| {
                f.samples
                    .iter()
                    .map(move |(l, v)| format!("{} {l} {v}", f.kind))
            })
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "counter jobs_total{instance=\"h\", job=\"batch\", queue=\"a\"} 3",
                "histogram latency_seconds_bucket{instance=\"h\", job=\"batch\", le=\"+Inf\"} 4",
                "histogram latency_seconds_bucket{instance=\"h\", job=\"batch\", le=\"0.5\"} 1",
                "histogram latency_seconds_bucket{instance=\"h\", job=\"batch\", le=\"1\"} 3",
                "histogram latency_seconds_count{instance=\"h\", job=\"batch\"} 4",
                "histogram latency_seconds_sum{instance=\"h\", job=\"batch\"} 2.5",
                "summary rpc_seconds_count{instance=\"h\", job=\"batch\"} 2",
                "summary rpc_seconds_sum{instance=\"h\", job=\"batch\"} 1",
                "summary rpc_seconds{instance=\"h\", job=\"batch\", quantile=\"0.99\"} 0.7",
            ]
        );
    }

    #[test]
    fn bad_protobuf_bodies_are_refused() {
        let grouping = parse_grouping_path("job/j").expect("path");
        let mut twice = Vec::new();
        for _ in 0..2 {
            family(
                "g",
                GAUGE,
                vec![Metric {
                    gauge: Some(SingleValue { value: Some(1.0) }),
                    ..Default::default()
                }],
            )
            .encode_length_delimited(&mut twice)
            .expect("encode");
        }
        let mut no_value = Vec::new();
        family("g", GAUGE, vec![Metric::default()])
            .encode_length_delimited(&mut no_value)
            .expect("encode");
        let mut stamped = Vec::new();
        family(
            "g",
            GAUGE,
            vec![Metric {
                gauge: Some(SingleValue { value: Some(1.0) }),
                timestamp_ms: Some(5),
                ..Default::default()
            }],
        )
        .encode_length_delimited(&mut stamped)
        .expect("encode");
        assert!(parse_protobuf_body(&twice, &grouping).is_err());
        assert!(parse_protobuf_body(&no_value, &grouping).is_err());
        assert!(parse_protobuf_body(b"\xff\xff\xff", &grouping).is_err());
        assert!(
            parse_protobuf_body(&stamped, &grouping)
                .expect("parse")
                .has_timestamps
        );
    }
}
