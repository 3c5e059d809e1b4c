//! The consumer: reads the records topic as a consumer group, writes every status message to
//! InfluxDB (measurement `statmsg`), feeds every record to the sync tracker and writes the runs
//! it changed (`sync_run`), and every heartbeat each site's health (`site_sync_state`).
//!
//! Per batch: points to InfluxDB, refused messages to the dead-letter topic, the changed sites'
//! tracker states to the state topic ([`state`]), and only then the Kafka offsets. Writes are
//! idempotent (a record always becomes the same point, a run is keyed by its start), so the
//! re-delivery that at-least-once implies after a crash or a rebalance overwrites rather than
//! duplicates, and the restored tracker skips records it already applied.

pub mod batch;
pub mod influx;
pub mod state;
mod tracking;

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

use self::batch::{Batch, Origin};
use self::influx::{CreateError, InfluxWriter, WriteError};
use self::state::StateStore;
use crate::config::{ConsumeSettings, InfluxSettings, KafkaSettings, Settings};
use crate::kafka::{client_config, ClientEvents, PRODUCER_DEFAULTS};
use crate::shutdown::Shutdown;
use statmsg_track::TrackerConfig;

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
];

/// Versions of a child's parent written with every batch that touches the child.
const PROPAGATION_ROWS: usize = 3;

/// Backoff between attempts while InfluxDB or Kafka is unavailable.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ConsumeError> {
    let kafka = &config.kafka;
    let mut consumer_config = client_config(kafka, CONSUMER_DEFAULTS);
    consumer_config.set("group.id", &kafka.group_id);
    let watch = tracking::RebalanceWatch::default();
    let consumer: tracking::WatchedConsumer = consumer_config.create_with_context(watch.clone())?;
    let dead_letters: FutureProducer<ClientEvents> =
        client_config(kafka, PRODUCER_DEFAULTS).create_with_context(ClientEvents::new("dead-letter"))?;
    let writer = InfluxWriter::new(&config.influxdb)?;
    // Each check waits for its server (up to 30 s): a shutdown must not wait for them.
    let checks = async {
        crate::kafka::ensure_topics(kafka, &[&kafka.topic, &kafka.dead_letter_topic]).await;
        crate::kafka::ensure_compacted_topic(kafka, &kafka.state_topic).await;
        if let Err(e) = writer.ensure_database().await {
            // The database may exist already (created by an admin); writing will tell.
            tracing::warn!("{e}");
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        () = checks => {}
    }
    let mut tracking = tracking::Tracking::new(config.track.clone(), StateStore::open(kafka)?);
    if !tracking.restore_all(&shutdown).await {
        return Ok(());
    }
    consumer.subscribe(&[&kafka.topic])?;
    tracing::info!(topic = %kafka.topic, group = %kafka.group_id, sites = tracking.tracker.sites().count(), "consuming");

    let mut totals = (0usize, 0usize, 0usize);
    let mut next_heartbeat = tokio::time::Instant::now() + config.consume.heartbeat;
    while !shutdown.is_cancelled() {
        let Some(mut messages) = next_messages(&consumer, &config, &shutdown, next_heartbeat).await else {
            break;
        };
        // Rebalances happen while messages are gathered (librdkafka serves them in `recv`).
        let rebalanced = watch.take();
        if !tracking.follow_assignment(&consumer, &kafka.topic, rebalanced, &mut messages, &shutdown).await {
            break;
        }
        let mut batch = Batch::default();
        for m in &messages {
            batch.add_tracked(
                m.origin.clone(),
                m.key.as_deref(),
                m.payload.as_deref(),
                Some(&mut tracking.tracker),
            );
        }
        batch.add_runs(&tracking.tracker.take_runs());
        // The last versions each touched child got from its parent (rewritten, idempotent).
        let rows: Vec<_> = batch
            .touched_sites()
            .filter_map(|(h, s)| tracking.tracker.site(h, s))
            .flat_map(|child| tracking.tracker.recent_propagation(child, PROPAGATION_ROWS))
            .collect();
        batch.add_propagation(&rows);
        if !store(&writer, &mut batch, &shutdown).await? {
            break; // shutdown before InfluxDB acknowledged: commit nothing
        }
        if !send_dead_letters(&dead_letters, &kafka.dead_letter_topic, &batch, &shutdown).await {
            break;
        }
        let changed: Vec<_> =
            batch.touched_sites().filter_map(|(h, s)| tracking.tracker.site(h, s).cloned()).collect();
        if !tracking.store.publish(changed, &shutdown).await {
            break; // the state is not saved: commit nothing
        }
        commit(&consumer, &batch);
        totals.0 += batch.points();
        totals.1 += batch.dead_letters().len();
        totals.2 += batch.skipped;
        if batch.messages() > 0 {
            tracing::debug!(points = batch.points(), dead = batch.dead_letters().len(), "batch committed");
        }
        if tokio::time::Instant::now() >= next_heartbeat {
            tracking.heartbeat(&writer, &config.consume, &shutdown).await;
            next_heartbeat = tokio::time::Instant::now() + config.consume.heartbeat;
        }
    }
    tracing::info!(points = totals.0, dead_letters = totals.1, skipped = totals.2, "consumer stopped");
    Ok(())
}

/// A message as received, owned, before it is decoded.
#[derive(Debug)]
pub(crate) struct Received {
    origin: Origin,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

/// Waits for a first message, then gathers more for up to `batch_linger` or `batch_max_points`
/// messages; returns early (possibly with none) at `heartbeat`. `None` on shutdown.
async fn next_messages(
    consumer: &tracking::WatchedConsumer,
    config: &Config,
    shutdown: &Shutdown,
    heartbeat: tokio::time::Instant,
) -> Option<Vec<Received>> {
    let mut messages = Vec::new();
    let mut deadline = heartbeat;
    while messages.len() < config.consume.batch_max_points {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = tokio::time::timeout_at(deadline, consumer.recv()) => r.ok(),
        };
        match received {
            None => break, // linger over, or time for a heartbeat
            Some(Ok(m)) => {
                let origin =
                    Origin { topic: m.topic().to_owned(), partition: m.partition(), offset: m.offset() };
                messages.push(Received {
                    origin,
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                });
                deadline = deadline.min(tokio::time::Instant::now() + config.consume.batch_linger);
            }
            Some(Err(e)) => {
                tracing::warn!("Kafka: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(RETRY_MIN) => {}
                }
            }
        }
    }
    Some(messages)
}

/// Writes the batch's points, retrying while InfluxDB is unavailable. Points InfluxDB refuses
/// become dead letters (found by writing the batch point by point). `Ok(false)` on shutdown.
async fn store(writer: &InfluxWriter, batch: &mut Batch, shutdown: &Shutdown) -> Result<bool, ConsumeError> {
    if batch.points() == 0 {
        return Ok(true);
    }
    match write_retrying(writer, batch.body(), shutdown).await? {
        Some(Ok(())) => return Ok(true),
        None => return Ok(false),
        Some(Err(rejected)) => tracing::warn!("{rejected}; writing the batch point by point"),
    }
    let points: Vec<(String, Origin)> = batch.each_point().map(|(l, o)| (l.to_owned(), o.clone())).collect();
    for (line, origin) in points {
        match write_retrying(writer, &line, shutdown).await? {
            Some(Ok(())) => {}
            Some(Err(WriteError::Rejected { body, .. })) => batch.refused(&line, &origin, &body),
            Some(Err(other)) => batch.refused(&line, &origin, &other.to_string()),
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// One body until it is stored or refused. `None` on shutdown; `Some(Err)` only for `Rejected`.
async fn write_retrying(
    writer: &InfluxWriter,
    body: &str,
    shutdown: &Shutdown,
) -> Result<Option<Result<(), WriteError>>, ConsumeError> {
    let mut delay = RETRY_MIN;
    loop {
        let error = match writer.write(body).await {
            Ok(()) => return Ok(Some(Ok(()))),
            Err(e @ WriteError::Rejected { .. }) => return Ok(Some(Err(e))),
            Err(WriteError::DatabaseMissing(detail)) => {
                tracing::warn!("{detail}: creating it");
                writer.ensure_database().await?;
                // Created, yet a write may still miss it (a proxy, a replica): back off below.
                WriteError::Unavailable(format!("database missing after creation: {detail}"))
            }
            Err(e @ WriteError::Unauthorized { .. }) => return Err(ConsumeError::Credentials(e)),
            Err(e) => e,
        };
        tracing::warn!("{error}; retrying in {delay:?}");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// Publishes the batch's dead letters and waits for their acknowledgement, retrying while Kafka
/// is unavailable. `false` on shutdown.
async fn send_dead_letters(
    producer: &FutureProducer<ClientEvents>,
    topic: &str,
    batch: &Batch,
    shutdown: &Shutdown,
) -> bool {
    for dead in batch.dead_letters() {
        tracing::warn!(topic = %dead.origin.topic, partition = dead.origin.partition,
            offset = dead.origin.offset, "dead letter: {}", dead.reason);
        // Infallible: plain strings and numbers.
        let payload = serde_json::to_vec(dead).expect("a dead letter always serializes");
        let mut delay = RETRY_MIN;
        loop {
            let mut record = FutureRecord::to(topic).payload(&payload);
            if let Some(key) = &dead.key {
                record = record.key(key);
            }
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return false,
                r = producer.send(record, Duration::from_secs(30)) => r,
            };
            match sent {
                Ok(_) => break,
                Err((e, _)) => {
                    tracing::warn!("dead-letter topic {topic}: {e}; retrying in {delay:?}")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }
    true
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
