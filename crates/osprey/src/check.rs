//! `osprey check config|rules` and `osprey test rules`: the promtool
//! commands people run in CI, with the same verdicts. (`check slo` is in
//! `slo.rs`.)
//!
//! Each returns whether everything passed; `main` turns `false` into exit
//! status 1. Problems are printed as they are found, each naming the file
//! and line.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `osprey check config FILE...`: every section of the configuration (the
/// alert manager's, its templates and the clients of every connection it
/// names included) and the rule files it names.
pub fn check_config(files: &[PathBuf]) -> bool {
    let mut ok = true;
    for file in files {
        println!("Checking {}", file.display());
        let config = match config::load_file(file) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("  FAILED: {e}");
                ok = false;
                continue;
            }
        };
        for warning in &config.warnings {
            println!("  WARNING: {warning}");
        }
        let rule_files = config.rule_files();
        println!("  SUCCESS: {} rule files found", rule_files.len());
        // What a server builds before applying the file: the alert
        // manager's templates, TLS files, proxies.
        if let Err(e) = server::lifecycle::check_connections(&config) {
            eprintln!("  FAILED: {e}");
            ok = false;
            println!();
            continue;
        }
        // The SLO specs the `slos:` section names, their rules generated,
        // as a server loading the file does.
        match server::slos::PreparedSlos::load(&config) {
            Ok(slos) if !slos.is_empty() => {
                println!("  SUCCESS: {} SLOs found", slos.len());
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("  FAILED: {e}");
                ok = false;
                println!();
                continue;
            }
        }
        // The rules the `costs:` section generates (docs/costs.md).
        match server::rules::check_cost_rules(&config) {
            Ok(0) => {}
            Ok(n) => println!("  SUCCESS: {n} cost rules generated"),
            Err(e) => {
                eprintln!("  FAILED: {e}");
                ok = false;
                println!();
                continue;
            }
        }
        println!(
            "  SUCCESS: {} is valid prometheus config file syntax",
            file.display()
        );
        println!();
        if !check_rule_files(&rule_files) {
            ok = false;
        }
    }
    ok
}

/// `osprey check rules [--enable-feature F,...] FILE...`.
pub fn check_rules(files: &[PathBuf], features: &[String]) -> bool {
    check_rule_files_with(files, promql_features(features))
}

/// The PromQL parse options for `--enable-feature` names, as the server
/// takes them; an unknown name is ignored with a warning, as promtool
/// does.
pub fn promql_features(names: &[String]) -> rules::PromqlFeatures {
    let mut options = rules::PromqlFeatures::OSPREY;
    for name in names {
        if !options.enable_feature(name.trim()) {
            eprintln!("warning: unknown option for --enable-feature: {name}");
        }
    }
    options
}

fn check_rule_files(files: &[PathBuf]) -> bool {
    check_rule_files_with(files, rules::PromqlFeatures::OSPREY)
}

fn check_rule_files_with(files: &[PathBuf], features: rules::PromqlFeatures) -> bool {
    let mut ok = true;
    for file in files {
        println!("Checking {}", file.display());
        let name = file.display().to_string();
        let result = std::fs::read_to_string(file)
            .map_err(|e| vec![format!("{name}: {e}")])
            .and_then(|text| {
                rules::parse_rule_file_with(&name, &text, features)
                    .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
            });
        match result {
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                println!("  SUCCESS: {n} rules found");
            }
            Err(errors) => {
                eprintln!("  FAILED:");
                for error in errors {
                    eprintln!("{error}");
                }
                ok = false;
            }
        }
        println!();
    }
    ok
}

/// `osprey test rules FILE...`: promtool's rule unit tests, each test
/// group in a fresh store in a temporary directory.
pub fn test_rules(files: &[PathBuf], features: &[String]) -> bool {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let scratch = std::env::temp_dir().join(format!("osprey-test-rules-{}", std::process::id()));
    let dirs = std::sync::Mutex::new(Vec::<PathBuf>::new());
    let new_storage = || -> Result<Arc<dyn model::storage::Storage>, String> {
        let dir = scratch.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Ok(mut dirs) = dirs.lock() {
            dirs.push(dir.clone());
        }
        let mut options = tsdb::DbOptions::with_retention(None, None);
        options.fsync = false;
        let db = tsdb::Db::open(&dir, options).map_err(|e| e.to_string())?;
        Ok(Arc::new(db))
    };
    let glob = |pattern: &str| {
        let mut out = Vec::new();
        config::glob::expand_glob(pattern, &mut out);
        out.sort();
        out
    };
    let report =
        rules::unittest::run_files_with(files, promql_features(features), &new_storage, &glob);
    print!("{}", report.stdout);
    eprint!("{}", report.stderr);
    let _ = std::fs::remove_dir_all(&scratch);
    report.passed
}
