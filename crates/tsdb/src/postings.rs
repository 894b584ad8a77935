//! The head's postings lists: the ascending ids of the series that hold one
//! label pair, kept as the differences between neighbours, each a uvarint.
//!
//! A wide head holds every series in about six lists. As `Vec<u64>` those
//! cost 8 bytes an entry plus the vector's spare capacity, 67 bytes a
//! series at a million series; ids are handed out in increasing order, so
//! neighbours in a list are close and most differences fit one or two
//! bytes. Reading a list decodes it, about a nanosecond an id, which a
//! select pays once per list it reads, beside the series lookups it does
//! per id anyway.

use crate::index::{put_uvarint, read_uvarint};

/// Ascending, distinct series ids, delta-coded.
#[derive(Default, Clone, Debug)]
pub(crate) struct IdList {
    /// The first id, then each id minus the one before it, as uvarints.
    bytes: Vec<u8>,
    len: usize,
    /// The largest id, so that appending one needs no decoding.
    last: u64,
}

impl IdList {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `id`, keeping the list ascending; an id already present is not
    /// added twice. Appending a new largest id (the usual case: ids are
    /// handed out in increasing order) writes its difference only; an id
    /// inside the list (replay of a checkpoint followed by segments)
    /// rewrites the list.
    pub(crate) fn insert(&mut self, id: u64) {
        if self.len == 0 || id > self.last {
            let base = if self.len == 0 { 0 } else { self.last };
            put_uvarint(&mut self.bytes, id - base);
            self.len += 1;
            self.last = id;
            return;
        }
        let mut ids = self.to_vec();
        if let Err(pos) = ids.binary_search(&id) {
            ids.insert(pos, id);
            *self = IdList::from_sorted(&ids);
        }
    }

    /// Keeps the ids `keep` accepts; returns whether any went.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) -> bool {
        let ids: Vec<u64> = self.iter().filter(|&id| keep(id)).collect();
        if ids.len() == self.len {
            return false;
        }
        *self = IdList::from_sorted(&ids);
        true
    }

    /// The list of `ids`, which must be ascending and distinct.
    fn from_sorted(ids: &[u64]) -> IdList {
        let mut list = IdList::default();
        for &id in ids {
            list.insert(id);
        }
        list.bytes.shrink_to_fit();
        list
    }

    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            bytes: &self.bytes,
            previous: 0,
        }
    }

    /// Appends the ids to `out`.
    pub(crate) fn extend_into(&self, out: &mut Vec<u64>) {
        out.reserve(self.len);
        out.extend(self.iter());
    }

    pub(crate) fn to_vec(&self) -> Vec<u64> {
        let mut out = Vec::new();
        self.extend_into(&mut out);
        out
    }

    /// Heap bytes held (the coded ids' buffer, spare capacity included).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}

/// The ids of an [`IdList`], ascending.
pub(crate) struct Iter<'a> {
    bytes: &'a [u8],
    previous: u64,
}

impl Iterator for Iter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        let (&first, rest) = self.bytes.split_first()?;
        let delta = if first < 0x80 {
            self.bytes = rest;
            u64::from(first)
        } else {
            // Written by `insert`, so never malformed; should it be, the
            // list ends there.
            let Some((delta, used)) = read_uvarint(self.bytes) else {
                self.bytes = &[];
                return None;
            };
            self.bytes = &self.bytes[used..];
            delta
        };
        self.previous = self.previous.wrapping_add(delta);
        Some(self.previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn appends_inserts_and_removes() {
        let mut list = IdList::default();
        assert!(list.is_empty());
        for id in [0, 1, 2, 300, 70_000, u64::MAX] {
            list.insert(id);
        }
        assert_eq!(list.to_vec(), vec![0, 1, 2, 300, 70_000, u64::MAX]);
        list.insert(150);
        list.insert(2);
        assert_eq!(list.len(), 7);
        assert_eq!(list.to_vec(), vec![0, 1, 2, 150, 300, 70_000, u64::MAX]);
        assert!(list.retain(|id| id % 2 == 0));
        assert_eq!(list.to_vec(), vec![0, 2, 150, 300, 70_000]);
        assert!(!list.retain(|_| true));
        list.insert(70_001);
        assert_eq!(list.to_vec(), vec![0, 2, 150, 300, 70_000, 70_001]);
        assert!(list.retain(|_| false));
        assert!(list.is_empty());
        assert_eq!(list.iter().count(), 0);
    }

    /// Sequential ids cost a byte each, not eight.
    #[test]
    fn dense_ids_take_a_byte_each() {
        let mut list = IdList::default();
        for id in 1..=100_000u64 {
            list.insert(id * 3);
        }
        assert_eq!(list.len(), 100_000);
        assert!(list.bytes.len() <= 100_001, "{}", list.bytes.len());
    }

    proptest! {
        /// Whatever the order of inserts and removals, the list holds what a
        /// sorted set would.
        #[test]
        fn agrees_with_a_sorted_set(
            ids in proptest::collection::vec(any::<u64>(), 0..200),
            small in proptest::collection::vec(0u64..1000, 0..200),
            modulus in 2u64..5,
        ) {
            let mut list = IdList::default();
            let mut set = std::collections::BTreeSet::new();
            for id in ids.iter().chain(&small) {
                list.insert(*id);
                set.insert(*id);
            }
            prop_assert_eq!(list.len(), set.len());
            prop_assert_eq!(list.to_vec(), set.iter().copied().collect::<Vec<_>>());
            list.retain(|id| id % modulus != 0);
            set.retain(|id| id % modulus != 0);
            prop_assert_eq!(list.len(), set.len());
            prop_assert_eq!(list.to_vec(), set.into_iter().collect::<Vec<_>>());
        }
    }
}
