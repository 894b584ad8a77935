//! Templates in alerting rules' labels and annotations.
//!
//! Prometheus expands them with Go's text/template, `missingkey=zero`, and
//! these variables defined before the text: `$labels` (the result's
//! labels), `$externalLabels`, `$externalURL` and `$value` (the result's
//! value). Its template functions come from [`template::funcs::prometheus`]
//! plus those that need the server: `query` (an instant query at the
//! evaluation time), `externalURL` and `pathPrefix`. A template that fails
//! to expand becomes `<error expanding template: ...>`, as in Prometheus.

use model::Labels;
use model::storage::Queryable;
use promql::Engine;
use std::collections::BTreeMap;
use std::sync::Arc;
use template::{FuncMap, MissingKey, Options, Templates, Value};

/// The variables Prometheus defines in front of every rule template.
const DEFINITIONS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// What one expansion can see.
pub struct TemplateContext<'a> {
    pub labels: &'a Labels,
    /// Sorted by name.
    pub external_labels: &'a [(String, String)],
    pub external_url: &'a str,
    pub value: f64,
    pub engine: &'a Arc<Engine>,
    pub storage: &'a Arc<dyn Queryable>,
    /// Where `query` evaluates.
    pub time_ms: i64,
}

/// Checks that `text` parses as a rule template (for `check rules`).
pub fn check(name: &str, text: &str) -> Result<(), String> {
    if !text.contains("{{") {
        return Ok(());
    }
    let mut templates = Templates::new(base_funcs(None), options());
    templates
        .parse(name, &format!("{DEFINITIONS}{text}"))
        .map_err(|e| e.to_string())
}

/// Expands one label value or annotation of alerting rule `alert`.
pub fn expand_alert_template(alert: &str, text: &str, context: &TemplateContext<'_>) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let name = format!("__alert_{alert}");
    match expand(&name, text, context) {
        Ok(result) => result,
        Err(message) => {
            tracing::warn!(alert, error = %message, "expanding an alert template failed");
            format!("<error expanding template: {message}>")
        }
    }
}

fn expand(name: &str, text: &str, context: &TemplateContext<'_>) -> Result<String, String> {
    let funcs = base_funcs(Some(QueryHandle::capture(context)));
    let mut templates = Templates::new(funcs, options());
    templates
        .parse(name, &format!("{DEFINITIONS}{text}"))
        .map_err(|e| e.to_string())?;
    let mut data = BTreeMap::new();
    data.insert("Labels".to_string(), labels_value(context.labels));
    let external: BTreeMap<String, String> = context.external_labels.iter().cloned().collect();
    data.insert("ExternalLabels".to_string(), Value::from(external));
    data.insert("ExternalURL".to_string(), Value::from(context.external_url));
    data.insert("Value".to_string(), Value::Float(context.value));
    templates
        .execute(name, &Value::from(data))
        .map_err(|e| e.to_string())
}

fn options() -> Options {
    Options {
        missing_key: MissingKey::Zero,
    }
}

/// A label set as a template map.
pub fn labels_value(labels: &Labels) -> Value {
    let map: BTreeMap<String, String> = labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    Value::from(map)
}

/// What the `query` function needs: owned handles to the engine and
/// storage, and the evaluation time.
type QueryFn = Arc<dyn Fn(&str) -> Result<Value, String> + Send + Sync>;

struct QueryHandle {
    run: QueryFn,
    external_url: String,
}

impl QueryHandle {
    fn capture(context: &TemplateContext<'_>) -> QueryHandle {
        let engine = context.engine.clone();
        let storage = context.storage.clone();
        let time_ms = context.time_ms;
        QueryHandle {
            run: Arc::new(move |query: &str| {
                let output = engine
                    .instant_query(storage.as_ref(), query, time_ms)
                    .map_err(|e| e.to_string())?;
                let samples: Vec<(Labels, f64)> = match output.value {
                    promql::Value::Vector(samples) => samples
                        .into_iter()
                        .filter(|s| s.h.is_none())
                        .map(|s| (s.labels, s.v))
                        .collect(),
                    promql::Value::Scalar { v, .. } => vec![(Labels::empty(), v)],
                    _ => return Err("query result must be a vector or scalar".to_string()),
                };
                let list = samples
                    .into_iter()
                    .map(|(labels, v)| {
                        let mut sample = BTreeMap::new();
                        sample.insert("Labels".to_string(), labels_value(&labels));
                        sample.insert("Value".to_string(), Value::Float(v));
                        Value::from(sample)
                    })
                    .collect::<Vec<_>>();
                Ok(Value::from(list))
            }),
            external_url: context.external_url.to_string(),
        }
    }
}

fn base_funcs(query: Option<QueryHandle>) -> FuncMap {
    let mut funcs = FuncMap::builtins();
    funcs.extend(template::funcs::prometheus());
    let external_url = query
        .as_ref()
        .map(|q| q.external_url.clone())
        .unwrap_or_default();
    let prefix = path_prefix(&external_url);
    funcs.insert(
        "externalURL",
        Arc::new(move |_args: &[Value]| Ok(Value::from(external_url.as_str()))),
    );
    funcs.insert(
        "pathPrefix",
        Arc::new(move |_args: &[Value]| Ok(Value::from(prefix.as_str()))),
    );
    let run = query.map(|q| q.run);
    funcs.insert(
        "query",
        Arc::new(move |args: &[Value]| {
            let Some(Value::Str(q)) = args.first() else {
                return Err("query takes one string argument".to_string());
            };
            match &run {
                Some(run) => run(q),
                None => Ok(Value::List(Arc::new(Vec::new()))),
            }
        }),
    );
    funcs
}

/// The path part of the external URL, without a trailing slash.
fn path_prefix(external_url: &str) -> String {
    let rest = external_url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(external_url);
    match rest.find('/') {
        Some(i) => rest[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}
