//! Fuzzes the trace query APIs' parameter parsers: Go durations (Jaeger's
//! minDuration, TraceQL), trace IDs and the TraceQL subset of Tempo's
//! search. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = server::trace_api::parse_go_duration(text);
    if let Ok(id) = server::trace_api::parse_trace_id(text) {
        assert!(text.trim().len() <= 32);
        let _ = id;
    }
    let mut query = traces::Query::default();
    let _ = server::trace_api::parse_traceql(text, &mut query);
});
