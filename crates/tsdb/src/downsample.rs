//! Downsampling: window points and their `Aggregate` chunk encoding.
//!
//! A [`Run`] is one series' window points over a stretch of time (one
//! block, one query part) plus the raw value its counter offsets start
//! from. Runs are built from raw samples ([`Run::from_samples`]), made
//! coarser ([`Run::coarsen`]), cut to a time range ([`Run::clip`]) and
//! joined end to end ([`Run::append`]) without losing a counter reset;
//! [`encode_run`] and [`decode_chunk`] write and read them as encoding 3
//! (chunk version 2: a counter's or a gauge's set of aggregates per
//! series; version 1 chunks, every aggregate, stay readable). The format
//! is specified in `docs/format/downsample.md`.

use crate::block::ChunkMeta;
use crate::chunkenc::{ChunkError, Encoding, decode_all, encode_dense};
use crate::compact::DENSE_CHUNK_SAMPLES;
use crate::index::{put_uvarint, read_uvarint};
use model::storage::Aggregate;

/// The chunk encoding id of downsampled blocks.
pub const AGGREGATE_ENCODING: u8 = 3;

/// Which aggregates a window point holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// Every aggregate: points built from raw samples, and version 1
    /// chunks.
    All,
    /// A counter's: last, count and the counter offsets (no sum, min, max).
    Counter,
    /// A gauge's: count, sum, min, max and last (no counter).
    Gauge,
    /// A gauge's as chunks written before gauges kept their last value:
    /// count, sum, min and max; `last` holds the window's mean.
    GaugeMean,
    /// Only the count: a window combining a counter's points with a
    /// gauge's (a series whose set changed from one block to the next),
    /// for which neither set is complete.
    Count,
}

impl Kept {
    /// Whether points of this kind answer `aggregate`. A gauge of the
    /// older kind answers [`Aggregate::Last`] with the window's mean.
    pub fn keeps(self, aggregate: Aggregate) -> bool {
        match self {
            Kept::All => true,
            Kept::Counter => matches!(
                aggregate,
                Aggregate::Last | Aggregate::Count | Aggregate::Counter | Aggregate::Resets
            ),
            Kept::Gauge | Kept::GaugeMean => {
                !matches!(aggregate, Aggregate::Counter | Aggregate::Resets)
            }
            Kept::Count => aggregate == Aggregate::Count,
        }
    }

    /// Whether points of this kind hold `aggregate` itself: as
    /// [`Kept::keeps`], but an older gauge's mean is no last value.
    pub fn holds(self, aggregate: Aggregate) -> bool {
        self.keeps(aggregate) && !(self == Kept::GaugeMean && aggregate == Aggregate::Last)
    }

    /// The kind of a window combining points of kinds `self` and `other`:
    /// what both hold.
    fn meet(self, other: Kept) -> Kept {
        match (self, other) {
            (Kept::All, k) | (k, Kept::All) => k,
            (a, b) if a == b => a,
            (Kept::Gauge, Kept::GaugeMean) | (Kept::GaugeMean, Kept::Gauge) => Kept::GaugeMean,
            _ => Kept::Count,
        }
    }
}

/// `Point::decimals` when the sum is not known to be a short decimal.
pub const UNKNOWN_DECIMALS: u8 = u8::MAX;

/// The most decimals a gauge's sum is rounded to (see [`round_sum`]).
pub const MAX_SUM_DECIMALS: u8 = 9;

const POWERS_OF_TEN: [f64; MAX_SUM_DECIMALS as usize + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// The fewest decimals `value` is written with (`m / 10^d` equal to it bit
/// for bit), up to [`MAX_SUM_DECIMALS`]; [`UNKNOWN_DECIMALS`] otherwise.
pub fn decimals(value: f64) -> u8 {
    for (d, power) in POWERS_OF_TEN.iter().enumerate() {
        let scaled = value * power;
        if !scaled.is_finite() || scaled.abs() >= 9.0e15 {
            break;
        }
        if (scaled.round() / power).to_bits() == value.to_bits() {
            return d as u8;
        }
    }
    UNKNOWN_DECIMALS
}

/// The sum of `count` values that each have at most `decimals` decimals,
/// rounded to that many: the exact decimal sum, without the float
/// addition's rounding noise (which would make the column incompressible).
/// Left as it is when the rounding could move it by more than that noise.
pub fn round_sum(sum: f64, count: f64, decimals: u8) -> f64 {
    if decimals > MAX_SUM_DECIMALS {
        return sum;
    }
    let power = POWERS_OF_TEN[decimals as usize];
    let scaled = sum * power;
    // The addition's error is at most count * 2^-53 * |sum| (times power
    // here); below 0.25 the nearest integer is the exact decimal sum.
    if !scaled.is_finite() || scaled.abs() * count.max(1.0) >= 1.0e15 {
        return sum;
    }
    scaled.round() / power
}

/// The aggregates of one window of one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Timestamp of the window's last sample.
    pub t: i64,
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
    /// Sum of the values just before each counter reset since the run's
    /// start; the reset-adjusted counter is `last + offset`.
    pub offset: f64,
    /// Which of these the point holds (the others are NaN, or 0 offsets).
    pub kept: Kept,
    /// The most decimals of the values summed (see [`decimals`]).
    pub decimals: u8,
}

impl Point {
    /// The value of a kept aggregate other than the counter and resets
    /// (which need the offsets): an older gauge's last is its window's
    /// mean.
    pub fn value(&self, aggregate: Aggregate) -> f64 {
        match aggregate {
            Aggregate::Last | Aggregate::Counter | Aggregate::Resets => {
                if self.kept == Kept::GaugeMean {
                    self.sum / self.count
                } else {
                    self.last
                }
            }
            Aggregate::Count => self.count,
            Aggregate::Sum | Aggregate::SumCount => self.sum,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
        }
    }

    /// The reset-adjusted counter at `t`.
    pub fn counter(&self) -> f64 {
        self.last + self.offset
    }
}

/// One series' window points, oldest first, and the raw value of the
/// sample its counter offsets count from.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub first: f64,
    pub points: Vec<Point>,
}

fn window_of(t: i64, resolution: i64) -> i64 {
    if resolution > 0 {
        t.div_euclid(resolution)
    } else {
        t
    }
}

impl Run {
    /// Window points of raw samples (ascending, unique timestamps) at
    /// `resolution` ms; 0 gives one point per sample. Stale markers are
    /// left out. `None` when nothing is left.
    pub fn from_samples(samples: &[(i64, f64)], resolution: i64) -> Option<Run> {
        let mut first = None;
        let mut points: Vec<Point> = Vec::new();
        let mut previous: Option<f64> = None;
        let mut offset = 0.0;
        let mut current_window = i64::MIN;
        for &(t, v) in samples {
            if model::is_stale_nan(v) {
                continue;
            }
            if let Some(p) = previous
                && v < p
            {
                offset += p;
            }
            previous = Some(v);
            first.get_or_insert(v);
            let window = window_of(t, resolution);
            let d = decimals(v);
            match points.last_mut() {
                Some(point) if window == current_window => {
                    point.decimals = point.decimals.max(d);
                    point.t = t;
                    point.count += 1.0;
                    point.sum += v;
                    point.min = min(point.min, v);
                    point.max = max(point.max, v);
                    point.last = v;
                    point.offset = offset;
                }
                _ => {
                    current_window = window;
                    points.push(Point {
                        t,
                        count: 1.0,
                        sum: v,
                        min: v,
                        max: v,
                        last: v,
                        offset,
                        kept: Kept::All,
                        decimals: d,
                    });
                }
            }
        }
        Some(Run {
            first: first?,
            points,
        })
    }

    /// The same data at a coarser `resolution` (a whole multiple of this
    /// run's): each window combines the finer points in it.
    pub fn coarsen(&self, resolution: i64) -> Run {
        let mut points: Vec<Point> = Vec::with_capacity(self.points.len());
        let mut current_window = i64::MIN;
        for p in &self.points {
            let window = window_of(p.t, resolution);
            match points.last_mut() {
                Some(q) if window == current_window => {
                    q.kept = q.kept.meet(p.kept);
                    q.decimals = q.decimals.max(p.decimals);
                    q.t = p.t;
                    q.count += p.count;
                    q.sum += p.sum;
                    q.min = min(q.min, p.min);
                    q.max = max(q.max, p.max);
                    q.last = p.last;
                    q.offset = p.offset;
                }
                _ => {
                    current_window = window;
                    points.push(*p);
                }
            }
        }
        Run {
            first: self.first,
            points,
        }
    }

    /// The points with `mint <= t <= maxt`, counting offsets from the
    /// point before the first one kept. `None` when no point is in range.
    pub fn clip(&self, mint: i64, maxt: i64) -> Option<Run> {
        let start = self.points.partition_point(|p| p.t < mint);
        let end = self.points.partition_point(|p| p.t <= maxt);
        if start >= end {
            return None;
        }
        if start == 0 {
            return Some(Run {
                first: self.first,
                points: self.points[..end].to_vec(),
            });
        }
        let before = self.points[start - 1];
        Some(Run {
            first: before.last,
            points: self.points[start..end]
                .iter()
                .map(|p| Point {
                    offset: p.offset - before.offset,
                    ..*p
                })
                .collect(),
        })
    }

    /// Like [`Run::clip`], without copying when every point is in range.
    pub fn into_clip(self, mint: i64, maxt: i64) -> Option<Run> {
        let inside = self
            .points
            .first()
            .zip(self.points.last())
            .is_some_and(|(a, b)| a.t >= mint && b.t <= maxt);
        if inside {
            Some(self)
        } else {
            self.clip(mint, maxt)
        }
    }

    /// Appends `next`, whose points all come after this run's, shifting
    /// its offsets so the counter continues: by this run's last offset
    /// when `next` starts at or above this run's last value, and also by
    /// that last value when it starts below (a reset between the two).
    pub fn append(&mut self, next: Run) {
        let Some(last) = self.points.last().copied() else {
            *self = next;
            return;
        };
        let shift = if next.first < last.last {
            last.offset + last.last
        } else {
            last.offset
        };
        let from = self.points.len();
        self.points.extend_from_slice(&next.points);
        if shift != 0.0 {
            for p in &mut self.points[from..] {
                p.offset += shift;
            }
        }
    }

    /// 1 for each point whose window holds a counter reset (its offset
    /// grew), else 0: what `resets` sums.
    pub fn reset_flags(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        let mut before = 0.0;
        self.points.iter().map(move |p| {
            let flag = if p.offset > before { 1.0 } else { 0.0 };
            before = p.offset;
            (p.t, flag)
        })
    }
}

fn min(a: f64, b: f64) -> f64 {
    if b < a || a.is_nan() { b } else { a }
}

fn max(a: f64, b: f64) -> f64 {
    if b > a || a.is_nan() { b } else { a }
}

const MODE_STORED: u8 = 0;
const MODE_SAME_AS_LAST: u8 = 1;
const MODE_SPARSE: u8 = 2;
const MODE_ZERO_OFFSET: u8 = 3;

/// The first byte of a version 2 chunk (a version 1 chunk starts with its
/// window count, at least 1).
const VERSION_2: u8 = 0;
/// Version 2 chunk kinds.
const KIND_COUNTER: u8 = 1;
/// A gauge without its last value (written before kind 4).
const KIND_GAUGE_MEAN: u8 = 2;
const KIND_COUNT: u8 = 3;
/// A gauge with its last value.
const KIND_GAUGE: u8 = 4;

/// What points of a version 2 chunk of `kind` keep (`kind` known valid).
fn kept_of(kind: u8) -> Kept {
    match kind {
        KIND_COUNTER => Kept::Counter,
        KIND_GAUGE => Kept::Gauge,
        KIND_GAUGE_MEAN => Kept::GaugeMean,
        _ => Kept::Count,
    }
}

/// Which aggregates a series' version 2 tier chunks keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateSet {
    /// A counter's: last, count and the counter offsets.
    Counter,
    /// A gauge's: count, sum, min, max and last.
    Gauge,
    /// Every aggregate (version 1 chunks): whatever the data is not
    /// certainly one or the other.
    All,
}

/// The aggregates a series keeps in a tier block. Only what is certain
/// drops any: a name that ends as a counter's does (`_total`, `_count`,
/// `_sum`, `_bucket`) keeps a counter's set; a series whose value goes
/// down in at least 3 windows in 10 (judged on at least
/// [`MIN_WINDOWS_TO_JUDGE`] windows) is no counter and keeps a gauge's
/// set. Everything else (a counter without the suffix that is idle or
/// rising, a gauge trending one way, a short block) keeps every
/// aggregate, so no function loses its answer once raw data has expired.
pub fn aggregate_set(name: Option<&str>, run: &Run) -> AggregateSet {
    if name.is_some_and(|n| {
        ["_total", "_count", "_sum", "_bucket"]
            .iter()
            .any(|suffix| n.ends_with(suffix))
    }) {
        return AggregateSet::Counter;
    }
    let n = run.points.len();
    // A window falls when its value drops inside it (a reset flag) or
    // ends below the window before.
    let mut before = run.first;
    let falls = run
        .reset_flags()
        .zip(&run.points)
        .filter(|&((_, flag), p)| {
            let fell = flag > 0.0 || p.last < before;
            before = p.last;
            fell
        })
        .count();
    if n >= MIN_WINDOWS_TO_JUDGE && falls * 10 >= n * 3 {
        AggregateSet::Gauge
    } else {
        AggregateSet::All
    }
}

/// The fewest window points [`aggregate_set`] judges by their values.
pub const MIN_WINDOWS_TO_JUDGE: usize = 12;

/// Cuts `run` into chunks of at most [`DENSE_CHUNK_SAMPLES`] points whose
/// `kind` is the same, and encodes each with `encode(points, kind, first,
/// base)` (`first` and `base` as [`encode_points_v1`] takes them).
fn chunked(
    run: &Run,
    kind: impl Fn(&Point) -> Kept,
    encode: impl Fn(&[Point], Kept, f64, f64, &mut Vec<u8>),
) -> Vec<ChunkMeta> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < run.points.len() {
        let k = kind(&run.points[start]);
        let limit = (start + DENSE_CHUNK_SAMPLES).min(run.points.len());
        let mut end = start + 1;
        while end < limit && kind(&run.points[end]) == k {
            end += 1;
        }
        let (first, base) = if start == 0 {
            (run.first, 0.0)
        } else {
            let before = run.points[start - 1];
            (before.last, before.offset)
        };
        let points = &run.points[start..end];
        let mut data = Vec::new();
        encode(points, k, first, base, &mut data);
        chunks.push(ChunkMeta {
            min_time: points[0].t,
            max_time: points[points.len() - 1].t,
            encoding: AGGREGATE_ENCODING,
            data,
        });
        start = end;
    }
    chunks
}

/// Encodes a run as `Aggregate` chunks keeping `set` (see
/// [`aggregate_set`]): points that hold every aggregate keep `set`
/// (version 2 chunks for a counter's or a gauge's, version 1 chunks for
/// all); points that hold one set already keep it. A chunk holds one set.
pub fn encode_run(run: &Run, set: AggregateSet) -> Vec<ChunkMeta> {
    let kind = |p: &Point| match (p.kept, set) {
        (Kept::All, AggregateSet::Counter) => Kept::Counter,
        (Kept::All, AggregateSet::Gauge) => Kept::Gauge,
        (k, _) => k,
    };
    chunked(run, kind, |points, k, first, base, out| match k {
        Kept::All => encode_points_v1(points, first, base, out),
        Kept::Counter => encode_counter(points, first, base, out),
        Kept::Count => encode_count(points, out),
        Kept::Gauge => encode_gauge(points, true, out),
        Kept::GaugeMean => encode_gauge(points, false, out),
    })
}

/// Encodes a run as version 1 chunks (every aggregate), as releases before
/// version 2 wrote them: what tests and the fuzzer check the reader of
/// old blocks with.
pub fn encode_run_v1(run: &Run) -> Vec<ChunkMeta> {
    chunked(
        run,
        |_| Kept::All,
        |points, _, first, base, out| encode_points_v1(points, first, base, out),
    )
}

fn put_dense(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    let mut buf = Vec::new();
    encode_dense(samples, &mut buf);
    put_uvarint(out, buf.len() as u64);
    out.extend_from_slice(&buf);
}

/// A count, sum, min or max column: mode 1 when every value equals the
/// point's `reference` bit for bit, else stored.
fn put_column(
    points: &[Point],
    value: impl Fn(&Point) -> f64,
    reference: Option<&dyn Fn(&Point) -> f64>,
    out: &mut Vec<u8>,
) {
    if let Some(reference) = reference
        && points
            .iter()
            .all(|p| value(p).to_bits() == reference(p).to_bits())
    {
        out.push(MODE_SAME_AS_LAST);
        return;
    }
    out.push(MODE_STORED);
    let column: Vec<(i64, f64)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (i as i64, value(p)))
        .collect();
    put_dense(&column, out);
}

/// The counter column: offsets counted from `base`.
fn put_offsets(points: &[Point], base: f64, out: &mut Vec<u8>) {
    let mut changes: Vec<(i64, f64)> = Vec::new();
    let mut before = 0.0f64;
    for (i, p) in points.iter().enumerate() {
        let offset = p.offset - base;
        if offset.to_bits() != before.to_bits() {
            changes.push((i as i64, offset));
            before = offset;
        }
    }
    if changes.is_empty() {
        out.push(MODE_ZERO_OFFSET);
    } else {
        out.push(MODE_SPARSE);
        put_dense(&changes, out);
    }
}

fn encode_points_v1(points: &[Point], first: f64, base: f64, out: &mut Vec<u8>) {
    put_uvarint(out, points.len() as u64);
    out.extend_from_slice(&first.to_bits().to_le_bytes());
    let times: Vec<(i64, f64)> = points.iter().map(|p| (p.t, p.last)).collect();
    put_dense(&times, out);
    let last: &dyn Fn(&Point) -> f64 = &|p| p.last;
    put_column(points, |p| p.count, None, out);
    put_column(points, |p| p.sum, Some(last), out);
    put_column(points, |p| p.min, Some(last), out);
    put_column(points, |p| p.max, Some(last), out);
    put_offsets(points, base, out);
}

/// Version 2, counter: `(t, last)`, count, counter.
fn encode_counter(points: &[Point], first: f64, base: f64, out: &mut Vec<u8>) {
    out.push(VERSION_2);
    out.push(KIND_COUNTER);
    put_uvarint(out, points.len() as u64);
    out.extend_from_slice(&first.to_bits().to_le_bytes());
    let times: Vec<(i64, f64)> = points.iter().map(|p| (p.t, p.last)).collect();
    put_dense(&times, out);
    put_column(points, |p| p.count, None, out);
    put_offsets(points, base, out);
}

/// Version 2, count only: `(t, count)`.
fn encode_count(points: &[Point], out: &mut Vec<u8>) {
    out.push(VERSION_2);
    out.push(KIND_COUNT);
    put_uvarint(out, points.len() as u64);
    let times: Vec<(i64, f64)> = points.iter().map(|p| (p.t, p.count)).collect();
    put_dense(&times, out);
}

/// Version 2, gauge: `(t, count)` (a steady scrape's counts are constant,
/// so reading the times costs little more than the times), sum (rounded
/// to its values' decimals), min, max and, `with_last` (kind 4), last;
/// without it (kind 2: points read from such chunks, which have no last
/// value to write) the reader takes the mean for the last.
fn encode_gauge(points: &[Point], with_last: bool, out: &mut Vec<u8>) {
    out.push(VERSION_2);
    out.push(if with_last {
        KIND_GAUGE
    } else {
        KIND_GAUGE_MEAN
    });
    put_uvarint(out, points.len() as u64);
    let sum = |p: &Point| round_sum(p.sum, p.count, p.decimals);
    let times: Vec<(i64, f64)> = points.iter().map(|p| (p.t, p.count)).collect();
    put_dense(&times, out);
    put_column(points, sum, None, out);
    put_column(points, |p| p.min, Some(&sum), out);
    put_column(points, |p| p.max, Some(&sum), out);
    if with_last {
        put_column(points, |p| p.last, Some(&sum), out);
    }
}

fn get_dense(bytes: &[u8], position: &mut usize) -> Result<Vec<(i64, f64)>, ChunkError> {
    decode_all(Encoding::Dense, dense_at(bytes, position)?)
}

/// The length-prefixed Dense column at `position`; moves past it.
fn dense_at<'a>(bytes: &'a [u8], position: &mut usize) -> Result<&'a [u8], ChunkError> {
    let rest = bytes.get(*position..).unwrap_or(&[]);
    let (len, used) = read_uvarint(rest).ok_or(ChunkError::new("aggregate: truncated length"))?;
    let start = *position + used;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|&end| end <= bytes.len())
        .ok_or(ChunkError::new("aggregate: column past the end"))?;
    *position = end;
    Ok(&bytes[start..end])
}

/// A Dense column of exactly `n` samples at `position`, decoded in bulk.
fn get_dense_exact(
    bytes: &[u8],
    position: &mut usize,
    n: usize,
    what: &'static str,
) -> Result<Vec<(i64, f64)>, ChunkError> {
    let column = dense_at(bytes, position)?;
    if crate::chunkenc::dense_len(column)? != n {
        return Err(ChunkError::new(what));
    }
    crate::chunkenc::decode_dense_exact(column, n)
}

fn get_byte(bytes: &[u8], position: &mut usize) -> Result<u8, ChunkError> {
    let b = *bytes
        .get(*position)
        .ok_or(ChunkError::new("aggregate: truncated"))?;
    *position += 1;
    Ok(b)
}

/// Steps over a length-prefixed Dense column without decoding it.
fn skip_dense(bytes: &[u8], position: &mut usize) -> Result<(), ChunkError> {
    let rest = bytes.get(*position..).unwrap_or(&[]);
    let (len, used) = read_uvarint(rest).ok_or(ChunkError::new("aggregate: truncated length"))?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| (*position + used).checked_add(len))
        .filter(|&end| end <= bytes.len())
        .ok_or(ChunkError::new("aggregate: column past the end"))?;
    *position = end;
    Ok(())
}

/// Reads one column of `n` values; `None` means "same as last".
fn get_column(
    bytes: &[u8],
    position: &mut usize,
    n: usize,
    may_imply: bool,
) -> Result<Option<Vec<f64>>, ChunkError> {
    match get_byte(bytes, position)? {
        MODE_STORED => {
            let column = get_dense_exact(bytes, position, n, "aggregate: column length differs")?;
            Ok(Some(column.into_iter().map(|(_, v)| v).collect()))
        }
        MODE_SAME_AS_LAST if may_imply => Ok(None),
        _ => Err(ChunkError::new("aggregate: invalid column mode")),
    }
}

/// Reads a chunk's window count and `first` value; returns them and the
/// position of the timestamps.
fn get_header(bytes: &[u8]) -> Result<(usize, f64, usize), ChunkError> {
    let mut position = 0;
    let n = get_count(bytes, &mut position)?;
    let first = get_f64(bytes, &mut position)?;
    Ok((n, first, position))
}

/// Reads the `(t, last)` pairs of a chunk of `n` windows.
fn get_times(bytes: &[u8], position: &mut usize, n: usize) -> Result<Vec<(i64, f64)>, ChunkError> {
    get_dense_exact(bytes, position, n, "aggregate: timestamp count differs")
}

/// Reads the counter column: the offset of each of `n` windows.
fn get_offsets(bytes: &[u8], position: &mut usize, n: usize) -> Result<Vec<f64>, ChunkError> {
    let mut offsets = vec![0.0; n];
    match get_byte(bytes, position)? {
        MODE_ZERO_OFFSET => {}
        MODE_SPARSE => {
            let changes = get_dense(bytes, position)?;
            if changes.len() > n {
                return Err(ChunkError::new("aggregate: too many offset changes"));
            }
            let mut next_index = 0i64;
            let mut current = 0.0;
            let mut filled = 0usize;
            for (i, offset) in changes {
                if i < next_index || i >= n as i64 {
                    return Err(ChunkError::new("aggregate: offset index out of order"));
                }
                for slot in &mut offsets[filled..i as usize] {
                    *slot = current;
                }
                current = offset;
                filled = i as usize;
                next_index = i + 1;
            }
            for slot in &mut offsets[filled..] {
                *slot = current;
            }
        }
        _ => return Err(ChunkError::new("aggregate: invalid counter mode")),
    }
    Ok(offsets)
}

/// Steps over the counter column without decoding it.
fn skip_offsets(bytes: &[u8], position: &mut usize) -> Result<(), ChunkError> {
    match get_byte(bytes, position)? {
        MODE_ZERO_OFFSET => Ok(()),
        MODE_SPARSE => skip_dense(bytes, position),
        _ => Err(ChunkError::new("aggregate: invalid counter mode")),
    }
}

/// Reads a window count at `position`, checked to be in range.
fn get_count(bytes: &[u8], position: &mut usize) -> Result<usize, ChunkError> {
    let rest = bytes.get(*position..).unwrap_or(&[]);
    let (n, used) = read_uvarint(rest).ok_or(ChunkError::new("aggregate: truncated count"))?;
    *position += used;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n == 0 || n > crate::chunkenc::MAX_DENSE_SAMPLES {
        return Err(ChunkError::new("aggregate: window count out of range"));
    }
    Ok(n)
}

fn get_f64(bytes: &[u8], position: &mut usize) -> Result<f64, ChunkError> {
    let b: [u8; 8] = bytes
        .get(*position..*position + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or(ChunkError::new("aggregate: truncated first value"))?;
    *position += 8;
    Ok(f64::from_bits(u64::from_le_bytes(b)))
}

/// A version 2 chunk's kind and window count, and the position after them.
fn get_header_v2(bytes: &[u8]) -> Result<(u8, usize, usize), ChunkError> {
    let mut position = 1;
    let kind = get_byte(bytes, &mut position)?;
    if !matches!(
        kind,
        KIND_COUNTER | KIND_GAUGE_MEAN | KIND_COUNT | KIND_GAUGE
    ) {
        return Err(ChunkError::new("aggregate: unknown chunk kind"));
    }
    let n = get_count(bytes, &mut position)?;
    Ok((kind, n, position))
}

fn is_v2(bytes: &[u8]) -> bool {
    bytes.first() == Some(&VERSION_2)
}

/// Decodes one `Aggregate` chunk into a run. Aggregates a version 2 chunk
/// does not keep are NaN (a counter's sum, min and max) or 0 (a gauge's
/// offsets); a gauge of kind 2's `last` is its window's mean.
pub fn decode_chunk(bytes: &[u8]) -> Result<Run, ChunkError> {
    if is_v2(bytes) {
        return decode_chunk_v2(bytes);
    }
    let (n, first, mut position) = get_header(bytes)?;
    let times = get_times(bytes, &mut position, n)?;
    let count = get_column(bytes, &mut position, n, false)?
        .ok_or(ChunkError::new("aggregate: count must be stored"))?;
    let sum = get_column(bytes, &mut position, n, true)?;
    let min = get_column(bytes, &mut position, n, true)?;
    let max = get_column(bytes, &mut position, n, true)?;
    let offsets = get_offsets(bytes, &mut position, n)?;
    if position != bytes.len() {
        return Err(ChunkError::new("aggregate: bytes left over"));
    }
    let pick =
        |column: &Option<Vec<f64>>, i: usize, last: f64| column.as_ref().map_or(last, |c| c[i]);
    let points = times
        .iter()
        .enumerate()
        .map(|(i, &(t, last))| {
            let sum = pick(&sum, i, last);
            Point {
                t,
                count: count[i],
                sum,
                min: pick(&min, i, last),
                max: pick(&max, i, last),
                last,
                offset: offsets[i],
                kept: Kept::All,
                decimals: decimals(sum),
            }
        })
        .collect();
    Ok(Run { first, points })
}

fn decode_chunk_v2(bytes: &[u8]) -> Result<Run, ChunkError> {
    let (kind, n, mut position) = get_header_v2(bytes)?;
    let run = if kind == KIND_COUNT {
        let counts = get_times(bytes, &mut position, n)?;
        let points: Vec<Point> = counts
            .iter()
            .map(|&(t, count)| Point {
                t,
                count,
                sum: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                last: f64::NAN,
                offset: 0.0,
                kept: Kept::Count,
                decimals: UNKNOWN_DECIMALS,
            })
            .collect();
        Run {
            first: f64::NAN,
            points,
        }
    } else if kind == KIND_COUNTER {
        let first = get_f64(bytes, &mut position)?;
        let times = get_times(bytes, &mut position, n)?;
        let count = get_column(bytes, &mut position, n, false)?
            .ok_or(ChunkError::new("aggregate: count must be stored"))?;
        let offsets = get_offsets(bytes, &mut position, n)?;
        let points = times
            .iter()
            .enumerate()
            .map(|(i, &(t, last))| Point {
                t,
                count: count[i],
                sum: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                last,
                offset: offsets[i],
                kept: Kept::Counter,
                decimals: UNKNOWN_DECIMALS,
            })
            .collect();
        Run { first, points }
    } else {
        let counts = get_times(bytes, &mut position, n)?;
        let sums = get_column(bytes, &mut position, n, false)?
            .ok_or(ChunkError::new("aggregate: sum must be stored"))?;
        let min = get_column(bytes, &mut position, n, true)?;
        let max = get_column(bytes, &mut position, n, true)?;
        let last = if kind == KIND_GAUGE {
            Some(get_column(bytes, &mut position, n, true)?)
        } else {
            None
        };
        let pick =
            |column: &Option<Vec<f64>>, i: usize, sum: f64| column.as_ref().map_or(sum, |c| c[i]);
        let points: Vec<Point> = counts
            .iter()
            .enumerate()
            .map(|(i, &(t, count))| Point {
                t,
                count,
                sum: sums[i],
                min: pick(&min, i, sums[i]),
                max: pick(&max, i, sums[i]),
                last: match &last {
                    Some(column) => pick(column, i, sums[i]),
                    None => sums[i] / count,
                },
                offset: 0.0,
                kept: kept_of(kind),
                decimals: decimals(sums[i]),
            })
            .collect();
        Run {
            first: points[0].last,
            points,
        }
    };
    if position != bytes.len() {
        return Err(ChunkError::new("aggregate: bytes left over"));
    }
    Ok(run)
}

/// One series' values of one aggregate over a stretch of time: what a
/// hinted select reads, without the other aggregates of each window.
///
/// For [`Aggregate::Counter`] and [`Aggregate::Resets`] the pairs hold
/// `(t, last)` and `offsets` the counter offsets, so runs join and clip as
/// [`Run::append`] and [`Run::clip`] do (the same arithmetic, so the same
/// answers); for [`Aggregate::SumCount`] the pairs hold `(t, sum)` and
/// `counts` the counts; for the other aggregates the pairs hold
/// `(t, value)` and `offsets` and `counts` are empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The run's `first` for the counter; 0 for the other aggregates.
    pub first: f64,
    pub pairs: Vec<(i64, f64)>,
    pub offsets: Vec<f64>,
    pub counts: Vec<f64>,
}

fn needs_offsets(aggregate: Aggregate) -> bool {
    matches!(aggregate, Aggregate::Counter | Aggregate::Resets)
}

impl Column {
    /// The column of `aggregate` in a run; `None` when a point of the run
    /// does not keep it (see [`Kept::keeps`]).
    pub fn from_run(run: &Run, aggregate: Aggregate) -> Option<Column> {
        if !run.points.iter().all(|p| p.kept.keeps(aggregate)) {
            return None;
        }
        Some(Column {
            first: if needs_offsets(aggregate) {
                run.first
            } else {
                0.0
            },
            pairs: run
                .points
                .iter()
                .map(|p| (p.t, p.value(aggregate)))
                .collect(),
            offsets: if needs_offsets(aggregate) {
                run.points.iter().map(|p| p.offset).collect()
            } else {
                Vec::new()
            },
            counts: if aggregate == Aggregate::SumCount {
                run.points.iter().map(|p| p.count).collect()
            } else {
                Vec::new()
            },
        })
    }

    fn counts_offsets(&self) -> bool {
        !self.offsets.is_empty()
    }

    /// Appends `next`, whose points all come after these, as
    /// [`Run::append`] does.
    pub fn append(&mut self, next: Column) {
        let Some(&(_, last)) = self.pairs.last() else {
            *self = next;
            return;
        };
        if self.counts_offsets() {
            let before = self.offsets[self.offsets.len() - 1];
            let shift = if next.first < last {
                before + last
            } else {
                before
            };
            let from = self.offsets.len();
            self.offsets.extend_from_slice(&next.offsets);
            if shift != 0.0 {
                for o in &mut self.offsets[from..] {
                    *o += shift;
                }
            }
        }
        self.pairs.extend_from_slice(&next.pairs);
        self.counts.extend_from_slice(&next.counts);
    }

    /// The points with `mint <= t <= maxt`, as [`Run::into_clip`] keeps
    /// them. `None` when no point is in range.
    pub fn into_clip(mut self, mint: i64, maxt: i64) -> Option<Column> {
        let start = self.pairs.partition_point(|p| p.0 < mint);
        let end = self.pairs.partition_point(|p| p.0 <= maxt);
        if start >= end {
            return None;
        }
        if start == 0 && end == self.pairs.len() {
            return Some(self);
        }
        self.pairs.truncate(end);
        if self.counts_offsets() {
            self.offsets.truncate(end);
        }
        if !self.counts.is_empty() {
            self.counts.truncate(end);
            self.counts.drain(..start);
        }
        if start == 0 {
            return Some(self);
        }
        if self.counts_offsets() {
            let before = self.offsets[start - 1];
            self.first = self.pairs[start - 1].1;
            self.offsets.drain(..start);
            for o in &mut self.offsets {
                *o -= before;
            }
        }
        self.pairs.drain(..start);
        Some(self)
    }

    /// Leaves out the points at times `deleted` holds, as a tier block's
    /// read does: when the first ones go, offsets count from the last of
    /// those. `None` when nothing is left.
    pub fn remove_deleted(self, deleted: &crate::tombstones::Intervals) -> Option<Column> {
        let keep = self.pairs.iter().position(|p| !deleted.contains(p.0))?;
        let mut column = if keep > 0 {
            let t = self.pairs[keep].0;
            self.into_clip(t, i64::MAX)?
        } else {
            self
        };
        let kept: Vec<bool> = column
            .pairs
            .iter()
            .map(|p| !deleted.contains(p.0))
            .collect();
        if column.counts_offsets() {
            let mut i = 0;
            column.offsets.retain(|_| {
                i += 1;
                kept[i - 1]
            });
        }
        if !column.counts.is_empty() {
            let mut i = 0;
            column.counts.retain(|_| {
                i += 1;
                kept[i - 1]
            });
        }
        let mut i = 0;
        column.pairs.retain(|_| {
            i += 1;
            kept[i - 1]
        });
        Some(column)
    }

    /// The samples a hinted select hands out for `aggregate` (the one the
    /// column was read for), computed in place: no second vector.
    pub fn into_samples(self, aggregate: Aggregate) -> Vec<(i64, f64)> {
        self.into_samples_after(aggregate, 0.0)
    }

    /// Shifts the counter offsets of a column that follows one whose last
    /// value and (shifted) offset are `before`, as [`Column::append`] would
    /// when joining them: the two columns' samples then equal the joined
    /// column's.
    pub fn follow(&mut self, before: (f64, f64)) {
        if !self.counts_offsets() {
            return;
        }
        let (last, offset) = before;
        let shift = if self.first < last {
            offset + last
        } else {
            offset
        };
        if shift != 0.0 {
            for o in &mut self.offsets {
                *o += shift;
            }
        }
    }

    /// The last value and offset, for [`Column::follow`]; `None` when empty.
    pub fn end(&self) -> Option<(f64, f64)> {
        let &(_, last) = self.pairs.last()?;
        Some((last, self.offsets.last().copied().unwrap_or(0.0)))
    }

    /// [`Column::into_samples`] of a column that follows others (already
    /// shifted by [`Column::follow`]) whose last offset is `before`: a
    /// reset flag compares with it.
    pub fn into_samples_after(self, aggregate: Aggregate, before: f64) -> Vec<(i64, f64)> {
        let mut pairs = self.pairs;
        match aggregate {
            Aggregate::SumCount => {
                let mut both = Vec::with_capacity(2 * pairs.len());
                for (&(t, sum), &count) in pairs.iter().zip(&self.counts) {
                    both.push((t, sum));
                    both.push((t, count));
                }
                return both;
            }
            Aggregate::Counter => {
                for (pair, &offset) in pairs.iter_mut().zip(&self.offsets) {
                    pair.1 += offset;
                }
            }
            Aggregate::Resets => {
                let mut before = before;
                for (pair, &offset) in pairs.iter_mut().zip(&self.offsets) {
                    pair.1 = if offset > before { 1.0 } else { 0.0 };
                    before = offset;
                }
            }
            _ => {}
        }
        pairs
    }
}

/// Reads a stored column's values over the `.1` of `pairs`, or leaves
/// the last values there when the column is "same as last".
fn put_column_values(
    bytes: &[u8],
    position: &mut usize,
    pairs: &mut [(i64, f64)],
    may_imply: bool,
) -> Result<(), ChunkError> {
    match get_byte(bytes, position)? {
        MODE_STORED => {
            let column = dense_at(bytes, position)?;
            if crate::chunkenc::dense_len(column)? != pairs.len() {
                return Err(ChunkError::new("aggregate: column length differs"));
            }
            crate::chunkenc::decode_dense_values_into(column, pairs)
        }
        MODE_SAME_AS_LAST if may_imply => Ok(()),
        _ => Err(ChunkError::new("aggregate: invalid column mode")),
    }
}

/// Steps over a count, sum, min or max column without decoding it.
fn skip_column(bytes: &[u8], position: &mut usize, may_imply: bool) -> Result<(), ChunkError> {
    match get_byte(bytes, position)? {
        MODE_STORED => skip_dense(bytes, position),
        MODE_SAME_AS_LAST if may_imply => Ok(()),
        _ => Err(ChunkError::new("aggregate: invalid column mode")),
    }
}

/// Decodes one `Aggregate` chunk's column for `aggregate` straight into
/// `(t, value)` pairs (plus offsets for the counter), stepping over the
/// other columns by their lengths; `None` when the chunk does not keep
/// `aggregate`. Equals `Column::from_run(&decode_chunk(bytes)?, aggregate)`
/// on chunks that decode; the columns stepped over are not checked beyond
/// their framing.
pub fn decode_chunk_column(
    bytes: &[u8],
    aggregate: Aggregate,
) -> Result<Option<Column>, ChunkError> {
    if is_v2(bytes) {
        return decode_chunk_column_v2(bytes, aggregate);
    }
    let (n, first, mut position) = get_header(bytes)?;
    let mut pairs = get_times(bytes, &mut position, n)?;
    // count (never implied), sum, min, max: which one is read, if any.
    let wanted = match aggregate {
        Aggregate::Count => Some(0),
        Aggregate::Sum | Aggregate::SumCount => Some(1),
        Aggregate::Min => Some(2),
        Aggregate::Max => Some(3),
        Aggregate::Last | Aggregate::Counter | Aggregate::Resets => None,
    };
    let mut counts = Vec::new();
    for column in 0..4 {
        let may_imply = column > 0;
        if column == 0 && aggregate == Aggregate::SumCount {
            counts = get_column(bytes, &mut position, n, false)?
                .ok_or(ChunkError::new("aggregate: count must be stored"))?;
        } else if wanted == Some(column) {
            put_column_values(bytes, &mut position, &mut pairs, may_imply)?;
        } else {
            skip_column(bytes, &mut position, may_imply)?;
        }
    }
    let offsets = if needs_offsets(aggregate) {
        get_offsets(bytes, &mut position, n)?
    } else {
        skip_offsets(bytes, &mut position)?;
        Vec::new()
    };
    if position != bytes.len() {
        return Err(ChunkError::new("aggregate: bytes left over"));
    }
    Ok(Some(Column {
        first: if needs_offsets(aggregate) { first } else { 0.0 },
        pairs,
        offsets,
        counts,
    }))
}

/// Whether [`decode_chunk_column`] of this chunk gives a column for
/// `aggregate` (`Some`), read from the chunk's header alone: a version 1
/// chunk keeps every aggregate, a version 2 chunk those of its kind.
/// With `exact`, a stand-in (an older gauge's mean for its last value)
/// does not count ([`Kept::holds`]).
pub fn chunk_keeps(bytes: &[u8], aggregate: Aggregate, exact: bool) -> Result<bool, ChunkError> {
    if !is_v2(bytes) {
        return Ok(true);
    }
    let (kind, _, _) = get_header_v2(bytes)?;
    let kept = kept_of(kind);
    Ok(if exact {
        kept.holds(aggregate)
    } else {
        kept.keeps(aggregate)
    })
}

fn decode_chunk_column_v2(
    bytes: &[u8],
    aggregate: Aggregate,
) -> Result<Option<Column>, ChunkError> {
    let (kind, n, mut position) = get_header_v2(bytes)?;
    let kept = kept_of(kind);
    let mut first = 0.0;
    let mut offsets = Vec::new();
    let mut counts = Vec::new();
    let pairs = if kind == KIND_COUNT {
        get_times(bytes, &mut position, n)?
    } else if kind == KIND_COUNTER {
        first = get_f64(bytes, &mut position)?;
        let mut pairs = get_times(bytes, &mut position, n)?;
        if aggregate == Aggregate::Count {
            put_column_values(bytes, &mut position, &mut pairs, false)?;
        } else {
            skip_column(bytes, &mut position, false)?;
        }
        if needs_offsets(aggregate) {
            offsets = get_offsets(bytes, &mut position, n)?;
        } else {
            skip_offsets(bytes, &mut position)?;
        }
        pairs
    } else {
        // (t, count), sum, min, max and (kind 4) last; min, max and last
        // may be "same as sum".
        let mut pairs = get_times(bytes, &mut position, n)?;
        let sum_at = position;
        match aggregate {
            Aggregate::Sum => put_column_values(bytes, &mut position, &mut pairs, false)?,
            Aggregate::SumCount => {
                counts = pairs.iter().map(|p| p.1).collect();
                put_column_values(bytes, &mut position, &mut pairs, false)?
            }
            Aggregate::Last if kind == KIND_GAUGE_MEAN => {
                let sums = get_column(bytes, &mut position, n, false)?
                    .ok_or(ChunkError::new("aggregate: sum must be stored"))?;
                for (pair, sum) in pairs.iter_mut().zip(sums) {
                    pair.1 = sum / pair.1;
                }
            }
            _ => skip_column(bytes, &mut position, false)?,
        }
        let columns: &[Aggregate] = if kind == KIND_GAUGE {
            &[Aggregate::Min, Aggregate::Max, Aggregate::Last]
        } else {
            &[Aggregate::Min, Aggregate::Max]
        };
        for &column in columns {
            if aggregate == column {
                if bytes.get(position) == Some(&MODE_SAME_AS_LAST) {
                    // Every value equals the sum: read that column.
                    let mut at = sum_at;
                    put_column_values(bytes, &mut at, &mut pairs, false)?;
                }
                put_column_values(bytes, &mut position, &mut pairs, true)?;
            } else {
                skip_column(bytes, &mut position, true)?;
            }
        }
        pairs
    };
    if position != bytes.len() {
        return Err(ChunkError::new("aggregate: bytes left over"));
    }
    if !kept.keeps(aggregate) {
        return Ok(None);
    }
    Ok(Some(Column {
        first: if needs_offsets(aggregate) { first } else { 0.0 },
        pairs,
        offsets,
        counts,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_with_resets() -> Vec<(i64, f64)> {
        let mut v = 0.0;
        (0..1000)
            .map(|i| {
                v = if i % 301 == 300 { 1.0 } else { v + 2.0 };
                (i * 15_000, v)
            })
            .collect()
    }

    fn join(chunks: &[ChunkMeta]) -> Run {
        let mut joined: Option<Run> = None;
        for chunk in chunks {
            let part = decode_chunk(&chunk.data).unwrap();
            match joined.as_mut() {
                Some(j) => j.append(part),
                None => joined = Some(part),
            }
        }
        joined.unwrap()
    }

    #[test]
    fn chunks_round_trip_and_counter_survives_resets() {
        let raw = counter_with_resets();
        let run = Run::from_samples(&raw, 300_000).unwrap();
        assert_eq!(run.points.len(), 50);
        assert_eq!(
            aggregate_set(Some("requests_total"), &run),
            AggregateSet::Counter
        );
        assert_eq!(aggregate_set(None, &run), AggregateSet::All);
        // Version 1 chunks (every aggregate) read back unchanged.
        assert_eq!(join(&encode_run_v1(&run)), run);
        // Version 2 keeps a counter's set: the same times, last values,
        // counts and counters; no sum, min or max.
        let back = join(&encode_run(&run, AggregateSet::Counter));
        assert_eq!(back.first, run.first);
        for (a, b) in back.points.iter().zip(&run.points) {
            assert_eq!(
                (a.t, a.last, a.count, a.offset),
                (b.t, b.last, b.count, b.offset)
            );
            assert_eq!(a.kept, Kept::Counter);
            assert!(a.sum.is_nan() && a.min.is_nan() && a.max.is_nan());
        }
        assert_eq!(back.points.len(), run.points.len());
        // The adjusted counter rises by exactly the raw increase.
        let total_raw: f64 = raw
            .windows(2)
            .map(|w| {
                if w[1].1 < w[0].1 {
                    w[1].1
                } else {
                    w[1].1 - w[0].1
                }
            })
            .sum();
        let p = run.points.last().unwrap();
        assert_eq!(p.counter() - run.first, total_raw);
        // Splitting anywhere and joining again changes nothing.
        for cut in [0, 1, 17, 49] {
            let t = run.points[cut].t;
            let mut left = run.clip(i64::MIN, t).unwrap();
            left.append(run.clip(t + 1, i64::MAX).unwrap_or(Run {
                first: 0.0,
                points: vec![],
            }));
            assert_eq!(left, run, "cut at {cut}");
        }
        // Coarsening a fine run equals downsampling the raw samples.
        let fine = Run::from_samples(&raw, 60_000).unwrap();
        assert_eq!(fine.coarsen(300_000), run);
        let flags: f64 = run.reset_flags().map(|(_, f)| f).sum();
        assert_eq!(flags, 3.0);
        // ... and so does coarsening the decoded version 2 counter.
        let fine_back = join(&encode_run(&fine, AggregateSet::Counter));
        let coarse = fine_back.coarsen(300_000);
        for (a, b) in coarse.points.iter().zip(&run.points) {
            assert_eq!(
                (a.t, a.last, a.count, a.counter()),
                (b.t, b.last, b.count, b.counter())
            );
        }
    }

    #[test]
    fn steady_counter_costs_little_more_than_its_last_values() {
        let raw: Vec<(i64, f64)> = (0..20 * 2048)
            .map(|i| (i * 15_000, i as f64 * 3.0))
            .collect();
        let run = Run::from_samples(&raw, 300_000).unwrap();
        let chunks = encode_run(&run, AggregateSet::Counter);
        let bytes: usize = chunks.iter().map(|c| c.data.len()).sum();
        // 2048 windows: constant count, zero offsets, regular times.
        assert!(bytes < 120, "{bytes} bytes");
        let back = decode_chunk(&chunks[0].data).unwrap();
        assert_eq!(
            Column::from_run(&back, Aggregate::Counter),
            Column::from_run(&run, Aggregate::Counter)
        );
    }

    /// A gauge printed with two decimals, as scrapes and imports give it.
    fn decimal_gauge() -> Vec<(i64, f64)> {
        let mut x: u64 = 7;
        (0..20_000)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (x >> 40) as f64 / (1u64 << 24) as f64 * 8.0 - 4.0;
                let v = 50.0 + 20.0 * (i as f64 / 300.0).sin() + noise;
                let text = format!("{v:.2}");
                (i * 15_000, text.parse::<f64>().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_gauges_sum_is_its_exact_decimal_sum_and_compresses() {
        let raw = decimal_gauge();
        let run = Run::from_samples(&raw, 300_000).unwrap();
        assert_eq!(
            aggregate_set(Some("temperature"), &run),
            AggregateSet::Gauge
        );
        assert_eq!(
            aggregate_set(Some("requests_total"), &run),
            AggregateSet::Counter
        );
        let v1: usize = encode_run_v1(&run).iter().map(|c| c.data.len()).sum();
        let v2: usize = encode_run(&run, AggregateSet::Gauge)
            .iter()
            .map(|c| c.data.len())
            .sum();
        // No counter column, and sums in the decimal layout.
        assert!(2 * v2 < v1, "v1 {v1} bytes, v2 {v2}");
        let back = join(&encode_run(&run, AggregateSet::Gauge));
        assert_eq!(back.points.len(), run.points.len());
        for (i, (a, b)) in back.points.iter().zip(&run.points).enumerate() {
            assert_eq!(a.kept, Kept::Gauge);
            assert_eq!((a.t, a.count, a.min, a.max), (b.t, b.count, b.min, b.max));
            // The exact decimal sum: within the float addition's error.
            assert!(
                (a.sum - b.sum).abs() <= b.count * 1e-15 * b.sum.abs(),
                "{i}"
            );
            let cents: i64 = raw
                .iter()
                .filter(|s| s.0.div_euclid(300_000) == b.t.div_euclid(300_000))
                .map(|s| (s.1 * 100.0).round() as i64)
                .sum();
            assert_eq!(a.sum, cents as f64 / 100.0, "{i}");
            // A gauge keeps its window's last value.
            assert_eq!(a.last.to_bits(), b.last.to_bits(), "{i}");
            assert_eq!(a.value(Aggregate::Last).to_bits(), b.last.to_bits());
            assert_eq!(a.offset, 0.0);
        }
        // So does the column read straight from the chunks.
        let mut last: Option<Column> = None;
        for chunk in encode_run(&run, AggregateSet::Gauge) {
            let part = decode_chunk_column(&chunk.data, Aggregate::Last)
                .unwrap()
                .unwrap();
            match last.as_mut() {
                Some(l) => l.append(part),
                None => last = Some(part),
            }
        }
        assert_eq!(last, Column::from_run(&run, Aggregate::Last));
        assert_eq!(Column::from_run(&back, Aggregate::Counter), None);
        assert_eq!(Column::from_run(&back, Aggregate::Resets), None);
        // Coarsening the decoded gauge keeps it exact.
        let coarse = back.coarsen(3_600_000);
        let direct = Run::from_samples(&raw, 3_600_000).unwrap();
        for (a, b) in coarse.points.iter().zip(&direct.points) {
            assert_eq!((a.t, a.count, a.min, a.max), (b.t, b.count, b.min, b.max));
            assert_eq!(
                round_sum(a.sum, a.count, a.decimals),
                round_sum(b.sum, b.count, b.decimals)
            );
        }
        // Values that are not short decimals are summed as they are.
        assert_eq!(decimals(1.0 / 3.0), UNKNOWN_DECIMALS);
        assert_eq!(round_sum(1.0 / 3.0, 1.0, UNKNOWN_DECIMALS), 1.0 / 3.0);
        assert_eq!(decimals(12.5), 1);
        assert_eq!(decimals(-3.0), 0);
    }

    #[test]
    fn gauge_chunks_without_a_last_value_still_read_as_the_mean() {
        // Chunks of kind 2, as written before gauges kept their last
        // value: points read from them are written back the same way.
        let raw = decimal_gauge();
        let mut run = Run::from_samples(&raw, 300_000).unwrap();
        for p in &mut run.points {
            p.kept = Kept::GaugeMean;
        }
        let chunks = encode_run(&run, AggregateSet::Gauge);
        assert!(chunks.iter().all(|c| c.data[1] == KIND_GAUGE_MEAN));
        let back = join(&chunks);
        for (a, b) in back.points.iter().zip(&run.points) {
            assert_eq!(a.kept, Kept::GaugeMean);
            assert_eq!(a.last, a.sum / a.count);
            assert_eq!(a.value(Aggregate::Last), a.sum / a.count);
            assert_eq!((a.t, a.count, a.min, a.max), (b.t, b.count, b.min, b.max));
        }
        let column = decode_chunk_column(&chunks[0].data, Aggregate::Last)
            .unwrap()
            .unwrap();
        for (pair, p) in column.pairs.iter().zip(&back.points) {
            assert_eq!(*pair, (p.t, p.sum / p.count));
        }
        // A coarser window combining both kinds of gauge points has no
        // last value of its own either.
        let new = join(&encode_run(
            &Run::from_samples(&raw, 300_000).unwrap(),
            AggregateSet::Gauge,
        ));
        let mut mixed = Run {
            first: back.first,
            points: back.points[..6].to_vec(),
        };
        mixed.points.extend_from_slice(&new.points[6..12]);
        let coarse = mixed.coarsen(3_600_000);
        assert_eq!(coarse.points[0].kept, Kept::GaugeMean);
        let rewritten = encode_run(&coarse, AggregateSet::Gauge);
        assert_eq!(rewritten[0].data[1], KIND_GAUGE_MEAN);
        // Its mean stands in for the last value, but not where the last
        // value itself is asked for.
        let (older, newer) = (
            &chunks[0].data,
            &encode_run(&new, AggregateSet::Gauge)[0].data,
        );
        assert!(chunk_keeps(older, Aggregate::Last, false).unwrap());
        assert!(!chunk_keeps(older, Aggregate::Last, true).unwrap());
        assert!(chunk_keeps(older, Aggregate::Max, true).unwrap());
        assert!(chunk_keeps(newer, Aggregate::Last, true).unwrap());
        assert!(!Kept::GaugeMean.holds(Aggregate::Last));
        assert!(Kept::Gauge.holds(Aggregate::Last));
    }

    #[test]
    fn a_window_of_a_counters_and_a_gauges_points_keeps_its_count() {
        let raw: Vec<(i64, f64)> = (0..240).map(|i| (i * 15_000, i as f64)).collect();
        let (a, b) = raw.split_at(120);
        let counter = join(&encode_run(
            &Run::from_samples(a, 60_000).unwrap(),
            AggregateSet::Counter,
        ));
        let gauge = join(&encode_run(
            &Run::from_samples(b, 60_000).unwrap(),
            AggregateSet::Gauge,
        ));
        let mut run = counter;
        run.append(gauge);
        // 30 s into a 3600 s window: both halves in one window.
        let coarse = run.coarsen(3_600_000);
        assert_eq!(coarse.points.len(), 1);
        assert_eq!(coarse.points[0].kept, Kept::Count);
        let chunks = encode_run(&coarse, AggregateSet::Gauge);
        let back = join(&chunks);
        assert_eq!(back.points[0].count, 240.0);
        assert_eq!(back.points[0].kept, Kept::Count);
        for aggregate in AGGREGATES {
            let column = decode_chunk_column(&chunks[0].data, aggregate).unwrap();
            assert_eq!(
                column.is_some(),
                aggregate == Aggregate::Count,
                "{aggregate:?}"
            );
            assert_eq!(column, Column::from_run(&back, aggregate));
        }
        let mut cut = chunks[0].data.clone();
        cut.pop();
        assert!(decode_chunk(&cut).is_err());
    }

    #[test]
    fn aggregate_sets_drop_only_what_is_certain() {
        let run = |samples: &[(i64, f64)]| Run::from_samples(samples, 1).unwrap();
        let steps =
            |f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> { (0..200).map(|i| (i, f(i))).collect() };
        // Falling, or noisy: no counter.
        assert_eq!(
            aggregate_set(None, &run(&steps(&|i| -(i as f64)))),
            AggregateSet::Gauge
        );
        assert_eq!(
            aggregate_set(None, &run(&steps(&|i| (i * 37 % 11) as f64))),
            AggregateSet::Gauge
        );
        // A sawtooth falling once in 7 windows could be a counter that
        // resets often: every aggregate.
        assert_eq!(
            aggregate_set(None, &run(&steps(&|i| (i % 7) as f64))),
            AggregateSet::All
        );
        // Rising with a rare reset (a counter without the suffix, or a
        // gauge trending up), constant (an idle counter, `up`), or too
        // few windows to judge: every aggregate.
        assert_eq!(
            aggregate_set(None, &run(&steps(&|i| (i % 150) as f64))),
            AggregateSet::All
        );
        assert_eq!(
            aggregate_set(None, &run(&steps(&|_| 1.0))),
            AggregateSet::All
        );
        let short: Vec<(i64, f64)> = (0..5).map(|i| (i, (i % 2) as f64)).collect();
        assert_eq!(aggregate_set(None, &run(&short)), AggregateSet::All);
        // The name decides first.
        assert_eq!(
            aggregate_set(Some("x_bucket"), &run(&steps(&|_| 1.0))),
            AggregateSet::Counter
        );
        // Every aggregate survives an `All` encoding.
        let rising = run(&steps(&|i| (i % 150) as f64));
        assert_eq!(join(&encode_run(&rising, AggregateSet::All)), rising);
    }

    const AGGREGATES: [Aggregate; 8] = [
        Aggregate::Last,
        Aggregate::Count,
        Aggregate::Sum,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Counter,
        Aggregate::Resets,
        Aggregate::SumCount,
    ];

    fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
        samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
    }

    /// A gauge with noise (stored sum, min and max columns) and a counter
    /// with resets (implied columns, sparse offsets).
    fn mixed_runs() -> Vec<Run> {
        let gauge: Vec<(i64, f64)> = (0..20_000)
            .map(|i| (i * 15_000, ((i * 7919) % 113) as f64 / 3.0 - 10.0))
            .collect();
        let mut v = 0.0;
        let counter: Vec<(i64, f64)> = (0..20_000)
            .map(|i| {
                v = if i % 1301 == 1300 { 1.0 } else { v + 2.5 };
                (i * 15_000, v)
            })
            .collect();
        vec![
            Run::from_samples(&counter, 60_000).unwrap(),
            Run::from_samples(&gauge, 60_000).unwrap(),
            Run::from_samples(&decimal_gauge(), 60_000).unwrap(),
            // One sample a window: min and max "same as" the sum.
            Run::from_samples(&decimal_gauge()[..6000], 15_000).unwrap(),
        ]
    }

    #[test]
    fn following_columns_give_the_joined_columns_samples() {
        for run in mixed_runs() {
            // Pieces cut at a reset and elsewhere, as blocks would be.
            let n = run.points.len();
            let cuts = [0, 7, n / 3, n / 3 + 1, n / 2, n - 5, n];
            for aggregate in AGGREGATES {
                let pieces: Vec<Column> = cuts
                    .windows(2)
                    .filter(|w| w[0] < w[1])
                    .filter_map(|w| {
                        let (a, b) = (run.points[w[0]].t, run.points[w[1] - 1].t);
                        Column::from_run(&run.clip(a, b)?, aggregate)
                    })
                    .collect();
                if pieces.is_empty() {
                    continue;
                }
                let mut joined = pieces[0].clone();
                for p in &pieces[1..] {
                    joined.append(p.clone());
                }
                let want = joined.into_samples(aggregate);
                let mut got = Vec::new();
                let mut before: Option<(f64, f64)> = None;
                for mut p in pieces {
                    if let Some(end) = before {
                        p.follow(end);
                    }
                    let flag = before.map_or(0.0, |e| e.1);
                    before = p.end();
                    got.extend(p.into_samples_after(aggregate, flag));
                }
                assert_eq!(bits(&got), bits(&want), "{aggregate:?}");
            }
        }
    }

    /// Each run as version 1 chunks and encoded keeping each set.
    fn encodings(run: &Run) -> Vec<Vec<ChunkMeta>> {
        // Gauge chunks of kind 2 (no last value), as written before kind 4.
        let mut older = run.clone();
        for p in &mut older.points {
            p.kept = Kept::GaugeMean;
        }
        vec![
            encode_run_v1(run),
            encode_run(run, AggregateSet::Counter),
            encode_run(run, AggregateSet::Gauge),
            encode_run(run, AggregateSet::All),
            encode_run(&older, AggregateSet::Gauge),
        ]
    }

    #[test]
    fn column_decode_equals_the_full_decode_for_every_aggregate() {
        for run in mixed_runs() {
            for chunks in encodings(&run) {
                assert!(chunks.len() > 1);
                for aggregate in AGGREGATES {
                    let mut full: Option<Run> = None;
                    let mut direct: Option<Column> = None;
                    let mut kept = true;
                    for chunk in &chunks {
                        let part = decode_chunk(&chunk.data).unwrap();
                        let column = decode_chunk_column(&chunk.data, aggregate).unwrap();
                        assert_eq!(column, Column::from_run(&part, aggregate), "{aggregate:?}");
                        match full.as_mut() {
                            Some(f) => f.append(part),
                            None => full = Some(part),
                        }
                        let Some(column) = column else {
                            kept = false;
                            continue;
                        };
                        match direct.as_mut() {
                            Some(d) => d.append(column),
                            None => direct = Some(column),
                        }
                    }
                    if !kept {
                        continue;
                    }
                    let (full, direct) = (full.unwrap(), direct.unwrap());
                    assert_eq!(Some(&direct), Column::from_run(&full, aggregate).as_ref());
                    // Clipping anywhere keeps the same values (counter
                    // offsets re-based the same way).
                    let times: Vec<i64> = full.points.iter().map(|p| p.t).collect();
                    for (a, b) in [
                        (0, times.len() - 1),
                        (1, 40),
                        (37, 38),
                        (100, times.len() - 2),
                    ] {
                        let (mint, maxt) = (times[a], times[b]);
                        let run = full.clone().into_clip(mint, maxt).unwrap();
                        let column = direct.clone().into_clip(mint, maxt).unwrap();
                        let from_run = Column::from_run(&run, aggregate).unwrap();
                        assert_eq!(column, from_run);
                        let expected: Vec<(i64, f64)> = match aggregate {
                            Aggregate::Resets => run.reset_flags().collect(),
                            Aggregate::Counter => {
                                run.points.iter().map(|p| (p.t, p.counter())).collect()
                            }
                            Aggregate::SumCount => run
                                .points
                                .iter()
                                .flat_map(|p| [(p.t, p.sum), (p.t, p.count)])
                                .collect(),
                            _ => from_run.pairs,
                        };
                        assert_eq!(bits(&column.into_samples(aggregate)), bits(&expected));
                    }
                    assert!(
                        direct
                            .clone()
                            .into_clip(times[5] + 1, times[6] - 1)
                            .is_none()
                    );
                }
            }
        }
    }

    fn sample_chunks() -> Vec<Vec<u8>> {
        let counter = Run::from_samples(&counter_with_resets(), 300_000).unwrap();
        let gauge = Run::from_samples(&decimal_gauge()[..1000], 300_000).unwrap();
        vec![
            encode_run_v1(&counter)[0].data.clone(),
            encode_run(&counter, AggregateSet::Counter)[0].data.clone(),
            encode_run(&gauge, AggregateSet::Gauge)[0].data.clone(),
        ]
    }

    #[test]
    fn column_decode_refuses_corrupt_chunks() {
        for data in sample_chunks() {
            for aggregate in AGGREGATES {
                for cut in 0..data.len() {
                    assert!(decode_chunk_column(&data[..cut], aggregate).is_err());
                }
                let mut extra = data.clone();
                extra.push(0);
                assert!(decode_chunk_column(&extra, aggregate).is_err());
            }
        }
    }

    #[test]
    fn corrupt_chunks_are_errors_not_panics() {
        for data in sample_chunks() {
            for cut in 0..data.len() {
                assert!(decode_chunk(&data[..cut]).is_err());
            }
            let mut extra = data.clone();
            extra.push(0);
            assert!(decode_chunk(&extra).is_err());
            let mut kind = data.clone();
            if kind[0] == VERSION_2 {
                kind[1] = 9;
                assert!(decode_chunk(&kind).is_err());
            }
        }
    }
}
