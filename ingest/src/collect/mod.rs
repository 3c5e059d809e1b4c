//! The collector: tails the configured log files, parses every new line into a record and
//! publishes it to Kafka as a JSON [`Envelope`], keyed `hierarchy/site`.
//!
//! It owns the read positions ([`checkpoint`]). A file's position moves only after Kafka
//! acknowledged every record before it, so a crash, a kill or a broker outage re-sends at most
//! the unacknowledged records (at-least-once; the consumer's writes are idempotent) and loses
//! nothing that is still in the file.

pub mod checkpoint;
mod publish;
pub mod tail;

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use statmsg_schema::{Envelope, SourcePosition, SCHEMA_VERSION};
use thiserror::Error;

use self::checkpoint::{CheckpointError, Checkpoints};
use self::publish::Publisher;
use crate::config::{CollectSettings, KafkaSettings, Settings, StartAt};
use crate::shutdown::Shutdown;

/// What the collector needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub hierarchy: String,
    pub collect: CollectSettings,
    pub kafka: KafkaSettings,
}

impl From<&Settings> for Config {
    fn from(s: &Settings) -> Self {
        Config { hierarchy: s.hierarchy.clone(), collect: s.collect.clone(), kafka: s.kafka.clone() }
    }
}

#[derive(Debug, Error)]
pub enum CollectError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot create Kafka producer: {0}")]
    Producer(#[source] rdkafka::error::KafkaError),
}

/// How long a shutdown waits for outstanding acknowledgements before giving up on them (they
/// are then re-sent by the next run).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), CollectError> {
    let publisher = Publisher::new(&config.kafka).map_err(CollectError::Producer)?;
    crate::kafka::ensure_topics(&config.kafka, &[&config.kafka.topic]).await;
    let mut checkpoints = Checkpoints::open(&config.collect.state_dir)?;
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut first_scan = true;
    tracing::info!(topic = %config.kafka.topic, "collecting");
    while !shutdown.is_cancelled() {
        for path in discover(&config.collect.paths) {
            let start_at_end = first_scan && config.collect.start_at == StartAt::End;
            seen.insert(path.clone());
            // Drain the file a chunk at a time, so one busy file cannot hold memory unbounded.
            loop {
                match poll_file(&config, &publisher, &mut checkpoints, &path, start_at_end, &shutdown).await {
                    Ok(true) if !shutdown.is_cancelled() => continue,
                    Ok(_) => break,
                    Err(PollError::Checkpoint(e)) => return Err(e.into()),
                    Err(PollError::Read(e)) => {
                        tracing::warn!(path = %path.display(), "cannot read: {e}");
                        break;
                    }
                    Err(PollError::Publish(e)) => {
                        tracing::error!(path = %path.display(), "Kafka did not acknowledge; will retry: {e}");
                        break;
                    }
                }
            }
        }
        first_scan = false;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(config.collect.poll_interval) => {}
        }
    }
    publisher.flush(SHUTDOWN_GRACE);
    tracing::info!(files = seen.len(), "collector stopped");
    Ok(())
}

/// Largest payload sent as is: below librdkafka's and the broker's default message size limit
/// (1,000,000 bytes), so that one record can never block a file.
pub const MAX_PAYLOAD_BYTES: usize = 900_000;

/// Bytes of text kept of a record too large to send.
const TRUNCATED_TEXT_BYTES: usize = 64 * 1024;

/// The JSON payload of an envelope. A record whose payload would exceed [`MAX_PAYLOAD_BYTES`]
/// is sent with its text cut and a `statmsg_error` saying so (the consumer dead-letters it), and
/// the envelope's `truncated` holds the original payload size: never dropped, never blocking.
fn encode_bounded(mut envelope: Envelope<'_>) -> Vec<u8> {
    // Infallible: the envelope holds only strings, numbers and string-keyed structs.
    let payload = serde_json::to_vec(&envelope).expect("an envelope always serializes");
    if payload.len() <= MAX_PAYLOAD_BYTES {
        return payload;
    }
    let text = &envelope.record.text;
    let mut cut = text.len().min(TRUNCATED_TEXT_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    envelope.record.text = Cow::Owned(text[..cut].to_owned());
    envelope.record.statmsg = None;
    envelope.record.event = None;
    envelope.record.statmsg_error = Some(Cow::Owned(format!(
        "record of {} bytes is too large for Kafka: text cut to {cut} bytes",
        payload.len()
    )));
    envelope.truncated = Some(payload.len() as u64);
    serde_json::to_vec(&envelope).expect("an envelope always serializes")
}

/// Files matching the configured globs, sorted, each once.
fn discover(patterns: &[glob::Pattern]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = patterns
        .iter()
        .filter_map(|p| glob::glob(p.as_str()).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.dedup();
    files
}

#[cfg(test)]
mod tests {
    use statmsg_schema::{Format, Record};

    use super::*;

    #[test]
    fn an_oversized_record_is_cut_and_marked_not_dropped() {
        let text = "é".repeat(MAX_PAYLOAD_BYTES);
        let record = Record {
            time: None,
            component: None,
            thread: None,
            text: Cow::Borrowed(&text),
            format: Format::Unframed,
            level: None,
            statmsg: None,
            statmsg_error: None,
            event: None,
        };
        let envelope = Envelope {
            schema: SCHEMA_VERSION,
            hierarchy: "h".into(),
            site: "S".into(),
            host: "x".into(),
            source: SourcePosition { path: "a".into(), offset: 0, file: None },
            truncated: None,
            record,
        };
        let payload = encode_bounded(envelope);
        assert!(payload.len() < MAX_PAYLOAD_BYTES);
        let back: Envelope<'_> = serde_json::from_slice(&payload).unwrap();
        assert!(back.truncated.unwrap() > 2 * MAX_PAYLOAD_BYTES as u64);
        assert!(back.record.statmsg_error.unwrap().contains("too large for Kafka"));
        assert_eq!(back.record.text.len(), TRUNCATED_TEXT_BYTES);
    }
}

#[derive(Debug, Error)]
enum PollError {
    #[error(transparent)]
    Read(std::io::Error),
    #[error(transparent)]
    Publish(rdkafka::error::KafkaError),
    #[error(transparent)]
    Checkpoint(CheckpointError),
}

/// Reads, publishes and checkpoints one chunk of `path`. `Ok(true)` when it made progress and
/// more may be waiting.
async fn poll_file(
    config: &Config,
    publisher: &Publisher,
    checkpoints: &mut Checkpoints,
    path: &std::path::Path,
    start_at_end: bool,
    shutdown: &Shutdown,
) -> Result<bool, PollError> {
    let key = path.to_string_lossy().into_owned();
    let position = checkpoints.get(&key);
    let max = config.collect.max_read_bytes;
    let read_path = path.to_path_buf();
    let chunk = tokio::task::spawn_blocking(move || {
        tail::read_new(&read_path, position, max, |len| if start_at_end { len } else { 0 })
    })
    .await
    .map_err(|e| PollError::Read(std::io::Error::other(e)))?
    .map_err(PollError::Read)?;
    let Some(chunk) = chunk else { return Ok(false) };
    if let Some(why) = chunk.restarted {
        tracing::warn!(path = %key, "{why}: reading it from the beginning");
    }
    let mut messages = Vec::new();
    let file_id = format!("{}:{}", chunk.id.device, chunk.id.index);
    let end = chunk.for_each_record(max, |offset, record| {
        let site = if config.collect.site.is_empty() {
            record.statmsg.as_ref().map_or(Cow::Borrowed(""), |m| Cow::Owned(m.site.to_string()))
        } else {
            Cow::Borrowed(config.collect.site.as_str())
        };
        let envelope = Envelope {
            schema: SCHEMA_VERSION,
            hierarchy: Cow::Borrowed(&config.hierarchy),
            site,
            host: Cow::Borrowed(&config.collect.host),
            source: SourcePosition { path: Cow::Borrowed(&key), offset, file: Some(Cow::Borrowed(&file_id)) },
            truncated: None,
            // Cheap: the record's strings borrow from the chunk.
            record: record.clone(),
        };
        messages.push((envelope.key(), encode_bounded(envelope)));
    });
    let count = messages.len();
    publisher
        .publish_all(messages.into_iter(), shutdown, SHUTDOWN_GRACE)
        .await
        .map_err(PollError::Publish)?;
    checkpoints.save(&key, chunk.position(end)).map_err(PollError::Checkpoint)?;
    if count > 0 {
        tracing::debug!(path = %key, records = count, offset = end, "published");
    }
    Ok(count > 0)
}
