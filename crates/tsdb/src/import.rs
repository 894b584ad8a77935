//! Offline backfill: turning a batch of series into blocks.
//!
//! The work per series (ordering its samples, encoding its chunks) is
//! spread over threads; the block files are written by one thread, series
//! in label order, so the blocks are the same whatever the thread count.

use crate::block::{BlockError, BlockMeta, BlockWriter, ChunkMeta, NewBlock};
use crate::compact::encode_chunks;
use model::Labels;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Writes `series` (any timestamps, duplicates allowed: the later sample in
/// each series' vector wins) into blocks under `data_dir`, one block per
/// aligned window of `window_ms`. Returns the metas of the blocks written.
pub fn write_import_blocks(
    data_dir: &Path,
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
    window_ms: i64,
) -> Result<Vec<BlockMeta>, BlockError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    write_import_series(data_dir, series.into_iter().collect(), window_ms, threads)
}

/// [`write_import_blocks`] for series already sorted by labels without
/// duplicates, using up to `threads` threads.
pub fn write_import_series(
    data_dir: &Path,
    mut series: Vec<(Labels, Vec<(i64, f64)>)>,
    window_ms: i64,
    threads: usize,
) -> Result<Vec<BlockMeta>, BlockError> {
    if window_ms <= 0 {
        return Err(BlockError::invalid_input("block window must be positive"));
    }
    if series.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(BlockError::invalid_input(
            "import series must be sorted by labels and unique",
        ));
    }
    let threads = threads.max(1);
    // Order and deduplicate every series' samples, in parallel.
    let per_thread = series.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for part in series.chunks_mut(per_thread) {
            scope.spawn(move || {
                for (_, samples) in part {
                    sort_dedup(samples);
                }
            });
        }
    });
    // Each series' range of samples in each window, windows in time order.
    type Ranges = Vec<(usize, usize, usize)>;
    let mut windows: BTreeMap<i64, Ranges> = BTreeMap::new();
    for (i, (_, samples)) in series.iter().enumerate() {
        let mut start = 0;
        while start < samples.len() {
            let w = samples[start].0.div_euclid(window_ms);
            let end = start + samples[start..].partition_point(|s| s.0.div_euclid(window_ms) == w);
            windows.entry(w).or_default().push((i, start, end));
            start = end;
        }
    }
    let mut metas = Vec::new();
    for (w, ranges) in windows {
        let min_time = ranges
            .iter()
            .map(|&(i, start, _)| series[i].1[start].0)
            .min()
            .unwrap_or(w * window_ms);
        let max_time = ranges
            .iter()
            .map(|&(i, _, end)| series[i].1[end - 1].0)
            .max()
            .unwrap_or(w * window_ms)
            + 1;
        let new = NewBlock {
            min_time,
            max_time,
            level: 1,
            sources: Vec::new(),
            parents: Vec::new(),
        };
        if let Some(meta) = write_window(data_dir, new, &series, &ranges, threads)? {
            metas.push(meta);
        }
    }
    Ok(metas)
}

/// Sorts by timestamp, keeping the last of equal timestamps (a stable sort
/// keeps input order among them).
fn sort_dedup(samples: &mut Vec<(i64, f64)>) {
    if samples.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    samples.sort_by_key(|s| s.0);
    let mut kept = 0;
    for i in 0..samples.len() {
        if kept > 0 && samples[kept - 1].0 == samples[i].0 {
            samples[kept - 1] = samples[i];
        } else {
            samples[kept] = samples[i];
            kept += 1;
        }
    }
    samples.truncate(kept);
}

/// Series per unit of work handed to an encoding thread.
const ENCODE_BATCH: usize = 512;

/// Writes one block of the given sample ranges (series indices in label
/// order): encoding threads work ahead on batches while this thread writes
/// the batches in order.
fn write_window(
    data_dir: &Path,
    new: NewBlock,
    series: &[(Labels, Vec<(i64, f64)>)],
    ranges: &[(usize, usize, usize)],
    threads: usize,
) -> Result<Option<BlockMeta>, BlockError> {
    if ranges.is_empty() {
        return Ok(None);
    }
    let encode = |batch: usize| -> Vec<Vec<ChunkMeta>> {
        let from = batch * ENCODE_BATCH;
        let to = (from + ENCODE_BATCH).min(ranges.len());
        ranges[from..to]
            .iter()
            .map(|&(i, start, end)| encode_chunks(&series[i].1[start..end]))
            .collect()
    };
    let batches = ranges.len().div_ceil(ENCODE_BATCH);
    let mut writer = BlockWriter::create(data_dir, new)?;
    let mut write_batch = |batch: usize, encoded: Vec<Vec<ChunkMeta>>| {
        let from = batch * ENCODE_BATCH;
        for (&(i, start, end), chunks) in ranges[from..].iter().zip(&encoded) {
            writer.add_series(&series[i].0, chunks, (end - start) as u64)?;
        }
        Ok::<(), BlockError>(())
    };
    let workers = threads.saturating_sub(1).min(batches);
    if workers == 0 {
        for batch in 0..batches {
            write_batch(batch, encode(batch))?;
        }
        return writer.finish().map(Some);
    }
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Vec<Vec<ChunkMeta>>)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, failed, encode) = (&next, &failed, &encode);
            scope.spawn(move || {
                while !failed.load(Ordering::Relaxed) {
                    let batch = next.fetch_add(1, Ordering::Relaxed);
                    if batch >= batches || tx.send((batch, encode(batch))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        // Batches arrive in any order; write them in order, encoding on
        // this thread too when the next one is not there yet.
        let mut pending: BTreeMap<usize, Vec<Vec<ChunkMeta>>> = BTreeMap::new();
        let mut written = 0;
        while written < batches {
            while let Ok((batch, encoded)) = rx.try_recv() {
                pending.insert(batch, encoded);
            }
            if let Some(encoded) = pending.remove(&written) {
                if let Err(e) = write_batch(written, encoded) {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                written += 1;
                continue;
            }
            let batch = next.fetch_add(1, Ordering::Relaxed);
            if batch < batches {
                pending.insert(batch, encode(batch));
                continue;
            }
            // Every batch is taken: wait for the one to write next.
            match rx.recv() {
                Ok((batch, encoded)) => {
                    pending.insert(batch, encoded);
                }
                Err(_) => {
                    return Err(BlockError::invalid_input(
                        "an encoding thread stopped before its batch was done",
                    ));
                }
            }
        }
        Ok(())
    });
    result?;
    writer.finish().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_dedup_keeps_the_later_of_equal_timestamps() {
        let mut s = vec![(3, 1.0), (1, 2.0), (3, 3.0), (2, 4.0), (1, 5.0)];
        sort_dedup(&mut s);
        assert_eq!(s, vec![(1, 5.0), (2, 4.0), (3, 3.0)]);
        let mut sorted = vec![(1, 1.0), (2, 2.0)];
        sort_dedup(&mut sorted);
        assert_eq!(sorted, vec![(1, 1.0), (2, 2.0)]);
    }
}
