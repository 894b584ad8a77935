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
pub fn load(path: &Path) -> anyhow::Result<config::alertmanager::Config> {
    let config = config::alertmanager::load_file(path)?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(config)
}

/// `osprey check alertmanager`: checks each file like `amtool check-config`.
pub fn check(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in files {
        let shown = path.display();
        let config = config::alertmanager::load_file(path)
            .map_err(|error| error.to_string())
            .and_then(|config| {
                // Templates must parse and receiver clients build, as the
                // alert manager needs them.
                alert::PreparedConfig::new(config, String::new())
                    .map(|prepared| prepared.config().clone())
                    .map_err(|error| format!("{shown}: {error}"))
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
        let matcher = config::alertmanager::matchers::parse_matcher(text)
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

/// `osprey alertmanager --config FILE`: the alert manager alone, serving
/// the API v2 and its metrics; SIGHUP reloads the file.
pub fn run(
    config: Option<PathBuf>,
    listen: std::net::SocketAddr,
    data_dir: PathBuf,
    external_url: Option<String>,
    web: server::listen::WebConfigHandle,
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
        let served = server::listen::serve_protected(
            listener,
            app,
            web,
            Some(&state_dir(&data_dir)),
            crate::shutdown_signal(),
        )
        .await;
        alertmanager.stop();
        served.context("serving HTTP")
    })
}
