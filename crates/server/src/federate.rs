//! `GET /federate`: the newest sample of every series matching one of the
//! `match[]` selectors, in the text exposition format, for another
//! Prometheus (or osprey) to scrape, as Prometheus serves it.
//!
//! - A series is shown when it has a sample in the lookback window before
//!   now (`(now - lookback_delta, now]`, left-open as in Prometheus 3's
//!   instant selectors) and that newest sample is not a staleness marker.
//! - Several `match[]` select the union; no `match[]` selects nothing (an
//!   empty, successful answer, as Prometheus gives).
//! - Every sample carries its timestamp, so the scraper stores it at the
//!   time it was taken, and the configuration's `external_labels` are
//!   added to series that lack them.
//! - Series are grouped by metric name, each group under one
//!   `# TYPE <name> untyped` line: osprey does not know the type of a
//!   stored series, and Prometheus federates floats as untyped too.
//! - Native histograms: a client that asks for the protobuf format
//!   (`Accept: application/vnd.google.protobuf;
//!   proto=io.prometheus.client.MetricFamily;encoding=delimited`, which a
//!   Prometheus with native histograms enabled sends) gets every series as
//!   length-delimited `MetricFamily` messages, histograms as `HISTOGRAM`
//!   (or `GAUGE_HISTOGRAM`) families, in integer form where the histogram
//!   is an exact integer one, float form otherwise. In the text format,
//!   as in Prometheus 3, exponential histograms are left out and
//!   custom-bucket ones are written as classic `_bucket`/`_sum`/`_count`
//!   lines (gauge ones are left out: the text format has no gauge
//!   histogram type).

use std::fmt::Write as _;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use model::histogram::{CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram};
use model::storage::Storage;
use model::{Labels, Matcher, is_stale_nan};

use scrape::protobuf as dto;

use crate::api::read_params;
use crate::export::MergedSeries;
use crate::{ApiError, AppState};

/// What the text exposition format 0.0.4 is served as.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the delimited protobuf format is served as.
const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// One series's newest sample.
struct Latest {
    name: String,
    labels: Labels,
    t: i64,
    value: Value,
}

enum Value {
    Float(f64),
    Histogram(FloatHistogram),
}

/// Whether the `Accept` header asks for delimited protobuf, as a
/// Prometheus with native histograms enabled does (first choice, with a
/// quality value; text comes after it).
fn wants_protobuf(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        params.next() == Some("application/vnd.google.protobuf")
            && part.contains("proto=io.prometheus.client.MetricFamily")
            && part.contains("encoding=delimited")
    })
}

/// `GET /federate`.
pub(crate) async fn federate(State(state): State<AppState>, request: Request) -> Response {
    let protobuf = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(wants_protobuf);
    let sets = match read_params(request)
        .await
        .and_then(|params| params.matcher_sets(false))
    {
        Ok(sets) => sets,
        Err(e) => return e.into_response(),
    };
    let now = state.now_ms();
    let lookback = state.config().engine.lookback_delta_ms.max(1);
    let external: Vec<(String, String)> = state
        .current_config()
        .map(|c| c.global.external_labels.clone())
        .unwrap_or_default();
    let storage = state.storage().clone();
    let selected = tokio::task::spawn_blocking(move || {
        newest_samples(storage.as_ref(), &sets, now - lookback + 1, now)
    })
    .await;
    let latest = match selected {
        Ok(Ok(latest)) => latest,
        Ok(Err(e)) => return e.into_response(),
        Err(e) => {
            return ApiError::internal(format!("federation task failed: {e}")).into_response();
        }
    };
    if protobuf {
        let mut body = Vec::with_capacity(latest.len() * 64);
        write_protobuf(&mut body, &latest, &external);
        return ([(header::CONTENT_TYPE, PROTOBUF_CONTENT_TYPE)], body).into_response();
    }
    let mut body = String::with_capacity(latest.len() * 64);
    write_exposition(&mut body, &latest, &external);
    ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response()
}

/// The newest sample in `[mint, maxt]` of every series matching one of
/// `sets`, unless that sample is a staleness marker; sorted by metric name,
/// then by label set.
fn newest_samples(
    storage: &dyn Storage,
    sets: &[Vec<Matcher>],
    mint: i64,
    maxt: i64,
) -> Result<Vec<Latest>, ApiError> {
    if sets.is_empty() {
        return Ok(Vec::new());
    }
    let querier = storage.querier(mint, maxt).map_err(ApiError::from_read)?;
    let mut series_sets = Vec::with_capacity(sets.len());
    for set in sets {
        series_sets.push(querier.select_latest(set).map_err(ApiError::from_read)?);
    }
    let mut latest = Vec::new();
    for series in MergedSeries::new(series_sets) {
        let mut series = series.map_err(ApiError::from_read)?;
        let float = series.samples.by_ref().last();
        let histogram = series.histograms.by_ref().last();
        // The newer of the two kinds (a series whose type changed).
        let (t, value) = match (float, histogram) {
            (Some((tf, v)), Some((th, h))) => {
                if th > tf {
                    (th, Value::Histogram(h))
                } else {
                    (tf, Value::Float(v))
                }
            }
            (Some((t, v)), None) => (t, Value::Float(v)),
            (None, Some((t, h))) => (t, Value::Histogram(h)),
            (None, None) => continue,
        };
        let stale = match &value {
            Value::Float(v) => is_stale_nan(*v),
            Value::Histogram(h) => h.is_stale(),
        };
        if stale {
            continue;
        }
        let name = series.labels.metric_name().unwrap_or_default().to_string();
        latest.push(Latest {
            name,
            labels: series.labels,
            t,
            value,
        });
    }
    // The merged order is by label set; a stable sort by name keeps it
    // within each name, so every name is one contiguous group.
    latest.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(latest)
}

/// The label pairs a federated series carries: its own (without the
/// name) and the external labels it lacks, sorted by name.
fn federated_labels<'a>(
    labels: &'a Labels,
    external: &'a [(String, String)],
) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<(&str, &str)> = labels
        .iter()
        .filter(|l| l.name.as_str() != "__name__")
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    for (name, value) in external {
        if labels.get(name).is_none() {
            pairs.push((name.as_str(), value.as_str()));
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
}

/// A histogram with custom bucket bounds, not a gauge: written as a
/// classic histogram in the text format.
fn is_classic_in_text(h: &FloatHistogram) -> bool {
    h.schema == CUSTOM_BUCKETS_SCHEMA && h.counter_reset_hint != CounterResetHint::Gauge
}

/// Writes `latest` as the text exposition format: a `# TYPE` line per
/// metric name, then one line per series with its timestamp. `external`
/// labels are added where a series lacks the label name. Custom-bucket
/// histograms become classic ones; other histograms are left out.
fn write_exposition(out: &mut String, latest: &[Latest], external: &[(String, String)]) {
    let mut previous: Option<(&str, bool)> = None;
    for sample in latest {
        let histogram = match &sample.value {
            Value::Float(_) => None,
            Value::Histogram(h) if is_classic_in_text(h) => Some(h),
            Value::Histogram(_) => continue,
        };
        let family = (sample.name.as_str(), histogram.is_some());
        if previous != Some(family) {
            let kind = if histogram.is_some() {
                "histogram"
            } else {
                "untyped"
            };
            let _ = writeln!(out, "# TYPE {} {kind}", sample.name);
            previous = Some(family);
        }
        let pairs = federated_labels(&sample.labels, external);
        match (&sample.value, histogram) {
            (Value::Float(v), _) => {
                write_line(out, &sample.name, "", &pairs, None, *v, sample.t);
            }
            (_, Some(h)) => {
                let bucket_name = format!("{}_bucket", sample.name);
                let mut cumulative = 0.0;
                let counts = custom_buckets(h);
                for (i, bound) in h.custom_values.iter().chain([&f64::INFINITY]).enumerate() {
                    cumulative += counts[i];
                    let count = if bound.is_infinite() {
                        h.count
                    } else {
                        cumulative
                    };
                    write_line(out, &bucket_name, "", &pairs, Some(*bound), count, sample.t);
                }
                write_line(out, &sample.name, "_sum", &pairs, None, h.sum, sample.t);
                write_line(out, &sample.name, "_count", &pairs, None, h.count, sample.t);
            }
            _ => {}
        }
    }
}

/// The count of every custom bucket, the `+Inf` one last (0 where no
/// span covers a bucket), in one walk over the spans.
fn custom_buckets(h: &FloatHistogram) -> Vec<f64> {
    let n = h.custom_values.len() + 1;
    let mut out = vec![0.0; n];
    let mut index = 0i64;
    let mut k = 0usize;
    for span in &h.positive_spans {
        index += i64::from(span.offset);
        for _ in 0..span.length {
            if let (Ok(i), Some(&count)) = (usize::try_from(index), h.positive_buckets.get(k))
                && i < n
            {
                out[i] = count;
            }
            index += 1;
            k += 1;
        }
    }
    out
}

/// One text line: `name suffix{pairs[,le]} value t`.
fn write_line(
    out: &mut String,
    name: &str,
    suffix: &str,
    pairs: &[(&str, &str)],
    le: Option<f64>,
    value: f64,
    t: i64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !pairs.is_empty() || le.is_some() {
        out.push('{');
        for (i, (name, value)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        if let Some(le) = le {
            if !pairs.is_empty() {
                out.push(',');
            }
            out.push_str("le=\"");
            crate::query::write_value(out, le);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    crate::query::write_value(out, value);
    let _ = writeln!(out, " {t}");
}

/// A histogram as the data model's message: native with exponential
/// buckets, classic with custom bounds, as Prometheus 3's federation
/// writes them; counts in integer fields when the histogram is an exact
/// integer histogram (Prometheus 2.x's parsers tell a native histogram by
/// its integer fields), in float fields otherwise.
fn histogram_message(h: &FloatHistogram) -> dto::Histogram {
    let integer = h.to_integer();
    let spans = |spans: &[model::histogram::Span]| {
        spans
            .iter()
            .map(|s| dto::BucketSpan {
                offset: Some(s.offset),
                length: Some(s.length),
            })
            .collect()
    };
    let (sample_count, sample_count_float) = match &integer {
        Some(i) => (Some(i.count), None),
        None => (None, Some(h.count)),
    };
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        let mut cumulative = 0.0;
        let counts = custom_buckets(h);
        let bucket = h
            .custom_values
            .iter()
            .enumerate()
            .map(|(i, &bound)| {
                cumulative += counts[i];
                let (count, count_float) = match integer {
                    Some(_) => (Some(cumulative as u64), None),
                    None => (None, Some(cumulative)),
                };
                dto::Bucket {
                    upper_bound: Some(bound),
                    cumulative_count: count,
                    cumulative_count_float: count_float,
                    ..dto::Bucket::default()
                }
            })
            .collect();
        return dto::Histogram {
            sample_sum: Some(h.sum),
            sample_count,
            sample_count_float,
            bucket,
            ..dto::Histogram::default()
        };
    }
    let mut message = dto::Histogram {
        sample_sum: Some(h.sum),
        sample_count,
        sample_count_float,
        schema: Some(h.schema),
        zero_threshold: Some(h.zero_threshold),
        negative_span: spans(&h.negative_spans),
        positive_span: spans(&h.positive_spans),
        ..dto::Histogram::default()
    };
    match integer {
        Some(i) => {
            message.zero_count = Some(i.zero_count);
            message.negative_delta = i.negative_buckets;
            message.positive_delta = i.positive_buckets;
        }
        None => {
            message.zero_count_float = Some(h.zero_count);
            message.negative_count = h.negative_buckets.clone();
            message.positive_count = h.positive_buckets.clone();
        }
    }
    message
}

/// Writes `latest` as length-delimited `MetricFamily` messages: one
/// family per run of one name and one kind (float, histogram, gauge
/// histogram), every metric with its timestamp.
fn write_protobuf(out: &mut Vec<u8>, latest: &[Latest], external: &[(String, String)]) {
    use prost::Message;
    let mut family: Option<(dto::MetricFamily, (&str, i32))> = None;
    let flush = |out: &mut Vec<u8>, family: Option<(dto::MetricFamily, (&str, i32))>| {
        if let Some((f, _)) = family {
            // Encoding into a Vec cannot fail.
            let _ = f.encode_length_delimited(out);
        }
    };
    for sample in latest {
        let kind = match &sample.value {
            Value::Float(_) => dto::UNTYPED,
            Value::Histogram(h) if h.counter_reset_hint == CounterResetHint::Gauge => {
                dto::GAUGE_HISTOGRAM
            }
            Value::Histogram(_) => dto::HISTOGRAM,
        };
        let key = (sample.name.as_str(), kind);
        if family.as_ref().is_none_or(|(_, k)| *k != key) {
            flush(out, family.take());
            family = Some((
                dto::MetricFamily {
                    name: Some(sample.name.clone()),
                    r#type: Some(kind),
                    ..dto::MetricFamily::default()
                },
                key,
            ));
        }
        let label = federated_labels(&sample.labels, external)
            .into_iter()
            .map(|(name, value)| dto::LabelPair {
                name: Some(name.to_string()),
                value: Some(value.to_string()),
            })
            .collect();
        let (untyped, histogram) = match &sample.value {
            Value::Float(v) => (Some(dto::SingleValue { value: Some(*v) }), None),
            Value::Histogram(h) => (None, Some(histogram_message(h))),
        };
        if let Some((f, _)) = family.as_mut() {
            f.metric.push(dto::Metric {
                label,
                untyped,
                timestamp_ms: Some(sample.t),
                histogram,
                ..dto::Metric::default()
            });
        }
    }
    flush(out, family);
}

/// Escapes a label value as the text format requires.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latest(labels: &[(&str, &str)], t: i64, v: f64) -> Latest {
        let labels = Labels::from_pairs(labels.iter().copied());
        Latest {
            name: labels.get("__name__").unwrap_or_default().to_string(),
            labels,
            t,
            value: Value::Float(v),
        }
    }

    #[test]
    fn newest_sample_in_the_left_open_window_unless_stale() {
        use model::STALE_NAN;
        use model::storage::Appendable;
        let storage = crate::testing::test_storage();
        let mut appender = storage.appender();
        let series = |name: &str| Labels::from_pairs([("__name__", name), ("job", "j")]);
        // Newest sample inside the window wins.
        appender.append(&series("m"), 100, 1.0).unwrap();
        appender.append(&series("m"), 900, 2.0).unwrap();
        // Ends with a staleness marker: gone.
        appender.append(&series("stale"), 500, 3.0).unwrap();
        appender.append(&series("stale"), 600, STALE_NAN).unwrap();
        // Exactly at the window's open start: outside.
        appender.append(&series("edge"), 0, 4.0).unwrap();
        // After "now": not yet.
        appender.append(&series("later"), 1001, 5.0).unwrap();
        appender.commit().unwrap();
        drop(appender);
        let all = vec![vec![Matcher::equal("job", "j")]];
        let got = newest_samples(storage.as_ref(), &all, 1, 1000).unwrap();
        let got: Vec<(String, i64, f64)> = got
            .into_iter()
            .map(|s| match s.value {
                Value::Float(v) => (s.name, s.t, v),
                Value::Histogram(_) => (s.name, s.t, f64::NAN),
            })
            .collect();
        assert_eq!(got, vec![("m".to_string(), 900, 2.0)]);
    }

    #[test]
    fn writes_groups_external_labels_and_escapes() {
        let samples = [
            latest(&[("__name__", "a"), ("job", "x\"y\\z\nw")], 1000, 1.5),
            latest(
                &[("__name__", "a"), ("job", "y"), ("zone", "own")],
                2000,
                -0.0,
            ),
            latest(&[("__name__", "b")], 3000, f64::INFINITY),
        ];
        let external = vec![
            ("zone".to_string(), "eu".to_string()),
            ("cluster".to_string(), "c1".to_string()),
        ];
        let mut out = String::new();
        write_exposition(&mut out, &samples, &external);
        assert_eq!(
            out,
            "# TYPE a untyped\n\
             a{cluster=\"c1\",job=\"x\\\"y\\\\z\\nw\",zone=\"eu\"} 1.5 1000\n\
             a{cluster=\"c1\",job=\"y\",zone=\"own\"} -0 2000\n\
             # TYPE b untyped\n\
             b{cluster=\"c1\",zone=\"eu\"} +Inf 3000\n"
        );
    }

    fn histogram(schema: i32, hint: CounterResetHint) -> FloatHistogram {
        use model::histogram::Span;
        let custom = schema == CUSTOM_BUCKETS_SCHEMA;
        FloatHistogram {
            counter_reset_hint: hint,
            schema,
            zero_threshold: if custom { 0.0 } else { 0.001 },
            zero_count: if custom { 0.0 } else { 1.0 },
            count: 7.0,
            sum: 3.5,
            positive_spans: vec![
                Span {
                    offset: 0,
                    length: 1,
                },
                Span {
                    offset: 1,
                    length: 1,
                },
            ],
            positive_buckets: vec![2.0, 4.0],
            custom_values: if custom { vec![0.5, 1.0, 2.5] } else { vec![] },
            ..FloatHistogram::default()
        }
    }

    fn latest_histogram(name: &str, h: FloatHistogram) -> Latest {
        Latest {
            name: name.to_string(),
            labels: Labels::from_pairs([("__name__", name), ("job", "j")]),
            t: 5000,
            value: Value::Histogram(h),
        }
    }

    /// The text format leaves exponential histograms out and writes
    /// counter histograms with custom buckets as classic ones.
    #[test]
    fn text_writes_custom_buckets_as_classic_and_skips_the_rest() {
        let samples = [
            latest(&[("__name__", "a")], 1000, 1.0),
            latest_histogram("b", histogram(3, CounterResetHint::Unknown)),
            latest_histogram(
                "c",
                histogram(CUSTOM_BUCKETS_SCHEMA, CounterResetHint::Unknown),
            ),
            latest_histogram(
                "d",
                histogram(CUSTOM_BUCKETS_SCHEMA, CounterResetHint::Gauge),
            ),
        ];
        let mut out = String::new();
        write_exposition(&mut out, &samples, &[]);
        assert_eq!(
            out,
            "# TYPE a untyped\n\
             a 1 1000\n\
             # TYPE c histogram\n\
             c_bucket{job=\"j\",le=\"0.5\"} 2 5000\n\
             c_bucket{job=\"j\",le=\"1\"} 2 5000\n\
             c_bucket{job=\"j\",le=\"2.5\"} 6 5000\n\
             c_bucket{job=\"j\",le=\"+Inf\"} 7 5000\n\
             c_sum{job=\"j\"} 3.5 5000\n\
             c_count{job=\"j\"} 7 5000\n"
        );
    }

    /// The protobuf answer reads back through the scrape crate's parser:
    /// floats untyped, native histograms as they were, custom buckets as
    /// a classic histogram, gauges as gauge histogram families.
    #[test]
    fn protobuf_reads_back_as_scraped() {
        use scrape::protobuf::{FlattenOptions, ProtoValue, decode_families, flatten};
        let native = histogram(3, CounterResetHint::Unknown);
        let gauge = histogram(-1, CounterResetHint::Gauge);
        let samples = [
            latest(&[("__name__", "a"), ("job", "x")], 1000, 1.5),
            latest(&[("__name__", "a"), ("job", "y")], 2000, 2.5),
            latest_histogram("b", native.clone()),
            latest_histogram("b", gauge.clone()),
            latest_histogram(
                "c",
                histogram(CUSTOM_BUCKETS_SCHEMA, CounterResetHint::Unknown),
            ),
        ];
        let external = vec![("site".to_string(), "lab".to_string())];
        let mut out = Vec::new();
        write_protobuf(&mut out, &samples, &external);
        let families = decode_families(&out).unwrap();
        let shape: Vec<(String, i32, usize)> = families
            .iter()
            .map(|f| {
                (
                    f.name.clone().unwrap_or_default(),
                    f.r#type.unwrap_or(-1),
                    f.metric.len(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("a".to_string(), dto::UNTYPED, 2),
                ("b".to_string(), dto::HISTOGRAM, 1),
                ("b".to_string(), dto::GAUGE_HISTOGRAM, 1),
                ("c".to_string(), dto::HISTOGRAM, 1),
            ]
        );
        let options = FlattenOptions {
            native: true,
            classic_with_native: false,
            nhcb: false,
        };
        let value = |f: usize| {
            let family = &families[f];
            let metric = &family.metric[0];
            assert_eq!(metric.timestamp_ms, Some(if f == 0 { 1000 } else { 5000 }));
            let labels: Vec<(String, String)> = metric
                .label
                .iter()
                .map(|l| {
                    (
                        l.name.clone().unwrap_or_default(),
                        l.value.clone().unwrap_or_default(),
                    )
                })
                .collect();
            assert_eq!(
                labels.last(),
                Some(&("site".to_string(), "lab".to_string()))
            );
            flatten(
                family.name.as_deref().unwrap_or(""),
                family.r#type.unwrap_or(-1),
                metric,
                options,
            )
            .unwrap()
        };
        assert_eq!(value(0)[0].value, ProtoValue::Float(1.5));
        let strip = |mut h: FloatHistogram| {
            h.counter_reset_hint = CounterResetHint::Unknown;
            h
        };
        // Exact integer histograms go in integer form.
        let as_float = |v: &ProtoValue| match v {
            ProtoValue::Histogram(h) => h.to_float(),
            other => panic!("{other:?}"),
        };
        assert_eq!(strip(as_float(&value(1)[0].value)), native);
        let read_gauge = as_float(&value(2)[0].value);
        assert_eq!(read_gauge.counter_reset_hint, CounterResetHint::Gauge);
        assert_eq!(strip(read_gauge), strip(gauge.clone()));
        // A float one in float form.
        let mut fractional = native.clone();
        fractional.positive_buckets[0] = 2.5;
        fractional.count = 7.5;
        let mut out = Vec::new();
        write_protobuf(&mut out, &[latest_histogram("f", fractional.clone())], &[]);
        let families = decode_families(&out).unwrap();
        match &flatten("f", dto::HISTOGRAM, &families[0].metric[0], options).unwrap()[0].value {
            ProtoValue::FloatHistogram(h) => assert_eq!(strip(h.clone()), fractional),
            other => panic!("{other:?}"),
        }
        // The classic form: three bounds, the sum and the count.
        let classic: Vec<(&str, Option<f64>, f64)> = value(3)
            .iter()
            .map(|s| match s.value {
                ProtoValue::Float(v) => (s.suffix, s.extra.map(|e| e.1), v),
                _ => panic!("classic samples are floats"),
            })
            .collect();
        assert_eq!(
            classic,
            vec![
                ("_bucket", Some(0.5), 2.0),
                ("_bucket", Some(1.0), 2.0),
                ("_bucket", Some(2.5), 6.0),
                ("_bucket", Some(f64::INFINITY), 7.0),
                ("_sum", None, 3.5),
                ("_count", None, 7.0),
            ]
        );
    }

    #[test]
    fn accept_headers_choose_the_format() {
        assert!(wants_protobuf(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3"
        ));
        assert!(!wants_protobuf("text/plain;version=0.0.4"));
        assert!(!wants_protobuf(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"
        ));
    }
}
