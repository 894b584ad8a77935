//! Fuzzes the PostgreSQL exporter's readers: data source names (URL and
//! `key=value` forms, redaction), the binary `numeric` and `inet` values,
//! settings and version strings. None may panic, a redacted `key=value`
//! DSN must not hold a `password=` value, and redacting is idempotent.
#![no_main]

use exporters::postgres::{dsn, queries, value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = value::numeric(data);
    let _ = value::inet(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(split) = dsn::split(text) {
        let _ = dsn::split(&split.rest);
    }
    let _ = dsn::key_values(text);
    let redacted = dsn::redact(text);
    let is_url = text.trim().starts_with("postgres://") || text.trim().starts_with("postgresql://");
    if !is_url && let Ok(pairs) = dsn::key_values(&redacted) {
        for (key, value) in pairs {
            assert!(key != "password" || value == "PASSWORD_REMOVED", "{redacted}");
        }
    }
    // Redacting twice changes nothing more.
    assert_eq!(dsn::redact(&redacted), redacted);
    let _ = exporters::postgres::server_label(text);
    let mut parts = text.splitn(5, '\u{0}');
    let (name, setting, unit, desc, vartype) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let _ = queries::setting_metric(name, setting, unit, desc, vartype);
    let _ = queries::short_version(text);
});
