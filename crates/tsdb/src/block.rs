//! Immutable blocks: writing a block directory and reading it back.
//!
//! A block is a directory `<ULID>/` holding `meta.json`, an `index` and chunk
//! segment files under `chunks/`; `docs/format/block.md` and
//! `docs/format/index.md` specify the bytes. [`BlockWriter`] streams series
//! sorted by labels into `<ULID>.tmp/` and renames it into place when every
//! file is fsynced, so a finished block is never half-written; a crash leaves
//! a `.tmp` directory that [`cleanup_tmp`] removes. [`Block`] memory-maps the
//! index and the segments and answers matcher queries through the postings.
//!
//! Chunk bytes are mostly opaque here: an encoding byte and data produced by
//! `chunkenc`. Deleted samples are listed in the block's `tombstones` file
//! (`docs/format/tombstones.md`, [`crate::tombstones`]); [`Block::select`]
//! leaves out chunks whose every sample is deleted (decoding the chunks a
//! tombstone only partly covers to find out) and hands each series its
//! deleted intervals, which the reader applies while decoding.

use crate::index::{IndexReader, IndexSeries, RawSeries, SeriesCursor, put_uvarint, read_uvarint};
use crate::sync::{lock, read, write};
use crate::tombstones::{self, Intervals, Tombstones};
use memmap2::Mmap;
use model::{Labels, Matcher};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The block format version written to `meta.json`.
pub const BLOCK_VERSION: u32 = 1;
/// The four bytes that open a chunk segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"OSPC";
const SEGMENT_VERSION: u8 = 1;
const SEGMENT_HEADER_LEN: u64 = 8;
/// A writer starts a new segment before one would grow past this. 512 MiB
/// keeps the number of files and mappings small for big blocks while staying
/// far below the 4 GiB that 32-bit offsets allow.
pub const SEGMENT_MAX_BYTES: u64 = 512 << 20;

// ---------------------------------------------------------------------------
// Public types.

/// One chunk handed to the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub min_time: i64,
    pub max_time: i64,
    pub encoding: u8,
    pub data: Vec<u8>,
}

/// The contents of `meta.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: BlockCompaction,
    pub version: u32,
    /// Set on a block of a resolution tier (`docs/format/downsample.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downsample: Option<Downsample>,
}

/// The level-1 blocks whose samples `meta`'s block holds: its recorded
/// `compaction.sources`, or the block itself when it records none (a
/// block written from the head or by an import).
pub fn sources_of(meta: &BlockMeta) -> Vec<String> {
    if meta.compaction.sources.is_empty() {
        vec![meta.ulid.clone()]
    } else {
        meta.compaction.sources.clone()
    }
}

/// `meta.json`'s `downsample` field: the window length of a tier block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downsample {
    pub resolution: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_samples: u64,
    pub num_series: u64,
    pub num_chunks: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockCompaction {
    pub level: u32,
    pub sources: Vec<String>,
    pub parents: Vec<String>,
}

/// What the caller knows about a block before writing it.
#[derive(Clone, Debug)]
pub struct NewBlock {
    pub min_time: i64,
    pub max_time: i64,
    pub level: u32,
    pub sources: Vec<String>,
    pub parents: Vec<String>,
}

/// A chunk reference: segment number in the upper 32 bits, byte offset of
/// the record in the lower 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkRef(pub u64);

impl ChunkRef {
    pub fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub fn offset(self) -> u32 {
        self.0 as u32
    }
}

/// A selected series and its chunks that overlap the query range, as
/// (min time, max time, reference), with the intervals of it that are
/// deleted (empty when none): a reader drops the samples in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesChunks {
    pub labels: Labels,
    pub chunks: Vec<(i64, i64, ChunkRef)>,
    pub deleted: Intervals,
}

// ---------------------------------------------------------------------------
// Errors.

/// What went wrong, broadly.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockErrorKind {
    /// The operating system refused a read or write.
    Io,
    /// A file's bytes are not a valid block file.
    Corrupt,
    /// The caller passed something the block cannot hold.
    InvalidInput,
}

/// An error from writing or reading a block, naming the file and the offset
/// where known.
#[derive(Debug)]
pub struct BlockError {
    kind: BlockErrorKind,
    path: Option<PathBuf>,
    offset: Option<u64>,
    message: String,
    source: Option<std::io::Error>,
}

impl BlockError {
    pub fn kind(&self) -> BlockErrorKind {
        self.kind
    }

    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The byte offset in that file, for corruption.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    pub(crate) fn io(path: &Path, source: std::io::Error, what: &str) -> BlockError {
        BlockError {
            kind: BlockErrorKind::Io,
            path: Some(path.to_path_buf()),
            offset: None,
            message: what.to_string(),
            source: Some(source),
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, what: &str) -> BlockError {
        BlockError {
            kind: BlockErrorKind::Corrupt,
            path: Some(path.to_path_buf()),
            offset: Some(offset),
            message: what.to_string(),
            source: None,
        }
    }

    pub(crate) fn invalid_input(what: impl Into<String>) -> BlockError {
        BlockError {
            kind: BlockErrorKind::InvalidInput,
            path: None,
            offset: None,
            message: what.into(),
            source: None,
        }
    }
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            BlockErrorKind::Io => f.write_str("block I/O error")?,
            BlockErrorKind::Corrupt => f.write_str("corrupt block")?,
            BlockErrorKind::InvalidInput => f.write_str("invalid block input")?,
        }
        if let Some(path) = &self.path {
            write!(f, ": {}", path.display())?;
        }
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BlockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

// ---------------------------------------------------------------------------
// ULIDs.

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The last ULID handed out, as (milliseconds, 80 random bits), so that ULIDs
/// from this process strictly increase.
static LAST_ULID: Mutex<Option<(u64, u128)>> = Mutex::new(None);

/// A new ULID: 48 bits of milliseconds since the epoch and 80 random bits,
/// Crockford base32, 26 characters. Within one process each ULID sorts after
/// the previous one, even within one millisecond or if the clock steps back.
pub fn new_ulid() -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        & ((1 << 48) - 1);
    let mask80: u128 = (1 << 80) - 1;
    let mut last = LAST_ULID.lock().unwrap_or_else(|e| e.into_inner());
    let (ms, random) = match *last {
        Some((last_ms, last_random)) if now_ms <= last_ms => {
            if last_random < mask80 {
                (last_ms, last_random + 1)
            } else {
                (last_ms + 1, random_80_bits())
            }
        }
        _ => (now_ms, random_80_bits()),
    };
    *last = Some((ms, random));
    drop(last);
    encode_ulid(ms, random)
}

fn encode_ulid(ms: u64, random: u128) -> String {
    let value: u128 = (u128::from(ms) << 80) | (random & ((1 << 80) - 1));
    (0..26)
        .map(|i| CROCKFORD[((value >> (5 * (25 - i))) & 31) as usize] as char)
        .collect()
}

/// Whether `s` looks like a ULID.
pub(crate) fn is_ulid(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| CROCKFORD.contains(&b)) && s.as_bytes()[0] <= b'7'
}

fn random_80_bits() -> u128 {
    u128::from_le_bytes(random_bytes()) & ((1 << 80) - 1)
}

/// 64 random bits (snapshot names).
pub(crate) fn random_u64() -> u64 {
    let bytes: [u8; 16] = random_bytes();
    u128::from_le_bytes(bytes) as u64
}

/// Sixteen random bytes from the operating system, or, should it fail, from
/// the standard library's hash seeds and the clock.
fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let from_urandom = File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !from_urandom {
        use std::hash::{BuildHasher, Hasher};
        let state = std::collections::hash_map::RandomState::new();
        for half in 0..2u8 {
            let mut h = state.build_hasher();
            h.write_u8(half);
            h.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            let start = usize::from(half) * 8;
            bytes[start..start + 8].copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes
}

// ---------------------------------------------------------------------------
// Directory helpers.

pub(crate) fn sync_dir(dir: &Path) -> Result<(), BlockError> {
    model::durable::sync_dir(dir).map_err(|e| BlockError::io(dir, e, "fsyncing directory"))
}

/// Removes every `*.tmp` directory under `data_dir`: blocks whose writer
/// crashed or was dropped. A missing `data_dir` is not an error.
pub fn cleanup_tmp(data_dir: &Path) -> Result<(), BlockError> {
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BlockError::io(data_dir, e, "listing data directory")),
    };
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(|e| BlockError::io(data_dir, e, "listing data directory"))?;
        let path = entry.path();
        let is_tmp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".tmp"));
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_tmp && is_dir {
            fs::remove_dir_all(&path)
                .map_err(|e| BlockError::io(&path, e, "removing unfinished block"))?;
            tracing::info!(dir = %path.display(), "removed unfinished block");
            removed = true;
        }
    }
    if removed {
        sync_dir(data_dir)?;
    }
    Ok(())
}

fn segment_file_name(number: u32) -> String {
    format!("{number:06}")
}

// ---------------------------------------------------------------------------
// Writer.

struct SegmentWriter {
    number: u32,
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
}

impl SegmentWriter {
    fn finish(self) -> Result<(), BlockError> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| BlockError::io(&path, e.into_error(), "flushing chunk segment"))?;
        file.sync_all()
            .map_err(|e| BlockError::io(&path, e, "fsyncing chunk segment"))
    }
}

/// Streams series, sorted by labels, into a new block directory.
pub struct BlockWriter {
    data_dir: PathBuf,
    tmp_dir: PathBuf,
    ulid: String,
    new: NewBlock,
    segment: Option<SegmentWriter>,
    series: Vec<IndexSeries>,
    last_labels: Option<Labels>,
    stats: BlockStats,
    record: Vec<u8>,
    finished: bool,
    downsample: Option<Downsample>,
}

impl BlockWriter {
    /// Starts a block in `<data_dir>/<ULID>.tmp/`.
    pub fn create(data_dir: &Path, new: NewBlock) -> Result<BlockWriter, BlockError> {
        if new.min_time > new.max_time {
            return Err(BlockError::invalid_input(format!(
                "block min time {} is after max time {}",
                new.min_time, new.max_time
            )));
        }
        let ulid = new_ulid();
        let tmp_dir = data_dir.join(format!("{ulid}.tmp"));
        let chunks_dir = tmp_dir.join("chunks");
        fs::create_dir_all(&chunks_dir)
            .map_err(|e| BlockError::io(&chunks_dir, e, "creating block directory"))?;
        Ok(BlockWriter {
            data_dir: data_dir.to_path_buf(),
            tmp_dir,
            ulid,
            new,
            segment: None,
            series: Vec::new(),
            last_labels: None,
            stats: BlockStats::default(),
            record: Vec::new(),
            finished: false,
            downsample: None,
        })
    }

    /// Starts a block of a resolution tier (window length `resolution` ms)
    /// in `<tier_dir>/<ULID>.tmp/`; its chunks must be `Aggregate` ones.
    pub fn create_downsampled(
        tier_dir: &Path,
        new: NewBlock,
        resolution: i64,
    ) -> Result<BlockWriter, BlockError> {
        let mut writer = BlockWriter::create(tier_dir, new)?;
        writer.downsample = Some(Downsample { resolution });
        Ok(writer)
    }

    /// The ULID the block will have.
    pub fn ulid(&self) -> &str {
        &self.ulid
    }

    /// Adds one series. Series must come sorted by labels without
    /// duplicates, and chunks sorted by min time with `min_time <= max_time`.
    /// A series with no chunks is skipped.
    pub fn add_series(
        &mut self,
        labels: &Labels,
        chunks: &[ChunkMeta],
        num_samples: u64,
    ) -> Result<(), BlockError> {
        if let Some(last) = &self.last_labels
            && last >= labels
        {
            return Err(BlockError::invalid_input(format!(
                "series {labels} added after {last}: series must be sorted by labels and unique"
            )));
        }
        for (i, c) in chunks.iter().enumerate() {
            if c.min_time > c.max_time {
                return Err(BlockError::invalid_input(format!(
                    "chunk of {labels} has min time {} after max time {}",
                    c.min_time, c.max_time
                )));
            }
            if i > 0 && chunks[i - 1].min_time > c.min_time {
                return Err(BlockError::invalid_input(format!(
                    "chunks of {labels} are not sorted by min time"
                )));
            }
        }
        self.last_labels = Some(labels.clone());
        if chunks.is_empty() {
            return Ok(());
        }
        let mut refs = Vec::with_capacity(chunks.len());
        for c in chunks {
            refs.push((c.min_time, c.max_time, self.write_chunk(c)?));
        }
        self.series.push(IndexSeries {
            labels: labels.clone(),
            chunks: refs,
        });
        self.stats.num_series += 1;
        self.stats.num_chunks += chunks.len() as u64;
        self.stats.num_samples += num_samples;
        Ok(())
    }

    fn write_chunk(&mut self, chunk: &ChunkMeta) -> Result<u64, BlockError> {
        self.record.clear();
        self.record.push(chunk.encoding);
        put_uvarint(&mut self.record, chunk.data.len() as u64);
        self.record.extend_from_slice(&chunk.data);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[chunk.encoding]), &chunk.data);
        self.record.extend_from_slice(&crc.to_le_bytes());
        let record_len = self.record.len() as u64;
        if record_len > u64::from(u32::MAX) - SEGMENT_HEADER_LEN {
            return Err(BlockError::invalid_input("chunk larger than 4 GiB"));
        }
        let needs_new = match &self.segment {
            None => true,
            Some(s) => s.len > SEGMENT_HEADER_LEN && s.len + record_len > SEGMENT_MAX_BYTES,
        };
        if needs_new {
            let number = self.segment.as_ref().map_or(1, |s| s.number + 1);
            if let Some(old) = self.segment.take() {
                old.finish()?;
            }
            let path = self.tmp_dir.join("chunks").join(segment_file_name(number));
            let file = File::create(&path)
                .map_err(|e| BlockError::io(&path, e, "creating chunk segment"))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
            header[..4].copy_from_slice(&SEGMENT_MAGIC);
            header[4] = SEGMENT_VERSION;
            out.write_all(&header)
                .map_err(|e| BlockError::io(&path, e, "writing chunk segment"))?;
            self.segment = Some(SegmentWriter {
                number,
                path,
                out,
                len: SEGMENT_HEADER_LEN,
            });
        }
        let Some(segment) = self.segment.as_mut() else {
            return Err(BlockError::invalid_input("no chunk segment open"));
        };
        let offset = segment.len;
        segment
            .out
            .write_all(&self.record)
            .map_err(|e| BlockError::io(&segment.path, e, "writing chunk segment"))?;
        segment.len += record_len;
        Ok((u64::from(segment.number) << 32) | offset)
    }

    /// Writes the index and `meta.json`, fsyncs everything and renames the
    /// directory into place. Returns the block's meta.
    pub fn finish(mut self) -> Result<BlockMeta, BlockError> {
        if let Some(segment) = self.segment.take() {
            segment.finish()?;
        }
        crate::index::write_index(&self.tmp_dir.join("index"), &self.series)?;
        let meta = BlockMeta {
            ulid: self.ulid.clone(),
            min_time: self.new.min_time,
            max_time: self.new.max_time,
            stats: self.stats.clone(),
            compaction: BlockCompaction {
                level: self.new.level,
                sources: self.new.sources.clone(),
                parents: self.new.parents.clone(),
            },
            version: BLOCK_VERSION,
            downsample: self.downsample,
        };
        let meta_path = self.tmp_dir.join("meta.json");
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| BlockError::invalid_input(format!("encoding meta.json: {e}")))?;
        let mut file = File::create(&meta_path)
            .map_err(|e| BlockError::io(&meta_path, e, "creating meta.json"))?;
        file.write_all(&json)
            .and_then(|_| file.sync_all())
            .map_err(|e| BlockError::io(&meta_path, e, "writing meta.json"))?;
        sync_dir(&self.tmp_dir.join("chunks"))?;
        sync_dir(&self.tmp_dir)?;
        let final_dir = self.data_dir.join(&self.ulid);
        fs::rename(&self.tmp_dir, &final_dir)
            .map_err(|e| BlockError::io(&final_dir, e, "renaming block into place"))?;
        self.finished = true;
        sync_dir(&self.data_dir)?;
        Ok(meta)
    }
}

impl Drop for BlockWriter {
    /// An abandoned writer removes its `.tmp` directory; errors are ignored
    /// because [`cleanup_tmp`] catches anything left.
    fn drop(&mut self) {
        if !self.finished {
            self.segment = None;
            let _ = fs::remove_dir_all(&self.tmp_dir);
        }
    }
}

// ---------------------------------------------------------------------------
// Reader.

struct Segment {
    number: u32,
    path: PathBuf,
    map: Mmap,
}

/// An open block: its meta, the memory-mapped index and chunk segments,
/// and its tombstones.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    segments: Vec<Segment>,
    size_bytes: u64,
    /// What is deleted; replaced whole by [`Block::delete`], so a reader
    /// holds one consistent set for its whole select.
    tombstones: RwLock<Arc<Tombstones>>,
    /// Serialises writers of the tombstones file.
    tombstones_writer: Mutex<()>,
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

fn read_meta(path: &Path) -> Result<BlockMeta, BlockError> {
    let bytes = fs::read(path).map_err(|e| BlockError::io(path, e, "reading meta.json"))?;
    let meta: BlockMeta = serde_json::from_slice(&bytes).map_err(|e| {
        BlockError::corrupt(path, e.column() as u64, &format!("invalid meta.json: {e}"))
    })?;
    if meta.version != BLOCK_VERSION {
        return Err(BlockError::corrupt(path, 0, "unsupported block version"));
    }
    if !is_ulid(&meta.ulid) {
        return Err(BlockError::corrupt(path, 0, "meta.json ulid is not a ULID"));
    }
    if meta.min_time > meta.max_time {
        return Err(BlockError::corrupt(
            path,
            0,
            "meta.json minTime is after maxTime",
        ));
    }
    Ok(meta)
}

impl Block {
    /// Opens the block in `dir`: reads `meta.json`, maps and validates the
    /// index, and maps every chunk segment.
    pub fn open(dir: &Path) -> Result<Block, BlockError> {
        let meta_path = dir.join("meta.json");
        let meta = read_meta(&meta_path)?;
        let mut size_bytes = fs::metadata(&meta_path)
            .map_err(|e| BlockError::io(&meta_path, e, "reading meta.json"))?
            .len();
        let index = IndexReader::open(&dir.join("index"))?;
        size_bytes += index.len_bytes();

        let chunks_dir = dir.join("chunks");
        let mut segments = Vec::new();
        let entries = fs::read_dir(&chunks_dir)
            .map_err(|e| BlockError::io(&chunks_dir, e, "listing chunk segments"))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| BlockError::io(&chunks_dir, e, "listing chunk segments"))?;
            let path = entry.path();
            let Some(number) = entry
                .file_name()
                .to_str()
                .filter(|n| n.len() == 6)
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let file =
                File::open(&path).map_err(|e| BlockError::io(&path, e, "opening chunk segment"))?;
            let len = file
                .metadata()
                .map_err(|e| BlockError::io(&path, e, "reading chunk segment metadata"))?
                .len();
            if len < SEGMENT_HEADER_LEN {
                return Err(BlockError::corrupt(
                    &path,
                    len,
                    "chunk segment shorter than its header",
                ));
            }
            // SAFETY: block files are immutable once renamed into place; osprey
            // never writes to them again, and deletion keeps the mapping valid.
            let map = unsafe { Mmap::map(&file) }
                .map_err(|e| BlockError::io(&path, e, "memory-mapping chunk segment"))?;
            if map[..4] != SEGMENT_MAGIC {
                return Err(BlockError::corrupt(
                    &path,
                    0,
                    "not a chunk segment (bad magic)",
                ));
            }
            if map[4] != SEGMENT_VERSION {
                return Err(BlockError::corrupt(
                    &path,
                    4,
                    "unsupported chunk segment version",
                ));
            }
            size_bytes += len;
            segments.push(Segment { number, path, map });
        }
        segments.sort_by_key(|s| s.number);
        tombstones::remove_leftover(dir);
        let tombstones = tombstones::read_file(dir)?;
        if let Some(max_id) = tombstones.max_series_id()
            && max_id >= index.num_series()
        {
            return Err(BlockError::corrupt(
                &dir.join(tombstones::TOMBSTONES_FILE),
                0,
                &format!(
                    "tombstones name series {max_id}, but the index has only {} series",
                    index.num_series()
                ),
            ));
        }
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            segments,
            size_bytes,
            tombstones: RwLock::new(Arc::new(tombstones)),
            tombstones_writer: Mutex::new(()),
        })
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sum of the sizes of `meta.json`, `index` and the chunk segments.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The block's index, for callers that walk series themselves.
    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// The block's tombstones as they are now.
    pub fn tombstones(&self) -> Arc<Tombstones> {
        read(&self.tombstones).clone()
    }

    /// Deletes the samples in `[mint, maxt]` of every series matching
    /// `matchers` (every series for none): adds a tombstone to each such
    /// series that has a chunk in the range, clipped to its chunks, and
    /// replaces the `tombstones` file. Returns how many series got a new
    /// tombstone.
    pub fn delete(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<usize, BlockError> {
        if mint > maxt || mint >= self.meta.max_time || maxt < self.meta.min_time {
            return Ok(0);
        }
        let _writer = lock(&self.tombstones_writer);
        let current = self.tombstones();
        let mut next = Tombstones::clone(&current);
        let mut cursor = SeriesCursor::default();
        let mut raw = RawSeries::default();
        let mut added = 0;
        for id in self.index.postings_for_matchers(matchers)? {
            self.index.series(id, &mut cursor, &mut raw)?;
            let first = raw.chunks.iter().map(|c| c.0).min();
            let last = raw.chunks.iter().map(|c| c.1).max();
            let (Some(first), Some(last)) = (first, last) else {
                continue;
            };
            let (low, high) = (mint.max(first), maxt.min(last));
            if low > high || current.get(id).is_some_and(|d| d.covers(low, high)) {
                continue;
            }
            next.add(id, low, high);
            added += 1;
        }
        if added > 0 {
            tombstones::write_file(&self.dir, &next)?;
            *write(&self.tombstones) = Arc::new(next);
        }
        Ok(added)
    }

    /// Tombstones, for each group of sorted series ids, their samples
    /// before the group's cutoff (per-series retention). One tombstones
    /// write; returns the series newly tombstoned.
    pub(crate) fn delete_expired(&self, groups: &[(Vec<u32>, i64)]) -> Result<usize, BlockError> {
        let mut expired: Vec<(u32, i64)> = groups
            .iter()
            .filter(|(_, cutoff)| *cutoff > self.meta.min_time)
            .flat_map(|(ids, cutoff)| ids.iter().map(move |&id| (id, *cutoff)))
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        expired.sort_unstable();
        expired.dedup_by_key(|(id, _)| *id);
        let _writer = lock(&self.tombstones_writer);
        let current = self.tombstones();
        let mut next = Tombstones::clone(&current);
        let mut cursor = SeriesCursor::default();
        let mut raw = RawSeries::default();
        let mut added = 0;
        for (id, cutoff) in expired {
            self.index.series(id, &mut cursor, &mut raw)?;
            let first = raw.chunks.iter().map(|c| c.0).min();
            let last = raw.chunks.iter().map(|c| c.1).max();
            let (Some(first), Some(last)) = (first, last) else {
                continue;
            };
            let high = last.min(cutoff - 1);
            if first > high || current.get(id).is_some_and(|d| d.covers(first, high)) {
                continue;
            }
            next.add(id, first, high);
            added += 1;
        }
        if added > 0 {
            tombstones::write_file(&self.dir, &next)?;
            *write(&self.tombstones) = Arc::new(next);
        }
        Ok(added)
    }

    /// Series matching every matcher that have a chunk overlapping
    /// `[mint, maxt]` (both inclusive), sorted by labels, each with only its
    /// overlapping chunks that hold a sample not deleted, and its deleted
    /// intervals. A series with no such chunk is left out.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesChunks>, BlockError> {
        if mint > maxt {
            return Ok(Vec::new());
        }
        let tombstones = self.tombstones();
        let ids = self.index.postings_for_matchers(matchers)?;
        let mut out = Vec::new();
        let mut value_cache = std::collections::HashMap::new();
        let mut cursor = SeriesCursor::default();
        let mut raw = RawSeries::default();
        for id in ids {
            self.index.series(id, &mut cursor, &mut raw)?;
            let deleted = tombstones.get(id);
            let mut chunks: Vec<(i64, i64, ChunkRef)> = Vec::new();
            for &(min, max, r) in &raw.chunks {
                if min > maxt || max < mint {
                    continue;
                }
                if let Some(deleted) = deleted
                    && !self.chunk_has_live_sample(min, max, ChunkRef(r), deleted)?
                {
                    continue;
                }
                chunks.push((min, max, ChunkRef(r)));
            }
            if chunks.is_empty() {
                continue;
            }
            out.push(SeriesChunks {
                labels: self.index.resolve_labels(&raw.labels, &mut value_cache)?,
                chunks,
                deleted: deleted.cloned().unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Whether the chunk `[min, max]` at `r` holds a sample that `deleted`
    /// does not cover; decodes it only when `deleted` covers part of it.
    fn chunk_has_live_sample(
        &self,
        min: i64,
        max: i64,
        r: ChunkRef,
        deleted: &Intervals,
    ) -> Result<bool, BlockError> {
        if !deleted.overlaps(min, max) {
            return Ok(true);
        }
        if deleted.covers(min, max) {
            return Ok(false);
        }
        if self.meta.downsample.is_some() {
            let (_, bytes) = self.chunk(r)?;
            let run = crate::downsample::decode_chunk(bytes)
                .map_err(|e| BlockError::corrupt(&self.dir, r.0, &e.to_string()))?;
            return Ok(run.points.iter().any(|p| !deleted.contains(p.t)));
        }
        Ok(self
            .chunk_samples(r)?
            .iter()
            .any(|&(t, _)| !deleted.contains(t))
            || self
                .chunk_histograms(r)?
                .iter()
                .any(|(t, _)| !deleted.contains(*t)))
    }

    /// Whether series `id`, whose index entry `raw` holds, has no sample
    /// left that its tombstones do not cover.
    fn is_deleted(&self, raw: &RawSeries, deleted: &Intervals) -> Result<bool, BlockError> {
        for &(min, max, r) in &raw.chunks {
            if self.chunk_has_live_sample(min, max, ChunkRef(r), deleted)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Ids of the series every sample of which is deleted.
    fn deleted_series(&self, tombstones: &Tombstones) -> Result<HashSet<u32>, BlockError> {
        let mut dead = HashSet::new();
        let mut cursor = SeriesCursor::default();
        let mut raw = RawSeries::default();
        for (id, deleted) in tombstones.iter() {
            self.index.series(id, &mut cursor, &mut raw)?;
            if self.is_deleted(&raw, deleted)? {
                dead.insert(id);
            }
        }
        Ok(dead)
    }

    /// The float samples of one chunk, decoded, after checking its CRC. A
    /// native histogram chunk has none (see [`Block::chunk_histograms`]):
    /// readers of floats only (downsampling) leave histograms out this way.
    pub(crate) fn chunk_samples(&self, r: ChunkRef) -> Result<Vec<(i64, f64)>, BlockError> {
        let (encoding, bytes) = self.chunk(r)?;
        let corrupt = |why: String| BlockError::corrupt(&self.dir, r.0, &why);
        if encoding == crate::chunkenc::hist::HISTOGRAM_ENCODING {
            return Ok(Vec::new());
        }
        let encoding = crate::chunkenc::Encoding::from_u8(encoding)
            .ok_or_else(|| corrupt(format!("unknown chunk encoding {encoding}")))?;
        crate::chunkenc::decode_all(encoding, bytes).map_err(|e| corrupt(e.to_string()))
    }

    /// The native histogram samples of one chunk, after checking its CRC;
    /// none for a float chunk.
    pub(crate) fn chunk_histograms(
        &self,
        r: ChunkRef,
    ) -> Result<Vec<(i64, model::histogram::FloatHistogram)>, BlockError> {
        let (encoding, bytes) = self.chunk(r)?;
        if encoding != crate::chunkenc::hist::HISTOGRAM_ENCODING {
            return Ok(Vec::new());
        }
        crate::chunkenc::hist::decode(bytes)
            .map_err(|e| BlockError::corrupt(&self.dir, r.0, &e.to_string()))
    }

    /// The encoding byte and data of a chunk, after checking its CRC.
    pub fn chunk(&self, r: ChunkRef) -> Result<(u8, &[u8]), BlockError> {
        self.chunk_checked(r, true)
    }

    /// The encoding byte and data of a chunk without its CRC check, for
    /// a glance at a chunk's header whose data is read (and checked) later
    /// or not at all. The bounds are checked as by [`Block::chunk`].
    pub(crate) fn chunk_unchecked(&self, r: ChunkRef) -> Result<(u8, &[u8]), BlockError> {
        self.chunk_checked(r, false)
    }

    fn chunk_checked(&self, r: ChunkRef, check_crc: bool) -> Result<(u8, &[u8]), BlockError> {
        let Ok(i) = self
            .segments
            .binary_search_by_key(&r.segment(), |s| s.number)
        else {
            return Err(BlockError::invalid_input(format!(
                "chunk reference {:#x}: no segment {} in {}",
                r.0,
                r.segment(),
                self.dir.display()
            )));
        };
        let segment = &self.segments[i];
        let bytes: &[u8] = &segment.map;
        let offset = r.offset() as usize;
        let corrupt = |at: usize, what: &str| BlockError::corrupt(&segment.path, at as u64, what);
        if offset < SEGMENT_HEADER_LEN as usize || offset >= bytes.len() {
            return Err(corrupt(offset, "chunk reference outside the segment"));
        }
        let encoding = bytes[offset];
        let Some((len, len_bytes)) = read_uvarint(&bytes[offset + 1..]) else {
            return Err(corrupt(offset + 1, "bad or truncated chunk length"));
        };
        let data_start = offset + 1 + len_bytes;
        let data_end = usize::try_from(len)
            .ok()
            .and_then(|l| data_start.checked_add(l));
        let Some(data) = data_end.and_then(|end| bytes.get(data_start..end)) else {
            return Err(corrupt(offset, "chunk runs past the end of the segment"));
        };
        let crc_start = data_start + data.len();
        let Some(crc_bytes) = bytes.get(crc_start..crc_start + 4) else {
            return Err(corrupt(
                crc_start,
                "chunk CRC runs past the end of the segment",
            ));
        };
        if !check_crc {
            return Ok((encoding, data));
        }
        let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        let computed = crc32c::crc32c_append(crc32c::crc32c(&[encoding]), data);
        if stored != computed {
            return Err(corrupt(offset, "chunk CRC mismatch"));
        }
        Ok((encoding, data))
    }

    /// Label names of the series matching `matchers`, sorted; every name in
    /// the block when `matchers` is empty. Series whose samples are all
    /// deleted do not count.
    pub fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, BlockError> {
        let tombstones = self.tombstones();
        let dead = if tombstones.is_empty() {
            HashSet::new()
        } else {
            self.deleted_series(&tombstones)?
        };
        if matchers.is_empty() {
            let mut names = self.index.label_names();
            if !dead.is_empty() {
                let mut kept = Vec::with_capacity(names.len());
                for name in names {
                    if self.has_live_series(&name, None, &dead)? {
                        kept.push(name);
                    }
                }
                names = kept;
            }
            return Ok(names);
        }
        let ids = self.index.postings_for_matchers(matchers)?;
        let mut name_ordinals = BTreeSet::new();
        let mut cursor = SeriesCursor::default();
        let mut raw = RawSeries::default();
        for id in ids {
            if dead.contains(&id) {
                continue;
            }
            self.index.series(id, &mut cursor, &mut raw)?;
            name_ordinals.extend(raw.labels.iter().map(|(name, _)| *name));
        }
        name_ordinals
            .into_iter()
            .map(|n| self.index.label_name(n).map(str::to_string))
            .collect()
    }

    /// Values of label `name` among the series matching `matchers`, sorted;
    /// all of its values when `matchers` is empty. Series whose samples are
    /// all deleted do not count.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, BlockError> {
        let tombstones = self.tombstones();
        let dead = if tombstones.is_empty() {
            HashSet::new()
        } else {
            self.deleted_series(&tombstones)?
        };
        if matchers.is_empty() {
            let mut values = self.index.label_values(name)?;
            if !dead.is_empty() {
                let mut kept = Vec::with_capacity(values.len());
                for value in values {
                    if self.has_live_series(name, Some(&value), &dead)? {
                        kept.push(value);
                    }
                }
                values = kept;
            }
            return Ok(values);
        }
        let Some(name_ordinal) = self.index.name_ordinal(name) else {
            return Ok(Vec::new());
        };
        let ids = self.index.postings_for_matchers(matchers)?;
        let mut value_ordinals = BTreeSet::new();
        let mut cursor = SeriesCursor::default();
        let mut raw = RawSeries::default();
        for id in ids {
            if dead.contains(&id) {
                continue;
            }
            self.index.series(id, &mut cursor, &mut raw)?;
            if let Ok(i) = raw.labels.binary_search_by_key(&name_ordinal, |(n, _)| *n) {
                value_ordinals.insert(raw.labels[i].1);
            }
        }
        // Value ordinals follow value order, so the result is sorted.
        value_ordinals
            .into_iter()
            .map(|v| self.index.label_value(name_ordinal, v).map(str::to_string))
            .collect()
    }

    /// Whether a series not in `dead` has label `name` (with `value`, when
    /// given), through the postings.
    fn has_live_series(
        &self,
        name: &str,
        value: Option<&str>,
        dead: &HashSet<u32>,
    ) -> Result<bool, BlockError> {
        let values = match value {
            Some(v) => vec![v.to_string()],
            None => self.index.label_values(name)?,
        };
        for v in values {
            if self
                .index
                .postings(name, &v)?
                .iter()
                .any(|id| !dead.contains(id))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_26_crockford_chars_and_increase() {
        let mut previous = new_ulid();
        assert!(is_ulid(&previous), "{previous}");
        for _ in 0..1000 {
            let next = new_ulid();
            assert!(is_ulid(&next), "{next}");
            assert!(next > previous, "{next} <= {previous}");
            previous = next;
        }
    }

    #[test]
    fn block_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Block>();
        assert_send_sync::<BlockError>();
    }

    #[test]
    fn ulid_encoding_puts_time_first() {
        assert_eq!(encode_ulid(0, 0), "00000000000000000000000000");
        assert_eq!(
            encode_ulid((1 << 48) - 1, (1 << 80) - 1),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        assert_eq!(&encode_ulid(1, 0)[..10], "0000000001");
    }
}
