//! osprey's alert manager: Alertmanager 0.25's configuration, routing,
//! grouping, inhibition, silences and notifications, inside the osprey
//! binary.
//!
//! - [`config`] reads `alertmanager.yml` into plain structs with
//!   Alertmanager's defaults; errors name file, line and field.
//! - [`matchers`] parses the matcher syntax (`foo="bar", baz=~"x.*"`).
//! - [`route`] matches label sets against the routing tree.
//! - [`timeinterval`] evaluates `time_intervals` in their time zones.
//!
//! This crate knows no HTTP server: the Alertmanager API v2 lives in
//! `server`, which calls the handle's methods.

pub mod config;
pub mod matchers;
pub mod route;
pub mod timeinterval;
mod yaml;

pub use config::{Config, ConfigError, parse_config};
