//! FNV-1a, the hash whose exact values osprey shares with Go programs and
//! with files it wrote before: Prometheus's label fingerprints,
//! blackbox_exporter's `probe_ip_addr_hash`, remote-write position-file
//! names, UI ETags, and the phase that spreads scrapes and rule evaluations
//! over their interval.
//!
//! The arithmetic is the `fnv` crate's (64 bits) and the `hash32` crate's
//! (32 bits); this module fixes the interface every crate uses and checks
//! both against the reference values. It is neither a hash for in-memory
//! maps on hot paths (that is [`crate::labels::FastHasher`]) nor one for
//! security.

use hash32::Hasher as _;
use std::hash::Hasher as _;

/// FNV-1a, 64 bits, of `bytes`: Go's `hash/fnv.New64a`.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hasher = Fnv1a64::new();
    hasher.write(bytes);
    hasher.finish()
}

/// FNV-1a, 32 bits, of `bytes`: Go's `hash/fnv.New32a`.
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut hasher = hash32::FnvHasher::default();
    hasher.write(bytes);
    hasher.finish32()
}

/// FNV-1a, 64 bits, fed in pieces: the value is [`fnv1a_64`] of the
/// pieces joined.
pub struct Fnv1a64(fnv::FnvHasher);

impl Fnv1a64 {
    /// A hash of nothing yet (the FNV offset basis).
    pub fn new() -> Fnv1a64 {
        Fnv1a64(fnv::FnvHasher::default())
    }

    /// Feeds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl Default for Fnv1a64 {
    fn default() -> Fnv1a64 {
        Fnv1a64::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Go's `hash/fnv` tests, which Landon Curt Noll's FNV
    /// reference page gives too: (input, FNV-1a 32, FNV-1a 64).
    const VECTORS: [(&[u8], u32, u64); 6] = [
        (b"", 0x811c_9dc5, 0xcbf2_9ce4_8422_2325),
        (b"a", 0xe40c_292c, 0xaf63_dc4c_8601_ec8c),
        (b"ab", 0x4d25_05ca, 0x089c_4407_b545_986a),
        (b"abc", 0x1a47_e90b, 0xe71f_a219_0541_574b),
        (b"foobar", 0xbf9c_f968, 0x8594_4171_f739_67e8),
        (b"chongo was here!\n", 0xd499_30d5, 0x4681_0940_eff5_f915),
    ];

    #[test]
    fn known_answers() {
        for (input, want_32, want_64) in VECTORS {
            assert_eq!(fnv1a_32(input), want_32, "FNV-1a 32 of {input:?}");
            assert_eq!(fnv1a_64(input), want_64, "FNV-1a 64 of {input:?}");
        }
    }

    #[test]
    fn pieces_hash_as_their_concatenation() {
        let mut hasher = Fnv1a64::new();
        hasher.write(b"foo");
        hasher.write(b"");
        hasher.write(b"bar");
        assert_eq!(hasher.finish(), fnv1a_64(b"foobar"));
        assert_eq!(Fnv1a64::default().finish(), fnv1a_64(b""));
    }
}
