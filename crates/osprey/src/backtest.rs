//! `osprey rules backtest`: what rule files would have done over stored
//! history, from a data directory (offline) or a running osprey (its
//! `/api/v1/rules/backtest`). Both paths end in the same JSON (written by
//! `server::backtest`), which `--format json` prints and the text output
//! is rendered from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct BacktestArgs {
    /// First evaluation time: Unix seconds or RFC 3339.
    #[arg(long)]
    from: String,
    /// End of the range: Unix seconds or RFC 3339.
    #[arg(long)]
    to: String,
    /// Read history from this data directory (not while a server uses it).
    #[arg(long = "data-dir", conflicts_with = "url")]
    data_dir: Option<PathBuf>,
    /// Ask the osprey server at this URL (e.g. http://localhost:9090).
    #[arg(long)]
    url: Option<String>,
    /// With --data-dir: the server's config file, for the evaluation
    /// interval, query offset, external labels and the alert manager
    /// (notification counts).
    #[arg(long, requires = "data_dir")]
    config: Option<PathBuf>,
    /// A second version of the rules, backtested over the same range and
    /// shown beside the first.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Rule files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: &BacktestArgs) -> anyhow::Result<()> {
    let from_ms = server::params::parse_time(&args.from)
        .map_err(anyhow::Error::msg)
        .context("--from")?;
    let to_ms = server::params::parse_time(&args.to)
        .map_err(anyhow::Error::msg)
        .context("--to")?;
    if to_ms < from_ms {
        bail!("--to is before --from");
    }
    let mut texts = Vec::new();
    for file in &args.files {
        texts.push((file.display().to_string(), read(file)?));
    }
    let compare = match &args.compare {
        Some(file) => Some((file.display().to_string(), read(file)?)),
        None => None,
    };
    let data = match (&args.data_dir, &args.url) {
        (Some(dir), None) => offline(args, dir, from_ms, to_ms, &texts, compare.as_ref())?,
        (None, Some(url)) => remote(url, &args.from, &args.to, &texts, compare.as_ref())?,
        _ => bail!("give either --data-dir DIR or --url URL"),
    };
    match args.format {
        Format::Json => {
            let mut out = data.clone();
            if let Value::Object(map) = &mut out {
                map.remove("compare");
            }
            let notifications = &out["notifications"];
            if let Some(compare) = data.get("compare") {
                println!(
                    "{}",
                    json!({"rules": out["rules"], "notifications": notifications, "compare": compare})
                );
            } else {
                println!(
                    "{}",
                    json!({"rules": out["rules"], "notifications": notifications})
                );
            }
        }
        Format::Text => print!("{}", render_text(&data)),
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn parse_rules(texts: &[(String, String)]) -> anyhow::Result<Vec<rules::GroupSpec>> {
    let mut specs = Vec::new();
    for (name, text) in texts {
        match rules::parse_rule_file(name, text) {
            Ok(groups) => specs.extend(groups),
            Err(errors) => {
                let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
                bail!("{first}");
            }
        }
    }
    Ok(specs)
}

fn offline(
    args: &BacktestArgs,
    dir: &Path,
    from_ms: i64,
    to_ms: i64,
    texts: &[(String, String)],
    compare: Option<&(String, String)>,
) -> anyhow::Result<Value> {
    if !dir.is_dir() {
        bail!("--data-dir {}: no such directory", dir.display());
    }
    let specs = parse_rules(texts)?;
    let compare = match compare {
        Some(text) => Some(parse_rules(std::slice::from_ref(text))?),
        None => None,
    };
    let config = match &args.config {
        Some(path) => Some(config::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let (interval, offset, external_labels) = match &config {
        Some(c) => (
            c.global.evaluation_interval_ms,
            c.global.rule_query_offset_ms,
            c.global.external_labels.clone(),
        ),
        None => (60_000, 0, Vec::new()),
    };
    let alertmanager = config
        .as_ref()
        .and_then(|c| c.alertmanager.as_ref())
        .map(|section| Arc::new(section.config.clone()));
    let mut options = tsdb::DbOptions::with_retention(None, None);
    options.fsync = false;
    let db = tsdb::Db::open(dir, options).context("opening the database")?;
    let flags = server::rules::RuleFlags::osprey_defaults();
    let setup = server::backtest::BacktestSetup {
        engine: server::backtest::default_engine(),
        storage: Arc::new(db),
        group: rules::GroupOptions {
            default_interval_ms: interval,
            default_query_offset_ms: offset,
            resend_delay_ms: flags.resend_delay_ms,
            outage_tolerance_ms: flags.outage_tolerance_ms,
            for_grace_period_ms: flags.for_grace_period_ms,
        },
        external_labels,
        external_url: "http://localhost:9090".to_string(),
        alertmanager,
    };
    server::backtest::run(&setup, from_ms, to_ms, specs, compare)
        .map_err(|e| anyhow::anyhow!(e.message))
}

fn remote(
    url: &str,
    from: &str,
    to: &str,
    texts: &[(String, String)],
    compare: Option<&(String, String)>,
) -> anyhow::Result<Value> {
    let mut pairs: Vec<(&str, &str)> = vec![("from", from), ("to", to)];
    for (name, text) in texts {
        pairs.push(("rules", text));
        pairs.push(("file", name));
    }
    if let Some((_, text)) = compare {
        pairs.push(("compare", text));
    }
    let body = server::params::encode_form(&pairs);
    let endpoint = format!("{}/api/v1/rules/backtest", url.trim_end_matches('/'));
    let client = config::HttpClient::new(
        &config::HttpClientConfig::default(),
        config::ClientOptions::new(&config::client::user_agent()),
    )
    .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let text = runtime.block_on(async {
        let request = client
            .request(reqwest::Method::POST, &endpoint)
            .await
            .map_err(anyhow::Error::msg)?;
        let response = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{endpoint}: {}", config::client::describe_error(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| anyhow::anyhow!("{endpoint}: {}", config::client::describe_error(&e)))?;
        Ok::<_, anyhow::Error>((status, text))
    })?;
    let (status, text) = text;
    let parsed: Value = serde_json::from_str(&text)
        .map_err(|_| anyhow::anyhow!("{endpoint}: HTTP {status}, not an osprey API answer"))?;
    if parsed["status"] != "success" {
        let message = parsed["error"].as_str().unwrap_or("unknown error");
        bail!("{endpoint}: HTTP {status}: {message}");
    }
    Ok(parsed["data"].clone())
}

/// Seconds as RFC 3339 (UTC).
fn time_text(seconds: &Value) -> String {
    match seconds.as_f64() {
        Some(s) => model::time::format_rfc3339_ms(
            (s * 1000.0).round() as i64,
            model::time::Fraction::Trimmed,
        ),
        None => "(still active)".to_string(),
    }
}

fn duration_text(seconds: f64) -> String {
    model::duration::format_duration_ms((seconds * 1000.0) as i64)
}

fn labels_text(labels: &Value) -> String {
    let Some(map) = labels.as_object() else {
        return "{}".to_string();
    };
    let pairs: Vec<String> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={}", v))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// `{"total", "byReceiver"}` as text.
fn notifications_text(notifications: &Value) -> String {
    match notifications.as_object() {
        Some(n) => {
            let by: Vec<String> = n["byReceiver"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
                .unwrap_or_default();
            format!("{} notifications ({})", n["total"], by.join(", "))
        }
        None => "notifications not simulated (no alert manager configured)".to_string(),
    }
}

fn summary(rule: &Value) -> String {
    let notifications = notifications_text(&rule["notifications"]);
    format!(
        "{} alerts, {} firing episodes, firing {}, flapping {:.2}, {} sent to the alert manager, {}",
        rule["alerts"].as_array().map(|a| a.len()).unwrap_or(0),
        rule["firingEpisodes"],
        duration_text(rule["firingSeconds"].as_f64().unwrap_or(0.0)),
        rule["flapping"]["score"].as_f64().unwrap_or(0.0),
        rule["sentToAlertmanager"],
        notifications
    )
}

/// The text report: one block per rule, each alert with its intervals;
/// with a comparison, the second version's summary under each rule.
fn render_text(data: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let rules = data["rules"].as_array().unwrap_or(&empty);
    let compared = data["compare"]["rules"].as_array();
    for rule in rules {
        let name = rule["name"].as_str().unwrap_or("");
        out.push_str(&format!(
            "{name} (group {}, {})\n  {}\n",
            rule["group"].as_str().unwrap_or(""),
            rule["file"].as_str().unwrap_or(""),
            summary(rule)
        ));
        if let Some(other) = compared.and_then(|c| c.iter().find(|r| r["name"] == rule["name"])) {
            out.push_str(&format!("  compared version: {}\n", summary(other)));
        }
        if let Some(error) = rule["error"].as_str() {
            out.push_str(&format!(
                "  error in {} evaluations: {error}\n",
                rule["failedEvaluations"]
            ));
        }
        for alert in rule["alerts"].as_array().unwrap_or(&empty) {
            out.push_str(&format!("  {}\n", labels_text(&alert["labels"])));
            for interval in alert["intervals"].as_array().unwrap_or(&empty) {
                out.push_str(&format!(
                    "    {:<7} {} .. {}\n",
                    interval["state"].as_str().unwrap_or(""),
                    time_text(&interval["start"]),
                    time_text(&interval["end"]),
                ));
            }
        }
    }
    if let Some(compared) = compared {
        for rule in compared {
            if !rules.iter().any(|r| r["name"] == rule["name"]) {
                out.push_str(&format!(
                    "{} (only in the compared version)\n  {}\n",
                    rule["name"].as_str().unwrap_or(""),
                    summary(rule)
                ));
            }
        }
    }
    if data["notifications"].is_object() {
        out.push_str(&format!(
            "all rules together: {}\n",
            notifications_text(&data["notifications"])
        ));
        if data["compare"]["notifications"].is_object() {
            out.push_str(&format!(
                "  compared version: {}\n",
                notifications_text(&data["compare"]["notifications"])
            ));
        }
    }
    for error in data["recordingErrors"].as_array().unwrap_or(&empty) {
        out.push_str(&format!(
            "recording rule error: {}\n",
            error.as_str().unwrap_or("")
        ));
    }
    out
}
