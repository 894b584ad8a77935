//! Fuzzes the Redis exporter's readers of `INFO`, `CONFIG GET *` and
//! `CLUSTER INFO` text: arbitrary text must not panic, and what comes out
//! must be valid text exposition.
#![no_main]

use exporters::redis::info;
use exporters::text::Families;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut families = Families::new();
    // The database count comes from the server too; bound it as CONFIG's
    // reader does not (a huge count only writes many zero series).
    let db_count = text.len() as u32 % 64;
    info::info_metrics(text, db_count, 1_700_000_000.0, &mut families);
    info::cluster_metrics(text, &mut families);
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = info::config_metrics(&pairs, &mut families);
    let mut out = String::new();
    families.write(&mut out);
    for entry in model::exposition::Parser::new(out.as_bytes(), model::exposition::Format::Text) {
        if let Err(error) = entry {
            panic!("invalid exposition ({error}):\n{out}");
        }
    }
});
