//! The collector's durable spool: every record read from the logs waits here, on disk, until
//! Kafka acknowledged it, so reading the logs never waits for Kafka.
//!
//! Guarantee: [`Spool::append`] returns only once its entries are written and fsynced, and the
//! caller moves a file's checkpoint past those records only after that. An entry leaves the
//! spool only through [`Spool::acknowledge`], which the drainer calls after Kafka acknowledged
//! every entry before the cursor it passes. So after a kill or a power loss, [`Spool::open`]
//! finds every entry that was appended and not yet acknowledged; an entry torn by the crash was
//! never reported appended, and is cut off. Entries come out in the order they went in (one
//! writer, one reader), so the records of a site reach Kafka in the order they were read.
//!
//! On disk: segment files `<20-digit number>.spool`, each a sequence of frames
//! `[body length u32 LE][CRC-32 of body u32 LE][key length u16 LE][key][payload]`, and the
//! acknowledged cursor in `acknowledged.json`, replaced atomically. A segment is deleted once the
//! cursor passed its end. The spool holds at most `max_bytes` of unacknowledged frames:
//! [`Spool::append`] refuses a batch that does not fit ([`SpoolError::Full`]) and writes nothing.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::durable::{read_at, replace_atomically, sync_dir};

const CURSOR_FILE: &str = "acknowledged.json";
const SEGMENT_SUFFIX: &str = "spool";
/// Length and checksum before every body.
const FRAME_HEADER: usize = 8;
/// A body longer than this is not a frame but damage (records are cut below 1 MB before).
const MAX_BODY: u32 = 64 << 20;
/// Bytes read from a segment at a time, at least.
const READ_WINDOW: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
    #[error("spool {dir} is full ({used} of {max} bytes waiting for Kafka)")]
    Full { dir: PathBuf, used: u64, max: u64 },
    #[error("spool {dir}: acknowledged cursor {path} is corrupt ({source}); move it away to resend the whole spool")]
    Cursor { dir: PathBuf, path: PathBuf, source: serde_json::Error },
}

/// A place in the spool: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    pub segment: u64,
    pub offset: u64,
}

/// One spooled record: its Kafka key and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub payload: Vec<u8>,
}

/// A batch read for sending, and the cursor just past it.
#[derive(Debug, Default)]
pub struct SpoolBatch {
    pub entries: Vec<Entry>,
    pub end: Cursor,
    /// Frames that failed their checksum in a complete segment (disk damage), skipped loudly.
    pub damaged_bytes: u64,
}

/// The spool of one collector. One writer appends, one reader reads and acknowledges; share it
/// behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Segment numbers present, oldest first; the last one is written to.
    segments: Vec<u64>,
    /// Length of every segment in `segments`, in step with it.
    lengths: Vec<u64>,
    writer: Option<File>,
    /// The last segment may hold bytes past its recorded length (a failed write that could not
    /// be cut back): the next append starts a new segment.
    tail_unsure: bool,
    /// A new segment's directory entry is not known to be on disk yet.
    dir_unsynced: bool,
    acknowledged: Cursor,
}

impl Spool {
    /// Opens (creating the directory) and recovers the spool: segments before the acknowledged
    /// cursor are deleted, a frame torn by a crash at the end of the last segment is cut off.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let cursor_path = dir.join(CURSOR_FILE);
        let acknowledged: Cursor = match std::fs::read(&cursor_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| SpoolError::Cursor {
                dir: dir.to_path_buf(),
                path: cursor_path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Cursor::default(),
            Err(e) => return Err(io(e)),
        };
        let mut segments: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .filter_map(|e| segment_number(&e.file_name().to_string_lossy()))
            .collect();
        segments.sort_unstable();
        for old in segments.iter().filter(|s| **s < acknowledged.segment) {
            std::fs::remove_file(segment_path(dir, *old)).map_err(io)?;
        }
        segments.retain(|s| *s >= acknowledged.segment);
        let mut lengths = Vec::with_capacity(segments.len());
        for s in &segments {
            lengths.push(std::fs::metadata(segment_path(dir, *s)).map_err(io)?.len());
        }
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            // Small enough that acknowledged data is freed soon, large enough to be few files.
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 16 << 20),
            segments,
            lengths,
            writer: None,
            tail_unsure: false,
            dir_unsynced: false,
            acknowledged,
        };
        spool.cut_torn_tail()?;
        Ok(spool)
    }

    /// Bytes of frames not yet acknowledged.
    pub fn used_bytes(&self) -> u64 {
        let total: u64 = self.lengths.iter().sum();
        let before_cursor = if self.segments.first() == Some(&self.acknowledged.segment) {
            self.acknowledged.offset
        } else {
            0
        };
        total.saturating_sub(before_cursor)
    }

    /// Whether every appended entry was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.used_bytes() == 0
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where the oldest unacknowledged entry is.
    pub fn acknowledged(&self) -> Cursor {
        self.acknowledged
    }

    /// Just past the last entry appended.
    pub fn end(&self) -> Cursor {
        match (self.segments.last(), self.lengths.last()) {
            (Some(segment), Some(len)) => Cursor { segment: *segment, offset: *len },
            _ => self.acknowledged,
        }
    }

    /// How many entries are not yet acknowledged (reads only the frames' lengths).
    pub fn count_unacknowledged(&self) -> Result<u64, SpoolError> {
        use std::io::BufReader;
        let io = |source| SpoolError::Io { dir: self.dir.clone(), source };
        let mut count = 0;
        for (&segment, &len) in self.segments.iter().zip(&self.lengths) {
            let mut at = if segment == self.acknowledged.segment { self.acknowledged.offset } else { 0 };
            if segment < self.acknowledged.segment || at >= len {
                continue;
            }
            let mut file = BufReader::new(File::open(segment_path(&self.dir, segment)).map_err(io)?);
            file.seek(SeekFrom::Start(at)).map_err(io)?;
            let mut header = [0u8; FRAME_HEADER];
            while at + FRAME_HEADER as u64 <= len {
                file.read_exact(&mut header).map_err(io)?;
                let body = u64::from(u32::from_le_bytes([header[0], header[1], header[2], header[3]]));
                file.seek_relative(body as i64).map_err(io)?;
                at += FRAME_HEADER as u64 + body;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Appends `entries` in order and fsyncs them, all or nothing: [`SpoolError::Full`] when they
    /// do not fit (an empty spool takes any batch, so a batch larger than the spool cannot stall).
    pub fn append(&mut self, entries: &[(String, Vec<u8>)]) -> Result<(), SpoolError> {
        if entries.is_empty() {
            return Ok(());
        }
        let size: u64 = entries.iter().map(|(k, p)| frame_len(k, p)).sum();
        let used = self.used_bytes();
        if used > 0 && used + size > self.max_bytes {
            return Err(SpoolError::Full { dir: self.dir.clone(), used, max: self.max_bytes });
        }
        let mut buf = Vec::with_capacity(size as usize);
        for (key, payload) in entries {
            let key = &key.as_bytes()[..key.len().min(usize::from(u16::MAX))];
            let mut body = Vec::with_capacity(2 + key.len() + payload.len());
            body.extend_from_slice(&(key.len() as u16).to_le_bytes());
            body.extend_from_slice(key);
            body.extend_from_slice(payload);
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            buf.extend_from_slice(&body);
        }
        if self.tail_unsure || self.lengths.last().map_or(true, |len| *len >= self.segment_bytes) {
            self.start_segment()?;
        } else if self.dir_unsynced {
            sync_dir(&self.dir).map_err(|source| SpoolError::Io { dir: self.dir.clone(), source })?;
            self.dir_unsynced = false;
        }
        let writer = match self.writer.as_mut() {
            Some(w) => w,
            None => {
                let last = *self.segments.last().unwrap_or(&0);
                let file = OpenOptions::new()
                    .append(true)
                    .open(segment_path(&self.dir, last))
                    .map_err(|source| SpoolError::Io { dir: self.dir.clone(), source })?;
                self.writer.insert(file)
            }
        };
        if let Err(source) = writer.write_all(&buf).and_then(|()| writer.sync_data()) {
            // A partial frame may be on disk: cut the segment back to its last whole frame, and
            // reopen it for the next append.
            // Part of the batch may be on disk: cut the segment back to its recorded length (the
            // batch was not appended), or, if even that fails, never write to it again.
            self.writer = None;
            let (last, len) = (*self.segments.last().unwrap_or(&0), *self.lengths.last().unwrap_or(&0));
            let cut = OpenOptions::new()
                .write(true)
                .open(segment_path(&self.dir, last))
                .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()));
            self.tail_unsure = cut.is_err();
            return Err(SpoolError::Io { dir: self.dir.clone(), source });
        }
        if let Some(len) = self.lengths.last_mut() {
            *len += buf.len() as u64;
        }
        Ok(())
    }

    /// Reads entries from `from` (the acknowledged cursor, or the end of the last batch read) up
    /// to `max_entries` or about `max_bytes` of frames, whichever comes first.
    pub fn read(&self, from: Cursor, max_entries: usize, max_bytes: u64) -> Result<SpoolBatch, SpoolError> {
        let io = |source| SpoolError::Io { dir: self.dir.clone(), source };
        let mut batch = SpoolBatch { end: from.max(self.acknowledged), ..SpoolBatch::default() };
        let mut taken = 0u64;
        let full = |batch: &SpoolBatch, taken: u64| batch.entries.len() >= max_entries || taken >= max_bytes;
        for (&segment, &len) in self.segments.iter().zip(&self.lengths) {
            if segment < batch.end.segment {
                continue;
            }
            if segment > batch.end.segment {
                batch.end = Cursor { segment, offset: 0 };
            }
            let mut file: Option<File> = None;
            while batch.end.offset < len {
                if full(&batch, taken) {
                    return Ok(batch);
                }
                let file = match &mut file {
                    Some(f) => f,
                    None => file.insert(File::open(segment_path(&self.dir, segment)).map_err(io)?),
                };
                let remaining = len - batch.end.offset;
                let window = remaining.min((max_bytes - taken).max(READ_WINDOW));
                let mut data = read_at(file, batch.end.offset, window).map_err(io)?;
                let mut at = 0usize;
                while !full(&batch, taken) {
                    match decode_frame(&data[at..]) {
                        Frame::Whole { key, payload, len } => {
                            batch.entries.push(Entry { key, payload });
                            at += len;
                            taken += len as u64;
                        }
                        // Appends hold the same lock and `lengths` counts whole frames only, so
                        // an incomplete frame is the end of the window or one larger than it.
                        Frame::Incomplete if at == 0 => match frame_size_hint(&data) {
                            Some(need) if need > data.len() as u64 && need <= remaining => {
                                data = read_at(file, batch.end.offset, need).map_err(io)?;
                            }
                            _ => {
                                batch.damaged_bytes += remaining;
                                at = remaining as usize;
                                break;
                            }
                        },
                        Frame::Incomplete => break,
                        Frame::Damaged => {
                            // Disk damage in the middle of a segment: skip the rest of it; the
                            // caller says so loudly.
                            batch.damaged_bytes += remaining - at as u64;
                            at = remaining as usize;
                            break;
                        }
                    }
                }
                batch.end.offset += at as u64;
            }
        }
        Ok(batch)
    }

    /// Marks everything before `upto` as delivered: saves the cursor durably, then deletes the
    /// segments it passed. Call it only once Kafka acknowledged every entry before `upto`.
    pub fn acknowledge(&mut self, upto: Cursor) -> Result<(), SpoolError> {
        if upto <= self.acknowledged {
            return Ok(());
        }
        let io = |source| SpoolError::Io { dir: self.dir.clone(), source };
        let bytes = serde_json::to_vec(&upto).map_err(|e| io(std::io::Error::other(e)))?;
        replace_atomically(&self.dir.join(CURSOR_FILE), &bytes).map_err(io)?;
        self.acknowledged = upto;
        // Segments wholly before the cursor go; the one being written stays.
        while self.segments.len() > 1 && self.segments[0] < upto.segment {
            std::fs::remove_file(segment_path(&self.dir, self.segments[0])).map_err(io)?;
            self.segments.remove(0);
            self.lengths.remove(0);
        }
        Ok(())
    }

    fn start_segment(&mut self) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io { dir: self.dir.clone(), source };
        // After the last segment, and never at or before the acknowledged one (whose offset
        // would skip the start of a new file of the same number).
        let next = self.segments.last().map_or(self.acknowledged.segment + 1, |s| s + 1);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(&self.dir, next))
            .map_err(io)?;
        // Known before the directory is synced, so that the number is never created twice; a
        // failed sync is retried before anything is written to the new segment.
        self.segments.push(next);
        self.lengths.push(0);
        self.writer = Some(file);
        self.tail_unsure = false;
        self.dir_unsynced = true;
        sync_dir(&self.dir).map_err(io)?;
        self.dir_unsynced = false;
        Ok(())
    }

    /// Cuts the last segment back to its last whole frame (a crash can leave half a frame).
    fn cut_torn_tail(&mut self) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io { dir: self.dir.clone(), source };
        let (Some(last), Some(len)) = (self.segments.last().copied(), self.lengths.last().copied()) else {
            return Ok(());
        };
        let path = segment_path(&self.dir, last);
        let data = std::fs::read(&path).map_err(io)?;
        let mut at = 0usize;
        while let Frame::Whole { len, .. } = decode_frame(&data[at..]) {
            at += len;
        }
        if at as u64 != len {
            tracing::warn!(
                segment = %path.display(),
                bytes = len - at as u64,
                "spool: cutting a frame torn by a crash (it was never reported appended)"
            );
            let file = OpenOptions::new().write(true).open(&path).map_err(io)?;
            file.set_len(at as u64).and_then(|()| file.sync_all()).map_err(io)?;
            if let Some(l) = self.lengths.last_mut() {
                *l = at as u64;
            }
        }
        Ok(())
    }
}

fn frame_len(key: &str, payload: &[u8]) -> u64 {
    (FRAME_HEADER + 2 + key.len().min(usize::from(u16::MAX)) + payload.len()) as u64
}

enum Frame {
    Whole {
        key: String,
        payload: Vec<u8>,
        len: usize,
    },
    /// Fewer bytes than the frame says: the end of what was read, or a torn write.
    Incomplete,
    /// A checksum or length that cannot be right.
    Damaged,
}

fn frame_size_hint(data: &[u8]) -> Option<u64> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
    Some(FRAME_HEADER as u64 + u64::from(len))
}

fn decode_frame(data: &[u8]) -> Frame {
    let Some(header) = data.get(..FRAME_HEADER) else { return Frame::Incomplete };
    let (len_bytes, crc_bytes) = header.split_at(4);
    let body_len = u32::from_le_bytes(len_bytes.try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(crc_bytes.try_into().unwrap_or_default());
    if !(2..=MAX_BODY).contains(&body_len) {
        return Frame::Damaged;
    }
    let Some(body) = data.get(FRAME_HEADER..FRAME_HEADER + body_len as usize) else {
        return Frame::Incomplete;
    };
    if crc32fast::hash(body) != crc {
        return Frame::Damaged;
    }
    let key_len = usize::from(u16::from_le_bytes([body[0], body[1]]));
    let Some(key) = body.get(2..2 + key_len) else { return Frame::Damaged };
    Frame::Whole {
        key: String::from_utf8_lossy(key).into_owned(),
        payload: body[2 + key_len..].to_vec(),
        len: FRAME_HEADER + body_len as usize,
    }
}

fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?.strip_suffix('.')?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.{SEGMENT_SUFFIX}"))
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
