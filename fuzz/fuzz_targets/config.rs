//! Fuzzes the config readers: arbitrary text as an osprey config (every
//! section, the `http_config` fields and the inline alertmanager.yml), as
//! an alertmanager.yml and as a blackbox.yml. None may panic, and every
//! error must name a file. A `costs:` section that is accepted gives a
//! rule file the rule parser accepts (names and values are quoted).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // No base directory: relative paths the text names stay relative to a
    // the working directory; the fuzzer writes no files.
    match config::parse("fuzz.yml", text, None) {
        Err(error) => {
            assert!(!error.file.is_empty());
            let _ = error.to_string();
        }
        Ok(config) => {
            if let Some(costs) = &config.costs {
                let rules = cost::rule_file(costs);
                if !rules.is_empty()
                    && let Err(errors) = rules::parse_rule_file("costs", &rules)
                {
                    panic!("generated cost rules do not parse: {errors:?}\n{rules}");
                }
            }
        }
    }
    if let Err(error) = config::alertmanager::parse("am.yml", text, None) {
        let _ = error.to_string();
    }
    if let Err(error) = config::blackbox::parse_blackbox("bb.yml", text, None) {
        let _ = error.to_string();
    }
    let _ = config::prometheus::parse_file_sd("sd.yml", text);
});
