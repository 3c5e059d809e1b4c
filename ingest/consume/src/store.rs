//! Storing a batch, each step only after the one before was acknowledged: its points to
//! InfluxDB (in pieces, [`WRITES_IN_FLIGHT`] at a time, retried while InfluxDB is away; refused
//! points found one by one and dead-lettered), its dead letters and the tracker states to Kafka
//! (sent at once, awaited together), then its offsets. The retried writes themselves are
//! [`crate::sink`]'s.

use std::time::Instant;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::batch::Batch;
use super::group::WatchedConsumer;
use super::influx::InfluxClient;
use super::metrics::ConsumeMetrics;
use super::sink::{publish_until_acknowledged, write_until_done, Refusal};
use super::{state, Interrupted, Prepared, Shared};
use statmsg_plumbing::kafka::publish::Publisher;
use statmsg_plumbing::shutdown::{Shutdown, Stopped};
use statmsg_track::SiteState;

/// Most InfluxDB write requests of one batch in flight at once.
pub const WRITES_IN_FLIGHT: usize = 4;

/// Fewest points of a write request when a batch is split to keep [`WRITES_IN_FLIGHT`] requests
/// busy: below this, a request costs InfluxDB more in overhead than it gains in parallelism.
const MIN_POINTS_PER_WRITE: usize = 500;

/// Points per write request: a batch of up to `max_points` points went as one request, which
/// InfluxDB stored on one core while the others idled (`./bench consume`: a batch of 5,000
/// points took 100 to 160 ms as one request); it is split so that [`WRITES_IN_FLIGHT`] requests
/// share it, none above `max_points` nor, unless the batch or `max_points` is smaller, below
/// [`MIN_POINTS_PER_WRITE`].
fn points_per_write(points: usize, max_points: usize) -> usize {
    points.div_ceil(WRITES_IN_FLIGHT).max(MIN_POINTS_PER_WRITE).min(max_points).max(1)
}

/// Stores a batch: points to InfluxDB, dead letters, tracker states (to `[kafka]
/// state_topic`), then the offsets: each only after the one before was acknowledged.
pub(super) async fn store(
    shared: &Shared,
    prepared: &mut Prepared,
    shutdown: &Shutdown,
) -> Result<Vec<usize>, Interrupted> {
    let Shared { config, consumer, publisher, influx, metrics } = shared;
    let per_write = points_per_write(prepared.batch.points(), config.consume.batch_max_points);
    let writing = Instant::now();
    let refused = write_points(influx, &mut prepared.batch, per_write, metrics, shutdown).await?;
    let written = writing.elapsed();
    let dead_letter_topic = &config.kafka.dead_letter_topic;
    send_dead_letters(publisher, dead_letter_topic, &prepared.batch, metrics, shutdown).await?;
    let publishing = Instant::now();
    send_states(publisher, &config.kafka.state_topic, &prepared.changed, metrics, shutdown).await?;
    let published = publishing.elapsed();
    metrics.state_publish_seconds.observe(published);
    let committing = Instant::now();
    commit(consumer, &prepared.batch);
    tracing::trace!(?written, ?published, committed = ?committing.elapsed(), "stored");
    Ok(refused)
}

/// Writes the batch's points in pieces of `max_points`, [`WRITES_IN_FLIGHT`] at a time,
/// retrying while InfluxDB is unavailable. A piece InfluxDB refuses is written point by point,
/// and the points it refuses become dead letters; their indices are returned.
async fn write_points(
    influx: &InfluxClient,
    batch: &mut Batch,
    max_points: usize,
    metrics: &ConsumeMetrics,
    shutdown: &Shutdown,
) -> Result<Vec<usize>, Interrupted> {
    let refused_pieces: Vec<std::ops::Range<usize>> = stream::iter(batch.pieces(max_points))
        .map(|(points, body)| async move {
            match write_until_done(influx, body, metrics, shutdown).await? {
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
        match write_until_done(influx, &line, metrics, shutdown).await? {
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

/// Publishes the changed sites' tracker states to the state topic (sent at once, awaited
/// together) until Kafka acknowledged every one. `Err(Stopped)` on shutdown (then nothing may be
/// committed).
async fn send_states(
    publisher: &Publisher,
    topic: &str,
    states: &[SiteState],
    metrics: &ConsumeMetrics,
    shutdown: &Shutdown,
) -> Result<(), Stopped> {
    publish_until_acknowledged(publisher, topic, &state::encode(states), metrics, shutdown).await
}

/// Commits the batch's offsets. A failed commit (typically a rebalance that moved the partition)
/// is logged: the new owner re-reads those messages and the idempotent writes absorb them.
fn commit(consumer: &WatchedConsumer, batch: &Batch) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_split_to_keep_the_writes_in_flight_busy() {
        // 5,000 points: four requests of 1,250, not one of 5,000.
        assert_eq!(points_per_write(5_000, 5_000), 1_250);
        assert_eq!(5_000usize.div_ceil(points_per_write(5_000, 5_000)), WRITES_IN_FLIGHT);
        // Never above the configured most points of a request.
        assert_eq!(points_per_write(100_000, 5_000), 5_000);
        assert_eq!(points_per_write(3_000, 400), 400);
        // Small batches are not cut into tiny requests.
        assert_eq!(points_per_write(1_200, 5_000), MIN_POINTS_PER_WRITE);
        assert_eq!(points_per_write(10, 5_000), MIN_POINTS_PER_WRITE);
        assert_eq!(points_per_write(0, 5_000), MIN_POINTS_PER_WRITE);
        assert_eq!(points_per_write(0, 1), 1);
    }
}
