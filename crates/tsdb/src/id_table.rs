//! A table of values by a `u64` id that is handed out in increasing order,
//! as the head's series ids are: pages of [`PAGE`] slots indexed by the id,
//! where a hash table paid 8 bytes a slot at a load between 44 and 87 %
//! (about 19 bytes a series on a head of a million, by where that count
//! fell between two doublings) and a hash per lookup.
//!
//! Ids that leave a page unevenly would pin mostly empty pages: a page whose
//! live ids fall below half of it (and that is not among the newest, which
//! are still filling) hands its values to a hash table of stragglers and is
//! freed, so a page costs at most 16 bytes a value and a straggler the hash
//! table's slot. Pages below the oldest one still held are dropped from the
//! front, so the page list follows the live ids, not every id ever given.
//! Ids far beyond the newest page (which a head never hands out, but a
//! damaged log could hold) go to the stragglers too, rather than growing
//! the page list to reach them.

use crate::head::spread;
use std::collections::VecDeque;

/// Ids a page holds: 4 KiB of slots.
const PAGE_BITS: u32 = 9;
const PAGE: usize = 1 << PAGE_BITS;

/// A page is freed, its values moved to the stragglers, when fewer ids
/// than this are live in it.
const MIN_LIVE: usize = PAGE / 2;

/// How many pages the newest pages may be past the newest one held before
/// an id goes to the stragglers instead.
const MAX_GAP_PAGES: u64 = 1 << 12;

/// What a table holds: a value that knows its id. The id must not change
/// while the value is in the table.
pub(crate) trait HasId {
    fn id(&self) -> u64;
}

struct Page<T> {
    live: usize,
    slots: [Option<T>; PAGE],
}

pub(crate) struct IdTable<T> {
    /// Page `first_page + i` holds ids `(first_page + i) << PAGE_BITS` on.
    pages: VecDeque<Option<Box<Page<T>>>>,
    first_page: u64,
    stragglers: hashbrown::HashTable<T>,
    len: usize,
}

impl<T> Default for IdTable<T> {
    fn default() -> IdTable<T> {
        IdTable {
            pages: VecDeque::new(),
            first_page: 0,
            stragglers: hashbrown::HashTable::new(),
            len: 0,
        }
    }
}

impl<T: HasId> IdTable<T> {
    /// Where `id`'s page is in `pages`, if it is in the page list's range.
    fn page_index(&self, id: u64) -> Option<usize> {
        let page = (id >> PAGE_BITS).checked_sub(self.first_page)?;
        (page < self.pages.len() as u64).then_some(page as usize)
    }

    pub(crate) fn get(&self, id: u64) -> Option<&T> {
        let slot = self
            .page_index(id)
            .and_then(|p| self.pages[p].as_deref())
            .and_then(|page| page.slots[id as usize % PAGE].as_ref());
        match slot {
            Some(value) => Some(value),
            None if self.stragglers.is_empty() => None,
            None => self.stragglers.find(spread(id), |v| v.id() == id),
        }
    }

    /// Adds a value whose id the table does not hold yet (one it holds is
    /// replaced).
    pub(crate) fn insert(&mut self, value: T) {
        let id = value.id();
        let page = id >> PAGE_BITS;
        if self.pages.is_empty() {
            self.first_page = page;
        }
        let last = self.first_page + self.pages.len() as u64;
        if page < self.first_page || page > last.saturating_add(MAX_GAP_PAGES) {
            // Older than every page held (such ids have left, or were
            // moved to the stragglers), or implausibly far ahead.
            self.insert_straggler(value);
            return;
        }
        while self.first_page + self.pages.len() as u64 <= page {
            self.pages.push_back(None);
        }
        let index = (page - self.first_page) as usize;
        let page = self.pages[index].get_or_insert_with(|| {
            Box::new(Page {
                live: 0,
                slots: std::array::from_fn(|_| None),
            })
        });
        let slot = &mut page.slots[id as usize % PAGE];
        if slot.is_none() {
            page.live += 1;
            self.len += 1;
            // A straggler of a retired page that came back (a log replay
            // may add an id again) is held once, here.
            if !self.stragglers.is_empty()
                && let Ok(entry) = self.stragglers.find_entry(spread(id), |v| v.id() == id)
            {
                entry.remove();
                self.len -= 1;
            }
        }
        *slot = Some(value);
    }

    fn insert_straggler(&mut self, value: T) {
        let id = value.id();
        match self.stragglers.find_mut(spread(id), |v| v.id() == id) {
            Some(held) => *held = value,
            None => {
                self.stragglers
                    .insert_unique(spread(id), value, |v| spread(v.id()));
                self.len += 1;
            }
        }
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let Some(index) = self.page_index(id) else {
            return self.remove_straggler(id);
        };
        let Some(page) = self.pages[index].as_deref_mut() else {
            return self.remove_straggler(id);
        };
        let Some(value) = page.slots[id as usize % PAGE].take() else {
            return self.remove_straggler(id);
        };
        page.live -= 1;
        self.len -= 1;
        // The newest two pages are still filling; older ones only empty.
        if page.live == 0 || (page.live < MIN_LIVE && index + 2 < self.pages.len()) {
            self.retire_page(index);
        }
        Some(value)
    }

    fn remove_straggler(&mut self, id: u64) -> Option<T> {
        let entry = self
            .stragglers
            .find_entry(spread(id), |v| v.id() == id)
            .ok()?;
        self.len -= 1;
        Some(entry.remove().0)
    }

    /// Moves a page's values to the stragglers and frees it, then drops
    /// freed pages from the front of the list.
    fn retire_page(&mut self, index: usize) {
        if let Some(page) = self.pages[index].take() {
            for value in page.slots.into_iter().flatten() {
                let id = value.id();
                self.stragglers
                    .insert_unique(spread(id), value, |v| spread(v.id()));
            }
        }
        while self.pages.front().is_some_and(Option::is_none) {
            self.pages.pop_front();
            self.first_page += 1;
        }
        if self.pages.is_empty() {
            self.first_page = 0;
        }
    }

    /// Every value: those in pages by id, then the stragglers.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.pages
            .iter()
            .flatten()
            .flat_map(|page| page.slots.iter().flatten())
            .chain(self.stragglers.iter())
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes of the table itself, for the head's estimate: the pages,
    /// the page list and the stragglers' table (8 bytes and a control byte
    /// a slot for a pointer-sized value).
    pub(crate) fn heap_bytes(&self) -> usize {
        let pages = self.pages.iter().flatten().count();
        pages * std::mem::size_of::<Page<T>>()
            + self.pages.capacity() * std::mem::size_of::<usize>()
            + self.stragglers.capacity() * (std::mem::size_of::<T>() + 1)
    }

    /// How many pages are held, and how many values are stragglers.
    #[cfg(test)]
    fn shape(&self) -> (usize, usize) {
        (self.pages.iter().flatten().count(), self.stragglers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq)]
    struct Item(u64, u32);

    impl HasId for Item {
        fn id(&self) -> u64 {
            self.0
        }
    }

    fn check(table: &IdTable<Item>, model: &BTreeMap<u64, u32>) {
        assert_eq!(table.len(), model.len());
        for (&id, &v) in model {
            assert_eq!(table.get(id), Some(&Item(id, v)), "id {id}");
        }
        let mut seen: Vec<u64> = table.values().map(|i| i.0).collect();
        seen.sort_unstable();
        assert_eq!(seen, model.keys().copied().collect::<Vec<_>>());
    }

    #[test]
    fn holds_what_a_map_holds_through_churn() {
        let mut table = IdTable::default();
        let mut model = BTreeMap::new();
        let mut next = 1u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..40 {
            // New ids, in order, as a head hands them out.
            for _ in 0..3000 {
                table.insert(Item(next, round));
                model.insert(next, round);
                next += 1;
            }
            // Churn: most of the older ids go, some stay for good.
            let ids: Vec<u64> = model.keys().copied().collect();
            for id in ids {
                if random() % 100 < 45 && id % 7 != 0 {
                    assert_eq!(table.remove(id).map(|i| i.0), Some(id));
                    model.remove(&id);
                }
            }
            assert!(table.get(next + 5).is_none() && table.remove(next + 5).is_none());
            check(&table, &model);
        }
        let (pages, stragglers) = table.shape();
        // Sparse pages were retired rather than kept: a page holds at least
        // half a page of values, except the newest two.
        assert!(pages * MIN_LIVE <= model.len() + 2 * PAGE, "{pages} pages");
        assert!(stragglers > 0);
        // Old ids re-added (as a log replay may) and far ones still work.
        for id in [3u64, 9, next + (MAX_GAP_PAGES + 10) * PAGE as u64] {
            table.insert(Item(id, 7));
            model.insert(id, 7);
        }
        check(&table, &model);
        // Emptied, the table keeps no pages.
        for id in model.keys().copied().collect::<Vec<_>>() {
            assert!(table.remove(id).is_some());
        }
        model.clear();
        check(&table, &model);
        assert_eq!(table.shape(), (0, 0));
    }

    #[test]
    fn dense_ids_take_a_slot_each() {
        let mut table = IdTable::default();
        for id in 1..=100_000u64 {
            table.insert(Item(id, 0));
        }
        let (pages, stragglers) = table.shape();
        assert_eq!((pages, stragglers), (100_000 / PAGE + 1, 0));
        // A slot each (16 bytes for this test's values, 8 for a series
        // handle), and a page not yet full.
        let slot = std::mem::size_of::<Option<Item>>();
        assert!(table.heap_bytes() <= (100_000 + PAGE) * slot + 4096);
        // Replacing a value keeps one entry.
        table.insert(Item(5, 1));
        assert_eq!(table.len(), 100_000);
        assert_eq!(table.get(5), Some(&Item(5, 1)));
    }
}
