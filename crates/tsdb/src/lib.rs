//! osprey's embedded time-series database.
//!
//! [`Db`] implements the storage traits of [`model::storage`]. Inside:
//!
//! - [`head`]: the in-memory, writable part. Series in shards with interned
//!   labels and postings; samples in XOR chunks ([`chunkenc`]).
//! - [`wal`]: the segmented, CRC-checked, group-committed write-ahead log.
//!   A commit is acknowledged only after its records are fsynced (an
//!   unsynced commit, for scrapes, only after they are written; the sync
//!   follows within a second).
//! - [`block`] and [`index`]: immutable, memory-mapped block directories
//!   cut from the head, with Dense-encoded chunks.
//! - [`tombstones`]: what a delete removed from a block, until compaction
//!   rewrites it without those samples.
//! - [`compact`]: block writing, compaction planning and merging.
//! - [`db`]: the database that ties these together, plus retention.
//! - [`verify`]: full CRC checks of blocks and the WAL; a block that fails
//!   them at open is moved to `corrupted/` and the rest is served.
//! - `limits`: the series limiter the head consults before it creates a
//!   series (`docs/limits.md`).
//!
//! The on-disk formats are specified in `docs/format/`. This crate knows
//! nothing of HTTP, JSON wire shapes, PromQL or async runtimes.

pub mod backup;
pub mod block;
pub mod chunkenc;
pub mod compact;
pub mod db;
pub mod downsample;
pub mod exemplar;
pub mod head;
mod id_table;
pub mod import;
pub mod index;
mod limits;
mod postings;
mod querier;
mod sync;
mod templates;
pub mod tiers;
pub mod tombstones;
pub mod verify;
pub mod wal;

pub use db::{Db, DbOptions};
