//! Full checks of what a data directory holds, and what happens to a block
//! that fails them.
//!
//! [`Block::open`] checks a block's structure (meta.json, the index header,
//! TOC and small sections, chunk segment headers). [`Block::verify`] reads
//! the rest: every series entry of the index with its CRC, every postings
//! list with its CRC, and every chunk record a series points at with its
//! CRC. [`crate::db::Db::open`] runs both on each block; a block that fails
//! is moved to `<dir>/corrupted/<ulid>` ([`quarantine`]) with an error in
//! the log, and the database opens with the others.
//!
//! [`verify_data_dir`] is `osprey tsdb verify`: the same checks over every
//! block (tier blocks included) plus every WAL segment and checkpoint,
//! frame CRCs and record decoding, without changing anything.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::block::{Block, BlockError, BlockErrorKind, ChunkRef};
use crate::index::{IndexReader, RawSeries, SeriesCursor};

/// Where a data directory (or a tier directory) keeps blocks that failed
/// their checks at open.
pub const CORRUPTED_DIR: &str = "corrupted";

/// What [`Block::verify`] read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockCheck {
    pub series: u64,
    pub chunks: u64,
    pub postings_lists: u64,
}

impl Block {
    /// Reads every series entry, postings list and referenced chunk of the
    /// block and checks their CRCs and bounds; the first failure is a
    /// [`BlockErrorKind::Corrupt`] error naming the file and offset.
    pub fn verify(&self) -> Result<BlockCheck, BlockError> {
        verify_index_with(self.index(), &mut |id, reference| {
            self.chunk(ChunkRef(reference))
                .map(|_| ())
                .map_err(|e| match e.kind() {
                    // A reference to a segment that is not there: the
                    // chunks directory lost a file.
                    BlockErrorKind::InvalidInput => {
                        let chunk = ChunkRef(reference);
                        BlockError::corrupt(
                            &self
                                .dir()
                                .join("chunks")
                                .join(format!("{:06}", chunk.segment())),
                            u64::from(chunk.offset()),
                            &format!(
                                "series {id} points into this chunk segment, which is missing"
                            ),
                        )
                    }
                    _ => e,
                })
        })
    }
}

/// Reads every series entry and postings list of `index` and checks their
/// CRCs and bounds (the index half of [`Block::verify`]; chunk references
/// are counted, not followed). Also the fuzz target `block_index`.
pub fn verify_index(index: &IndexReader) -> Result<BlockCheck, BlockError> {
    verify_index_with(index, &mut |_, _| Ok(()))
}

fn verify_index_with(
    index: &IndexReader,
    check_chunk: &mut dyn FnMut(u32, u64) -> Result<(), BlockError>,
) -> Result<BlockCheck, BlockError> {
    let mut check = BlockCheck::default();
    let mut cursor = SeriesCursor::default();
    let mut raw = RawSeries::default();
    for id in 0..index.num_series() {
        index.series(id, &mut cursor, &mut raw)?;
        check.series += 1;
        for &(_, _, reference) in &raw.chunks {
            check_chunk(id, reference)?;
            check.chunks += 1;
        }
    }
    for name in index.label_names() {
        for value in index.label_values(&name)? {
            index.postings(&name, &value)?;
            check.postings_lists += 1;
        }
    }
    Ok(check)
}

/// Opens and fully verifies the block in `dir`.
pub fn open_verified(dir: &Path) -> Result<Block, BlockError> {
    let block = Block::open(dir)?;
    block.verify()?;
    Ok(block)
}

/// Whether a block that failed to open with `error` is damaged (and should
/// be moved aside) rather than unreadable for a passing reason (permissions,
/// too many open files), where it stays in place.
pub fn is_damage(error: &BlockError) -> bool {
    match error.kind() {
        BlockErrorKind::Corrupt => true,
        BlockErrorKind::Io => matches!(
            std::error::Error::source(error)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof)
        ),
        _ => false,
    }
}

/// Moves the damaged block `block_dir` to `<its parent>/corrupted/<name>`
/// (with a numeric suffix when that exists already) and logs why. Returns
/// where it went.
pub fn quarantine(block_dir: &Path, error: &BlockError) -> std::io::Result<PathBuf> {
    let parent = block_dir.parent().unwrap_or(Path::new("."));
    let name = block_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "block".to_string());
    let corrupted = parent.join(CORRUPTED_DIR);
    std::fs::create_dir_all(&corrupted)?;
    let mut target = corrupted.join(&name);
    let mut n = 1;
    while target.exists() {
        target = corrupted.join(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(block_dir, &target)?;
    model::durable::sync_dir(parent)?;
    model::durable::sync_dir(&corrupted)?;
    tracing::error!(
        block = %block_dir.display(),
        moved_to = %target.display(),
        error = %error,
        "corrupted block moved aside; the database opens without it (check it with `osprey tsdb verify`, restore it from a backup or delete it)"
    );
    Ok(target)
}

/// One problem [`verify_data_dir`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The block directory, WAL segment or file the problem is in.
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// What [`verify_data_dir`] checked and found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub blocks: u64,
    pub series: u64,
    pub chunks: u64,
    pub wal_segments: u64,
    pub wal_records: u64,
    /// Blocks already moved aside into a `corrupted/` directory.
    pub quarantined: Vec<PathBuf>,
    pub problems: Vec<Problem>,
}

/// Checks every block under `data_dir` (and its `tiers/<resolution>/`
/// directories) and the WAL in `data_dir/wal`, changing nothing.
pub fn verify_data_dir(data_dir: &Path) -> Report {
    let mut report = Report::default();
    if !data_dir.is_dir() {
        report.problems.push(Problem {
            path: data_dir.to_path_buf(),
            message: "not a directory".to_string(),
        });
        return report;
    }
    verify_blocks_in(data_dir, &mut report);
    let tiers = data_dir.join("tiers");
    for tier in sorted_dirs(&tiers, &mut report) {
        verify_blocks_in(&tier, &mut report);
    }
    verify_wal(&data_dir.join("wal"), &mut report);
    report
}

/// The entries of `dir` that `keep` accepts, sorted; a missing `dir` has
/// none, and one that cannot be listed is a problem.
fn sorted_entries(dir: &Path, report: &mut Report, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            report.problems.push(Problem {
                path: dir.to_path_buf(),
                message: format!("cannot list: {e}"),
            });
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| keep(p))
        .collect();
    paths.sort();
    paths
}

fn sorted_dirs(dir: &Path, report: &mut Report) -> Vec<PathBuf> {
    sorted_entries(dir, report, &|p| p.is_dir())
}

fn verify_blocks_in(dir: &Path, report: &mut Report) {
    for path in sorted_dirs(dir, report) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == CORRUPTED_DIR {
            let moved = sorted_dirs(&path, report);
            report.quarantined.extend(moved);
            continue;
        }
        let is_block_name = crate::block::is_ulid(&name);
        if !path.join("meta.json").exists() {
            // A ULID-named directory without meta.json is a block that lost
            // it; anything else (wal, tiers, snapshots, *.tmp) is not a block.
            if is_block_name {
                report.problems.push(Problem {
                    path,
                    message: "block directory without meta.json".to_string(),
                });
            }
            continue;
        }
        report.blocks += 1;
        let checked = Block::open(&path).and_then(|block| block.verify());
        match checked {
            Ok(check) => {
                report.series += check.series;
                report.chunks += check.chunks;
            }
            Err(e) => report.problems.push(Problem {
                path,
                message: e.to_string(),
            }),
        }
    }
}

/// The WAL segment files (names of 8 digits) in `dir`, sorted.
fn segment_files(dir: &Path, report: &mut Report) -> Vec<PathBuf> {
    sorted_entries(dir, report, &|p| {
        p.is_file()
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn verify_wal(wal: &Path, report: &mut Report) {
    let mut segments = Vec::new();
    for dir in sorted_dirs(wal, report) {
        let is_checkpoint = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("checkpoint.") && !n.ends_with(".tmp"));
        if is_checkpoint {
            segments.extend(segment_files(&dir, report));
        }
    }
    segments.extend(segment_files(wal, report));
    for path in segments {
        report.wal_segments += 1;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                report.problems.push(Problem {
                    path,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let mut bad_record = None;
        let scan = crate::wal::scan_segment_bytes(&bytes, &mut |record| {
            if bad_record.is_none()
                && let Err(e) = crate::wal::decode(record)
            {
                bad_record = Some(e.to_string());
            }
        });
        report.wal_records += scan.records;
        if let Some(corruption) = scan.corruption {
            report.problems.push(Problem {
                path: path.clone(),
                message: format!(
                    "WAL frame at offset {}: {} ({} bytes after it are dropped when the server starts)",
                    corruption.offset,
                    corruption.reason,
                    bytes.len() as u64 - scan.valid_len
                ),
            });
        }
        if let Some(message) = bad_record {
            report.problems.push(Problem {
                path,
                message: format!("WAL record does not decode: {message}"),
            });
        }
    }
}
