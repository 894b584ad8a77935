//! The storage contract.
//!
//! Writers take an [`Appender`] from an [`Appendable`], stage samples, and
//! [`Appender::commit`] them. A commit that returns `Ok` is durable: the
//! samples survive a crash of the process (they are in the write-ahead log
//! and fsynced). A commit is all or nothing: on error nothing of it is
//! visible, now or after a restart.
//!
//! Readers take a [`Querier`] for a time range from a [`Queryable`] and
//! select series by matchers. A [`SeriesSet`] yields series sorted by label
//! set, each with its samples in time order within the querier's range
//! (both ends inclusive), one sample per timestamp.

use std::collections::HashMap;

use crate::exemplar::{Exemplar, ExemplarCounters, ExemplarSeries};
use crate::histogram::{FloatHistogram, Histogram};
use crate::{Labels, Matcher};

/// What went wrong in storage. `kind` says how a caller should react.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    kind: StorageErrorKind,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The input cannot be stored (bad labels, bad timestamp); the caller's fault.
    InvalidInput,
    /// The store is closed or shutting down.
    Closed,
    /// Disk, file or corruption trouble; the server's fault.
    Io,
    /// A resource limit was hit (series, samples, memory); the same write
    /// will fail again until an operator acts.
    Limit,
    /// A rate limit was hit (new series per minute): the same write may
    /// succeed a little later.
    RateLimit,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> StorageError {
        StorageError {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// One series of a [`PairsBatch`]: its label pairs and its samples.
pub type BatchSeries<'a, 'b> = (&'b [(&'a str, &'a str)], &'b [(i64, f64)]);

/// Series for [`Appender::append_pairs_batch`]: each one's label pairs
/// (as [`Appender::append_pairs`] takes them) and float samples, kept in
/// flat vectors that a caller clears and reuses.
#[derive(Debug, Default)]
pub struct PairsBatch<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    samples: Vec<(i64, f64)>,
    /// Each series' end in `pairs` and in `samples`.
    ends: Vec<(usize, usize)>,
}

impl<'a> PairsBatch<'a> {
    pub fn push(&mut self, pairs: &[(&'a str, &'a str)], samples: &[(i64, f64)]) {
        self.pairs.extend_from_slice(pairs);
        self.samples.extend_from_slice(samples);
        self.ends.push((self.pairs.len(), self.samples.len()));
    }

    /// The number of series.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The number of samples, all series together.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    pub fn clear(&mut self) {
        self.pairs.clear();
        self.samples.clear();
        self.ends.clear();
    }

    /// A batch that writes into `space`'s vectors, so that a caller
    /// staging one request after another (each with its own lifetime)
    /// reuses their capacity instead of growing new ones every time.
    pub fn with_space(space: PairsBatchSpace) -> PairsBatch<'a> {
        PairsBatch {
            pairs: recycle_pairs(space.pairs),
            samples: space.samples,
            ends: space.ends,
        }
    }

    /// The batch's vectors, emptied, for [`PairsBatch::with_space`].
    pub fn into_space(mut self) -> PairsBatchSpace {
        self.clear();
        PairsBatchSpace {
            pairs: recycle_pairs(self.pairs),
            samples: self.samples,
            ends: self.ends,
        }
    }

    /// Each series' label pairs and samples, in the order pushed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = BatchSeries<'a, '_>> {
        (0..self.ends.len()).map(|index| {
            let (p0, s0) = index
                .checked_sub(1)
                .map_or((0, 0), |before| self.ends[before]);
            let (p1, s1) = self.ends[index];
            (&self.pairs[p0..p1], &self.samples[s0..s1])
        })
    }
}

/// A [`PairsBatch`]'s vectors, empty, free of the lifetime of the request
/// the batch borrowed from.
#[derive(Debug, Default)]
pub struct PairsBatchSpace {
    pairs: Vec<(&'static str, &'static str)>,
    samples: Vec<(i64, f64)>,
    ends: Vec<(usize, usize)>,
}

impl PairsBatchSpace {
    /// The bytes its vectors hold.
    pub fn capacity_bytes(&self) -> usize {
        self.pairs.capacity() * std::mem::size_of::<(&str, &str)>()
            + self.samples.capacity() * std::mem::size_of::<(i64, f64)>()
            + self.ends.capacity() * std::mem::size_of::<(usize, usize)>()
    }
}

/// An emptied vector of label pairs as one of another lifetime, keeping its
/// allocation: collecting a vector's own iterator mapped to a type of the
/// same size and alignment reuses the allocation in place.
fn recycle_pairs<'x, 'y>(mut pairs: Vec<(&'x str, &'x str)>) -> Vec<(&'y str, &'y str)> {
    pairs.clear();
    pairs.into_iter().map(|_| ("", "")).collect()
}

/// A source of appenders.
pub trait Appendable: Send + Sync {
    fn appender(&self) -> Box<dyn Appender + '_>;
}

/// An opaque reference to a stored series that an appender handed out, so
/// a caller appending to the same series again and again (a scrape loop)
/// can skip finding it by its labels. Only the store that made it
/// understands it.
///
/// A type-erased shared pointer ([`HandlePointer`]): two words, and a
/// clone is the pointer's own reference count increment, without an
/// allocation of its own. `Arc<dyn Any>` did the same for `std`'s `Arc`
/// alone; a store may keep its series behind a leaner pointer (tsdb's
/// records have no weak count).
pub struct SeriesHandle {
    pointer: std::ptr::NonNull<()>,
    vtable: &'static HandleVtable,
}

/// What a [`SeriesHandle`] knows of its pointer's type.
struct HandleVtable {
    /// The `TypeId` of the pointer type (not of its target).
    type_id: fn() -> std::any::TypeId,
    /// Adds a reference to the pointee.
    clone: unsafe fn(std::ptr::NonNull<()>),
    /// Drops a reference to the pointee.
    drop: unsafe fn(std::ptr::NonNull<()>),
}

/// A reference-counted pointer a store can hand out as a [`SeriesHandle`].
///
/// # Safety
/// `from_raw` must take back exactly what `into_raw` gave (one reference),
/// and the target must stay valid while that reference is held.
pub unsafe trait HandlePointer: Clone + Send + Sync + 'static {
    type Target: Send + Sync + 'static;
    /// Gives up the pointer without dropping its reference.
    fn into_raw(self) -> std::ptr::NonNull<Self::Target>;
    /// Takes back a reference that [`HandlePointer::into_raw`] gave up.
    ///
    /// # Safety
    /// `raw` came from `into_raw` and its reference was not taken back.
    unsafe fn from_raw(raw: std::ptr::NonNull<Self::Target>) -> Self;
}

// SAFETY: `Arc::into_raw` and `Arc::from_raw` round-trip one reference.
unsafe impl<T: Send + Sync + 'static> HandlePointer for std::sync::Arc<T> {
    type Target = T;

    fn into_raw(self) -> std::ptr::NonNull<T> {
        // SAFETY: an `Arc`'s pointer is never null.
        unsafe { std::ptr::NonNull::new_unchecked(std::sync::Arc::into_raw(self).cast_mut()) }
    }

    unsafe fn from_raw(raw: std::ptr::NonNull<T>) -> Self {
        // SAFETY: the caller passes what `into_raw` gave.
        unsafe { std::sync::Arc::from_raw(raw.as_ptr()) }
    }
}

// SAFETY: as for `std`'s `Arc`.
unsafe impl<T: Send + Sync + 'static> HandlePointer for triomphe::Arc<T> {
    type Target = T;

    fn into_raw(self) -> std::ptr::NonNull<T> {
        // SAFETY: an `Arc`'s pointer is never null.
        unsafe { std::ptr::NonNull::new_unchecked(triomphe::Arc::into_raw(self).cast_mut()) }
    }

    unsafe fn from_raw(raw: std::ptr::NonNull<T>) -> Self {
        // SAFETY: the caller passes what `into_raw` gave.
        unsafe { triomphe::Arc::from_raw(raw.as_ptr()) }
    }
}

/// The vtable of pointer type `P`, one static per type.
struct VtableOf<P>(std::marker::PhantomData<P>);

impl<P: HandlePointer> VtableOf<P> {
    const VTABLE: &'static HandleVtable = &HandleVtable {
        type_id: std::any::TypeId::of::<P>,
        clone: Self::clone_raw,
        drop: Self::drop_raw,
    };

    /// A new `P` (one more reference) to what `raw` points to.
    ///
    /// # Safety
    /// `raw` is a `P`'s pointer whose reference the caller holds.
    unsafe fn clone_of(raw: std::ptr::NonNull<()>) -> P {
        // SAFETY: as the caller promises; borrowed, not taken: the
        // `ManuallyDrop` keeps the caller's reference.
        P::clone(&std::mem::ManuallyDrop::new(unsafe {
            P::from_raw(raw.cast())
        }))
    }

    /// # Safety
    /// `raw` is a `P`'s pointer whose reference the caller holds.
    unsafe fn clone_raw(raw: std::ptr::NonNull<()>) {
        // SAFETY: as the caller promises; the new reference is given up
        // to the caller too.
        std::mem::forget(unsafe { Self::clone_of(raw) });
    }

    /// # Safety
    /// `raw` is a `P`'s pointer whose reference the caller gives up.
    unsafe fn drop_raw(raw: std::ptr::NonNull<()>) {
        // SAFETY: the caller's reference is taken back and dropped.
        drop(unsafe { P::from_raw(raw.cast()) });
    }
}

impl SeriesHandle {
    /// A handle on `pointer`'s target, keeping its reference.
    pub fn new<P: HandlePointer>(pointer: P) -> SeriesHandle {
        SeriesHandle {
            pointer: pointer.into_raw().cast(),
            vtable: VtableOf::<P>::VTABLE,
        }
    }

    /// Whether the handle was made from a `P`.
    fn is<P: HandlePointer>(&self) -> bool {
        (self.vtable.type_id)() == std::any::TypeId::of::<P>()
    }

    /// The target, if the handle was made from a `P`.
    pub fn downcast_ref<P: HandlePointer>(&self) -> Option<&P::Target> {
        // SAFETY: the handle holds a reference to a `P::Target` (its type
        // was checked), valid for as long as the handle is borrowed.
        self.is::<P>()
            .then(|| unsafe { self.pointer.cast::<P::Target>().as_ref() })
    }

    /// A new `P` to the target (a reference count increment), if the
    /// handle was made from a `P`.
    pub fn to_pointer<P: HandlePointer>(&self) -> Option<P> {
        // SAFETY: the handle's reference is a `P`'s (checked), held while
        // it is borrowed here.
        self.is::<P>()
            .then(|| unsafe { VtableOf::<P>::clone_of(self.pointer) })
    }
}

impl Clone for SeriesHandle {
    fn clone(&self) -> SeriesHandle {
        // SAFETY: the handle holds a reference of the vtable's type.
        unsafe { (self.vtable.clone)(self.pointer) };
        SeriesHandle {
            pointer: self.pointer,
            vtable: self.vtable,
        }
    }
}

impl Drop for SeriesHandle {
    fn drop(&mut self) {
        // SAFETY: the handle's own reference, given up once.
        unsafe { (self.vtable.drop)(self.pointer) };
    }
}

// SAFETY: every `HandlePointer` is `Send + Sync`, and so is its target.
unsafe impl Send for SeriesHandle {}
// SAFETY: as for `Send`; `&SeriesHandle` lends only `&Target`.
unsafe impl Sync for SeriesHandle {}

impl std::fmt::Debug for SeriesHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SeriesHandle").field(&self.pointer).finish()
    }
}

/// Stages samples and commits them atomically.
pub trait Appender: Send {
    /// Stages one float sample. Validates the labels; nothing becomes
    /// visible before `commit`.
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<()>;

    /// Stages one sample for the label set made of `pairs` (in any order;
    /// empty values are dropped; on a duplicate name the last pair wins, so
    /// callers that must reject duplicates check first). Implementations
    /// may skip building a [`Labels`] when the series already exists; this
    /// is the ingest hot path.
    fn append_pairs(&mut self, pairs: &[(&str, &str)], t: i64, v: f64) -> Result<()> {
        self.append(&Labels::from_pairs(pairs.iter().copied()), t, v)
    }

    /// Stages every sample of every series in `batch`, as
    /// [`Appender::append_pairs`] would one by one and in the same order,
    /// and calls `refused(series, error)` for each sample it could not
    /// stage (`series` is the series' position in the batch); an `Err`
    /// from `refused` stops the batch and is returned. Stores may find
    /// the whole batch's series together: the head locks each of its
    /// shards once per batch instead of once per series.
    fn append_pairs_batch(
        &mut self,
        batch: &PairsBatch<'_>,
        refused: &mut dyn FnMut(usize, StorageError) -> Result<()>,
    ) -> Result<()> {
        for (index, (pairs, samples)) in batch.iter().enumerate() {
            for &(t, v) in samples {
                if let Err(e) = self.append_pairs(pairs, t, v) {
                    refused(index, e)?;
                }
            }
        }
        Ok(())
    }

    /// Like [`Appender::append`], and returns a handle for the series when
    /// the store has them (see [`SeriesHandle`]).
    fn append_with_handle(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<Option<SeriesHandle>> {
        self.append(labels, t, v).map(|()| None)
    }

    /// Stages one sample for the series of `handle`. `Ok(false)` stages
    /// nothing: the handle is not this store's or its series is gone (the
    /// store dropped it while it had no data); the caller appends by
    /// labels instead.
    fn append_handle(&mut self, handle: &SeriesHandle, t: i64, v: f64) -> Result<bool> {
        let _ = (handle, t, v);
        Ok(false)
    }

    /// A hint that about `additional` more samples will be staged, so the
    /// appender can size its buffers once. By default nothing.
    fn reserve(&mut self, additional: usize) {
        let _ = additional;
    }

    /// A hint that `handle` will be appended to soon: the store may start
    /// loading what that touches into the processor's caches, so that the
    /// append does not wait for memory. A scrape loop, which knows which
    /// series come next, calls it a few samples ahead. By default nothing.
    fn prefetch_handle(&self, handle: &SeriesHandle) {
        let _ = handle;
    }

    /// Makes everything staged durable and visible. After `Ok` the samples
    /// survive `kill -9`. The appender is empty again afterwards.
    fn commit(&mut self) -> Result<()>;

    /// Like [`Appender::commit`], but the samples may reach stable storage
    /// (surviving a power loss) a little after this returns: the store
    /// says how late. After `Ok` they survive `kill -9` all the same. For
    /// writers that acknowledge the samples to no one, such as a scrape
    /// loop. By default this is `commit`.
    fn commit_unsynced(&mut self) -> Result<()> {
        self.commit()
    }

    /// Drops everything staged.
    fn rollback(&mut self);

    /// Names the writer, so the store applies its series limits
    /// (`crate::limits`): call it before the first append. By default
    /// nothing; wrappers pass it on.
    fn set_origin(&mut self, origin: &crate::limits::WriteOrigin) {
        let _ = origin;
    }

    /// Stages one exemplar of the series `labels`, which must exist in the
    /// store (a sample of it staged in this appender, or stored before),
    /// as Prometheus's `AppendExemplar` requires. It is stored with the
    /// commit. A duplicate of the series' newest exemplar is dropped with
    /// `Ok` (`Exemplar::same_as`); an exemplar over the label length limit,
    /// not newer than the series' newest, or of an unknown series is an
    /// `InvalidInput` error with Prometheus's message, which writers log
    /// and carry on from (an exemplar never fails its samples). By default
    /// exemplars are dropped: a store without exemplar storage, or with it
    /// sized 0, accepts and forgets them.
    fn append_exemplar(&mut self, labels: &Labels, exemplar: Exemplar) -> Result<()> {
        let _ = (labels, exemplar);
        Ok(())
    }

    /// Stages one native histogram sample (a float histogram; integer ones
    /// go through [`Appender::append_int_histogram`]). The histogram must
    /// be valid ([`FloatHistogram::validate`]); a store checks it again.
    /// A series holds floats and histograms one after the other, never two
    /// samples at one timestamp. By default an `InvalidInput` error: the
    /// store keeps no histograms.
    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: i64,
        histogram: &FloatHistogram,
    ) -> Result<()> {
        let _ = (labels, t, histogram);
        Err(StorageError::new(
            StorageErrorKind::InvalidInput,
            "native histograms not supported",
        ))
    }

    /// Stages a zero sample at `created` for the series `labels`, ahead
    /// of its sample at `t`: a counter's (or summary's, or classic
    /// histogram series') created timestamp kept as Prometheus keeps it
    /// with `--enable-feature=created-timestamp-zero-ingestion`
    /// (`AppendCTZeroSample`). Call it before staging the sample at `t`.
    ///
    /// `Ok(true)` when staged; `Ok(false)` when skipped, which is no
    /// error: `created` is not before `t`, or not after the series'
    /// newest stored sample (a long-lived counter sends the same created
    /// timestamp with every sample, so this is the common case), or
    /// older than what the store still takes in order. The zero sample
    /// is never stored out of order. By default nothing is staged (a
    /// store that cannot tell a series' newest sample drops created
    /// timestamps).
    fn append_created_zero(&mut self, labels: &Labels, t: i64, created: i64) -> Result<bool> {
        let _ = (labels, t, created);
        Ok(false)
    }

    /// [`Appender::append_created_zero`] for a native histogram series:
    /// the zero sample is an empty histogram with the schema, zero
    /// threshold and custom bounds of `like` (the sample at `t`), hinted
    /// as a counter reset, as Prometheus's `AppendHistogramCTZeroSample`
    /// writes it. By default nothing is staged.
    fn append_histogram_created_zero(
        &mut self,
        labels: &Labels,
        t: i64,
        created: i64,
        like: &FloatHistogram,
    ) -> Result<bool> {
        let _ = (labels, t, created, like);
        Ok(false)
    }

    /// Validates an integer histogram with Prometheus's rules and stages
    /// it as [`Appender::append_histogram`] does, converted to floats
    /// (exact for counts below 2^53).
    fn append_int_histogram(
        &mut self,
        labels: &Labels,
        t: i64,
        histogram: &Histogram,
    ) -> Result<()> {
        histogram
            .validate()
            .map_err(|e| StorageError::new(StorageErrorKind::InvalidInput, e.to_string()))?;
        self.append_histogram(labels, t, &histogram.to_float())
    }
}

/// A source of queriers.
pub trait Queryable: Send + Sync {
    /// A querier over `[mint, maxt]` (milliseconds, inclusive).
    fn querier(&self, mint: i64, maxt: i64) -> Result<Box<dyn Querier>>;
}

/// Reads one time range. Holds what it needs alive until dropped.
pub trait Querier: Send {
    /// The series matching all matchers that have at least one sample in
    /// range, sorted by label set. At least one matcher must not match the
    /// empty string (as in Prometheus); otherwise this is an error.
    fn select(&self, matchers: &[Matcher]) -> Result<SeriesSet>;

    /// Like [`Querier::select`], but each series yields only its newest
    /// sample in range. An instant selector needs no more, and a store can
    /// often answer it without decoding anything.
    fn select_latest(&self, matchers: &[Matcher]) -> Result<SeriesSet> {
        let set = self.select(matchers)?;
        Ok(Box::new(set.map(|s| {
            s.map(|s| {
                let float = s.samples.last();
                let histogram = s.histograms.last();
                match (float, histogram) {
                    (Some(f), Some(h)) if h.0 > f.0 => {
                        Series::histograms(s.labels, Box::new(std::iter::once(h)))
                    }
                    (Some(f), _) => Series::floats(s.labels, SampleIter::from_vec(vec![f])),
                    (None, h) => Series::histograms(s.labels, Box::new(h.into_iter())),
                }
            })
        })))
    }

    /// Like [`Querier::select`], with what the samples are for, so a store
    /// that keeps downsampled tiers can answer from one (Prometheus's
    /// `SelectHints`). The answer says which resolution it used: 0 means
    /// plain samples, as `select` gives; above 0, each sample stands for a
    /// window of that many milliseconds and holds the aggregate
    /// `hints.aggregate` names (see [`Aggregate`]). Stores without tiers
    /// keep this default.
    fn select_hinted(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<HintedSet> {
        let _ = hints;
        Ok(HintedSet {
            resolution_ms: 0,
            series: self.select(matchers)?,
        })
    }

    /// Label names of the series matching `matchers` (all series when
    /// empty), sorted and unique.
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>>;

    /// Values of label `name` over the series matching `matchers` (all
    /// series when empty), sorted and unique.
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>>;
}

/// What a selection is for: the hint [`Querier::select_hinted`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectHints {
    /// The evaluation step in ms; 0 for a single evaluation time.
    pub step_ms: i64,
    /// The range of a range selector in ms; 0 for an instant selector.
    pub range_ms: i64,
    /// What the function reads from each window.
    pub aggregate: Aggregate,
    /// The coarsest resolution the caller accepts, in ms (Thanos's
    /// `max_source_resolution`): `Some(0)` for raw data only, `None` to let
    /// the store choose from the step and range.
    pub max_resolution_ms: Option<i64>,
    /// The largest duration in ms that divides the range and every
    /// reference time (window end) of the selection; 0 when unknown or
    /// for an instant selector. A tier whose resolution divides it has
    /// windows that tile every range exactly: a store may then answer from
    /// a tier as coarse as the range, and for [`Aggregate::Counter`] and
    /// [`Aggregate::Resets`] it also hands out each series' last point
    /// before the selection's start (the window before it), where a rate
    /// starts (`docs/configuration.md`, `storage.tiers`).
    pub align_ms: i64,
}

impl SelectHints {
    /// Whether a tier of resolution `r` has windows that tile each range
    /// of the selection exactly: `r` divides the range and every reference
    /// time ([`SelectHints::align_ms`]) and is not above the range nor the
    /// step. Each step's range `(T - w, T]` then has the windows of
    /// `[T - w, T)`, which a reader takes instead (one millisecond
    /// earlier), so the tier may be as coarse as the range.
    ///
    /// A plain selector over several steps (no range, [`Aggregate::Last`])
    /// reads at each step `T` the last point of the windows before it; its
    /// range is the step: a tier whose resolution divides the step and
    /// every step time gives the last sample before `T`, in whatever tier,
    /// since a window point is stamped with its last sample's time.
    pub fn aligned(&self, r: i64) -> bool {
        let range = if self.range_ms == 0 && self.aggregate == Aggregate::Last {
            self.step_ms
        } else {
            self.range_ms
        };
        r > 0
            && self.align_ms > 0
            && range >= r
            && self.align_ms % r == 0
            && (self.step_ms <= 1 || self.step_ms >= r)
    }

    /// How far before the selection's start an aligned read at resolution
    /// `r` reaches: the start of the first range's first window (1 ms),
    /// and for [`Aggregate::Counter`] and [`Aggregate::Resets`] the window
    /// before it too, whose last point a rate starts from.
    pub fn aligned_reach(&self, r: i64) -> i64 {
        match self.aggregate {
            Aggregate::Counter | Aggregate::Resets => r,
            _ => 1,
        }
    }
}

/// The value a downsampled sample carries for its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// The window's last value (plain selectors, `last_over_time`).
    Last,
    /// The number of raw samples; a reader sums these where it would count.
    Count,
    /// The sum of the raw values (`sum_over_time`, `avg_over_time`).
    Sum,
    /// The smallest value (`min_over_time`).
    Min,
    /// The largest value (`max_over_time`).
    Max,
    /// The counter, adjusted for resets, at the window's last sample:
    /// increasing across resets (`rate`, `increase`, `irate`).
    Counter,
    /// 1 when the window holds a counter reset, else 0; a reader sums these
    /// (`resets`).
    Resets,
    /// The sum and then the count of each window: two samples with the
    /// window's timestamp (`avg_over_time` reads both in one select).
    SumCount,
}

/// The answer of [`Querier::select_hinted`].
pub struct HintedSet {
    /// 0 for raw samples; otherwise the window length of the tier used.
    pub resolution_ms: i64,
    pub series: SeriesSet,
}

/// A stream of series.
pub type SeriesSet = Box<dyn Iterator<Item = Result<Series>> + Send>;

/// One series: its labels and its samples in time order. A series may
/// hold float samples and native histogram samples (Prometheus lets a
/// series switch from one to the other); they come as two iterators,
/// each ascending, with no timestamp in both. A reader that wants one
/// stream merges them by timestamp; one that cannot use histograms yet
/// drops `histograms` on purpose.
pub struct Series {
    pub labels: Labels,
    pub samples: SampleIter,
    pub histograms: HistogramIter,
}

impl Series {
    /// A series of float samples only.
    pub fn floats(labels: Labels, samples: SampleIter) -> Series {
        Series {
            labels,
            samples,
            histograms: Box::new(std::iter::empty()),
        }
    }

    /// A series of histogram samples only.
    pub fn histograms(labels: Labels, histograms: HistogramIter) -> Series {
        Series {
            labels,
            samples: SampleIter::empty(),
            histograms,
        }
    }
}

/// Samples of one series, ascending by timestamp, one per timestamp.
///
/// A store that has its samples decoded in memory hands them out as
/// columns ([`SampleIter::from_vec`], [`SampleIter::from_runs`]): a reader
/// takes them whole, with [`SampleIter::into_vec`] (the store's own vector
/// when there is one run) or [`SampleIter::append_to`] (one copy per run
/// into a buffer the reader reuses), and never pays a call per sample.
/// A source that produces samples one at a time wraps its iterator
/// ([`SampleIter::from_stream`]). Either way it is also an iterator, for
/// readers that want one sample at a time.
pub struct SampleIter {
    source: SampleSource,
}

enum SampleSource {
    /// Runs in time order, each ascending, the first one partly taken:
    /// `current` is what is left of it. `remaining` counts what is left of
    /// all of them.
    Runs {
        current: std::vec::IntoIter<(i64, f64)>,
        rest: std::vec::IntoIter<Vec<(i64, f64)>>,
        remaining: usize,
    },
    Stream(Box<dyn Iterator<Item = (i64, f64)> + Send>),
}

impl SampleIter {
    /// No samples.
    pub fn empty() -> SampleIter {
        SampleIter::from_vec(Vec::new())
    }

    /// One column of samples, ascending.
    pub fn from_vec(samples: Vec<(i64, f64)>) -> SampleIter {
        SampleIter {
            source: SampleSource::Runs {
                remaining: samples.len(),
                current: samples.into_iter(),
                rest: Vec::new().into_iter(),
            },
        }
    }

    /// Columns one after another: each ascending, each after the one
    /// before it.
    pub fn from_runs(runs: Vec<Vec<(i64, f64)>>) -> SampleIter {
        let remaining = runs.iter().map(Vec::len).sum();
        SampleIter {
            source: SampleSource::Runs {
                current: Vec::new().into_iter(),
                rest: runs.into_iter(),
                remaining,
            },
        }
    }

    /// Samples produced one at a time.
    pub fn from_stream(samples: impl Iterator<Item = (i64, f64)> + Send + 'static) -> SampleIter {
        SampleIter {
            source: SampleSource::Stream(Box::new(samples)),
        }
    }

    /// Whether the samples are held as columns (no call per sample).
    pub fn is_columnar(&self) -> bool {
        matches!(self.source, SampleSource::Runs { .. })
    }

    /// Whether [`SampleIter::into_vec`] hands back the store's own vector
    /// rather than a new one: the samples left are one column (or none).
    pub fn is_single_column(&self) -> bool {
        match &self.source {
            SampleSource::Runs { current, rest, .. } => {
                rest.len() + usize::from(current.len() > 0) <= 1
            }
            SampleSource::Stream(_) => false,
        }
    }

    /// Every sample left, in one vector: a lone column's own vector
    /// (nothing copied), runs copied one slice at a time.
    pub fn into_vec(self) -> Vec<(i64, f64)> {
        match self.source {
            SampleSource::Runs {
                current,
                mut rest,
                remaining,
            } => {
                if current.len() == 0 && rest.len() == 1 {
                    return rest.next().unwrap_or_default();
                }
                if rest.len() == 0 {
                    // `collect` from a vector's own iterator keeps its
                    // allocation.
                    return current.collect();
                }
                let mut out = Vec::with_capacity(remaining);
                out.extend_from_slice(current.as_slice());
                for run in rest {
                    out.extend_from_slice(&run);
                }
                out
            }
            SampleSource::Stream(samples) => samples.collect(),
        }
    }

    /// Appends every sample left to `out`: one copy per column, or one
    /// push per sample of a stream.
    pub fn append_to(self, out: &mut Vec<(i64, f64)>) {
        match self.source {
            SampleSource::Runs {
                current,
                rest,
                remaining,
            } => {
                out.reserve(remaining);
                out.extend_from_slice(current.as_slice());
                for run in rest {
                    out.extend_from_slice(&run);
                }
            }
            SampleSource::Stream(samples) => out.extend(samples),
        }
    }
}

impl Iterator for SampleIter {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        match &mut self.source {
            SampleSource::Runs {
                current,
                rest,
                remaining,
            } => loop {
                if let Some(sample) = current.next() {
                    *remaining -= 1;
                    return Some(sample);
                }
                *current = rest.next()?.into_iter();
            },
            SampleSource::Stream(samples) => samples.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.source {
            SampleSource::Runs { remaining, .. } => (*remaining, Some(*remaining)),
            SampleSource::Stream(samples) => samples.size_hint(),
        }
    }

    fn last(self) -> Option<(i64, f64)> {
        match self.source {
            SampleSource::Runs { current, rest, .. } => rest
                .rev()
                .find_map(|run| run.last().copied())
                .or_else(|| current.as_slice().last().copied()),
            SampleSource::Stream(samples) => samples.last(),
        }
    }
}

impl std::fmt::Debug for SampleIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleIter")
            .field("columnar", &self.is_columnar())
            .field("size_hint", &self.size_hint())
            .finish()
    }
}

/// Native histogram samples of one series, ascending by timestamp.
pub type HistogramIter = Box<dyn Iterator<Item = (i64, FloatHistogram)> + Send>;

/// Whether a matcher list is allowed to select: at least one matcher must
/// not match the empty string, so a selector cannot ask for every series
/// by accident.
pub fn check_selectable(matchers: &[Matcher]) -> Result<()> {
    if matchers.iter().any(|m| !m.matches_empty()) {
        Ok(())
    } else {
        Err(StorageError::new(
            StorageErrorKind::InvalidInput,
            "vector selector must contain at least one non-empty matcher",
        ))
    }
}

/// Validates a label set for storage: a metric name must be present,
/// label names must be non-empty and valid UTF-8 (guaranteed by `String`).
pub fn validate_labels(labels: &Labels) -> Result<()> {
    if labels.is_empty() {
        return Err(StorageError::new(
            StorageErrorKind::InvalidInput,
            "empty label set",
        ));
    }
    for l in labels {
        if l.name.is_empty() {
            return Err(StorageError::new(
                StorageErrorKind::InvalidInput,
                format!("empty label name in {labels}"),
            ));
        }
    }
    Ok(())
}

/// A full store: writable, readable, and able to describe itself. The
/// server holds one of these; the TSDB implements it.
pub trait Storage: Appendable + Queryable {
    /// Head statistics for `/api/v1/status/tsdb`: the summary fields
    /// describe the whole head, the counts and top lists the series of the
    /// head that `request` selects.
    fn head_stats(&self, request: &StatsRequest) -> HeadStats;

    /// Counters and gauges for osprey's own `/metrics`.
    fn counters(&self) -> StorageCounters;

    /// The store's administration (deletes, snapshots), if it has any. By
    /// default none: the admin API then answers that it is unavailable.
    fn admin(&self) -> Option<&dyn StorageAdmin> {
        None
    }

    /// The time (milliseconds) of the oldest sample the store may hold,
    /// `i64::MAX` when it holds none. `remote_read` without `read_recent`
    /// asks other stores only for what is older. By default `i64::MIN`:
    /// the store claims all of time.
    fn start_time(&self) -> i64 {
        i64::MIN
    }

    /// Replaces the per-series retention rules (`storage.retention_rules`):
    /// in order, the first whose matchers all match a series gives its
    /// retention in milliseconds. Returns whether the store applies them;
    /// by default it does not.
    fn set_retention_rules(&self, rules: Vec<(Vec<Matcher>, i64)>) -> bool {
        let _ = rules;
        false
    }

    /// The stored exemplars with `mint <= t <= maxt` of the series that
    /// match every matcher of at least one of `selectors`, sorted by
    /// series labels, each series' exemplars oldest first; series without
    /// exemplars in range are left out. By default none.
    fn select_exemplars(
        &self,
        mint: i64,
        maxt: i64,
        selectors: &[Vec<Matcher>],
    ) -> Result<Vec<ExemplarSeries>> {
        let _ = (mint, maxt, selectors);
        Ok(Vec::new())
    }

    /// Resizes the exemplar storage to hold `max_exemplars` (0 turns it
    /// off); shrinking drops the oldest. Returns whether the store has
    /// exemplar storage.
    fn set_max_exemplars(&self, max_exemplars: u64) -> bool {
        let _ = max_exemplars;
        false
    }

    /// Figures for the `prometheus_tsdb_exemplar_*` metrics.
    fn exemplar_counters(&self) -> ExemplarCounters {
        ExemplarCounters::default()
    }

    /// Sets the resolution tiers (`storage.tiers`): (resolution ms, 0 for
    /// raw; retention ms), finest first, the first raw; empty turns tiering
    /// off. `Ok(false)` when the store has no tiers.
    fn set_tiers(&self, tiers: &[(i64, i64)]) -> Result<bool> {
        let _ = tiers;
        Ok(false)
    }

    /// Replaces the series limits (`limits:`, `docs/limits.md`). Returns
    /// whether the store enforces them; by default it does not.
    fn set_series_limits(&self, spec: &crate::limits::LimitsSpec) -> bool {
        let _ = spec;
        false
    }

    /// The series limits in force and the series they refused.
    fn series_limit_stats(&self) -> crate::limits::LimitStats {
        crate::limits::LimitStats::default()
    }
}

/// What Prometheus's TSDB admin API (`/api/v1/admin/tsdb/*`) asks of a
/// store. Every call is durable when it returns `Ok`.
pub trait StorageAdmin: Send + Sync {
    /// Deletes every sample in `[mint, maxt]` (milliseconds, inclusive) of
    /// the series matching all `matchers`: no query returns them again,
    /// and a series left without samples is gone from every lookup. At
    /// least one matcher must not match the empty string (an
    /// `InvalidInput` error otherwise). Samples written after the call
    /// returns are kept, whatever their time.
    fn delete_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<()>;

    /// Removes the data of earlier deletes from disk for good.
    fn clean_tombstones(&self) -> Result<()>;

    /// Writes a snapshot of the store into a new directory that the store
    /// names and places itself (under its own data directory; no caller
    /// input becomes part of a path), and returns that name. The snapshot
    /// can be opened as a store of its own.
    fn snapshot(&self, head: SnapshotHead) -> Result<String>;
}

/// Whether a snapshot holds the data still in memory (the head) too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotHead {
    /// The head is written into the snapshot as a block of its own.
    Include,
    /// Only what is already in blocks on disk (`skip_head=true`).
    Skip,
}

/// What `/api/v1/status/tsdb` asks of [`Storage::head_stats`].
#[derive(Clone, Debug, PartialEq)]
pub struct StatsRequest {
    /// Caps each top list (at least 1).
    pub limit: usize,
    /// Which series the counts and lists cover.
    pub selection: StatsSelection,
    /// A label whose values are counted by series
    /// ([`HeadStats::series_count_by_focus_label_value`]).
    pub focus_label: Option<String>,
}

impl StatsRequest {
    /// Every series, top lists of `limit`, no focus label.
    pub fn all(limit: usize) -> StatsRequest {
        StatsRequest {
            limit,
            selection: StatsSelection::All,
            focus_label: None,
        }
    }
}

/// The series a cardinality count covers.
#[derive(Clone, Debug, PartialEq)]
pub enum StatsSelection {
    /// Every series.
    All,
    /// The union of the series matching each list (every matcher of a list
    /// must hold); an empty union selects nothing.
    Matching(Vec<Vec<Matcher>>),
}

/// What `/api/v1/status/tsdb` reports about the in-memory head.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeadStats {
    /// Head-wide: every series, whatever the selection.
    pub num_series: u64,
    pub num_chunks: u64,
    /// Distinct label-value pairs of the whole head.
    pub num_label_pairs: u64,
    /// Milliseconds; `i64::MAX`/`i64::MIN` when the head is empty.
    pub min_time: i64,
    pub max_time: i64,
    /// Of the selected series from here on.
    pub cardinality: Cardinality,
}

/// Series counts over a set of series (VictoriaMetrics's and Prometheus's
/// cardinality lists). Each list is sorted by count, descending, then by
/// name, and capped at the request's limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cardinality {
    pub total_series: u64,
    /// Label-value pairs summed over the series (a pair shared by two
    /// series counts twice), as VictoriaMetrics's `totalLabelValuePairs`.
    pub total_label_value_pairs: u64,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub series_count_by_label_name: Vec<(String, u64)>,
    /// Empty without a focus label.
    pub series_count_by_focus_label_value: Vec<(String, u64)>,
    /// Names `name=value`.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// Bytes of the distinct values of each label name.
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
}

/// Counts series by label-value pair as they are added, then derives every
/// list of [`Cardinality`] from that one map: a series adds one map update
/// per label and nothing more.
#[derive(Default)]
pub struct CardinalityTally<'a> {
    series: u64,
    pairs: HashMap<(&'a str, &'a str), u64>,
}

impl<'a> CardinalityTally<'a> {
    pub fn new() -> CardinalityTally<'a> {
        CardinalityTally::default()
    }

    /// Counts one series. The caller adds each series once.
    pub fn add(&mut self, labels: &'a Labels) {
        self.series += 1;
        for l in labels {
            *self
                .pairs
                .entry((l.name.as_str(), l.value.as_str()))
                .or_default() += 1;
        }
    }

    /// The lists, each capped at `limit`.
    pub fn finish(self, limit: usize, focus_label: Option<&str>) -> Cardinality {
        let mut by_name: HashMap<&str, (u64, u64, u64)> = HashMap::new();
        let mut total_pairs = 0;
        let mut by_metric = Vec::new();
        let mut by_focus = Vec::new();
        for (&(name, value), &count) in &self.pairs {
            total_pairs += count;
            let entry = by_name.entry(name).or_default();
            entry.0 += count;
            entry.1 += 1;
            entry.2 += value.len() as u64;
            if name == crate::METRIC_NAME {
                by_metric.push((value, count));
            }
            if focus_label == Some(name) {
                by_focus.push((value, count));
            }
        }
        let mut pairs: Vec<((&str, &str), u64)> = self.pairs.into_iter().collect();
        let pairs = top_by(&mut pairs, limit)
            .iter()
            .map(|((n, v), c)| (format!("{n}={v}"), *c))
            .collect();
        let owned = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
            list.iter().map(|(k, c)| (k.to_string(), *c)).collect()
        };
        let by_field = |field: fn(&(u64, u64, u64)) -> u64| {
            let mut list: Vec<(&str, u64)> = by_name.iter().map(|(k, v)| (*k, field(v))).collect();
            owned(top_by(&mut list, limit))
        };
        Cardinality {
            total_series: self.series,
            total_label_value_pairs: total_pairs,
            series_count_by_metric_name: owned(top_by(&mut by_metric, limit)),
            series_count_by_label_name: by_field(|v| v.0),
            series_count_by_focus_label_value: owned(top_by(&mut by_focus, limit)),
            series_count_by_label_value_pair: pairs,
            label_value_count_by_label_name: by_field(|v| v.1),
            memory_in_bytes_by_label_name: by_field(|v| v.2),
        }
    }
}

/// The first `limit` entries by count descending, then key ascending. Only
/// the kept entries are fully sorted.
fn top_by<K: Ord>(list: &mut [(K, u64)], limit: usize) -> &[(K, u64)] {
    let order = |a: &(K, u64), b: &(K, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    let keep = limit.min(list.len());
    if keep == 0 {
        return &[];
    }
    if keep < list.len() {
        list.select_nth_unstable_by(keep - 1, order);
    }
    let kept = &mut list[..keep];
    kept.sort_unstable_by(order);
    kept
}

/// Monotonic counters (`_total`) and current gauges of the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageCounters {
    pub samples_appended_total: u64,
    pub series_created_total: u64,
    pub head_series: u64,
    pub head_chunks: u64,
    pub wal_writes_total: u64,
    pub wal_fsyncs_total: u64,
    pub wal_corruptions_repaired_total: u64,
    pub compactions_total: u64,
    pub compactions_failed_total: u64,
    pub head_truncations_total: u64,
    pub blocks_loaded: u64,
    pub blocks_deleted_by_retention_total: u64,
    pub storage_blocks_bytes: u64,
    pub out_of_order_samples_total: u64,
    /// The downsampled tiers (`storage.tiers`), finest first.
    pub tiers: Vec<TierCounters>,
    /// Downsampling rounds (every tier built and compacted) completed.
    pub downsamples_total: u64,
    /// Downsampling rounds that failed.
    pub downsamples_failed_total: u64,
    /// How long the last downsampling round took, in seconds (0 before
    /// the first).
    pub last_downsample_seconds: f64,
}

/// One downsampled tier's blocks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TierCounters {
    pub resolution_ms: i64,
    pub blocks: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch's space goes from one body's lifetime to the next with its
    /// capacity, empty.
    #[test]
    fn a_batch_space_keeps_its_capacity_across_lifetimes() {
        let first = String::from("job");
        let mut batch = PairsBatch::default();
        for _ in 0..1000 {
            batch.push(&[("__name__", "up"), (first.as_str(), "x")], &[(1, 1.0)]);
        }
        let space = batch.into_space();
        let held = space.capacity_bytes();
        assert!(held >= 1000 * (2 * 32 + 16 + 16), "{held}");
        drop(first);
        let second = String::from("instance");
        let mut batch = PairsBatch::with_space(space);
        assert!(batch.is_empty());
        batch.push(&[(second.as_str(), "y")], &[(2, 2.0)]);
        assert_eq!(
            batch
                .iter()
                .map(|(p, s)| (p.to_vec(), s.to_vec()))
                .collect::<Vec<_>>(),
            vec![(vec![("instance", "y")], vec![(2, 2.0)])]
        );
        assert_eq!(batch.into_space().capacity_bytes(), held);
    }

    /// A handle holds one reference of the pointer it was made from,
    /// lends its target only as that type, and gives the reference back
    /// when dropped; clones and `to_pointer` add one each. Run under Miri
    /// too (`cargo +nightly miri test -p model --lib handle`).
    #[test]
    fn a_handle_counts_references_and_knows_its_pointer_type() {
        let target = std::sync::Arc::new(String::from("series"));
        let handle = SeriesHandle::new(std::sync::Arc::clone(&target));
        assert_eq!(std::sync::Arc::strong_count(&target), 2);
        let copy = handle.clone();
        assert_eq!(std::sync::Arc::strong_count(&target), 3);
        assert_eq!(
            copy.downcast_ref::<std::sync::Arc<String>>()
                .map(String::as_str),
            Some("series")
        );
        // Same target type behind another pointer type, or another target.
        assert!(copy.downcast_ref::<triomphe::Arc<String>>().is_none());
        assert!(copy.downcast_ref::<std::sync::Arc<Vec<u8>>>().is_none());
        assert!(copy.to_pointer::<std::sync::Arc<u64>>().is_none());
        let pointer = copy.to_pointer::<std::sync::Arc<String>>();
        assert!(
            pointer
                .as_ref()
                .is_some_and(|p| std::sync::Arc::ptr_eq(p, &target))
        );
        assert_eq!(std::sync::Arc::strong_count(&target), 4);
        drop((handle, copy, pointer));
        assert_eq!(std::sync::Arc::strong_count(&target), 1);

        let lean = triomphe::Arc::new(7u64);
        let handle = SeriesHandle::new(lean.clone());
        let from_thread = std::thread::spawn({
            let handle = handle.clone();
            move || handle.to_pointer::<triomphe::Arc<u64>>().map(|p| *p)
        })
        .join()
        .expect("thread");
        assert_eq!(from_thread, Some(7));
        assert_eq!(triomphe::Arc::count(&lean), 2);
        drop(handle);
        assert!(lean.is_unique());
    }

    #[test]
    fn a_tier_is_aligned_when_its_windows_tile_every_range() {
        const H: i64 = 3_600_000;
        let hints = |step_ms, range_ms, align_ms, aggregate| SelectHints {
            step_ms,
            range_ms,
            aggregate,
            max_resolution_ms: None,
            align_ms,
        };
        // 30 days at 1h over [1h], on the hour: the 1h tier and finer.
        let h = hints(H, H, H, Aggregate::Max);
        assert!(h.aligned(H) && h.aligned(H / 12) && !h.aligned(2 * H));
        assert_eq!(h.aligned_reach(H), 1);
        // Off the hour (refs share only 30 minutes): not the 1h tier.
        assert!(!hints(H, H, H / 2, Aggregate::Max).aligned(H));
        // A range shorter than the resolution, a step finer than it.
        assert!(!hints(H, H / 2, H / 2, Aggregate::Max).aligned(H));
        assert!(!hints(H / 2, 4 * H, H / 2, Aggregate::Max).aligned(H));
        // Unknown alignment, raw.
        assert!(!hints(H, H, 0, Aggregate::Max).aligned(H));
        assert!(!hints(H, H, H, Aggregate::Max).aligned(0));
        // One evaluation time: the step does not matter.
        assert!(hints(0, 24 * H, 24 * H, Aggregate::Counter).aligned(24 * H));
        assert_eq!(hints(H, H, H, Aggregate::Counter).aligned_reach(H), H);
        assert_eq!(hints(H, H, H, Aggregate::Resets).aligned_reach(H), H);
    }

    /// Columns and streams hand out the same samples whichever way they
    /// are read: one at a time, whole, appended, or partly taken first.
    #[test]
    fn sample_columns_read_alike_every_way() {
        let all: Vec<(i64, f64)> = (0..10).map(|i| (i * 10, i as f64)).collect();
        let runs = || {
            vec![
                all[..3].to_vec(),
                Vec::new(),
                all[3..7].to_vec(),
                all[7..].to_vec(),
            ]
        };
        type Make<'a> = Box<dyn Fn() -> SampleIter + 'a>;
        let sources: Vec<(&str, Make)> = vec![
            ("vec", Box::new(|| SampleIter::from_vec(all.clone()))),
            ("runs", Box::new(move || SampleIter::from_runs(runs()))),
            (
                "stream",
                Box::new(|| SampleIter::from_stream(all.clone().into_iter())),
            ),
        ];
        for (name, make) in &sources {
            assert_eq!(make().collect::<Vec<_>>(), all, "{name}: next");
            assert_eq!(make().into_vec(), all, "{name}: into_vec");
            let mut out = vec![(-1, -1.0)];
            make().append_to(&mut out);
            assert_eq!(out[1..], all[..], "{name}: append_to");
            assert_eq!(make().last(), all.last().copied(), "{name}: last");
            assert_eq!(make().count(), all.len(), "{name}: count");
            for taken in [1, 3, 5, 10] {
                let mut it = make();
                let head: Vec<_> = it.by_ref().take(taken).collect();
                assert_eq!(head, all[..taken], "{name}: head of {taken}");
                if it.is_columnar() {
                    assert_eq!(it.size_hint(), (10 - taken, Some(10 - taken)));
                }
                assert_eq!(it.into_vec(), all[taken..], "{name}: rest after {taken}");
            }
        }
        assert!(SampleIter::from_runs(vec![vec![], vec![]]).last().is_none());
        assert_eq!(SampleIter::empty().into_vec(), Vec::new());
        // A lone column comes back as the same vector, not a copy.
        let v = all.clone();
        let pointer = v.as_ptr();
        let back = SampleIter::from_vec(v).into_vec();
        assert_eq!(back.as_ptr(), pointer);
        let v = all.clone();
        let pointer = v.as_ptr();
        let back = SampleIter::from_runs(vec![v]).into_vec();
        assert_eq!(back.as_ptr(), pointer);
    }

    #[test]
    fn tally_counts_every_list_from_pairs() {
        let series = [
            Labels::from_pairs([("__name__", "up"), ("job", "a"), ("instance", "x")]),
            Labels::from_pairs([("__name__", "up"), ("job", "b"), ("instance", "x")]),
            Labels::from_pairs([("__name__", "req"), ("job", "a")]),
        ];
        let mut tally = CardinalityTally::new();
        for s in &series {
            tally.add(s);
        }
        let c = tally.finish(2, Some("job"));
        let list = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        assert_eq!(c.total_series, 3);
        assert_eq!(c.total_label_value_pairs, 8);
        assert_eq!(
            c.series_count_by_metric_name,
            list(&[("up", 2), ("req", 1)])
        );
        // Ties by name: `__name__` and `job` both on 3 series.
        assert_eq!(
            c.series_count_by_label_name,
            list(&[("__name__", 3), ("job", 3)])
        );
        assert_eq!(
            c.series_count_by_focus_label_value,
            list(&[("a", 2), ("b", 1)])
        );
        assert_eq!(
            c.series_count_by_label_value_pair,
            list(&[("__name__=up", 2), ("instance=x", 2)])
        );
        assert_eq!(
            c.label_value_count_by_label_name,
            list(&[("__name__", 2), ("job", 2)])
        );
        assert_eq!(
            c.memory_in_bytes_by_label_name,
            list(&[("__name__", 5), ("job", 2)])
        );
        let all = CardinalityTally::new().finish(10, None);
        assert_eq!(all, Cardinality::default());
    }
}
