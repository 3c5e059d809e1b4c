//! `statmsg analyze`: the tracker over log folders and files, offline, no servers.
//!
//! Layout: every folder holding logs is one site server; its name is the site code unless the
//! logs say otherwise (status messages' `SITE`, `... on site CS1`), and the folder above it
//! names the hierarchy (`--hierarchy` overrides). All `*.log` and `*.lo_` files count (rolled
//! and history files too, any encoding); a site's records are merged in time order across its
//! files. Sites are analysed in parallel, then the hierarchy is put together.
//!
//! The clock (`now`) is the newest record read, or `--now`; records after `now` are ignored,
//! so `--now` shows the hierarchy as it was at that moment.

mod print;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use statmsg_schema::{Event, Record};

use crate::offline;
use statmsg_track::{Alert, Position, SiteView, SyncRun, Tracker, TrackerConfig};

pub use print::{write_json, write_table};

/// What to analyse.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Vec<PathBuf>,
    pub now: Option<DateTime<Utc>>,
    /// Hierarchy name for every input (else the folder above each site folder).
    pub hierarchy: Option<String>,
    pub tracker: TrackerConfig,
    pub threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("no log files (*.log, *.lo_) under {0}")]
    NoLogs(String),
}

/// The result: runs, site health and alerts at `now`.
#[derive(Debug)]
pub struct Report {
    pub now: DateTime<Utc>,
    /// `now` came from `--now` (else it is the newest record).
    pub now_given: bool,
    pub runs: Vec<SyncRun>,
    pub sites: Vec<SiteView>,
    pub alerts: Vec<Alert>,
    /// Per child site: how it followed its parent's content versions.
    pub propagation: std::collections::BTreeMap<statmsg_track::SiteKey, statmsg_track::PropagationSummary>,
    pub files: usize,
    pub bytes: u64,
    pub records: u64,
    pub tracker: Tracker,
}

/// One site server's folder and its log files.
#[derive(Debug)]
struct SiteFiles {
    hierarchy: String,
    /// The site code the logs state, else the folder's name.
    site: String,
    files: Vec<PathBuf>,
    /// Each file's size when it was found (same order as `files`).
    sizes: Vec<u64>,
    /// What each file's first records tell (same order as `files`).
    heads: Vec<Head>,
}

/// Progress, for a progress bar: bytes read so far out of the total.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

pub fn run(config: &Config, progress: &Progress) -> Result<Report, AnalyzeError> {
    let groups = discover(config)?;
    let files: usize = groups.iter().map(|g| g.files.len()).sum();
    let bytes: u64 = groups.iter().flat_map(|g| &g.sizes).sum();
    progress.total.store(bytes, Ordering::Relaxed);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Partial>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<AnalyzeError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..config.threads.clamp(1, groups.len().max(1)) {
            scope.spawn(|| {
                let mut tracker = Tracker::new(config.tracker.clone());
                let (mut records, mut newest) = (0, None);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(group) = groups.get(i) else { break };
                    match analyze_site(group, config, &mut tracker, progress) {
                        Ok((n, last)) => {
                            records += n;
                            newest = newest.max(last);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                }
                if let Ok(mut r) = results.lock() {
                    r.push((tracker, records, newest));
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut tracker = Tracker::new(config.tracker.clone());
    let (mut records, mut newest) = (0, None);
    for (part, n, last) in results.into_inner().unwrap_or_default() {
        tracker.absorb(part);
        records += n;
        newest = newest.max(last);
    }
    let now = config.now.or(newest).unwrap_or_else(Utc::now);
    let mut runs = tracker.take_runs();
    runs.sort_by(|a, b| (&a.hierarchy, &a.site, a.start).cmp(&(&b.hierarchy, &b.site, b.start)));
    let sites = tracker.views(now);
    let alerts = tracker.alerts(now);
    let propagation = tracker
        .sites()
        .filter_map(|s| Some(((s.hierarchy.clone(), s.site.clone()), tracker.propagation_summary(s)?)))
        .collect();
    Ok(Report {
        now,
        now_given: config.now.is_some(),
        runs,
        sites,
        alerts,
        propagation,
        files,
        bytes,
        records,
        tracker,
    })
}

/// What one worker thread produced: its tracker, records read and newest record time.
type Partial = (Tracker, u64, Option<DateTime<Utc>>);

/// A record kept for the merge: owned, with where it came from.
struct Kept {
    time: DateTime<Utc>,
    file: usize,
    offset: u64,
    record: Record<'static>,
}

/// What the first records of a file tell: their first time and the site code.
#[derive(Debug, Default)]
struct Head {
    first: Option<DateTime<Utc>>,
    site: Option<String>,
}

/// Bytes of a file's start read to learn its first time and site.
const HEAD_BYTES: usize = 16 << 10;

fn head_of(path: &Path) -> std::io::Result<Head> {
    use std::io::Read as _;
    let mut bytes = Vec::with_capacity(HEAD_BYTES);
    std::fs::File::open(path)?.take(HEAD_BYTES as u64).read_to_end(&mut bytes)?;
    let (kind, bom) = statmsg_parse::FileKind::detect(&bytes);
    let mut head = Head::default();
    statmsg_parse::for_each_complete_record(kind, &bytes[bom..], 0, |_, record| {
        if head.first.is_none() {
            head.first = record.time;
        }
        if head.site.is_none() {
            head.site = site_of(record);
        }
    });
    Ok(head)
}

/// Reads one site's files and feeds their records, in time order, to the tracker.
///
/// The site's main log (the family of its largest file: `WsyncMgr.log`, `.lo_`, history files)
/// is streamed file after file in the order of their first records, records borrowed from the
/// read buffer. The other, small logs (SMSProv.log, smsdbmon.log) are read first, kept, and
/// slipped into the stream at their times. When the main log's own files interleave in time,
/// everything is merged record by record instead. Returns the records read and the newest time.
fn analyze_site(
    group: &SiteFiles,
    config: &Config,
    tracker: &mut Tracker,
    progress: &Progress,
) -> Result<(u64, Option<DateTime<Utc>>), AnalyzeError> {
    let (heads, site) = (&group.heads, group.site.as_str());
    let main_family = (0..group.files.len()).max_by_key(|&i| group.sizes[i]).map(|i| family(&group.files[i]));
    let (mut main, side): (Vec<usize>, Vec<usize>) =
        (0..group.files.len()).partition(|&i| Some(family(&group.files[i])) == main_family);
    main.sort_by_key(|&i| (heads[i].first.is_none(), heads[i].first, i));
    let (kept, side_records) = read_kept(group, &side, progress)?;
    if let Some(streamed) = stream_site(group, &main, heads, site, config, kept, progress)? {
        tracker.absorb(streamed.0);
        return Ok((streamed.1 + side_records, streamed.2));
    }
    merge_site(group, site, config, tracker, progress)
}

/// A log's family: its file name up to the first `-` or `.` (`WsyncMgr` for `WsyncMgr.lo_` and
/// `WsyncMgr-20240301-063000.log`), lower-cased.
fn family(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.split(['-', '.']).next().unwrap_or_default().to_owned()
}

/// Streams the files in `order`, slipping the `side` records (sorted) in at their times;
/// `None` when a file holds a record later than the next file's first one (their times
/// interleave), so that the caller merges instead.
fn stream_site(
    group: &SiteFiles,
    order: &[usize],
    heads: &[Head],
    site: &str,
    config: &Config,
    side: Vec<Kept>,
    progress: &Progress,
) -> Result<Option<Partial>, AnalyzeError> {
    let mut local = Tracker::new(config.tracker.clone());
    let (mut records, mut newest) = (0u64, None);
    let mut side = side.into_iter().filter(|k| config.now.map_or(true, |now| k.time <= now)).peekable();
    let hierarchy = group.hierarchy.as_str();
    for (k, &i) in order.iter().enumerate() {
        let path = &group.files[i];
        let next_first = order.get(k + 1).and_then(|&j| heads[j].first);
        let mut interleaved = false;
        let mut last = None;
        offline::read_file(path, |offset, record| {
            records += 1;
            let Some(time) = record.time else { return };
            if next_first.is_some_and(|next| time > next) {
                interleaved = true;
            }
            if interleaved || config.now.is_some_and(|now| time > now) {
                return;
            }
            while let Some(k) = side.next_if(|k| (k.time, k.file, k.offset) < (time, i, offset)) {
                local.observe(
                    hierarchy,
                    site,
                    &k.record,
                    Some(Position { source: k.file as u64, offset: k.offset }),
                );
                last = last.max(Some(k.time));
            }
            last = last.max(Some(time));
            local.observe(hierarchy, site, record, Some(Position { source: i as u64, offset }));
        })
        .map_err(|e| AnalyzeError::Io(path.clone(), e))?;
        if interleaved {
            return Ok(None);
        }
        newest = newest.max(last);
        progress.done.fetch_add(group.sizes[i], Ordering::Relaxed);
    }
    for k in side {
        local.observe(hierarchy, site, &k.record, Some(Position { source: k.file as u64, offset: k.offset }));
        newest = newest.max(Some(k.time));
    }
    Ok(Some((local, records, newest)))
}

/// The records of `files` the tracker reads (owned), sorted by time, then file and offset; and
/// how many records the files hold.
fn read_kept(
    group: &SiteFiles,
    files: &[usize],
    progress: &Progress,
) -> Result<(Vec<Kept>, u64), AnalyzeError> {
    let mut kept: Vec<Kept> = Vec::new();
    let mut records = 0u64;
    for &file in files {
        let path = &group.files[file];
        offline::read_file(path, |offset, record| {
            records += 1;
            if let Some(record) = keep(record) {
                kept.push(Kept { time: record.time.unwrap_or_default(), file, offset, record });
            }
        })
        .map_err(|e| AnalyzeError::Io(path.clone(), e))?;
        progress.done.fetch_add(group.sizes[file], Ordering::Relaxed);
    }
    kept.sort_by_key(|k| (k.time, k.file, k.offset));
    Ok((kept, records))
}

/// Reads every file of the site, keeps the records the tracker reads (owned) and feeds them in
/// time order.
fn merge_site(
    group: &SiteFiles,
    site: &str,
    config: &Config,
    tracker: &mut Tracker,
    progress: &Progress,
) -> Result<(u64, Option<DateTime<Utc>>), AnalyzeError> {
    let all: Vec<usize> = (0..group.files.len()).collect();
    let (kept, records) = read_kept(group, &all, progress)?;
    let mut newest = None;
    for k in kept.iter().filter(|k| config.now.map_or(true, |now| k.time <= now)) {
        newest = Some(k.time);
        tracker.observe(
            &group.hierarchy,
            site,
            &k.record,
            Some(Position { source: k.file as u64, offset: k.offset }),
        );
    }
    Ok((records, newest))
}

/// The records the tracker reads, owned, without their text (the tracker reads the event);
/// `Synchronizing update` lines without their title; other timed lines reduced to their time
/// (they still tell when the site's records begin and end).
fn keep(record: &Record<'_>) -> Option<Record<'static>> {
    record.time?;
    let sync_status = record.statmsg.as_ref().is_some_and(|m| m.comp == "SMS_WSUS_SYNC_MANAGER");
    if record.event.is_none() && !sync_status {
        let time_only =
            Record { text: "".into(), component: None, statmsg: None, statmsg_error: None, ..record.clone() };
        return Some(time_only.into_owned());
    }
    let mut kept = Record { text: "".into(), ..record.clone() };
    if let Some(Event::UpdateSynchronized { .. }) = kept.event {
        kept.event = Some(Event::UpdateSynchronized { update_id: "".into(), title: "".into(), kb: None });
    }
    Some(kept.into_owned())
}

/// The site code a record states.
fn site_of(record: &Record<'_>) -> Option<String> {
    if let Some(m) =
        record.statmsg.as_ref().filter(|m| m.comp == "SMS_WSUS_SYNC_MANAGER" && !m.site.is_empty())
    {
        return Some(m.site.to_string());
    }
    match &record.event {
        Some(Event::SyncSucceeded { site }) if !site.is_empty() => Some(site.to_string()),
        _ => None,
    }
}

fn is_log(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.ends_with(".log") || name.ends_with(".lo_")
}

/// Finds the log files under the inputs, grouped by folder.
fn discover(config: &Config) -> Result<Vec<SiteFiles>, AnalyzeError> {
    let mut files = Vec::new();
    for path in &config.paths {
        walk(path, &mut files, true)?;
    }
    if files.is_empty() {
        let inputs: Vec<String> = config.paths.iter().map(|p| p.display().to_string()).collect();
        return Err(AnalyzeError::NoLogs(inputs.join(", ")));
    }
    let mut folders: BTreeMap<PathBuf, Vec<(PathBuf, u64)>> = BTreeMap::new();
    for file in files {
        let folder = file.0.parent().map(Path::to_path_buf).unwrap_or_default();
        let absolute = std::fs::canonicalize(&folder).unwrap_or(folder);
        folders.entry(absolute).or_default().push(file);
    }
    // One group per (hierarchy, site): folders whose logs name the same site are one site.
    let mut groups: BTreeMap<(String, String), SiteFiles> = BTreeMap::new();
    for (folder, mut files) in folders {
        files.sort();
        files.dedup();
        let mut heads = Vec::with_capacity(files.len());
        for (path, _) in &files {
            heads.push(head_of(path).map_err(|e| AnalyzeError::Io(path.clone(), e))?);
        }
        let name = |p: Option<&Path>| p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
        let folder_site = name(Some(&folder)).unwrap_or_else(|| "site".into());
        let site = heads.iter().find_map(|h| h.site.clone()).unwrap_or_else(|| folder_site.clone());
        let hierarchy =
            config.hierarchy.clone().or_else(|| name(folder.parent())).unwrap_or_else(|| "default".into());
        let group = groups.entry((hierarchy.clone(), site.clone())).or_insert_with(|| SiteFiles {
            hierarchy,
            site,
            files: Vec::new(),
            sizes: Vec::new(),
            heads: Vec::new(),
        });
        for (path, size) in files {
            group.files.push(path);
            group.sizes.push(size);
        }
        group.heads.extend(heads);
    }
    Ok(groups.into_values().collect())
}

/// Collects the log files under `path` with their sizes.
fn walk(path: &Path, out: &mut Vec<(PathBuf, u64)>, named: bool) -> Result<(), AnalyzeError> {
    let meta = std::fs::metadata(path).map_err(|e| AnalyzeError::Io(path.to_owned(), e))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| AnalyzeError::Io(path.to_owned(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| AnalyzeError::Io(path.to_owned(), e))?;
            walk(&entry.path(), out, false)?;
        }
    } else if named || is_log(path) {
        // A file named on the command line counts whatever its name.
        out.push((path.to_owned(), meta.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
