//! The statmsg event model and its wire formats. Pure: no I/O, no async.
//!
//! * [`record`]: one parsed log record ([`Record`]) and its status message ([`StatusMessage`]),
//!   borrowed from the read buffer when parsed and from the Kafka payload when consumed
//!   (`Cow<'a, str>` everywhere), owned only when they must outlive those buffers.
//! * [`envelope`]: what a collector publishes to Kafka: a versioned JSON [`Bundle`] of records
//!   of one file (or an [`Envelope`] around one record), its partitioning key, and [`decode`];
//!   [`bundle`] writes them (the collector's [`bundle::Bundler`]), so the wire format is written
//!   and read in this one crate.
//! * [`line_protocol`]: the InfluxDB line-protocol encoder, escaping hostile text so that a log
//!   line can never inject points, tags or fields.
//! * [`heartbeat`]: what a collector says about itself every minute ([`CollectorHeartbeat`]), on
//!   the same topic and key as its records.
//! * [`event`]: typed events (what a record means for synchronization) and [`catalog`], the
//!   status message ids of WSUS synchronization; `tagged` decodes them tag first.
//! * [`measurement`]: the InfluxDB measurements statmsg writes (documented in `schema/README.md`).
//!
//! Every other crate depends on this one, so it must never depend on any of them, nor on I/O or
//! async crates (tokio, rdkafka, reqwest, hyper) or a clock: only `chrono`, `serde`,
//! `serde_json` and `thiserror`.

mod borrow;
pub mod bundle;
pub mod catalog;
pub mod envelope;
pub mod event;
pub mod heartbeat;
pub mod line_protocol;
pub mod measurement;
pub mod record;
mod tagged;

pub use envelope::{
    decode, Bundle, BundledRecord, Envelope, Payload, RawBundle, SourcePosition, SCHEMA_VERSION,
};
pub use event::Event;
pub use heartbeat::{CollectorHeartbeat, CollectorStatus};
pub use record::{Attribute, ExtraKey, Format, Level, Record, StatusMessage};
