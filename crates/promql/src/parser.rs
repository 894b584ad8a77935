//! The seam between the parser we use (promql-parser) and our own AST.
//!
//! Everything promql-parser specific lives here: this module calls its
//! `parse`, converts its tree into [`crate::ast`], and checks what it does
//! not (types of function arguments, duration overflow, `or` matchers we do
//! not support). Replacing the parser means rewriting this file only.

use crate::QueryError;
use crate::ast::{
    Aggregate, AggregateOp, At, Binary, BinaryOp, Call, Cardinality, Expr, Grouping, Matching,
    MatrixSelector, Subquery, ValueType, VectorSelector,
};
use model::{MatchOp, Matcher};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser as pp;
use promql_parser::parser::token;
use std::time::{Duration, SystemTime};

/// Parses a PromQL expression into our AST and type-checks it.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    if let Some(expr) = cached(query) {
        return Ok(expr);
    }
    let expr = parse_uncached(query)?;
    remember(query, &expr);
    Ok(expr)
}

/// Parsed queries by text. Dashboards and rules send the same queries
/// again and again, and parsing one (promql-parser compiles every regex
/// matcher while parsing) measured at over a third of a small query's time.
static PARSE_CACHE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Expr>>> =
    std::sync::LazyLock::new(Default::default);

/// Most cached queries; past this the cache is emptied and refills.
const PARSE_CACHE_CAPACITY: usize = 2048;

/// Queries longer than this are not cached (they are rarely repeated
/// verbatim, and would let a client fill memory with big keys).
const PARSE_CACHE_MAX_QUERY_BYTES: usize = 4096;

fn cached(query: &str) -> Option<Expr> {
    let cache = PARSE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.get(query).cloned()
}

fn remember(query: &str, expr: &Expr) {
    if query.len() > PARSE_CACHE_MAX_QUERY_BYTES {
        return;
    }
    let mut cache = PARSE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= PARSE_CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(query.to_string(), expr.clone());
}

/// osprey's own functions, which promql-parser does not know: it refuses
/// an unknown function name while parsing, so they are registered with it
/// (its `register_extra_functions`) once, before the first parse. Their
/// signatures are also in `functions::FUNCTIONS`, which the checker and
/// the evaluator read.
const OSPREY_FUNCTIONS: &[&str] = &[
    "anomaly_band",
    "anomaly_band_seasonal",
    "anomaly_score",
    "anomaly_score_seasonal",
    "drift_hellinger",
    "drift_js",
    "drift_kl",
    "drift_ks",
    "drift_psi",
    "drift_wasserstein",
];

fn register_osprey_functions() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        use promql_parser::parser::function::{Function, register_extra_functions};
        use promql_parser::parser::value::ValueType as PType;
        let convert = |t: ValueType| match t {
            ValueType::Scalar => PType::Scalar,
            ValueType::String => PType::String,
            ValueType::Vector => PType::Vector,
            ValueType::Matrix => PType::Matrix,
        };
        let mut functions = Vec::new();
        for name in OSPREY_FUNCTIONS {
            if let Some(sig) = crate::functions::signature(name) {
                functions.push(Function::new(
                    sig.name,
                    sig.args.iter().map(|t| convert(*t)).collect(),
                    sig.variadic,
                    convert(sig.returns),
                    false,
                ));
            }
        }
        // Only a clash with a built-in Prometheus function fails; the
        // names above have none (a test checks that each one parses).
        let _ = register_extra_functions(functions);
    });
}

fn parse_uncached(query: &str) -> Result<Expr, QueryError> {
    register_osprey_functions();
    if query.trim().is_empty() {
        return Err(QueryError::bad_data(
            "1:1: parse error: no expression found in input",
        ));
    }
    check_number_durations(query)?;
    let parsed = std::panic::catch_unwind(|| pp::parse(query))
        .map_err(|_| QueryError::bad_data("parse error: the parser failed on this input"))?
        .map_err(|e| QueryError::bad_data(describe_parse_error(query, &e.to_string())))?;
    let mut expr = convert(&parsed, 0)?;
    let invalid = invalid_utf8_literals(query);
    if !invalid.is_empty() {
        repair_literals(&mut expr, &invalid);
    }
    crate::check::check(&expr)?;
    Ok(expr)
}

/// Turns promql-parser's message into Prometheus's: its wording, and the
/// `line:col:` where Prometheus reports the problem, which editors use to
/// point at it. Messages this does not recognise keep their text, without
/// a position.
fn describe_parse_error(query: &str, message: &str) -> String {
    let end = position(query, query.len());
    let at = |offset: usize| position(query, offset);
    let (pos, text) = if message.starts_with("unclosed left parenthesis")
        || message.starts_with("unexpected end of input")
    {
        let text = match message {
            "unexpected end of input inside brackets" => "unclosed left bracket".to_string(),
            other => other.to_string(),
        };
        (Some(end), text)
    } else if let Some(rest) = message.strip_prefix("unknown function with name ") {
        let name = rest.trim_matches(|c| c == '\'' || c == '"');
        let offset = find_call(query, name);
        (
            offset.map(at),
            format!("unknown function with name \"{name}\""),
        )
    } else if let Some(rest) = message.strip_prefix("expected type ") {
        // "expected type matrix in call to function 'rate', got vector"
        match parse_type_error(rest) {
            Some((want, function, got)) => {
                let offset = find_call(query, &function).map(|o| o + function.len() + 1);
                (
                    offset.map(|o| at(skip_spaces(query, o))),
                    format!(
                        "expected type {} in call to function \"{function}\", got {}",
                        type_words(&want),
                        type_words(&got)
                    ),
                )
            }
            None => (None, message.to_string()),
        }
    } else if message.starts_with("unterminated quoted string") {
        let offset = query.find(['"', '\'', '`']);
        (offset.map(at), "unterminated quoted string".to_string())
    } else if message == "invalid promql query" && ends_with_operator(query) {
        (Some(end), "unexpected end of input".to_string())
    } else {
        (None, message.to_string())
    };
    match pos {
        Some((line, col)) => format!("{line}:{col}: parse error: {text}"),
        None => format!("parse error: {text}"),
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn position(query: &str, offset: usize) -> (usize, usize) {
    let before = &query[..offset.min(query.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn skip_spaces(query: &str, mut offset: usize) -> usize {
    let bytes = query.as_bytes();
    while offset < bytes.len() && bytes[offset].is_ascii_whitespace() {
        offset += 1;
    }
    offset
}

/// The byte offset of `name(` as a function call (not inside a longer
/// identifier).
fn find_call(query: &str, name: &str) -> Option<usize> {
    let bytes = query.as_bytes();
    let mut from = 0;
    while let Some(found) = query[from..].find(name) {
        let start = from + found;
        let end = start + name.len();
        let before_ok = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        if before_ok && query[end..].trim_start().starts_with('(') {
            return Some(start);
        }
        from = end;
    }
    None
}

/// Splits "matrix in call to function 'rate', got vector".
fn parse_type_error(rest: &str) -> Option<(String, String, String)> {
    let (want, rest) = rest.split_once(" in call to function ")?;
    let (function, got) = rest.split_once(", got ")?;
    let function = function.trim_matches(|c| c == '\'' || c == '"');
    Some((want.to_string(), function.to_string(), got.to_string()))
}

fn type_words(kind: &str) -> &str {
    match kind {
        "matrix" => "range vector",
        "vector" => "instant vector",
        other => other,
    }
}

/// Whether the query ends in a binary operator (so its right side is
/// missing).
fn ends_with_operator(query: &str) -> bool {
    let trimmed = query.trim_end();
    [
        "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=",
    ]
    .iter()
    .any(|op| trimmed.ends_with(op))
        || ["and", "or", "unless", "atan2"].iter().any(|word| {
            trimmed.ends_with(word)
                && trimmed[..trimmed.len() - word.len()]
                    .ends_with(|c: char| c.is_whitespace() || c == ')')
        })
}

/// Parses a series selector such as `up{job="x"}` into matchers.
pub fn parse_series_selector(s: &str) -> Result<Vec<Matcher>, QueryError> {
    match parse(s)? {
        Expr::VectorSelector(vs) if vs.offset_ms == 0 && vs.at.is_none() => Ok(vs.matchers),
        _ => Err(QueryError::bad_data(format!(
            "invalid series selector {s:?}: expected a vector selector"
        ))),
    }
}

/// Nesting deeper than this is refused, so a hostile query cannot overflow
/// the stack of the converter or the evaluator.
const MAX_DEPTH: usize = 200;

fn duration_ms(d: &Duration) -> Result<i64, QueryError> {
    i64::try_from(d.as_millis())
        .ok()
        .filter(|ms| *ms <= i64::MAX / 4)
        .ok_or_else(|| QueryError::bad_data("duration out of range"))
}

fn offset_ms(o: &Option<pp::Offset>) -> Result<i64, QueryError> {
    Ok(match o {
        None => 0,
        Some(pp::Offset::Pos(d)) => duration_ms(d)?,
        Some(pp::Offset::Neg(d)) => -duration_ms(d)?,
    })
}

fn at(a: &Option<pp::AtModifier>) -> Result<Option<At>, QueryError> {
    Ok(match a {
        None => None,
        Some(pp::AtModifier::Start) => Some(At::Start),
        Some(pp::AtModifier::End) => Some(At::End),
        Some(pp::AtModifier::At(t)) => {
            let ms = match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => duration_ms(&d)?,
                Err(e) => -duration_ms(&e.duration())?,
            };
            Some(At::Time(ms))
        }
    })
}

fn matcher(m: &promql_parser::label::Matcher) -> Result<Matcher, QueryError> {
    let op = match m.op {
        PMatchOp::Equal => MatchOp::Equal,
        PMatchOp::NotEqual => MatchOp::NotEqual,
        PMatchOp::Re(_) => MatchOp::RegexMatch,
        PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
    };
    Matcher::new(op, m.name.clone(), m.value.clone())
        .map_err(|e| QueryError::bad_data(format!("parse error: {e}")))
}

fn vector_selector(vs: &pp::VectorSelector) -> Result<VectorSelector, QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::bad_data(
            "parse error: `or` inside a label matcher list is not supported",
        ));
    }
    let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        matchers.push(Matcher::equal(model::METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        matchers.push(matcher(m)?);
    }
    if matchers.is_empty() || matchers.iter().all(|m| m.matches_empty()) {
        return Err(QueryError::bad_data(
            "parse error: vector selector must contain at least one non-empty matcher",
        ));
    }
    Ok(VectorSelector {
        name: vs.name.clone(),
        matchers,
        offset_ms: offset_ms(&vs.offset)?,
        at: at(&vs.at)?,
    })
}

fn labels(l: &promql_parser::label::Labels) -> Vec<String> {
    l.labels.clone()
}

fn binary_op(id: token::TokenId) -> Option<BinaryOp> {
    Some(match id {
        token::T_ADD => BinaryOp::Add,
        token::T_SUB => BinaryOp::Sub,
        token::T_MUL => BinaryOp::Mul,
        token::T_DIV => BinaryOp::Div,
        token::T_MOD => BinaryOp::Mod,
        token::T_POW => BinaryOp::Pow,
        token::T_ATAN2 => BinaryOp::Atan2,
        token::T_EQLC => BinaryOp::Eq,
        token::T_NEQ => BinaryOp::Ne,
        token::T_GTR => BinaryOp::Gt,
        token::T_LSS => BinaryOp::Lt,
        token::T_GTE => BinaryOp::Ge,
        token::T_LTE => BinaryOp::Le,
        token::T_LAND => BinaryOp::And,
        token::T_LOR => BinaryOp::Or,
        token::T_LUNLESS => BinaryOp::Unless,
        _ => return None,
    })
}

fn convert(e: &pp::Expr, depth: usize) -> Result<Expr, QueryError> {
    if depth > MAX_DEPTH {
        return Err(QueryError::bad_data(
            "parse error: expression nested too deeply",
        ));
    }
    let sub = |e: &pp::Expr| convert(e, depth + 1).map(Box::new);
    Ok(match e {
        pp::Expr::NumberLiteral(n) => Expr::Number(n.val),
        pp::Expr::StringLiteral(s) => Expr::String(s.val.clone()),
        pp::Expr::VectorSelector(vs) => Expr::VectorSelector(vector_selector(vs)?),
        pp::Expr::MatrixSelector(ms) => {
            let range_ms = duration_ms(&ms.range)?;
            if range_ms <= 0 {
                return Err(QueryError::bad_data(
                    "parse error: range must be greater than zero",
                ));
            }
            Expr::MatrixSelector(MatrixSelector {
                selector: vector_selector(&ms.vs)?,
                range_ms,
            })
        }
        pp::Expr::Subquery(sq) => {
            let range_ms = duration_ms(&sq.range)?;
            let step_ms = match &sq.step {
                Some(s) => Some(duration_ms(s)?).filter(|s| *s > 0),
                None => None,
            };
            if range_ms <= 0 {
                return Err(QueryError::bad_data(
                    "parse error: subquery range must be greater than zero",
                ));
            }
            Expr::Subquery(Subquery {
                expr: sub(&sq.expr)?,
                range_ms,
                step_ms,
                offset_ms: offset_ms(&sq.offset)?,
                at: at(&sq.at)?,
            })
        }
        pp::Expr::Paren(p) => Expr::Paren(sub(&p.expr)?),
        pp::Expr::Unary(u) => Expr::Unary {
            negate: true,
            expr: sub(&u.expr)?,
        },
        pp::Expr::Binary(b) => {
            let op = binary_op(b.op.id()).ok_or_else(|| {
                QueryError::bad_data(format!("parse error: unknown binary operator {}", b.op))
            })?;
            let mut matching = None;
            let mut cardinality = if op.is_set() {
                Cardinality::ManyToMany
            } else {
                Cardinality::OneToOne
            };
            let mut return_bool = false;
            if let Some(m) = &b.modifier {
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(QueryError::bad_data(
                        "parse error: fill modifiers are experimental and not supported",
                    ));
                }
                return_bool = m.return_bool;
                matching = match &m.matching {
                    Some(pp::LabelModifier::Include(l)) => Some(Matching::On(labels(l))),
                    Some(pp::LabelModifier::Exclude(l)) => Some(Matching::Ignoring(labels(l))),
                    None => None,
                };
                cardinality = match &m.card {
                    pp::VectorMatchCardinality::OneToOne => cardinality,
                    pp::VectorMatchCardinality::ManyToOne(l) => Cardinality::ManyToOne(labels(l)),
                    pp::VectorMatchCardinality::OneToMany(l) => Cardinality::OneToMany(labels(l)),
                    pp::VectorMatchCardinality::ManyToMany => Cardinality::ManyToMany,
                };
            }
            Expr::Binary(Binary {
                op,
                lhs: sub(&b.lhs)?,
                rhs: sub(&b.rhs)?,
                matching,
                cardinality,
                return_bool,
            })
        }
        pp::Expr::Aggregate(a) => {
            let name = a.op.to_string();
            let name = name.as_str();
            let op = AggregateOp::from_name(name).ok_or_else(|| {
                QueryError::bad_data(format!("parse error: unknown aggregation {name}"))
            })?;
            let grouping = match &a.modifier {
                Some(pp::LabelModifier::Include(l)) => Some(Grouping::By(labels(l))),
                Some(pp::LabelModifier::Exclude(l)) => Some(Grouping::Without(labels(l))),
                None => None,
            };
            Expr::Aggregate(Aggregate {
                op,
                expr: sub(&a.expr)?,
                param: match &a.param {
                    Some(p) => Some(sub(p)?),
                    None => None,
                },
                grouping,
            })
        }
        pp::Expr::Call(c) => {
            let mut args = Vec::with_capacity(c.args.args.len());
            for a in &c.args.args {
                args.push(convert(a, depth + 1)?);
            }
            Expr::Call(Call {
                func: c.func.name.to_string(),
                args,
            })
        }
        pp::Expr::Extension(_) => {
            return Err(QueryError::bad_data("parse error: unsupported expression"));
        }
    })
}

/// The value type name as Prometheus prints it in type errors.
pub(crate) fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

/// String literals whose escapes spell bytes that are not UTF-8 (`"\\xff"`).
/// promql-parser reads each `\\xNN` as the character U+00NN; Prometheus
/// keeps the raw bytes, which make an invalid label name. Returns pairs of
/// (promql-parser's reading, the bytes with invalid ones marked; see
/// [`INVALID_BYTE_BASE`]).
fn invalid_utf8_literals(query: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = query.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let q = b[i];
        if q != b'"' && q != b'\'' {
            i += 1;
            continue;
        }
        i += 1;
        let mut chars_view = String::new();
        let mut bytes_view: Vec<u8> = Vec::new();
        let mut saw_high_byte = false;
        while i < b.len() && b[i] != q {
            if b[i] == b'\\' && i + 1 < b.len() {
                let e = b[i + 1];
                let hex = |c: u8| (c as char).to_digit(16);
                if e == b'x'
                    && i + 3 < b.len()
                    && let (Some(hi), Some(lo)) = (hex(b[i + 2]), hex(b[i + 3]))
                {
                    let v = (hi * 16 + lo) as u8;
                    chars_view.push(v as char);
                    bytes_view.push(v);
                    saw_high_byte |= v >= 0x80;
                    i += 4;
                    continue;
                }
                if e >= 0x80 {
                    // An escaped multi-byte character: read it as text.
                    i += 1;
                    continue;
                }
                // Other escapes: keep both views in step roughly.
                let c = match e {
                    b'n' => '\n',
                    b't' => '\t',
                    b'r' => '\r',
                    other => other as char,
                };
                chars_view.push(c);
                let mut buf = [0u8; 4];
                bytes_view.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 2;
                continue;
            }
            let start = i;
            i += 1;
            while i < b.len() && !query.is_char_boundary(i) {
                i += 1;
            }
            chars_view.push_str(&query[start..i]);
            bytes_view.extend_from_slice(&b[start..i]);
        }
        i += 1;
        if saw_high_byte && std::str::from_utf8(&bytes_view).is_err() {
            out.push((chars_view, decode_marking_invalid(&bytes_view)));
        }
    }
    out
}

fn repair_literals(e: &mut Expr, invalid: &[(String, String)]) {
    match e {
        Expr::String(s) => {
            if let Some((_, lossy)) = invalid.iter().find(|(seen, _)| seen == s) {
                *s = lossy.clone();
            }
        }
        Expr::Paren(x) | Expr::Unary { expr: x, .. } => repair_literals(x, invalid),
        Expr::Subquery(sq) => repair_literals(&mut sq.expr, invalid),
        Expr::Binary(b) => {
            repair_literals(&mut b.lhs, invalid);
            repair_literals(&mut b.rhs, invalid);
        }
        Expr::Aggregate(a) => {
            repair_literals(&mut a.expr, invalid);
            if let Some(p) = &mut a.param {
                repair_literals(p, invalid);
            }
        }
        Expr::Call(c) => {
            for a in &mut c.args {
                repair_literals(a, invalid);
            }
        }
        Expr::Number(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {}
    }
}

/// A byte that is not part of valid UTF-8 is kept as the private-use
/// character `INVALID_BYTE_BASE + byte`, so checks can reject it and
/// messages can print it back as `\\xNN`.
pub(crate) const INVALID_BYTE_BASE: u32 = 0xF700;

fn decode_marking_invalid(mut bytes: &[u8]) -> String {
    let mut out = String::new();
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                out.push_str(std::str::from_utf8(&bytes[..good]).unwrap_or(""));
                let bad = e.error_len().unwrap_or(bytes.len() - good).max(1);
                for &b in &bytes[good..good + bad] {
                    out.push(char::from_u32(INVALID_BYTE_BASE + b as u32).unwrap_or('?'));
                }
                bytes = &bytes[good + bad..];
            }
        }
    }
    out
}

/// Whether a string holds a byte that was not valid UTF-8 in the query.
pub(crate) fn has_invalid_bytes(s: &str) -> bool {
    s.chars()
        .any(|c| (INVALID_BYTE_BASE..INVALID_BYTE_BASE + 256).contains(&(c as u32)))
}

/// Go's `%q` of a string, printing marked invalid bytes as `\\xNN`.
pub(crate) fn go_quote_bytes(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        let v = c as u32;
        if (INVALID_BYTE_BASE..INVALID_BYTE_BASE + 256).contains(&v) {
            out.push_str(&format!("\\x{:02x}", v - INVALID_BYTE_BASE));
        } else {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
    }
    out.push('"');
    out
}

/// promql-parser panics on a plain number of seconds too large for a
/// `Duration` (`offset 1e30`, `[1e30]`, `[5m:1e30]`). Refuse those first.
fn check_number_durations(query: &str) -> Result<(), QueryError> {
    // Blank out string literals so their contents never look like numbers.
    let mut text = String::with_capacity(query.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in query.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q != '`' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                text.push(' ');
            }
            None => {
                if c == '"' || c == '\'' || c == '`' {
                    quote = Some(c);
                }
                text.push(c);
            }
        }
    }
    static NUMBER_AS_DURATION: std::sync::OnceLock<Option<regex::Regex>> =
        std::sync::OnceLock::new();
    let Some(re) = NUMBER_AS_DURATION
        .get_or_init(|| {
            regex::Regex::new(
                r"(?i)(?:offset\s*[-+]?|[\[:]\s*|@\s*[-+]?)(0x[0-9a-f]+|inf|nan|[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)",
            )
            .ok()
        })
        .as_ref()
    else {
        return Ok(());
    };
    for caps in re.captures_iter(&text) {
        let Some(m) = caps.get(1) else { continue };
        // Part of a name, not a number: `model:inference_latency` (a
        // recording rule's name with `:inf` in it) or `job:nan_ratio`.
        if text[m.end()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let raw = m.as_str();
        let value = match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16)
                .map(|v| v as f64)
                .unwrap_or(f64::INFINITY),
            None => raw.parse::<f64>().unwrap_or(f64::NAN),
        };
        if !value.is_finite() || value.abs() > 1e15 {
            return Err(QueryError::bad_data(format!(
                "parse error: duration or timestamp out of range: {raw}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod error_tests {
    use super::*;

    /// Found by benches/backtest_speed.py: a recording rule's name with
    /// `:inf` or `:nan` in it was refused as an infinite duration.
    #[test]
    fn colon_names_that_look_like_numbers() {
        for query in [
            "model:inference_latency:avg3h > 0.05",
            "job:nan_ratio",
            "sum_over_time(a:infx[5m:1m])",
        ] {
            assert!(parse(query).is_ok(), "{query}");
        }
        assert!(parse("a[5m:1e30]").is_err());
        assert!(parse("a offset inf").is_err());
    }

    #[test]
    fn osprey_functions_parse() {
        for (query, ok) in [
            ("anomaly_score(m[1h])", true),
            ("anomaly_band(m[1h], 3)", true),
            ("anomaly_score_seasonal(m[8d], 1800, 86400)", true),
            ("anomaly_score_seasonal(m[8d], 1800, 86400, 604800)", true),
            ("anomaly_band_seasonal(m[8d], 3, 1800, 86400, 604800)", true),
            ("anomaly_score(m)", false),
            ("anomaly_band(m[1h])", false),
            ("anomaly_score_seasonal(m[8d], 1800)", false),
            ("anomaly_band_seasonal(m[8d], 3, 1800)", false),
            ("drift_psi(a_bucket, b_bucket)", true),
            ("drift_kl(a_bucket, b_bucket)", true),
            ("drift_js(a_bucket, b_bucket)", true),
            ("drift_hellinger(a_bucket, b_bucket)", true),
            ("drift_ks(a_bucket, b_bucket)", true),
            ("drift_wasserstein(a_bucket, b_bucket)", true),
            ("drift_psi(a_bucket)", false),
        ] {
            assert_eq!(parse(query).is_ok(), ok, "{query}");
        }
        for name in OSPREY_FUNCTIONS {
            assert!(crate::functions::signature(name).is_some(), "{name}");
        }
        let err = parse("anomaly_band(m[1h])").map(|_| ()).unwrap_err();
        assert!(err.message().contains("anomaly_band"), "{}", err.message());
        let err = parse("drift_psi(a_bucket)").map(|_| ()).unwrap_err();
        assert!(err.message().contains("drift_psi"), "{}", err.message());
    }

    /// Messages and positions as Prometheus 2.42 answers these queries
    /// (taken from a running Prometheus's `/api/v1/query`).
    #[test]
    fn parse_errors_carry_prometheus_positions() {
        let cases = [
            ("sum(up", "1:7: parse error: unclosed left parenthesis"),
            (
                "foo{",
                "1:5: parse error: unexpected end of input inside braces",
            ),
            (
                "rate(up[5m]",
                "1:12: parse error: unclosed left parenthesis",
            ),
            ("up +", "1:5: parse error: unexpected end of input"),
            ("1 + ", "1:5: parse error: unexpected end of input"),
            (
                "nosuchfn(up)",
                "1:1: parse error: unknown function with name \"nosuchfn\"",
            ),
            ("up[5m", "1:6: parse error: unclosed left bracket"),
            (
                "rate(up)",
                "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector",
            ),
            (
                "up offset",
                "1:10: parse error: unexpected end of input in offset, expected duration",
            ),
            (
                "\"unterminated",
                "1:1: parse error: unterminated quoted string",
            ),
        ];
        for (query, want) in cases {
            let got = parse(query).map(|_| ()).unwrap_err();
            assert_eq!(got.message(), want, "{query}");
        }
    }
}
