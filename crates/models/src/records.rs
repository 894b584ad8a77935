//! The prediction API's request bodies (`docs/models.md`): parsing and
//! checking, with errors that name the record and the field.
//!
//! Bodies are parsed straight into borrowed records (strings point into
//! the body where they hold no escapes), with hand-written serde visitors
//! so that every error says `records[3].features.age: ...`. A body is
//! either accepted whole or refused whole: [`parse_predictions`] returns
//! every record or the first error, never a part.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Most records in one request body.
pub const MAX_RECORDS_PER_REQUEST: usize = 100_000;
/// Most features (and SHAP values, and scores) per record.
pub const MAX_FIELDS_PER_RECORD: usize = 1_000;
/// Longest id, version, feature name or category, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// A feature value, prediction or actual.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    Text(Cow<'a, str>),
    /// `null`: a missing feature value.
    Null,
}

/// One record of `POST .../predictions` or `.../reference`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prediction<'a> {
    pub id: Option<Cow<'a, str>>,
    pub version: Option<Cow<'a, str>>,
    /// Seconds since the epoch.
    pub timestamp: Option<f64>,
    pub features: Vec<(Cow<'a, str>, Value<'a>)>,
    pub prediction: Option<Value<'a>>,
    pub scores: Vec<(Cow<'a, str>, f64)>,
    pub shap: Vec<(Cow<'a, str>, f64)>,
    /// Only in reference sets: the known outcome.
    pub actual: Option<Value<'a>>,
}

/// One record of `POST .../actuals`.
#[derive(Clone, Debug, PartialEq)]
pub struct Actual<'a> {
    pub id: Cow<'a, str>,
    pub actual: Value<'a>,
    pub timestamp: f64,
}

/// Which body is being read: fields required and allowed differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Predictions,
    Reference,
}

/// A refused body: what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    pub message: String,
}

fn refuse(e: serde_json::Error) -> RecordError {
    RecordError {
        message: e.to_string(),
    }
}

/// Parses a predictions or reference body.
pub fn parse_predictions(body: &[u8], kind: Kind) -> Result<Vec<Prediction<'_>>, RecordError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let records = Body { kind }.deserialize(&mut de).map_err(refuse)?;
    de.end().map_err(refuse)?;
    Ok(records)
}

/// Parses an actuals body.
pub fn parse_actuals(body: &[u8]) -> Result<Vec<Actual<'_>>, RecordError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let records = ActualsBody.deserialize(&mut de).map_err(refuse)?;
    de.end().map_err(refuse)?;
    Ok(records)
}

/// `{"records": [...]}` with nothing else.
fn records_field<'de, A, T>(
    mut map: A,
    mut read: impl FnMut(&mut A) -> Result<Vec<T>, A::Error>,
) -> Result<Vec<T>, A::Error>
where
    A: MapAccess<'de>,
{
    let mut records = None;
    while let Some(key) = map.next_key_seed(KeySeed)? {
        match key.as_ref() {
            "records" if records.is_none() => records = Some(read(&mut map)?),
            "records" => return Err(de::Error::custom("duplicate field `records`")),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown field `{other}`, expected `records`"
                )));
            }
        }
    }
    records.ok_or_else(|| de::Error::custom("missing field `records`"))
}

struct Body {
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for Body {
    type Value = Vec<Prediction<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body {
    type Value = Vec<Prediction<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `records`")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let kind = self.kind;
        records_field(map, |m| m.next_value_seed(PredictionList { kind }))
    }
}

struct PredictionList {
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for PredictionList {
    type Value = Vec<Prediction<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PredictionList {
    type Value = Vec<Prediction<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let index = out.len();
            if index >= MAX_RECORDS_PER_REQUEST {
                return Err(de::Error::custom(format!(
                    "more than {MAX_RECORDS_PER_REQUEST} records in one request"
                )));
            }
            // Records of one request mostly share their features: the
            // previous record's list sizes the next one's (allocated once
            // rather than grown), and the same names in the same order
            // need no check for duplicates.
            let seed = PredictionSeed {
                kind: self.kind,
                index,
                previous: out
                    .last()
                    .map_or(&[][..], |r: &Prediction<'de>| &r.features[..]),
            };
            match seq.next_element_seed(seed)? {
                Some(record) => out.push(record),
                None => return Ok(out),
            }
        }
    }
}

struct PredictionSeed<'p, 'de> {
    kind: Kind,
    index: usize,
    /// The previous record's features (checked already).
    previous: &'p [(Cow<'de, str>, Value<'de>)],
}

impl<'de> DeserializeSeed<'de> for PredictionSeed<'_, 'de> {
    type Value = Prediction<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

fn at<E: de::Error>(index: usize, field: &str, message: impl fmt::Display) -> E {
    E::custom(format!("records[{index}].{field}: {message}"))
}

/// Wraps the error of reading one field's value with the field's path.
fn field<'de, A: MapAccess<'de>, T>(
    index: usize,
    name: &str,
    value: Result<T, A::Error>,
) -> Result<T, A::Error> {
    value.map_err(|e| at(index, name, e))
}

fn check_name<E: de::Error>(index: usize, field: &str, s: &str) -> Result<(), E> {
    if s.is_empty() {
        return Err(at(index, field, "must not be empty"));
    }
    if s.len() > MAX_NAME_BYTES {
        return Err(at(
            index,
            field,
            format!("longer than {MAX_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// What [`check_name`] says about `s`.
fn check_name_message(s: &str) -> String {
    if s.is_empty() {
        "must not be empty".to_string()
    } else {
        format!("longer than {MAX_NAME_BYTES} bytes")
    }
}

fn check_timestamp<E: de::Error>(index: usize, t: f64) -> Result<f64, E> {
    // Seconds; the range keeps milliseconds inside an i64 with room.
    if !t.is_finite() || t.abs() > 9.0e12 {
        return Err(at(index, "timestamp", format!("out of range: {t}")));
    }
    Ok(t)
}

impl<'de> Visitor<'de> for PredictionSeed<'_, 'de> {
    type Value = Prediction<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "records[{}] to be an object", self.index)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let i = self.index;
        let mut r = Prediction::default();
        let mut seen_features = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key.as_ref() {
                "id" => r.id = Some(field::<A, _>(i, "id", map.next_value_seed(IdSeed))?),
                "version" => {
                    r.version = Some(field::<A, _>(i, "version", map.next_value_seed(IdSeed))?)
                }
                "timestamp" => {
                    let t = field::<A, _>(i, "timestamp", map.next_value::<f64>())?;
                    r.timestamp = Some(check_timestamp(i, t)?);
                }
                "features" => {
                    seen_features = true;
                    r.features = map.next_value_seed(ValueMap {
                        index: i,
                        previous: self.previous,
                    })?;
                }
                "prediction" => {
                    let v = field::<A, _>(i, "prediction", map.next_value_seed(ValueSeed))?;
                    if v == Value::Null {
                        return Err(at(i, "prediction", "must be a number or a string"));
                    }
                    r.prediction = Some(v);
                }
                "scores" => {
                    r.scores = map.next_value_seed(NumberMap {
                        index: i,
                        field: "scores",
                    })?
                }
                "shap" => {
                    r.shap = map.next_value_seed(NumberMap {
                        index: i,
                        field: "shap",
                    })?
                }
                "actual" if self.kind == Kind::Reference => {
                    let v = field::<A, _>(i, "actual", map.next_value_seed(ValueSeed))?;
                    if v != Value::Null {
                        r.actual = Some(v);
                    }
                }
                other => return Err(at(i, other, "unknown field")),
            }
        }
        if self.kind == Kind::Predictions {
            for (name, missing) in [
                ("id", r.id.is_none()),
                ("version", r.version.is_none()),
                ("timestamp", r.timestamp.is_none()),
                ("features", !seen_features),
                ("prediction", r.prediction.is_none()),
            ] {
                if missing {
                    return Err(at(i, name, "missing"));
                }
            }
        }
        for (name, value) in [("id", &r.id), ("version", &r.version)] {
            if let Some(v) = value {
                check_name(i, name, v)?;
            }
        }
        if let Some(Value::Text(t)) = &r.prediction {
            check_name(i, "prediction", t)?;
        }
        Ok(r)
    }
}

/// An id or version: a string, or an integer written as a number.
struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdSeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an integer")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// An object key: borrowed from the body unless it holds escapes.
/// (`Cow<str>`'s own `Deserialize` always copies, which cost an
/// allocation and a free per feature name.)
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A number, a string or null.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a string or null")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Owned(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Number(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Value::Number(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Number(v as f64))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        // Booleans are categories: "true"/"false".
        Ok(Value::Text(Cow::Borrowed(if v { "true" } else { "false" })))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
}

/// `features`: names to values.
struct ValueMap<'p, 'de> {
    index: usize,
    previous: &'p [(Cow<'de, str>, Value<'de>)],
}

impl<'de> DeserializeSeed<'de> for ValueMap<'_, 'de> {
    type Value = Vec<(Cow<'de, str>, Value<'de>)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let index = self.index;
        d.deserialize_map(self)
            .map_err(|e| prefix_once(e, index, "features"))
    }
}

/// Adds `records[i].field: ` unless the error already has a path.
fn prefix_once<E: de::Error + fmt::Display>(e: E, index: usize, name: &str) -> E {
    let text = e.to_string();
    if text.starts_with("records[") {
        e
    } else {
        at(index, name, text)
    }
}

impl<'de> Visitor<'de> for ValueMap<'_, 'de> {
    type Value = Vec<(Cow<'de, str>, Value<'de>)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of feature values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let i = self.index;
        let mut out: Vec<(Cow<'de, str>, Value<'de>)> = Vec::with_capacity(self.previous.len());
        while let Some(name) = map.next_key_seed(KeySeed)? {
            // The field's path is only spelled out for an error.
            let path = || format!("features.{name}");
            check_name(i, "features", &name)
                .map_err(|_: A::Error| at(i, &path(), check_name_message(&name)))?;
            let value = map
                .next_value_seed(ValueSeed)
                .map_err(|e| at(i, &path(), e))?;
            if let Value::Text(t) = &value
                && check_name::<A::Error>(i, "", t).is_err()
            {
                return Err(at(i, &path(), check_name_message(t)));
            }
            if out.len() >= MAX_FIELDS_PER_RECORD {
                return Err(at(
                    i,
                    "features",
                    format!("more than {MAX_FIELDS_PER_RECORD} features"),
                ));
            }
            out.push((name, value));
        }
        let as_before = out.len() == self.previous.len()
            && out.iter().zip(self.previous).all(|(a, b)| a.0 == b.0);
        if !as_before {
            check_duplicates(i, "features", out.iter().map(|(n, _)| n.as_ref()))?;
        }
        Ok(out)
    }
}

fn check_duplicates<'n, E: de::Error>(
    index: usize,
    field: &str,
    names: impl Iterator<Item = &'n str>,
) -> Result<(), E> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    match names.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(at(index, field, format!("duplicate name {:?}", pair[0]))),
        None => Ok(()),
    }
}

/// `scores` and `shap`: names to numbers.
struct NumberMap {
    index: usize,
    field: &'static str,
}

impl<'de> DeserializeSeed<'de> for NumberMap {
    type Value = Vec<(Cow<'de, str>, f64)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let (index, name) = (self.index, self.field);
        d.deserialize_map(self)
            .map_err(|e| prefix_once(e, index, name))
    }
}

impl<'de> Visitor<'de> for NumberMap {
    type Value = Vec<(Cow<'de, str>, f64)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of numbers")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let i = self.index;
        let mut out: Vec<(Cow<'de, str>, f64)> = Vec::new();
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let path = || format!("{}.{name}", self.field);
            if check_name::<A::Error>(i, "", &name).is_err() {
                return Err(at(i, &path(), check_name_message(&name)));
            }
            let value = map.next_value::<f64>().map_err(|e| at(i, &path(), e))?;
            if out.len() >= MAX_FIELDS_PER_RECORD {
                return Err(at(
                    i,
                    self.field,
                    format!("more than {MAX_FIELDS_PER_RECORD} entries"),
                ));
            }
            out.push((name, value));
        }
        check_duplicates(i, self.field, out.iter().map(|(n, _)| n.as_ref()))?;
        Ok(out)
    }
}

struct ActualsBody;

impl<'de> DeserializeSeed<'de> for ActualsBody {
    type Value = Vec<Actual<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ActualsBody {
    type Value = Vec<Actual<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `records`")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        records_field(map, |m| m.next_value_seed(ActualList))
    }
}

struct ActualList;

impl<'de> DeserializeSeed<'de> for ActualList {
    type Value = Vec<Actual<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ActualList {
    type Value = Vec<Actual<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let index = out.len();
            if index >= MAX_RECORDS_PER_REQUEST {
                return Err(de::Error::custom(format!(
                    "more than {MAX_RECORDS_PER_REQUEST} records in one request"
                )));
            }
            match seq.next_element_seed(ActualSeed { index })? {
                Some(r) => out.push(r),
                None => return Ok(out),
            }
        }
    }
}

struct ActualSeed {
    index: usize,
}

impl<'de> DeserializeSeed<'de> for ActualSeed {
    type Value = Actual<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ActualSeed {
    type Value = Actual<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "records[{}] to be an object", self.index)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let i = self.index;
        let (mut id, mut actual, mut timestamp) = (None, None, None);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key.as_ref() {
                "id" => id = Some(field::<A, _>(i, "id", map.next_value_seed(IdSeed))?),
                "actual" => {
                    let v = field::<A, _>(i, "actual", map.next_value_seed(ValueSeed))?;
                    if v == Value::Null {
                        return Err(at(i, "actual", "must be a number or a string"));
                    }
                    actual = Some(v);
                }
                "timestamp" => {
                    let t = field::<A, _>(i, "timestamp", map.next_value::<f64>())?;
                    timestamp = Some(check_timestamp(i, t)?);
                }
                other => return Err(at(i, other, "unknown field")),
            }
        }
        let id = id.ok_or_else(|| at(i, "id", "missing"))?;
        check_name(i, "id", &id)?;
        let actual = actual.ok_or_else(|| at(i, "actual", "missing"))?;
        if let Value::Text(t) = &actual {
            check_name(i, "actual", t)?;
        }
        let timestamp = timestamp.ok_or_else(|| at(i, "timestamp", "missing"))?;
        Ok(Actual {
            id,
            actual,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_prediction() {
        let body = br#"{"records": [{"id": "a1", "version": "v1", "timestamp": 10.5,
            "features": {"age": 31, "city": "Oslo", "income": null},
            "prediction": "yes", "scores": {"yes": 0.8, "no": 0.2}, "shap": {"age": -0.1}}]}"#;
        let r = parse_predictions(body, Kind::Predictions).expect("parse");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id.as_deref(), Some("a1"));
        assert_eq!(r[0].features.len(), 3);
        assert_eq!(r[0].features[2].1, Value::Null);
        assert_eq!(r[0].scores.len(), 2);
    }

    #[test]
    fn errors_name_record_and_field() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"records": [{"id": "a", "version": "1", "timestamp": 1, "features": {}, "prediction": 1},
                  {"id": "b", "version": "1", "timestamp": 1, "features": {"age": [1]}, "prediction": 1}]}"#,
                "records[1].features.age: invalid type: sequence",
            ),
            (
                br#"{"records": [{"id": "a", "version": "1", "features": {}, "prediction": 1}]}"#,
                "records[0].timestamp: missing",
            ),
            (
                br#"{"records": [{"id": "a", "version": "1", "timestamp": "x", "features": {}, "prediction": 1}]}"#,
                "records[0].timestamp: invalid type: string",
            ),
            (
                br#"{"records": [{"id": "a", "version": "1", "timestamp": 1, "features": {"x": 1, "x": 2}, "prediction": 1}]}"#,
                "records[0].features: duplicate name \"x\"",
            ),
            (
                br#"{"records": [{"id": "a", "version": "1", "timestamp": 1, "features": {}, "prediction": 1, "colour": 2}]}"#,
                "records[0].colour: unknown field",
            ),
            (
                br#"{"records": [{"id": "a", "version": "1", "timestamp": 1, "features": {}, "prediction": 1, "scores": {"a": "x"}}]}"#,
                "records[0].scores.a: invalid type: string",
            ),
        ];
        for (body, want) in cases {
            let err = parse_predictions(body, Kind::Predictions).unwrap_err();
            assert!(err.message.starts_with(want), "{} vs {want}", err.message);
        }
    }

    #[test]
    fn reads_actuals() {
        let body = br#"{"records": [{"id": 7, "actual": 1.5, "timestamp": 100}]}"#;
        let r = parse_actuals(body).expect("parse");
        assert_eq!(r[0].id, "7");
        let err = parse_actuals(br#"{"records": [{"id": "x", "timestamp": 1}]}"#).unwrap_err();
        assert!(
            err.message.starts_with("records[0].actual: missing"),
            "{}",
            err.message
        );
    }
}
