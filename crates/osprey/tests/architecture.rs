//! The crate arrows written in ARCHITECTURE.md hold: every dependency of a
//! workspace crate on another (normal or build, not dev) is in the
//! "Allowed dependencies" list, every workspace crate has a line there,
//! and every crate takes the workspace's lints.
//!
//! The list is read from the first fenced block after the heading
//! `## Allowed dependencies`, one line per crate: `name -> a, b, c`
//! (nothing after the arrow for a crate that may depend on no other).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const HEADING: &str = "## Allowed dependencies";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What `cargo metadata` says about one workspace crate.
struct Crate {
    manifest: PathBuf,
    /// Names of the workspace crates it depends on (not as a dev-dependency).
    uses: BTreeSet<String>,
}

/// The workspace crates by name, from `cargo metadata --no-deps`.
fn workspace_crates() -> BTreeMap<String, Crate> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut crates = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().expect("package name");
        let uses = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            // `kind` is null for normal dependencies, "dev" or "build".
            .filter(|dep| dep["kind"].as_str() != Some("dev"))
            .filter(|dep| dep["path"].is_string())
            .filter_map(|dep| dep["name"].as_str())
            .filter(|dep| names.contains(dep))
            .map(str::to_string)
            .collect();
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"));
        crates.insert(name.to_string(), Crate { manifest, uses });
    }
    crates
}

/// The allowed arrows: crate name to the crates it may depend on, with the
/// line each was written on.
fn allowed_dependencies(text: &str) -> Result<BTreeMap<String, (usize, BTreeSet<String>)>, String> {
    let mut lines = text.lines().enumerate();
    lines
        .find(|(_, line)| line.trim_end() == HEADING)
        .ok_or_else(|| format!("ARCHITECTURE.md has no line {HEADING:?}"))?;
    lines
        .find(|(_, line)| line.starts_with("```"))
        .ok_or_else(|| format!("no fenced block after {HEADING:?}"))?;
    let mut allowed = BTreeMap::new();
    for (index, line) in lines {
        let number = index + 1;
        if line.starts_with("```") {
            return Ok(allowed);
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (name, targets) = line
            .split_once("->")
            .ok_or_else(|| format!("ARCHITECTURE.md:{number}: expected `crate -> a, b`"))?;
        let targets: BTreeSet<String> = targets
            .split(',')
            .map(str::trim)
            .filter(|target| !target.is_empty())
            .map(str::to_string)
            .collect();
        if allowed
            .insert(name.trim().to_string(), (number, targets))
            .is_some()
        {
            return Err(format!(
                "ARCHITECTURE.md:{number}: {} has a second line",
                name.trim()
            ));
        }
    }
    Err(format!("the fenced block after {HEADING:?} is not closed"))
}

/// Every way the workspace and the list disagree, one line each.
fn violations(
    crates: &BTreeMap<String, Crate>,
    allowed: &BTreeMap<String, (usize, BTreeSet<String>)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, krate) in crates {
        let Some((_, may_use)) = allowed.get(name) else {
            problems.push(format!(
                "crate `{name}` has no line in ARCHITECTURE.md's {HEADING:?} list"
            ));
            continue;
        };
        for used in krate.uses.difference(may_use) {
            problems.push(format!(
                "crate `{name}` depends on `{used}`, but `{name} -> {used}` is not an allowed arrow"
            ));
        }
    }
    for (name, (line, may_use)) in allowed {
        if !crates.contains_key(name) {
            problems.push(format!(
                "ARCHITECTURE.md:{line}: `{name}` is not a workspace crate"
            ));
        }
        for target in may_use.iter().filter(|t| !crates.contains_key(*t)) {
            problems.push(format!(
                "ARCHITECTURE.md:{line}: `{name} -> {target}` names no workspace crate"
            ));
        }
    }
    problems
}

#[test]
fn crate_dependencies_follow_architecture_md() {
    let text =
        std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let allowed = allowed_dependencies(&text).unwrap_or_else(|e| panic!("{e}"));
    let problems = violations(&workspace_crates(), &allowed);
    assert!(
        problems.is_empty(),
        "the crate graph and ARCHITECTURE.md disagree:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_crate_takes_the_workspace_lints() {
    let mut missing = Vec::new();
    for (name, krate) in workspace_crates() {
        let manifest = std::fs::read_to_string(&krate.manifest).expect("read Cargo.toml");
        let mut in_lints = false;
        let mut takes_them = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_lints = line == "[lints]";
            } else if in_lints && line.replace(' ', "") == "workspace=true" {
                takes_them = true;
            }
        }
        if !takes_them {
            missing.push(format!(
                "{name} ({}) lacks `[lints] workspace = true`",
                krate.manifest.display()
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_list_parser_reports_what_is_wrong() {
    let text = format!("{HEADING}\n\n```text\na -> b\nb ->\nc -> a\n```\n");
    let allowed = allowed_dependencies(&text).expect("parses");
    let krate = |uses: &[&str]| Crate {
        manifest: PathBuf::new(),
        uses: uses.iter().map(|u| u.to_string()).collect(),
    };
    let crates = BTreeMap::from([
        ("a".to_string(), krate(&["b"])),
        ("b".to_string(), krate(&["a"])),
        ("d".to_string(), krate(&[])),
    ]);
    assert_eq!(
        violations(&crates, &allowed),
        [
            "crate `b` depends on `a`, but `b -> a` is not an allowed arrow",
            "crate `d` has no line in ARCHITECTURE.md's \"## Allowed dependencies\" list",
            "ARCHITECTURE.md:6: `c` is not a workspace crate",
        ]
    );
    assert!(allowed_dependencies("no list here").is_err());
    assert!(allowed_dependencies(&format!("{HEADING}\n```\na b\n```\n")).is_err());
}
