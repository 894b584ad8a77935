//! Fuzzes rule files: YAML, PromQL expressions and label/annotation
//! templates together, through `rules::parse_rule_file` (what
//! `osprey check rules` and reloads run). Errors are fine; panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let _ = rules::parse_rule_file("fuzz.yml", text);
});
