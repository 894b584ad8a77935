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
//! and `.timestamp` (3, int64). Every other field (metadata, histograms,
//! unknown fields) is skipped by wire type, so newer senders do not break
//! older receivers.

use std::fmt;

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

/// Decodes a `WriteRequest` and calls `on_series(labels, samples,
/// exemplars)` once per time series, in message order. Labels are as sent
/// (order and duplicates are the caller's to check). An error from the
/// callback stops decoding and is returned as is.
pub fn decode_write_request<'a, E: From<DecodeError>>(
    buf: &'a [u8],
    mut on_series: impl FnMut(&[(&'a str, &'a str)], &[(i64, f64)], &[RawExemplar<'a>]) -> Result<(), E>,
) -> Result<(), E> {
    let mut labels: Vec<(&'a str, &'a str)> = Vec::new();
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut exemplars: Vec<RawExemplar<'a>> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 1 && wire == WIRE_LEN {
            let ts = r.bytes()?;
            labels.clear();
            samples.clear();
            exemplars.clear();
            decode_time_series(ts, &mut labels, &mut samples, &mut exemplars)?;
            on_series(&labels, &samples, &exemplars)?;
        } else {
            r.skip(wire)?;
        }
    }
    Ok(())
}

/// A `Label` message: name and value, empty when absent.
fn decode_label(buf: &[u8]) -> Result<(&str, &str), DecodeError> {
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
            (1, WIRE_LEN) => exemplar.labels.push(decode_label(r.bytes()?)?),
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
) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_LEN) => labels.push(decode_label(r.bytes()?)?),
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

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn len_field(field: u64, body: &[u8], out: &mut Vec<u8>) {
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
