//! statmsg-consume, the consumer: what runs centrally. It reads the records topic as a consumer group, writes every status message to
//! InfluxDB (measurement `statmsg`), feeds every record to the sync tracker and writes the runs
//! it changed (`sync_run`), and every `[consume] heartbeat_s` each site's health
//! (`site_sync_state`, `site_alert`, `collector_status`).
//!
//! Per batch: points to InfluxDB, refused messages to the dead-letter topic, the changed sites'
//! tracker states to the state topic ([`state`]), and only then the Kafka offsets. Writes are
//! idempotent (a record always becomes the same point, a run is keyed by its start), so the
//! re-delivery that at-least-once implies after a crash or a rebalance overwrites rather than
//! duplicates, and the restored tracker skips records it already applied.
//!
//! Within a batch everything that can wait together does: the body goes to InfluxDB in pieces of
//! at most `batch_max_points` points, [`store::WRITES_IN_FLIGHT`] at a time (a batch is split so
//! that they share it), gzip-compressed; the tracker
//! states and the dead letters are each sent at once and awaited together. While a full batch
//! (a backlog) is stored, the next one is decoded; it is gathered before, never during, the
//! storing, so a rebalance (served while gathering) never happens with a batch half stored, and a
//! batch gathered before a revocation forgets the revoked partitions (their states and offsets
//! are the new owner's) before it is stored.
//!
//! Every wait for a server goes through [`statmsg_plumbing::retry`]; every step that gives way
//! to a shutdown says so with [`Stopped`], and then nothing after it happens (no offset moves).
//!
//! [`settings`] validates the consumer's own sections of the configuration (`[kafka]`,
//! `[consume]`, `[influxdb]`, `[track]`) into [`Config`].
//!
//! Invariant (checked by `.ci/run`): this crate never depends on the collector.

pub mod batch;
pub mod dlq;
mod gather;
mod group;
pub mod influx;
pub mod metrics;
pub mod propagation;
pub mod retention;
pub mod settings;
mod sink;
pub mod state;
mod store;
mod tracking;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use thiserror::Error;

use self::batch::{Batch, Gathered};
use self::influx::{CreateError, InfluxClient, WriteError};
use self::metrics::ConsumeMetrics;
use self::propagation::PropagationMemo;
use self::settings::{ConsumeSettings, InfluxSettings};
use self::state::StateTopic;
use statmsg_plumbing::config::KafkaSettings;
use statmsg_plumbing::kafka::publish::Publisher;
use statmsg_plumbing::kafka::topics::{ensure_topics, Role};
use statmsg_plumbing::kafka::{client_config, EAGER_CONNECTIONS};
use statmsg_plumbing::shutdown::{unless_stopped, AbortOnDrop, Shutdown, Stopped};
use statmsg_track::{Propagation, SiteState, Tracker, TrackerConfig};

/// What the consumer needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub kafka: KafkaSettings,
    pub consume: ConsumeSettings,
    pub influxdb: InfluxSettings,
    pub track: TrackerConfig,
}

#[derive(Debug, Error)]
pub enum ConsumeError {
    #[error("cannot create Kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot create HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot read influxdb.ca_file {path}: {source}")]
    CaFile { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Database(#[from] CreateError),
    #[error(transparent)]
    Credentials(WriteError),
}

const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("partition.assignment.strategy", "cooperative-sticky"),
    // Tells when the consumer has caught up with a partition (logged, and in the metrics).
    ("enable.partition.eof", "true"),
    // librdkafka waits this long before fetching again for a partition whose local queue was
    // full (default 1 s). Draining a backlog, the queue is full whenever a batch is stored, so
    // every batch ended in a 0.5 to 1 s stall (`./bench consume`: 3.0 s -> 2.1 s).
    ("fetch.queue.backoff.ms", "10"),
    // A member learns of a rebalance from its next heartbeat's answer, and a cooperative
    // rebalance takes two rounds: at Kafka's default (3 s) a consumer joining a busy group
    // waited about 6 s for its partitions (`./bench consume`, 2 consumers: 6.85 s -> 3.20 s, see
    // BENCHMARKS.md). One heartbeat a second costs the broker nothing worth counting.
    ("heartbeat.interval.ms", "1000"),
    // A partition's end is known from a fetch that returns nothing, which the broker holds for
    // this long (default 500 ms): the end of every backlog waited for it (`./bench consume`:
    // the last batch gathered in 150 -> 11 ms). Data is answered at once either way.
    ("fetch.wait.max.ms", "100"),
];

/// How a batch step ended early: shutdown came first, or something no retry can fix.
#[derive(Debug)]
enum Interrupted {
    Stopped,
    Failed(ConsumeError),
}

impl From<Stopped> for Interrupted {
    fn from(_: Stopped) -> Self {
        Interrupted::Stopped
    }
}

impl From<ConsumeError> for Interrupted {
    fn from(e: ConsumeError) -> Self {
        Interrupted::Failed(e)
    }
}

/// Payload bytes decoded between two yields, when a batch is being stored meanwhile (about
/// 2,000 records: a few milliseconds). Bytes, not messages: a bundle holds a hundred records.
const DECODE_SLICE_BYTES: usize = 1 << 20;

/// How often librdkafka reports its statistics (the lag per partition) when metrics are on.
const STATISTICS_INTERVAL_MS: &str = "5000";

/// What storing a batch needs, apart from the tracker (which decodes the next batch meanwhile).
struct Shared {
    config: Config,
    consumer: group::WatchedConsumer,
    publisher: Publisher,
    influx: InfluxClient,
    metrics: Arc<ConsumeMetrics>,
}

/// What the consumer works with once started.
struct Running {
    shared: Shared,
    /// The `version_propagation` rows written so far.
    memo: PropagationMemo,
    watch: group::RebalanceWatch,
    tracking: tracking::Tracking,
    gatherer: gather::Gatherer,
    /// Reading a backlog: since the start, a rebalance, or a full batch.
    behind: bool,
    /// Caught up just now: the sites' health is written at once.
    health_due: bool,
    totals: Totals,
}

#[derive(Debug, Default)]
struct Totals {
    points: usize,
    dead_letters: usize,
    skipped: usize,
}

/// Runs until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ConsumeError> {
    match consume(config, &shutdown).await {
        Ok(()) | Err(Interrupted::Stopped) => Ok(()),
        Err(Interrupted::Failed(e)) => Err(e),
    }
}

async fn consume(config: Config, shutdown: &Shutdown) -> Result<(), Interrupted> {
    let kafka = &config.kafka;
    let mut consumer_config = client_config(kafka, &[CONSUMER_DEFAULTS, EAGER_CONNECTIONS].concat());
    consumer_config.set("group.id", &kafka.group_id);
    let metrics = Arc::new(ConsumeMetrics::default());
    let serving = config.consume.metrics_address.map(|address| {
        consumer_config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        let metrics = metrics.clone();
        let render: statmsg_plumbing::prometheus::Render = Arc::new(move || metrics.render());
        AbortOnDrop(tokio::spawn(async move {
            // Ended by AbortOnDrop when the consumer returns, whatever the reason.
            if let Err(e) = statmsg_plumbing::prometheus::serve(address, render, Shutdown::new()).await {
                tracing::error!("metrics endpoint {address}: {e}");
            }
        }))
    });
    let setting = |name: &str| {
        let default = CONSUMER_DEFAULTS.iter().find(|(key, _)| *key == name).map(|(_, value)| *value);
        kafka.properties.get(name).map(String::as_str).or(default).unwrap_or_default()
    };
    let watch = group::RebalanceWatch::new(metrics.clone(), &kafka.topic, setting("auto.offset.reset"));
    let consumer: group::WatchedConsumer =
        consumer_config.create_with_context(watch.clone()).map_err(ConsumeError::Kafka)?;
    let publisher = Publisher::new(kafka, "producer").map_err(ConsumeError::Kafka)?;
    let influx = InfluxClient::new(&config.influxdb)?;
    // The topic check waits for Kafka (up to 30 s): a shutdown must not wait for it. One
    // request for the three topics: each request costs a round trip.
    unless_stopped(shutdown, ensure_topics(kafka, Role::Consumer)).await?;
    let states = StateTopic::open(kafka).map_err(ConsumeError::Kafka)?;
    let mut tracking = tracking::Tracking::new(config.track.clone(), states);
    // Before joining the group: partitions given to a consumer that cannot read the state
    // topic (which it retries until it can) would wait unread, and be taken from it after
    // `max.poll.interval.ms` while it still meant to store them.
    tracking.restore_all(shutdown).await?;
    consumer.subscribe(&[&kafka.topic]).map_err(ConsumeError::Kafka)?;
    let gatherer = gather::Gatherer::new(&kafka.topic);
    let mut this = Running {
        gatherer,
        shared: Shared { config, consumer, publisher, influx, metrics },
        memo: PropagationMemo::default(),
        watch,
        tracking,
        behind: true,
        health_due: false,
        totals: Totals::default(),
    };
    let (first, next_health) = this.start(shutdown).await?;
    let ended = this.batches(first, next_health, shutdown).await;
    let t = &this.totals;
    tracing::info!(points = t.points, dead_letters = t.dead_letters, skipped = t.skipped, "consumer stopped");
    drop(serving);
    ended
}

/// A batch decoded and fed to the tracker, waiting to be stored.
struct Prepared {
    batch: Batch,
    /// The tracker states of the sites it touched, as they were right after it.
    changed: Vec<SiteState>,
    /// The `version_propagation` rows it writes.
    propagation: Vec<Propagation>,
    /// It ends a backlog: logged once stored.
    caught_up: bool,
    decoded: Duration,
}

impl Prepared {
    /// Forgets what belongs to `revoked` partitions: their new owner re-reads those messages from
    /// the committed offset and saves their sites' state; this consumer must commit and save
    /// neither (its points are written all the same: idempotent).
    fn forget_partitions(&mut self, revoked: &BTreeSet<i32>) {
        if revoked.is_empty() {
            return;
        }
        self.batch.forget_partitions(revoked);
        self.changed.retain(|s| !s.partition.is_some_and(|p| revoked.contains(&p)));
    }
}

impl Running {
    /// Gathers the first batch while InfluxDB is set up (`[influxdb] setup`): librdkafka assigns
    /// partitions only once asked for messages, so waiting for the set-up first delayed the first
    /// batch by its length (40 to 110 ms). With the topic check's clients destroyed off this
    /// task too, the first batch comes about 0.2 s sooner (`./bench consume`, BENCHMARKS.md). A
    /// set-up that fails only warns, so partitions wait at most for one answer of InfluxDB's.
    /// Returns the batch and when the sites' health is first due.
    async fn start(&mut self, shutdown: &Shutdown) -> Result<(Gathered, tokio::time::Instant), Stopped> {
        let Running { shared, tracking, gatherer, .. } = self;
        let kafka = &shared.config.kafka;
        let health_at = tokio::time::Instant::now() + shared.config.consume.health_interval;
        let setting_up = unless_stopped(shutdown, async {
            if shared.config.influxdb.setup {
                match retention::setup(&shared.influx).await {
                    Ok(done) => tracing::debug!(?done, "InfluxDB set up"),
                    // The database may exist already (set up by an admin); writing will tell.
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            // Said as soon as it is true, not when the first batch is in: that waits for
            // partitions, which a consumer of a busy group may get much later.
            let sites = tracking.tracker.sites().count();
            tracing::info!(topic = %kafka.topic, group = %kafka.group_id, sites, "consuming");
        });
        let (first, set_up) = tokio::join!(gatherer.next_messages(shared, shutdown, health_at), setting_up);
        set_up?;
        Ok((first?, health_at))
    }

    /// Gathers, decodes and stores batches until shutdown. While a full batch (a backlog: more
    /// messages are waiting) is stored, the next one is gathered first and decoded meanwhile; a
    /// batch that is not full is stored at once (nothing would come to overlap with).
    async fn batches(
        &mut self,
        first: Gathered,
        mut next_health: tokio::time::Instant,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        let mut waiting: Option<Prepared> = None;
        let mut first = Some(first);
        loop {
            let gathering = Instant::now();
            // A batch waiting to be stored waits at most a linger for the next one to start.
            let deadline = match waiting {
                Some(_) => {
                    next_health.min(tokio::time::Instant::now() + self.shared.config.consume.batch_linger)
                }
                None => next_health,
            };
            let mut messages = match first.take() {
                Some(messages) => messages,
                None => self.gatherer.next_messages(&self.shared, shutdown, deadline).await?,
            };
            tracing::trace!(messages = messages.len(), took = ?gathering.elapsed(), "gathered");
            // Rebalances happen while messages are gathered (librdkafka serves them in `recv`),
            // never while a batch is stored: a batch gathered before a revocation forgets the
            // revoked partitions before it is stored.
            let rebalanced = self.watch.take();
            if !rebalanced.revoked.is_empty() || rebalanced.assigned {
                self.behind = true;
            }
            for partition in &rebalanced.revoked {
                self.gatherer.at_end.remove(partition);
            }
            if let Some(waiting) = waiting.as_mut() {
                waiting.forget_partitions(&rebalanced.revoked);
            }
            let full = std::mem::take(&mut self.gatherer.filled);
            self.behind |= full;
            let topic = &self.shared.config.kafka.topic;
            self.tracking
                .follow_assignment(&self.shared.consumer, topic, rebalanced, &mut messages, shutdown)
                .await?;
            let caught_up = std::mem::take(&mut self.gatherer.caught_up);
            let prepared = match waiting.take() {
                Some(mut previous) => {
                    let (stored, prepared) =
                        self.store_while_decoding(&mut previous, &messages, caught_up, shutdown).await;
                    self.stored(previous, stored?);
                    prepared
                }
                None => {
                    let owner = Owner { assigned: &self.tracking.assigned, memo: &self.memo };
                    decode(&mut self.tracking.tracker, &messages, caught_up, owner).await
                }
            };
            self.gatherer.spare = messages;
            if full {
                waiting = Some(prepared);
            } else {
                let mut prepared = prepared;
                let refused = self.store_batch(&mut prepared, shutdown).await?;
                self.stored(prepared, refused);
            }
            // Also through a long backlog: the alert rules watch for heartbeats that stop.
            if std::mem::take(&mut self.health_due) || tokio::time::Instant::now() >= next_health {
                let written = self.tracking.write_health(
                    &self.shared.influx,
                    &self.shared.config.consume,
                    &mut self.memo,
                    self.behind,
                    shutdown,
                );
                if written.await? {
                    self.shared.metrics.health_written_now();
                }
                next_health = tokio::time::Instant::now() + self.shared.config.consume.health_interval;
            }
        }
    }

    /// Stores `previous` while `messages` are decoded into the next batch (the decoding yields
    /// now and then, so both advance on this task).
    async fn store_while_decoding(
        &mut self,
        previous: &mut Prepared,
        messages: &Gathered,
        caught_up: bool,
        shutdown: &Shutdown,
    ) -> (Result<Vec<usize>, Interrupted>, Prepared) {
        let owner = Owner { assigned: &self.tracking.assigned, memo: &self.memo };
        let tracker = &mut self.tracking.tracker;
        tokio::join!(
            store::store(&self.shared, previous, shutdown),
            decode(tracker, messages, caught_up, owner)
        )
    }

    /// Stores a batch: InfluxDB, dead letters, tracker states, then the offsets. Returns the
    /// indices of the points InfluxDB refused.
    async fn store_batch(
        &mut self,
        prepared: &mut Prepared,
        shutdown: &Shutdown,
    ) -> Result<Vec<usize>, Interrupted> {
        store::store(&self.shared, prepared, shutdown).await
    }

    /// Books a stored batch: its states as the latest saved, counters, logs.
    fn stored(&mut self, prepared: Prepared, refused: Vec<usize>) {
        let Prepared { batch, changed, propagation, caught_up, decoded } = prepared;
        self.tracking.states.remember(changed);
        self.memo.written(&propagation);
        let metrics = &*self.shared.metrics;
        for (measurement, points) in batch.points_per_measurement(&refused) {
            metrics.points_written(measurement, points);
        }
        metrics.records_read.fetch_add(batch.records as u64, Relaxed);
        metrics.dead_letters.fetch_add(batch.dead_letters().len() as u64, Relaxed);
        metrics.batches_committed.fetch_add(1, Relaxed);
        metrics.tracker_sites.store(self.tracking.tracker.sites().count() as u64, Relaxed);
        self.totals.points += batch.points();
        self.totals.dead_letters += batch.dead_letters().len();
        self.totals.skipped += batch.skipped;
        if batch.messages() > 0 {
            tracing::debug!(
                points = batch.points(),
                messages = batch.messages(),
                dead = batch.dead_letters().len(),
                decoded = ?decoded,
                "batch committed"
            );
        }
        if caught_up && std::mem::take(&mut self.behind) {
            tracing::info!(partitions = ?self.gatherer.at_end, points = self.totals.points, "caught up: every assigned partition read to its end and stored");
            // Every site at once, with its alerts, rather than up to `heartbeat_s` later.
            self.health_due = true;
        }
    }
}

/// What decides which `version_propagation` rows a batch writes: the children this consumer owns
/// (the sites of its partitions), and what it wrote already.
#[derive(Debug, Clone, Copy)]
struct Owner<'a> {
    assigned: &'a BTreeSet<i32>,
    memo: &'a PropagationMemo,
}

/// Decodes `messages` into a batch, feeding every record to the tracker.
async fn decode(tracker: &mut Tracker, messages: &Gathered, caught_up: bool, owner: Owner<'_>) -> Prepared {
    let started = Instant::now();
    let mut batch = Batch::default();
    let mut since_yield = 0;
    for (origin, key, payload) in messages.iter() {
        if since_yield >= DECODE_SLICE_BYTES {
            // Lets a batch being stored on this task go on (see `store_while_decoding`).
            tokio::task::yield_now().await;
            since_yield = 0;
        }
        since_yield += payload.map_or(0, <[u8]>::len);
        batch.add_tracked(origin.clone(), key, payload, Some(tracker));
    }
    batch.add_runs(&tracker.take_runs());
    // Rows of owned children this batch may have changed: the child's or its parent's records
    // are in it. (A parent another consumer owns changes with the next health write, which checks all.)
    let touched = |s: &SiteState| batch.touched_sites().any(|(h, site)| *h == s.hierarchy && *site == s.site);
    let owned = tracker.sites().filter(|s| {
        s.partition.is_some_and(|p| owner.assigned.contains(&p))
            && (touched(s) || tracker.parent_of(s).is_some_and(touched))
    });
    let propagation = owner.memo.changed(tracker, owned);
    batch.add_propagation(&propagation);
    let changed = batch.touched_sites().filter_map(|(h, s)| tracker.site(h, s).cloned()).collect();
    Prepared { batch, changed, propagation, caught_up, decoded: started.elapsed() }
}
