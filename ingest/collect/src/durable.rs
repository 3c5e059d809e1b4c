//! The file primitives the collector's durability rests on, in one place: replacing a small file
//! atomically (a crash leaves the old or the new content, never a mix), syncing a directory so a
//! new or renamed entry survives power loss, opening a log without blocking its writer, and
//! reading a range of a file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Writes `bytes` to `path` through a temporary sibling: write, fsync, rename, fsync the folder.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Makes a folder's entries durable (Unix; NTFS journals them with the file).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    let _ = dir;
    Ok(())
}

/// Opens a log for reading without standing in its writer's way: on Windows with read, write and
/// delete sharing (std's default, said here because ConfigMgr's rollover depends on it), so the
/// writer can append to the file and rename it while the collector has it open. Windows still
/// refuses to replace a file that is open: callers hold the handle for one read only.
pub fn open_shared(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt as _;
        const FILE_SHARE_READ: u32 = 0x1;
        const FILE_SHARE_WRITE: u32 = 0x2;
        const FILE_SHARE_DELETE: u32 = 0x4;
        options.share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE);
    }
    options.open(path)
}

/// Up to `len` bytes of `file` from `offset`.
pub fn read_at(file: &mut File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(len.min(64 << 20) as usize);
    Read::by_ref(file).take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}
