//! Bytes to text: byte-order marks, encodings, line splitting, `~` line-break codes.
//!
//! Encodings (detected per file from its first bytes): UTF-8 with or without BOM, with a
//! per-line fallback to Windows-1252 for bytes that are not UTF-8; UTF-16LE with BOM, transcoded
//! once per chunk.

use std::borrow::Cow;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const UTF16LE_BOM: &[u8] = b"\xFF\xFE";

/// A file's encoding, known from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// UTF-8 (BOM or not), Windows-1252 for lines that are not UTF-8.
    #[default]
    Utf8,
    /// UTF-16 little endian (always with BOM on these servers).
    Utf16Le,
}

impl Encoding {
    /// The encoding and BOM length of a file that starts with `head`.
    pub fn detect(head: &[u8]) -> (Encoding, usize) {
        if head.starts_with(UTF8_BOM) {
            (Encoding::Utf8, UTF8_BOM.len())
        } else if head.starts_with(UTF16LE_BOM) {
            (Encoding::Utf16Le, UTF16LE_BOM.len())
        } else {
            (Encoding::Utf8, 0)
        }
    }
}

/// The bytes after a UTF-8 byte-order mark, if the buffer starts with one.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// Lines of a buffer with the offset of their first byte: `\n`-terminated, the `\r` of CRLF
/// removed. A last line without `\n` is yielded too, unless [`Lines::complete_only`] (the writer
/// may still be appending to it); [`Lines::consumed`] tells where the unread tail starts.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    complete_only: bool,
}

impl<'a> Lines<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Lines { bytes, pos: 0, complete_only: false }
    }

    pub fn complete_only(bytes: &'a [u8]) -> Self {
        Lines { bytes, pos: 0, complete_only: true }
    }

    /// Bytes consumed so far (the offset just after the last yielded line's terminator).
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The next line without consuming it.
    pub fn peek(&self) -> Option<(usize, &'a [u8])> {
        self.clone().next()
    }
}

impl<'a> Iterator for Lines<'a> {
    /// (offset of the line's first byte, the line without terminator)
    type Item = (usize, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.bytes[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let start = self.pos;
        let (line, advance) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], i + 1),
            None if self.complete_only => return None,
            None => (rest, rest.len()),
        };
        self.pos += advance;
        Some((start, line.strip_suffix(b"\r").unwrap_or(line)))
    }
}

/// UTF-8 when the line is valid UTF-8 (borrowed), otherwise Windows-1252 (the code page of the
/// servers' logs that are not UTF-8).
#[inline]
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

/// UTF-16LE bytes transcoded to UTF-8, complete lines only, with the original offset of every
/// line start so that records keep their position in the file.
#[derive(Debug)]
pub struct Transcoded {
    pub text: String,
    /// (offset in `text`, offset in the original bytes) of each line start, ascending.
    line_starts: Vec<(usize, u64)>,
    /// Original bytes consumed (up to the end of the last complete line, or all when final).
    pub consumed: usize,
}

impl Transcoded {
    /// Transcodes `bytes` (which start on a code unit boundary at original offset `base`). With
    /// `complete_only`, stops after the last `\n`.
    pub fn utf16le(bytes: &[u8], base: u64, complete_only: bool) -> Transcoded {
        let units = bytes.len() / 2;
        let mut end_units = units;
        if complete_only {
            end_units = (0..units)
                .rev()
                .find(|&i| bytes[2 * i] == b'\n' && bytes[2 * i + 1] == 0)
                .map_or(0, |i| i + 1);
        }
        let unit = |i: usize| u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]);
        // Logs are mostly ASCII: one byte per unit, decoding only the rest.
        let mut out: Vec<u8> = Vec::with_capacity(end_units + end_units / 8);
        let mut line_starts = vec![(0, base)];
        let mut i = 0;
        while i < end_units {
            let u = unit(i);
            if u < 0x80 {
                out.push(u as u8);
                i += 1;
                if u == u16::from(b'\n') {
                    line_starts.push((out.len(), base + 2 * i as u64));
                }
                continue;
            }
            let next = if i + 1 < end_units { unit(i + 1) } else { 0 };
            let (c, used) = match char::decode_utf16([u, next]).next() {
                Some(Ok(c)) => (c, c.len_utf16()),
                _ => (char::REPLACEMENT_CHARACTER, 1),
            };
            out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
            i += used;
        }
        // Only whole characters were written: this never falls back.
        let text =
            String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Transcoded { text, line_starts, consumed: 2 * end_units }
    }

    /// The original offset of a line starting at `pos` in `text`.
    pub fn original_offset(&self, pos: usize) -> u64 {
        match self.line_starts.binary_search_by_key(&pos, |&(p, _)| p) {
            Ok(i) => self.line_starts[i].1,
            Err(i) => self.line_starts[i.saturating_sub(1)].1,
        }
    }
}

/// Position of the first `byte` in `b`, eight bytes at a time: for the short fields of a record,
/// where a vector search's set-up costs more than the search.
#[inline(always)]
pub(super) fn find_byte(b: &[u8], byte: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let splat = LOW * u64::from(byte);
    let mut chunks = b.chunks_exact(8);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default()) ^ splat;
        // The lowest flagged byte is the first zero byte of `x` (borrows only flag bytes above it).
        let zero = x.wrapping_sub(LOW) & !x & HIGH;
        if zero != 0 {
            return Some(8 * k + (zero.trailing_zeros() / 8) as usize);
        }
    }
    let tail = chunks.remainder();
    tail.iter().position(|&c| c == byte).map(|i| b.len() - tail.len() + i)
}

/// The message as people read it: trailing spaces and trailing `~`/`~~` codes removed, inner
/// `~~` (CRLF) and `~` (LF) shown as `\n`. Borrows unless there is an inner code to replace.
#[inline]
pub fn present_message(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim_end_matches([' ', '~', '\r', '\n']);
    if memchr::memchr(b'~', trimmed.as_bytes()).is_none() {
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
    fn boms_are_detected() {
        assert_eq!(Encoding::detect(b"\xEF\xBB\xBFabc"), (Encoding::Utf8, 3));
        assert_eq!(Encoding::detect(b"\xFF\xFEa\0"), (Encoding::Utf16Le, 2));
        assert_eq!(Encoding::detect(b"abc"), (Encoding::Utf8, 0));
        assert_eq!(strip_bom(b"abc\xEF\xBB\xBF"), b"abc\xEF\xBB\xBF");
    }

    #[test]
    fn utf16_is_transcoded_with_original_offsets() {
        let text = "Grüße 𝄞\r\nzwei\r\ndr";
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let t = Transcoded::utf16le(&bytes, 2, true);
        assert_eq!(t.text, "Grüße 𝄞\r\nzwei\r\n");
        assert_eq!(t.consumed, 2 * "Grüße 𝄞\r\nzwei\r\n".encode_utf16().count());
        let second = t.text.find("zwei").unwrap();
        assert_eq!(t.original_offset(second), 2 + 2 * "Grüße 𝄞\r\n".encode_utf16().count() as u64);
        assert_eq!(Transcoded::utf16le(&bytes, 0, false).text, text);
        // A lone surrogate, at the end or before another unit, is one replacement character.
        let lone: Vec<u8> =
            [0xD800u16, u16::from(b'a'), 0xDC00].iter().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(Transcoded::utf16le(&lone, 0, false).text, "\u{FFFD}a\u{FFFD}");
    }

    #[test]
    fn find_byte_finds_the_first() {
        let hay = b"SMS_WSUS_SYNC_MANAGER><08-01-2024>";
        for len in 0..=hay.len() {
            assert_eq!(find_byte(&hay[..len], b'>'), hay[..len].iter().position(|&c| c == b'>'), "{len}");
        }
        let all: Vec<u8> = (0..=255).collect();
        for byte in 0..=255u8 {
            assert_eq!(find_byte(&all, byte), Some(usize::from(byte)));
            assert_eq!(find_byte(&all[1..], 0), None);
        }
        assert_eq!(find_byte(b"\x80\x00>\x01>", b'>'), Some(2));
    }

    #[test]
    fn tilde_codes_are_presented_as_line_breaks() {
        assert_eq!(present_message("Sync failed~~  "), "Sync failed");
        assert_eq!(present_message("a~~b~c~~"), "a\nb\nc");
        assert!(matches!(present_message("plain  "), Cow::Borrowed("plain")));
    }
}
