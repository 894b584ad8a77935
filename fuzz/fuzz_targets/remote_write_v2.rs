//! Fuzzes the remote write 2.0 decoding the `/api/v1/write` handler runs
//! for `proto=io.prometheus.write.v2.Request`: the symbols table, label
//! and exemplar references, samples, histograms, metadata and created
//! timestamps (the series' and the per-sample and per-histogram start
//! timestamps), with the label validation. Errors are fine; a panic, a
//! series handed over without a metric name, or start timestamps that do
//! not line up with the samples and histograms, is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = remote::visit_write_request_v2::<remote::RemoteWriteError>(
        data,
        |labels, samples, exemplars, histograms, extras| {
            assert!(labels.iter().any(|(n, v)| *n == "__name__" && !v.is_empty()));
            assert_eq!(extras.sample_start_timestamps.len(), samples.len());
            assert_eq!(extras.histogram_start_timestamps.len(), histograms.len());
            for exemplar in exemplars {
                let _ = exemplar.labels.len();
            }
            for h in histograms {
                let _ = match h {
                    remote::RawHistogram::Integer { histogram, .. } => histogram.validate(),
                    remote::RawHistogram::Float { histogram, .. } => histogram.validate(),
                };
            }
            let _ = (extras.metadata.help.len(), extras.created_timestamp);
            Ok(())
        },
    );
    // The snappy layer in front, as the handler reads bodies.
    if let Ok(raw) = remote::decompress_snappy(data, 1 << 20) {
        let _ = remote::visit_write_request_v2::<remote::RemoteWriteError>(
            &raw,
            |_, _, _, _, _| Ok(()),
        );
    }
});
