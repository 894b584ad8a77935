//! The span encoding of `docs/format/traces.md`: varints, strings, values,
//! attribute lists and spans, written to a caller's buffer and read back
//! from untrusted bytes (the WAL and blocks after a crash or a bad disk).
//! Every read is bounded by the input; nothing here panics on bad bytes.

use crate::{Attribute, Event, Link, Span, Value};

/// Bytes that are not a span encoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("corrupt span encoding: {0}")]
pub struct CodecError(pub(crate) &'static str);

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return Err(CodecError("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(v);
            }
        }
        Err(CodecError("truncated varint"))
    }

    pub(crate) fn ivarint(&mut self) -> Result<i64, CodecError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count of items each at least `min_item_bytes` long: refused when
    /// the input cannot hold that many, so no count allocates past it.
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<usize, CodecError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| CodecError("count too large"))?;
        if n.saturating_mul(min_item_bytes.max(1)) > self.buf.len() {
            return Err(CodecError("count larger than the bytes left"));
        }
        Ok(n)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.buf.len() {
            return Err(CodecError("length runs past the end"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let b = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn string(&mut self) -> Result<String, CodecError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| CodecError("string too long"))?;
        let b = self.bytes(n)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| CodecError("string is not UTF-8"))
    }
}

pub(crate) fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            out.push(1);
            put_str(out, s);
        }
        Value::Bool(b) => {
            out.push(2);
            out.push(u8::from(*b));
        }
        Value::Int(i) => {
            out.push(3);
            put_ivarint(out, *i);
        }
        Value::Double(d) => {
            out.push(4);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Bytes(b) => {
            out.push(5);
            put_uvarint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Json(s) => {
            out.push(6);
            put_str(out, s);
        }
    }
}

fn read_value(r: &mut Reader<'_>) -> Result<Value, CodecError> {
    Ok(match r.byte()? {
        1 => Value::Str(r.string()?),
        2 => match r.byte()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(CodecError("bool is not 0 or 1")),
        },
        3 => Value::Int(r.ivarint()?),
        4 => Value::Double(f64::from_le_bytes(r.array::<8>()?)),
        5 => {
            let n = r.count(1)?;
            Value::Bytes(r.bytes(n)?.to_vec())
        }
        6 => Value::Json(r.string()?),
        _ => return Err(CodecError("unknown value tag")),
    })
}

pub(crate) fn put_attributes(out: &mut Vec<u8>, attrs: &[Attribute]) {
    put_uvarint(out, attrs.len() as u64);
    for a in attrs {
        put_str(out, &a.key);
        put_value(out, &a.value);
    }
}

pub(crate) fn read_attributes(r: &mut Reader<'_>) -> Result<Vec<Attribute>, CodecError> {
    // Each attribute is at least a key length, a tag and one payload byte.
    let n = r.count(3)?;
    let mut attrs = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.string()?;
        let value = read_value(r)?;
        attrs.push(Attribute { key, value });
    }
    Ok(attrs)
}

/// Writes a span's fixed part and its `rest`, with or without the resource
/// (blocks keep resources in a dictionary column of their own).
pub(crate) fn put_span(out: &mut Vec<u8>, span: &Span) {
    out.extend_from_slice(&span.trace_id);
    out.extend_from_slice(&span.span_id);
    out.extend_from_slice(&span.parent_span_id);
    put_uvarint(out, span.start_unix_nano);
    put_uvarint(out, span.duration_nano);
    out.push(span.kind);
    out.push(span.status_code);
    put_str(out, &span.service);
    put_str(out, &span.name);
    put_rest(out, span, true);
}

pub(crate) fn put_rest(out: &mut Vec<u8>, span: &Span, with_resource: bool) {
    put_str(out, &span.status_message);
    put_str(out, &span.scope_name);
    put_str(out, &span.scope_version);
    put_attributes(out, &span.attributes);
    if with_resource {
        put_attributes(out, &span.resource);
    } else {
        put_uvarint(out, 0);
    }
    put_uvarint(out, span.events.len() as u64);
    for e in &span.events {
        put_uvarint(out, e.time_unix_nano);
        put_str(out, &e.name);
        put_attributes(out, &e.attributes);
    }
    put_uvarint(out, span.links.len() as u64);
    for l in &span.links {
        out.extend_from_slice(&l.trace_id);
        out.extend_from_slice(&l.span_id);
        put_attributes(out, &l.attributes);
    }
}

pub(crate) fn read_span(r: &mut Reader<'_>) -> Result<Span, CodecError> {
    let trace_id = r.array::<16>()?;
    let span_id = r.array::<8>()?;
    let parent_span_id = r.array::<8>()?;
    let start_unix_nano = r.uvarint()?;
    let duration_nano = r.uvarint()?;
    let kind = r.byte()?;
    let status_code = r.byte()?;
    if kind > 5 || status_code > 2 {
        return Err(CodecError("span kind or status out of range"));
    }
    let service = r.string()?;
    let name = r.string()?;
    let mut span = Span {
        trace_id,
        span_id,
        parent_span_id,
        start_unix_nano,
        duration_nano,
        kind,
        status_code,
        service,
        name,
        ..Span::default()
    };
    read_rest(r, &mut span)?;
    Ok(span)
}

pub(crate) fn read_rest(r: &mut Reader<'_>, span: &mut Span) -> Result<(), CodecError> {
    span.status_message = r.string()?;
    span.scope_name = r.string()?;
    span.scope_version = r.string()?;
    span.attributes = read_attributes(r)?;
    span.resource = read_attributes(r)?;
    let n = r.count(3)?;
    span.events = Vec::with_capacity(n);
    for _ in 0..n {
        let time_unix_nano = r.uvarint()?;
        let name = r.string()?;
        let attributes = read_attributes(r)?;
        span.events.push(Event {
            time_unix_nano,
            name,
            attributes,
        });
    }
    let n = r.count(25)?;
    span.links = Vec::with_capacity(n);
    for _ in 0..n {
        let trace_id = r.array::<16>()?;
        let span_id = r.array::<8>()?;
        let attributes = read_attributes(r)?;
        span.links.push(Link {
            trace_id,
            span_id,
            attributes,
        });
    }
    Ok(())
}

/// A WAL record's payload: a count then the spans.
pub fn encode_batch(spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spans.len() * 200);
    put_uvarint(&mut out, spans.len() as u64);
    for s in spans {
        put_span(&mut out, s);
    }
    out
}

/// Reads a WAL record's payload. Fuzzed.
pub fn decode_batch(payload: &[u8]) -> Result<Vec<Span>, CodecError> {
    let mut r = Reader::new(payload);
    // A span is at least 45 bytes: the three ids (32), the start and the
    // duration (a varint byte each), kind and status (2), and one length
    // or count byte each for service, name, status message, scope name,
    // scope version, attributes, resource, events and links (9).
    let n = r.count(45)?;
    let mut spans = Vec::with_capacity(n);
    for _ in 0..n {
        spans.push(read_span(&mut r)?);
    }
    if !r.is_empty() {
        return Err(CodecError("bytes after the last span"));
    }
    Ok(spans)
}

/// Reads one value's payload without decoding it.
fn raw_value<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8]), CodecError> {
    let tag = r.byte()?;
    let payload = match tag {
        1 | 5 | 6 => {
            let n = r.count(1)?;
            r.bytes(n)?
        }
        2 => r.bytes(1)?,
        3 => {
            let start = r.buf;
            r.uvarint()?;
            &start[..start.len() - r.buf.len()]
        }
        4 => r.bytes(8)?,
        _ => return Err(CodecError("unknown value tag")),
    };
    Ok((tag, payload))
}

/// Visits the span's own attributes of an encoded `rest` as borrowed key,
/// value tag and payload bytes (no allocation), and returns its status
/// message: what attribute searches need.
pub(crate) fn scan_rest(
    rest: &[u8],
    mut visit: impl FnMut(&[u8], u8, &[u8]),
) -> Result<&[u8], CodecError> {
    let mut r = Reader::new(rest);
    let n = r.count(1)?;
    let status_message = r.bytes(n)?;
    for _ in 0..2 {
        let n = r.count(1)?;
        r.bytes(n)?;
    }
    let n = r.count(3)?;
    for _ in 0..n {
        let k = r.count(1)?;
        let key = r.bytes(k)?;
        let (tag, payload) = raw_value(&mut r)?;
        visit(key, tag, payload);
    }
    Ok(status_message)
}
