//! statmsg-plumbing: what both stages (the collector on the site servers, the consumer in the
//! centre) run on, and nothing of either stage.
//!
//! - [`config`]: the configuration file read into its raw form (every section, unknown keys
//!   refused, `STATMSG__SECTION__KEY` overrides), the checks shared by every section, and
//!   `[kafka]` validated ([`config::KafkaSettings`]); secrets read from files and never shown.
//!   Each stage validates its own sections in its own crate.
//! - [`kafka`]: client properties, librdkafka's logs into `tracing`, topic creation, and the
//!   one acknowledged publish ([`kafka::publish`]).
//! - [`retry`]: the one way to retry (growing pauses until done, refused, or shut down).
//! - [`shutdown`]: the one shutdown path (Ctrl-C, SIGTERM, a service stop or a failing stage),
//!   and the one way a step says that shutdown came first ([`shutdown::Stopped`]).
//! - [`prometheus`]: the exposition format and the opt-in endpoint a stage serves its counters on.
//!
//! Invariant (checked by `.ci/run`): this crate imports no stage (collect, consume, sim) and no
//! HTTP stack (reqwest, hyper, rustls), so the collector's build stays small.

pub mod config;
pub mod kafka;
pub mod prometheus;
pub mod retry;
pub mod shutdown;
