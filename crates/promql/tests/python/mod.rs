//! Runs a reference script under python3 (scipy, scikit-learn, Evidently)
//! for the tests that check osprey's statistics against those libraries.
//!
//! The child is held in a guard that kills and reaps it when dropped, so a
//! failing assertion or a hung interpreter leaves nothing running. When
//! python3 or a package is missing the test is skipped with a printed
//! reason, and fails instead under `OSPREY_REQUIRE_EXTERNAL=1` (CI, whose
//! `.ci/run` installs the pinned packages).

// Each test file that includes this module uses a part of it.
#![allow(dead_code, reason = "shared by several test files, each using a part")]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills and reaps the child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The packages every reference script imports.
const MODULES: &str = "import numpy, pandas, scipy, sklearn, statsmodels, evidently";

/// Runs `script` with `input` on its stdin and returns its stdout, or
/// `None` (after printing why) when the reference libraries are missing
/// and the run does not require them.
pub fn run(script: &Path, input: &str) -> Option<String> {
    let require = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    let probe = capture(Command::new("python3").args(["-c", MODULES]), "");
    if !probe.as_ref().is_ok_and(|(ok, _, _)| *ok) {
        let why = match &probe {
            Ok((_, _, stderr)) => stderr.lines().last().unwrap_or("").to_string(),
            Err(e) => e.clone(),
        };
        let message = format!(
            "reference check skipped: python3 with numpy, pandas, scipy, scikit-learn and evidently is needed ({why})"
        );
        assert!(!require, "OSPREY_REQUIRE_EXTERNAL=1: {message}");
        let _ = writeln!(std::io::stdout().lock(), "{message}");
        return None;
    }
    match capture(Command::new("python3").arg(script), input) {
        Ok((true, stdout, _)) => Some(stdout),
        Ok((false, _, stderr)) => panic!("{} failed:\n{stderr}", script.display()),
        Err(e) => panic!("{}: {e}", script.display()),
    }
}

/// Runs a command to its end (at most two minutes) with `input` on stdin.
pub fn capture(command: &mut Command, input: &str) -> Result<(bool, String, String), String> {
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn python3: {e}"))?;
    let mut guard = Guard(child);
    let mut stdin = guard.0.stdin.take().ok_or("no stdin")?;
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stdout = guard.0.stdout.take().ok_or("no stdout")?;
    let mut stderr = guard.0.stderr.take().ok_or("no stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => return Err("python3 did not finish within 120 s".to_string()),
            Err(e) => return Err(e.to_string()),
        }
    };
    let _ = writer.join();
    Ok((
        status.success(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ))
}

/// Whether `got` equals `want` to `rel` relative (absolute near zero).
pub fn close(got: f64, want: f64, rel: f64) -> bool {
    if got == want {
        return true;
    }
    let scale = want.abs().max(got.abs());
    (got - want).abs() <= rel * scale.max(1e-12)
}

/// A small deterministic generator (SplitMix64), so every run checks the
/// same data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
