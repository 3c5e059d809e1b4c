//! The reading half of the collector: scans the configured files, follows them by identity
//! ([`super::follow`]), parses what they gained into records, bundles them into messages
//! ([`super::bundle`]) and appends those to the spool.
//! Synchronous (it runs on a blocking thread) and never waits for Kafka.
//!
//! Guarantee: a file's checkpoint moves past a record only after the record is in the spool,
//! written and fsynced. A kill between the two re-reads, on restart, at most the one chunk per
//! file that was spooled but not yet checkpointed.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use super::checkpoint::Checkpoints;
use super::follow::{Follower, Plan, Seen, Why};
use super::identity::{FileId, Fingerprint};
use super::metrics::CollectMetrics;
use super::spool::SpoolError;
use super::tail::{read_chunk, Want};
use super::{CollectError, SharedSpool};
use statmsg_plumbing::config::StartAt;
use statmsg_schema::bundle::{Bundler, FileOrigin};

/// What the reader needs, validated.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    pub hierarchy: String,
    /// The site code of every record; empty: the `SITE=` of its status message.
    pub site: String,
    pub host: String,
    pub paths: Vec<glob::Pattern>,
    pub start_at: StartAt,
    pub max_read_bytes: usize,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Read everything there was.
    Done { records: usize },
    /// The spool is full: reading stops until the drainer frees room.
    SpoolFull { records: usize },
    /// Asked to stop.
    Stopped,
}

/// The reader's state: the followed files and where their checkpoints are kept.
#[derive(Debug)]
pub struct Reader {
    config: ReaderConfig,
    follower: Follower,
    checkpoints: Checkpoints,
    spool: std::sync::Arc<SharedSpool>,
    metrics: std::sync::Arc<CollectMetrics>,
    first_scan: bool,
    /// Test hook: fail right after this many more spool appends, before the checkpoint moves
    /// (what a kill at the worst moment leaves behind).
    #[cfg(test)]
    pub crash_after_appends: Option<usize>,
}

impl Reader {
    pub fn open(
        config: ReaderConfig,
        state_dir: &Path,
        spool: std::sync::Arc<SharedSpool>,
        metrics: std::sync::Arc<CollectMetrics>,
    ) -> Result<Reader, CollectError> {
        let checkpoints = Checkpoints::open(state_dir)?;
        let follower = Follower::new(checkpoints.followed().to_vec());
        Ok(Reader {
            config,
            follower,
            checkpoints,
            spool,
            metrics,
            first_scan: true,
            #[cfg(test)]
            crash_after_appends: None,
        })
    }

    /// One scan of every file, reading each to its end (a chunk at a time) unless the spool
    /// fills up or `stop()` says so.
    pub fn pass(&mut self, stop: &dyn Fn() -> bool) -> Result<Pass, CollectError> {
        let pass = self.pass_once(stop);
        let unread = self.follower.files().iter().filter(|f| f.missing == 0);
        let unread: u64 = unread.map(|f| f.len_seen.saturating_sub(f.offset)).sum();
        self.metrics.unread_bytes.store(unread, Relaxed);
        pass
    }

    fn pass_once(&mut self, stop: &dyn Fn() -> bool) -> Result<Pass, CollectError> {
        let seen = self.scan();
        self.metrics.files_watched.store(seen.len() as u64, Relaxed);
        self.metrics.scans.fetch_add(1, Relaxed);
        let start_at_end = self.first_scan && self.config.start_at == StartAt::End;
        self.first_scan = false;
        let plan = self.follower.plan(&seen, |s| if start_at_end { s.len } else { 0 });
        if report(&plan) {
            self.metrics.rollover_now();
        }
        tracing::trace!(?plan, "scan");
        self.checkpoints.save(self.follower.files())?;
        let mut records = 0;
        for read in plan.reads {
            let path = PathBuf::from(&read.path);
            let (mut start, mut kind) = (read.start, read.kind);
            loop {
                if stop() {
                    return Ok(Pass::Stopped);
                }
                let Some(fingerprint) = self.follower.get(&read.path, read.id).map(|f| f.fingerprint) else {
                    break;
                };
                let want = Want {
                    path: &path,
                    id: read.id,
                    fingerprint,
                    start,
                    kind,
                    max: self.config.max_read_bytes,
                };
                let chunk = match read_chunk(want) {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!(path = %read.path, "cannot read: {e}");
                        }
                        break;
                    }
                };
                let (messages, read_records, end) = self.messages(&read.path, &chunk);
                if !messages.is_empty() {
                    match self.spool.append(&messages) {
                        Ok(()) => {}
                        Err(SpoolError::Full { used, max, .. }) => {
                            self.spool.report_full(used, max);
                            return Ok(Pass::SpoolFull { records });
                        }
                        Err(e) => return Err(e.into()),
                    }
                    records += read_records;
                    self.metrics.records_read.fetch_add(read_records as u64, Relaxed);
                    self.metrics.bytes_read.fetch_add(end - chunk.start, Relaxed);
                    #[cfg(test)]
                    if let Some(n) = self.crash_after_appends.as_mut() {
                        if *n <= 1 {
                            return Err(CollectError::Checkpoint(
                                super::checkpoint::CheckpointError::Write {
                                    path: "crash injected by a test".into(),
                                    source: std::io::Error::other("killed"),
                                },
                            ));
                        }
                        *n -= 1;
                    }
                }
                self.follower.advance(&read.path, read.id, end, Some(chunk.kind), &chunk.head);
                self.checkpoints.save(self.follower.files())?;
                if end == chunk.start || chunk.at_end {
                    break; // only part of a record is there yet, or nothing more
                }
                (start, kind) = (end, Some(chunk.kind));
            }
        }
        Ok(Pass::Done { records })
    }

    /// What every matching file looks like now: its id, length and first bytes, all from one
    /// open handle (a path looked at twice may be two files in the middle of a roll). The first
    /// bytes are read every time: a copy-then-truncate roll rewrites a file in place with the
    /// same length, so no cheaper sign tells that its content changed.
    fn scan(&mut self) -> Vec<Seen> {
        let mut seen = Vec::new();
        for path in discover(&self.config.paths) {
            match observe(&path) {
                Ok(s) => seen.push(s),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // rolled away meanwhile
                Err(e) => tracing::warn!(path = %path.display(), "cannot read: {e}"),
            }
        }
        seen
    }

    /// The messages of a chunk's complete records ([`Bundler`]), how many records they hold,
    /// and the offset just past them.
    fn messages(&self, path: &str, chunk: &super::tail::Chunk) -> (Vec<(String, Vec<u8>)>, usize, u64) {
        let config = &self.config;
        let file_id = format!("{}:{}", chunk.id.device, chunk.id.index);
        let origin =
            FileOrigin { hierarchy: &config.hierarchy, host: &config.host, path, file: Some(&file_id) };
        let mut bundler = Bundler::new(origin);
        let mut records = 0;
        let end = chunk.for_each_record(config.max_read_bytes, |offset, record| {
            let site = match (&record.statmsg, config.site.as_str()) {
                (Some(m), "") => Cow::Owned(m.site.to_string()),
                (_, site) => Cow::Borrowed(site),
            };
            // Cheap: the record's strings borrow from the chunk.
            bundler.push(&site, offset, record.clone());
            records += 1;
        });
        (bundler.finish(), records, end)
    }
}

/// Logs what a scan found; whether it saw a rollover.
fn report(plan: &Plan) -> bool {
    let mut rolled = false;
    for read in &plan.reads {
        rolled |= matches!(
            read.why,
            Why::Copied { .. } | Why::Rewritten | Why::Continued { renamed_from: Some(_) }
        );
        match &read.why {
            Why::Continued { renamed_from: Some(from) } => {
                tracing::info!(path = %read.path, from = %from, offset = read.start, "rolled over by rename: continuing")
            }
            Why::Copied { from } => tracing::info!(
                path = %read.path, from = %from, offset = read.start,
                "rolled over by copy: continuing in the copy after what was read"
            ),
            Why::Rewritten => {
                tracing::info!(path = %read.path, "truncated or rewritten: reading its new content")
            }
            Why::New => tracing::debug!(path = %read.path, offset = read.start, "new file"),
            Why::Continued { renamed_from: None } => {}
        }
    }
    for gone in &plan.gone {
        if gone.unread > 0 {
            tracing::error!(
                path = %gone.path, unread_bytes = gone.unread,
                "a log file vanished before it was read to its end (rolled over twice while the spool was full, or deleted)"
            );
        }
    }
    for shadow in &plan.shadows {
        tracing::debug!(path = %shadow, "a copy of a file still being read: left alone");
    }
    rolled
}

fn observe(path: &Path) -> std::io::Result<Seen> {
    use std::io::Read as _;
    let mut file = super::durable::open_shared(path)?;
    let meta = file.metadata()?;
    let id = FileId::of(&file, &meta)?;
    let mut head = Vec::with_capacity(Fingerprint::MAX_LEN);
    file.by_ref().take(Fingerprint::MAX_LEN as u64).read_to_end(&mut head)?;
    Ok(Seen {
        path: path.to_string_lossy().into_owned(),
        id,
        len: meta.len(),
        modified: meta.modified().ok(),
        head,
    })
}

/// How paths match the configured globs: Windows file names ignore case, so do its patterns
/// (`wsyncmgr*.log` finds `WsyncMgr.log`).
const MATCH_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: !cfg!(windows),
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

/// Files matching the configured globs, sorted, each once.
fn discover(patterns: &[glob::Pattern]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = patterns
        .iter()
        .filter_map(|p| glob::glob_with(p.as_str(), MATCH_OPTIONS).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.dedup();
    files
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
