//! WAL checkpoints: the still-needed content of old segments, compacted
//! into a directory `checkpoint.N` so the segments can be deleted.
//!
//! The steps and why a crash between any two of them leaves a replayable
//! WAL are in `docs/format/wal.md` ("Checkpoint").

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::record::{
    Record, RefExemplar, RefHistogram, RefSample, RefSeries, RefTombstone, decode,
    encode_exemplars, encode_histograms, encode_samples, encode_series, encode_tombstones,
};
use super::segment::{
    append_frame, checkpoint_dir_name, list_directory, segment_file_name, sync_directory,
};
use super::{DEFAULT_SEGMENT_SIZE, WalError, read_segment_file, remove_temporary_checkpoints};

/// What a [`checkpoint`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The segment the checkpoint covers through (its directory's number).
    pub through_segment: u32,
    /// False when a checkpoint at or past `through_segment` already existed
    /// and nothing was done.
    pub written: bool,
    /// Segment files read, those of the previous checkpoint included.
    pub segments_read: u64,
    pub series_kept: u64,
    pub series_dropped: u64,
    pub samples_kept: u64,
    pub samples_dropped: u64,
    pub tombstones_kept: u64,
    pub tombstones_dropped: u64,
    pub exemplars_kept: u64,
    pub exemplars_dropped: u64,
    /// Framed bytes written to the new checkpoint.
    pub bytes_written: u64,
}

/// Writes `checkpoint.<through_segment>` from the previous checkpoint and
/// the segments up to `through_segment`, keeping series whose id passes
/// `keep_series`, their samples with `t >= mint` and their tombstones that
/// end at or after `mint` (records stay in log order), then deletes older
/// checkpoints. The segments themselves are left for
/// [`super::Wal::truncate_before`].
///
/// `through_segment` must be a completed segment (below
/// `Wal::current_segment`). A corrupt record in the input is an error.
pub fn checkpoint(
    dir: &Path,
    through_segment: u32,
    keep_series: &dyn Fn(u64) -> bool,
    mint: i64,
) -> Result<CheckpointStats, WalError> {
    let listing =
        list_directory(dir).map_err(|e| WalError::io("cannot list WAL directory", dir, e))?;
    remove_temporary_checkpoints(&listing);
    let mut stats = CheckpointStats {
        through_segment,
        ..CheckpointStats::default()
    };
    let previous = listing.latest_checkpoint();
    if previous.is_some_and(|p| p >= through_segment) {
        return Ok(stats);
    }

    let mut inputs: Vec<PathBuf> = Vec::new();
    if let Some(previous) = previous {
        let previous_dir = dir.join(checkpoint_dir_name(previous));
        let inner = list_directory(&previous_dir)
            .map_err(|e| WalError::io("cannot list WAL checkpoint", &previous_dir, e))?;
        inputs.extend(
            inner
                .segments
                .iter()
                .map(|&n| previous_dir.join(segment_file_name(n))),
        );
    }
    let first = previous.map_or(0, |p| p + 1);
    inputs.extend(
        listing
            .segments
            .iter()
            .filter(|&&n| n >= first && n <= through_segment)
            .map(|&n| dir.join(segment_file_name(n))),
    );

    let final_dir = dir.join(checkpoint_dir_name(through_segment));
    let temporary_dir = dir.join(format!("{}.tmp", checkpoint_dir_name(through_segment)));
    fs::create_dir(&temporary_dir)
        .map_err(|e| WalError::io("cannot create WAL checkpoint", &temporary_dir, e))?;
    let mut writer = CheckpointWriter::new(&temporary_dir)?;

    let mut encoded = Vec::new();
    for path in &inputs {
        stats.segments_read += 1;
        let mut write_error: Option<WalError> = None;
        let scan = read_segment_file(path, &mut |bytes| {
            let record = decode(bytes)?;
            encoded.clear();
            match record {
                Record::Series(series) => {
                    let before = series.len() as u64;
                    let kept: Vec<RefSeries> =
                        series.into_iter().filter(|s| keep_series(s.id)).collect();
                    stats.series_kept += kept.len() as u64;
                    stats.series_dropped += before - kept.len() as u64;
                    if !kept.is_empty() {
                        encode_series(&kept, &mut encoded);
                    }
                }
                Record::Samples(samples) => {
                    let before = samples.len() as u64;
                    let kept: Vec<RefSample> = samples
                        .into_iter()
                        .filter(|s| s.t >= mint && keep_series(s.id))
                        .collect();
                    stats.samples_kept += kept.len() as u64;
                    stats.samples_dropped += before - kept.len() as u64;
                    if !kept.is_empty() {
                        encode_samples(&kept, &mut encoded);
                    }
                }
                Record::Histograms(samples) => {
                    let before = samples.len() as u64;
                    let kept: Vec<RefHistogram> = samples
                        .into_iter()
                        .filter(|s| s.t >= mint && keep_series(s.id))
                        .collect();
                    stats.samples_kept += kept.len() as u64;
                    stats.samples_dropped += before - kept.len() as u64;
                    if !kept.is_empty() {
                        encode_histograms(&kept, &mut encoded);
                    }
                }
                Record::Exemplars(exemplars) => {
                    let before = exemplars.len() as u64;
                    let kept: Vec<RefExemplar> = exemplars
                        .into_iter()
                        .filter(|e| e.exemplar.timestamp_ms >= mint && keep_series(e.id))
                        .collect();
                    stats.exemplars_kept += kept.len() as u64;
                    stats.exemplars_dropped += before - kept.len() as u64;
                    if !kept.is_empty() {
                        encode_exemplars(&kept, &mut encoded);
                    }
                }
                Record::Tombstones(tombstones) => {
                    // A delete of samples that are all older than `mint`
                    // has nothing left to delete.
                    let before = tombstones.len() as u64;
                    let kept: Vec<RefTombstone> = tombstones
                        .into_iter()
                        .filter(|t| t.maxt >= mint && keep_series(t.id))
                        .collect();
                    stats.tombstones_kept += kept.len() as u64;
                    stats.tombstones_dropped += before - kept.len() as u64;
                    if !kept.is_empty() {
                        encode_tombstones(&kept, &mut encoded);
                    }
                }
            }
            if !encoded.is_empty()
                && write_error.is_none()
                && let Err(error) = writer.append(&encoded)
            {
                write_error = Some(error);
            }
            Ok(())
        })?;
        if let Some(error) = write_error {
            return Err(error);
        }
        if let Some(corruption) = scan.corruption {
            return Err(WalError::corrupt(path, corruption));
        }
    }
    stats.bytes_written = writer.finish()?;
    sync_directory(&temporary_dir)
        .map_err(|e| WalError::io("cannot sync WAL checkpoint", &temporary_dir, e))?;

    fs::rename(&temporary_dir, &final_dir)
        .map_err(|e| WalError::io("cannot rename WAL checkpoint", &final_dir, e))?;
    sync_directory(dir).map_err(|e| WalError::io("cannot sync WAL directory", dir, e))?;
    stats.written = true;

    for older in listing.checkpoints.iter().filter(|&&n| n < through_segment) {
        let older_dir = dir.join(checkpoint_dir_name(*older));
        if let Err(error) = fs::remove_dir_all(&older_dir) {
            // Harmless: replay always takes the newest checkpoint, and the
            // next checkpoint tries again.
            tracing::warn!(path = %older_dir.display(), %error, "cannot delete old WAL checkpoint");
        }
    }
    Ok(stats)
}

/// Writes framed records into numbered segments of a checkpoint directory.
struct CheckpointWriter {
    dir: PathBuf,
    file: BufWriter<File>,
    path: PathBuf,
    number: u32,
    len: u64,
    total: u64,
    frame: Vec<u8>,
}

impl CheckpointWriter {
    fn new(dir: &Path) -> Result<CheckpointWriter, WalError> {
        let (file, path) = create_file(dir, 1)?;
        Ok(CheckpointWriter {
            dir: dir.to_owned(),
            file,
            path,
            number: 1,
            len: 0,
            total: 0,
            frame: Vec::new(),
        })
    }

    fn append(&mut self, record: &[u8]) -> Result<(), WalError> {
        self.frame.clear();
        append_frame(&mut self.frame, record);
        let frame_len = self.frame.len() as u64;
        if self.len > 0 && self.len + frame_len > DEFAULT_SEGMENT_SIZE {
            self.sync_current()?;
            self.number += 1;
            let (file, path) = create_file(&self.dir, self.number)?;
            self.file = file;
            self.path = path;
            self.len = 0;
        }
        self.file
            .write_all(&self.frame)
            .map_err(|e| WalError::io("cannot write WAL checkpoint", &self.path, e))?;
        self.len += frame_len;
        self.total += frame_len;
        Ok(())
    }

    fn sync_current(&mut self) -> Result<(), WalError> {
        self.file
            .flush()
            .map_err(|e| WalError::io("cannot write WAL checkpoint", &self.path, e))?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(|e| WalError::io("cannot sync WAL checkpoint", &self.path, e))
    }

    /// Flushes and syncs the last file; returns the bytes written in all.
    fn finish(mut self) -> Result<u64, WalError> {
        self.sync_current()?;
        Ok(self.total)
    }
}

fn create_file(dir: &Path, number: u32) -> Result<(BufWriter<File>, PathBuf), WalError> {
    let path = dir.join(segment_file_name(number));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WalError::io("cannot create WAL checkpoint segment", &path, e))?;
    Ok((BufWriter::with_capacity(1 << 20, file), path))
}
