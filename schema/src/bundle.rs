//! The records of one file into Kafka messages: [`Bundle`](crate::Bundle)s of
//! consecutive records of one site, keyed `hierarchy/site`, each payload at most
//! [`BUNDLE_MAX_BYTES`]. Pure: the reader hands it a chunk's records and spools what it returns.
//!
//! Guarantee: every record pushed is in exactly one message, in the order pushed. A record too
//! large for a bundle travels alone; one whose payload would exceed [`MAX_PAYLOAD_BYTES`] is sent
//! with its text cut and a `statmsg_error` saying so (the consumer dead-letters it), and its
//! `truncated` holds the size it had: never dropped, never blocking its file.

use std::borrow::Cow;

use crate::{BundledRecord, Record, SCHEMA_VERSION};

/// Largest payload sent: below librdkafka's and the broker's default message size limit
/// (1,000,000 bytes), so that one record can never block a file.
pub const MAX_PAYLOAD_BYTES: usize = 900_000;

/// A bundle is closed before it grows past this (one record larger than it travels alone).
/// Large enough that the consumer's cost per message (librdkafka, the broker, offsets, the
/// header) is spread over a hundred records or more; small enough that a dead-lettered or
/// replayed message stays readable.
pub const BUNDLE_MAX_BYTES: usize = 64 * 1024;

/// Bytes of text kept of a record too large to send.
const TRUNCATED_TEXT_BYTES: usize = 64 * 1024;

/// Where the records of a [`Bundler`] come from: one file.
#[derive(Debug, Clone, Copy)]
pub struct FileOrigin<'a> {
    pub hierarchy: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// The file's identity (see `SourcePosition::file`).
    pub file: Option<&'a str>,
}

/// Builds the messages of one file's records.
#[derive(Debug)]
pub struct Bundler<'a> {
    origin: FileOrigin<'a>,
    /// Finished messages: key and payload.
    messages: Vec<(String, Vec<u8>)>,
    /// The open bundle's site and payload (without its closing `]}`); empty when none is open.
    site: String,
    payload: Vec<u8>,
    /// One record's JSON, reused.
    record: Vec<u8>,
}

impl<'a> Bundler<'a> {
    pub fn new(origin: FileOrigin<'a>) -> Self {
        Bundler { origin, messages: Vec::new(), site: String::new(), payload: Vec::new(), record: Vec::new() }
    }

    /// Adds the record read at `offset`, of `site`.
    pub fn push(&mut self, site: &str, offset: u64, record: Record<'_>) {
        self.record.clear();
        let bundled = BundledRecord { offset, truncated: None, record };
        write_json(&mut self.record, &bundled);
        if self.header_len(site) + self.record.len() + CLOSE.len() > MAX_PAYLOAD_BYTES {
            let cut = cut_down(bundled, self.record.len());
            self.record.clear();
            write_json(&mut self.record, &cut);
        }
        let open = !self.payload.is_empty();
        if open
            && (self.site != site
                || self.payload.len() + 1 + self.record.len() + CLOSE.len() > BUNDLE_MAX_BYTES)
        {
            self.close();
        }
        if self.payload.is_empty() {
            self.open(site);
        } else {
            self.payload.push(b',');
        }
        self.payload.extend_from_slice(&self.record);
    }

    /// The messages, in order: key and payload.
    pub fn finish(mut self) -> Vec<(String, Vec<u8>)> {
        self.close();
        self.messages
    }

    fn open(&mut self, site: &str) {
        let FileOrigin { hierarchy, host, path, file } = self.origin;
        self.site.clear();
        self.site.push_str(site);
        let p = &mut self.payload;
        p.extend_from_slice(format!("{{\"schema\":{SCHEMA_VERSION},\"hierarchy\":").as_bytes());
        write_json(p, hierarchy);
        p.extend_from_slice(b",\"site\":");
        write_json(p, site);
        p.extend_from_slice(b",\"host\":");
        write_json(p, host);
        p.extend_from_slice(b",\"path\":");
        write_json(p, path);
        if let Some(file) = file {
            p.extend_from_slice(b",\"file\":");
            write_json(p, file);
        }
        p.extend_from_slice(b",\"records\":[");
    }

    fn close(&mut self) {
        if self.payload.is_empty() {
            return;
        }
        self.payload.extend_from_slice(CLOSE);
        let key = format!("{}/{}", self.origin.hierarchy, self.site);
        self.messages.push((key, std::mem::take(&mut self.payload)));
    }

    /// An upper bound of the header's length (strings escaped at most 6 bytes a byte).
    fn header_len(&self, site: &str) -> usize {
        let o = &self.origin;
        let strings =
            o.hierarchy.len() + site.len() + o.host.len() + o.path.len() + o.file.map_or(0, str::len);
        80 + 6 * strings
    }
}

const CLOSE: &[u8] = b"]}";

/// Infallible: what is written holds only strings, numbers and string-keyed structs.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("a record always serializes");
}

/// A record of `size` bytes of JSON, too large for a message, cut to fit: its text cut, its
/// status message and event removed, and why in `statmsg_error`.
fn cut_down(mut bundled: BundledRecord<'_>, size: usize) -> BundledRecord<'_> {
    let record = &mut bundled.record;
    let text = &record.text;
    let mut cut = text.len().min(TRUNCATED_TEXT_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    record.text = Cow::Owned(text[..cut].to_owned());
    record.statmsg = None;
    record.event = None;
    record.statmsg_error =
        Some(Cow::Owned(format!("record of {size} bytes is too large for Kafka: text cut to {cut} bytes")));
    bundled.truncated = Some(size as u64);
    bundled
}

#[cfg(test)]
mod tests {
    use crate::Format;
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn record(text: &str) -> Record<'_> {
        Record {
            time: None,
            component: Some(Cow::Borrowed("SMS_WSUS_SYNC_MANAGER")),
            thread: Some(7),
            text: Cow::Borrowed(text),
            format: Format::Server,
            level: None,
            statmsg: None,
            statmsg_error: None,
            event: None,
        }
    }

    const ORIGIN: FileOrigin<'static> =
        FileOrigin { hierarchy: "contoso", host: "cm1", path: "C:\\Logs\\WsyncMgr.log", file: Some("7:42") };

    /// The oracle reads the payloads as plain JSON values, not through statmsg's types.
    fn records_of(messages: &[(String, Vec<u8>)]) -> Vec<(String, String, u64, String)> {
        let mut out = Vec::new();
        for (key, payload) in messages {
            let v: Value = serde_json::from_slice(payload).unwrap();
            assert_eq!(v["schema"], 2);
            assert_eq!(
                (&v["hierarchy"], &v["host"], &v["path"], &v["file"]),
                (
                    &Value::from("contoso"),
                    &Value::from("cm1"),
                    &Value::from("C:\\Logs\\WsyncMgr.log"),
                    &Value::from("7:42")
                )
            );
            let site = v["site"].as_str().unwrap();
            assert_eq!(key, &format!("contoso/{site}"));
            for r in v["records"].as_array().unwrap() {
                let text = r["record"]["text"].as_str().unwrap().to_owned();
                out.push((key.clone(), site.to_owned(), r["offset"].as_u64().unwrap(), text));
            }
        }
        out
    }

    #[test]
    fn a_new_site_starts_a_new_bundle_and_order_is_kept() {
        let mut b = Bundler::new(ORIGIN);
        for (i, site) in ["CS1", "CS1", "P01", "CS1"].iter().enumerate() {
            b.push(site, i as u64 * 10, record(&format!("line {i}")));
        }
        let messages = b.finish();
        let keys: Vec<&str> = messages.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["contoso/CS1", "contoso/P01", "contoso/CS1"]);
        let offsets: Vec<u64> = records_of(&messages).iter().map(|r| r.2).collect();
        assert_eq!(offsets, [0, 10, 20, 30]);
    }

    #[test]
    fn bundles_stay_under_their_bound_and_hold_every_record() {
        let texts: Vec<String> = (0..2000).map(|i| format!("record {i} {}", "x".repeat(i % 300))).collect();
        let mut b = Bundler::new(ORIGIN);
        for (i, text) in texts.iter().enumerate() {
            b.push("CS1", i as u64, record(text));
        }
        let messages = b.finish();
        assert!(messages.len() > 5, "{}", messages.len());
        assert!(messages.iter().all(|(_, p)| p.len() <= BUNDLE_MAX_BYTES));
        assert!(messages.iter().all(|(_, p)| p.starts_with(b"{\"schema\":2,")), "the consumer's fast path");
        let got: Vec<String> = records_of(&messages).into_iter().map(|r| r.3).collect();
        assert_eq!(got, texts);
        assert!(Bundler::new(ORIGIN).finish().is_empty());
    }

    #[test]
    fn a_large_record_travels_alone_and_an_oversized_one_is_cut_and_marked_not_dropped() {
        let large = "l".repeat(BUNDLE_MAX_BYTES * 2);
        let huge = "é".repeat(MAX_PAYLOAD_BYTES);
        let mut b = Bundler::new(ORIGIN);
        b.push("CS1", 0, record("before"));
        b.push("CS1", 1, record(&large));
        b.push("CS1", 2, record(&huge));
        b.push("CS1", 3, record("after"));
        let messages = b.finish();
        assert_eq!(messages.len(), 4);
        assert!(messages.iter().all(|(_, p)| p.len() <= MAX_PAYLOAD_BYTES));
        let v: Value = serde_json::from_slice(&messages[2].1).unwrap();
        let cut = &v["records"][0];
        assert!(cut["truncated"].as_u64().unwrap() > 2 * MAX_PAYLOAD_BYTES as u64);
        assert!(cut["record"]["statmsg_error"].as_str().unwrap().contains("too large for Kafka"));
        assert_eq!(cut["record"]["text"].as_str().unwrap().len(), TRUNCATED_TEXT_BYTES);
        let texts: Vec<String> = records_of(&messages).into_iter().map(|r| r.3).collect();
        assert_eq!(texts[1], large);
        assert_eq!((texts[0].as_str(), texts[3].as_str()), ("before", "after"));
    }

    proptest! {
        /// Whatever the strings hold, the payloads are JSON that statmsg's consumer decodes into
        /// the records pushed, in order.
        #[test]
        fn the_consumer_decodes_what_was_bundled(
            texts in proptest::collection::vec("\\PC{0,40}|[\"\\\\\u{0}-\u{1f}\\],{}a]{0,20}", 1..60),
            site in "[A-Z0-9\"\\\\]{0,4}",
        ) {
            let mut b = Bundler::new(ORIGIN);
            for (i, text) in texts.iter().enumerate() {
                b.push(&site, i as u64, record(text));
            }
            let mut decoded = Vec::new();
            for (_, payload) in b.finish() {
                let text = std::str::from_utf8(&payload).unwrap();
                match crate::decode(text).unwrap() {
                    crate::Payload::Bundle(bundle) => bundle.each(|e| {
                        decoded.push((e.site.to_string(), e.source.offset, e.record.into_owned()))
                    }),
                    other => panic!("{other:?}"),
                }
            }
            let expected: Vec<_> =
                texts.iter().enumerate().map(|(i, t)| (site.clone(), i as u64, record(t).into_owned())).collect();
            prop_assert_eq!(decoded, expected);
        }
    }
}
