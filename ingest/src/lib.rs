//! statmsg's ingest side: parsing ConfigMgr logs ([`parse`]), collecting them into Kafka
//! ([`collect`]) and consuming them into InfluxDB ([`consume`]).
//!
//! [`parse`] is pure (no tokio, no rdkafka); the other stages are thin async shells around pure
//! cores, each with a validated `Config` and a `run(config, shutdown)`.

pub mod analyze;
pub mod collect;
pub mod config;
pub mod consume;
pub mod kafka;
pub mod offline;
pub mod parse;
pub mod shutdown;
pub mod simulate;
pub mod synth;
pub mod track;
