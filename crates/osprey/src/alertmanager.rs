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
    let config = alert::parse_config(&path.display().to_string(), &text)?;
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
        let config = std::fs::read_to_string(path)
            .map_err(|error| format!("{shown}: {error}"))
            .and_then(|text| {
                alert::parse_config(&shown.to_string(), &text).map_err(|error| error.to_string())
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

/// `osprey alertmanager --config FILE`: the alert manager alone.
pub fn run(
    config: Option<PathBuf>,
    _listen: std::net::SocketAddr,
    _data_dir: PathBuf,
) -> anyhow::Result<()> {
    let Some(config) = config else {
        anyhow::bail!("--config is required");
    };
    load(&config)?;
    anyhow::bail!("running the alert manager alone is not implemented yet")
}
