//! statmsg-collect, the collector: what runs on every site server and WSUS server. It follows
//! the configured log files across rollovers, parses every new line into a record and publishes
//! the records to Kafka as JSON bundles (`statmsg_schema::bundle`: consecutive records of one
//! file and site in one message), keyed `hierarchy/site`.
//!
//! Two halves joined by a durable spool, so that reading never waits for Kafka:
//! - [`read`] follows files by identity ([`follow`], [`tail`]), appends every record to the
//!   [`spool`] (written and fsynced) and only then moves the file's [`checkpoint`];
//! - `drain` sends the spool to Kafka in order and lets an entry go only after Kafka
//!   acknowledged it.
//!
//! So a crash, a kill, a power loss or a Kafka outage loses nothing that is still in a file or in
//! the spool (at-least-once; the consumer's writes are idempotent), and re-sends at most what was
//! in flight: one chunk per file and one drain batch. A full spool stops reading and says so; the
//! logs keep the data until ConfigMgr rolls them twice.
//!
//! Around them: [`settings`] (the collector's own sections of the configuration, validated),
//! [`discover`] (the ConfigMgr registry keys that fill what it leaves empty), [`heartbeat`] (the
//! collector's liveness message), [`metrics`], [`memory`] (the allocator's free memory given
//! back) and [`service`] (the collector as a Windows service).
//!
//! Invariant (checked by `.ci/run`): this crate never depends on the consumer, the tracker, the
//! report or an HTTP stack (reqwest, hyper, rustls): it is what the site servers run.

pub mod checkpoint;
pub mod discover;
mod drain;
pub mod durable;
pub mod follow;
pub mod heartbeat;
pub mod identity;
pub mod memory;
pub mod metrics;
pub mod read;
pub mod service;
pub mod settings;
pub mod spool;
pub mod tail;
pub mod watch;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;

use self::checkpoint::CheckpointError;
use self::read::{Pass, Reader, ReaderConfig};
pub use self::settings::{CollectSettings, Config};
use self::spool::{Cursor, Spool, SpoolBatch, SpoolError};
use statmsg_plumbing::kafka::publish::Publisher;
use statmsg_plumbing::retry::Backoff;
use statmsg_plumbing::shutdown::Shutdown;

#[derive(Debug, Error)]
pub enum CollectError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("cannot create Kafka producer: {0}")]
    Producer(#[source] rdkafka::error::KafkaError),
    #[error("the reading thread failed: {0}")]
    Reader(String),
}

/// How long a shutdown waits for outstanding acknowledgements before leaving them to the next
/// run (they stay in the spool): short, so that a service stop completes within 2 s.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// With change notification, how often an idle collector still scans (changes the OS does not
/// report at once: NTFS updates the size of a file its writer keeps open lazily).
const SAFETY_SCAN: Duration = Duration::from_secs(2);

/// Runs until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), CollectError> {
    let collect = &config.collect;
    let spool = Arc::new(SharedSpool::open(&collect.spool_dir, collect.spool_max_bytes)?);
    let publisher = Publisher::new(&config.kafka, "producer").map_err(CollectError::Producer)?;
    let reader_config = ReaderConfig {
        hierarchy: config.hierarchy.clone(),
        site: collect.site.clone(),
        host: collect.host.clone(),
        paths: collect.paths.clone(),
        start_at: collect.start_at,
        max_read_bytes: collect.max_read_bytes,
    };
    let metrics = Arc::new(metrics::CollectMetrics::default());
    let reader = Reader::open(reader_config, &collect.state_dir, spool.clone(), metrics.clone())?;
    let serving = collect.metrics_address.map(|address| {
        let (spool, metrics) = (spool.clone(), metrics.clone());
        let render: statmsg_plumbing::prometheus::Render = Arc::new(move || metrics.render(&spool));
        tokio::spawn(statmsg_plumbing::prometheus::serve(address, render, shutdown.clone()))
    });
    tracing::info!(topic = %config.kafka.topic, spool = %collect.spool_dir.display(), "collecting");
    let reading = {
        let (shutdown, poll, spool) = (shutdown.clone(), collect.poll_interval, spool.clone());
        let handle = tokio::runtime::Handle::current();
        let watch = watch::Watch::start(&collect.paths);
        tokio::task::spawn_blocking(move || read_loop(reader, &spool, &watch, poll, &shutdown, &handle))
    };
    // One drain batch is about one read chunk of records (bundled, their JSON is 2 to 3 times
    // the lines): a kill re-sends about one chunk per file.
    let batch_bytes = 3 * collect.max_read_bytes as u64;
    let draining = async {
        let drained = drain::run(&config.kafka, &publisher, &spool, &metrics, batch_bytes, &shutdown).await;
        // The heartbeats stop with the drainer: a collector that cannot send is not alive.
        shutdown.cancel();
        drained
    };
    let beating =
        heartbeat::run(&config.hierarchy, collect, &config.kafka, &publisher, &spool, &metrics, &shutdown);
    let (drained, ()) = tokio::join!(draining, beating);
    let read = reading.await.map_err(|e| CollectError::Reader(e.to_string())).and_then(|r| r);
    if read.is_err() || drained.is_err() {
        shutdown.cancel();
    }
    if let Some(Ok(Err(e))) = match serving {
        Some(task) => Some(task.await),
        None => None,
    } {
        tracing::error!("metrics endpoint: {e}");
    }
    tracing::info!(spooled_bytes = spool.used_bytes(), "collector stopped");
    read.and(drained)
}

/// Passes over the files until shutdown: when a watched folder changed (at most one pass per
/// `poll`), every [`SAFETY_SCAN`] when idle (every `poll` where nothing can be watched), and as
/// soon as the drainer freed room when the spool was full. Local I/O errors are retried
/// (nothing is lost meanwhile: the logs and the spool keep the data).
fn read_loop(
    mut reader: Reader,
    spool: &SharedSpool,
    watch: &watch::Watch,
    poll: Duration,
    shutdown: &Shutdown,
    handle: &tokio::runtime::Handle,
) -> Result<(), CollectError> {
    let stop = || shutdown.is_cancelled();
    let idle_wait = if watch.complete { poll.max(SAFETY_SCAN) } else { poll };
    let mut backoff = Backoff::new(poll);
    // Records read since memory was last handed back: once nothing is new and the spool is
    // drained, the burst is over (see `crate::memory`).
    let mut read_since_release = 0;
    while !stop() {
        let started = tokio::time::Instant::now();
        let full = match reader.pass(&stop) {
            Ok(Pass::Stopped) => break,
            Ok(Pass::Done { records }) => {
                backoff.succeeded();
                read_since_release += records;
                if records == 0 && read_since_release > 0 && spool.backlog().1 == 0 {
                    crate::memory::release_free_memory();
                    read_since_release = 0;
                }
                false
            }
            Ok(Pass::SpoolFull { records }) => {
                read_since_release += records;
                true
            }
            Err(
                e @ (CollectError::Spool(SpoolError::Io { .. })
                | CollectError::Checkpoint(CheckpointError::Write { .. })),
            ) => {
                let retry_wait = backoff.failed();
                tracing::error!("{e}; retrying in {retry_wait:?}");
                handle.block_on(async {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(retry_wait) => {}
                    }
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        handle.block_on(async {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(idle_wait) => {}
                _ = spool.freed.notified(), if full => {}
                _ = watch.changed.notified(), if !full => {
                    // A burst of writes is read in one pass, not one pass per write.
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep_until(started + poll) => {}
                    }
                }
            }
        });
    }
    Ok(())
}

/// The spool shared by the reader and the drainer, with the wake-ups between them and what the
/// metrics say of it.
#[derive(Debug)]
pub struct SharedSpool {
    spool: Mutex<Spool>,
    /// The end of every append not yet wholly acknowledged, with when it was appended (the
    /// first one is the oldest record waiting), and how many entries wait.
    waiting: Mutex<(VecDeque<(Cursor, std::time::Instant)>, u64)>,
    /// Entries were appended (wakes the drainer).
    appended: tokio::sync::Notify,
    /// Entries were acknowledged (wakes a reader waiting for room).
    freed: tokio::sync::Notify,
    full: AtomicBool,
}

impl SharedSpool {
    pub fn open(dir: &std::path::Path, max_bytes: u64) -> Result<SharedSpool, SpoolError> {
        let spool = Spool::open(dir, max_bytes)?;
        let mut waiting = (VecDeque::new(), 0);
        if !spool.is_empty() {
            waiting =
                (VecDeque::from([(spool.end(), std::time::Instant::now())]), spool.count_unacknowledged()?);
            tracing::info!(
                bytes = spool.used_bytes(),
                messages = waiting.1,
                "spool holds messages not yet acknowledged by Kafka: sending them first"
            );
        }
        Ok(SharedSpool {
            spool: Mutex::new(spool),
            waiting: Mutex::new(waiting),
            appended: tokio::sync::Notify::new(),
            freed: tokio::sync::Notify::new(),
            full: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        // A panic while holding the lock leaves the spool as consistent as a crash would.
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn append(&self, entries: &[(String, Vec<u8>)]) -> Result<(), SpoolError> {
        {
            // The bookkeeping under the spool's lock too, so that an acknowledgement cannot come
            // between (locks always taken spool first, then waiting).
            let mut spool = self.lock();
            spool.append(entries)?;
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.0.push_back((spool.end(), std::time::Instant::now()));
            waiting.1 += entries.len() as u64;
        }
        self.appended.notify_one();
        if self.full.swap(false, Ordering::Relaxed) {
            tracing::warn!("spool has room again: reading resumed");
        }
        Ok(())
    }

    /// Says loudly, once per episode, that reading stopped.
    pub fn report_full(&self, used: u64, max: u64) {
        if !self.full.swap(true, Ordering::Relaxed) {
            tracing::error!(
                used_bytes = used, max_bytes = max,
                "spool full: reading stopped until Kafka takes records again (the logs keep them until ConfigMgr rolls them twice; raise collect.spool_max_bytes to wait longer)"
            );
        }
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    pub fn read(&self, from: Cursor, max_entries: usize, max_bytes: u64) -> Result<SpoolBatch, SpoolError> {
        self.lock().read(from, max_entries, max_bytes)
    }

    /// Lets everything before `upto` go (`entries` of them) once Kafka acknowledged it.
    pub fn acknowledge(&self, upto: Cursor, entries: u64) -> Result<(), SpoolError> {
        {
            let mut spool = self.lock();
            spool.acknowledge(upto)?;
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            while waiting.0.front().is_some_and(|(end, _)| *end <= upto) {
                waiting.0.pop_front();
            }
            waiting.1 = waiting.1.saturating_sub(entries);
        }
        self.freed.notify_one();
        Ok(())
    }

    pub fn acknowledged(&self) -> Cursor {
        self.lock().acknowledged()
    }

    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    pub fn max_bytes(&self) -> u64 {
        self.lock().max_bytes()
    }

    /// Bytes and entries waiting for Kafka, and how long the oldest has waited.
    pub fn backlog(&self) -> (u64, u64, Option<Duration>) {
        let bytes = self.used_bytes();
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = waiting.0.front().map(|(_, at)| at.elapsed()).filter(|_| bytes > 0);
        (bytes, waiting.1, oldest)
    }
}
