//! Writing blocks from samples, and planning and running compactions.
//!
//! Every block osprey writes (a head cut, a compaction, an offline import)
//! goes through [`write_block`], which encodes each series' samples as
//! [`Encoding::Dense`] chunks.
//!
//! Compaction planning, in order:
//! 1. Blocks whose time ranges overlap (backfill, out-of-order cuts) are
//!    merged into one; the newer block wins on equal timestamps.
//! 2. Level compaction: for each range in [`compaction_ranges`] above the
//!    base, blocks that fall inside one aligned window of that range are
//!    merged once the window is complete (a newer block starts after it).
//!
//! Merging applies each input block's tombstones to that block's samples,
//! so deleted samples are not written again, and a merge whose inputs hold
//! nothing but deleted samples writes no block. [`rewrite_block`] does the
//! same for one block alone (`clean_tombstones`, and the blocks that
//! [`needs_rewrite`] picks at maintenance).

use crate::block::{Block, BlockError, BlockMeta, BlockWriter, ChunkMeta, NewBlock};
use crate::chunkenc::{Encoding, encode_dense, hist};
use crate::head::merge_override;
use model::Labels;
use model::histogram::FloatHistogram;
use std::path::Path;
use std::sync::Arc;

/// Samples per on-disk chunk. Dense chunks compress better the longer they
/// are; this keeps a chunk's decode small enough (about 10 µs) that short
/// queries over long blocks stay cheap. At a 15 s interval, 2048 samples
/// are about 8.5 hours.
pub const DENSE_CHUNK_SAMPLES: usize = 2048;

/// A block is rewritten without its deleted samples once its tombstones
/// name more than this share of its series: Prometheus's threshold, so a
/// large delete frees its space at the next maintenance, while a few
/// deleted series wait for compaction or `clean_tombstones` rather than
/// each costing a rewrite of the whole block.
pub const TOMBSTONE_REWRITE_FRACTION: f64 = 0.05;

/// Whether maintenance should rewrite `block` to drop its deleted samples
/// (see [`TOMBSTONE_REWRITE_FRACTION`]).
pub(crate) fn needs_rewrite(block: &Block) -> bool {
    let tombstoned = block.tombstones().num_series();
    tombstoned > 0
        && tombstoned as f64
            > TOMBSTONE_REWRITE_FRACTION * f64::from(block.index().num_series().max(1))
}

/// The compaction ranges: the base block range, then each three times the
/// previous, up to `max_range` (Prometheus's scheme: 2h, 6h, 18h, 54h, ...).
pub fn compaction_ranges(block_range: i64, max_range: i64) -> Vec<i64> {
    let mut ranges = vec![block_range];
    let mut r = block_range;
    while r.saturating_mul(3) <= max_range {
        r *= 3;
        ranges.push(r);
    }
    ranges
}

/// Encodes one series' samples into chunks.
pub(crate) fn encode_chunks(samples: &[(i64, f64)]) -> Vec<ChunkMeta> {
    samples
        .chunks(DENSE_CHUNK_SAMPLES)
        .map(|part| {
            let mut data = Vec::new();
            encode_dense(part, &mut data);
            ChunkMeta {
                min_time: part[0].0,
                max_time: part[part.len() - 1].0,
                encoding: Encoding::Dense as u8,
                data,
            }
        })
        .collect()
}

/// Encodes one series' native histograms into chunks: one per run of
/// [`hist::split_runs`], at most [`HISTOGRAM_CHUNK_SAMPLES`] each. `floats`
/// are the series' float samples: a histogram after one starts a chunk.
/// Each chunk's header keeps the counter-reset hint of its first sample
/// ([`hist::first_hint`]); the block's first chunk keeps the hint the
/// sample was read back with (its chunk header in the head or an older
/// block, or "not a reset" inside a chunk), as Prometheus's compaction
/// keeps chunk headers.
pub(crate) fn encode_histogram_chunks(
    histograms: &[(i64, FloatHistogram)],
    floats: &[(i64, f64)],
) -> Result<Vec<ChunkMeta>, BlockError> {
    let float_times: Vec<i64> = floats.iter().map(|(t, _)| *t).collect();
    let mut out = Vec::new();
    for run in hist::split_runs(histograms, HISTOGRAM_CHUNK_SAMPLES, &float_times) {
        let part = &histograms[run.clone()];
        let previous = run
            .start
            .checked_sub(1)
            .map(|i| &histograms[i])
            .filter(|(t, _)| !hist::float_between(&float_times, *t, part[0].0))
            .map(|(_, h)| h);
        let first_of_block = run.start == 0 && float_times.first().is_none_or(|&t| t >= part[0].0);
        let hint = hist::first_hint(previous, &part[0].1, first_of_block);
        let mut data = Vec::new();
        hist::encode(part, hint, false, &mut data)
            .map_err(|e| BlockError::invalid_input(format!("encoding a histogram chunk: {e}")))?;
        out.push(ChunkMeta {
            min_time: part[0].0,
            max_time: part[part.len() - 1].0,
            encoding: hist::HISTOGRAM_ENCODING,
            data,
        });
    }
    Ok(out)
}

/// Histogram samples per on-disk chunk: as long as float chunks, since a
/// bucket column costs its first value once per chunk.
pub const HISTOGRAM_CHUNK_SAMPLES: usize = DENSE_CHUNK_SAMPLES;

/// One series to write: labels, float samples and native histogram
/// samples, each ascending, no timestamp in both.
pub type SeriesSamples = (Labels, Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>);

/// Writes a block from series given sorted by labels with ascending samples.
/// Returns `None` (and writes nothing) when no series has a sample.
pub fn write_block(
    data_dir: &Path,
    new: NewBlock,
    series: impl Iterator<Item = (Labels, Vec<(i64, f64)>)>,
) -> Result<Option<BlockMeta>, BlockError> {
    write_block_with_histograms(
        data_dir,
        new,
        series.map(|(labels, samples)| (labels, samples, Vec::new())),
    )
}

/// [`write_block`] for series that may hold native histograms too.
pub fn write_block_with_histograms(
    data_dir: &Path,
    new: NewBlock,
    series: impl Iterator<Item = SeriesSamples>,
) -> Result<Option<BlockMeta>, BlockError> {
    let mut writer: Option<BlockWriter> = None;
    let mut new = Some(new);
    for (labels, samples, histograms) in series {
        if samples.is_empty() && histograms.is_empty() {
            continue;
        }
        if writer.is_none()
            && let Some(n) = new.take()
        {
            writer = Some(BlockWriter::create(data_dir, n)?);
        }
        if let Some(w) = writer.as_mut() {
            let mut chunks = encode_chunks(&samples);
            if !histograms.is_empty() {
                chunks.extend(encode_histogram_chunks(&histograms, &samples)?);
                chunks.sort_by_key(|c| c.min_time);
            }
            w.add_series(&labels, &chunks, (samples.len() + histograms.len()) as u64)?;
        }
    }
    match writer {
        Some(w) => w.finish().map(Some),
        None => Ok(None),
    }
}

/// The indices of the block list in time order.
fn time_order(metas: &[&BlockMeta]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..metas.len()).collect();
    order.sort_by_key(|&i| (metas[i].min_time, metas[i].max_time));
    order
}

/// The first group of blocks whose time ranges overlap, if any: indices
/// into the block list.
pub(crate) fn plan_overlaps(metas: &[&BlockMeta]) -> Option<Vec<usize>> {
    let mut group: Vec<usize> = Vec::new();
    let mut group_max = i64::MIN;
    for i in time_order(metas) {
        let m = metas[i];
        if !group.is_empty() && m.min_time < group_max {
            group.push(i);
            group_max = group_max.max(m.max_time);
        } else {
            if group.len() > 1 {
                return Some(group);
            }
            group = vec![i];
            group_max = m.max_time;
        }
    }
    (group.len() > 1).then_some(group)
}

/// What to compact next: indices into the block list (sorted by min time).
pub(crate) fn plan(metas: &[&BlockMeta], ranges: &[i64]) -> Option<Vec<usize>> {
    // 1. Overlapping blocks.
    if let Some(group) = plan_overlaps(metas) {
        return Some(group);
    }
    let order = time_order(metas);

    // 2. Level compaction, smallest range first.
    let newest_max = metas.iter().map(|m| m.max_time).max()?;
    for &r in ranges.iter().skip(1) {
        let mut windows: std::collections::BTreeMap<i64, Vec<usize>> =
            std::collections::BTreeMap::new();
        for &i in &order {
            let m = metas[i];
            let start = m.min_time.div_euclid(r) * r;
            // Only blocks that fit inside one window of this range.
            if m.max_time <= start + r {
                windows.entry(start).or_default().push(i);
            }
        }
        for (start, members) in windows {
            let complete = newest_max > start + r || {
                let span_min = members
                    .iter()
                    .map(|&i| metas[i].min_time)
                    .min()
                    .unwrap_or(start);
                let span_max = members
                    .iter()
                    .map(|&i| metas[i].max_time)
                    .max()
                    .unwrap_or(start);
                span_min <= start && span_max >= start + r
            };
            if members.len() > 1 && complete {
                return Some(members);
            }
        }
    }
    None
}

/// Writes `block` again without its deleted samples, as a new block with
/// the same time range, compaction level and sources (its parent is the old
/// block). Returns the new block's meta, or `None` when every sample of it
/// was deleted. The caller replaces the old block with it; the new ULID
/// must not change which block wins a timestamp, so the block must not
/// overlap another.
pub(crate) fn rewrite_block(
    data_dir: &Path,
    block: &Arc<Block>,
) -> Result<Option<BlockMeta>, BlockError> {
    let meta = block.meta();
    let new = NewBlock {
        min_time: meta.min_time,
        max_time: meta.max_time,
        level: meta.compaction.level,
        // The rewritten block keeps its sources' names (its own ULID when
        // it was cut from the head), so tier blocks built from it still
        // know it and are not rebuilt as if it were backfilled.
        sources: crate::block::sources_of(meta),
        parents: vec![meta.ulid.clone()],
    };
    write_merged(data_dir, std::slice::from_ref(block), new)
}

/// Merges blocks into one new block. Returns its meta, or `None` if the
/// inputs held no samples that are not deleted.
pub(crate) fn merge_blocks(
    data_dir: &Path,
    blocks: &[Arc<Block>],
) -> Result<Option<BlockMeta>, BlockError> {
    let min_time = blocks.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let max_time = blocks.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let level = blocks
        .iter()
        .map(|b| b.meta().compaction.level)
        .max()
        .unwrap_or(0)
        + 1;
    let mut sources: Vec<String> = blocks
        .iter()
        .flat_map(|b| crate::block::sources_of(b.meta()))
        .collect();
    sources.sort();
    sources.dedup();
    let mut parents: Vec<String> = blocks.iter().map(|b| b.meta().ulid.clone()).collect();
    parents.sort();
    let new = NewBlock {
        min_time,
        max_time,
        level,
        sources,
        parents,
    };
    write_merged(data_dir, blocks, new)
}

/// Writes the samples of `blocks` that are not deleted as the block `new`;
/// a block with a larger ULID wins on equal timestamps.
fn write_merged(
    data_dir: &Path,
    blocks: &[Arc<Block>],
    new: NewBlock,
) -> Result<Option<BlockMeta>, BlockError> {
    // Priority: ascending ULID, so later (newer) blocks override.
    let mut blocks: Vec<Arc<Block>> = blocks.to_vec();
    blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
    let mut lists = Vec::with_capacity(blocks.len());
    for b in &blocks {
        lists.push(b.select(&[], i64::MIN, i64::MAX)?);
    }
    let mut iters: Vec<_> = lists
        .into_iter()
        .map(|l| l.into_iter().peekable())
        .collect();
    let mut error: Option<BlockError> = None;
    let series = std::iter::from_fn(|| {
        if error.is_some() {
            return None;
        }
        let mut smallest: Option<Labels> = None;
        for it in iters.iter_mut() {
            if let Some(s) = it.peek()
                && smallest.as_ref().is_none_or(|x| s.labels < *x)
            {
                smallest = Some(s.labels.clone());
            }
        }
        let labels = smallest?;
        let mut acc: Vec<(i64, f64)> = Vec::new();
        let mut acc_histograms: Vec<(i64, FloatHistogram)> = Vec::new();
        for (bi, it) in iters.iter_mut().enumerate() {
            if it.peek().is_some_and(|s| s.labels == labels)
                && let Some(s) = it.next()
            {
                let mut samples = Vec::new();
                let mut histograms = Vec::new();
                for (_, _, r) in s.chunks {
                    let decoded = blocks[bi]
                        .chunk_samples(r)
                        .and_then(|f| Ok((f, blocks[bi].chunk_histograms(r)?)));
                    match decoded {
                        Ok((mut part, mut part_histograms)) => {
                            samples.append(&mut part);
                            histograms.append(&mut part_histograms);
                        }
                        Err(e) => {
                            error = Some(e);
                            return None;
                        }
                    }
                }
                samples.sort_by_key(|x| x.0);
                s.deleted.remove_from(&mut samples);
                histograms.sort_by_key(|x| x.0);
                histograms.retain(|(t, _)| !s.deleted.contains(*t));
                acc = merge_override(acc, samples);
                acc_histograms = merge_override(acc_histograms, histograms);
            }
        }
        if !acc_histograms.is_empty() && !acc.is_empty() {
            // Where blocks disagree on a timestamp's kind, the histogram
            // stays (as the querier reads them).
            let times: std::collections::HashSet<i64> =
                acc_histograms.iter().map(|x| x.0).collect();
            acc.retain(|(t, _)| !times.contains(t));
        }
        Some((labels, acc, acc_histograms))
    });
    let result = write_block_with_histograms(data_dir, new, series);
    if let Some(e) = error {
        return Err(e);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockCompaction, BlockStats};

    fn meta(min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            ulid: format!("{min:020}"),
            min_time: min,
            max_time: max,
            stats: BlockStats::default(),
            compaction: BlockCompaction::default(),
            version: 1,
            downsample: None,
        }
    }

    #[test]
    fn ranges_grow_by_three() {
        assert_eq!(compaction_ranges(2, 60), vec![2, 6, 18, 54]);
    }

    #[test]
    fn plans_overlap_first_then_levels() {
        let a = meta(0, 10);
        let b = meta(5, 20);
        let c = meta(20, 30);
        assert_eq!(plan(&[&a, &b, &c], &[10, 30]), Some(vec![0, 1]));

        let blocks = [meta(0, 10), meta(10, 20), meta(20, 30), meta(30, 40)];
        let refs: Vec<&BlockMeta> = blocks.iter().collect();
        // Window [0,30) is complete because a block starts at 30.
        assert_eq!(plan(&refs, &[10, 30]), Some(vec![0, 1, 2]));
        // Only the newest window, incomplete: nothing to do.
        let refs2: Vec<&BlockMeta> = blocks[..2].iter().collect();
        assert_eq!(plan(&refs2, &[10, 30]), None);
    }
}
