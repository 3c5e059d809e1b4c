//! The sending half of the collector: the spool to Kafka, in order, one batch at a time; a
//! batch leaves the spool only after Kafka acknowledged all of it. While Kafka is away the
//! batch is retried with growing pauses and the reader keeps spooling.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;

use super::metrics::CollectMetrics;
use super::{CollectError, SharedSpool, SHUTDOWN_GRACE};
use statmsg_plumbing::config::KafkaSettings;
use statmsg_plumbing::kafka::publish::Publisher;
use statmsg_plumbing::kafka::topics::{ensure_topics, Role};
use statmsg_plumbing::retry::Backoff;
use statmsg_plumbing::shutdown::{AbortOnDrop, Shutdown};

/// Most entries in one batch (the bytes bound usually comes first).
const BATCH_ENTRIES: usize = 20_000;
/// First pause after a failed batch (then doubled, see [`Backoff`]).
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(500);
/// Longest idle wait for an append notification (a safety net, not the normal wake-up).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Sends until shutdown. Never loses an entry: on shutdown, unacknowledged entries stay in the
/// spool for the next run.
pub async fn run(
    kafka: &KafkaSettings,
    publisher: &Publisher,
    spool: &Arc<SharedSpool>,
    metrics: &CollectMetrics,
    batch_bytes: u64,
    shutdown: &Shutdown,
) -> Result<(), CollectError> {
    // The topic check waits for Kafka: it must hold up neither sending nor the shutdown.
    let _topic_check = AbortOnDrop({
        let kafka = kafka.clone();
        tokio::spawn(async move { ensure_topics(&kafka, Role::Collector).await })
    });
    let mut backoff = Backoff::new(FIRST_RETRY_WAIT);
    let mut failing_since: Option<std::time::Instant> = None;
    while !shutdown.is_cancelled() {
        let from = spool.acknowledged();
        let reading = spool.clone();
        let batch = blocking(move || reading.read(from, BATCH_ENTRIES, batch_bytes)).await?;
        if batch.damaged_bytes > 0 {
            tracing::error!(
                bytes = batch.damaged_bytes,
                "spool: damaged frames skipped (disk damage: the records in them are lost)"
            );
        }
        if batch.entries.is_empty() {
            if batch.end > from {
                let (spool, end) = (spool.clone(), batch.end);
                blocking(move || spool.acknowledge(end, 0)).await?;
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = spool.appended.notified() => {}
                _ = tokio::time::sleep(IDLE_WAIT) => {}
            }
            continue;
        }
        let count = batch.entries.len();
        let messages = batch.entries.into_iter().map(|e| (Some(e.key), e.payload));
        match publisher.publish_all(&kafka.topic, messages, shutdown, SHUTDOWN_GRACE).await {
            Ok(()) => {
                let (acknowledging, end) = (spool.clone(), batch.end);
                blocking(move || acknowledging.acknowledge(end, count as u64)).await?;
                metrics.messages_acknowledged.fetch_add(count as u64, Relaxed);
                if let Some(since) = failing_since.take() {
                    tracing::info!(after = ?since.elapsed(), "Kafka acknowledges again: sending the spool");
                }
                backoff.succeeded();
                tracing::debug!(messages = count, "acknowledged by Kafka");
            }
            Err(KafkaError::Canceled) if shutdown.is_cancelled() => break,
            Err(e) => {
                metrics.delivery_errors.fetch_add(1, Relaxed);
                let retry_wait = backoff.failed();
                failing_since.get_or_insert_with(std::time::Instant::now);
                let cause = publisher
                    .last_client_error()
                    .map(|c| format!("; last client error: {c}"))
                    .unwrap_or_default();
                tracing::error!(
                    messages = count, spooled_bytes = spool.used_bytes(),
                    "Kafka did not acknowledge: keeping the records in the spool, retrying in {retry_wait:?}: {e}{cause}"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(retry_wait) => {}
                }
            }
        }
    }
    Ok(())
}

/// Runs spool I/O (reads, fsyncs) off the async threads.
async fn blocking<T: Send + 'static, E: Into<CollectError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, CollectError> {
    tokio::task::spawn_blocking(move || f().map_err(Into::into))
        .await
        .map_err(|e| CollectError::Reader(e.to_string()))?
}
