//! The database: head + WAL + blocks, and the maintenance that moves data
//! between them.
//!
//! Write path: an appender stages samples (creating series in the head as
//! needed), then `commit` encodes one series record for series not yet in
//! the WAL and one samples record, logs both (fsynced, group-committed with
//! other writers; `commit_unsynced` lets the sync follow within
//! [`wal::UNSYNCED_WINDOW`]), and only then applies the samples to the head. A commit
//! holds `commit_lock` for reading; a head cut holds it for writing, so a
//! cut sees every logged commit applied and no commit half-done.
//!
//! Maintenance ([`Db::maintain`], run periodically by the server):
//! 1. Head cut: once the head spans more than 1.5 block ranges, everything
//!    before the end of its oldest block range is written to a block, the
//!    head drops it, and the WAL is checkpointed and truncated.
//! 2. Compaction ([`crate::compact`]).
//! 3. Blocks whose tombstones name many of their series are written again
//!    without the deleted samples ([`compact::needs_rewrite`]).
//! 4. Retention: blocks entirely older than the retention time, and the
//!    oldest blocks while the total size is over the size limit, are deleted.
//!
//! Administration (Prometheus's `/api/v1/admin/tsdb/*`, through
//! [`StorageAdmin`]): [`Db::delete_series`] adds tombstones to the blocks
//! and drops samples from the head after logging a tombstones record;
//! [`Db::clean_tombstones`] rewrites blocks without their deleted samples;
//! [`Db::snapshot`] hard-links every block into another directory and can
//! write the head there as one more block. Deletes, cleaning and snapshots
//! hold the maintenance lock, so no compaction merges or removes a block
//! while its tombstones change or while it is being linked.

use crate::block::{self, Block, BlockMeta, NewBlock};
use crate::compact;
use crate::exemplar::{ExemplarStore, Refusal};
use crate::head::{Head, MemSeries, SeriesArc, WantedSeries, range_start};
use crate::limits::{Admission, Limiter, Scope};
use crate::querier::DbQuerier;
use crate::sync::{lock, read, write};
use crate::tiers::{self, TierSpec};
use crate::wal::{
    self, Record, RefExemplar, RefHistogram, RefSeries, RefTombstone, Wal, WalOptions,
};
use model::exemplar::{Exemplar, ExemplarCounters, ExemplarSeries};
use model::histogram::FloatHistogram;
use model::storage::{
    Appendable, Appender, HeadStats, PairsBatch, Querier, Queryable, Result, SnapshotHead,
    StatsRequest, Storage, StorageAdmin, StorageCounters, StorageError, StorageErrorKind,
};
use model::{Labels, Matcher};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Two hours: Prometheus's head block range, and the base of the
/// compaction ranges. Long enough that a block amortises its index, short
/// enough that the head (in memory) stays small.
pub const DEFAULT_BLOCK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// 31 days: the largest compacted block, as in Prometheus.
pub const MAX_BLOCK_RANGE_MS: i64 = 31 * 24 * 3600 * 1000;

/// Prometheus's default `storage.exemplars.max_exemplars`, the size of the
/// exemplar store a database opens with (the server then applies the
/// configured size, `Db::set_max_exemplars`).
pub const DEFAULT_MAX_EXEMPLARS: usize = 100_000;

/// How large WAL replay lets the exemplar store grow before it evicts:
/// the largest size the configuration accepts
/// (`config::storage::MAX_MAX_EXEMPLARS`), so every configured size finds
/// all its exemplars after a restart.
const REPLAY_MAX_EXEMPLARS: usize = 100_000_000;
/// The largest block of a downsampled tier: a year, so a 1h tier keeps
/// one block (and one index entry per series) per year instead of twelve.
pub const MAX_TIER_BLOCK_RANGE_MS: i64 = 366 * 24 * 3600 * 1000;

/// The directory under the data directory that holds the snapshots of
/// [`Db::snapshot_in_data_dir`].
pub const SNAPSHOTS_DIR: &str = "snapshots";

#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Delete blocks entirely older than this (ms). `None` keeps forever.
    pub retention_time_ms: Option<i64>,
    /// Delete oldest blocks while blocks + WAL exceed this. `None`: no limit.
    pub retention_size_bytes: Option<u64>,
    pub block_range_ms: i64,
    pub wal_segment_size: u64,
    /// fsync the WAL before acknowledging; only tests turn this off.
    pub fsync: bool,
}

impl DbOptions {
    /// Production defaults with the given retention.
    pub fn with_retention(
        retention_time_ms: Option<i64>,
        retention_size_bytes: Option<u64>,
    ) -> DbOptions {
        DbOptions {
            retention_time_ms,
            retention_size_bytes,
            block_range_ms: DEFAULT_BLOCK_RANGE_MS,
            wal_segment_size: WalOptions::default().segment_size,
            fsync: true,
        }
    }
}

#[derive(Default)]
struct Counters {
    samples_appended: AtomicU64,
    series_created: AtomicU64,
    out_of_order: AtomicU64,
    compactions: AtomicU64,
    compactions_failed: AtomicU64,
    head_truncations: AtomicU64,
    retention_deletions: AtomicU64,
    downsamples: AtomicU64,
    downsamples_failed: AtomicU64,
    /// The last downsampling round's duration in microseconds.
    last_downsample_us: AtomicU64,
}

/// The embedded time-series database.
pub struct Db {
    dir: PathBuf,
    opts: DbOptions,
    head: Arc<Head>,
    wal: Wal,
    /// Sorted by ULID (oldest first).
    /// Shared with queriers, which read it and the head under its read
    /// lock (see [`Db::cut_head`]).
    blocks: Arc<RwLock<Vec<Arc<Block>>>>,
    commit_lock: RwLock<()>,
    /// Serialises maintenance runs.
    maintenance: Mutex<()>,
    counters: Counters,
    wal_repairs_at_open: u64,
    /// Per-series retention, in order: the first rule matching a series
    /// gives its retention; others keep `opts.retention_time_ms`.
    retention_rules: RwLock<Vec<RetentionRule>>,
    /// In memory; logged as WAL exemplar records.
    exemplars: ExemplarStore,
    /// Resolution tiers (`storage.tiers`), finest first; empty when not
    /// configured. The first is raw (the blocks above).
    tiers: RwLock<Vec<TierState>>,
    /// The series limits (`limits:`) new series must pass.
    limiter: Limiter,
    _lock_file: File,
}

/// The rules as one tier applies them: capped at the tier's retention,
/// except in the coarsest tier (`last`), which keeps a rule's series for
/// the rule's whole retention.
fn tier_rules(rules: &[RetentionRule], retention_ms: i64, last: bool) -> Vec<RetentionRule> {
    rules
        .iter()
        .map(|r| RetentionRule {
            matchers: r.matchers.clone(),
            retention_ms: if last {
                r.retention_ms
            } else {
                r.retention_ms.min(retention_ms)
            },
        })
        .collect()
}

/// A configured tier and, when downsampled, its blocks (oldest first).
#[derive(Clone)]
pub(crate) struct TierState {
    pub(crate) spec: TierSpec,
    pub(crate) dir: PathBuf,
    pub(crate) blocks: Vec<Arc<Block>>,
}

/// One per-series retention rule (`storage.retention_rules`).
#[derive(Clone, Debug)]
pub struct RetentionRule {
    pub matchers: Vec<Matcher>,
    pub retention_ms: i64,
}

/// Adds `block` to a block list, keeping it in ULID order.
fn insert_block(blocks: &mut Vec<Arc<Block>>, block: Arc<Block>) {
    blocks.push(block);
    blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
}

fn io_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::new(StorageErrorKind::Io, e.to_string())
}

impl Db {
    /// Opens (or creates) a database in `dir`: takes the directory lock,
    /// removes leftovers of interrupted block writes, loads blocks, replays
    /// the WAL (repairing a torn tail) into the head.
    pub fn open(dir: &Path, opts: DbOptions) -> Result<Db> {
        std::fs::create_dir_all(dir)
            .map_err(|e| io_err(format!("creating data directory {}: {e}", dir.display())))?;
        let lock_path = dir.join("lock");
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(format!("opening {}: {e}", lock_path.display())))?;
        lock_file.try_lock().map_err(|_| {
            io_err(format!(
                "data directory {} is in use by another osprey process (lock file {})",
                dir.display(),
                lock_path.display()
            ))
        })?;
        block::cleanup_tmp(dir).map_err(io_err)?;
        let blocks = load_blocks(dir)?;

        let head = Arc::new(Head::new(opts.block_range_ms));
        let wal_dir = dir.join("wal");
        // Opening repairs a torn tail; replay then reads what is intact.
        let wal = Wal::open(
            &wal_dir,
            WalOptions {
                segment_size: opts.wal_segment_size,
                fsync: opts.fsync,
            },
        )
        .map_err(io_err)?;
        let wal_repairs_at_open = wal.stats().repairs;
        let exemplars = ExemplarStore::new(DEFAULT_MAX_EXEMPLARS);
        let mut unknown_refs = 0u64;
        let replay_stats = wal::replay(&wal_dir, &mut |record| match record {
            Record::Series(series) => {
                for s in series {
                    head.replay_series(s.id, &s.labels);
                }
            }
            Record::Samples(samples) => {
                for s in samples {
                    match head.series_by_id(s.id) {
                        Some(series) => {
                            series.apply(s.t, s.v, head.block_range());
                            head.note_time(s.t);
                        }
                        None => unknown_refs += 1,
                    }
                }
            }
            Record::Histograms(samples) => {
                for s in samples {
                    match head.series_by_id(s.id) {
                        Some(series) => {
                            series.apply_histogram(s.t, s.h, head.block_range());
                            head.note_time(s.t);
                        }
                        None => unknown_refs += 1,
                    }
                }
            }
            Record::Exemplars(records) => {
                for e in records {
                    match head.series_by_id(e.id) {
                        // As when it was committed: a refusal now is one then.
                        Some(series) => {
                            let labels = series.labels();
                            let _ =
                                exemplars.add_growing(&labels, e.exemplar, REPLAY_MAX_EXEMPLARS);
                        }
                        None => unknown_refs += 1,
                    }
                }
            }
            // A delete applies to what was replayed before it.
            Record::Tombstones(tombstones) => {
                for t in tombstones {
                    match head.series_by_id(t.id) {
                        Some(series) => {
                            series.delete_range(t.mint, t.maxt, head.block_range());
                        }
                        None => unknown_refs += 1,
                    }
                }
            }
        })
        .map_err(io_err)?;
        if replay_stats.tombstones > 0 {
            // As the running head removed them after each delete.
            head.remove_empty_series();
        }
        if unknown_refs > 0 {
            tracing::warn!(
                unknown_refs,
                "WAL replay skipped samples or deletes of series without a series record"
            );
        }
        tracing::info!(
            dir = %dir.display(),
            blocks = blocks.len(),
            head_series = head.num_series(),
            replay = ?replay_stats,
            "opened database"
        );
        Ok(Db {
            dir: dir.to_path_buf(),
            opts,
            head,
            wal,
            blocks: Arc::new(RwLock::new(blocks)),
            commit_lock: RwLock::new(()),
            maintenance: Mutex::new(()),
            counters: Counters::default(),
            wal_repairs_at_open,
            retention_rules: RwLock::new(Vec::new()),
            exemplars,
            tiers: RwLock::new(Vec::new()),
            limiter: Limiter::new(),
            _lock_file: lock_file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The exemplar store.
    pub fn exemplars(&self) -> &ExemplarStore {
        &self.exemplars
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn blocks(&self) -> Vec<Arc<Block>> {
        read(&self.blocks).clone()
    }

    /// Samples committed since the database opened: one atomic load, for
    /// callers that poll whether writes are coming in (the server hands
    /// freed memory back when a burst of writes ends).
    pub fn samples_appended_total(&self) -> u64 {
        self.counters.samples_appended.load(Ordering::Relaxed)
    }

    /// One round of maintenance: head cut, compactions, retention. `now_ms`
    /// is the wall clock, used for time-based retention.
    pub fn maintain(&self, now_ms: i64) -> Result<()> {
        let _guard = lock(&self.maintenance);
        let range = self.opts.block_range_ms;
        while let Some(boundary) = self.next_cut(range) {
            self.cut_head(boundary)?;
        }
        self.compact_all()?;
        self.downsample_timed()?;
        let expired = self.apply_series_retention(now_ms)?;
        for block in self.blocks() {
            let retention_hit = expired.iter().any(|ulid| *ulid == block.meta().ulid);
            if retention_hit || compact::needs_rewrite(&block) {
                self.rewrite_without_deleted(&block)?;
            }
        }
        self.apply_retention(now_ms)?;
        Ok(())
    }

    /// Sets the resolution tiers (`storage.tiers`, finest first, the first
    /// raw; an empty list turns tiering off): loads each downsampled tier's
    /// blocks from `tiers/<resolution ms>/`, removing leftovers of
    /// interrupted writes. The raw tier's retention then replaces
    /// [`DbOptions::retention_time_ms`]. The next [`Db::maintain`]
    /// downsamples and applies each tier's retention.
    pub fn set_tiers(&self, specs: &[TierSpec]) -> Result<()> {
        if let Some(first) = specs.first()
            && first.resolution_ms != 0
        {
            return Err(StorageError::new(
                StorageErrorKind::InvalidInput,
                "the first tier must be raw",
            ));
        }
        let _guard = lock(&self.maintenance);
        let current = read(&self.tiers).clone();
        let mut next = Vec::with_capacity(specs.len());
        for spec in specs {
            let dir = tiers::tier_dir(&self.dir, spec.resolution_ms);
            let blocks = if spec.resolution_ms == 0 {
                Vec::new()
            } else if let Some(loaded) = current
                .iter()
                .find(|t| t.spec.resolution_ms == spec.resolution_ms)
            {
                loaded.blocks.clone()
            } else {
                tiers::load_tier(&dir, spec.resolution_ms).map_err(io_err)?
            };
            next.push(TierState {
                spec: *spec,
                dir,
                blocks,
            });
        }
        *write(&self.tiers) = next;
        Ok(())
    }

    /// The configured tiers with their blocks.
    pub(crate) fn tier_states(&self) -> Vec<TierState> {
        read(&self.tiers).clone()
    }

    /// The downsampled tiers: (resolution ms, blocks oldest first).
    pub fn tier_blocks(&self) -> Vec<(i64, Vec<Arc<Block>>)> {
        read(&self.tiers)
            .iter()
            .filter(|t| t.spec.resolution_ms > 0)
            .map(|t| (t.spec.resolution_ms, t.blocks.clone()))
            .collect()
    }

    /// How long raw blocks are kept: the raw tier's retention when tiers
    /// are configured, the global retention otherwise.
    fn raw_retention(&self) -> Option<i64> {
        match read(&self.tiers).first() {
            Some(raw) => Some(raw.spec.retention_ms),
            None => self.opts.retention_time_ms,
        }
    }

    /// [`Db::downsample_all`], counted and timed for the metrics.
    pub fn downsample_timed(&self) -> Result<()> {
        let began = std::time::Instant::now();
        let result = self.downsample_all();
        if read(&self.tiers).len() > 1 {
            let c = &self.counters;
            let us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
            c.last_downsample_us.store(us, Ordering::Relaxed);
            if result.is_ok() {
                c.downsamples.fetch_add(1, Ordering::Relaxed);
            } else {
                c.downsamples_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// Builds every downsampled tier from the one before it: each part of
    /// a source block's range that the tier does not cover yet becomes a
    /// tier block; then the tier's blocks are compacted like raw ones.
    pub fn downsample_all(&self) -> Result<()> {
        let count = read(&self.tiers).len();
        for i in 1..count {
            let states = self.tier_states();
            let (Some(source), Some(target)) = (states.get(i - 1), states.get(i)) else {
                break;
            };
            let sources: Vec<Arc<Block>> = if i == 1 {
                self.blocks()
            } else {
                source.blocks.clone()
            };
            let resolution = target.spec.resolution_ms;
            // A backfill into a range the tier covers: build that range
            // again (removed first; the loop below fills what is not
            // covered, and a crash in between leaves it uncovered, so the
            // next round builds it).
            let stale = tiers::stale_tier_blocks(&sources, &target.blocks);
            if !stale.is_empty() {
                self.remove_tier_blocks(resolution, &stale)?;
            }
            let states = self.tier_states();
            // (The tiers may have been set anew meanwhile.)
            let Some(target) = states.get(i) else {
                break;
            };
            let mut covered = tiers::coverage(
                target
                    .blocks
                    .iter()
                    .map(|b| (b.meta().min_time, b.meta().max_time)),
            );
            let mut ordered = sources;
            ordered.sort_by_key(|b| b.meta().min_time);
            for b in &ordered {
                for (start, end) in tiers::subtract(b.meta().min_time, b.meta().max_time, &covered)
                {
                    let meta = tiers::downsample_block(&target.dir, b, start, end, resolution)
                        .map_err(|e| {
                            io_err(format!(
                                "downsampling block {} to {resolution}ms: {e}",
                                b.meta().ulid
                            ))
                        })?;
                    self.add_tier_block(resolution, &target.dir, &meta)?;
                    covered = tiers::coverage(covered.iter().copied().chain([(start, end)]));
                }
            }
            self.compact_tier(resolution, target.spec.retention_ms, &target.dir)?;
        }
        Ok(())
    }

    fn add_tier_block(&self, resolution: i64, dir: &Path, meta: &BlockMeta) -> Result<()> {
        let block = Block::open(&dir.join(&meta.ulid)).map_err(io_err)?;
        let mut tiers = write(&self.tiers);
        if let Some(t) = tiers
            .iter_mut()
            .find(|t| t.spec.resolution_ms == resolution)
        {
            t.blocks.push(Arc::new(block));
            t.blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
        }
        Ok(())
    }

    fn remove_tier_blocks(&self, resolution: i64, gone: &[Arc<Block>]) -> Result<()> {
        {
            let mut tiers = write(&self.tiers);
            if let Some(t) = tiers
                .iter_mut()
                .find(|t| t.spec.resolution_ms == resolution)
            {
                t.blocks
                    .retain(|b| !gone.iter().any(|g| g.meta().ulid == b.meta().ulid));
            }
        }
        for b in gone {
            std::fs::remove_dir_all(b.dir())
                .map_err(|e| io_err(format!("deleting {}: {e}", b.dir().display())))?;
        }
        Ok(())
    }

    /// Level compaction of one tier's blocks, up to a tenth of the tier's
    /// retention (as for raw blocks, so retention frees space in steps of
    /// a tenth) and at most [`MAX_TIER_BLOCK_RANGE_MS`].
    fn compact_tier(&self, resolution: i64, retention_ms: i64, dir: &Path) -> Result<()> {
        let max_range =
            (retention_ms / 10).clamp(self.opts.block_range_ms, MAX_TIER_BLOCK_RANGE_MS);
        let ranges = compact::compaction_ranges(self.opts.block_range_ms, max_range);
        loop {
            let Some(state) = self
                .tier_states()
                .into_iter()
                .find(|t| t.spec.resolution_ms == resolution)
            else {
                return Ok(());
            };
            let metas: Vec<&BlockMeta> = state.blocks.iter().map(|b| b.meta()).collect();
            let Some(plan) = compact::plan(&metas, &ranges) else {
                return Ok(());
            };
            let inputs: Vec<Arc<Block>> = plan.iter().map(|&i| state.blocks[i].clone()).collect();
            match tiers::merge_tier_blocks(dir, &inputs, resolution) {
                Ok(meta) => {
                    self.add_tier_block(resolution, dir, &meta)?;
                    self.remove_tier_blocks(resolution, &inputs)?;
                    self.counters.compactions.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counters
                        .compactions_failed
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(io_err(format!("compacting the {resolution}ms tier: {e}")));
                }
            }
        }
    }

    /// Deletes each downsampled tier's blocks entirely older than its
    /// retention (counted back from the newest sample, as for raw).
    fn apply_tier_retention(&self, now_ms: i64) -> Result<()> {
        let anchor = self.retention_anchor(now_ms);
        let longest_rule = read(&self.retention_rules)
            .iter()
            .map(|r| r.retention_ms)
            .max()
            .unwrap_or(0);
        let states = self.tier_states();
        let count = states.len();
        for (i, state) in states.into_iter().enumerate().skip(1) {
            // The coarsest tier keeps a rule's series for the whole rule:
            // its blocks go once the longest rule has passed too.
            let keep = if i + 1 == count {
                state.spec.retention_ms.max(longest_rule)
            } else {
                state.spec.retention_ms
            };
            let cutoff = anchor.saturating_sub(keep);
            let doomed: Vec<Arc<Block>> = state
                .blocks
                .iter()
                .filter(|b| b.meta().max_time <= cutoff)
                .cloned()
                .collect();
            if !doomed.is_empty() {
                tracing::info!(
                    tier_ms = state.spec.resolution_ms,
                    blocks = doomed.len(),
                    "deleting tier blocks past retention"
                );
                self.counters
                    .retention_deletions
                    .fetch_add(doomed.len() as u64, Ordering::Relaxed);
                self.remove_tier_blocks(state.spec.resolution_ms, &doomed)?;
            }
        }
        Ok(())
    }

    /// Replaces the per-series retention rules (from the configuration,
    /// on every load); the next [`Db::maintain`] applies them.
    pub fn set_retention_rules(&self, rules: Vec<RetentionRule>) {
        *write(&self.retention_rules) = rules;
    }

    /// The newest sample time, capped at the wall clock: what retention
    /// counts back from.
    fn retention_anchor(&self, now_ms: i64) -> i64 {
        self.blocks()
            .iter()
            .map(|b| b.meta().max_time)
            .chain([self.head.max_time()])
            .max()
            .unwrap_or(i64::MIN)
            .min(now_ms)
    }

    /// Tombstones each series' samples older than its retention: the
    /// first rule matching it gives the retention, the global one applies
    /// to the rest. Cutoffs are rounded down to a block range, so a block
    /// gains tombstones (and is rewritten) at most once per block range.
    /// Returns the blocks that changed, which maintenance then rewrites,
    /// so the data leaves the disk.
    fn apply_series_retention(&self, now_ms: i64) -> Result<Vec<String>> {
        let rules = read(&self.retention_rules).clone();
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let tiers = self.tier_states();
        let raw_rules: Vec<RetentionRule> = match tiers.first() {
            Some(raw) => tier_rules(&rules, raw.spec.retention_ms, tiers.len() == 1),
            None => rules.clone(),
        };
        let changed =
            self.expire_series(&self.blocks(), &raw_rules, self.raw_retention(), now_ms)?;
        // Each downsampled tier: a rule caps how long its series stay in
        // the tier; the coarsest tier keeps them for the rule's whole
        // retention, even past its own.
        for (i, state) in tiers.iter().enumerate().skip(1) {
            let last = i + 1 == tiers.len();
            let tier_rules = tier_rules(&rules, state.spec.retention_ms, last);
            let tier_changed = self.expire_series(
                &state.blocks,
                &tier_rules,
                Some(state.spec.retention_ms),
                now_ms,
            )?;
            for block in state
                .blocks
                .iter()
                .filter(|b| tier_changed.contains(&b.meta().ulid))
            {
                self.rewrite_tier_block(state.spec.resolution_ms, &state.dir, block)?;
            }
        }
        Ok(changed)
    }

    /// Tombstones, in `blocks`, each series' samples older than its
    /// retention (the first matching rule's, else `global`). Returns the
    /// blocks that changed.
    fn expire_series(
        &self,
        blocks: &[Arc<Block>],
        rules: &[RetentionRule],
        global: Option<i64>,
        now_ms: i64,
    ) -> Result<Vec<String>> {
        let anchor = self.retention_anchor(now_ms);
        let range = self.opts.block_range_ms.max(1);
        let cutoff = |retention: i64| range_start(anchor.saturating_sub(retention), range);
        let mut changed = Vec::new();
        for block in blocks {
            let index = block.index();
            let mut claimed: Vec<u32> = Vec::new();
            let mut groups: Vec<(Vec<u32>, i64)> = Vec::new();
            for rule in rules {
                let ids = index
                    .postings_for_matchers(&rule.matchers)
                    .map_err(|e| io_err(format!("block {}: {e}", block.meta().ulid)))?;
                let ids = crate::index::subtract(&ids, &claimed);
                claimed.extend(&ids);
                claimed.sort_unstable();
                groups.push((ids, cutoff(rule.retention_ms)));
            }
            if let Some(global) = global {
                let all: Vec<u32> = (0..index.num_series()).collect();
                groups.push((crate::index::subtract(&all, &claimed), cutoff(global)));
            }
            let added = block
                .delete_expired(&groups)
                .map_err(|e| io_err(format!("block {}: {e}", block.meta().ulid)))?;
            if added > 0 {
                tracing::info!(block = %block.meta().ulid, series = added, "series past their retention");
                changed.push(block.meta().ulid.clone());
            }
        }
        Ok(changed)
    }

    /// Replaces a tier block with a copy without its deleted window
    /// points (the old block is the new one's parent, so a crash between
    /// the two steps resolves at load).
    fn rewrite_tier_block(&self, resolution: i64, dir: &Path, block: &Arc<Block>) -> Result<()> {
        let meta = tiers::merge_tier_blocks(dir, std::slice::from_ref(block), resolution)
            .map_err(|e| io_err(format!("rewriting tier block {}: {e}", block.meta().ulid)))?;
        self.add_tier_block(resolution, dir, &meta)?;
        self.remove_tier_blocks(resolution, std::slice::from_ref(block))?;
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Where to cut the head next, if it spans more than 1.5 block ranges.
    /// Normally the end of its oldest block range; when old samples
    /// (backfill) stretch the head far back, everything up to one range
    /// before the newest goes in one cut instead of one block per range.
    fn next_cut(&self, range: i64) -> Option<i64> {
        let (min, max) = (self.head.min_time(), self.head.max_time());
        if max == i64::MIN || min == i64::MAX {
            return None;
        }
        let oldest_start = range_start(min, range);
        if max - oldest_start <= range + range / 2 {
            return None;
        }
        Some((oldest_start + range).max(range_start(max - range, range)))
    }

    /// Writes every head sample before `boundary` to a block, drops it from
    /// the head, and checkpoints the WAL.
    pub fn cut_head(&self, boundary: i64) -> Result<()> {
        let wal_segment_before;
        {
            let _no_commits = write(&self.commit_lock);
            let series = self.head.all_series_sorted();
            let min_time = self
                .head
                .min_time()
                .min(boundary - self.opts.block_range_ms);
            let new = NewBlock {
                min_time,
                max_time: boundary,
                level: 1,
                sources: Vec::new(),
                parents: Vec::new(),
            };
            let list = series.iter().map(|s| {
                (
                    s.labels(),
                    s.samples(i64::MIN, boundary - 1),
                    s.histograms(i64::MIN, boundary - 1),
                )
            });
            let meta =
                compact::write_block_with_histograms(&self.dir, new, list).map_err(io_err)?;
            let block = match meta {
                Some(meta) => Some(self.open_block(&meta)?),
                None => None,
            };
            // The new block appears and the head drops its samples in one
            // step for queriers, which read blocks and head under the read
            // lock: otherwise a select between the two would find those
            // samples nowhere.
            let mut blocks = write(&self.blocks);
            if let Some(block) = block {
                insert_block(&mut blocks, block);
            }
            self.head.truncate_before(boundary);
            drop(blocks);
            self.counters
                .head_truncations
                .fetch_add(1, Ordering::Relaxed);
            wal_segment_before = self.wal.cut_segment().map_err(io_err)?;
        }
        // Everything logged before the new segment is now either in the
        // block (t < boundary) or still in the head (t >= boundary).
        let through = wal_segment_before.saturating_sub(1);
        if through > 0 {
            let live = self.head.live_ids();
            wal::checkpoint(self.wal.dir(), through, &|id| live.contains(&id), boundary)
                .map_err(io_err)?;
            self.wal.truncate_before(through + 1).map_err(io_err)?;
        }
        Ok(())
    }

    fn add_block(&self, meta: &BlockMeta) -> Result<()> {
        let block = self.open_block(meta)?;
        insert_block(&mut write(&self.blocks), block);
        Ok(())
    }

    fn open_block(&self, meta: &BlockMeta) -> Result<Arc<Block>> {
        Ok(Arc::new(
            Block::open(&self.dir.join(&meta.ulid)).map_err(io_err)?,
        ))
    }

    /// Runs compactions until the planner finds nothing to do.
    pub fn compact_all(&self) -> Result<()> {
        let max_range = match self.raw_retention() {
            Some(r) => (r / 10).clamp(self.opts.block_range_ms, MAX_BLOCK_RANGE_MS),
            None => MAX_BLOCK_RANGE_MS,
        };
        let ranges = compact::compaction_ranges(self.opts.block_range_ms, max_range);
        loop {
            let blocks = self.blocks();
            let metas: Vec<&BlockMeta> = blocks.iter().map(|b| b.meta()).collect();
            let Some(plan) = compact::plan(&metas, &ranges) else {
                return Ok(());
            };
            let inputs: Vec<Arc<Block>> = plan.iter().map(|&i| blocks[i].clone()).collect();
            self.merge(&inputs)?;
        }
    }

    /// Merges every group of blocks whose time ranges overlap.
    fn merge_overlapping(&self) -> Result<()> {
        loop {
            let blocks = self.blocks();
            let metas: Vec<&BlockMeta> = blocks.iter().map(|b| b.meta()).collect();
            let Some(group) = compact::plan_overlaps(&metas) else {
                return Ok(());
            };
            let inputs: Vec<Arc<Block>> = group.iter().map(|&i| blocks[i].clone()).collect();
            self.merge(&inputs)?;
        }
    }

    /// Replaces `inputs` with one block of their samples that are not
    /// deleted (with none, when there are no such samples).
    fn merge(&self, inputs: &[Arc<Block>]) -> Result<()> {
        match compact::merge_blocks(&self.dir, inputs) {
            Ok(meta) => {
                if let Some(meta) = &meta {
                    self.add_block(meta)?;
                }
                self.remove_blocks(inputs)?;
                self.counters.compactions.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.counters
                    .compactions_failed
                    .fetch_add(1, Ordering::Relaxed);
                Err(io_err(format!("compaction failed: {e}")))
            }
        }
    }

    /// Replaces `block`, which overlaps no other block, with a copy without
    /// its deleted samples (with nothing, when all of them are deleted).
    fn rewrite_without_deleted(&self, block: &Arc<Block>) -> Result<()> {
        match compact::rewrite_block(&self.dir, block) {
            Ok(meta) => {
                if let Some(meta) = &meta {
                    self.add_block(meta)?;
                }
                self.remove_blocks(std::slice::from_ref(block))?;
                self.counters.compactions.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.counters
                    .compactions_failed
                    .fetch_add(1, Ordering::Relaxed);
                Err(io_err(format!(
                    "rewriting block {} without its deleted samples: {e}",
                    block.meta().ulid
                )))
            }
        }
    }

    /// Deletes every sample in `[mint, maxt]` (inclusive) of the series
    /// matching all `matchers`, in the blocks (tombstones) and in the head
    /// (after logging a tombstones record, so a crash cannot bring them
    /// back). At least one matcher must not match the empty string.
    /// Samples committed after this returns are kept, whatever their time.
    pub fn delete_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<()> {
        model::storage::check_selectable(matchers)?;
        if mint > maxt {
            return Ok(());
        }
        // A compaction running meanwhile could merge a block before its
        // new tombstones are written and so keep the deleted samples.
        let _maintenance = lock(&self.maintenance);
        for block in self.blocks() {
            block
                .delete(matchers, mint, maxt)
                .map_err(|e| io_err(format!("deleting from block {}: {e}", block.meta().ulid)))?;
        }
        // No commit in flight: every sample logged so far is in the head,
        // and the record lands after all of them in the WAL.
        let _no_commits = write(&self.commit_lock);
        let series = self.head.series_with_samples_in(matchers, mint, maxt);
        if series.is_empty() {
            return Ok(());
        }
        let entries: Vec<RefTombstone> = series
            .iter()
            .map(|s| RefTombstone {
                id: s.id,
                mint,
                maxt,
            })
            .collect();
        let mut record = Vec::new();
        wal::encode_tombstones(&entries, &mut record);
        self.wal
            .log(&[&record])
            .map_err(|e| io_err(format!("writing the WAL: {e}")))?;
        self.head.delete(&series, mint, maxt);
        tracing::info!(
            head_series = series.len(),
            mint,
            maxt,
            "deleted series samples"
        );
        Ok(())
    }

    /// Writes every block that has tombstones again without the deleted
    /// samples (a block left with none disappears). Overlapping blocks are
    /// merged first, as compaction would, so a rewritten block's new ULID
    /// cannot change which block wins a duplicate timestamp.
    pub fn clean_tombstones(&self) -> Result<()> {
        let _maintenance = lock(&self.maintenance);
        self.merge_overlapping()?;
        for block in self.blocks() {
            if !block.tombstones().is_empty() {
                self.rewrite_without_deleted(&block)?;
            }
        }
        Ok(())
    }

    /// Writes a snapshot into `dir` (created when missing): a fresh
    /// directory for every block with each of its files hard-linked (blocks
    /// are immutable, and a later delete replaces `tombstones` rather than
    /// writing into it), and, with [`SnapshotHead::Include`], the head
    /// written as one more block, newer than the others. `dir` can then be
    /// opened as a database of its own. Commits are not paused: one that
    /// lands while the head is written may be in the snapshot for some
    /// series and not for others.
    pub fn snapshot(&self, dir: &Path, head: SnapshotHead) -> Result<()> {
        let snapshot_err =
            |e: &dyn std::fmt::Display| io_err(format!("snapshot into {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(|e| snapshot_err(&e))?;
        let _maintenance = lock(&self.maintenance);
        for block in self.blocks() {
            link_block(block.dir(), &dir.join(&block.meta().ulid))
                .map_err(|e| snapshot_err(&format!("linking block {}: {e}", block.meta().ulid)))?;
        }
        // Tier blocks, as they lie on disk (maintenance, which writes and
        // deletes them, waits for the lock held here).
        let tier_blocks = tiers::tier_block_paths(&self.dir).map_err(|e| snapshot_err(&e))?;
        for relative in &tier_blocks {
            let to = dir.join(relative);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| snapshot_err(&e))?;
            }
            link_block(&self.dir.join(relative), &to)
                .map_err(|e| snapshot_err(&format!("linking tier block {relative}: {e}")))?;
        }
        if !tier_blocks.is_empty() {
            let root = dir.join("tiers");
            for entry in std::fs::read_dir(&root).map_err(|e| snapshot_err(&e))? {
                let entry = entry.map_err(|e| snapshot_err(&e))?;
                block::sync_dir(&entry.path()).map_err(|e| snapshot_err(&e))?;
            }
            block::sync_dir(&root).map_err(|e| snapshot_err(&e))?;
        }
        if head == SnapshotHead::Include {
            self.write_head_block(dir).map_err(|e| snapshot_err(&e))?;
        }
        block::sync_dir(dir).map_err(|e| snapshot_err(&e))?;
        Ok(())
    }

    /// Writes a snapshot (see [`Db::snapshot`]) into a new directory
    /// `<data dir>/snapshots/<name>` and returns the name: the UTC time as
    /// `YYYYMMDDTHHMMSSZ`, a dash and 16 random hex digits, as Prometheus
    /// names snapshots. Nothing of the name comes from the caller. A
    /// snapshot that fails is removed again.
    pub fn snapshot_in_data_dir(&self, head: SnapshotHead) -> Result<String> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let name = snapshot_name(now_ms, block::random_u64());
        let parent = self.dir.join(SNAPSHOTS_DIR);
        std::fs::create_dir_all(&parent)
            .map_err(|e| io_err(format!("creating {}: {e}", parent.display())))?;
        let dir = parent.join(&name);
        std::fs::create_dir(&dir).map_err(|e| {
            io_err(format!(
                "creating snapshot directory {}: {e}",
                dir.display()
            ))
        })?;
        match self.snapshot(&dir, head) {
            Ok(()) => {
                tracing::info!(snapshot = %dir.display(), ?head, "wrote snapshot");
                Ok(name)
            }
            Err(e) => {
                if let Err(cleanup) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(snapshot = %dir.display(), error = %cleanup, "cannot remove failed snapshot");
                }
                Err(e)
            }
        }
    }

    /// Writes every head sample into `dir` as one block.
    fn write_head_block(&self, dir: &Path) -> std::result::Result<(), block::BlockError> {
        let series = self.head.all_series_sorted();
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for s in &series {
            let (low, high) = s.time_bounds();
            min = min.min(low);
            max = max.max(high);
        }
        if min > max {
            return Ok(());
        }
        let new = NewBlock {
            min_time: min,
            max_time: max.saturating_add(1),
            level: 1,
            sources: Vec::new(),
            parents: Vec::new(),
        };
        let list = series.iter().map(|s| {
            (
                s.labels(),
                s.samples(i64::MIN, i64::MAX),
                s.histograms(i64::MIN, i64::MAX),
            )
        });
        compact::write_block_with_histograms(dir, new, list).map(|_| ())
    }

    fn remove_blocks(&self, gone: &[Arc<Block>]) -> Result<()> {
        {
            let mut blocks = write(&self.blocks);
            blocks.retain(|b| !gone.iter().any(|g| g.meta().ulid == b.meta().ulid));
        }
        for b in gone {
            // Queries holding the block keep their mmaps; Linux keeps the
            // unlinked files alive until they are unmapped.
            std::fs::remove_dir_all(b.dir())
                .map_err(|e| io_err(format!("deleting {}: {e}", b.dir().display())))?;
        }
        Ok(())
    }

    fn apply_retention(&self, now_ms: i64) -> Result<()> {
        let blocks = self.blocks();
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        // A rule may keep some series longer than the global retention:
        // whole blocks go only once the longest retention has passed.
        let longest_rule = read(&self.retention_rules)
            .iter()
            .map(|r| r.retention_ms)
            .max();
        self.apply_tier_retention(now_ms)?;
        if let Some(keep) = self.raw_retention() {
            let keep = keep.max(longest_rule.unwrap_or(keep));
            let newest = self.retention_anchor(now_ms);
            let cutoff = newest.saturating_sub(keep);
            doomed.extend(
                blocks
                    .iter()
                    .filter(|b| b.meta().max_time <= cutoff)
                    .cloned(),
            );
        }
        if let Some(limit) = self.opts.retention_size_bytes {
            let mut by_age = blocks.clone();
            by_age.sort_by_key(|b| b.meta().max_time);
            let mut total: u64 =
                by_age.iter().map(|b| b.size_bytes()).sum::<u64>() + self.wal_size();
            for b in by_age {
                if total <= limit {
                    break;
                }
                total = total.saturating_sub(b.size_bytes());
                if !doomed.iter().any(|d| d.meta().ulid == b.meta().ulid) {
                    doomed.push(b);
                }
            }
        }
        if !doomed.is_empty() {
            tracing::info!(blocks = doomed.len(), "deleting blocks past retention");
            self.counters
                .retention_deletions
                .fetch_add(doomed.len() as u64, Ordering::Relaxed);
            self.remove_blocks(&doomed)?;
        }
        Ok(())
    }

    fn wal_size(&self) -> u64 {
        dir_size(self.wal.dir())
    }

    /// Bytes of all block directories.
    pub fn blocks_size(&self) -> u64 {
        read(&self.blocks).iter().map(|b| b.size_bytes()).sum()
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Links the files of the block in `from` into a new directory `to`.
fn link_block(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    std::fs::create_dir(to.join("chunks"))?;
    for name in ["meta.json", "index", crate::tombstones::TOMBSTONES_FILE] {
        match std::fs::hard_link(from.join(name), to.join(name)) {
            Ok(()) => {}
            // A block without deletes has no tombstones file.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && name == crate::tombstones::TOMBSTONES_FILE => {}
            Err(e) => return Err(e),
        }
    }
    for entry in std::fs::read_dir(from.join("chunks"))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::hard_link(entry.path(), to.join("chunks").join(entry.file_name()))?;
        }
    }
    for d in [to.join("chunks"), to.to_path_buf()] {
        model::durable::sync_dir(&d)?;
    }
    Ok(())
}

/// A snapshot's directory name: `now_ms` in UTC as `YYYYMMDDTHHMMSSZ`, a
/// dash, and `random` as 16 hex digits.
fn snapshot_name(now_ms: i64, random: u64) -> String {
    let secs = now_ms.div_euclid(1000);
    let (year, month, day) = model::time::civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z-{random:016x}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

fn load_blocks(dir: &Path) -> Result<Vec<Arc<Block>>> {
    let mut blocks = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| io_err(format!("reading {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || !path.join("meta.json").exists() {
            continue;
        }
        match crate::verify::open_verified(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            // A broken block must not take the whole database down: a
            // damaged one is moved to `corrupted/` (logged there), one
            // unreadable for another reason is left in place.
            Err(e) if crate::verify::is_damage(&e) => {
                if let Err(move_error) = crate::verify::quarantine(&path, &e) {
                    tracing::error!(block = %path.display(), error = %e, move_error = %move_error, "skipping a corrupted block that could not be moved aside")
                }
            }
            Err(e) => {
                tracing::error!(block = %path.display(), error = %e, "skipping unreadable block")
            }
        }
    }
    blocks.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
    Ok(blocks)
}

/// How many samples ahead a commit prefetches the chunk it will write:
/// enough for memory to answer first, few enough to stay in the cache.
const COMMIT_PREFETCH_DISTANCE: usize = 8;

/// The samples staged for one commit, in order, as runs of one series.
/// A run holds one pending count and one reference of its series
/// (released by [`Staged::release`]) however many samples it has, and a
/// commit locks its series once: a body that writes a series' points one
/// after another (a text import, a backfill) pays those atomic operations
/// once a run, not once a sample.
#[derive(Default)]
struct Staged {
    /// Each run's series and its number of samples.
    runs: Vec<(SeriesArc, usize)>,
    /// The runs' samples, one run after another.
    samples: Vec<(i64, f64)>,
}

impl Staged {
    fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the last run is of `series` (so a sample of it may join
    /// that run without a hold of its own).
    fn last_is(&self, series: &MemSeries) -> bool {
        self.runs
            .last()
            .is_some_and(|(s, _)| std::ptr::eq(SeriesArc::as_ptr(s), series))
    }

    /// Adds a sample to the last run; only after [`Staged::last_is`].
    fn extend_last(&mut self, t: i64, v: f64) {
        if let Some((_, n)) = self.runs.last_mut() {
            *n += 1;
            self.samples.push((t, v));
        }
    }

    /// Starts a run of `series`, whose one pending count (the caller's)
    /// the run takes over.
    fn push_held(&mut self, series: SeriesArc, samples: &[(i64, f64)]) {
        if samples.is_empty() {
            series.release_pending();
            return;
        }
        self.runs.push((series, samples.len()));
        self.samples.extend_from_slice(samples);
    }

    /// Each run's series with its samples, in order.
    fn iter(&self) -> impl Iterator<Item = (&SeriesArc, &[(i64, f64)])> {
        let mut rest = self.samples.as_slice();
        self.runs.iter().map(move |(series, n)| {
            let (run, after) = rest.split_at((*n).min(rest.len()));
            rest = after;
            (series, run)
        })
    }

    /// Gives back every run's pending count and empties the list.
    fn release(&mut self) {
        for (series, _) in self.runs.drain(..) {
            series.release_pending();
        }
        self.samples.clear();
    }
}

/// Stages samples for one commit.
pub struct DbAppender<'a> {
    db: &'a Db,
    /// The staged samples.
    staged: Staged,
    /// Most recent lookups, to avoid rehashing labels for repeated series.
    last: Option<(Labels, SeriesArc)>,
    /// Staged exemplars; each holds one pending count of its series too.
    exemplars: Vec<(SeriesArc, Exemplar)>,
    /// The writer, for the series limits (`Appender::set_origin`).
    scope: Arc<Scope>,
    /// Staged native histograms; each holds one pending count too. They
    /// are applied after the floats of the same commit.
    histograms: Vec<(SeriesArc, i64, FloatHistogram)>,
    /// The oldest time a created timestamp's zero sample may have: the
    /// end of the newest block (Prometheus's `minValidTime`), found on
    /// the first `append_created_zero`.
    created_floor: Option<i64>,
}

impl DbAppender<'_> {
    fn release(&mut self) {
        self.staged.release();
        for (s, _) in self.exemplars.drain(..) {
            s.release_pending();
        }
        for (s, _, _) in self.histograms.drain(..) {
            s.release_pending();
        }
        self.last = None;
    }
}

impl DbAppender<'_> {
    /// What the series limiter checks a new series of this appender
    /// against.
    fn admission(&self) -> Admission<'_> {
        Admission {
            limiter: Some(&self.db.limiter),
            scope: &self.scope,
        }
    }

    fn count_created(&self, created: bool) {
        if created {
            self.db
                .counters
                .series_created
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The series of `labels` held pending for a created timestamp's
    /// zero sample at `created` ahead of a sample at `t`, or `None` (and
    /// nothing held) when the zero sample is to be skipped: `created` is
    /// not before `t`, falls before the newest block's end, or is not
    /// after the series' newest sample in the head. These are
    /// Prometheus's `AppendCTZeroSample` checks (`ErrCTNewerThanSample`,
    /// `ErrOutOfBounds`, `ErrOutOfOrderCT`, a duplicate): the zero sample
    /// is never stored out of order.
    fn created_zero_series(
        &mut self,
        labels: &Labels,
        t: i64,
        created: i64,
    ) -> Result<Option<SeriesArc>> {
        if created >= t {
            return Ok(None);
        }
        let floor = match self.created_floor {
            Some(floor) => floor,
            None => {
                let floor = read(&self.db.blocks)
                    .iter()
                    .map(|b| b.meta().max_time)
                    .max()
                    .unwrap_or(i64::MIN);
                self.created_floor = Some(floor);
                floor
            }
        };
        if created < floor {
            return Ok(None);
        }
        let series = self.cached_series(labels)?;
        if created <= series.newest_time() {
            series.release_pending();
            return Ok(None);
        }
        Ok(Some(series))
    }

    /// The head series of `labels` (checked), created and admitted by
    /// the series limits if new, held pending for this appender.
    /// The series `labels` names, held for this appender: the one the
    /// previous append used when the labels are the same (the common run
    /// of one series's samples), else looked up or created and remembered.
    fn cached_series(&mut self, labels: &Labels) -> Result<SeriesArc> {
        if let Some((l, s)) = &self.last
            && l == labels
        {
            s.hold_again();
            return Ok(s.clone());
        }
        let series = self.pending_series(labels)?;
        self.last = Some((labels.clone(), series.clone()));
        Ok(series)
    }

    fn pending_series(&self, labels: &Labels) -> Result<SeriesArc> {
        model::storage::validate_labels(labels)?;
        let (series, created) = self
            .db
            .head
            .get_or_create_pending(labels, &self.admission())?;
        self.count_created(created);
        Ok(series)
    }
}

impl Appender for DbAppender<'_> {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<()> {
        if let Some((l, s)) = &self.last
            && l == labels
        {
            if self.staged.last_is(s) {
                self.staged.extend_last(t, v);
            } else {
                // Held already, so collection cannot have removed it.
                s.hold_again();
                self.staged.push_held(s.clone(), &[(t, v)]);
            }
            return Ok(());
        }
        let series = self.pending_series(labels)?;
        self.staged.push_held(series.clone(), &[(t, v)]);
        self.last = Some((labels.clone(), series));
        Ok(())
    }

    fn append_with_handle(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<Option<model::storage::SeriesHandle>> {
        self.append(labels, t, v)?;
        Ok(self
            .staged
            .runs
            .last()
            .map(|(s, _)| model::storage::SeriesHandle::new(s.clone())))
    }

    fn append_handle(
        &mut self,
        handle: &model::storage::SeriesHandle,
        t: i64,
        v: f64,
    ) -> Result<bool> {
        let Some(series) = handle.downcast_ref::<SeriesArc>() else {
            return Ok(false);
        };
        // The last run's series is this head's and held already.
        if self.staged.last_is(series) {
            self.staged.extend_last(t, v);
            return Ok(true);
        }
        let Some(series) = handle.to_pointer::<SeriesArc>() else {
            return Ok(false);
        };
        if !self.db.head.owns(&series) || !series.try_hold() {
            return Ok(false);
        }
        self.staged.push_held(series, &[(t, v)]);
        Ok(true)
    }

    fn prefetch_handle(&self, handle: &model::storage::SeriesHandle) {
        if let Some(series) = handle.downcast_ref::<SeriesArc>() {
            series.prefetch();
        }
    }

    fn append_pairs(&mut self, pairs: &[(&str, &str)], t: i64, v: f64) -> Result<()> {
        if pairs.is_empty() || !model::labels::pairs_are_normalized(pairs) {
            return self.append(&Labels::from_pairs(pairs.iter().copied()), t, v);
        }
        let (series, created) = self
            .db
            .head
            .get_or_create_pending_pairs(pairs, &self.admission())?;
        self.count_created(created);
        self.staged.push_held(series, &[(t, v)]);
        Ok(())
    }

    fn append_pairs_batch(
        &mut self,
        batch: &PairsBatch<'_>,
        refused: &mut dyn FnMut(usize, StorageError) -> Result<()>,
    ) -> Result<()> {
        let mut wanted: Vec<WantedSeries<'_>> = batch
            .iter()
            .map(|(pairs, samples)| {
                // One hold a series: its samples are one run.
                let holds = u32::from(!samples.is_empty());
                let look =
                    holds > 0 && !pairs.is_empty() && model::labels::pairs_are_normalized(pairs);
                WantedSeries {
                    pairs,
                    hash: if look {
                        model::labels::stable_hash_pairs(pairs.iter().copied())
                    } else {
                        0
                    },
                    holds,
                    look,
                    found: None,
                }
            })
            .collect();
        self.db.head.find_pending_many(&mut wanted);
        self.staged.samples.reserve(batch.samples());
        for (index, (w, (pairs, samples))) in wanted.into_iter().zip(batch.iter()).enumerate() {
            match w.found {
                Some(series) => self.staged.push_held(series, samples),
                None => {
                    for &(t, v) in samples {
                        if let Err(e) = self.append_pairs(pairs, t, v) {
                            refused(index, e)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn reserve(&mut self, additional: usize) {
        self.staged.samples.reserve(additional);
    }

    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: i64,
        histogram: &FloatHistogram,
    ) -> Result<()> {
        histogram
            .validate()
            .map_err(|e| StorageError::new(StorageErrorKind::InvalidInput, e.to_string()))?;
        if histogram.positive_buckets.len() > crate::chunkenc::hist::MAX_BUCKETS
            || histogram.negative_buckets.len() > crate::chunkenc::hist::MAX_BUCKETS
            || histogram.custom_values.len() > crate::chunkenc::hist::MAX_BUCKETS
        {
            return Err(StorageError::new(
                StorageErrorKind::InvalidInput,
                "native histogram has more than 65536 buckets on a side",
            ));
        }
        let series = self.cached_series(labels)?;
        self.histograms.push((series, t, histogram.clone()));
        Ok(())
    }

    /// Checked against the head as Prometheus checks it
    /// ([`DbAppender::created_zero_series`]), then staged as an ordinary
    /// sample: the WAL logs it and the head applies it, so it survives a
    /// restart and goes into blocks like any other.
    fn append_created_zero(&mut self, labels: &Labels, t: i64, created: i64) -> Result<bool> {
        let Some(series) = self.created_zero_series(labels, t, created)? else {
            return Ok(false);
        };
        self.staged.push_held(series, &[(created, 0.0)]);
        Ok(true)
    }

    fn append_histogram_created_zero(
        &mut self,
        labels: &Labels,
        t: i64,
        created: i64,
        like: &FloatHistogram,
    ) -> Result<bool> {
        let Some(series) = self.created_zero_series(labels, t, created)? else {
            return Ok(false);
        };
        self.histograms.push((series, created, like.created_zero()));
        Ok(true)
    }

    fn commit(&mut self) -> Result<()> {
        self.commit_with(wal::Durability::Synced)
    }

    /// Logs with [`wal::Durability::Written`]: the WAL syncs within
    /// [`wal::UNSYNCED_WINDOW`].
    fn commit_unsynced(&mut self) -> Result<()> {
        self.commit_with(wal::Durability::Written)
    }

    fn rollback(&mut self) {
        self.release();
    }

    fn set_origin(&mut self, origin: &model::limits::WriteOrigin) {
        self.scope = self.db.limiter.scope(origin);
    }

    /// Checks the exemplar against the store now (Prometheus's
    /// `ValidateExemplar` at append time) and stages it; the commit logs
    /// it and stores it, checking again.
    fn append_exemplar(&mut self, labels: &Labels, mut exemplar: Exemplar) -> Result<()> {
        // Prometheus drops empty values here (`WithoutEmpty`); a label set
        // built by `Labels::from_pairs` has none already.
        if exemplar.labels.iter().any(|l| l.value.is_empty()) {
            exemplar.labels = Labels::from_pairs(
                exemplar
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone())),
            );
        }
        match self.db.exemplars.validate(labels, &exemplar) {
            Ok(()) => {}
            Err(Refusal::Duplicate | Refusal::Disabled) => return Ok(()),
            Err(refusal) => {
                return Err(StorageError::new(
                    StorageErrorKind::InvalidInput,
                    refusal.message(),
                ));
            }
        }
        let series = match &self.last {
            Some((l, s)) if l == labels => {
                s.hold_again();
                s.clone()
            }
            _ => self.db.head.get_pending(labels).ok_or_else(|| {
                StorageError::new(
                    StorageErrorKind::InvalidInput,
                    format!("unknown series {labels} when trying to add exemplar"),
                )
            })?,
        };
        self.exemplars.push((series, exemplar));
        Ok(())
    }
}

impl DbAppender<'_> {
    fn commit_with(&mut self, durability: wal::Durability) -> Result<()> {
        if self.staged.is_empty() && self.exemplars.is_empty() && self.histograms.is_empty() {
            self.release();
            return Ok(());
        }
        let mut new_series: Vec<RefSeries> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let staged_series = self.staged.runs.iter().map(|(s, _)| s);
        let histogram_series = self.histograms.iter().map(|(s, _, _)| s);
        for s in staged_series
            .chain(histogram_series)
            .chain(self.exemplars.iter().map(|(s, _)| s))
        {
            if !s.wal_logged() && seen.insert(s.id) {
                new_series.push(RefSeries {
                    id: s.id,
                    labels: s.labels(),
                });
            }
        }
        let mut series_rec = Vec::new();
        let mut samples_rec = Vec::new();
        if !new_series.is_empty() {
            wal::encode_series(&new_series, &mut series_rec);
        }
        if !self.staged.is_empty() {
            let mut record = wal::SamplesRecord::new(&mut samples_rec, self.staged.len());
            for (s, run) in self.staged.iter() {
                for &(t, v) in run {
                    record.push(s.id, t, v);
                }
            }
        }
        let mut histograms_rec = Vec::new();
        if !self.histograms.is_empty() {
            let histograms: Vec<RefHistogram> = self
                .histograms
                .iter()
                .map(|(s, t, h)| RefHistogram {
                    id: s.id,
                    t: *t,
                    h: h.clone(),
                })
                .collect();
            wal::encode_histograms(&histograms, &mut histograms_rec);
        }
        let mut exemplars_rec = Vec::new();
        if !self.exemplars.is_empty() {
            let exemplars: Vec<RefExemplar> = self
                .exemplars
                .iter()
                .map(|(s, e)| RefExemplar {
                    id: s.id,
                    exemplar: e.clone(),
                })
                .collect();
            wal::encode_exemplars(&exemplars, &mut exemplars_rec);
        }

        let _commit = read(&self.db.commit_lock);
        let records: Vec<&[u8]> = [&series_rec, &samples_rec, &histograms_rec, &exemplars_rec]
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(Vec::as_slice)
            .collect();
        if let Err(e) = self.db.wal.log_with(&records, durability) {
            self.release();
            return Err(io_err(format!("writing the WAL: {e}")));
        }
        let range = self.db.head.block_range();
        let mut ooo = 0u64;
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for (index, (s, run)) in self.staged.iter().enumerate() {
            if let Some((ahead, _)) = self.staged.runs.get(index + COMMIT_PREFETCH_DISTANCE) {
                ahead.prefetch_open_chunk();
            }
            s.mark_wal_logged();
            ooo += s.apply_run(run, range);
            for &(t, _) in run {
                min_t = min_t.min(t);
                max_t = max_t.max(t);
            }
        }
        let n_histograms = self.histograms.len() as u64;
        for (s, t, h) in self.histograms.drain(..) {
            s.mark_wal_logged();
            if s.apply_histogram(t, h, range) {
                ooo += 1;
            }
            min_t = min_t.min(t);
            max_t = max_t.max(t);
            s.release_pending();
        }
        if !self.staged.is_empty() || n_histograms > 0 {
            self.db.head.note_time(min_t);
            self.db.head.note_time(max_t);
        }
        for (s, exemplar) in self.exemplars.drain(..) {
            s.mark_wal_logged();
            // Refusals here (out of order since staging: another commit
            // came first) are counted by the store; the exemplar is not
            // an error of this commit, as in Prometheus.
            let _ = self.db.exemplars.add(&s.labels(), exemplar);
            s.release_pending();
        }
        let c = &self.db.counters;
        c.samples_appended
            .fetch_add(self.staged.len() as u64 + n_histograms, Ordering::Relaxed);
        c.out_of_order.fetch_add(ooo, Ordering::Relaxed);
        self.release();
        Ok(())
    }
}

impl Drop for DbAppender<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(DbAppender {
            created_floor: None,
            db: self,
            staged: Staged::default(),
            last: None,
            exemplars: Vec::new(),
            scope: self.limiter.default_scope(),
            histograms: Vec::new(),
        })
    }
}

impl Queryable for Db {
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>> {
        let tiers = read(&self.tiers)
            .iter()
            .skip(1)
            .map(|t| crate::querier::TierView {
                resolution_ms: t.spec.resolution_ms,
                blocks: t
                    .blocks
                    .iter()
                    // One window before `mint` too: an aligned rate
                    // starts from the last point before its range
                    // (`SelectHints::aligned`).
                    .filter(|b| {
                        b.meta().min_time <= maxt
                            && b.meta().max_time > mint.saturating_sub(t.spec.resolution_ms)
                    })
                    .cloned()
                    .collect(),
            })
            .collect();
        Ok(Box::new(DbQuerier {
            blocks: self.blocks.clone(),
            head: self.head.clone(),
            mint,
            maxt,
            tiers,
        }))
    }
}

impl StorageAdmin for Db {
    fn delete_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<()> {
        Db::delete_series(self, matchers, mint, maxt)
    }

    fn clean_tombstones(&self) -> Result<()> {
        Db::clean_tombstones(self)
    }

    fn snapshot(&self, head: SnapshotHead) -> Result<String> {
        self.snapshot_in_data_dir(head)
    }
}

impl Storage for Db {
    fn head_stats(&self, request: &StatsRequest) -> HeadStats {
        self.head.stats(request)
    }

    fn set_tiers(&self, tiers: &[(i64, i64)]) -> Result<bool> {
        let specs: Vec<TierSpec> = tiers
            .iter()
            .map(|&(resolution_ms, retention_ms)| TierSpec {
                resolution_ms,
                retention_ms,
            })
            .collect();
        Db::set_tiers(self, &specs)?;
        Ok(true)
    }

    fn set_retention_rules(&self, rules: Vec<(Vec<Matcher>, i64)>) -> bool {
        Db::set_retention_rules(
            self,
            rules
                .into_iter()
                .map(|(matchers, retention_ms)| RetentionRule {
                    matchers,
                    retention_ms,
                })
                .collect(),
        );
        true
    }

    fn start_time(&self) -> i64 {
        let oldest_block = read(&self.blocks)
            .iter()
            .map(|b| b.meta().min_time)
            .min()
            .unwrap_or(i64::MAX);
        oldest_block.min(self.head.min_time())
    }

    fn admin(&self) -> Option<&dyn StorageAdmin> {
        Some(self)
    }

    fn select_exemplars(
        &self,
        mint: i64,
        maxt: i64,
        selectors: &[Vec<Matcher>],
    ) -> Result<Vec<ExemplarSeries>> {
        Ok(self.exemplars.select(mint, maxt, selectors))
    }

    fn set_series_limits(&self, spec: &model::limits::LimitsSpec) -> bool {
        self.limiter.set_spec(spec);
        true
    }

    fn series_limit_stats(&self) -> model::limits::LimitStats {
        self.limiter.stats(self.head.num_series())
    }

    fn set_max_exemplars(&self, max_exemplars: u64) -> bool {
        self.exemplars
            .resize(usize::try_from(max_exemplars).unwrap_or(usize::MAX));
        true
    }

    fn exemplar_counters(&self) -> ExemplarCounters {
        self.exemplars.counters()
    }

    fn counters(&self) -> StorageCounters {
        let c = &self.counters;
        let wal = self.wal.stats();
        let blocks = read(&self.blocks);
        StorageCounters {
            samples_appended_total: c.samples_appended.load(Ordering::Relaxed),
            series_created_total: c.series_created.load(Ordering::Relaxed),
            head_series: self.head.num_series(),
            head_chunks: self.head.num_chunks(),
            wal_writes_total: wal.writes,
            wal_fsyncs_total: wal.fsyncs,
            wal_corruptions_repaired_total: self.wal_repairs_at_open.max(wal.repairs),
            compactions_total: c.compactions.load(Ordering::Relaxed),
            compactions_failed_total: c.compactions_failed.load(Ordering::Relaxed),
            head_truncations_total: c.head_truncations.load(Ordering::Relaxed),
            blocks_loaded: blocks.len() as u64,
            blocks_deleted_by_retention_total: c.retention_deletions.load(Ordering::Relaxed),
            storage_blocks_bytes: blocks.iter().map(|b| b.size_bytes()).sum(),
            out_of_order_samples_total: c.out_of_order.load(Ordering::Relaxed),
            tiers: read(&self.tiers)
                .iter()
                .skip(1)
                .map(|t| model::storage::TierCounters {
                    resolution_ms: t.spec.resolution_ms,
                    blocks: t.blocks.len() as u64,
                    bytes: t.blocks.iter().map(|b| b.size_bytes()).sum(),
                })
                .collect(),
            downsamples_total: c.downsamples.load(Ordering::Relaxed),
            downsamples_failed_total: c.downsamples_failed.load(Ordering::Relaxed),
            last_downsample_seconds: c.last_downsample_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_prometheus_shaped() {
        // 2017-12-10T21:12:24Z, Prometheus's documented example.
        assert_eq!(
            snapshot_name(1_512_940_344_000, 0x2be6_50b6_d019_eb54),
            "20171210T211224Z-2be650b6d019eb54"
        );
        assert_eq!(snapshot_name(0, 1), "19700101T000000Z-0000000000000001");
        assert_eq!(
            snapshot_name(-1, u64::MAX),
            "19691231T235959Z-ffffffffffffffff"
        );
    }
}
