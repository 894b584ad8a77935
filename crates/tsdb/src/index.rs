//! The block index: writer and memory-mapped reader.
//!
//! The byte layout is specified in `docs/format/index.md`; read that first.
//! In short: a sorted symbol table holds every string once, series are dense
//! ordinals sorted by labels, each label pair has a delta-encoded postings
//! list, and a fixed-width postings table sorted by (name, value) makes an
//! equality lookup a binary search. Opening checks only the TOC and the small
//! sections; series entries and postings lists carry their own CRCs, checked
//! when they are read. Every read from the file is bounds-checked, so corrupt
//! or truncated files give a [`BlockError`] of kind `Corrupt`, never a panic.

use crate::block::BlockError;
use memmap2::Mmap;
use model::labels::FastBuildHasher;
use model::{Label, LabelStr, Labels, MatchOp, Matcher};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The four bytes that open an index file.
pub const INDEX_MAGIC: [u8; 4] = *b"OSPI";
/// The only index version this code reads and writes.
pub const INDEX_VERSION: u8 = 1;

const HEADER_LEN: usize = 5;
const SECTION_COUNT: usize = 7;
/// Seven (offset, length) pairs, the series count, the base time and a CRC.
const TOC_LEN: usize = SECTION_COUNT * 16 + 8 + 8 + 4;
/// One in this many symbols has its offset stored in the symbol samples.
/// Sixteen bounds a lookup to sixteen short strings while costing a quarter
/// byte per symbol.
const SYMBOL_STRIDE: u32 = 16;
/// One in this many series has its offset stored in the series samples, for
/// the same trade-off: half a byte per series, at most fifteen skipped entries.
const SERIES_STRIDE: u32 = 16;
const POSTINGS_TABLE_ENTRY_LEN: usize = 8;

/// One series as the block writer hands it to the index: its labels and the
/// (min time, max time, chunk reference) of each chunk, sorted by min time.
pub(crate) struct IndexSeries {
    pub(crate) labels: Labels,
    pub(crate) chunks: Vec<(i64, i64, u64)>,
}

// ---------------------------------------------------------------------------
// Varints.

pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, value: i64) {
    put_uvarint(buf, ((value << 1) ^ (value >> 63)) as u64);
}

/// Decodes a uvarint at the start of `bytes`: the value and its length, or
/// `None` when the bytes end early or the value overflows 64 bits.
pub(crate) fn read_uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let low = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None;
        }
        value |= low << (7 * i);
        if b < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

pub(crate) fn zigzag_decode(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A position in a byte slice with checked reads. Errors carry the absolute
/// file offset of the failing read. Every block file is read through it
/// (this index, and the `tombstones` file).
pub(crate) struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// A decoding failure: where and what, without the file name (the reader adds
/// it).
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub(crate) offset: usize,
    pub(crate) what: &'static str,
}

pub(crate) type DecodeResult<T> = Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Decoder<'a> {
        Decoder { bytes, pos }
    }

    /// The offset of the next read.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left after the position.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn fail<T>(&self, what: &'static str) -> DecodeResult<T> {
        Err(DecodeError {
            offset: self.pos,
            what,
        })
    }

    pub(crate) fn uvarint(&mut self) -> DecodeResult<u64> {
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        match read_uvarint(rest) {
            Some((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            None => self.fail("bad or truncated varint"),
        }
    }

    fn uvarint_u32(&mut self) -> DecodeResult<u32> {
        let start = self.pos;
        let value = self.uvarint()?;
        u32::try_from(value).map_err(|_| DecodeError {
            offset: start,
            what: "varint does not fit in 32 bits",
        })
    }

    pub(crate) fn varint(&mut self) -> DecodeResult<i64> {
        Ok(zigzag_decode(self.uvarint()?))
    }

    fn bytes(&mut self, len: usize) -> DecodeResult<&'a [u8]> {
        match self
            .pos
            .checked_add(len)
            .and_then(|end| self.bytes.get(self.pos..end))
        {
            Some(slice) => {
                self.pos += len;
                Ok(slice)
            }
            None => self.fail("slice runs past the end"),
        }
    }

    fn u32_le(&mut self) -> DecodeResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64_le(&mut self) -> DecodeResult<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads `body_len uvarint | body | crc32c(body)` and returns the body
    /// after checking its CRC.
    fn crc_framed(&mut self) -> DecodeResult<&'a [u8]> {
        let len = self.uvarint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError {
            offset: self.pos,
            what: "entry length too large",
        })?;
        let body_start = self.pos;
        let body = self.bytes(len)?;
        let stored = self.u32_le()?;
        if crc32c::crc32c(body) != stored {
            return Err(DecodeError {
                offset: body_start,
                what: "CRC mismatch",
            });
        }
        Ok(body)
    }

    /// Skips a `body_len uvarint | body | crc` entry without checking it.
    fn skip_framed(&mut self) -> DecodeResult<()> {
        let len = self.uvarint()?;
        let len = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(4))
            .ok_or(DecodeError {
                offset: self.pos,
                what: "entry length too large",
            })?;
        self.bytes(len).map(|_| ())
    }
}

/// What the chunk deltas of a series entry are relative to: the previous
/// chunk's max time, span, gap before it, and reference.
#[derive(Default)]
struct ChunkDeltaState {
    max_time: i64,
    span: i64,
    gap: i64,
    chunk_ref: u64,
}

// ---------------------------------------------------------------------------
// Writer.

/// A buffered file writer that counts bytes and keeps a running CRC.
struct CountingWriter {
    out: BufWriter<File>,
    pos: u64,
    crc: u32,
}

impl CountingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        Ok(())
    }

    /// Writes the CRC of everything since the last call (or the start) and
    /// starts a new one.
    fn write_crc(&mut self) -> std::io::Result<()> {
        let crc = self.crc;
        self.out.write_all(&crc.to_le_bytes())?;
        self.pos += 4;
        self.crc = 0;
        Ok(())
    }

    fn reset_crc(&mut self) {
        self.crc = 0;
    }
}

/// Writes the index for `series` (sorted by labels, unique, each with at
/// least one chunk) to `path`, fsyncs it, and returns its size in bytes.
pub(crate) fn write_index(path: &Path, series: &[IndexSeries]) -> Result<u64, BlockError> {
    let io = |e: std::io::Error| BlockError::io(path, e, "writing index");

    // The symbol table: every name and value, sorted and unique. Made
    // unique before sorting: a block of many series repeats its strings
    // many times over.
    let mut unique: HashSet<&str, FastBuildHasher> = HashSet::default();
    for s in series {
        for l in s.labels.iter() {
            unique.insert(l.name.as_str());
            unique.insert(l.value.as_str());
        }
    }
    let mut strings: Vec<&str> = unique.into_iter().collect();
    strings.sort_unstable();
    let symbol_count = u32::try_from(strings.len())
        .map_err(|_| BlockError::invalid_input("more than 2^32 distinct label strings"))?;
    let num_series = u32::try_from(series.len())
        .map_err(|_| BlockError::invalid_input("more than 2^32 series in one block"))?;
    let symbol_ref: HashMap<&str, u32, FastBuildHasher> = strings
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32))
        .collect();

    let file = File::create(path).map_err(io)?;
    let mut w = CountingWriter {
        out: BufWriter::with_capacity(1 << 20, file),
        pos: 0,
        crc: 0,
    };
    let mut toc: Vec<(u64, u64)> = Vec::with_capacity(SECTION_COUNT);
    let mut scratch: Vec<u8> = Vec::with_capacity(256);

    w.write(&INDEX_MAGIC).map_err(io)?;
    w.write(&[INDEX_VERSION]).map_err(io)?;

    // Symbols.
    let start = w.pos;
    w.reset_crc();
    w.write(&symbol_count.to_le_bytes()).map_err(io)?;
    let mut symbol_samples: Vec<u32> = Vec::new();
    for (i, s) in strings.iter().enumerate() {
        if (i as u32).is_multiple_of(SYMBOL_STRIDE) {
            let offset = u32::try_from(w.pos - start)
                .map_err(|_| BlockError::invalid_input("symbol table larger than 4 GiB"))?;
            symbol_samples.push(offset);
        }
        scratch.clear();
        put_uvarint(&mut scratch, s.len() as u64);
        scratch.extend_from_slice(s.as_bytes());
        w.write(&scratch).map_err(io)?;
    }
    toc.push((start, w.pos - start));
    w.write_crc().map_err(io)?;

    // Symbol samples.
    let start = w.pos;
    for offset in &symbol_samples {
        w.write(&offset.to_le_bytes()).map_err(io)?;
    }
    toc.push((start, w.pos - start));
    w.write_crc().map_err(io)?;

    // Every label pair, sorted by (name, value): the postings table. Symbol
    // references sort like their strings, so this is string order too.
    // Each label's pair of symbol references, in series order, for the
    // series section below.
    let mut label_refs: Vec<(u32, u32)> = Vec::new();
    for s in series {
        for l in s.labels.iter() {
            label_refs.push((symbol_ref[l.name.as_str()], symbol_ref[l.value.as_str()]));
        }
    }
    let mut pairs: Vec<(u32, u32)> = label_refs.clone();
    pairs.sort_unstable();
    pairs.dedup();
    // Label names as (name reference, first table entry, number of values).
    let mut names: Vec<(u32, u32, u32)> = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        match names.last_mut() {
            Some((name, _, count)) if *name == pair.0 => *count += 1,
            _ => names.push((pair.0, i as u32, 1)),
        }
    }
    // A label pair's (name ordinal, value ordinal) and its table entry.
    let mut ordinals: HashMap<(u32, u32), (u32, u32, u32), FastBuildHasher> =
        HashMap::with_capacity_and_hasher(pairs.len(), FastBuildHasher::default());
    for (name_ordinal, &(name, first, count)) in names.iter().enumerate() {
        for value_ordinal in 0..count {
            let entry = first + value_ordinal;
            let value = pairs[entry as usize].1;
            ordinals.insert((name, value), (name_ordinal as u32, value_ordinal, entry));
        }
    }
    let base_time = series
        .iter()
        .filter_map(|s| s.chunks.first().map(|c| c.0))
        .min()
        .unwrap_or(0);

    // Series, collecting postings on the way.
    let start = w.pos;
    let mut series_samples: Vec<u64> = Vec::new();
    let mut postings: Vec<Vec<u32>> = vec![Vec::new(); pairs.len()];
    let mut body: Vec<u8> = Vec::with_capacity(256);
    let mut label_refs = label_refs.into_iter();
    for (id, s) in series.iter().enumerate() {
        let id = id as u32;
        if id.is_multiple_of(SERIES_STRIDE) {
            series_samples.push(w.pos - start);
        }
        body.clear();
        put_uvarint(&mut body, s.labels.len() as u64);
        for key in label_refs.by_ref().take(s.labels.len()) {
            let (name_ordinal, value_ordinal, entry) = ordinals[&key];
            put_uvarint(&mut body, u64::from(name_ordinal));
            put_uvarint(&mut body, u64::from(value_ordinal));
            postings[entry as usize].push(id);
        }
        put_uvarint(&mut body, s.chunks.len() as u64);
        // Chunks of one series usually have the same span and the same gap
        // between them (120 samples at a fixed interval), so after the first
        // chunk both are stored as differences from the previous chunk's.
        let mut previous = ChunkDeltaState::default();
        for (k, &(min_time, max_time, chunk_ref)) in s.chunks.iter().enumerate() {
            let span = max_time.wrapping_sub(min_time);
            match k {
                0 => {
                    put_varint(&mut body, min_time.wrapping_sub(base_time));
                    put_varint(&mut body, span);
                    put_uvarint(&mut body, chunk_ref);
                }
                _ => {
                    let gap = min_time.wrapping_sub(previous.max_time);
                    put_varint(&mut body, gap.wrapping_sub(previous.gap));
                    put_varint(&mut body, span.wrapping_sub(previous.span));
                    put_varint(&mut body, chunk_ref.wrapping_sub(previous.chunk_ref) as i64);
                    previous.gap = gap;
                }
            }
            previous.max_time = max_time;
            previous.span = span;
            previous.chunk_ref = chunk_ref;
        }
        scratch.clear();
        put_uvarint(&mut scratch, body.len() as u64);
        scratch.extend_from_slice(&body);
        scratch.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        w.write(&scratch).map_err(io)?;
    }
    toc.push((start, w.pos - start));

    // Series samples.
    let start = w.pos;
    w.reset_crc();
    for offset in &series_samples {
        w.write(&offset.to_le_bytes()).map_err(io)?;
    }
    toc.push((start, w.pos - start));
    w.write_crc().map_err(io)?;

    // Postings, in table order.
    let start = w.pos;
    let mut table: Vec<(u32, u32)> = Vec::with_capacity(pairs.len());
    for (pair, ids) in pairs.iter().zip(&postings) {
        let offset = u32::try_from(w.pos - start)
            .map_err(|_| BlockError::invalid_input("postings section larger than 4 GiB"))?;
        table.push((pair.1, offset));
        body.clear();
        put_uvarint(&mut body, ids.len() as u64);
        let mut previous: Option<u32> = None;
        for &id in ids {
            match previous {
                None => put_uvarint(&mut body, u64::from(id)),
                Some(p) => put_uvarint(&mut body, u64::from(id - p - 1)),
            }
            previous = Some(id);
        }
        scratch.clear();
        put_uvarint(&mut scratch, body.len() as u64);
        scratch.extend_from_slice(&body);
        scratch.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        w.write(&scratch).map_err(io)?;
    }
    toc.push((start, w.pos - start));

    // Postings table.
    let start = w.pos;
    w.reset_crc();
    for (value, offset) in &table {
        w.write(&value.to_le_bytes()).map_err(io)?;
        w.write(&offset.to_le_bytes()).map_err(io)?;
    }
    toc.push((start, w.pos - start));
    w.write_crc().map_err(io)?;

    // Label names with their number of values.
    let start = w.pos;
    scratch.clear();
    put_uvarint(&mut scratch, names.len() as u64);
    for (name, _, count) in &names {
        put_uvarint(&mut scratch, u64::from(*name));
        put_uvarint(&mut scratch, u64::from(*count));
    }
    w.write(&scratch).map_err(io)?;
    toc.push((start, w.pos - start));
    w.write_crc().map_err(io)?;

    // TOC.
    scratch.clear();
    for (offset, len) in &toc {
        scratch.extend_from_slice(&offset.to_le_bytes());
        scratch.extend_from_slice(&len.to_le_bytes());
    }
    scratch.extend_from_slice(&u64::from(num_series).to_le_bytes());
    scratch.extend_from_slice(&base_time.to_le_bytes());
    let crc = crc32c::crc32c(&scratch);
    scratch.extend_from_slice(&crc.to_le_bytes());
    w.out.write_all(&scratch).map_err(io)?;
    w.pos += scratch.len() as u64;

    let file = w.out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(w.pos)
}

// ---------------------------------------------------------------------------
// Reader.

/// The bytes of an index: a memory map of the file, or owned bytes (tests,
/// fuzzing).
enum IndexBytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl IndexBytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            IndexBytes::Mapped(m) => m,
            IndexBytes::Owned(v) => v,
        }
    }
}

/// One label name of the index, held in memory after open.
struct NameEntry {
    name: LabelStr,
    /// First entry of this name's run in the postings table.
    first: u32,
    /// Number of values (entries in the run).
    count: u32,
}

/// The labels, as (name ordinal, value ordinal), and chunks of one series.
#[derive(Default)]
pub(crate) struct RawSeries {
    pub(crate) labels: Vec<(u32, u32)>,
    pub(crate) chunks: Vec<(i64, i64, u64)>,
}

/// Where a sequential walk over the series section stands: the id and offset
/// of the next entry. Walking ids in increasing order then skips nothing.
#[derive(Clone, Copy, Default)]
pub(crate) struct SeriesCursor {
    next_id: u32,
    next_pos: usize,
}

/// A read-only view of an index file. `Send + Sync`.
pub struct IndexReader {
    bytes: IndexBytes,
    path: PathBuf,
    symbols: Range<usize>,
    symbol_samples: Range<usize>,
    series: Range<usize>,
    series_samples: Range<usize>,
    postings: Range<usize>,
    postings_table: Range<usize>,
    symbol_count: u32,
    num_series: u32,
    /// The min time that every series' first chunk is stored relative to.
    base_time: i64,
    names: Vec<NameEntry>,
}

impl IndexReader {
    /// Memory-maps and validates the index at `path`.
    pub fn open(path: &Path) -> Result<IndexReader, BlockError> {
        let file = File::open(path).map_err(|e| BlockError::io(path, e, "opening index"))?;
        let len = file
            .metadata()
            .map_err(|e| BlockError::io(path, e, "reading index metadata"))?
            .len();
        if len < (HEADER_LEN + TOC_LEN) as u64 {
            return Err(BlockError::corrupt(
                path,
                len,
                "index file too short for header and TOC",
            ));
        }
        // SAFETY: block files are immutable once renamed into place; osprey
        // never writes to them again, and deletion keeps the mapping valid.
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| BlockError::io(path, e, "memory-mapping index"))?;
        IndexReader::from_bytes_inner(IndexBytes::Mapped(map), path.to_path_buf())
    }

    /// Validates an index held in memory; `name` is used in error messages.
    pub fn from_bytes(bytes: Vec<u8>, name: &Path) -> Result<IndexReader, BlockError> {
        IndexReader::from_bytes_inner(IndexBytes::Owned(bytes), name.to_path_buf())
    }

    fn from_bytes_inner(bytes: IndexBytes, path: PathBuf) -> Result<IndexReader, BlockError> {
        let data = bytes.as_slice();
        let corrupt = |offset: usize, what: &str| BlockError::corrupt(&path, offset as u64, what);
        let decode = |e: DecodeError| BlockError::corrupt(&path, e.offset as u64, e.what);
        if data.len() < HEADER_LEN + TOC_LEN {
            return Err(corrupt(
                data.len(),
                "index file too short for header and TOC",
            ));
        }
        if data[..4] != INDEX_MAGIC {
            return Err(corrupt(0, "not an index file (bad magic)"));
        }
        if data[4] != INDEX_VERSION {
            return Err(corrupt(4, "unsupported index version"));
        }
        let toc_start = data.len() - TOC_LEN;
        let toc_bytes = &data[toc_start..];
        let stored_crc = u32::from_le_bytes([
            toc_bytes[TOC_LEN - 4],
            toc_bytes[TOC_LEN - 3],
            toc_bytes[TOC_LEN - 2],
            toc_bytes[TOC_LEN - 1],
        ]);
        if crc32c::crc32c(&toc_bytes[..TOC_LEN - 4]) != stored_crc {
            return Err(corrupt(toc_start, "TOC CRC mismatch"));
        }
        let mut d = Decoder::new(data, toc_start);
        let mut sections: Vec<Range<usize>> = Vec::with_capacity(SECTION_COUNT);
        // Sections follow one another; those with a section CRC have 4 more
        // bytes after them.
        let has_crc = [true, true, false, true, false, true, true];
        let mut previous_end = HEADER_LEN;
        for with_crc in has_crc {
            let offset = d.u64_le().map_err(decode)?;
            let len = d.u64_le().map_err(decode)?;
            let range = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(len).ok())
                .and_then(|(o, l)| Some(o..o.checked_add(l)?));
            let Some(range) = range else {
                return Err(corrupt(toc_start, "TOC section out of range"));
            };
            let end_with_crc = range.end + if with_crc { 4 } else { 0 };
            if range.start != previous_end || end_with_crc > toc_start {
                return Err(corrupt(toc_start, "TOC section out of range"));
            }
            if with_crc {
                let stored = u32::from_le_bytes([
                    data[range.end],
                    data[range.end + 1],
                    data[range.end + 2],
                    data[range.end + 3],
                ]);
                if crc32c::crc32c(&data[range.clone()]) != stored {
                    return Err(corrupt(range.start, "section CRC mismatch"));
                }
            }
            previous_end = end_with_crc;
            sections.push(range);
        }
        if previous_end != toc_start {
            return Err(corrupt(previous_end, "gap before the TOC"));
        }
        let num_series = d.u64_le().map_err(decode)?;
        let num_series = u32::try_from(num_series)
            .map_err(|_| corrupt(toc_start, "series count out of range"))?;
        let base_time = d.u64_le().map_err(decode)? as i64;

        let [
            symbols,
            symbol_samples,
            series,
            series_samples,
            postings,
            postings_table,
            label_names,
        ] = <[Range<usize>; SECTION_COUNT]>::try_from(sections)
            .map_err(|_| corrupt(toc_start, "TOC section count"))?;

        let mut d = Decoder::new(&data[..symbols.end], symbols.start);
        let symbol_count = d.u32_le().map_err(decode)?;
        if symbol_samples.len() != 4 * symbol_count.div_ceil(SYMBOL_STRIDE) as usize {
            return Err(corrupt(
                symbol_samples.start,
                "symbol samples do not match symbol count",
            ));
        }
        if series_samples.len() != 8 * num_series.div_ceil(SERIES_STRIDE) as usize {
            return Err(corrupt(
                series_samples.start,
                "series samples do not match series count",
            ));
        }
        if postings_table.len() % POSTINGS_TABLE_ENTRY_LEN != 0 {
            return Err(corrupt(postings_table.start, "postings table length"));
        }
        let table_entries = (postings_table.len() / POSTINGS_TABLE_ENTRY_LEN) as u64;

        let mut reader = IndexReader {
            path: path.clone(),
            symbols,
            symbol_samples,
            series,
            series_samples,
            postings,
            postings_table,
            symbol_count,
            num_series,
            base_time,
            names: Vec::new(),
            bytes: IndexBytes::Owned(Vec::new()),
        };
        // Parse the label names while `data` still borrows `bytes`.
        let mut d = Decoder::new(&data[..label_names.end], label_names.start);
        let count = d.uvarint().map_err(decode)?;
        let mut names = Vec::new();
        let mut first: u64 = 0;
        let mut previous_ref: Option<u32> = None;
        for _ in 0..count {
            let name_ref = d.uvarint_u32().map_err(decode)?;
            let values = d.uvarint_u32().map_err(decode)?;
            if previous_ref.is_some_and(|p| p >= name_ref) || values == 0 {
                return Err(corrupt(d.pos, "label names not sorted or empty"));
            }
            previous_ref = Some(name_ref);
            let name = reader.symbol_in(data, name_ref)?.to_string();
            if names
                .last()
                .is_some_and(|n: &NameEntry| n.name.as_str() >= name.as_str())
            {
                return Err(corrupt(d.pos, "label names not sorted"));
            }
            names.push(NameEntry {
                name: name.into(),
                first: first as u32,
                count: values,
            });
            first += u64::from(values);
            if first > table_entries {
                return Err(corrupt(d.pos, "label names overrun the postings table"));
            }
        }
        if first != table_entries || d.pos != label_names.end {
            return Err(corrupt(
                label_names.start,
                "label names do not cover the postings table",
            ));
        }
        reader.names = names;
        reader.bytes = bytes;
        Ok(reader)
    }

    fn data(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    fn corrupt(&self, e: DecodeError) -> BlockError {
        BlockError::corrupt(&self.path, e.offset as u64, e.what)
    }

    /// The path (or name) of the index, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of series; their ids are `0..num_series`.
    pub fn num_series(&self) -> u32 {
        self.num_series
    }

    /// The number of bytes of the index.
    pub fn len_bytes(&self) -> u64 {
        self.data().len() as u64
    }

    /// Every label name, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.names.iter().map(|n| n.name.to_string()).collect()
    }

    /// Every value of one label name, sorted.
    pub fn label_values(&self, name: &str) -> Result<Vec<String>, BlockError> {
        let Some(entry) = self.name_entry(name) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(entry.count as usize);
        for i in entry.first..entry.first + entry.count {
            let (value_ref, _) = self.table_entry(i)?;
            out.push(self.symbol(value_ref)?.to_string());
        }
        Ok(out)
    }

    fn name_entry(&self, name: &str) -> Option<&NameEntry> {
        self.names
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.names[i])
    }

    /// The string of a symbol reference.
    pub fn symbol(&self, symbol_ref: u32) -> Result<&str, BlockError> {
        self.symbol_in(self.data(), symbol_ref)
    }

    /// [`IndexReader::symbol`] over explicit bytes, usable during open.
    fn symbol_in<'a>(&self, data: &'a [u8], symbol_ref: u32) -> Result<&'a str, BlockError> {
        if symbol_ref >= self.symbol_count {
            return Err(BlockError::corrupt(
                &self.path,
                self.symbols.start as u64,
                "symbol reference out of range",
            ));
        }
        let mut d = Decoder::new(
            &data[..self.symbols.end],
            self.symbol_sample_pos(data, symbol_ref / SYMBOL_STRIDE)?,
        );
        for _ in 0..symbol_ref % SYMBOL_STRIDE {
            self.skip_string(&mut d)?;
        }
        self.read_string(&mut d)
    }

    fn symbol_sample_pos(&self, data: &[u8], sample: u32) -> Result<usize, BlockError> {
        let mut d = Decoder::new(
            &data[..self.symbol_samples.end],
            self.symbol_samples.start + 4 * sample as usize,
        );
        let offset = d.u32_le().map_err(|e| self.corrupt(e))? as usize;
        let pos = self.symbols.start.saturating_add(offset);
        if pos < self.symbols.start + 4 || pos >= self.symbols.end {
            return Err(BlockError::corrupt(
                &self.path,
                d.pos as u64,
                "symbol sample out of range",
            ));
        }
        Ok(pos)
    }

    fn skip_string(&self, d: &mut Decoder<'_>) -> Result<(), BlockError> {
        let len = d.uvarint().map_err(|e| self.corrupt(e))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        d.bytes(len).map_err(|e| self.corrupt(e)).map(|_| ())
    }

    fn read_string<'a>(&self, d: &mut Decoder<'a>) -> Result<&'a str, BlockError> {
        let len = d.uvarint().map_err(|e| self.corrupt(e))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let start = d.pos;
        let bytes = d.bytes(len).map_err(|e| self.corrupt(e))?;
        std::str::from_utf8(bytes)
            .map_err(|_| BlockError::corrupt(&self.path, start as u64, "symbol is not UTF-8"))
    }

    /// The reference of a string in the symbol table, if present.
    fn symbol_ref(&self, s: &str) -> Result<Option<u32>, BlockError> {
        let data = self.data();
        let samples = self.symbol_count.div_ceil(SYMBOL_STRIDE);
        if samples == 0 {
            return Ok(None);
        }
        // Find the last sample whose first string is <= s.
        let (mut lo, mut hi) = (0u32, samples);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let mut d = Decoder::new(
                &data[..self.symbols.end],
                self.symbol_sample_pos(data, mid)?,
            );
            if self.read_string(&mut d)? <= s {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let mut d = Decoder::new(&data[..self.symbols.end], self.symbol_sample_pos(data, lo)?);
        let first = lo * SYMBOL_STRIDE;
        let last = (first + SYMBOL_STRIDE).min(self.symbol_count);
        for r in first..last {
            let candidate = self.read_string(&mut d)?;
            match candidate.cmp(s) {
                std::cmp::Ordering::Equal => return Ok(Some(r)),
                std::cmp::Ordering::Greater => return Ok(None),
                std::cmp::Ordering::Less => {}
            }
        }
        Ok(None)
    }

    /// Entry `i` of the postings table: (value reference, postings offset).
    fn table_entry(&self, i: u32) -> Result<(u32, u32), BlockError> {
        let pos = self.postings_table.start + i as usize * POSTINGS_TABLE_ENTRY_LEN;
        let mut d = Decoder::new(&self.data()[..self.postings_table.end], pos);
        let value = d.u32_le().map_err(|e| self.corrupt(e))?;
        let offset = d.u32_le().map_err(|e| self.corrupt(e))?;
        Ok((value, offset))
    }

    /// Appends the ids of the postings list at `offset` to `out`, which must
    /// already be sorted below them or empty.
    fn read_postings(&self, offset: u32, out: &mut Vec<u32>) -> Result<(), BlockError> {
        let data = &self.data()[..self.postings.end];
        let mut d = Decoder::new(data, self.postings.start.saturating_add(offset as usize));
        let body = d.crc_framed().map_err(|e| self.corrupt(e))?;
        let body_start = d.pos - 4 - body.len();
        let mut b = Decoder::new(body, 0);
        let fail = |b: &Decoder<'_>, what: &'static str| {
            BlockError::corrupt(&self.path, (body_start + b.pos) as u64, what)
        };
        let decode = |e: DecodeError| {
            BlockError::corrupt(&self.path, (body_start + e.offset) as u64, e.what)
        };
        let count = b.uvarint().map_err(decode)?;
        if count == 0 || count > u64::from(self.num_series) {
            return Err(fail(&b, "postings count out of range"));
        }
        out.reserve(count as usize);
        let mut id = b.uvarint().map_err(decode)?;
        for i in 0..count {
            if i > 0 {
                let delta = b.uvarint().map_err(decode)?;
                id = id.saturating_add(delta).saturating_add(1);
            }
            if id >= u64::from(self.num_series) {
                return Err(fail(&b, "series id out of range in postings"));
            }
            out.push(id as u32);
        }
        if b.pos != body.len() {
            return Err(fail(&b, "trailing bytes in postings list"));
        }
        Ok(())
    }

    /// The sorted ids of the series that have label `name` set to `value`.
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u32>, BlockError> {
        let mut out = Vec::new();
        let Some(entry) = self.name_entry(name) else {
            return Ok(out);
        };
        let Some(value_ref) = self.symbol_ref(value)? else {
            return Ok(out);
        };
        let (mut lo, mut hi) = (entry.first, entry.first + entry.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (candidate, offset) = self.table_entry(mid)?;
            match candidate.cmp(&value_ref) {
                std::cmp::Ordering::Equal => {
                    self.read_postings(offset, &mut out)?;
                    return Ok(out);
                }
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(out)
    }

    /// The union of the postings of every value of `name` for which
    /// `keep(value)` holds.
    fn postings_for_values(
        &self,
        name: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<u32>, BlockError> {
        let Some(entry) = self.name_entry(name) else {
            return Ok(Vec::new());
        };
        let mut lists: Vec<u32> = Vec::new();
        let mut n_lists = 0usize;
        for i in entry.first..entry.first + entry.count {
            let (value_ref, offset) = self.table_entry(i)?;
            if keep(self.symbol(value_ref)?) {
                self.read_postings(offset, &mut lists)?;
                n_lists += 1;
            }
        }
        if n_lists > 1 {
            sort_dedup_ids(&mut lists, self.num_series);
        }
        Ok(lists)
    }

    /// The sorted ids of the series that satisfy every matcher, with
    /// Prometheus semantics: a matcher that matches the empty string also
    /// selects series that lack its label. No matchers select every series.
    pub fn postings_for_matchers(&self, matchers: &[Matcher]) -> Result<Vec<u32>, BlockError> {
        // Equality matchers first: they are one binary search and usually the
        // most selective, so later intersections are small.
        let mut ordered: Vec<&Matcher> = matchers.iter().collect();
        ordered.sort_by_key(|m| match m.op() {
            MatchOp::Equal => 0,
            MatchOp::RegexMatch => 1,
            MatchOp::NotEqual => 2,
            MatchOp::RegexNoMatch => 3,
        });
        let mut positive: Option<Vec<u32>> = None;
        let mut excluded: Vec<Vec<u32>> = Vec::new();
        for m in ordered {
            if m.matches_empty() {
                // Series without the label match; so do series whose value
                // matches. Remove the series whose value does not.
                if m.op() == MatchOp::RegexMatch && m.value() == ".*" {
                    continue;
                }
                let ids = self.postings_for_values(m.name(), |v| !m.matches(v))?;
                if !ids.is_empty() {
                    excluded.push(ids);
                }
            } else {
                let ids = if m.op() == MatchOp::Equal {
                    self.postings(m.name(), m.value())?
                } else {
                    self.postings_for_values(m.name(), |v| m.matches(v))?
                };
                let next = match positive.take() {
                    None => ids,
                    Some(p) => intersect(&p, &ids),
                };
                if next.is_empty() {
                    return Ok(Vec::new());
                }
                positive = Some(next);
            }
        }
        let mut result = match positive {
            Some(p) => p,
            None => (0..self.num_series).collect(),
        };
        for ids in &excluded {
            result = subtract(&result, ids);
        }
        Ok(result)
    }

    /// Reads series `id`, using and advancing `cursor` so that increasing ids
    /// are read without skipping.
    pub(crate) fn series(
        &self,
        id: u32,
        cursor: &mut SeriesCursor,
        out: &mut RawSeries,
    ) -> Result<(), BlockError> {
        if id >= self.num_series {
            return Err(BlockError::invalid_input(format!(
                "series id {id} out of range in {}",
                self.path.display()
            )));
        }
        let data = &self.data()[..self.series.end];
        let (mut at_id, start) = if id >= cursor.next_id
            && id - cursor.next_id < SERIES_STRIDE
            && cursor.next_pos != 0
        {
            (cursor.next_id, cursor.next_pos)
        } else {
            let sample = id / SERIES_STRIDE;
            let mut d = Decoder::new(
                &self.data()[..self.series_samples.end],
                self.series_samples.start + 8 * sample as usize,
            );
            let offset = d.u64_le().map_err(|e| self.corrupt(e))?;
            let pos = usize::try_from(offset)
                .ok()
                .and_then(|o| self.series.start.checked_add(o))
                .filter(|p| *p < self.series.end)
                .ok_or_else(|| {
                    BlockError::corrupt(&self.path, d.pos as u64, "series sample out of range")
                })?;
            (sample * SERIES_STRIDE, pos)
        };
        let mut d = Decoder::new(data, start);
        while at_id < id {
            d.skip_framed().map_err(|e| self.corrupt(e))?;
            at_id += 1;
        }
        let entry_start = d.pos;
        let body = d.crc_framed().map_err(|e| self.corrupt(e))?;
        cursor.next_id = id + 1;
        cursor.next_pos = d.pos;
        self.decode_series(body, entry_start, out)
    }

    fn decode_series(
        &self,
        body: &[u8],
        entry_start: usize,
        out: &mut RawSeries,
    ) -> Result<(), BlockError> {
        let fail = |what: &'static str| BlockError::corrupt(&self.path, entry_start as u64, what);
        let decode = |e: DecodeError| fail(e.what);
        out.labels.clear();
        out.chunks.clear();
        let mut b = Decoder::new(body, 0);
        let n_labels = b.uvarint().map_err(decode)?;
        if n_labels > body.len() as u64 {
            return Err(fail("label count out of range"));
        }
        let mut previous_name: Option<u32> = None;
        for _ in 0..n_labels {
            let name = b.uvarint_u32().map_err(decode)?;
            let value = b.uvarint_u32().map_err(decode)?;
            if previous_name.is_some_and(|p| p >= name) {
                return Err(fail("series label names not sorted"));
            }
            let Some(entry) = self.names.get(name as usize) else {
                return Err(fail("series label name out of range"));
            };
            if value >= entry.count {
                return Err(fail("series label value out of range"));
            }
            previous_name = Some(name);
            out.labels.push((name, value));
        }
        let n_chunks = b.uvarint().map_err(decode)?;
        if n_chunks == 0 || n_chunks > body.len() as u64 {
            return Err(fail("chunk count out of range"));
        }
        let mut previous = ChunkDeltaState::default();
        for k in 0..n_chunks {
            let (min_time, span, chunk_ref) = if k == 0 {
                let min_time = self.base_time.wrapping_add(b.varint().map_err(decode)?);
                let span = b.varint().map_err(decode)?;
                let chunk_ref = b.uvarint().map_err(decode)?;
                (min_time, span, chunk_ref)
            } else {
                let gap = previous.gap.wrapping_add(b.varint().map_err(decode)?);
                let span = previous.span.wrapping_add(b.varint().map_err(decode)?);
                let delta = b.varint().map_err(decode)?;
                previous.gap = gap;
                (
                    previous.max_time.wrapping_add(gap),
                    span,
                    previous.chunk_ref.wrapping_add(delta as u64),
                )
            };
            let max_time = min_time.wrapping_add(span);
            if span < 0 || max_time < min_time {
                return Err(fail("chunk time range is negative or overflows"));
            }
            out.chunks.push((min_time, max_time, chunk_ref));
            previous.max_time = max_time;
            previous.span = span;
            previous.chunk_ref = chunk_ref;
        }
        if b.pos != body.len() {
            return Err(fail("trailing bytes in series entry"));
        }
        Ok(())
    }

    /// Turns (name ordinal, value ordinal) labels into [`Labels`], checking
    /// that values are non-empty (so a corrupt file cannot break the
    /// invariants of `Labels`; names are sorted by construction).
    ///
    /// `cache` remembers value strings by postings table entry, so resolving
    /// many series walks the symbol table once per distinct value.
    pub(crate) fn resolve_labels(
        &self,
        ordinals: &[(u32, u32)],
        cache: &mut HashMap<u32, LabelStr>,
    ) -> Result<Labels, BlockError> {
        let mut labels: Vec<Label> = Vec::with_capacity(ordinals.len());
        for &(name, value) in ordinals {
            let entry = self.name_by_ordinal(name)?;
            let key = entry.first.saturating_add(value);
            let value = match cache.get(&key) {
                Some(v) if value < entry.count => v.clone(),
                _ => {
                    let v = LabelStr::from(self.value_by_ordinal(entry, value)?);
                    cache.insert(key, v.clone());
                    v
                }
            };
            labels.push(Label {
                name: entry.name.clone(),
                value,
            });
        }
        Ok(Labels::from_sorted_unchecked(labels))
    }

    fn name_by_ordinal(&self, ordinal: u32) -> Result<&NameEntry, BlockError> {
        self.names.get(ordinal as usize).ok_or_else(|| {
            BlockError::corrupt(
                &self.path,
                self.series.start as u64,
                "label name ordinal out of range",
            )
        })
    }

    fn value_by_ordinal(&self, name: &NameEntry, ordinal: u32) -> Result<&str, BlockError> {
        if ordinal >= name.count {
            return Err(BlockError::corrupt(
                &self.path,
                self.series.start as u64,
                "label value ordinal out of range",
            ));
        }
        let (value_ref, _) = self.table_entry(name.first + ordinal)?;
        let value = self.symbol(value_ref)?;
        if value.is_empty() {
            return Err(BlockError::corrupt(
                &self.path,
                self.postings_table.start as u64,
                "empty label value",
            ));
        }
        Ok(value)
    }

    /// The label name with ordinal `ordinal` (its position among the
    /// sorted names).
    pub(crate) fn label_name(&self, ordinal: u32) -> Result<&str, BlockError> {
        Ok(self.name_by_ordinal(ordinal)?.name.as_str())
    }

    /// The value with ordinal `value` of the name with ordinal `name`.
    pub(crate) fn label_value(&self, name: u32, value: u32) -> Result<&str, BlockError> {
        self.value_by_ordinal(self.name_by_ordinal(name)?, value)
    }

    /// The ordinal of a label name, if the index has it.
    pub(crate) fn name_ordinal(&self, name: &str) -> Option<u32> {
        self.names
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
            .map(|i| i as u32)
    }
}

/// Sorts and deduplicates ids below `num_series`, with a bitmap when the list
/// is dense enough that the bitmap is cheaper than sorting.
fn sort_dedup_ids(ids: &mut Vec<u32>, num_series: u32) {
    if (ids.len() as u64) * 16 < u64::from(num_series) {
        ids.sort_unstable();
        ids.dedup();
        return;
    }
    let mut bits = vec![0u64; (num_series as usize).div_ceil(64)];
    for &id in ids.iter() {
        if let Some(word) = bits.get_mut(id as usize / 64) {
            *word |= 1 << (id % 64);
        }
    }
    ids.clear();
    for (w, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            let bit = word.trailing_zeros();
            ids.push(w as u32 * 64 + bit);
            word &= word - 1;
        }
    }
}

/// Ids in both sorted lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Ids of sorted `a` that are not in sorted `b`.
pub(crate) fn subtract(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &id in a {
        while j < b.len() && b[j] < id {
            j += 1;
        }
        if j < b.len() && b[j] == id {
            continue;
        }
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trips_and_rejects_overflow() {
        for value in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, value);
            assert_eq!(read_uvarint(&buf), Some((value, buf.len())));
            assert_eq!(read_uvarint(&buf[..buf.len() - 1]), None);
        }
        assert_eq!(read_uvarint(&[0xff; 10]), None);
        assert_eq!(
            read_uvarint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
    }

    #[test]
    fn varint_round_trips_signed_values() {
        for value in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            let (raw, _) = read_uvarint(&buf).unwrap();
            assert_eq!(zigzag_decode(raw), value);
        }
    }

    #[test]
    fn set_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 7, 9]), vec![3, 7]);
        assert_eq!(subtract(&[1, 3, 5, 7], &[3, 4, 7]), vec![1, 5]);
        let mut dense = vec![5, 1, 3, 1, 0, 5];
        sort_dedup_ids(&mut dense, 8);
        assert_eq!(dense, vec![0, 1, 3, 5]);
        let mut sparse = vec![900, 5, 900];
        sort_dedup_ids(&mut sparse, 1000);
        assert_eq!(sparse, vec![5, 900]);
    }
}
