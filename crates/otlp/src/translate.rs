//! OTLP metrics to Prometheus series, as Prometheus 3's OTLP receiver
//! translates them (`docs/otlp.md` has the rules and the cases tested).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use model::exemplar::Exemplar;
use model::{Labels, METRIC_NAME, STALE_NAN};

use crate::proto::{
    self, AnyValue, ExportMetricsServiceRequest, FLAG_NO_RECORDED_VALUE, KeyValue, Metric,
    TEMPORALITY_CUMULATIVE, TEMPORALITY_DELTA, any_value, metric, number_data_point,
};

/// How metric and label names are translated: Prometheus's
/// `otlp.translation_strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationStrategy {
    /// Names escaped to `[a-zA-Z0-9_:]` with unit and type suffixes (the
    /// default).
    UnderscoreEscapingWithSuffixes,
    /// Names escaped, no suffixes.
    UnderscoreEscapingWithoutSuffixes,
    /// UTF-8 names kept, with unit and type suffixes.
    NoUTF8EscapingWithSuffixes,
    /// Names kept exactly as sent.
    NoTranslation,
}

impl TranslationStrategy {
    /// Reads Prometheus's spelling of a strategy.
    pub fn parse(text: &str) -> Option<TranslationStrategy> {
        Some(match text {
            "UnderscoreEscapingWithSuffixes" => TranslationStrategy::UnderscoreEscapingWithSuffixes,
            "UnderscoreEscapingWithoutSuffixes" => {
                TranslationStrategy::UnderscoreEscapingWithoutSuffixes
            }
            "NoUTF8EscapingWithSuffixes" => TranslationStrategy::NoUTF8EscapingWithSuffixes,
            "NoTranslation" => TranslationStrategy::NoTranslation,
            _ => return None,
        })
    }

    pub(crate) fn escapes(self) -> bool {
        matches!(
            self,
            TranslationStrategy::UnderscoreEscapingWithSuffixes
                | TranslationStrategy::UnderscoreEscapingWithoutSuffixes
        )
    }

    fn suffixes(self) -> bool {
        matches!(
            self,
            TranslationStrategy::UnderscoreEscapingWithSuffixes
                | TranslationStrategy::NoUTF8EscapingWithSuffixes
        )
    }
}

/// The translation settings (the config's `otlp:` section).
#[derive(Clone, Debug, PartialEq)]
pub struct TranslationOptions {
    pub strategy: TranslationStrategy,
    /// Resource attributes copied onto every series of the resource.
    pub promote_resource_attributes: Vec<String>,
    /// Copy every resource attribute but those in
    /// `ignore_resource_attributes` instead.
    pub promote_all_resource_attributes: bool,
    pub ignore_resource_attributes: Vec<String>,
    /// Add `otel_scope_name`, `otel_scope_version`, `otel_scope_schema_url`
    /// and `otel_scope_<attribute>` labels.
    pub promote_scope_metadata: bool,
    /// Keep `service.name`, `service.namespace` and `service.instance.id`
    /// in `target_info` too (they are `job` and `instance` already).
    pub keep_identifying_resource_attributes: bool,
    /// A label name starting with one `_` gets `key` prepended (`_x` →
    /// `key_x`); Prometheus's `label_name_underscore_sanitization`.
    pub label_name_underscore_sanitization: bool,
    /// Runs of `_` (and of characters escaped to `_`) stay as they are;
    /// when false they collapse to one. Prometheus's
    /// `label_name_preserve_multiple_underscores`.
    pub label_name_preserve_multiple_underscores: bool,
}

impl TranslationOptions {
    /// Prometheus 3's defaults.
    pub fn prometheus_defaults() -> TranslationOptions {
        TranslationOptions {
            strategy: TranslationStrategy::UnderscoreEscapingWithSuffixes,
            promote_resource_attributes: Vec::new(),
            promote_all_resource_attributes: false,
            ignore_resource_attributes: Vec::new(),
            promote_scope_metadata: false,
            keep_identifying_resource_attributes: false,
            label_name_underscore_sanitization: true,
            label_name_preserve_multiple_underscores: true,
        }
    }
}

/// How label names are translated: the strategy and the two label
/// settings.
#[derive(Clone, Copy, Debug)]
pub struct LabelNaming {
    pub strategy: TranslationStrategy,
    pub underscore_sanitization: bool,
    pub preserve_multiple_underscores: bool,
}

impl TranslationOptions {
    fn label_naming(&self) -> LabelNaming {
        LabelNaming {
            strategy: self.strategy,
            underscore_sanitization: self.label_name_underscore_sanitization,
            preserve_multiple_underscores: self.label_name_preserve_multiple_underscores,
        }
    }
}

/// A translated request: the samples to store, the data points refused
/// (for OTLP's `partial_success`) and the delta-to-cumulative state to
/// keep once the samples are stored ([`Translator::apply`]).
#[derive(Debug, Default)]
pub struct Translated {
    pub samples: Vec<(Labels, i64, f64)>,
    /// Exemplars, each with the labels of the series it belongs to (a
    /// sample of which is in `samples`), in the order Prometheus appends
    /// them.
    pub exemplars: Vec<(Labels, Exemplar)>,
    /// The created timestamps of samples, in milliseconds, by index into
    /// `samples` (ascending): a cumulative point's `start_time_unix_nano`,
    /// which Prometheus 3's receiver stores as a zero sample with
    /// `created-timestamp-zero-ingestion`. Gauges and summaries carry
    /// theirs too, as Prometheus passes every point's; delta points,
    /// turned cumulative here, carry none (their start is their
    /// interval's, not the running total's).
    pub created: Vec<(usize, i64)>,
    pub rejected_points: i64,
    /// Why points were refused, the first few reasons.
    pub errors: Vec<String>,
    deltas: Vec<(Labels, (DeltaState, i64))>,
}

impl Translated {
    fn reject(&mut self, points: usize, reason: String) {
        self.rejected_points = self
            .rejected_points
            .saturating_add(i64::try_from(points).unwrap_or(i64::MAX));
        if self.errors.len() < 10 {
            self.errors.push(reason);
        }
    }
}

/// Running totals of a delta series, turned cumulative.
#[derive(Clone, Debug, PartialEq)]
enum DeltaState {
    Sum(f64),
    Histogram {
        bounds: Vec<f64>,
        buckets: Vec<u64>,
        count: u64,
        sum: f64,
    },
}

/// Translates requests; holds the running totals of delta series.
pub struct Translator {
    options: std::sync::RwLock<TranslationOptions>,
    /// Per series: its running totals and the time of its last point.
    deltas: Mutex<HashMap<Labels, (DeltaState, i64)>>,
}

/// Delta series whose totals are kept before idle ones are forgotten.
const MAX_DELTA_SERIES: usize = 1_000_000;
/// How long a delta series may go without a point before, past the cap,
/// its totals are forgotten.
const DELTA_IDLE_MS: i64 = 3_600_000;

/// The spacing of `target_info` samples over a resource's time span:
/// PromQL's default lookback, so the series never goes absent between.
const TARGET_INFO_STEP_MS: i64 = 300_000;
/// At most this many `target_info` samples per resource and request
/// besides the latest (a request spanning more is unusual).
const MAX_TARGET_INFO_SAMPLES: usize = 1_000;

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// The metric kinds that name translation tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    Summary,
}

impl Translator {
    pub fn new(options: TranslationOptions) -> Translator {
        Translator {
            options: std::sync::RwLock::new(options),
            deltas: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in effect.
    pub fn options(&self) -> TranslationOptions {
        self.options
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the settings (a reload); the running delta totals stay.
    pub fn set_options(&self, options: TranslationOptions) {
        *self.options.write().unwrap_or_else(|e| e.into_inner()) = options;
    }

    /// Translates every data point of `request`. Nothing is stored here;
    /// points that cannot be translated are counted in `rejected_points`.
    pub fn translate(&self, request: &ExportMetricsServiceRequest) -> Translated {
        let options = self.options();
        let mut out = Translated::default();
        let deltas = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        let mut pending: HashMap<Labels, (DeltaState, i64)> = HashMap::new();
        for resource_metrics in &request.resource_metrics {
            let empty = Vec::new();
            let resource_attrs = resource_metrics
                .resource
                .as_ref()
                .map_or(&empty, |r| &r.attributes);
            let resource = ResourceLabels::new(resource_attrs, &options);
            let mut span_ms = None::<(i64, i64)>;
            for scope in &resource_metrics.scope_metrics {
                let scope_labels = if options.promote_scope_metadata {
                    scope_labels(scope, options.label_naming())
                } else {
                    Vec::new()
                };
                for metric in &scope.metrics {
                    let before = out.samples.len();
                    let mut ctx = PointContext {
                        options: &options,
                        scope: &scope_labels,
                        resource: &resource,
                        deltas: &deltas,
                        pending: &mut pending,
                        out: &mut out,
                        created_ms: 0,
                    };
                    ctx.metric(metric);
                    for (_, t, _) in &out.samples[before..] {
                        span_ms = Some(span_ms.map_or((*t, *t), |(a, b)| (a.min(*t), b.max(*t))));
                    }
                }
            }
            // As Prometheus 3.6+: target_info from the resource's earliest
            // sample through its latest, a sample every lookback period
            // between, so it is present wherever the resource's series are.
            if let Some((earliest, latest)) = span_ms
                && let Some(labels) = resource.target_info(&options)
            {
                let mut t = earliest;
                let mut n = 0;
                while t < latest && n < MAX_TARGET_INFO_SAMPLES {
                    out.samples.push((labels.clone(), t, 1.0));
                    t = t.saturating_add(TARGET_INFO_STEP_MS);
                    n += 1;
                }
                out.samples.push((labels, latest, 1.0));
            }
        }
        out.deltas = pending.into_iter().collect();
        out
    }

    /// Keeps the running totals of a translation whose samples were stored.
    pub fn apply(&self, translated: &mut Translated) {
        let mut deltas = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        for (labels, state) in translated.deltas.drain(..) {
            deltas.insert(labels, state);
        }
        // Bound the memory: past the cap, series whose last point is an
        // hour older than the newest are forgotten (a later point starts
        // their totals over, which `rate()` reads as a reset).
        if deltas.len() > MAX_DELTA_SERIES {
            let newest = deltas.values().map(|(_, t)| *t).max().unwrap_or(0);
            let cutoff = newest.saturating_sub(DELTA_IDLE_MS);
            deltas.retain(|_, (_, t)| *t >= cutoff);
        }
    }
}

/// What a resource contributes to every series: `job`, `instance` and the
/// promoted attributes, plus its `target_info`.
struct ResourceLabels<'a> {
    attrs: &'a [KeyValue],
    job: Option<String>,
    instance: Option<String>,
    promoted: Vec<(String, String)>,
}

impl<'a> ResourceLabels<'a> {
    fn new(attrs: &'a [KeyValue], options: &TranslationOptions) -> ResourceLabels<'a> {
        let get = |key: &str| {
            attrs
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| value_string(kv.value.as_ref()))
        };
        let job = get(SERVICE_NAME).map(|name| match get(SERVICE_NAMESPACE) {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name,
        });
        let instance = get(SERVICE_INSTANCE_ID);
        let mut promoted = Vec::new();
        if options.promote_all_resource_attributes {
            for kv in attrs {
                if !options.ignore_resource_attributes.contains(&kv.key) {
                    promoted.push((kv.key.clone(), value_string(kv.value.as_ref())));
                }
            }
        } else {
            for key in &options.promote_resource_attributes {
                if let Some(value) = get(key) {
                    promoted.push((key.clone(), value));
                }
            }
        }
        ResourceLabels {
            attrs,
            job,
            instance,
            promoted,
        }
    }

    /// `target_info`: the resource's other attributes, when it has any.
    fn target_info(&self, options: &TranslationOptions) -> Option<Labels> {
        let identifying = [SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID];
        let others = self
            .attrs
            .iter()
            .filter(|kv| !identifying.contains(&kv.key.as_str()))
            .count();
        if others == 0 {
            return None;
        }
        let attrs: Vec<&KeyValue> = self
            .attrs
            .iter()
            .filter(|kv| {
                options.keep_identifying_resource_attributes
                    || !identifying.contains(&kv.key.as_str())
            })
            .collect();
        let mut map = attribute_labels(&attrs, options.label_naming()).ok()?;
        self.finish(&mut map, options.label_naming());
        map.insert(METRIC_NAME.to_string(), "target_info".to_string());
        Some(to_labels(map))
    }

    /// Adds the promoted attributes (where no point attribute has the
    /// name), `job` and `instance` (always winning).
    fn finish(&self, map: &mut BTreeMap<String, String>, naming: LabelNaming) {
        for (key, value) in &self.promoted {
            if let Ok(name) = label_name_with(key, naming) {
                map.entry(name).or_insert_with(|| value.clone());
            }
        }
        if let Some(job) = &self.job {
            map.insert("job".to_string(), job.clone());
        }
        if let Some(instance) = &self.instance {
            map.insert("instance".to_string(), instance.clone());
        }
    }
}

struct PointContext<'c, 'r> {
    options: &'c TranslationOptions,
    /// `otel_scope_*` labels (empty unless `promote_scope_metadata`).
    scope: &'c [(String, String)],
    resource: &'c ResourceLabels<'r>,
    deltas: &'c HashMap<Labels, (DeltaState, i64)>,
    pending: &'c mut HashMap<Labels, (DeltaState, i64)>,
    out: &'c mut Translated,
    /// The created timestamp (ms, 0 for none) of the point being
    /// translated, given to each sample it pushes.
    created_ms: i64,
}

impl PointContext<'_, '_> {
    fn metric(&mut self, metric: &Metric) {
        let Some(data) = &metric.data else {
            self.out.reject(
                0,
                format!("metric {:?} has no data (empty metric type)", metric.name),
            );
            return;
        };
        let (kind, points, temporality) = match data {
            metric::Data::Gauge(g) => (Kind::Gauge, g.data_points.len(), TEMPORALITY_CUMULATIVE),
            metric::Data::Sum(s) => (
                if s.is_monotonic {
                    Kind::MonotonicCounter
                } else {
                    Kind::NonMonotonicCounter
                },
                s.data_points.len(),
                s.aggregation_temporality,
            ),
            metric::Data::Histogram(h) => (
                Kind::Histogram,
                h.data_points.len(),
                h.aggregation_temporality,
            ),
            metric::Data::ExponentialHistogram(h) => (
                Kind::Histogram,
                h.data_points.len(),
                h.aggregation_temporality,
            ),
            metric::Data::Summary(s) => {
                (Kind::Summary, s.data_points.len(), TEMPORALITY_CUMULATIVE)
            }
        };
        if temporality != TEMPORALITY_CUMULATIVE && temporality != TEMPORALITY_DELTA {
            self.out.reject(
                points,
                format!(
                    "metric {:?}: aggregation temporality {temporality} is neither delta nor cumulative",
                    metric.name
                ),
            );
            return;
        }
        let name = match metric_name(&metric.name, &metric.unit, kind, self.options.strategy) {
            Ok(name) => name,
            Err(e) => {
                self.out.reject(points, e);
                return;
            }
        };
        let delta = temporality == TEMPORALITY_DELTA;
        match data {
            metric::Data::Gauge(g) => {
                for p in &g.data_points {
                    self.number(&name, p, false);
                }
            }
            metric::Data::Sum(s) => {
                for p in &s.data_points {
                    self.number(&name, p, delta);
                }
            }
            metric::Data::Histogram(h) => {
                for p in &h.data_points {
                    self.histogram(&name, p, delta);
                }
            }
            metric::Data::ExponentialHistogram(h) => {
                for p in &h.data_points {
                    match exponential_to_classic(p) {
                        Ok(classic) => self.histogram(&name, &classic, delta),
                        Err(e) => self.out.reject(1, format!("metric {name:?}: {e}")),
                    }
                }
            }
            metric::Data::Summary(s) => {
                for p in &s.data_points {
                    self.summary(&name, p);
                }
            }
        }
    }

    /// The labels of a point's series without `__name__`, or why none.
    fn base(&mut self, name: &str, attrs: &[KeyValue]) -> Option<BTreeMap<String, String>> {
        let refs: Vec<&KeyValue> = attrs.iter().collect();
        match attribute_labels(&refs, self.options.label_naming()) {
            Ok(mut map) => {
                for (name, value) in self.scope {
                    map.insert(name.clone(), value.clone());
                }
                self.resource.finish(&mut map, self.options.label_naming());
                Some(map)
            }
            Err(e) => {
                self.out.reject(1, format!("metric {name:?}: {e}"));
                None
            }
        }
    }

    fn push(
        &mut self,
        map: &BTreeMap<String, String>,
        name: &str,
        extra: Option<(&str, String)>,
        t: i64,
        v: f64,
    ) -> Labels {
        let mut map = map.clone();
        if let Some((label, value)) = extra {
            map.insert(label.to_string(), value);
        }
        map.insert(METRIC_NAME.to_string(), name.to_string());
        let labels = to_labels(map);
        if self.created_ms != 0 {
            self.out
                .created
                .push((self.out.samples.len(), self.created_ms));
        }
        self.out.samples.push((labels.clone(), t, v));
        labels
    }

    /// Sets the created timestamp of the point being translated: its
    /// start time in milliseconds, as Prometheus converts it; none for a
    /// delta point.
    fn start_point(&mut self, start_time_unix_nano: u64, delta: bool) {
        self.created_ms = if delta {
            0
        } else {
            i64::try_from(start_time_unix_nano / 1_000_000).unwrap_or(0)
        };
    }

    /// Attaches exemplars to the series `labels`.
    fn attach(&mut self, labels: &Labels, exemplars: impl IntoIterator<Item = Exemplar>) {
        for exemplar in exemplars {
            self.out.exemplars.push((labels.clone(), exemplar));
        }
    }

    fn time(&mut self, name: &str, time_unix_nano: u64) -> Option<i64> {
        if time_unix_nano == 0 {
            self.out.reject(
                1,
                format!("metric {name:?}: a data point has no time_unix_nano"),
            );
            return None;
        }
        Some(i64::try_from(time_unix_nano / 1_000_000).unwrap_or(i64::MAX))
    }

    fn number(&mut self, name: &str, p: &proto::NumberDataPoint, delta: bool) {
        self.start_point(p.start_time_unix_nano, delta);
        let Some(t) = self.time(name, p.time_unix_nano) else {
            return;
        };
        let Some(map) = self.base(name, &p.attributes) else {
            return;
        };
        let mut v = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => 0.0,
        };
        if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
            let labels = self.push(&map, name, None, t, STALE_NAN);
            self.attach(&labels, p.exemplars.iter().map(exemplar));
            return;
        }
        if delta {
            let mut key = map.clone();
            key.insert(METRIC_NAME.to_string(), name.to_string());
            let key = to_labels(key);
            let previous = match self.pending.get(&key).or_else(|| self.deltas.get(&key)) {
                Some((DeltaState::Sum(total), _)) => *total,
                _ => 0.0,
            };
            v += previous;
            self.pending.insert(key, (DeltaState::Sum(v), t));
        }
        let labels = self.push(&map, name, None, t, v);
        self.attach(&labels, p.exemplars.iter().map(exemplar));
    }

    fn histogram(&mut self, name: &str, p: &proto::HistogramDataPoint, delta: bool) {
        self.start_point(p.start_time_unix_nano, delta);
        let Some(t) = self.time(name, p.time_unix_nano) else {
            return;
        };
        if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            self.out.reject(
                1,
                format!(
                    "metric {name:?}: {} bucket counts for {} explicit bounds (want bounds + 1)",
                    p.bucket_counts.len(),
                    p.explicit_bounds.len()
                ),
            );
            return;
        }
        if p.explicit_bounds
            .windows(2)
            .any(|w| w[0] >= w[1] || w[0].is_nan())
        {
            self.out.reject(
                1,
                format!("metric {name:?}: explicit bounds are not increasing"),
            );
            return;
        }
        let Some(map) = self.base(name, &p.attributes) else {
            return;
        };
        let bucket_name = format!("{name}_bucket");
        let sum_name = format!("{name}_sum");
        let count_name = format!("{name}_count");
        if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
            for bound in &p.explicit_bounds {
                self.push(
                    &map,
                    &bucket_name,
                    Some(("le", format_float(*bound))),
                    t,
                    STALE_NAN,
                );
            }
            self.push(
                &map,
                &bucket_name,
                Some(("le", "+Inf".to_string())),
                t,
                STALE_NAN,
            );
            if p.sum.is_some() {
                self.push(&map, &sum_name, None, t, STALE_NAN);
            }
            self.push(&map, &count_name, None, t, STALE_NAN);
            return;
        }
        let mut buckets = p.bucket_counts.clone();
        let mut count = p.count;
        let mut sum = p.sum;
        if delta {
            let mut key = map.clone();
            key.insert(METRIC_NAME.to_string(), name.to_string());
            let key = to_labels(key);
            if let Some((
                DeltaState::Histogram {
                    bounds,
                    buckets: before,
                    count: count_before,
                    sum: sum_before,
                },
                _,
            )) = self.pending.get(&key).or_else(|| self.deltas.get(&key))
            {
                // Changed bounds start the totals over, as a counter reset.
                if *bounds == p.explicit_bounds && before.len() == buckets.len() {
                    for (b, prev) in buckets.iter_mut().zip(before) {
                        *b = b.saturating_add(*prev);
                    }
                    count = count.saturating_add(*count_before);
                    sum = Some(sum.unwrap_or(0.0) + sum_before);
                }
            }
            self.pending.insert(
                key,
                (
                    DeltaState::Histogram {
                        bounds: p.explicit_bounds.clone(),
                        buckets: buckets.clone(),
                        count,
                        sum: sum.unwrap_or(0.0),
                    },
                    t,
                ),
            );
        }
        // As Prometheus: each exemplar goes to the first bucket whose
        // bound is at least its value, the rest to `+Inf`, walking both in
        // ascending order.
        let mut exemplars: Vec<Exemplar> = p.exemplars.iter().map(exemplar).collect();
        exemplars.sort_by(|a, b| a.value.total_cmp(&b.value));
        let mut exemplars = exemplars.into_iter().peekable();
        let mut cumulative = 0u64;
        for (bound, n) in p.explicit_bounds.iter().zip(&buckets) {
            cumulative = cumulative.saturating_add(*n);
            let labels = self.push(
                &map,
                &bucket_name,
                Some(("le", format_float(*bound))),
                t,
                cumulative as f64,
            );
            let mut in_bucket = Vec::new();
            while let Some(e) = exemplars.next_if(|e| e.value <= *bound) {
                in_bucket.push(e);
            }
            self.attach(&labels, in_bucket);
        }
        let labels = self.push(
            &map,
            &bucket_name,
            Some(("le", "+Inf".to_string())),
            t,
            count as f64,
        );
        self.attach(&labels, exemplars);
        if let Some(sum) = sum {
            self.push(&map, &sum_name, None, t, sum);
        }
        self.push(&map, &count_name, None, t, count as f64);
    }

    fn summary(&mut self, name: &str, p: &proto::SummaryDataPoint) {
        self.start_point(p.start_time_unix_nano, false);
        let Some(t) = self.time(name, p.time_unix_nano) else {
            return;
        };
        let Some(map) = self.base(name, &p.attributes) else {
            return;
        };
        let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
        let pick = |v: f64| if stale { STALE_NAN } else { v };
        for q in &p.quantile_values {
            self.push(
                &map,
                name,
                Some(("quantile", format_float(q.quantile))),
                t,
                pick(q.value),
            );
        }
        self.push(&map, &format!("{name}_sum"), None, t, pick(p.sum));
        self.push(
            &map,
            &format!("{name}_count"),
            None,
            t,
            pick(p.count as f64),
        );
    }
}

/// An exponential histogram as a classic one: each populated bucket's
/// upper boundary becomes an explicit bound. Positive bucket `i` covers
/// `(base^(offset+i), base^(offset+i+1)]`, negative bucket `i` covers
/// `[-base^(offset+i+1), -base^(offset+i))`, and the zero bucket
/// `[-zero_threshold, zero_threshold]`; with `base = 2^(2^-scale)`. Bounds
/// are listed in increasing order: negative buckets from the largest
/// magnitude (upper bound `-base^(offset+i)`), the zero bucket (upper
/// bound `zero_threshold`), then the positive buckets.
fn exponential_to_classic(
    p: &proto::ExponentialHistogramDataPoint,
) -> Result<proto::HistogramDataPoint, String> {
    if !(-10..=20).contains(&p.scale) {
        return Err(format!(
            "exponential histogram scale {} out of range",
            p.scale
        ));
    }
    let base = 2f64.powf(2f64.powi(-p.scale));
    let mut bounds = Vec::new();
    let mut counts = Vec::new();
    if let Some(neg) = &p.negative {
        for (i, n) in neg.bucket_counts.iter().enumerate().rev() {
            let index = i64::from(neg.offset) + i64::try_from(i).unwrap_or(i64::MAX);
            bounds.push(-base.powf(index as f64));
            counts.push(*n);
        }
    }
    bounds.push(p.zero_threshold.max(0.0));
    counts.push(p.zero_count);
    if let Some(pos) = &p.positive {
        for (i, n) in pos.bucket_counts.iter().enumerate() {
            let index = i64::from(pos.offset) + i64::try_from(i).unwrap_or(i64::MAX);
            bounds.push(base.powf((index + 1) as f64));
            counts.push(*n);
        }
    }
    // The +Inf bucket holds nothing beyond the largest positive bound.
    counts.push(0);
    // Bounds that collapse (a zero threshold above the first positive
    // bound) would not be increasing: merge them into the bucket below.
    let mut merged_bounds: Vec<f64> = Vec::with_capacity(bounds.len());
    let mut merged_counts: Vec<u64> = Vec::with_capacity(counts.len());
    for (bound, n) in bounds.iter().zip(&counts) {
        match merged_bounds.last() {
            Some(last) if *bound <= *last => {
                if let Some(c) = merged_counts.last_mut() {
                    *c = c.saturating_add(*n);
                }
            }
            _ => {
                if !bound.is_finite() {
                    return Err("exponential histogram bucket boundary overflows".to_string());
                }
                merged_bounds.push(*bound);
                merged_counts.push(*n);
            }
        }
    }
    merged_counts.push(0);
    Ok(proto::HistogramDataPoint {
        attributes: p.attributes.clone(),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count: p.count,
        sum: p.sum,
        bucket_counts: merged_counts,
        explicit_bounds: merged_bounds,
        // Kept on the classic buckets (Prometheus 3 keeps them on the
        // native histogram, which osprey does not have yet).
        exemplars: p.exemplars.clone(),
        flags: p.flags,
    })
}

/// A bound or quantile as Prometheus's translation prints it (Go's
/// `FormatFloat(f, 'f', -1, 64)`: shortest round-trip, no exponent).
fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f == f64::INFINITY {
        "+Inf".to_string()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{f}")
    }
}

fn to_labels(map: BTreeMap<String, String>) -> Labels {
    Labels::from_pairs(map)
}

/// The labels `promote_scope_metadata` adds: the scope's name, version
/// and schema URL, and its attributes as `otel_scope_<key>`; nothing for
/// a scope without a name.
fn scope_labels(scope: &proto::ScopeMetrics, naming: LabelNaming) -> Vec<(String, String)> {
    let Some(s) = scope.scope.as_ref().filter(|s| !s.name.is_empty()) else {
        return Vec::new();
    };
    let mut out = vec![("otel_scope_name".to_string(), s.name.clone())];
    if !s.version.is_empty() {
        out.push(("otel_scope_version".to_string(), s.version.clone()));
    }
    if !scope.schema_url.is_empty() {
        out.push((
            "otel_scope_schema_url".to_string(),
            scope.schema_url.clone(),
        ));
    }
    for kv in &s.attributes {
        if let Ok(name) = label_name_with(&format!("otel_scope_{}", kv.key), naming) {
            out.push((name, value_string(kv.value.as_ref())));
        }
    }
    out
}

/// A point's attributes as labels: names translated, names that collide
/// once translated joined with `;` in the order of the original keys.
fn attribute_labels(
    attrs: &[&KeyValue],
    naming: LabelNaming,
) -> Result<BTreeMap<String, String>, String> {
    let mut sorted: Vec<&&KeyValue> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for kv in sorted {
        let name = label_name_with(&kv.key, naming)?;
        let value = value_string(kv.value.as_ref());
        match map.get_mut(&name) {
            Some(existing) => {
                existing.push(';');
                existing.push_str(&value);
            }
            None => {
                map.insert(name, value);
            }
        }
    }
    Ok(map)
}

/// A label name as Prometheus 3 translates an attribute key, with the
/// default label settings.
pub fn label_name(key: &str, strategy: TranslationStrategy) -> Result<String, String> {
    label_name_with(
        key,
        LabelNaming {
            strategy,
            underscore_sanitization: true,
            preserve_multiple_underscores: true,
        },
    )
}

/// A label name as Prometheus 3 translates an attribute key.
pub fn label_name_with(key: &str, naming: LabelNaming) -> Result<String, String> {
    if key.is_empty() {
        return Err("an attribute has an empty key".to_string());
    }
    if !naming.strategy.escapes() {
        if key.chars().all(|c| c == '_') {
            return Err(format!("label name {key:?} contains only underscores"));
        }
        return Ok(key.to_string());
    }
    let mut name = if naming.preserve_multiple_underscores {
        key.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    } else {
        // Runs of `_` and escaped characters become one `_`; a reserved
        // `__x__` keeps its double underscores.
        let (inner, reserved) = match key.strip_prefix("__").and_then(|k| k.strip_suffix("__")) {
            Some(inner) if key.len() >= 4 => (inner, true),
            _ => (key, false),
        };
        let mut out = String::with_capacity(key.len());
        if reserved {
            out.push_str("__");
        }
        let mut previous_underscore = false;
        for c in inner.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
                previous_underscore = false;
            } else if !previous_underscore {
                out.push('_');
                previous_underscore = true;
            }
        }
        if reserved {
            out.push_str("__");
        }
        out
    };
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("key_{name}");
    } else if naming.underscore_sanitization && name.starts_with('_') && !name.starts_with("__") {
        name = format!("key{name}");
    }
    if name.chars().all(|c| c == '_') {
        return Err(format!(
            "normalization for label name {key:?} resulted in invalid name {name:?}"
        ));
    }
    Ok(name)
}

/// The runes an exemplar's labels may hold (OpenMetrics' limit), which
/// Prometheus's translation fills with the trace and span ids first and
/// with the filtered attributes only if they all fit.
const MAX_EXEMPLAR_RUNES: usize = model::exemplar::MAX_LABEL_SET_RUNES;

/// An OTLP exemplar as Prometheus 3 translates it: `trace_id` and
/// `span_id` labels of the ids in lowercase hex (left out when empty or
/// zero), the filtered attributes as labels named as they are when all
/// of them fit in 128 runes with the ids, the time in milliseconds (none
/// of its own when 0).
fn exemplar(e: &proto::Exemplar) -> Exemplar {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut runes = 0usize;
    for (key, id) in [("trace_id", &e.trace_id), ("span_id", &e.span_id)] {
        if id.iter().any(|b| *b != 0) {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            runes += key.len() + hex.len();
            pairs.push((key.to_string(), hex));
        }
    }
    let attributes: Vec<(String, String)> = e
        .filtered_attributes
        .iter()
        .map(|kv| (kv.key.clone(), value_string(kv.value.as_ref())))
        .collect();
    runes += attributes
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum::<usize>();
    if runes <= MAX_EXEMPLAR_RUNES {
        pairs.extend(attributes);
    }
    let timestamp_ms = i64::try_from(e.time_unix_nano / 1_000_000).unwrap_or(i64::MAX);
    Exemplar {
        labels: Labels::from_pairs(pairs),
        value: match e.value {
            Some(proto::exemplar::Value::AsDouble(d)) => d,
            Some(proto::exemplar::Value::AsInt(i)) => i as f64,
            None => 0.0,
        },
        timestamp_ms,
        has_timestamp: timestamp_ms != 0,
    }
}

/// An attribute value as text (pdata's `AsString`): strings as they are,
/// booleans and numbers printed, bytes in base64, lists and maps as JSON.
fn value_string(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => {
            let json = any_json(other);
            match json {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }
        }
    }
}

fn any_json(value: &any_value::Value) -> serde_json::Value {
    use base64::Engine as _;
    match value {
        any_value::Value::StringValue(s) => serde_json::Value::String(s.clone()),
        any_value::Value::BoolValue(b) => serde_json::Value::Bool(*b),
        any_value::Value::IntValue(i) => serde_json::Value::from(*i),
        any_value::Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(format_float(*d))),
        any_value::Value::BytesValue(b) => {
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        any_value::Value::ArrayValue(a) => serde_json::Value::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(serde_json::Value::Null, any_json))
                .collect(),
        ),
        any_value::Value::KvlistValue(kv) => serde_json::Value::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value
                            .as_ref()
                            .and_then(|v| v.value.as_ref())
                            .map_or(serde_json::Value::Null, any_json),
                    )
                })
                .collect(),
        ),
    }
}

const UNITS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
];

const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

fn lookup(table: &[(&str, &'static str)], unit: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == unit).map(|(_, v)| *v)
}

/// The unit's suffixes: the main unit spelled out (`s` → `seconds`) and
/// the `per_` unit after a `/` (`/s` → `per_second`). Units in braces
/// (`{requests}`) are annotations and add nothing.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if !main.is_empty() && !main.contains(['{', '}']) {
        lookup(UNITS, main).map_or_else(|| main.to_string(), str::to_string)
    } else {
        String::new()
    };
    let per = match parts.next().map(str::trim) {
        Some(per) if !per.is_empty() && !per.contains(['{', '}']) => {
            let spelled = lookup(PER_UNITS, per).map_or_else(|| per.to_string(), str::to_string);
            if spelled.is_empty() {
                String::new()
            } else {
                format!("per_{spelled}")
            }
        }
        _ => String::new(),
    };
    (main, per)
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// A unit suffix with characters outside `[a-zA-Z0-9:]` made `_`, runs of
/// `_` made one, and no leading `_`.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.trim_start_matches('_').to_string()
}

/// A metric name as Prometheus 3 translates an OTLP metric's name and unit.
pub fn metric_name(
    name: &str,
    unit: &str,
    kind: Kind,
    strategy: TranslationStrategy,
) -> Result<String, String> {
    metric_name_inner(name, unit, kind, strategy)
}

fn metric_name_inner(
    name: &str,
    unit: &str,
    kind: Kind,
    strategy: TranslationStrategy,
) -> Result<String, String> {
    let built = if !strategy.escapes() {
        let mut out = name.to_string();
        if strategy.suffixes() {
            let ratio = unit == "1" && kind == Kind::Gauge;
            let total = kind == Kind::MonotonicCounter;
            if ratio {
                out = trim_suffix_and_delimiter(&out, "ratio");
            }
            if total {
                out = trim_suffix_and_delimiter(&out, "total");
            }
            let (main, per) = unit_suffixes(unit);
            if !per.is_empty() {
                out = trim_suffix_and_delimiter(&out, &per);
            }
            if !main.is_empty() && !out.ends_with(&main) {
                out = format!("{out}_{main}");
            }
            if !per.is_empty() {
                out = format!("{out}_{per}");
            }
            if total {
                out.push_str("_total");
            }
            if ratio {
                out.push_str("_ratio");
            }
        }
        out
    } else if strategy.suffixes() {
        let mut tokens: Vec<String> = name
            .split(|c: char| !is_metric_char(c))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let (main, per) = unit_suffixes(unit);
        let mut main = clean_unit(&main);
        let mut per = clean_unit(&per);
        if tokens.contains(&main) {
            main.clear();
        }
        if per == "per_" {
            per.clear();
        } else {
            per = per.trim_end_matches('_').to_string();
            if tokens.contains(&per) {
                per.clear();
            }
        }
        if !per.is_empty() {
            main = main.trim_end_matches('_').to_string();
        }
        if !main.is_empty() {
            tokens.push(main);
        }
        if !per.is_empty() {
            tokens.push(per);
        }
        if kind == Kind::MonotonicCounter {
            tokens.retain(|t| t != "total");
            tokens.push("total".to_string());
        }
        if unit == "1" && kind == Kind::Gauge {
            tokens.retain(|t| t != "ratio");
            tokens.push("ratio".to_string());
        }
        let joined = tokens.join("_");
        if joined.starts_with(|c: char| c.is_ascii_digit()) {
            format!("_{joined}")
        } else {
            joined
        }
    } else {
        let joined = name
            .split(|c: char| !is_metric_char(c) && c != '_')
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        if joined.starts_with(|c: char| c.is_ascii_digit()) {
            format!("_{joined}")
        } else {
            joined
        }
    };
    if built.is_empty() {
        return Err(format!(
            "normalization for metric {name:?} resulted in empty name"
        ));
    }
    if built != name && built.chars().all(|c| c == '_') {
        return Err(format!(
            "normalization for metric {name:?} resulted in invalid name {built:?}"
        ));
    }
    Ok(built)
}

/// `name` without `suffix` and the one character before it, when there
/// is something left.
fn trim_suffix_and_delimiter(name: &str, suffix: &str) -> String {
    if let Some(rest) = name.strip_suffix(suffix) {
        let mut chars = rest.chars();
        if chars.next_back().is_some() && !chars.as_str().is_empty() {
            return chars.as_str().to_string();
        }
    }
    name.to_string()
}

#[cfg(test)]
mod tests;
