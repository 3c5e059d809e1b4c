//! What a followed file is known by: its OS identity ([`FileId`], which survives renames) and a
//! [`Fingerprint`] of its first bytes (which tells a copy or a new generation). A leaf: it knows
//! nothing of checkpoints or of following; `follow` decides with it, `tail` and `read` take it
//! from open files, and `checkpoint` stores it in a format of its own.

/// Identity of a file that survives renames (device and inode on Unix, volume serial number and
/// NTFS file index on Windows), so that a file replaced under the same name is not read from the
/// old one's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// FNV-1a of the first `len` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
