//! Fuzzes the protobuf scrape format (`scrape::protobuf`): the delimited
//! MetricFamily decoding, the flattening into series under every option
//! the scrape loop passes, the bucket limit and minimum bucket factor, and
//! the classic-to-custom-buckets conversion. Errors are fine; a panic, a
//! histogram that fails validation after the limit, or one over the limit
//! is a bug.
#![no_main]
use libfuzzer_sys::fuzz_target;
use scrape::protobuf::{FlattenOptions, ProtoValue};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a bucket limit and a factor.
    let (limit, factor, body) = match data.split_first() {
        Some((first, rest)) => (u64::from(first & 0x0f), f64::from(first >> 4) * 0.5, rest),
        None => (0, 0.0, data),
    };
    let Ok(families) = scrape::protobuf::decode_families(body) else {
        return;
    };
    for family in &families {
        let name = family.name.as_deref().unwrap_or("");
        let kind = family.r#type.unwrap_or(scrape::protobuf::UNTYPED);
        for metric in &family.metric {
            for (native, classic_with_native, nhcb) in
                [(true, false, false), (true, true, true), (false, true, false)]
            {
                let options = FlattenOptions {
                    native,
                    classic_with_native,
                    nhcb,
                };
                let Ok(samples) = scrape::protobuf::flatten(name, kind, metric, options) else {
                    continue;
                };
                for mut sample in samples {
                    if let Some((_, number)) = sample.extra {
                        let _ = scrape::protobuf::format_openmetrics_float(number);
                    }
                    if scrape::protobuf::limit_histogram(&mut sample.value, limit, factor).is_err()
                    {
                        continue;
                    }
                    let buckets = match &sample.value {
                        ProtoValue::Float(_) => continue,
                        ProtoValue::Histogram(h) => {
                            assert!(h.validate().is_ok(), "{h:?}");
                            h.positive_buckets.len() + h.negative_buckets.len()
                        }
                        ProtoValue::FloatHistogram(h) => {
                            assert!(h.validate().is_ok(), "{h:?}");
                            h.positive_buckets.len() + h.negative_buckets.len()
                        }
                    };
                    assert!(limit == 0 || buckets as u64 <= limit);
                }
            }
        }
    }
});
