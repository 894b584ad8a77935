//! osprey's trace store (`docs/format/traces.md`): the spans received over
//! OTLP, kept in `<data-dir>/traces/` and queried by the Jaeger and Tempo
//! APIs (`server::traces`).
//!
//! - [`Span`] is the stored span: OTLP's fields with the resource's
//!   `service.name` lifted out, attribute values as [`Value`].
//! - [`Store::append`] logs a batch to the WAL ([`wal`]) and returns once
//!   it is on stable storage (group-committed `fdatasync`), then the spans
//!   are in the head and visible.
//! - [`Store::maintain`] cuts the head into a columnar block ([`block`])
//!   and applies retention by time and size.
//! - Reads: [`Store::traces`] (by trace ID), [`Store::search`] (service,
//!   operation, attributes, status, duration, time), [`Store::services`],
//!   [`Store::operations`], [`Store::dependencies`], [`Store::tag_names`]
//!   and [`Store::tag_values`].
//!
//! The crate knows nothing of OTLP's wire format or HTTP: the server
//! converts OTLP spans into [`Span`]s. It depends on no workspace crate.

pub mod block;
pub mod codec;
pub mod wal;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

pub use block::{BlockIndex, BlockMeta};
pub use codec::{CodecError, decode_batch, encode_batch};

/// An attribute value, as OTLP's `AnyValue` (arrays and key-value lists
/// kept as their OTLP/JSON text).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Json(String),
}

impl Value {
    /// The value as text, as tag searches compare it.
    pub fn to_text(&self) -> String {
        match self {
            Value::Str(s) | Value::Json(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => d.to_string(),
            Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub key: String,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Event {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<Attribute>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Link {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub attributes: Vec<Attribute>,
}

/// OTLP's span kinds.
pub const KIND_NAMES: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// OTLP's status codes.
pub const STATUS_NAMES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// One stored span.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    pub start_unix_nano: u64,
    pub duration_nano: u64,
    /// OTLP `SpanKind`, 0..=5.
    pub kind: u8,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u8,
    pub service: String,
    pub name: String,
    pub status_message: String,
    pub scope_name: String,
    pub scope_version: String,
    pub attributes: Vec<Attribute>,
    pub resource: Vec<Attribute>,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
}

impl Span {
    pub fn end_unix_nano(&self) -> u64 {
        self.start_unix_nano.saturating_add(self.duration_nano)
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id == [0; 8]
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{0}")]
    Io(String),
    #[error("corrupt trace data: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn io(path: &Path, what: &str, e: std::io::Error) -> StoreError {
        StoreError::Io(format!("{what} {}: {e}", path.display()))
    }
}

/// How the store cuts blocks and what it keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Blocks ending longer ago than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
    /// The oldest blocks are deleted while blocks and WAL exceed this.
    pub retention_bytes: Option<u64>,
    /// The head is cut into a block at this many spans.
    pub block_spans: usize,
    /// ... or when its oldest span arrived this long ago.
    pub block_age: Duration,
    /// `fdatasync` the WAL before [`Store::append`] returns (tests of
    /// other things may turn it off).
    pub fsync: bool,
}

impl Options {
    /// 7 days, no size limit, 100,000-span or 10-minute blocks, fsync on.
    pub fn defaults() -> Options {
        Options {
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            block_spans: 100_000,
            block_age: Duration::from_secs(600),
            fsync: true,
        }
    }
}

/// A trace search (Jaeger's `/api/traces`, Tempo's `/api/search`): a trace
/// matches when one of its spans meets every condition.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Attribute (span or resource) equal to a value, as text. `error`
    /// matches the error status (`true`) or not (`false`);
    /// `otel.status_code` and `span.kind` match the status and kind names
    /// (`ERROR`, `server`, ...).
    pub tags: Vec<(String, String)>,
    pub min_duration_nano: Option<u64>,
    pub max_duration_nano: Option<u64>,
    /// Span start times, inclusive.
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub limit: usize,
}

/// A trace found by [`Store::search`]: its ID and the newest start of a
/// matching span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub trace_id: [u8; 16],
    pub start_unix_nano: u64,
}

/// Counts for self-monitoring and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub head_spans: u64,
    pub blocks: u64,
    pub block_spans: u64,
    pub block_bytes: u64,
    pub wal_bytes: u64,
}

struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    bytes: u64,
    index: OnceLock<Result<Arc<BlockIndex>, String>>,
}

impl Block {
    fn index(&self) -> Option<Arc<BlockIndex>> {
        let loaded = self.index.get_or_init(|| {
            let path = self.dir.join("spans");
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            BlockIndex::read(&bytes)
                .map(Arc::new)
                .map_err(|e| format!("{}: {e}", path.display()))
        });
        match loaded {
            Ok(index) => Some(index.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable trace block");
                None
            }
        }
    }

    fn rests(&self) -> Option<block::Rests> {
        let path = self.dir.join("spans");
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| block::Rests::read(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "skipping an unreadable trace block");
                None
            }
        }
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.meta.max_end_unix_nano >= start && self.meta.min_start_unix_nano <= end
    }
}

struct Inner {
    wal: wal::Writer,
    head: Vec<Span>,
    head_since: Option<Instant>,
}

/// The trace store over one directory.
pub struct Store {
    dir: PathBuf,
    inner: Mutex<Inner>,
    synced: AtomicU64,
    sync_lock: Mutex<()>,
    /// Spans taken from the head whose block is being written.
    cutting: RwLock<Vec<Arc<Vec<Span>>>>,
    blocks: RwLock<Vec<Arc<Block>>>,
    options: RwLock<Options>,
    next_block: AtomicU64,
    maintain_lock: Mutex<()>,
}

impl Store {
    /// Opens (creating) the store in `dir`: loads the blocks' metadata and
    /// replays the WAL into the head.
    pub fn open(dir: &Path, options: Options) -> Result<Store, StoreError> {
        let wal_dir = dir.join("wal");
        let blocks_dir = dir.join("blocks");
        for d in [&wal_dir, &blocks_dir] {
            std::fs::create_dir_all(d).map_err(|e| StoreError::io(d, "creating", e))?;
        }
        let mut blocks = Vec::new();
        let mut next_block = 0u64;
        let entries = std::fs::read_dir(&blocks_dir)
            .map_err(|e| StoreError::io(&blocks_dir, "listing", e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            let Ok(seq) = u64::from_str_radix(&name, 16) else {
                continue;
            };
            match block::read_meta(&path) {
                Ok(meta) => {
                    let bytes = std::fs::metadata(path.join("spans")).map_or(0, |m| m.len());
                    next_block = next_block.max(seq + 1);
                    blocks.push((
                        seq,
                        Arc::new(Block {
                            dir: path,
                            meta,
                            bytes,
                            index: OnceLock::new(),
                        }),
                    ));
                }
                Err(e) => tracing::warn!(error = %e, "skipping a trace block without metadata"),
            }
        }
        blocks.sort_by_key(|(seq, _)| *seq);
        let blocks: Vec<Arc<Block>> = blocks.into_iter().map(|(_, b)| b).collect();
        let wal_through = blocks.iter().map(|b| b.meta.wal_through).max().unwrap_or(0);
        let segments = wal::segments(&wal_dir)?;
        let mut head = Vec::new();
        let last = segments.last().copied();
        for &n in &segments {
            let path = wal_dir.join(wal::segment_name(n));
            if n <= wal_through {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, "reading", e))?;
            let (records, valid) = wal::records(&bytes);
            for payload in records {
                match wal::decode_record(payload) {
                    Ok(spans) => head.extend(spans),
                    Err(e) => {
                        tracing::warn!(error = %e, path = %path.display(), "skipping a bad trace WAL record")
                    }
                }
            }
            if valid < bytes.len() {
                if Some(n) == last {
                    tracing::warn!(path = %path.display(), dropped = bytes.len() - valid, "truncating a torn trace WAL tail");
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(valid as u64).and_then(|()| f.sync_all()))
                        .map_err(|e| StoreError::io(&path, "truncating", e))?;
                } else {
                    tracing::warn!(path = %path.display(), "a corrupt record in a trace WAL segment; skipped the rest of it");
                }
            }
        }
        let next_segment = last.unwrap_or(0).max(wal_through) + 1;
        let writer = wal::Writer::create(&wal_dir, next_segment)?;
        let head_since = (!head.is_empty()).then(Instant::now);
        Ok(Store {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                wal: writer,
                head,
                head_since,
            }),
            synced: AtomicU64::new(0),
            sync_lock: Mutex::new(()),
            cutting: RwLock::new(Vec::new()),
            blocks: RwLock::new(blocks),
            options: RwLock::new(options),
            next_block: AtomicU64::new(next_block),
            maintain_lock: Mutex::new(()),
        })
    }

    /// Replaces the retention and cut settings (a configuration reload).
    pub fn set_options(&self, options: Options) {
        *self.options.write().unwrap_or_else(|e| e.into_inner()) = options;
    }

    fn options(&self) -> Options {
        self.options
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs `spans` as one WAL record and returns once it is on stable
    /// storage; the spans are searchable from then on (from a little
    /// before, in fact).
    pub fn append(&self, spans: Vec<Span>) -> Result<(), StoreError> {
        if spans.is_empty() {
            return Ok(());
        }
        let record = wal::record(&spans);
        let fsync = self.options().fsync;
        let mine = {
            let mut inner = self.lock();
            let mine = inner.wal.write(&record, &self.synced)?;
            if inner.head.is_empty() {
                inner.head_since = Some(Instant::now());
            }
            inner.head.extend(spans);
            mine
        };
        if fsync {
            wal::sync(&self.sync_lock, &self.synced, mine, || {
                let inner = self.lock();
                (inner.wal.file.clone(), inner.wal.written)
            })?;
        }
        Ok(())
    }

    /// Cuts the head into a block when it is due (or `force`), then
    /// applies retention at `now_unix_nano`.
    pub fn maintain(&self, now_unix_nano: u64, force: bool) -> Result<(), StoreError> {
        let _guard = self.maintain_lock.lock().unwrap_or_else(|e| e.into_inner());
        let options = self.options();
        let due = {
            let inner = self.lock();
            !inner.head.is_empty()
                && (force
                    || inner.head.len() >= options.block_spans
                    || inner
                        .head_since
                        .is_some_and(|t| t.elapsed() >= options.block_age))
        };
        if due {
            self.cut()?;
        }
        self.retain(now_unix_nano, &options);
        Ok(())
    }

    fn cut(&self) -> Result<(), StoreError> {
        let (spans, wal_through) = {
            let mut inner = self.lock();
            let spans = Arc::new(std::mem::take(&mut inner.head));
            inner.head_since = None;
            let wal_through = inner.wal.segment;
            if let Err(e) = inner.wal.rotate(&self.synced) {
                inner.head = Arc::try_unwrap(spans).unwrap_or_else(|a| (*a).clone());
                inner.head_since = Some(Instant::now());
                return Err(e);
            }
            self.cutting
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(spans.clone());
            (spans, wal_through)
        };
        let seq = self.next_block.fetch_add(1, Ordering::AcqRel);
        let blocks_dir = self.dir.join("blocks");
        let written = block::write(&blocks_dir, seq, &spans, wal_through);
        let mut cutting = self.cutting.write().unwrap_or_else(|e| e.into_inner());
        cutting.retain(|c| !Arc::ptr_eq(c, &spans));
        match written {
            Ok((dir, meta)) => {
                let bytes = std::fs::metadata(dir.join("spans")).map_or(0, |m| m.len());
                self.blocks
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Arc::new(Block {
                        dir,
                        meta,
                        bytes,
                        index: OnceLock::new(),
                    }));
                drop(cutting);
                let wal_dir = self.dir.join("wal");
                for n in wal::segments(&wal_dir)? {
                    if n <= wal_through {
                        let _ = std::fs::remove_file(wal_dir.join(wal::segment_name(n)));
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Back into the head: the next cut writes them with the
                // segments that hold them.
                let mut inner = self.lock();
                let mut back = (*spans).clone();
                back.append(&mut inner.head);
                inner.head = back;
                inner.head_since = Some(Instant::now());
                Err(e)
            }
        }
    }

    fn retain(&self, now_unix_nano: u64, options: &Options) {
        let mut removed = Vec::new();
        {
            let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
            if let Some(retention) = options.retention {
                let cutoff = now_unix_nano
                    .saturating_sub(u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX));
                blocks.retain(|b| {
                    let keep = b.meta.max_end_unix_nano >= cutoff;
                    if !keep {
                        removed.push(b.dir.clone());
                    }
                    keep
                });
            }
            if let Some(limit) = options.retention_bytes {
                let wal_bytes = self.wal_bytes();
                let mut total: u64 = blocks.iter().map(|b| b.bytes).sum::<u64>() + wal_bytes;
                while total > limit && !blocks.is_empty() {
                    let b = blocks.remove(0);
                    total = total.saturating_sub(b.bytes);
                    removed.push(b.dir.clone());
                }
            }
        }
        for dir in removed {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot delete an expired trace block");
            }
        }
    }

    fn wal_bytes(&self) -> u64 {
        let wal_dir = self.dir.join("wal");
        wal::segments(&wal_dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| std::fs::metadata(wal_dir.join(wal::segment_name(*n))).ok())
            .map(|m| m.len())
            .sum()
    }

    pub fn stats(&self) -> Stats {
        let head_spans = self.lock().head.len() as u64;
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        Stats {
            head_spans,
            blocks: blocks.len() as u64,
            block_spans: blocks.iter().map(|b| b.meta.spans).sum(),
            block_bytes: blocks.iter().map(|b| b.bytes).sum(),
            wal_bytes: self.wal_bytes(),
        }
    }

    fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls `f` on every span in memory (head and blocks being cut).
    fn each_memory_span(&self, mut f: impl FnMut(&Span)) {
        {
            let inner = self.lock();
            inner.head.iter().for_each(&mut f);
        }
        let cutting = self
            .cutting
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for c in cutting {
            c.iter().for_each(&mut f);
        }
    }

    /// Every span of each trace in `ids`, by trace, sorted by start time.
    pub fn traces(&self, ids: &[[u8; 16]]) -> BTreeMap<[u8; 16], Vec<Span>> {
        let wanted: BTreeSet<[u8; 16]> = ids.iter().copied().collect();
        let mut out: BTreeMap<[u8; 16], Vec<Span>> = BTreeMap::new();
        self.each_memory_span(|s| {
            if wanted.contains(&s.trace_id) {
                out.entry(s.trace_id).or_default().push(s.clone());
            }
        });
        for b in self.blocks() {
            let Some(index) = b.index() else { continue };
            let rows: Vec<usize> = wanted.iter().flat_map(|id| index.rows_of(id)).collect();
            if rows.is_empty() {
                continue;
            }
            let Some(rests) = b.rests() else { continue };
            for row in rows {
                let mut span = index.span_head(row);
                if rests.fill(row, &mut span).is_ok() {
                    out.entry(span.trace_id).or_default().push(span);
                }
            }
        }
        for spans in out.values_mut() {
            spans.sort_by_key(|s| (s.start_unix_nano, s.span_id));
            spans.dedup_by(|a, b| a.span_id == b.span_id && a.trace_id == b.trace_id);
        }
        out
    }

    /// Traces with a span matching `q`, newest first, at most `q.limit`.
    pub fn search(&self, q: &Query) -> Vec<Found> {
        let mut found: HashMap<[u8; 16], u64> = HashMap::new();
        let mut note = |id: [u8; 16], start: u64| {
            let e = found.entry(id).or_insert(start);
            *e = (*e).max(start);
        };
        self.each_memory_span(|s| {
            if cheap_match(q, &s.service, &s.name, s.start_unix_nano, s.duration_nano)
                && tags_match(q, s)
            {
                note(s.trace_id, s.start_unix_nano);
            }
        });
        let tags: Vec<PreparedTag<'_>> =
            q.tags.iter().map(|(k, v)| PreparedTag::new(k, v)).collect();
        for b in self.blocks() {
            if !b.overlaps(q.start_unix_nano, q.end_unix_nano) {
                continue;
            }
            let Some(index) = b.index() else { continue };
            let service = match &q.service {
                Some(s) => match index.services.iter().position(|x| &**x == s) {
                    Some(i) => Some(i as u32),
                    None => continue,
                },
                None => None,
            };
            let operation = match &q.operation {
                Some(s) => match index.names.iter().position(|x| &**x == s) {
                    Some(i) => Some(i as u32),
                    None => continue,
                },
                None => None,
            };
            // Attribute conditions: the resources' answers once per
            // dictionary entry, the span's own from its encoded bytes.
            let mut rests: Option<Option<(block::Rests, Vec<u64>)>> = None;
            for row in 0..index.len() {
                if service.is_some_and(|s| index.service_rows[row] != s)
                    || operation.is_some_and(|o| index.name_rows[row] != o)
                    || !range_match(q, index.starts[row], index.durations[row])
                {
                    continue;
                }
                if !tags.is_empty() {
                    let loaded = rests.get_or_insert_with(|| {
                        b.rests().map(|r| {
                            let masks = r
                                .resources()
                                .iter()
                                .map(|res| resource_mask(&tags, res))
                                .collect();
                            (r, masks)
                        })
                    });
                    let Some((r, masks)) = loaded else { break };
                    let mask = r
                        .resource_of(row)
                        .and_then(|i| masks.get(i))
                        .copied()
                        .unwrap_or(0);
                    if !row_matches(&tags, &index, row, r.rest_bytes(row), mask) {
                        continue;
                    }
                }
                note(index.trace_ids[row], index.starts[row]);
            }
        }
        let mut found: Vec<Found> = found
            .into_iter()
            .map(|(trace_id, start_unix_nano)| Found {
                trace_id,
                start_unix_nano,
            })
            .collect();
        found.sort_by(|a, b| {
            b.start_unix_nano
                .cmp(&a.start_unix_nano)
                .then(a.trace_id.cmp(&b.trace_id))
        });
        found.truncate(q.limit.max(1));
        found
    }

    /// Every service name, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        self.each_memory_span(|s| {
            if !out.contains(&s.service) {
                out.insert(s.service.clone());
            }
        });
        for b in self.blocks() {
            if let Some(index) = b.index() {
                out.extend(index.services.iter().map(|s| s.to_string()));
            }
        }
        out.into_iter().collect()
    }

    /// Every (service, operation, kind) seen, of one service or all.
    pub fn operations(&self, service: Option<&str>) -> Vec<(String, String, u8)> {
        let mut out = BTreeSet::new();
        self.each_memory_span(|s| {
            if service.is_none_or(|x| x == s.service) {
                out.insert((s.service.clone(), s.name.clone(), s.kind));
            }
        });
        for b in self.blocks() {
            let Some(index) = b.index() else { continue };
            let mut seen = BTreeSet::new();
            for row in 0..index.len() {
                seen.insert((
                    index.service_rows[row],
                    index.name_rows[row],
                    index.kind_status[row] & 0x0f,
                ));
            }
            for (s, n, k) in seen {
                let s = &index.services[s as usize];
                if service.is_none_or(|x| x == &**s) {
                    out.insert((s.to_string(), index.names[n as usize].to_string(), k));
                }
            }
        }
        out.into_iter().collect()
    }

    /// Calls between services among spans starting in `[start, end]`:
    /// (parent service, child service, calls), where a span's parent is in
    /// another service.
    pub fn dependencies(&self, start: u64, end: u64) -> Vec<(String, String, u64)> {
        let mut services: Vec<Arc<str>> = Vec::new();
        let mut service_ids: HashMap<Arc<str>, u32> = HashMap::new();
        let mut id_of = |s: &str| -> u32 {
            if let Some(&i) = service_ids.get(s) {
                return i;
            }
            let a: Arc<str> = Arc::from(s);
            let i = services.len() as u32;
            services.push(a.clone());
            service_ids.insert(a, i);
            i
        };
        // (trace, span) -> service; (trace, parent, service) per child.
        let mut owner: HashMap<([u8; 16], [u8; 8]), u32> = HashMap::new();
        let mut children: Vec<([u8; 16], [u8; 8], u32)> = Vec::new();
        self.each_memory_span(|s| {
            if s.start_unix_nano < start || s.start_unix_nano > end {
                return;
            }
            let id = id_of(&s.service);
            owner.insert((s.trace_id, s.span_id), id);
            if !s.is_root() {
                children.push((s.trace_id, s.parent_span_id, id));
            }
        });
        for b in self.blocks() {
            if !b.overlaps(start, end) {
                continue;
            }
            let Some(index) = b.index() else { continue };
            let ids: Vec<u32> = index.services.iter().map(|s| id_of(s)).collect();
            for row in 0..index.len() {
                if index.starts[row] < start || index.starts[row] > end {
                    continue;
                }
                let id = ids[index.service_rows[row] as usize];
                owner.insert((index.trace_ids[row], index.span_ids[row]), id);
                if index.parent_ids[row] != [0; 8] {
                    children.push((index.trace_ids[row], index.parent_ids[row], id));
                }
            }
        }
        let mut calls: BTreeMap<(u32, u32), u64> = BTreeMap::new();
        for (trace, parent, child) in children {
            if let Some(&p) = owner.get(&(trace, parent))
                && p != child
            {
                *calls.entry((p, child)).or_default() += 1;
            }
        }
        calls
            .into_iter()
            .map(|((p, c), n)| {
                (
                    services[p as usize].to_string(),
                    services[c as usize].to_string(),
                    n,
                )
            })
            .collect()
    }

    /// Attribute keys of the spans in memory and of the newest block:
    /// the spans' own and their resources', each sorted.
    pub fn tag_names(&self) -> (Vec<String>, Vec<String>) {
        let mut span_keys = BTreeSet::new();
        let mut resource_keys = BTreeSet::new();
        self.each_recent_span(|s| {
            for a in &s.attributes {
                if !span_keys.contains(&a.key) {
                    span_keys.insert(a.key.clone());
                }
            }
            for a in &s.resource {
                if !resource_keys.contains(&a.key) {
                    resource_keys.insert(a.key.clone());
                }
            }
        });
        (
            span_keys.into_iter().collect(),
            resource_keys.into_iter().collect(),
        )
    }

    /// Values of one attribute among the same spans as [`Store::tag_names`],
    /// sorted, at most `limit`.
    pub fn tag_values(&self, key: &str, limit: usize) -> Vec<String> {
        let mut out = BTreeSet::new();
        self.each_recent_span(|s| {
            if key == "service.name" {
                out.insert(s.service.clone());
            } else if key == "name" {
                out.insert(s.name.clone());
            }
            for a in s.attributes.iter().chain(&s.resource) {
                if a.key == key && out.len() < limit {
                    out.insert(a.value.to_text());
                }
            }
        });
        out.into_iter().take(limit).collect()
    }

    fn each_recent_span(&self, mut f: impl FnMut(&Span)) {
        self.each_memory_span(&mut f);
        if let Some(b) = self.blocks().last()
            && let (Some(index), Some(rests)) = (b.index(), b.rests())
        {
            for row in 0..index.len() {
                let mut span = index.span_head(row);
                if rests.fill(row, &mut span).is_ok() {
                    f(&span);
                }
            }
        }
    }
}

fn range_match(q: &Query, start: u64, duration: u64) -> bool {
    start >= q.start_unix_nano
        && start <= q.end_unix_nano
        && q.min_duration_nano.is_none_or(|m| duration >= m)
        && q.max_duration_nano.is_none_or(|m| duration <= m)
}

fn cheap_match(q: &Query, service: &str, name: &str, start: u64, duration: u64) -> bool {
    q.service.as_deref().is_none_or(|s| s == service)
        && q.operation.as_deref().is_none_or(|o| o == name)
        && range_match(q, start, duration)
}

/// Whether `span` meets every condition of `q`.
pub fn span_matches(q: &Query, span: &Span) -> bool {
    cheap_match(
        q,
        &span.service,
        &span.name,
        span.start_unix_nano,
        span.duration_nano,
    ) && tags_match(q, span)
}

/// Whether `span` has every tag of `q`.
pub fn tags_match(q: &Query, span: &Span) -> bool {
    q.tags.iter().all(|(k, v)| tag_matches(span, k, v))
}

fn tag_matches(span: &Span, key: &str, value: &str) -> bool {
    match key {
        "error" => return (span.status_code == 2) == (value == "true"),
        "otel.status_code" | "status" => {
            let name = ["unset", "ok", "error"][usize::from(span.status_code.min(2))];
            return name.eq_ignore_ascii_case(value);
        }
        "span.kind" | "kind" => {
            let name = [
                "unspecified",
                "internal",
                "server",
                "client",
                "producer",
                "consumer",
            ][usize::from(span.kind.min(5))];
            return name.eq_ignore_ascii_case(value);
        }
        "service.name" => return span.service == value,
        "name" => return span.name == value,
        "status.message" | "otel.status_description" => return span.status_message == value,
        _ => {}
    }
    span.attributes
        .iter()
        .chain(&span.resource)
        .any(|a| a.key == key && a.value.to_text() == value)
}

/// A tag condition made ready for matching encoded attributes: its value
/// also as the integer and double whose text it is.
struct PreparedTag<'q> {
    key: &'q str,
    value: &'q str,
    int: Option<i64>,
    double: Option<f64>,
    special: bool,
}

impl<'q> PreparedTag<'q> {
    fn new(key: &'q str, value: &'q str) -> PreparedTag<'q> {
        PreparedTag {
            key,
            value,
            int: value.parse::<i64>().ok().filter(|i| i.to_string() == value),
            double: value.parse::<f64>().ok().filter(|d| d.to_string() == value),
            special: matches!(
                key,
                "error"
                    | "otel.status_code"
                    | "status"
                    | "span.kind"
                    | "kind"
                    | "service.name"
                    | "name"
                    | "status.message"
                    | "otel.status_description"
            ),
        }
    }

    /// Whether an encoded value's text is this tag's value (as
    /// [`Value::to_text`] writes it).
    fn value_matches(&self, tag: u8, payload: &[u8]) -> bool {
        match tag {
            1 | 6 => payload == self.value.as_bytes(),
            2 => {
                payload
                    .first()
                    .is_some_and(|b| (*b == 1) == (self.value == "true"))
                    && (self.value == "true" || self.value == "false")
            }
            3 => self
                .int
                .is_some_and(|want| codec::Reader::new(payload).ivarint().ok() == Some(want)),
            4 => self.double.is_some_and(|want| {
                payload
                    .try_into()
                    .ok()
                    .map(f64::from_le_bytes)
                    .is_some_and(|d| d == want)
            }),
            5 => {
                let hex = self.value.as_bytes();
                hex.len() == payload.len() * 2
                    && payload.iter().zip(hex.chunks(2)).all(|(b, h)| {
                        let digit = |c: u8| (c as char).to_digit(16);
                        matches!((digit(h[0]), digit(h[1])), (Some(x), Some(y)) if x * 16 + y == u32::from(*b))
                            && h.iter().all(|c| !c.is_ascii_uppercase())
                    })
            }
            _ => false,
        }
    }
}

/// Which of `tags` (bit i for tag i, the first 64) `resource` satisfies.
fn resource_mask(tags: &[PreparedTag<'_>], resource: &[Attribute]) -> u64 {
    let mut mask = 0u64;
    for (i, t) in tags.iter().enumerate().take(64) {
        if !t.special
            && resource
                .iter()
                .any(|a| a.key == t.key && a.value.to_text() == t.value)
        {
            mask |= 1 << i;
        }
    }
    mask
}

/// Whether block row `row` meets every tag: special keys from the index
/// columns, the others from its resource (`resource_mask`) or its own
/// encoded attributes.
fn row_matches(
    tags: &[PreparedTag<'_>],
    index: &BlockIndex,
    row: usize,
    rest: Option<&[u8]>,
    resource_mask: u64,
) -> bool {
    let Some(rest) = rest else { return false };
    let mut found = resource_mask;
    let status_message = codec::scan_rest(rest, |key, tag, payload| {
        for (i, t) in tags.iter().enumerate().take(64) {
            if found & (1 << i) == 0
                && !t.special
                && key == t.key.as_bytes()
                && t.value_matches(tag, payload)
            {
                found |= 1 << i;
            }
        }
    });
    let Ok(status_message) = status_message else {
        return false;
    };
    let ks = index.kind_status[row];
    tags.iter().enumerate().all(|(i, t)| {
        if !t.special {
            return i < 64 && found & (1 << i) != 0;
        }
        let span = Span {
            kind: ks & 0x0f,
            status_code: ks >> 4,
            ..Span::default()
        };
        match t.key {
            "service.name" => *index.services[index.service_rows[row] as usize] == *t.value,
            "name" => *index.names[index.name_rows[row] as usize] == *t.value,
            "status.message" | "otel.status_description" => status_message == t.value.as_bytes(),
            _ => tag_matches(&span, t.key, t.value),
        }
    })
}

/// Splits a WAL segment into its spans, as replay does. Fuzzed.
pub fn decode_wal_segment(bytes: &[u8]) -> Vec<Result<Vec<Span>, CodecError>> {
    wal::records(bytes)
        .0
        .into_iter()
        .map(wal::decode_record)
        .collect()
}

#[cfg(test)]
mod tests;
