//! Change notification for the reader, so that an idle collector does not scan: the folders of
//! the configured paths are watched (inotify on Linux, ReadDirectoryChangesW on Windows) and any
//! change in them wakes the reader. A slow safety scan still runs: a writer that keeps its log
//! open may not have its appends reported at once (NTFS updates a file's size lazily), and a
//! folder that does not exist yet cannot be watched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecursiveMode, Watcher as _};

/// The watch on the configured folders, and the wake-up it gives.
#[derive(Debug)]
pub struct Watch {
    // Kept alive for as long as the watch should last.
    _watcher: Option<notify::RecommendedWatcher>,
    /// Whether every configured folder is watched.
    pub complete: bool,
    /// Signalled on every change in a watched folder.
    pub changed: Arc<tokio::sync::Notify>,
}

impl Watch {
    /// Watches the folder of every pattern (the part before its first wildcard). Folders that
    /// cannot be watched are said once; scanning covers them.
    pub fn start(patterns: &[glob::Pattern]) -> Watch {
        let changed = Arc::new(tokio::sync::Notify::new());
        let wake = changed.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                wake.notify_one();
            }
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("no change notification ({e}): scanning on the poll interval instead");
                return Watch { _watcher: None, complete: false, changed };
            }
        };
        let mut folders: Vec<PathBuf> = patterns.iter().map(|p| base_folder(p.as_str())).collect();
        folders.sort();
        folders.dedup();
        let mut complete = true;
        for folder in &folders {
            if let Err(e) = watcher.watch(folder, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %folder.display(), "cannot watch for changes ({e}): scanning it on the poll interval");
                complete = false;
            }
        }
        Watch { _watcher: Some(watcher), complete, changed }
    }
}

/// The folder a glob pattern's files are in: its path up to the component with the first
/// wildcard (`C:/Logs/*.log` -> `C:/Logs`; `/var/log/**/x.log` -> `/var/log`).
pub fn base_folder(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    let components: Vec<_> = Path::new(pattern).components().collect();
    for (i, c) in components.iter().enumerate() {
        let text = c.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) || i + 1 == components.len() {
            break;
        }
        base.push(c);
    }
    if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_of_a_pattern_is_before_its_first_wildcard() {
        assert_eq!(base_folder("/var/log/sccm/*.log"), PathBuf::from("/var/log/sccm"));
        assert_eq!(base_folder("/var/log/sccm/WsyncMgr.log"), PathBuf::from("/var/log/sccm"));
        assert_eq!(base_folder("/var/log/*/x.log"), PathBuf::from("/var/log"));
        assert_eq!(base_folder("*.log"), PathBuf::from("."));
        assert_eq!(base_folder("logs/WsyncMgr.lo?"), PathBuf::from("logs"));
    }

    #[tokio::test]
    async fn a_change_in_a_watched_folder_wakes_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = glob::Pattern::new(&format!("{}/*.log", dir.path().display())).unwrap();
        let watch = Watch::start(&[pattern]);
        assert!(watch.complete);
        std::fs::write(dir.path().join("WsyncMgr.log"), "line\n").unwrap();
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed.notified()).await;
        assert!(woke.is_ok(), "no notification within 5 s");
    }
}
