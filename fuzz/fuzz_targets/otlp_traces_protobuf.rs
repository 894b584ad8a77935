//! Fuzzes the OTLP traces protobuf decoder and the conversion into stored
//! spans: arbitrary bytes as an `ExportTraceServiceRequest` body. Neither
//! may panic; every span is either converted (non-zero IDs) or counted as
//! refused, and the converted spans survive the trace WAL encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = otlp::decode_traces_protobuf(data) else {
        return;
    };
    check(&request);
});

fn check(request: &otlp::proto_trace::ExportTraceServiceRequest) {
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    let converted = server::traces::convert(request);
    assert_eq!(converted.spans.len() + converted.rejected as usize, total);
    for s in &converted.spans {
        assert_ne!(s.trace_id, [0; 16]);
        assert_ne!(s.span_id, [0; 8]);
        assert!(!s.service.is_empty());
    }
    let batch = traces::encode_batch(&converted.spans);
    let back = traces::decode_batch(&batch).expect("own encoding decodes");
    assert_eq!(back.len(), converted.spans.len());
}
