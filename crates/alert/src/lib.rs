//! osprey's alert manager: Alertmanager 0.25's configuration, routing,
//! grouping, inhibition, silences and notifications, inside the osprey
//! binary.
//!
//! - It runs the typed `alertmanager.yml` of the `config` crate
//!   (`config::alertmanager`: routes, receivers, the matcher syntax and
//!   time intervals), whose HTTP receivers go through `config::HttpClient`.
//! - [`route`] matches label sets against the routing tree.
//! - [`Alertmanager`] (in `manager.rs`) is the running alert manager: the
//!   alert store, aggregation groups and their timers, inhibition,
//!   [`silence`]s, the notification log ([`nflog`]) and the receivers
//!   ([`notify`]). Silences and the log persist in the files specified in
//!   `docs/format/alertmanager.md` (`persist.rs`).
//!
//! - [`cluster`] replicates silences and the log between alert managers
//!   and orders their notifications by peer position (high availability;
//!   messages in `docs/format/cluster.md`).
//!
//! - [`simulate`] replays alerts from the past (a rule backtest's) through
//!   the same routing, grouping, inhibition and dedup decisions on a
//!   simulated clock, and says which notifications would have gone out.
//!
//! This crate knows no HTTP server: the Alertmanager API v2 lives in
//! `server`, which calls the handle's methods.

pub mod alerts;
pub mod cluster;
pub mod email;
mod manager;
pub mod nflog;
pub mod notify;
mod persist;
pub mod route;
pub mod silence;
pub mod simulate;
pub mod template;

pub use alerts::{Alert, PostableAlert};
pub use manager::{
    AlertView, Alertmanager, DEFAULT_RETENTION_MS, GroupView, Options, PreparedConfig,
    PutAlertsError, StartError,
};
pub use persist::PersistError;
