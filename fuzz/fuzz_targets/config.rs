//! Fuzzes the config readers: arbitrary text as an osprey config (every
//! section, the `http_config` fields and the inline alertmanager.yml), as
//! an alertmanager.yml and as a blackbox.yml. None may panic, and every
//! error must name a file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // No base directory: relative paths the text names stay relative to a
    // the working directory; the fuzzer writes no files.
    if let Err(error) = config::parse("fuzz.yml", text, None) {
        assert!(!error.file.is_empty());
        let _ = error.to_string();
    }
    if let Err(error) = config::alertmanager::parse("am.yml", text, None) {
        let _ = error.to_string();
    }
    if let Err(error) = config::blackbox::parse_blackbox("bb.yml", text, None) {
        let _ = error.to_string();
    }
    let _ = config::prometheus::parse_file_sd("sd.yml", text);
});
