//! Function maps: Go's predefined template functions (`builtins`), and the
//! extra functions Prometheus rule templates (`prometheus`) and Alertmanager
//! notification templates (`alertmanager`) offer.
//!
//! Go checks argument types by reflection before a call; here each function
//! checks its own arguments and reports Go's wording where it matters
//! (`wrong number of args for not: want 1 got 0`).

use crate::fmt::{format_float_g, format_v, sprint, sprintf, sprintln};
use crate::time::{Duration, Time};
use crate::value::{Value, zero_for_map};
use crate::{Entry, Func, FuncMap};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

fn func(f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static) -> Func {
    Arc::new(f)
}

/// Go's predefined functions.
pub(crate) fn builtins() -> FuncMap {
    let mut map = FuncMap::empty();
    map.insert_entry("and", Entry::And);
    map.insert_entry("or", Entry::Or);
    map.insert("not", func(|a| Ok(Value::Bool(!one(a, "not")?.truthy()))));
    map.insert("len", func(len));
    map.insert("index", func(index));
    map.insert("slice", func(slice));
    map.insert("print", func(|a| Ok(Value::Str(sprint(a)))));
    map.insert("println", func(|a| Ok(Value::Str(sprintln(a)))));
    map.insert(
        "printf",
        func(|a| match a.split_first() {
            Some((Value::Str(format), rest)) => Ok(Value::Str(sprintf(format, rest))),
            Some((other, _)) => Err(wrong_type("string", other)),
            None => Err("wrong number of args for printf: want at least 1 got 0".to_string()),
        }),
    );
    map.insert("eq", func(eq));
    map.insert("ne", func(|a| Ok(Value::Bool(!compare_eq(two(a, "ne")?)?))));
    map.insert(
        "lt",
        func(|a| Ok(Value::Bool(compare_order(two(a, "lt")?)? == Ordering::Less))),
    );
    map.insert(
        "le",
        func(|a| {
            Ok(Value::Bool(
                compare_order(two(a, "le")?)? != Ordering::Greater,
            ))
        }),
    );
    map.insert(
        "gt",
        func(|a| {
            Ok(Value::Bool(
                compare_order(two(a, "gt")?)? == Ordering::Greater,
            ))
        }),
    );
    map.insert(
        "ge",
        func(|a| Ok(Value::Bool(compare_order(two(a, "ge")?)? != Ordering::Less))),
    );
    map.insert("html", func(|a| Ok(Value::Str(html_escape(&eval_args(a))))));
    map.insert("js", func(|a| Ok(Value::Str(js_escape(&eval_args(a))))));
    map.insert(
        "urlquery",
        func(|a| Ok(Value::Str(query_escape(&eval_args(a))))),
    );
    map.insert(
        "call",
        func(|a| match a.first() {
            None => Err("wrong number of args for call: want at least 1 got 0".to_string()),
            Some(v) => Err(format!(
                "non-function {} of type {}",
                format_v(v),
                v.type_name()
            )),
        }),
    );
    map
}

/// Builtins plus Prometheus's template functions for alerting and recording
/// rules (`humanize`, `humanizeDuration`, `first`, `label`, `value`, ...).
/// The caller adds `query`, `externalURL` and `pathPrefix`, which need the
/// engine and configuration. Query results are lists of maps
/// `{"Labels": {..}, "Value": float}`.
pub fn prometheus() -> FuncMap {
    let mut map = builtins();
    map.insert(
        "humanize",
        func(|a| humanize(to_float(one(a, "humanize")?)?).map(Value::Str)),
    );
    map.insert(
        "humanize1024",
        func(|a| Ok(Value::Str(humanize1024(to_float(one(a, "humanize1024")?)?)))),
    );
    map.insert(
        "humanizeDuration",
        func(|a| {
            Ok(Value::Str(humanize_duration(to_float(one(
                a,
                "humanizeDuration",
            )?)?)))
        }),
    );
    map.insert(
        "humanizePercentage",
        func(|a| {
            Ok(Value::Str(format!(
                "{}%",
                format_float_g(to_float(one(a, "humanizePercentage")?)? * 100.0, 4)
            )))
        }),
    );
    map.insert(
        "humanizeTimestamp",
        func(|a| {
            let v = to_float(one(a, "humanizeTimestamp")?)?;
            if v.is_nan() || v.is_infinite() {
                return Ok(Value::Str(format_float_g(v, 4)));
            }
            Ok(Value::Str(crate::value::Object::display(&float_to_time(
                v,
            )?)))
        }),
    );
    map.insert(
        "toTime",
        func(|a| {
            let v = to_float(one(a, "toTime")?)?;
            if v.is_nan() || v.is_infinite() {
                return Err(format!(
                    "cannot convert {} to time.Time",
                    format_v(&Value::Float(v))
                ));
            }
            Ok(float_to_time(v)?.value())
        }),
    );
    map.insert(
        "toDuration",
        func(|a| {
            let v = to_float(one(a, "toDuration")?)?;
            let nanos = v * 1e9;
            if !nanos.is_finite() || nanos.abs() >= 9.2e18 {
                return Err(format!(
                    "cannot convert {} to time.Duration",
                    format_v(&Value::Float(v))
                ));
            }
            Ok(Duration {
                nanos: nanos as i64,
            }
            .value())
        }),
    );
    map.insert(
        "now",
        func(|a| {
            none(a, "now")?;
            let t = Time::now();
            Ok(Value::Float(t.secs as f64 + f64::from(t.nanos) / 1e9))
        }),
    );
    map.insert(
        "parseDuration",
        func(|a| {
            let s = str_arg(one(a, "parseDuration")?)?;
            parse_prometheus_duration(s).map(Value::Float)
        }),
    );
    map.insert(
        "toUpper",
        func(|a| Ok(Value::Str(str_arg(one(a, "toUpper")?)?.to_uppercase()))),
    );
    map.insert(
        "toLower",
        func(|a| Ok(Value::Str(str_arg(one(a, "toLower")?)?.to_lowercase()))),
    );
    map.insert(
        "title",
        func(|a| Ok(Value::Str(go_strings_title(str_arg(one(a, "title")?)?)))),
    );
    map.insert("match", func(match_fn));
    map.insert("reReplaceAll", func(re_replace_all));
    map.insert(
        "safeHtml",
        func(|a| Ok(Value::Str(str_arg(one(a, "safeHtml")?)?.to_string()))),
    );
    map.insert(
        "stripPort",
        func(|a| Ok(Value::Str(strip_port(str_arg(one(a, "stripPort")?)?)))),
    );
    map.insert(
        "stripDomain",
        func(|a| Ok(Value::Str(strip_domain(str_arg(one(a, "stripDomain")?)?)))),
    );
    map.insert(
        "first",
        func(|a| {
            let items = list_items(one(a, "first")?)?;
            items
                .into_iter()
                .next()
                .ok_or_else(|| "first() called on vector with no elements".to_string())
        }),
    );
    map.insert(
        "label",
        func(|a| {
            let (name, sample) = two(a, "label")?;
            let name = str_arg(name)?;
            Ok(Value::Str(sample_label(sample, name)?))
        }),
    );
    map.insert(
        "value",
        func(|a| match one(a, "value")? {
            Value::Map(m) => Ok(m.get("Value").cloned().unwrap_or(Value::Nil)),
            Value::Object(o) => o
                .field("Value")
                .ok_or_else(|| "sample has no Value".to_string()),
            other => Err(wrong_type("*template.sample", other)),
        }),
    );
    map.insert(
        "strvalue",
        func(|a| Ok(Value::Str(sample_label(one(a, "strvalue")?, "__value__")?))),
    );
    map.insert(
        "sortByLabel",
        func(|a| {
            let (name, list) = two(a, "sortByLabel")?;
            let name = str_arg(name)?;
            let items = list_items(list)?;
            let mut keyed = Vec::with_capacity(items.len());
            for item in items {
                keyed.push((sample_label(&item, name)?, item));
            }
            // A stable sort, as Prometheus's.
            keyed.sort_by(|x, y| x.0.cmp(&y.0));
            Ok(Value::from(
                keyed.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            ))
        }),
    );
    map.insert(
        "args",
        func(|a| {
            let map: BTreeMap<String, Value> = a
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v.clone()))
                .collect();
            Ok(Value::from(map))
        }),
    );
    map.insert_entry("tmpl", Entry::Tmpl);
    map
}

/// Builtins plus Alertmanager's default template functions.
pub fn alertmanager() -> FuncMap {
    let mut map = builtins();
    map.insert(
        "toUpper",
        func(|a| Ok(Value::Str(str_arg(one(a, "toUpper")?)?.to_uppercase()))),
    );
    map.insert(
        "toLower",
        func(|a| Ok(Value::Str(str_arg(one(a, "toLower")?)?.to_lowercase()))),
    );
    map.insert(
        "title",
        func(|a| Ok(Value::Str(unicode_title(str_arg(one(a, "title")?)?)))),
    );
    map.insert(
        "trimSpace",
        func(|a| {
            Ok(Value::Str(
                str_arg(one(a, "trimSpace")?)?.trim().to_string(),
            ))
        }),
    );
    map.insert(
        "join",
        func(|a| {
            let (sep, list) = two(a, "join")?;
            let sep = str_arg(sep)?;
            let items = list_items(list)?;
            let parts: Vec<String> = items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    other => Err(wrong_type("string", other)),
                })
                .collect::<Result<_, _>>()?;
            Ok(Value::Str(parts.join(sep)))
        }),
    );
    map.insert("match", func(match_fn));
    map.insert(
        "safeHtml",
        func(|a| Ok(Value::Str(str_arg(one(a, "safeHtml")?)?.to_string()))),
    );
    map.insert(
        "safeUrl",
        func(|a| Ok(Value::Str(str_arg(one(a, "safeUrl")?)?.to_string()))),
    );
    map.insert("reReplaceAll", func(re_replace_all));
    map.insert(
        "stringSlice",
        func(|a| {
            for v in a {
                str_arg(v)?;
            }
            Ok(Value::from(a.to_vec()))
        }),
    );
    map.insert(
        "date",
        func(|a| {
            let (layout, t) = two(a, "date")?;
            let layout = str_arg(layout)?;
            Ok(Value::Str(time_arg(t)?.format(layout)))
        }),
    );
    map.insert(
        "tz",
        func(|a| {
            let (name, t) = two(a, "tz")?;
            let name = str_arg(name)?;
            let t = time_arg(t)?;
            match name {
                "" | "UTC" | "Local" => Ok(t.value()),
                other => Err(format!("unknown time zone {other}")),
            }
        }),
    );
    map.insert(
        "since",
        func(|a| {
            let t = time_arg(one(a, "since")?)?;
            let now = Time::now();
            let nanos = (i128::from(now.secs) - i128::from(t.secs)) * 1_000_000_000
                + i128::from(now.nanos)
                - i128::from(t.nanos);
            let nanos = nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            Ok(Duration { nanos }.value())
        }),
    );
    map.insert(
        "humanizeDuration",
        func(|a| {
            Ok(Value::Str(humanize_duration(to_float(one(
                a,
                "humanizeDuration",
            )?)?)))
        }),
    );
    map
}

// ---- argument helpers ----

fn wrong_args(name: &str, want: usize, got: usize) -> String {
    format!("wrong number of args for {name}: want {want} got {got}")
}

fn wrong_type(want: &str, got: &Value) -> String {
    format!(
        "wrong type for value; expected {want}; got {}",
        got.type_name()
    )
}

fn none(a: &[Value], name: &str) -> Result<(), String> {
    if a.is_empty() {
        Ok(())
    } else {
        Err(wrong_args(name, 0, a.len()))
    }
}

fn one<'a>(a: &'a [Value], name: &str) -> Result<&'a Value, String> {
    match a {
        [v] => Ok(v),
        _ => Err(wrong_args(name, 1, a.len())),
    }
}

fn two<'a>(a: &'a [Value], name: &str) -> Result<(&'a Value, &'a Value), String> {
    match a {
        [x, y] => Ok((x, y)),
        _ => Err(wrong_args(name, 2, a.len())),
    }
}

fn str_arg(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(wrong_type("string", other)),
    }
}

fn time_arg(v: &Value) -> Result<Time, String> {
    if let Value::Object(o) = v
        && let (Some(Ok(Value::Int(secs))), Some(Ok(Value::Int(nanos)))) =
            (o.method("Unix", &[]), o.method("UnixNano", &[]))
    {
        return Ok(Time::new(secs, nanos.rem_euclid(1_000_000_000) as u32));
    }
    Err(wrong_type("time.Time", v))
}

/// The elements of a list-like value.
fn list_items(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.as_ref().clone()),
        Value::Nil => Ok(Vec::new()),
        Value::Object(o) => o.items().ok_or_else(|| wrong_type("[]interface {}", v)),
        other => Err(wrong_type("[]interface {}", other)),
    }
}

/// A label of a query-result sample (`{"Labels": {..}, "Value": ..}`).
fn sample_label(sample: &Value, name: &str) -> Result<String, String> {
    let labels = match sample {
        Value::Map(m) => m.get("Labels").cloned(),
        Value::Object(o) => o.field("Labels"),
        Value::Nil => return Err("nil sample".to_string()),
        other => return Err(wrong_type("*template.sample", other)),
    };
    Ok(match labels {
        Some(Value::Map(labels)) => match labels.get(name) {
            Some(Value::Str(s)) => s.clone(),
            Some(other) => format_v(other),
            None => String::new(),
        },
        Some(Value::Object(o)) => o.field(name).map(|v| format_v(&v)).unwrap_or_default(),
        _ => String::new(),
    })
}

/// Prometheus's `convertToFloat`: numbers, and strings parsed as floats.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s).ok_or_else(|| {
            format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                crate::fmt::quote(s)
            )
        }),
        Value::Object(o) => match o.method("Seconds", &[]) {
            Some(Ok(Value::Float(f))) => Ok(f),
            _ => Err(format!("can't convert {} to float", v.type_name())),
        },
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// Go's `strconv.ParseFloat` for the forms people write.
fn parse_go_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        let negative = lower.starts_with('-');
        return Some(match body {
            "nan" => f64::NAN,
            _ if negative => f64::NEG_INFINITY,
            _ => f64::INFINITY,
        });
    }
    if s.is_empty() || s.contains(['_', ' ']) {
        return None;
    }
    s.parse().ok()
}

// ---- comparison ----

/// Go's basic kinds for comparison.
#[derive(PartialEq, Eq, Clone, Copy)]
enum BasicKind {
    Bool,
    Int,
    Float,
    Str,
    Invalid,
}

fn kind(v: &Value) -> BasicKind {
    match v {
        Value::Bool(_) => BasicKind::Bool,
        Value::Int(_) => BasicKind::Int,
        Value::Float(_) => BasicKind::Float,
        Value::Str(_) => BasicKind::Str,
        _ => BasicKind::Invalid,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";

fn eq(a: &[Value]) -> Result<Value, String> {
    let Some((first, rest)) = a.split_first() else {
        return Err("wrong number of args for eq: want at least 1 got 0".to_string());
    };
    if rest.is_empty() {
        return Err("missing argument for comparison".to_string());
    }
    for other in rest {
        if compare_eq((first, other))? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn compare_eq((x, y): (&Value, &Value)) -> Result<bool, String> {
    let (kx, ky) = (kind(x), kind(y));
    if kx != ky {
        if kx != BasicKind::Invalid && ky != BasicKind::Invalid {
            return Err(BAD_COMPARISON.to_string());
        }
        // One side is nil or composite: equal only if both are nil.
        return match (x, y) {
            (Value::Nil, Value::Nil) => Ok(true),
            (Value::Nil, _) | (_, Value::Nil) => Ok(false),
            _ => Err(BAD_COMPARISON.to_string()),
        };
    }
    Ok(match (x, y) {
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::Nil, Value::Nil) => true,
        (Value::List(_), _) | (Value::Map(_), _) => {
            return Err(format!(
                "non-comparable type {}: {}",
                format_v(x),
                x.type_name()
            ));
        }
        (Value::Object(a), Value::Object(b)) => a.display() == b.display(),
        _ => false,
    })
}

fn compare_order((x, y): (&Value, &Value)) -> Result<Ordering, String> {
    let (kx, ky) = (kind(x), kind(y));
    if kx == BasicKind::Invalid || ky == BasicKind::Invalid {
        return Err("invalid type for comparison".to_string());
    }
    if kx != ky {
        return Err(BAD_COMPARISON.to_string());
    }
    match (x, y) {
        (Value::Int(a), Value::Int(b)) => Ok(a.cmp(b)),
        // NaN compares as neither less nor greater, like Go's `<`.
        (Value::Float(a), Value::Float(b)) => Ok(a.partial_cmp(b).unwrap_or(Ordering::Equal)),
        (Value::Str(a), Value::Str(b)) => Ok(a.cmp(b)),
        _ => Err("invalid type for comparison".to_string()),
    }
}

// ---- builtins ----

fn len(a: &[Value]) -> Result<Value, String> {
    let n = match one(a, "len")? {
        Value::Str(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        Value::Object(o) => match (o.entries(), o.items()) {
            (Some(entries), _) => entries.len(),
            (None, Some(items)) => items.len(),
            (None, None) => return Err("len of type object".to_string()),
        },
        Value::Nil => return Err("len of nil pointer".to_string()),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(Value::Int(n as i64))
}

/// An index argument checked against `cap`, with Go's messages.
fn int_index(v: &Value, cap: usize) -> Result<usize, String> {
    match v {
        Value::Int(i) => {
            if *i < 0 || (*i as u64) > cap as u64 {
                return Err(format!("index out of range: {i}"));
            }
            Ok(*i as usize)
        }
        Value::Nil => Err("cannot index slice/array with nil".to_string()),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

fn index(a: &[Value]) -> Result<Value, String> {
    let Some((first, keys)) = a.split_first() else {
        return Err("wrong number of args for index: want at least 1 got 0".to_string());
    };
    let mut item = first.clone();
    for key in keys {
        item = match &item {
            // Go checks the index against the capacity first, and then
            // reflect rejects an index equal to the length.
            Value::List(l) => {
                let i = int_index(key, l.len())?;
                l.get(i)
                    .cloned()
                    .ok_or_else(|| "reflect: slice index out of range".to_string())?
            }
            Value::Str(s) => {
                let i = int_index(key, s.len())?;
                Value::Int(i64::from(
                    *s.as_bytes()
                        .get(i)
                        .ok_or_else(|| "reflect: string index out of range".to_string())?,
                ))
            }
            Value::Map(m) => match key {
                Value::Str(k) => m.get(k).cloned().unwrap_or_else(|| zero_for_map(m)),
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ));
                }
            },
            Value::Object(o) if o.entries().is_some() => match key {
                Value::Str(k) => o
                    .entries()
                    .unwrap_or_default()
                    .into_iter()
                    .find(|(name, _)| name == k)
                    .map_or(Value::Str(String::new()), |(_, v)| v),
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ));
                }
            },
            Value::Object(o) => match o.items() {
                Some(items) => {
                    let i = int_index(key, items.len())?;
                    items
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("index out of range: {i}"))?
                }
                None => return Err("can't index item of type object".to_string()),
            },
            Value::Nil => return Err("index of untyped nil".to_string()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(a: &[Value]) -> Result<Value, String> {
    let Some((first, idx)) = a.split_first() else {
        return Err("wrong number of args for slice: want at least 1 got 0".to_string());
    };
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let len = match first {
        Value::Str(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Nil => return Err("slice of untyped nil".to_string()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    if matches!(first, Value::Str(_)) && idx.len() == 3 {
        return Err("cannot 3-index slice a string".to_string());
    }
    let mut bounds = [0usize, len, len];
    for (i, v) in idx.iter().enumerate() {
        bounds[i] = int_index(v, len)?;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    if idx.len() == 3 && bounds[1] > bounds[2] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[1], bounds[2]
        ));
    }
    match first {
        Value::Str(s) => {
            let bytes = &s.as_bytes()[bounds[0]..bounds[1]];
            Ok(Value::Str(String::from_utf8_lossy(bytes).into_owned()))
        }
        Value::List(l) => Ok(Value::from(l[bounds[0]..bounds[1]].to_vec())),
        _ => Err("can't slice".to_string()),
    }
}

/// Go's `evalArgs` for the escapers: one string as is, otherwise `Sprint`.
fn eval_args(a: &[Value]) -> String {
    match a {
        [Value::Str(s)] => s.clone(),
        _ => sprint(a),
    }
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if !crate::fmt::is_go_printable(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ---- strings and regexes ----

/// Compiled patterns kept between calls: alert templates run the same
/// few `match`/`reReplaceAll` patterns on every evaluation. Small, since
/// each entry may hold up to the 1 MiB compiled-size limit.
const REGEX_CACHE_SIZE: usize = 64;

/// Compiles a pattern (through a small cache) with a bounded size so a
/// hostile one cannot use unbounded memory.
fn compile(pattern: &str) -> Result<regex::Regex, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(re) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("error parsing regexp: {}", one_line(&e.to_string())))?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= REGEX_CACHE_SIZE {
            c.clear();
        }
        c.insert(pattern.to_string(), re.clone());
    }
    Ok(re)
}

/// The regex crate's multi-line error reports, folded into one line.
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn match_fn(a: &[Value]) -> Result<Value, String> {
    let (pattern, text) = two(a, "match")?;
    let re = compile(str_arg(pattern)?)?;
    Ok(Value::Bool(re.is_match(str_arg(text)?)))
}

fn re_replace_all(a: &[Value]) -> Result<Value, String> {
    let [pattern, repl, text] = a else {
        return Err(wrong_args("reReplaceAll", 3, a.len()));
    };
    let re = compile(str_arg(pattern)?)?;
    Ok(Value::Str(
        re.replace_all(str_arg(text)?, str_arg(repl)?).into_owned(),
    ))
}

/// Go's deprecated `strings.Title`, which Prometheus's `title` uses: a
/// letter after a separator (anything but ASCII letters, digits and `_`,
/// or a Unicode letter or digit) is upper-cased; the rest is kept.
fn go_strings_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_separator = true;
    for c in s.chars() {
        if prev_separator {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_separator = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        };
    }
    out
}

/// `cases.Title(language.AmericanEnglish)`, which Alertmanager's `title`
/// uses: in each word (letters, digits, `_`, and `'`, `.`, `:` between
/// them) the first letter is upper-cased and the rest lower-cased.
fn unicode_title(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    let mut seen_letter = false;
    for (i, &c) in chars.iter().enumerate() {
        let word_char = c.is_alphanumeric() || c == '_';
        let mid = matches!(c, '\'' | '.' | ':' | '’' | '·')
            && in_word
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if word_char || mid {
            if !in_word {
                in_word = true;
                seen_letter = false;
            }
            if c.is_alphabetic() && !seen_letter {
                seen_letter = true;
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
        } else {
            in_word = false;
            out.push(c);
        }
    }
    out
}

/// Go's `net.SplitHostPort`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let port = rest[end + 1..].strip_prefix(':')?;
        if port.contains([':', '[', ']']) {
            return None;
        }
        return Some((host, port));
    }
    let colon = s.rfind(':')?;
    let host = &s[..colon];
    if host.contains(':') || host.contains(['[', ']']) {
        return None;
    }
    Some((host, &s[colon + 1..]))
}

fn strip_port(s: &str) -> String {
    match split_host_port(s) {
        Some((host, _)) => host.to_string(),
        None => s.to_string(),
    }
}

fn strip_domain(s: &str) -> String {
    let (host, port) = split_host_port(s).unwrap_or((s, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        return host.to_string();
    }
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---- numbers and times ----

const SMALL_PREFIXES: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

fn humanize(mut v: f64) -> Result<String, String> {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return Ok(format_float_g(v, 4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in SMALL_PREFIXES {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    Ok(format!("{}{prefix}", format_float_g(v, 4)))
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return format_float_g(v, 4);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_float_g(v, 4))
}

/// Prometheus's `humanizeDuration` over seconds.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_float_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", format_float_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        // Go's int64(v) on amd64 turns an out-of-range float into MinInt64.
        let duration = if v >= 9.223_372_036_854_776e18 {
            i64::MIN
        } else {
            v as i64
        };
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_float_g(v, 4));
    }
    let mut prefix = "";
    for p in SMALL_PREFIXES {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_float_g(v, 4))
}

/// Seconds since the epoch to a time with millisecond precision, as
/// Prometheus's `floatToTime` does.
fn float_to_time(v: f64) -> Result<Time, String> {
    let nanos = v * 1e9;
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&nanos) {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            format_v(&Value::Float(v))
        ));
    }
    let millis = (nanos as i64) / 1_000_000;
    Ok(Time::new(
        millis.div_euclid(1000),
        (millis.rem_euclid(1000) * 1_000_000) as u32,
    ))
}

/// Prometheus's duration syntax (`1h30m`, `5d`, `500ms`), in seconds, with
/// the errors of Prometheus's `parseDuration` template function (whose
/// range is Go's `time.Duration`, about 292 years).
pub fn parse_prometheus_duration(s: &str) -> Result<f64, String> {
    use model::duration::{DurationError, parse_ms};
    const MAX_MS: i64 = i64::MAX / 1_000_000;
    match parse_ms(s) {
        Ok(ms) if ms <= MAX_MS => Ok(ms as f64 / 1000.0),
        Ok(_) | Err(DurationError::OutOfRange) => Err(format!("duration out of range: {s}")),
        Err(DurationError::Invalid) => Err(format!(
            "not a valid duration string: {}",
            crate::fmt::quote(s)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(
            go_strings_title("hello wORLD-foo_bar don't 1st x.y a:b"),
            "Hello WORLD-Foo_bar Don'T 1st X.Y A:B"
        );
        assert_eq!(
            unicode_title("hello wORLD-foo_bar don't 1st x.y a:b"),
            "Hello World-Foo_bar Don't 1St X.y A:b"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_prometheus_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_prometheus_duration("1d2h"), Ok(93600.0));
        assert_eq!(parse_prometheus_duration("500ms"), Ok(0.5));
        assert_eq!(
            parse_prometheus_duration("1m1h").unwrap_err(),
            "not a valid duration string: \"1m1h\""
        );
        assert!(parse_prometheus_duration("").is_err());
        assert!(parse_prometheus_duration("99999999999999999999y").is_err());
        assert_eq!(
            parse_prometheus_duration("300y").unwrap_err(),
            "duration out of range: 300y"
        );
        assert_eq!(
            parse_prometheus_duration("292y"),
            Ok(292.0 * 365.0 * 86_400.0)
        );
    }

    #[test]
    fn host_ports() {
        assert_eq!(strip_port("host:80"), "host");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("host"), "host");
        assert_eq!(strip_domain("a.b.c:80"), "a:80");
        assert_eq!(strip_domain("1.2.3.4:80"), "1.2.3.4:80");
        assert_eq!(strip_domain("a.b"), "a");
    }
}
