//! osprey's alert manager: Alertmanager 0.25's configuration, routing,
//! grouping, inhibition, silences and notifications, inside the osprey
//! binary.
//!
//! - [`config`] reads `alertmanager.yml` into plain structs with
//!   Alertmanager's defaults; errors name file, line and field.
//! - [`matchers`] parses the matcher syntax (`foo="bar", baz=~"x.*"`).
//! - [`route`] matches label sets against the routing tree.
//! - [`timeinterval`] evaluates `time_intervals` in their time zones.
//! - [`Alertmanager`] (in `manager.rs`) is the running alert manager: the
//!   alert store, aggregation groups and their timers, inhibition,
//!   [`silence`]s, the notification log ([`nflog`]) and the receivers
//!   ([`notify`]). Silences and the log persist in the files specified in
//!   `docs/format/alertmanager.md` (`persist.rs`).
//!
//! This crate knows no HTTP server: the Alertmanager API v2 lives in
//! `server`, which calls the handle's methods.

pub mod alerts;
pub mod config;
pub mod email;
mod manager;
pub mod matchers;
pub mod nflog;
pub mod notify;
mod persist;
pub mod route;
pub mod silence;
pub mod template;
#[expect(
    dead_code,
    reason = "days_from_civil lost its last caller to model::time; this file \
              moves to the config crate, which switches it to model::time"
)]
pub mod timeinterval;

pub use alerts::{Alert, PostableAlert};
pub use config::{Config, ConfigError, parse_config};
pub use manager::{
    AlertView, Alertmanager, DEFAULT_RETENTION_MS, GroupView, Options, PutAlertsError, StartError,
};
pub use persist::PersistError;
