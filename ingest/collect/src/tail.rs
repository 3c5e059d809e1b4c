//! Reading what a log file gained since an offset: synchronous, small, and testable without
//! Kafka. Which file and from where is decided by [`super::follow`]; this reads it, and makes
//! sure it read the file that was decided on.

use std::path::Path;

use statmsg_schema::Record;

use super::durable::{open_shared, read_at};
use super::identity::{FileId, Fingerprint};
use statmsg_parse::{self as parse, Encoding, FileKind};

/// Bytes read to detect a file's kind.
const DETECT_BYTES: u64 = FileKind::DETECT_BYTES as u64;

/// New bytes of one file, starting at `start`.
#[derive(Debug)]
pub struct Chunk {
    pub id: FileId,
    pub kind: FileKind,
    /// File offset of `bytes[0]`.
    pub start: u64,
    pub bytes: Vec<u8>,
    /// Whether the read reached the file's end.
    pub at_end: bool,
    /// The file's first bytes (up to [`Fingerprint::MAX_LEN`]) as they were read.
    pub head: Vec<u8>,
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

/// What [`read_chunk`] reads: the file at `path`, as long as it is still the one with `id` whose
/// first bytes match `fingerprint`, from `start`.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    pub path: &'a Path,
    pub id: FileId,
    pub fingerprint: Fingerprint,
    pub start: u64,
    /// Known from an earlier read; detected from the file's first bytes otherwise.
    pub kind: Option<FileKind>,
    pub max: usize,
}

/// Reads up to `want.max` bytes. `None` when there is nothing new, or when the file at the path
/// is no longer the one wanted (replaced, truncated or rewritten since the scan that decided:
/// the next scan sorts it out), checked before and after the read so that a rewrite racing the
/// read never mixes two generations.
pub fn read_chunk(want: Want<'_>) -> std::io::Result<Option<Chunk>> {
    let mut file = open_shared(want.path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    if FileId::of(&file, &meta)? != want.id || len <= want.start {
        return Ok(None);
    }
    let head = read_at(&mut file, 0, Fingerprint::MAX_LEN as u64)?;
    if !want.fingerprint.matches(&head) {
        return Ok(None);
    }
    let (kind, bom) = match want.kind {
        Some(kind) => (kind, 0),
        None => FileKind::detect(&read_at(&mut file, 0, DETECT_BYTES)?),
    };
    let mut offset = want.start.max(if want.start == 0 { bom as u64 } else { 0 });
    if kind.encoding == Encoding::Utf16Le && offset % 2 == 1 {
        offset += 1; // never start inside a UTF-16 code unit
    }
    if offset >= len {
        return Ok(None);
    }
    let want_bytes = usize::try_from(len - offset).unwrap_or(usize::MAX).min(want.max);
    let bytes = read_at(&mut file, offset, want_bytes as u64)?;
    if !want.fingerprint.matches(&read_at(&mut file, 0, u64::from(want.fingerprint.len))?) {
        return Ok(None);
    }
    let at_end = offset + bytes.len() as u64 >= len;
    Ok(Some(Chunk { id: want.id, kind, start: offset, bytes, at_end, head }))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use statmsg_schema::Format;

    use super::*;

    const T: &str = "$$<C><01-01-2024 00:00:00.000+0><thread=1 (0x1)>";

    fn want(path: &Path, start: u64, max: usize) -> Want<'_> {
        let file = std::fs::File::open(path).unwrap();
        let id = FileId::of(&file, &file.metadata().unwrap()).unwrap();
        let head = std::fs::read(path).unwrap();
        Want { path, id, fingerprint: Fingerprint::of(&head), start, kind: None, max }
    }

    fn read(path: &Path, start: u64) -> Chunk {
        read_chunk(want(path, start, 1 << 20)).unwrap().unwrap()
    }

    fn texts(chunk: &Chunk, max: usize) -> (Vec<(u64, String)>, u64) {
        let mut out = Vec::new();
        let end = chunk.for_each_record(max, |o, r| out.push((o, r.text.to_string())));
        (out, end)
    }

    #[test]
    fn reads_only_complete_records_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "\u{feff}one {T}\r\ntwo {T}\r\nthr").unwrap();
        let chunk = read(&path, 0);
        assert_eq!(chunk.kind.format, Format::Server);
        let (records, end) = texts(&chunk, 1 << 20);
        let second = 3 + format!("one {T}\r\n").len() as u64;
        assert_eq!(records, vec![(3, "one".to_owned()), (second, "two".to_owned())]);
        let fingerprint = Fingerprint::of(&chunk.head);
        write!(f, "ee {T}\r\n").unwrap();
        let next = Want { kind: Some(chunk.kind), fingerprint, ..want(&path, end, 1 << 20) };
        let chunk = read_chunk(next).unwrap().unwrap();
        let (records, end) = texts(&chunk, 1 << 20);
        assert_eq!(records, vec![(second + format!("two {T}\r\n").len() as u64, "three".to_owned())]);
        assert_eq!(end, std::fs::metadata(&path).unwrap().len());
        assert!(chunk.at_end);
        assert!(read_chunk(Want { start: end, ..next }).unwrap().is_none());
    }

    #[test]
    fn utf16_files_keep_byte_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.log");
        let text = format!("Grüße {T}\r\nzwei {T}\r\n");
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        std::fs::write(&path, &bytes).unwrap();
        let chunk = read(&path, 0);
        assert_eq!(chunk.kind.encoding, Encoding::Utf16Le);
        let (records, end) = texts(&chunk, 1 << 20);
        assert_eq!(records[0], (2, "Grüße".to_owned()));
        assert_eq!(records[1].0, 2 + 2 * format!("Grüße {T}\r\n").encode_utf16().count() as u64);
        assert_eq!(end, bytes.len() as u64);
    }

    #[test]
    fn a_file_that_is_no_longer_the_one_wanted_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, format!("one {T}\n")).unwrap();
        let first = want(&path, 0, 1 << 20);
        // Rewritten in place (copy-then-truncate and new content): other first bytes.
        std::fs::write(&path, format!("two, longer than one {T}\n")).unwrap();
        assert!(read_chunk(first).unwrap().is_none());
        // Replaced by another file with the same content. The old file stays alive under
        // another name so that its inode cannot be handed to the new one (filesystems reuse a
        // freed inode at once, and which one they pick is theirs to decide).
        let second = want(&path, 0, 1 << 20);
        std::fs::rename(&path, dir.path().join("a.lo_")).unwrap();
        std::fs::write(&path, format!("two, longer than one {T}\n")).unwrap();
        assert!(read_chunk(second).unwrap().is_none());
        assert!(read_chunk(want(&path, 0, 1 << 20)).unwrap().is_some());
    }

    #[test]
    fn an_endless_line_is_split_rather_than_stalling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, vec![b'x'; 10_000]).unwrap();
        let chunk = read_chunk(want(&path, 0, 4096)).unwrap().unwrap();
        let (records, end) = texts(&chunk, 4096);
        assert_eq!((records.len(), end, chunk.at_end), (1, 4096, false));
    }
}
