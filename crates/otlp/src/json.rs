//! The protobuf JSON mapping's number forms, as OTLP/JSON uses them: 64-bit
//! integers as decimal strings or numbers, doubles as numbers or the
//! strings `NaN`, `Infinity`, `-Infinity`, bytes as base64.

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{Deserializer, Error};

#[derive(Deserialize)]
#[serde(untagged)]
enum Number<'a> {
    U(u64),
    I(i64),
    F(f64),
    S(std::borrow::Cow<'a, str>),
}

pub(crate) fn u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    to_u64(Number::deserialize(d)?).map_err(D::Error::custom)
}

pub(crate) fn i64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Number::deserialize(d)? {
        Number::U(u) => i64::try_from(u).map_err(|_| D::Error::custom("integer out of range")),
        Number::I(i) => Ok(i),
        Number::F(_) => Err(D::Error::custom("expected an integer, got a fraction")),
        Number::S(s) => s
            .trim()
            .parse()
            .map_err(|_| D::Error::custom(format!("expected an integer, got {s:?}"))),
    }
}

pub(crate) fn f64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    to_f64(Number::deserialize(d)?).map_err(D::Error::custom)
}

pub(crate) fn opt_f64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => to_f64(n).map(Some).map_err(D::Error::custom),
    }
}

pub(crate) fn vec_u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    Vec::<Number>::deserialize(d)?
        .into_iter()
        .map(|n| to_u64(n).map_err(D::Error::custom))
        .collect()
}

pub(crate) fn vec_f64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Vec::<Number>::deserialize(d)?
        .into_iter()
        .map(|n| to_f64(n).map_err(D::Error::custom))
        .collect()
}

pub(crate) fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text.as_bytes()))
        .map_err(|_| D::Error::custom("bytes must be base64"))
}

/// A trace or span id in OTLP/JSON: hex digits (the JSON mapping's one
/// exception to base64 bytes), either case; empty is no id.
pub(crate) fn hex_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(D::Error::custom("ids must be an even number of hex digits"));
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(D::Error::custom("ids must be hex digits")),
    };
    digits
        .chunks(2)
        .map(|pair| Ok(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn to_u64(n: Number<'_>) -> Result<u64, String> {
    match n {
        Number::U(u) => Ok(u),
        Number::I(_) => Err("expected an unsigned integer, got a negative one".to_string()),
        Number::F(_) => Err("expected an integer, got a fraction".to_string()),
        Number::S(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("expected an unsigned integer, got {s:?}")),
    }
}

fn to_f64(n: Number<'_>) -> Result<f64, String> {
    match n {
        Number::U(u) => Ok(u as f64),
        Number::I(i) => Ok(i as f64),
        Number::F(f) => Ok(f),
        Number::S(s) => match s.as_ref() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse()
                .map_err(|_| format!("expected a number, got {other:?}")),
        },
    }
}
