//! osprey's scraper.
pub mod config;
mod md5;
pub mod relabel;
mod yaml;
