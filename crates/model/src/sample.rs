//! Samples and staleness markers.

/// One float sample: a timestamp in milliseconds since the Unix epoch and a
/// value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

/// The bit pattern of Prometheus's staleness marker, a signalling-free NaN
/// distinct from the NaN that arithmetic produces. Storage keeps it exactly.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as an f64.
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// Whether a value is the staleness marker (bit-exact, not any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_nan_is_not_plain_nan() {
        assert!(STALE_NAN.is_nan());
        assert!(is_stale_nan(STALE_NAN));
        assert!(!is_stale_nan(f64::NAN));
    }
}
