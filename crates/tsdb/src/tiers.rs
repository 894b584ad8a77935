//! Resolution tiers: writing downsampled blocks, merging them, and the
//! time ranges each tier covers.
//!
//! Tier `i` (resolution `R_i`) is built from tier `i - 1` (raw for the
//! first): every part of a source block's time range that no tier-`i` block
//! covers yet is downsampled into a new tier block with exactly that range
//! ([`downsample_block`]). Tier blocks therefore never overlap, and level
//! compaction ([`crate::compact::plan`]) merges them like raw blocks
//! ([`merge_tier_blocks`]). The format is in `docs/format/downsample.md`.

use crate::block::{Block, BlockError, BlockMeta, BlockWriter, NewBlock};
use crate::downsample::{
    AGGREGATE_ENCODING, Column, Run, aggregate_set, decode_chunk, decode_chunk_column, encode_run,
};
use model::Labels;
use model::storage::Aggregate;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One configured tier (`storage.tiers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierSpec {
    /// Window length in ms; 0 for raw.
    pub resolution_ms: i64,
    pub retention_ms: i64,
}

/// The directory of a downsampled tier.
pub fn tier_dir(data_dir: &Path, resolution_ms: i64) -> PathBuf {
    data_dir.join("tiers").join(resolution_ms.to_string())
}

/// The complete tier blocks on disk under `data_dir/tiers/`, as paths
/// relative to `data_dir` (`tiers/<resolution ms>/<ULID>`), sorted:
/// every tier directory, configured or not; `.tmp` directories and other
/// names left out.
pub fn tier_block_paths(data_dir: &Path) -> std::io::Result<Vec<String>> {
    let root = data_dir.join("tiers");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for tier in entries {
        let tier = tier?;
        let Some(resolution) = tier.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_resolution_name(&resolution) || !tier.file_type()?.is_dir() {
            continue;
        }
        for block in std::fs::read_dir(tier.path())? {
            let block = block?;
            if let Some(name) = block.file_name().to_str()
                && crate::block::is_ulid(name)
                && block.file_type()?.is_dir()
            {
                out.push(format!("tiers/{resolution}/{name}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Tier blocks that miss data their source blocks now hold: a backfill
/// (`osprey import`) into a range the tier covers adds a source block, and
/// compaction merges it with the block the tier was built from, so a
/// source block lying wholly inside the tier's range names a level-1
/// source that no tier block over its range names. (A source block that
/// reaches past the tier's range is new data, not a backfill: compaction
/// merging a block the tier was built from with a newer one is normal.)
/// Only tier blocks whose whole range the sources still cover are
/// returned (they can be built again); the others are left as they are.
pub(crate) fn stale_tier_blocks(sources: &[Arc<Block>], tier: &[Arc<Block>]) -> Vec<Arc<Block>> {
    let overlaps =
        |a: &BlockMeta, b: &BlockMeta| a.min_time < b.max_time && b.min_time < a.max_time;
    let tier_covered = coverage(tier.iter().map(|b| (b.meta().min_time, b.meta().max_time)));
    let mut stale: Vec<Arc<Block>> = Vec::new();
    for s in sources {
        let inside = subtract(s.meta().min_time, s.meta().max_time, &tier_covered).is_empty();
        if !inside {
            continue;
        }
        let over: Vec<&Arc<Block>> = tier
            .iter()
            .filter(|t| overlaps(s.meta(), t.meta()))
            .collect();
        if over.is_empty() {
            continue;
        }
        let known: std::collections::HashSet<String> = over
            .iter()
            .flat_map(|t| crate::block::sources_of(t.meta()))
            .collect();
        if crate::block::sources_of(s.meta())
            .iter()
            .all(|u| known.contains(u))
        {
            continue;
        }
        for t in over {
            if !stale.iter().any(|x| x.meta().ulid == t.meta().ulid) {
                stale.push(t.clone());
            }
        }
    }
    let covered = coverage(
        sources
            .iter()
            .map(|b| (b.meta().min_time, b.meta().max_time)),
    );
    stale.retain(|t| {
        let (a, b) = (t.meta().min_time, t.meta().max_time);
        let rebuildable = subtract(a, b, &covered).is_empty();
        if !rebuildable {
            tracing::warn!(block = %t.dir().display(), "a tier block misses backfilled data its sources no longer fully cover; left as it is");
        }
        rebuildable
    });
    stale
}

/// A tier directory's name: a resolution in milliseconds, digits without
/// a leading zero.
pub fn is_resolution_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 18
        && !name.starts_with('0')
        && name.bytes().all(|b| b.is_ascii_digit())
}

/// Half-open time ranges `[start, end)`, sorted and disjoint.
pub(crate) type Ranges = Vec<(i64, i64)>;

/// The union of block time ranges.
pub(crate) fn coverage(metas: impl Iterator<Item = (i64, i64)>) -> Ranges {
    let mut list: Vec<(i64, i64)> = metas.filter(|(a, b)| a < b).collect();
    list.sort();
    let mut out: Ranges = Vec::new();
    for (a, b) in list {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The parts of `[start, end)` that `taken` does not cover.
pub(crate) fn subtract(start: i64, end: i64, taken: &Ranges) -> Ranges {
    let mut out = Vec::new();
    let mut cursor = start;
    for &(a, b) in taken {
        if b <= cursor {
            continue;
        }
        if a >= end {
            break;
        }
        if a > cursor {
            out.push((cursor, a.min(end)));
        }
        cursor = cursor.max(b);
        if cursor >= end {
            break;
        }
    }
    if cursor < end {
        out.push((cursor, end));
    }
    out
}

/// Reads every series of a block in `[mint, maxt]` as runs at
/// `resolution` (raw blocks: from their samples, without deleted ones;
/// tier blocks: their window points made coarser when `resolution` is
/// larger than the block's).
pub(crate) fn block_runs(
    block: &Block,
    mint: i64,
    maxt: i64,
    resolution: i64,
) -> Result<Vec<(Labels, Run)>, BlockError> {
    let mut out = Vec::new();
    for s in block.select(&[], mint, maxt)? {
        if let Some(run) = series_run(block, &s, mint, maxt, resolution)? {
            out.push((s.labels, run));
        }
    }
    Ok(out)
}

/// One selected series of a block as a run at `resolution`.
pub(crate) fn series_run(
    block: &Block,
    s: &crate::block::SeriesChunks,
    mint: i64,
    maxt: i64,
    resolution: i64,
) -> Result<Option<Run>, BlockError> {
    let mut chunks = s.chunks.clone();
    chunks.sort_by_key(|c| c.0);
    if block.meta().downsample.is_some() {
        let mut joined: Option<Run> = None;
        for (_, _, r) in chunks {
            let bytes = aggregate_chunk(block, r, true)?;
            let part = decode_chunk(bytes)
                .map_err(|e| BlockError::corrupt(block.dir(), r.0, &e.to_string()))?;
            match joined.as_mut() {
                Some(j) => j.append(part),
                None => joined = Some(part),
            }
        }
        let Some(mut run) = joined.and_then(|r| r.into_clip(mint, maxt)) else {
            return Ok(None);
        };
        if !s.deleted.is_empty() {
            // Deleted window points (per-series retention) go; when the
            // first ones do, offsets count from the last deleted one.
            let keep = run.points.iter().position(|p| !s.deleted.contains(p.t));
            let Some(keep) = keep else {
                return Ok(None);
            };
            if keep > 0 {
                let Some(rebased) = run.clip(run.points[keep].t, i64::MAX) else {
                    return Ok(None);
                };
                run = rebased;
            }
            run.points.retain(|p| !s.deleted.contains(p.t));
        }
        let own = block.meta().downsample.map_or(0, |d| d.resolution);
        return Ok(Some(if resolution > own {
            run.coarsen(resolution)
        } else {
            run
        }));
    }
    let mut samples = Vec::new();
    for (_, _, r) in chunks {
        samples.append(&mut block.chunk_samples(r)?);
    }
    samples.sort_by_key(|x| x.0);
    samples.dedup_by_key(|x| x.0);
    s.deleted.remove_from(&mut samples);
    let lo = samples.partition_point(|x| x.0 < mint);
    let hi = samples.partition_point(|x| x.0 <= maxt);
    Ok(Run::from_samples(&samples[lo..hi], resolution))
}

/// What [`series_column`] read for one series of one block.
pub(crate) enum TierRead {
    /// No window point in range.
    Nothing,
    Column(Column),
    /// The series' window points there do not keep the aggregate (a
    /// counter's have no sum, min or max; a gauge's no counter).
    NotKept,
}

/// One selected series of a block as the column of `aggregate` at
/// `resolution`: the same values as [`series_run`] followed by
/// [`Column::from_run`], read straight from that column of the chunks
/// when the block's own resolution is the one asked for. `exact` (no stand-in
/// counts: [`crate::downsample::Kept::holds`]) is judged here for a
/// coarsened block; at the block's own resolution the caller judged it
/// from the chunks' headers ([`series_keeps`]) before reading.
pub(crate) fn series_column(
    block: &Block,
    s: &crate::block::SeriesChunks,
    mint: i64,
    maxt: i64,
    resolution: i64,
    aggregate: Aggregate,
    exact: bool,
) -> Result<TierRead, BlockError> {
    let own = block.meta().downsample.map(|d| d.resolution);
    if own != Some(resolution) {
        return Ok(match series_run(block, s, mint, maxt, resolution)? {
            None => TierRead::Nothing,
            Some(run) if exact && !run.points.iter().all(|p| p.kept.holds(aggregate)) => {
                TierRead::NotKept
            }
            Some(run) => match Column::from_run(&run, aggregate) {
                Some(column) => TierRead::Column(column),
                None => TierRead::NotKept,
            },
        });
    }
    let mut chunks = s.chunks.clone();
    chunks.sort_by_key(|c| c.0);
    let mut joined: Option<Column> = None;
    for (_, _, r) in chunks {
        let bytes = aggregate_chunk(block, r, true)?;
        let Some(part) = decode_chunk_column(bytes, aggregate)
            .map_err(|e| BlockError::corrupt(block.dir(), r.0, &e.to_string()))?
        else {
            return Ok(TierRead::NotKept);
        };
        match joined.as_mut() {
            Some(j) => j.append(part),
            None => joined = Some(part),
        }
    }
    let Some(column) = joined.and_then(|c| c.into_clip(mint, maxt)) else {
        return Ok(TierRead::Nothing);
    };
    if s.deleted.is_empty() {
        return Ok(TierRead::Column(column));
    }
    Ok(column
        .remove_deleted(&s.deleted)
        .map_or(TierRead::Nothing, TierRead::Column))
}

/// The bytes of a downsampled block's chunk, which must be an aggregate
/// chunk; its CRC checked unless `check_crc` is false (a glance at the
/// header of a chunk read in full later).
fn aggregate_chunk(
    block: &Block,
    r: crate::block::ChunkRef,
    check_crc: bool,
) -> Result<&[u8], BlockError> {
    let (encoding, bytes) = if check_crc {
        block.chunk(r)?
    } else {
        block.chunk_unchecked(r)?
    };
    if encoding != AGGREGATE_ENCODING {
        return Err(BlockError::corrupt(
            block.dir(),
            r.0,
            &format!("chunk encoding {encoding} in a downsampled block"),
        ));
    }
    Ok(bytes)
}

/// Whether [`series_column`] of a series of a block at the block's own
/// resolution finds `aggregate` kept (anything but
/// [`TierRead::NotKept`]), from the chunks' headers alone; with `exact`,
/// kept itself, not a stand-in ([`crate::downsample::Kept::holds`]).
pub(crate) fn series_keeps(
    block: &Block,
    s: &crate::block::SeriesChunks,
    aggregate: Aggregate,
    exact: bool,
) -> Result<bool, BlockError> {
    for &(_, _, r) in &s.chunks {
        // Only the header is read here; a chunk that keeps the aggregate
        // is read again, CRC checked, when its series is.
        let bytes = aggregate_chunk(block, r, false)?;
        let keeps = crate::downsample::chunk_keeps(bytes, aggregate, exact)
            .map_err(|e| BlockError::corrupt(block.dir(), r.0, &e.to_string()))?;
        if !keeps {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Downsamples `[start, end)` of `source` into a new block of the tier in
/// `tier_dir`. The block is written even when no series has data there,
/// so the range counts as done.
pub(crate) fn downsample_block(
    tier_dir: &Path,
    source: &Block,
    start: i64,
    end: i64,
    resolution: i64,
) -> Result<BlockMeta, BlockError> {
    let runs = block_runs(source, start, end - 1, resolution)?;
    let new = NewBlock {
        min_time: start,
        max_time: end,
        level: 1,
        sources: crate::block::sources_of(source.meta()),
        parents: Vec::new(),
    };
    write_tier_block(tier_dir, new, resolution, runs.into_iter())
}

fn write_tier_block(
    tier_dir: &Path,
    new: NewBlock,
    resolution: i64,
    series: impl Iterator<Item = (Labels, Run)>,
) -> Result<BlockMeta, BlockError> {
    std::fs::create_dir_all(tier_dir)
        .map_err(|e| BlockError::io(tier_dir, e, "creating tier directory"))?;
    let mut writer = BlockWriter::create_downsampled(tier_dir, new, resolution)?;
    for (labels, run) in series {
        if run.points.is_empty() {
            continue;
        }
        let chunks = encode_run(&run, aggregate_set(labels.metric_name(), &run));
        writer.add_series(&labels, &chunks, run.points.len() as u64)?;
    }
    writer.finish()
}

/// Merges tier blocks, which never overlap, into one.
pub(crate) fn merge_tier_blocks(
    tier_dir: &Path,
    blocks: &[Arc<Block>],
    resolution: i64,
) -> Result<BlockMeta, BlockError> {
    let mut ordered: Vec<Arc<Block>> = blocks.to_vec();
    ordered.sort_by_key(|b| b.meta().min_time);
    let mut series: BTreeMap<Labels, Run> = BTreeMap::new();
    for b in &ordered {
        for (labels, run) in block_runs(b, i64::MIN, i64::MAX, resolution)? {
            match series.get_mut(&labels) {
                Some(acc) => acc.append(run),
                None => {
                    series.insert(labels, run);
                }
            }
        }
    }
    let mut sources: Vec<String> = ordered
        .iter()
        .flat_map(|b| crate::block::sources_of(b.meta()))
        .collect();
    sources.sort();
    sources.dedup();
    let mut parents: Vec<String> = ordered.iter().map(|b| b.meta().ulid.clone()).collect();
    parents.sort();
    let new = NewBlock {
        min_time: ordered.iter().map(|b| b.meta().min_time).min().unwrap_or(0),
        max_time: ordered.iter().map(|b| b.meta().max_time).max().unwrap_or(0),
        level: ordered
            .iter()
            .map(|b| b.meta().compaction.level)
            .max()
            .unwrap_or(0)
            + 1,
        sources,
        parents,
    };
    write_tier_block(tier_dir, new, resolution, series.into_iter())
}

/// Loads a tier directory's blocks, oldest first. A block that another
/// block names as its parent was merged into it by a compaction that a
/// crash interrupted before deleting its inputs; it is deleted now, so no
/// time is covered twice.
pub(crate) fn load_tier(dir: &Path, resolution: i64) -> Result<Vec<Arc<Block>>, BlockError> {
    std::fs::create_dir_all(dir).map_err(|e| BlockError::io(dir, e, "creating tier directory"))?;
    crate::block::cleanup_tmp(dir)?;
    let mut blocks = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| BlockError::io(dir, e, "reading tier directory"))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || !path.join("meta.json").exists() {
            continue;
        }
        match crate::verify::open_verified(&path) {
            Ok(b) if b.meta().downsample.map(|d| d.resolution) == Some(resolution) => {
                blocks.push(Arc::new(b))
            }
            Ok(_) => {
                tracing::error!(block = %path.display(), resolution, "skipping a block of another resolution in a tier directory")
            }
            Err(e) if crate::verify::is_damage(&e) => {
                if let Err(move_error) = crate::verify::quarantine(&path, &e) {
                    tracing::error!(block = %path.display(), error = %e, move_error = %move_error, "skipping a corrupted tier block that could not be moved aside")
                }
            }
            Err(e) => {
                tracing::error!(block = %path.display(), error = %e, "skipping unreadable tier block")
            }
        }
    }
    let merged: std::collections::HashSet<String> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.parents.clone())
        .collect();
    let mut kept = Vec::new();
    for b in blocks {
        if merged.contains(&b.meta().ulid) {
            std::fs::remove_dir_all(b.dir())
                .map_err(|e| BlockError::io(b.dir(), e, "deleting a merged tier block"))?;
        } else {
            kept.push(b);
        }
    }
    kept.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_subtract_and_merge() {
        let taken = coverage([(10, 20), (0, 5), (18, 30), (40, 50)].into_iter());
        assert_eq!(taken, vec![(0, 5), (10, 30), (40, 50)]);
        assert_eq!(subtract(0, 60, &taken), vec![(5, 10), (30, 40), (50, 60)]);
        assert_eq!(subtract(12, 28, &taken), vec![]);
        assert_eq!(subtract(-5, 3, &taken), vec![(-5, 0)]);
    }
}
