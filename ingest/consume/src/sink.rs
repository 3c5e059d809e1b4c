//! Writes retried until acknowledged: a body until InfluxDB stored or refused it, messages until
//! Kafka acknowledged every one. The one place the consumer waits for a server to take what it
//! sends; storing a batch, the tracker states and `statmsg dlq replay` all go through it.

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::influx::{InfluxClient, WriteError};
use super::metrics::ConsumeMetrics;
use super::ConsumeError;
use statmsg_plumbing::kafka::publish::Publisher;
use statmsg_plumbing::retry::{until_done, Failure};
use statmsg_plumbing::shutdown::{Shutdown, Stopped};

/// First pause after a failed attempt (InfluxDB or Kafka unavailable), then doubled.
pub(crate) const FIRST_RETRY_WAIT: Duration = Duration::from_millis(200);

/// Why a write will not succeed by trying again.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// InfluxDB refused the points themselves.
    Points(String),
    /// Nothing will work until the configuration or the server's rights change.
    Fatal(ConsumeError),
}

/// One body until InfluxDB stored or refused it.
pub(crate) async fn write_until_done(
    influx: &InfluxClient,
    body: &str,
    metrics: &ConsumeMetrics,
    shutdown: &Shutdown,
) -> Result<Result<(), Refusal>, Stopped> {
    until_done(shutdown, "InfluxDB", FIRST_RETRY_WAIT, || async {
        let writing = Instant::now();
        let written = influx.write(body).await;
        metrics.write_seconds.observe(writing.elapsed());
        match written {
            Ok(()) => Ok(()),
            Err(WriteError::Rejected { body, .. }) => Err(Failure::Final(Refusal::Points(body))),
            Err(e @ WriteError::Unauthorized { .. }) => {
                Err(Failure::Final(Refusal::Fatal(ConsumeError::Credentials(e))))
            }
            Err(WriteError::DatabaseMissing(detail) | WriteError::PolicyMissing(detail)) => {
                tracing::warn!("{detail}: setting up the database");
                match super::retention::setup(influx).await {
                    // Created, yet a write may still miss it (a proxy, a replica), or the long
                    // policy is one statmsg does not create (`retention_policy`): back off.
                    Ok(_) => Err(Failure::Transient(format!("missing after set-up: {detail}"))),
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
