//! Parsing of the units people type on the command line: Prometheus
//! durations (`30d`, `1h30m`, `500ms`, from `model`) and byte sizes
//! (`512MB`, `1GiB`).

pub use model::duration::parse_duration_ms;

/// Parses a byte size: an integer with an optional unit `B`, `KB`, `MB`,
/// `GB`, `TB`, `PB` (powers of 1024, as Prometheus reads them) or the
/// explicit `KiB`, `MiB`, `GiB`, `TiB`. `0` means no limit to callers.
pub fn parse_size_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("not a valid size: {s:?} (expected e.g. 512MB, 10GB, 1TB)");
    let digits = s.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let mult: u64 = match &s[digits..] {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        "PB" | "PiB" => 1 << 50,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_bytes("512MB"), Ok(512 << 20));
        assert_eq!(parse_size_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size_bytes("100"), Ok(100));
        for bad in ["", "MB", "1.5GB", "1XB", "-1GB"] {
            assert!(parse_size_bytes(bad).is_err(), "{bad:?} should fail");
        }
    }
}
