//! Durable read positions, one per followed file ([`Followed`]: identity, offset, format): a small
//! JSON file replaced atomically (write a temporary file, fsync, rename, fsync the directory), so
//! a crash leaves either the old or the new state. A file's offset is saved only after every
//! record before it is safely in the spool (written and fsynced), which holds it until Kafka
//! acknowledged it.
//!
//! The file's format is private to this module: its records (`FollowedV2`, `PositionV1`), its
//! `VERSION` and the migration from version 1 live here together, converted to and from
//! the types the collector works with, so a field added to [`Followed`] cannot change the file
//! without this module (and its version) saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use statmsg_parse::FileKind;
use thiserror::Error;

use crate::follow::Followed;
use crate::identity::{FileId, Fingerprint};

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

/// A file's identity on disk (`FileId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct IdOnDisk {
    device: u64,
    index: u64,
}

/// A fingerprint on disk (`Fingerprint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FingerprintOnDisk {
    len: u32,
    hash: u64,
}

/// One followed file in version 2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FollowedV2 {
    path: String,
    id: IdOnDisk,
    offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<FileKind>,
    fingerprint: FingerprintOnDisk,
    #[serde(default)]
    len_seen: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    missing: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where reading of one file resumed in version 1 (keyed by path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PositionV1 {
    id: IdOnDisk,
    offset: u64,
    #[serde(default)]
    kind: Option<FileKind>,
    #[serde(default)]
    fingerprint: Option<FingerprintOnDisk>,
}

impl From<&Followed> for FollowedV2 {
    fn from(f: &Followed) -> FollowedV2 {
        FollowedV2 {
            path: f.path.clone(),
            id: IdOnDisk { device: f.id.device, index: f.id.index },
            offset: f.offset,
            kind: f.kind,
            fingerprint: FingerprintOnDisk { len: f.fingerprint.len, hash: f.fingerprint.hash },
            len_seen: f.len_seen,
            missing: f.missing,
        }
    }
}

impl From<FollowedV2> for Followed {
    fn from(f: FollowedV2) -> Followed {
        Followed {
            path: f.path,
            id: FileId { device: f.id.device, index: f.id.index },
            offset: f.offset,
            kind: f.kind,
            fingerprint: Fingerprint { len: f.fingerprint.len, hash: f.fingerprint.hash },
            len_seen: f.len_seen,
            missing: f.missing,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    #[serde(default)]
    followed: Vec<FollowedV2>,
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
                let mut followed: Vec<Followed> = disk.followed.into_iter().map(Followed::from).collect();
                // Version 1 kept positions by path: each becomes a followed file.
                followed.extend(disk.files.into_iter().map(|(path, p)| {
                    Followed {
                        path,
                        id: FileId { device: p.id.device, index: p.id.index },
                        offset: p.offset,
                        kind: p.kind,
                        fingerprint: p
                            .fingerprint
                            .map_or(Fingerprint::of(&[]), |f| Fingerprint { len: f.len, hash: f.hash }),
                        len_seen: p.offset,
                        missing: 0,
                    }
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
        let disk = OnDisk {
            version: VERSION,
            followed: followed.iter().map(FollowedV2::from).collect(),
            files: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec_pretty(&disk).map_err(|e| write_error(std::io::Error::other(e)))?;
        crate::durable::replace_atomically(&self.path, &bytes).map_err(write_error)?;
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

    /// The version 2 file, byte for byte: a change to it must come with a new [`VERSION`].
    #[test]
    fn the_file_format_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::open(dir.path()).unwrap();
        let mut missing = followed("a.lo_", 99);
        (missing.kind, missing.missing) = (Some(FileKind::detect(b"").0), 2);
        cp.save(&[followed("a.log", 1234), missing]).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let compact: String = text.split_whitespace().collect();
        let hash = Fingerprint::of(b"first line").hash;
        let kind = serde_json::to_string(&FileKind::detect(b"").0).unwrap();
        assert_eq!(
            compact,
            format!(
                "{{\"version\":2,\"followed\":[\
                 {{\"path\":\"a.log\",\"id\":{{\"device\":1,\"index\":2}},\"offset\":1234,\
                 \"fingerprint\":{{\"len\":10,\"hash\":{hash}}},\"len_seen\":1234}},\
                 {{\"path\":\"a.lo_\",\"id\":{{\"device\":1,\"index\":2}},\"offset\":99,\"kind\":{kind},\
                 \"fingerprint\":{{\"len\":10,\"hash\":{hash}}},\"len_seen\":99,\"missing\":2}}]}}"
            )
            .replace(' ', "")
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_silent_restart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let err = Checkpoints::open(dir.path()).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    }
}
