//! Fuzzes the PromQL parser alone, much faster than the `promql` target,
//! which also evaluates: parse arbitrary text with the default options and
//! with every experimental feature on, render any error (its `line:column`
//! position included), print what parses and parse the printed text again,
//! which must give the same tree. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "shared/promql_round_trip.rs"]
mod promql_round_trip;
use promql_round_trip::round_trip;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    for options in [promql::ParseOptions::OSPREY, promql::ParseOptions::ALL] {
        match promql::parse_with(query, options) {
            Ok(expr) => round_trip(&expr, options),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
