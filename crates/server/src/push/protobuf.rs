//! The Pushgateway's protobuf push format: length-delimited
//! `io.prometheus.client.MetricFamily` messages (`Content-Type:
//! application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
//! encoding=delimited`), the Go client's default. The messages are
//! written out by hand from client_model's `metrics.proto` (proto2, so
//! fields that need presence are `Option`s); native-histogram fields are
//! left out (protobuf skips them) and only classic buckets are read.

use std::collections::HashSet;

use model::{Labels, LabelsBuilder, METRIC_NAME};
use prost::Message as _;

use super::path::Grouping;
use super::store::{Family, PushBody};

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<SingleValue>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<SingleValue>,
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<SingleValue>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    #[prost(int64, optional, tag = "6")]
    pub timestamp_ms: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `Gauge`, `Counter` and `Untyped`: the value is field 1 in each.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SingleValue {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantile {
    #[prost(double, optional, tag = "1")]
    pub quantile: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "4")]
    pub sample_count_float: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    #[prost(double, optional, tag = "4")]
    pub cumulative_count_float: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
}

const COUNTER: i32 = 0;
const GAUGE: i32 = 1;
const SUMMARY: i32 = 2;
const UNTYPED: i32 = 3;
const HISTOGRAM: i32 = 4;
const GAUGE_HISTOGRAM: i32 = 5;

/// Reads a delimited protobuf push body into families, as
/// [`super::parse_push_body`] reads the text format.
pub fn parse_protobuf_body(mut body: &[u8], grouping: &Grouping) -> Result<PushBody, String> {
    let mut families: Vec<Family> = Vec::new();
    let mut names = HashSet::new();
    let mut has_timestamps = false;
    while !body.is_empty() {
        let family = MetricFamily::decode_length_delimited(&mut body)
            .map_err(|e| format!("protobuf parsing error: {e}"))?;
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
            let mut push = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
                let mut builder = LabelsBuilder::from_labels(&base);
                builder.set(METRIC_NAME, format!("{name}{suffix}"));
                // A grouping label wins, as in the text format.
                if let Some((label, text)) = extra
                    && !grouping.contains_key(label)
                {
                    builder.set(label, text);
                }
                samples.push((builder.build(), value));
            };
            let missing = || {
                format!(
                    "metric family {name:?} of type {kind} has a metric without its {kind} value"
                )
            };
            match kind_code {
                COUNTER => push(
                    "",
                    None,
                    value_of(metric.counter.as_ref()).ok_or_else(missing)?,
                ),
                GAUGE => push(
                    "",
                    None,
                    value_of(metric.gauge.as_ref()).ok_or_else(missing)?,
                ),
                UNTYPED => push(
                    "",
                    None,
                    value_of(metric.untyped.as_ref()).ok_or_else(missing)?,
                ),
                SUMMARY => {
                    let summary = metric.summary.as_ref().ok_or_else(missing)?;
                    for q in &summary.quantile {
                        push(
                            "",
                            Some(("quantile", format_float(q.quantile.unwrap_or(0.0)))),
                            q.value.unwrap_or(0.0),
                        );
                    }
                    push("_sum", None, summary.sample_sum.unwrap_or(0.0));
                    push("_count", None, summary.sample_count.unwrap_or(0) as f64);
                }
                _ => {
                    let histogram = metric.histogram.as_ref().ok_or_else(missing)?;
                    let count = histogram
                        .sample_count_float
                        .filter(|f| *f > 0.0)
                        .unwrap_or(histogram.sample_count.unwrap_or(0) as f64);
                    let mut saw_inf = false;
                    for bucket in &histogram.bucket {
                        let bound = bucket.upper_bound.unwrap_or(0.0);
                        saw_inf |= bound == f64::INFINITY;
                        let n = bucket
                            .cumulative_count_float
                            .filter(|f| *f > 0.0)
                            .unwrap_or(bucket.cumulative_count.unwrap_or(0) as f64);
                        push("_bucket", Some(("le", format_float(bound))), n);
                    }
                    if !saw_inf {
                        push("_bucket", Some(("le", "+Inf".to_string())), count);
                    }
                    let (sum, count_suffix) = if kind_code == GAUGE_HISTOGRAM {
                        ("_gsum", "_gcount")
                    } else {
                        ("_sum", "_count")
                    };
                    push(sum, None, histogram.sample_sum.unwrap_or(0.0));
                    push(count_suffix, None, count);
                }
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

fn value_of(v: Option<&SingleValue>) -> Option<f64> {
    v.map(|v| v.value.unwrap_or(0.0))
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

    fn family(name: &str, kind: i32, metric: Vec<Metric>) -> MetricFamily {
        MetricFamily {
            name: Some(name.to_string()),
            help: Some("Help.".to_string()),
            r#type: Some(kind),
            metric,
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
                counter: Some(SingleValue { value: Some(3.0) }),
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
