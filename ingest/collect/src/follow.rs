//! Following log files by identity, not by path. Pure: it decides from what a scan saw (each
//! file's path, OS file id, length and first bytes) which file continues which, and where to
//! read; the shell does the reading.
//!
//! ConfigMgr rolls `X.log` into `X.lo_` by rename or by copy-then-truncate, and some components
//! keep history files (`X-<date>-<time>.log`). A followed file is known by its OS id and by a
//! fingerprint of its first bytes (log lines carry millisecond times, so two generations of a
//! log never share their first KiB):
//! - **renamed** (same id, same first bytes, any path): reading continues at the same offset;
//! - **copied** (a file with another id starts with the same bytes, and the original was
//!   truncated or is gone): the copy continues at the offset, so only its unread tail is read.
//!   While the original is still intact, a copy of it is left alone: its content is being read
//!   from the original, and reading both would deliver it twice;
//! - **truncated or rewritten** (same id, other first bytes or shorter than the offset): a new
//!   generation, read from its start (after its old content was looked for in a copy);
//! - **new**: read from its start (or from its end when the collector starts at the end).
//!
//! [`Follower::plan`] orders the reads so that a file's old generation is finished before its
//! new one is started: by last modification, oldest first (a rolled file is written no more once
//! its successor starts), then by name (`X.lo_` and `X-<date>.log` sort before `X.log`). The
//! order of the followed files themselves says nothing: a freed inode is reused by a new file.

use std::time::SystemTime;

use statmsg_parse::FileKind;

use crate::identity::{FileId, Fingerprint};

/// What a scan saw of one file.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub id: FileId,
    pub len: u64,
    pub modified: Option<SystemTime>,
    /// Its first bytes, up to [`Fingerprint::MAX_LEN`].
    pub head: Vec<u8>,
}

/// One followed file, as the checkpoints keep it (in a format of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    /// Where it was last seen.
    pub path: String,
    pub id: FileId,
    /// Offset of the first byte not yet safely spooled.
    pub offset: u64,
    /// Format and encoding, detected once from its first bytes.
    pub kind: Option<FileKind>,
    /// Of its first bytes (as many as there were, up to [`Fingerprint::MAX_LEN`]).
    pub fingerprint: Fingerprint,
    /// Its length at the last scan (to say how much was lost if it vanishes unread).
    pub len_seen: u64,
    /// Scans in a row that did not find it (a file can slip between a directory listing and
    /// its `stat` in the middle of a roll; it is given up after [`SCANS_BEFORE_GONE`]).
    pub missing: u32,
}

/// Scans in a row a followed file may be missing before it is given up as gone.
pub const SCANS_BEFORE_GONE: u32 = 3;

/// Why a file is read from where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Same file, same place (renamed or not).
    Continued { renamed_from: Option<String> },
    /// A copy of a followed file whose original was truncated or is gone.
    Copied { from: String },
    /// Never seen before.
    New,
    /// The same file id with other content, or shorter than what was read: a new generation.
    Rewritten,
}

/// One file to read: from `start`, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub path: String,
    pub id: FileId,
    pub start: u64,
    pub kind: Option<FileKind>,
    pub why: Why,
}

/// A followed file no scan found for [`SCANS_BEFORE_GONE`] scans, with at least how many bytes
/// of it were never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub path: String,
    pub unread: u64,
}

/// What one scan decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub reads: Vec<Read>,
    pub gone: Vec<Gone>,
    /// Copies of files still being read from their original, left alone.
    pub shadows: Vec<String>,
}

/// The followed files of one collector.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Follower {
    files: Vec<Followed>,
}

impl Follower {
    pub fn new(files: Vec<Followed>) -> Follower {
        Follower { files }
    }

    pub fn files(&self) -> &[Followed] {
        &self.files
    }

    /// The followed file with this id now at `path`, if any (one the last scan found: a missing
    /// one may have had the same path and id).
    pub fn get(&self, path: &str, id: FileId) -> Option<&Followed> {
        self.files.iter().find(|f| f.id == id && f.path == path && f.missing == 0)
    }

    /// Matches what a scan saw to the followed files and replaces them with the result. Files
    /// never seen start at `new_start(seen)` (0, or the length to start at the end).
    pub fn plan(&mut self, seen: &[Seen], new_start: impl Fn(&Seen) -> u64) -> Plan {
        let mut claimed = vec![false; seen.len()];
        let mut matched: Vec<Option<usize>> = vec![None; self.files.len()];
        let mut shadows = Vec::new();
        // 1. Every (followed, seen) pair that may be the same content: the seen file starts with
        // the fingerprinted bytes. An empty fingerprint proves nothing, so it pairs only by id.
        let mut pairs: Vec<(u32, bool, usize, usize)> = Vec::new();
        for (k, f) in self.files.iter().enumerate() {
            for (i, s) in seen.iter().enumerate() {
                // The same file shorter than what was read is a new generation; a copy may be
                // shorter (caught mid-copy, or missing what was written between copy and
                // truncate): there is nothing unread in it up to the offset either way.
                let same_id = s.id == f.id;
                let possible = if same_id { s.len >= f.offset } else { f.fingerprint.len > 0 };
                if possible && f.fingerprint.matches(&s.head) {
                    pairs.push((f.fingerprint.len, same_id, k, i));
                }
            }
        }
        // Strongest evidence first: the most bytes matched, then the same id. So an intact file
        // keeps its followed state, and a copy of it finds it taken: a shadow.
        pairs.sort_by_key(|p| std::cmp::Reverse((p.0, p.1)));
        for (fingerprinted, _, k, i) in pairs {
            if claimed[i] {
                continue;
            }
            if matched[k].is_none() {
                matched[k] = Some(i);
                claimed[i] = true;
            } else if fingerprinted > 0 {
                claimed[i] = true;
                shadows.push(seen[i].path.clone());
            }
        }
        // 2. Each followed file read on where it was matched, kept while it may just be missing
        // for a scan, or given up as gone.
        let mut plan = Plan { shadows, ..Plan::default() };
        let mut files = Vec::with_capacity(seen.len());
        for (k, f) in self.files.iter().enumerate() {
            match matched[k] {
                Some(i) => {
                    let s = &seen[i];
                    let why = if s.id == f.id {
                        Why::Continued { renamed_from: (s.path != f.path).then(|| f.path.clone()) }
                    } else {
                        Why::Copied { from: f.path.clone() }
                    };
                    plan.reads.push(Read {
                        path: s.path.clone(),
                        id: s.id,
                        start: f.offset,
                        kind: f.kind,
                        why,
                    });
                    files.push(Followed {
                        path: s.path.clone(),
                        id: s.id,
                        offset: f.offset,
                        kind: f.kind,
                        fingerprint: longer_fingerprint(f.fingerprint, &s.head),
                        len_seen: s.len,
                        missing: 0,
                    });
                }
                None if f.missing + 1 < SCANS_BEFORE_GONE => {
                    files.push(Followed { missing: f.missing + 1, ..f.clone() });
                }
                None => {
                    plan.gone.push(Gone { path: f.path.clone(), unread: f.len_seen.saturating_sub(f.offset) })
                }
            }
        }
        // 3. Everything else is new; the old generation of a rewritten file was looked for above.
        for i in (0..seen.len()).filter(|i| !claimed[*i]) {
            let s = &seen[i];
            let rewritten = self.files.iter().any(|f| f.id == s.id);
            let start = if rewritten { 0 } else { new_start(s).min(s.len) };
            let why = if rewritten { Why::Rewritten } else { Why::New };
            plan.reads.push(Read { path: s.path.clone(), id: s.id, start, kind: None, why });
            files.push(Followed {
                path: s.path.clone(),
                id: s.id,
                offset: start,
                kind: None,
                fingerprint: Fingerprint::of(&s.head),
                len_seen: s.len,
                missing: 0,
            });
        }
        // A vanished file's unread bytes were lost before it could be read: it stays gone.
        self.files = files;
        let modified = |path: &str| seen.iter().find(|s| s.path == path).and_then(|s| s.modified);
        plan.reads.sort_by_cached_key(|r| (modified(&r.path), r.path.clone()));
        plan
    }

    /// Records that everything of the file at `path` (with `id`) before `offset` is spooled.
    pub fn advance(&mut self, path: &str, id: FileId, offset: u64, kind: Option<FileKind>, head: &[u8]) {
        if let Some(f) = self.files.iter_mut().find(|f| f.path == path && f.id == id && f.missing == 0) {
            f.offset = offset;
            f.len_seen = f.len_seen.max(offset);
            if kind.is_some() {
                f.kind = kind;
            }
            f.fingerprint = longer_fingerprint(f.fingerprint, head);
        }
    }
}

/// The fingerprint over more of the file's first bytes, once the file has them and they still
/// agree with what was fingerprinted; otherwise the old one.
fn longer_fingerprint(old: Fingerprint, head: &[u8]) -> Fingerprint {
    if head.len() > old.len as usize && old.matches(head) {
        Fingerprint::of(head)
    } else {
        old
    }
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;
