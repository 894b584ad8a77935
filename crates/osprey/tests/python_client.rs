//! The Python client (`clients/python`) against the real binary: it is
//! installed with pip into a scratch folder (so its packaging is tested,
//! not only its source), its pytest suite runs with `OSPREY_BIN` naming
//! this build (the suite starts, kills and restarts osprey itself), and
//! the example beside it logs to a running osprey.
//!
//! Without python3, pytest, setuptools or wheel the test is skipped with a
//! reason, unless `OSPREY_REQUIRE_EXTERNAL=1` (`.ci/run` installs them).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_has(modules: &str) -> bool {
    let ok = ChildGuard::run(
        Command::new("python3").args(["-c", &format!("import {modules}")]),
        Duration::from_secs(60),
    )
    .is_ok_and(|f| f.status.is_some_and(|s| s.success()));
    if !ok {
        let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
        let reason = format!("python3 with {modules} is needed (see .ci/run)");
        assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
        let _ = writeln!(std::io::stdout().lock(), "skipped: {reason}");
    }
    ok
}

/// Runs `command` (at most `timeout`) and fails the test with its output
/// unless it succeeds; returns its stdout.
fn run_ok(command: &mut Command, timeout: Duration) -> String {
    let shown = format!("{command:?}");
    let finished = ChildGuard::run(command, timeout).expect("spawn");
    let stdout = String::from_utf8_lossy(&finished.stdout).to_string();
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert!(
        finished.status.is_some_and(|s| s.success()),
        "{shown} failed ({:?}):\n{stdout}\n{stderr}",
        finished.status
    );
    stdout
}

/// Installs the client with pip into a scratch folder and returns it.
fn install(dir: &Path) -> PathBuf {
    let site = dir.join("site");
    // The build happens in a copy, so the checkout gets no build/ folder.
    let source = dir.join("source");
    std::fs::create_dir_all(source.join("osprey_client")).expect("mkdir");
    for file in ["pyproject.toml", "README.md", "osprey_client/__init__.py"] {
        std::fs::copy(repo().join("clients/python").join(file), source.join(file))
            .unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    run_ok(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--target",
            ])
            .arg(&site)
            .arg(&source),
        Duration::from_secs(300),
    );
    site
}

#[test]
fn pytest_suite_against_this_build() {
    if !python_has("pytest, setuptools, wheel") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let site = install(dir.path());
    // The suite imports the installed package, not the source.
    let where_from = run_ok(
        Command::new("python3")
            .args(["-c", "import osprey_client; print(osprey_client.__file__)"])
            .env("PYTHONPATH", &site)
            .current_dir(dir.path()),
        Duration::from_secs(60),
    );
    assert!(
        where_from.trim().starts_with(&site.display().to_string()),
        "{where_from}"
    );
    let output = run_ok(
        Command::new("python3")
            .args(["-m", "pytest", "-q", "-s", "-rs", "-p", "no:cacheprovider"])
            .arg(repo().join("clients/python/tests"))
            .env("PYTHONPATH", &site)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("OSPREY_BIN", env!("CARGO_BIN_EXE_osprey"))
            .current_dir(dir.path()),
        Duration::from_secs(300),
    );
    let _ = writeln!(std::io::stdout().lock(), "{output}");
    assert!(output.contains(" passed"), "{output}");
    // The live tests ran (only the NumPy case may skip, without NumPy).
    assert!(!output.contains("no osprey binary"), "{output}");
}

#[test]
fn the_example_logs_to_osprey() {
    if !python_has("setuptools, wheel") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let site = install(dir.path());
    let addr = free_addr();
    let server = Server::start(
        &dir.path().join("data"),
        addr,
        &dir.path().join("osprey.log"),
    );
    let output = run_ok(
        Command::new("python3")
            .arg(repo().join("clients/python/example.py"))
            .arg(format!("http://{addr}"))
            .env("PYTHONPATH", &site)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        Duration::from_secs(120),
    );
    assert!(
        output.contains("'predictions_sent': 500")
            && output.contains("'actuals_sent': 250")
            && output.contains("'reference_records_sent': 200"),
        "{output}"
    );
    // osprey evaluates the new model (every 15 s by default).
    let deadline = Instant::now() + Duration::from_secs(60);
    let query = format!(
        "/api/v1/query?query={}",
        urlencode("sum(osprey_model_records{model=\"churn-example\"})")
    );
    loop {
        let (status, body) = http(addr, "GET", &query, &[], &[]).expect("query");
        assert_eq!(status, 200);
        if String::from_utf8_lossy(&body).contains("\"500\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 500 records in the window: {}\n{}",
            String::from_utf8_lossy(&body),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
