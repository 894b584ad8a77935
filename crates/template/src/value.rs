//! The values templates see: a small dynamic type standing in for Go's
//! `interface{}`, plus the `Object` trait through which callers expose
//! struct-like data (fields, methods, iteration) to templates.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A template value: what `.`, variables, literals and function results hold.
#[derive(Clone, Debug)]
pub enum Value {
    /// Go's untyped `nil`; prints as `<nil>`.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Arc<Vec<Value>>),
    /// A map with string keys; ranges and prints in key order, like Go.
    Map(Arc<BTreeMap<String, Value>>),
    /// Caller-defined struct-like data.
    Object(Arc<dyn Object>),
}

/// Struct-like data exposed to templates: `.Name` reads a field, `.Name a b`
/// calls a method, and `items` makes the object rangeable like a slice.
pub trait Object: Send + Sync + std::fmt::Debug {
    /// The field `name` (Go struct field access `.Name`), or `None` if absent.
    fn field(&self, name: &str) -> Option<Value>;
    /// Calls the method `name` with `args`; `None` if there is no such method.
    fn method(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        None
    }
    /// The elements, if the object behaves like a slice (range, len, index).
    fn items(&self) -> Option<Vec<Value>> {
        None
    }
    /// The key/value pairs, if the object behaves like a map with methods
    /// (Alertmanager's `KV`): `range` gives keys and values in key order,
    /// `len` and `index` work, and a key `field` does not know is a missing
    /// map key rather than an error.
    fn entries(&self) -> Option<Vec<(String, Value)>> {
        None
    }
    /// How `{{ . }}` prints the object.
    fn display(&self) -> String;
    /// True only for the executor's marker of a missing map key; callers
    /// never need to implement this.
    #[doc(hidden)]
    fn is_no_value(&self) -> bool {
        false
    }
}

/// The executor's stand-in for Go's invalid `reflect.Value`: the result of a
/// missing map key under `MissingKey::Default`, printed as `<no value>`.
#[derive(Debug)]
pub(crate) struct NoValue;

impl Object for NoValue {
    fn field(&self, _name: &str) -> Option<Value> {
        Some(no_value())
    }
    fn display(&self) -> String {
        "<no value>".to_string()
    }
    fn is_no_value(&self) -> bool {
        true
    }
}

/// A fresh "no value" marker.
pub(crate) fn no_value() -> Value {
    Value::Object(Arc::new(NoValue))
}

impl Value {
    /// Go's template truthiness: false, 0, nil, and empty strings, lists and
    /// maps are false; everything else is true.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Object(o) => {
                if o.is_no_value() {
                    return false;
                }
                if let Some(entries) = o.entries() {
                    return !entries.is_empty();
                }
                match o.items() {
                    Some(items) => !items.is_empty(),
                    None => true,
                }
            }
        }
    }

    /// True for the executor's missing-value marker.
    pub(crate) fn is_no_value(&self) -> bool {
        matches!(self, Value::Object(o) if o.is_no_value())
    }

    /// The value as a function argument: a missing value becomes `nil`,
    /// as Go converts an invalid value passed to an `interface{}` parameter.
    pub(crate) fn into_arg(self) -> Value {
        if self.is_no_value() { Value::Nil } else { self }
    }

    /// A Go-ish type name for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Object(_) => "object",
        }
    }

    /// The string inside a `Str`, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Value {
        Value::List(Arc::new(l))
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(m: BTreeMap<String, Value>) -> Value {
        Value::Map(Arc::new(m))
    }
}

impl From<BTreeMap<String, String>> for Value {
    fn from(m: BTreeMap<String, String>) -> Value {
        Value::Map(Arc::new(
            m.into_iter().map(|(k, v)| (k, Value::Str(v))).collect(),
        ))
    }
}

/// Go's zero value of a map's element type, for `missingkey=zero` and
/// `index`: a map holding only strings (such as labels, or an empty map) is
/// a `map[string]string` and gives `""`; any other map is a
/// `map[string]interface{}`, whose zero value prints as `<no value>`.
pub(crate) fn zero_for_map(map: &BTreeMap<String, Value>) -> Value {
    if map.values().all(|v| matches!(v, Value::Str(_))) {
        Value::Str(String::new())
    } else {
        // Go's zero `interface{}` prints as `<no value>` too.
        no_value()
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<usize> for Value {
    fn from(i: usize) -> Value {
        Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}

impl From<Vec<String>> for Value {
    fn from(l: Vec<String>) -> Value {
        Value::List(Arc::new(l.into_iter().map(Value::Str).collect()))
    }
}

impl From<Arc<dyn Object>> for Value {
    fn from(o: Arc<dyn Object>) -> Value {
        Value::Object(o)
    }
}

impl Value {
    /// Wraps caller data as an `Object` value.
    pub fn object(o: impl Object + 'static) -> Value {
        Value::Object(Arc::new(o))
    }
}
