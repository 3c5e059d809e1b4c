//! The consumer: reads the records topic as a consumer group, writes every status message to
//! InfluxDB (measurement `statmsg`), feeds every record to the sync tracker and writes the runs
//! it changed (`sync_run`), and every heartbeat each site's health (`site_sync_state`).
//!
//! Per batch: points to InfluxDB, refused messages to the dead-letter topic, the changed sites'
//! tracker states to the state topic ([`state`]), and only then the Kafka offsets. Writes are
//! idempotent (a record always becomes the same point, a run is keyed by its start), so the
//! re-delivery that at-least-once implies after a crash or a rebalance overwrites rather than
//! duplicates, and the restored tracker skips records it already applied.
//!
//! Within a batch everything that can wait together does: the body goes to InfluxDB in pieces of
//! `batch_max_points` points, [`WRITES_IN_FLIGHT`] at a time, gzip-compressed; the tracker
//! states and the dead letters are each sent at once and awaited together. While a full batch
//! (a backlog) is stored, the next one is decoded; it is gathered before, never during, the
//! storing, so a rebalance (served while gathering) never happens with a batch half stored, and a
//! batch gathered before a revocation forgets the revoked partitions (their states and offsets
//! are the new owner's) before it is stored.
//!
//! Every wait for a server goes through [`crate::retry`]; every step that gives way to a
//! shutdown says so with [`Stopped`], and then nothing after it happens (no offset moves).

pub mod batch;
pub mod dlq;
pub mod influx;
pub mod metrics;
pub mod propagation;
pub mod state;
mod tracking;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

use self::batch::{Batch, Origin, Received};
use self::influx::{CreateError, InfluxWriter, WriteError};
use self::metrics::ConsumeMetrics;
use self::propagation::PropagationMemo;
use self::state::StateStore;
use crate::config::{ConsumeSettings, InfluxSettings, KafkaSettings, Settings};
use crate::kafka::client_config;
use crate::kafka::publish::Publisher;
use crate::retry::{until_done, Failure, Retry};
use crate::shutdown::{unless_stopped, Shutdown, Stopped};
use statmsg_track::{Propagation, SiteState, Tracker, TrackerConfig};

/// What the consumer needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub kafka: KafkaSettings,
    pub consume: ConsumeSettings,
    pub influxdb: InfluxSettings,
    pub track: TrackerConfig,
}

impl From<&Settings> for Config {
    fn from(s: &Settings) -> Self {
        Config {
            kafka: s.kafka.clone(),
            consume: s.consume.clone(),
            influxdb: s.influxdb.clone(),
            track: s.track.clone(),
        }
    }
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
];

/// Most InfluxDB write requests of one batch in flight at once.
pub const WRITES_IN_FLIGHT: usize = 4;

/// First pause after a failed attempt (InfluxDB or Kafka unavailable), then doubled.
pub(crate) const FIRST_RETRY_WAIT: Duration = Duration::from_millis(200);

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

/// Messages decoded between two yields, when a batch is being stored meanwhile.
const DECODE_SLICE: usize = 2_000;

/// How often librdkafka reports its statistics (the lag per partition) when metrics are on.
const STATISTICS_INTERVAL_MS: &str = "5000";

/// What the consumer works with once started.
struct Consumer_ {
    metrics: Arc<ConsumeMetrics>,
    /// The `version_propagation` rows written so far.
    memo: PropagationMemo,
    config: Config,
    consumer: tracking::WatchedConsumer,
    watch: tracking::RebalanceWatch,
    publisher: Publisher,
    writer: InfluxWriter,
    tracking: tracking::Tracking,
    /// Partitions whose end this consumer has reached (since their last message).
    at_end: BTreeSet<i32>,
    /// Reading a backlog: since the start, a rebalance, or a full batch.
    behind: bool,
    /// The batch being gathered ends the backlog (logged once it is stored).
    caught_up: bool,
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
    let mut consumer_config = client_config(kafka, CONSUMER_DEFAULTS);
    consumer_config.set("group.id", &kafka.group_id);
    let metrics = Arc::new(ConsumeMetrics::default());
    let serving = config.consume.metrics_address.map(|address| {
        consumer_config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        let metrics = metrics.clone();
        let render: crate::metrics::Render = Arc::new(move || metrics.render());
        AbortOnDrop(tokio::spawn(async move {
            // Ended by AbortOnDrop when the consumer returns, whatever the reason.
            if let Err(e) = crate::metrics::serve(address, render, Shutdown::new()).await {
                tracing::error!("metrics endpoint {address}: {e}");
            }
        }))
    });
    let watch = tracking::RebalanceWatch::new(metrics.clone(), &kafka.topic);
    let consumer: tracking::WatchedConsumer =
        consumer_config.create_with_context(watch.clone()).map_err(ConsumeError::Kafka)?;
    let publisher = Publisher::new(kafka, "producer").map_err(ConsumeError::Kafka)?;
    let writer = InfluxWriter::new(&config.influxdb)?;
    // Each check waits for its server (up to 30 s): a shutdown must not wait for them.
    unless_stopped(shutdown, async {
        crate::kafka::ensure_topics(kafka, &[&kafka.topic, &kafka.dead_letter_topic]).await;
        crate::kafka::ensure_compacted_topic(kafka, &kafka.state_topic).await;
        if let Err(e) = writer.ensure_database().await {
            // The database may exist already (created by an admin); writing will tell.
            tracing::warn!("{e}");
        }
    })
    .await?;
    let store = StateStore::open(kafka).map_err(ConsumeError::Kafka)?;
    let mut tracking = tracking::Tracking::new(config.track.clone(), store);
    tracking.restore_all(shutdown).await?;
    consumer.subscribe(&[&kafka.topic]).map_err(ConsumeError::Kafka)?;
    tracing::info!(topic = %kafka.topic, group = %kafka.group_id, sites = tracking.tracker.sites().count(), "consuming");
    let mut this = Consumer_ {
        metrics,
        memo: PropagationMemo::default(),
        config,
        consumer,
        watch,
        publisher,
        writer,
        tracking,
        at_end: BTreeSet::new(),
        behind: true,
        caught_up: false,
        totals: Totals::default(),
    };
    let ended = this.batches(shutdown).await;
    let t = &this.totals;
    tracing::info!(points = t.points, dead_letters = t.dead_letters, skipped = t.skipped, "consumer stopped");
    drop(serving);
    ended
}

/// A task that ends with the scope that owns it, however that scope is left.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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

impl Consumer_ {
    /// Gathers, decodes and stores batches until shutdown. While a full batch (a backlog: more
    /// messages are waiting) is stored, the next one is gathered first and decoded meanwhile; a
    /// batch that is not full is stored at once (nothing would come to overlap with).
    async fn batches(&mut self, shutdown: &Shutdown) -> Result<(), Interrupted> {
        let mut next_heartbeat = tokio::time::Instant::now() + self.config.consume.heartbeat;
        let mut waiting: Option<Prepared> = None;
        loop {
            let gathering = Instant::now();
            // A batch waiting to be stored waits at most a linger for the next one to start.
            let deadline = match waiting {
                Some(_) => next_heartbeat.min(tokio::time::Instant::now() + self.config.consume.batch_linger),
                None => next_heartbeat,
            };
            let mut messages = self.next_messages(shutdown, deadline).await?;
            tracing::trace!(messages = messages.len(), took = ?gathering.elapsed(), "gathered");
            // Rebalances happen while messages are gathered (librdkafka serves them in `recv`),
            // never while a batch is stored: a batch gathered before a revocation forgets the
            // revoked partitions before it is stored.
            let rebalanced = self.watch.take();
            if !rebalanced.revoked.is_empty() || rebalanced.assigned {
                self.behind = true;
            }
            if let Some(waiting) = waiting.as_mut() {
                waiting.forget_partitions(&rebalanced.revoked);
            }
            let full = messages.len() >= self.config.consume.batch_max_messages;
            self.behind |= full;
            let topic = &self.config.kafka.topic;
            self.tracking
                .follow_assignment(&self.consumer, topic, rebalanced, &mut messages, shutdown)
                .await?;
            let caught_up = std::mem::take(&mut self.caught_up);
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
            if full {
                waiting = Some(prepared);
            } else {
                let mut prepared = prepared;
                let refused = self.store_batch(&mut prepared, shutdown).await?;
                self.stored(prepared, refused);
            }
            // Also through a long backlog: the alert rules watch for heartbeats that stop.
            if tokio::time::Instant::now() >= next_heartbeat {
                let heartbeat =
                    self.tracking.heartbeat(&self.writer, &self.config.consume, &mut self.memo, shutdown);
                if heartbeat.await? {
                    self.metrics.heartbeat_now();
                }
                next_heartbeat = tokio::time::Instant::now() + self.config.consume.heartbeat;
            }
        }
    }

    /// Stores `previous` while `messages` are decoded into the next batch (the decoding yields
    /// now and then, so both advance on this task).
    async fn store_while_decoding(
        &mut self,
        previous: &mut Prepared,
        messages: &[Received],
        caught_up: bool,
        shutdown: &Shutdown,
    ) -> (Result<Vec<usize>, Interrupted>, Prepared) {
        let parts = StoreParts {
            writer: &self.writer,
            publisher: &self.publisher,
            consumer: &self.consumer,
            metrics: &self.metrics,
            config: &self.config,
            state_topic: self.tracking.store.topic(),
        };
        let owner = Owner { assigned: &self.tracking.assigned, memo: &self.memo };
        let tracker = &mut self.tracking.tracker;
        tokio::join!(parts.store(previous, shutdown), decode(tracker, messages, caught_up, owner))
    }

    /// Stores a batch: InfluxDB, dead letters, tracker states, then the offsets. Returns the
    /// indices of the points InfluxDB refused.
    async fn store_batch(
        &mut self,
        prepared: &mut Prepared,
        shutdown: &Shutdown,
    ) -> Result<Vec<usize>, Interrupted> {
        let parts = StoreParts {
            writer: &self.writer,
            publisher: &self.publisher,
            consumer: &self.consumer,
            metrics: &self.metrics,
            config: &self.config,
            state_topic: self.tracking.store.topic(),
        };
        parts.store(prepared, shutdown).await
    }

    /// Books a stored batch: its states as the latest saved, counters, logs.
    fn stored(&mut self, prepared: Prepared, refused: Vec<usize>) {
        let Prepared { batch, changed, propagation, caught_up, decoded } = prepared;
        self.tracking.store.remember(changed);
        self.memo.written(&propagation);
        let metrics = &*self.metrics;
        for (measurement, points) in batch.points_per_measurement(&refused) {
            metrics.points_written(measurement, points);
        }
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
            tracing::info!(partitions = ?self.at_end, points = self.totals.points, "caught up: every assigned partition read to its end and stored");
        }
    }

    /// Waits for a first message, then gathers more for up to `batch_linger` or
    /// `batch_max_messages` messages, or until every assigned partition is read to its end (no
    /// waiting for more when there is none); returns early (possibly with none) at `heartbeat`.
    async fn next_messages(
        &mut self,
        shutdown: &Shutdown,
        heartbeat: tokio::time::Instant,
    ) -> Result<Vec<Received>, Stopped> {
        let consume = &self.config.consume;
        let mut messages = Vec::new();
        let mut deadline = heartbeat;
        let mut retry = Retry::new(shutdown, "Kafka", FIRST_RETRY_WAIT);
        while messages.len() < consume.batch_max_messages {
            let received =
                unless_stopped(shutdown, tokio::time::timeout_at(deadline, self.consumer.recv())).await?;
            match received {
                Err(_) => break, // linger over, or time for a heartbeat
                Ok(Ok(m)) => {
                    self.metrics.records_read.fetch_add(1, Relaxed);
                    let origin =
                        Origin { topic: m.topic().to_owned(), partition: m.partition(), offset: m.offset() };
                    self.at_end.remove(&origin.partition);
                    messages.push(Received {
                        origin,
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                    });
                    deadline = deadline.min(tokio::time::Instant::now() + consume.batch_linger);
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    if self.at_end.insert(partition) && self.all_at_end() {
                        // Told once this batch, which holds the last messages, is stored.
                        self.caught_up = true;
                        break;
                    }
                }
                Ok(Err(e)) => retry.after(e).await?,
            }
        }
        Ok(messages)
    }

    /// Every partition assigned to this consumer is at its end.
    fn all_at_end(&self) -> bool {
        let Ok(assigned) = self.consumer.assignment() else {
            return false;
        };
        let partitions = assigned.elements_for_topic(&self.config.kafka.topic);
        !partitions.is_empty() && partitions.iter().all(|e| self.at_end.contains(&e.partition()))
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
async fn decode(tracker: &mut Tracker, messages: &[Received], caught_up: bool, owner: Owner<'_>) -> Prepared {
    let started = Instant::now();
    let mut batch = Batch::default();
    for (n, m) in messages.iter().enumerate() {
        if n % DECODE_SLICE == DECODE_SLICE - 1 {
            // Lets a batch being stored on this task go on (see `store_while_decoding`).
            tokio::task::yield_now().await;
        }
        batch.add_tracked(m.origin.clone(), m.key.as_deref(), m.payload.as_deref(), Some(tracker));
    }
    batch.add_runs(&tracker.take_runs());
    // Rows of owned children that changed (a version reached by either side).
    let owned = tracker.sites().filter(|s| s.partition.is_some_and(|p| owner.assigned.contains(&p)));
    let propagation = owner.memo.changed(tracker, owned);
    batch.add_propagation(&propagation);
    let changed = batch.touched_sites().filter_map(|(h, s)| tracker.site(h, s).cloned()).collect();
    Prepared { batch, changed, propagation, caught_up, decoded: started.elapsed() }
}

/// What storing a batch needs of the consumer (borrowed apart from the tracker, which decodes
/// the next batch meanwhile).
struct StoreParts<'a> {
    writer: &'a InfluxWriter,
    publisher: &'a Publisher,
    consumer: &'a tracking::WatchedConsumer,
    metrics: &'a ConsumeMetrics,
    config: &'a Config,
    state_topic: &'a str,
}

impl StoreParts<'_> {
    /// Points to InfluxDB, dead letters, tracker states, then the offsets: each only after the
    /// one before was acknowledged.
    async fn store(&self, prepared: &mut Prepared, shutdown: &Shutdown) -> Result<Vec<usize>, Interrupted> {
        let metrics = self.metrics;
        let max_points = self.config.consume.batch_max_points;
        let refused = store(self.writer, &mut prepared.batch, max_points, metrics, shutdown).await?;
        let dead_letter_topic = &self.config.kafka.dead_letter_topic;
        send_dead_letters(self.publisher, dead_letter_topic, &prepared.batch, metrics, shutdown).await?;
        let publishing = Instant::now();
        state::publish(self.publisher, self.state_topic, &prepared.changed, metrics, shutdown).await?;
        metrics.state_publish_seconds.observe(publishing.elapsed());
        commit(self.consumer, &prepared.batch);
        Ok(refused)
    }
}

/// Why a write will not succeed by trying again.
#[derive(Debug)]
enum Refusal {
    /// InfluxDB refused the points themselves.
    Points(String),
    /// Nothing will work until the configuration or the server's rights change.
    Fatal(ConsumeError),
}

/// Writes the batch's points in pieces of `max_points`, [`WRITES_IN_FLIGHT`] at a time,
/// retrying while InfluxDB is unavailable. A piece InfluxDB refuses is written point by point,
/// and the points it refuses become dead letters; their indices are returned.
async fn store(
    writer: &InfluxWriter,
    batch: &mut Batch,
    max_points: usize,
    metrics: &ConsumeMetrics,
    shutdown: &Shutdown,
) -> Result<Vec<usize>, Interrupted> {
    let refused_pieces: Vec<std::ops::Range<usize>> = stream::iter(batch.pieces(max_points))
        .map(|(points, body)| async move {
            match write_until_done(writer, body, metrics, shutdown).await? {
                Ok(()) => Ok(None),
                Err(Refusal::Points(why)) => {
                    tracing::warn!("InfluxDB refused the points ({why}); writing them one by one");
                    Ok(Some(points))
                }
                Err(Refusal::Fatal(e)) => Err(Interrupted::Failed(e)),
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_filter_map(|refused| async move { Ok(refused) })
        .try_collect()
        .await?;
    let mut refused = Vec::new();
    for index in refused_pieces.into_iter().flatten() {
        let (line, origin) = batch.point(index);
        let (line, origin) = (line.to_owned(), origin.clone());
        match write_until_done(writer, &line, metrics, shutdown).await? {
            Ok(()) => {}
            Err(Refusal::Points(why)) => {
                batch.refused(&line, &origin, &why);
                refused.push(index);
            }
            Err(Refusal::Fatal(e)) => return Err(e.into()),
        }
    }
    Ok(refused)
}

/// One body until InfluxDB stored or refused it.
async fn write_until_done(
    writer: &InfluxWriter,
    body: &str,
    metrics: &ConsumeMetrics,
    shutdown: &Shutdown,
) -> Result<Result<(), Refusal>, Stopped> {
    until_done(shutdown, "InfluxDB", FIRST_RETRY_WAIT, || async {
        let writing = Instant::now();
        let written = writer.write(body).await;
        metrics.write_seconds.observe(writing.elapsed());
        match written {
            Ok(()) => Ok(()),
            Err(WriteError::Rejected { body, .. }) => Err(Failure::Final(Refusal::Points(body))),
            Err(e @ WriteError::Unauthorized { .. }) => {
                Err(Failure::Final(Refusal::Fatal(ConsumeError::Credentials(e))))
            }
            Err(WriteError::DatabaseMissing(detail)) => {
                tracing::warn!("{detail}: creating it");
                match writer.ensure_database().await {
                    // Created, yet a write may still miss it (a proxy, a replica): back off.
                    Ok(()) => Err(Failure::Transient(format!("database missing after creation: {detail}"))),
                    Err(e) => Err(Failure::Final(Refusal::Fatal(e.into()))),
                }
            }
            Err(e @ WriteError::Unavailable(_)) => {
                metrics.retries.fetch_add(1, Relaxed);
                Err(Failure::Transient(e.to_string()))
            }
        }
    })
    .await
}

/// Publishes `messages` to `topic` until Kafka acknowledged all of them (sent at once, awaited
/// together), retrying while Kafka is unavailable. What was sent before a shutdown may arrive
/// anyway; nothing after this step happens then, and the batch is sent again next time.
pub(crate) async fn publish_until_acknowledged(
    publisher: &Publisher,
    topic: &str,
    messages: &[(Option<Vec<u8>>, Vec<u8>)],
    metrics: &ConsumeMetrics,
    shutdown: &Shutdown,
) -> Result<(), Stopped> {
    if messages.is_empty() {
        return Ok(());
    }
    let delivered = until_done(shutdown, format!("Kafka topic {topic}"), FIRST_RETRY_WAIT, || async {
        let messages = messages.iter().map(|(key, payload)| (key.as_ref(), payload));
        publisher.publish_all(topic, messages, shutdown, Duration::ZERO).await.map_err(|e| {
            metrics.retries.fetch_add(1, Relaxed);
            let cause = publisher
                .last_client_error()
                .map(|c| format!("; last client error: {c}"))
                .unwrap_or_default();
            Failure::<Infallible>::Transient(format!("{e}{cause}"))
        })
    })
    .await?;
    match delivered {
        Ok(()) => Ok(()),
        Err(never) => match never {},
    }
}

/// Publishes the batch's dead letters and waits for their acknowledgement.
async fn send_dead_letters(
    publisher: &Publisher,
    topic: &str,
    batch: &Batch,
    metrics: &ConsumeMetrics,
    shutdown: &Shutdown,
) -> Result<(), Stopped> {
    let messages: Vec<_> = batch
        .dead_letters()
        .iter()
        .map(|dead| {
            tracing::warn!(topic = %dead.origin.topic, partition = dead.origin.partition,
                offset = dead.origin.offset, "dead letter: {}", dead.reason);
            // Infallible: plain strings and numbers.
            let payload = serde_json::to_vec(dead).expect("a dead letter always serializes");
            (dead.key.clone(), payload)
        })
        .collect();
    publish_until_acknowledged(publisher, topic, &messages, metrics, shutdown).await
}

/// Commits the batch's offsets. A failed commit (typically a rebalance that moved the partition)
/// is logged: the new owner re-reads those messages and the idempotent writes absorb them.
fn commit(consumer: &tracking::WatchedConsumer, batch: &Batch) {
    let mut offsets = TopicPartitionList::new();
    for (topic, partition, next) in batch.next_offsets() {
        if let Err(e) = offsets.add_partition_offset(topic, partition, Offset::Offset(next)) {
            tracing::warn!("cannot list offset {topic}/{partition}@{next}: {e}");
        }
    }
    if offsets.count() == 0 {
        return;
    }
    if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
        tracing::warn!("offset commit failed (messages will be re-read and overwritten): {e}");
    }
}
