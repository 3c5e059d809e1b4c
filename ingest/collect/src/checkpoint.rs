//! Durable read positions, one per followed file ([`Followed`]: identity, offset, format): a small
//! JSON file replaced atomically (write a temporary file, fsync, rename, fsync the directory), so
//! a crash leaves either the old or the new state. A file's offset is saved only after every
//! record before it is safely in the spool (written and fsynced), which holds it until Kafka
//! acknowledged it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use statmsg_parse::FileKind;
use thiserror::Error;

use super::follow::Followed;

const FILE_NAME: &str = "checkpoints.json";
/// 2: files by identity (a list of [`Followed`]); 1: positions by path (still read).
const VERSION: u32 = 2;

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

/// Identity of a file that survives renames (device and inode on Unix, volume serial number and
/// NTFS file index on Windows), so that a file replaced under the same name is not read from the
/// old one's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub device: u64,
    pub index: u64,
}

impl FileId {
    /// The identity of an open file (`meta` is its metadata, already read by the caller).
    pub fn of(file: &std::fs::File, meta: &std::fs::Metadata) -> std::io::Result<FileId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let _ = file;
            Ok(FileId { device: meta.dev(), index: meta.ino() })
        }
        #[cfg(windows)]
        {
            // std's own file index is unstable; winapi-util asks GetFileInformationByHandle.
            let _ = meta;
            let info = winapi_util::file::information(winapi_util::HandleRef::from_file(file))?;
            Ok(FileId { device: info.volume_serial_number(), index: info.file_index() })
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = (file, meta);
            Ok(FileId { device: 0, index: 0 })
        }
    }
}

/// Where reading of one file resumed in version 1 (keyed by path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PositionV1 {
    id: FileId,
    offset: u64,
    #[serde(default)]
    kind: Option<FileKind>,
    #[serde(default)]
    fingerprint: Option<Fingerprint>,
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
    #[serde(default)]
    followed: Vec<Followed>,
    /// Version 1 only.
    #[serde(default, skip_serializing)]
    files: BTreeMap<String, PositionV1>,
}

/// The checkpoint store of one collector.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    saved: Vec<Followed>,
}

impl Checkpoints {
    /// Opens (creating the directory) and loads the followed files.
    pub fn open(dir: &Path) -> Result<Checkpoints, CheckpointError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| CheckpointError::Dir { dir: dir.to_path_buf(), source })?;
        let path = dir.join(FILE_NAME);
        let saved = match std::fs::read(&path) {
            Ok(bytes) => {
                let disk: OnDisk = serde_json::from_slice(&bytes)
                    .map_err(|source| CheckpointError::Corrupt { path: path.clone(), source })?;
                let mut followed = disk.followed;
                // Version 1 kept positions by path: each becomes a followed file.
                followed.extend(disk.files.into_iter().map(|(path, p)| Followed {
                    path,
                    id: p.id,
                    offset: p.offset,
                    kind: p.kind,
                    fingerprint: p.fingerprint.unwrap_or(Fingerprint::of(&[])),
                    len_seen: p.offset,
                    missing: 0,
                }));
                followed
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        Ok(Checkpoints { path, saved })
    }

    /// The followed files as last saved.
    pub fn followed(&self) -> &[Followed] {
        &self.saved
    }

    /// Saves the followed files durably (nothing to do when they did not change).
    pub fn save(&mut self, followed: &[Followed]) -> Result<(), CheckpointError> {
        if self.saved == followed {
            return Ok(());
        }
        let write_error = |source| CheckpointError::Write { path: self.path.clone(), source };
        let disk = OnDisk { version: VERSION, followed: followed.to_vec(), files: BTreeMap::new() };
        let bytes = serde_json::to_vec_pretty(&disk).map_err(|e| write_error(std::io::Error::other(e)))?;
        super::durable::replace_atomically(&self.path, &bytes).map_err(write_error)?;
        self.saved = followed.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn followed(path: &str, offset: u64) -> Followed {
        Followed {
            path: path.into(),
            id: FileId { device: 1, index: 2 },
            offset,
            kind: None,
            fingerprint: Fingerprint::of(b"first line"),
            len_seen: offset,
            missing: 0,
        }
    }

    #[test]
    fn positions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::open(dir.path()).unwrap();
        assert!(cp.followed().is_empty());
        let files = vec![followed("a.log", 1234), followed("a.lo_", 99)];
        cp.save(&files).unwrap();
        let reopened = Checkpoints::open(dir.path()).unwrap();
        assert_eq!(reopened.followed(), files);
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn version_1_positions_by_path_are_read_as_followed_files() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = r#"{"version":1,"files":{"/logs/WsyncMgr.log":{"id":{"device":1,"index":2},"offset":1234,
            "fingerprint":{"len":10,"hash":1}}}}"#;
        std::fs::write(dir.path().join(FILE_NAME), v1).unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let f = &cp.followed()[0];
        assert_eq!(
            (f.path.as_str(), f.id, f.offset),
            ("/logs/WsyncMgr.log", FileId { device: 1, index: 2 }, 1234)
        );
        assert_eq!(f.fingerprint, Fingerprint { len: 10, hash: 1 });
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_silent_restart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let err = Checkpoints::open(dir.path()).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    }
}
