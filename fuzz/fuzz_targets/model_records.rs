//! Fuzzes the model-quality API's bodies: arbitrary bytes as a
//! predictions, actuals and reference body (plain and as gzip), through
//! the parser and a fresh in-memory `models::Models` (checks, memory,
//! one evaluation). Nothing may panic; a refusal must say what is wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Envelopes that put the fuzzer's bytes inside an otherwise valid body,
/// so that random bytes reach the record and field readers instead of
/// stopping at the first brace.
const ENVELOPES: [(&str, &str); 4] = [
    ("", ""),
    ("{\"records\": [", "]}"),
    (
        "{\"records\": [{\"id\": \"a\", \"version\": \"v1\", \"timestamp\": 1700000000, \"prediction\": 1, \"features\": {",
        "}}]}",
    ),
    (
        "{\"records\": [{\"id\": \"a\", \"version\": \"v1\", \"timestamp\": 1700000000, \"features\": {\"x\": 1}, \"prediction\": ",
        "}]}",
    ),
];

fuzz_target!(|raw: &[u8]| {
    for (before, after) in ENVELOPES {
        let mut data = Vec::with_capacity(before.len() + raw.len() + after.len());
        data.extend_from_slice(before.as_bytes());
        data.extend_from_slice(raw);
        data.extend_from_slice(after.as_bytes());
        one(&data);
    }
});

fn one(data: &[u8]) {
    for kind in [models::records::Kind::Predictions, models::records::Kind::Reference] {
        if let Err(error) = models::records::parse_predictions(data, kind) {
            assert!(!error.message.is_empty());
        }
    }
    let _ = models::records::parse_actuals(data);
    let _ = models::decode_body(data, true, 1 << 20);

    // The same bytes as each request of one model, then an evaluation.
    let m = models::Models::in_memory();
    for endpoint in 0..3 {
        let result = match endpoint {
            0 => m.set_reference("fuzz", data),
            1 => m.ingest_predictions("fuzz", data),
            _ => m.ingest_actuals("fuzz", data),
        };
        if let Err(error) = result {
            assert!(!error.message.is_empty());
        }
    }
    let _ = m.evaluate_model("fuzz", 1_700_000_000_000);
}
