//! A zero-copy decoder for remote-write 1.0 `WriteRequest` protobufs.
//!
//! Remote write repeats every label of a series with every sample batch,
//! so a decoder that allocates a `String` per label spends most of the
//! ingest path in the allocator. This one walks the protobuf wire format
//! directly and hands each time series to a callback as borrowed `&str`
//! pairs and a sample slice, reusing two buffers for the whole request.
//!
//! Only the fields osprey stores are interpreted: `WriteRequest.timeseries`
//! (1); `TimeSeries.labels` (1), `.samples` (2) and `.exemplars` (3);
//! `Label.name` (1) and `.value` (2); `Sample.value` (1, double) and
//! `.timestamp` (2, int64); `Exemplar.labels` (1), `.value` (2, double)
//! and `.timestamp` (3, int64); `TimeSeries.histograms` (4), every field
//! of `Histogram` (integer and float counts, spans, deltas or counts,
//! reset hint, timestamp, custom bounds; repeated scalars packed or not).
//! Every other field (metadata, unknown fields) is skipped by wire type,
//! so newer senders do not break older receivers.

use std::fmt;

use model::histogram::{CounterResetHint, FloatHistogram, Histogram, Span};

pub mod v2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
}

impl DecodeError {
    fn new(message: impl Into<String>) -> DecodeError {
        DecodeError {
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid remote-write protobuf: {}", self.message)
    }
}

impl std::error::Error for DecodeError {}

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_FIXED32: u64 = 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Tags and short lengths are one byte: the common case.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError::new("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::new("varint longer than 10 bytes"))
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let end = self.pos.checked_add(8).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(DecodeError::new("truncated fixed64"));
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end;
        Ok(u64::from_le_bytes(b))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| DecodeError::new("length-delimited field runs past the end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, wire: u64) -> Result<(), DecodeError> {
        match wire {
            WIRE_VARINT => self.varint().map(|_| ()),
            WIRE_FIXED64 => self.fixed64().map(|_| ()),
            WIRE_LEN => self.bytes().map(|_| ()),
            WIRE_FIXED32 => {
                let end = self.pos.checked_add(4).filter(|&e| e <= self.buf.len());
                self.pos = end.ok_or_else(|| DecodeError::new("truncated fixed32"))?;
                Ok(())
            }
            w => Err(DecodeError::new(format!("unsupported wire type {w}"))),
        }
    }

    /// Next (field number, wire type).
    fn key(&mut self) -> Result<(u64, u64), DecodeError> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(DecodeError::new("field number 0"));
        }
        Ok((field, k & 7))
    }
}

#[inline]
fn utf8<'a>(b: &'a [u8], what: &str) -> Result<&'a str, DecodeError> {
    // Label strings are nearly always ASCII, which is checked a word at a
    // time and is valid UTF-8 by definition.
    if b.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(b) });
    }
    std::str::from_utf8(b).map_err(|_| DecodeError::new(format!("{what} is not valid UTF-8")))
}

/// One `prometheus.Exemplar` as sent: labels borrowed from the request,
/// in the order sent.
#[derive(Clone, Debug, PartialEq)]
pub struct RawExemplar<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub value: f64,
    /// Milliseconds; 0 when the sender left it out.
    pub timestamp: i64,
}

/// One `prometheus.Histogram` as sent: integer counts (`count_int`, bucket
/// deltas) or float counts (`count_float`, absolute bucket counts).
#[derive(Clone, Debug, PartialEq)]
pub enum RawHistogram {
    Integer {
        timestamp: i64,
        histogram: Histogram,
    },
    Float {
        timestamp: i64,
        histogram: FloatHistogram,
    },
}

impl RawHistogram {
    pub fn timestamp(&self) -> i64 {
        match self {
            RawHistogram::Integer { timestamp, .. } | RawHistogram::Float { timestamp, .. } => {
                *timestamp
            }
        }
    }
}

/// Decodes a `WriteRequest` and calls `on_series(labels, samples,
/// exemplars)` once per time series, in message order. Histograms are
/// skipped; see [`decode_write_request_with_histograms`]. Labels are as sent
/// (order and duplicates are the caller's to check). An error from the
/// callback stops decoding and is returned as is.
#[cfg(test)]
pub fn decode_write_request<'a, E: From<DecodeError>>(
    buf: &'a [u8],
    mut on_series: impl FnMut(&[(&'a str, &'a str)], &[(i64, f64)], &[RawExemplar<'a>]) -> Result<(), E>,
) -> Result<(), E> {
    walk(buf, false, |labels, samples, exemplars, _| {
        on_series(labels, samples, exemplars)
    })
}

/// Like [`decode_write_request`], with each series' native histograms as
/// a fourth argument.
pub fn decode_write_request_with_histograms<'a, E: From<DecodeError>>(
    buf: &'a [u8],
    on_series: impl FnMut(
        &[(&'a str, &'a str)],
        &[(i64, f64)],
        &[RawExemplar<'a>],
        &[RawHistogram],
    ) -> Result<(), E>,
) -> Result<(), E> {
    walk(buf, true, on_series)
}

fn walk<'a, E: From<DecodeError>>(
    buf: &'a [u8],
    with_histograms: bool,
    mut on_series: impl FnMut(
        &[(&'a str, &'a str)],
        &[(i64, f64)],
        &[RawExemplar<'a>],
        &[RawHistogram],
    ) -> Result<(), E>,
) -> Result<(), E> {
    let mut labels: Vec<(&'a str, &'a str)> = Vec::new();
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut exemplars: Vec<RawExemplar<'a>> = Vec::new();
    let mut histograms: Vec<RawHistogram> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 1 && wire == WIRE_LEN {
            let ts = r.bytes()?;
            labels.clear();
            samples.clear();
            exemplars.clear();
            histograms.clear();
            let histograms_out = with_histograms.then_some(&mut histograms);
            decode_time_series(
                ts,
                &mut labels,
                &mut samples,
                &mut exemplars,
                histograms_out,
            )?;
            on_series(&labels, &samples, &exemplars, &histograms)?;
        } else {
            r.skip(wire)?;
        }
    }
    Ok(())
}

/// The most spans, buckets or bounds one histogram may carry: what the
/// storage accepts, and a bound on the memory a request can claim.
const MAX_HISTOGRAM_ITEMS: usize = 1 << 16;

/// Calls `each` for the values of a repeated scalar field: one value
/// (unpacked) or a packed run (wire type 2).
fn repeated<'a>(
    r: &mut Reader<'a>,
    wire: u64,
    scalar_wire: u64,
    out_len: usize,
    mut each: impl FnMut(u64),
) -> Result<(), DecodeError> {
    let mut one = |r: &mut Reader<'a>| -> Result<(), DecodeError> {
        let v = if scalar_wire == WIRE_FIXED64 {
            r.fixed64()?
        } else {
            r.varint()?
        };
        each(v);
        Ok(())
    };
    let mut n = out_len;
    let check = |n: &mut usize| -> Result<(), DecodeError> {
        *n += 1;
        if *n > MAX_HISTOGRAM_ITEMS {
            return Err(DecodeError::new("histogram has too many buckets"));
        }
        Ok(())
    };
    if wire == WIRE_LEN {
        let mut packed = Reader::new(r.bytes()?);
        while !packed.done() {
            check(&mut n)?;
            one(&mut packed)?;
        }
        Ok(())
    } else if wire == scalar_wire {
        check(&mut n)?;
        one(r)
    } else {
        r.skip(wire)
    }
}

fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn decode_span(buf: &[u8]) -> Result<Span, DecodeError> {
    let mut r = Reader::new(buf);
    let mut span = Span::default();
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            // sint32: zigzag; a value outside i32 is corrupt.
            (1, WIRE_VARINT) => {
                span.offset = i32::try_from(zigzag64(r.varint()?))
                    .map_err(|_| DecodeError::new("span offset out of range"))?;
            }
            (2, WIRE_VARINT) => {
                span.length = u32::try_from(r.varint()?)
                    .map_err(|_| DecodeError::new("span length out of range"))?;
            }
            _ => r.skip(w)?,
        }
    }
    Ok(span)
}

fn decode_histogram(buf: &[u8]) -> Result<RawHistogram, DecodeError> {
    let mut r = Reader::new(buf);
    let mut float_count: Option<f64> = None;
    let mut int_count: u64 = 0;
    let mut float_zero: Option<f64> = None;
    let mut int_zero: u64 = 0;
    let mut sum = 0.0;
    let mut schema = 0i32;
    let mut zero_threshold = 0.0;
    let (mut negative_spans, mut positive_spans) = (Vec::new(), Vec::new());
    let (mut negative_deltas, mut positive_deltas) = (Vec::new(), Vec::new());
    let (mut negative_counts, mut positive_counts) = (Vec::new(), Vec::new());
    let mut hint = CounterResetHint::Unknown;
    let mut timestamp = 0i64;
    let mut custom_values = Vec::new();
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            (1, WIRE_VARINT) => {
                int_count = r.varint()?;
                float_count = None;
            }
            (2, WIRE_FIXED64) => float_count = Some(f64::from_bits(r.fixed64()?)),
            (3, WIRE_FIXED64) => sum = f64::from_bits(r.fixed64()?),
            (4, WIRE_VARINT) => {
                schema = i32::try_from(zigzag64(r.varint()?))
                    .map_err(|_| DecodeError::new("histogram schema out of range"))?;
            }
            (5, WIRE_FIXED64) => zero_threshold = f64::from_bits(r.fixed64()?),
            (6, WIRE_VARINT) => {
                int_zero = r.varint()?;
                float_zero = None;
            }
            (7, WIRE_FIXED64) => float_zero = Some(f64::from_bits(r.fixed64()?)),
            (8 | 11, WIRE_LEN) => {
                let spans = if f == 8 {
                    &mut negative_spans
                } else {
                    &mut positive_spans
                };
                if spans.len() >= MAX_HISTOGRAM_ITEMS {
                    return Err(DecodeError::new("histogram has too many spans"));
                }
                spans.push(decode_span(r.bytes()?)?);
            }
            (9 | 12, _) => {
                let deltas = if f == 9 {
                    &mut negative_deltas
                } else {
                    &mut positive_deltas
                };
                let len = deltas.len();
                repeated(&mut r, w, WIRE_VARINT, len, |v| deltas.push(zigzag64(v)))?;
            }
            (10 | 13, _) => {
                let counts = if f == 10 {
                    &mut negative_counts
                } else {
                    &mut positive_counts
                };
                let len = counts.len();
                repeated(&mut r, w, WIRE_FIXED64, len, |v| {
                    counts.push(f64::from_bits(v))
                })?;
            }
            (14, WIRE_VARINT) => {
                // An unknown hint (a newer sender) reads as unknown.
                hint = u8::try_from(r.varint()?)
                    .ok()
                    .and_then(CounterResetHint::from_u8)
                    .unwrap_or(CounterResetHint::Unknown);
            }
            (15, WIRE_VARINT) => timestamp = r.varint()? as i64,
            (16, _) => {
                let len = custom_values.len();
                repeated(&mut r, w, WIRE_FIXED64, len, |v| {
                    custom_values.push(f64::from_bits(v))
                })?;
            }
            _ => r.skip(w)?,
        }
    }
    Ok(match float_count {
        Some(count) => RawHistogram::Float {
            timestamp,
            histogram: FloatHistogram {
                counter_reset_hint: hint,
                schema,
                zero_threshold,
                zero_count: float_zero.unwrap_or(int_zero as f64),
                count,
                sum,
                positive_spans,
                negative_spans,
                positive_buckets: positive_counts,
                negative_buckets: negative_counts,
                custom_values,
            },
        },
        None => RawHistogram::Integer {
            timestamp,
            histogram: Histogram {
                counter_reset_hint: hint,
                schema,
                zero_threshold,
                zero_count: int_zero,
                count: int_count,
                sum,
                positive_spans,
                negative_spans,
                positive_buckets: positive_deltas,
                negative_buckets: negative_deltas,
                custom_values,
            },
        },
    })
}

/// The length of the longest prefix of `bytes` that is ASCII, found eight
/// bytes at a time.
fn ascii_prefix_len(bytes: &[u8]) -> usize {
    let (words, _) = bytes.as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let high = u64::from_le_bytes(*word) & 0x8080_8080_8080_8080;
        if high != 0 {
            return index * 8 + (high.trailing_zeros() / 8) as usize;
        }
    }
    let mut at = words.len() * 8;
    while bytes.get(at).is_some_and(u8::is_ascii) {
        at += 1;
    }
    at
}

/// A `Label` message: name and value, empty when absent. `ascii` says
/// the caller found the whole message ASCII, which needs no UTF-8 check.
#[inline]
fn decode_label(buf: &[u8], ascii: bool) -> Result<(&str, &str), DecodeError> {
    // What every sender writes: the name (field 1) then the value (field
    // 2), each shorter than 128 bytes, nothing else. Read that layout
    // directly; anything else (and any error) takes the general loop.
    if let [0x0a, name_len, rest @ ..] = buf
        && *name_len < 0x80
        && let Some((name, rest)) = rest.split_at_checked(usize::from(*name_len))
        && let [0x12, value_len, value @ ..] = rest
        && *value_len < 0x80
        && usize::from(*value_len) == value.len()
    {
        if ascii {
            // SAFETY: ASCII is valid UTF-8, and the caller checked that
            // every byte of the message is ASCII.
            return Ok(unsafe {
                (
                    std::str::from_utf8_unchecked(name),
                    std::str::from_utf8_unchecked(value),
                )
            });
        }
        return Ok((utf8(name, "label name")?, utf8(value, "label value")?));
    }
    decode_label_fields(buf)
}

/// [`decode_label`] for any field order, repetition or unknown field.
fn decode_label_fields(buf: &[u8]) -> Result<(&str, &str), DecodeError> {
    let mut lr = Reader::new(buf);
    let (mut name, mut value) = ("", "");
    while !lr.done() {
        let (f, w) = lr.key()?;
        match (f, w) {
            (1, WIRE_LEN) => name = utf8(lr.bytes()?, "label name")?,
            (2, WIRE_LEN) => value = utf8(lr.bytes()?, "label value")?,
            _ => lr.skip(w)?,
        }
    }
    Ok((name, value))
}

fn decode_exemplar<'a>(buf: &'a [u8]) -> Result<RawExemplar<'a>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut exemplar = RawExemplar {
        labels: Vec::new(),
        value: 0.0,
        timestamp: 0,
    };
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            (1, WIRE_LEN) => exemplar.labels.push(decode_label(r.bytes()?, false)?),
            (2, WIRE_FIXED64) => exemplar.value = f64::from_bits(r.fixed64()?),
            (3, WIRE_VARINT) => exemplar.timestamp = r.varint()? as i64,
            _ => r.skip(w)?,
        }
    }
    Ok(exemplar)
}

fn decode_time_series<'a>(
    buf: &'a [u8],
    labels: &mut Vec<(&'a str, &'a str)>,
    samples: &mut Vec<(i64, f64)>,
    exemplars: &mut Vec<RawExemplar<'a>>,
    mut histograms: Option<&mut Vec<RawHistogram>>,
) -> Result<(), DecodeError> {
    // A series' labels come first, and are nearly always ASCII: one pass
    // over the series' bytes up to its first non-ASCII byte (in its first
    // sample, mostly) replaces a UTF-8 check of every name and value.
    let ascii_end = ascii_prefix_len(buf);
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_LEN) => {
                let label = r.bytes()?;
                labels.push(decode_label(label, r.pos <= ascii_end)?);
            }
            (4, WIRE_LEN) if histograms.is_some() => {
                let h = decode_histogram(r.bytes()?)?;
                if let Some(out) = histograms.as_mut() {
                    out.push(h);
                }
            }
            (3, WIRE_LEN) => exemplars.push(decode_exemplar(r.bytes()?)?),
            (2, WIRE_LEN) => {
                let mut sr = Reader::new(r.bytes()?);
                let (mut t, mut v) = (0i64, 0f64);
                while !sr.done() {
                    let (f, w) = sr.key()?;
                    match (f, w) {
                        (1, WIRE_FIXED64) => v = f64::from_bits(sr.fixed64()?),
                        // int64 is encoded as the two's complement varint.
                        (2, WIRE_VARINT) => t = sr.varint()? as i64,
                        _ => sr.skip(w)?,
                    }
                }
                samples.push((t, v));
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protobuf writers for test messages (also used by `v2`'s tests).
    pub(super) fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub(super) fn len_field(field: u64, body: &[u8], out: &mut Vec<u8>) {
        varint((field << 3) | WIRE_LEN, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    /// A test series: label pairs and samples.
    type TestSeries<'a> = (Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);
    type OwnedSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

    fn encode(series: &[TestSeries<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (labels, samples) in series {
            let mut ts = Vec::new();
            for (n, v) in labels {
                let mut l = Vec::new();
                len_field(1, n.as_bytes(), &mut l);
                len_field(2, v.as_bytes(), &mut l);
                len_field(1, &l, &mut ts);
            }
            for (t, v) in samples {
                let mut s = Vec::new();
                varint((1 << 3) | WIRE_FIXED64, &mut s);
                s.extend_from_slice(&v.to_bits().to_le_bytes());
                varint((2 << 3) | WIRE_VARINT, &mut s);
                varint(*t as u64, &mut s);
                len_field(2, &s, &mut ts);
            }
            // An exemplar with one empty label.
            len_field(3, b"\x0a\x00", &mut ts);
            len_field(1, &ts, &mut out);
        }
        // Metadata (field 3) is skipped.
        len_field(3, b"\x08\x01", &mut out);
        out
    }

    fn decode(buf: &[u8]) -> Result<Vec<OwnedSeries>, DecodeError> {
        let mut out = Vec::new();
        decode_write_request::<DecodeError>(buf, |l, s, _| {
            out.push((
                l.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                s.to_vec(),
            ));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn round_trip() {
        let input = vec![
            (
                vec![("__name__", "up"), ("job", "node")],
                vec![(1_700_000_000_000, 1.0), (-5, -0.0)],
            ),
            (vec![("__name__", "x")], vec![(0, f64::NAN)]),
        ];
        let got = decode(&encode(&input)).expect("decode");
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].0,
            vec![
                ("__name__".into(), "up".into()),
                ("job".into(), "node".into())
            ]
        );
        assert_eq!(got[0].1[0], (1_700_000_000_000, 1.0));
        assert_eq!(got[0].1[1].0, -5);
        assert_eq!(got[0].1[1].1.to_bits(), (-0.0f64).to_bits());
        assert!(got[1].1[0].1.is_nan());
    }

    #[test]
    fn exemplars_are_read_with_their_series() {
        use prost::Message;
        let label = |n: &str, v: &str| crate::Label {
            name: n.to_string(),
            value: v.to_string(),
        };
        let request = crate::WriteRequest {
            timeseries: vec![crate::TimeSeries {
                labels: vec![label("__name__", "rpc_bucket"), label("le", "1")],
                exemplars: vec![
                    crate::Exemplar {
                        labels: vec![label("trace_id", "abc"), label("span_id", "d")],
                        value: 0.25,
                        timestamp: -7,
                    },
                    crate::Exemplar {
                        labels: vec![],
                        value: 1.0,
                        timestamp: 0,
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = request.encode_to_vec();
        let mut seen = Vec::new();
        decode_write_request::<DecodeError>(&bytes, |labels, samples, exemplars| {
            assert_eq!(labels, [("__name__", "rpc_bucket"), ("le", "1")]);
            assert!(samples.is_empty());
            seen.extend(exemplars.iter().map(|e| {
                (
                    e.labels
                        .iter()
                        .map(|(n, v)| format!("{n}={v}"))
                        .collect::<Vec<_>>(),
                    e.value,
                    e.timestamp,
                )
            }));
            Ok(())
        })
        .expect("decode");
        assert_eq!(
            seen,
            [
                (
                    vec!["trace_id=abc".to_string(), "span_id=d".to_string()],
                    0.25,
                    -7
                ),
                (vec![], 1.0, 0),
            ]
        );
    }

    #[test]
    fn truncation_never_panics() {
        let buf = encode(&[(vec![("__name__", "up"), ("job", "node")], vec![(1, 1.0)])]);
        for cut in 0..buf.len() {
            let _ = decode(&buf[..cut]);
        }
    }

    #[test]
    fn a_label_reads_the_same_by_the_fast_layout_and_the_general_loop() {
        let long = "v".repeat(200);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for (name, value) in [("job", "node"), ("", "x"), ("n", ""), ("le", long.as_str())] {
            let mut l = Vec::new();
            len_field(1, name.as_bytes(), &mut l);
            len_field(2, value.as_bytes(), &mut l);
            cases.push(l);
        }
        // Value first, a field repeated, an unknown varint field, a value
        // whose length runs past the end, one left short, bad UTF-8.
        cases.push(vec![0x12, 1, b'v', 0x0a, 1, b'n']);
        cases.push(vec![0x0a, 1, b'a', 0x12, 1, b'v', 0x0a, 1, b'b']);
        cases.push(vec![0x0a, 1, b'a', 0x18, 5, 0x12, 1, b'v']);
        cases.push(vec![0x0a, 1, b'a', 0x12, 5, b'v']);
        cases.push(vec![0x0a, 1, b'a', 0x12, 0, b'v']);
        cases.push(vec![0x0a, 1, 0xff, 0x12, 1, b'v']);
        cases.push(vec![0x0a, 9, b'a']);
        cases.push(vec![0x0a, 1, b'a']);
        cases.push(Vec::new());
        // A value length byte with its continuation bit set and exactly
        // that many bytes after it: the second varint byte is not part of
        // the value.
        let mut continued = vec![0x0a, 1, b'a', 0x12, 0x80];
        continued.extend(std::iter::repeat_n(b'v', 0x80));
        cases.push(continued);
        for case in &cases {
            assert_eq!(
                decode_label(case, false),
                decode_label_fields(case),
                "{case:?}"
            );
            if case.is_ascii() {
                assert_eq!(
                    decode_label(case, true),
                    decode_label_fields(case),
                    "{case:?}"
                );
            }
        }
        assert_eq!(decode_label(&cases[0], true), Ok(("job", "node")));
    }

    #[test]
    fn the_ascii_prefix_ends_at_the_first_high_byte() {
        for len in 0..40 {
            let mut bytes = vec![b'a'; len];
            assert_eq!(ascii_prefix_len(&bytes), len);
            for at in 0..len {
                bytes[at] = 0x80;
                assert_eq!(ascii_prefix_len(&bytes), at, "{len} {at}");
                bytes[at] = 0xff;
                assert_eq!(ascii_prefix_len(&bytes), at, "{len} {at}");
                bytes[at] = b'a';
            }
        }
    }

    /// Labels in the ASCII part of a series take the unchecked path, and
    /// one after a non-ASCII byte (a sample's, or an earlier value's) is
    /// still checked: a bad one there is an error, a good one decoded.
    #[test]
    fn labels_after_a_non_ascii_byte_are_still_checked() {
        let label = |name: &[u8], value: &[u8]| {
            let mut l = Vec::new();
            len_field(1, name, &mut l);
            len_field(2, value, &mut l);
            l
        };
        let sample = {
            let mut s = Vec::new();
            varint((1 << 3) | WIRE_FIXED64, &mut s);
            s.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
            varint(2 << 3, &mut s);
            varint(1_700_000_000_000, &mut s);
            s
        };
        for (late_value, expected) in [
            (&b"caf\xc3\xa9"[..], Ok("caf\u{e9}")),
            (&b"\xff"[..], Err(())),
        ] {
            let mut ts = Vec::new();
            len_field(1, &label(b"__name__", b"up"), &mut ts);
            len_field(1, &label(b"job", "n\u{f6}de".as_bytes()), &mut ts);
            len_field(2, &sample, &mut ts);
            len_field(1, &label(b"zone", late_value), &mut ts);
            let mut out = Vec::new();
            len_field(1, &ts, &mut out);
            let mut seen = Vec::new();
            let result = decode_write_request::<DecodeError>(&out, |labels, _, _| {
                seen = labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                Ok(())
            });
            match expected {
                Ok(value) => {
                    assert!(result.is_ok(), "{result:?}");
                    assert_eq!(
                        seen,
                        [("__name__", "up"), ("job", "n\u{f6}de"), ("zone", value)]
                            .map(|(n, v)| (n.to_string(), v.to_string()))
                    );
                }
                Err(()) => assert!(result.is_err()),
            }
        }
    }

    #[test]
    fn bad_utf8_is_an_error() {
        let mut l = Vec::new();
        len_field(1, b"\xff", &mut l);
        let mut ts = Vec::new();
        len_field(1, &l, &mut ts);
        let mut out = Vec::new();
        len_field(1, &ts, &mut out);
        assert!(decode(&out).unwrap_err().to_string().contains("UTF-8"));
    }
}

#[cfg(test)]
mod histogram_tests {
    use super::*;
    use prost::Message;

    #[test]
    fn integer_and_float_histograms_decode_with_their_series() {
        let integer = Histogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: -2,
            zero_threshold: 0.001,
            zero_count: 1,
            count: 5,
            sum: 12.5,
            positive_spans: vec![Span {
                offset: -1,
                length: 2,
            }],
            negative_spans: vec![Span {
                offset: 3,
                length: 1,
            }],
            positive_buckets: vec![2, -1],
            negative_buckets: vec![1],
            custom_values: vec![],
        };
        let float = FloatHistogram {
            counter_reset_hint: CounterResetHint::Gauge,
            schema: -53,
            count: 3.5,
            sum: -1.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![1.5, 2.0],
            custom_values: vec![0.25, 1.0],
            ..FloatHistogram::default()
        };
        let request = crate::WriteRequest {
            timeseries: vec![crate::TimeSeries {
                labels: vec![crate::Label {
                    name: "__name__".into(),
                    value: "latency".into(),
                }],
                histograms: vec![
                    crate::Histogram::from_integer(-7, &integer),
                    crate::Histogram::from_float(1_700_000_000_000, &float),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = request.encode_to_vec();
        let mut seen = Vec::new();
        decode_write_request_with_histograms::<DecodeError>(&bytes, |labels, samples, _, h| {
            assert_eq!(labels, [("__name__", "latency")]);
            assert!(samples.is_empty());
            seen.extend(h.iter().cloned());
            Ok(())
        })
        .expect("decode");
        assert_eq!(
            seen,
            vec![
                RawHistogram::Integer {
                    timestamp: -7,
                    histogram: integer
                },
                RawHistogram::Float {
                    timestamp: 1_700_000_000_000,
                    histogram: float
                },
            ]
        );
        // Every prefix fails or decodes without panicking.
        for cut in 0..bytes.len() {
            let _ =
                decode_write_request_with_histograms::<DecodeError>(&bytes[..cut], |_, _, _, _| {
                    Ok(())
                });
        }
    }
}
