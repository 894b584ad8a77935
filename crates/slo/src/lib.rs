//! osprey's SLOs: spec files in, rule groups out.
//!
//! A team writes its objectives in Sloth's `prometheus/v1` format or in
//! OpenSLO v1 (`SLO` and `SLI` objects); osprey turns each SLO into the
//! recording and alerting rules Sloth would generate for it, plus a few
//! of its own, and runs them in its ordinary rule engine, so SLO series
//! show in `/api/v1/rules`, and SLO alerts travel the normal alert path.
//!
//! - [`parse_file`] reads one file (any number of `---` separated
//!   documents, each Sloth or OpenSLO) into checked [`Slo`]s; errors name
//!   the file, line and field, through the config crate's
//!   [`config::Decoder`]. [`load_files`] reads a list of files and checks
//!   that SLO IDs are unique across them.
//! - [`generate`] turns an [`Slo`] into rule groups
//!   ([`rules::GroupSpec`]): Sloth's three groups, rule for rule as Sloth
//!   writes them, and osprey's fourth (event-weighted budget, time to
//!   exhaustion). [`windows`] holds the burn-rate windows and factors.
//! - [`print::rule_file`] writes groups as a Prometheus rule file, for
//!   `osprey slo generate`.
//!
//! `docs/slos.md` is the user's view: both formats, osprey's extensions
//! (periods, latency SLIs, low-traffic protection, budget methods) and
//! every generated series.
//!
//! This crate reads spec files and builds rule specs; it evaluates
//! nothing (that is `rules`), serves nothing (the SLO API is the
//! server's) and knows no storage.

mod common;
pub mod generate;
mod gofmt;
pub mod model;
mod openslo;
pub mod print;
mod sloth;
pub mod windows;

use std::path::PathBuf;

use config::{ConfigError, Decoder};
use yaml::{Node, NodeValue};

pub use generate::{GenerateOptions, generate};
pub use model::{AlertMeta, BudgetMethod, Period, Sli, Slo};

/// What a spec does not say.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// The period of SLOs that name none (Sloth's specs never do).
    pub default_period: Period,
    /// The budget method of SLOs that name none (and count events).
    pub budget_method: BudgetMethod,
}

impl ParseOptions {
    /// The defaults the config's `slos:` section gives.
    pub fn from_config(config: &config::slos::SlosConfig) -> ParseOptions {
        ParseOptions {
            default_period: config.default_period,
            budget_method: config.budget_method,
        }
    }
}

/// Reads every SLO of one file; their IDs are distinct. `name` is used
/// in messages and as the rule groups' file.
pub fn parse_file(name: &str, text: &str, options: &ParseOptions) -> Result<Vec<Slo>, ConfigError> {
    let documents = yaml::parse_documents(text).map_err(|(line, message)| ConfigError {
        file: name.to_string(),
        line,
        field: "(document)".to_string(),
        message,
    })?;
    let decoder = Decoder::new(name, None);
    let mut slos = Vec::new();
    for document in &documents {
        match document_kind(document) {
            Kind::Sloth => sloth::decode(&decoder, document, options, &mut slos)?,
            Kind::OpenSlo => openslo::decode(&decoder, document, options, &documents, &mut slos)?,
            Kind::OpenSloOther => {}
            Kind::Unknown(message) => {
                return Err(decoder.error(document.line, "(document)", message));
            }
        }
    }
    if slos.is_empty() {
        return Err(ConfigError::file(name, "no SLO in the file"));
    }
    for (index, slo) in slos.iter().enumerate() {
        if let Some(first) = slos[..index].iter().find(|s| s.id == slo.id) {
            return Err(duplicate(slo, first));
        }
    }
    Ok(slos)
}

fn duplicate(slo: &Slo, first: &Slo) -> ConfigError {
    ConfigError {
        file: slo.file.clone(),
        line: slo.line,
        field: "(slo)".to_string(),
        message: format!(
            "the SLO ID {:?} is already defined at {}:{}",
            slo.id, first.file, first.line
        ),
    }
}

/// Reads `files` (already expanded from globs): every SLO, or the first
/// error of each file that has one. SLO IDs (`<service>-<name>`) must be
/// unique across all of them.
pub fn load_files(files: &[PathBuf], options: &ParseOptions) -> Result<Vec<Slo>, Vec<ConfigError>> {
    let mut slos: Vec<Slo> = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(ConfigError::file(&name, format!("reading the file: {e}")));
                continue;
            }
        };
        match parse_file(&name, &text, options) {
            Ok(found) => {
                for slo in found {
                    if let Some(first) = slos.iter().find(|s| s.id == slo.id) {
                        errors.push(duplicate(&slo, first));
                    } else {
                        slos.push(slo);
                    }
                }
            }
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(slos)
    } else {
        Err(errors)
    }
}

/// The rule groups of every SLO, or the first SLO that fails (a query
/// whose template does not render).
pub fn generate_all(
    slos: &[Slo],
    options: &GenerateOptions,
) -> Result<Vec<rules::GroupSpec>, ConfigError> {
    let mut groups = Vec::new();
    for slo in slos {
        let generated = generate(slo, options).map_err(|message| ConfigError {
            file: slo.file.clone(),
            line: slo.line,
            field: "(slo)".to_string(),
            message,
        })?;
        groups.extend(generated);
    }
    Ok(groups)
}

enum Kind {
    Sloth,
    OpenSlo,
    /// An OpenSLO object that is not an SLO (an `SLI` a SLO refers to).
    OpenSloOther,
    Unknown(String),
}

fn document_kind(document: &Node) -> Kind {
    let field = |name: &str| -> Option<String> {
        let NodeValue::Mapping(entries) = &document.value else {
            return None;
        };
        entries
            .iter()
            .find(|(key, _)| config::decode::key_is(key, name))
            .and_then(|(_, value)| value.as_string().ok())
    };
    // Sloth's format has `version:`, which its reader checks.
    if field("version").is_some() {
        return Kind::Sloth;
    }
    match (field("apiVersion").as_deref(), field("kind").as_deref()) {
        (Some(openslo::API_VERSION), Some("SLO")) => Kind::OpenSlo,
        (Some(openslo::API_VERSION), Some("SLI")) => Kind::OpenSloOther,
        (Some(openslo::API_VERSION), Some(kind)) => Kind::Unknown(format!(
            "not supported by osprey: OpenSLO {kind} objects (osprey reads SLO and SLI)"
        )),
        (Some(version), _) => Kind::Unknown(format!(
            "not supported by osprey: apiVersion {version:?} (osprey reads Sloth's {:?} and OpenSLO's {:?})",
            sloth::VERSION,
            openslo::API_VERSION
        )),
        (None, _) => Kind::Unknown(format!(
            "not an SLO spec: expected `version: {}` (Sloth) or `apiVersion: {}` (OpenSLO)",
            sloth::VERSION,
            openslo::API_VERSION
        )),
    }
}

/// Low-traffic protection's `min_events`: a positive number.
pub(crate) fn decode_min_events(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<f64, ConfigError> {
    let value = decoder.float(node, field)?;
    if !(value.is_finite() && value > 0.0) {
        return Err(decoder.error(node.line, field, "min_events must be a positive number"));
    }
    Ok(value)
}

/// An event-weighted budget needs event counts.
pub(crate) fn check_budget_method(
    decoder: &Decoder,
    line: u64,
    field: &str,
    method: BudgetMethod,
    has_events: bool,
) -> Result<(), ConfigError> {
    if method == BudgetMethod::Events && !has_events {
        return Err(decoder.error(
            line,
            field,
            "an event-weighted budget needs an SLI that counts events",
        ));
    }
    Ok(())
}
