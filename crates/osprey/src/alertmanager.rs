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

/// Alertmanager's `--cluster.*` flags, for `osprey alertmanager` and the
/// alert manager embedded in `osprey server` (`docs/alertmanager-ha.md`).
/// Durations are Prometheus durations (`15s`, `1m0s`, `200ms`).
#[derive(clap::Args, Clone, Debug)]
pub struct ClusterArgs {
    /// Listen address for the cluster (host:port); unset (the default)
    /// runs alone. Alertmanager's default, 0.0.0.0:9094, must be given.
    #[arg(long = "cluster.listen-address")]
    listen_address: Option<String>,
    /// Explicit address to advertise in the cluster.
    #[arg(long = "cluster.advertise-address")]
    advertise_address: Option<String>,
    /// Explicit name of the peer, rather than generating a random one.
    #[arg(long = "cluster.peer-name")]
    peer_name: Option<String>,
    /// Initial peers, host:port (may be repeated).
    #[arg(long = "cluster.peer")]
    peers: Vec<String>,
    /// Time to wait between peers to send notifications.
    #[arg(long = "cluster.peer-timeout", default_value = "15s")]
    peer_timeout: String,
    /// Interval between sending gossip messages.
    #[arg(long = "cluster.gossip-interval", default_value = "200ms")]
    gossip_interval: String,
    /// Interval for gossip state syncs.
    #[arg(long = "cluster.pushpull-interval", default_value = "1m0s")]
    pushpull_interval: String,
    /// Timeout for connecting, reading and writing a full state sync.
    #[arg(long = "cluster.tcp-timeout", default_value = "10s")]
    tcp_timeout: String,
    /// Timeout to wait for an ack from a probed node.
    #[arg(long = "cluster.probe-timeout", default_value = "500ms")]
    probe_timeout: String,
    /// Interval between node probes.
    #[arg(long = "cluster.probe-interval", default_value = "1s")]
    probe_interval: String,
    /// Maximum time to wait for cluster connections to settle before
    /// evaluating notifications.
    #[arg(long = "cluster.settle-timeout", default_value = "1m0s")]
    settle_timeout: String,
    /// Interval between attempting to reconnect to lost peers.
    #[arg(long = "cluster.reconnect-interval", default_value = "10s")]
    reconnect_interval: String,
    /// Length of time to attempt to reconnect to a lost peer.
    #[arg(long = "cluster.reconnect-timeout", default_value = "6h0m0s")]
    reconnect_timeout: String,
    /// A label sent with every message; peers with another label are
    /// ignored.
    #[arg(long = "cluster.label", default_value = "")]
    label: String,
}

impl ClusterArgs {
    /// The cluster options, or `None` without a listen address.
    pub fn options(&self) -> anyhow::Result<Option<alert::cluster::ClusterOptions>> {
        let Some(listen) = self.listen_address.as_deref().filter(|a| !a.is_empty()) else {
            if !self.peers.is_empty() {
                anyhow::bail!("--cluster.peer needs --cluster.listen-address");
            }
            return Ok(None);
        };
        let listen_address = std::net::ToSocketAddrs::to_socket_addrs(listen)
            .ok()
            .and_then(|mut addresses| addresses.next())
            .with_context(|| {
                format!("--cluster.listen-address {listen:?}: not a host:port address")
            })?;
        let duration = |text: &str, flag: &str| -> anyhow::Result<std::time::Duration> {
            let ms = crate::units::parse_duration_ms(text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("--cluster.{flag}"))?;
            Ok(std::time::Duration::from_millis(
                u64::try_from(ms).unwrap_or(0),
            ))
        };
        let mut options = alert::cluster::ClusterOptions::new(listen_address);
        options.advertise_address = self.advertise_address.clone().filter(|a| !a.is_empty());
        options.peer_name = self.peer_name.clone().filter(|n| !n.is_empty());
        options.peers = self
            .peers
            .iter()
            .filter(|peer| !peer.is_empty())
            .cloned()
            .collect();
        for peer in &options.peers {
            if peer
                .rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                anyhow::bail!("--cluster.peer {peer:?}: not a host:port address");
            }
        }
        options.peer_timeout = duration(&self.peer_timeout, "peer-timeout")?;
        options.gossip_interval = duration(&self.gossip_interval, "gossip-interval")?;
        options.pushpull_interval = duration(&self.pushpull_interval, "pushpull-interval")?;
        options.tcp_timeout = duration(&self.tcp_timeout, "tcp-timeout")?;
        options.probe_timeout = duration(&self.probe_timeout, "probe-timeout")?;
        options.probe_interval = duration(&self.probe_interval, "probe-interval")?;
        options.settle_timeout = duration(&self.settle_timeout, "settle-timeout")?;
        options.reconnect_interval = duration(&self.reconnect_interval, "reconnect-interval")?;
        options.reconnect_timeout = duration(&self.reconnect_timeout, "reconnect-timeout")?;
        for (flag, value) in [
            ("gossip-interval", options.gossip_interval),
            ("pushpull-interval", options.pushpull_interval),
            ("probe-interval", options.probe_interval),
            ("probe-timeout", options.probe_timeout),
            ("tcp-timeout", options.tcp_timeout),
        ] {
            if value.is_zero() {
                anyhow::bail!("--cluster.{flag} must be more than 0");
            }
        }
        options.label = self.label.clone();
        Ok(Some(options))
    }
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
    cluster: Option<alert::cluster::ClusterOptions>,
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
                cluster,
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
        alertmanager.shutdown().await;
        served.context("serving HTTP")
    })
}
