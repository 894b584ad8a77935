//! The trace WAL (`docs/format/traces.md`, "WAL"): CRC-framed batches of
//! spans in numbered segments. [`Wal::append`] returns once its record is
//! on stable storage; writers waiting at the same time share one
//! `fdatasync` (group commit).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::StoreError;

/// A new segment is started past this size.
pub(crate) const SEGMENT_BYTES: u64 = 64 << 20;

/// Splits a segment's bytes into record payloads; returns them and the
/// length of the valid prefix (shorter than `bytes` after a torn write or
/// corruption). Fuzzed through [`crate::decode_wal_segment`].
pub fn records(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= 8 {
        let h = &bytes[pos..pos + 8];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        out.push(payload);
        pos += 8 + len;
    }
    (out, pos)
}

/// A record of `spans`: the batch encoding, Snappy-compressed, framed.
pub(crate) fn record(spans: &[crate::Span]) -> Vec<u8> {
    let batch = crate::encode_batch(spans);
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&batch)
        .unwrap_or_default();
    frame(&compressed)
}

/// A record payload's spans: decompressed (refusing a stated length past
/// what Snappy can expand the payload to) and decoded.
pub(crate) fn decode_record(payload: &[u8]) -> Result<Vec<crate::Span>, crate::CodecError> {
    let stated = snap::raw::decompress_len(payload)
        .map_err(|_| crate::CodecError("bad snappy header in a WAL record"))?;
    if stated > payload.len().saturating_mul(64).saturating_add(64) {
        return Err(crate::CodecError("WAL record states an impossible length"));
    }
    let batch = snap::raw::Decoder::new()
        .decompress_vec(payload)
        .map_err(|_| crate::CodecError("bad snappy data in a WAL record"))?;
    crate::decode_batch(&batch)
}

pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

pub(crate) fn segment_name(n: u32) -> String {
    format!("{n:08}")
}

/// Segment numbers in `dir`, ascending.
pub(crate) fn segments(dir: &Path) -> Result<Vec<u32>, StoreError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, "listing", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = name.parse()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The segment being written.
pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) file: Arc<File>,
    pub(crate) segment: u32,
    pub(crate) size: u64,
    /// Records written so far (a sequence number for group commit).
    pub(crate) written: u64,
}

impl Writer {
    pub(crate) fn create(dir: &Path, segment: u32) -> Result<Writer, StoreError> {
        let path = dir.join(segment_name(segment));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "opening", e))?;
        let size = file
            .metadata()
            .map_err(|e| StoreError::io(&path, "reading", e))?
            .len();
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io(dir, "fsyncing", e))?;
        Ok(Writer {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            segment,
            size,
            written: 0,
        })
    }

    /// Writes one framed record (not yet synced); returns its sequence.
    pub(crate) fn write(&mut self, record: &[u8], synced: &AtomicU64) -> Result<u64, StoreError> {
        if self.size > 0 && self.size + record.len() as u64 > SEGMENT_BYTES {
            self.rotate(synced)?;
        }
        let path = || self.dir.join(segment_name(self.segment));
        (&*self.file)
            .write_all(record)
            .map_err(|e| StoreError::io(&path(), "writing", e))?;
        self.size += record.len() as u64;
        self.written += 1;
        Ok(self.written)
    }

    /// Syncs the current segment and starts the next one; everything
    /// written so far counts as synced.
    pub(crate) fn rotate(&mut self, synced: &AtomicU64) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.dir, "fsyncing a segment", e))?;
        synced.fetch_max(self.written, Ordering::AcqRel);
        let written = self.written;
        *self = Writer::create(&self.dir, self.segment + 1)?;
        self.written = written;
        Ok(())
    }
}

/// Group commit: the caller that finds its record not yet synced syncs
/// everything written so far; the others wait on the lock and find theirs
/// done.
pub(crate) fn sync(
    sync_lock: &Mutex<()>,
    synced: &AtomicU64,
    mine: u64,
    current: impl FnOnce() -> (Arc<File>, u64),
) -> Result<(), StoreError> {
    if synced.load(Ordering::Acquire) >= mine {
        return Ok(());
    }
    let _guard = sync_lock.lock().unwrap_or_else(|e| e.into_inner());
    if synced.load(Ordering::Acquire) >= mine {
        return Ok(());
    }
    let (file, target) = current();
    file.sync_data()
        .map_err(|e| StoreError::Io(format!("fsyncing the trace WAL: {e}")))?;
    synced.fetch_max(target, Ordering::AcqRel);
    Ok(())
}
