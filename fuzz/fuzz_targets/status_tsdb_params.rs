//! Fuzzes the parameters of `/api/v1/status/tsdb` (`topN`, `limit`,
//! `match[]`, `focusLabel`, `date`): arbitrary bytes as a URL query and as
//! a form body. Parsing must never panic; what it accepts has a top list
//! length of at least 1 and a `date` of exactly one day.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|b| *b == 0) {
        Some(split) => (&data[..split], &data[split + 1..]),
        None => (data, &data[..0]),
    };
    let query = String::from_utf8_lossy(query);
    let params = server::params::Params::parse(Some(&query), Some(body));
    if let Ok(stats) = server::StatsQuery::from_params(&params) {
        assert!(stats.limit >= 1);
        if let Some((start, end)) = stats.day {
            assert_eq!(end - start, 86_400_000 - 1);
            assert_eq!(start.rem_euclid(86_400_000), 0);
        }
    }
});
