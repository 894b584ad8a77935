//! `osprey tsdb backup` and `osprey tsdb restore` (format:
//! `docs/format/backup.md`, how-to: `docs/backup.md`), and
//! `osprey tsdb downsample` (resolution tiers, `docs/format/downsample.md`),
//! and `osprey tsdb verify` (every CRC of blocks and WAL, `docs/durability.md`).

use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(clap::Subcommand)]
pub enum TsdbCommand {
    /// Copy the blocks of a data directory (or of one of its snapshots)
    /// into DEST with a manifest of checksums.
    Backup {
        /// The data directory. Without --snapshot no server may be running
        /// on it: it is opened, snapshotted and closed.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
        /// A snapshot the running server made
        /// (POST /api/v1/admin/tsdb/snapshot answers its name), under
        /// <data-dir>/snapshots/; backs up that snapshot instead.
        #[arg(long)]
        snapshot: Option<String>,
        /// Where the backup goes: a missing or empty directory.
        dest: PathBuf,
    },
    /// Check a backup and copy its blocks into an empty data directory.
    Restore {
        /// The data directory to fill (it may exist, without blocks or WAL).
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
        /// The backup directory.
        backup: PathBuf,
    },
    /// Run compaction, downsampling into the configured `storage.tiers`
    /// and retention to completion on a data directory no server is
    /// using, so backfilled history (`osprey import`) gets its tiers now.
    Downsample {
        /// The configuration file whose `storage` section names the tiers.
        #[arg(long)]
        config: PathBuf,
        /// The data directory.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
    },
    /// Check every block (meta.json, the index with every series entry and
    /// postings list, every chunk's CRC) and every WAL segment and
    /// checkpoint (frame CRCs, records) of a data directory. Prints one
    /// line per problem and exits with status 1 when there is any; changes
    /// nothing. Safe to run while a server uses the directory, though a
    /// WAL segment being written may then show a torn tail.
    Verify {
        /// The data directory.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
    },
}

pub fn run(command: TsdbCommand) -> anyhow::Result<()> {
    match command {
        TsdbCommand::Downsample { config, data_dir } => downsample(&config, &data_dir),
        TsdbCommand::Verify { data_dir } => verify(&data_dir),
        TsdbCommand::Backup {
            data_dir,
            snapshot,
            dest,
        } => {
            let summary = match snapshot {
                Some(name) => {
                    // The name is what the snapshot API answered; it may
                    // not lead anywhere else.
                    if name.is_empty()
                        || !name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        bail!("--snapshot {name:?} is not a snapshot name");
                    }
                    let dir = data_dir.join(tsdb::db::SNAPSHOTS_DIR).join(&name);
                    if !dir.is_dir() {
                        bail!("no snapshot {name:?} in {}", dir.display());
                    }
                    tsdb::backup::backup_snapshot(&dir, &dest)
                }
                None => tsdb::backup::backup_offline(&data_dir, &dest),
            }
            .context("backup failed")?;
            println!(
                "backed up {} blocks ({} files, {} bytes) into {}",
                summary.blocks,
                summary.files,
                summary.bytes,
                dest.display()
            );
            Ok(())
        }
        TsdbCommand::Restore { data_dir, backup } => {
            let summary = tsdb::backup::restore(&backup, &data_dir).context("restore failed")?;
            println!(
                "restored {} blocks ({} files, {} bytes) into {}",
                summary.blocks,
                summary.files,
                summary.bytes,
                data_dir.display()
            );
            Ok(())
        }
    }
}

fn verify(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let report = tsdb::verify::verify_data_dir(data_dir);
    for problem in &report.problems {
        println!("{problem}");
    }
    for moved in &report.quarantined {
        println!(
            "{}: moved aside at an earlier start (not checked)",
            moved.display()
        );
    }
    println!(
        "checked {} blocks ({} series, {} chunks) and {} WAL segments ({} records) in {}: {}",
        report.blocks,
        report.series,
        report.chunks,
        report.wal_segments,
        report.wal_records,
        data_dir.display(),
        match report.problems.len() {
            0 => "ok".to_string(),
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    );
    if !report.problems.is_empty() {
        bail!(
            "{} problems found in {}",
            report.problems.len(),
            data_dir.display()
        );
    }
    Ok(())
}

fn downsample(config: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let config = config::load_file(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let storage = &config.storage;
    if storage.tiers.is_empty() {
        bail!("the configuration has no storage.tiers: nothing to downsample into");
    }
    let db = tsdb::Db::open(data_dir, tsdb::DbOptions::with_retention(None, None))
        .context("opening the database")?;
    let specs: Vec<tsdb::tiers::TierSpec> = storage
        .tiers
        .iter()
        .map(|t| tsdb::tiers::TierSpec {
            resolution_ms: t.resolution_ms,
            retention_ms: t.retention_ms,
        })
        .collect();
    db.set_tiers(&specs).context("loading the tiers")?;
    db.set_retention_rules(
        storage
            .retention_rules
            .iter()
            .map(|r| tsdb::db::RetentionRule {
                matchers: r.matchers.clone(),
                retention_ms: r.retention_ms,
            })
            .collect(),
    );
    // Everything in the head (the WAL) goes into blocks first, so it is
    // downsampled too.
    let head_max = db.head().max_time();
    if head_max != i64::MIN {
        db.cut_head(head_max.saturating_add(1))
            .context("writing the head to a block")?;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(i64::MAX);
    db.maintain(now_ms).context("compaction and downsampling")?;
    let raw: u64 = db.blocks().iter().map(|b| b.size_bytes()).sum();
    println!("raw: {} blocks, {raw} bytes", db.blocks().len());
    for (resolution, blocks) in db.tier_blocks() {
        let bytes: u64 = blocks.iter().map(|b| b.size_bytes()).sum();
        println!(
            "{}: {} blocks, {bytes} bytes",
            model::duration::format_duration_ms(resolution),
            blocks.len()
        );
    }
    Ok(())
}
