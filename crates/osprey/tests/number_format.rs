//! Numbers in query answers, digit for digit against a running Prometheus
//! (2.42, the one installed here): a sample's value (`vector(x)`), a
//! scalar result (`x`) and a label `count_values` writes, for floats of
//! every magnitude and for exact ties between two shortest digit strings,
//! where Go keeps the even digit (Rust's `Display` would round up).
//!
//! A missing `prometheus` skips the comparison with a reason, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::net::SocketAddr;

use serde_json::Value;
use support::{Server, free_addr, http, urlencode};

#[allow(
    clippy::excessive_precision,
    reason = "the first values are written exactly: each is a tie between two shortest decimals"
)]
fn values() -> Vec<f64> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Exact ties: the float lies halfway between two 17-digit decimals.
    let mut values = vec![
        2_755_870_554.597_656_25,
        2_691_303.248_535_156_25,
        -99_954_122_964_599.625,
        25_277_942_650_820.312_5,
        1e21,
        -1e21,
        9.999_999_999_999_999e20,
        1e-6,
        9.999_999e-7,
        1e-5,
        2.5e-7,
        0.1 + 0.2,
        9_007_199_254_740_993.0,
        1e16,
        -0.0,
        // Few decimals (model::float's short path).
        1.005,
        -0.05,
        0.001,
        999_999_999_999.999,
        71.23,
    ];
    for i in 0..120u64 {
        let r = next();
        let v = match i % 4 {
            0 => f64::from_bits(r),
            // Binary fractions of large numbers: many end in an exact tie.
            1 => (r >> 20) as f64 * 10f64.powi((r % 40) as i32 - 20) / 4096.0,
            2 => ((r >> 8) as f64).sin() * 10f64.powi((r % 50) as i32 - 25),
            _ => (r % 10_000_000) as f64 / 100.0,
        };
        if v.is_finite() {
            values.push(v);
        }
    }
    values
}

/// The answer's JSON for one query, the evaluation time fixed.
fn answer(addr: SocketAddr, query: &str) -> Value {
    let path = format!("/api/v1/query?query={}&time=1", urlencode(query));
    let (status, body) = http(addr, "GET", &path, &[], &[]).unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{query}: {json}");
    json
}

#[test]
fn numbers_are_written_as_prometheus_writes_them() {
    let values = values();
    // The comparison means something only if the values include ties
    // where the two roundings differ.
    let ties = values
        .iter()
        .filter(|v| {
            let mut go = String::new();
            model::float::write_fixed(&mut go, **v);
            go != format!("{v}")
        })
        .count();
    assert!(ties >= 4, "only {ties} tied values");

    if !support::prometheus::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let osprey = Server::start(
        &dir.path().join("osprey-data"),
        free_addr(),
        &dir.path().join("osprey.log"),
    );
    let (_prometheus, prometheus) = support::prometheus::start(dir.path(), "global: {}\n");
    let mut failures = Vec::new();
    for v in &values {
        // Both parsers read the shortest round-trip text back exactly.
        let literal = format!("{v:e}");
        for query in [
            format!("vector({literal})"),
            format!("({literal})"),
            format!("count_values(\"v\", vector({literal}))"),
        ] {
            let (ours, theirs) = (answer(osprey.addr, &query), answer(prometheus, &query));
            if ours != theirs {
                failures.push(format!(
                    "{query}\n    osprey:     {ours}\n    prometheus: {theirs}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} answers differ:\n{}",
        failures.len(),
        values.len() * 3,
        failures.join("\n")
    );
}
