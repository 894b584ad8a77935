//! A handle on each request thread's allocator arena, so that the free top
//! of the arena can be given back after a burst of writes.
//!
//! glibc gives each thread that allocates an arena of its own and keeps the
//! free top of every arena but the main one resident: `malloc_trim` gives
//! back free pages inside an arena but never shrinks a thread arena's top.
//! Only a free does that, in the arena of the freed block, when the block
//! (joined with its free neighbours) is at least 64 KiB and the top is over
//! the trim threshold. A request's buffers are freed while the threshold is
//! high (trimming during a burst only makes the next request fault its
//! pages in again), so after the wide profile's remote-write ingest the tops
//! of the write threads' arenas held about 12 bytes per series, free but
//! resident.
//!
//! Each thread that allocates request buffers (the write pool's, tokio's
//! workers) calls [`hold`], which keeps one unused block of [`KEY_BYTES`]
//! from its arena (its pages are never touched, so it costs no resident
//! memory beyond its header). When a burst ends, the binary lowers the trim
//! threshold, frees every key with [`take_all`] (each free shrinks its
//! arena's top) and raises the threshold again. A thread takes a new key at
//! its next [`hold`].

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A key's size: a free of a block this large always lets glibc trim the
/// block's arena (its limit is 64 KiB), and the block stays below every
/// mmap threshold the binary sets, so it comes from the thread's arena.
pub const KEY_BYTES: usize = 96 << 10;

/// The keys held now; [`take_all`] empties it.
static KEYS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Bumped by [`take_all`]: a thread whose key is from an older round takes
/// a new one.
static ROUND: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The round of this thread's key; `u64::MAX` for none yet.
    static HELD: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Makes sure the calling thread holds a key of the current round: one
/// atomic load when it does.
pub fn hold() {
    let round = ROUND.load(Ordering::Acquire);
    let _ = HELD.try_with(|held| {
        if held.get() == round {
            return;
        }
        held.set(round);
        // Allocated here, on the calling thread, so from its arena.
        let key = Vec::<u8>::with_capacity(KEY_BYTES);
        match KEYS.lock() {
            Ok(mut keys) => keys.push(key),
            Err(poisoned) => poisoned.into_inner().push(key),
        }
    });
}

/// Every key held now. Dropping them is what shrinks the arenas' tops; the
/// caller does that while the trim threshold is low.
pub fn take_all() -> Vec<Vec<u8>> {
    let keys = match KEYS.lock() {
        Ok(mut keys) => std::mem::take(&mut *keys),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    ROUND.fetch_add(1, Ordering::AcqRel);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_holds_one_key_a_round_and_takes_a_new_one_after_a_take() {
        // Write-pool threads of other tests may add keys meanwhile (a few
        // at most): a hundred holds on one thread must add one key, not a
        // hundred, and a take must make the thread hold a new one.
        let counted = std::thread::spawn(|| {
            drop(take_all());
            for _ in 0..100 {
                hold();
            }
            let first = take_all();
            for _ in 0..100 {
                hold();
            }
            let second = take_all();
            (first, second)
        })
        .join();
        let Ok((first, second)) = counted else {
            panic!("the holding thread panicked");
        };
        for keys in [&first, &second] {
            assert!((1..20).contains(&keys.len()), "{} keys", keys.len());
            assert!(keys.iter().all(|k| k.capacity() >= KEY_BYTES));
        }
    }
}
