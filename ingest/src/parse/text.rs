//! Bytes to text: byte-order mark, line splitting, encoding fallback, `~` line-break codes.

use std::borrow::Cow;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The bytes after a UTF-8 byte-order mark, if the buffer starts with one.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// Complete lines of a buffer with the offset of their first byte: `\n`-terminated, the `\r` of
/// CRLF removed. A last line without `\n` is yielded too (use [`Lines::complete_only`] when the
/// writer may still be appending to it).
#[derive(Debug)]
pub struct Lines<'a> {
    rest: &'a [u8],
    offset: usize,
    complete_only: bool,
}

impl<'a> Lines<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Lines { rest: bytes, offset: 0, complete_only: false }
    }

    /// Yields only `\n`-terminated lines; [`Lines::consumed`] tells where the unfinished tail
    /// starts.
    pub fn complete_only(bytes: &'a [u8]) -> Self {
        Lines { rest: bytes, offset: 0, complete_only: true }
    }

    /// Bytes consumed so far (the offset just after the last yielded line's terminator).
    pub fn consumed(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for Lines<'a> {
    /// (offset of the line's first byte, the line without terminator)
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let start = self.offset;
        let (line, advance) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&self.rest[..i], i + 1),
            None if self.complete_only => return None,
            None => (self.rest, self.rest.len()),
        };
        self.rest = &self.rest[advance..];
        self.offset += advance;
        Some((start, line.strip_suffix(b"\r").unwrap_or(line)))
    }
}

/// UTF-8 when the line is valid UTF-8 (borrowed), otherwise Windows-1252 (the code page of the
/// servers' logs that are not UTF-8).
pub fn decode_line(line: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(line) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(line.iter().map(|&b| windows_1252(b)).collect()),
    }
}

fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
        '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// The message as people read it: trailing spaces and trailing `~`/`~~` codes removed, inner
/// `~~` (CRLF) and `~` (LF) shown as `\n`. Borrows unless there is an inner code to replace.
pub fn present_message(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim_end_matches([' ', '~']);
    if !trimmed.contains('~') {
        return Cow::Borrowed(trimmed);
    }
    Cow::Owned(trimmed.replace("~~", "\n").replace('~', "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_handle_crlf_lf_and_an_unfinished_tail() {
        let buf = b"one\r\ntwo\nthree";
        let all: Vec<_> = Lines::new(buf).collect();
        assert_eq!(all, vec![(0, &b"one"[..]), (5, &b"two"[..]), (9, &b"three"[..])]);
        let mut complete = Lines::complete_only(buf);
        assert_eq!(complete.by_ref().count(), 2);
        assert_eq!(complete.consumed(), 9);
    }

    #[test]
    fn invalid_utf8_falls_back_to_windows_1252() {
        assert_eq!(decode_line(b"Gr\xfc\xdfe \x80 \x93x\x94"), "Grüße € “x”");
        assert!(matches!(decode_line("Grüße".as_bytes()), Cow::Borrowed("Grüße")));
    }

    #[test]
    fn bom_is_stripped_only_at_the_start() {
        assert_eq!(strip_bom(b"\xEF\xBB\xBFabc"), b"abc");
        assert_eq!(strip_bom(b"abc\xEF\xBB\xBF"), b"abc\xEF\xBB\xBF");
    }

    #[test]
    fn tilde_codes_are_presented_as_line_breaks() {
        assert_eq!(present_message("Sync failed~~  "), "Sync failed");
        assert_eq!(present_message("a~~b~c~~"), "a\nb\nc");
        assert!(matches!(present_message("plain  "), Cow::Borrowed("plain")));
    }
}
