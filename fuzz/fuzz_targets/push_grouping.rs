//! Fuzzes the Pushgateway API's input: the grouping path after
//! `/metrics/` and the push body, read as text and as delimited
//! protobuf. No parser may panic; an accepted
//! path has a non-empty job, and an accepted body's samples all carry the
//! grouping labels.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (path, body) = match data.iter().position(|b| *b == 0) {
        Some(split) => (&data[..split], &data[split + 1..]),
        None => (data, &data[..0]),
    };
    let path = String::from_utf8_lossy(path);
    let Ok(grouping) = server::push::parse_grouping_path(&path) else {
        return;
    };
    assert!(grouping.get("job").is_some_and(|job| !job.is_empty()));
    let text = server::push::parse_push_body(body, &grouping);
    let protobuf = server::push::protobuf::parse_protobuf_body(body, &grouping);
    for parsed in [text, protobuf].into_iter().flatten() {
        for family in &parsed.families {
            for (labels, _) in &family.samples {
                for (name, value) in &grouping {
                    let want = (!value.is_empty()).then_some(value.as_str());
                    assert_eq!(labels.get(name), want);
                }
            }
        }
    }
});
