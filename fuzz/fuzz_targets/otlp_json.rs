//! Fuzzes the OTLP metrics json decoder and the translation behind it:
//! arbitrary bytes as an `ExportMetricsServiceRequest` body. Neither may
//! panic; every translated sample has a metric name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = otlp::decode_json(data) else {
        return;
    };
    let translator = otlp::Translator::new(otlp::TranslationOptions::prometheus_defaults());
    let mut translated = translator.translate(&request);
    for (labels, _, _) in &translated.samples {
        assert!(labels.metric_name().is_some_and(|n| !n.is_empty()));
    }
    translator.apply(&mut translated);
    let _ = translator.translate(&request);
});
