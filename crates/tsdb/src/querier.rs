//! Reading across blocks and the head.
//!
//! A [`DbQuerier`] shares the database's block list and head. `select`
//! takes, under the block list's read lock, `Arc`s to the blocks that
//! overlap its range (so a block deleted by retention or compaction stays
//! readable while its series are read) and a copy of the matching head
//! series' chunks; a head cut adds its block and truncates the head under
//! the write lock, so a select sees the samples it moves once, in one
//! place or the other, even when it reads them after the cut. `select` merges the sorted series
//! lists of every source. When one series has samples in several sources,
//! the newer source wins on equal timestamps: the head over every block,
//! a block with a larger ULID over one with a smaller ULID.
//!
//! Deleted samples never come out: a block's select leaves out chunks its
//! tombstones cover entirely and hands each series its deleted intervals,
//! applied here while decoding (before merging, so a block's tombstones
//! hide only that block's samples), and the head drops deleted samples
//! when the delete is made. A series left without samples is not
//! returned, by `select` or by the label lookups.

use crate::block::{Block, ChunkRef};
use crate::chunkenc::hist::{self, HISTOGRAM_ENCODING};
use crate::chunkenc::{ChunkIter, Encoding};
use crate::downsample::{Column, Run};
use crate::head::{Head, Selected, SeriesArc, SeriesData, merge_override};
use crate::sync::read;
use crate::tiers::{Ranges, TierRead, coverage, subtract};
use crate::tombstones::Intervals;
use model::histogram::FloatHistogram;
use model::storage::{
    Aggregate, HintedSet, Querier, Result, SampleIter, SelectHints, Series, SeriesSet,
    StorageError, StorageErrorKind,
};
use model::{Labels, Matcher};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub(crate) struct DbQuerier {
    /// The database's block list, oldest first (ascending ULID). Read under
    /// its lock together with the head: a head cut adds its block and
    /// truncates the head under the write lock, so a select sees the
    /// samples it moves either in the head or in the new block, never in
    /// neither.
    pub(crate) blocks: Arc<RwLock<Vec<Arc<Block>>>>,
    pub(crate) head: Arc<Head>,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    /// The downsampled tiers, finest first, with their blocks that
    /// overlap the range; empty when tiers are not configured.
    pub(crate) tiers: Vec<TierView>,
}

/// One downsampled tier as a querier sees it.
#[derive(Clone)]
pub(crate) struct TierView {
    pub(crate) resolution_ms: i64,
    pub(crate) blocks: Vec<Arc<Block>>,
}

/// A tier's resolution may be at most the step (of a range query) and the
/// range (of a range selector) divided by this, as Thanos's automatic
/// downsampling divides the step by 5: a window then holds at least five
/// points, enough for `rate` to find two and for window edges to matter
/// little.
pub const RESOLUTION_DIVISOR: i64 = 5;

/// The resolution a hinted select may use: the coarsest tier not above
/// the step and range (each divided by [`RESOLUTION_DIVISOR`]) nor above
/// the caller's maximum, or, when the tier's windows tile every range
/// (its resolution divides `hints.align_ms`, see [`SelectHints::aligned`]), the
/// coarsest such tier not above the range and the step. 0 (raw) for a
/// single instant selector.
pub fn choose_resolution(tiers: &[i64], hints: &SelectHints) -> i64 {
    let mut allowed = i64::MAX;
    if hints.step_ms > 1 {
        allowed = allowed.min(hints.step_ms / RESOLUTION_DIVISOR);
    }
    if hints.range_ms > 0 {
        allowed = allowed.min(hints.range_ms / RESOLUTION_DIVISOR);
    }
    if allowed == i64::MAX {
        return 0;
    }
    let max = hints.max_resolution_ms.unwrap_or(i64::MAX);
    tiers
        .iter()
        .copied()
        .filter(|&r| r <= max && (r <= allowed || hints.aligned(r)))
        .max()
        .unwrap_or(0)
}

fn block_err(e: crate::block::BlockError) -> StorageError {
    StorageError::new(StorageErrorKind::Io, e.to_string())
}

/// One source's view of one series.
enum Part {
    Block {
        block: Arc<Block>,
        chunks: Vec<(i64, i64, ChunkRef)>,
        /// Deleted intervals of the series in this block.
        deleted: Intervals,
    },
    /// Already decoded head samples, floats and histograms: the
    /// newest-sample path, and series whose samples in the range all lie
    /// in their open chunk.
    Head(Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>),
    /// A copy of a head series' chunks, taken at the select, decoded when
    /// the part is merged (possibly on another thread).
    HeadSeries(Box<SeriesData>),
}

/// A series' parts, lowest priority first. One part (most series of most
/// selects: the head alone, or one block) needs no vector of its own, an
/// allocation and a free per series.
enum Parts {
    One(Part),
    Many(Vec<Part>),
}

impl Part {
    fn time_range(&self) -> (i64, i64) {
        match self {
            Part::Block { chunks, .. } => (
                chunks.iter().map(|c| c.0).min().unwrap_or(i64::MAX),
                chunks.iter().map(|c| c.1).max().unwrap_or(i64::MIN),
            ),
            Part::Head(s, h) => (
                s.first()
                    .map(|x| x.0)
                    .unwrap_or(i64::MAX)
                    .min(h.first().map(|x| x.0).unwrap_or(i64::MAX)),
                s.last()
                    .map(|x| x.0)
                    .unwrap_or(i64::MIN)
                    .max(h.last().map(|x| x.0).unwrap_or(i64::MIN)),
            ),
            Part::HeadSeries(s) => s.time_bounds(),
        }
    }
}

impl DbQuerier {
    /// The blocks that overlap the querier's range.
    fn blocks_in_range(&self, all: &[Arc<Block>]) -> Vec<Arc<Block>> {
        all.iter()
            .filter(|b| b.meta().min_time <= self.maxt && b.meta().max_time > self.mint)
            .cloned()
            .collect()
    }

    /// Collects the sorted series list of every source and merges them.
    /// With `latest_only`, head series contribute only their newest sample
    /// in range (enough for [`Querier::select_latest`]).
    fn merged(&self, matchers: &[Matcher], latest_only: bool) -> Result<Vec<(Labels, Parts)>> {
        // The block list is taken and the head series are copied (not
        // referenced) under the block list's lock: a head cut, which holds
        // it for writing, then cannot move samples out of the head into a
        // block this select does not read. Block indexes are read after.
        let (blocks, head_list) = {
            let all = read(&self.blocks);
            let blocks = self.blocks_in_range(&all);
            let matching = self.head.matching_series(matchers);
            let select_one = |s: &SeriesArc| {
                if latest_only {
                    if s.has_histograms() {
                        let (floats, histograms) = latest_of(
                            s.samples(self.mint, self.maxt),
                            s.histograms(self.mint, self.maxt),
                        );
                        if floats.is_empty() && histograms.is_empty() {
                            return None;
                        }
                        return Some((s.labels(), Part::Head(floats, histograms)));
                    }
                    let latest = s.latest(self.mint, self.maxt)?;
                    return Some((s.labels(), Part::Head(vec![latest], Vec::new())));
                }
                // Decoding mostly waits for the merge (a series whose
                // samples lie in its open chunk alone is decoded now); a
                // series whose data lies outside the range is left out.
                let part = match s.select_part(self.mint, self.maxt)? {
                    Selected::Samples(samples) => Part::Head(samples, Vec::new()),
                    Selected::Snapshot(data) => Part::HeadSeries(Box::new(data)),
                };
                Some((s.labels(), part))
            };
            let prefetch = |s: &SeriesArc, near: bool| {
                if near {
                    s.prefetch_select();
                } else {
                    s.prefetch();
                }
            };
            (blocks, select_parts(&matching, select_one, prefetch)?)
        };
        // Sources in priority order, lowest first.
        let mut sources: Vec<Vec<(Labels, Part)>> = Vec::new();
        for b in &blocks {
            let list = b
                .select(matchers, self.mint, self.maxt)
                .map_err(block_err)?;
            sources.push(
                list.into_iter()
                    .map(|s| {
                        let part = Part::Block {
                            block: b.clone(),
                            chunks: s.chunks,
                            deleted: s.deleted,
                        };
                        (s.labels, part)
                    })
                    .collect(),
            );
        }
        sources.push(head_list);
        if sources.len() == 1 {
            // The head alone (no block overlaps the range): already sorted,
            // one part per series.
            let only = sources.pop().unwrap_or_default();
            return Ok(only.into_iter().map(|(l, p)| (l, Parts::One(p))).collect());
        }

        // K-way merge by labels; each source is sorted. Sources are few
        // (blocks overlapping one query range), so a linear scan per step
        // is cheaper than a heap. Each list is reversed so its smallest
        // entry is last and can be popped without moving or cloning.
        for src in sources.iter_mut() {
            src.reverse();
        }
        let mut out = Vec::new();
        loop {
            let mut best: Option<usize> = None;
            for (i, src) in sources.iter().enumerate() {
                if let Some((l, _)) = src.last()
                    && best.is_none_or(|b| sources[b].last().is_none_or(|(bl, _)| l < bl))
                {
                    best = Some(i);
                }
            }
            let Some(best) = best else { break };
            let Some((labels, first)) = sources[best].pop() else {
                break;
            };
            // Lower-priority sources come first in `sources`; keep that
            // order in `parts`.
            let mut parts = Vec::new();
            for (i, src) in sources.iter_mut().enumerate() {
                if i == best {
                    continue;
                }
                if src.last().is_some_and(|(l, _)| *l == labels)
                    && let Some((_, p)) = src.pop()
                {
                    parts.push((i, p));
                }
            }
            if parts.is_empty() {
                out.push((labels, Parts::One(first)));
                continue;
            }
            parts.push((best, first));
            parts.sort_by_key(|(i, _)| *i);
            out.push((
                labels,
                Parts::Many(parts.into_iter().map(|(_, p)| p).collect()),
            ));
        }
        Ok(out)
    }
}

/// How many series ahead of the one it selects [`select_parts`] starts
/// loading a series' record; half that ahead, what the record points to.
const SELECT_AHEAD: usize = 8;

/// `select` of every series, in order. A large select (one that will
/// decode on helper threads too, [`ParallelDecode`]) runs it on as many
/// threads as [`helper_threads`] allows, each on a contiguous share: at a
/// recent window it decodes each series' samples here, a cache miss or
/// more per series for the locks and chunks.
///
/// Each share is taken in order with `prefetch` called ahead of `select`:
/// `prefetch(item, false)` [`SELECT_AHEAD`] items ahead (to load what
/// `prefetch(item, true)` reads), `prefetch(item, true)` half that ahead
/// (to load what `select` reads), so the cache misses of several series
/// overlap instead of following one another.
fn select_parts<T: Sync, U: Send>(
    all: &[T],
    select: impl Fn(&T) -> Option<U> + Sync,
    prefetch: impl Fn(&T, bool) + Sync,
) -> Result<Vec<U>> {
    let (select, prefetch) = (&select, &prefetch);
    let work = move |part: &[T]| {
        let mut out = Vec::with_capacity(part.len());
        for (i, item) in part.iter().enumerate() {
            if let Some(ahead) = part.get(i + SELECT_AHEAD) {
                prefetch(ahead, false);
            }
            if let Some(ahead) = part.get(i + SELECT_AHEAD / 2) {
                prefetch(ahead, true);
            }
            out.extend(select(item));
        }
        out
    };
    if all.len() < PARALLEL_MIN {
        return Ok(work(all));
    }
    let _decoding = Decoding::start();
    let helpers = helper_threads();
    if helpers == 0 {
        return Ok(work(all));
    }
    let share = all.len().div_ceil(helpers + 1);
    std::thread::scope(|scope| {
        let mut shares = all.chunks(share);
        let first = shares.next().unwrap_or_default();
        let spawned: Vec<_> = shares
            .map(|part| {
                let handle = std::thread::Builder::new()
                    .name("osprey-select".into())
                    .spawn_scoped(scope, move || work(part));
                (part, handle.ok())
            })
            .collect();
        let mut out = work(first);
        for (part, handle) in spawned {
            match handle.map(|h| h.join()) {
                Some(Ok(selected)) => out.extend(selected),
                // Not started or panicked: this thread does that share
                // (a panic would come again here, as without helpers).
                _ => out.extend(work(part)),
            }
        }
        Ok(out)
    })
}

/// The newest sample of two lists (each ascending), kept in its list; the
/// other list comes back empty.
fn latest_of(mut floats: Vec<(i64, f64)>, mut histograms: Vec<(i64, FloatHistogram)>) -> Decoded {
    let float_t = floats.last().map(|x| x.0);
    let histogram_t = histograms.last().map(|x| x.0);
    match (float_t, histogram_t) {
        (Some(f), Some(h)) if h >= f => (Vec::new(), histograms.split_off(histograms.len() - 1)),
        (Some(_), _) => (floats.split_off(floats.len() - 1), Vec::new()),
        (None, Some(_)) => (Vec::new(), histograms.split_off(histograms.len() - 1)),
        (None, None) => (Vec::new(), Vec::new()),
    }
}

/// Decodes one block chunk into samples within `[mint, maxt]`: float
/// samples appended to `out`, native histograms to `histograms`.
fn block_chunk_samples(
    block: &Block,
    r: ChunkRef,
    mint: i64,
    maxt: i64,
    out: &mut Vec<(i64, f64)>,
    histograms: &mut Vec<(i64, FloatHistogram)>,
) -> Result<()> {
    let (enc, bytes) = block.chunk(r).map_err(block_err)?;
    if enc == HISTOGRAM_ENCODING {
        let run = hist::decode(bytes).map_err(|e| {
            StorageError::new(
                StorageErrorKind::Io,
                format!("block {}: {e}", block.dir().display()),
            )
        })?;
        histograms.extend(run.into_iter().filter(|(t, _)| (mint..=maxt).contains(t)));
        return Ok(());
    }
    let enc = Encoding::from_u8(enc).ok_or_else(|| {
        StorageError::new(
            StorageErrorKind::Io,
            format!(
                "unknown chunk encoding {enc} in block {}",
                block.dir().display()
            ),
        )
    })?;
    // A Dense chunk decodes in one loop per section, cut to the range
    // after; on any trouble the iterator below decodes it (and reports the
    // error).
    if enc == Encoding::Dense
        && crate::chunkenc::append_dense_range(
            bytes,
            None,
            crate::head::MAX_CHUNK_RESERVE,
            mint,
            maxt,
            out,
        )
        .unwrap_or(false)
    {
        return Ok(());
    }
    let mut it = ChunkIter::new(enc, bytes).map_err(|e| {
        StorageError::new(
            StorageErrorKind::Io,
            format!("block {}: {e}", block.dir().display()),
        )
    })?;
    out.reserve(it.remaining_claimed().min(crate::head::MAX_CHUNK_RESERVE));
    for (t, v) in it.by_ref() {
        if t > maxt {
            break;
        }
        if t >= mint {
            out.push((t, v));
        }
    }
    if let Some(e) = it.err() {
        return Err(StorageError::new(
            StorageErrorKind::Io,
            format!("block {}: {e}", block.dir().display()),
        ));
    }
    Ok(())
}

/// The histograms as a series' iterator; an empty one allocates nothing
/// (most series hold none, and a select builds one per series).
fn histogram_iter(histograms: Vec<(i64, FloatHistogram)>) -> model::storage::HistogramIter {
    if histograms.is_empty() {
        Box::new(std::iter::empty())
    } else {
        Box::new(histograms.into_iter())
    }
}

/// A part's floats and histograms.
type Decoded = (Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>);

/// A part's floats and histograms in `[mint, maxt]`.
fn part_samples(part: Part, mint: i64, maxt: i64) -> Result<Decoded> {
    let mut floats = Vec::new();
    let histograms = part_samples_into(part, mint, maxt, &mut floats)?;
    Ok((floats, histograms))
}

/// Appends a part's floats in `[mint, maxt]` to `out` (ascending among
/// themselves; what `out` held before is left alone) and returns its
/// histograms.
fn part_samples_into(
    part: Part,
    mint: i64,
    maxt: i64,
    out: &mut Vec<(i64, f64)>,
) -> Result<Vec<(i64, FloatHistogram)>> {
    match part {
        Part::Head(s, h) => {
            if out.is_empty() {
                *out = s;
            } else {
                out.extend_from_slice(&s);
            }
            Ok(h)
        }
        Part::HeadSeries(s) => {
            s.samples_into(mint, maxt, out);
            Ok(s.histograms(mint, maxt))
        }
        Part::Block {
            block,
            chunks,
            deleted,
        } => {
            let start = out.len();
            let mut histograms = Vec::new();
            let mut sorted = chunks;
            sorted.sort_by_key(|c| c.0);
            let mut last_max = i64::MIN;
            let mut overlapping = false;
            for (min, max, r) in sorted {
                if min <= last_max {
                    overlapping = true;
                }
                last_max = last_max.max(max);
                block_chunk_samples(&block, r, mint, maxt, out, &mut histograms)?;
            }
            if overlapping || !deleted.is_empty() {
                let mut own = out.split_off(start);
                if overlapping {
                    // Chunks of one series in one block never overlap when
                    // written by osprey; stay correct if they do. (Float and
                    // histogram chunks of one series may interleave in time.)
                    own.sort_by_key(|s| s.0);
                    own.dedup_by_key(|s| s.0);
                    histograms.sort_by_key(|s| s.0);
                    histograms.dedup_by_key(|s| s.0);
                }
                deleted.remove_from(&mut own);
                out.append(&mut own);
            }
            histograms.retain(|(t, _)| !deleted.contains(*t));
            Ok(histograms)
        }
    }
}

/// About how many float samples a part holds in `[mint, maxt]`, to size
/// the series' vector once.
fn part_size_hint(part: &Part, mint: i64, maxt: i64) -> usize {
    match part {
        Part::Head(s, _) => s.len(),
        Part::HeadSeries(s) => s.samples_hint(mint, maxt),
        Part::Block { block, chunks, .. } => chunks
            .iter()
            .map(|&(_, _, r)| block_chunk_len(block, r))
            .sum(),
    }
}

/// How many samples a block chunk holds, from its header: a Dense chunk
/// (what blocks are written in) says so, and holds as many samples as its
/// time range allows, often more than a head chunk's
/// [`crate::head::SAMPLES_PER_CHUNK`], which an estimate by that count
/// missed: the series' vector then grew twice, reallocating (and copying)
/// what it held, on the decoding threads of every large select over a
/// block. The header is read without the CRC check, which decoding does
/// right after; a chunk that cannot say is counted as a head chunk, and no
/// count above [`crate::head::MAX_CHUNK_RESERVE`] is believed.
fn block_chunk_len(block: &Block, r: ChunkRef) -> usize {
    let claimed = match block.chunk_unchecked(r) {
        Ok((enc, bytes)) if enc == Encoding::Dense as u8 => crate::chunkenc::dense_len(bytes).ok(),
        _ => None,
    };
    claimed
        .unwrap_or(crate::head::SAMPLES_PER_CHUNK)
        .min(crate::head::MAX_CHUNK_RESERVE)
}

/// A series' one part, decoded: one source (most series of most
/// selects), nothing to merge.
fn decode_single(part: Part, mint: i64, maxt: i64) -> Result<Decoded> {
    // Decoded head samples are moved in, not copied: no room to size.
    let mut floats = match part {
        Part::Head(..) => Vec::new(),
        _ => Vec::with_capacity(part_size_hint(&part, mint, maxt)),
    };
    let histograms = part_samples_into(part, mint, maxt, &mut floats)?;
    Ok((floats, histograms))
}

/// Merges a series' parts, given lowest priority first: floats and
/// histograms each as [`merge_float_parts`] does; where sources disagree
/// on a timestamp's kind, the histogram is kept.
fn merge_parts(parts: Parts, mint: i64, maxt: i64) -> Result<Decoded> {
    let mut parts = match parts {
        Parts::One(part) => return decode_single(part, mint, maxt),
        Parts::Many(parts) => parts,
    };
    if parts.len() == 1
        && let Some(part) = parts.pop()
    {
        return decode_single(part, mint, maxt);
    }
    let mut parts: Vec<((i64, i64), Part)> =
        parts.into_iter().map(|p| (p.time_range(), p)).collect();
    let disjoint = {
        let mut ranges: Vec<(i64, i64)> = parts.iter().map(|(r, _)| *r).collect();
        ranges.sort();
        ranges.windows(2).all(|w| w[0].1 < w[1].0)
    };
    let n_parts = parts.len();
    let (mut merged_floats, merged_histograms) = if disjoint {
        // Parts that do not overlap in time are decoded one after another,
        // oldest first, into one vector: no vector per part, no copy.
        parts.sort_by_key(|(r, _)| r.0);
        let mut floats = Vec::with_capacity(
            parts
                .iter()
                .map(|(_, p)| part_size_hint(p, mint, maxt))
                .sum(),
        );
        let mut merged_histograms: Vec<(i64, FloatHistogram)> = Vec::new();
        for (_, p) in parts {
            let h = part_samples_into(p, mint, maxt, &mut floats)?;
            if !h.is_empty() {
                merged_histograms = merge_override(merged_histograms, h);
            }
        }
        (floats, merged_histograms)
    } else {
        let mut floats: Vec<Vec<(i64, f64)>> = Vec::with_capacity(n_parts);
        let mut histograms: Vec<Vec<(i64, FloatHistogram)>> = Vec::with_capacity(n_parts);
        for (_, p) in parts {
            let (f, h) = part_samples(p, mint, maxt)?;
            floats.push(f);
            histograms.push(h);
        }
        let mut merged_histograms: Vec<(i64, FloatHistogram)> = Vec::new();
        for h in histograms {
            if !h.is_empty() {
                merged_histograms = merge_override(merged_histograms, h);
            }
        }
        (merge_float_parts(floats), merged_histograms)
    };
    if n_parts > 1 && !merged_histograms.is_empty() && !merged_floats.is_empty() {
        let times: std::collections::HashSet<i64> = merged_histograms.iter().map(|x| x.0).collect();
        merged_floats.retain(|(t, _)| !times.contains(t));
    }
    Ok((merged_floats, merged_histograms))
}

/// Merges the float samples of a series' parts that overlap in time,
/// given lowest priority first: on equal timestamps the later part wins.
fn merge_float_parts(mut decoded: Vec<Vec<(i64, f64)>>) -> Vec<(i64, f64)> {
    if decoded.len() == 1 {
        return decoded.pop().unwrap_or_default();
    }
    let mut acc: Vec<(i64, f64)> = Vec::new();
    for d in decoded {
        acc = merge_override(acc, d);
    }
    acc
}

/// Selects with at least this many series decode on several threads.
const PARALLEL_MIN: usize = 1024;

/// Series a decoding thread claims at a time.
const PARALLEL_CLAIM: usize = 16;

/// How far (in series) the decoding threads may run ahead of the reader:
/// far enough that a reader busy with the series it took rarely waits for
/// the next, near enough to bound the decoded samples held (a few MB at
/// a few hundred samples a series).
const PARALLEL_AHEAD: usize = 1024;

/// The cores this process may use, read once (std reads the affinity
/// mask and cgroup quota files at each call).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The error a select's series gets when the thread decoding it
/// panicked: the select fails rather than answer without the series.
fn decode_panicked() -> StorageError {
    StorageError::new(StorageErrorKind::Io, "series decoding thread panicked")
}

/// How many large selects are decoding in this process now.
static DECODING: AtomicUsize = AtomicUsize::new(0);

/// A large select counted in [`DECODING`] while it lives.
struct Decoding;

impl Decoding {
    fn start() -> Decoding {
        DECODING.fetch_add(1, Ordering::AcqRel);
        Decoding
    }
}

impl Drop for Decoding {
    fn drop(&mut self) {
        DECODING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Threads a large select may start beside its own (counted in
/// [`DECODING`] already): one fewer than the cores, less one for each
/// other large select decoding now. Under concurrent large selects the
/// cores are busy already, and helpers would only add hand-over costs.
fn helper_threads() -> usize {
    let cores = cores();
    let others = DECODING.load(Ordering::Acquire).saturating_sub(1);
    cores.saturating_sub(1 + others)
}

/// A series' labels and the parts its samples come from.
type MergedSeries = (Labels, Parts);

/// One series' place in a [`ParallelDecode`].
enum Slot {
    /// Not claimed yet.
    Pending(MergedSeries),
    /// Claimed and being decoded, or already handed out.
    Empty,
    /// Decoded: the series, or `None` when it has no samples in range.
    Done(Option<Result<Series>>),
}

/// What a parallel decode's reader and its helper threads share.
struct DecodeShared {
    slots: Vec<Mutex<Slot>>,
    /// The first series no thread has claimed; runs of
    /// [`PARALLEL_CLAIM`] series are claimed from it in order.
    cursor: AtomicUsize,
    /// How many series the reader has taken.
    taken: AtomicUsize,
    /// The reader is gone: helpers stop.
    stop: AtomicBool,
    /// The thread reading, woken when a run is decoded.
    reader: Mutex<Option<std::thread::Thread>>,
    mint: i64,
    maxt: i64,
}

impl DecodeShared {
    /// Claims the next run of series: its first index, or `None` when
    /// every series is claimed.
    fn claim(&self) -> Option<usize> {
        if self.cursor.load(Ordering::Acquire) >= self.slots.len() {
            return None;
        }
        let start = self.cursor.fetch_add(PARALLEL_CLAIM, Ordering::AcqRel);
        (start < self.slots.len()).then_some(start)
    }

    /// Decodes the run of series that starts at `start`.
    fn decode_run(&self, start: usize) {
        for slot in self.slots.iter().skip(start).take(PARALLEL_CLAIM) {
            let item = match slot.lock() {
                Ok(mut slot) => std::mem::replace(&mut *slot, Slot::Empty),
                Err(_) => Slot::Empty,
            };
            let Slot::Pending((labels, parts)) = item else {
                continue;
            };
            // A decoder that panicked would leave the reader waiting for
            // the series forever; it gets an error instead.
            let done = std::panic::catch_unwind(AssertUnwindSafe(|| {
                decode_one(labels, parts, self.mint, self.maxt)
            }))
            .unwrap_or_else(|_| Some(Err(decode_panicked())));
            if let Ok(mut slot) = slot.lock() {
                *slot = Slot::Done(done);
            }
        }
        if let Ok(reader) = self.reader.lock()
            && let Some(reader) = reader.as_ref()
        {
            reader.unpark();
        }
    }

    /// A helper thread: decodes runs ahead of the reader until every
    /// series is claimed or the reader is gone.
    fn help(&self) {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let cursor = self.cursor.load(Ordering::Acquire);
            if cursor >= self.slots.len() {
                return;
            }
            if cursor >= self.taken.load(Ordering::Acquire) + PARALLEL_AHEAD {
                // The reader unparks helpers as it takes series.
                std::thread::park();
                continue;
            }
            match self.claim() {
                Some(start) => self.decode_run(start),
                None => return,
            }
        }
    }
}

/// Decodes merged series on helper threads running ahead of the reader,
/// and hands them out in order: a large query's decoding overlaps the
/// work its reader does with the series it took (a range function and an
/// aggregation), where decoding batch by batch left the helpers idle
/// while the reader worked. The reader decodes too when the series it
/// needs next is not claimed yet.
struct ParallelDecode {
    shared: Arc<DecodeShared>,
    helpers: Vec<std::thread::Thread>,
    /// The next series to hand out.
    next: usize,
    /// Counted in [`DECODING`] until every series is handed out.
    decoding: Option<Decoding>,
}

impl ParallelDecode {
    /// Starts the helper threads [`helper_threads`] allows (the reader
    /// alone decodes everything when there are none).
    fn start(merged: Vec<MergedSeries>, mint: i64, maxt: i64) -> ParallelDecode {
        let shared = Arc::new(DecodeShared {
            slots: merged
                .into_iter()
                .map(|m| Mutex::new(Slot::Pending(m)))
                .collect(),
            cursor: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            reader: Mutex::new(None),
            mint,
            maxt,
        });
        let decoding = Decoding::start();
        let mut helpers = Vec::new();
        for _ in 0..helper_threads() {
            let helper = Arc::clone(&shared);
            match std::thread::Builder::new()
                .name("osprey-decode".into())
                .spawn(move || helper.help())
            {
                Ok(handle) => helpers.push(handle.thread().clone()),
                Err(_) => break,
            }
        }
        ParallelDecode {
            shared,
            helpers,
            next: 0,
            decoding: Some(decoding),
        }
    }
}

impl Iterator for ParallelDecode {
    type Item = Result<Series>;
    fn next(&mut self) -> Option<Result<Series>> {
        let shared = &*self.shared;
        loop {
            let i = self.next;
            let Some(slot) = shared.slots.get(i) else {
                self.finish();
                return None;
            };
            let done = match slot.lock() {
                Ok(mut slot) => match std::mem::replace(&mut *slot, Slot::Empty) {
                    Slot::Done(done) => Some(done),
                    other => {
                        *slot = other;
                        None
                    }
                },
                Err(_) => Some(Some(Err(decode_panicked()))),
            };
            if let Some(done) = done {
                self.next = i + 1;
                shared.taken.store(self.next, Ordering::Release);
                // Helpers park a full [`PARALLEL_AHEAD`] ahead and are
                // woken half of it later, not at every run the reader
                // takes (a wake-up per run cost more than the decoding).
                if self.next.is_multiple_of(PARALLEL_CLAIM)
                    && shared.cursor.load(Ordering::Acquire) < self.next + PARALLEL_AHEAD / 2
                {
                    for helper in &self.helpers {
                        helper.unpark();
                    }
                }
                match done {
                    Some(series) => return Some(series),
                    None => continue,
                }
            }
            // Not decoded yet: the reader claims the next run, its own
            // when nobody has, else one further on (rather than wait for
            // the helper decoding this one) while that is not too far
            // ahead.
            if shared.cursor.load(Ordering::Acquire) < i + PARALLEL_AHEAD
                && let Some(start) = shared.claim()
            {
                shared.decode_run(start);
                continue;
            }
            // The helper unparks the reader when done (a wake-up that
            // comes first makes `park` return at once).
            if let Ok(mut reader) = shared.reader.lock() {
                *reader = Some(std::thread::current());
            }
            let ready = slot
                .lock()
                .map_or(true, |slot| matches!(*slot, Slot::Done(_)));
            if !ready {
                std::thread::park();
            }
        }
    }
}

impl ParallelDecode {
    /// Stops the helpers and leaves the count of decoding selects: every
    /// series is handed out, or the reader is gone.
    fn finish(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for helper in &self.helpers {
            helper.unpark();
        }
        self.decoding = None;
    }
}

impl Drop for ParallelDecode {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One merged series, or `None` when it has no samples in range.
fn decode_one(labels: Labels, parts: Parts, mint: i64, maxt: i64) -> Option<Result<Series>> {
    match merge_parts(parts, mint, maxt) {
        Ok((samples, histograms)) if samples.is_empty() && histograms.is_empty() => None,
        Ok((samples, histograms)) => Some(Ok(Series {
            labels,
            samples: SampleIter::from_vec(samples),
            histograms: histogram_iter(histograms),
        })),
        Err(e) => Some(Err(e)),
    }
}

impl DbQuerier {
    /// The raw data (blocks and head) between `mint` and `maxt`.
    fn raw_part(&self, mint: i64, maxt: i64) -> DbQuerier {
        DbQuerier {
            blocks: self.blocks.clone(),
            head: self.head.clone(),
            mint,
            maxt,
            tiers: Vec::new(),
        }
    }

    /// Which source answers which times: (source, its ranges). Source
    /// `None` is raw (blocks and head), `Some(i)` tier `i`. The chosen tier
    /// comes first; finer sources fill what it does not cover, closest
    /// resolution first and raw last; coarser tiers then fill what is left
    /// (data that only they still keep).
    fn assign(&self, chosen: usize) -> Vec<(Option<usize>, Ranges)> {
        let (start, end) = (self.mint, self.maxt.saturating_add(1));
        let mut order: Vec<Option<usize>> = vec![Some(chosen)];
        order.extend((0..chosen).rev().map(Some));
        order.push(None);
        order.extend((chosen + 1..self.tiers.len()).map(Some));
        let mut taken: Ranges = Vec::new();
        let mut out = Vec::new();
        for source in order {
            let covered = match source {
                Some(i) => coverage(
                    self.tiers[i]
                        .blocks
                        .iter()
                        .map(|b| (b.meta().min_time, b.meta().max_time)),
                ),
                None => {
                    let head_min = self.head.min_time();
                    coverage(
                        read(&self.blocks)
                            .iter()
                            .map(|b| (b.meta().min_time, b.meta().max_time))
                            .chain((head_min != i64::MAX).then_some((head_min, end))),
                    )
                }
            };
            let mut mine: Ranges = Vec::new();
            for &(a, b) in &covered {
                let (a, b) = (a.max(start), b.min(end));
                if a < b {
                    mine.extend(subtract(a, b, &taken));
                }
            }
            if !mine.is_empty() {
                taken = coverage(taken.iter().copied().chain(mine.iter().copied()));
                out.push((source, mine));
            }
        }
        out
    }

    /// Each matching series as one run at `resolution`, stitched from the
    /// sources [`DbQuerier::assign`] gives each time range.
    fn stitched(
        &self,
        matchers: &[Matcher],
        chosen: usize,
        resolution: i64,
        aggregate: Aggregate,
        exact: bool,
    ) -> Result<BTreeMap<Labels, Vec<Piece>>> {
        let mut series: BTreeMap<Labels, Vec<Piece>> = BTreeMap::new();
        // Series whose tier points do not keep the aggregate, by the span
        // of the block that has them: read from raw data instead (where
        // raw still holds it; see docs/format/downsample.md).
        let mut not_kept: BTreeMap<(i64, i64), std::collections::BTreeSet<Labels>> =
            BTreeMap::new();
        for (source, ranges) in self.assign(chosen) {
            for (a, b) in ranges {
                let (mint, maxt) = (a, b - 1);
                match source {
                    None => {
                        for s in self.raw_part(mint, maxt).select(matchers)? {
                            let s = s?;
                            let samples: Vec<(i64, f64)> = s.samples.collect();
                            let histograms: Vec<(i64, FloatHistogram)> = s.histograms.collect();
                            let column = Run::from_samples(&samples, resolution)
                                .and_then(|run| Column::from_run(&run, aggregate));
                            if column.is_none() && histograms.is_empty() {
                                continue;
                            }
                            let pieces = series.entry(s.labels).or_default();
                            // Tiers keep no histograms: a series' raw ones
                            // are handed out as they are.
                            if !histograms.is_empty() {
                                pieces.push(Piece::Histograms(histograms));
                            }
                            if let Some(column) = column {
                                pieces.push(Piece::Column(column));
                            }
                        }
                    }
                    Some(i) => {
                        for block in &self.tiers[i].blocks {
                            let m = block.meta();
                            if m.min_time > maxt || m.max_time <= mint {
                                continue;
                            }
                            let own = m.downsample.map(|d| d.resolution) == Some(resolution);
                            for s in block.select(matchers, mint, maxt).map_err(block_err)? {
                                // At the block's own resolution the column
                                // is decoded when the series is read (see
                                // `Piece::Tier`); whether the chunks keep
                                // the aggregate is in their headers.
                                let read = if own {
                                    match crate::tiers::series_keeps(block, &s, aggregate, exact)
                                        .map_err(block_err)?
                                    {
                                        true => None,
                                        false => Some(TierRead::NotKept),
                                    }
                                } else {
                                    Some(
                                        crate::tiers::series_column(
                                            block, &s, mint, maxt, resolution, aggregate, exact,
                                        )
                                        .map_err(block_err)?,
                                    )
                                };
                                match read {
                                    None => {
                                        let labels = s.labels.clone();
                                        series.entry(labels).or_default().push(Piece::Tier {
                                            block: Arc::clone(block),
                                            chunks: s,
                                            mint,
                                            maxt,
                                        });
                                    }
                                    Some(TierRead::Column(column)) => series
                                        .entry(s.labels)
                                        .or_default()
                                        .push(Piece::Column(column)),
                                    Some(TierRead::NotKept) => {
                                        let span =
                                            (m.min_time.max(mint), (m.max_time - 1).min(maxt));
                                        not_kept.entry(span).or_default().insert(s.labels);
                                    }
                                    Some(TierRead::Nothing) => {}
                                }
                            }
                        }
                    }
                }
            }
        }
        for ((mint, maxt), wanted) in not_kept {
            for s in self.raw_part(mint, maxt).select(matchers)? {
                let s = s?;
                if !wanted.contains(&s.labels) {
                    continue;
                }
                let samples: Vec<(i64, f64)> = s.samples.collect();
                if let Some(column) = Run::from_samples(&samples, resolution)
                    .and_then(|run| Column::from_run(&run, aggregate))
                {
                    series
                        .entry(s.labels)
                        .or_default()
                        .push(Piece::Column(column));
                }
            }
        }
        Ok(series)
    }
}

/// Where one stretch of a stitched series comes from.
enum Piece {
    /// Already read: raw samples made into windows, or a coarser column
    /// made from a finer tier's.
    Column(Column),
    /// A tier block's chunks at the resolution asked for, decoded only
    /// when the series is read: a select hands out series one by one, so
    /// one series' columns are freed before the next one's are decoded,
    /// and a year of window points is never all in memory at once (the
    /// allocator then reuses what it has instead of asking the kernel for
    /// fresh pages each time).
    Tier {
        block: Arc<Block>,
        chunks: crate::block::SeriesChunks,
        mint: i64,
        maxt: i64,
    },
    /// Raw histogram samples, which no tier keeps: handed out unchanged.
    Histograms(Vec<(i64, FloatHistogram)>),
}

/// A series' columns and raw histograms, as [`read_pieces`] gives them.
type ReadPieces = (Vec<Column>, Vec<(i64, FloatHistogram)>);

/// The columns of a series' pieces, each decoded now if it was not yet,
/// and its raw histograms in time order.
fn read_pieces(
    pieces: Vec<Piece>,
    resolution: i64,
    aggregate: Aggregate,
    exact: bool,
) -> Result<ReadPieces> {
    let mut columns = Vec::with_capacity(pieces.len());
    let mut histograms = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Column(column) => columns.push(column),
            Piece::Histograms(h) => histograms.extend(h),
            Piece::Tier {
                block,
                chunks,
                mint,
                maxt,
            } => match crate::tiers::series_column(
                &block, &chunks, mint, maxt, resolution, aggregate, exact,
            )
            .map_err(block_err)?
            {
                TierRead::Column(column) => columns.push(column),
                TierRead::Nothing => {}
                // The headers said the chunks keep it.
                TierRead::NotKept => {
                    return Err(StorageError::new(
                        StorageErrorKind::Io,
                        format!(
                            "tier block {}: chunk headers and contents disagree on the aggregates kept",
                            block.dir().display()
                        ),
                    ));
                }
            },
        }
    }
    histograms.sort_by_key(|h| h.0);
    Ok((columns, histograms))
}

/// The samples of a stitched series for one aggregate: each column's own
/// samples as one run of the answer, with the counter offsets shifted as
/// joining the columns would (`Column::append`), but without copying them
/// into one vector (for a year of hourly points that copy and its
/// allocation were a tenth of a tiered query's time). `None` when no
/// column has a point.
fn aggregate_samples(columns: Vec<Column>, aggregate: Aggregate) -> Option<SampleIter> {
    let mut columns = columns;
    columns.retain(|c| !c.pairs.is_empty());
    if columns.is_empty() {
        return None;
    }
    columns.sort_by_key(|c| c.pairs[0].0);
    let mut parts = Vec::with_capacity(columns.len());
    let mut before: Option<(f64, f64)> = None;
    for mut c in columns {
        if let Some(end) = before {
            c.follow(end);
        }
        let flag_before = before.map_or(0.0, |(_, offset)| offset);
        before = c.end();
        parts.push(c.into_samples_after(aggregate, flag_before));
    }
    Some(SampleIter::from_runs(parts))
}

impl Querier for DbQuerier {
    fn select_hinted(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<HintedSet> {
        model::storage::check_selectable(matchers)?;
        let resolutions: Vec<i64> = self.tiers.iter().map(|t| t.resolution_ms).collect();
        let resolution = choose_resolution(&resolutions, hints);
        let chosen = resolutions.iter().position(|&r| r == resolution);
        let Some(chosen) = chosen.filter(|_| resolution > 0) else {
            return Ok(HintedSet {
                resolution_ms: 0,
                series: self.select(matchers)?,
            });
        };
        let aggregate = hints.aggregate;
        // A plain selector reading a tier coarser than the step allows
        // (only because the windows end at the steps) takes each step's
        // last sample from it: an older gauge's window mean would stand
        // for a whole step there, so such series read raw data instead.
        let exact = aggregate == Aggregate::Last
            && hints.range_ms == 0
            && resolution > hints.step_ms / RESOLUTION_DIVISOR;
        // Aligned windows: read from the start of the first range's first
        // window (one millisecond before `mint`), and for a rate or resets
        // one window more, for the last point before the range.
        let series = if hints.aligned(resolution) {
            let reach = hints.aligned_reach(resolution);
            let wider = DbQuerier {
                blocks: self.blocks.clone(),
                head: self.head.clone(),
                mint: self.mint.saturating_sub(reach),
                maxt: self.maxt,
                tiers: self.tiers.clone(),
            };
            wider.stitched(matchers, chosen, resolution, aggregate, exact)?
        } else {
            self.stitched(matchers, chosen, resolution, aggregate, exact)?
        };
        let iter = series.into_iter().filter_map(move |(labels, pieces)| {
            match read_pieces(pieces, resolution, aggregate, exact) {
                Ok((columns, histograms)) => {
                    let samples = aggregate_samples(columns, aggregate);
                    if samples.is_none() && histograms.is_empty() {
                        return None;
                    }
                    Some(Ok(Series {
                        labels,
                        samples: samples.unwrap_or_else(SampleIter::empty),
                        histograms: histogram_iter(histograms),
                    }))
                }
                Err(e) => Some(Err(e)),
            }
        });
        Ok(HintedSet {
            resolution_ms: resolution,
            series: Box::new(iter),
        })
    }

    fn select(&self, matchers: &[Matcher]) -> Result<SeriesSet> {
        model::storage::check_selectable(matchers)?;
        let merged = self.merged(matchers, false)?;
        let (mint, maxt) = (self.mint, self.maxt);
        if cores() > 1 && merged.len() >= PARALLEL_MIN {
            return Ok(Box::new(ParallelDecode::start(merged, mint, maxt)));
        }
        let iter = merged
            .into_iter()
            .filter_map(move |(labels, parts)| decode_one(labels, parts, mint, maxt));
        Ok(Box::new(iter))
    }

    fn select_latest(&self, matchers: &[Matcher]) -> Result<SeriesSet> {
        model::storage::check_selectable(matchers)?;
        let merged = self.merged(matchers, true)?;
        let (mint, maxt) = (self.mint, self.maxt);
        let iter = merged.into_iter().filter_map(move |(labels, parts)| {
            match merge_parts(parts, mint, maxt) {
                Ok((samples, histograms)) => {
                    let (samples, histograms) = latest_of(samples, histograms);
                    (!samples.is_empty() || !histograms.is_empty()).then(|| {
                        Ok(Series {
                            labels,
                            samples: SampleIter::from_vec(samples),
                            histograms: histogram_iter(histograms),
                        })
                    })
                }
                Err(e) => Some(Err(e)),
            }
        });
        Ok(Box::new(iter))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut names = std::collections::BTreeSet::new();
        if matchers.is_empty() {
            let all = read(&self.blocks);
            for b in &self.blocks_in_range(&all) {
                names.extend(b.label_names(matchers).map_err(block_err)?);
            }
            names.extend(self.head.label_names(matchers, self.mint, self.maxt));
        } else {
            for (labels, _) in self.merged(matchers, false)? {
                names.extend(labels.iter().map(|l| l.name.to_string()));
            }
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut values = std::collections::BTreeSet::new();
        if matchers.is_empty() {
            let all = read(&self.blocks);
            for b in &self.blocks_in_range(&all) {
                values.extend(b.label_values(name, matchers).map_err(block_err)?);
            }
            values.extend(self.head.label_values(name, matchers, self.mint, self.maxt));
        } else {
            for (labels, _) in self.merged(matchers, false)? {
                if let Some(v) = labels.get(name) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::NewBlock;

    /// A block part is sized from its chunks' headers: a Dense chunk holds
    /// as many samples as its time range allows (here 300, more than a
    /// head chunk's 120), and the series' vector is allocated once for
    /// them, not grown while decoding.
    #[test]
    fn block_part_is_sized_from_its_chunk_headers() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Labels::from_pairs([("__name__", "x"), ("job", "a")]);
        let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 15_000, i as f64)).collect();
        let new = NewBlock {
            min_time: 0,
            max_time: 300 * 15_000,
            level: 1,
            sources: Vec::new(),
            parents: Vec::new(),
        };
        let meta = crate::compact::write_block(dir.path(), new, [(labels, samples)].into_iter())
            .unwrap()
            .unwrap();
        let block = Arc::new(Block::open(&dir.path().join(&meta.ulid)).unwrap());
        let mut selected = block.select(&[], 0, i64::MAX).unwrap();
        let series = selected.pop().unwrap();
        let part = Part::Block {
            block: Arc::clone(&block),
            chunks: series.chunks,
            deleted: series.deleted,
        };
        assert_eq!(part_size_hint(&part, 0, i64::MAX), 300);
        let (floats, _) = decode_single(part, 0, i64::MAX).unwrap();
        assert_eq!(floats.len(), 300);
        assert_eq!(floats.capacity(), 300, "decoding grew the vector");
    }
}
