//! osprey's built-in exporters: what node_exporter, NVIDIA's DCGM exporter,
//! cAdvisor, redis_exporter, postgres_exporter and blackbox_exporter give a
//! Prometheus server, inside the osprey binary.
//!
//! - [`host`]: node_exporter's names for CPU, memory, load, filesystems,
//!   disks, network, uname, time, boot time, pressure and hwmon
//!   temperatures, read straight from procfs and sysfs.
//! - [`gpu`]: DCGM exporter names for NVIDIA GPUs through NVML, which is
//!   loaded at run time; every NVML call sits behind [`gpu::GpuSource`], so
//!   a fake GPU drives the tests and a host without a driver exports
//!   `osprey_gpu_available 0`; nvidia_gpu_prometheus_exporter's names
//!   beside DCGM's, each naming switched on its own.
//! - [`container`]: cAdvisor's names for every cgroup (containers, systemd
//!   services, the root) from the cgroup v2 or v1 files, with Docker's and
//!   containerd's metadata, and GPU use per container from NVML's
//!   per-process figures.
//! - [`redis`]: redis_exporter 1.45's names over the Redis protocol
//!   (redis-rs), for any instance a scrape names.
//! - [`postgres`]: postgres_exporter 0.11's default metrics over the
//!   PostgreSQL protocol (rust-postgres), connections kept between scrapes.
//! - [`blackbox`]: blackbox_exporter's `http`, `tcp` and `dns` probers and
//!   their metric names.
//! - [`process`]: `process_*` metrics for the calling process.
//!
//! Every exporter writes the Prometheus text format (with `# HELP` and
//! `# TYPE`) into a caller-provided `String` ([`text`]). This crate serves
//! no HTTP and parses no configuration files: the `server` crate mounts the
//! endpoints and hands over the `config` crate's typed settings or the
//! plain option structs defined here.
//!
//! Decision: procfs, sysfs and cgroup files are read by hand rather than through the
//! `procfs` crate. The files involved are a dozen line-oriented formats of
//! a few lines each; reading them directly keeps every parse next to the
//! metric it feeds, writes straight into the output buffer without an
//! intermediate struct per file, and leaves out a dependency tree. The
//! few system calls std lacks (`statfs`, `uname`, `getrlimit`) go through
//! `libc` in [`sys`], each wrapped once.

pub mod blackbox;
pub mod container;
pub mod gpu;
pub mod host;
pub mod postgres;
pub mod process;
pub mod redis;
mod sys;
pub mod text;

pub use text::TEXT_CONTENT_TYPE;
