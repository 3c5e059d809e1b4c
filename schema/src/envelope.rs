//! What a collector publishes to Kafka: JSON, one [`Bundle`] of consecutive records of one file
//! per message (schema 2), or one [`Envelope`] per record (schema 1, still read).
//!
//! ```json
//! {"schema":2,"hierarchy":"contoso","site":"CHQ","host":"cm1","path":"...","file":"2049:1835",
//!  "records":[{"offset":1234,"record":{"time":"...","component":"...","text":"...","format":"server"}},
//!             {"offset":1391,"record":{...}}]}
//! {"schema":1,"hierarchy":"contoso","site":"CHQ","host":"cm1","source":{"path":"...","offset":1234},
//!  "record":{"time":"...","component":"...","thread":1,"text":"...","format":"server","statmsg":{...}}}
//! ```
//!
//! The Kafka key is [`Envelope::key`]: `hierarchy/site`, so that every record of one site lands in
//! one partition, in order. A bundle states its origin once: a consumer's cost is per message as
//! much as per byte (librdkafka, the broker, offsets), and the header was a third of a record's
//! envelope. [`decode`] reads every payload a collector sends.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::heartbeat::CollectorHeartbeat;
use crate::record::Record;

/// The newest payload layout this build reads (and writes in its bundles): 1 is the single
/// [`Envelope`] and the heartbeat, 2 adds the [`Bundle`]. A consumer refuses (dead-letters)
/// newer versions instead of guessing, so consumers are upgraded before collectors.
pub const SCHEMA_VERSION: u32 = 2;

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

/// Consecutive records of one file, read by one collector, of one site: one Kafka message.
/// `R` is how its records are held: decoded, or as JSON ([`RawBundle`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle<'a, R = BundledRecord<'a>> {
    /// [`SCHEMA_VERSION`] (2) when written by this build.
    pub schema: u32,
    #[serde(borrow)]
    pub hierarchy: Cow<'a, str>,
    /// The site of every record: a collector starts a new bundle where the site changes.
    #[serde(borrow)]
    pub site: Cow<'a, str>,
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    /// The file's path, as [`SourcePosition::path`].
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    /// The file's identity, as [`SourcePosition::file`].
    #[serde(
        borrow,
        default,
        deserialize_with = "crate::borrow::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub file: Option<Cow<'a, str>>,
    /// In the order they were read.
    #[serde(bound(deserialize = "R: Deserialize<'de>"))]
    pub records: Vec<R>,
}

/// One record of a [`Bundle`] and where it starts in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundledRecord<'a> {
    pub offset: u64,
    /// As [`Envelope::truncated`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u64>,
    #[serde(borrow)]
    pub record: Record<'a>,
}

impl<'a, R> Bundle<'a, R> {
    /// The header, borrowed.
    fn header(&self) -> BundleHeader<'_> {
        BundleHeader {
            schema: self.schema,
            hierarchy: &self.hierarchy,
            site: &self.site,
            host: &self.host,
            path: &self.path,
            file: self.file.as_deref(),
        }
    }
}

impl<'a> Bundle<'a> {
    /// Each record as the [`Envelope`] it would have had alone, in order; the envelopes borrow
    /// the bundle's header, so none costs an allocation.
    pub fn each(mut self, mut f: impl FnMut(Envelope<'_>)) {
        let records = std::mem::take(&mut self.records);
        let origin = self.header();
        for entry in records {
            f(origin.envelope(entry));
        }
    }
}

/// The header of a bundle, borrowed.
#[derive(Clone, Copy)]
struct BundleHeader<'s> {
    schema: u32,
    hierarchy: &'s str,
    site: &'s str,
    host: &'s str,
    path: &'s str,
    file: Option<&'s str>,
}

impl<'s> BundleHeader<'s> {
    /// `entry` as the [`Envelope`] it would have had alone.
    fn envelope(self, entry: BundledRecord<'s>) -> Envelope<'s> {
        Envelope {
            schema: self.schema,
            hierarchy: Cow::Borrowed(self.hierarchy),
            site: Cow::Borrowed(self.site),
            host: Cow::Borrowed(self.host),
            source: SourcePosition {
                path: Cow::Borrowed(self.path),
                offset: entry.offset,
                file: self.file.map(Cow::Borrowed),
            },
            truncated: entry.truncated,
            record: entry.record,
        }
    }
}

/// A bundle one of whose records did not decode (a field this build does not know, say): its
/// records kept as JSON, to be decoded one by one, so that only the bad ones are set aside.
pub type RawBundle<'a> = Bundle<'a, &'a RawValue>;

impl<'a> Bundle<'a, &'a RawValue> {
    /// The record of `raw` (one of its records) as the [`Envelope`] it would have had alone.
    pub fn decode_record<'s>(&'s self, raw: &'s RawValue) -> Result<Envelope<'s>, serde_json::Error> {
        Ok(self.header().envelope(serde_json::from_str(raw.get())?))
    }

    /// A bundle of `raw` alone (JSON): what a dead letter holds, to be replayed by a consumer
    /// that can read it.
    pub fn alone(&self, raw: &RawValue) -> String {
        let one = Bundle { records: vec![raw], ..self.clone() };
        // Infallible: strings, numbers and JSON that was read as such.
        serde_json::to_string(&one).expect("a bundle always serializes")
    }
}

/// A payload of the records topic, decoded.
// Built once per message and taken apart at once: boxing the envelope would cost an allocation
// per single-record message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Payload<'a> {
    Bundle(Bundle<'a>),
    /// A bundle with records that do not decode (the error is in each of them).
    Damaged(RawBundle<'a>),
    Envelope(Envelope<'a>),
    Heartbeat(CollectorHeartbeat),
    /// Written by a newer statmsg ([`SCHEMA_VERSION`] is older): not decoded.
    Newer {
        schema: u32,
    },
}

/// Decodes what a collector sent. Collectors write `schema` first and bundles as their
/// messages, so a bundle is tried first when the payload starts like one; any other payload,
/// in any order of keys, decodes as well.
pub fn decode(text: &str) -> Result<Payload<'_>, serde_json::Error> {
    let bundle = match text.starts_with(CANONICAL_BUNDLE) {
        true => serde_json::from_str(text).ok(),
        false => None,
    };
    let payload = match bundle {
        Some(bundle) => Payload::Bundle(bundle),
        None => match serde_json::from_str::<Envelope<'_>>(text) {
            Ok(envelope) => Payload::Envelope(envelope),
            // Which one it was meant to be, by its keys; the error of what it looks like.
            Err(error) => match serde_json::from_str::<Shape>(text) {
                Ok(Shape { schema: Some(schema), .. }) if schema > SCHEMA_VERSION => {
                    Payload::Newer { schema }
                }
                Ok(Shape { records: Some(_), .. }) => match serde_json::from_str(text) {
                    Ok(bundle) => Payload::Bundle(bundle),
                    // Its header is fine and its records are JSON: each is decoded alone.
                    Err(error) => Payload::Damaged(serde_json::from_str(text).map_err(|_| error)?),
                },
                Ok(Shape { collector: Some(_), .. }) => Payload::Heartbeat(serde_json::from_str(text)?),
                _ => return Err(error),
            },
        },
    };
    let schema = match &payload {
        Payload::Bundle(b) => b.schema,
        Payload::Damaged(b) => b.schema,
        Payload::Envelope(e) => e.schema,
        Payload::Heartbeat(h) => h.schema,
        Payload::Newer { schema } => *schema,
    };
    Ok(if schema > SCHEMA_VERSION { Payload::Newer { schema } } else { payload })
}

const CANONICAL_BUNDLE: &str = "{\"schema\":2,";

/// The keys that tell the payloads apart.
#[derive(Deserialize)]
struct Shape {
    schema: Option<u32>,
    records: Option<serde::de::IgnoredAny>,
    collector: Option<serde::de::IgnoredAny>,
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
                statmsg: Some(Box::new(StatusMessage {
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
                })),
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
    fn decode_tells_bundles_envelopes_heartbeats_and_newer_payloads_apart_in_any_key_order() {
        let single = serde_json::to_string(&envelope("t", None, Event::SyncStarting)).unwrap();
        assert!(single.starts_with(CANONICAL_BUNDLE), "a single envelope may start like a bundle");
        assert!(matches!(decode(&single), Ok(Payload::Envelope(e)) if e.record.text == "t"));
        let records = r#"[{"offset":3,"record":{"time":null,"text":"a","format":"unframed"}},
            {"offset":9,"truncated":2000000,"record":{"time":null,"text":"b","format":"unframed"}}]"#;
        let canonical = format!(
            r#"{{"schema":2,"hierarchy":"h","site":"S","host":"x","path":"p","file":"1:2","records":{records}}}"#
        );
        let reordered =
            format!(r#"{{"records":{records},"path":"p","host":"x","site":"S","hierarchy":"h","schema":2}}"#);
        for (json, file) in [(&canonical, Some("1:2")), (&reordered, None)] {
            let Ok(Payload::Bundle(bundle)) = decode(json) else { panic!("{json}") };
            let mut seen = Vec::new();
            bundle.each(|e| {
                assert_eq!((&*e.hierarchy, &*e.site, &*e.host, &*e.source.path), ("h", "S", "x", "p"));
                assert_eq!(e.source.file.as_deref(), file);
                seen.push((e.source.offset, e.truncated, e.record.text.to_string()));
            });
            assert_eq!(seen, [(3, None, "a".to_owned()), (9, Some(2_000_000), "b".to_owned())]);
        }
        let beat = r#"{"collector":{"version":"1","interval_s":60,"files_watched":1,"unread_bytes":0,"spool_bytes":0,"spool_records":0},
            "schema":1,"hierarchy":"h","site":"S","host":"x","time":"2024-03-01T10:00:00.000Z"}"#;
        assert!(matches!(decode(beat), Ok(Payload::Heartbeat(b)) if b.site == "S"));
        for newer in
            [canonical.replace("\"schema\":2", "\"schema\":3"), r#"{"schema":7,"what":"next"}"#.to_owned()]
        {
            assert!(
                matches!(decode(&newer), Ok(Payload::Newer { schema }) if schema > SCHEMA_VERSION),
                "{newer}"
            );
        }
        // A record that does not decode leaves the others readable, and says what is wrong.
        let broken = canonical.replace("\"offset\":9,", "");
        let Ok(Payload::Damaged(damaged)) = decode(&broken) else { panic!("{broken}") };
        let decoded: Vec<_> = damaged.records.iter().map(|raw| damaged.decode_record(raw)).collect();
        assert_eq!(decoded[0].as_ref().map(|e| (e.source.offset, &*e.record.text)).unwrap(), (3, "a"));
        let error = decoded[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("offset"), "{error}");
        let alone: serde_json::Value = serde_json::from_str(&damaged.alone(damaged.records[1])).unwrap();
        assert_eq!((&alone["site"], &alone["records"][0]["record"]["text"]), (&"S".into(), &"b".into()));
        assert_eq!(alone["records"].as_array().map(Vec::len), Some(1));
        let unreadable_header = canonical.replace("\"host\":\"x\",", "");
        let error = decode(&unreadable_header).unwrap_err().to_string();
        assert!(error.contains("host"), "a bundle without a header says why: {error}");
        assert!(decode("{not json").is_err());
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
