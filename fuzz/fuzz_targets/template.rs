//! Fuzzes the template language: parse arbitrary text with Prometheus's
//! functions and execute it against small data (a map with labels, a list,
//! numbers). Nothing may panic or overflow the stack; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use template::{MissingKey, Options, Templates, Value, funcs};

fn data() -> Value {
    let mut labels = BTreeMap::new();
    labels.insert("job".to_string(), "node".to_string());
    labels.insert("instance".to_string(), "host:9100".to_string());
    let sample: BTreeMap<String, Value> = [
        ("Labels".to_string(), Value::from(labels.clone())),
        ("Value".to_string(), Value::Float(1.5e6)),
    ]
    .into_iter()
    .collect();
    let mut root = BTreeMap::new();
    root.insert("Labels".to_string(), Value::from(labels));
    root.insert("Value".to_string(), Value::Float(0.25));
    root.insert("List".to_string(), Value::from(vec![Value::from(sample), Value::Int(3), Value::from("s")]));
    Value::from(root)
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if text.len() > 2048 {
        return;
    }
    for missing_key in [MissingKey::Zero, MissingKey::Default] {
        let mut set = Templates::new(funcs::prometheus(), Options { missing_key });
        if set.parse("fuzz", text).is_ok() {
            let _ = set.execute("fuzz", &data());
        }
    }
    let mut set = Templates::new(funcs::alertmanager(), Options { missing_key: MissingKey::Default });
    if set.parse("fuzz", text).is_ok() {
        let _ = set.execute("fuzz", &data());
    }
});
