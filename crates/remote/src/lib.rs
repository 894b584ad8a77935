//! Prometheus remote write 1.0 both ways, and 2.0's receiving side.
//!
//! - [`codec`]: the protobuf messages (`prometheus.WriteRequest` and
//!   friends, written out with prost's derive), bounded snappy
//!   decompression, and [`visit_write_request`], which walks a request
//!   without copying and validates each series. `server`'s
//!   `POST /api/v1/write` handler stages straight from it; for remote
//!   write 2.0 (`io.prometheus.write.v2.Request`, symbols table and label
//!   references) it walks [`visit_write_request_v2`], and [`codec::v2`]
//!   holds the 2.0 messages to encode.
//! - [`sender`]: what forwards samples to other systems. [`WalStorage`] is
//!   an [`model::storage::Appendable`] that logs every commit to a WAL (the
//!   `tsdb::wal` format, specified with the position files in
//!   `docs/format/agent.md`); [`RemoteWriter`] runs one queue per
//!   `remote_write` entry that tails that WAL and posts batches, with
//!   sharding, retries and backoff; [`RemoteMetrics`] are its
//!   `prometheus_remote_storage_*` metrics.
//! - [`forward`]: [`Forwarder`], an `Appendable` over a store that keeps
//!   its own samples (`osprey server`'s TSDB): while `remote_write` is
//!   configured each commit is also logged to a [`WalStorage`] that a
//!   [`RemoteWriter`] tails; otherwise appenders are the store's own.
//!
//! This crate is not an HTTP server (the receiving endpoint and its error
//! shapes are `server`'s), does not store samples for queries (the WAL
//! holds only what is still to be sent) and parses no configuration: it
//! takes the typed `remote_write` entries ([`config::RemoteWriteConfig`]).
//!
//! `osprey agent` (in the binary crate) scrapes straight into a
//! [`WalStorage`] and runs a [`RemoteWriter`] over it; `osprey server`
//! hands every writer a [`Forwarder`] over its TSDB.

pub mod codec;
mod decode;
pub mod forward;
pub mod read;
pub mod read_client;
pub mod sender;
pub mod sigv4;

pub use codec::{
    BucketSpan, Exemplar, Histogram, Label, MetricMetadata, RemoteWriteError, Sample, TimeSeries,
    ValidatedSeries, WriteRequest, decode_remote_write, decompress_snappy, encode_remote_write,
    visit_write_request, visit_write_request_full, visit_write_request_v2,
    visit_write_request_with_exemplars,
};
pub use decode::v2::{RawMetadata, SeriesExtras};
pub use decode::{RawExemplar, RawHistogram};
pub use forward::Forwarder;
pub use sender::{
    AGENT_SEGMENT_BYTES, MetadataSource, RemoteMetrics, RemoteWriter, WalStorage, metadata_entry,
    queue_id,
};
