//! statmsg-parse: bytes of a ConfigMgr log into [`Record`]s with typed [`Event`]s.
//!
//! A file's [`FileKind`] (format and encoding) is detected once from its first bytes. [`Frames`]
//! cuts text into raw records (lines, or multi-line CMTrace records); [`parse_record`] reads one.
//! Records borrow from the caller's buffer; on the server-format hot path nothing is allocated
//! per record (a test counts allocations). Parsing never fails and never drops a line: what it
//! does not understand becomes an [`Format::Unframed`] record with its text.
//!
//! # Layout
//!
//! - `text`: bytes to text (byte-order marks, UTF-8 / Windows-1252 / UTF-16LE, line splitting,
//!   `~` line-break codes).
//! - `frame`: text into raw records, each with its offset ([`Frames`]).
//! - `server`: the server "SMS trace" trailer (`$$<COMP><date time+bias><thread=...>`); its
//!   `memo` reads a trailer that repeats the last one outside its clock by comparing words.
//! - `statmsg`: the `STATMSG:` grammar; its `canonical` straight path reads the usual layout
//!   and is property-tested against the full grammar.
//! - `cmtrace`, `wsus`, `viewer`: the other record formats (CMTrace, WSUS SoftwareDistribution.log,
//!   lines copied from a log viewer).
//! - `datetime`: the date and clock readers every format shares; it uses no other module, so
//!   the format modules never import each other.
//! - [`events`]: typed events from a record's message (the narrative of a sync, WCM, the trigger
//!   chain, WSUS).
//! - [`stats`]: counts per format, kind and event type (`statmsg parse --stats`).
//! - [`synth`]: a deterministic synthetic WsyncMgr.log, for the benchmark and the tests, and the
//!   small random-number generator the simulator (statmsg-sim) uses too.
//!
//! # What it must never depend on
//!
//! Only `statmsg-schema` (the record model), `nom`, `memchr`, `chrono`, `serde` and `thiserror`.
//! No I/O, no async, no clock: never tokio, rdkafka, reqwest or hyper, nor `statmsg-track` or
//! any shell crate (`statmsg`, `statmsg-plumbing`, `statmsg-collect`, `statmsg-consume`,
//! `statmsg-sim`). The fuzz target and the criterion benchmark build on this crate and
//! `statmsg-schema` alone.
//!
//! [`Event`]: statmsg_schema::Event

mod cmtrace;
mod datetime;
pub mod events;
mod frame;
mod server;
mod statmsg;
pub mod stats;
pub mod synth;
mod text;
mod viewer;
mod wsus;

use std::borrow::Cow;

use statmsg_schema::{Format, Record};

pub use frame::{last_record_boundary, record_boundary, Frames};
use server::TrailerMemo;
pub use server::{parse_trailer, split_record, split_record_at, zone_bias, Trailer};
pub use statmsg::{parse_statmsg, Parsed, StatmsgError};
pub use text::{decode_line, present_message, strip_bom, Encoding, Lines, Transcoded};

/// The last line of a rolled-over file; not a record of the next line.
pub const ROLLOVER_MARKER: &str = "<MAXIMUM LOG FILE SIZE REACHED - FILE RENAMED>";

/// How a file is written: its record format and its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileKind {
    pub format: Format,
    pub encoding: Encoding,
}

impl FileKind {
    /// The bytes of a file's head that every reader hands to [`FileKind::detect`]: enough for
    /// the byte-order mark and the first lines of every format.
    pub const DETECT_BYTES: usize = 8192;

    /// Detects the kind from the first bytes of a file ([`FileKind::DETECT_BYTES`] of them, or
    /// the whole file when shorter) and returns it with the length of the byte-order mark to
    /// skip.
    pub fn detect(head: &[u8]) -> (FileKind, usize) {
        let (encoding, bom) = Encoding::detect(head);
        let sample: Cow<'_, str> = match encoding {
            Encoding::Utf8 => String::from_utf8_lossy(&head[bom..]),
            Encoding::Utf16Le => Cow::Owned(Transcoded::utf16le(&head[bom..], 0, false).text),
        };
        (FileKind { format: detect_format(&sample), encoding }, bom)
    }
}

/// The format of a text: the one most of its first non-empty lines are written in (a message
/// that merely mentions another format's marker does not decide).
pub fn detect_format(sample: &str) -> Format {
    let mut votes = [0u32; 4]; // server, cmtrace, wsus, viewer
    for line in sample.lines().map(str::trim).filter(|l| !l.is_empty()).take(20) {
        if split_record(line).is_some() {
            votes[0] += 1;
        } else if line.starts_with(cmtrace::START) {
            votes[1] += 1;
        } else if wsus::parse(line).is_some() {
            votes[2] += 1;
        } else if viewer::looks_like(line) {
            votes[3] += 1;
        }
    }
    let formats = [Format::Server, Format::Cmtrace, Format::Wsus, Format::Viewer];
    // Ties go to the earlier format: the server format is the common case.
    let best = (0..4).fold(0, |best, i| if votes[i] > votes[best] { i } else { best });
    formats[best]
}

/// Parses one framed raw record (without its final line terminator) of a file in `format`.
pub fn parse_record(format: Format, raw: &str) -> Record<'_> {
    parse_record_at(format, raw, None)
}

/// [`parse_record`] given where the server trailer's `$$<` is when framing already found it
/// ([`Frames::marker`]); `None` searches for it.
pub fn parse_record_at(format: Format, raw: &str, marker: Option<usize>) -> Record<'_> {
    let mut record = unframed("");
    parse_record_into(format, raw, marker, &mut TrailerMemo::default(), &mut record);
    record
}

/// [`parse_record_at`] into `record`, every field overwritten. Records are large (~640 bytes):
/// the hot path fills one record in place, record after record, rather than moving a new one;
/// `memo` holds the last server trailer read, which the next one usually repeats.
#[inline]
fn parse_record_into<'a>(
    format: Format,
    raw: &'a str,
    marker: Option<usize>,
    memo: &mut TrailerMemo<'a>,
    record: &mut Record<'a>,
) {
    let raw = raw.trim_end_matches(['\r', '\n']);
    match format {
        Format::Server | Format::Unframed | Format::RolloverMarker => {
            if let Some((message, trailer)) =
                marker.and_then(|at| server::split_usual_record_at(raw, at, memo))
            {
                return server_record(message, trailer, record);
            }
            match marker.map_or_else(|| split_record(raw), |at| server::split_record_at(raw, at)) {
                Some((message, trailer)) => server_record(message, trailer, record),
                None => *record = unframed(raw),
            }
        }
        Format::Cmtrace => *record = other_record(format, cmtrace::parse(raw), None, raw),
        Format::Wsus => *record = other_record(format, wsus::parse(raw), None, raw),
        Format::Viewer => *record = other_record(format, viewer::parse(raw), Some(raw.trim_end()), raw),
    }
}

/// Fills in the status message (or its error) and the event of `message` (raw: `~` codes
/// kept), writing into the record rather than moving large values around.
#[inline]
fn understand<'a>(record: &mut Record<'a>, format: Format, component: &str, message: &'a str) {
    let message = strip_component(format, message.trim_end_matches([' ', '~']))
        .trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
    if message.starts_with("STATMSG: ") {
        match statmsg::parse_statmsg(message, record.time) {
            Ok(Some(Parsed::Full(m))) => record.statmsg = Some(Box::new(m)),
            Ok(Some(Parsed::Symbolic(name))) => {
                record.event = Some(statmsg_schema::Event::SymbolicStatus { name: Cow::Borrowed(name) })
            }
            Ok(None) => {}
            Err(e) => record.statmsg_error = Some(Cow::Owned(e.to_string())),
        }
    }
    if record.event.is_none() {
        record.event = match format {
            Format::Wsus => events::classify_wsus(component, message),
            _ => events::classify(message, record.statmsg.as_deref()),
        };
    }
}

fn other_record<'a>(
    format: Format,
    parsed: Option<Record<'a>>,
    message: Option<&'a str>,
    raw: &'a str,
) -> Record<'a> {
    let Some(mut record) = parsed else { return unframed(raw) };
    let message = match (message, &record.text) {
        (Some(message), _) => message,
        (None, Cow::Borrowed(text)) => text,
        _ => "",
    };
    let component = match &record.component {
        Some(Cow::Borrowed(c)) => *c,
        _ => "",
    };
    understand(&mut record, format, component, message);
    record
}

/// In the viewer format the raw line ends with the component: the message is before it.
#[inline]
fn strip_component(format: Format, message: &str) -> &str {
    if format != Format::Viewer {
        return message;
    }
    match viewer::parse(message) {
        Some(r) => match r.component {
            Some(Cow::Borrowed(c)) => message[..message.len() - c.len()].trim_end(),
            _ => message,
        },
        None => message,
    }
}

#[inline(always)]
fn server_record<'a>(message: &'a str, trailer: Trailer<'a>, record: &mut Record<'a>) {
    // Field by field: assigning a whole new record would copy all of it.
    record.time = Some(trailer.time);
    record.component = Some(Cow::Borrowed(trailer.component));
    record.thread = Some(trailer.thread);
    // A message that starts a record with a raw line break (rare) loses it.
    let message_start = message.bytes().position(|c| c != b'\r' && c != b'\n').unwrap_or(message.len());
    record.text = present_message(&message[message_start..]);
    record.format = Format::Server;
    record.level = None;
    record.statmsg = None;
    record.statmsg_error = None;
    record.event = None;
    understand(record, Format::Server, trailer.component, message);
}

fn unframed(raw: &str) -> Record<'_> {
    let format = if raw.trim() == ROLLOVER_MARKER { Format::RolloverMarker } else { Format::Unframed };
    Record {
        time: None,
        component: None,
        thread: None,
        text: Cow::Borrowed(raw),
        format,
        level: None,
        statmsg: None,
        statmsg_error: None,
        event: None,
    }
}

/// Parses one server-format line (the common case), for callers that work line by line.
pub fn parse_line(line: &str) -> Record<'_> {
    parse_record(Format::Server, line)
}

/// Parses a whole file's bytes: kind detected, BOM skipped, every record with its byte offset.
/// Records are owned (the buffer may be transcoded); use [`Frames`] and [`parse_record`] to
/// borrow.
pub fn parse_file_bytes(bytes: &[u8]) -> (FileKind, Vec<(u64, Record<'static>)>) {
    let (kind, bom) = FileKind::detect(&bytes[..bytes.len().min(FileKind::DETECT_BYTES)]);
    let mut out = Vec::new();
    for_each_record(kind, &bytes[bom..], bom as u64, |offset, record| {
        let record = record.clone();
        out.push((offset, record.into_owned()))
    });
    (kind, out)
}

/// Calls `f` with every record of `bytes` (a file's content after its BOM, starting at file
/// offset `base`), borrowed where the encoding allows.
/// Calls `f` with every record of `bytes` (a file's content after its BOM, starting at file
/// offset `base`), borrowed where the encoding allows. Records are passed by reference: they are
/// large, and most callers only look at them.
pub fn for_each_record(kind: FileKind, bytes: &[u8], base: u64, f: impl FnMut(u64, &Record<'_>)) {
    walk_records(kind, bytes, base, false, f);
}

/// Like [`for_each_record`] for a file that may still be written: only records known to be
/// complete; returns the bytes they take (where the unread rest starts).
pub fn for_each_complete_record(
    kind: FileKind,
    bytes: &[u8],
    base: u64,
    f: impl FnMut(u64, &Record<'_>),
) -> usize {
    walk_records(kind, bytes, base, true, f)
}

fn walk_records(
    kind: FileKind,
    bytes: &[u8],
    base: u64,
    complete_only: bool,
    mut f: impl FnMut(u64, &Record<'_>),
) -> usize {
    match kind.encoding {
        Encoding::Utf8 => {
            // Valid as a whole (the usual case): validated once, records are slices of it,
            // parsed into one record reused from line to line.
            let text = std::str::from_utf8(bytes).ok();
            let mut frames = Frames::new(kind.format, bytes, complete_only);
            let (mut record, mut memo) = (unframed(""), TrailerMemo::default());
            while let Some((offset, raw)) = frames.next() {
                match text {
                    Some(text) => {
                        let raw = &text[offset..offset + raw.len()];
                        parse_record_into(kind.format, raw, frames.marker(), &mut memo, &mut record);
                        f(base + offset as u64, &record);
                    }
                    None => {
                        let raw = decode_line(raw);
                        // The marker's offset holds only for the bytes framing saw (not re-decoded).
                        let marker = if matches!(raw, Cow::Borrowed(_)) { frames.marker() } else { None };
                        f(base + offset as u64, &parse_record_at(kind.format, &raw, marker));
                    }
                }
            }
            if complete_only {
                frames.consumed()
            } else {
                bytes.len()
            }
        }
        Encoding::Utf16Le => {
            let t = Transcoded::utf16le(bytes, base, complete_only);
            // The transcoded text already ends at a complete line.
            let mut frames = Frames::new(kind.format, t.text.as_bytes(), complete_only);
            while let Some((offset, raw)) = frames.next() {
                let raw = decode_line(raw);
                let marker = if matches!(raw, Cow::Borrowed(_)) { frames.marker() } else { None };
                f(t.original_offset(offset), &parse_record_at(kind.format, &raw, marker));
            }
            t.consumed
        }
    }
}

#[cfg(test)]
mod tests;
