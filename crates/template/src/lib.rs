//! Go's `text/template` language, written for osprey: Prometheus alerting
//! rule templates (labels and annotations) and Alertmanager notification
//! templates are expanded with it.
//!
//! A `Templates` set holds named templates sharing one `FuncMap`:
//!
//! ```
//! use template::{FuncMap, MissingKey, Options, Templates, Value};
//! let mut set = Templates::new(FuncMap::builtins(), Options { missing_key: MissingKey::Default });
//! set.parse("t", r#"{{define "x"}}[{{.}}]{{end}}{{range .}}{{template "x" .}}{{end}}"#).unwrap();
//! let data = Value::from(vec![Value::Int(1), Value::from("a")]);
//! assert_eq!(set.execute("t", &data).unwrap(), "[1][a]");
//! ```
//!
//! Values are dynamic (`Value`); callers expose struct-like data through the
//! `Object` trait: fields, methods with arguments, `items` for slice-like
//! and `entries` for map-like objects (Alertmanager's `KV`; see
//! `tests/alertmanager_default.rs` for Alertmanager's data model).
//! `time::Time` and `time::Duration` are ready-made objects that print like
//! Go's. Printing follows Go's `fmt` (`fmt.rs`): floats print as Go's `%v`
//! does (`1e+06`), maps as `map[k:v]`, `nil` as `<nil>`.
//!
//! Prometheus expands an alert's labels and annotations with
//! `funcs::prometheus()`, `MissingKey::Zero`, and the text prefixed with
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}`
//! `{{$externalURL := .ExternalURL}}{{$value := .Value}}`, so that error
//! columns match its own (`tests/promtool_cases.rs` does exactly that).
//!
//! What this crate is not: `html/template` (no contextual escaping), and it
//! has no reflection: only the value kinds above exist, so Go's unsigned and
//! complex kinds, channels and function values have no counterpart.
//!
//! Execution never panics on any template or data: nesting, template call
//! depth, steps and output size are bounded, and exceeding a bound is an
//! ordinary `Error`.

mod exec;
mod fmt;
pub mod funcs;
mod lex;
mod parse;
pub mod time;
mod value;

pub use fmt::{format_v, quote};
pub use value::{Object, Value};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A template function: takes the evaluated arguments (a piped value comes
/// last), returns a value or an error message.
pub type Func = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// How a function name is evaluated: most are plain functions; `and`/`or`
/// evaluate their arguments lazily and `tmpl` needs the template set.
#[derive(Clone)]
pub(crate) enum Entry {
    Plain(Func),
    And,
    Or,
    /// Prometheus's `tmpl NAME DATA`: executes another template to a string.
    Tmpl,
}

/// The functions templates may call, by name.
#[derive(Clone, Default)]
pub struct FuncMap {
    entries: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for FuncMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

impl FuncMap {
    /// An empty map (not even Go's builtins).
    pub fn empty() -> FuncMap {
        FuncMap::default()
    }

    /// Go's predefined functions: `and or not len index slice print printf
    /// println eq ne lt le gt ge html js urlquery call`.
    pub fn builtins() -> FuncMap {
        funcs::builtins()
    }

    /// Adds or replaces the function `name`.
    pub fn insert(&mut self, name: &str, func: Func) {
        self.entries.insert(name.to_string(), Entry::Plain(func));
    }

    /// Adds every function of `other`, replacing those with the same name.
    pub fn extend(&mut self, other: FuncMap) {
        self.entries.extend(other.entries);
    }

    /// Whether `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub(crate) fn insert_entry(&mut self, name: &str, entry: Entry) {
        self.entries.insert(name.to_string(), entry);
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }
}

/// What a missing map key evaluates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingKey {
    /// Go's `missingkey=zero`: the zero value of the map's element type
    /// (an empty string for string maps such as labels).
    Zero,
    /// Go's default: "no value", printed as `<no value>`.
    Default,
}

/// Execution options.
#[derive(Clone, Debug)]
pub struct Options {
    pub missing_key: MissingKey,
}

/// One parsed template with the source it came from (for error positions).
#[derive(Debug)]
pub(crate) struct Tmpl {
    pub name: String,
    /// The name given to the `parse` call that defined it.
    pub parse_name: String,
    pub source: Arc<str>,
    pub list: parse::List,
}

/// A set of named templates that can call each other. Cloning is cheap:
/// parsed templates are shared.
#[derive(Clone)]
pub struct Templates {
    funcs: FuncMap,
    options: Options,
    templates: HashMap<String, Arc<Tmpl>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.templates.keys().collect();
        names.sort();
        f.debug_struct("Templates")
            .field("templates", &names)
            .field("options", &self.options)
            .finish()
    }
}

impl Templates {
    /// An empty set using `funcs` and `options`.
    pub fn new(funcs: FuncMap, options: Options) -> Templates {
        Templates {
            funcs,
            options,
            templates: HashMap::new(),
        }
    }

    /// Parses `text` as the template `name`; `{{define "x"}}` blocks inside
    /// become templates too. Calling it again adds more templates to the set
    /// (like Go's `t.New(name).Parse`); a later definition replaces an
    /// earlier one unless it is empty. On error nothing is added.
    pub fn parse(&mut self, name: &str, text: &str) -> Result<(), Error> {
        let funcs = &self.funcs;
        let parsed = parse::parse(name, text, &|f| funcs.contains(f)).map_err(|e| {
            let (line, col) = line_col(text, e.pos);
            Error {
                name: name.to_string(),
                line,
                col,
                message: e.message,
                show_col: false,
            }
        })?;
        let source: Arc<str> = Arc::from(text);
        for p in parsed {
            if parse::is_empty(&p.list) && self.templates.contains_key(&p.name) {
                // Go keeps an existing template over an empty redefinition.
                continue;
            }
            let tmpl = Tmpl {
                name: p.name.clone(),
                parse_name: name.to_string(),
                source: source.clone(),
                list: p.list,
            };
            self.templates.insert(p.name, Arc::new(tmpl));
        }
        Ok(())
    }

    /// Executes the template `name` with `data` as dot (and `$`).
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, Error> {
        let Some(tmpl) = self.templates.get(name) else {
            return Err(Error {
                name: String::new(),
                line: 0,
                col: 0,
                message: format!("no template {name:?} associated with template set"),
                show_col: true,
            });
        };
        exec::execute(self, tmpl, data)
    }

    /// Whether a template called `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.templates.contains_key(name)
    }

    /// The names of all templates, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.templates.keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Tmpl>> {
        self.templates.get(name)
    }

    pub(crate) fn funcs(&self) -> &FuncMap {
        &self.funcs
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }
}

/// A parse or execution error. Displays like Go's: parse errors as
/// `template: NAME:LINE: message` (the column is still available from
/// `col()`), execution errors as
/// `template: NAME:LINE:COL: executing "TEMPLATE" at <CONTEXT>: message`.
#[derive(Clone, Debug)]
pub struct Error {
    name: String,
    line: usize,
    col: usize,
    message: String,
    /// Go prints a column for execution errors only (set for every
    /// execution error, including "no such template").
    show_col: bool,
}

impl Error {
    /// The name of the parsed text the error points into.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// 1-based line (0 when the error has no position).
    pub fn line(&self) -> usize {
        self.line
    }
    /// 0-based byte column within the line, as Go reports it.
    pub fn col(&self) -> usize {
        self.col
    }
    /// The message without the `template: NAME:LINE:COL: ` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// True for errors from executing a template, false for parse errors.
    pub fn is_execution(&self) -> bool {
        self.show_col
    }

    pub(crate) fn at(tmpl: &Tmpl, pos: usize, message: String) -> Error {
        let (line, col) = line_col(&tmpl.source, pos);
        Error {
            name: tmpl.parse_name.clone(),
            line,
            col,
            message,
            show_col: true,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "template: {}", self.message)
        } else if !self.show_col {
            write!(f, "template: {}:{}: {}", self.name, self.line, self.message)
        } else {
            write!(
                f,
                "template: {}:{}:{}: {}",
                self.name, self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for Error {}

/// 1-based line and 0-based byte column of `pos` in `text`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos.min(text.len())).unwrap_or(text);
    let line = 1 + before.matches('\n').count();
    let col = match before.rfind('\n') {
        Some(nl) => before.len() - nl - 1,
        None => before.len(),
    };
    (line, col)
}
