//! The alert-manager subcommands: `osprey check alertmanager FILE...` and
//! `osprey alertmanager routes test --config FILE label=value...`, with
//! the output of `amtool check-config` and `amtool config routes test`.

use anyhow::Context;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct RoutesTestArgs {
    /// The alertmanager.yml whose routing tree to test.
    #[arg(long = "config", alias = "config.file")]
    pub config: PathBuf,
    /// Comma-separated receivers the labels must reach; exit 1 otherwise.
    #[arg(long = "verify.receivers")]
    pub verify_receivers: Option<String>,
    /// The alert's labels, `name=value` each.
    pub labels: Vec<String>,
}

/// Reads and parses an alertmanager.yml, errors naming file and line.
pub fn load(path: &Path) -> anyhow::Result<alert::Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut config = alert::parse_config(&path.display().to_string(), &text)?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    resolve_template_paths(&mut config, path);
    Ok(config)
}

/// Template globs are relative to the file that names them, as in
/// Alertmanager.
fn resolve_template_paths(config: &mut alert::Config, config_path: &Path) {
    let base = config_path.parent().unwrap_or(Path::new("."));
    for pattern in &mut config.templates {
        if !Path::new(pattern.as_str()).is_absolute() {
            *pattern = base.join(pattern.as_str()).display().to_string();
        }
    }
}

/// `osprey check alertmanager`: checks each file like `amtool check-config`.
pub fn check(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in files {
        let shown = path.display();
        let config = std::fs::read_to_string(path)
            .map_err(|error| format!("{shown}: {error}"))
            .and_then(|text| {
                alert::parse_config(&shown.to_string(), &text).map_err(|error| error.to_string())
            })
            .and_then(|mut config| {
                // Template files must parse too, as amtool checks them.
                resolve_template_paths(&mut config, path);
                alert::template::NotificationTemplates::load(&config.templates, Path::new("."))
                    .map_err(|error| format!("{shown}: templates: {error}"))?;
                Ok(config)
            });
        match config {
            Ok(config) => {
                println!("Checking '{shown}'  SUCCESS");
                println!("Found:");
                println!(" - global config");
                println!(" - route");
                println!(" - {} inhibit rules", config.inhibit_rules.len());
                println!(" - {} receivers", config.receivers.len());
                println!(" - {} templates", config.templates.len());
                for warning in &config.warnings {
                    println!("  WARNING: {warning}");
                }
                println!();
            }
            Err(error) => {
                println!("Checking '{shown}'  FAILED: {error}");
                println!();
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("failed to validate {failed} file(s)");
    }
    Ok(())
}

/// `osprey alertmanager routes test`: prints the receivers a label set
/// reaches, comma-separated, as `amtool config routes test` does.
pub fn routes_test(args: &RoutesTestArgs) -> anyhow::Result<()> {
    let config = load(&args.config)?;
    let mut pairs = Vec::new();
    for text in &args.labels {
        let matcher = alert::matchers::parse_matcher(text)
            .map_err(|error| anyhow::anyhow!("failed to parse labels: {error}"))?;
        if matcher.op() != model::matcher::MatchOp::Equal {
            anyhow::bail!("failed to parse labels: {text:?} is not name=value");
        }
        pairs.push((matcher.name().to_string(), matcher.value().to_string()));
    }
    let labels = model::Labels::from_pairs(pairs);
    let receivers: Vec<&str> = alert::route::match_routes(&config.route, &labels)
        .iter()
        .map(|route| route.receiver.as_str())
        .collect();
    let line = receivers.join(",");
    println!("{line}");
    if let Some(expected) = &args.verify_receivers
        && expected != &line
    {
        println!("WARNING: Expected receivers did not match resolved receivers.");
        anyhow::bail!("expected receivers {expected:?}, got {line:?}");
    }
    Ok(())
}

/// Where the alert manager keeps silences and the notification log.
fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("alertmanager")
}

/// The alert manager configuration named by an osprey config file, with
/// its text (for the status endpoint), or `None` without a section.
fn server_section(config_path: &Path) -> anyhow::Result<Option<(alert::Config, String)>> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let shown = config_path.display().to_string();
    match alert::config::parse_osprey_section(&shown, &text)? {
        None => Ok(None),
        Some(alert::config::Section::Inline(mut config)) => {
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            resolve_template_paths(&mut config, config_path);
            Ok(Some((*config, text)))
        }
        Some(alert::config::Section::File(path)) => {
            // A relative path is relative to the file that names it.
            let path = config_path
                .parent()
                .map(|dir| dir.join(&path))
                .unwrap_or_else(|| PathBuf::from(&path));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (named by {shown})", path.display()))?;
            let mut config = alert::parse_config(&path.display().to_string(), &text)?;
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            resolve_template_paths(&mut config, &path);
            Ok(Some((config, text)))
        }
    }
}

/// The alert manager of the embedded default: alerts are grouped by name
/// and kept (for the UI, `amtool` and silences), and notify nobody until a
/// configuration names receivers.
const EMBEDDED_ALERTMANAGER: &str =
    "route:\n  receiver: default\n  group_by: ['alertname']\nreceivers:\n  - name: default\n";

/// Starts the alert manager inside `osprey server` when its configuration
/// has an `alertmanager:` section (inline, or a path to an alertmanager.yml),
/// and always on the embedded default.
pub fn start_in_server(
    state: &server::AppState,
    config_path: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let (config, text) = match config_path {
        Some(config_path) => match server_section(config_path)? {
            Some(section) => section,
            None => return Ok(()),
        },
        None => (
            alert::parse_config("<embedded default alertmanager>", EMBEDDED_ALERTMANAGER)?,
            EMBEDDED_ALERTMANAGER.to_string(),
        ),
    };
    let alertmanager = alert::Alertmanager::start(
        config,
        text,
        alert::Options {
            state_dir: Some(state_dir(data_dir)),
            external_url: state.config().external_url.clone(),
            retention_ms: alert::DEFAULT_RETENTION_MS,
        },
    )?;
    // The rule engine's alerts go straight in, as if POSTed to the API.
    let sink = alertmanager.clone();
    state.set_local_alert_sink(std::sync::Arc::new(
        move |alerts: Vec<notifier::SentAlert>| {
            let posted = alerts
                .into_iter()
                .map(|sent| alert::PostableAlert {
                    labels: sent.labels.into_iter().collect(),
                    annotations: sent.annotations.into_iter().collect(),
                    starts_at_ms: Some(sent.starts_at_ms),
                    ends_at_ms: Some(sent.ends_at_ms),
                    generator_url: sent.generator_url,
                })
                .collect();
            if let Err(error) = sink.put_alerts(posted) {
                tracing::warn!(%error, "the rule engine sent invalid alerts");
            }
        },
    ));
    state
        .set_alertmanager(alertmanager)
        .map_err(anyhow::Error::msg)?;
    tracing::info!("alert manager started");
    Ok(())
}

/// Re-reads the alert manager's configuration after a SIGHUP.
pub fn reload_in_server(
    state: &server::AppState,
    config_path: Option<&Path>,
) -> anyhow::Result<()> {
    let (Some(alertmanager), Some(config_path)) = (state.alertmanager(), config_path) else {
        return Ok(());
    };
    match server_section(config_path)? {
        Some((config, text)) => {
            alertmanager.apply_config(config, text)?;
            tracing::info!("alert manager configuration reloaded");
            Ok(())
        }
        None => anyhow::bail!(
            "the alertmanager section was removed; a restart is needed to stop the alert manager"
        ),
    }
}

/// `osprey alertmanager --config FILE`: the alert manager alone, serving
/// the API v2 and its metrics; SIGHUP reloads the file.
pub fn run(
    config: Option<PathBuf>,
    listen: std::net::SocketAddr,
    data_dir: PathBuf,
    external_url: Option<String>,
) -> anyhow::Result<()> {
    let Some(config_path) = config else {
        anyhow::bail!("--config is required");
    };
    let parsed = load(&config_path)?;
    let text = std::fs::read_to_string(&config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let alertmanager = alert::Alertmanager::start(
            parsed,
            text,
            alert::Options {
                state_dir: Some(state_dir(&data_dir)),
                external_url: external_url
                    .map(|url| url.trim_end_matches('/').to_string())
                    .unwrap_or_else(|| format!("http://{listen}")),
                retention_ms: alert::DEFAULT_RETENTION_MS,
            },
        )?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        tracing::info!(%listen, "alert manager listening");
        let reloader = alertmanager.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                match load(&config_path).and_then(|config| {
                    let text = std::fs::read_to_string(&config_path)?;
                    Ok((config, text))
                }) {
                    Ok((config, text)) => match reloader.apply_config(config, text) {
                        Ok(()) => tracing::info!("configuration reloaded"),
                        Err(e) => tracing::error!(error = %e, "reloading failed; keeping the old configuration"),
                    },
                    Err(e) => tracing::error!(error = %e, "reloading failed; keeping the old configuration"),
                }
            }
        });
        let app = server::alertmanager_api::standalone_router(alertmanager.clone());
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(crate::shutdown_signal())
            .await;
        alertmanager.stop();
        served.context("serving HTTP")
    })
}
