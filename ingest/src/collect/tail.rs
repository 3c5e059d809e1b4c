//! Reading what a log file gained since a position: synchronous, small, and testable without
//! Kafka. The async shell ([`super`]) calls it off the runtime's threads.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use statmsg_schema::Record;

use super::checkpoint::{FileId, Fingerprint, Position};
use statmsg_parse::{self as parse, Encoding, FileKind};

/// Bytes read to detect a file's kind.
const DETECT_BYTES: u64 = 8192;

/// New bytes of one file, starting at `start`.
#[derive(Debug)]
pub struct Chunk {
    pub id: FileId,
    pub kind: FileKind,
    /// Whether `kind` was detected from content (an empty file tells nothing yet).
    pub kind_known: bool,
    /// File offset of `bytes[0]`.
    pub start: u64,
    pub bytes: Vec<u8>,
    /// Why reading restarted at the beginning, when it did.
    pub restarted: Option<&'static str>,
    /// The file's first bytes as they are now.
    pub fingerprint: Fingerprint,
}

impl Chunk {
    /// The position to save once everything up to `offset` is acknowledged.
    pub fn position(&self, offset: u64) -> Position {
        Position {
            id: self.id,
            offset,
            kind: self.kind_known.then_some(self.kind),
            fingerprint: Some(self.fingerprint),
        }
    }
}

impl Chunk {
    /// Calls `f` for every complete record with its file offset and returns the offset just past
    /// the last one. A chunk that filled `max_read_bytes` without a complete record is yielded
    /// whole, so an endless line cannot stall the file.
    pub fn for_each_record(&self, max_read_bytes: usize, mut f: impl FnMut(u64, &Record<'_>)) -> u64 {
        let mut any = false;
        let consumed =
            parse::for_each_complete_record(self.kind, &self.bytes, self.start, |offset, record| {
                any = true;
                f(offset, record);
            });
        if any || self.bytes.len() < max_read_bytes {
            return self.start + consumed as u64;
        }
        // A full read without one complete record: yield it whole (whole code units).
        let whole = match self.kind.encoding {
            Encoding::Utf8 => self.bytes.len(),
            Encoding::Utf16Le => self.bytes.len() & !1,
        };
        parse::for_each_record(self.kind, &self.bytes[..whole], self.start, |_, record| {
            f(self.start, record)
        });
        self.start + whole as u64
    }
}

/// Reads up to `max` new bytes of `path` after `position` (`None`: a file never read, whose first
/// position is `default_offset(len)`). Returns `None` when there is nothing new.
pub fn read_new(
    path: &Path,
    position: Option<Position>,
    max: usize,
    default_offset: impl FnOnce(u64) -> u64,
) -> std::io::Result<Option<Chunk>> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let id = FileId::of(&meta);
    let len = meta.len();
    if position.is_some_and(|p| p.id == id && p.offset == len) {
        return Ok(None); // nothing new (the common case: no read at all)
    }
    let mut head = Vec::with_capacity(Fingerprint::MAX_LEN);
    file.by_ref().take(Fingerprint::MAX_LEN as u64).read_to_end(&mut head)?;
    let (offset, restarted) = match position {
        Some(p) if p.id != id => (0, Some("the file was replaced")),
        Some(p) if p.offset > len => (0, Some("the file was truncated")),
        Some(p) if p.fingerprint.is_some_and(|f| !f.matches(&head)) => (0, Some("the file was rewritten")),
        Some(p) => (p.offset, None),
        None => (default_offset(len), None),
    };
    let fingerprint = Fingerprint::of(&head);
    let known_kind = position.filter(|_| restarted.is_none()).and_then(|p| p.kind);
    let (kind, bom, kind_known) = match known_kind {
        Some(kind) => (kind, 0, true),
        None => {
            if head.len() as u64 == Fingerprint::MAX_LEN as u64 {
                file.by_ref().take(DETECT_BYTES - Fingerprint::MAX_LEN as u64).read_to_end(&mut head)?;
            }
            let (kind, bom) = FileKind::detect(&head);
            (kind, bom, !head.is_empty())
        }
    };
    let mut offset = offset.max(if offset == 0 { bom as u64 } else { 0 });
    if kind.encoding == Encoding::Utf16Le && offset % 2 == 1 {
        offset += 1; // never start inside a UTF-16 code unit
    }
    if offset >= len && restarted.is_none() {
        let fresh = position.is_none() || known_kind.is_none() && len > 0;
        return Ok(fresh.then_some(Chunk {
            id,
            kind,
            kind_known,
            start: offset.min(len),
            bytes: Vec::new(),
            restarted,
            fingerprint,
        }));
    }
    let want = usize::try_from(len.saturating_sub(offset)).unwrap_or(usize::MAX).min(max);
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(want);
    file.by_ref().take(want as u64).read_to_end(&mut bytes)?;
    Ok(Some(Chunk { id, kind, kind_known, start: offset, bytes, restarted, fingerprint }))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use statmsg_schema::Format;

    use super::*;

    const T: &str = "$$<C><01-01-2024 00:00:00.000+0><thread=1 (0x1)>";

    fn read(path: &Path, position: Option<Position>) -> Chunk {
        read_new(path, position, 1 << 20, |_| 0).unwrap().unwrap()
    }

    fn texts(chunk: &Chunk, max: usize) -> (Vec<(u64, String)>, u64) {
        let mut out = Vec::new();
        let end = chunk.for_each_record(max, |o, r| out.push((o, r.text.to_string())));
        (out, end)
    }

    fn at(chunk: &Chunk, offset: u64) -> Position {
        chunk.position(offset)
    }

    #[test]
    fn reads_only_complete_records_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "\u{feff}one {T}\r\ntwo {T}\r\nthr").unwrap();
        let chunk = read(&path, None);
        assert_eq!(chunk.kind.format, Format::Server);
        let (records, end) = texts(&chunk, 1 << 20);
        let second = 3 + format!("one {T}\r\n").len() as u64;
        assert_eq!(records, vec![(3, "one".to_owned()), (second, "two".to_owned())]);
        write!(f, "ee {T}\r\n").unwrap();
        let chunk = read(&path, Some(at(&chunk, end)));
        let (records, end) = texts(&chunk, 1 << 20);
        assert_eq!(records, vec![(second + format!("two {T}\r\n").len() as u64, "three".to_owned())]);
        assert_eq!(end, std::fs::metadata(&path).unwrap().len());
        assert!(read_new(&path, Some(at(&chunk, end)), 1 << 20, |_| 0).unwrap().is_none());
    }

    #[test]
    fn utf16_files_keep_byte_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.log");
        let text = format!("Grüße {T}\r\nzwei {T}\r\n");
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        std::fs::write(&path, &bytes).unwrap();
        let chunk = read(&path, None);
        assert_eq!(chunk.kind.encoding, Encoding::Utf16Le);
        let (records, end) = texts(&chunk, 1 << 20);
        assert_eq!(records[0], (2, "Grüße".to_owned()));
        assert_eq!(records[1].0, 2 + 2 * format!("Grüße {T}\r\n").encode_utf16().count() as u64);
        assert_eq!(end, bytes.len() as u64);
    }

    #[test]
    fn a_replaced_or_truncated_file_is_read_from_its_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, format!("one {T}\n")).unwrap();
        let first = read(&path, None);
        let chunk = read(&path, Some(at(&first, 1000)));
        assert_eq!((chunk.start, chunk.restarted), (0, Some("the file was truncated")));
        let other = Position {
            id: FileId { device: first.id.device, index: first.id.index + 999_999 },
            ..first.position(4)
        };
        let chunk = read(&path, Some(other));
        assert_eq!((chunk.start, chunk.restarted), (0, Some("the file was replaced")));
    }

    #[test]
    fn a_file_truncated_and_regrown_past_the_position_is_read_from_its_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, format!("first generation {T}\n")).unwrap();
        let first = read(&path, None);
        let end = texts(&first, 1 << 20).1;
        // Copy-then-truncate roll while the collector was away; the new file is already longer.
        std::fs::write(&path, format!("second generation, longer {T}\nmore {T}\n")).unwrap();
        let chunk = read(&path, Some(at(&first, end)));
        assert_eq!((chunk.start, chunk.restarted), (0, Some("the file was rewritten")));
        assert_eq!(texts(&chunk, 1 << 20).0[0].1, "second generation, longer");
    }

    #[test]
    fn an_endless_line_is_split_rather_than_stalling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, vec![b'x'; 10_000]).unwrap();
        let chunk = read_new(&path, None, 4096, |_| 0).unwrap().unwrap();
        let (records, end) = texts(&chunk, 4096);
        assert_eq!((records.len(), end), (1, 4096));
    }

    #[test]
    fn start_at_end_skips_existing_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, format!("old {T}\n")).unwrap();
        let chunk = read_new(&path, None, 1 << 20, |len| len).unwrap().unwrap();
        assert_eq!((chunk.start, chunk.bytes.len()), (std::fs::metadata(&path).unwrap().len(), 0));
    }
}
