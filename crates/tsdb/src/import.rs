//! Offline backfill: turning a batch of series into blocks.

use crate::block::{BlockError, BlockMeta, NewBlock};
use crate::compact::write_block;
use model::Labels;
use std::collections::BTreeMap;
use std::path::Path;

/// Writes `series` (any timestamps, duplicates allowed: the later sample in
/// each series' vector wins) into blocks under `data_dir`, one block per
/// aligned window of `window_ms`. Returns the metas of the blocks written.
pub fn write_import_blocks(
    data_dir: &Path,
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
    window_ms: i64,
) -> Result<Vec<BlockMeta>, BlockError> {
    type SeriesList = Vec<(Labels, Vec<(i64, f64)>)>;
    let mut windows: BTreeMap<i64, SeriesList> = BTreeMap::new();
    for (labels, mut samples) in series {
        // A stable sort keeps file order among equal timestamps; keeping the
        // last of each run makes the later sample win.
        samples.sort_by_key(|s| s.0);
        let mut deduped: Vec<(i64, f64)> = Vec::with_capacity(samples.len());
        for s in samples {
            match deduped.last_mut() {
                Some(last) if last.0 == s.0 => *last = s,
                _ => deduped.push(s),
            }
        }
        let mut start = 0;
        while start < deduped.len() {
            let w = deduped[start].0.div_euclid(window_ms);
            let end = start + deduped[start..].partition_point(|s| s.0.div_euclid(window_ms) == w);
            windows
                .entry(w)
                .or_default()
                .push((labels.clone(), deduped[start..end].to_vec()));
            start = end;
        }
    }
    let mut metas = Vec::new();
    for (w, list) in windows {
        let min_time = list
            .iter()
            .filter_map(|(_, s)| s.first())
            .map(|s| s.0)
            .min()
            .unwrap_or(w * window_ms);
        let max_time = list
            .iter()
            .filter_map(|(_, s)| s.last())
            .map(|s| s.0)
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
        if let Some(meta) = write_block(data_dir, new, list.into_iter())? {
            metas.push(meta);
        }
    }
    Ok(metas)
}
