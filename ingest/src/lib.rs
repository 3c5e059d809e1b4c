//! statmsg-ingest, the shell around the pure core: configuration, the collector, the consumer,
//! offline `analyze`, `report` and `simulate`, and the `statmsg` binary (`main.rs`, a thin
//! command line over these modules, its options in `cli.rs`; `anyhow` lives there only).
//!
//! The core is in crates of its own: `statmsg-parse` (log bytes to records) and `statmsg-track`
//! (records to sync runs, health and alerts), both over `statmsg-schema`. This crate adds the
//! I/O: files, Kafka, InfluxDB, the clock and the process's signals.
//!
//! # Layout
//!
//! - [`config`]: one TOML file (plus `STATMSG__SECTION__KEY` overrides) read into a raw form and
//!   validated once into each stage's typed `Config`; `example.toml` documents every key.
//! - [`collect`]: the collector. Follows log files by identity across rollovers
//!   ([`collect::follow`], pure; [`collect::tail`] reads), spools every record durably
//!   ([`collect::spool`]) before a file's checkpoint moves ([`collect::checkpoint`]), and sends
//!   the spool to Kafka, an entry leaving it only once acknowledged (`collect::drain`).
//! - [`consume`]: the consumer group. Batches records into InfluxDB points
//!   ([`consume::batch`], pure), writes them ([`consume::influx`]), feeds the tracker
//!   (`consume::tracking`), keeps its state in a compacted topic ([`consume::state`]) and
//!   commits offsets only after all of that was acknowledged; its counters for Prometheus
//!   ([`consume::metrics`]), and the dead-letter topic listed and replayed ([`consume::dlq`]).
//! - [`kafka`]: client properties and topic creation shared by the collector and the consumer,
//!   and the one acknowledged publish ([`kafka::publish`]).
//! - [`memory`]: giving the allocator's free memory back once a burst is over.
//! - [`metrics`]: the opt-in Prometheus endpoint of a stage.
//! - [`offline`]: whole log files read in parallel at record boundaries (`statmsg parse`,
//!   `statmsg analyze`).
//! - [`analyze`]: the tracker over copied log folders, offline, and its text and JSON report.
//! - [`report`]: `statmsg report`, the capacity trend report: runs read from log folders or
//!   from InfluxDB, handed to the pure `statmsg-report` crate (figures, trends, the HTML page).
//! - [`simulate`]: realistic logs of a whole hierarchy with injected faults, and a truth file
//!   from its own oracle ([`simulate::truth`]), which shares no computation with the tracker it
//!   judges (only its types and thresholds).
//! - [`service`]: the collector as a Windows service (install, start, stop; run under the
//!   service manager); Windows-only code lives in small `cfg(windows)` modules, here and in
//!   [`config::discover`] (the ConfigMgr registry keys) and [`collect::checkpoint`] (NTFS ids).
//! - [`retry`]: the one way to retry (growing pauses until done, refused, or shut down).
//! - [`shutdown`]: the one shutdown path (Ctrl-C, SIGTERM, or a failing stage), and the one way a
//!   step says that shutdown came first ([`shutdown::Stopped`]).
//!
//! Nothing depends on this crate: the core crates must never depend on it, and it adds no logic
//! of parsing or tracking of its own.
//!
//! Each stage has a module doc saying what it owns, a validated `Config`, a
//! `run(config, shutdown)` and its tests beside it; the end-to-end tests in `tests/` run it
//! against the real Kafka and InfluxDB of `deploy/local/stack`.

pub mod analyze;
pub mod collect;
pub mod config;
pub mod consume;
pub mod kafka;
pub mod memory;
pub mod metrics;
pub mod offline;
pub mod report;
pub mod retry;
pub mod service;
pub mod shutdown;
pub mod simulate;
