//! Framing: cutting text into raw records, each with the offset of its first byte.
//!
//! - Server format: one record per line. A line without trailer belongs to the next line that
//!   has one (a message with a raw line break); blank lines and the rollover marker stop the
//!   search; after [`MAX_JOINED_LINES`] such lines, or at the end of the input, they stand
//!   alone.
//! - CMTrace: from `<![LOG[` to the end of the line holding `]LOG]!><`.
//! - WSUS: a dated line and the continuation lines (stack traces) already after it.
//! - Viewer: one record per line.
//!
//! With `complete_only` (a file still being written) a record is yielded only when it is known
//! to be complete; [`Frames::consumed`] tells where the unread rest starts.

use statmsg_schema::Format;

use super::text::Lines;

/// Most lines joined into one server-format record.
pub const MAX_JOINED_LINES: usize = 64;

#[derive(Debug)]
pub struct Frames<'a> {
    format: Format,
    bytes: &'a [u8],
    lines: Lines<'a>,
    complete_only: bool,
    /// Where the `$$<` of the last yielded server record is, from the record's start: framing
    /// has found it already, so parsing need not search again.
    marker: Option<usize>,
}

impl<'a> Frames<'a> {
    pub fn new(format: Format, bytes: &'a [u8], complete_only: bool) -> Self {
        let lines = if complete_only { Lines::complete_only(bytes) } else { Lines::new(bytes) };
        Frames { format, bytes, lines, complete_only, marker: None }
    }

    /// The offset of the trailer marker `$$<` in the last record yielded (server format), if
    /// it has one: what [`super::parse_record_at`] takes.
    pub fn marker(&self) -> Option<usize> {
        self.marker
    }

    /// Bytes consumed by the records yielded so far.
    pub fn consumed(&self) -> usize {
        self.lines.consumed()
    }

    /// The record from `start` through the line that ends at `lines`' current position.
    fn span(&self, start: usize) -> &'a [u8] {
        let end = self.lines.consumed();
        let raw = &self.bytes[start..end];
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        raw.strip_suffix(b"\r").unwrap_or(raw)
    }

    /// The next line that is not blank (blank lines carry nothing).
    fn next_non_blank(&mut self) -> Option<(usize, &'a [u8])> {
        loop {
            let (start, line) = self.lines.next()?;
            if !line.trim_ascii().is_empty() {
                return Some((start, line));
            }
        }
    }

    fn server(&mut self) -> Option<(usize, &'a [u8])> {
        self.marker = None;
        loop {
            let (start, line) = self.lines.next()?;
            // The usual line first: one with a trailer (so not blank).
            if let Some(at) = trailer_marker(line) {
                self.marker = Some(at);
                return Some((start, line));
            }
            if line.trim_ascii().is_empty() {
                continue; // a blank line carries nothing
            }
            if is_marker(line) {
                return Some((start, line));
            }
            // An unframed line: look for the record it belongs to.
            let mut ahead = self.lines.clone();
            for _ in 0..MAX_JOINED_LINES {
                match ahead.next() {
                    Some((next_start, next)) => {
                        if let Some(at) = trailer_marker(next) {
                            self.lines = ahead;
                            self.marker = Some(next_start - start + at);
                            return Some((start, self.span(start)));
                        }
                        if next.trim_ascii().is_empty() || is_marker(next) {
                            break;
                        }
                    }
                    None if self.complete_only => {
                        // The record may still be written: wait for it.
                        self.lines = Lines::complete_only(&self.bytes[..start]);
                        self.lines.by_ref().for_each(drop);
                        return None;
                    }
                    None => break,
                }
            }
            return Some((start, line));
        }
    }

    fn cmtrace(&mut self) -> Option<(usize, &'a [u8])> {
        let (start, line) = self.next_non_blank()?;
        if !line.starts_with(super::cmtrace::START.as_bytes()) {
            return Some((start, line));
        }
        let end_marker = super::cmtrace::END.as_bytes();
        if memchr::memmem::find(line, end_marker).is_some() {
            return Some((start, line));
        }
        let mut ahead = self.lines.clone();
        while let Some((_, next)) = ahead.next() {
            if next.starts_with(super::cmtrace::START.as_bytes()) {
                // The next record begins: this one was cut short and stands alone.
                return Some((start, line));
            }
            if memchr::memmem::find(next, end_marker).is_some() {
                self.lines = ahead;
                return Some((start, self.span(start)));
            }
        }
        if self.complete_only {
            self.lines = Lines::complete_only(&self.bytes[..start]);
            self.lines.by_ref().for_each(drop);
            return None;
        }
        Some((start, line))
    }

    fn wsus(&mut self) -> Option<(usize, &'a [u8])> {
        let (start, line) = self.next_non_blank()?;
        if !super::wsus::looks_like(&String::from_utf8_lossy(&line[..line.len().min(32)])) {
            return Some((start, line));
        }
        while let Some((_, next)) = self.lines.peek() {
            let dated = super::wsus::looks_like(&String::from_utf8_lossy(&next[..next.len().min(32)]));
            if dated || next.trim_ascii().is_empty() {
                break;
            }
            self.lines.next();
        }
        Some((start, self.span(start)))
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self.format {
            Format::Cmtrace => self.cmtrace(),
            Format::Wsus => self.wsus(),
            Format::Server | Format::Unframed | Format::RolloverMarker => self.server(),
            Format::Viewer => self.next_non_blank(),
        }
    }
}

/// The first position at or after `near` where a record starts, so that `bytes` can be parsed
/// in pieces (in parallel, or block by block) exactly as in one; `None` when there is none.
pub fn record_boundary(format: Format, bytes: &[u8], near: usize) -> Option<usize> {
    let mut pos = near.min(bytes.len());
    while let Some(i) = memchr::memchr(b'\n', &bytes[pos..]) {
        let line_start = pos + i + 1;
        if line_start < bytes.len() && starts_record(format, bytes, line_start) {
            return Some(line_start);
        }
        pos = line_start;
    }
    None
}

/// The last position where a record starts (after the last complete line), scanning back line
/// by line; `0` if none.
pub fn last_record_boundary(format: Format, bytes: &[u8]) -> usize {
    let mut end = bytes.len();
    while let Some(nl) = memchr::memrchr(b'\n', &bytes[..end]) {
        if nl + 1 < bytes.len() && starts_record(format, bytes, nl + 1) {
            return nl + 1;
        }
        end = nl;
    }
    0
}

/// Whether a record surely starts at `line_start` (just after a `\n`), whatever came before:
/// the framing rules above never join across it.
fn starts_record(format: Format, bytes: &[u8], line_start: usize) -> bool {
    let next = &bytes[line_start..];
    let next = &next[..memchr::memchr(b'\n', next).unwrap_or(next.len())];
    match format {
        Format::Cmtrace => next.starts_with(super::cmtrace::START.as_bytes()),
        Format::Wsus => super::wsus::looks_like(&String::from_utf8_lossy(&next[..next.len().min(32)])),
        Format::Viewer => true,
        _ => {
            let before = &bytes[..line_start - 1];
            let previous = &before[memchr::memrchr(b'\n', before).map_or(0, |i| i + 1)..];
            let previous = previous.strip_suffix(b"\r").unwrap_or(previous);
            has_trailer_shape(previous) || previous.trim_ascii().is_empty() || is_marker(previous)
        }
    }
}

/// A server record line ends with `>` (of `<thread=...>`), spaces aside.
#[inline]
fn has_trailer_shape(line: &[u8]) -> bool {
    trailer_marker(line).is_some()
}

/// Where the trailer marker `$$<` of a server record line is, if the line has the shape of one.
#[inline]
fn trailer_marker(line: &[u8]) -> Option<usize> {
    let trimmed = line.trim_ascii_end();
    if !trimmed.ends_with(b">") {
        return None;
    }
    super::server::last_marker(trimmed)
}

fn is_marker(line: &[u8]) -> bool {
    line.trim_ascii() == super::ROLLOVER_MARKER.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(format: Format, text: &str, complete_only: bool) -> (Vec<(usize, String)>, usize) {
        let mut f = Frames::new(format, text.as_bytes(), complete_only);
        let out = f.by_ref().map(|(o, r)| (o, String::from_utf8_lossy(r).into_owned())).collect();
        (out, f.consumed())
    }

    const T: &str = "$$<C><01-01-2024 00:00:00.000+0><thread=1 (0x1)>";

    #[test]
    fn an_unframed_line_joins_the_next_record() {
        let text = format!("first part\r\nsecond {T}\r\nalone {T}\r\n");
        let (out, _) = frames(Format::Server, &text, false);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], (0, format!("first part\r\nsecond {T}")));
        assert!(out[1].1.starts_with("alone"));
    }

    #[test]
    fn framing_tells_where_the_trailer_marker_is() {
        let text = format!(
            "first part\r\nsecond {T}\r\nalone {T}\r\n<MAXIMUM LOG FILE SIZE REACHED - FILE RENAMED>\n"
        );
        let mut f = Frames::new(Format::Server, text.as_bytes(), false);
        let mut seen = Vec::new();
        while let Some((_, raw)) = f.next() {
            seen.push(f.marker().map(|at| raw[at..].starts_with(b"$$<C>")));
        }
        assert_eq!(seen, vec![Some(true), Some(true), None]);
    }

    #[test]
    fn the_marker_and_blank_lines_stand_alone() {
        let text = format!("x {T}\r\n<MAXIMUM LOG FILE SIZE REACHED - FILE RENAMED>\r\n\r\ny {T}\r\n");
        let (out, _) = frames(Format::Server, &text, false);
        let texts: Vec<&str> = out.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                format!("x {T}").as_str(),
                "<MAXIMUM LOG FILE SIZE REACHED - FILE RENAMED>",
                &format!("y {T}")
            ]
        );
    }

    #[test]
    fn a_file_being_written_waits_for_the_rest_of_a_record() {
        let text = format!("done {T}\r\nhalf a message\r\n");
        let (out, consumed) = frames(Format::Server, &text, true);
        assert_eq!(out.len(), 1);
        assert_eq!(consumed, format!("done {T}\r\n").len());
        let (out, _) = frames(Format::Server, &text, false);
        assert_eq!(out.len(), 2, "at the end of a finished file it stands alone");
    }

    #[test]
    fn cmtrace_records_span_lines() {
        let rec = "<![LOG[one\r\ntwo]LOG]!><time=\"01:02:03.004+0\" date=\"1-1-2024\" component=\"C\" context=\"\" type=\"1\" thread=\"1\" file=\"\">";
        let text = format!("{rec}\r\n{rec}\r\n<![LOG[unfinished\r\n");
        let (out, consumed) = frames(Format::Cmtrace, &text, true);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].1, rec);
        assert_eq!(consumed, 2 * (rec.len() + 2));
    }

    #[test]
    fn an_unterminated_cmtrace_record_does_not_swallow_the_next() {
        let rec = "<![LOG[ok]LOG]!><time=\"01:02:03.004+0\" date=\"1-1-2024\" component=\"C\" context=\"\" type=\"1\" thread=\"1\" file=\"\">";
        let text = format!("<![LOG[cut short\r\n{rec}\r\n");
        let (out, _) = frames(Format::Cmtrace, &text, false);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].1, rec);
    }

    #[test]
    fn boundaries_are_record_starts_or_none() {
        let text = format!("a {T}\r\npart one\r\npart two {T}\r\nb {T}\r\n");
        let b = text.as_bytes();
        let first = record_boundary(Format::Server, b, 1).unwrap();
        assert_eq!(&text[first..first + 8], "part one");
        let second = record_boundary(Format::Server, b, first + 1).unwrap();
        assert!(text[second..].starts_with("b "), "never between 'part one' and its trailer line");
        assert_eq!(record_boundary(Format::Server, b, second + 1), None);
        assert_eq!(last_record_boundary(Format::Server, b), second);
        assert_eq!(record_boundary(Format::Server, "no trailers\nat all\n".as_bytes(), 0), None);
    }

    #[test]
    fn wsus_continuation_lines() {
        let text = "2014-01-16 18:53:54.231 UTC Error w3wp.58 A.B failed\r\n   at X.Y()\r\n2014-01-16 18:53:55.000 UTC Info w3wp.58 A.B ok\r\n";
        let (out, _) = frames(Format::Wsus, text, false);
        assert_eq!(out.len(), 2);
        assert!(out[0].1.ends_with("at X.Y()"));
    }
}
