//! Deleted samples of a block: the `tombstones` file.
//!
//! A block's chunks and index never change, so a delete records what it
//! deletes beside them: for each series (by its id in the block's index) a
//! list of deleted time [`Intervals`]. Readers hide the samples those
//! intervals cover; compaction writes the data out again without them.
//! The byte layout and the rules a reader checks are specified in
//! `docs/format/tombstones.md`.
//!
//! Decoding never panics; every malformed input is a [`TombstonesError`]
//! naming the byte offset and what was wrong. Every field has one valid
//! encoding, so whatever decodes re-encodes to the same bytes.

use crate::block::{BlockError, sync_dir};
use crate::index::{DecodeError, Decoder, put_uvarint, put_varint, zigzag_decode};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// The four bytes that open a tombstones file.
pub const TOMBSTONES_MAGIC: [u8; 4] = *b"OSPT";
/// The only tombstones version this code reads and writes.
pub const TOMBSTONES_VERSION: u8 = 1;
/// The file's name inside a block directory.
pub const TOMBSTONES_FILE: &str = "tombstones";
/// Where a replacement is written before it is renamed into place.
const TEMPORARY_FILE: &str = "tombstones.tmp";

const HEADER_LEN: usize = 5;
const CRC_LEN: usize = 4;
/// The fewest bytes a series entry takes: an id delta, an interval count,
/// and one interval's start and length, one byte each.
const MIN_ENTRY_LEN: usize = 4;
/// The fewest bytes an interval takes.
const MIN_INTERVAL_LEN: usize = 2;

/// Deleted time ranges of one series, in milliseconds, both ends inclusive:
/// sorted, never overlapping and never adjacent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals {
    list: Vec<(i64, i64)>,
}

impl Intervals {
    pub fn new() -> Intervals {
        Intervals::default()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The intervals as `(mint, maxt)` pairs, in order.
    pub fn as_slice(&self) -> &[(i64, i64)] {
        &self.list
    }

    /// Adds `[mint, maxt]`, merging it with every interval it overlaps or
    /// touches. An empty range (`mint > maxt`) adds nothing.
    pub fn add(&mut self, mint: i64, maxt: i64) {
        if mint > maxt {
            return;
        }
        // Intervals (a, b) with b >= mint - 1 and a <= maxt + 1 merge.
        let start = self
            .list
            .partition_point(|&(_, b)| b < mint.saturating_sub(1));
        let end = self
            .list
            .partition_point(|&(a, _)| a <= maxt.saturating_add(1));
        let (mut low, mut high) = (mint, maxt);
        if start < end {
            low = low.min(self.list[start].0);
            high = high.max(self.list[end - 1].1);
        }
        self.list.splice(start..end, [(low, high)]);
    }

    /// Whether the sample at `t` is deleted.
    pub fn contains(&self, t: i64) -> bool {
        let i = self.list.partition_point(|&(_, b)| b < t);
        self.list.get(i).is_some_and(|&(a, _)| a <= t)
    }

    /// Whether every timestamp in `[mint, maxt]` is deleted.
    pub fn covers(&self, mint: i64, maxt: i64) -> bool {
        let i = self.list.partition_point(|&(_, b)| b < mint);
        self.list
            .get(i)
            .is_some_and(|&(a, b)| a <= mint && b >= maxt)
    }

    /// Whether some timestamp in `[mint, maxt]` is deleted.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let i = self.list.partition_point(|&(_, b)| b < mint);
        self.list.get(i).is_some_and(|&(a, _)| a <= maxt)
    }

    /// Removes the deleted samples from `samples` (ascending by time), in
    /// one pass.
    pub fn remove_from(&self, samples: &mut Vec<(i64, f64)>) {
        if self.list.is_empty() {
            return;
        }
        let mut next = 0;
        samples.retain(|&(t, _)| {
            while next < self.list.len() && self.list[next].1 < t {
                next += 1;
            }
            !(next < self.list.len() && self.list[next].0 <= t)
        });
    }
}

/// The tombstones of one block: deleted intervals by series id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tombstones {
    series: BTreeMap<u32, Intervals>,
}

/// Why bytes are not a valid tombstones file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TombstonesError {
    offset: u64,
    reason: &'static str,
}

impl TombstonesError {
    /// The byte offset in the file where reading failed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A short description of what was wrong.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    fn at(offset: usize, reason: &'static str) -> TombstonesError {
        TombstonesError {
            offset: offset as u64,
            reason,
        }
    }
}

impl From<DecodeError> for TombstonesError {
    fn from(e: DecodeError) -> TombstonesError {
        TombstonesError::at(e.offset, e.what)
    }
}

impl fmt::Display for TombstonesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid tombstones at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for TombstonesError {}

impl Tombstones {
    pub fn new() -> Tombstones {
        Tombstones::default()
    }

    /// Whether nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// How many series have deleted intervals.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// The deleted intervals of series `id`, if any.
    pub fn get(&self, id: u32) -> Option<&Intervals> {
        self.series.get(&id)
    }

    /// Deletes `[mint, maxt]` of series `id` (nothing when `mint > maxt`).
    pub fn add(&mut self, id: u32, mint: i64, maxt: i64) {
        if mint <= maxt {
            self.series.entry(id).or_default().add(mint, maxt);
        }
    }

    /// Every series with deleted intervals, by ascending id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Intervals)> {
        self.series.iter().map(|(&id, intervals)| (id, intervals))
    }

    /// The largest series id named, if any.
    pub fn max_series_id(&self) -> Option<u32> {
        self.series.keys().next_back().copied()
    }

    /// Appends the file's bytes (header, entries, CRC) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&TOMBSTONES_MAGIC);
        out.push(TOMBSTONES_VERSION);
        put_uvarint(out, self.series.len() as u64);
        let mut previous: Option<u32> = None;
        for (&id, intervals) in &self.series {
            let delta = match previous {
                None => u64::from(id),
                Some(p) => u64::from(id - p),
            };
            previous = Some(id);
            put_uvarint(out, delta);
            put_uvarint(out, intervals.list.len() as u64);
            for &(mint, maxt) in &intervals.list {
                put_varint(out, mint);
                put_uvarint(out, maxt.wrapping_sub(mint) as u64);
            }
        }
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Reads a whole tombstones file.
    pub fn decode(bytes: &[u8]) -> Result<Tombstones, TombstonesError> {
        if bytes.len() < HEADER_LEN + CRC_LEN {
            return Err(TombstonesError::at(
                0,
                "file shorter than its header and CRC",
            ));
        }
        if bytes[..4] != TOMBSTONES_MAGIC {
            return Err(TombstonesError::at(0, "not a tombstones file (bad magic)"));
        }
        if bytes[4] != TOMBSTONES_VERSION {
            return Err(TombstonesError::at(4, "unsupported tombstones version"));
        }
        let body_end = bytes.len() - CRC_LEN;
        let mut stored = [0u8; CRC_LEN];
        stored.copy_from_slice(&bytes[body_end..]);
        if crc32c::crc32c(&bytes[..body_end]) != u32::from_le_bytes(stored) {
            return Err(TombstonesError::at(body_end, "CRC mismatch"));
        }
        let mut d = Decoder::new(&bytes[..body_end], HEADER_LEN);
        let n_series = uvarint(&mut d)?;
        if n_series > (d.remaining() / MIN_ENTRY_LEN) as u64 {
            return d
                .fail("series count larger than the file")
                .map_err(Into::into);
        }
        let mut series = BTreeMap::new();
        let mut previous: Option<u32> = None;
        for _ in 0..n_series {
            let entry_at = d.position();
            let delta = uvarint(&mut d)?;
            let id = match previous {
                None => u32::try_from(delta).ok(),
                Some(_) if delta == 0 => {
                    return Err(TombstonesError::at(
                        entry_at,
                        "series ids not strictly increasing",
                    ));
                }
                Some(p) => u64::from(p)
                    .checked_add(delta)
                    .and_then(|id| u32::try_from(id).ok()),
            };
            let Some(id) = id else {
                return Err(TombstonesError::at(
                    entry_at,
                    "series id does not fit in 32 bits",
                ));
            };
            previous = Some(id);
            let n_intervals = uvarint(&mut d)?;
            if n_intervals == 0 {
                return d.fail("series entry without intervals").map_err(Into::into);
            }
            if n_intervals > (d.remaining() / MIN_INTERVAL_LEN) as u64 {
                return d
                    .fail("interval count larger than the file")
                    .map_err(Into::into);
            }
            let mut list: Vec<(i64, i64)> = Vec::with_capacity(n_intervals as usize);
            for _ in 0..n_intervals {
                let interval_at = d.position();
                let mint = varint(&mut d)?;
                let length = uvarint(&mut d)?;
                let Some(maxt) = mint.checked_add_unsigned(length) else {
                    return Err(TombstonesError::at(
                        interval_at,
                        "interval end overflows 64 bits",
                    ));
                };
                if let Some(&(_, previous_maxt)) = list.last()
                    && previous_maxt.checked_add(1).is_none_or(|gap| mint <= gap)
                {
                    return Err(TombstonesError::at(
                        interval_at,
                        "intervals not sorted, or overlapping or adjacent",
                    ));
                }
                list.push((mint, maxt));
            }
            series.insert(id, Intervals { list });
        }
        if d.remaining() != 0 {
            return d.fail("bytes after the last entry").map_err(Into::into);
        }
        Ok(Tombstones { series })
    }
}

/// A uvarint in its shortest form: a longer one (a zero byte last) would
/// decode to the same value and re-encode differently.
fn uvarint(d: &mut Decoder<'_>) -> Result<u64, TombstonesError> {
    let at = d.position();
    let value = d.uvarint()?;
    let shortest = (64 - value.leading_zeros()).div_ceil(7).max(1) as usize;
    if d.position() - at != shortest {
        return Err(TombstonesError::at(at, "varint not in its shortest form"));
    }
    Ok(value)
}

/// A zigzag varint in its shortest form.
fn varint(d: &mut Decoder<'_>) -> Result<i64, TombstonesError> {
    Ok(zigzag_decode(uvarint(d)?))
}

/// Reads the tombstones of the block in `block_dir`: empty when it has no
/// `tombstones` file. A file that does not decode is a corruption error
/// naming the file and the offset.
pub fn read_file(block_dir: &Path) -> Result<Tombstones, BlockError> {
    let path = block_dir.join(TOMBSTONES_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tombstones::new()),
        Err(e) => return Err(BlockError::io(&path, e, "reading tombstones")),
    };
    Tombstones::decode(&bytes).map_err(|e| {
        BlockError::corrupt(
            &path,
            e.offset(),
            &format!("invalid tombstones file: {}", e.reason()),
        )
    })
}

/// Replaces the tombstones of the block in `block_dir` with `tombstones`:
/// written to a temporary file, fsynced and renamed into place (an empty
/// set removes the file), then the directory is fsynced.
pub fn write_file(block_dir: &Path, tombstones: &Tombstones) -> Result<(), BlockError> {
    let path = block_dir.join(TOMBSTONES_FILE);
    if tombstones.is_empty() {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(BlockError::io(&path, e, "removing tombstones")),
        }
        return sync_dir(block_dir);
    }
    let mut bytes = Vec::new();
    tombstones.encode(&mut bytes);
    let temporary = block_dir.join(TEMPORARY_FILE);
    let mut file = File::create(&temporary)
        .map_err(|e| BlockError::io(&temporary, e, "creating tombstones"))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| BlockError::io(&temporary, e, "writing tombstones"))?;
    drop(file);
    fs::rename(&temporary, &path)
        .map_err(|e| BlockError::io(&path, e, "renaming tombstones into place"))?;
    sync_dir(block_dir)
}

/// Deletes a `tombstones.tmp` that a crash left in `block_dir`, if any.
pub(crate) fn remove_leftover(block_dir: &Path) {
    let temporary = block_dir.join(TEMPORARY_FILE);
    match fs::remove_file(&temporary) {
        Ok(()) => tracing::info!(file = %temporary.display(), "removed unfinished tombstones"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %temporary.display(), error = %e, "cannot remove unfinished tombstones")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn intervals(pairs: &[(i64, i64)]) -> Intervals {
        let mut out = Intervals::new();
        for &(a, b) in pairs {
            out.add(a, b);
        }
        out
    }

    #[test]
    fn adding_merges_overlapping_and_touching_intervals() {
        assert_eq!(
            intervals(&[(10, 20), (30, 40)]).as_slice(),
            &[(10, 20), (30, 40)]
        );
        assert_eq!(
            intervals(&[(30, 40), (10, 20)]).as_slice(),
            &[(10, 20), (30, 40)]
        );
        assert_eq!(intervals(&[(10, 20), (21, 30)]).as_slice(), &[(10, 30)]);
        assert_eq!(intervals(&[(10, 20), (15, 25)]).as_slice(), &[(10, 25)]);
        assert_eq!(
            intervals(&[(10, 20), (30, 40), (50, 60), (19, 50)]).as_slice(),
            &[(10, 60)]
        );
        assert_eq!(intervals(&[(10, 20), (12, 14)]).as_slice(), &[(10, 20)]);
        assert_eq!(intervals(&[(5, 4)]).as_slice(), &[]);
        assert_eq!(
            intervals(&[(i64::MIN, 0), (1, i64::MAX)]).as_slice(),
            &[(i64::MIN, i64::MAX)]
        );
    }

    #[test]
    fn membership_queries() {
        let set = intervals(&[(10, 20), (30, 40)]);
        assert!(!set.contains(9) && set.contains(10) && set.contains(20) && !set.contains(21));
        assert!(set.covers(10, 20) && set.covers(12, 15) && !set.covers(15, 25));
        assert!(!set.covers(20, 30));
        assert!(set.overlaps(0, 10) && set.overlaps(20, 30) && !set.overlaps(21, 29));
        assert!(!set.overlaps(41, 100));
        let mut samples: Vec<(i64, f64)> = (0..50).step_by(5).map(|t| (t, t as f64)).collect();
        set.remove_from(&mut samples);
        let times: Vec<i64> = samples.iter().map(|s| s.0).collect();
        assert_eq!(times, vec![0, 5, 25, 45]);
    }

    fn sample_file() -> (Tombstones, Vec<u8>) {
        let mut t = Tombstones::new();
        t.add(3, 100, 200);
        t.add(3, 500, 600);
        t.add(7, i64::MIN, i64::MAX);
        t.add(4_000_000_000, -5, -1);
        let mut bytes = Vec::new();
        t.encode(&mut bytes);
        (t, bytes)
    }

    #[test]
    fn round_trips() {
        let (t, bytes) = sample_file();
        assert_eq!(&bytes[..4], b"OSPT");
        assert_eq!(Tombstones::decode(&bytes), Ok(t.clone()));
        assert_eq!(t.max_series_id(), Some(4_000_000_000));
        let empty = Tombstones::new();
        let mut bytes = Vec::new();
        empty.encode(&mut bytes);
        assert_eq!(Tombstones::decode(&bytes), Ok(empty));
    }

    #[test]
    fn any_flipped_bit_is_an_error_naming_the_crc() {
        let (_, bytes) = sample_file();
        for i in 5..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            let e = Tombstones::decode(&bad).expect_err("a flipped bit must not decode");
            assert_eq!(e.reason(), "CRC mismatch", "byte {i}");
            assert_eq!(e.offset(), (bytes.len() - 4) as u64);
        }
        let e = Tombstones::decode(&bytes[..bytes.len() - 1]).expect_err("truncated");
        assert_eq!(e.reason(), "CRC mismatch");
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(
            Tombstones::decode(&bad).map_err(|e| e.reason()),
            Err("not a tombstones file (bad magic)")
        );
        bad = bytes.clone();
        bad[4] = 2;
        assert_eq!(
            Tombstones::decode(&bad).map_err(|e| e.reason()),
            Err("unsupported tombstones version")
        );
        assert!(Tombstones::decode(b"OSPT").is_err());
    }

    /// Bytes with a valid CRC but a body that breaks a rule.
    fn with_crc(body: &[u8]) -> Vec<u8> {
        let mut out = b"OSPT\x01".to_vec();
        out.extend_from_slice(body);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn rejects_non_canonical_bodies_with_a_reason() {
        let reason = |body: &[u8]| {
            Tombstones::decode(&with_crc(body))
                .map(|_| ())
                .map_err(|e| e.reason())
        };
        // Two entries, the second with id delta 0.
        assert_eq!(
            reason(&[2, 1, 1, 0, 0, 0, 1, 0, 0]),
            Err("series ids not strictly increasing")
        );
        // An entry with no intervals.
        assert_eq!(
            reason(&[1, 1, 0, 0, 0]),
            Err("series entry without intervals")
        );
        // Adjacent intervals [0,0] and [1,1].
        assert_eq!(
            reason(&[1, 0, 2, 0, 0, 2, 0]),
            Err("intervals not sorted, or overlapping or adjacent")
        );
        // Trailing bytes.
        assert_eq!(
            reason(&[1, 0, 1, 0, 0, 9]),
            Err("bytes after the last entry")
        );
        // A count no file of this size can hold.
        assert_eq!(
            reason(&[100, 0, 1, 0, 0]),
            Err("series count larger than the file")
        );
        // An id beyond 32 bits.
        assert_eq!(
            reason(&[1, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 0, 0]),
            Err("series id does not fit in 32 bits")
        );
        // maxt past i64::MAX: mint = i64::MAX (zigzag 2^64 - 2), length 1.
        let mut body = vec![1, 0, 1];
        put_varint(&mut body, i64::MAX);
        body.push(1);
        assert_eq!(reason(&body), Err("interval end overflows 64 bits"));
        assert_eq!(reason(&[1, 0, 1, 0, 0x80]), Err("bad or truncated varint"));
        // Zero written in two bytes.
        assert_eq!(
            reason(&[1, 0, 1, 0x80, 0, 0]),
            Err("varint not in its shortest form")
        );
    }

    #[test]
    fn files_are_written_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_file(dir.path()).unwrap().is_empty());
        let (t, _) = sample_file();
        write_file(dir.path(), &t).unwrap();
        assert_eq!(read_file(dir.path()).unwrap(), t);
        assert!(!dir.path().join(TEMPORARY_FILE).exists());
        write_file(dir.path(), &Tombstones::new()).unwrap();
        assert!(!dir.path().join(TOMBSTONES_FILE).exists());
        // Removing what is not there is fine.
        write_file(dir.path(), &Tombstones::new()).unwrap();

        std::fs::write(dir.path().join(TOMBSTONES_FILE), b"OSPT\x01garbage!").unwrap();
        let e = read_file(dir.path()).expect_err("garbage must not read");
        let message = e.to_string();
        assert!(message.contains("tombstones"), "{message}");
        assert!(message.contains("CRC mismatch"), "{message}");
        assert_eq!(e.kind(), crate::block::BlockErrorKind::Corrupt);
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(entries in proptest::collection::vec(
            (any::<u32>(), any::<i64>(), any::<i64>()), 0..40))
        {
            let mut t = Tombstones::new();
            for (id, a, b) in entries {
                t.add(id, a.min(b), a.max(b));
            }
            let mut bytes = Vec::new();
            t.encode(&mut bytes);
            prop_assert_eq!(Tombstones::decode(&bytes), Ok(t));
        }

        #[test]
        fn decoding_never_panics_and_is_canonical(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Tombstones::decode(&body);
            let bytes = with_crc(&body);
            if let Ok(t) = Tombstones::decode(&bytes) {
                let mut again = Vec::new();
                t.encode(&mut again);
                prop_assert_eq!(again, bytes);
            }
        }
    }
}
