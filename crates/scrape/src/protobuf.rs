//! The protobuf exposition format: varint-length-delimited
//! `io.prometheus.client.MetricFamily` messages (`Content-Type:
//! application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
//! encoding=delimited`), as Go clients serve it and Prometheus asks for it
//! first when it scrapes native histograms. The pushgateway API reads its
//! protobuf pushes with the same types and [`flatten`].
//!
//! The messages are written out by hand from client_model's
//! `metrics.proto` (proto2, so fields that need presence are `Option`s).
//! [`flatten`] turns one metric of a family into the series the text
//! format would give (counters, gauges, untyped, summaries with
//! `quantile`, classic histograms with `le`, `_sum` and `_count`), and a
//! histogram that is native into one native histogram sample (integer or
//! float, any exponential schema); [`classic_to_nhcb`] turns a classic
//! histogram into a native one with custom buckets (schema -53).
//! [`limit_histogram`] applies `native_histogram_bucket_limit` and
//! `native_histogram_min_bucket_factor`.
//!
//! The format is documented in `docs/format/protobuf-exposition.md`.

use std::borrow::Cow;

use model::exposition::Exemplar;
use model::histogram::{
    CUSTOM_BUCKETS_SCHEMA, CounterResetHint, EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MIN,
    FloatHistogram, Histogram as NativeHistogram, Span, bucket_indexes,
};
use prost::Message as _;

/// The media type of the format (without parameters).
pub const MEDIA_TYPE: &str = "application/vnd.google.protobuf";

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
    #[prost(string, optional, tag = "5")]
    pub unit: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<SingleValue>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
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

/// `Gauge` and `Untyped`: the value is field 1.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SingleValue {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<ProtoExemplar>,
    #[prost(message, optional, tag = "3")]
    pub created_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
    #[prost(message, optional, tag = "4")]
    pub created_timestamp: Option<Timestamp>,
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
    /// Classic buckets, cumulative, by upper bound.
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(message, optional, tag = "15")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(sint32, optional, tag = "5")]
    pub schema: Option<i32>,
    #[prost(double, optional, tag = "6")]
    pub zero_threshold: Option<f64>,
    #[prost(uint64, optional, tag = "7")]
    pub zero_count: Option<u64>,
    #[prost(double, optional, tag = "8")]
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "true", tag = "10")]
    pub negative_delta: Vec<i64>,
    #[prost(double, repeated, packed = "true", tag = "11")]
    pub negative_count: Vec<f64>,
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "true", tag = "13")]
    pub positive_delta: Vec<i64>,
    #[prost(double, repeated, packed = "true", tag = "14")]
    pub positive_count: Vec<f64>,
    #[prost(message, repeated, tag = "16")]
    pub exemplars: Vec<ProtoExemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    #[prost(double, optional, tag = "4")]
    pub cumulative_count_float: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<ProtoExemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, optional, tag = "1")]
    pub offset: Option<i32>,
    #[prost(uint32, optional, tag = "2")]
    pub length: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoExemplar {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<Timestamp>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// A metric's created timestamp in milliseconds, as Prometheus's
/// protobuf parser reads it (`CreatedTimestamp`): the counter's, the
/// summary's, or the histogram's (gauge histograms too), by the family's
/// type; `None` for other types and when it is not set or is zero.
/// Seconds and nanoseconds are combined without a range check, wrapping
/// where Prometheus's int64 arithmetic would overflow.
pub fn created_ms(kind: i32, metric: &Metric) -> Option<i64> {
    let timestamp = match kind {
        COUNTER => metric.counter.as_ref()?.created_timestamp.as_ref(),
        SUMMARY => metric.summary.as_ref()?.created_timestamp.as_ref(),
        HISTOGRAM | GAUGE_HISTOGRAM => metric.histogram.as_ref()?.created_timestamp.as_ref(),
        _ => None,
    }?;
    let ms = timestamp
        .seconds
        .wrapping_mul(1000)
        .wrapping_add(i64::from(timestamp.nanos) / 1_000_000);
    (ms != 0).then_some(ms)
}

pub const COUNTER: i32 = 0;
pub const GAUGE: i32 = 1;
pub const SUMMARY: i32 = 2;
pub const UNTYPED: i32 = 3;
pub const HISTOGRAM: i32 = 4;
pub const GAUGE_HISTOGRAM: i32 = 5;

/// Whether a `Content-Type` names the delimited protobuf format.
pub fn is_protobuf_content_type(content_type: &str) -> bool {
    let mut parts = content_type.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|media| media.eq_ignore_ascii_case(MEDIA_TYPE))
    {
        return false;
    }
    let mut proto_ok = false;
    let mut delimited = false;
    for part in parts {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "proto" => proto_ok = value == "io.prometheus.client.MetricFamily",
            "encoding" => delimited = value == "delimited",
            _ => {}
        }
    }
    proto_ok && delimited
}

/// Reads the delimited families of a body, in order.
pub fn decode_families(mut body: &[u8]) -> Result<Vec<MetricFamily>, String> {
    let mut families = Vec::new();
    while !body.is_empty() {
        let family = MetricFamily::decode_length_delimited(&mut body)
            .map_err(|e| format!("protobuf parsing error: {e}"))?;
        families.push(family);
    }
    Ok(families)
}

/// What [`flatten`] makes of histograms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlattenOptions {
    /// Keep a native histogram as one native sample; otherwise only its
    /// classic series (if it has classic buckets) are kept.
    pub native: bool,
    /// Also keep the classic series of a histogram kept as native.
    pub classic_with_native: bool,
    /// Turn a classic histogram into a native one with custom buckets
    /// (its classic series are then kept only with `classic_with_native`).
    pub nhcb: bool,
}

/// The value of one flattened sample.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtoValue {
    Float(f64),
    Histogram(NativeHistogram),
    FloatHistogram(FloatHistogram),
}

/// One series sample of a metric, as the text format would name it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtoSample {
    /// Appended to the family name: `""`, `_bucket`, `_sum` or `_count`.
    pub suffix: &'static str,
    /// `le` or `quantile` with its number, for the caller to format.
    pub extra: Option<(&'static str, f64)>,
    pub value: ProtoValue,
    /// A counter's or classic bucket's exemplar; a native histogram's
    /// exemplars (those with a timestamp, oldest first).
    pub exemplars: Vec<Exemplar<'static>>,
}

/// The samples of one metric of a family of type `kind`, or why the
/// metric is malformed.
pub fn flatten(
    family: &str,
    kind: i32,
    metric: &Metric,
    options: FlattenOptions,
) -> Result<Vec<ProtoSample>, String> {
    let kind_name = match kind {
        COUNTER => "counter",
        GAUGE => "gauge",
        SUMMARY => "summary",
        UNTYPED => "untyped",
        HISTOGRAM => "histogram",
        GAUGE_HISTOGRAM => "gaugehistogram",
        other => return Err(format!("metric family {family:?} has unknown type {other}")),
    };
    let missing = || {
        format!(
            "metric family {family:?} of type {kind_name} has a metric without its {kind_name} value"
        )
    };
    let float = |value: f64| ProtoSample {
        suffix: "",
        extra: None,
        value: ProtoValue::Float(value),
        exemplars: Vec::new(),
    };
    let mut out = Vec::new();
    match kind {
        COUNTER => {
            let counter = metric.counter.as_ref().ok_or_else(missing)?;
            let mut sample = float(counter.value.unwrap_or(0.0));
            sample.exemplars = counter.exemplar.iter().filter_map(exemplar).collect();
            out.push(sample);
        }
        GAUGE => out.push(float(
            metric
                .gauge
                .as_ref()
                .ok_or_else(missing)?
                .value
                .unwrap_or(0.0),
        )),
        UNTYPED => out.push(float(
            metric
                .untyped
                .as_ref()
                .ok_or_else(missing)?
                .value
                .unwrap_or(0.0),
        )),
        SUMMARY => {
            let summary = metric.summary.as_ref().ok_or_else(missing)?;
            for q in &summary.quantile {
                out.push(ProtoSample {
                    extra: Some(("quantile", q.quantile.unwrap_or(0.0))),
                    ..float(q.value.unwrap_or(0.0))
                });
            }
            out.push(ProtoSample {
                suffix: "_sum",
                ..float(summary.sample_sum.unwrap_or(0.0))
            });
            out.push(ProtoSample {
                suffix: "_count",
                ..float(summary.sample_count.unwrap_or(0) as f64)
            });
        }
        _ => {
            let histogram = metric.histogram.as_ref().ok_or_else(missing)?;
            let gauge = kind == GAUGE_HISTOGRAM;
            let native = is_native(histogram);
            let mut classic = true;
            if native && options.native {
                out.push(ProtoSample {
                    value: native_histogram(histogram, gauge)?,
                    exemplars: native_exemplars(histogram),
                    ..float(0.0)
                });
                classic = options.classic_with_native;
            } else if !native && options.nhcb && options.native {
                out.push(ProtoSample {
                    value: classic_to_nhcb(histogram, gauge)?,
                    ..float(0.0)
                });
                classic = options.classic_with_native;
            }
            if classic {
                classic_series(histogram, native, &mut out);
            }
        }
    }
    Ok(out)
}

/// The classic series of a histogram: `_bucket` (with `+Inf` added when
/// missing, as Prometheus does), `_sum` and `_count`; a native histogram
/// without classic buckets gives no `_bucket` series.
fn classic_series(histogram: &Histogram, native: bool, out: &mut Vec<ProtoSample>) {
    let count = histogram_count(histogram);
    let mut saw_inf = false;
    for bucket in &histogram.bucket {
        let bound = bucket.upper_bound.unwrap_or(0.0);
        saw_inf |= bound == f64::INFINITY;
        let n = match bucket.cumulative_count_float {
            Some(f) if f > 0.0 => f,
            _ => bucket.cumulative_count.unwrap_or(0) as f64,
        };
        out.push(ProtoSample {
            suffix: "_bucket",
            extra: Some(("le", bound)),
            value: ProtoValue::Float(n),
            exemplars: bucket.exemplar.iter().filter_map(exemplar).collect(),
        });
    }
    let no_buckets_at_all = native && histogram.bucket.is_empty();
    if !(saw_inf || no_buckets_at_all) {
        out.push(ProtoSample {
            suffix: "_bucket",
            extra: Some(("le", f64::INFINITY)),
            value: ProtoValue::Float(count),
            exemplars: Vec::new(),
        });
    }
    out.push(ProtoSample {
        suffix: "_sum",
        extra: None,
        value: ProtoValue::Float(histogram.sample_sum.unwrap_or(0.0)),
        exemplars: Vec::new(),
    });
    out.push(ProtoSample {
        suffix: "_count",
        extra: None,
        value: ProtoValue::Float(count),
        exemplars: Vec::new(),
    });
}

fn histogram_count(histogram: &Histogram) -> f64 {
    match histogram.sample_count_float {
        Some(f) if f > 0.0 => f,
        _ => histogram.sample_count.unwrap_or(0) as f64,
    }
}

/// A native histogram's exemplars, as Prometheus takes them: its own
/// (`exemplars`), else its classic buckets'; only those with a timestamp,
/// oldest first.
fn native_exemplars(h: &Histogram) -> Vec<Exemplar<'static>> {
    let own: Vec<&ProtoExemplar> = if h.exemplars.is_empty() {
        h.bucket
            .iter()
            .filter_map(|b| b.exemplar.as_ref())
            .collect()
    } else {
        h.exemplars.iter().collect()
    };
    let mut out: Vec<Exemplar<'static>> = own
        .into_iter()
        .filter(|e| e.timestamp.is_some())
        .filter_map(exemplar)
        .collect();
    out.sort_by_key(|e| e.timestamp_ms);
    out
}

/// Whether a histogram message carries a native histogram: any native
/// field set (an empty one has a span of length 0 for this), as
/// Prometheus decides.
pub fn is_native(h: &Histogram) -> bool {
    !h.negative_delta.is_empty()
        || !h.positive_delta.is_empty()
        || !h.negative_count.is_empty()
        || !h.positive_count.is_empty()
        || !h.negative_span.is_empty()
        || !h.positive_span.is_empty()
        || h.zero_count.unwrap_or(0) > 0
        || h.zero_count_float.unwrap_or(0.0) > 0.0
        || h.zero_threshold.unwrap_or(0.0) > 0.0
}

fn spans(spans: &[BucketSpan]) -> Vec<Span> {
    spans
        .iter()
        .map(|s| Span {
            offset: s.offset.unwrap_or(0),
            length: s.length.unwrap_or(0),
        })
        .collect()
}

/// The native histogram of a message: a float one when the message counts
/// in floats (`sample_count_float` or `zero_count_float` set), else an
/// integer one. Validated with Prometheus's rules.
fn native_histogram(h: &Histogram, gauge: bool) -> Result<ProtoValue, String> {
    let hint = if gauge {
        CounterResetHint::Gauge
    } else {
        CounterResetHint::Unknown
    };
    let schema = h.schema.unwrap_or(0);
    let is_float =
        h.sample_count_float.unwrap_or(0.0) > 0.0 || h.zero_count_float.unwrap_or(0.0) > 0.0;
    if is_float {
        let histogram = FloatHistogram {
            counter_reset_hint: hint,
            schema,
            zero_threshold: h.zero_threshold.unwrap_or(0.0),
            zero_count: h.zero_count_float.unwrap_or(0.0),
            count: h.sample_count_float.unwrap_or(0.0),
            sum: h.sample_sum.unwrap_or(0.0),
            positive_spans: spans(&h.positive_span),
            negative_spans: spans(&h.negative_span),
            positive_buckets: h.positive_count.clone(),
            negative_buckets: h.negative_count.clone(),
            custom_values: Vec::new(),
        };
        histogram.validate().map_err(|e| e.to_string())?;
        Ok(ProtoValue::FloatHistogram(histogram))
    } else {
        let histogram = NativeHistogram {
            counter_reset_hint: hint,
            schema,
            zero_threshold: h.zero_threshold.unwrap_or(0.0),
            zero_count: h.zero_count.unwrap_or(0),
            count: h.sample_count.unwrap_or(0),
            sum: h.sample_sum.unwrap_or(0.0),
            positive_spans: spans(&h.positive_span),
            negative_spans: spans(&h.negative_span),
            positive_buckets: h.positive_delta.clone(),
            negative_buckets: h.negative_delta.clone(),
            custom_values: Vec::new(),
        };
        histogram.validate().map_err(|e| e.to_string())?;
        Ok(ProtoValue::Histogram(histogram))
    }
}

/// A classic histogram as a native histogram with custom buckets (schema
/// -53): the finite upper bounds become the custom values, each bucket
/// holds what its cumulative count adds, and the last bucket (index = the
/// number of finite bounds) what the count adds beyond the last bound.
/// Integer when the message counts in integers.
pub fn classic_to_nhcb(h: &Histogram, gauge: bool) -> Result<ProtoValue, String> {
    let is_float = h.sample_count_float.unwrap_or(0.0) > 0.0
        || h.bucket
            .iter()
            .any(|b| b.cumulative_count_float.unwrap_or(0.0) > 0.0);
    let bounds: Vec<(f64, f64)> = h
        .bucket
        .iter()
        .map(|b| {
            let n = match b.cumulative_count_float {
                Some(f) if f > 0.0 => f,
                _ => b.cumulative_count.unwrap_or(0) as f64,
            };
            (b.upper_bound.unwrap_or(0.0), n)
        })
        .collect();
    nhcb(
        &bounds,
        histogram_count(h),
        h.sample_sum.unwrap_or(0.0),
        gauge,
        is_float,
    )
}

/// A native histogram with custom buckets from classic buckets (upper
/// bound, cumulative count; a `+Inf` one is left out, `count` says what
/// it holds), the count and the sum: float or integer as `is_float` says.
/// Validated with Prometheus's rules.
pub fn nhcb(
    buckets: &[(f64, f64)],
    count: f64,
    sum: f64,
    gauge: bool,
    is_float: bool,
) -> Result<ProtoValue, String> {
    let mut bounds = buckets.to_vec();
    bounds.retain(|(bound, _)| *bound != f64::INFINITY);
    let buckets = nhcb_buckets(&bounds, count)?;
    let custom_values: Vec<f64> = bounds.iter().map(|(bound, _)| *bound).collect();
    let hint = if gauge {
        CounterResetHint::Gauge
    } else {
        CounterResetHint::Unknown
    };
    let (spans, counts) = compact(&buckets);
    if is_float {
        let histogram = FloatHistogram {
            counter_reset_hint: hint,
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum,
            positive_spans: spans,
            positive_buckets: counts,
            custom_values,
            ..FloatHistogram::default()
        };
        histogram.validate().map_err(|e| e.to_string())?;
        Ok(ProtoValue::FloatHistogram(histogram))
    } else {
        let mut previous = 0i64;
        let deltas = counts
            .iter()
            .map(|&c| {
                let c = c as i64;
                let d = c - previous;
                previous = c;
                d
            })
            .collect();
        let histogram = NativeHistogram {
            counter_reset_hint: hint,
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: count as u64,
            sum,
            positive_spans: spans,
            positive_buckets: deltas,
            custom_values,
            ..NativeHistogram::default()
        };
        histogram.validate().map_err(|e| e.to_string())?;
        Ok(ProtoValue::Histogram(histogram))
    }
}

/// The per-bucket counts of classic buckets (finite bounds with cumulative
/// counts) and a total `count`: one per bound and one for `+Inf`. An error
/// when the bounds do not increase or the cumulative counts fall.
pub fn nhcb_buckets(bounds: &[(f64, f64)], count: f64) -> Result<Vec<f64>, String> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut previous_bound = f64::NEG_INFINITY;
    let mut previous = 0.0;
    for &(bound, cumulative) in bounds {
        if bound.is_nan() || bound <= previous_bound {
            return Err(format!(
                "histogram bucket bounds must increase, got {bound} after {previous_bound}"
            ));
        }
        if cumulative < previous {
            return Err(format!(
                "histogram bucket counts must not decrease, got {cumulative} for le={bound} after {previous}"
            ));
        }
        out.push(cumulative - previous);
        previous = cumulative;
        previous_bound = bound;
    }
    if count < previous {
        return Err(format!(
            "histogram count {count} is below its last bucket's {previous}"
        ));
    }
    out.push(count - previous);
    Ok(out)
}

/// Spans over the non-empty buckets of a dense bucket list (starting at
/// index 0), and their counts.
fn compact(buckets: &[f64]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::new();
    let mut next: i64 = 0;
    for (index, &n) in buckets.iter().enumerate() {
        if n == 0.0 {
            continue;
        }
        let index = index as i64;
        match spans.last_mut() {
            Some(span) if index == next => span.length += 1,
            _ => spans.push(Span {
                offset: (index - next) as i32,
                length: 1,
            }),
        }
        next = index + 1;
        counts.push(n);
    }
    (spans, counts)
}

fn exemplar(e: &ProtoExemplar) -> Option<Exemplar<'static>> {
    // Without a timestamp the scrape's time is used, as for the text
    // formats.
    let labels = e
        .label
        .iter()
        .map(|l| {
            (
                Cow::Owned(l.name.clone().unwrap_or_default()),
                Cow::Owned(l.value.clone().unwrap_or_default()),
            )
        })
        .collect();
    Some(Exemplar {
        labels,
        value: e.value.unwrap_or(0.0),
        timestamp_ms: e.timestamp.as_ref().map(|t| {
            t.seconds
                .saturating_mul(1000)
                .saturating_add(i64::from(t.nanos) / 1_000_000)
        }),
    })
}

/// A bound or quantile as Prometheus's protobuf parser writes it into a
/// label: Go's shortest `%g` form, with `.0` added to an integer
/// (`1.0`, `0.25`, `1e+06`, `+Inf`).
pub fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f == f64::INFINITY {
        return "+Inf".to_string();
    }
    if f == f64::NEG_INFINITY {
        return "-Inf".to_string();
    }
    let text = go_shortest_g(f);
    if text.contains(['e', '.']) {
        text
    } else {
        text + ".0"
    }
}

/// Go's shortest `%g` for a finite `f`: the shortest digits that read
/// back exactly, with an exponent (`e+06`, `e-05`) when the decimal
/// exponent is below -4 or at least [`EXPONENT_FROM`].
fn go_shortest_g(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest digits: `1.5e-7`, `1e6`.
    let sci = format!("{f:e}");
    let Some((mantissa, exponent)) = sci.split_once('e') else {
        return sci;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..EXPONENT_FROM).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{f}")
    }
}

/// Where Go's shortest `%g` switches to an exponent (`1e+06`; checked
/// against Prometheus 2.42's labels in `tests/protobuf_scrape.rs`).
const EXPONENT_FROM: i32 = 6;

/// Applies `native_histogram_min_bucket_factor` (as the largest schema it
/// allows) and `native_histogram_bucket_limit` (0: none) to an exponential
/// histogram, lowering its resolution; an error when the limit cannot be
/// met at schema -4, or when a custom-bucket histogram exceeds it.
pub fn limit_histogram(
    value: &mut ProtoValue,
    bucket_limit: u64,
    min_bucket_factor: f64,
) -> Result<(), String> {
    let max_schema = pick_schema(min_bucket_factor);
    match value {
        ProtoValue::Float(_) => Ok(()),
        ProtoValue::Histogram(h) => {
            let mut positive = absolute(&h.positive_buckets);
            let mut negative = absolute(&h.negative_buckets);
            limit(
                &mut h.schema,
                (&mut h.positive_spans, &mut positive),
                (&mut h.negative_spans, &mut negative),
                bucket_limit,
                max_schema,
            )?;
            h.positive_buckets = deltas(&positive);
            h.negative_buckets = deltas(&negative);
            Ok(())
        }
        ProtoValue::FloatHistogram(h) => limit(
            &mut h.schema,
            (&mut h.positive_spans, &mut h.positive_buckets),
            (&mut h.negative_spans, &mut h.negative_buckets),
            bucket_limit,
            max_schema,
        ),
    }
}

/// Prometheus's `pickSchema`: the largest schema whose bucket growth is
/// at least `factor` (a factor of 1 or less allows schema 8).
fn pick_schema(factor: f64) -> i32 {
    let factor = if factor <= 1.0 { 1.00271 } else { factor };
    let floor = (-factor.log2().log2()).floor();
    if floor >= f64::from(EXPONENTIAL_SCHEMA_MAX) {
        EXPONENTIAL_SCHEMA_MAX
    } else if floor <= f64::from(EXPONENTIAL_SCHEMA_MIN) {
        EXPONENTIAL_SCHEMA_MIN
    } else {
        floor as i32
    }
}

fn absolute(deltas: &[i64]) -> Vec<f64> {
    let mut current = 0i64;
    deltas
        .iter()
        .map(|&d| {
            current = current.wrapping_add(d);
            current as f64
        })
        .collect()
}

fn deltas(counts: &[f64]) -> Vec<i64> {
    let mut previous = 0i64;
    counts
        .iter()
        .map(|&c| {
            let c = c as i64;
            let d = c.wrapping_sub(previous);
            previous = c;
            d
        })
        .collect()
}

type Side<'a> = (&'a mut Vec<Span>, &'a mut Vec<f64>);

fn limit(
    schema: &mut i32,
    positive: Side<'_>,
    negative: Side<'_>,
    bucket_limit: u64,
    max_schema: i32,
) -> Result<(), String> {
    let (positive_spans, positive_counts) = positive;
    let (negative_spans, negative_counts) = negative;
    let over =
        |p: &Vec<f64>, n: &Vec<f64>| bucket_limit > 0 && (p.len() + n.len()) as u64 > bucket_limit;
    if *schema == CUSTOM_BUCKETS_SCHEMA {
        if over(positive_counts, negative_counts) {
            return Err("histogram bucket limit exceeded".to_string());
        }
        return Ok(());
    }
    let mut target = (*schema).min(max_schema);
    loop {
        if target < *schema {
            let delta = (*schema - target) as u32;
            let (spans, counts) = reduce(positive_spans, positive_counts, delta);
            *positive_spans = spans;
            *positive_counts = counts;
            let (spans, counts) = reduce(negative_spans, negative_counts, delta);
            *negative_spans = spans;
            *negative_counts = counts;
            *schema = target;
        }
        if !over(positive_counts, negative_counts) {
            return Ok(());
        }
        if *schema <= EXPONENTIAL_SCHEMA_MIN {
            return Err("histogram bucket limit exceeded".to_string());
        }
        target = *schema - 1;
    }
}

/// The buckets of one side at a schema `delta` lower: bucket `i` goes to
/// `((i - 1) >> delta) + 1`, merged counts added, spans rebuilt (a gap
/// between merged buckets stays a gap).
pub fn reduce(spans: &[Span], counts: &[f64], delta: u32) -> (Vec<Span>, Vec<f64>) {
    let mut out_spans: Vec<Span> = Vec::new();
    let mut out_counts: Vec<f64> = Vec::new();
    let mut last: Option<i64> = None;
    for (index, &count) in bucket_indexes(spans).zip(counts) {
        let target = ((index - 1) >> delta) + 1;
        match last {
            Some(previous) if previous == target => {
                if let Some(c) = out_counts.last_mut() {
                    *c += count;
                }
            }
            Some(previous) if target == previous + 1 => {
                if let Some(span) = out_spans.last_mut() {
                    span.length += 1;
                }
                out_counts.push(count);
            }
            Some(previous) => {
                out_spans.push(Span {
                    offset: (target - previous - 1) as i32,
                    length: 1,
                });
                out_counts.push(count);
            }
            None => {
                out_spans.push(Span {
                    offset: target as i32,
                    length: 1,
                });
                out_counts.push(count);
            }
        }
        last = Some(target);
    }
    (out_spans, out_counts)
}

#[cfg(test)]
mod tests;
