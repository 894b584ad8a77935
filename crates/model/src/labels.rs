//! Label sets.

use std::fmt;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair. Its fields are in this order in memory: label sets
/// in the pairs layout (see [`thin_labels`]) read a name and a value at a
/// stride.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C)]
pub struct Label {
    pub name: LabelStr,
    pub value: LabelStr,
}

impl Label {
    pub fn new(name: impl Into<LabelStr>, value: impl Into<LabelStr>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// One label of a [`Labels`], borrowed: what iterating a label set gives.
/// Compares, orders and hashes as the [`Label`] it stands for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelRef<'a> {
    pub name: &'a LabelStr,
    pub value: &'a LabelStr,
}

/// As the [`Label`] it stands for.
impl fmt::Debug for LabelRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Label")
            .field("name", self.name)
            .field("value", self.value)
            .finish()
    }
}

impl LabelRef<'_> {
    /// The label as an owned pair (two reference-count increments).
    pub fn to_label(self) -> Label {
        Label {
            name: self.name.clone(),
            value: self.value.clone(),
        }
    }
}

impl From<LabelRef<'_>> for Label {
    fn from(label: LabelRef<'_>) -> Label {
        label.to_label()
    }
}

impl PartialEq<Label> for LabelRef<'_> {
    fn eq(&self, other: &Label) -> bool {
        *self.name == other.name && *self.value == other.value
    }
}

impl PartialEq<LabelRef<'_>> for Label {
    fn eq(&self, other: &LabelRef<'_>) -> bool {
        other == self
    }
}

/// The names of a label set, kept once for the many label sets that share
/// them (storage gives every series of one metric and label shape the same
/// names; see [`Labels::with_names`]). Cloning is one reference-count
/// increment. Compares and hashes as the slice of names it holds.
#[derive(Clone)]
pub struct LabelNames(thin_labels::ThinNames);

impl LabelNames {
    /// Names sorted, unique and non-empty, as a label set's are.
    pub fn new(names: Vec<LabelStr>) -> LabelNames {
        debug_assert!(names.windows(2).all(|w| w[0] < w[1]));
        LabelNames(thin_labels::ThinNames::new(names))
    }

    pub fn as_slice(&self) -> &[LabelStr] {
        self.0.as_slice()
    }

    /// Whether both hold the same allocation.
    pub fn ptr_eq(&self, other: &LabelNames) -> bool {
        self.0.ptr_eq(&other.0)
    }
}

impl PartialEq for LabelNames {
    fn eq(&self, other: &LabelNames) -> bool {
        self.ptr_eq(other) || self.as_slice() == other.as_slice()
    }
}

impl Eq for LabelNames {}

impl std::hash::Hash for LabelNames {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl fmt::Debug for LabelNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// Label names with the values that many label sets share, such as the
/// target labels (`job`, `instance`, ...) of one metric shape's series from
/// one target; see [`Labels::with_template`]. Cloning is one
/// reference-count increment.
#[derive(Clone)]
pub struct LabelTemplate(thin_labels::ThinTemplate);

impl LabelTemplate {
    /// The most names a template takes.
    pub const MAX_NAMES: usize = thin_labels::TEMPLATE_MAX_NAMES;

    /// `fixed` has one entry per name: the value every set built from the
    /// template has for it, or `None` where each set has its own. `None`
    /// when the lengths differ or there are more than
    /// [`LabelTemplate::MAX_NAMES`] names.
    pub fn new(names: &LabelNames, fixed: Vec<Option<LabelStr>>) -> Option<LabelTemplate> {
        debug_assert!(fixed.iter().flatten().all(|v| !v.is_empty()));
        thin_labels::ThinTemplate::new(names, fixed).map(LabelTemplate)
    }

    pub fn names(&self) -> &LabelNames {
        self.0.names()
    }

    /// The fixed value of the name at `index`, if it has one.
    pub fn fixed(&self, index: usize) -> Option<&LabelStr> {
        (index < self.names().as_slice().len())
            .then(|| self.0.fixed_at(index))
            .flatten()
    }

    /// How many values a set built from it holds itself.
    pub fn own_count(&self) -> usize {
        self.0.own_count()
    }

    /// Whether both hold the same allocation.
    pub fn ptr_eq(&self, other: &LabelTemplate) -> bool {
        self.0.ptr_eq(&other.0)
    }

    /// Where its allocation starts: equal for handles of one template.
    pub fn as_ptr(&self) -> *const u8 {
        self.0.address()
    }

    /// Its allocation's size in bytes (not counting the names).
    pub fn heap_bytes(&self) -> usize {
        self.0.bytes()
    }
}

impl fmt::Debug for LabelTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names().as_slice();
        f.debug_map()
            .entries(names.iter().enumerate().map(|(i, n)| (n, self.fixed(i))))
            .finish()
    }
}

/// A label name or value: an immutable string behind a reference count.
///
/// Storage interns label strings (every series with `job="node"` shares one
/// `"node"`), and label sets built from them share those strings: handing a
/// stored series' labels to a query copies no bytes and allocates nothing.
/// Compares, orders and hashes like the `str` it holds.
///
/// One pointer wide (see [`thin`]): a label is two of them, 16 bytes, which
/// halves the label arrays the head keeps for every series (a `Arc<str>`
/// is a pointer and a length).
#[derive(Clone)]
pub struct LabelStr(thin::ThinStr);

impl LabelStr {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether both hold the same allocation (interned strings compare
    /// equal this way without reading their bytes).
    pub fn ptr_eq(&self, other: &LabelStr) -> bool {
        self.0.ptr_eq(&other.0)
    }
}

impl PartialEq for LabelStr {
    fn eq(&self, other: &LabelStr) -> bool {
        self.ptr_eq(other) || self.as_str() == other.as_str()
    }
}

impl Eq for LabelStr {}

impl PartialOrd for LabelStr {
    fn partial_cmp(&self, other: &LabelStr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LabelStr {
    fn cmp(&self, other: &LabelStr) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for LabelStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

mod thin {
    //! A reference-counted immutable string behind one thin pointer: the
    //! count, the length and the bytes share one allocation.

    use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicUsize, Ordering, fence};

    #[repr(C)]
    struct Header {
        count: AtomicUsize,
        len: usize,
    }

    /// Counts above this abort, as `std::sync::Arc` does: a leak of that
    /// many clones is a bug, and wrapping the count would free live memory.
    const MAX_COUNT: usize = isize::MAX as usize;

    pub(super) struct ThinStr(NonNull<Header>);

    // SAFETY: the bytes are immutable after construction and the count is
    // atomic, as for `Arc<str>`, which is Send and Sync.
    unsafe impl Send for ThinStr {}
    // SAFETY: as above.
    unsafe impl Sync for ThinStr {}

    fn layout(len: usize) -> Layout {
        let size = std::mem::size_of::<Header>()
            .checked_add(len)
            .unwrap_or_else(|| std::process::abort());
        Layout::from_size_align(size, std::mem::align_of::<Header>())
            .unwrap_or_else(|_| std::process::abort())
    }

    impl ThinStr {
        /// Where the allocation starts, for prefetching; not read.
        pub(super) fn address(&self) -> *const u8 {
            self.0.as_ptr().cast::<u8>().cast_const()
        }

        pub(super) fn new(s: &str) -> ThinStr {
            let layout = layout(s.len());
            // SAFETY: the layout's size is at least the header's, never 0.
            let raw = unsafe { alloc(layout) };
            let Some(header) = NonNull::new(raw.cast::<Header>()) else {
                handle_alloc_error(layout)
            };
            // SAFETY: `raw` is a fresh allocation of `layout`: room for the
            // header, aligned for it, followed by `s.len()` bytes.
            unsafe {
                header.as_ptr().write(Header {
                    count: AtomicUsize::new(1),
                    len: s.len(),
                });
                std::ptr::copy_nonoverlapping(
                    s.as_ptr(),
                    raw.add(std::mem::size_of::<Header>()),
                    s.len(),
                );
            }
            ThinStr(header)
        }

        fn header(&self) -> &Header {
            // SAFETY: the pointer stays valid while this handle holds a count.
            unsafe { self.0.as_ref() }
        }

        pub(super) fn as_str(&self) -> &str {
            let len = self.header().len;
            // SAFETY: `new` copied `len` bytes of a `str` right after the
            // header; they are never written again and live as long as the
            // handle.
            unsafe {
                let bytes = self
                    .0
                    .as_ptr()
                    .cast::<u8>()
                    .add(std::mem::size_of::<Header>());
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(bytes, len))
            }
        }

        pub(super) fn ptr_eq(&self, other: &ThinStr) -> bool {
            self.0 == other.0
        }
    }

    impl Clone for ThinStr {
        fn clone(&self) -> ThinStr {
            let old = self.header().count.fetch_add(1, Ordering::Relaxed);
            if old > MAX_COUNT {
                std::process::abort();
            }
            ThinStr(self.0)
        }
    }

    impl Drop for ThinStr {
        fn drop(&mut self) {
            if self.header().count.fetch_sub(1, Ordering::Release) != 1 {
                return;
            }
            // Every other handle's uses happen before the free (as in
            // `Arc::drop`).
            fence(Ordering::Acquire);
            let layout = layout(self.header().len);
            // SAFETY: this was the last handle; the block came from `alloc`
            // with this layout in `new`.
            unsafe { dealloc(self.0.as_ptr().cast(), layout) }
        }
    }
}

mod thin_labels {
    //! A reference-counted immutable label set behind one thin pointer, in
    //! one of three layouts after an 8-byte header (a 4-byte count and a
    //! 4-byte length whose top two bits tell the layout):
    //!
    //! - *pairs*: the labels, 16 bytes each (a name and a value);
    //! - *shared names*: a pointer to a [`ThinNames`] array that many label
    //!   sets share (every series of one metric and shape has the same
    //!   names), then the values, 8 bytes each;
    //! - *template*: a pointer to a [`ThinTemplate`] that many label sets
    //!   share (the series of one metric shape and one scrape target): the
    //!   names and the values every set built from it has (`job`,
    //!   `instance`, `cluster`, ...), then only the other values, 8 bytes
    //!   each.
    //!
    //! In the first two a label's name and value are found at a base
    //! pointer plus a fixed stride (two words for pairs, one for shared
    //! names); the template's values are found through its table of fixed
    //! values and, where one is absent, the index of the set's own value.

    use super::{Label, LabelNames, LabelRef, LabelStr, LabelTemplate};
    use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
    use std::marker::PhantomData;
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicU32, Ordering, fence};

    #[repr(C)]
    struct Header {
        count: AtomicU32,
        /// The number of labels, [`SHARED`] set in the shared-names layout.
        len: u32,
    }

    /// [`Header::len`]'s layout bits: shared names, template. A length
    /// is below both.
    const SHARED: u32 = 1 << 31;
    const TEMPLATE: u32 = 1 << 30;
    const LAYOUT: u32 = SHARED | TEMPLATE;

    /// Counts above this abort, as `std::sync::Arc` does: that many live
    /// clones of one label set is a leak, and wrapping the count would free
    /// live memory.
    const MAX_COUNT: u32 = i32::MAX as u32;

    const HEADER: usize = std::mem::size_of::<Header>();
    const WORD: usize = std::mem::size_of::<LabelStr>();

    // A label is its name then its value, one word each, right after the
    // header; the strides below depend on it.
    const _: () = assert!(std::mem::size_of::<Label>() == 2 * WORD);
    const _: () = assert!(std::mem::offset_of!(Label, value) == WORD);
    const _: () = assert!(std::mem::size_of::<LabelNames>() == WORD);
    const _: () = assert!(HEADER == WORD && std::mem::align_of::<Header>() <= WORD);
    const _: () = assert!(std::mem::size_of::<Option<LabelStr>>() == WORD);
    const _: () = assert!(std::mem::size_of::<LabelTemplate>() == WORD);

    /// The layout of an allocation of `words` words after the header.
    fn layout(words: usize) -> Layout {
        words
            .checked_mul(WORD)
            .and_then(|size| size.checked_add(HEADER))
            .and_then(|size| Layout::from_size_align(size, WORD).ok())
            .unwrap_or_else(|| std::process::abort())
    }

    /// A fresh allocation of `words` words after a header with count 1.
    fn allocate(words: usize, len: u32) -> NonNull<Header> {
        let layout = layout(words);
        // SAFETY: the layout holds at least the header, never 0 bytes.
        let raw = unsafe { alloc(layout) };
        let Some(header) = NonNull::new(raw.cast::<Header>()) else {
            handle_alloc_error(layout)
        };
        // SAFETY: a fresh allocation aligned for the header.
        unsafe {
            header.as_ptr().write(Header {
                count: AtomicU32::new(1),
                len,
            })
        };
        header
    }

    /// The first word after the header.
    fn body<T>(header: NonNull<Header>) -> *mut T {
        // SAFETY: every allocation has room for its header.
        unsafe { header.as_ptr().cast::<u8>().add(HEADER).cast::<T>() }
    }

    fn add_count(header: NonNull<Header>) {
        // SAFETY: the caller holds a count, so the header is live.
        let old = unsafe { header.as_ref() }
            .count
            .fetch_add(1, Ordering::Relaxed);
        if old > MAX_COUNT {
            std::process::abort();
        }
    }

    /// Drops one count; true when it was the last (the caller frees).
    fn release(header: NonNull<Header>) -> bool {
        // SAFETY: the caller holds a count, so the header is live.
        if unsafe { header.as_ref() }
            .count
            .fetch_sub(1, Ordering::Release)
            != 1
        {
            return false;
        }
        // Every other handle's uses happen before the free (as in
        // `Arc::drop`).
        fence(Ordering::Acquire);
        true
    }

    /// A reference-counted immutable array of label names.
    pub(super) struct ThinNames(NonNull<Header>);

    // SAFETY: the names are immutable after construction and `LabelStr`
    // is Send and Sync; the count is atomic, as in `Arc<[LabelStr]>`.
    unsafe impl Send for ThinNames {}
    // SAFETY: as above.
    unsafe impl Sync for ThinNames {}

    impl ThinNames {
        pub(super) fn new(names: Vec<LabelStr>) -> ThinNames {
            let len = u32::try_from(names.len())
                .ok()
                .filter(|&len| len < TEMPLATE)
                .unwrap_or_else(|| std::process::abort());
            let header = allocate(names.len(), len);
            let first = body::<LabelStr>(header);
            for (i, name) in names.into_iter().enumerate() {
                // SAFETY: room for `len` words after the header; each is
                // written once.
                unsafe { first.add(i).write(name) };
            }
            ThinNames(header)
        }

        pub(super) fn as_slice(&self) -> &[LabelStr] {
            // SAFETY: `new` wrote `len` names after the header; they are
            // never changed and live as long as the handle.
            unsafe { std::slice::from_raw_parts(body(self.0), self.0.as_ref().len as usize) }
        }

        pub(super) fn ptr_eq(&self, other: &ThinNames) -> bool {
            self.0 == other.0
        }
    }

    impl Clone for ThinNames {
        fn clone(&self) -> ThinNames {
            add_count(self.0);
            ThinNames(self.0)
        }
    }

    impl Drop for ThinNames {
        fn drop(&mut self) {
            if !release(self.0) {
                return;
            }
            let len = self.as_slice().len();
            // SAFETY: this was the last handle: each name is dropped once,
            // and the block came from `allocate` with this many words.
            unsafe {
                std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                    body::<LabelStr>(self.0),
                    len,
                ));
                dealloc(self.0.as_ptr().cast(), layout(len));
            }
        }
    }

    /// Label names and the values that every label set built from them
    /// shares, reference-counted and immutable: after the header (the
    /// number of names `n`), the [`ThinNames`] pointer, `n` words of
    /// `Option<LabelStr>` (a fixed value, or none where each set has its
    /// own), then `1 + n` bytes: the number of own values, and for each
    /// name without a fixed value the index of its value among a set's
    /// own values.
    pub(super) struct ThinTemplate(NonNull<Header>);

    // SAFETY: immutable after construction, made of Send and Sync parts,
    // with an atomic count, as `Arc<[Option<LabelStr>]>` would be.
    unsafe impl Send for ThinTemplate {}
    // SAFETY: as above.
    unsafe impl Sync for ThinTemplate {}

    /// The most names a template takes: an own value's index is one byte.
    pub(super) const TEMPLATE_MAX_NAMES: usize = 255;

    impl ThinTemplate {
        /// Words after the header for `n` names: the names pointer, the
        /// fixed values, and the index bytes rounded up to a word.
        fn words(n: usize) -> usize {
            1 + n + (1 + n).div_ceil(WORD)
        }

        /// `None` when `fixed` does not have one entry per name or there
        /// are more than [`TEMPLATE_MAX_NAMES`] names.
        pub(super) fn new(
            names: &LabelNames,
            fixed: Vec<Option<LabelStr>>,
        ) -> Option<ThinTemplate> {
            let n = names.as_slice().len();
            if fixed.len() != n || n > TEMPLATE_MAX_NAMES {
                return None;
            }
            let header = allocate(Self::words(n), n as u32);
            let first = body::<LabelNames>(header);
            // SAFETY: room for the names pointer, `n` fixed words and
            // `1 + n` index bytes after the header; each is written once.
            unsafe {
                first.write(names.clone());
                let fixed_at = first.add(1).cast::<Option<LabelStr>>();
                let index_at = fixed_at.add(n).cast::<u8>();
                let mut own = 0u8;
                for (i, value) in fixed.into_iter().enumerate() {
                    // Unused for a fixed value; written so every byte is
                    // initialised.
                    index_at.add(1 + i).write(own);
                    if value.is_none() {
                        own += 1;
                    }
                    fixed_at.add(i).write(value);
                }
                index_at.write(own);
            }
            Some(ThinTemplate(header))
        }

        fn len(&self) -> usize {
            // SAFETY: the pointer stays valid while this handle holds a count.
            unsafe { self.0.as_ref() }.len as usize
        }

        pub(super) fn names(&self) -> &LabelNames {
            // SAFETY: the first word is the names, live as long as `self`.
            unsafe { &*body::<LabelNames>(self.0) }
        }

        fn fixed(&self) -> *const Option<LabelStr> {
            // SAFETY: the fixed values follow the names pointer.
            unsafe { body::<LabelNames>(self.0).add(1).cast::<Option<LabelStr>>() }
        }

        /// The count of own values, then one index byte per name.
        fn index(&self) -> *const u8 {
            // SAFETY: the index bytes follow the `len` fixed words.
            unsafe { self.fixed().add(self.len()).cast::<u8>() }
        }

        /// How many values a set built from this template holds itself.
        pub(super) fn own_count(&self) -> usize {
            // SAFETY: written by `new`, never changed.
            usize::from(unsafe { *self.index() })
        }

        /// The value every set built from it has at `i < len`, if fixed.
        pub(super) fn fixed_at(&self, i: usize) -> Option<&LabelStr> {
            debug_assert!(i < self.len());
            // SAFETY: `i` is below the number of fixed words, which live
            // as long as `self`.
            unsafe { (*self.fixed().add(i)).as_ref() }
        }

        pub(super) fn ptr_eq(&self, other: &ThinTemplate) -> bool {
            self.0 == other.0
        }

        pub(super) fn address(&self) -> *const u8 {
            self.0.as_ptr().cast::<u8>().cast_const()
        }

        pub(super) fn bytes(&self) -> usize {
            HEADER + WORD * Self::words(self.len())
        }
    }

    impl Clone for ThinTemplate {
        fn clone(&self) -> ThinTemplate {
            add_count(self.0);
            ThinTemplate(self.0)
        }
    }

    impl Drop for ThinTemplate {
        fn drop(&mut self) {
            if !release(self.0) {
                return;
            }
            let n = self.len();
            // SAFETY: this was the last handle: the names pointer and each
            // fixed value are dropped once (the index bytes need no drop),
            // and the block came from `allocate` with this many words.
            unsafe {
                let first = body::<LabelNames>(self.0);
                std::ptr::drop_in_place(first);
                std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                    first.add(1).cast::<Option<LabelStr>>(),
                    n,
                ));
                dealloc(self.0.as_ptr().cast(), layout(Self::words(n)));
            }
        }
    }

    pub(super) struct ThinLabels(NonNull<Header>);

    // SAFETY: the labels are immutable after construction and `LabelStr`
    // is Send and Sync; the count is atomic, as in `Arc<[Label]>`.
    unsafe impl Send for ThinLabels {}
    // SAFETY: as above.
    unsafe impl Sync for ThinLabels {}

    impl ThinLabels {
        /// Where the allocation starts, for prefetching; not read.
        pub(super) fn address(&self) -> *const u8 {
            self.0.as_ptr().cast::<u8>().cast_const()
        }

        /// The pairs layout.
        pub(super) fn new(labels: Vec<Label>) -> ThinLabels {
            let len = u32::try_from(labels.len())
                .ok()
                .filter(|&len| len < TEMPLATE)
                .unwrap_or_else(|| std::process::abort());
            let header = allocate(2 * labels.len(), len);
            let first = body::<Label>(header);
            for (i, label) in labels.into_iter().enumerate() {
                // SAFETY: room for `len` labels after the header, aligned
                // for them (a label is two words); each is written once.
                unsafe { first.add(i).write(label) };
            }
            ThinLabels(header)
        }

        /// The shared-names layout; `values` has one value per name.
        pub(super) fn with_names(names: &LabelNames, values: Vec<LabelStr>) -> ThinLabels {
            let len = names.as_slice().len();
            if values.len() != len {
                // A caller's bug, caught before the set is built wrong.
                panic!("{} values for {len} label names", values.len());
            }
            // `len` fits: `names` was built with the same check.
            let header = allocate(1 + len, len as u32 | SHARED);
            let first = body::<LabelNames>(header);
            // SAFETY: room for the names pointer and `len` values after the
            // header, each written once.
            unsafe {
                first.write(names.clone());
                let values_at = first.add(1).cast::<LabelStr>();
                for (i, value) in values.into_iter().enumerate() {
                    values_at.add(i).write(value);
                }
            }
            ThinLabels(header)
        }

        /// The template layout; `own` holds the values of the names the
        /// template has no fixed value for, in order. `None` when their
        /// number is not the template's.
        pub(super) fn with_template(
            template: &LabelTemplate,
            own: Vec<LabelStr>,
        ) -> Option<ThinLabels> {
            if own.len() != template.0.own_count() {
                return None;
            }
            // At most `TEMPLATE_MAX_NAMES`, below the layout bits.
            let len = template.0.len() as u32;
            let header = allocate(1 + own.len(), len | TEMPLATE);
            let first = body::<LabelTemplate>(header);
            // SAFETY: room for the template pointer and the own values
            // after the header, each written once.
            unsafe {
                first.write(template.clone());
                let values_at = first.add(1).cast::<LabelStr>();
                for (i, value) in own.into_iter().enumerate() {
                    values_at.add(i).write(value);
                }
            }
            Some(ThinLabels(header))
        }

        fn raw_len(&self) -> u32 {
            // SAFETY: the pointer stays valid while this handle holds a count.
            unsafe { self.0.as_ref() }.len
        }

        pub(super) fn len(&self) -> usize {
            (self.raw_len() & !LAYOUT) as usize
        }

        /// The template, in that layout.
        pub(super) fn template(&self) -> Option<&LabelTemplate> {
            // SAFETY: the template layout's first word is its template.
            (self.raw_len() & TEMPLATE != 0).then(|| unsafe { &*body::<LabelTemplate>(self.0) })
        }

        /// The shared names, in the shared-names and template layouts.
        pub(super) fn names(&self) -> Option<&LabelNames> {
            let raw = self.raw_len();
            if raw & SHARED != 0 {
                // SAFETY: the shared layout's first word is its names.
                Some(unsafe { &*body::<LabelNames>(self.0) })
            } else {
                self.template().map(|t| t.0.names())
            }
        }

        /// The bytes of this set's own allocation (not those of its shared
        /// names or template).
        pub(super) fn bytes(&self) -> usize {
            let len = self.len();
            HEADER
                + WORD
                    * match self.template() {
                        Some(template) => 1 + template.0.own_count(),
                        None if self.raw_len() & SHARED != 0 => 1 + len,
                        None => 2 * len,
                    }
        }

        pub(super) fn iter(&self) -> super::Iter<'_> {
            let first = body::<LabelStr>(self.0).cast_const();
            // In every layout the first value is the second word after
            // the header: after the names or template pointer, and a
            // pair's value after its name. (A set of no labels has no such
            // word, and its iterator reads none: hence the wrapping add.)
            let values = first.wrapping_add(1);
            let (names, stride, fixed, index) = if let Some(LabelTemplate(t)) = self.template() {
                // SAFETY: the index bytes start with the count of own
                // values, then one per name.
                let index = unsafe { t.index().add(1) };
                (t.names().as_slice().as_ptr(), 1, t.fixed(), index)
            } else if let Some(names) = self.names() {
                let null = (std::ptr::null(), std::ptr::null());
                (names.as_slice().as_ptr(), 1, null.0, null.1)
            } else {
                (first, 2, std::ptr::null(), std::ptr::null())
            };
            Iter {
                names,
                values,
                stride,
                fixed,
                index,
                front: 0,
                back: self.len(),
                _set: PhantomData,
            }
        }
    }

    /// The labels of a [`super::Labels`], in order.
    #[derive(Clone)]
    pub struct Iter<'a> {
        names: *const LabelStr,
        values: *const LabelStr,
        stride: usize,
        /// In the template layout, the template's fixed values and its
        /// index bytes (one per name); null otherwise.
        fixed: *const Option<LabelStr>,
        index: *const u8,
        front: usize,
        back: usize,
        _set: PhantomData<&'a LabelStr>,
    }

    // SAFETY: it only reads immutable `LabelStr`s, which are Sync.
    unsafe impl Send for Iter<'_> {}
    // SAFETY: as above.
    unsafe impl Sync for Iter<'_> {}

    impl<'a> Iter<'a> {
        #[inline]
        fn label(&self, index: usize) -> LabelRef<'a> {
            // SAFETY: `index` is below the set's length (the iterator's
            // range never grows), and the set outlives 'a; in the template
            // layout an index byte is below the number of own values.
            unsafe {
                let value = if self.fixed.is_null() {
                    &*self.values.add(index * self.stride)
                } else {
                    match &*self.fixed.add(index) {
                        Some(value) => value,
                        None => &*self.values.add(usize::from(*self.index.add(index))),
                    }
                };
                LabelRef {
                    name: &*self.names.add(index * self.stride),
                    value,
                }
            }
        }
    }

    impl<'a> Iterator for Iter<'a> {
        type Item = LabelRef<'a>;

        #[inline]
        fn next(&mut self) -> Option<LabelRef<'a>> {
            if self.front == self.back {
                return None;
            }
            let label = self.label(self.front);
            self.front += 1;
            Some(label)
        }

        #[inline]
        fn size_hint(&self) -> (usize, Option<usize>) {
            let left = self.back - self.front;
            (left, Some(left))
        }

        #[inline]
        fn nth(&mut self, n: usize) -> Option<LabelRef<'a>> {
            self.front = self.front.saturating_add(n).min(self.back);
            self.next()
        }
    }

    impl DoubleEndedIterator for Iter<'_> {
        #[inline]
        fn next_back(&mut self) -> Option<Self::Item> {
            if self.front == self.back {
                return None;
            }
            self.back -= 1;
            Some(self.label(self.back))
        }
    }

    impl ExactSizeIterator for Iter<'_> {}

    impl std::iter::FusedIterator for Iter<'_> {}

    impl Clone for ThinLabels {
        fn clone(&self) -> ThinLabels {
            add_count(self.0);
            ThinLabels(self.0)
        }
    }

    impl Drop for ThinLabels {
        fn drop(&mut self) {
            if !release(self.0) {
                return;
            }
            let len = self.len();
            let shared = self.raw_len() & SHARED != 0;
            // SAFETY: this was the last handle: nothing reads the labels
            // any more, each string (and the names or template pointer) is
            // dropped once, and the block came from `allocate` with this
            // many words.
            unsafe {
                let words = if let Some(own) = self.template().map(|t| t.0.own_count()) {
                    let first = body::<LabelTemplate>(self.0);
                    std::ptr::drop_in_place(first);
                    std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                        first.add(1).cast::<LabelStr>(),
                        own,
                    ));
                    1 + own
                } else if shared {
                    let first = body::<LabelNames>(self.0);
                    std::ptr::drop_in_place(first);
                    std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                        first.add(1).cast::<LabelStr>(),
                        len,
                    ));
                    1 + len
                } else {
                    std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                        body::<Label>(self.0),
                        len,
                    ));
                    2 * len
                };
                dealloc(self.0.as_ptr().cast(), layout(words));
            }
        }
    }

    impl std::fmt::Debug for ThinLabels {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_list().entries(self.iter()).finish()
        }
    }

    impl PartialEq for ThinLabels {
        fn eq(&self, other: &ThinLabels) -> bool {
            if self.0 == other.0 {
                return true;
            }
            if self.len() != other.len() {
                return false;
            }
            match (self.names(), other.names()) {
                // Shared names compare once; then only the values.
                (Some(a), Some(b)) if a.ptr_eq(b) => self
                    .iter()
                    .zip(other.iter())
                    .all(|(x, y)| x.value == y.value),
                _ => self.iter().eq(other.iter()),
            }
        }
    }

    impl Eq for ThinLabels {}

    impl PartialOrd for ThinLabels {
        fn partial_cmp(&self, other: &ThinLabels) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }

    impl Ord for ThinLabels {
        fn cmp(&self, other: &ThinLabels) -> std::cmp::Ordering {
            self.iter().cmp(other.iter())
        }
    }

    impl std::hash::Hash for ThinLabels {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            state.write_usize(self.len());
            for label in self.iter() {
                label.hash(state);
            }
        }
    }
}

impl Default for LabelStr {
    fn default() -> LabelStr {
        LabelStr::from("")
    }
}

impl std::ops::Deref for LabelStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for LabelStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for LabelStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for LabelStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for LabelStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<std::sync::Arc<str>> for LabelStr {
    fn from(s: std::sync::Arc<str>) -> LabelStr {
        LabelStr::from(&*s)
    }
}

impl From<&str> for LabelStr {
    fn from(s: &str) -> LabelStr {
        LabelStr(thin::ThinStr::new(s))
    }
}

impl From<String> for LabelStr {
    fn from(s: String) -> LabelStr {
        LabelStr(thin::ThinStr::new(&s))
    }
}

impl From<&String> for LabelStr {
    fn from(s: &String) -> LabelStr {
        LabelStr(thin::ThinStr::new(s))
    }
}

impl From<&LabelStr> for LabelStr {
    fn from(s: &LabelStr) -> LabelStr {
        s.clone()
    }
}

impl From<std::borrow::Cow<'_, str>> for LabelStr {
    fn from(s: std::borrow::Cow<'_, str>) -> LabelStr {
        LabelStr(thin::ThinStr::new(&s))
    }
}

impl From<&std::borrow::Cow<'_, str>> for LabelStr {
    fn from(s: &std::borrow::Cow<'_, str>) -> LabelStr {
        LabelStr(thin::ThinStr::new(s))
    }
}

impl From<LabelStr> for String {
    fn from(s: LabelStr) -> String {
        String::from(s.as_str())
    }
}

impl From<&LabelStr> for String {
    fn from(s: &LabelStr) -> String {
        String::from(s.as_str())
    }
}

impl PartialEq<str> for LabelStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for LabelStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for LabelStr {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<LabelStr> for str {
    fn eq(&self, other: &LabelStr) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<LabelStr> for &str {
    fn eq(&self, other: &LabelStr) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<LabelStr> for String {
    fn eq(&self, other: &LabelStr) -> bool {
        self.as_str() == other.as_str()
    }
}

pub use thin_labels::Iter;

/// A label set: sorted by name, no duplicate names, no empty values.
///
/// Labels with an empty value are dropped on construction, as in Prometheus,
/// where an empty label value means "label absent".
///
/// Immutable and shared: cloning is one reference-count increment, so
/// storage can hand out the label sets it keeps and queries can copy label
/// sets through every step without allocating.
///
/// One pointer wide, with an 8-byte header (see [`thin_labels`]): storage
/// keeps one per series, a million on a wide head, where an `Arc<[Label]>`
/// took a second word in every series record and a 16-byte header in
/// every label array.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(thin_labels::ThinLabels);

impl Default for Labels {
    fn default() -> Labels {
        Labels::empty()
    }
}

impl Labels {
    pub fn empty() -> Labels {
        Labels(thin_labels::ThinLabels::new(Vec::new()))
    }

    /// Builds a label set from pairs in any order. On a duplicate name the
    /// last pair wins; empty values are dropped.
    pub fn from_pairs<N: Into<LabelStr>, V: Into<LabelStr>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut builder = LabelsBuilder::new();
        for (name, value) in pairs {
            builder.set(name.into(), value.into());
        }
        builder.build()
    }

    /// Wraps labels that are already sorted by name, unique and non-empty.
    /// Callers that cannot promise this use [`Labels::from_pairs`].
    pub fn from_sorted_unchecked(labels: Vec<Label>) -> Labels {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels(thin_labels::ThinLabels::new(labels))
    }

    /// A label set whose names are `names` (shared, not copied) and whose
    /// values are `values`, one per name, none empty: 8 bytes a label
    /// where a set of pairs takes 16. Storage builds its series' label
    /// sets this way.
    pub fn with_names(names: &LabelNames, values: Vec<LabelStr>) -> Labels {
        debug_assert!(values.iter().all(|v| !v.is_empty()));
        Labels(thin_labels::ThinLabels::with_names(names, values))
    }

    /// A label set that takes the names and fixed values of `template`,
    /// where the pairs layout takes 16 bytes a label and the shared-names
    /// one 8: this one takes 8 for each of `own`, the values of the names
    /// the template fixes none for, in order. `None` when `own` does not
    /// have that many values.
    pub fn with_template(template: &LabelTemplate, own: Vec<LabelStr>) -> Option<Labels> {
        debug_assert!(own.iter().all(|v| !v.is_empty()));
        thin_labels::ThinLabels::with_template(template, own).map(Labels)
    }

    /// The shared names of a set built by [`Labels::with_names`] or
    /// [`Labels::with_template`].
    pub fn names(&self) -> Option<&LabelNames> {
        self.0.names()
    }

    /// The template of a set built by [`Labels::with_template`], as a
    /// reference to the handle the set holds.
    pub fn template(&self) -> Option<&LabelTemplate> {
        self.0.template()
    }

    /// The size of the set's own allocation in bytes: not counting the
    /// strings, shared names or template it points to.
    pub fn heap_bytes(&self) -> usize {
        self.0.bytes()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let all = self.iter();
        let (mut low, mut high) = (0, all.len());
        while low < high {
            let middle = low + (high - low) / 2;
            let Some(label) = all.clone().nth(middle) else {
                break;
            };
            match label.name.as_str().cmp(name) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(label.value.as_str()),
            }
        }
        None
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> Iter<'_> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// The label at `index`, if the set has that many.
    pub fn at(&self, index: usize) -> Option<LabelRef<'_>> {
        // The iterator's `nth` jumps straight there, and checks the bound.
        self.0.iter().nth(index)
    }

    pub fn to_vec(&self) -> Vec<Label> {
        self.iter().map(LabelRef::to_label).collect()
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.to_vec()
    }

    /// Asks the processor to start loading the label array (its first
    /// two cache lines: a header and four labels fill one in the pairs
    /// layout), without reading it.
    #[inline]
    pub fn prefetch(&self) {
        let start = self.0.address();
        crate::hint::prefetch(start);
        crate::hint::prefetch(start.wrapping_add(crate::hint::CACHE_LINE));
    }

    /// Asks the processor to start loading each label value's bytes; reads
    /// the label array (see [`Labels::prefetch`]). Names are shared by
    /// most series and mostly in cache already.
    #[inline]
    pub fn prefetch_values(&self) {
        for label in self.iter() {
            crate::hint::prefetch(label.value.0.address());
        }
    }

    /// A 64-bit hash of the label set, the same in every process of one
    /// build. For in-memory use (sharding, lookups); not for files.
    pub fn stable_hash(&self) -> u64 {
        stable_hash_pairs(self.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    /// The label set without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        Labels(thin_labels::ThinLabels::new(
            self.iter()
                .filter(|l| l.name != METRIC_NAME)
                .map(LabelRef::to_label)
                .collect(),
        ))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = LabelRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Prometheus's text form: `name{a="1", b="2"}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(name) = name {
            f.write_str(name)?;
        }
        let rest: Vec<LabelRef<'_>> = self.iter().filter(|l| l.name != METRIC_NAME).collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, l) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// [`Labels::stable_hash`] of the label set made of `pairs`, which must be
/// sorted by name, unique and without empty values to give the same hash.
pub fn stable_hash_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = LabelHasher::new();
    for (name, value) in pairs {
        h.write(name.as_bytes());
        h.write(value.as_bytes());
    }
    h.finish()
}

/// Whether `pairs` already is a valid label set: sorted by name, unique,
/// no empty names or values.
pub fn pairs_are_normalized(pairs: &[(&str, &str)]) -> bool {
    pairs.iter().all(|(n, v)| !n.is_empty() && !v.is_empty())
        && pairs.windows(2).all(|w| str_before(w[0].0, w[1].0))
}

/// `a < b`, decided by the first bytes where they differ, as most label
/// names of one set do (`__name__`, `instance`, `job`), without a call
/// to compare the rest.
#[inline]
fn str_before(a: &str, b: &str) -> bool {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

/// `a == b` for label strings, most of them short: up to 16 bytes are
/// compared as two overlapping words each (no call to compare memory).
#[inline]
pub fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if (8..=16).contains(&len) {
        word8(a, 0) == word8(b, 0) && word8(a, len - 8) == word8(b, len - 8)
    } else if (4..8).contains(&len) {
        word4(a, 0) == word4(b, 0) && word4(a, len - 4) == word4(b, len - 4)
    } else {
        a == b
    }
}

/// Collects labels in any order and produces a valid [`Labels`].
#[derive(Debug, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    pub fn new() -> LabelsBuilder {
        LabelsBuilder { labels: Vec::new() }
    }

    pub fn from_labels(labels: &Labels) -> LabelsBuilder {
        LabelsBuilder {
            labels: labels.to_vec(),
        }
    }

    /// Sets a label; an empty value deletes it.
    pub fn set(&mut self, name: impl Into<LabelStr>, value: impl Into<LabelStr>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        self.labels.retain(|l| l.name != name);
        if !value.is_empty() {
            self.labels.push(Label { name, value });
        }
        self
    }

    pub fn delete(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    pub fn build(mut self) -> Labels {
        self.labels.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(thin_labels::ThinLabels::new(self.labels))
    }
}

/// A fast 64-bit hash: each string is folded into the state sixteen bytes
/// per step by one 64x64->128-bit multiply whose halves are xored (the
/// folded multiply of wyhash and foldhash), with the string's length, so
/// a label name or value of up to 16 bytes costs one multiply and no
/// copy; then murmur3's finalizer so every output bit depends on every
/// input bit (shard selection uses the low bits). The ingest path hashes
/// every label of every remote-written sample: a byte-at-a-time hash such
/// as FNV-1a measured at 30% of ingest CPU, and an eight-bytes-a-step one
/// (a rotate, xor and multiply per word, the tail copied) at 10%.
#[derive(Clone)]
struct LabelHasher(u64);

/// A fast, unkeyed [`std::hash::Hasher`] for in-memory maps keyed by
/// label sets or series text on hot paths (SipHash showed as 14% of
/// scraping CPU). Unkeyed means a client could craft colliding keys; use
/// it only where the keys come from configured targets or storage, not
/// from anonymous requests.
#[derive(Clone)]
pub struct FastHasher(LabelHasher);

impl Default for FastHasher {
    fn default() -> FastHasher {
        FastHasher(LabelHasher::new())
    }
}

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
    fn write_u8(&mut self, b: u8) {
        self.0.mix(u64::from(b) | 0x100);
    }
    fn write_usize(&mut self, n: usize) {
        self.0.mix(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// `BuildHasher` for [`FastHasher`].
pub type FastBuildHasher = std::hash::BuildHasherDefault<FastHasher>;

const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const HASH_MUL: u64 = 0x517c_c1b7_2722_0a95;
/// The folded multiply's constants (digits of pi), so that neither factor
/// is zero for the zero words of empty or short strings.
const FOLD_A: u64 = 0x243f_6a88_85a3_08d3;
const FOLD_B: u64 = 0x1319_8a2e_0370_7344;

/// The eight bytes at `at` as a little-endian word; `at + 8 <= bytes.len()`.
#[inline]
fn word8(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The four bytes at `at` as a little-endian word; `at + 4 <= bytes.len()`.
#[inline]
fn word4(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

impl LabelHasher {
    fn new() -> LabelHasher {
        LabelHasher(HASH_SEED)
    }
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(HASH_MUL);
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        // The first and last up to eight bytes, as two words that overlap
        // in the middle when the string is shorter than 16 bytes; longer
        // strings fold their leading 16-byte blocks first.
        let (a, b) = if len > 16 {
            let mut at = 0;
            while len - at > 16 {
                self.fold(word8(bytes, at), word8(bytes, at + 8));
                at += 16;
            }
            (word8(bytes, len - 16), word8(bytes, len - 8))
        } else if len >= 8 {
            (word8(bytes, 0), word8(bytes, len - 8))
        } else if len >= 4 {
            (word4(bytes, 0), word4(bytes, len - 4))
        } else if len > 0 {
            let first = u64::from(bytes[0]);
            let middle = u64::from(bytes[len / 2]);
            let last = u64::from(bytes[len - 1]);
            (first << 16 | middle << 8 | last, 0)
        } else {
            (0, 0)
        };
        // The length keeps "a" and "a\0", and strings whose words
        // overlap differently, apart.
        self.fold(a, b ^ (len as u64).rotate_right(8));
    }

    /// Folds two words into the state: one full multiply, its high and
    /// low halves xored.
    #[inline]
    fn fold(&mut self, a: u64, b: u64) {
        let product = u128::from(a ^ self.0 ^ FOLD_A) * u128::from(b ^ FOLD_B);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_one_pointer_and_share_their_array() {
        assert_eq!(std::mem::size_of::<Labels>(), std::mem::size_of::<usize>());
        let empty = Labels::empty();
        assert!(empty.is_empty() && empty.iter().next().is_none());
        assert_eq!(empty, Labels::default());
        let labels = Labels::from_pairs([("job", "node"), ("__name__", "up"), ("a", "1")]);
        let copies: Vec<Labels> = (0..1000).map(|_| labels.clone()).collect();
        assert!(copies.iter().all(|c| std::ptr::eq(
            c.iter().next().unwrap().name,
            labels.iter().next().unwrap().name
        )));
        drop(copies);
        assert_eq!(labels.len(), 3);
        assert_eq!(labels.get("job"), Some("node"));
        assert_eq!(labels.metric_name(), Some("up"));
        assert_eq!(labels.to_string(), "up{a=\"1\", job=\"node\"}");
        let other = Labels::from_pairs([("__name__", "up"), ("a", "1"), ("job", "node")]);
        assert_eq!(labels, other);
        assert!(Labels::from_pairs([("a", "0")]) < labels.without_metric_name());
        let hash = |l: &Labels| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            l.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&labels), hash(&other));
        assert_eq!(
            format!("{labels:?}"),
            format!("Labels({:?})", labels.to_vec())
        );
        // Labels dropped from several threads at once free their array once.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let mine = labels.clone();
                std::thread::spawn(move || {
                    let held: Vec<Labels> = (0..1000).map(|_| mine.clone()).collect();
                    held.len()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().ok(), Some(1000));
        }
        assert_eq!(labels.into_vec().len(), 3);
    }

    /// A set built on shared names is the same label set as one built
    /// from pairs: equal, ordered, hashed, shown and read alike, and the
    /// names array lives until its last set goes, from any thread.
    #[test]
    fn shared_names_layout_reads_as_pairs() {
        use std::hash::{Hash, Hasher};
        let hash = |l: &Labels| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            l.hash(&mut h);
            h.finish()
        };
        let names = LabelNames::new(["__name__", "instance", "job"].map(LabelStr::from).to_vec());
        let shared = |instance: &str| {
            Labels::with_names(
                &names,
                ["up", instance, "node"].map(LabelStr::from).to_vec(),
            )
        };
        let pairs = |instance: &str| {
            Labels::from_pairs([("__name__", "up"), ("instance", instance), ("job", "node")])
        };
        let (a, b) = (shared("a:1"), shared("b:1"));
        assert_eq!(names.as_slice().len(), 3);
        assert!(a.names().is_some_and(|n| n.ptr_eq(&names)));
        assert!(pairs("a:1").names().is_none());
        for (s, p) in [(&a, pairs("a:1")), (&b, pairs("b:1"))] {
            assert_eq!(*s, p);
            assert_eq!(p, *s);
            assert_eq!(hash(s), hash(&p));
            assert_eq!(s.stable_hash(), p.stable_hash());
            assert_eq!(s.to_string(), p.to_string());
            assert_eq!(format!("{s:?}"), format!("{p:?}"));
            assert_eq!(s.to_vec(), p.to_vec());
            assert_eq!(s.len(), 3);
            assert_eq!(s.get("job"), Some("node"));
            assert_eq!(s.get("jo"), None);
            assert_eq!(s.get("zzz"), None);
            assert_eq!(s.without_metric_name(), p.without_metric_name());
            assert_eq!(
                s.iter().rev().map(|l| l.name.as_str()).collect::<Vec<_>>(),
                ["job", "instance", "__name__"]
            );
            assert_eq!(s.iter().nth(1).map(|l| l.value.as_str()), p.get("instance"));
            assert_eq!(s.iter().len(), 3);
            assert_eq!(s.at(2).map(|l| l.value.as_str()), Some("node"));
            assert!(s.at(3).is_none());
        }
        assert_ne!(a, b);
        assert!(a < b && pairs("a:1") < b && a < pairs("b:1"));
        assert_eq!(a.cmp(&pairs("a:1")), std::cmp::Ordering::Equal);
        // Another shape is another set, even with the same values.
        let short = Labels::with_names(
            &LabelNames::new(["__name__", "instance"].map(LabelStr::from).to_vec()),
            ["up", "a:1"].map(LabelStr::from).to_vec(),
        );
        assert_ne!(short, a);
        assert!(short < a);
        // The last handle of the names goes with the last set, on any thread.
        drop(names);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let mine = a.clone();
                std::thread::spawn(move || {
                    let held: Vec<Labels> = (0..1000).map(|_| mine.clone()).collect();
                    held.iter().all(|l| l.get("instance") == Some("a:1"))
                })
            })
            .collect();
        drop(b);
        for t in threads {
            assert!(t.join().unwrap());
        }
        assert_eq!(a.get("__name__"), Some("up"));
    }

    #[test]
    fn template_layout_reads_as_pairs() {
        use std::hash::{Hash, Hasher};
        let hash = |l: &Labels| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            l.hash(&mut h);
            h.finish()
        };
        let names = LabelNames::new(
            ["__name__", "cpu", "instance", "job", "mode"]
                .map(LabelStr::from)
                .to_vec(),
        );
        let fixed = vec![
            None,
            None,
            Some("n1:9100".into()),
            Some("node".into()),
            None,
        ];
        let template = LabelTemplate::new(&names, fixed).expect("five names");
        assert_eq!(template.own_count(), 3);
        assert_eq!(template.fixed(2).map(|v| v.as_str()), Some("n1:9100"));
        assert!(template.fixed(0).is_none() && template.fixed(9).is_none());
        // Wrong counts are refused, not built wrong.
        assert!(LabelTemplate::new(&names, vec![None]).is_none());
        assert!(Labels::with_template(&template, vec!["x".into()]).is_none());
        let templated = |name: &str, cpu: &str, mode: &str| {
            Labels::with_template(&template, [name, cpu, mode].map(LabelStr::from).to_vec())
                .expect("three own values")
        };
        let pairs = |name: &str, cpu: &str, mode: &str| {
            Labels::from_pairs([
                ("__name__", name),
                ("cpu", cpu),
                ("instance", "n1:9100"),
                ("job", "node"),
                ("mode", mode),
            ])
        };
        let shared = |name: &str, cpu: &str, mode: &str| {
            Labels::with_names(
                &names,
                [name, cpu, "n1:9100", "node", mode]
                    .map(LabelStr::from)
                    .to_vec(),
            )
        };
        let a = templated("cpu_seconds", "0", "idle");
        let b = templated("cpu_seconds", "1", "user");
        assert!(a.template().is_some_and(|t| t.ptr_eq(&template)));
        assert!(a.names().is_some_and(|n| n.ptr_eq(&names)));
        assert!(shared("x", "0", "idle").template().is_none());
        // Header and template pointer, then three values.
        assert_eq!(a.heap_bytes(), 8 + 8 + 3 * 8);
        assert_eq!(shared("x", "0", "idle").heap_bytes(), 8 + 8 + 5 * 8);
        assert_eq!(pairs("x", "0", "idle").heap_bytes(), 8 + 5 * 16);
        for (t, p) in [
            (&a, pairs("cpu_seconds", "0", "idle")),
            (&b, pairs("cpu_seconds", "1", "user")),
        ] {
            let s = shared(
                t.get("__name__").unwrap_or(""),
                t.get("cpu").unwrap_or(""),
                t.get("mode").unwrap_or(""),
            );
            for other in [&p, &s] {
                assert_eq!(t, other);
                assert_eq!(other, t);
                assert_eq!(hash(t), hash(other));
                assert_eq!(t.stable_hash(), other.stable_hash());
                assert_eq!(t.cmp(other), std::cmp::Ordering::Equal);
            }
            assert_eq!(t.to_string(), p.to_string());
            assert_eq!(format!("{t:?}"), format!("{p:?}"));
            assert_eq!(t.to_vec(), p.to_vec());
            assert_eq!(t.len(), 5);
            assert_eq!(t.get("job"), Some("node"));
            assert_eq!(t.get("instance"), Some("n1:9100"));
            assert_eq!(t.get("jo"), None);
            assert_eq!(t.without_metric_name(), p.without_metric_name());
            assert_eq!(
                t.iter().rev().map(|l| l.to_label()).collect::<Vec<_>>(),
                p.iter().rev().map(|l| l.to_label()).collect::<Vec<_>>()
            );
            for i in 0..6 {
                assert_eq!(t.at(i), p.at(i));
                assert_eq!(t.iter().nth(i), p.iter().nth(i));
            }
        }
        assert_ne!(a, b);
        assert!(a < b && pairs("cpu_seconds", "0", "idle") < b);
        // A template of one fixed name, and one with none.
        let all_own = LabelTemplate::new(&names, vec![None; 5]).expect("five");
        let c = Labels::with_template(
            &all_own,
            ["cpu_seconds", "0", "n1:9100", "node", "idle"]
                .map(LabelStr::from)
                .to_vec(),
        )
        .expect("five own values");
        assert_eq!(c, a);
        // The last handles of names and template go with the last set, on
        // any thread.
        drop((names, template, all_own, c));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let mine = a.clone();
                std::thread::spawn(move || {
                    let held: Vec<Labels> = (0..1000).map(|_| mine.clone()).collect();
                    held.iter().all(|l| l.get("instance") == Some("n1:9100"))
                })
            })
            .collect();
        drop(b);
        for t in threads {
            assert!(t.join().expect("thread"));
        }
        assert_eq!(a.get("mode"), Some("idle"));
    }

    #[test]
    fn label_str_is_one_pointer_and_behaves_like_str() {
        assert_eq!(
            std::mem::size_of::<LabelStr>(),
            std::mem::size_of::<usize>()
        );
        assert_eq!(
            std::mem::size_of::<Option<LabelStr>>(),
            std::mem::size_of::<usize>()
        );
        for text in ["", "a", "node", "späť ✓ 𝄞", &"x".repeat(10_000)] {
            let s = LabelStr::from(text);
            assert_eq!(s.as_str(), text);
            assert_eq!(s.len(), text.len());
            let copy = s.clone();
            assert!(copy.ptr_eq(&s));
            assert_eq!(copy, LabelStr::from(text.to_string()));
            assert!(!LabelStr::from(text).ptr_eq(&s));
            let mut h1 = std::collections::hash_map::DefaultHasher::new();
            let mut h2 = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&s, &mut h1);
            std::hash::Hash::hash(text, &mut h2);
            assert_eq!(
                std::hash::Hasher::finish(&h1),
                std::hash::Hasher::finish(&h2)
            );
        }
        let (a, b) = (LabelStr::from("a"), LabelStr::from("b"));
        assert!(a < b);
        let set: std::collections::HashSet<LabelStr> =
            ["x", "y"].into_iter().map(LabelStr::from).collect();
        assert!(set.contains("x") && !set.contains("z"));
    }

    #[test]
    fn label_str_clones_and_drops_across_threads() {
        let shared = LabelStr::from("shared across threads");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = shared.clone();
                std::thread::spawn(move || {
                    let mut keep = Vec::new();
                    for i in 0..10_000 {
                        keep.push(s.clone());
                        if i % 3 == 0 {
                            keep.pop();
                        }
                    }
                    keep.iter().all(|k| k.as_str() == "shared across threads")
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
        assert_eq!(shared.as_str(), "shared across threads");
    }

    #[test]
    fn from_pairs_sorts_dedups_and_drops_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        let names: Vec<_> = l
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(names, vec![("a", "3"), ("b", "2")]);
    }

    #[test]
    fn display_matches_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b"), ("i", "x")]);
        assert_eq!(l.to_string(), r#"up{i="x", job="a\"b"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::from_pairs([("a", "b")]).to_string(), r#"{a="b"}"#);
    }

    #[test]
    fn stable_hash_is_stable() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        assert_eq!(l.stable_hash(), l.clone().stable_hash());
        assert_ne!(
            l.stable_hash(),
            Labels::from_pairs([("__name__", "up")]).stable_hash()
        );
        // Separators keep ("ab","c") and ("a","bc") apart.
        assert_ne!(
            Labels::from_pairs([("ab", "c")]).stable_hash(),
            Labels::from_pairs([("a", "bc")]).stable_hash()
        );
    }

    /// `same_str` and `str_before` agree with `==` and `<` on strings of
    /// every length up to 40 that differ in one byte, in length, or not
    /// at all.
    #[test]
    fn label_string_comparisons_agree_with_str() {
        let mut words: Vec<String> = vec![String::new()];
        for len in 1..=40usize {
            let base: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            for at in 0..len {
                let mut bytes = base.clone().into_bytes();
                bytes[at] = b'A';
                // Test-built ASCII (one letter replaced by another): always UTF-8.
                words.push(String::from_utf8(bytes).expect("ascii"));
            }
            words.push(base);
        }
        for a in &words {
            for b in &words {
                assert_eq!(same_str(a, b), a == b, "{a:?} == {b:?}");
                assert_eq!(str_before(a, b), a < b, "{a:?} < {b:?}");
            }
        }
    }

    /// Every string length the hasher reads differently (empty, 1-3, 4-7,
    /// 8-16 bytes, longer with and without a partial block): changing any
    /// one byte, or adding a trailing zero byte, changes the hash.
    #[test]
    fn stable_hash_sees_every_byte_of_every_length() {
        for len in 0..=50usize {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let hash = |bytes: &[u8]| {
                // Test-built ASCII letters: always UTF-8.
                let text = std::str::from_utf8(bytes).expect("ascii");
                stable_hash_pairs([("n", text)].into_iter())
            };
            let h = hash(&base);
            for at in 0..len {
                let mut changed = base.clone();
                changed[at] ^= 1;
                assert_ne!(hash(&changed), h, "byte {at} of {len}");
            }
            let mut longer = base.clone();
            longer.push(0);
            assert_ne!(hash(&longer), h, "a zero byte after {len}");
        }
    }

    /// Label sets shaped like a node exporter's: no two of 300,000 share a
    /// hash, and the low bits that pick a head shard spread them as a
    /// uniform hash would.
    #[test]
    fn stable_hash_spreads_realistic_label_sets() {
        let mut hashes = std::collections::HashSet::new();
        let mut shards = [0u32; 64];
        for host in 0..1_000 {
            for cpu in 0..30 {
                for mode in [
                    "idle",
                    "iowait",
                    "irq",
                    "nice",
                    "softirq",
                    "steal",
                    "system",
                    "user",
                    "guest",
                    "guest_nice",
                ] {
                    let instance = format!("host-{host}.example.com:9100");
                    let cpu = cpu.to_string();
                    let h = stable_hash_pairs(
                        [
                            ("__name__", "node_cpu_seconds_total"),
                            ("cpu", cpu.as_str()),
                            ("instance", instance.as_str()),
                            ("job", "node"),
                            ("mode", mode),
                        ]
                        .into_iter(),
                    );
                    assert!(hashes.insert(h), "a collision at host {host}");
                    shards[(h % 64) as usize] += 1;
                }
            }
        }
        // Chi-squared over the 64 shards (63 degrees of freedom): 63 on
        // average, above 123 with a probability of 1e-5 for a uniform
        // hash.
        let mean = 300_000.0 / 64.0;
        let chi: f64 = shards
            .iter()
            .map(|&n| (f64::from(n) - mean).powi(2) / mean)
            .sum();
        assert!(chi < 123.0, "shards {shards:?}: chi-squared {chi}");
    }
}
