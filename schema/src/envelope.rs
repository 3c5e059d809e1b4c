//! What a collector publishes to Kafka: one JSON [`Envelope`] per log record.
//!
//! ```json
//! {"schema":1,"hierarchy":"contoso","site":"CHQ","host":"cm1","source":{"path":"...","offset":1234},
//!  "record":{"time":"...","component":"...","thread":1,"text":"...","format":"server","statmsg":{...}}}
//! ```
//!
//! The Kafka key is [`Envelope::key`]: `hierarchy/site`, so that every record of one site lands in
//! one partition, in order.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::record::Record;

/// Version of the envelope layout. A consumer refuses (dead-letters) newer versions it does not
/// understand instead of guessing.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<'a> {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema: u32,
    /// The hierarchy name the collector was configured with.
    #[serde(borrow)]
    pub hierarchy: Cow<'a, str>,
    /// Site code of the collector's site server (configured, else the STATMSG `SITE`, else empty).
    #[serde(borrow)]
    pub site: Cow<'a, str>,
    /// Host name of the collector.
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    /// Where the record was read; with `host` it identifies the record for deduplication.
    #[serde(borrow)]
    pub source: SourcePosition<'a>,
    /// Set when the record was too large to send whole: the size of its full payload. The
    /// record's text is then cut and its `statmsg_error` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u64>,
    #[serde(borrow)]
    pub record: Record<'a>,
}

/// Position of a record in the file it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition<'a> {
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    /// Byte offset of the first byte of the record's line.
    pub offset: u64,
    /// Identity of the file behind `path` when the record was read (device and file index, or
    /// creation time on Windows): a rolled-over log restarts its offsets in a new file.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Cow<'a, str>>,
}

impl Envelope<'_> {
    /// The Kafka message key: `hierarchy/site`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.hierarchy, self.site)
    }

    /// The site a record belongs to: the status message's own `SITE` when it has one, else the
    /// envelope's.
    pub fn record_site(&self) -> &str {
        match &self.record.statmsg {
            Some(m) if !m.site.is_empty() => &m.site,
            _ => &self.site,
        }
    }
}
