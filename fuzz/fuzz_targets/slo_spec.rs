//! Fuzzes SLO spec files: YAML streams of Sloth `prometheus/v1` and
//! OpenSLO v1 documents, the query templates they hold and the rules
//! generated from them, through `slo::parse_file`, `slo::generate_all` and
//! `slo::print::rule_file` (what `osprey check slo`, `osprey slo generate`
//! and reloads run). A spec that parses must generate rules that osprey's
//! own rule-file checker reads back. Errors are fine; panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let options = slo::ParseOptions {
        default_period: slo::Period::Rolling {
            ms: 30 * 86_400_000,
        },
        budget_method: slo::BudgetMethod::Time,
    };
    let Ok(slos) = slo::parse_file("fuzz.yml", text, &options) else {
        return;
    };
    let generate = slo::GenerateOptions {
        mode: "fuzz".to_string(),
        version: "fuzz".to_string(),
        extra_labels: Default::default(),
    };
    let Ok(groups) = slo::generate_all(&slos, &generate) else {
        return;
    };
    let file = slo::print::rule_file("fuzz", &groups);
    if let Err(errors) = rules::parse_rule_file("generated.yml", &file) {
        panic!("generated rules do not read back: {errors:?}\n{file}");
    }
});
