//! Reading what a log file gained since a position: synchronous, small, and testable without
//! Kafka. The async shell ([`super`]) calls it off the runtime's threads.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::checkpoint::{FileId, Position};
use crate::parse::Lines;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// New bytes of one file: complete lines only, starting at `start`.
#[derive(Debug)]
pub struct Chunk {
    pub id: FileId,
    /// File offset of `bytes[0]`.
    pub start: u64,
    pub bytes: Vec<u8>,
    /// Why reading restarted at the beginning, when it did.
    pub restarted: Option<&'static str>,
}

impl Chunk {
    /// The complete lines with their file offsets; a chunk that filled `max_read_bytes` without a
    /// line break is one (split) line.
    pub fn lines(&self, max_read_bytes: usize) -> (Vec<(u64, &[u8])>, u64) {
        let mut lines = Lines::complete_only(&self.bytes);
        let found: Vec<(u64, &[u8])> = lines.by_ref().map(|(off, l)| (self.start + off as u64, l)).collect();
        if found.is_empty() && self.bytes.len() >= max_read_bytes {
            return (vec![(self.start, &self.bytes[..])], self.start + self.bytes.len() as u64);
        }
        let end = self.start + lines.consumed() as u64;
        (found, end)
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
    let (mut offset, restarted) = match position {
        Some(p) if p.id != id => (0, Some("the file was replaced")),
        Some(p) if p.offset > len => (0, Some("the file was truncated")),
        Some(p) => (p.offset, None),
        None => (default_offset(len), None),
    };
    if offset >= len && restarted.is_none() {
        return Ok(position.is_none().then(|| Chunk { id, start: offset, bytes: Vec::new(), restarted }));
    }
    let want = usize::try_from(len - offset).unwrap_or(usize::MAX).min(max);
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(want);
    file.by_ref().take(want as u64).read_to_end(&mut bytes)?;
    if offset == 0 && bytes.starts_with(UTF8_BOM) {
        bytes.drain(..UTF8_BOM.len());
        offset = UTF8_BOM.len() as u64;
    }
    Ok(Some(Chunk { id, start: offset, bytes, restarted }))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn read(path: &Path, position: Option<Position>) -> Chunk {
        read_new(path, position, 1 << 20, |_| 0).unwrap().unwrap()
    }

    #[test]
    fn reads_only_complete_lines_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"\xEF\xBB\xBFone\r\ntwo\r\nthr").unwrap();
        let chunk = read(&path, None);
        let (lines, end) = chunk.lines(1 << 20);
        assert_eq!(lines, vec![(3, &b"one"[..]), (8, &b"two"[..])]);
        assert_eq!(end, 13);
        f.write_all(b"ee\r\n").unwrap();
        let chunk = read(&path, Some(Position { id: chunk.id, offset: end }));
        let (lines, end) = chunk.lines(1 << 20);
        assert_eq!(lines, vec![(13, &b"three"[..])]);
        assert_eq!(end, 20);
        assert!(read_new(&path, Some(Position { id: chunk.id, offset: end }), 1 << 20, |_| 0)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_replaced_or_truncated_file_is_read_from_its_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"one\n").unwrap();
        let id = read(&path, None).id;
        let chunk = read(&path, Some(Position { id, offset: 100 }));
        assert_eq!((chunk.start, chunk.restarted), (0, Some("the file was truncated")));
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("keep-inode-busy"), b"x").unwrap();
        std::fs::write(&path, b"new\n").unwrap();
        let chunk = read(
            &path,
            Some(Position { id: FileId { device: id.device, index: id.index + 999_999 }, offset: 4 }),
        );
        assert_eq!((chunk.start, chunk.restarted), (0, Some("the file was replaced")));
    }

    #[test]
    fn an_endless_line_is_split_rather_than_stalling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, vec![b'x'; 10_000]).unwrap();
        let chunk = read_new(&path, None, 4096, |_| 0).unwrap().unwrap();
        let (lines, end) = chunk.lines(4096);
        assert_eq!((lines.len(), end), (1, 4096));
    }

    #[test]
    fn start_at_end_skips_existing_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"old\n").unwrap();
        let chunk = read_new(&path, None, 1 << 20, |len| len).unwrap().unwrap();
        assert_eq!((chunk.start, chunk.bytes.len()), (4, 0));
    }
}
