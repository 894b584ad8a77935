//! The `costs:` section: prices of GPUs, CPU, memory and instances, the
//! training step counters, and budgets (`docs/costs.md`).
//!
//! ```yaml
//! costs:
//!   interval: 1m
//!   gpu:
//!     metric: DCGM_FI_DEV_GPU_UTIL
//!     model_label: modelName
//!     hour: {"NVIDIA H100 80GB HBM3": 3.00}
//!     default_hour: 0
//!   cpu: {metric: process_cpu_seconds_total, core_hour: 0.04}
//!   memory: {metric: process_resident_memory_bytes, gib_hour: 0.005}
//!   instances:
//!     - match: {job: trainer}
//!       hour: 1.20
//!   steps:
//!     - {job: trainer, metric: training_steps_total}
//!   budgets:
//!     - {name: training, match: {job: trainer}, amount: 5000, period: month}
//! ```

use crate::ConfigError;
use crate::decode::{Decoder, Field, is_valid_label_name};

/// The whole section. Absent: no cost series at all.
#[derive(Clone, Debug, PartialEq)]
pub struct CostsConfig {
    /// The integration step (and the rule group's interval).
    pub interval_ms: i64,
    /// How long after a step's end it is evaluated, so that samples
    /// stamped before the end (a scrape in flight) are in.
    pub delay_ms: i64,
    pub gpu: GpuPrices,
    pub cpu: CpuPrice,
    pub memory: MemoryPrice,
    pub instances: Vec<InstancePrice>,
    pub steps: Vec<StepCounter>,
    pub budgets: Vec<Budget>,
}

/// Dollars per GPU-hour by the GPU exporter's model name.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuPrices {
    /// A gauge with one series per GPU (the DCGM exporter's names, which
    /// osprey's GPU exporter writes).
    pub metric: String,
    /// The label carrying the GPU's model name.
    pub model_label: String,
    /// Model name to dollars per hour, in file order.
    pub hour: Vec<(String, f64)>,
    /// Dollars per hour of a GPU whose model is not listed.
    pub default_hour: f64,
}

/// Dollars per CPU core-hour, from a counter of CPU seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuPrice {
    pub metric: String,
    pub core_hour: f64,
}

/// Dollars per GiB-hour, from a gauge of bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryPrice {
    pub metric: String,
    pub gib_hour: f64,
}

/// A fixed price per hour for every target (`up` series) whose labels
/// include all of `matchers`; the first entry that matches a target
/// prices it.
#[derive(Clone, Debug, PartialEq)]
pub struct InstancePrice {
    pub matchers: Vec<(String, String)>,
    pub hour: f64,
}

/// A training job's step counter: cost per step is reported for `job`.
#[derive(Clone, Debug, PartialEq)]
pub struct StepCounter {
    pub job: String,
    pub metric: String,
    /// The window the cost per step averages over.
    pub window_ms: i64,
}

/// A budget's period: calendar periods in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    /// From Monday 00:00 UTC.
    Week,
    Month,
}

/// Spending of the cost series matching `matchers` against `amount`
/// dollars per period.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    pub name: String,
    /// Label equalities on the cost series (`job`, `instance`,
    /// `resource`, `gpu_model`); empty: every cost series.
    pub matchers: Vec<(String, String)>,
    pub amount: f64,
    pub period: Period,
    /// The window the spending rate of the forecast is measured over.
    pub forecast_window_ms: i64,
    /// `CostBudgetSpent` fires at each of these shares of the amount.
    pub alert_at: Vec<f64>,
    /// How long a forecast of running out must hold before
    /// `CostBudgetForecastExhausted` fires.
    pub for_ms: i64,
}

impl CostsConfig {
    /// The settings of `costs: {}`.
    pub fn defaults() -> CostsConfig {
        CostsConfig {
            interval_ms: 60_000,
            delay_ms: 15_000,
            gpu: GpuPrices {
                metric: "DCGM_FI_DEV_GPU_UTIL".to_string(),
                model_label: "modelName".to_string(),
                hour: Vec::new(),
                default_hour: 0.0,
            },
            cpu: CpuPrice {
                metric: "process_cpu_seconds_total".to_string(),
                core_hour: 0.0,
            },
            memory: MemoryPrice {
                metric: "process_resident_memory_bytes".to_string(),
                gib_hour: 0.0,
            },
            instances: Vec::new(),
            steps: Vec::new(),
            budgets: Vec::new(),
        }
    }
}

/// The longest integration step: a day, so every calendar period starts
/// on a step when the step divides a day.
const MAX_INTERVAL_MS: i64 = 86_400_000;

/// The longest `delay`: samples arriving later than this are late
/// anyway (out of order for most stores).
const MAX_DELAY_MS: i64 = 600_000;

/// Decodes `costs:`.
pub fn decode(decoder: &Decoder, field: &Field<'_>) -> Result<CostsConfig, ConfigError> {
    let mut c = CostsConfig::defaults();
    for f in decoder.fields(field.value, "costs")? {
        match f.name.as_str() {
            "interval" => {
                let ms = decoder.positive_duration(f.value, &f.path)?;
                if ms < 1000 || MAX_INTERVAL_MS % ms != 0 {
                    return Err(decoder.error(
                        f.value.line,
                        &f.path,
                        "must be at least 1s and divide a day evenly (1s, 15s, 1m, 5m, 1h, ...)",
                    ));
                }
                c.interval_ms = ms;
            }
            "delay" => c.delay_ms = decoder.duration(f.value, &f.path)?,
            "gpu" => {
                for g in decoder.fields(f.value, &f.path)? {
                    match g.name.as_str() {
                        "metric" => c.gpu.metric = metric_name(decoder, &g)?,
                        "model_label" => {
                            let name = decoder.string(g.value, &g.path)?;
                            if !is_valid_label_name(&name) {
                                return Err(decoder.error(
                                    g.value.line,
                                    &g.path,
                                    format!("invalid label name {name:?}"),
                                ));
                            }
                            c.gpu.model_label = name;
                        }
                        "hour" => {
                            for p in decoder.fields(g.value, &g.path)? {
                                let price = price(decoder, &p)?;
                                c.gpu.hour.push((p.name, price));
                            }
                        }
                        "default_hour" => c.gpu.default_hour = price(decoder, &g)?,
                        _ => return Err(decoder.unknown(&g)),
                    }
                }
            }
            "cpu" => {
                for g in decoder.fields(f.value, &f.path)? {
                    match g.name.as_str() {
                        "metric" => c.cpu.metric = metric_name(decoder, &g)?,
                        "core_hour" => c.cpu.core_hour = price(decoder, &g)?,
                        _ => return Err(decoder.unknown(&g)),
                    }
                }
            }
            "memory" => {
                for g in decoder.fields(f.value, &f.path)? {
                    match g.name.as_str() {
                        "metric" => c.memory.metric = metric_name(decoder, &g)?,
                        "gib_hour" => c.memory.gib_hour = price(decoder, &g)?,
                        _ => return Err(decoder.unknown(&g)),
                    }
                }
            }
            "instances" => {
                for (i, item) in decoder.sequence(f.value, &f.path)?.iter().enumerate() {
                    let path = format!("{}[{i}]", f.path);
                    let mut entry = InstancePrice {
                        matchers: Vec::new(),
                        hour: f64::NAN,
                    };
                    for g in decoder.fields(item, &path)? {
                        match g.name.as_str() {
                            "match" => entry.matchers = decoder.label_map(g.value, &g.path)?,
                            "hour" => entry.hour = price(decoder, &g)?,
                            _ => return Err(decoder.unknown(&g)),
                        }
                    }
                    if entry.hour.is_nan() {
                        return Err(decoder.error(item.line, &format!("{path}.hour"), "missing"));
                    }
                    c.instances.push(entry);
                }
            }
            "steps" => {
                for (i, item) in decoder.sequence(f.value, &f.path)?.iter().enumerate() {
                    let path = format!("{}[{i}]", f.path);
                    let (mut job, mut metric, mut window_ms) = (None, None, 3_600_000);
                    for g in decoder.fields(item, &path)? {
                        match g.name.as_str() {
                            "job" => job = Some(decoder.string(g.value, &g.path)?),
                            "metric" => metric = Some(metric_name(decoder, &g)?),
                            "window" => window_ms = decoder.positive_duration(g.value, &g.path)?,
                            _ => return Err(decoder.unknown(&g)),
                        }
                    }
                    let job = job.ok_or_else(|| {
                        decoder.error(item.line, &format!("{path}.job"), "missing")
                    })?;
                    let metric = metric.ok_or_else(|| {
                        decoder.error(item.line, &format!("{path}.metric"), "missing")
                    })?;
                    if c.steps.iter().any(|s| s.job == job) {
                        return Err(decoder.error(
                            item.line,
                            &format!("{path}.job"),
                            format!("job {job:?} has a step counter already"),
                        ));
                    }
                    c.steps.push(StepCounter {
                        job,
                        metric,
                        window_ms,
                    });
                }
            }
            "budgets" => {
                for (i, item) in decoder.sequence(f.value, &f.path)?.iter().enumerate() {
                    let path = format!("{}[{i}]", f.path);
                    let budget = decode_budget(decoder, item, &path)?;
                    if c.budgets.iter().any(|b| b.name == budget.name) {
                        return Err(decoder.error(
                            item.line,
                            &format!("{path}.name"),
                            format!("budget {:?} is listed twice", budget.name),
                        ));
                    }
                    c.budgets.push(budget);
                }
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    if c.delay_ms > MAX_DELAY_MS {
        return Err(decoder.error(field.value.line, "costs.delay", "must be at most 10m"));
    }
    for s in &c.steps {
        if s.window_ms < 2 * c.interval_ms {
            return Err(decoder.error(
                field.value.line,
                "costs.steps.window",
                "must be at least two intervals",
            ));
        }
    }
    Ok(c)
}

fn decode_budget(decoder: &Decoder, node: &yaml::Node, path: &str) -> Result<Budget, ConfigError> {
    let mut b = Budget {
        name: String::new(),
        matchers: Vec::new(),
        amount: f64::NAN,
        period: Period::Month,
        forecast_window_ms: 6 * 3_600_000,
        alert_at: vec![0.8, 1.0],
        for_ms: 15 * 60_000,
    };
    for g in decoder.fields(node, path)? {
        match g.name.as_str() {
            "name" => {
                let name = decoder.string(g.value, &g.path)?;
                if !crate::models::is_valid_model_name(&name) {
                    return Err(decoder.error(
                        g.value.line,
                        &g.path,
                        format!(
                            "invalid budget name {name:?}: letters, digits, '_', '-' and '.' (not first), at most 128 bytes"
                        ),
                    ));
                }
                b.name = name;
            }
            "match" => {
                b.matchers = decoder.label_map(g.value, &g.path)?;
                for (name, _) in &b.matchers {
                    if !matches!(name.as_str(), "job" | "instance" | "resource" | "gpu_model") {
                        return Err(decoder.error(
                            g.value.line,
                            &g.path,
                            format!(
                                "{name:?}: cost series carry job, instance, resource and gpu_model"
                            ),
                        ));
                    }
                }
            }
            "amount" => {
                let v = decoder.float(g.value, &g.path)?;
                if !(v > 0.0 && v.is_finite()) {
                    return Err(decoder.error(
                        g.value.line,
                        &g.path,
                        format!("must be a positive number of dollars, got {v}"),
                    ));
                }
                b.amount = v;
            }
            "period" => {
                b.period = match decoder.string(g.value, &g.path)?.as_str() {
                    "day" => Period::Day,
                    "week" => Period::Week,
                    "month" => Period::Month,
                    other => {
                        return Err(decoder.error(
                            g.value.line,
                            &g.path,
                            format!("expected day, week or month, got {other:?}"),
                        ));
                    }
                }
            }
            "forecast_window" => {
                b.forecast_window_ms = decoder.positive_duration(g.value, &g.path)?
            }
            "alert_at" => {
                let mut shares = Vec::new();
                for (i, item) in decoder.sequence(g.value, &g.path)?.iter().enumerate() {
                    let v = decoder.float(item, &format!("{}[{i}]", g.path))?;
                    if !(v > 0.0 && v.is_finite()) {
                        return Err(decoder.error(
                            item.line,
                            &format!("{}[{i}]", g.path),
                            format!("must be a positive share of the amount, got {v}"),
                        ));
                    }
                    shares.push(v);
                }
                shares.sort_by(f64::total_cmp);
                shares.dedup();
                b.alert_at = shares;
            }
            "for" => b.for_ms = decoder.duration(g.value, &g.path)?,
            _ => return Err(decoder.unknown(&g)),
        }
    }
    if b.name.is_empty() {
        return Err(decoder.error(node.line, &format!("{path}.name"), "missing"));
    }
    if b.amount.is_nan() {
        return Err(decoder.error(node.line, &format!("{path}.amount"), "missing"));
    }
    Ok(b)
}

fn price(decoder: &Decoder, f: &Field<'_>) -> Result<f64, ConfigError> {
    let v = decoder.float(f.value, &f.path)?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(decoder.error(
            f.value.line,
            &f.path,
            format!("a price is a finite number of dollars, at least 0; got {v}"),
        ));
    }
    Ok(v)
}

fn metric_name(decoder: &Decoder, f: &Field<'_>) -> Result<String, ConfigError> {
    let name = decoder.string(f.value, &f.path)?;
    let ok = !name.is_empty()
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit())
        });
    if !ok {
        return Err(decoder.error(
            f.value.line,
            &f.path,
            format!("invalid metric name {name:?}"),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<CostsConfig>, String> {
        crate::parse("osprey.yml", text, None)
            .map(|c| c.costs)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_section_with_defaults_filled_in() {
        let c = parse(
            "costs:\n  interval: 15s\n  gpu:\n    hour:\n      NVIDIA H100 80GB HBM3: 3.5\n      Tesla T4: 0.35\n    default_hour: 1\n  cpu: {core_hour: 0.04}\n  memory: {metric: container_memory_working_set_bytes, gib_hour: 0.005}\n  instances:\n    - match: {job: trainer}\n      hour: 1.2\n  steps:\n    - {job: trainer, metric: training_steps_total}\n  budgets:\n    - {name: q1, match: {job: trainer}, amount: 5000, period: week, alert_at: [1, 0.5]}\n",
        )
        .expect("parse")
        .expect("costs");
        assert_eq!(c.interval_ms, 15_000);
        assert_eq!(c.delay_ms, 15_000);
        assert_eq!(c.gpu.metric, "DCGM_FI_DEV_GPU_UTIL");
        assert_eq!(c.gpu.model_label, "modelName");
        assert_eq!(
            c.gpu.hour,
            vec![
                ("NVIDIA H100 80GB HBM3".to_string(), 3.5),
                ("Tesla T4".to_string(), 0.35)
            ]
        );
        assert_eq!(c.gpu.default_hour, 1.0);
        assert_eq!(c.cpu.metric, "process_cpu_seconds_total");
        assert_eq!(c.memory.metric, "container_memory_working_set_bytes");
        assert_eq!(
            c.instances[0].matchers,
            vec![("job".to_string(), "trainer".to_string())]
        );
        assert_eq!(c.steps[0].window_ms, 3_600_000);
        let b = &c.budgets[0];
        assert_eq!(
            (b.amount, b.period, b.alert_at.clone()),
            (5000.0, Period::Week, vec![0.5, 1.0])
        );
        assert_eq!(b.forecast_window_ms, 6 * 3_600_000);
        assert_eq!(parse("global: {}\n").expect("parse"), None);
        assert_eq!(
            parse("costs: {}\n").expect("parse"),
            Some(CostsConfig::defaults())
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        for (text, expected) in [
            (
                "costs:\n  interval: 7s\n",
                "osprey.yml:2: costs.interval: must be at least 1s and divide a day",
            ),
            (
                "costs:\n  cpu:\n    core_hour: -1\n",
                "osprey.yml:3: costs.cpu.core_hour: a price is a finite number",
            ),
            (
                "costs:\n  gpu:\n    hour: {A100: cheap}\n",
                "costs.gpu.hour.A100",
            ),
            ("costs:\n  gpu: {metric: 1abc}\n", "invalid metric name"),
            (
                "costs:\n  instances:\n    - match: {job: x}\n",
                "costs.instances[0].hour: missing",
            ),
            (
                "costs:\n  steps:\n    - {job: t}\n",
                "costs.steps[0].metric: missing",
            ),
            (
                "costs:\n  budgets:\n    - {name: a, amount: 0}\n",
                "must be a positive number of dollars",
            ),
            (
                "costs:\n  budgets:\n    - {name: a, amount: 1, period: fortnight}\n",
                "expected day, week or month",
            ),
            (
                "costs:\n  budgets:\n    - {name: a, amount: 1, match: {team: x}}\n",
                "cost series carry job",
            ),
            (
                "costs:\n  budgets:\n    - {name: a, amount: 1}\n    - {name: a, amount: 2}\n",
                "listed twice",
            ),
            (
                "costs:\n  budgets:\n    - {amount: 1}\n",
                "costs.budgets[0].name: missing",
            ),
            ("costs:\n  price: 1\n", "costs.price"),
            ("costs:\n  delay: 11m\n", "costs.delay: must be at most 10m"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
