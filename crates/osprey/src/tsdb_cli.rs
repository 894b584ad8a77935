//! `osprey tsdb backup` and `osprey tsdb restore` (format:
//! `docs/format/backup.md`, how-to: `docs/backup.md`).

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
}

pub fn run(command: TsdbCommand) -> anyhow::Result<()> {
    match command {
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
