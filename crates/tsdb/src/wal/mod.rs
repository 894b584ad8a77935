//! The write-ahead log: what makes osprey lose nothing it acknowledged.
//!
//! - [`Wal`] appends records to numbered segment files and returns from
//!   [`Wal::log`] only once the bytes are on stable storage. Concurrent
//!   callers share one `fdatasync` (group commit). Writers that acknowledge
//!   nobody (scrapes) use [`Wal::log_with`] and [`Durability::Written`]:
//!   it returns once the bytes are written, and a sync follows within
//!   [`UNSYNCED_WINDOW`].
//! - [`Wal::open`] repairs a torn or corrupt tail (truncating it, with a
//!   `warn!` line) instead of refusing to start, then starts a new segment.
//! - [`replay`] reads the newest checkpoint and the segments after it and
//!   hands every [`Record`] to a callback; the head rebuilds itself from it.
//! - [`checkpoint`] compacts old segments into a checkpoint directory, so
//!   that [`Wal::truncate_before`] can delete them.
//! - [`record`] holds the record payload encodings, [`scan_segment_bytes`]
//!   the frame parser over plain bytes (for the fuzzer).
//!
//! The byte layout and the crash-safety argument are in
//! `docs/format/wal.md`. This module knows nothing of the head: series are
//! plain `u64` ids here.

mod checkpoint;
pub mod record;
mod segment;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use checkpoint::{CheckpointStats, checkpoint};
pub use record::{
    RECORD_TYPE_EXEMPLARS, RECORD_TYPE_HISTOGRAMS, RECORD_TYPE_SAMPLES, RECORD_TYPE_SERIES,
    RECORD_TYPE_TOMBSTONES, Record, RecordError, RefExemplar, RefHistogram, RefSample, RefSeries,
    RefTombstone, SamplesRecord, decode, encode_exemplars, encode_histograms, encode_samples,
    encode_series, encode_tombstones,
};
pub use segment::{Corruption, CorruptionReason, SegmentScan, scan_segment_bytes};

use segment::{
    DirectoryListing, Frame, FrameReader, append_frame, checkpoint_dir_name, list_directory,
    segment_file_name, sync_directory,
};

/// The default segment size: 128 MiB, as in Prometheus. Large enough that
/// cutting (two fsyncs and a file creation) is rare, small enough that a
/// checkpoint can free space in steps.
pub const DEFAULT_SEGMENT_SIZE: u64 = 128 * 1024 * 1024;

/// The longest a [`Durability::Written`] log call leaves the WAL without an
/// `fdatasync`: the first such call after this long since the last sync
/// syncs, for everything written so far. A scrape loop commits every few
/// seconds per target, so with hundreds of targets a sync per commit was
/// 11% of osprey's scraping CPU (200 targets of 1,000 series every 5 s,
/// `benches/scrape_cost.py`); one a second is a few percent of that, and
/// bounds what a power loss can take to about a second of scrapes.
/// (Prometheus syncs its WAL only when it completes a 128 MiB segment.)
pub const UNSYNCED_WINDOW: Duration = Duration::from_secs(1);

/// When [`Wal::log_with`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Once the records are on disk (`fdatasync`, group-committed with
    /// other writers).
    Synced,
    /// Once the records are written to the operating system: they survive
    /// the process being killed, and reach the disk with the next sync,
    /// which some log call makes within [`UNSYNCED_WINDOW`].
    Written,
}

/// How a [`Wal`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Target size of a segment file in bytes; a new segment is started
    /// when the next write would pass it.
    pub segment_size: u64,
    /// Whether `log` waits for `fdatasync`. `false` is for tests and
    /// benchmarks only: acknowledged data can then be lost on power loss.
    pub fsync: bool,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            fsync: true,
        }
    }
}

/// Counters of a [`Wal`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Successful `log` calls.
    pub writes: u64,
    /// `fdatasync` calls made for `log` (group commits).
    pub fsyncs: u64,
    /// Framed bytes written to segments.
    pub bytes_written: u64,
    /// Torn or corrupt tails repaired by `open`.
    pub repairs: u64,
    /// Segments started, including the one `open` starts.
    pub segments_created: u64,
}

/// What [`replay`] read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// The checkpoint replayed first, if any.
    pub checkpoint: Option<u32>,
    /// Segment files read, checkpoint segments included.
    pub segments: u64,
    /// Records handed to the callback.
    pub records: u64,
    /// Series entries in those records.
    pub series: u64,
    /// Samples in those records.
    pub samples: u64,
    /// Tombstone entries (deletes) in those records.
    pub tombstones: u64,
    /// Exemplars in those records.
    pub exemplars: u64,
    /// Corrupt frames or records met (replay stops at the first one).
    pub corruptions: u64,
}

/// The kind of a [`WalError`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalErrorKind {
    /// A file operation failed.
    Io,
    /// Data on disk is corrupt where it must not be (checkpoint input).
    Corrupt,
    /// The caller passed a record the WAL cannot store.
    InvalidRecord,
    /// An earlier `fdatasync` failed; the WAL must be reopened.
    Failed,
}

/// An error from the WAL. I/O errors name the file.
#[derive(Debug)]
pub struct WalError {
    kind: WalErrorKind,
    message: String,
    path: Option<PathBuf>,
    source: Option<io::Error>,
}

impl WalError {
    pub fn kind(&self) -> WalErrorKind {
        self.kind
    }

    /// The file or directory involved, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn io(what: &str, path: &Path, source: io::Error) -> WalError {
        WalError {
            kind: WalErrorKind::Io,
            message: what.to_owned(),
            path: Some(path.to_owned()),
            source: Some(source),
        }
    }

    fn invalid_record(message: String) -> WalError {
        WalError {
            kind: WalErrorKind::InvalidRecord,
            message,
            path: None,
            source: None,
        }
    }

    fn corrupt(path: &Path, corruption: Corruption) -> WalError {
        WalError {
            kind: WalErrorKind::Corrupt,
            message: format!(
                "corrupt WAL at byte {}: {}",
                corruption.offset, corruption.reason
            ),
            path: Some(path.to_owned()),
            source: None,
        }
    }

    fn failed(message: &str) -> WalError {
        WalError {
            kind: WalErrorKind::Failed,
            message: format!("WAL failed earlier and must be reopened: {message}"),
            path: None,
            source: None,
        }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(path) = &self.path {
            write!(f, " ({})", path.display())?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A write-ahead log open for appending. `Send + Sync`: share it by
/// reference or `Arc` and call [`Wal::log`] from any thread.
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    writer: Mutex<WriterState>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    failed: AtomicBool,
    current_segment: AtomicU32,
    writes: AtomicU64,
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    repairs: AtomicU64,
    segments_created: AtomicU64,
}

/// The segment being appended to, guarded by the writer mutex.
struct WriterState {
    segment: OpenSegment,
    /// Sequence number of the last `log` call whose bytes were written.
    written_sequence: u64,
}

struct OpenSegment {
    file: Arc<File>,
    path: PathBuf,
    number: u32,
    /// Logical end: the end of the last completely written frame.
    len: u64,
    /// A write failed part-way, so bytes past `len` may be garbage.
    tail_dirty: bool,
}

/// Group-commit state, guarded by the sync mutex.
struct SyncState {
    /// Every `log` call with a sequence number up to this is durable.
    synced_sequence: u64,
    /// A thread is running `fdatasync` for others.
    syncing: bool,
    /// Set, for good, when an `fdatasync` failed.
    failure: Option<String>,
    /// When the last `fdatasync` for `log` calls finished (or the WAL was
    /// opened).
    last_synced: Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; if one ever did, the state
    // it guards is still consistent (every field is updated in one step).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, repairs a torn or
    /// corrupt tail, and starts a new segment for writing.
    pub fn open(dir: &Path, options: WalOptions) -> Result<Wal, WalError> {
        fs::create_dir_all(dir).map_err(|e| WalError::io("cannot create WAL directory", dir, e))?;
        let listing =
            list_directory(dir).map_err(|e| WalError::io("cannot list WAL directory", dir, e))?;
        remove_temporary_checkpoints(&listing);
        let latest_checkpoint = listing.latest_checkpoint().unwrap_or(0);
        let live_segments: Vec<u32> = listing
            .segments
            .iter()
            .copied()
            .filter(|&n| n > latest_checkpoint)
            .collect();

        let repairs = repair_tail(dir, &live_segments, options.fsync)?;
        // A repair may have deleted segments; number the new one after the
        // survivors (and after the checkpoint, which replay skips up to).
        let listing = if repairs > 0 {
            list_directory(dir).map_err(|e| WalError::io("cannot list WAL directory", dir, e))?
        } else {
            listing
        };

        let last_number = listing
            .segments
            .last()
            .copied()
            .unwrap_or(0)
            .max(latest_checkpoint);
        let next_number = last_number.checked_add(1).ok_or_else(|| WalError {
            kind: WalErrorKind::Io,
            message: "segment numbers exhausted".to_owned(),
            path: Some(dir.to_owned()),
            source: None,
        })?;
        let segment = create_segment(dir, next_number, options.fsync)?;
        Ok(Wal {
            dir: dir.to_owned(),
            options,
            writer: Mutex::new(WriterState {
                segment,
                written_sequence: 0,
            }),
            sync: Mutex::new(SyncState {
                synced_sequence: 0,
                syncing: false,
                failure: None,
                last_synced: Instant::now(),
            }),
            synced: Condvar::new(),
            failed: AtomicBool::new(false),
            current_segment: AtomicU32::new(next_number),
            writes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            repairs: AtomicU64::new(repairs),
            segments_created: AtomicU64::new(1),
        })
    }

    /// Appends records and returns once they are durable (with
    /// `fsync: true`). Each slice is one encoded record: its type byte and
    /// payload, as [`encode_series`]/[`encode_samples`] write them. The
    /// records of one call go to the same segment, in order.
    pub fn log(&self, records: &[&[u8]]) -> Result<(), WalError> {
        self.log_with(records, Durability::Synced)
    }

    /// Like [`Wal::log`], returning as `durability` says.
    pub fn log_with(&self, records: &[&[u8]], durability: Durability) -> Result<(), WalError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::with_capacity(
            records
                .iter()
                .map(|r| r.len() + segment::FRAME_HEADER_LEN)
                .sum(),
        );
        for (index, record) in records.iter().enumerate() {
            check_record(index, record)?;
            append_frame(&mut frames, record);
        }
        if self.failed.load(Ordering::Acquire) {
            return Err(self.failure());
        }

        let sequence = {
            let mut writer = lock(&self.writer);
            let segment_len = writer.segment.len;
            if segment_len > 0 && segment_len + frames.len() as u64 > self.options.segment_size {
                self.cut_locked(&mut writer)?;
            }
            let segment = &mut writer.segment;
            if let Err(error) = write_at(&segment.file, segment.len, &frames) {
                segment.tail_dirty = true;
                return Err(WalError::io(
                    "cannot write WAL segment",
                    &segment.path,
                    error,
                ));
            }
            segment.len += frames.len() as u64;
            writer.written_sequence += 1;
            writer.written_sequence
        };
        self.bytes_written
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        let sync = match durability {
            Durability::Synced => true,
            Durability::Written => self.sync_due(),
        };
        if self.options.fsync && sync {
            self.wait_until_synced(sequence)?;
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Completes the current segment (synced to disk) and starts the next;
    /// returns the new segment's number.
    pub fn cut_segment(&self) -> Result<u32, WalError> {
        let mut writer = lock(&self.writer);
        self.cut_locked(&mut writer)?;
        Ok(writer.segment.number)
    }

    /// The number of the segment being written.
    pub fn current_segment(&self) -> u32 {
        self.current_segment.load(Ordering::Acquire)
    }

    /// Deletes segments numbered below `segment`, oldest first. The segment
    /// being written is never deleted. Call it after [`checkpoint`].
    pub fn truncate_before(&self, segment: u32) -> Result<(), WalError> {
        // Holding the writer lock keeps the current segment from changing
        // under us.
        let writer = lock(&self.writer);
        let limit = segment.min(writer.segment.number);
        let listing = list_directory(&self.dir)
            .map_err(|e| WalError::io("cannot list WAL directory", &self.dir, e))?;
        let mut removed_any = false;
        for number in listing.segments.into_iter().filter(|&n| n < limit) {
            let path = self.dir.join(segment_file_name(number));
            match fs::remove_file(&path) {
                Ok(()) => removed_any = true,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(WalError::io("cannot delete WAL segment", &path, error));
                }
            }
        }
        drop(writer);
        if removed_any && self.options.fsync {
            sync_directory(&self.dir)
                .map_err(|e| WalError::io("cannot sync WAL directory", &self.dir, e))?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> WalStats {
        WalStats {
            writes: self.writes.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            repairs: self.repairs.load(Ordering::Relaxed),
            segments_created: self.segments_created.load(Ordering::Relaxed),
        }
    }

    fn failure(&self) -> WalError {
        let sync = lock(&self.sync);
        WalError::failed(sync.failure.as_deref().unwrap_or("fdatasync failed"))
    }

    fn mark_failed(&self, message: String) {
        tracing::error!(%message, "WAL fdatasync failed; refusing further writes until reopened");
        let mut sync = lock(&self.sync);
        sync.failure.get_or_insert(message);
        self.failed.store(true, Ordering::Release);
        self.synced.notify_all();
    }

    /// Syncs and closes the current segment and starts the next one. The
    /// caller holds the writer lock.
    fn cut_locked(&self, writer: &mut WriterState) -> Result<(), WalError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(self.failure());
        }
        let old = &mut writer.segment;
        if old.tail_dirty {
            old.file
                .set_len(old.len)
                .map_err(|e| WalError::io("cannot truncate WAL segment", &old.path, e))?;
            old.tail_dirty = false;
        }
        if self.options.fsync {
            if let Err(error) = old.file.sync_data() {
                let wal_error = WalError::io("cannot sync WAL segment", &old.path, error);
                self.mark_failed(wal_error.to_string());
                return Err(wal_error);
            }
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        let next_number = old.number.checked_add(1).ok_or_else(|| WalError {
            kind: WalErrorKind::Io,
            message: "segment numbers exhausted".to_owned(),
            path: Some(self.dir.clone()),
            source: None,
        })?;
        writer.segment = create_segment(&self.dir, next_number, self.options.fsync)?;
        self.current_segment.store(next_number, Ordering::Release);
        self.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Group commit: returns once the `log` call numbered `sequence` is
    /// durable, running `fdatasync` itself if no other thread is.
    /// Whether an unsynced write should sync now: nobody is syncing and
    /// the last sync is [`UNSYNCED_WINDOW`] old.
    fn sync_due(&self) -> bool {
        let sync = lock(&self.sync);
        !sync.syncing && sync.last_synced.elapsed() >= UNSYNCED_WINDOW
    }

    fn wait_until_synced(&self, sequence: u64) -> Result<(), WalError> {
        let mut sync = lock(&self.sync);
        loop {
            if sync.synced_sequence >= sequence {
                return Ok(());
            }
            if let Some(failure) = &sync.failure {
                return Err(WalError::failed(failure));
            }
            if !sync.syncing {
                sync.syncing = true;
                break;
            }
            sync = self
                .synced
                .wait(sync)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(sync);

        // Everything written up to `target` is in `file` or in an older
        // segment, and older segments were synced when they were cut.
        let (target, file, path) = {
            let writer = lock(&self.writer);
            (
                writer.written_sequence,
                Arc::clone(&writer.segment.file),
                writer.segment.path.clone(),
            )
        };
        let result = file.sync_data();
        self.fsyncs.fetch_add(1, Ordering::Relaxed);

        let mut sync = lock(&self.sync);
        sync.syncing = false;
        let outcome = match result {
            Ok(()) if sync.failure.is_none() => {
                sync.synced_sequence = sync.synced_sequence.max(target);
                sync.last_synced = Instant::now();
                Ok(())
            }
            Ok(()) => Err(WalError::failed(sync.failure.as_deref().unwrap_or(""))),
            Err(error) => {
                let wal_error = WalError::io("cannot sync WAL segment", &path, error);
                drop(sync);
                self.mark_failed(wal_error.to_string());
                return Err(wal_error);
            }
        };
        self.synced.notify_all();
        outcome
    }
}

/// Checks that a record can be framed and read back.
fn check_record(index: usize, record: &[u8]) -> Result<(), WalError> {
    let Some(&record_type) = record.first() else {
        return Err(WalError::invalid_record(format!("record {index} is empty")));
    };
    if !record::is_known_record_type(record_type) {
        return Err(WalError::invalid_record(format!(
            "record {index} has unknown type {record_type}"
        )));
    }
    if record.len() > u32::MAX as usize {
        return Err(WalError::invalid_record(format!(
            "record {index} is {} bytes, more than a frame can hold",
            record.len()
        )));
    }
    Ok(())
}

fn write_at(file: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

fn create_segment(dir: &Path, number: u32, fsync: bool) -> Result<OpenSegment, WalError> {
    let path = dir.join(segment_file_name(number));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WalError::io("cannot create WAL segment", &path, e))?;
    if fsync {
        sync_directory(dir).map_err(|e| WalError::io("cannot sync WAL directory", dir, e))?;
    }
    Ok(OpenSegment {
        file: Arc::new(file),
        path,
        number,
        len: 0,
        tail_dirty: false,
    })
}

fn remove_temporary_checkpoints(listing: &DirectoryListing) {
    for path in &listing.temporary {
        tracing::warn!(path = %path.display(), "removing unfinished WAL checkpoint");
        if let Err(error) = fs::remove_dir_all(path) {
            tracing::warn!(path = %path.display(), %error, "cannot remove unfinished WAL checkpoint");
        }
    }
}

/// Scans the last two live segments; at the first bad frame, truncates its
/// segment there and deletes every later segment. Returns the repairs made.
fn repair_tail(dir: &Path, live_segments: &[u32], fsync: bool) -> Result<u64, WalError> {
    let first_scanned = live_segments.len().saturating_sub(2);
    for (index, &number) in live_segments.iter().enumerate().skip(first_scanned) {
        let path = dir.join(segment_file_name(number));
        let scan = read_segment_file(&path, &mut |_| Ok(()))?;
        let Some(corruption) = scan.corruption else {
            continue;
        };
        tracing::warn!(
            segment = %path.display(),
            offset = corruption.offset,
            reason = %corruption.reason,
            good_records = scan.records,
            "repairing torn or corrupt WAL tail: truncating the segment and deleting later ones"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| WalError::io("cannot open WAL segment for repair", &path, e))?;
        file.set_len(corruption.offset)
            .map_err(|e| WalError::io("cannot truncate WAL segment", &path, e))?;
        if fsync {
            file.sync_all()
                .map_err(|e| WalError::io("cannot sync WAL segment", &path, e))?;
        }
        for &later in &live_segments[index + 1..] {
            let later_path = dir.join(segment_file_name(later));
            tracing::warn!(segment = %later_path.display(), "deleting WAL segment after a repaired one");
            fs::remove_file(&later_path)
                .map_err(|e| WalError::io("cannot delete WAL segment", &later_path, e))?;
        }
        if fsync {
            sync_directory(dir).map_err(|e| WalError::io("cannot sync WAL directory", dir, e))?;
        }
        return Ok(1);
    }
    Ok(0)
}

/// Reads the frames of one segment file, calling `on_record` for each good
/// record. A record that `on_record` rejects counts as corruption at its
/// frame, like a bad frame, and ends the scan.
pub(crate) fn read_segment_file(
    path: &Path,
    on_record: &mut dyn FnMut(&[u8]) -> Result<(), RecordError>,
) -> Result<SegmentScan, WalError> {
    let file = File::open(path).map_err(|e| WalError::io("cannot open WAL segment", path, e))?;
    let length = file
        .metadata()
        .map_err(|e| WalError::io("cannot stat WAL segment", path, e))?
        .len();
    // 1 MiB buffer: large sequential reads; one allocation per segment.
    let mut reader = FrameReader::new(BufReader::with_capacity(1 << 20, file), length);
    let mut records = 0;
    loop {
        let frame_start = reader.offset();
        let frame = reader
            .next_frame()
            .map_err(|e| WalError::io("cannot read WAL segment", path, e))?;
        let corruption = match frame {
            Frame::End => None,
            Frame::Corrupt(corruption) => Some(corruption),
            Frame::Record(record) => match on_record(record) {
                Ok(()) => {
                    records += 1;
                    continue;
                }
                Err(_) => Some(Corruption {
                    offset: frame_start,
                    reason: CorruptionReason::UndecodableRecord,
                }),
            },
        };
        return Ok(SegmentScan {
            records,
            valid_len: corruption.map_or(reader.offset(), |c| c.offset),
            corruption,
        });
    }
}

/// Replays the WAL in `dir`: the newest checkpoint first, then every
/// segment after it, in order. Stops at the first corrupt frame or record
/// (logged and counted in [`ReplayStats::corruptions`]).
pub fn replay(dir: &Path, on_record: &mut dyn FnMut(Record)) -> Result<ReplayStats, WalError> {
    let listing =
        list_directory(dir).map_err(|e| WalError::io("cannot list WAL directory", dir, e))?;
    let mut stats = ReplayStats::default();
    let mut segments: Vec<PathBuf> = Vec::new();
    let mut first_after_checkpoint = 1;
    if let Some(number) = listing.latest_checkpoint() {
        stats.checkpoint = Some(number);
        first_after_checkpoint = number.saturating_add(1);
        let checkpoint_dir = dir.join(checkpoint_dir_name(number));
        let inner = list_directory(&checkpoint_dir)
            .map_err(|e| WalError::io("cannot list WAL checkpoint", &checkpoint_dir, e))?;
        segments.extend(
            inner
                .segments
                .iter()
                .map(|&n| checkpoint_dir.join(segment_file_name(n))),
        );
    }
    let mut previous: Option<u32> = None;
    for &number in listing
        .segments
        .iter()
        .filter(|&&n| n >= first_after_checkpoint)
    {
        if let Some(previous) = previous
            && number != previous + 1
        {
            tracing::warn!(
                dir = %dir.display(),
                after = previous,
                next = number,
                "gap in WAL segment numbers"
            );
        }
        previous = Some(number);
        segments.push(dir.join(segment_file_name(number)));
    }

    for path in segments {
        stats.segments += 1;
        let scan = read_segment_file(&path, &mut |bytes| {
            let record = decode(bytes)?;
            stats.records += 1;
            match &record {
                Record::Series(series) => stats.series += series.len() as u64,
                Record::Samples(samples) => stats.samples += samples.len() as u64,
                Record::Histograms(samples) => stats.samples += samples.len() as u64,
                Record::Tombstones(tombstones) => stats.tombstones += tombstones.len() as u64,
                Record::Exemplars(exemplars) => stats.exemplars += exemplars.len() as u64,
            }
            on_record(record);
            Ok(())
        })?;
        if let Some(corruption) = scan.corruption {
            stats.corruptions += 1;
            tracing::warn!(
                segment = %path.display(),
                offset = corruption.offset,
                reason = %corruption.reason,
                "corrupt WAL record; replay stops here and later records are not read"
            );
            break;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests;
