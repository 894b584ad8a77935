//! The head: the in-memory, writable part of the database.
//!
//! Series live in shards keyed by the stable hash of their label set. Each
//! series keeps its samples in XOR chunks ([`crate::chunkenc::XorAppender`]);
//! a chunk is closed after [`SAMPLES_PER_CHUNK`] samples or when a sample
//! crosses a block-range boundary, so every chunk lies inside one block
//! range and the head can be cut into blocks without splitting chunks.
//!
//! Samples at or before a series' newest in-order timestamp (out-of-order
//! samples, backfill, and rewrites of an existing timestamp) go into a
//! per-series ordered map that overrides the chunks on read.
//!
//! **Duplicate timestamps: the last write wins.** A sample for a timestamp
//! that already holds one replaces it, in the head, through WAL replay, and
//! across blocks (a newer block overrides an older one, the head overrides
//! every block). Concurrent commits that write the same series and timestamp
//! race; which one wins is unspecified.
//!
//! Native histogram samples live beside the floats of the same series
//! ([`HistData`]): the open run as decoded histograms, closed runs as
//! histogram chunks (`chunkenc::hist`), cut at a layout change, a counter
//! reset or [`SAMPLES_PER_CHUNK`], and their own override map. Floats and
//! histograms share the series' newest timestamp, so a sample of either
//! kind at or before it is out of order; an out-of-order sample replaces
//! one of the other kind at its timestamp (the last write wins there too).
//!
//! Label strings are interned: every series with `job="node"` shares one
//! allocation for `job` and one for `node`.

use crate::chunkenc::hist;
use crate::chunkenc::{ChunkIter, Encoding, XorAppender, XorCheckpoints};
use crate::id_table::{HasId, IdTable};
use crate::limits::{Admission, Scope};
use crate::postings::IdList;
use crate::sync::{lock, read, write};
use crate::templates::Templates;
use model::hint::{CACHE_LINE, prefetch};
use model::histogram::{CounterResetHint, FloatHistogram};
use model::storage::StorageError;
use model::{LabelNames, LabelStr, Labels, Matcher};
use std::cell::UnsafeCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Samples per head chunk before it is closed. Prometheus uses 120: about
/// 30 minutes at a 15 s interval, which keeps a chunk's decode cost small
/// for recent-range queries while amortising the chunk header.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// A select ranks all head series (see `Head::rank_all`) when some of its
/// series were created since the last ranking only if it matched at least
/// this many series and at least 1/`RANK_MAX_FACTOR` of the head: ranking
/// costs one sort of the whole head, which then is repaid by every later
/// select of series it ranked, while a small select with a new series sorts
/// its few series directly.
const RANK_MIN_SERIES: usize = 256;
const RANK_MAX_FACTOR: usize = 16;

/// `MemSeries::rank` of a series created after the last ranking.
const UNRANKED: u32 = 0;

/// A matcher narrows a select's candidate ids by merging postings lists
/// when its lists hold at most this many times as many ids as there are
/// candidates; beyond that, checking each candidate's labels is cheaper.
const POSTINGS_MERGE_FACTOR: usize = 8;

/// How many ids [`Head::matching_series`] looks up together, so that
/// their cache misses overlap.
const LOOKUP_BATCH: usize = 16;

/// Number of series shards. A power of two well above the core count so
/// that concurrent appenders rarely meet on one shard lock.
const SHARDS: usize = 64;

/// A shared handle on a head series: an `Arc` without a weak count (the
/// head takes none), so a record with its count is 104 bytes and fits
/// glibc's 112-byte class, where `std`'s two counts took it to 128.
pub(crate) type SeriesArc = triomphe::Arc<MemSeries>;

/// The bytes [`SeriesArc`]'s count takes before the record.
const SERIES_ARC_COUNT: usize = std::mem::size_of::<usize>();

/// A series held in the head.
pub(crate) struct MemSeries {
    pub(crate) id: u64,
    /// Built from interned strings, so handing it out is one reference
    /// count increment and every series with `job="node"` shares one
    /// `"node"`.
    labels: Labels,
    /// Four things in one word (four bytes in every series instead of
    /// twenty with padding), see the `STATE_` constants: the pending
    /// count, the appenders that staged samples for this series and have
    /// not committed or rolled back yet, which garbage collection waits
    /// for; whether collection removed the series; whether a series
    /// record for it is durably in the WAL; the lock on `data` (see
    /// [`MemSeries::lock_data`]). One word also makes removal exact:
    /// collection sets the removed flag only by a compare-exchange from a
    /// zero pending count, and an appender holding a handle raises the
    /// count and sees the flag in the same atomic step.
    state: AtomicU32,
    /// The head the series belongs to, so a handle from another store is
    /// refused.
    pub(crate) owner: u32,
    /// The series' position in label order among all head series when
    /// [`Head::rank_all`] last ran, plus one; 0 for a series created since.
    /// Series coming or going change no other series' relative order, so
    /// the ranks of every series present at the last ranking stay
    /// comparable among themselves until the next one.
    rank: AtomicU32,
    /// The writer that created the series, when limits count it
    /// (`crate::limits`), told when the series leaves the head: its place
    /// in `Index::scopes` plus one, 0 for none. Four bytes where an
    /// `Option<Arc<Scope>>` took eight, which with the other four-byte
    /// fields keeps the record in a smaller allocation size class.
    scope: u32,
    /// Read and written only through [`MemSeries::lock_data`]'s guard.
    data: UnsafeCell<SeriesData>,
}

// SAFETY: `data` is the only field that is not Sync, and it is reached only
// through `DataGuard`, which exists while the lock bit in `state` is held
// by it alone (see `MemSeries::lock_data`): the lock makes access to it
// exclusive, as `Mutex<SeriesData>` did, and `SeriesData` is Send.
unsafe impl Sync for MemSeries {}

/// [`MemSeries::state`]'s pending count: its low 28 bits. A count is at
/// most the samples staged for the series by the appenders open at once,
/// far below 2^28 (a remote-write body is limited to a few million).
const STATE_PENDING: u32 = (1 << 28) - 1;
/// [`MemSeries::state`]: a thread holds the lock on the series' data.
const STATE_LOCKED: u32 = 1 << 28;
/// [`MemSeries::state`]: a thread is parked (or about to park) waiting for
/// the lock; the unlocking thread then wakes one.
const STATE_PARKED: u32 = 1 << 29;
/// [`MemSeries::state`]: garbage collection removed the series.
const STATE_REMOVED: u32 = 1 << 30;
/// [`MemSeries::state`]: a series record for it is durably in the WAL.
const STATE_WAL_LOGGED: u32 = 1 << 31;

/// Exclusive access to a series' samples while the lock bit in its state
/// is held ([`MemSeries::lock_data`]); dropping it unlocks.
pub(crate) struct DataGuard<'a> {
    series: &'a MemSeries,
}

impl std::ops::Deref for DataGuard<'_> {
    type Target = SeriesData;

    fn deref(&self) -> &SeriesData {
        // SAFETY: this guard holds the series' lock, so no other reference
        // to the data exists while it lives.
        unsafe { &*self.series.data.get() }
    }
}

impl std::ops::DerefMut for DataGuard<'_> {
    fn deref_mut(&mut self) -> &mut SeriesData {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // through the guard.
        unsafe { &mut *self.series.data.get() }
    }
}

impl Drop for DataGuard<'_> {
    fn drop(&mut self) {
        self.series.unlock_data();
    }
}

/// A label-pair set [`Head::find_pending_many`] looks for.
pub(crate) struct WantedSeries<'p> {
    /// Sorted by name, unique, no empty values (`pairs_are_normalized`).
    pub(crate) pairs: &'p [(&'p str, &'p str)],
    /// `stable_hash_pairs` of `pairs`.
    pub(crate) hash: u64,
    /// How many pending counts the caller wants on the series found.
    pub(crate) holds: u32,
    /// Whether to look for it at all.
    pub(crate) look: bool,
    pub(crate) found: Option<SeriesArc>,
}

/// A full head chunk, re-encoded as [`Encoding::Dense`] when it closed:
/// about 0.9 instead of 2.3 bytes per sample on typical data (see
/// `docs/format/chunks.md`), which is most of the head's memory per series.
#[derive(Clone)]
struct ClosedChunk {
    min_time: i64,
    max_time: i64,
    encoding: Encoding,
    /// Whether `bytes` ends with a values checkpoint
    /// ([`crate::chunkenc::dense_values_checkpoint`]) after the chunk.
    checkpointed: bool,
    /// Shared with the snapshots selects take (a reference count, not
    /// a copy of the bytes for each series a query reads).
    bytes: Arc<[u8]>,
}

/// How many samples before a closed chunk's end its values checkpoint
/// lies: a recent window (`rate(x[5m])` at a 15 s interval reads 20
/// samples, at 10 s 30) that reaches back into the newest closed chunk
/// decodes its values from there, not from the chunk's start.
const CHECKPOINT_BEFORE_END: usize = 40;

impl ClosedChunk {
    /// The open chunk, closed: re-encoded Dense, with a values checkpoint
    /// near its end while it is a series' newest closed chunk (see
    /// [`ClosedChunk::drop_checkpoint`]).
    fn from_xor(full: &XorAppender) -> Option<ClosedChunk> {
        let (min_time, max_time) = (full.first_time()?, full.last_time()?);
        // Head chunks are written by this process, so decoding cannot fail;
        // should it, the chunk is kept as it was.
        let (encoding, bytes, checkpointed) =
            match crate::chunkenc::decode_all(Encoding::Xor, full.bytes()) {
                Ok(samples) if samples.len() == full.num_samples() => {
                    // Room for the chunk and its checkpoint as typical
                    // series take them, so that encoding rarely grows it.
                    let mut dense = Vec::with_capacity(
                        crate::chunkenc::dense_capacity_hint(samples.len())
                            + crate::chunkenc::DENSE_CHECKPOINT_BYTES,
                    );
                    crate::chunkenc::encode_dense(&samples, &mut dense);
                    let at = samples.len().saturating_sub(CHECKPOINT_BEFORE_END);
                    let checkpoint = crate::chunkenc::dense_values_checkpoint(&dense, at)
                        .ok()
                        .flatten();
                    if let Some(checkpoint) = &checkpoint {
                        dense.extend_from_slice(checkpoint);
                    }
                    (Encoding::Dense, dense, checkpoint.is_some())
                }
                _ => (Encoding::Xor, full.bytes().to_vec(), false),
            };
        Some(ClosedChunk {
            min_time,
            max_time,
            encoding,
            checkpointed,
            bytes: bytes.into(),
        })
    }

    /// The chunk's bytes, and the checkpoint after them if it has one.
    fn parts(
        &self,
    ) -> (
        &[u8],
        Option<&[u8; crate::chunkenc::DENSE_CHECKPOINT_BYTES]>,
    ) {
        match self.bytes.split_last_chunk() {
            Some((chunk, checkpoint)) if self.checkpointed => (chunk, Some(checkpoint)),
            _ => (&self.bytes, None),
        }
    }

    /// The chunk's bytes, without the checkpoint.
    fn chunk(&self) -> &[u8] {
        self.parts().0
    }

    /// Drops the checkpoint once a newer chunk closes: only the newest
    /// closed chunk is read from near its end by recent windows, and the
    /// others are not worth its bytes.
    fn drop_checkpoint(&mut self) {
        if self.checkpointed {
            // Copied without it: a snapshot may still share the bytes.
            self.bytes = self.chunk().into();
            self.checkpointed = false;
        }
    }
}

/// A series' samples. Also the copy a querier takes of a head series
/// ([`MemSeries::snapshot`]), so a head cut after the select cannot take
/// samples from under it.
#[derive(Clone)]
pub(crate) struct SeriesData {
    open: XorAppender,
    /// Closed chunks, overrides, histograms, the open chunk's decoder
    /// checkpoints and the newest in-order time when the open chunk does
    /// not tell it: one word, null until the series has any of them (a
    /// wide head's series mostly have none), where five words were paid
    /// in every series.
    rest: Option<Box<SeriesRest>>,
}

/// The parts of a series' samples that a young series lacks.
#[derive(Clone)]
struct SeriesRest {
    /// Closed chunks, oldest first. Kept exactly as long as it is full,
    /// since a chunk closes only every [`SAMPLES_PER_CHUNK`] samples.
    closed: Vec<ClosedChunk>,
    /// Out-of-order samples and rewrites; these override the chunks.
    overrides: Overrides,
    /// Native histogram samples, if the series ever had one.
    hist: Option<Box<HistData>>,
    /// Timestamp of the newest in-order sample, float or histogram,
    /// `i64::MIN` if none: [`SeriesData::max_time`] while the rest exists.
    /// Without a rest it is the open chunk's newest sample.
    max_time: i64,
    /// The open chunk's, cleared when it is replaced.
    checkpoints: XorCheckpoints,
}

impl SeriesRest {
    fn new(max_time: i64) -> SeriesRest {
        SeriesRest {
            closed: Vec::new(),
            overrides: Overrides::default(),
            hist: None,
            max_time,
            checkpoints: XorCheckpoints::default(),
        }
    }
}

/// A series' rest, allocated when it has none yet: a new one takes over
/// the newest time from the open chunk, which told it until then. (Apart
/// from [`SeriesData::rest_mut`] so a caller can hold it beside `open`.)
fn rest_or_new<'a>(
    rest: &'a mut Option<Box<SeriesRest>>,
    open: &XorAppender,
) -> &'a mut SeriesRest {
    rest.get_or_insert_with(|| Box::new(SeriesRest::new(open.last_time().unwrap_or(i64::MIN))))
}

/// What [`SeriesData::checkpoints`] lends when a series has no rest.
static NO_CHECKPOINTS: XorCheckpoints = XorCheckpoints::EMPTY;

/// What [`SeriesData::overrides`] lends when a series has none.
static NO_OVERRIDES: Overrides = Overrides(None);

/// A series' out-of-order float samples: an ordered map that takes one
/// pointer until the series has one (most series never do), where an empty
/// `BTreeMap` took three words in every series.
#[allow(
    clippy::box_collection,
    reason = "the box is the point: `Option<Box<_>>` is one word, `BTreeMap` three"
)]
#[derive(Clone, Default)]
pub(crate) struct Overrides(Option<Box<BTreeMap<i64, f64>>>);

impl Overrides {
    fn insert(&mut self, t: i64, v: f64) {
        self.0.get_or_insert_default().insert(t, v);
    }

    fn remove(&mut self, t: &i64) -> Option<f64> {
        let map = self.0.as_mut()?;
        let removed = map.remove(t);
        if map.is_empty() {
            self.0 = None;
        }
        removed
    }

    fn contains_key(&self, t: &i64) -> bool {
        self.0.as_ref().is_some_and(|m| m.contains_key(t))
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|m| m.is_empty())
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = (&i64, &f64)> {
        self.0.iter().flat_map(|m| m.iter())
    }

    fn range<R: std::ops::RangeBounds<i64>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = (&i64, &f64)> {
        self.0
            .iter()
            .flat_map(move |m| m.range((range.start_bound().cloned(), range.end_bound().cloned())))
    }

    /// Keeps the entries at or after `boundary`.
    fn keep_from(&mut self, boundary: i64) {
        if let Some(map) = self.0.as_mut() {
            **map = map.split_off(&boundary);
            if map.is_empty() {
                self.0 = None;
            }
        }
    }
}

impl FromIterator<(i64, f64)> for Overrides {
    fn from_iter<I: IntoIterator<Item = (i64, f64)>>(iter: I) -> Overrides {
        let map: BTreeMap<i64, f64> = iter.into_iter().collect();
        Overrides((!map.is_empty()).then(|| Box::new(map)))
    }
}

/// A closed run of histogram samples, encoded.
#[derive(Clone)]
struct HistChunk {
    min_time: i64,
    max_time: i64,
    bytes: Arc<[u8]>,
}

/// A series' native histogram samples.
#[derive(Clone)]
pub(crate) struct HistData {
    closed: Vec<HistChunk>,
    /// The open run: samples of one layout without a reset between them.
    open: Vec<(i64, FloatHistogram)>,
    /// The counter-reset hint of the open run's first sample.
    open_hint: CounterResetHint,
    /// The newest sample of the closed chunks, to judge the next run's
    /// first sample against.
    last_closed: Option<FloatHistogram>,
    /// Out-of-order histograms and rewrites; these override the chunks.
    overrides: BTreeMap<i64, FloatHistogram>,
    /// The time of the newest in-order histogram: an in-order float came
    /// after it when the series' newest in-order time is later (see
    /// [`SeriesData::apply_histogram`]). Read there rather than noted on
    /// every float, so float appends never touch a series' rest.
    last_pushed: i64,
    /// An in-order float came after the newest in-order histogram before
    /// a truncation reset the series' newest time; see `last_pushed`.
    float_after_open: bool,
}

impl Default for HistData {
    fn default() -> HistData {
        HistData {
            closed: Vec::new(),
            open: Vec::new(),
            open_hint: CounterResetHint::default(),
            last_closed: None,
            overrides: BTreeMap::new(),
            last_pushed: i64::MIN,
            float_after_open: false,
        }
    }
}

impl HistData {
    fn close_open(&mut self) {
        let run = std::mem::take(&mut self.open);
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return;
        };
        let (min_time, max_time) = (first.0, last.0);
        let mut bytes = Vec::new();
        // Runs are built by `push` to fit one chunk; should encoding fail
        // anyway, the samples stay readable as overrides.
        match hist::encode(&run, self.open_hint, false, &mut bytes) {
            Ok(()) => self.closed.push(HistChunk {
                min_time,
                max_time,
                bytes: bytes.into(),
            }),
            Err(_) => self.overrides.extend(run.iter().cloned()),
        }
        self.last_closed = run.last().map(|(_, h)| h.clone());
    }

    /// Appends an in-order sample, cutting the open run where the chunk
    /// rules say. The run's first sample gets the hint its chunk header
    /// will keep ([`hist::first_hint`]).
    /// `float_newer` says an in-order float came after the newest
    /// in-order histogram: the next histogram then starts a run with no
    /// previous sample to judge it against (Prometheus's head starts a new
    /// chunk at the float).
    fn push(&mut self, t: i64, h: FloatHistogram, block_range: i64, float_newer: bool) {
        let after_float = std::mem::take(&mut self.float_after_open) || float_newer;
        self.last_pushed = t;
        let cut = match self.open.last() {
            Some((last_t, last)) => {
                after_float
                    || self.open.len() >= SAMPLES_PER_CHUNK
                    || range_start(*last_t, block_range) != range_start(t, block_range)
                    || hist::must_cut(last, &h)
            }
            None => false,
        };
        if cut {
            let previous = self.open.last().map(|(_, h)| h.clone());
            self.close_open();
            let previous = previous.filter(|_| !after_float);
            self.open_hint = hist::first_hint(previous.as_ref(), &h, false);
        } else if self.open.is_empty() {
            let previous = self.last_closed.as_ref().filter(|_| !after_float);
            self.open_hint = hist::first_hint(previous, &h, false);
        }
        self.open.push((t, h));
    }

    /// Keeps, across a truncation that resets the series' newest time,
    /// whether a float came after the newest histogram.
    fn note_floats_before_reset(&mut self, series_max_time: i64) {
        self.float_after_open |= series_max_time > self.last_pushed;
    }

    /// The hint the open run's sample `i` is read with, as from a closed
    /// chunk ([`hist::decode`]) and as Prometheus's chunk reader hands it
    /// out: gauge throughout a gauge run; "unknown" for the first sample
    /// (the query engine compares it with the sample before it, so a
    /// reset is found the same before and after the run is closed, and a
    /// "not a reset" the sample arrived with is not trusted); "not a
    /// reset" for the rest.
    fn open_sample_hint(&self, i: usize) -> CounterResetHint {
        match (i, self.open_hint) {
            (_, CounterResetHint::Gauge) => CounterResetHint::Gauge,
            (0, _) => CounterResetHint::Unknown,
            _ => CounterResetHint::NotCounterReset,
        }
    }

    /// Histograms in `[mint, maxt]`, ascending, overrides applied.
    fn samples(&self, mint: i64, maxt: i64) -> Vec<(i64, FloatHistogram)> {
        let mut out = Vec::new();
        if mint > maxt {
            return out;
        }
        for c in &self.closed {
            if c.max_time < mint || c.min_time > maxt {
                continue;
            }
            // Written by this process; a decode error would be a bug, and
            // the chunk then reads as empty.
            if let Ok(run) = hist::decode(&c.bytes) {
                out.extend(run.into_iter().filter(|(t, _)| (mint..=maxt).contains(t)));
            }
        }
        out.extend(
            self.open
                .iter()
                .enumerate()
                .filter(|(_, (t, _))| (mint..=maxt).contains(t))
                .map(|(i, (t, h))| {
                    let mut h = h.clone();
                    h.counter_reset_hint = self.open_sample_hint(i);
                    (*t, h)
                }),
        );
        let over: Vec<(i64, FloatHistogram)> = self
            .overrides
            .range(mint..=maxt)
            .map(|(t, h)| (*t, h.clone()))
            .collect();
        if over.is_empty() {
            out
        } else {
            merge_override(out, over)
        }
    }

    fn time_bounds(&self) -> (i64, i64) {
        let mut min = i64::MAX;
        let mut max = i64::MIN;
        let firsts = self.closed.iter().map(|c| (c.min_time, c.max_time));
        let open = self
            .open
            .first()
            .zip(self.open.last())
            .map(|(a, b)| (a.0, b.0));
        for (low, high) in firsts.chain(open) {
            min = min.min(low);
            max = max.max(high);
        }
        if let (Some((a, _)), Some((b, _))) = (
            self.overrides.iter().next(),
            self.overrides.iter().next_back(),
        ) {
            min = min.min(*a);
            max = max.max(*b);
        }
        (min, max)
    }

    fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open.is_empty() && self.overrides.is_empty()
    }

    fn truncate_before(&mut self, boundary: i64) {
        self.closed.retain(|c| c.max_time >= boundary);
        if self.open.last().is_some_and(|(t, _)| *t < boundary) {
            self.open.clear();
        }
        self.overrides = self.overrides.split_off(&boundary);
    }

    fn chunk_count(&self) -> u64 {
        self.closed.len() as u64 + u64::from(!self.open.is_empty())
    }

    fn snapshot(&self, mint: i64, maxt: i64) -> HistData {
        HistData {
            closed: self
                .closed
                .iter()
                .filter(|c| c.max_time >= mint && c.min_time <= maxt)
                .cloned()
                .collect(),
            open: self.open.clone(),
            open_hint: self.open_hint,
            last_closed: None,
            overrides: if mint <= maxt {
                self.overrides
                    .range(mint..=maxt)
                    .map(|(t, h)| (*t, h.clone()))
                    .collect()
            } else {
                BTreeMap::new()
            },
            last_pushed: self.last_pushed,
            float_after_open: self.float_after_open,
        }
    }
}

impl SeriesData {
    fn new() -> SeriesData {
        SeriesData {
            open: XorAppender::new(),
            rest: None,
        }
    }

    /// Timestamp of the newest in-order sample, `i64::MIN` if none.
    fn max_time(&self) -> i64 {
        match self.rest.as_deref() {
            Some(rest) => rest.max_time,
            None => self.open.last_time().unwrap_or(i64::MIN),
        }
    }

    /// Sets [`SeriesData::max_time`]. Without a rest it can only be the
    /// open chunk's newest sample, or `i64::MIN` when that is empty,
    /// which it then already is.
    fn set_max_time(&mut self, t: i64) {
        match self.rest.as_deref_mut() {
            Some(rest) => rest.max_time = t,
            None => debug_assert_eq!(t, self.open.last_time().unwrap_or(i64::MIN)),
        }
    }

    /// The open chunk's decoder checkpoints.
    fn checkpoints(&self) -> &XorCheckpoints {
        self.rest
            .as_deref()
            .map_or(&NO_CHECKPOINTS, |rest| &rest.checkpoints)
    }

    /// Appends to the open chunk, recording a checkpoint when one is due.
    fn append_open(&mut self, t: i64, v: f64) {
        self.open.append(t, v);
        if self.open.checkpoint_due() {
            let rest = rest_or_new(&mut self.rest, &self.open);
            self.open.record_checkpoint(&mut rest.checkpoints);
        }
    }

    /// Replaces the open chunk with an empty one, and forgets its
    /// checkpoints.
    fn take_open(&mut self) -> XorAppender {
        if let Some(rest) = self.rest.as_deref_mut() {
            rest.checkpoints.clear();
        }
        std::mem::take(&mut self.open)
    }

    /// Closed chunks, oldest first.
    fn closed(&self) -> &[ClosedChunk] {
        self.rest
            .as_deref()
            .map_or(&[], |rest| rest.closed.as_slice())
    }

    /// Out-of-order samples and rewrites.
    fn overrides(&self) -> &Overrides {
        self.rest
            .as_deref()
            .map_or(&NO_OVERRIDES, |rest| &rest.overrides)
    }

    /// Native histogram samples, if the series ever had one.
    fn hist(&self) -> Option<&HistData> {
        self.rest.as_deref()?.hist.as_deref()
    }

    /// The series' rest, allocated when it has none yet.
    fn rest_mut(&mut self) -> &mut SeriesRest {
        rest_or_new(&mut self.rest, &self.open)
    }

    /// Frees the rest when it holds nothing the open chunk does not tell
    /// (after a truncation).
    fn drop_empty_rest(&mut self) {
        let open_last = self.open.last_time().unwrap_or(i64::MIN);
        if self.rest.as_deref().is_some_and(|rest| {
            rest.closed.is_empty()
                && rest.overrides.is_empty()
                && rest.hist.is_none()
                && rest.checkpoints.is_empty()
                && rest.max_time == open_last
        }) {
            self.rest = None;
        }
    }

    /// Whether the series holds any histogram.
    fn has_histograms(&self) -> bool {
        self.hist().is_some_and(|h| !h.is_empty())
    }

    /// Applies one histogram sample. Returns whether it went out of order.
    fn apply_histogram(&mut self, t: i64, h: FloatHistogram, block_range: i64) -> bool {
        let max_time = self.max_time();
        let empty =
            self.open.num_samples() == 0 && self.closed().is_empty() && max_time == i64::MIN;
        let rest = self.rest_mut();
        let hist = rest.hist.get_or_insert_with(Box::default);
        if !empty && t <= max_time {
            rest.overrides.remove(&t);
            hist.overrides.insert(t, h);
            return true;
        }
        let float_newer = max_time > hist.last_pushed;
        hist.push(t, h, block_range, float_newer);
        rest.max_time = t;
        false
    }

    /// Histogram samples in `[mint, maxt]`, ascending, overrides applied;
    /// a timestamp a float override took over is left out.
    pub(crate) fn histograms(&self, mint: i64, maxt: i64) -> Vec<(i64, FloatHistogram)> {
        let Some(hist) = self.hist() else {
            return Vec::new();
        };
        let mut out = hist.samples(mint, maxt);
        let overrides = self.overrides();
        if !overrides.is_empty() {
            out.retain(|(t, _)| !overrides.contains_key(t));
        }
        out
    }

    /// Applies one sample. Returns whether it went out of order.
    fn apply(&mut self, t: i64, v: f64, block_range: i64) -> bool {
        let d = self;
        let max_time = d.max_time();
        if d.open.num_samples() == 0 && d.closed().is_empty() && max_time == i64::MIN {
            d.append_open(t, v);
            d.set_max_time(t);
            return false;
        }
        if t <= max_time {
            let rest = d.rest_mut();
            rest.overrides.insert(t, v);
            if let Some(hist) = &mut rest.hist {
                hist.overrides.remove(&t);
            }
            return true;
        }
        // The open chunk lies in one block range, so its newest sample
        // tells which (its oldest would mean reading the chunk's start, a
        // cache line the append does not touch otherwise).
        let crosses_boundary = d
            .open
            .last_time()
            .is_some_and(|last| range_start(last, block_range) != range_start(t, block_range));
        if d.open.num_samples() >= SAMPLES_PER_CHUNK || crosses_boundary {
            let full = d.take_open();
            if let Some(closed) = ClosedChunk::from_xor(&full) {
                let chunks = &mut d.rest_mut().closed;
                if let Some(newest) = chunks.last_mut() {
                    newest.drop_checkpoint();
                }
                chunks.reserve_exact(1);
                chunks.push(closed);
            }
        }
        d.append_open(t, v);
        d.set_max_time(t);
        false
    }

    /// Samples in `[mint, maxt]`, ascending, overrides applied.
    pub(crate) fn samples(&self, mint: i64, maxt: i64) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        self.samples_into(mint, maxt, &mut out);
        out
    }

    /// About how many samples [`SeriesData::samples`] gives for
    /// `[mint, maxt]`: what the chunks overlapping it can hold.
    pub(crate) fn samples_hint(&self, mint: i64, maxt: i64) -> usize {
        let overlaps = |c: &&ClosedChunk| c.max_time >= mint && c.min_time <= maxt;
        self.closed().iter().filter(overlaps).count() * SAMPLES_PER_CHUNK + self.open.num_samples()
    }

    /// Appends [`SeriesData::samples`] to `out`, which may already hold
    /// samples (of an earlier part of the series); those are left alone.
    pub(crate) fn samples_into(&self, mint: i64, maxt: i64, dest: &mut Vec<(i64, f64)>) {
        // An empty range (the override map's `range` panics on it).
        if mint > maxt {
            return;
        }
        let d = self;
        let overlaps = |c: &&ClosedChunk| c.max_time >= mint && c.min_time <= maxt;
        let has_overrides =
            !d.overrides().is_empty() || d.hist().is_some_and(|hist| !hist.overrides.is_empty());
        // Overrides rewrite this series' samples only: those are decoded
        // into a vector of their own, then added to `dest`.
        let mut own = Vec::new();
        let out: &mut Vec<(i64, f64)> = if has_overrides { &mut own } else { dest };
        // Sized once from what the chunks can hold, instead of growing (and
        // copying) chunk by chunk.
        out.reserve(d.samples_hint(mint, maxt));
        for c in d.closed().iter().filter(overlaps) {
            push_chunk_range(out, c, mint, maxt);
        }
        if d.open.num_samples() > 0
            && d.open.first_time().unwrap_or(i64::MAX) <= maxt
            && d.open.last_time().unwrap_or(i64::MIN) >= mint
        {
            push_in_range(out, d.open.iter_from(mint, d.checkpoints()), mint, maxt);
        }
        if !has_overrides {
            return;
        }
        if let Some(hist) = d.hist()
            && !hist.overrides.is_empty()
        {
            own.retain(|(t, _)| !hist.overrides.contains_key(t));
        }
        let over: Vec<(i64, f64)> = d
            .overrides()
            .range(mint..=maxt)
            .map(|(t, v)| (*t, *v))
            .collect();
        if over.is_empty() {
            dest.extend_from_slice(&own);
        } else {
            dest.extend_from_slice(&merge_override(own, over));
        }
    }
}

impl MemSeries {
    /// The label set as the storage traits hand it out: shared, not
    /// copied.
    pub(crate) fn labels(&self) -> Labels {
        self.labels.clone()
    }

    fn label_value(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }

    fn same_labels(&self, labels: &Labels) -> bool {
        self.labels.len() == labels.len()
            && self
                .labels
                .iter()
                .zip(labels.iter())
                .all(|(a, b)| a.name == b.name && a.value == b.value)
    }

    fn same_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        use model::labels::same_str;
        self.labels.len() == pairs.len()
            && self.labels.iter().zip(pairs.iter()).all(|(l, (pn, pv))| {
                same_str(l.name.as_str(), pn) && same_str(l.value.as_str(), pv)
            })
    }

    /// Locks the series' samples. The lock is two bits of `state`, taken
    /// and released by atomic read-modify-writes that leave the other bits
    /// (which appenders and collection change without the lock) as they
    /// are. A thread that finds it held spins briefly, then marks the
    /// word parked and sleeps in `parking_lot_core`'s table keyed by the
    /// series' address until an unlock wakes it. Holders keep it for one
    /// sample's append or one copy of a series' chunks, so waits are short
    /// and rare.
    pub(crate) fn lock_data(&self) -> DataGuard<'_> {
        if !self.take_lock_bit() {
            self.lock_contended();
        }
        DataGuard { series: self }
    }

    /// The lock when it is free now, else `None`.
    fn try_lock_data(&self) -> Option<DataGuard<'_>> {
        self.take_lock_bit().then_some(DataGuard { series: self })
    }

    /// Sets the lock bit if it is clear, retrying while the other bits
    /// change under it; false when another thread holds the lock.
    #[inline]
    fn take_lock_bit(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & STATE_LOCKED == 0 {
            match self.state.compare_exchange_weak(
                state,
                state | STATE_LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
        false
    }

    #[cold]
    fn lock_contended(&self) {
        const SPINS: u32 = 64;
        let mut spins = 0;
        loop {
            if self.take_lock_bit() {
                return;
            }
            let state = self.state.load(Ordering::Relaxed);
            if state & STATE_LOCKED == 0 {
                // Freed since the attempt: try again.
                continue;
            }
            if state & STATE_PARKED == 0 {
                if spins < SPINS {
                    spins += 1;
                    if spins % 16 == 0 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                    continue;
                }
                if self
                    .state
                    .compare_exchange_weak(
                        state,
                        state | STATE_PARKED,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    continue;
                }
            }
            let key = std::ptr::from_ref(self) as usize;
            let parked = STATE_LOCKED | STATE_PARKED;
            // SAFETY: `validate` and the callbacks neither panic nor call
            // into the parking lot; the key is this series' address, which
            // stays valid while the caller holds a reference to it.
            unsafe {
                parking_lot_core::park(
                    key,
                    || self.state.load(Ordering::Relaxed) & parked == parked,
                    || {},
                    |_, _| {},
                    parking_lot_core::DEFAULT_PARK_TOKEN,
                    None,
                );
            }
            spins = 0;
        }
    }

    fn unlock_data(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & STATE_PARKED != 0 {
                return self.unlock_waking();
            }
            match self.state.compare_exchange_weak(
                state,
                state & !STATE_LOCKED,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
    }

    /// Unlocks and wakes one parked thread. The callback runs with the
    /// parking lot's queue for this key locked, so no thread parks or
    /// checks its condition between reading the queue and clearing the
    /// bits: the parked bit stays set exactly while threads still wait.
    #[cold]
    fn unlock_waking(&self) {
        let key = std::ptr::from_ref(self) as usize;
        // SAFETY: the callback neither panics nor calls into the parking
        // lot; the key is this series' address, as in `lock_contended`.
        unsafe {
            parking_lot_core::unpark_one(key, |result| {
                let clear = if result.have_more_threads {
                    STATE_LOCKED
                } else {
                    STATE_LOCKED | STATE_PARKED
                };
                self.state.fetch_and(!clear, Ordering::Release);
                parking_lot_core::DEFAULT_UNPARK_TOKEN
            });
        }
    }

    pub(crate) fn release_pending(&self) {
        let before = self.state.fetch_sub(1, Ordering::AcqRel);
        // One release per hold: a release without one would take the
        // borrow from the flag bits.
        debug_assert!(before & STATE_PENDING != 0, "released a series not held");
    }

    /// Raises the pending count of a series the caller holds pending
    /// already (so garbage collection cannot have removed it).
    pub(crate) fn hold_again(&self) {
        self.hold(1);
    }

    /// Raises the pending count by `n`, for a caller that holds the
    /// series' shard lock or holds it pending already, so that garbage
    /// collection (which holds the shard lock) cannot be removing it.
    fn hold(&self, n: u32) {
        self.state.fetch_add(n, Ordering::AcqRel);
    }

    /// Marks the series pending for an appender that holds a handle to it;
    /// false (and nothing held) when garbage collection removed it.
    pub(crate) fn try_hold(&self) -> bool {
        let before = self.state.fetch_add(1, Ordering::SeqCst);
        if before & STATE_REMOVED != 0 {
            self.state.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Marks the series removed if no appender holds it pending; for
    /// garbage collection, under the series' shard lock.
    fn try_mark_removed(&self) -> bool {
        let mut state = self.state.load(Ordering::SeqCst);
        loop {
            if state & STATE_PENDING != 0 {
                return false;
            }
            match self.state.compare_exchange(
                state,
                state | STATE_REMOVED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
    }

    /// Whether a series record for the series is durably in the WAL.
    pub(crate) fn wal_logged(&self) -> bool {
        self.state.load(Ordering::Acquire) & STATE_WAL_LOGGED != 0
    }

    /// Notes that a series record for the series is durably in the WAL
    /// (an atomic or only the first time: commits call it per sample).
    pub(crate) fn mark_wal_logged(&self) {
        if !self.wal_logged() {
            self.state.fetch_or(STATE_WAL_LOGGED, Ordering::Release);
        }
    }

    /// Starts loading the cache lines that an append by handle and a
    /// commit touch (and a select's lookup, `Head::matching_series`): the
    /// whole series, from the reference count that [`SeriesArc`] keeps
    /// just before it. A scrape's series were last touched a
    /// whole interval ago, so these are cache misses; the first one was
    /// most of `append_handle`'s 15% of scraping CPU.
    pub(crate) fn prefetch(&self) {
        let header = SERIES_ARC_COUNT;
        let start = std::ptr::from_ref(self).cast::<u8>().wrapping_sub(header);
        for offset in (0..header + std::mem::size_of::<MemSeries>()).step_by(CACHE_LINE) {
            prefetch(start.wrapping_add(offset));
        }
    }

    /// Starts loading what [`MemSeries::select_part`] and the label set's
    /// handout read beyond the record: the labels, the open chunk and the
    /// closed chunks' list, unless the series is locked (this never waits).
    /// The record should be in cache already ([`MemSeries::prefetch`] a
    /// few series earlier), or this waits for it.
    pub(crate) fn prefetch_select(&self) {
        self.labels.prefetch();
        if let Some(data) = self.try_lock_data() {
            data.open.prefetch();
            if let Some(rest) = data.rest.as_deref() {
                // Its closed chunks' list, then the checkpoints.
                let start = std::ptr::from_ref(rest).cast::<u8>();
                for offset in (0..std::mem::size_of::<SeriesRest>()).step_by(CACHE_LINE) {
                    prefetch(start.wrapping_add(offset));
                }
            }
        }
    }

    /// Starts loading the end of the open chunk, where the next sample
    /// goes, unless the series is locked (this never waits). A commit
    /// calls it a few samples ahead: the write into the chunk was the
    /// costliest step of applying a scraped sample.
    pub(crate) fn prefetch_open_chunk(&self) {
        if let Some(data) = self.try_lock_data() {
            let bytes = data.open.bytes();
            prefetch(bytes.as_ptr().wrapping_add(bytes.len().saturating_sub(1)));
        }
    }

    /// The timestamp of the newest sample the head holds for the series
    /// (float or histogram), `i64::MIN` when it holds none: a created
    /// timestamp's zero sample must come after it
    /// (`Appender::append_created_zero`).
    pub(crate) fn newest_time(&self) -> i64 {
        self.lock_data().max_time()
    }

    /// Applies one committed sample. Returns whether it went out of order.
    pub(crate) fn apply(&self, t: i64, v: f64, block_range: i64) -> bool {
        self.lock_data().apply(t, v, block_range)
    }

    /// Applies a run of committed samples under one lock. Returns how many
    /// went out of order.
    pub(crate) fn apply_run(&self, samples: &[(i64, f64)], block_range: i64) -> u64 {
        let mut data = self.lock_data();
        let mut ooo = 0;
        for &(t, v) in samples {
            ooo += u64::from(data.apply(t, v, block_range));
        }
        ooo
    }

    /// Applies one committed histogram sample. Returns whether it went out
    /// of order.
    pub(crate) fn apply_histogram(&self, t: i64, h: FloatHistogram, block_range: i64) -> bool {
        self.lock_data().apply_histogram(t, h, block_range)
    }

    /// Histogram samples in `[mint, maxt]`, ascending, overrides applied.
    pub(crate) fn histograms(&self, mint: i64, maxt: i64) -> Vec<(i64, FloatHistogram)> {
        self.lock_data().histograms(mint, maxt)
    }

    /// Whether the series holds any histogram sample.
    pub(crate) fn has_histograms(&self) -> bool {
        self.lock_data().has_histograms()
    }

    /// Drops every sample in `[mint, maxt]` (a delete): the samples left
    /// are written into fresh chunks, as if appended in order. Returns
    /// whether any sample was dropped. Samples appended later are kept,
    /// whatever their time.
    pub(crate) fn delete_range(&self, mint: i64, maxt: i64, block_range: i64) -> bool {
        let mut d = self.lock_data();
        let all = d.samples(i64::MIN, i64::MAX);
        let kept: Vec<(i64, f64)> = all
            .iter()
            .copied()
            .filter(|&(t, _)| t < mint || t > maxt)
            .collect();
        let all_histograms = d.histograms(i64::MIN, i64::MAX);
        let n_histograms = all_histograms.len();
        let kept_histograms: Vec<(i64, FloatHistogram)> = all_histograms
            .into_iter()
            .filter(|&(t, _)| t < mint || t > maxt)
            .collect();
        if kept.len() == all.len() && kept_histograms.len() == n_histograms {
            return false;
        }
        *d = SeriesData::new();
        // Both kinds in time order, so none goes out of order.
        let mut floats = kept.into_iter().peekable();
        let mut histograms = kept_histograms.into_iter().peekable();
        loop {
            let float_first = match (floats.peek(), histograms.peek()) {
                (Some(f), Some(h)) => f.0 < h.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if float_first {
                if let Some((t, v)) = floats.next() {
                    d.apply(t, v, block_range);
                }
            } else if let Some((t, h)) = histograms.next() {
                d.apply_histogram(t, h, block_range);
            }
        }
        true
    }

    /// The newest sample in `[mint, maxt]`. Answered from the open chunk's
    /// last sample and the override map when the range reaches the newest
    /// data, as it does for queries at "now"; otherwise by decoding.
    pub(crate) fn latest(&self, mint: i64, maxt: i64) -> Option<(i64, f64)> {
        let d = self.lock_data();
        if d.hist().is_some() {
            drop(d);
            return self.samples(mint, maxt).last().copied();
        }
        let chunk_last = match d.open.last_sample() {
            Some((t, v)) if t <= maxt => Some((t, v)),
            Some(_) => None,
            // An empty open chunk with closed ones happens after a
            // truncation; decode below.
            None if d.closed().is_empty() => None,
            None => {
                drop(d);
                return self.samples(mint, maxt).last().copied();
            }
        };
        if chunk_last.is_none() && d.open.num_samples() > 0 {
            drop(d);
            return self.samples(mint, maxt).last().copied();
        }
        let over = d
            .overrides()
            .range(..=maxt)
            .next_back()
            .map(|(t, v)| (*t, *v));
        let best = match (chunk_last, over) {
            (Some(c), Some(o)) => Some(if o.0 >= c.0 { o } else { c }),
            (c, o) => c.or(o),
        };
        best.filter(|(t, _)| *t >= mint)
    }

    /// Oldest and newest timestamp held (`(i64::MAX, i64::MIN)` when
    /// empty), from chunk metadata, without decoding.
    pub(crate) fn time_bounds(&self) -> (i64, i64) {
        self.lock_data().time_bounds()
    }

    /// What a select takes of the series for `[mint, maxt]`, under one
    /// lock: nothing when no sample can lie there; the samples themselves
    /// when the open chunk and at most one closed chunk can hold them (and
    /// the series has no overrides or histograms), as a recent window of
    /// an instant query does: decoding part of a chunk or two costs less
    /// than copying them (a box for the copy, one for each chunk, one for
    /// the open chunk's bytes, each freed after the decode) to decode
    /// later; else a snapshot (`SeriesData::snapshot`), decoded later and
    /// in parallel with other series' (a long range's many chunks).
    pub(crate) fn select_part(&self, mint: i64, maxt: i64) -> Option<Selected> {
        self.lock_data().select_part(mint, maxt)
    }
}

/// A head series' part of a select ([`MemSeries::select_part`]).
pub(crate) enum Selected {
    /// Its samples in the range, decoded.
    Samples(Vec<(i64, f64)>),
    /// A copy of its chunks that can hold samples in the range.
    Snapshot(SeriesData),
}

impl SeriesData {
    /// See [`MemSeries::select_part`].
    fn select_part(&self, mint: i64, maxt: i64) -> Option<Selected> {
        let d = self;
        let (min, max) = d.time_bounds();
        // An empty series (rolled back, or all deleted) has bounds
        // (i64::MAX, i64::MIN), which would pass the range check of a
        // select over all time.
        if min > max || min > maxt || max < mint || mint > maxt {
            return None;
        }
        let plain = d
            .rest
            .as_deref()
            .is_none_or(|rest| rest.overrides.is_empty() && rest.hist.is_none());
        // Closed chunks are in time order: those in the range are a run,
        // counted from the newest (only up to two are needed).
        let closed_in_range = d
            .closed()
            .iter()
            .rev()
            .skip_while(|c| c.min_time > maxt)
            .take_while(|c| c.max_time >= mint)
            .take(2)
            .count();
        if plain && closed_in_range <= 1 {
            let mut samples = Vec::new();
            d.samples_into(mint, maxt, &mut samples);
            return Some(Selected::Samples(samples));
        }
        Some(Selected::Snapshot(d.snapshot(mint, maxt)))
    }

    /// A copy of the data that can hold samples in `[mint, maxt]`: the
    /// chunks overlapping the range (still compressed) and the overrides
    /// in it. Decoding it later gives what [`MemSeries::samples`] gives
    /// now, whatever the head does meanwhile.
    fn snapshot(&self, mint: i64, maxt: i64) -> SeriesData {
        let d = self;
        let rest = d.rest.as_deref().map(|rest| {
            Box::new(SeriesRest {
                closed: rest
                    .closed
                    .iter()
                    .filter(|c| c.max_time >= mint && c.min_time <= maxt)
                    .cloned()
                    .collect(),
                // `range` panics on an empty interval the wrong way round.
                overrides: if mint <= maxt {
                    rest.overrides
                        .range(mint..=maxt)
                        .map(|(t, v)| (*t, *v))
                        .collect()
                } else {
                    Overrides::default()
                },
                hist: rest.hist.as_ref().map(|h| Box::new(h.snapshot(mint, maxt))),
                max_time: rest.max_time,
                checkpoints: rest.checkpoints,
            })
        });
        SeriesData {
            open: d.open.clone(),
            rest,
        }
    }
}

impl SeriesData {
    /// Oldest and newest timestamp held (`(i64::MAX, i64::MIN)` when
    /// empty), from chunk metadata, without decoding.
    pub(crate) fn time_bounds(&self) -> (i64, i64) {
        let d = self;
        let mut min = i64::MAX;
        let mut max = i64::MIN;
        // Closed chunks are in time order and end before the open one, and
        // `max_time` bounds every chunk from above, so only the oldest
        // chunk is read (each chunk read is a cache miss per series).
        match d.closed().first() {
            Some(first) => min = min.min(first.min_time),
            None => min = min.min(d.open.first_time().unwrap_or(i64::MAX)),
        }
        if !d.closed().is_empty() || d.open.num_samples() > 0 {
            max = max.max(d.max_time());
        }
        let overrides = d.overrides();
        if let (Some((a, _)), Some((b, _))) =
            (overrides.iter().next(), overrides.iter().next_back())
        {
            min = min.min(*a);
            max = max.max(*b);
        }
        if let Some(hist) = d.hist() {
            let (low, high) = hist.time_bounds();
            min = min.min(low);
            max = max.max(high);
        }
        (min, max)
    }
}

impl MemSeries {
    /// Samples in `[mint, maxt]`, ascending, overrides applied.
    pub(crate) fn samples(&self, mint: i64, maxt: i64) -> Vec<(i64, f64)> {
        self.lock_data().samples(mint, maxt)
    }

    /// Whether the series has any sample at all.
    fn is_empty(&self) -> bool {
        let d = self.lock_data();
        d.closed().is_empty()
            && d.open.num_samples() == 0
            && d.overrides().is_empty()
            && !d.has_histograms()
    }

    /// Drops every sample before `boundary`. Returns whether the series is
    /// empty afterwards. Chunks never straddle a block boundary, so whole
    /// chunks go.
    fn truncate_before(&self, boundary: i64) -> bool {
        let mut d = self.lock_data();
        let max_time = d.max_time();
        if let Some(rest) = d.rest.as_deref_mut() {
            let chunks = &mut rest.closed;
            chunks.retain(|c| c.max_time >= boundary);
            // Exactly as long as full, as `apply` keeps it.
            chunks.shrink_to_fit();
            rest.overrides.keep_from(boundary);
            if let Some(hist) = &mut rest.hist {
                hist.note_floats_before_reset(max_time);
                hist.truncate_before(boundary);
            }
        }
        if d.open.last_time().is_some_and(|t| t < boundary) {
            d.take_open();
        }
        let histograms_in_chunks = d
            .hist()
            .is_some_and(|h| !h.closed.is_empty() || !h.open.is_empty());
        let empty = d.closed().is_empty()
            && d.open.num_samples() == 0
            && d.overrides().is_empty()
            && !d.has_histograms();
        if d.closed().is_empty() && d.open.num_samples() == 0 && !histograms_in_chunks {
            // Later in-order samples must not be taken as out of order
            // against data that is gone from the head.
            let mut max_time = i64::MIN;
            let newest_override = d.overrides().iter().next_back().map(|(&t, _)| t);
            if let Some(t) = newest_override {
                // Keep overrides as overrides; new samples after them are
                // in order again.
                max_time = t;
            }
            if let Some((&t, _)) = d.hist().and_then(|h| h.overrides.iter().next_back()) {
                max_time = max_time.max(t);
            }
            d.set_max_time(max_time);
        }
        d.drop_empty_rest();
        empty
    }

    fn chunk_count(&self) -> u64 {
        let d = self.lock_data();
        d.closed().len() as u64
            + u64::from(d.open.num_samples() > 0)
            + d.hist().map_or(0, |h| h.chunk_count())
    }
}

/// Appends a closed chunk's samples in `[mint, maxt]`.
fn push_chunk_range(out: &mut Vec<(i64, f64)>, chunk: &ClosedChunk, mint: i64, maxt: i64) {
    let (encoding, (bytes, checkpoint)) = (chunk.encoding, chunk.parts());
    // A Dense chunk decodes in one loop per section, cut to the range
    // after (a third of a long range query's time went to decoding it
    // sample by sample).
    if encoding == Encoding::Dense
        && crate::chunkenc::append_dense_range(
            bytes,
            checkpoint,
            MAX_CHUNK_RESERVE,
            mint,
            maxt,
            out,
        )
        .unwrap_or(false)
    {
        return;
    }
    // Head chunks are produced by this process; a decode error would be a
    // bug, and the iterator simply ends early on one.
    if let Ok(it) = ChunkIter::new(encoding, bytes) {
        push_in_range(out, it, mint, maxt);
    }
}

/// Appends the samples of `it` within `[mint, maxt]`, sized from the
/// chunk's header.
fn push_in_range(out: &mut Vec<(i64, f64)>, it: ChunkIter<&[u8]>, mint: i64, maxt: i64) {
    out.reserve(it.remaining_claimed().min(MAX_CHUNK_RESERVE));
    for (t, v) in it {
        if t > maxt {
            break;
        }
        if t >= mint {
            out.push((t, v));
        }
    }
}

/// The most samples a chunk's header may reserve room for ahead of decoding
/// (a corrupt header cannot make a read allocate much).
pub(crate) const MAX_CHUNK_RESERVE: usize = 1 << 12;

/// Merges two ascending sample lists; on equal timestamps `over` wins.
pub(crate) fn merge_override<T>(base: Vec<(i64, T)>, over: Vec<(i64, T)>) -> Vec<(i64, T)> {
    let mut out = Vec::with_capacity(base.len() + over.len());
    let mut b = base.into_iter().peekable();
    let mut o = over.into_iter().peekable();
    loop {
        match (b.peek(), o.peek()) {
            (Some(&(tb, _)), Some(&(to, _))) => {
                if tb < to {
                    out.extend(b.next());
                } else if to < tb {
                    out.extend(o.next());
                } else {
                    b.next();
                    out.extend(o.next());
                }
            }
            (Some(_), None) => out.extend(b.next()),
            (None, Some(_)) => out.extend(o.next()),
            (None, None) => return out,
        }
    }
}

/// A select's candidate ids while its matchers are looked at: one postings
/// list, decoded only once the shortest is known, or ids already merged.
enum Candidates<'i> {
    List(&'i IdList),
    Ids(Vec<u64>),
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        match self {
            Candidates::List(list) => list.len(),
            Candidates::Ids(ids) => ids.len(),
        }
    }
}

/// Start of the aligned block range holding `t`.
pub(crate) fn range_start(t: i64, block_range: i64) -> i64 {
    t.div_euclid(block_range) * block_range
}

/// Spreads a label-set hash or a series id over all 64 bits for a series
/// table: its low bits pick the bucket and its top 7 the tag that most
/// probes stop at. Label hashes alone would not do in a shard, where the
/// low bits that chose the shard are the same for every series, and
/// neither would sequential ids (`crate::id_table`'s stragglers).
pub(crate) fn spread(x: u64) -> u64 {
    let x = (x ^ (x >> 32)).wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^ (x >> 32)
}

/// One shard of the series map by label-set hash. A slot is just the
/// series handle (8 bytes): lookups compare label sets anyway, and a
/// resize recomputes the hashes from the labels (once per doubling, so
/// about once per series), where a key beside every handle cost 8 bytes
/// a slot, 17 bytes a series at a million. Series whose hashes collide
/// simply share the table.
#[derive(Default)]
struct Shard {
    series: hashbrown::HashTable<SeriesArc>,
}

impl Shard {
    /// The series with `hash` that `same` accepts.
    fn find(&self, hash: u64, same: impl Fn(&MemSeries) -> bool) -> Option<&SeriesArc> {
        self.series.find(spread(hash), |s| same(s))
    }

    fn insert(&mut self, hash: u64, series: SeriesArc) {
        self.series
            .insert_unique(spread(hash), series, |s| spread(s.labels.stable_hash()));
    }

    fn remove(&mut self, hash: u64, s: &MemSeries) {
        if let Ok(entry) = self.series.find_entry(spread(hash), |x| x.id == s.id) {
            entry.remove();
        }
    }
}

/// Every live series by id: pages of series handles indexed by id
/// (`crate::id_table`), where a hash table paid 8 bytes a slot at its
/// load and a hash per lookup; a select's ids are ascending, so its
/// lookups walk the pages in order.
type SeriesById = IdTable<SeriesArc>;

impl HasId for SeriesArc {
    fn id(&self) -> u64 {
        self.id
    }
}

/// The labels of a series to create: a label set, or normalized borrowed
/// pairs (see [`model::labels::pairs_are_normalized`]), read the same way,
/// so that a series created from a remote-written request's pairs makes no
/// label set of its own strings first (its strings, arrays and vectors,
/// freed right after, left holes among the series' long-lived allocations).
#[derive(Clone, Copy)]
enum NewLabels<'a> {
    Set(&'a Labels),
    Pairs(&'a [(&'a str, &'a str)]),
}

impl<'a> NewLabels<'a> {
    fn len(&self) -> usize {
        match self {
            NewLabels::Set(labels) => labels.len(),
            NewLabels::Pairs(pairs) => pairs.len(),
        }
    }

    /// Label `i < len()` as a name and a value.
    fn at(&self, i: usize) -> (&'a str, &'a str) {
        match *self {
            NewLabels::Set(labels) => labels
                .at(i)
                .map_or(("", ""), |l| (l.name.as_str(), l.value.as_str())),
            NewLabels::Pairs(pairs) => pairs[i],
        }
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        (0..self.len())
            .map(|i| self.at(i))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// The hash [`Index::names`] files a names array under.
fn names_hash<'s>(names: impl Iterator<Item = &'s str>) -> u64 {
    use std::hash::Hasher;
    let mut hasher = model::labels::FastHasher::default();
    for name in names {
        hasher.write(name.as_bytes());
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

fn shared_names_hash(names: &LabelNames) -> u64 {
    names_hash(names.as_slice().iter().map(|n| n.as_str()))
}

struct Index {
    /// Every live series by id.
    series: SeriesById,
    /// name -> value -> ascending series ids.
    postings: HashMap<LabelStr, HashMap<LabelStr, IdList>>,
    interned: HashSet<LabelStr>,
    /// The label names of series, one array per distinct set of names
    /// (a metric's series mostly share one), which every series with
    /// those names points to: a series' labels then take 8 bytes each
    /// (the value) where name and value took 16.
    names: hashbrown::HashTable<LabelNames>,
    /// Held for reading while a select reads ranks and for writing while
    /// [`Head::rank_all`] rewrites them (both under the index's read
    /// lock), so no select sorts by a mix of two rankings.
    ranking: RwLock<()>,
    /// The writers' scopes that series name (`MemSeries::scope`): one
    /// per writer that created a series under limits, kept for the life
    /// of the head as the limiter keeps them. Found by address.
    scopes: Vec<Arc<Scope>>,
    scope_places: HashMap<usize, u32>,
    /// Label templates of scrape targets, which new series' label sets
    /// are built from (`crate::templates`).
    templates: Templates,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            series: SeriesById::default(),
            postings: HashMap::new(),
            interned: HashSet::new(),
            names: hashbrown::HashTable::new(),
            ranking: RwLock::new(()),
            scopes: Vec::new(),
            scope_places: HashMap::new(),
            templates: Templates::default(),
        }
    }
}

impl Index {
    /// `scope`'s number for [`MemSeries::scope`].
    fn scope_number(&mut self, scope: Option<Arc<Scope>>) -> u32 {
        let Some(scope) = scope else {
            return 0;
        };
        let address = Arc::as_ptr(&scope) as usize;
        if let Some(&number) = self.scope_places.get(&address) {
            return number;
        }
        self.scopes.push(scope);
        // Writers are jobs and senders: far fewer than 2^32.
        let number = self.scopes.len() as u32;
        self.scope_places.insert(address, number);
        number
    }

    fn scope(&self, number: u32) -> Option<&Arc<Scope>> {
        self.scopes.get((number as usize).checked_sub(1)?)
    }

    fn intern(&mut self, s: &str) -> LabelStr {
        if let Some(a) = self.interned.get(s) {
            return a.clone();
        }
        let a = LabelStr::from(s);
        self.interned.insert(a.clone());
        a
    }

    /// The shared array of the names of `labels` (interned strings),
    /// found without allocating when the head has it.
    fn intern_names(&mut self, labels: NewLabels<'_>) -> LabelNames {
        let hash = names_hash((0..labels.len()).map(|i| labels.at(i).0));
        let same = |shared: &LabelNames| {
            let names = shared.as_slice();
            names.len() == labels.len()
                && names
                    .iter()
                    .enumerate()
                    .all(|(i, name)| name.as_str() == labels.at(i).0)
        };
        if let Some(shared) = self.names.find(hash, same) {
            return shared.clone();
        }
        let names = (0..labels.len())
            .map(|i| self.intern(labels.at(i).0))
            .collect();
        let shared = LabelNames::new(names);
        self.names
            .insert_unique(hash, shared.clone(), shared_names_hash);
        shared
    }
}

/// The in-memory head.
pub struct Head {
    shards: Box<[Mutex<Shard>]>,
    index: RwLock<Index>,
    next_id: AtomicU64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    block_range: i64,
    /// Unique per head in the process (see `MemSeries::owner`).
    owner: u32,
}

/// Hands out `Head::owner` values.
static NEXT_HEAD: AtomicU32 = AtomicU32::new(1);

impl Head {
    pub(crate) fn new(block_range: i64) -> Head {
        Head {
            owner: NEXT_HEAD.fetch_add(1, Ordering::Relaxed),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            index: RwLock::new(Index::default()),
            next_id: AtomicU64::new(1),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            block_range,
        }
    }

    pub(crate) fn block_range(&self) -> i64 {
        self.block_range
    }

    /// Whether `series` is one of this head's.
    pub(crate) fn owns(&self, series: &MemSeries) -> bool {
        series.owner == self.owner
    }

    /// Finds or creates the series for `labels` and marks it pending for
    /// the caller's appender. Returns the series and whether it is new.
    /// A new series must pass `admission`'s limits; when it does not,
    /// nothing is created and the limit's error is returned.
    pub(crate) fn get_or_create_pending(
        &self,
        labels: &Labels,
        admission: &Admission<'_>,
    ) -> Result<(SeriesArc, bool), StorageError> {
        self.get_or_create(labels.stable_hash(), NewLabels::Set(labels), admission)
    }

    /// [`Head::get_or_create_pending`] for labels whose hash is `hash`,
    /// under the one shard lock.
    fn get_or_create(
        &self,
        hash: u64,
        labels: NewLabels<'_>,
        admission: &Admission<'_>,
    ) -> Result<(SeriesArc, bool), StorageError> {
        let mut shard = lock(&self.shards[(hash as usize) % SHARDS]);
        let same = |s: &MemSeries| match labels {
            NewLabels::Set(labels) => s.same_labels(labels),
            NewLabels::Pairs(pairs) => s.same_pairs(pairs),
        };
        if let Some(s) = shard.find(hash, same) {
            s.hold(1);
            return Ok((s.clone(), false));
        }
        let series = self.insert_series_admitted(labels, admission)?;
        shard.insert(hash, series.clone());
        Ok((series, true))
    }

    /// The series with `labels` if the head has it, held pending (as
    /// [`Head::get_or_create_pending`] holds it) so collection keeps it
    /// until the caller releases it.
    pub(crate) fn get_pending(&self, labels: &Labels) -> Option<SeriesArc> {
        let hash = labels.stable_hash();
        let shard = lock(&self.shards[(hash as usize) % SHARDS]);
        let series = shard.find(hash, |s| s.same_labels(labels))?;
        series.hold(1);
        Some(series.clone())
    }

    /// Like [`Head::get_or_create_pending`] for normalized borrowed pairs
    /// (see [`model::labels::pairs_are_normalized`]); a new series' label
    /// set is built from the head's interned strings, with no label set of
    /// the pairs' own first.
    pub(crate) fn get_or_create_pending_pairs(
        &self,
        pairs: &[(&str, &str)],
        admission: &Admission<'_>,
    ) -> Result<(SeriesArc, bool), StorageError> {
        let hash = model::labels::stable_hash_pairs(pairs.iter().copied());
        self.get_or_create(hash, NewLabels::Pairs(pairs), admission)
    }

    /// Finds the series of many label-pair sets at once, shard by shard
    /// (one lock per shard rather than one per set), each shard's lookups
    /// in passes so that their cache misses overlap (below). Each wanted
    /// set that the head holds gets its series in `found`, held pending
    /// `holds` times; the others are left `None` for the caller to create.
    /// Sets not marked `look` are skipped.
    pub(crate) fn find_pending_many(&self, wanted: &mut [WantedSeries<'_>]) {
        // The wanted sets' positions grouped by shard (a counting sort).
        let mut starts = [0usize; SHARDS + 1];
        for w in wanted.iter().filter(|w| w.look) {
            starts[(w.hash as usize) % SHARDS + 1] += 1;
        }
        for shard in 0..SHARDS {
            starts[shard + 1] += starts[shard];
        }
        let mut next = starts;
        let mut order = vec![0usize; starts[SHARDS]];
        for (index, w) in wanted.iter().enumerate().filter(|(_, w)| w.look) {
            let slot = &mut next[(w.hash as usize) % SHARDS];
            order[*slot] = index;
            *slot += 1;
        }
        for shard in 0..SHARDS {
            let group = &order[starts[shard]..starts[shard + 1]];
            if group.is_empty() {
                continue;
            }
            let table = lock(&self.shards[shard]);
            // Each lookup misses the cache on the series, its label array
            // and its label values, one after the other; done in passes
            // over the group, the misses of many lookups overlap. First
            // the slot whose hash tag matches (almost always the series:
            // checked below), its series prefetched.
            let candidates: Vec<Option<&SeriesArc>> = group
                .iter()
                .map(|&index| {
                    let found = table.find(wanted[index].hash, |_| true);
                    if let Some(s) = found {
                        prefetch(SeriesArc::as_ptr(s).cast());
                    }
                    found
                })
                .collect();
            for s in candidates.iter().flatten() {
                s.labels.prefetch();
            }
            for s in candidates.iter().flatten() {
                s.labels.prefetch_values();
            }
            for (&index, candidate) in group.iter().zip(candidates) {
                let w = &mut wanted[index];
                let series = match candidate {
                    Some(s) if s.same_pairs(w.pairs) => Some(s),
                    // Another series with the same tag, or none.
                    Some(_) => table.find(w.hash, |s| s.same_pairs(w.pairs)),
                    None => None,
                };
                if let Some(s) = series {
                    s.hold(w.holds);
                    w.found = Some(s.clone());
                }
            }
        }
    }

    /// Creates a series with a known id during WAL replay. A second record
    /// for the same labels and id maps to the existing series; one with
    /// another id takes the series over under the new id, data included:
    /// the running head gives labels a new id only after removing the
    /// series under the old one (garbage collection), so every later record
    /// uses the new id, and so do later checkpoints.
    pub(crate) fn replay_series(&self, id: u64, labels: &Labels) -> SeriesArc {
        let hash = labels.stable_hash();
        let mut shard = lock(&self.shards[(hash as usize) % SHARDS]);
        let mut carried: Option<SeriesData> = None;
        if let Some(s) = shard.find(hash, |s| s.same_labels(labels)).cloned() {
            if s.id == id {
                return s;
            }
            carried = Some(std::mem::replace(&mut *s.lock_data(), SeriesData::new()));
            s.state.fetch_or(STATE_REMOVED, Ordering::SeqCst);
            Head::unlink_from_shard(&mut shard, hash, &s);
            self.unlink_from_index(&HashSet::from([s.id]));
        }
        self.next_id.fetch_max(id + 1, Ordering::Relaxed);
        let series = self.insert_series(id, labels, 0, None);
        if let Some(data) = carried {
            *series.lock_data() = data;
        }
        series.mark_wal_logged();
        shard.insert(hash, series.clone());
        series
    }

    /// Creates a series, pending once, for a writer: the limits are
    /// checked under the index lock, so the counts they see are exact.
    fn insert_series_admitted(
        &self,
        labels: NewLabels<'_>,
        admission: &Admission<'_>,
    ) -> Result<SeriesArc, StorageError> {
        let mut index = write(&self.index);
        if let Some(limiter) = admission.limiter {
            let metric = labels.get(model::METRIC_NAME).unwrap_or("");
            let metric_series = index
                .postings
                .get(model::METRIC_NAME)
                .and_then(|values| values.get(metric))
                .map_or(0, |ids| ids.len() as u64);
            limiter.admit(
                admission.scope,
                metric,
                index.series.len() as u64,
                metric_series,
            )?;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let scope = admission.limiter.map(|_| admission.scope.clone());
        Ok(self.insert_series_locked(&mut index, id, labels, 1, scope))
    }

    fn insert_series(
        &self,
        id: u64,
        labels: &Labels,
        pending: u32,
        scope: Option<Arc<Scope>>,
    ) -> SeriesArc {
        let mut index = write(&self.index);
        self.insert_series_locked(&mut index, id, NewLabels::Set(labels), pending, scope)
    }

    fn insert_series_locked(
        &self,
        index: &mut Index,
        id: u64,
        labels: NewLabels<'_>,
        pending: u32,
        scope: Option<Arc<Scope>>,
    ) -> SeriesArc {
        let names = index.intern_names(labels);
        let values = (0..labels.len())
            .map(|i| index.intern(labels.at(i).1))
            .collect();
        let interned = index.templates.labels(&names, values);
        let series = SeriesArc::new(MemSeries {
            id,
            labels: interned,
            state: AtomicU32::new(pending),
            owner: self.owner,
            rank: AtomicU32::new(UNRANKED),
            scope: index.scope_number(scope),
            data: UnsafeCell::new(SeriesData::new()),
        });
        for l in series.labels.iter() {
            let list = index
                .postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default();
            // Ids are handed out in increasing order, except during replay
            // of a checkpoint followed by segments; the list stays sorted.
            list.insert(id);
        }
        index.series.insert(series.clone());
        series
    }

    pub(crate) fn series_by_id(&self, id: u64) -> Option<SeriesArc> {
        read(&self.index).series.get(id).cloned()
    }

    pub(crate) fn note_time(&self, t: i64) {
        self.min_time.fetch_min(t, Ordering::Relaxed);
        self.max_time.fetch_max(t, Ordering::Relaxed);
    }

    pub fn min_time(&self) -> i64 {
        self.min_time.load(Ordering::Relaxed)
    }

    pub fn max_time(&self) -> i64 {
        self.max_time.load(Ordering::Relaxed)
    }

    pub fn num_series(&self) -> u64 {
        read(&self.index).series.len() as u64
    }

    /// Series matching all matchers (all series for an empty list), sorted
    /// by label set.
    ///
    /// Candidates come from the shortest postings list among the equality
    /// matchers and the matchers that need their label present (`=~"5.."`,
    /// `!="x"` is not one: it matches series without the label). A matcher
    /// other than a plain equality is decided once per distinct label value
    /// through the postings, as Prometheus does, rather than once per
    /// series: a regex over a few status codes then costs a few regex runs,
    /// not one per candidate series.
    pub(crate) fn matching_series(&self, matchers: &[Matcher]) -> Vec<SeriesArc> {
        let index = read(&self.index);
        // Per matcher, the postings lists of the values it accepts and of
        // those it rejects; `None` for an equality matcher (one list, looked
        // up directly) and for a label no series has.
        type Lists<'i> = Vec<&'i IdList>;
        let mut partitions: Vec<Option<(Lists<'_>, Lists<'_>, HashSet<&str>)>> =
            Vec::with_capacity(matchers.len());
        let mut candidates: Option<Candidates<'_>> = None;
        // The matcher whose postings are the candidates: it holds for every
        // candidate and needs no check.
        let mut decided_by: Option<usize> = None;
        for (mi, m) in matchers.iter().enumerate() {
            let needs_label = !m.matches_empty();
            let values = index.postings.get(m.name());
            if m.op() == model::MatchOp::Equal && needs_label {
                let Some(list) = values.and_then(|vals| vals.get(m.value())) else {
                    return Vec::new();
                };
                if candidates.as_ref().is_none_or(|c| list.len() < c.len()) {
                    candidates = Some(Candidates::List(list));
                    decided_by = Some(mi);
                }
                partitions.push(None);
                continue;
            }
            let Some(values) = values else {
                // No series has the label: it matches all or nothing.
                if needs_label {
                    return Vec::new();
                }
                partitions.push(None);
                continue;
            };
            let mut accepted = HashSet::new();
            let (mut yes, mut no) = (Vec::new(), Vec::new());
            for (value, list) in values {
                if m.matches(value) {
                    accepted.insert(&**value);
                    yes.push(list);
                } else {
                    no.push(list);
                }
            }
            if needs_label {
                if yes.is_empty() {
                    return Vec::new();
                }
                let total: usize = yes.iter().map(|l| l.len()).sum();
                if candidates.as_ref().is_none_or(|c| total < c.len()) {
                    candidates = Some(Candidates::Ids(union_sorted(&yes)));
                    decided_by = Some(mi);
                }
            }
            partitions.push(Some((yes, no, accepted)));
        }
        // Narrow the candidates through the postings of the other matchers
        // where their lists are not much longer than the candidates: merging
        // sorted id lists reads no series, where a check per candidate reads
        // each series' labels from memory all over the heap.
        let mut settled = vec![false; matchers.len()];
        if let Some(decider) = decided_by {
            settled[decider] = true;
        }
        let mut candidates: Option<Vec<u64>> = candidates.map(|c| match c {
            Candidates::List(list) => list.to_vec(),
            Candidates::Ids(ids) => ids,
        });
        if let Some(ids) = candidates.as_mut() {
            for (mi, m) in matchers.iter().enumerate() {
                if settled[mi] {
                    continue;
                }
                let needs_label = !m.matches_empty();
                let (lists, keep_listed): (Lists<'_>, bool) = match &partitions[mi] {
                    Some((yes, _, _)) if needs_label => (yes.clone(), true),
                    Some((_, no, _)) => (no.clone(), false),
                    None if m.op() == model::MatchOp::Equal && needs_label => {
                        let list = index.postings.get(m.name()).and_then(|v| v.get(m.value()));
                        (list.into_iter().collect(), true)
                    }
                    // A label no series has, on a matcher that accepts its
                    // absence: every candidate passes.
                    None => {
                        settled[mi] = true;
                        continue;
                    }
                };
                let total: usize = lists.iter().map(|l| l.len()).sum();
                if total > POSTINGS_MERGE_FACTOR * ids.len().max(1) {
                    continue;
                }
                let listed = union_sorted(&lists);
                *ids = filter_sorted(ids, &listed, keep_listed);
                settled[mi] = true;
            }
        }
        let keep = |s: &MemSeries| {
            let checks = matchers.iter().zip(&partitions).enumerate();
            checks
                .filter(|(mi, _)| !settled[*mi])
                .all(|(_, (m, partition))| {
                    let value = s.label_value(m.name());
                    match (partition, value) {
                        (Some((_, _, accepted)), Some(v)) => accepted.contains(v),
                        (_, v) => m.matches(v.unwrap_or("")),
                    }
                })
        };
        let out: Vec<SeriesArc> = match candidates {
            Some(ids) => {
                let check_labels = settled.iter().any(|s| !s);
                let mut out = Vec::with_capacity(ids.len());
                // Each id's series is a cache miss (a select's series lie
                // all over the heap); done in passes over a batch, the
                // misses of many lookups overlap: first each id's series
                // (its slot is in the page of the previous id, mostly),
                // prefetched, then the labels to check, then the checks.
                let mut found = [None; LOOKUP_BATCH];
                for batch in ids.chunks(LOOKUP_BATCH) {
                    let found = &mut found[..batch.len()];
                    for (slot, &id) in found.iter_mut().zip(batch) {
                        *slot = index.series.get(id);
                        if let Some(s) = slot {
                            s.prefetch();
                        }
                    }
                    if check_labels {
                        for s in found.iter().flatten() {
                            s.labels.prefetch();
                        }
                        for s in found.iter().flatten() {
                            s.labels.prefetch_values();
                        }
                    }
                    for s in found.iter().flatten() {
                        if keep(s) {
                            out.push(SeriesArc::clone(s));
                        }
                    }
                }
                out
            }
            None => index.series.values().filter(|s| keep(s)).cloned().collect(),
        };
        // Label sets are unique, so an unstable sort gives the one order.
        let unranked = |out: &[SeriesArc]| {
            out.iter()
                .any(|s| s.rank.load(Ordering::Relaxed) == UNRANKED)
        };
        if out.len() >= RANK_MIN_SERIES
            && out.len() * RANK_MAX_FACTOR >= index.series.len()
            && unranked(&out)
        {
            Head::rank_all(&index);
        }
        // Keys are read once, not at every comparison (each read goes
        // through a pointer to a different series), and while no ranking
        // runs, so they all come from the last one.
        let keyed = {
            let _ranks = read(&index.ranking);
            if unranked(&out) {
                Err(out)
            } else {
                Ok(out
                    .into_iter()
                    .map(|s| (s.rank.load(Ordering::Relaxed), s))
                    .collect::<Vec<_>>())
            }
        };
        drop(index);
        let mut out = match keyed {
            Ok(mut keyed) => {
                keyed.sort_unstable_by_key(|(rank, _)| *rank);
                return keyed.into_iter().map(|(_, s)| s).collect();
            }
            Err(out) => out,
        };
        out.sort_unstable_by(|a, b| compare_interned(&a.labels, &b.labels));
        out
    }

    /// Stores every series' position in label order, so that later selects
    /// sort their series by one integer instead of comparing label sets:
    /// that comparison sort was the largest cost of a select over many
    /// series. Runs under the index read lock, so no series comes or goes
    /// meanwhile, and holds the ranking lock, so no select reads ranks
    /// half rewritten.
    fn rank_all(index: &Index) {
        let mut all: Vec<&SeriesArc> = index.series.values().collect();
        all.sort_unstable_by(|a, b| compare_interned(&a.labels, &b.labels));
        let _ranks = write(&index.ranking);
        for (i, s) in all.iter().enumerate() {
            // A head holds far fewer than 2^32 series.
            s.rank.store(i as u32 + 1, Ordering::Relaxed);
        }
    }

    /// Every series, sorted by label set.
    pub(crate) fn all_series_sorted(&self) -> Vec<SeriesArc> {
        self.matching_series(&[])
    }

    /// Drops samples before `boundary` and removes series left empty that
    /// no appender is using. Must run while no commit is in flight.
    pub(crate) fn truncate_before(&self, boundary: i64) -> u64 {
        let all: Vec<SeriesArc> = read(&self.index).series.values().cloned().collect();
        let emptied: Vec<&SeriesArc> = all.iter().filter(|s| s.truncate_before(boundary)).collect();
        let removed = self.remove_if_empty(emptied);
        // The head's minimum is now at least the boundary.
        let mut new_min = i64::MAX;
        for s in read(&self.index).series.values() {
            // Floats, their overrides and histograms alike.
            let (first, _) = s.lock_data().time_bounds();
            new_min = new_min.min(first);
        }
        self.min_time.store(new_min, Ordering::Relaxed);
        if new_min == i64::MAX {
            self.max_time.store(i64::MIN, Ordering::Relaxed);
        }
        removed
    }

    /// Removes those of `candidates` that hold no sample and that no
    /// appender is using. Returns how many went.
    fn remove_if_empty<'s>(&self, candidates: impl IntoIterator<Item = &'s SeriesArc>) -> u64 {
        let mut removed = HashSet::new();
        for s in candidates {
            // Recomputed rather than kept: 8 bytes in every series for a
            // hash needed only here.
            let hash = s.labels.stable_hash();
            let mut shard = lock(&self.shards[(hash as usize) % SHARDS]);
            // Empty, then marked removed (only while nobody holds it),
            // then empty still: an appender may have held it, written and
            // released it between the first check and the mark. Once
            // marked, nobody can hold it any more (handles see the mark,
            // lookups wait for the shard lock), so the second check stands.
            if s.is_empty() && s.try_mark_removed() {
                if !s.is_empty() {
                    s.state.fetch_and(!STATE_REMOVED, Ordering::SeqCst);
                    continue;
                }
                Head::unlink_from_shard(&mut shard, hash, s);
                removed.insert(s.id);
            }
        }
        self.unlink_from_index(&removed);
        removed.len() as u64
    }

    fn unlink_from_shard(shard: &mut Shard, hash: u64, s: &MemSeries) {
        shard.remove(hash, s);
    }

    /// Removes the series `removed` from the index and the postings, and
    /// forgets strings no series uses any more.
    fn unlink_from_index(&self, removed: &HashSet<u64>) {
        if removed.is_empty() {
            return;
        }
        let mut index = write(&self.index);
        for id in removed {
            if let Some(series) = index.series.remove(*id)
                && let Some(scope) = index.scope(series.scope)
            {
                scope.released();
            }
        }
        for vals in index.postings.values_mut() {
            for list in vals.values_mut() {
                list.retain(|id| !removed.contains(&id));
            }
            vals.retain(|_, list| !list.is_empty());
        }
        index.postings.retain(|_, vals| !vals.is_empty());
        let live: HashSet<LabelStr> = index
            .series
            .values()
            .flat_map(|s| {
                s.labels
                    .iter()
                    .flat_map(|l| [l.name.clone(), l.value.clone()])
            })
            .collect();
        index.interned = live;
        let mut live_names = hashbrown::HashTable::new();
        for names in index.series.values().filter_map(|s| s.labels.names()) {
            let hash = shared_names_hash(names);
            if live_names
                .find(hash, |n: &LabelNames| n.ptr_eq(names))
                .is_none()
            {
                live_names.insert_unique(hash, names.clone(), shared_names_hash);
            }
        }
        index.names = live_names;
        index.templates.clear();
    }

    /// The series matching `matchers` that hold a sample in `[mint, maxt]`:
    /// what a delete of that range affects.
    pub(crate) fn series_with_samples_in(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<SeriesArc> {
        if mint > maxt {
            return Vec::new();
        }
        self.matching_series(matchers)
            .into_iter()
            .filter(|s| !s.samples(mint, maxt).is_empty())
            .collect()
    }

    /// Deletes `[mint, maxt]` of each of `series`, then removes the series
    /// left empty that no appender is using and recomputes the head's time
    /// bounds. Must run while no commit is in flight (and, outside replay,
    /// after the delete is in the WAL).
    pub(crate) fn delete(&self, series: &[SeriesArc], mint: i64, maxt: i64) {
        for s in series {
            s.delete_range(mint, maxt, self.block_range);
        }
        self.remove_if_empty(series);
        self.refresh_time_bounds();
    }

    /// Removes every series without samples (after replaying deletes), and
    /// recomputes the time bounds. Must run while no commit is in flight.
    pub(crate) fn remove_empty_series(&self) -> u64 {
        let all: Vec<SeriesArc> = read(&self.index).series.values().cloned().collect();
        let removed = self.remove_if_empty(all.iter().filter(|s| s.is_empty()));
        self.refresh_time_bounds();
        removed
    }

    /// Sets the head's min and max time from its series (a delete may have
    /// dropped the oldest or newest samples).
    fn refresh_time_bounds(&self) {
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for s in read(&self.index).series.values() {
            let (low, high) = s.time_bounds();
            min = min.min(low);
            max = max.max(high);
        }
        self.min_time.store(min, Ordering::Relaxed);
        self.max_time.store(max, Ordering::Relaxed);
    }

    pub(crate) fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for s in self.matching_series(matchers) {
            if s.samples(mint, maxt).is_empty() {
                continue;
            }
            for l in s.labels.iter() {
                names.insert(l.name.to_string());
            }
        }
        names.into_iter().collect()
    }

    pub(crate) fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let mut values = std::collections::BTreeSet::new();
        for s in self.matching_series(matchers) {
            if let Some(v) = s.label_value(name)
                && !values.contains(v)
                && !s.samples(mint, maxt).is_empty()
            {
                values.insert(v.to_string());
            }
        }
        values.into_iter().collect()
    }

    pub(crate) fn stats(
        &self,
        request: &model::storage::StatsRequest,
    ) -> model::storage::HeadStats {
        use model::storage::{CardinalityTally, StatsSelection};
        let focus = request.focus_label.as_deref();
        // Selected series first: matching takes the index lock itself.
        let selected: Option<Vec<SeriesArc>> = match &request.selection {
            StatsSelection::All => None,
            StatsSelection::Matching(sets) => {
                let mut all: Vec<SeriesArc> = Vec::new();
                for set in sets {
                    all.extend(self.matching_series(set));
                }
                if sets.len() > 1 {
                    all.sort_unstable_by_key(|s| s.id);
                    all.dedup_by_key(|s| s.id);
                }
                Some(all)
            }
        };
        let index = read(&self.index);
        let mut chunks = 0;
        let cardinality = match &selected {
            None => {
                let mut tally = CardinalityTally::new();
                for s in index.series.values() {
                    chunks += s.chunk_count();
                    tally.add(&s.labels);
                }
                tally.finish(request.limit, focus)
            }
            Some(list) => {
                chunks = index.series.values().map(|s| s.chunk_count()).sum();
                let mut tally = CardinalityTally::new();
                for s in list {
                    tally.add(&s.labels);
                }
                tally.finish(request.limit, focus)
            }
        };
        let pairs = index.postings.values().map(|vals| vals.len() as u64).sum();
        model::storage::HeadStats {
            num_series: index.series.len() as u64,
            num_chunks: chunks,
            num_label_pairs: pairs,
            min_time: self.min_time(),
            max_time: self.max_time(),
            cardinality,
        }
    }

    pub(crate) fn num_chunks(&self) -> u64 {
        read(&self.index)
            .series
            .values()
            .map(|s| s.chunk_count())
            .sum()
    }

    /// Where the head's heap bytes go, by structure, estimated from the
    /// sizes and capacities of what it holds (allocator overhead is not
    /// included): `(structure, bytes)` rows. Walks every series under the
    /// index lock, so it is for measurements (`examples/head_memory.rs`),
    /// not for a scrape of self metrics.
    #[doc(hidden)]
    pub fn memory_breakdown(&self) -> Vec<(&'static str, u64)> {
        let index = read(&self.index);
        let arc = SERIES_ARC_COUNT;
        let mut records = 0;
        let mut labels = 0;
        let mut open = 0;
        let mut closed = 0;
        let mut other = 0;
        let mut templates = index.templates.heap_bytes();
        let mut seen_templates = HashSet::new();
        for s in index.series.values() {
            records += arc + std::mem::size_of::<MemSeries>();
            labels += s.labels.heap_bytes();
            if let Some(t) = s.labels.template()
                && seen_templates.insert(t.as_ptr())
            {
                templates += t.heap_bytes();
            }
            let d = s.lock_data();
            open += d.open.memory_bytes();
            if let Some(rest) = d.rest.as_deref() {
                other += std::mem::size_of::<SeriesRest>();
                closed += rest.closed.capacity() * std::mem::size_of::<ClosedChunk>()
                    + rest
                        .closed
                        .iter()
                        .map(|c| arc + c.bytes.len())
                        .sum::<usize>();
                // A BTreeMap leaf holds up to 11 entries; count one leaf per 6.
                other += rest.overrides.len().div_ceil(6) * (11 * 16 + 16);
                if rest.hist.is_some() {
                    other += std::mem::size_of::<HistData>();
                }
            }
        }
        let strings: usize = index.interned.iter().map(|s| arc + s.len()).sum();
        let interned_set = map_bytes(index.interned.capacity(), std::mem::size_of::<LabelStr>());
        // Each shared names array: its count and length, then the names;
        // and the set that finds them.
        let names: usize = index
            .names
            .iter()
            .map(|n| 8 + n.as_slice().len() * 8)
            .sum::<usize>()
            + map_bytes(index.names.capacity(), std::mem::size_of::<LabelNames>());
        let series_map = index.series.heap_bytes();
        let mut postings_lists = 0;
        let key = std::mem::size_of::<LabelStr>();
        let mut postings_maps = map_bytes(index.postings.capacity(), key + 48);
        for values in index.postings.values() {
            postings_maps += map_bytes(values.capacity(), key + std::mem::size_of::<IdList>());
            postings_lists += values.values().map(IdList::heap_bytes).sum::<usize>();
        }
        drop(index);
        let shard_maps: usize = self
            .shards
            .iter()
            .map(|shard| map_bytes(lock(shard).series.capacity(), std::mem::size_of::<usize>()))
            .sum();
        [
            ("series records (SeriesArc)", records),
            ("label arrays (Labels)", labels),
            ("label templates", templates),
            ("interned strings", strings),
            ("interned string set", interned_set),
            ("shared label names", names),
            ("open chunk buffers", open),
            ("closed chunks", closed),
            ("overrides and histograms", other),
            ("series map by id", series_map),
            ("shard maps by hash", shard_maps),
            ("postings maps", postings_maps),
            ("postings lists", postings_lists),
        ]
        .into_iter()
        .map(|(name, bytes)| (name, bytes as u64))
        .collect()
    }

    /// Ids of every live series, for WAL checkpoints.
    pub(crate) fn live_ids(&self) -> HashSet<u64> {
        read(&self.index).series.values().map(|s| s.id).collect()
    }
}

/// Heap bytes of a hashbrown table with `capacity` usable slots of
/// `entry` bytes each: buckets (a power of two at most 7/8 full) times the
/// entry plus one control byte, and a group of trailing control bytes.
fn map_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (entry + 1) + 16
}

/// The sorted union of sorted postings lists. A series has one value per
/// label name, so the lists of one name are disjoint and need no dedup.
fn union_sorted(lists: &[&IdList]) -> Vec<u64> {
    match lists {
        [] => Vec::new(),
        [one] => one.to_vec(),
        _ => {
            let mut union: Vec<u64> = Vec::with_capacity(lists.iter().map(|l| l.len()).sum());
            for list in lists {
                list.extend_into(&mut union);
            }
            union.sort_unstable();
            union
        }
    }
}

/// The ids of sorted `ids` that are (`keep_listed`) or are not in sorted
/// `listed`, by one merge pass.
fn filter_sorted(ids: &[u64], listed: &[u64], keep_listed: bool) -> Vec<u64> {
    let mut out = Vec::with_capacity(if keep_listed {
        ids.len().min(listed.len())
    } else {
        ids.len()
    });
    let mut j = 0;
    for &id in ids {
        while j < listed.len() && listed[j] < id {
            j += 1;
        }
        let is_listed = j < listed.len() && listed[j] == id;
        if is_listed == keep_listed {
            out.push(id);
        }
    }
    out
}

/// Orders two interned label sets. Equal strings usually are one interned
/// allocation, so a pointer comparison settles most pairs without reading
/// the strings (sorting the series of a select was a quarter of a query).
fn compare_interned(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    let cmp = |x: &LabelStr, y: &LabelStr| {
        if x.ptr_eq(y) {
            std::cmp::Ordering::Equal
        } else {
            x.cmp(y)
        }
    };
    for (l, r) in a.iter().zip(b.iter()) {
        let c = cmp(l.name, r.name).then_with(|| cmp(l.value, r.value));
        if c != std::cmp::Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of a series record is paid once per series, a million
    /// times on a wide head (see `series_record_fits_its_allocation_class`
    /// for the record as a whole). A new field must buy its bytes back
    /// elsewhere.
    #[test]
    fn series_record_stays_in_its_size_class() {
        assert!(
            std::mem::size_of::<MemSeries>() <= 80,
            "{}",
            std::mem::size_of::<MemSeries>()
        );
        assert!(std::mem::size_of::<XorAppender>() <= 40);
        assert_eq!(std::mem::size_of::<model::Label>(), 16);
        // A closed chunk's checkpoint flag lies in what was padding.
        assert_eq!(std::mem::size_of::<ClosedChunk>(), 40);
    }

    /// Series with the same label names point to one names array, which
    /// the head forgets once no series uses it; the values stay each
    /// series' own.
    #[test]
    fn series_share_their_label_names() {
        let head = Head::new(7_200_000);
        let up = |job: &str| Labels::from_pairs([("__name__", "up"), ("job", job)]);
        let a = head.insert_series(1, &up("a"), 0, None);
        let b = head.insert_series(2, &up("b"), 0, None);
        let other = Labels::from_pairs([("__name__", "up"), ("instance", "x")]);
        let c = head.insert_series(3, &other, 0, None);
        let (na, nb, nc) = (a.labels.names(), b.labels.names(), c.labels.names());
        assert!(na.zip(nb).is_some_and(|(x, y)| x.ptr_eq(y)));
        assert!(na.zip(nc).is_some_and(|(x, y)| !x.ptr_eq(y)));
        assert_eq!((a.labels.clone(), b.labels.clone()), (up("a"), up("b")));
        assert_eq!(c.labels, other);
        assert_eq!(b.labels.get("job"), Some("b"));
        assert_eq!(read(&head.index).names.len(), 2);
        // All three are empty: truncation removes them, and the names.
        drop((a, b, c));
        assert_eq!(head.truncate_before(i64::MAX), 3);
        assert!(read(&head.index).names.is_empty());
    }

    #[test]
    fn shard_keeps_series_whose_hashes_collide() {
        let head = Head::new(7_200_000);
        let labels: Vec<Labels> = (0..3)
            .map(|i| Labels::from_pairs([("__name__", format!("m{i}"))]))
            .collect();
        // Three label sets forced onto one hash, and one on another.
        let series: Vec<SeriesArc> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| head.insert_series(i as u64 + 1, l, 0, None))
            .collect();
        let other = head.insert_series(9, &Labels::from_pairs([("a", "b")]), 0, None);
        let mut shard = Shard::default();
        // A resize rehashes from the labels, which would move the series
        // away from the forced hash: room for all of them up front.
        shard.series.reserve(16, |s| spread(s.labels.stable_hash()));
        for s in &series {
            shard.insert(42, s.clone());
        }
        shard.insert(7, other.clone());
        let find = |shard: &Shard, l: &Labels| shard.find(42, |s| s.same_labels(l)).map(|s| s.id);
        assert_eq!(find(&shard, &labels[0]), Some(1));
        assert_eq!(find(&shard, &labels[1]), Some(2));
        assert_eq!(find(&shard, &labels[2]), Some(3));
        assert_eq!(shard.find(7, |s| s.id == 9).map(|s| s.id), Some(9));
        // Removing one of the colliding series keeps the others.
        shard.remove(42, &series[0]);
        assert_eq!(find(&shard, &labels[0]), None);
        assert_eq!(find(&shard, &labels[1]), Some(2));
        assert_eq!(find(&shard, &labels[2]), Some(3));
        shard.remove(42, &series[2]);
        assert_eq!(find(&shard, &labels[1]), Some(2));
        assert_eq!(find(&shard, &labels[2]), None);
        shard.remove(42, &series[1]);
        shard.remove(7, &other);
        assert!(shard.series.is_empty());
    }

    fn unlimited() -> Admission<'static> {
        static SCOPE: std::sync::OnceLock<Arc<Scope>> = std::sync::OnceLock::new();
        Admission {
            limiter: None,
            scope: SCOPE.get_or_init(|| crate::limits::Limiter::new().default_scope()),
        }
    }

    #[test]
    fn merge_override_prefers_override() {
        let base = vec![(1, 1.0), (2, 2.0), (4, 4.0)];
        let over = vec![(2, 20.0), (3, 30.0), (5, 50.0)];
        assert_eq!(
            merge_override(base, over),
            vec![(1, 1.0), (2, 20.0), (3, 30.0), (4, 4.0), (5, 50.0)]
        );
    }

    #[test]
    fn out_of_order_and_rewrite() {
        let head = Head::new(7_200_000);
        let (s, _) = head
            .get_or_create_pending(&Labels::from_pairs([("__name__", "a")]), &unlimited())
            .unwrap();
        s.apply(10, 1.0, head.block_range());
        s.apply(30, 3.0, head.block_range());
        assert!(s.apply(20, 2.0, head.block_range()));
        assert!(s.apply(30, 33.0, head.block_range()));
        assert_eq!(s.samples(0, 100), vec![(10, 1.0), (20, 2.0), (30, 33.0)]);
        assert_eq!(s.samples(15, 25), vec![(20, 2.0)]);
    }

    fn names(list: &[SeriesArc]) -> Vec<String> {
        list.iter().map(|s| s.labels().to_string()).collect()
    }

    /// An in-order float between two histograms ends the histograms' open
    /// run (the next one starts a chunk of its own); floats before the
    /// first histogram or after the second do not. Noted from the series'
    /// newest time when the histogram arrives, and kept across a
    /// truncation that resets that time.
    /// A select's part of a series decodes, whichever form it takes, to
    /// the series' samples in the range, and a recent window of a plain
    /// series comes decoded.
    #[test]
    fn select_parts_hold_the_samples_in_their_range() {
        let range = 1_000_000;
        let mut plain = SeriesData::new();
        for i in 0..300 {
            plain.apply(i * 15, i as f64 * 0.5, range);
        }
        let mut overridden = SeriesData::new();
        for i in 0..300 {
            overridden.apply(i * 15, i as f64, range);
        }
        overridden.apply(4_000, -1.0, range);
        let mut with_histogram = SeriesData::new();
        for i in 0..300 {
            with_histogram.apply(i * 15, 2.0, range);
        }
        with_histogram.apply_histogram(4_600, FloatHistogram::default(), range);
        let last = 299 * 15;
        let ranges = [
            (i64::MIN, i64::MAX),
            (0, last),
            (last - 300, last),
            (last - 300, last + 1_000),
            (3_700, 3_900),
            (100, 2_000),
            (last + 1, last + 100),
            (-100, -1),
            (2_000, 1_000),
        ];
        for (name, d) in [
            ("plain", &plain),
            ("overridden", &overridden),
            ("with a histogram", &with_histogram),
        ] {
            for (mint, maxt) in ranges {
                let want = d.samples(mint, maxt);
                let got = match d.select_part(mint, maxt) {
                    None => Vec::new(),
                    Some(Selected::Samples(samples)) => samples,
                    Some(Selected::Snapshot(copy)) => copy.samples(mint, maxt),
                };
                assert_eq!(got, want, "{name} [{mint}, {maxt}]");
            }
        }
        assert!(matches!(
            plain.select_part(last - 300, last),
            Some(Selected::Samples(s)) if s.len() == 21
        ));
        assert!(matches!(
            overridden.select_part(last - 300, last),
            Some(Selected::Snapshot(_))
        ));
        assert!(matches!(
            plain.select_part(0, last),
            Some(Selected::Snapshot(_))
        ));
    }

    #[test]
    fn a_float_between_histograms_cuts_the_run() {
        let h = |count: f64| FloatHistogram {
            count,
            sum: count,
            zero_count: count,
            ..FloatHistogram::default()
        };
        let runs = |d: &SeriesData| {
            // Called only after the test applied a histogram, which
            // creates the series' histogram data.
            let hist = d.hist().expect("histograms");
            (hist.closed.len(), hist.open.len())
        };
        let range = 1_000_000;
        let mut d = SeriesData::new();
        d.apply(5, 1.0, range);
        d.apply_histogram(10, h(1.0), range);
        d.apply_histogram(20, h(2.0), range);
        assert_eq!(runs(&d), (0, 2), "no float between: one run");
        d.apply(30, 1.0, range);
        d.apply_histogram(40, h(3.0), range);
        assert_eq!(runs(&d), (1, 1), "a float between: a new run");
        d.apply_histogram(50, h(4.0), range);
        assert_eq!(runs(&d), (1, 2));
        // Out of order: an override, not a float after the run.
        d.apply(45, 1.0, range);
        d.apply_histogram(60, h(5.0), range);
        assert_eq!(runs(&d), (1, 3));

        // A truncation that leaves no chunks resets the newest time; the
        // float that came after the last histogram still counts.
        let series = lone_series(d);
        series.apply(70, 1.0, range);
        assert!(series.truncate_before(75), "nothing left");
        let d = series.lock_data();
        assert_eq!(d.max_time(), i64::MIN);
        assert!(d.hist().is_some_and(|h| h.float_after_open));
    }

    /// The newest closed chunk keeps a values checkpoint near its end, an
    /// older one gives it up, and every recent window reads the samples
    /// written, whether it starts before or after the checkpoint.
    #[test]
    fn the_newest_closed_chunk_alone_keeps_a_checkpoint() {
        let mut d = SeriesData::new();
        let written: Vec<(i64, f64)> = (0..300i64)
            .map(|i| (i * 15_000, (i * 7 % 23) as f64 * 0.25 + i as f64))
            .collect();
        for &(t, v) in &written {
            assert!(!d.apply(t, v, i64::MAX));
        }
        let closed = d.closed();
        assert_eq!(closed.len(), 2);
        assert!(!closed[0].checkpointed && closed[1].checkpointed);
        assert_eq!(closed[0].bytes.len(), closed[0].chunk().len());
        assert!(closed[1].parts().1.is_some());
        for end in 1..300usize {
            for len in [1, 20, 45, 130] {
                let start = end.saturating_sub(len);
                let (mint, maxt) = (written[start].0, written[end].0);
                let want: Vec<(i64, u64)> = written[start..=end]
                    .iter()
                    .map(|&(t, v)| (t, v.to_bits()))
                    .collect();
                let got: Vec<(i64, u64)> = d
                    .samples(mint, maxt)
                    .into_iter()
                    .map(|(t, v)| (t, v.to_bits()))
                    .collect();
                assert_eq!(got, want, "{start}..={end}");
            }
        }
    }

    /// A series `{__name__="a"}` holding `data`, outside any head.
    fn lone_series(data: SeriesData) -> MemSeries {
        MemSeries {
            id: 1,
            labels: Labels::from_pairs([("__name__", "a")]),
            state: AtomicU32::new(0),
            owner: 0,
            rank: AtomicU32::new(UNRANKED),
            scope: 0,
            data: UnsafeCell::new(data),
        }
    }

    /// The lock on a series' samples is two bits of the word that also
    /// holds the pending count and the flags. Threads appending under the
    /// lock (long enough that others spin, then park) while others hold
    /// and release the series and set its WAL flag must lose no append and
    /// leave the count where it started, the flags set, the lock free.
    #[test]
    fn series_lock_excludes_and_keeps_the_other_bits() {
        let series = Arc::new(lone_series(SeriesData::new()));
        series.hold(3);
        const WRITERS: i64 = 4;
        const APPENDS: i64 = 2_000;
        let next = Arc::new(AtomicI64::new(0));
        let mut threads = Vec::new();
        for _ in 0..WRITERS {
            let (series, next) = (Arc::clone(&series), Arc::clone(&next));
            threads.push(std::thread::spawn(move || {
                for _ in 0..APPENDS {
                    let mut d = series.lock_data();
                    // Times come from a counter read under the lock, so
                    // they reach the chunk in order only if the lock
                    // excludes the other writers.
                    let t = next.fetch_add(1, Ordering::Relaxed);
                    assert!(!d.apply(t, t as f64, i64::MAX), "{t} came out of order");
                    if t % 97 == 0 {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                }
            }));
        }
        for _ in 0..2 {
            let series = Arc::clone(&series);
            threads.push(std::thread::spawn(move || {
                for _ in 0..20_000 {
                    series.hold_again();
                    series.mark_wal_logged();
                    series.release_pending();
                }
            }));
        }
        for thread in threads {
            assert!(thread.join().is_ok());
        }
        let samples = series.samples(i64::MIN, i64::MAX);
        assert_eq!(samples.len() as i64, WRITERS * APPENDS);
        assert!(
            samples
                .iter()
                .enumerate()
                .all(|(i, &(t, v))| t == i as i64 && v == t as f64)
        );
        let state = series.state.load(Ordering::SeqCst);
        assert_eq!(state & STATE_PENDING, 3);
        assert_eq!(state & (STATE_LOCKED | STATE_PARKED | STATE_REMOVED), 0);
        assert!(series.wal_logged());
        assert!(series.try_lock_data().is_some());
    }

    /// A head series' record, with the reference count [`SeriesArc`]
    /// puts before it, must fit glibc's 96-byte allocation class (88
    /// bytes asked for): a million series pay each byte past it in steps
    /// of 16. The count is where `prefetch` expects it.
    #[test]
    fn series_record_fits_its_allocation_class() {
        assert!(
            SERIES_ARC_COUNT + std::mem::size_of::<MemSeries>() <= 88,
            "MemSeries grew to {} bytes",
            std::mem::size_of::<MemSeries>()
        );
        let series = SeriesArc::new(lone_series(SeriesData::new()));
        let start = SeriesArc::heap_ptr(&series).cast::<u8>();
        let record = SeriesArc::as_ptr(&series).cast::<u8>();
        assert_eq!(record as usize - start as usize, SERIES_ARC_COUNT);
    }

    /// Matchers resolved through postings agree with matching each label
    /// set, and selects stay in label order while series come and go and
    /// ranks go stale.
    #[test]
    fn matching_series_by_postings_and_ranks() {
        use model::MatchOp;
        let head = Head::new(7_200_000);
        let mut all = Vec::new();
        // Inserted out of label order, so id order is not label order.
        for i in (0..600).rev() {
            let status = ["200", "404", "500", "503"][i % 4];
            let id = format!("{i:04}");
            let mut pairs = vec![("__name__", "req"), ("id", id.as_str())];
            if i % 3 != 0 {
                pairs.push(("status", status));
            }
            let labels = Labels::from_pairs(pairs);
            head.get_or_create_pending(&labels, &unlimited()).unwrap();
            all.push(labels);
        }
        all.sort();
        let cases = [
            vec![Matcher::new(MatchOp::RegexMatch, "status", "5..").unwrap()],
            vec![Matcher::new(MatchOp::NotEqual, "status", "200").unwrap()],
            vec![Matcher::new(MatchOp::Equal, "status", "").unwrap()],
            vec![
                Matcher::equal("__name__", "req"),
                Matcher::new(MatchOp::RegexNoMatch, "status", "4.*|200").unwrap(),
            ],
            vec![Matcher::new(MatchOp::RegexMatch, "missing", ".+").unwrap()],
            vec![Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap()],
            // Candidates narrowed by merging the other matchers' postings
            // (subtracting rejected values, intersecting accepted ones), and
            // by checking labels where the lists are too long for a merge.
            vec![
                Matcher::new(MatchOp::RegexMatch, "id", "00..").unwrap(),
                Matcher::new(MatchOp::NotEqual, "status", "500").unwrap(),
            ],
            vec![
                Matcher::new(MatchOp::RegexMatch, "id", "01.*").unwrap(),
                Matcher::new(MatchOp::RegexMatch, "status", "5..").unwrap(),
            ],
            vec![
                Matcher::equal("status", "404"),
                Matcher::new(MatchOp::RegexNoMatch, "id", "0[0-2].*").unwrap(),
            ],
            vec![
                Matcher::equal("__name__", "req"),
                Matcher::equal("status", "503"),
            ],
            vec![
                Matcher::equal("id", "0007"),
                Matcher::new(MatchOp::Equal, "status", "").unwrap(),
            ],
            vec![
                Matcher::new(MatchOp::RegexMatch, "id", "000.").unwrap(),
                Matcher::new(MatchOp::Equal, "status", "").unwrap(),
                Matcher::new(MatchOp::NotEqual, "missing", "x").unwrap(),
            ],
        ];
        for round in 0..2 {
            for matchers in &cases {
                let want: Vec<String> = all
                    .iter()
                    .filter(|l| model::matcher::matches_all(l, matchers))
                    .map(|l| l.to_string())
                    .collect();
                assert_eq!(names(&head.matching_series(matchers)), want, "{matchers:?}");
            }
            // A new series is unranked and leaves the others' ranks as
            // they were: a select of old series alone still sorts by rank
            // (and stays in label order with the new one in it, above).
            let ranked = |head: &Head| {
                let index = read(&head.index);
                index
                    .series
                    .values()
                    .filter(|s| s.rank.load(Ordering::Relaxed) != UNRANKED)
                    .count()
            };
            let before = ranked(&head);
            assert_eq!(before, all.len(), "the select of every series ranked them");
            let id = format!("05{round}");
            let labels = Labels::from_pairs([("__name__", "req"), ("id", id.as_str())]);
            head.get_or_create_pending(&labels, &unlimited()).unwrap();
            all.push(labels);
            all.sort();
            assert_eq!(ranked(&head), before);
        }
    }

    #[test]
    fn sorted_list_helpers() {
        let list = |ids: &[u64]| {
            let mut list = IdList::default();
            ids.iter().for_each(|&id| list.insert(id));
            list
        };
        assert_eq!(
            union_sorted(&[&list(&[5, 9]), &list(&[1, 7])]),
            vec![1, 5, 7, 9]
        );
        assert_eq!(union_sorted(&[]), Vec::<u64>::new());
        assert_eq!(
            filter_sorted(&[1, 3, 5, 7], &[3, 4, 7, 9], true),
            vec![3, 7]
        );
        assert_eq!(
            filter_sorted(&[1, 3, 5, 7], &[3, 4, 7, 9], false),
            vec![1, 5]
        );
        assert_eq!(filter_sorted(&[1, 3], &[], false), vec![1, 3]);
        assert_eq!(filter_sorted(&[1, 3], &[], true), Vec::<u64>::new());
    }

    #[test]
    fn chunks_split_at_block_boundaries() {
        let head = Head::new(1000);
        let (s, _) = head
            .get_or_create_pending(&Labels::from_pairs([("__name__", "a")]), &unlimited())
            .unwrap();
        for t in (0..3000).step_by(100) {
            s.apply(t, t as f64, 1000);
        }
        assert!(!s.truncate_before(1000));
        assert_eq!(s.samples(i64::MIN, i64::MAX).first(), Some(&(1000, 1000.0)));
        assert!(s.truncate_before(3000));
    }
}
