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
    #[serde(
        borrow,
        default,
        deserialize_with = "crate::borrow::option",
        skip_serializing_if = "Option::is_none"
    )]
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::event::Event;
    use crate::record::{Attribute, ExtraKey, Format, StatusMessage};

    fn envelope<'a>(text: &'a str, optional: Option<&'a str>, event: Event<'a>) -> Envelope<'a> {
        let c = |s: &'a str| Cow::Borrowed(s);
        let time = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        Envelope {
            schema: SCHEMA_VERSION,
            hierarchy: c(text),
            site: c("P01"),
            host: c(text),
            source: SourcePosition { path: c(text), offset: 7, file: optional.map(c) },
            truncated: None,
            record: Record {
                time: Some(time),
                component: optional.map(c),
                thread: Some(3),
                text: c(text),
                format: Format::Server,
                level: None,
                statmsg: Some(StatusMessage {
                    id: 6703,
                    sev: c("E"),
                    lev: c("M"),
                    source: c(text),
                    comp: c(text),
                    sys: c(text),
                    site: c("P01"),
                    pid: 1,
                    tid: 2,
                    gmtdate: time,
                    istr: std::array::from_fn(|i| if i % 2 == 0 { c(text) } else { c("") }),
                    attrs: vec![Attribute { id: 408, value: c(text) }],
                    le: Some(0x8024_400D),
                    extra: vec![ExtraKey { key: c("K"), value: c(text) }],
                }),
                statmsg_error: optional.map(c),
                event: Some(event),
            },
        }
    }

    proptest! {
        /// Whatever the strings hold (quotes, backslashes, control characters, any Unicode), an
        /// envelope decodes to what was encoded, through the deserializers that borrow.
        #[test]
        fn an_envelope_decodes_to_what_was_encoded(
            text in "\\PC{0,24}|[\"\\\\\u{0}-\u{1f}a-z]{0,12}",
            optional in proptest::option::of("\\PC{0,12}|[\"\\\\\u{0}-\u{1f}]{0,4}"),
            which in 0..3u8,
        ) {
            let event = match which {
                0 => Event::SyncFailed { message: Cow::Borrowed(&text), source: optional.as_deref().map(Cow::Borrowed) },
                1 => Event::PhaseStarted { phase: crate::event::Phase::WsusServer, server: optional.as_deref().map(Cow::Borrowed) },
                _ => Event::UpdateFailed { update_id: Cow::Borrowed("u"), message: Cow::Borrowed(&text), source: None },
            };
            let sent = envelope(&text, optional.as_deref(), event);
            let json = serde_json::to_string(&sent).unwrap();
            let received: Envelope<'_> = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(received, sent);
        }
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let json = r#"{"schema":1,"hierarchy":"h","site":"S","host":"x","source":{"path":"p","offset":0},
            "record":{"time":null,"thread":null,"text":"t","format":"unframed"}}"#;
        let e: Envelope<'_> = serde_json::from_str(json).unwrap();
        assert_eq!((e.record.time, e.record.component, e.source.file), (None, None, None));
        let json = json.replace(r#""text":"t""#, r#""text":"t","component":null,"statmsg_error":null"#);
        let e: Envelope<'_> = serde_json::from_str(&json).unwrap();
        assert_eq!((e.record.component, e.record.statmsg_error), (None, None));
    }

    #[test]
    fn unescaped_strings_are_borrowed_from_the_payload() {
        let sent = envelope(
            "plain",
            Some("also plain"),
            Event::SyncFailed { message: Cow::Borrowed("m"), source: Some(Cow::Borrowed("s")) },
        );
        let json = serde_json::to_string(&sent).unwrap();
        let received: Envelope<'_> = serde_json::from_str(&json).unwrap();
        let borrowed = |c: &Option<Cow<'_, str>>| matches!(c, Some(Cow::Borrowed(_)));
        assert!(borrowed(&received.source.file));
        assert!(borrowed(&received.record.component));
        assert!(borrowed(&received.record.statmsg_error));
        let m = received.record.statmsg.as_ref().unwrap();
        assert!(m.istr.iter().all(|s| matches!(s, Cow::Borrowed(_))));
        match &received.record.event {
            Some(Event::SyncFailed { source, .. }) => assert!(borrowed(source)),
            other => panic!("{other:?}"),
        }
        // An escaped string is copied, and still right.
        let escaped =
            envelope("a\"b", Some("c\\d"), Event::SyncFailed { message: Cow::Borrowed("m"), source: None });
        let json = serde_json::to_string(&escaped).unwrap();
        let received: Envelope<'_> = serde_json::from_str(&json).unwrap();
        assert!(matches!(received.record.component, Some(Cow::Owned(_))));
        assert_eq!(received, escaped);
    }
}
