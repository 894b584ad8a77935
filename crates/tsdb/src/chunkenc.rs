//! Sample chunk encodings: `Xor` for the head, `Dense` for immutable blocks.
//!
//! A chunk is the compressed samples `(timestamp ms, f64 value)` of one series
//! over a time range. The byte layouts are specified in `docs/format/chunks.md`;
//! this module is the only code that reads or writes them.
//!
//! - [`XorAppender`] builds an [`Encoding::Xor`] chunk one sample at a time
//!   (Gorilla: delta-of-delta timestamps, XOR values, as Prometheus' head).
//! - [`encode_dense`] builds an [`Encoding::Dense`] chunk from all samples at
//!   once, choosing per chunk between regular, grid and delta-of-delta
//!   timestamps and between constant, decimal-integer and XOR values.
//! - [`ChunkIter`] decodes either lazily without allocating; [`decode_all`]
//!   collects.
//!
//! Values round-trip bit for bit (NaN payloads, `-0.0`, infinities). Decoding
//! never panics on corrupt bytes: it returns a [`ChunkError`] or ends the
//! iteration with [`ChunkIter::err`] set.

use std::ptr::NonNull;

/// The one-byte id stored next to every chunk, naming its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Gorilla XOR chunk, appended one sample at a time (the head).
    Xor = 1,
    /// Column-wise chunk for immutable blocks, encoded in one go.
    Dense = 2,
}

impl Encoding {
    /// Maps a stored id back to its encoding; unknown ids give `None`.
    pub fn from_u8(byte: u8) -> Option<Encoding> {
        match byte {
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::Dense),
            _ => None,
        }
    }
}

/// A chunk's bytes do not decode: truncated, corrupt or garbage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt chunk: {reason}")]
pub struct ChunkError {
    reason: &'static str,
}

impl ChunkError {
    pub(crate) fn new(reason: &'static str) -> ChunkError {
        ChunkError { reason }
    }

    /// Says what was wrong with the bytes.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// The most samples a Dense chunk may hold; readers reject larger counts so a
/// corrupt count cannot make a tiny chunk expand to billions of samples.
pub const MAX_DENSE_SAMPLES: usize = 1 << 20;

/// The most samples an Xor chunk can hold: its count is a `u16`.
pub const MAX_XOR_SAMPLES: usize = u16::MAX as usize;

/// Appends samples one by one into an XOR chunk.
///
/// The bytes are a valid chunk after every append, so the head can hand them
/// out (and mmap them) at any time.
///
/// Every head series keeps one, so its fields are packed: 48 bytes in all.
/// The bytes are a thin pointer, a 32-bit length and a one-byte capacity
/// code ([`Capacity`]; a boxed slice took 16 bytes, a `Vec` 24), and the
/// sample count is read from the chunk's own two-byte header rather than
/// kept beside it.
pub struct XorAppender {
    /// The chunk's bytes: `len` written ones, then spare capacity, in an
    /// allocation of `capacity.bytes(len)` bytes that the appender owns
    /// (as a `Box<[u8]>` would). `len` is at least 2 (the count). An
    /// empty chunk ([`Capacity::NONE`]) owns nothing: it points at
    /// [`EMPTY_CHUNK`], never written, and its first append allocates.
    ptr: NonNull<u8>,
    len: u32,
    capacity: Capacity,
    bit_writer: BitWriter,
    last_time: i64,
    last_time_delta: i64,
    last_value_bits: u64,
    /// The XOR window's leading and trailing zero counts, as in
    /// [`XorCheckpoint::window`].
    window: Option<PackedWindow>,
}

/// Decoder states of one [`XorAppender`]'s chunk at its two latest
/// multiples of [`XOR_CHECKPOINT_EVERY`] samples, newest first, so a read
/// of the chunk's recent end (a `rate(x[5m])` over the open head chunk)
/// skips decoding its start. Kept by the appender's owner, not in the
/// appender: a head series whose chunk is still short (most of them, a
/// million at a time on a wide head) has none, and keeps no pointer for
/// them in its record either. Filled by
/// [`XorAppender::record_checkpoint`] and read by
/// [`XorAppender::iter_from`]; cleared when its chunk is replaced.
#[derive(Clone, Copy, Debug, Default)]
pub struct XorCheckpoints([Option<XorCheckpoint>; 2]);

impl XorCheckpoints {
    /// None: a new chunk's.
    pub const EMPTY: XorCheckpoints = XorCheckpoints([None, None]);

    /// Forgets both, for a new chunk.
    pub fn clear(&mut self) {
        *self = XorCheckpoints::EMPTY;
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// How many cache lines at its end [`XorAppender::prefetch`] loads: about
/// what [`XOR_CHECKPOINT_EVERY`] samples and a recent window after them
/// take on typical data (2 to 3 bytes a sample).
const PREFETCH_END_LINES: usize = 3;

/// Samples between two decode checkpoints of an [`XorAppender`].
const XOR_CHECKPOINT_EVERY: usize = 32;

/// An Xor decoder's state after some samples: enough to resume decoding
/// there. Packed (40 bytes) because every head series keeps two.
#[derive(Clone, Copy, Debug)]
struct XorCheckpoint {
    time: i64,
    time_delta: i64,
    value_bits: u64,
    /// Bit position in the chunk.
    position: u32,
    n_read: u16,
    /// The XOR window's leading and trailing zero counts (each at most
    /// 64), if a window was set.
    window: Option<PackedWindow>,
}

impl Default for XorAppender {
    fn default() -> XorAppender {
        XorAppender::new()
    }
}

impl XorAppender {
    /// An empty chunk (just the two-byte zero count), which allocates
    /// nothing until its first sample. A head creates a batch's new
    /// series before it appends their samples, so their first buffers
    /// are then allocated side by side, not between the series' records
    /// and labels: when the chunks outgrow them, the freed buffers form
    /// whole free pages that go back to the system, not a million holes
    /// of 32 bytes.
    pub fn new() -> XorAppender {
        XorAppender {
            ptr: NonNull::from(&EMPTY_CHUNK).cast::<u8>(),
            len: 2,
            capacity: Capacity::NONE,
            bit_writer: BitWriter::default(),
            last_time: 0,
            last_time_delta: 0,
            last_value_bits: 0,
            window: None,
        }
    }

    /// Appends one sample; the caller guarantees `t` is above the last one.
    ///
    /// A chunk holds at most [`MAX_XOR_SAMPLES`]; the head cuts chunks long
    /// before that (at 120). Samples past the limit are dropped (and debug
    /// builds panic), because the count field cannot say more.
    pub fn append(&mut self, t: i64, v: f64) {
        let n_samples = self.count();
        if usize::from(n_samples) >= MAX_XOR_SAMPLES {
            debug_assert!(false, "XorAppender holds at most {MAX_XOR_SAMPLES} samples");
            return;
        }
        let value_bits = v.to_bits();
        let mut window = self.window.map(XorWindow::unpack);
        let writer = &mut self.bit_writer;
        let mut sink = ChunkSink {
            limit: self.capacity.bytes(self.len),
            ptr: &mut self.ptr,
            len: &mut self.len,
            capacity: &mut self.capacity,
        };
        match n_samples {
            0 => {
                write_varint_bytes(writer, &mut sink, zigzag_encode(t));
                writer.write(&mut sink, value_bits, 64);
            }
            1 => {
                let delta = t.wrapping_sub(self.last_time);
                write_varint_bytes(writer, &mut sink, delta as u64);
                write_xor_value(
                    writer,
                    &mut sink,
                    value_bits,
                    self.last_value_bits,
                    &mut window,
                );
                self.last_time_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.last_time);
                let delta_of_delta = delta.wrapping_sub(self.last_time_delta);
                write_xor_time_delta_of_delta(writer, &mut sink, delta_of_delta);
                write_xor_value(
                    writer,
                    &mut sink,
                    value_bits,
                    self.last_value_bits,
                    &mut window,
                );
                self.last_time_delta = delta;
            }
        }
        self.window = window.map(XorWindow::pack);
        self.last_time = t;
        self.last_value_bits = value_bits;
        let n_samples = n_samples + 1;
        // SAFETY: `len` is at least 2, the count's two bytes.
        unsafe {
            self.ptr
                .as_ptr()
                .copy_from_nonoverlapping(n_samples.to_be_bytes().as_ptr(), 2)
        };
    }

    /// Whether the chunk's sample count is a positive multiple of
    /// [`XOR_CHECKPOINT_EVERY`]: an owner that keeps [`XorCheckpoints`]
    /// records one after this append.
    pub fn checkpoint_due(&self) -> bool {
        let n = self.num_samples();
        n > 0 && n.is_multiple_of(XOR_CHECKPOINT_EVERY)
    }

    /// Records the decoder's state after the newest sample as the newest
    /// of `checkpoints`, which must be this chunk's.
    pub fn record_checkpoint(&self, checkpoints: &mut XorCheckpoints) {
        let slots = &mut checkpoints.0;
        slots[1] = slots[0];
        // Chunks hold at most 65,535 samples in well under 4 GiB.
        slots[0] = Some(XorCheckpoint {
            n_read: self.count(),
            position: self.len * 8 - u32::from(self.bit_writer.free_bits),
            time: self.last_time,
            time_delta: self.last_time_delta,
            value_bits: self.last_value_bits,
            window: self.window,
        });
    }

    /// Iterates over the chunk's samples from the first one that may be at
    /// or after `mint`: decoding resumes at the newest of `checkpoints`
    /// (this chunk's, see [`XorAppender::record_checkpoint`]) whose sample
    /// is before `mint` (every sample up to it is older), or at the start.
    /// A checkpoint that cannot be this chunk's (past its end, or before
    /// its first sample, as a forgotten one of an older chunk would be) is
    /// not used.
    pub fn iter_from(&self, mint: i64, checkpoints: &XorCheckpoints) -> ChunkIter<&[u8]> {
        // The chunk's first time is decoded only when there is a
        // checkpoint to check against it.
        let checkpoint = checkpoints
            .0
            .iter()
            .flatten()
            .find(|c| c.time < mint)
            .filter(|c| {
                c.n_read <= self.count()
                    && c.position as usize <= self.bytes().len() * 8
                    && c.time >= self.first_time().unwrap_or(i64::MAX)
            })
            .copied();
        let decoder = match checkpoint {
            Some(c) => XorDecoder {
                n_samples: self.num_samples(),
                n_read: usize::from(c.n_read),
                position: c.position as usize,
                time: c.time,
                time_delta: c.time_delta,
                value_bits: c.value_bits,
                window: c.window.map(XorWindow::unpack),
            },
            None => XorDecoder::start(self.num_samples()),
        };
        ChunkIter {
            bytes: self.bytes(),
            decoder: Decoder::Xor(decoder),
            error: None,
        }
    }

    /// How many samples the chunk holds.
    pub fn num_samples(&self) -> usize {
        usize::from(self.count())
    }

    /// The sample count from the chunk's header.
    fn count(&self) -> u16 {
        let bytes = self.bytes();
        u16::from_be_bytes([bytes[0], bytes[1]])
    }

    /// The first sample's timestamp, if any: read from the chunk, where it
    /// is the varint right after the two-byte count, rather than kept
    /// beside it (8 bytes in every head series, a million times over).
    pub fn first_time(&self) -> Option<i64> {
        match self.count() {
            0 => None,
            1 => Some(self.last_time),
            _ => {
                let (zigzag, _) = crate::index::read_uvarint(self.bytes().get(2..)?)?;
                Some(crate::index::zigzag_decode(zigzag))
            }
        }
    }

    /// The last sample's timestamp, if any.
    pub fn last_time(&self) -> Option<i64> {
        (self.count() > 0).then_some(self.last_time)
    }

    /// The newest sample, without decoding the chunk.
    pub fn last_sample(&self) -> Option<(i64, f64)> {
        (self.count() > 0).then_some((self.last_time, f64::from_bits(self.last_value_bits)))
    }

    /// The chunk's bytes; a valid [`Encoding::Xor`] chunk at any point.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the appender owns `ptr`'s allocation, whose first `len`
        // bytes are written (`new`, `ChunkSink::put`, `clone`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize) }
    }

    /// Starts loading what a read of the chunk's recent end touches: its
    /// start (the header and first timestamp) and its last few cache lines
    /// (a recent window decodes from a checkpoint at most
    /// [`XOR_CHECKPOINT_EVERY`] samples before it).
    pub fn prefetch(&self) {
        use model::hint::{CACHE_LINE, prefetch};
        let bytes = self.bytes();
        let start = bytes.as_ptr();
        prefetch(start);
        for back in 1..=PREFETCH_END_LINES {
            let offset = bytes.len().saturating_sub(back * CACHE_LINE);
            prefetch(start.wrapping_add(offset));
            if offset == 0 {
                break;
            }
        }
    }

    /// Heap bytes held by the appender.
    pub fn memory_bytes(&self) -> usize {
        if self.capacity == Capacity::NONE {
            return 0;
        }
        self.capacity.bytes(self.len)
    }
}

/// Writes `value` as a uvarint, byte by byte through the bit writer.
fn write_varint_bytes(writer: &mut BitWriter, sink: &mut ChunkSink<'_>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            writer.write(sink, u64::from(byte), 8);
            return;
        }
        writer.write(sink, u64::from(byte | 0x80), 8);
    }
}

impl Clone for XorAppender {
    /// A copy holds just the chunk's bytes, without the spare capacity:
    /// queries copy head chunks to read them after the lock is gone.
    fn clone(&self) -> XorAppender {
        if self.capacity == Capacity::NONE {
            return XorAppender::new();
        }
        let bytes = self.bytes();
        let ptr = allocate(bytes.len());
        // SAFETY: the new allocation is `bytes.len()` long and no other
        // value can reach it yet.
        unsafe {
            ptr.as_ptr()
                .copy_from_nonoverlapping(bytes.as_ptr(), bytes.len())
        };
        XorAppender {
            ptr,
            len: self.len,
            capacity: Capacity::EXACT,
            bit_writer: self.bit_writer,
            last_time: self.last_time,
            last_time_delta: self.last_time_delta,
            last_value_bits: self.last_value_bits,
            window: self.window,
        }
    }
}

/// Bytes to reserve for `n` samples' values in Dense encoding: about two a
/// value, more than decimal counters and gauges mostly take, so that the
/// bit writers mostly store whole words instead of growing the vector.
pub(crate) fn dense_capacity_hint(n: usize) -> usize {
    2 * n + 32
}

/// Encodes samples (ascending, unique timestamps) as a Dense chunk, appending
/// to `out`.
///
/// At most [`MAX_DENSE_SAMPLES`] samples fit one chunk; callers split longer
/// runs. Passing more is a programming error and panics.
pub fn encode_dense(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    assert!(
        samples.len() <= MAX_DENSE_SAMPLES,
        "a Dense chunk holds at most {MAX_DENSE_SAMPLES} samples, got {}",
        samples.len()
    );
    put_uvarint(out, samples.len() as u64);
    if samples.is_empty() {
        put_uvarint(out, 0);
        return;
    }
    let mut timestamp_section = Vec::new();
    dense::encode_timestamps(samples, &mut timestamp_section);
    put_uvarint(out, timestamp_section.len() as u64);
    out.extend_from_slice(&timestamp_section);
    dense::encode_values(samples, out);
}

/// Decodes any chunk. Owns or borrows its bytes via `B`.
pub struct ChunkIter<B: AsRef<[u8]>> {
    bytes: B,
    decoder: Decoder,
    error: Option<ChunkError>,
}

enum Decoder {
    Xor(XorDecoder),
    Dense(Box<dense::DenseDecoder>),
    Done,
}

impl<B: AsRef<[u8]>> ChunkIter<B> {
    /// Reads the chunk's header; errors if it is already corrupt.
    pub fn new(encoding: Encoding, bytes: B) -> Result<ChunkIter<B>, ChunkError> {
        let decoder = match encoding {
            Encoding::Xor => Decoder::Xor(XorDecoder::new(bytes.as_ref())?),
            Encoding::Dense => Decoder::Dense(Box::new(dense::DenseDecoder::new(bytes.as_ref())?)),
        };
        Ok(ChunkIter {
            bytes,
            decoder,
            error: None,
        })
    }

    /// Set if iteration stopped on corruption.
    pub fn err(&self) -> Option<&ChunkError> {
        self.error.as_ref()
    }

    /// The number of samples the header claims are left (an upper bound when
    /// the chunk is corrupt), for sizing buffers.
    pub fn remaining_claimed(&self) -> usize {
        match &self.decoder {
            Decoder::Xor(decoder) => decoder.n_samples - decoder.n_read,
            Decoder::Dense(decoder) => decoder.remaining(),
            Decoder::Done => 0,
        }
    }
}

impl<B: AsRef<[u8]>> Iterator for ChunkIter<B> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        let bytes = self.bytes.as_ref();
        let result = match &mut self.decoder {
            Decoder::Xor(decoder) => decoder.next(bytes),
            Decoder::Dense(decoder) => decoder.next(bytes),
            Decoder::Done => return None,
        };
        match result {
            Ok(Some(sample)) => Some(sample),
            Ok(None) => {
                self.decoder = Decoder::Done;
                None
            }
            Err(error) => {
                self.error = Some(error);
                self.decoder = Decoder::Done;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining_claimed()))
    }
}

/// Decodes a whole chunk into a vector.
pub fn decode_all(encoding: Encoding, bytes: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let mut iter = ChunkIter::new(encoding, bytes)?;
    // The claimed count is only trusted up to a modest reservation; a corrupt
    // count then costs no more memory than the samples actually decoded.
    let mut samples = Vec::with_capacity(iter.remaining_claimed().min(1 << 14));
    samples.extend(&mut iter);
    match iter.error {
        Some(error) => Err(error),
        None => Ok(samples),
    }
}

// ---------------------------------------------------------------------------
// Bit and varint primitives.

/// Where a [`BitWriter`] writes: a byte vector, or an [`XorAppender`]'s
/// packed buffer.
trait ByteSink {
    /// Appends a byte.
    fn put(&mut self, byte: u8);
    /// The last byte written.
    fn last_mut(&mut self) -> Option<&mut u8>;
    /// Appends the `n` (1..=8) most significant bytes of `word`: one
    /// store where the sink has room for eight, else byte by byte.
    fn put_word(&mut self, word: u64, n: usize);
}

impl ByteSink for Vec<u8> {
    #[inline]
    fn put(&mut self, byte: u8) {
        push_byte(self, byte);
    }

    #[inline]
    fn put_word(&mut self, word: u64, n: usize) {
        let len = self.len();
        if self.capacity() - len < 8 || n > 8 {
            for &byte in word.to_be_bytes().iter().take(n) {
                push_byte(self, byte);
            }
            return;
        }
        // SAFETY: eight bytes from `len` lie inside the allocation (checked
        // above); the first `n` of them (at most eight) are written, and
        // only those are taken into the length.
        unsafe {
            self.as_mut_ptr()
                .add(len)
                .cast::<[u8; 8]>()
                .write_unaligned(word.to_be_bytes());
            self.set_len(len + n);
        }
    }

    #[inline]
    fn last_mut(&mut self) -> Option<&mut u8> {
        self.as_mut_slice().last_mut()
    }
}

/// An [`XorAppender`]'s buffer, length and capacity, borrowed for writing.
struct ChunkSink<'a> {
    ptr: &'a mut NonNull<u8>,
    len: &'a mut u32,
    capacity: &'a mut Capacity,
    /// `capacity` in bytes, worked out once per append rather than per
    /// byte.
    limit: usize,
}

impl ByteSink for ChunkSink<'_> {
    #[inline]
    fn put(&mut self, byte: u8) {
        let at = *self.len as usize;
        if at == self.limit && !self.grow() {
            // Unreachable: a chunk of at most `MAX_XOR_SAMPLES` samples
            // is far below the largest capacity.
            return;
        }
        // SAFETY: `at` is below the capacity, so inside the allocation.
        unsafe { self.ptr.as_ptr().add(at).write(byte) };
        *self.len += 1;
    }

    #[inline]
    fn put_word(&mut self, word: u64, n: usize) {
        let at = *self.len as usize;
        if self.limit.saturating_sub(at) < 8 || n > 8 {
            for &byte in word.to_be_bytes().iter().take(n) {
                self.put(byte);
            }
            return;
        }
        // SAFETY: eight bytes from `at` lie below the capacity (checked
        // above), so inside the allocation; `n` is at most eight, and a
        // chunk's length (under `MAX_XOR_SAMPLES` samples) fits a `u32`.
        unsafe {
            self.ptr
                .as_ptr()
                .add(at)
                .cast::<[u8; 8]>()
                .write_unaligned(word.to_be_bytes())
        };
        *self.len += n as u32;
    }

    #[inline]
    fn last_mut(&mut self) -> Option<&mut u8> {
        // The bit writer asks only after a byte of its own was put, and a
        // put gives an empty chunk its own buffer first.
        debug_assert!(*self.capacity != Capacity::NONE);
        let at = (*self.len as usize).checked_sub(1)?;
        // SAFETY: byte `at` is written, and the sink borrows the appender
        // (and so the allocation) mutably for as long as the reference.
        Some(unsafe { &mut *self.ptr.as_ptr().add(at) })
    }
}

impl ChunkSink<'_> {
    /// Moves the full buffer into an allocation of the next capacity.
    /// False when there is none (never, for a chunk's sample count).
    #[cold]
    fn grow(&mut self) -> bool {
        let old = self.limit;
        let Some(next) = self.capacity.next(*self.len) else {
            return false;
        };
        let new_size = next.bytes(*self.len);
        if *self.capacity == Capacity::NONE {
            // The first buffer: `EMPTY_CHUNK` is copied, never freed.
            let fresh = allocate(new_size);
            // SAFETY: `len` (2) bytes of `EMPTY_CHUNK` are read into the
            // new allocation of `new_size` (at least 24) bytes.
            unsafe {
                fresh
                    .as_ptr()
                    .copy_from_nonoverlapping(self.ptr.as_ptr(), *self.len as usize)
            };
            *self.ptr = fresh;
        } else {
            // SAFETY: `ptr` was allocated with the layout of `old` bytes
            // (`allocate`), and `new_size` is larger and fits an `isize`.
            let grown =
                unsafe { std::alloc::realloc(self.ptr.as_ptr(), byte_layout(old), new_size) };
            match NonNull::new(grown) {
                Some(grown) => *self.ptr = grown,
                None => std::alloc::handle_alloc_error(byte_layout(new_size)),
            }
        }
        *self.capacity = next;
        self.limit = new_size;
        true
    }
}

/// The layout of a chunk buffer of `size` bytes (2 to about 4 GB).
fn byte_layout(size: usize) -> std::alloc::Layout {
    // Every size `Capacity` names is a valid byte array layout; the
    // fallback is unreachable.
    std::alloc::Layout::array::<u8>(size).unwrap_or(std::alloc::Layout::new::<[u8; 2]>())
}

/// A new chunk buffer of `size` bytes (at least 2), not initialized.
fn allocate(size: usize) -> NonNull<u8> {
    let layout = byte_layout(size);
    // SAFETY: the layout is not zero-sized (`size` is at least 2).
    let ptr = unsafe { std::alloc::alloc(layout) };
    NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

impl Drop for XorAppender {
    fn drop(&mut self) {
        if self.capacity == Capacity::NONE {
            return;
        }
        let layout = byte_layout(self.capacity.bytes(self.len));
        // SAFETY: the appender owns the allocation, made with this layout:
        // `ChunkSink::grow` changes the capacity with the allocation, and
        // the length grows only below the capacity (for `EXACT`, whose
        // capacity is the length, the first write grows the buffer).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}

// SAFETY: the appender owns its buffer as a `Box<[u8]>` would and hands
// out references into it only through `&self` and `&mut self`.
unsafe impl Send for XorAppender {}
// SAFETY: as for `Send`; `&self` methods only read the buffer.
unsafe impl Sync for XorAppender {}

impl std::fmt::Debug for XorAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XorAppender")
            .field("bytes", &self.bytes())
            .field("capacity", &self.capacity.bytes(self.len))
            .field("last_time", &self.last_time)
            .field("last_time_delta", &self.last_time_delta)
            .field("last_value_bits", &self.last_value_bits)
            .field("window", &self.window)
            .finish()
    }
}

/// The bytes of an empty Xor chunk (a zero count), which every new
/// [`XorAppender`] reads until its first sample.
static EMPTY_CHUNK: [u8; 2] = [0, 0];

/// An [`XorAppender`]'s buffer capacity, named by a byte: codes 0 to 14
/// are 24, 40, ..., 248 bytes (steps of 16 that fill a glibc chunk, see
/// [`push_byte`]), then each code doubles it, 496 bytes and up; a copy's
/// buffer is exactly the chunk's length ([`Capacity::EXACT`]). The
/// capacity is a function of the code and the length, so the appender
/// keeps a byte where a boxed slice kept an 8-byte length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Capacity(u8);

impl Capacity {
    /// A buffer exactly as long as the chunk.
    const EXACT: Capacity = Capacity(u8::MAX);
    /// No buffer: an empty chunk reading [`EMPTY_CHUNK`] (the code
    /// `bytes` matches on).
    const NONE: Capacity = Capacity(0xfe);
    /// The codes of the steps of 16 bytes.
    const SMALL_STEPS: u8 = 15;
    /// The largest code: `SMALL_BUFFER << 24` bytes (about 4 GB) is the
    /// largest doubling that a 32-bit length can still fill.
    const LARGEST: u8 = Capacity::SMALL_STEPS + 23;

    /// The capacity in bytes of a buffer that holds `len` bytes.
    #[inline]
    fn bytes(self, len: u32) -> usize {
        match self.0 {
            u8::MAX => len as usize,
            // `EMPTY_CHUNK`'s length: the first write grows it.
            0xfe => 2,
            code if code < Capacity::SMALL_STEPS => 24 + 16 * usize::from(code),
            code => SMALL_BUFFER << (code - Capacity::SMALL_STEPS + 1),
        }
    }

    /// The smallest capacity above this one, as a buffer grows.
    fn next(self, len: u32) -> Option<Capacity> {
        let now = self.bytes(len);
        (0..=Capacity::LARGEST)
            .map(Capacity)
            .find(|c| c.bytes(len) > now)
    }
}

/// Writes bits most significant first straight into a byte vector, so the
/// vector is complete (last byte zero-padded) after every write.
#[derive(Clone, Copy, Debug, Default)]
struct BitWriter {
    /// Unused low bits of the vector's last byte (0..=7).
    free_bits: u8,
}

impl BitWriter {
    /// Writes the low `n_bits` bits of `value` (0..=64).
    ///
    /// The free bits of the last byte first, then the rest left-aligned in
    /// one word of which the sink takes the bytes it needs (one store where
    /// it has room), not byte by byte.
    #[inline(always)]
    fn write<S: ByteSink>(&mut self, buffer: &mut S, value: u64, n_bits: u32) {
        if n_bits == 0 {
            return;
        }
        let n_bits = n_bits.min(64);
        let value = value & low_mask(n_bits);
        let free = u32::from(self.free_bits);
        if n_bits <= free {
            if let Some(last) = buffer.last_mut() {
                *last |= (value << (free - n_bits)) as u8;
            }
            // `n_bits` is at most `free`, at most 7.
            self.free_bits = (free - n_bits) as u8;
            return;
        }
        // 1..=64 bits go to new bytes, after the top `free` bits fill the
        // last byte.
        let rest = n_bits - free;
        if free > 0
            && let Some(last) = buffer.last_mut()
        {
            // `free` < 8 and `rest` < 64 here, so this is the top `free`
            // bits, at most 7.
            *last |= (value >> rest) as u8;
        }
        let n_bytes = rest.div_ceil(8);
        buffer.put_word(value << (64 - rest), n_bytes as usize);
        // Between 0 and 7.
        self.free_bits = (n_bytes * 8 - rest) as u8;
    }

    /// Ends the bit stream: the next write starts a fresh byte.
    fn align(&mut self) {
        self.free_bits = 0;
    }
}

// -- Rice codes (packed streams here, histogram bucket columns) --------------

/// A Rice code's unary quotient at or above this is escaped: the ones,
/// then the value's bit length less one in 6 bits, then the value.
const RICE_ESCAPE: u64 = 32;

/// The largest Rice parameter [`best_rice`] picks: what a Dense packed
/// stream's header can hold (`docs/format/chunks.md`). Numbers that need
/// more are escaped anyway.
const MAX_RICE_K: u32 = 62;

fn bit_len(v: u64) -> u32 {
    64 - v.leading_zeros()
}

fn rice_cost(u: u64, k: u32) -> u64 {
    let q = u >> k;
    if q < RICE_ESCAPE {
        q + 1 + u64::from(k)
    } else {
        RICE_ESCAPE + 6 + u64::from(bit_len(u).max(1))
    }
}

fn write_rice(w: &mut BitWriter, out: &mut Vec<u8>, u: u64, k: u32) {
    let q = u >> k;
    if q < RICE_ESCAPE {
        // q ones and a zero, then the low k bits; in one write when they
        // fit 64 bits.
        let unary = (1u64 << (q + 1)) - 2;
        let length = q as u32 + 1 + k;
        if length <= 64 {
            let code = if k == 0 {
                unary
            } else {
                (unary << k) | (u & low_mask(k))
            };
            w.write(out, code, length);
        } else {
            w.write(out, unary, q as u32 + 1);
            w.write(out, u & low_mask(k), k);
        }
    } else {
        w.write(out, (1u64 << RICE_ESCAPE) - 1, RICE_ESCAPE as u32);
        let len = bit_len(u).max(1);
        w.write(out, u64::from(len - 1), 6);
        w.write(out, u, len);
    }
}

#[inline]
fn read_rice(bytes: &[u8], position: &mut usize, k: u32) -> Result<u64, ChunkError> {
    let ones = u64::from(peek_u64(bytes, *position).leading_ones());
    if ones < RICE_ESCAPE {
        consume_bits(bytes, position, ones as usize + 1)?;
        let low = read_bits(bytes, position, k)?;
        Ok((ones << k) | low)
    } else {
        consume_bits(bytes, position, RICE_ESCAPE as usize)?;
        let len = read_bits(bytes, position, 6)? as u32 + 1;
        read_bits(bytes, position, len)
    }
}

fn low_mask(k: u32) -> u64 {
    if k >= 64 { u64::MAX } else { (1u64 << k) - 1 }
}

/// The cheapest Rice parameter for `values` near the one their mean
/// suggests (a Rice code's best `k` is about `log2(mean)`), and its cost
/// in bits.
fn best_rice(values: &[u64]) -> (u32, u64) {
    let max = values.iter().copied().max().unwrap_or(0);
    let total: u128 = values.iter().map(|&u| u128::from(u)).sum();
    let mean = (total / values.len().max(1) as u128) as u64;
    let guess = bit_len(mean);
    let low = guess.saturating_sub(2).min(MAX_RICE_K);
    let high = (guess + 1).min(bit_len(max)).clamp(low, MAX_RICE_K);
    (low..=high)
        .map(|k| (k, values.iter().map(|&u| rice_cost(u, k)).sum::<u64>()))
        .min_by_key(|&(_, cost)| cost)
        .unwrap_or((0, 0))
}

/// Below this capacity a bit stream grows 16 bytes at a time, above it by
/// doubling. A head keeps an open chunk for every series, a million on a
/// wide head, each a few dozen bytes long: doubling left a quarter of
/// them spare on average (a 20-sample chunk of the wide profile took a
/// 64-byte buffer), where steps of 16 leave at most 15 bytes. Growing a
/// buffer this small costs about as much as writing a sample, once every
/// ten samples or so.
const SMALL_BUFFER: usize = 248;

/// Appends a byte, growing a small buffer to the next capacity that fills
/// an allocation of glibc's exactly: its chunks are multiples of 16 bytes
/// (32 at least), 8 of them its own header, so capacities 24, 40, 56 ....
#[inline]
fn push_byte(buffer: &mut Vec<u8>, byte: u8) {
    if buffer.len() == buffer.capacity() && buffer.capacity() < SMALL_BUFFER {
        grow_small(buffer);
    }
    buffer.push(byte);
}

#[cold]
fn grow_small(buffer: &mut Vec<u8>) {
    let next = next_small_capacity(buffer.capacity());
    buffer.reserve_exact(next - buffer.len());
}

/// The capacity after `capacity` while a buffer is small: the next one
/// whose allocation fills a glibc chunk (see [`push_byte`]).
fn next_small_capacity(capacity: usize) -> usize {
    (((capacity + 8) / 16 + 1) * 16 - 8).max(24)
}

const TRUNCATED: &str = "bit stream ends early";

/// Reads `n_bits` (0..=64) bits at bit position `position`, most significant
/// first, and advances the position.
#[inline]
fn read_bits(bytes: &[u8], position: &mut usize, n_bits: u32) -> Result<u64, ChunkError> {
    if n_bits == 0 {
        return Ok(0);
    }
    let end = position.saturating_add(n_bits as usize);
    if end > bytes.len().saturating_mul(8) {
        return Err(ChunkError::new(TRUNCATED));
    }
    let word = peek_u64(bytes, *position);
    *position = end;
    Ok(word >> (64 - n_bits))
}

/// Advances past `n_bits` bits already taken from a [`peek_u64`] word,
/// checking they were all inside the stream.
#[inline]
fn consume_bits(bytes: &[u8], position: &mut usize, n_bits: usize) -> Result<(), ChunkError> {
    let end = position.saturating_add(n_bits);
    if end > bytes.len().saturating_mul(8) {
        return Err(ChunkError::new(TRUNCATED));
    }
    *position = end;
    Ok(())
}

/// The 64 bits starting at bit `position`, zero padded past the end.
#[inline]
fn peek_u64(bytes: &[u8], position: usize) -> u64 {
    let index = position >> 3;
    let offset = (position & 7) as u32;
    let word = load_u64_be_padded(bytes, index);
    if offset == 0 {
        return word;
    }
    let next = bytes.get(index.saturating_add(8)).copied().unwrap_or(0);
    (word << offset) | (u64::from(next) >> (8 - offset))
}

/// Loads eight bytes big endian from `index`, padding past the end with zeros.
#[inline]
fn load_u64_be_padded(bytes: &[u8], index: usize) -> u64 {
    let mut word = [0u8; 8];
    match bytes.get(index..index.saturating_add(8)) {
        Some(eight) => word.copy_from_slice(eight),
        None => {
            let rest = bytes.get(index..).unwrap_or(&[]);
            word[..rest.len()].copy_from_slice(rest);
        }
    }
    u64::from_be_bytes(word)
}

fn zigzag_encode(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn zigzag_decode(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, zigzag_encode(value));
}

/// Reads a LEB128 uvarint at a byte position; rejects more than ten bytes and
/// values past 64 bits.
fn get_uvarint(bytes: &[u8], position: &mut usize) -> Result<u64, ChunkError> {
    let mut value = 0u64;
    for index in 0..10 {
        let byte = *bytes
            .get(*position)
            .ok_or(ChunkError::new("varint ends early"))?;
        *position += 1;
        if index == 9 && byte > 1 {
            return Err(ChunkError::new("varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(ChunkError::new("varint longer than 10 bytes"))
}

fn get_varint(bytes: &[u8], position: &mut usize) -> Result<i64, ChunkError> {
    get_uvarint(bytes, position).map(zigzag_decode)
}

fn get_byte(bytes: &[u8], position: &mut usize) -> Result<u8, ChunkError> {
    let byte = *bytes
        .get(*position)
        .ok_or(ChunkError::new("chunk ends early"))?;
    *position += 1;
    Ok(byte)
}

fn get_u64_le(bytes: &[u8], position: &mut usize) -> Result<u64, ChunkError> {
    let end = position.saturating_add(8);
    let eight = bytes
        .get(*position..end)
        .ok_or(ChunkError::new("chunk ends early"))?;
    let mut word = [0u8; 8];
    word.copy_from_slice(eight);
    *position = end;
    Ok(u64::from_le_bytes(word))
}

/// Reads a uvarint from a bit stream (it need not be byte aligned).
fn read_uvarint_bits(bytes: &[u8], position: &mut usize) -> Result<u64, ChunkError> {
    let mut value = 0u64;
    for index in 0..10 {
        let byte = read_bits(bytes, position, 8)?;
        if index == 9 && byte > 1 {
            return Err(ChunkError::new("varint overflows 64 bits"));
        }
        value |= (byte & 0x7f) << (7 * index);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(ChunkError::new("varint longer than 10 bytes"))
}

// ---------------------------------------------------------------------------
// Gorilla XOR pieces shared by both encodings.

/// The leading/trailing zero counts of the last XOR value written with a
/// full header; later values whose bits fit inside it reuse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct XorWindow {
    leading: u32,
    trailing: u32,
}

/// An [`XorWindow`] in two bytes: the leading count in the high byte,
/// the trailing count in the low one (each at most 64), and the top bit
/// set so that the value is never zero and `Option<PackedWindow>` stays
/// two bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PackedWindow(std::num::NonZeroU16);

impl XorWindow {
    fn pack(self) -> PackedWindow {
        let bits = 0x8000 | (self.leading as u16 & 0x7f) << 8 | (self.trailing as u16 & 0xff);
        PackedWindow(std::num::NonZeroU16::new(bits).unwrap_or(std::num::NonZeroU16::MIN))
    }

    fn unpack(packed: PackedWindow) -> XorWindow {
        let bits = packed.0.get();
        XorWindow {
            leading: u32::from(bits >> 8 & 0x7f),
            trailing: u32::from(bits & 0xff),
        }
    }
}

#[inline]
fn write_xor_value<S: ByteSink>(
    writer: &mut BitWriter,
    buffer: &mut S,
    value_bits: u64,
    previous_bits: u64,
    window: &mut Option<XorWindow>,
) {
    let xor = value_bits ^ previous_bits;
    if xor == 0 {
        writer.write(buffer, 0, 1);
        return;
    }
    let leading = xor.leading_zeros().min(31);
    let trailing = xor.trailing_zeros();
    if let Some(current) = *window
        && leading >= current.leading
        && trailing >= current.trailing
    {
        writer.write(buffer, 0b10, 2);
        let significant = 64 - current.leading - current.trailing;
        writer.write(buffer, xor >> current.trailing, significant);
        return;
    }
    *window = Some(XorWindow { leading, trailing });
    let significant = 64 - leading - trailing;
    writer.write(buffer, 0b11, 2);
    writer.write(buffer, u64::from(leading), 5);
    // Six bits cannot hold 64; it is written as 0, which is otherwise unused.
    writer.write(buffer, u64::from(significant & 63), 6);
    writer.write(buffer, xor >> trailing, significant);
}

/// Reads one XOR-coded value and updates `value_bits` and the window.
#[inline]
fn read_xor_value(
    bytes: &[u8],
    position: &mut usize,
    value_bits: &mut u64,
    window: &mut Option<XorWindow>,
) -> Result<(), ChunkError> {
    // One peek holds the control bits and a full window header.
    let word = peek_u64(bytes, *position);
    if word >> 63 == 0 {
        return consume_bits(bytes, position, 1);
    }
    let current = if (word >> 62) & 1 == 1 {
        let leading = ((word >> 57) & 31) as u32;
        let mut significant = ((word >> 51) & 63) as u32;
        if significant == 0 {
            significant = 64;
        }
        if leading + significant > 64 {
            return Err(ChunkError::new("XOR window wider than 64 bits"));
        }
        consume_bits(bytes, position, 13)?;
        let new_window = XorWindow {
            leading,
            trailing: 64 - leading - significant,
        };
        *window = Some(new_window);
        new_window
    } else {
        consume_bits(bytes, position, 2)?;
        window.ok_or(ChunkError::new(
            "XOR value reuses a window before any was set",
        ))?
    };
    let significant = 64 - current.leading - current.trailing;
    let bits = read_bits(bytes, position, significant)?;
    *value_bits ^= bits << current.trailing;
    Ok(())
}

/// Whether `value` fits the Xor encoding's `n_bits` delta-of-delta bucket;
/// the range is one-sided (−(2^(n−1) − 1) ..= 2^(n−1)), as in Prometheus.
fn fits_time_bucket(value: i64, n_bits: u32) -> bool {
    let half = 1i64 << (n_bits - 1);
    -(half - 1) <= value && value <= half
}

fn write_xor_time_delta_of_delta<S: ByteSink>(
    writer: &mut BitWriter,
    buffer: &mut S,
    delta_of_delta: i64,
) {
    let payload = delta_of_delta as u64;
    if delta_of_delta == 0 {
        writer.write(buffer, 0, 1);
    } else if fits_time_bucket(delta_of_delta, 14) {
        writer.write(buffer, 0b10, 2);
        writer.write(buffer, payload & ((1 << 14) - 1), 14);
    } else if fits_time_bucket(delta_of_delta, 17) {
        writer.write(buffer, 0b110, 3);
        writer.write(buffer, payload & ((1 << 17) - 1), 17);
    } else if fits_time_bucket(delta_of_delta, 20) {
        writer.write(buffer, 0b1110, 4);
        writer.write(buffer, payload & ((1 << 20) - 1), 20);
    } else {
        writer.write(buffer, 0b1111, 4);
        writer.write(buffer, payload, 64);
    }
}

#[inline]
fn read_xor_time_delta_of_delta(bytes: &[u8], position: &mut usize) -> Result<i64, ChunkError> {
    // One peek holds the prefix and any payload up to 20 bits.
    let word = peek_u64(bytes, *position);
    let n_ones = (!word).leading_zeros().min(4);
    let n_bits = match n_ones {
        0 => return consume_bits(bytes, position, 1).map(|()| 0),
        1 => 14,
        2 => 17,
        3 => 20,
        _ => {
            consume_bits(bytes, position, 4)?;
            return Ok(read_bits(bytes, position, 64)? as i64);
        }
    };
    // The prefix is the ones and a terminating zero.
    let bits = (word << (n_ones + 1)) >> (64 - n_bits);
    consume_bits(bytes, position, (n_ones + 1 + n_bits) as usize)?;
    if bits > 1 << (n_bits - 1) {
        Ok(bits as i64 - (1i64 << n_bits))
    } else {
        Ok(bits as i64)
    }
}

/// Lazily decodes an Xor chunk.
struct XorDecoder {
    n_samples: usize,
    n_read: usize,
    /// Bit position in the chunk.
    position: usize,
    time: i64,
    time_delta: i64,
    value_bits: u64,
    window: Option<XorWindow>,
}

impl XorDecoder {
    fn new(bytes: &[u8]) -> Result<XorDecoder, ChunkError> {
        let header = bytes
            .get(0..2)
            .ok_or(ChunkError::new("Xor chunk shorter than its header"))?;
        Ok(XorDecoder::start(usize::from(u16::from_be_bytes([
            header[0], header[1],
        ]))))
    }

    /// A decoder at the first sample of a chunk of `n_samples`.
    fn start(n_samples: usize) -> XorDecoder {
        XorDecoder {
            n_samples,
            n_read: 0,
            position: 16,
            time: 0,
            time_delta: 0,
            value_bits: 0,
            window: None,
        }
    }

    /// Decodes a sample after the second from one 64-bit peek when its
    /// time's delta-of-delta (at most 20 bits) and its value (control,
    /// window header and bits) all lie in it, as they mostly do: the
    /// separate readers load the stream two or three times per sample, each
    /// at a position the one before computed. Anything else (a wide
    /// delta-of-delta, a value longer than what is left of the word, the end
    /// of the stream, a malformed window) is left to them: `false`, with
    /// nothing changed.
    #[inline]
    fn next_in_one_word(&mut self, bytes: &[u8]) -> bool {
        let word = peek_u64(bytes, self.position);
        let n_ones = (!word).leading_zeros();
        let (time_length, delta_of_delta) = match n_ones {
            0 => (1, 0),
            1..=3 => {
                let n_bits = [14, 17, 20][n_ones as usize - 1];
                let bits = (word << (n_ones + 1)) >> (64 - n_bits);
                let value = if bits > 1 << (n_bits - 1) {
                    bits as i64 - (1i64 << n_bits)
                } else {
                    bits as i64
                };
                (n_ones + 1 + n_bits, value)
            }
            _ => return false,
        };
        let rest = word << time_length;
        let left = 64 - time_length;
        let (value_length, window, xor) = if rest >> 63 == 0 {
            (1, self.window, 0)
        } else {
            let (header, window) = if (rest >> 62) & 1 == 1 {
                let leading = ((rest >> 57) & 31) as u32;
                let significant = match ((rest >> 51) & 63) as u32 {
                    0 => 64,
                    n => n,
                };
                if leading + significant > 64 {
                    return false;
                }
                let window = XorWindow {
                    leading,
                    trailing: 64 - leading - significant,
                };
                (13, window)
            } else {
                match self.window {
                    Some(window) => (2, window),
                    None => return false,
                }
            };
            let significant = 64 - window.leading - window.trailing;
            if header + significant > left {
                return false;
            }
            let bits = (rest << header) >> (64 - significant);
            (header + significant, Some(window), bits << window.trailing)
        };
        let end = self.position + (time_length + value_length) as usize;
        if end > bytes.len().saturating_mul(8) {
            return false;
        }
        self.position = end;
        self.time_delta = self.time_delta.wrapping_add(delta_of_delta);
        self.time = self.time.wrapping_add(self.time_delta);
        self.value_bits ^= xor;
        self.window = window;
        true
    }

    #[inline]
    fn next(&mut self, bytes: &[u8]) -> Result<Option<(i64, f64)>, ChunkError> {
        if self.n_read >= self.n_samples {
            return Ok(None);
        }
        if self.n_read == 0 {
            self.time = zigzag_decode(read_uvarint_bits(bytes, &mut self.position)?);
            self.value_bits = read_bits(bytes, &mut self.position, 64)?;
        } else if self.n_read == 1 || !self.next_in_one_word(bytes) {
            // The second sample's time is a plain delta, later ones a
            // delta-of-delta.
            self.time_delta = if self.n_read == 1 {
                read_uvarint_bits(bytes, &mut self.position)? as i64
            } else {
                let delta_of_delta = read_xor_time_delta_of_delta(bytes, &mut self.position)?;
                self.time_delta.wrapping_add(delta_of_delta)
            };
            self.time = self.time.wrapping_add(self.time_delta);
            read_xor_value(
                bytes,
                &mut self.position,
                &mut self.value_bits,
                &mut self.window,
            )?;
        }
        self.n_read += 1;
        Ok(Some((self.time, f64::from_bits(self.value_bits))))
    }
}

// ---------------------------------------------------------------------------
// The Dense encoding.

mod dense {
    //! Dense chunk sections: packed integer streams, timestamps and values.

    use super::*;

    const TIMESTAMPS_REGULAR: u8 = 0;
    const TIMESTAMPS_DELTA_OF_DELTA: u8 = 1;
    const TIMESTAMPS_GRID: u8 = 2;

    const VALUES_CONSTANT: u8 = 0;
    const VALUES_DECIMAL: u8 = 1;
    const VALUES_XOR: u8 = 2;
    const VALUES_CONSTANT_DECIMAL: u8 = 3;
    /// Kind 4 is the histogram sum column's predicted XOR (`hist.rs`).
    const VALUES_FLOAT_STEPS: u8 = 5;

    /// Decimal scales tried, `10^0 ..= 10^MAX_DECIMAL_EXPONENT`; all exact
    /// in f64. Fifteen covers every value printed with up to 15 decimals.
    const MAX_DECIMAL_EXPONENT: usize = 15;
    const POWERS_OF_TEN: [f64; MAX_DECIMAL_EXPONENT + 1] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];

    // -- Packed integer streams ---------------------------------------------

    /// Picks the bit width that minimises the packed size of integers whose
    /// bit lengths are counted in `histogram`; integers that do not fit are
    /// escaped (`w` ones, 6 bits length, the integer). Returns the width and
    /// the estimated size in bits.
    fn choose_width(histogram: &[u64; 65], count: u64) -> (u32, u64) {
        if histogram[0] == count {
            return (0, 0);
        }
        // escaped[w]: what the integers longer than `w` bits add as escapes
        // (an escape header and their own bits), summed from the top.
        let mut escaped = [0u64; 65];
        for width in (0..64).rev() {
            let bit_length = width + 1;
            escaped[width] = escaped[width + 1] + histogram[bit_length] * (6 + bit_length as u64);
        }
        let mut best = (64, 64 * count);
        for width in 1..64u32 {
            // Every integer costs the width; longer ones add their escapes.
            let cost = count * u64::from(width) + escaped[width as usize];
            if cost < best.1 {
                best = (width, cost);
            }
        }
        best
    }

    fn bit_length(value: u64) -> usize {
        (64 - value.leading_zeros()) as usize
    }

    /// Set in the header byte when the stream stores offsets from a base
    /// (frame of reference) instead of zigzag integers.
    const FRAME_OF_REFERENCE: u8 = 0x80;

    /// Header values (low 7 bits) from this one up are Rice codes with
    /// parameter `k = header - RICE_HEADER` (0..=62); below it, a fixed
    /// width (0..=64).
    const RICE_HEADER: u8 = 65;

    /// Bytes of `put_varint(value)`.
    fn varint_bytes(value: i64) -> u64 {
        bit_length(zigzag_encode(value)).div_ceil(7).max(1) as u64
    }

    /// Appends a packed stream of signed integers: a header byte (layout and
    /// mode), the base where the layout has one, then the bits. The layout
    /// is the cheapest of a fixed width (zigzag or from the minimum) and a
    /// Rice code (from the minimum, or zigzag around the median).
    pub(super) fn write_packed(out: &mut Vec<u8>, values: &[i64]) {
        let minimum = values.iter().copied().min().unwrap_or(0);
        let mut zigzag_histogram = [0u64; 65];
        let mut frame_histogram = [0u64; 65];
        for &value in values {
            zigzag_histogram[bit_length(zigzag_encode(value))] += 1;
            frame_histogram[bit_length(value.wrapping_sub(minimum) as u64)] += 1;
        }
        let count = values.len() as u64;
        let (zigzag_width, zigzag_cost) = choose_width(&zigzag_histogram, count);
        let (frame_width, frame_cost) = choose_width(&frame_histogram, count);
        let frame_cost = frame_cost + 8 * varint_bytes(minimum);

        // Rice codes pay off where small integers are much more common than
        // large ones (steps of a random walk, increments of a busy counter).
        let from_minimum: Vec<u64> = values
            .iter()
            .map(|&value| value.wrapping_sub(minimum) as u64)
            .collect();
        let (rice_k, rice_cost) = best_rice(&from_minimum);
        let rice_cost = rice_cost + 8 * varint_bytes(minimum);
        let mut sorted = values.to_vec();
        let middle = sorted.len() / 2;
        let center = if sorted.is_empty() {
            0
        } else {
            *sorted.select_nth_unstable(middle).1
        };
        let centered: Vec<u64> = values
            .iter()
            .map(|&value| zigzag_encode(value.wrapping_sub(center)))
            .collect();
        let (centered_k, centered_cost) = best_rice(&centered);
        let centered_cost = centered_cost + 8 * varint_bytes(center);

        let mut best = (zigzag_cost, Layout::Zigzag(zigzag_width));
        for candidate in [
            (frame_cost, Layout::Frame(frame_width)),
            (rice_cost, Layout::RiceFromMinimum(rice_k)),
            (centered_cost, Layout::RiceCentered(centered_k)),
        ] {
            if candidate.0 < best.0 {
                best = candidate;
            }
        }
        let mut writer = BitWriter::default();
        match best.1 {
            Layout::Zigzag(width) => {
                out.push(width as u8);
                write_fixed(
                    out,
                    &mut writer,
                    values.iter().map(|&v| zigzag_encode(v)),
                    width,
                );
            }
            Layout::Frame(width) => {
                out.push(width as u8 | FRAME_OF_REFERENCE);
                put_varint(out, minimum);
                write_fixed(out, &mut writer, from_minimum.iter().copied(), width);
            }
            Layout::RiceFromMinimum(k) => {
                out.push((RICE_HEADER + k as u8) | FRAME_OF_REFERENCE);
                put_varint(out, minimum);
                for &u in &from_minimum {
                    write_rice(&mut writer, out, u, k);
                }
            }
            Layout::RiceCentered(k) => {
                out.push(RICE_HEADER + k as u8);
                put_varint(out, center);
                for &u in &centered {
                    write_rice(&mut writer, out, u, k);
                }
            }
        }
        writer.align();
    }

    #[derive(Clone, Copy)]
    enum Layout {
        Zigzag(u32),
        Frame(u32),
        RiceFromMinimum(u32),
        RiceCentered(u32),
    }

    /// Writes unsigned integers in `width` bits each, escaping those that
    /// do not fit (`width` ones, 6 bits length less one, the integer).
    fn write_fixed(
        out: &mut Vec<u8>,
        writer: &mut BitWriter,
        raws: impl Iterator<Item = u64>,
        width: u32,
    ) {
        let escape = if width == 0 || width == 64 {
            0
        } else {
            (1u64 << width) - 1
        };
        for raw in raws {
            match width {
                0 => {}
                64 => writer.write(out, raw, 64),
                _ if raw < escape => writer.write(out, raw, width),
                _ => {
                    let length = bit_length(raw) as u32;
                    writer.write(out, escape, width);
                    writer.write(out, u64::from(length - 1), 6);
                    writer.write(out, raw, length);
                }
            }
        }
    }

    /// How a packed stream's unsigned numbers map back to integers.
    #[derive(Clone, Copy, Debug)]
    enum Mapping {
        Zigzag,
        /// `base + u` (wrapping).
        Offset(i64),
        /// `base + zigzag_decode(u)` (wrapping).
        Centered(i64),
    }

    impl Mapping {
        #[inline(always)]
        fn apply(self, raw: u64) -> i64 {
            match self {
                Mapping::Zigzag => zigzag_decode(raw),
                Mapping::Offset(base) => base.wrapping_add(raw as i64),
                Mapping::Centered(base) => base.wrapping_add(zigzag_decode(raw)),
            }
        }
    }

    /// Reads a packed stream written by [`write_packed`].
    #[derive(Clone, Copy, Debug)]
    pub(super) struct PackedReader {
        /// The fixed width, or the Rice parameter when `rice`.
        width: u32,
        rice: bool,
        mapping: Mapping,
        /// Bit position within the section.
        position: usize,
    }

    impl PackedReader {
        /// Reads the header at a byte position of the section.
        fn new(section: &[u8], byte_position: &mut usize) -> Result<PackedReader, ChunkError> {
            let header = get_byte(section, byte_position)?;
            let low = header & !FRAME_OF_REFERENCE;
            let offset = header & FRAME_OF_REFERENCE != 0;
            let rice = low >= RICE_HEADER;
            let width = if rice {
                u32::from(low - RICE_HEADER)
            } else {
                u32::from(low)
            };
            let mapping = match (rice, offset) {
                (false, false) => Mapping::Zigzag,
                (_, true) => Mapping::Offset(get_varint(section, byte_position)?),
                (true, false) => Mapping::Centered(get_varint(section, byte_position)?),
            };
            Ok(PackedReader {
                width,
                rice,
                mapping,
                position: *byte_position * 8,
            })
        }

        /// A reader for a stream of zero integers, which has no bytes at all.
        fn empty() -> PackedReader {
            PackedReader {
                width: 0,
                rice: false,
                mapping: Mapping::Zigzag,
                position: 0,
            }
        }

        #[inline]
        fn next(&mut self, section: &[u8]) -> Result<i64, ChunkError> {
            let raw = self.next_raw(section)?;
            Ok(self.mapping.apply(raw))
        }

        #[inline]
        fn next_raw(&mut self, section: &[u8]) -> Result<u64, ChunkError> {
            if self.rice {
                return read_rice(section, &mut self.position, self.width);
            }
            match self.width {
                0 => Ok(0),
                64 => read_bits(section, &mut self.position, 64),
                width => {
                    let value = read_bits(section, &mut self.position, width)?;
                    if value != (1u64 << width) - 1 {
                        return Ok(value);
                    }
                    let bit_length = read_bits(section, &mut self.position, 6)? as u32 + 1;
                    read_bits(section, &mut self.position, bit_length)
                }
            }
        }
    }

    // -- Timestamps ------------------------------------------------------------

    pub(super) fn encode_timestamps(samples: &[(i64, f64)], out: &mut Vec<u8>) {
        let t0 = samples[0].0;
        if samples.len() == 1 {
            out.push(TIMESTAMPS_REGULAR);
            put_varint(out, t0);
            return;
        }
        let first_delta = samples[1].0.wrapping_sub(t0);
        let regular = samples
            .windows(2)
            .all(|pair| pair[1].0.wrapping_sub(pair[0].0) == first_delta);
        if regular {
            out.push(TIMESTAMPS_REGULAR);
            put_varint(out, t0);
            put_varint(out, first_delta);
            return;
        }

        // Delta of delta: good when the interval drifts or changes.
        let mut by_delta_of_delta = vec![TIMESTAMPS_DELTA_OF_DELTA];
        put_varint(&mut by_delta_of_delta, t0);
        put_varint(&mut by_delta_of_delta, first_delta);
        let mut previous_delta = first_delta;
        let delta_of_deltas: Vec<i64> = samples
            .windows(2)
            .skip(1)
            .map(|pair| {
                let delta = pair[1].0.wrapping_sub(pair[0].0);
                let delta_of_delta = delta.wrapping_sub(previous_delta);
                previous_delta = delta;
                delta_of_delta
            })
            .collect();
        write_packed(&mut by_delta_of_delta, &delta_of_deltas);

        // Grid: good for a steady scraper with jitter, whose offsets from the
        // ideal grid are about half the size of its delta-of-deltas.
        let last_index = (samples.len() - 1) as i64;
        let span = samples[samples.len() - 1].0.wrapping_sub(t0);
        let step = span.wrapping_add(last_index / 2) / last_index;
        let mut by_grid = vec![TIMESTAMPS_GRID];
        put_varint(&mut by_grid, t0);
        put_varint(&mut by_grid, step);
        let offsets: Vec<i64> = samples
            .iter()
            .enumerate()
            .skip(1)
            .map(|(index, &(t, _))| {
                let ideal = t0.wrapping_add(step.wrapping_mul(index as i64));
                t.wrapping_sub(ideal)
            })
            .collect();
        write_packed(&mut by_grid, &offsets);

        if by_grid.len() < by_delta_of_delta.len() {
            out.extend_from_slice(&by_grid);
        } else {
            out.extend_from_slice(&by_delta_of_delta);
        }
    }

    /// Lazily decodes the timestamps section.
    struct TimestampDecoder {
        kind: u8,
        t0: i64,
        time: i64,
        /// The regular interval, the last delta, or the grid step.
        delta: i64,
        packed: PackedReader,
    }

    impl TimestampDecoder {
        fn new(section: &[u8], n_samples: usize) -> Result<TimestampDecoder, ChunkError> {
            let mut position = 0;
            let kind = get_byte(section, &mut position)?;
            let t0 = get_varint(section, &mut position)?;
            let delta = if n_samples >= 2 {
                get_varint(section, &mut position)?
            } else {
                0
            };
            let packed_count = match kind {
                TIMESTAMPS_REGULAR => 0,
                TIMESTAMPS_DELTA_OF_DELTA => n_samples.saturating_sub(2),
                TIMESTAMPS_GRID => n_samples.saturating_sub(1),
                _ => return Err(ChunkError::new("unknown timestamps kind")),
            };
            let packed = if packed_count > 0 {
                PackedReader::new(section, &mut position)?
            } else {
                PackedReader::empty()
            };
            Ok(TimestampDecoder {
                kind,
                t0,
                time: t0,
                delta,
                packed,
            })
        }

        #[inline]
        fn next(&mut self, section: &[u8], index: usize) -> Result<i64, ChunkError> {
            match (self.kind, index) {
                (_, 0) => {}
                (TIMESTAMPS_REGULAR, _) => self.time = self.time.wrapping_add(self.delta),
                (TIMESTAMPS_DELTA_OF_DELTA, 1) => self.time = self.time.wrapping_add(self.delta),
                (TIMESTAMPS_DELTA_OF_DELTA, _) => {
                    let delta_of_delta = self.packed.next(section)?;
                    self.delta = self.delta.wrapping_add(delta_of_delta);
                    self.time = self.time.wrapping_add(self.delta);
                }
                _ => {
                    let offset = self.packed.next(section)?;
                    let ideal = self.t0.wrapping_add(self.delta.wrapping_mul(index as i64));
                    self.time = ideal.wrapping_add(offset);
                }
            }
            Ok(self.time)
        }
    }

    // -- Values ------------------------------------------------------------------

    pub(super) fn encode_values(samples: &[(i64, f64)], out: &mut Vec<u8>) {
        let first_bits = samples[0].1.to_bits();
        if samples
            .iter()
            .all(|&(_, value)| value.to_bits() == first_bits)
        {
            // A short decimal (most constants are small integers) takes
            // two or three bytes instead of eight.
            let decimal = (0..=MAX_DECIMAL_EXPONENT).find_map(|exponent| {
                decimal_mantissa(samples[0].1, exponent).map(|mantissa| (exponent, mantissa))
            });
            match decimal {
                Some((exponent, mantissa)) if zigzag_encode(mantissa) < 1 << 42 => {
                    out.push(VALUES_CONSTANT_DECIMAL);
                    out.push(exponent as u8);
                    put_varint(out, mantissa);
                }
                _ => {
                    out.push(VALUES_CONSTANT);
                    out.extend_from_slice(&first_bits.to_le_bytes());
                }
            }
            return;
        }
        let mut best = Vec::with_capacity(super::dense_capacity_hint(samples.len()));
        encode_values_xor(samples, &mut best);
        if let Some(by_decimal) = encode_values_decimal(samples)
            && by_decimal.len() < best.len()
        {
            best = by_decimal;
        }
        // Full-precision values (XOR, or decimals at a large scale) may
        // take fewer bits as steps between their bit patterns; cheap chunks
        // are not worth the extra pass.
        if best.len() > 2 * samples.len() {
            for order in [1u8, 2] {
                let mut candidate = Vec::with_capacity(best.len() + 16);
                encode_values_float_steps(samples, order, &mut candidate);
                if candidate.len() < best.len() {
                    best = candidate;
                }
            }
        }
        out.extend_from_slice(&best);
    }

    /// A value's bits as an integer: monotonic among floats of one sign
    /// (increasing with positive values, decreasing with negative ones), so
    /// that close values are close integers.
    #[inline]
    fn float_steps_key(value: f64) -> i64 {
        value.to_bits() as i64
    }

    /// The float bits as integers, then their deltas (order 1) or
    /// delta-of-deltas (order 2) as a packed stream. For full-precision
    /// values that move by a small fraction of themselves, the steps need
    /// fewer bits than the XOR coding's leading/trailing-zero windows.
    fn encode_values_float_steps(samples: &[(i64, f64)], order: u8, out: &mut Vec<u8>) {
        out.push(VALUES_FLOAT_STEPS);
        out.push(order);
        let keys: Vec<i64> = samples.iter().map(|&(_, v)| float_steps_key(v)).collect();
        let (heads, differences) = integer_steps(&keys, order);
        out.extend_from_slice(&heads);
        if !differences.is_empty() {
            write_packed(out, &differences);
        }
    }

    fn encode_values_xor(samples: &[(i64, f64)], out: &mut Vec<u8>) {
        out.push(VALUES_XOR);
        let mut writer = BitWriter::default();
        let mut window = None;
        let mut previous_bits = samples[0].1.to_bits();
        writer.write(out, previous_bits, 64);
        for &(_, value) in &samples[1..] {
            let bits = value.to_bits();
            write_xor_value(&mut writer, out, bits, previous_bits, &mut window);
            previous_bits = bits;
        }
    }

    /// The integer `m` with `m as f64 / 10^exponent` equal to `value` bit for
    /// bit, if there is one that fits an `i64`.
    #[inline]
    fn decimal_mantissa(value: f64, exponent: usize) -> Option<i64> {
        let power = POWERS_OF_TEN[exponent];
        let scaled = value * power;
        // Rejects NaN and everything outside the i64 range.
        if scaled.is_nan() || scaled.abs() >= 9.0e18 {
            return None;
        }
        let mantissa = round_to_i64(scaled);
        ((mantissa as f64 / power).to_bits() == value.to_bits()).then_some(mantissa)
    }

    /// `value.round() as i64` for a finite `value` of magnitude below
    /// 9.0e18, without the call into libm that `round` is on a baseline
    /// x86-64 target. Adding a half and truncating rounds ties away from
    /// zero as `round` does, except where the sum is inexact: at 2^52 and
    /// above every float is an integer already (taken as it is), and just
    /// below one half the sum can round up to 1 (where `round` gives 0; the
    /// caller's exactness check rejects both, as the value is not near
    /// an integer).
    #[inline]
    fn round_to_i64(value: f64) -> i64 {
        let magnitude = value.abs();
        let rounded = if magnitude >= 4_503_599_627_370_496.0 {
            magnitude as i64
        } else {
            (magnitude + 0.5) as i64
        };
        if value < 0.0 { -rounded } else { rounded }
    }

    /// The decimal layout with its exceptions, or `None` when more than half
    /// of the values would be exceptions.
    fn encode_values_decimal(samples: &[(i64, f64)]) -> Option<Vec<u8>> {
        // The chunk's scale is the largest of the per-value smallest scales.
        // Most chunks have one scale from their first value on; their
        // mantissas are kept from this pass, and the others are worked out
        // again at the final scale below.
        let mut exponent = None;
        let mut mantissas = Vec::with_capacity(samples.len());
        let mut one_scale = true;
        for &(_, value) in samples {
            let start = exponent.unwrap_or(0);
            if let Some(mantissa) = decimal_mantissa(value, start) {
                exponent = Some(start);
                mantissas.push(mantissa);
                continue;
            }
            let found = (start + 1..=MAX_DECIMAL_EXPONENT)
                .find_map(|e| decimal_mantissa(value, e).map(|mantissa| (e, mantissa)));
            match found {
                // The first value sets the scale.
                Some((found, mantissa)) if mantissas.is_empty() && one_scale => {
                    exponent = Some(found);
                    mantissas.push(mantissa);
                }
                Some((found, _)) => {
                    exponent = Some(found);
                    one_scale = false;
                }
                None => one_scale = false,
            }
        }
        let exponent = exponent?;

        let mut exceptions = Vec::new();
        if !one_scale {
            mantissas.clear();
            let mut last_exception_index: i64 = -1;
            for (index, &(_, value)) in samples.iter().enumerate() {
                match decimal_mantissa(value, exponent) {
                    Some(mantissa) => mantissas.push(mantissa),
                    None => {
                        put_uvarint(
                            &mut exceptions,
                            (index as i64 - last_exception_index - 1) as u64,
                        );
                        exceptions.extend_from_slice(&value.to_bits().to_le_bytes());
                        last_exception_index = index as i64;
                    }
                }
            }
        }
        let n_exceptions = samples.len() - mantissas.len();
        if n_exceptions * 2 > samples.len() {
            return None;
        }

        let mut best: Option<Vec<u8>> = None;
        for order in [1u8, 2] {
            let mut candidate = Vec::with_capacity(super::dense_capacity_hint(samples.len()));
            candidate.extend_from_slice(&[VALUES_DECIMAL, exponent as u8, order]);
            write_integer_sequence(&mantissas, order, n_exceptions, &exceptions, &mut candidate);
            if best
                .as_ref()
                .is_none_or(|best| candidate.len() < best.len())
            {
                best = Some(candidate);
            }
        }
        best
    }

    /// An integer sequence as its heads (the first integer; for order 2 and
    /// at least two integers, also the first delta, as varints) and the
    /// differences of `order` (deltas or delta-of-deltas, wrapping) after
    /// them.
    fn integer_steps(integers: &[i64], order: u8) -> (Vec<u8>, Vec<i64>) {
        let mut heads = Vec::new();
        let mut differences = Vec::with_capacity(integers.len());
        if let Some(&first) = integers.first() {
            put_varint(&mut heads, first);
        }
        if order == 1 {
            differences.extend(
                integers
                    .windows(2)
                    .map(|pair| pair[1].wrapping_sub(pair[0])),
            );
        } else if integers.len() >= 2 {
            let first_delta = integers[1].wrapping_sub(integers[0]);
            put_varint(&mut heads, first_delta);
            let mut previous_delta = first_delta;
            differences.extend(integers.windows(2).skip(1).map(|pair| {
                let delta = pair[1].wrapping_sub(pair[0]);
                let delta_of_delta = delta.wrapping_sub(previous_delta);
                previous_delta = delta;
                delta_of_delta
            }));
        }
        (heads, differences)
    }

    /// Writes `g`, the exceptions and the integers after the order byte.
    fn write_integer_sequence(
        mantissas: &[i64],
        order: u8,
        n_exceptions: usize,
        exceptions: &[u8],
        out: &mut Vec<u8>,
    ) {
        let (heads, differences) = integer_steps(mantissas, order);
        let divisor = common_divisor(&differences);
        put_uvarint(out, divisor as u64);
        put_uvarint(out, n_exceptions as u64);
        out.extend_from_slice(exceptions);
        out.extend_from_slice(&heads);
        if differences.is_empty() {
            return;
        }
        if divisor == 1 {
            write_packed(out, &differences);
        } else {
            let quotients: Vec<i64> = differences
                .iter()
                .map(|&difference| difference / divisor)
                .collect();
            write_packed(out, &quotients);
        }
    }

    /// The greatest common divisor of the values' magnitudes, 1 when they are
    /// all zero or it does not fit an `i64`.
    fn common_divisor(values: &[i64]) -> i64 {
        let mut divisor = 0u64;
        for &value in values {
            divisor = gcd(divisor, value.unsigned_abs());
            if divisor == 1 {
                return 1;
            }
        }
        if divisor == 0 || divisor > i64::MAX as u64 {
            1
        } else {
            divisor as i64
        }
    }

    fn gcd(mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }

    /// Lazily decodes the values section.
    enum ValueDecoder {
        Constant(u64),
        Decimal(DecimalDecoder),
        Xor {
            position: usize,
            value_bits: u64,
            window: Option<XorWindow>,
        },
        FloatSteps(FloatStepsDecoder),
    }

    /// Reads a [`VALUES_FLOAT_STEPS`] section: the first key, for order 2
    /// the first delta, then a packed stream of the rest.
    struct FloatStepsDecoder {
        order: u8,
        key: i64,
        delta: i64,
        packed: PackedReader,
    }

    impl FloatStepsDecoder {
        fn new(
            section: &[u8],
            mut position: usize,
            n_samples: usize,
        ) -> Result<FloatStepsDecoder, ChunkError> {
            let order = get_byte(section, &mut position)?;
            if order != 1 && order != 2 {
                return Err(ChunkError::new("float steps order not 1 or 2"));
            }
            let key = get_varint(section, &mut position)?;
            let mut delta = 0;
            if order == 2 && n_samples >= 2 {
                delta = get_varint(section, &mut position)?;
            }
            let heads = usize::from(order);
            let packed = if n_samples > heads {
                PackedReader::new(section, &mut position)?
            } else {
                PackedReader::empty()
            };
            Ok(FloatStepsDecoder {
                order,
                key,
                delta,
                packed,
            })
        }

        #[inline]
        fn next(&mut self, section: &[u8], index: usize) -> Result<f64, ChunkError> {
            match (self.order, index) {
                (_, 0) => {}
                (1, _) => self.key = self.key.wrapping_add(self.packed.next(section)?),
                (_, 1) => self.key = self.key.wrapping_add(self.delta),
                _ => {
                    self.delta = self.delta.wrapping_add(self.packed.next(section)?);
                    self.key = self.key.wrapping_add(self.delta);
                }
            }
            Ok(f64::from_bits(self.key as u64))
        }
    }

    struct DecimalDecoder {
        power: f64,
        order: u8,
        divisor: i64,
        n_integers: usize,
        n_integers_read: usize,
        mantissa: i64,
        delta: i64,
        /// Index of the next exception (`usize::MAX` when none is left).
        next_exception_index: usize,
        n_exceptions_left: usize,
        /// Byte position of the next exception's value bits.
        exception_position: usize,
        packed: PackedReader,
    }

    impl ValueDecoder {
        fn new(section: &[u8], n_samples: usize) -> Result<ValueDecoder, ChunkError> {
            let mut position = 0;
            match get_byte(section, &mut position)? {
                VALUES_CONSTANT => Ok(ValueDecoder::Constant(get_u64_le(section, &mut position)?)),
                VALUES_CONSTANT_DECIMAL => {
                    let exponent = usize::from(get_byte(section, &mut position)?);
                    let power = *POWERS_OF_TEN
                        .get(exponent)
                        .ok_or(ChunkError::new("decimal exponent above 15"))?;
                    let mantissa = get_varint(section, &mut position)?;
                    Ok(ValueDecoder::Constant((mantissa as f64 / power).to_bits()))
                }
                VALUES_XOR => Ok(ValueDecoder::Xor {
                    position: position * 8,
                    value_bits: 0,
                    window: None,
                }),
                VALUES_DECIMAL => Ok(ValueDecoder::Decimal(DecimalDecoder::new(
                    section, position, n_samples,
                )?)),
                VALUES_FLOAT_STEPS => Ok(ValueDecoder::FloatSteps(FloatStepsDecoder::new(
                    section, position, n_samples,
                )?)),
                _ => Err(ChunkError::new("unknown values kind")),
            }
        }

        #[inline]
        fn next(&mut self, section: &[u8], index: usize) -> Result<f64, ChunkError> {
            match self {
                ValueDecoder::Constant(bits) => Ok(f64::from_bits(*bits)),
                ValueDecoder::Decimal(decoder) => decoder.next(section, index),
                ValueDecoder::FloatSteps(decoder) => decoder.next(section, index),
                ValueDecoder::Xor {
                    position,
                    value_bits,
                    window,
                } => {
                    if index == 0 {
                        *value_bits = read_bits(section, position, 64)?;
                    } else {
                        read_xor_value(section, position, value_bits, window)?;
                    }
                    Ok(f64::from_bits(*value_bits))
                }
            }
        }
    }

    impl DecimalDecoder {
        fn new(
            section: &[u8],
            mut position: usize,
            n_samples: usize,
        ) -> Result<DecimalDecoder, ChunkError> {
            let exponent = usize::from(get_byte(section, &mut position)?);
            let power = *POWERS_OF_TEN
                .get(exponent)
                .ok_or(ChunkError::new("decimal exponent above 15"))?;
            let order = get_byte(section, &mut position)?;
            if order != 1 && order != 2 {
                return Err(ChunkError::new("decimal order not 1 or 2"));
            }
            let divisor = get_uvarint(section, &mut position)?;
            if divisor == 0 || divisor > i64::MAX as u64 {
                return Err(ChunkError::new("decimal divisor out of range"));
            }
            let n_exceptions = get_uvarint(section, &mut position)?;
            if n_exceptions > n_samples as u64 {
                return Err(ChunkError::new("more exceptions than samples"));
            }
            let n_exceptions = n_exceptions as usize;
            // Check every exception now, so iteration can trust their layout.
            let exceptions_start = position;
            let mut last_index: i64 = -1;
            for _ in 0..n_exceptions {
                let gap = get_uvarint(section, &mut position)?;
                let index = (last_index as u64).wrapping_add(1).saturating_add(gap);
                if index >= n_samples as u64 {
                    return Err(ChunkError::new("exception index past the last sample"));
                }
                get_u64_le(section, &mut position)?;
                last_index = index as i64;
            }
            let n_integers = n_samples - n_exceptions;
            let mut mantissa = 0;
            let mut delta = 0;
            if n_integers >= 1 {
                mantissa = get_varint(section, &mut position)?;
            }
            let n_heads = if order == 2 { 2 } else { 1 };
            if order == 2 && n_integers >= 2 {
                delta = get_varint(section, &mut position)?;
            }
            let packed = if n_integers > n_heads {
                PackedReader::new(section, &mut position)?
            } else {
                PackedReader::empty()
            };
            let mut decoder = DecimalDecoder {
                power,
                order,
                divisor: divisor as i64,
                n_integers,
                n_integers_read: 0,
                mantissa,
                delta,
                next_exception_index: usize::MAX,
                n_exceptions_left: n_exceptions,
                exception_position: exceptions_start,
                packed,
            };
            decoder.advance_exception(section, -1)?;
            Ok(decoder)
        }

        /// Reads the next exception's index (its gap from `last_index`).
        fn advance_exception(&mut self, section: &[u8], last_index: i64) -> Result<(), ChunkError> {
            if self.n_exceptions_left == 0 {
                self.next_exception_index = usize::MAX;
                return Ok(());
            }
            self.n_exceptions_left -= 1;
            let gap = get_uvarint(section, &mut self.exception_position)?;
            let index = (last_index as u64).wrapping_add(1).saturating_add(gap);
            self.next_exception_index = usize::try_from(index).unwrap_or(usize::MAX);
            Ok(())
        }

        #[inline]
        fn next(&mut self, section: &[u8], index: usize) -> Result<f64, ChunkError> {
            if index == self.next_exception_index {
                let bits = get_u64_le(section, &mut self.exception_position)?;
                self.advance_exception(section, index as i64)?;
                return Ok(f64::from_bits(bits));
            }
            if self.n_integers_read >= self.n_integers {
                return Err(ChunkError::new("decimal values end early"));
            }
            match (self.order, self.n_integers_read) {
                (_, 0) => {}
                (1, _) => {
                    let quotient = self.packed.next(section)?;
                    self.mantissa = self
                        .mantissa
                        .wrapping_add(quotient.wrapping_mul(self.divisor));
                }
                (_, 1) => self.mantissa = self.mantissa.wrapping_add(self.delta),
                _ => {
                    let quotient = self.packed.next(section)?;
                    self.delta = self.delta.wrapping_add(quotient.wrapping_mul(self.divisor));
                    self.mantissa = self.mantissa.wrapping_add(self.delta);
                }
            }
            self.n_integers_read += 1;
            Ok(self.mantissa as f64 / self.power)
        }
    }

    /// Decodes a whole timestamps section of `n_samples` (`n_samples ≥ 1`).
    pub(super) fn decode_timestamps(
        section: &[u8],
        n_samples: usize,
    ) -> Result<Vec<i64>, ChunkError> {
        let mut decoder = TimestampDecoder::new(section, n_samples)?;
        (0..n_samples).map(|i| decoder.next(section, i)).collect()
    }

    /// Decodes a whole values section of `n_samples` (`n_samples ≥ 1`).
    pub(super) fn decode_values(section: &[u8], n_samples: usize) -> Result<Vec<f64>, ChunkError> {
        let mut decoder = ValueDecoder::new(section, n_samples)?;
        (0..n_samples).map(|i| decoder.next(section, i)).collect()
    }

    // -- Bulk decoding -----------------------------------------------------------
    //
    // Whole sections in one loop per layout, with no per-sample dispatch
    // through the lazy decoders: the same numbers, bit for bit, as
    // `decode_timestamps` and `decode_values` (tested below).

    /// The 64 bits at bit `position`; a single unaligned load when nine
    /// bytes are there, else [`peek_u64`]'s padded read.
    #[inline(always)]
    fn peek_fast(section: &[u8], position: usize) -> u64 {
        let index = position >> 3;
        let offset = (position & 7) as u32;
        match section.get(index..index.wrapping_add(9)) {
            Some(nine) => {
                let mut word = [0u8; 8];
                word.copy_from_slice(&nine[..8]);
                let word = u64::from_be_bytes(word);
                if offset == 0 {
                    word
                } else {
                    (word << offset) | (u64::from(nine[8]) >> (8 - offset))
                }
            }
            None => peek_u64(section, position),
        }
    }

    /// Unpacks the next `n` integers of a packed stream, handing each to
    /// `f` in order, as `n` calls of [`PackedReader::next`] would.
    #[inline(always)]
    fn unpack(
        section: &[u8],
        reader: &mut PackedReader,
        n: usize,
        mut f: impl FnMut(i64),
    ) -> Result<(), ChunkError> {
        let mapping = reader.mapping;
        let decode = |raw: u64| mapping.apply(raw);
        if reader.rice {
            let k = reader.width;
            let limit = section.len().saturating_mul(8);
            let mut position = reader.position;
            let mut left = n;
            while left > 0 {
                // One load fills a 64-bit buffer; the codes that lie wholly
                // in it are then taken off its top by shifts, so the chain
                // from one code to the next is a count of leading ones and
                // a shift, not a load at a position just computed.
                let mut word = peek_fast(section, position);
                // The buffer's bits that are the section's (the rest is
                // padding): a code must end within them.
                let mut avail = limit.saturating_sub(position).min(64) as u32;
                let mut taken = 0usize;
                while taken < left {
                    let ones = word.leading_ones();
                    let length = ones + 1 + k;
                    if u64::from(ones) >= RICE_ESCAPE || length > avail {
                        break;
                    }
                    let low = if k == 0 {
                        0
                    } else {
                        (word << (ones + 1)) >> (64 - k)
                    };
                    f(decode((u64::from(ones) << k) | low));
                    word = word.checked_shl(length).unwrap_or(0);
                    avail -= length;
                    position += length as usize;
                    taken += 1;
                }
                left -= taken;
                if taken == 0 && left > 0 {
                    // Escaped, longer than a word, or cut short by the end
                    // of the section: the general reader decides.
                    f(decode(read_rice(section, &mut position, k)?));
                    left -= 1;
                }
            }
            reader.position = position;
            return Ok(());
        }
        match reader.width {
            0 => {
                let value = decode(0);
                for _ in 0..n {
                    f(value);
                }
                Ok(())
            }
            64 => {
                let mut position = reader.position;
                for _ in 0..n {
                    f(decode(read_bits(section, &mut position, 64)?));
                }
                reader.position = position;
                Ok(())
            }
            width => {
                let limit = section.len().saturating_mul(8);
                let escape = (1u64 << width) - 1;
                let bits = width;
                let width = width as usize;
                let mut position = reader.position;
                let mut left = n;
                while left > 0 {
                    // As for Rice codes: one load, then the codes that lie
                    // wholly in the word come off its top by shifts.
                    let mut word = peek_fast(section, position);
                    let mut avail = limit.saturating_sub(position).min(64) as u32;
                    let mut taken = 0usize;
                    while taken < left && bits <= avail {
                        let raw = word >> (64 - bits);
                        if raw == escape {
                            break;
                        }
                        f(decode(raw));
                        // 0 < bits < 64 here (0 and 64 are matched above).
                        word <<= bits;
                        avail -= bits;
                        position += width;
                        taken += 1;
                    }
                    left -= taken;
                    if taken == 0 && left > 0 {
                        // An escape, or the section cut short.
                        if position.saturating_add(width) > limit {
                            return Err(ChunkError::new(TRUNCATED));
                        }
                        let mut raw = peek_fast(section, position) >> (64 - width);
                        position += width;
                        if raw == escape {
                            let bit_length = read_bits(section, &mut position, 6)? as u32 + 1;
                            raw = read_bits(section, &mut position, bit_length)?;
                        }
                        f(decode(raw));
                        left -= 1;
                    }
                }
                reader.position = position;
                Ok(())
            }
        }
    }

    /// Writes a timestamps section's `out.len()` times over the `.0` of
    /// `out` (at least one).
    pub(super) fn timestamps_into(
        section: &[u8],
        out: &mut [(i64, f64)],
    ) -> Result<(), ChunkError> {
        let n = out.len();
        let mut decoder = TimestampDecoder::new(section, n)?;
        let (t0, delta) = (decoder.t0, decoder.delta);
        match decoder.kind {
            TIMESTAMPS_REGULAR => {
                let mut time = t0;
                for slot in out.iter_mut() {
                    slot.0 = time;
                    time = time.wrapping_add(delta);
                }
            }
            TIMESTAMPS_DELTA_OF_DELTA => {
                out[0].0 = t0;
                if n >= 2 {
                    let mut time = t0.wrapping_add(delta);
                    out[1].0 = time;
                    let mut delta = delta;
                    let mut slots = out[2..].iter_mut();
                    unpack(section, &mut decoder.packed, n - 2, |dod| {
                        delta = delta.wrapping_add(dod);
                        time = time.wrapping_add(delta);
                        if let Some(slot) = slots.next() {
                            slot.0 = time;
                        }
                    })?;
                }
            }
            _ => {
                out[0].0 = t0;
                let mut index = 1i64;
                let mut slots = out[1..].iter_mut();
                unpack(section, &mut decoder.packed, n - 1, |offset| {
                    let ideal = t0.wrapping_add(delta.wrapping_mul(index));
                    index += 1;
                    if let Some(slot) = slots.next() {
                        slot.0 = ideal.wrapping_add(offset);
                    }
                })?;
            }
        }
        Ok(())
    }

    /// Writes an integer sequence of order 1 (the stream holds deltas) or 2
    /// (delta-of-deltas, the first delta given), each step a multiple of
    /// `divisor`, as `value(integer)` over the `.1` of `out` (at least one),
    /// the first integer given: `(order, first, first delta, divisor)`.
    /// The slots before `skip` may be left as they are: their integers are
    /// summed but not converted or stored.
    #[inline(always)]
    fn steps_into(
        section: &[u8],
        packed: &mut PackedReader,
        (order, first, first_delta, divisor): (u8, i64, i64, i64),
        out: &mut [(i64, f64)],
        skip: usize,
        value: impl Fn(i64) -> f64,
    ) -> Result<(), ChunkError> {
        if order == 1 {
            return resume_steps(section, packed, (1, first, 0, divisor), out, skip, value);
        }
        out[0].1 = value(first);
        match out.get_mut(1..) {
            // Order 2 takes the first step as given, then resumes.
            Some(rest) if !rest.is_empty() => resume_steps(
                section,
                packed,
                (2, first.wrapping_add(first_delta), first_delta, divisor),
                rest,
                skip.saturating_sub(1),
                value,
            ),
            _ => Ok(()),
        }
    }

    /// Writes a values section's `out.len()` values over the `.1` of `out`
    /// (at least one).
    pub(super) fn values_into(section: &[u8], out: &mut [(i64, f64)]) -> Result<(), ChunkError> {
        values_prefix_into(section, out.len(), out, 0)
    }

    /// Writes the first `out.len()` values of a section of `n` (`1 ≤
    /// out.len() ≤ n`) over the `.1` of `out`; those before `skip` may be
    /// left as they are (a reader that wants only a chunk's tail).
    pub(super) fn values_prefix_into(
        section: &[u8],
        n: usize,
        out: &mut [(i64, f64)],
        skip: usize,
    ) -> Result<(), ChunkError> {
        if out.is_empty() || out.len() > n {
            return Err(ChunkError::new("values asked past the chunk's count"));
        }
        match ValueDecoder::new(section, n)? {
            ValueDecoder::Constant(bits) => {
                let value = f64::from_bits(bits);
                for slot in out.iter_mut() {
                    slot.1 = value;
                }
            }
            ValueDecoder::Decimal(mut decoder) if decoder.next_exception_index == usize::MAX => {
                // No exceptions: every value is a mantissa.
                let power = decoder.power;
                let start = (
                    decoder.order,
                    decoder.mantissa,
                    decoder.delta,
                    decoder.divisor,
                );
                if power == 1.0 {
                    // Whole numbers (counters): dividing by one changes
                    // nothing, and the division was most of the loop.
                    steps_into(section, &mut decoder.packed, start, out, skip, |m| m as f64)?;
                } else {
                    steps_into(section, &mut decoder.packed, start, out, skip, |m| {
                        m as f64 / power
                    })?;
                }
            }
            ValueDecoder::Decimal(mut decoder) => {
                for (index, slot) in out.iter_mut().enumerate() {
                    slot.1 = decoder.next(section, index)?;
                }
            }
            ValueDecoder::FloatSteps(mut decoder) => {
                steps_into(
                    section,
                    &mut decoder.packed,
                    (decoder.order, decoder.key, decoder.delta, 1),
                    out,
                    skip,
                    |key| f64::from_bits(key as u64),
                )?;
            }
            ValueDecoder::Xor { mut position, .. } => {
                let mut value_bits = read_bits(section, &mut position, 64)?;
                let mut window = None;
                out[0].1 = f64::from_bits(value_bits);
                for slot in out[1..].iter_mut() {
                    read_xor_value(section, &mut position, &mut value_bits, &mut window)?;
                    slot.1 = f64::from_bits(value_bits);
                }
            }
        }
        Ok(())
    }

    /// Where a values section's decoder stands after sample `index`:
    /// enough for a reader of the chunk's tail to resume there instead of
    /// decoding from the first value. For steps (decimal mantissas or
    /// float keys) the packed stream's bit position, the integer at
    /// `index` and, for order 2, the step that led to it; for Xor the bit
    /// position, the value's bits and the window (packed, -1 for none).
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub(super) struct Checkpoint {
        pub(super) index: usize,
        position: usize,
        integer: i64,
        delta: i64,
    }

    impl Checkpoint {
        pub(super) const BYTES: usize = 24;

        pub(super) fn to_bytes(self) -> [u8; Checkpoint::BYTES] {
            let mut out = [0u8; Checkpoint::BYTES];
            // Indexes and bit positions of a Dense chunk fit 32 bits (at
            // most MAX_DENSE_SAMPLES samples of at most 64 bits each).
            out[..4].copy_from_slice(&(self.index as u32).to_le_bytes());
            out[4..8].copy_from_slice(&(self.position as u32).to_le_bytes());
            out[8..16].copy_from_slice(&self.integer.to_le_bytes());
            out[16..].copy_from_slice(&self.delta.to_le_bytes());
            out
        }

        pub(super) fn from_bytes(bytes: &[u8; Checkpoint::BYTES]) -> Checkpoint {
            let word = |range: std::ops::Range<usize>| {
                let mut b = [0u8; 8];
                b[..range.len()].copy_from_slice(&bytes[range]);
                u64::from_le_bytes(b)
            };
            Checkpoint {
                index: word(0..4) as usize,
                position: word(4..8) as usize,
                integer: word(8..16) as i64,
                delta: word(16..24) as i64,
            }
        }
    }

    /// The checkpoint of a values section of `n` samples after sample
    /// `index` (`1 ≤ index < n`), or `None` where the layout has no use
    /// for one (a constant) or is not covered (decimals with exceptions).
    pub(super) fn checkpoint(
        section: &[u8],
        n: usize,
        index: usize,
    ) -> Result<Option<Checkpoint>, ChunkError> {
        if index == 0 || index >= n {
            return Ok(None);
        }
        let steps = |packed: &mut PackedReader, order: u8, first: i64, first_delta, divisor| {
            let (mut integer, mut delta) = (first, first_delta);
            if order == 1 {
                unpack(section, packed, index, |quotient| {
                    integer = integer.wrapping_add(quotient.wrapping_mul(divisor));
                })?;
            } else {
                if index < 2 {
                    return Ok(None);
                }
                integer = integer.wrapping_add(delta);
                unpack(section, packed, index - 1, |quotient| {
                    delta = delta.wrapping_add(quotient.wrapping_mul(divisor));
                    integer = integer.wrapping_add(delta);
                })?;
            }
            Ok(Some(Checkpoint {
                index,
                position: packed.position,
                integer,
                delta,
            }))
        };
        match ValueDecoder::new(section, n)? {
            ValueDecoder::Decimal(mut decoder) if decoder.next_exception_index == usize::MAX => {
                steps(
                    &mut decoder.packed,
                    decoder.order,
                    decoder.mantissa,
                    decoder.delta,
                    decoder.divisor,
                )
            }
            ValueDecoder::FloatSteps(mut decoder) => steps(
                &mut decoder.packed,
                decoder.order,
                decoder.key,
                decoder.delta,
                1,
            ),
            ValueDecoder::Xor { mut position, .. } => {
                let mut value_bits = read_bits(section, &mut position, 64)?;
                let mut window = None;
                for _ in 0..index {
                    read_xor_value(section, &mut position, &mut value_bits, &mut window)?;
                }
                Ok(Some(Checkpoint {
                    index,
                    position,
                    integer: value_bits as i64,
                    delta: window.map_or(-1, |w: XorWindow| i64::from(w.leading << 8 | w.trailing)),
                }))
            }
            _ => Ok(None),
        }
    }

    /// [`values_prefix_into`] from a checkpoint of the same section:
    /// writes the values of samples `checkpoint.index ..` over the `.1` of
    /// `out` (`out[0]` is sample `checkpoint.index`); those before `skip`
    /// may be left as they are.
    pub(super) fn values_from_checkpoint(
        section: &[u8],
        n: usize,
        checkpoint: &Checkpoint,
        out: &mut [(i64, f64)],
        skip: usize,
    ) -> Result<(), ChunkError> {
        if out.is_empty() || checkpoint.index.saturating_add(out.len()) > n {
            return Err(ChunkError::new("values asked past the chunk's count"));
        }
        let mismatch = || ChunkError::new("checkpoint does not fit the values section");
        match ValueDecoder::new(section, n)? {
            ValueDecoder::Decimal(mut decoder) if decoder.next_exception_index == usize::MAX => {
                decoder.packed.position = checkpoint.position;
                let power = decoder.power;
                let start = (
                    decoder.order,
                    checkpoint.integer,
                    checkpoint.delta,
                    decoder.divisor,
                );
                if power == 1.0 {
                    resume_steps(section, &mut decoder.packed, start, out, skip, |m| m as f64)
                } else {
                    resume_steps(section, &mut decoder.packed, start, out, skip, |m| {
                        m as f64 / power
                    })
                }
            }
            ValueDecoder::FloatSteps(mut decoder) => {
                decoder.packed.position = checkpoint.position;
                resume_steps(
                    section,
                    &mut decoder.packed,
                    (decoder.order, checkpoint.integer, checkpoint.delta, 1),
                    out,
                    skip,
                    |key| f64::from_bits(key as u64),
                )
            }
            ValueDecoder::Xor { .. } => {
                let mut position = checkpoint.position;
                let mut value_bits = checkpoint.integer as u64;
                let mut window = match checkpoint.delta {
                    -1 => None,
                    // A window as the reader sets it: a leading count of
                    // at most 31 and at least one significant bit.
                    packed
                        if (0..1 << 16).contains(&packed)
                            && (packed >> 8) <= 31
                            && (packed >> 8) + (packed & 0xff) < 64 =>
                    {
                        Some(XorWindow {
                            leading: (packed >> 8) as u32,
                            trailing: (packed & 0xff) as u32,
                        })
                    }
                    _ => return Err(mismatch()),
                };
                out[0].1 = f64::from_bits(value_bits);
                for slot in out[1..].iter_mut() {
                    read_xor_value(section, &mut position, &mut value_bits, &mut window)?;
                    slot.1 = f64::from_bits(value_bits);
                }
                Ok(())
            }
            _ => Err(mismatch()),
        }
    }

    /// An integer sequence of order 1 or 2 resumed at a sample whose
    /// integer (and, for order 2, the step that led to it) is given:
    /// `out[0]` is that sample, and the packed reader stands at the next
    /// sample's code ([`steps_into`] from the start, and reads from a
    /// checkpoint).
    #[inline(always)]
    fn resume_steps(
        section: &[u8],
        packed: &mut PackedReader,
        (order, integer, delta, divisor): (u8, i64, i64, i64),
        out: &mut [(i64, f64)],
        skip: usize,
        value: impl Fn(i64) -> f64,
    ) -> Result<(), ChunkError> {
        let n = out.len();
        let (mut integer, mut delta) = (integer, delta);
        out[0].1 = value(integer);
        let quiet = skip.saturating_sub(1).min(n - 1);
        if order == 1 {
            unpack(section, packed, quiet, |quotient| {
                integer = integer.wrapping_add(quotient.wrapping_mul(divisor));
            })?;
            let mut slots = out[1 + quiet..].iter_mut();
            unpack(section, packed, n - 1 - quiet, |quotient| {
                integer = integer.wrapping_add(quotient.wrapping_mul(divisor));
                if let Some(slot) = slots.next() {
                    slot.1 = value(integer);
                }
            })
        } else {
            unpack(section, packed, quiet, |quotient| {
                delta = delta.wrapping_add(quotient.wrapping_mul(divisor));
                integer = integer.wrapping_add(delta);
            })?;
            let mut slots = out[1 + quiet..].iter_mut();
            unpack(section, packed, n - 1 - quiet, |quotient| {
                delta = delta.wrapping_add(quotient.wrapping_mul(divisor));
                integer = integer.wrapping_add(delta);
                if let Some(slot) = slots.next() {
                    slot.1 = value(integer);
                }
            })
        }
    }

    /// A Dense chunk's sample count and its timestamps and values sections.
    pub(super) fn split(bytes: &[u8]) -> Result<(usize, &[u8], &[u8]), ChunkError> {
        let mut position = 0;
        let n_samples = get_uvarint(bytes, &mut position)?;
        if n_samples > MAX_DENSE_SAMPLES as u64 {
            return Err(ChunkError::new("Dense chunk claims too many samples"));
        }
        let timestamps_length = get_uvarint(bytes, &mut position)?;
        let values_start = usize::try_from(timestamps_length)
            .ok()
            .and_then(|length| position.checked_add(length))
            .filter(|&end| end <= bytes.len())
            .ok_or(ChunkError::new("timestamps section past the end"))?;
        Ok((
            n_samples as usize,
            &bytes[position..values_start],
            &bytes[values_start..],
        ))
    }

    // -- The whole chunk ---------------------------------------------------------

    /// Lazily decodes a Dense chunk: both sections in step.
    pub(super) struct DenseDecoder {
        n_samples: usize,
        n_read: usize,
        timestamps_start: usize,
        values_start: usize,
        timestamps: Option<TimestampDecoder>,
        values: Option<ValueDecoder>,
    }

    impl DenseDecoder {
        pub(super) fn new(bytes: &[u8]) -> Result<DenseDecoder, ChunkError> {
            let mut position = 0;
            let n_samples = get_uvarint(bytes, &mut position)?;
            if n_samples > MAX_DENSE_SAMPLES as u64 {
                return Err(ChunkError::new("Dense chunk claims too many samples"));
            }
            let n_samples = n_samples as usize;
            let timestamps_length = get_uvarint(bytes, &mut position)?;
            let timestamps_start = position;
            let values_start = usize::try_from(timestamps_length)
                .ok()
                .and_then(|length| timestamps_start.checked_add(length))
                .filter(|&end| end <= bytes.len())
                .ok_or(ChunkError::new("timestamps section past the end"))?;
            let mut decoder = DenseDecoder {
                n_samples,
                n_read: 0,
                timestamps_start,
                values_start,
                timestamps: None,
                values: None,
            };
            if n_samples > 0 {
                let (timestamp_section, value_section) = decoder.sections(bytes)?;
                decoder.timestamps = Some(TimestampDecoder::new(timestamp_section, n_samples)?);
                decoder.values = Some(ValueDecoder::new(value_section, n_samples)?);
            }
            Ok(decoder)
        }

        #[inline]
        fn sections<'a>(&self, bytes: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ChunkError> {
            let timestamps = bytes.get(self.timestamps_start..self.values_start);
            let values = bytes.get(self.values_start..);
            match (timestamps, values) {
                (Some(timestamps), Some(values)) => Ok((timestamps, values)),
                _ => Err(ChunkError::new("chunk bytes changed under the iterator")),
            }
        }

        pub(super) fn remaining(&self) -> usize {
            self.n_samples - self.n_read
        }

        #[inline]
        pub(super) fn next(&mut self, bytes: &[u8]) -> Result<Option<(i64, f64)>, ChunkError> {
            if self.n_read >= self.n_samples {
                return Ok(None);
            }
            let (timestamp_section, value_section) = self.sections(bytes)?;
            let (Some(timestamps), Some(values)) = (&mut self.timestamps, &mut self.values) else {
                return Ok(None);
            };
            let time = timestamps.next(timestamp_section, self.n_read)?;
            let value = values.next(value_section, self.n_read)?;
            self.n_read += 1;
            Ok(Some((time, value)))
        }
    }

    #[cfg(test)]
    mod packed_tests {
        use super::*;

        /// Which layout a packed stream's header names.
        fn layout_of(bytes: &[u8]) -> &'static str {
            let low = bytes[0] & !FRAME_OF_REFERENCE;
            match (low >= RICE_HEADER, bytes[0] & FRAME_OF_REFERENCE != 0) {
                (false, false) => "fixed zigzag",
                (false, true) => "fixed from minimum",
                (true, true) => "rice from minimum",
                (true, false) => "rice centered",
            }
        }

        fn streams() -> Vec<Vec<i64>> {
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let mut out: Vec<Vec<i64>> = vec![
                vec![0; 50],
                vec![-3, 5, -7, 1, 0, 2],
                vec![i64::MIN, i64::MAX, 0, -1, 1],
                (0..300).map(|i| 1_000_000 + (i % 4)).collect(),
            ];
            // Geometric-like: mostly small, a long tail (Rice from the minimum).
            out.push(
                (0..500)
                    .map(|_| 40 + (next() % 1024).trailing_zeros() as i64 * 3 + (next() % 3) as i64)
                    .collect(),
            );
            // Around zero, mostly small (Rice centered).
            out.push(
                (0..500)
                    .map(|_| {
                        let magnitude = 1i64 << (next() % 12);
                        let v = (next() % magnitude as u64) as i64;
                        if next() % 2 == 0 { v } else { -v }
                    })
                    .collect(),
            );
            // Uniform (a fixed width), with escapes.
            out.push(
                (0..500)
                    .map(|i| {
                        if i % 37 == 5 {
                            (next() >> 3) as i64
                        } else {
                            (next() % 256) as i64 - 100
                        }
                    })
                    .collect(),
            );
            // Huge steps: Rice parameters at their limit, escapes of 64 bits.
            out.push((0..200).map(|_| next() as i64).collect());
            out.push((0..200).map(|_| (next() >> 1) as i64).collect());
            out
        }

        #[test]
        fn every_layout_round_trips_lazily_and_in_bulk() {
            let mut seen = std::collections::BTreeSet::new();
            for values in streams() {
                let mut bytes = Vec::new();
                write_packed(&mut bytes, &values);
                seen.insert(layout_of(&bytes));
                let mut position = 0;
                let mut reader = PackedReader::new(&bytes, &mut position).unwrap();
                let mut bulk_reader = reader;
                let lazy: Vec<i64> = (0..values.len())
                    .map(|_| reader.next(&bytes).unwrap())
                    .collect();
                assert_eq!(lazy, values);
                let mut bulk = Vec::new();
                unpack(&bytes, &mut bulk_reader, values.len(), |v| bulk.push(v)).unwrap();
                assert_eq!(bulk, values);
            }
            for layout in [
                "fixed zigzag",
                "fixed from minimum",
                "rice from minimum",
                "rice centered",
            ] {
                assert!(seen.contains(layout), "no stream chose {layout}: {seen:?}");
            }
        }

        #[test]
        fn the_largest_rice_header_is_parameter_62() {
            // 65 + 62 = 127 fills the header's low seven bits.
            let mut bytes = vec![RICE_HEADER + MAX_RICE_K as u8, 0];
            let mut writer = BitWriter::default();
            write_rice(&mut writer, &mut bytes, u64::MAX >> 1, MAX_RICE_K);
            let mut position = 0;
            let mut reader = PackedReader::new(&bytes, &mut position).unwrap();
            assert_eq!(reader.next(&bytes).unwrap(), zigzag_decode(u64::MAX >> 1));
        }

        #[test]
        fn float_steps_are_chosen_for_full_precision_walks_and_round_trip() {
            let mut state = 12345u64;
            let mut uniform = move || {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 11) as f64 / (1u64 << 53) as f64
            };
            // A full-precision random walk (a duration gauge) and a
            // full-precision sum that grows a little each step.
            let mut walk = Vec::new();
            let mut sum = Vec::new();
            let (mut w, mut total) = (4.6e-5f64, 50.0f64);
            for i in 0..480i64 {
                w += (4.6e-5 - w) * 0.05 + 4e-6 * (uniform() + uniform() - 1.0);
                total += 0.9 + 0.2 * uniform();
                walk.push((i * 15_000, w));
                sum.push((i * 15_000, total));
            }
            // Signs, zeros, infinities and NaN payloads in one chunk.
            let mixed: Vec<(i64, f64)> = [
                1.5,
                -1.5,
                0.0,
                -0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::from_bits(0x7ff0_0000_0000_0002),
                f64::MIN_POSITIVE,
                -f64::MAX,
                0.1 + 0.2,
            ]
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64, v))
            .collect();
            for samples in [&walk, &sum, &mixed] {
                let mut xor = Vec::new();
                encode_values_xor(samples, &mut xor);
                for order in [1u8, 2] {
                    let mut section = Vec::new();
                    encode_values_float_steps(samples, order, &mut section);
                    let decoded = decode_values(&section, samples.len()).unwrap();
                    let expected: Vec<u64> = samples.iter().map(|s| s.1.to_bits()).collect();
                    let got: Vec<u64> = decoded.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(got, expected, "order {order}");
                    let mut pairs: Vec<(i64, f64)> =
                        samples.iter().map(|&(t, _)| (t, 0.0)).collect();
                    values_into(&section, &mut pairs).unwrap();
                    let got: Vec<u64> = pairs.iter().map(|p| p.1.to_bits()).collect();
                    assert_eq!(got, expected, "bulk, order {order}");
                }
            }
            for samples in [&walk, &sum] {
                let mut xor = Vec::new();
                encode_values_xor(samples, &mut xor);
                let mut chosen = Vec::new();
                encode_values(samples, &mut chosen);
                assert_eq!(chosen[0], VALUES_FLOAT_STEPS, "xor {} bytes", xor.len());
                assert!(
                    chosen.len() * 20 < xor.len() * 19,
                    "{} against xor {}",
                    chosen.len(),
                    xor.len()
                );
            }
        }
    }
}

/// The number of samples a Dense chunk's header claims (checked against
/// [`MAX_DENSE_SAMPLES`], not against its bytes).
pub fn dense_len(bytes: &[u8]) -> Result<usize, ChunkError> {
    dense::split(bytes).map(|(n, _, _)| n)
}

/// Decodes a whole Dense chunk of `expected` samples, each section in one
/// loop (no per-sample dispatch): the samples [`decode_all`] gives, for
/// readers that know the count (downsampled tiers' columns). An error when
/// the chunk holds another number of samples.
pub fn decode_dense_exact(bytes: &[u8], expected: usize) -> Result<Vec<(i64, f64)>, ChunkError> {
    let (n, timestamps, values) = dense::split(bytes)?;
    if n != expected {
        return Err(ChunkError::new(
            "Dense chunk holds another number of samples",
        ));
    }
    let mut out = vec![(0i64, 0.0f64); n];
    if n > 0 {
        dense::timestamps_into(timestamps, &mut out)?;
        dense::values_into(values, &mut out)?;
    }
    Ok(out)
}

/// Appends a whole Dense chunk's samples to `out`, each section in one
/// loop as [`decode_dense_exact`] decodes them, without a vector of their
/// own (readers cut it to their range with [`append_dense_range`]).
/// A chunk that claims more than `max` samples is left alone (`Ok(false)`),
/// so a corrupt count cannot make it allocate; on an error `out` is as it
/// was.
pub fn append_dense(
    bytes: &[u8],
    max: usize,
    out: &mut Vec<(i64, f64)>,
) -> Result<bool, ChunkError> {
    let (n, timestamps, values) = dense::split(bytes)?;
    if n > max {
        return Ok(false);
    }
    if n == 0 {
        return Ok(true);
    }
    let start = out.len();
    out.resize(start + n, (0, 0.0));
    let tail = &mut out[start..];
    let decoded =
        dense::timestamps_into(timestamps, tail).and_then(|()| dense::values_into(values, tail));
    if let Err(e) = decoded {
        out.truncate(start);
        return Err(e);
    }
    Ok(true)
}

/// Bytes of a Dense chunk's values checkpoint ([`dense_values_checkpoint`]).
pub const DENSE_CHECKPOINT_BYTES: usize = dense::Checkpoint::BYTES;

/// A checkpoint of a Dense chunk's values after sample `index`, as bytes
/// to keep beside the chunk in memory (the chunk format does not hold
/// one): [`append_dense_range`] given it decodes a range that starts at
/// or after `index` from there, not from the chunk's first value. `None`
/// where the values layout has no use for one or is not covered.
pub fn dense_values_checkpoint(
    bytes: &[u8],
    index: usize,
) -> Result<Option<[u8; DENSE_CHECKPOINT_BYTES]>, ChunkError> {
    let (n, _, values) = dense::split(bytes)?;
    Ok(dense::checkpoint(values, n, index)?.map(dense::Checkpoint::to_bytes))
}

/// [`append_dense`], keeping only the samples in `[mint, maxt]`. The
/// chunk is decoded in bulk (in bulk that costs less than the sample
/// iterator over part of it): in place when `out` has room for all of it,
/// else into a per-thread scratch from which only the range is copied to
/// `out`, so an instant query's few minutes of a long chunk do not grow
/// `out` to the whole chunk. Timestamps come first: a chunk with
/// none in the range leaves its values undecoded.
///
/// `checkpoint`, from [`dense_values_checkpoint`] of the same chunk, lets
/// a range that starts at or after its sample skip the values before it.
pub fn append_dense_range(
    bytes: &[u8],
    checkpoint: Option<&[u8; DENSE_CHECKPOINT_BYTES]>,
    max: usize,
    mint: i64,
    maxt: i64,
    out: &mut Vec<(i64, f64)>,
) -> Result<bool, ChunkError> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<(i64, f64)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let (n, timestamps, values) = dense::split(bytes)?;
    if n > max {
        return Ok(false);
    }
    if n == 0 {
        return Ok(true);
    }
    // Room for the whole chunk (a range read sized from its chunks'
    // counts): decoded in place, without the scratch and the copy out of
    // it; only a range starting inside the chunk moves its samples down.
    if out.capacity() - out.len() >= n {
        let start = out.len();
        out.resize(start + n, (0, 0.0));
        let tail = &mut out[start..];
        match decode_dense_range(timestamps, values, n, checkpoint, mint, maxt, tail) {
            Ok((lo, hi)) => {
                out.truncate(start + hi);
                out.drain(start..start + lo);
                return Ok(true);
            }
            Err(e) => {
                // `out` as it was.
                out.truncate(start);
                return Err(e);
            }
        }
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        scratch.resize(n, (0, 0.0));
        let (lo, hi) =
            decode_dense_range(timestamps, values, n, checkpoint, mint, maxt, &mut scratch)?;
        out.extend_from_slice(&scratch[lo..hi]);
        Ok(true)
    })
}

/// Decodes a Dense chunk's `n` timestamps over `pairs` (`n` long), then
/// the values of those in `[mint, maxt]`, `pairs[lo..hi]`, which it
/// returns. Values after the range are not decoded, and those before it
/// only summed where the layout allows, from the checkpoint on when the
/// range starts after it.
fn decode_dense_range(
    timestamps: &[u8],
    values: &[u8],
    n: usize,
    checkpoint: Option<&[u8; DENSE_CHECKPOINT_BYTES]>,
    mint: i64,
    maxt: i64,
    pairs: &mut [(i64, f64)],
) -> Result<(usize, usize), ChunkError> {
    dense::timestamps_into(timestamps, pairs)?;
    let lo = pairs.partition_point(|(t, _)| *t < mint);
    let hi = pairs.partition_point(|(t, _)| *t <= maxt).max(lo);
    if lo == hi {
        return Ok((lo, lo));
    }
    match checkpoint.map(dense::Checkpoint::from_bytes) {
        Some(checkpoint) if checkpoint.index <= lo => dense::values_from_checkpoint(
            values,
            n,
            &checkpoint,
            &mut pairs[checkpoint.index..hi],
            lo - checkpoint.index,
        )?,
        _ => dense::values_prefix_into(values, n, &mut pairs[..hi], lo)?,
    }
    Ok((lo, hi))
}

/// Decodes a Dense chunk's values over the `.1` of `pairs`, leaving the
/// `.0` alone (its timestamps are not decoded); an error when the chunk
/// holds other than `pairs.len()` samples.
pub fn decode_dense_values_into(bytes: &[u8], pairs: &mut [(i64, f64)]) -> Result<(), ChunkError> {
    let (n, _, values) = dense::split(bytes)?;
    if n != pairs.len() {
        return Err(ChunkError::new(
            "Dense chunk holds another number of samples",
        ));
    }
    if n > 0 {
        dense::values_into(values, pairs)?;
    }
    Ok(())
}

pub mod hist;
pub mod prom_hist;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bulk_tests {
    use super::*;

    /// Chunks of every timestamps and values layout, escapes included.
    fn chunks() -> Vec<Vec<(i64, f64)>> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = Vec::new();
        for n in [1usize, 2, 3, 7, 120, 2048] {
            let regular: Vec<i64> = (0..n as i64).map(|i| 1_000 + i * 15_000).collect();
            let jitter: Vec<i64> = (0..n as i64)
                .map(|i| 1_000 + i * 15_000 + (next() % 40) as i64 - 20)
                .collect();
            let mut drifting = Vec::with_capacity(n);
            let mut t = -5_000i64;
            for _ in 0..n {
                t += 1 + (next() % 100_000) as i64;
                // Now and then a gap far past the packed width.
                if next() % 50 == 0 {
                    t += 1 << 40;
                }
                drifting.push(t);
            }
            for times in [&regular, &jitter, &drifting] {
                let values: Vec<Vec<f64>> = vec![
                    vec![3.0; n],
                    vec![0.1; n],
                    vec![f64::from_bits(next()); n],
                    (0..n).map(|i| i as f64 * 12.0).collect(),
                    (0..n).map(|i| (i * i) as f64).collect(),
                    (0..n).map(|_| (next() % 10_000) as f64 / 100.0).collect(),
                    // Decimals with a few exceptions.
                    (0..n)
                        .map(|i| {
                            if i % 9 == 4 {
                                f64::from_bits(next() >> 2)
                            } else {
                                (next() % 1000) as f64 / 10.0
                            }
                        })
                        .collect(),
                    // Big jumps now and then (escapes in the packed ints).
                    (0..n)
                        .map(|i| {
                            if i % 17 == 3 {
                                (next() % (1 << 50)) as f64
                            } else {
                                (next() % 8) as f64
                            }
                        })
                        .collect(),
                    (0..n).map(|_| f64::from_bits(next())).collect(),
                    (0..n).map(|i| (i as f64).sin()).collect(),
                ];
                for v in values {
                    out.push(times.iter().copied().zip(v).collect());
                }
            }
        }
        out
    }

    fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
        samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
    }

    #[test]
    fn bulk_decode_equals_the_sample_iterator() {
        for samples in chunks() {
            let mut bytes = Vec::new();
            encode_dense(&samples, &mut bytes);
            let lazy = decode_all(Encoding::Dense, &bytes).unwrap();
            assert_eq!(bits(&lazy), bits(&samples));
            let bulk = decode_dense_exact(&bytes, samples.len()).unwrap();
            assert_eq!(bits(&bulk), bits(&lazy));
            let mut appended = vec![(-5, 1.5)];
            assert!(append_dense(&bytes, samples.len(), &mut appended).unwrap());
            assert_eq!(bits(&appended[1..]), bits(&lazy));
            assert_eq!(bits(&appended[..1]), bits(&[(-5, 1.5)]));
            // Cut to a range: what the iterator keeps of it.
            let (first, last) = (samples[0].0, samples[samples.len() - 1].0);
            for (mint, maxt) in [
                (first, last),
                (first + 1, last - 1),
                ((first + last) / 2, last + 10),
                (first - 10, (first + last) / 2),
                (last + 1, last + 2),
                // An instant query's few minutes at the end, and one
                // sample in the middle (skipped head, undecoded tail).
                (samples[samples.len().saturating_sub(20)].0, last),
                (samples[samples.len() / 2].0, samples[samples.len() / 2].0),
            ] {
                let want: Vec<(i64, f64)> = lazy
                    .iter()
                    .copied()
                    .filter(|(t, _)| (mint..=maxt).contains(t))
                    .collect();
                // Through the scratch (no room in `out`) and in place.
                for room in [0, samples.len()] {
                    let mut cut = Vec::with_capacity(1 + room);
                    cut.push((-5, 1.5));
                    assert!(
                        append_dense_range(&bytes, None, samples.len(), mint, maxt, &mut cut)
                            .unwrap()
                    );
                    assert_eq!(bits(&cut[1..]), bits(&want), "room {room}");
                    assert_eq!(bits(&cut[..1]), bits(&[(-5, 1.5)]));
                }
            }
            let mut untouched = vec![(-5, 1.5)];
            assert!(!append_dense(&bytes, samples.len() - 1, &mut untouched).unwrap());
            assert_eq!(untouched.len(), 1);
            let mut pairs: Vec<(i64, f64)> = samples.iter().map(|&(t, _)| (t, -1.0)).collect();
            decode_dense_values_into(&bytes, &mut pairs).unwrap();
            assert_eq!(bits(&pairs), bits(&lazy));
            assert!(decode_dense_exact(&bytes, samples.len() + 1).is_err());
            let mut short = vec![(0, 0.0); samples.len() - 1];
            assert!(decode_dense_values_into(&bytes, &mut short).is_err());
        }
    }

    /// A values checkpoint changes nothing of what a range read gives,
    /// whether the range starts before it, at it or after it; a checkpoint
    /// of another chunk or of garbage is an error or a read, never a panic.
    #[test]
    fn reads_from_a_checkpoint_equal_reads_from_the_start() {
        let mut kinds = std::collections::BTreeSet::new();
        let mut state = 11u64;
        for samples in chunks() {
            let mut bytes = Vec::new();
            encode_dense(&samples, &mut bytes);
            let n = samples.len();
            let lazy = decode_all(Encoding::Dense, &bytes).unwrap();
            for at in [1, 2, 3, n / 2, n.saturating_sub(40), n - 1, n, n + 5] {
                let Some(checkpoint) = dense_values_checkpoint(&bytes, at).unwrap() else {
                    continue;
                };
                assert!((1..n).contains(&at), "{at} of {n}");
                kinds.insert(dense::split(&bytes).unwrap().2[0]);
                for from in [0, at.saturating_sub(1), at, at + 1, n - 1] {
                    let from = from.min(n - 1);
                    for to in [from, (from + 5).min(n - 1), n - 1] {
                        let (mint, maxt) = (samples[from].0, samples[to].0);
                        // Half of the reads with room in `out` (in place).
                        let mut with = Vec::with_capacity(1 + n * ((from + to) % 2));
                        with.push((-5, 1.5));
                        let mut without = vec![(-5, 1.5)];
                        assert!(
                            append_dense_range(&bytes, Some(&checkpoint), n, mint, maxt, &mut with)
                                .unwrap()
                        );
                        assert!(
                            append_dense_range(&bytes, None, n, mint, maxt, &mut without).unwrap()
                        );
                        assert_eq!(bits(&with), bits(&without), "n {n}, at {at}, {from}..={to}");
                        let want: Vec<(i64, f64)> = lazy
                            .iter()
                            .copied()
                            .filter(|(t, _)| (mint..=maxt).contains(t))
                            .collect();
                        assert_eq!(bits(&with[1..]), bits(&want));
                    }
                }
                // Garbage in the checkpoint: an answer or an error.
                for _ in 0..20 {
                    let mut bad = checkpoint;
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    bad[(state >> 33) as usize % bad.len()] ^= 1 << ((state >> 20) % 8);
                    let mut out = Vec::new();
                    let _ = append_dense_range(
                        &bytes,
                        Some(&bad),
                        n,
                        samples[n - 1].0,
                        i64::MAX,
                        &mut out,
                    );
                }
            }
        }
        // Steps of decimals, steps of floats and Xor values all had one.
        assert!(kinds.len() >= 3, "checkpointed value layouts: {kinds:?}");
    }

    #[test]
    fn bulk_decode_of_corrupt_chunks_is_an_error_not_a_panic() {
        let mut state = 7u64;
        for samples in chunks().into_iter().step_by(3) {
            let mut bytes = Vec::new();
            encode_dense(&samples, &mut bytes);
            let n = samples.len();
            for cut in 0..bytes.len().min(40) {
                let truncated = &bytes[..bytes.len() - 1 - cut];
                let _ = decode_dense_exact(truncated, n);
            }
            for _ in 0..40 {
                let mut flipped = bytes.clone();
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (state >> 33) as usize % flipped.len();
                flipped[at] ^= 1 << ((state >> 20) % 8);
                let bulk = decode_dense_exact(&flipped, n);
                let lazy = decode_all(Encoding::Dense, &flipped);
                for (mint, maxt) in [(i64::MIN, i64::MAX), (samples[n / 2].0, i64::MAX)] {
                    for room in [0, n] {
                        let mut cut = Vec::with_capacity(1 + room);
                        cut.push((-5, 1.5));
                        if !matches!(
                            append_dense_range(&flipped, None, n, mint, maxt, &mut cut),
                            Ok(true)
                        ) {
                            // On an error (or a count past the limit) `out`
                            // is as it was.
                            assert_eq!(bits(&cut), bits(&[(-5, 1.5)]));
                        }
                    }
                }
                let mut appended = vec![(-5, 1.5)];
                match append_dense(&flipped, n, &mut appended) {
                    Ok(true) => assert_eq!(appended.len(), 1 + dense_len(&flipped).unwrap()),
                    _ => assert_eq!(bits(&appended), bits(&[(-5, 1.5)])),
                }
                // Where the lazy decoder gets n samples the bulk one gets
                // the same ones.
                if let (Ok(bulk), Ok(lazy)) = (&bulk, &lazy) {
                    assert_eq!(bits(bulk), bits(lazy));
                }
            }
        }
    }
}
