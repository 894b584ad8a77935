//! Hints to the processor that change nothing the program can observe.

/// The cache line size of the processors osprey runs on (x86_64, arm64).
pub const CACHE_LINE: usize = 64;

/// Asks the processor to start loading the cache line holding `address`.
/// Only a hint: it changes no memory and never faults, whatever the address.
#[inline]
pub fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch has no effect on the program's memory and cannot
    // fault, for any address; SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
