//! Segment files: record framing, the frame reader used by repair, replay,
//! checkpoints and the fuzzer, and segment and checkpoint file names.
//!
//! A frame is `len u32 LE | crc32c u32 LE | type u8 | payload`, where `len`
//! counts the type byte and payload and the CRC covers the same bytes (see
//! `docs/format/wal.md`). The reader works on any [`Read`] whose total
//! length is known, so [`scan_segment_bytes`] runs the very same parser over
//! a byte slice, without I/O.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::record::is_known_record_type;

/// Bytes in a frame header: length and CRC.
pub const FRAME_HEADER_LEN: usize = 8;

/// Appends one framed record (`record` = type byte + payload) to `out`.
///
/// The caller guarantees `1 <= record.len() <= u32::MAX`.
pub(crate) fn append_frame(out: &mut Vec<u8>, record: &[u8]) {
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(record).to_le_bytes());
    out.extend_from_slice(record);
}

/// Why a frame was judged torn or corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptionReason {
    /// Fewer than 8 bytes remain after the last good frame.
    TruncatedHeader,
    /// The length field is zero.
    ZeroLength,
    /// The record would extend past the end of the segment.
    TruncatedRecord,
    /// The CRC does not match the record bytes.
    ChecksumMismatch,
    /// The type byte is not one this version knows.
    UnknownType(u8),
    /// The frame is intact but its record does not decode (replay only).
    UndecodableRecord,
}

impl fmt::Display for CorruptionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptionReason::TruncatedHeader => f.write_str("truncated frame header"),
            CorruptionReason::ZeroLength => f.write_str("zero record length"),
            CorruptionReason::TruncatedRecord => {
                f.write_str("record extends past the end of the segment")
            }
            CorruptionReason::ChecksumMismatch => f.write_str("checksum mismatch"),
            CorruptionReason::UnknownType(t) => write!(f, "unknown record type {t}"),
            CorruptionReason::UndecodableRecord => f.write_str("record does not decode"),
        }
    }
}

/// A torn or corrupt frame: where it starts and why it was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// Byte offset of the bad frame in its segment; every byte before it
    /// belongs to good frames.
    pub offset: u64,
    pub reason: CorruptionReason,
}

/// What the frame reader found next.
pub(crate) enum Frame<'a> {
    /// A good frame; the slice is its type byte and payload.
    Record(&'a [u8]),
    /// The clean end of the segment.
    End,
    /// A torn or corrupt frame; nothing after it is read.
    Corrupt(Corruption),
}

/// Reads frames one by one from a source of known length.
pub(crate) struct FrameReader<R> {
    source: R,
    offset: u64,
    length: u64,
    buffer: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    pub(crate) fn new(source: R, length: u64) -> FrameReader<R> {
        FrameReader {
            source,
            offset: 0,
            length,
            buffer: Vec::new(),
        }
    }

    /// The end offset of the last good frame returned.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next frame. I/O errors other than an early end of file are
    /// returned as errors; an early end counts as a torn frame.
    pub(crate) fn next_frame(&mut self) -> io::Result<Frame<'_>> {
        let remaining = self.length - self.offset;
        if remaining == 0 {
            return Ok(Frame::End);
        }
        let corrupt = |offset, reason| Ok(Frame::Corrupt(Corruption { offset, reason }));
        if remaining < FRAME_HEADER_LEN as u64 {
            return corrupt(self.offset, CorruptionReason::TruncatedHeader);
        }
        let mut header = [0u8; FRAME_HEADER_LEN];
        if let Err(error) = self.source.read_exact(&mut header) {
            return match error.kind() {
                io::ErrorKind::UnexpectedEof => {
                    corrupt(self.offset, CorruptionReason::TruncatedHeader)
                }
                _ => Err(error),
            };
        }
        let record_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let expected_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if record_len == 0 {
            return corrupt(self.offset, CorruptionReason::ZeroLength);
        }
        if u64::from(record_len) > remaining - FRAME_HEADER_LEN as u64 {
            return corrupt(self.offset, CorruptionReason::TruncatedRecord);
        }
        self.buffer.resize(record_len as usize, 0);
        if let Err(error) = self.source.read_exact(&mut self.buffer) {
            return match error.kind() {
                io::ErrorKind::UnexpectedEof => {
                    corrupt(self.offset, CorruptionReason::TruncatedRecord)
                }
                _ => Err(error),
            };
        }
        if crc32c::crc32c(&self.buffer) != expected_crc {
            return corrupt(self.offset, CorruptionReason::ChecksumMismatch);
        }
        let record_type = self.buffer[0];
        if !is_known_record_type(record_type) {
            return corrupt(self.offset, CorruptionReason::UnknownType(record_type));
        }
        self.offset += FRAME_HEADER_LEN as u64 + u64::from(record_len);
        Ok(Frame::Record(&self.buffer))
    }
}

/// The result of scanning a segment's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// Good frames found.
    pub records: u64,
    /// End offset of the last good frame: the length a repair truncates to.
    pub valid_len: u64,
    /// The first torn or corrupt frame, if any.
    pub corruption: Option<Corruption>,
}

/// Scans the bytes of a segment, calling `on_record` with each good
/// record's type byte and payload, and stops at the first bad frame.
///
/// This is the parser that repair, replay and checkpoints use, run over a
/// slice; it exists so the fuzzer can reach it without files.
pub fn scan_segment_bytes(bytes: &[u8], on_record: &mut dyn FnMut(&[u8])) -> SegmentScan {
    let mut reader = FrameReader::new(bytes, bytes.len() as u64);
    let mut records = 0;
    loop {
        // Reading from a slice cannot fail with anything but an early end,
        // which the reader reports as a torn frame.
        match reader.next_frame() {
            Ok(Frame::Record(record)) => {
                on_record(record);
                records += 1;
            }
            Ok(Frame::End) | Err(_) => {
                return SegmentScan {
                    records,
                    valid_len: reader.offset(),
                    corruption: None,
                };
            }
            Ok(Frame::Corrupt(corruption)) => {
                return SegmentScan {
                    records,
                    valid_len: corruption.offset,
                    corruption: Some(corruption),
                };
            }
        }
    }
}

/// The file name of segment `number`: 8 decimal digits.
pub(crate) fn segment_file_name(number: u32) -> String {
    format!("{number:08}")
}

/// The directory name of the checkpoint through segment `number`.
pub(crate) fn checkpoint_dir_name(number: u32) -> String {
    format!("checkpoint.{number:08}")
}

/// Parses a segment file name (all decimal digits, at least 8).
pub(crate) fn parse_segment_name(name: &str) -> Option<u32> {
    if name.len() < 8 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Parses a finished checkpoint directory name `checkpoint.NNNNNNNN`.
pub(crate) fn parse_checkpoint_name(name: &str) -> Option<u32> {
    name.strip_prefix("checkpoint.")
        .and_then(parse_segment_name)
}

/// What a WAL directory holds, sorted by number.
pub(crate) struct DirectoryListing {
    pub(crate) segments: Vec<u32>,
    pub(crate) checkpoints: Vec<u32>,
    /// Unfinished checkpoint directories (`checkpoint.*.tmp`).
    pub(crate) temporary: Vec<PathBuf>,
}

impl DirectoryListing {
    pub(crate) fn latest_checkpoint(&self) -> Option<u32> {
        self.checkpoints.last().copied()
    }
}

pub(crate) fn list_directory(dir: &Path) -> io::Result<DirectoryListing> {
    let mut listing = DirectoryListing {
        segments: Vec::new(),
        checkpoints: Vec::new(),
        temporary: Vec::new(),
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(number) = parse_segment_name(&name) {
            if entry.file_type()?.is_file() {
                listing.segments.push(number);
            }
        } else if let Some(number) = parse_checkpoint_name(&name) {
            if entry.file_type()?.is_dir() {
                listing.checkpoints.push(number);
            }
        } else if name.starts_with("checkpoint.") && name.ends_with(".tmp") {
            listing.temporary.push(entry.path());
        }
    }
    listing.segments.sort_unstable();
    listing.checkpoints.sort_unstable();
    Ok(listing)
}

/// Makes a directory's entries (new, renamed or deleted names) durable.
pub(crate) fn sync_directory(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(records: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for record in records {
            append_frame(&mut bytes, record);
        }
        bytes
    }

    #[test]
    fn scans_good_frames() {
        let bytes = frames(&[&[1, 2, 3], &[2], &[1]]);
        let mut seen = Vec::new();
        let scan = scan_segment_bytes(&bytes, &mut |r| seen.push(r.to_vec()));
        assert_eq!(seen, vec![vec![1, 2, 3], vec![2], vec![1]]);
        assert_eq!(scan.records, 3);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        assert_eq!(scan.corruption, None);
    }

    #[test]
    fn detects_each_kind_of_damage() {
        let good = frames(&[&[1, 9, 9]]);
        let check = |tail: Vec<u8>, reason: CorruptionReason| {
            let mut bytes = good.clone();
            bytes.extend_from_slice(&tail);
            let scan = scan_segment_bytes(&bytes, &mut |_| {});
            assert_eq!(scan.records, 1);
            assert_eq!(scan.valid_len, good.len() as u64);
            assert_eq!(
                scan.corruption,
                Some(Corruption {
                    offset: good.len() as u64,
                    reason
                })
            );
        };
        check(vec![1, 0, 0], CorruptionReason::TruncatedHeader);
        check(vec![0; 16], CorruptionReason::ZeroLength);
        check(
            frames(&[&[1, 2, 3]])[..10].to_vec(),
            CorruptionReason::TruncatedRecord,
        );
        let mut flipped = frames(&[&[1, 2, 3]]);
        flipped[9] ^= 0x40;
        check(flipped, CorruptionReason::ChecksumMismatch);
        check(frames(&[&[7, 1]]), CorruptionReason::UnknownType(7));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(42), "00000042");
        assert_eq!(parse_segment_name("00000042"), Some(42));
        assert_eq!(parse_segment_name("42"), None);
        assert_eq!(parse_segment_name("0000004a"), None);
        assert_eq!(parse_checkpoint_name(&checkpoint_dir_name(7)), Some(7));
        assert_eq!(parse_checkpoint_name("checkpoint.00000007.tmp"), None);
    }
}
