//! Durable read positions, one per file: a small JSON file replaced atomically (write a temporary
//! file, fsync, rename, fsync the directory), so a crash leaves either the old or the new state.
//! A position is saved only after Kafka acknowledged every record before it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use statmsg_parse::FileKind;
use thiserror::Error;

const FILE_NAME: &str = "checkpoints.json";
const VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("cannot use checkpoint directory {dir}: {source}")]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error("cannot read checkpoints {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("checkpoints {path} are corrupt ({source}); move the file away to start over")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("cannot save checkpoints {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Identity of a file that survives renames (device and inode on Unix, creation time on Windows),
/// so that a file replaced under the same name is not read from the old one's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub device: u64,
    pub index: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileId { device: meta.dev(), index: meta.ino() }
        }
        #[cfg(windows)]
        {
            use std::os::windows::fs::MetadataExt;
            FileId { device: 0, index: meta.creation_time() }
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = meta;
            FileId { device: 0, index: 0 }
        }
    }
}

/// Where reading of one file resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub id: FileId,
    /// Offset of the first byte not yet acknowledged by Kafka.
    pub offset: u64,
    /// Format and encoding, detected once from the file's first bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FileKind>,
    /// Hash of the file's first bytes: a file truncated and rewritten, or replaced by one that
    /// got the old identity back (NTFS keeps creation times across a quick rename-and-create),
    /// no longer matches and is read from its beginning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

/// FNV-1a of the first `len` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    /// Bytes hashed at most.
    pub const MAX_LEN: usize = 1024;

    pub fn of(head: &[u8]) -> Fingerprint {
        let head = &head[..head.len().min(Self::MAX_LEN)];
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in head {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Fingerprint { len: head.len() as u32, hash }
    }

    /// Whether a file that now starts with `head` (read up to `MAX_LEN` bytes) is the same file.
    pub fn matches(&self, head: &[u8]) -> bool {
        head.len() >= self.len as usize && Fingerprint::of(&head[..self.len as usize]) == *self
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: BTreeMap<String, Position>,
}

/// The checkpoint store of one collector.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    files: BTreeMap<String, Position>,
}

impl Checkpoints {
    /// Opens (creating the directory) and loads the saved positions.
    pub fn open(dir: &Path) -> Result<Checkpoints, CheckpointError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| CheckpointError::Dir { dir: dir.to_path_buf(), source })?;
        let path = dir.join(FILE_NAME);
        let files = match std::fs::read(&path) {
            Ok(bytes) => {
                let disk: OnDisk = serde_json::from_slice(&bytes)
                    .map_err(|source| CheckpointError::Corrupt { path: path.clone(), source })?;
                disk.files
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        Ok(Checkpoints { path, files })
    }

    pub fn get(&self, file: &str) -> Option<Position> {
        self.files.get(file).copied()
    }

    /// Records a position and saves all positions durably.
    pub fn save(&mut self, file: &str, position: Position) -> Result<(), CheckpointError> {
        if self.files.get(file) == Some(&position) {
            return Ok(());
        }
        self.files.insert(file.to_owned(), position);
        self.persist()
    }

    fn persist(&self) -> Result<(), CheckpointError> {
        let write_error = |source| CheckpointError::Write { path: self.path.clone(), source };
        let disk = OnDisk { version: VERSION, files: self.files.clone() };
        let bytes = serde_json::to_vec_pretty(&disk).map_err(|e| write_error(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(write_error)?;
        f.write_all(&bytes).map_err(write_error)?;
        f.sync_all().map_err(write_error)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(write_error)?;
        #[cfg(unix)]
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(write_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let pos =
            Position { id: FileId { device: 1, index: 2 }, offset: 1234, kind: None, fingerprint: None };
        let mut cp = Checkpoints::open(dir.path()).unwrap();
        assert_eq!(cp.get("a.log"), None);
        cp.save("a.log", pos).unwrap();
        let reopened = Checkpoints::open(dir.path()).unwrap();
        assert_eq!(reopened.get("a.log"), Some(pos));
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_silent_restart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let err = Checkpoints::open(dir.path()).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    }
}
