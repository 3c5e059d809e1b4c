//! statmsg, the command: the `statmsg` binary (`main.rs`, a thin command line whose options are
//! in `cli.rs`; `anyhow` lives there only) and the offline tools it runs.
//!
//! The code is in crates by where it runs (`ARCHITECTURE.md` is the map):
//! `statmsg-collect` (site servers), `statmsg-consume` (central), `statmsg-plumbing` (what both
//! run on), the pure core (`statmsg-schema`, `statmsg-parse`, `statmsg-track`,
//! `statmsg-report`) and `statmsg-sim`. This crate adds:
//!
//! - [`settings`]: the whole configuration file, as `statmsg config --config` checks it.
//! - [`offline`]: whole log files read in parallel at record boundaries (`statmsg parse`,
//!   `statmsg analyze`).
//! - `analyze`: the tracker over copied log folders, offline, and its text and JSON output.
//! - `report`: `statmsg report`, the capacity trend report: runs read from log folders or
//!   from InfluxDB, handed to the pure `statmsg-report` crate (figures, trends, the HTML page).
//!
//! The feature `central` (on by default) brings the consumer, `analyze`, `report` and
//! `simulate`; the site servers' build leaves it out (`--no-default-features`) and keeps
//! `collect`, `service`, `config`, `parse` and `--version`.

#[cfg(feature = "central")]
pub mod analyze;
pub mod offline;
#[cfg(feature = "central")]
pub mod report;
pub mod settings;
