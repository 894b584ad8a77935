//! Fuzzes the parameters of `/api/v1/rules/backtest`: arbitrary bytes as a
//! URL query and as a form body. Parsing must never panic; a request it
//! accepts has a range whose end is not before its start.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|b| *b == 0) {
        Some(split) => (&data[..split], &data[split + 1..]),
        None => (data, &data[..0]),
    };
    let query = String::from_utf8_lossy(query);
    let params = server::params::Params::parse(Some(&query), Some(body));
    if let Ok(request) = server::backtest::BacktestRequest::from_params(&params) {
        assert!(request.from_ms <= request.to_ms);
    }
});
