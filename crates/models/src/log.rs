//! The prediction log of `docs/format/models.md`: framed request bodies,
//! CRC-32C checked, fdatasynced before a request is answered.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A frame kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Predictions = 1,
    Actuals = 2,
}

/// Bytes of a frame header: length, CRC, kind.
const HEADER: usize = 9;
/// A new segment is started past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// The largest payload a frame may hold.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// One model's log directory.
pub struct Log {
    dir: PathBuf,
    /// The segment being written and its number.
    file: File,
    number: u64,
    size: u64,
    /// Per closed segment: its number and the newest record timestamp it
    /// holds (ms), for retention.
    closed: Vec<(u64, i64)>,
    /// The newest record timestamp in the open segment.
    newest_ms: i64,
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:08}.seg"))
}

/// The segment numbers in `dir`, ascending.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".seg")
            && let Ok(n) = stem.parse::<u64>()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn crc(kind: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload)
}

/// What replay found: each good frame, handed to the caller in order.
pub struct Replayed {
    pub frames: usize,
    pub truncated: bool,
}

impl Log {
    /// Opens (creating) the log in `dir`, replaying every good frame into
    /// `apply(kind, payload) -> newest record timestamp in ms`, repairing
    /// a torn tail.
    pub fn open(
        dir: &Path,
        mut apply: impl FnMut(FrameKind, &[u8]) -> Option<i64>,
    ) -> std::io::Result<(Log, Replayed)> {
        std::fs::create_dir_all(dir)?;
        let numbers = segments(dir)?;
        let mut closed = Vec::new();
        let mut replayed = Replayed {
            frames: 0,
            truncated: false,
        };
        let mut last: Option<(u64, u64, i64)> = None;
        for (index, &number) in numbers.iter().enumerate() {
            if let Some((n, _, t)) = last.take() {
                closed.push((n, t));
            }
            let path = segment_path(dir, number);
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let mut at = 0usize;
            let mut newest = i64::MIN;
            let mut torn = false;
            while at < bytes.len() {
                let Some(header) = bytes.get(at..at + HEADER) else {
                    torn = true;
                    break;
                };
                let length =
                    u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let sum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                let kind = header[8];
                let Some(payload) = bytes.get(at + HEADER..at + HEADER + length) else {
                    torn = true;
                    break;
                };
                if length > MAX_PAYLOAD || crc(kind, payload) != sum {
                    torn = true;
                    break;
                }
                let kind = match kind {
                    1 => Some(FrameKind::Predictions),
                    2 => Some(FrameKind::Actuals),
                    _ => None,
                };
                if let Some(kind) = kind {
                    if let Some(t) = apply(kind, payload) {
                        newest = newest.max(t);
                    }
                    replayed.frames += 1;
                }
                at += HEADER + length;
            }
            if torn {
                tracing::warn!(
                    segment = %path.display(),
                    kept_bytes = at,
                    "model log: torn or corrupt frame; truncating the log there"
                );
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(at as u64)?;
                replayed.truncated = true;
                for &later in &numbers[index + 1..] {
                    std::fs::remove_file(segment_path(dir, later))?;
                }
                last = Some((number, at as u64, newest));
                break;
            }
            last = Some((number, bytes.len() as u64, newest));
        }
        let (number, size, newest_ms) = last.unwrap_or((1, 0, i64::MIN));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, number))?;
        Ok((
            Log {
                dir: dir.to_path_buf(),
                file,
                number,
                size,
                closed,
                newest_ms,
            },
            replayed,
        ))
    }

    /// Appends one frame and syncs it to disk. `newest_ms` is the newest
    /// record timestamp in the payload.
    pub fn append(
        &mut self,
        kind: FrameKind,
        payload: &[u8],
        newest_ms: i64,
    ) -> std::io::Result<()> {
        if payload.len() > MAX_PAYLOAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "request body larger than a log frame may be",
            ));
        }
        if self.size > 0 && self.size + (HEADER + payload.len()) as u64 > SEGMENT_BYTES {
            self.cut()?;
        }
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&crc(kind as u8, payload).to_le_bytes());
        header[8] = kind as u8;
        // Header and payload in two writes rather than one copied frame:
        // a crash between them leaves a torn tail, which replay cuts.
        self.file.write_all(&header)?;
        self.file.write_all(payload)?;
        self.file.sync_data()?;
        self.size += (HEADER + payload.len()) as u64;
        self.newest_ms = self.newest_ms.max(newest_ms);
        Ok(())
    }

    fn cut(&mut self) -> std::io::Result<()> {
        let next = self.number + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, next))?;
        File::open(&self.dir)?.sync_all()?;
        self.closed.push((self.number, self.newest_ms));
        self.file = file;
        self.number = next;
        self.size = 0;
        self.newest_ms = i64::MIN;
        Ok(())
    }

    /// Deletes closed segments whose newest record is older than
    /// `cutoff_ms`, unless `keep(newest_ms)` says otherwise.
    pub fn retain(&mut self, cutoff_ms: i64) {
        let dir = self.dir.clone();
        self.closed.retain(|&(number, newest)| {
            if newest >= cutoff_ms {
                return true;
            }
            match std::fs::remove_file(segment_path(&dir, number)) {
                Ok(()) => false,
                Err(error) => {
                    tracing::warn!(%error, segment = number, "model log: deleting an old segment");
                    true
                }
            }
        });
    }

    /// Bytes in the log's segments.
    pub fn disk_bytes(&self) -> u64 {
        let mut total = self.size;
        for &(number, _) in &self.closed {
            total += std::fs::metadata(segment_path(&self.dir, number))
                .map(|m| m.len())
                .unwrap_or(0);
        }
        total
    }
}

/// Writes `body` to `path` atomically and durably (tmp, fsync, rename,
/// fsync of the directory).
pub fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    model::durable::write_atomic(path, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_a_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut log, r) = Log::open(dir.path(), |_, _| None).expect("open");
            assert_eq!(r.frames, 0);
            log.append(FrameKind::Predictions, b"one", 1)
                .expect("append");
            log.append(FrameKind::Actuals, b"two", 2).expect("append");
        }
        // A torn third frame: a header claiming more bytes than follow.
        let seg = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&seg)
            .expect("open seg");
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 1, b'x'])
            .expect("write");
        drop(f);
        let mut seen = Vec::new();
        let (mut log, r) = Log::open(dir.path(), |k, p| {
            seen.push((k, p.to_vec()));
            None
        })
        .expect("reopen");
        assert!(r.truncated);
        assert_eq!(
            seen,
            vec![
                (FrameKind::Predictions, b"one".to_vec()),
                (FrameKind::Actuals, b"two".to_vec())
            ]
        );
        log.append(FrameKind::Predictions, b"three", 3)
            .expect("append");
        drop(log);
        let mut count = 0;
        let (_log, r) = Log::open(dir.path(), |_, _| {
            count += 1;
            None
        })
        .expect("reopen");
        assert!(!r.truncated);
        assert_eq!(count, 3);
    }

    #[test]
    fn a_flipped_bit_ends_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut log, _) = Log::open(dir.path(), |_, _| None).expect("open");
            log.append(FrameKind::Predictions, b"good", 1)
                .expect("append");
            log.append(FrameKind::Predictions, b"flipped", 1)
                .expect("append");
        }
        let seg = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&seg).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&seg, bytes).expect("write");
        let mut count = 0;
        let (_log, r) = Log::open(dir.path(), |_, _| {
            count += 1;
            None
        })
        .expect("reopen");
        assert!(r.truncated);
        assert_eq!(count, 1);
    }
}
