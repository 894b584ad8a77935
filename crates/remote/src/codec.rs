//! Remote write 1.0: the protobuf messages (`prometheus.WriteRequest` and
//! friends, written out by hand with prost's derive, used to encode) and
//! the decoding and validation the `/api/v1/write` handler runs before
//! appending anything.
//!
//! Decoding is bounded: the snappy block header states the decompressed
//! length, which is checked against a limit before the buffer is
//! allocated, and the protobuf is walked in place ([`crate::decode`]), so
//! nothing is allocated per label.

use model::{Labels, METRIC_NAME};

/// `prometheus.WriteRequest`. Field 2 is reserved upstream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value and a timestamp in milliseconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`; the receiver reads it with `decode` (borrowed).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.Histogram` (a native histogram sample). Upstream's `count`
/// and `zero_count` are `oneof`s of an integer and a float field; as
/// proto3 `optional` fields they have the same wire form. Integer
/// histograms carry bucket deltas, float ones absolute counts. Used to
/// encode (tests, benchmarks); the receiver reads with `decode`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    pub count_int: Option<u64>,
    #[prost(double, optional, tag = "2")]
    pub count_float: Option<f64>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(uint64, optional, tag = "6")]
    pub zero_count_int: Option<u64>,
    #[prost(double, optional, tag = "7")]
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// `prometheus.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// Remote write 2.0's messages (`io.prometheus.write.v2`), written out by
/// hand with prost's derive, to encode (the sender, tests); the receiver
/// reads with `decode::v2`. A `Histogram` is 1.0's message.
pub mod v2 {
    pub use super::{BucketSpan, Histogram};

    /// `io.prometheus.write.v2.Request`. Fields 1 to 3 are reserved.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// Every string the series refer to; the first is `""`.
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Name and value references into the symbols, in pairs.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<Histogram>,
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
        /// The spec's later per-sample start (created) timestamp; 0 for
        /// none. osprey's sender leaves it 0.
        #[prost(int64, tag = "3")]
        pub start_timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// `Metadata`: type (0 unspecified, 1 counter, 2 gauge, 3 histogram,
    /// 4 gauge histogram, 5 summary, 6 info, 7 state set), help and unit
    /// as symbol references.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }

    /// Builds a symbols table: `""` first, each string once.
    #[derive(Default)]
    pub struct Symbols {
        table: Vec<String>,
        index: std::collections::HashMap<String, u32>,
    }

    impl Symbols {
        pub fn new() -> Symbols {
            let mut symbols = Symbols::default();
            symbols.reference("");
            symbols
        }

        /// The reference of `text`, added when new.
        pub fn reference(&mut self, text: &str) -> u32 {
            if let Some(reference) = self.index.get(text) {
                return *reference;
            }
            let reference = u32::try_from(self.table.len()).unwrap_or(u32::MAX);
            self.table.push(text.to_string());
            self.index.insert(text.to_string(), reference);
            reference
        }

        /// Name and value references of label pairs.
        pub fn label_refs<'l>(
            &mut self,
            labels: impl IntoIterator<Item = (&'l str, &'l str)>,
        ) -> Vec<u32> {
            let mut refs = Vec::new();
            for (name, value) in labels {
                refs.push(self.reference(name));
                refs.push(self.reference(value));
            }
            refs
        }

        pub fn into_table(self) -> Vec<String> {
            self.table
        }
    }
}

impl Histogram {
    /// The message of an integer histogram at `timestamp`.
    pub fn from_integer(timestamp: i64, h: &model::histogram::Histogram) -> Histogram {
        let spans = |list: &[model::histogram::Span]| {
            list.iter()
                .map(|s| BucketSpan {
                    offset: s.offset,
                    length: s.length,
                })
                .collect()
        };
        Histogram {
            count_int: Some(h.count),
            count_float: None,
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count_int: Some(h.zero_count),
            zero_count_float: None,
            negative_spans: spans(&h.negative_spans),
            negative_deltas: h.negative_buckets.clone(),
            negative_counts: Vec::new(),
            positive_spans: spans(&h.positive_spans),
            positive_deltas: h.positive_buckets.clone(),
            positive_counts: Vec::new(),
            reset_hint: h.counter_reset_hint as i32,
            timestamp,
            custom_values: h.custom_values.clone(),
        }
    }

    /// The message of a float histogram at `timestamp`.
    pub fn from_float(timestamp: i64, h: &model::histogram::FloatHistogram) -> Histogram {
        let spans = |list: &[model::histogram::Span]| {
            list.iter()
                .map(|s| BucketSpan {
                    offset: s.offset,
                    length: s.length,
                })
                .collect()
        };
        Histogram {
            count_int: None,
            count_float: Some(h.count),
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count_int: None,
            zero_count_float: Some(h.zero_count),
            negative_spans: spans(&h.negative_spans),
            negative_deltas: Vec::new(),
            negative_counts: h.negative_buckets.clone(),
            positive_spans: spans(&h.positive_spans),
            positive_deltas: Vec::new(),
            positive_counts: h.positive_buckets.clone(),
            reset_hint: h.counter_reset_hint as i32,
            timestamp,
            custom_values: h.custom_values.clone(),
        }
    }
}

impl Histogram {
    /// The histogram this message holds, in float form, checked as the
    /// remote write receiver checks it (a stored staleness marker passes:
    /// its sum is the marker NaN). Integer messages are those without a
    /// float count.
    pub fn to_model(&self) -> Result<model::histogram::FloatHistogram, String> {
        let spans = |list: &[BucketSpan]| -> Vec<model::histogram::Span> {
            list.iter()
                .map(|s| model::histogram::Span {
                    offset: s.offset,
                    length: s.length,
                })
                .collect()
        };
        let hint = u8::try_from(self.reset_hint)
            .ok()
            .and_then(model::histogram::CounterResetHint::from_u8)
            .ok_or_else(|| format!("unknown counter reset hint {}", self.reset_hint))?;
        let float = match self.count_float {
            Some(count) => {
                let h = model::histogram::FloatHistogram {
                    counter_reset_hint: hint,
                    schema: self.schema,
                    zero_threshold: self.zero_threshold,
                    zero_count: self.zero_count_float.unwrap_or(0.0),
                    count,
                    sum: self.sum,
                    positive_spans: spans(&self.positive_spans),
                    negative_spans: spans(&self.negative_spans),
                    positive_buckets: self.positive_counts.clone(),
                    negative_buckets: self.negative_counts.clone(),
                    custom_values: self.custom_values.clone(),
                };
                h.validate().map_err(|e| e.to_string())?;
                h
            }
            None => {
                let h = model::histogram::Histogram {
                    counter_reset_hint: hint,
                    schema: self.schema,
                    zero_threshold: self.zero_threshold,
                    zero_count: self.zero_count_int.unwrap_or(0),
                    count: self.count_int.unwrap_or(0),
                    sum: self.sum,
                    positive_spans: spans(&self.positive_spans),
                    negative_spans: spans(&self.negative_spans),
                    positive_buckets: self.positive_deltas.clone(),
                    negative_buckets: self.negative_deltas.clone(),
                    custom_values: self.custom_values.clone(),
                };
                h.validate().map_err(|e| e.to_string())?;
                h.to_float()
            }
        };
        Ok(float)
    }
}

/// `prometheus.MetricMetadata`; the receiver skips it unread for now.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Why a remote write body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteWriteError {
    /// The decompressed body would exceed the limit (HTTP 413).
    #[error("decompressed body of {length} bytes exceeds the limit of {limit} bytes")]
    TooLarge { length: usize, limit: usize },
    #[error("snappy decode error: {0}")]
    Snappy(String),
    #[error("protobuf decode error: {0}")]
    Protobuf(String),
    /// A series' labels are invalid; nothing of the request is stored.
    #[error("invalid labels in series {series}: {message}")]
    InvalidLabels { series: String, message: String },
}

/// One series of a decoded request, validated: its labels and samples in
/// request order.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedSeries {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// Decompresses a snappy block-format body, refusing before allocation when
/// the stated length exceeds `max_decompressed_bytes`.
pub fn decompress_snappy(
    body: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<u8>, RemoteWriteError> {
    let length =
        snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if length > max_decompressed_bytes {
        return Err(RemoteWriteError::TooLarge {
            length,
            limit: max_decompressed_bytes,
        });
    }
    let mut out = vec![0u8; length];
    let written = snap::raw::Decoder::new()
        .decompress(body, &mut out)
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    out.truncate(written);
    Ok(out)
}

/// Walks an uncompressed protobuf `WriteRequest` without copying it (see
/// [`crate::decode`]), validates each series' labels, and calls
/// `on_series(labels, samples)` for every valid series that has samples.
/// Labels are as sent (any order; empty values are later dropped by the
/// storage). The first invalid series stops the walk with an error, so a
/// caller that stages into one appender and commits only on `Ok` stores
/// nothing of a bad request. Exemplars are skipped; see
/// [`visit_write_request_with_exemplars`].
pub fn visit_write_request<'a, E: From<RemoteWriteError>>(
    raw: &'a [u8],
    mut on_series: impl FnMut(&[(&'a str, &'a str)], &[(i64, f64)]) -> Result<(), E>,
) -> Result<(), E> {
    visit_write_request_with_exemplars(raw, |labels, samples, _| {
        if samples.is_empty() {
            return Ok(());
        }
        on_series(labels, samples)
    })
}

/// Like [`visit_write_request`], and hands each series' exemplars over
/// too: `on_series(labels, samples, exemplars)` is called for every valid
/// series with samples or exemplars (Prometheus sends exemplars in series
/// of their own, without samples). Histograms are skipped.
pub fn visit_write_request_with_exemplars<'a, E: From<RemoteWriteError>>(
    raw: &'a [u8],
    mut on_series: impl FnMut(
        &[(&'a str, &'a str)],
        &[(i64, f64)],
        &[crate::decode::RawExemplar<'a>],
    ) -> Result<(), E>,
) -> Result<(), E> {
    visit_write_request_full(raw, |labels, samples, exemplars, histograms| {
        if samples.is_empty() && exemplars.is_empty() && !histograms.is_empty() {
            return Ok(());
        }
        on_series(labels, samples, exemplars)
    })
}

/// Like [`visit_write_request_with_exemplars`], and hands each series'
/// native histograms over too (not yet validated: the appender does,
/// with Prometheus's rules).
pub fn visit_write_request_full<'a, E: From<RemoteWriteError>>(
    raw: &'a [u8],
    mut on_series: impl FnMut(
        &[(&'a str, &'a str)],
        &[(i64, f64)],
        &[crate::decode::RawExemplar<'a>],
        &[crate::decode::RawHistogram],
    ) -> Result<(), E>,
) -> Result<(), E> {
    let mut names: Vec<&str> = Vec::new();
    crate::decode::decode_write_request_with_histograms::<VisitError<E>>(
        raw,
        |labels, samples, exemplars, histograms| {
            validate_labels(labels, &mut names).map_err(VisitError::Caller)?;
            if samples.is_empty() && exemplars.is_empty() && histograms.is_empty() {
                return Ok(());
            }
            on_series(labels, samples, exemplars, histograms).map_err(VisitError::Caller)
        },
    )
    .map_err(|e| match e {
        VisitError::Decode(d) => E::from(RemoteWriteError::Protobuf(d.to_string())),
        VisitError::Caller(e) => e,
    })
}

/// Remote write 2.0: walks an uncompressed `io.prometheus.write.v2.Request`
/// without copying it, resolves each series' labels from the symbols
/// table, validates them as [`visit_write_request_full`] does, and calls
/// `on_series(labels, samples, exemplars, histograms, extras)` for every
/// series (also one with nothing but metadata). The first invalid series
/// or reference stops the walk with an error.
pub fn visit_write_request_v2<'a, E: From<RemoteWriteError>>(
    raw: &'a [u8],
    mut on_series: impl FnMut(
        &[(&'a str, &'a str)],
        &[(i64, f64)],
        &[crate::decode::RawExemplar<'a>],
        &[crate::decode::RawHistogram],
        crate::decode::v2::SeriesExtras<'a, '_>,
    ) -> Result<(), E>,
) -> Result<(), E> {
    let mut names: Vec<&str> = Vec::new();
    crate::decode::v2::decode_write_request_v2::<VisitError<E>>(
        raw,
        |labels, samples, exemplars, histograms, extras| {
            validate_labels(labels, &mut names).map_err(VisitError::Caller)?;
            on_series(labels, samples, exemplars, histograms, extras).map_err(VisitError::Caller)
        },
    )
    .map_err(|e| match e {
        VisitError::Decode(d) => E::from(RemoteWriteError::Protobuf(d.to_string())),
        VisitError::Caller(e) => e,
    })
}

/// A series' labels as Prometheus's receiver checks them: no duplicate or
/// empty name, and a non-empty `__name__`. `names` is scratch space.
fn validate_labels<'a, E: From<RemoteWriteError>>(
    labels: &[(&'a str, &'a str)],
    names: &mut Vec<&'a str>,
) -> Result<(), E> {
    let invalid = |message: String| {
        E::from(RemoteWriteError::InvalidLabels {
            series: describe_labels(labels),
            message,
        })
    };
    if !model::labels::pairs_are_normalized(labels) {
        names.clear();
        names.extend(labels.iter().map(|(n, _)| *n));
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!("duplicate label name {:?}", pair[0])));
        }
        if names.first() == Some(&"") {
            return Err(invalid("empty label name".to_string()));
        }
    }
    if !labels
        .iter()
        .any(|(n, v)| *n == METRIC_NAME && !v.is_empty())
    {
        return Err(invalid("missing metric name (__name__ label)".to_string()));
    }
    Ok(())
}

enum VisitError<E> {
    Decode(crate::decode::DecodeError),
    Caller(E),
}

impl<E> From<crate::decode::DecodeError> for VisitError<E> {
    fn from(e: crate::decode::DecodeError) -> Self {
        VisitError::Decode(e)
    }
}

/// The full path, collected: snappy, protobuf, validation. The handler
/// streams through [`visit_write_request`] instead; this form serves
/// tests and the fuzz target.
pub fn decode_remote_write(
    body: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<ValidatedSeries>, RemoteWriteError> {
    let raw = decompress_snappy(body, max_decompressed_bytes)?;
    let mut out = Vec::new();
    visit_write_request::<RemoteWriteError>(&raw, |labels, samples| {
        out.push(ValidatedSeries {
            labels: Labels::from_pairs(labels.iter().copied()),
            samples: samples.to_vec(),
        });
        Ok(())
    })?;
    Ok(out)
}

/// `{a="1", b="2"}` for messages, bounded so a huge label set cannot make
/// a huge error.
fn describe_labels(labels: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{}={:?}", l.0, l.1));
        if out.len() > 512 {
            out.push_str(", ...");
            break;
        }
    }
    out.push('}');
    out
}

/// Encodes a request the way a remote write sender does (protobuf, then
/// snappy block format). Used by tests and benchmarks.
pub fn encode_remote_write(request: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(request);
    // Compressing an in-memory buffer fails only when the input exceeds
    // snappy's 4 GiB limit, which a test body never does.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            exemplars: vec![],
            histograms: vec![],
        }
    }

    #[test]
    fn round_trips_a_request() {
        let request = WriteRequest {
            timeseries: vec![series(
                &[("__name__", "up"), ("job", "a"), ("empty", "")],
                &[(1, 1.5)],
            )],
            metadata: vec![],
        };
        let decoded = decode_remote_write(&encode_remote_write(&request), 1 << 20).unwrap();
        assert_eq!(
            decoded,
            vec![ValidatedSeries {
                labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
                samples: vec![(1, 1.5)],
            }]
        );
    }

    #[test]
    fn refuses_bad_series() {
        for (labels, needle) in [
            (
                vec![("__name__", "up"), ("a", "1"), ("a", "2")],
                "duplicate label name \"a\"",
            ),
            (vec![("__name__", "up"), ("", "1")], "empty label name"),
            (vec![("job", "x")], "missing metric name"),
            (vec![("__name__", ""), ("job", "x")], "missing metric name"),
        ] {
            let request = WriteRequest {
                timeseries: vec![
                    series(&[("__name__", "ok")], &[(1, 1.0)]),
                    series(&labels, &[(1, 1.0)]),
                ],
                metadata: vec![],
            };
            let body = encode_remote_write(&request);
            let err = decode_remote_write(&body, 1 << 20).unwrap_err();
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn refuses_oversized_before_allocating() {
        // A snappy header claiming 1 GiB followed by nothing.
        let mut body = Vec::new();
        let mut n: u64 = 1 << 30;
        while n >= 0x80 {
            body.push((n as u8) | 0x80);
            n >>= 7;
        }
        body.push(n as u8);
        assert_eq!(
            decompress_snappy(&body, 64 << 20),
            Err(RemoteWriteError::TooLarge {
                length: 1 << 30,
                limit: 64 << 20
            })
        );
    }

    #[test]
    fn reports_snappy_and_protobuf_errors() {
        assert!(matches!(
            decode_remote_write(b"\xff\xff\xff\xff\xff\xff", 1 << 20),
            Err(RemoteWriteError::Snappy(_))
        ));
        let not_protobuf = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff\xff")
            .unwrap();
        assert!(matches!(
            decode_remote_write(&not_protobuf, 1 << 20),
            Err(RemoteWriteError::Protobuf(_))
        ));
    }
}
