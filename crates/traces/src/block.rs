//! Blocks (`docs/format/traces.md`, "Blocks"): immutable columnar files of
//! spans sorted by trace ID, each column Snappy-compressed. [`write`]
//! makes one from the head; [`BlockIndex::read`] decodes the columns that
//! searches scan and [`read_rest`] the per-span remainder on demand.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use crate::codec::{self, CodecError, Reader, put_ivarint, put_uvarint};
use crate::{Attribute, Span, StoreError};

const MAGIC: &[u8; 8] = b"OSPTRCB1";
const N_COLUMNS: usize = 10;
const DIR_ENTRY: usize = 28;

/// What a block holds, as `meta.json` says.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BlockMeta {
    pub version: u32,
    pub min_start_unix_nano: u64,
    pub max_end_unix_nano: u64,
    pub spans: u64,
    pub wal_through: u32,
}

/// Writes `spans` as the block file's bytes, rows sorted by trace ID
/// and start.
pub fn encode(spans: &[Span]) -> Vec<u8> {
    let mut spans: Vec<&Span> = spans.iter().collect();
    spans.sort_by(|a, b| {
        (a.trace_id, a.start_unix_nano, a.span_id).cmp(&(b.trace_id, b.start_unix_nano, b.span_id))
    });
    let mut cols: Vec<Vec<u8>> = vec![Vec::new(); N_COLUMNS];
    let mut services = Dict::default();
    let mut names = Dict::default();
    let mut resources = Dict::default();
    let mut service_rows = Vec::with_capacity(spans.len());
    let mut name_rows = Vec::with_capacity(spans.len());
    let mut resource_rows = Vec::with_capacity(spans.len());
    let mut previous_start = 0i64;
    let mut buf = Vec::new();
    for s in &spans {
        cols[0].extend_from_slice(&s.trace_id);
        cols[1].extend_from_slice(&s.span_id);
        cols[2].extend_from_slice(&s.parent_span_id);
        let start = s.start_unix_nano as i64;
        put_ivarint(&mut cols[3], start.wrapping_sub(previous_start));
        previous_start = start;
        put_uvarint(&mut cols[4], s.duration_nano);
        service_rows.push(services.index(s.service.as_bytes()));
        name_rows.push(names.index(s.name.as_bytes()));
        cols[7].push(s.kind | (s.status_code << 4));
        buf.clear();
        codec::put_rest(&mut buf, s, false);
        put_uvarint(&mut cols[8], buf.len() as u64);
        cols[8].extend_from_slice(&buf);
        buf.clear();
        codec::put_attributes(&mut buf, &s.resource);
        resource_rows.push(resources.index(&buf));
    }
    services.write(&mut cols[5], &service_rows);
    names.write(&mut cols[6], &name_rows);
    resources.write(&mut cols[9], &resource_rows);
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    let mut directory = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    for col in &cols {
        let compressed = encoder.compress_vec(col).unwrap_or_else(|_| col.clone());
        directory.extend_from_slice(&(out.len() as u64).to_le_bytes());
        directory.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
        directory.extend_from_slice(&(col.len() as u64).to_le_bytes());
        directory.extend_from_slice(&crc32c::crc32c(&compressed).to_le_bytes());
        out.extend_from_slice(&compressed);
    }
    out.extend_from_slice(&directory);
    out.extend_from_slice(&(N_COLUMNS as u32).to_le_bytes());
    out.extend_from_slice(&(spans.len() as u32).to_le_bytes());
    out.extend_from_slice(MAGIC);
    out
}

#[derive(Default)]
struct Dict {
    ids: HashMap<Vec<u8>, u64>,
    entries: Vec<Vec<u8>>,
}

impl Dict {
    fn index(&mut self, key: &[u8]) -> u64 {
        if let Some(&i) = self.ids.get(key) {
            return i;
        }
        let i = self.entries.len() as u64;
        self.ids.insert(key.to_vec(), i);
        self.entries.push(key.to_vec());
        i
    }

    fn write(&self, out: &mut Vec<u8>, rows: &[u64]) {
        put_uvarint(out, self.entries.len() as u64);
        for e in &self.entries {
            put_uvarint(out, e.len() as u64);
            out.extend_from_slice(e);
        }
        for &r in rows {
            put_uvarint(out, r);
        }
    }
}

/// Writes a block directory `<blocks>/<seq>` through `<seq>.tmp`, fsynced.
pub(crate) fn write(
    blocks_dir: &Path,
    seq: u64,
    spans: &[Span],
    wal_through: u32,
) -> Result<(std::path::PathBuf, BlockMeta), StoreError> {
    let name = format!("{seq:016x}");
    let tmp = blocks_dir.join(format!("{name}.tmp"));
    let dir = blocks_dir.join(&name);
    let io = |what: &str, e: std::io::Error| StoreError::io(&tmp, what, e);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io("creating", e))?;
    let meta = BlockMeta {
        version: 1,
        min_start_unix_nano: spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0),
        max_end_unix_nano: spans.iter().map(Span::end_unix_nano).max().unwrap_or(0),
        spans: spans.len() as u64,
        wal_through,
    };
    let bytes = encode(spans);
    for (file, data) in [
        ("spans", bytes),
        (
            "meta.json",
            serde_json::to_vec(&meta).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ),
    ] {
        let path = tmp.join(file);
        let mut f = File::create(&path).map_err(|e| io("creating", e))?;
        f.write_all(&data).map_err(|e| io("writing", e))?;
        f.sync_all().map_err(|e| io("fsyncing", e))?;
    }
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("fsyncing", e))?;
    std::fs::rename(&tmp, &dir).map_err(|e| io("renaming", e))?;
    File::open(blocks_dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io(blocks_dir, "fsyncing", e))?;
    Ok((dir, meta))
}

/// The raw columns of a block file, checked (magic, bounds, CRCs, raw
/// lengths). Fuzzed through [`decode`].
/// A block's row count and the raw columns asked for (`None` for the others).
type Columns = (usize, Vec<Option<Vec<u8>>>);

fn columns(file: &[u8], wanted: &[usize]) -> Result<Columns, CodecError> {
    let bad = CodecError;
    if file.len() < 8 + 16 || &file[..8] != MAGIC || &file[file.len() - 8..] != MAGIC {
        return Err(bad("not a trace block (magic)"));
    }
    let tail = &file[file.len() - 16..file.len() - 8];
    let n_cols = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    let rows = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]) as usize;
    if n_cols != N_COLUMNS {
        return Err(bad("unexpected number of columns"));
    }
    let dir_len = n_cols * DIR_ENTRY;
    let dir_start = file
        .len()
        .checked_sub(16 + dir_len)
        .filter(|&s| s >= 8)
        .ok_or(bad("directory runs past the start"))?;
    let mut out = vec![None; n_cols];
    for &c in wanted {
        let e = &file[dir_start + c * DIR_ENTRY..dir_start + (c + 1) * DIR_ENTRY];
        let u = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&e[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let (offset, len, raw_len) = (u(0), u(8), u(16));
        let crc = u32::from_le_bytes([e[24], e[25], e[26], e[27]]);
        let start = usize::try_from(offset).map_err(|_| bad("offset"))?;
        let end = usize::try_from(offset.saturating_add(len)).map_err(|_| bad("length"))?;
        if start < 8 || end > dir_start || start > end {
            return Err(bad("column outside the file"));
        }
        let compressed = &file[start..end];
        if crc32c::crc32c(compressed) != crc {
            return Err(bad("column checksum mismatch"));
        }
        let stated = snap::raw::decompress_len(compressed).map_err(|_| bad("snappy header"))?;
        if stated as u64 != raw_len || stated > compressed.len().saturating_mul(64) + 64 {
            return Err(bad("column raw length mismatch"));
        }
        let raw = snap::raw::Decoder::new()
            .decompress_vec(compressed)
            .map_err(|_| bad("snappy data"))?;
        out[c] = Some(raw);
    }
    Ok((rows, out))
}

/// The columns every search scans, decoded, kept per block once read.
#[derive(Debug, Default)]
pub struct BlockIndex {
    pub trace_ids: Vec<[u8; 16]>,
    pub span_ids: Vec<[u8; 8]>,
    pub parent_ids: Vec<[u8; 8]>,
    pub starts: Vec<u64>,
    pub durations: Vec<u64>,
    pub services: Vec<Arc<str>>,
    pub service_rows: Vec<u32>,
    pub names: Vec<Arc<str>>,
    pub name_rows: Vec<u32>,
    pub kind_status: Vec<u8>,
}

fn fixed<const N: usize>(raw: &[u8], rows: usize) -> Result<Vec<[u8; N]>, CodecError> {
    if raw.len() != rows.saturating_mul(N) {
        return Err(CodecError("fixed-width column has the wrong length"));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

fn dict(raw: &[u8], rows: usize) -> Result<(Vec<Vec<u8>>, Vec<u32>), CodecError> {
    let mut r = Reader::new(raw);
    let n = r.count(1)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.count(1)?;
        entries.push(r.bytes(len)?.to_vec());
    }
    let mut idx = Vec::with_capacity(rows.min(raw.len()));
    for _ in 0..rows {
        let i = r.uvarint()?;
        if i >= n as u64 {
            return Err(CodecError("dictionary index out of range"));
        }
        idx.push(i as u32);
    }
    if !r.is_empty() {
        return Err(CodecError("bytes after a dictionary column"));
    }
    Ok((entries, idx))
}

fn strings(entries: Vec<Vec<u8>>) -> Result<Vec<Arc<str>>, CodecError> {
    entries
        .into_iter()
        .map(|e| {
            String::from_utf8(e)
                .map(Arc::from)
                .map_err(|_| CodecError("string is not UTF-8"))
        })
        .collect()
}

impl BlockIndex {
    /// Decodes columns 0–7 of a block file.
    pub fn read(file: &[u8]) -> Result<BlockIndex, CodecError> {
        let (rows, mut cols) = columns(file, &[0, 1, 2, 3, 4, 5, 6, 7])?;
        let mut take = |i: usize| cols[i].take().unwrap_or_default();
        let trace_ids = fixed::<16>(&take(0), rows)?;
        let span_ids = fixed::<8>(&take(1), rows)?;
        let parent_ids = fixed::<8>(&take(2), rows)?;
        let raw = take(3);
        let mut r = Reader::new(&raw);
        let mut starts = Vec::with_capacity(rows);
        let mut previous = 0i64;
        for _ in 0..rows {
            previous = previous.wrapping_add(r.ivarint()?);
            starts.push(previous as u64);
        }
        if !r.is_empty() {
            return Err(CodecError("bytes after the start column"));
        }
        let raw = take(4);
        let mut r = Reader::new(&raw);
        let mut durations = Vec::with_capacity(rows);
        for _ in 0..rows {
            durations.push(r.uvarint()?);
        }
        if !r.is_empty() {
            return Err(CodecError("bytes after the duration column"));
        }
        let (services, service_rows) = dict(&take(5), rows)?;
        let (names, name_rows) = dict(&take(6), rows)?;
        let kind_status = take(7);
        if kind_status.len() != rows || kind_status.iter().any(|b| b & 0x0f > 5 || b >> 4 > 2) {
            return Err(CodecError("bad kind and status column"));
        }
        Ok(BlockIndex {
            trace_ids,
            span_ids,
            parent_ids,
            starts,
            durations,
            services: strings(services)?,
            service_rows,
            names: strings(names)?,
            name_rows,
            kind_status,
        })
    }

    pub fn len(&self) -> usize {
        self.trace_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trace_ids.is_empty()
    }

    /// The rows of `trace_id` (rows are sorted by trace ID).
    pub fn rows_of(&self, trace_id: &[u8; 16]) -> std::ops::Range<usize> {
        let lo = self.trace_ids.partition_point(|t| t < trace_id);
        let hi = self.trace_ids.partition_point(|t| t <= trace_id);
        lo..hi
    }

    /// The span at `row` with only its indexed fields.
    pub fn span_head(&self, row: usize) -> Span {
        let ks = self.kind_status[row];
        Span {
            trace_id: self.trace_ids[row],
            span_id: self.span_ids[row],
            parent_span_id: self.parent_ids[row],
            start_unix_nano: self.starts[row],
            duration_nano: self.durations[row],
            kind: ks & 0x0f,
            status_code: ks >> 4,
            service: self.services[self.service_rows[row] as usize].to_string(),
            name: self.names[self.name_rows[row] as usize].to_string(),
            ..Span::default()
        }
    }
}

/// Each row's `rest` bytes and resource, decoded from columns 8 and 9.
pub struct Rests {
    rest: Vec<u8>,
    offsets: Vec<(usize, usize)>,
    resources: Vec<Vec<Attribute>>,
    resource_rows: Vec<u32>,
}

impl Rests {
    pub fn read(file: &[u8]) -> Result<Rests, CodecError> {
        let (rows, mut cols) = columns(file, &[8, 9])?;
        let rest = cols[8].take().unwrap_or_default();
        let mut offsets = Vec::with_capacity(rows.min(rest.len()));
        let mut r = Reader::new(&rest);
        for _ in 0..rows {
            let n = r.count(1)?;
            let start = rest.len() - r.buf.len();
            r.bytes(n)?;
            offsets.push((start, start + n));
        }
        if !r.is_empty() {
            return Err(CodecError("bytes after the rest column"));
        }
        let (entries, resource_rows) = dict(&cols[9].take().unwrap_or_default(), rows)?;
        let resources = entries
            .iter()
            .map(|e| {
                let mut r = Reader::new(e);
                let attrs = codec::read_attributes(&mut r)?;
                if r.is_empty() {
                    Ok(attrs)
                } else {
                    Err(CodecError("bytes after a resource"))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rests {
            rest,
            offsets,
            resources,
            resource_rows,
        })
    }

    /// The encoded `rest` of row `row` (its resource is elsewhere).
    pub fn rest_bytes(&self, row: usize) -> Option<&[u8]> {
        let &(a, b) = self.offsets.get(row)?;
        self.rest.get(a..b)
    }

    /// The resources of this block, by dictionary index.
    pub fn resources(&self) -> &[Vec<Attribute>] {
        &self.resources
    }

    /// The dictionary index of row `row`'s resource.
    pub fn resource_of(&self, row: usize) -> Option<usize> {
        self.resource_rows.get(row).map(|&i| i as usize)
    }

    /// Fills `span`'s remaining fields from row `row`.
    pub fn fill(&self, row: usize, span: &mut Span) -> Result<(), CodecError> {
        let &(a, b) = self
            .offsets
            .get(row)
            .ok_or(CodecError("row out of range"))?;
        let mut r = Reader::new(&self.rest[a..b]);
        codec::read_rest(&mut r, span)?;
        span.resource = self.resources[self.resource_rows[row] as usize].clone();
        Ok(())
    }
}

/// Reads every span of a block file. Fuzzed.
pub fn decode(file: &[u8]) -> Result<Vec<Span>, CodecError> {
    let index = BlockIndex::read(file)?;
    let rests = Rests::read(file)?;
    (0..index.len())
        .map(|row| {
            let mut span = index.span_head(row);
            rests.fill(row, &mut span)?;
            Ok(span)
        })
        .collect()
}

pub(crate) fn read_meta(dir: &Path) -> Result<BlockMeta, StoreError> {
    let path = dir.join("meta.json");
    let text = std::fs::read(&path).map_err(|e| StoreError::io(&path, "reading", e))?;
    serde_json::from_slice(&text)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))
}
