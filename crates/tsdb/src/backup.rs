//! Backups of a data directory's blocks, and their restore; the format is
//! `docs/format/backup.md`.
//!
//! A backup copies complete blocks (from a snapshot, which
//! [`crate::db::Db::snapshot_in_data_dir`] makes of a running database, or
//! from a database opened here for the purpose) into a directory of its
//! own with a manifest of sizes and CRC-32C checksums written last. A
//! restore checks the whole manifest before writing anything, then moves
//! each block into place through a `.tmp` directory and a rename, so a
//! crash leaves nothing half-restored.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::block::is_ulid;
use crate::db::{Db, DbOptions, SNAPSHOTS_DIR};
use model::storage::SnapshotHead;

/// The manifest's file name.
pub const MANIFEST: &str = "backup.json";

const FORMAT: &str = "osprey-backup";
const VERSION: u32 = 1;

/// The manifest (`backup.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_ms: i64,
    pub source: String,
    pub blocks: Vec<String>,
    pub files: Vec<FileEntry>,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub crc32c: u32,
}

/// What a backup or restore did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub blocks: usize,
    pub files: usize,
    pub bytes: u64,
}

/// Why a backup or restore failed; the message names the path.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(String);

fn err(path: &Path, what: &str, e: impl std::fmt::Display) -> BackupError {
    BackupError(format!("{what} {}: {e}", path.display()))
}

type Result<T> = std::result::Result<T, BackupError>;

/// Backs up the snapshot `snapshot` (a directory of blocks, as the admin
/// API's snapshot writes under `<data dir>/snapshots/`) into `dest`, which
/// must be missing or empty.
pub fn backup_snapshot(snapshot: &Path, dest: &Path) -> Result<Summary> {
    let blocks = block_dirs(snapshot)?;
    prepare_empty_dir(dest)?;
    let mut files = Vec::new();
    for block in &blocks {
        let from = snapshot.join(block);
        let to = dest.join(block);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| err(parent, "creating", e))?;
        }
        fs::create_dir(&to).map_err(|e| err(&to, "creating", e))?;
        for relative in block_files(&from)? {
            let path = format!("{block}/{relative}");
            let target = dest.join(&path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| err(parent, "creating", e))?;
            }
            let (bytes, crc32c) = copy_file(&from.join(&relative), &target)?;
            files.push(FileEntry {
                path,
                bytes,
                crc32c,
            });
        }
        sync_tree(&to)?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let summary = Summary {
        blocks: blocks.len(),
        files: files.len(),
        bytes: files.iter().map(|f| f.bytes).sum(),
    };
    let manifest = Manifest {
        format: FORMAT.to_string(),
        version: VERSION,
        created_ms: now_ms(),
        source: snapshot.display().to_string(),
        blocks,
        files,
    };
    write_manifest(dest, &manifest)?;
    Ok(summary)
}

/// Backs up the database in `data_dir`, which no other process may have
/// open: opens it (replaying its WAL), snapshots it with its head into
/// `<data_dir>/snapshots/`, backs that up into `dest`, and removes the
/// snapshot again.
pub fn backup_offline(data_dir: &Path, dest: &Path) -> Result<Summary> {
    prepare_empty_dir(dest)?;
    let db = Db::open(data_dir, DbOptions::with_retention(None, None))
        .map_err(|e| err(data_dir, "opening", e))?;
    let name = db
        .snapshot_in_data_dir(SnapshotHead::Include)
        .map_err(|e| err(data_dir, "snapshotting", e))?;
    drop(db);
    let snapshot = data_dir.join(SNAPSHOTS_DIR).join(&name);
    let result = backup_snapshot(&snapshot, dest);
    if let Err(e) = fs::remove_dir_all(&snapshot) {
        tracing::warn!(snapshot = %snapshot.display(), error = %e, "cannot remove the backup's snapshot");
    }
    result
}

/// Reads and checks `backup`'s manifest and every file it lists.
pub fn verify(backup: &Path) -> Result<Manifest> {
    let manifest_path = backup.join(MANIFEST);
    let text = fs::read_to_string(&manifest_path).map_err(|e| {
        err(
            &manifest_path,
            "reading",
            format!("{e} (an unfinished or foreign backup)"),
        )
    })?;
    let manifest = parse_manifest(&text).map_err(|e| err(&manifest_path, "reading", e))?;
    for file in &manifest.files {
        let path = backup.join(&file.path);
        let (bytes, crc32c) = checksum(&path)?;
        if bytes != file.bytes || crc32c != file.crc32c {
            return Err(err(
                &path,
                "checking",
                format!(
                    "{bytes} bytes with CRC-32C {crc32c}, the manifest says {} bytes with {}",
                    file.bytes, file.crc32c
                ),
            ));
        }
    }
    Ok(manifest)
}

/// Parses a manifest's text and checks everything but the files: the
/// format and version, the block names, that every path stays inside a
/// listed block, and that every block has its `meta.json`.
pub fn parse_manifest(text: &str) -> std::result::Result<Manifest, String> {
    let manifest: Manifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(format!(
            "format {:?} version {} is not {FORMAT} version {VERSION}",
            manifest.format, manifest.version
        ));
    }
    for block in &manifest.blocks {
        if !is_block_name(block) {
            return Err(format!("{block:?} is not a block name"));
        }
    }
    for file in &manifest.files {
        check_relative_path(&file.path, &manifest.blocks)?;
    }
    for block in &manifest.blocks {
        let meta = format!("{block}/meta.json");
        if !manifest.files.iter().any(|f| f.path == meta) {
            return Err(format!("block {block} has no meta.json"));
        }
    }
    Ok(manifest)
}

/// Restores `backup` into `data_dir`, which may exist but must hold no
/// blocks and no WAL segments. Checks the whole backup first; afterwards
/// opens the database once to check that it loads.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<Summary> {
    let manifest = verify(backup)?;
    fs::create_dir_all(data_dir).map_err(|e| err(data_dir, "creating", e))?;
    refuse_existing_data(data_dir)?;
    for block in &manifest.blocks {
        let tmp = data_dir.join(format!("{block}.tmp"));
        // A tier block goes into its tier's directory.
        let parent = tmp.parent().unwrap_or(data_dir).to_path_buf();
        fs::create_dir_all(&parent).map_err(|e| err(&parent, "creating", e))?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| err(&tmp, "removing", e))?;
        }
        fs::create_dir(&tmp).map_err(|e| err(&tmp, "creating", e))?;
        let prefix = format!("{block}/");
        for file in manifest
            .files
            .iter()
            .filter(|f| f.path.starts_with(&prefix))
        {
            let relative = &file.path[prefix.len()..];
            let target = tmp.join(relative);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| err(parent, "creating", e))?;
            }
            let (bytes, crc32c) = copy_file(&backup.join(&file.path), &target)?;
            if bytes != file.bytes || crc32c != file.crc32c {
                return Err(err(
                    &target,
                    "copying",
                    "the file changed while it was restored",
                ));
            }
        }
        sync_tree(&tmp)?;
        let done = data_dir.join(block);
        fs::rename(&tmp, &done).map_err(|e| err(&done, "renaming into", e))?;
        sync_dir(&parent)?;
        if parent != data_dir {
            // The tier directories themselves.
            if let Some(tiers) = parent.parent() {
                sync_dir(tiers)?;
            }
            sync_dir(data_dir)?;
        }
    }
    let db = Db::open(data_dir, DbOptions::with_retention(None, None))
        .map_err(|e| err(data_dir, "opening the restored database", e))?;
    drop(db);
    Ok(Summary {
        blocks: manifest.blocks.len(),
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.bytes).sum(),
    })
}

/// A block's name in a backup: a ULID (a raw block) or
/// `tiers/<resolution ms>/<ULID>` (a block of a resolution tier).
fn is_block_name(name: &str) -> bool {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        [ulid] => is_ulid(ulid),
        ["tiers", resolution, ulid] => {
            crate::tiers::is_resolution_name(resolution) && is_ulid(ulid)
        }
        _ => false,
    }
}

/// `path` is `<block>/<name>` or `<block>/chunks/<name>` for a listed block.
fn check_relative_path(path: &str, blocks: &[String]) -> std::result::Result<(), String> {
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\');
    let ok = blocks.iter().any(|block| {
        let Some(rest) = path
            .strip_prefix(block.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return false;
        };
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [name] => plain(name),
            ["chunks", name] => plain(name),
            _ => false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(format!("{path:?} is not a file of a listed block"))
    }
}

/// The block directories (ULID names) of `dir`, sorted.
fn block_dirs(dir: &Path) -> Result<Vec<String>> {
    let mut blocks = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| err(dir, "listing", e))? {
        let entry = entry.map_err(|e| err(dir, "listing", e))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if let Some(name) = entry.file_name().to_str()
            && is_dir
            && is_ulid(name)
        {
            blocks.push(name.to_string());
        }
    }
    blocks
        .extend(crate::tiers::tier_block_paths(dir).map_err(|e| err(dir, "listing tiers of", e))?);
    blocks.sort();
    Ok(blocks)
}

/// The files of a block directory, relative, `/`-separated, sorted.
fn block_files(block: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(block).map_err(|e| err(block, "listing", e))? {
        let entry = entry.map_err(|e| err(block, "listing", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry
            .file_type()
            .map_err(|e| err(&entry.path(), "reading", e))?;
        if kind.is_file() {
            files.push(name);
        } else if kind.is_dir() && name == "chunks" {
            for chunk in fs::read_dir(entry.path()).map_err(|e| err(&entry.path(), "listing", e))? {
                let chunk = chunk.map_err(|e| err(&entry.path(), "listing", e))?;
                if chunk.file_type().is_ok_and(|t| t.is_file()) {
                    files.push(format!("chunks/{}", chunk.file_name().to_string_lossy()));
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Creates `dir` or checks that it is empty.
fn prepare_empty_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| err(dir, "creating", e))?;
    let mut entries = fs::read_dir(dir).map_err(|e| err(dir, "listing", e))?;
    if entries.next().is_some() {
        return Err(err(
            dir,
            "writing a backup into",
            "the directory is not empty",
        ));
    }
    Ok(())
}

/// Refuses a data directory that holds blocks or WAL segments.
fn refuse_existing_data(data_dir: &Path) -> Result<()> {
    if let Some(block) = block_dirs(data_dir)?.first() {
        return Err(err(
            data_dir,
            "restoring into",
            format!("it already holds block {block}; restore into an empty data directory"),
        ));
    }
    let wal = data_dir.join("wal");
    if let Ok(mut entries) = fs::read_dir(&wal)
        && entries.next().is_some()
    {
        return Err(err(
            data_dir,
            "restoring into",
            "it already holds a WAL; restore into an empty data directory",
        ));
    }
    Ok(())
}

/// Copies `from` to `to` (a new file), fsyncs it, and returns the length
/// and CRC-32C of what was written.
fn copy_file(from: &Path, to: &Path) -> Result<(u64, u32)> {
    let mut input = File::open(from).map_err(|e| err(from, "opening", e))?;
    let mut output = File::create_new(to).map_err(|e| err(to, "creating", e))?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut bytes, mut crc) = (0u64, 0u32);
    loop {
        let n = input
            .read(&mut buffer)
            .map_err(|e| err(from, "reading", e))?;
        if n == 0 {
            break;
        }
        output
            .write_all(&buffer[..n])
            .map_err(|e| err(to, "writing", e))?;
        crc = crc32c::crc32c_append(crc, &buffer[..n]);
        bytes += n as u64;
    }
    output.sync_all().map_err(|e| err(to, "fsyncing", e))?;
    Ok((bytes, crc))
}

/// Length and CRC-32C of a file.
fn checksum(path: &Path) -> Result<(u64, u32)> {
    let mut input = File::open(path).map_err(|e| err(path, "opening", e))?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut bytes, mut crc) = (0u64, 0u32);
    loop {
        let n = input
            .read(&mut buffer)
            .map_err(|e| err(path, "reading", e))?;
        if n == 0 {
            return Ok((bytes, crc));
        }
        crc = crc32c::crc32c_append(crc, &buffer[..n]);
        bytes += n as u64;
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    model::durable::sync_dir(dir).map_err(|e| err(dir, "fsyncing", e))
}

/// fsyncs a block directory and its `chunks/`.
fn sync_tree(block: &Path) -> Result<()> {
    let chunks = block.join("chunks");
    if chunks.is_dir() {
        sync_dir(&chunks)?;
    }
    sync_dir(block)
}

fn write_manifest(dest: &Path, manifest: &Manifest) -> Result<()> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| err(dest, "encoding the manifest of", e))?;
    let tmp: PathBuf = dest.join(format!("{MANIFEST}.tmp"));
    {
        let mut file = File::create(&tmp).map_err(|e| err(&tmp, "creating", e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| err(&tmp, "writing", e))?;
        file.sync_all().map_err(|e| err(&tmp, "fsyncing", e))?;
    }
    let path = dest.join(MANIFEST);
    fs::rename(&tmp, &path).map_err(|e| err(&path, "renaming into", e))?;
    sync_dir(dest)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Labels;
    use model::storage::{Appendable, Queryable};

    fn write_db(dir: &Path) -> Vec<(i64, f64)> {
        let db = Db::open(dir, DbOptions::with_retention(None, None)).unwrap();
        let mut app = db.appender();
        let labels = Labels::from_pairs([("__name__", "b"), ("job", "x")]);
        let mut samples = Vec::new();
        for i in 0..500i64 {
            let (t, v) = (i * 60_000, (i as f64).sqrt());
            app.append(&labels, t, v).unwrap();
            samples.push((t, v));
        }
        app.commit().unwrap();
        samples
    }

    fn read_all(dir: &Path) -> Vec<(i64, f64)> {
        let db = Db::open(dir, DbOptions::with_retention(None, None)).unwrap();
        let querier = db.querier(i64::MIN, i64::MAX).unwrap();
        let mut out = Vec::new();
        for s in querier
            .select(&[model::Matcher::equal("job", "x")])
            .unwrap()
        {
            out.extend(s.unwrap().samples);
        }
        out
    }

    #[test]
    fn offline_backup_restores_every_sample_and_refuses_damage() {
        let root = tempfile::tempdir().unwrap();
        let (data, backup, restored) = (
            root.path().join("data"),
            root.path().join("backup"),
            root.path().join("restored"),
        );
        let samples = write_db(&data);
        let summary = backup_offline(&data, &backup).unwrap();
        assert_eq!(summary.blocks, 1);
        assert!(!data.join(SNAPSHOTS_DIR).read_dir().unwrap().any(|_| true));
        restore(&backup, &restored).unwrap();
        assert_eq!(read_all(&restored), samples);

        // A second restore into the same directory is refused.
        let again = restore(&backup, &restored).unwrap_err().to_string();
        assert!(again.contains("already holds block"), "{again}");
        // Into a non-empty backup directory, too.
        let refused = backup_offline(&data, &backup).unwrap_err().to_string();
        assert!(refused.contains("not empty"), "{refused}");

        // One flipped byte: refused before anything is written.
        let manifest = verify(&backup).unwrap();
        let chunk = manifest
            .files
            .iter()
            .find(|f| f.path.contains("/chunks/"))
            .unwrap();
        let path = backup.join(&chunk.path);
        let mut bytes = fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        fs::write(&path, bytes).unwrap();
        let target = root.path().join("second");
        let damaged = restore(&backup, &target).unwrap_err().to_string();
        assert!(damaged.contains("the manifest says"), "{damaged}");
        assert!(block_dirs(&target).map(|b| b.is_empty()).unwrap_or(true));

        // Without the manifest the backup counts as unfinished.
        fs::remove_file(backup.join(MANIFEST)).unwrap();
        let unfinished = restore(&backup, &target).unwrap_err().to_string();
        assert!(unfinished.contains("unfinished"), "{unfinished}");
    }

    #[test]
    fn manifest_paths_stay_inside_their_blocks() {
        let blocks = vec!["01JD3Q9Z8X6W1V4T2R0P9N8M7K".to_string()];
        for good in [
            "01JD3Q9Z8X6W1V4T2R0P9N8M7K/meta.json",
            "01JD3Q9Z8X6W1V4T2R0P9N8M7K/chunks/000001",
        ] {
            assert!(check_relative_path(good, &blocks).is_ok(), "{good}");
        }
        for bad in [
            "../etc/passwd",
            "01JD3Q9Z8X6W1V4T2R0P9N8M7K/../x",
            "/01JD3Q9Z8X6W1V4T2R0P9N8M7K/index",
            "01JD3Q9Z8X6W1V4T2R0P9N8M7K/a/b",
            "01JD3QB0C2D4E6F8G0H2J4K6M8/index",
            "01JD3Q9Z8X6W1V4T2R0P9N8M7K/chunks/..",
        ] {
            assert!(check_relative_path(bad, &blocks).is_err(), "{bad}");
        }
        // Tier blocks: `tiers/<resolution ms>/<ULID>`.
        let tier = "tiers/3600000/01JD3QB0C2D4E6F8G0H2J4K6M8".to_string();
        assert!(is_block_name(&tier));
        for bad in [
            "tiers/0/01JD3QB0C2D4E6F8G0H2J4K6M8",
            "tiers/036/01JD3QB0C2D4E6F8G0H2J4K6M8",
            "tiers/1h/01JD3QB0C2D4E6F8G0H2J4K6M8",
            "tiers/../01JD3QB0C2D4E6F8G0H2J4K6M8",
            "tiers/3600000",
            "x/3600000/01JD3QB0C2D4E6F8G0H2J4K6M8",
            "tiers/3600000/01JD3QB0C2D4E6F8G0H2J4K6M8/x",
        ] {
            assert!(!is_block_name(bad), "{bad}");
        }
        let blocks = vec![tier.clone()];
        assert!(check_relative_path(&format!("{tier}/chunks/000001"), &blocks).is_ok());
        assert!(check_relative_path(&format!("{tier}/index"), &blocks).is_ok());
        for bad in [
            "tiers/3600000/01JD3QB0C2D4E6F8G0H2J4K6M8/../../x",
            "tiers/3600000/01JD3QB0C2D4E6F8G0H2J4K6M8/a/b",
            "tiers/3600000/index",
        ] {
            assert!(check_relative_path(bad, &blocks).is_err(), "{bad}");
        }
    }
}
