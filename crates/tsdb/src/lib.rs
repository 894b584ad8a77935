//! osprey's embedded time-series database.
//!
//! Placeholder while the modules land; see ARCHITECTURE.md.

pub mod block;
pub mod chunkenc;
pub mod index;
pub mod wal;
