//! Parsing: bytes of a ConfigMgr log into [`Record`]s. Pure: no I/O, no async.
//!
//! Records borrow from the caller's buffer; only a line that is not valid UTF-8 (decoded as
//! Windows-1252) or a message with `~` line-break codes is copied. Parsing never fails and never
//! drops a line: a line it does not understand becomes an [`Format::Unframed`] record.

mod server;
mod statmsg;
mod text;

use std::borrow::Cow;

use statmsg_schema::{Format, Record};

pub use server::{parse_trailer, Trailer};
pub use statmsg::{parse_statmsg, StatmsgError};
pub use text::{decode_line, present_message, strip_bom, Lines};

/// The last line of a rolled-over file; not a record of the next line.
pub const ROLLOVER_MARKER: &str = "<MAXIMUM LOG FILE SIZE REACHED - FILE RENAMED>";

/// Parses one physical line (without its line terminator) into a record.
pub fn parse_line(line: &str) -> Record<'_> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some((message, trailer)) = server::split_record(line) {
        let (statmsg, statmsg_error) = match statmsg::parse_statmsg(message, trailer.time) {
            Ok(Some(m)) => (Some(m), None),
            Ok(None) => (None, None),
            Err(e) => (None, Some(Cow::Owned(e.to_string()))),
        };
        return Record {
            time: Some(trailer.time),
            component: Some(Cow::Borrowed(trailer.component)),
            thread: Some(trailer.thread),
            text: present_message(message),
            format: Format::Server,
            statmsg,
            statmsg_error,
        };
    }
    let format = if line.trim() == ROLLOVER_MARKER { Format::RolloverMarker } else { Format::Unframed };
    Record {
        time: None,
        component: None,
        thread: None,
        text: Cow::Borrowed(line),
        format,
        statmsg: None,
        statmsg_error: None,
    }
}

/// Parses a whole buffer (a file's bytes): BOM, encodings and line endings handled.
pub fn parse_buffer(bytes: &[u8]) -> impl Iterator<Item = Record<'static>> + '_ {
    Lines::new(strip_bom(bytes)).map(|(_, line)| {
        let decoded = decode_line(line);
        parse_line(&decoded).into_owned()
    })
}

#[cfg(test)]
mod tests;
