//! The dead-letter topic for the people who run statmsg: `statmsg dlq list` shows what the
//! consumer could not store and why (reason, where it came from, the first bytes, counts per
//! reason); `statmsg dlq replay` sends chosen dead letters back through the consumer's path once
//! the cause is fixed: a message to the records topic (the consumer decodes it again, and a record
//! becomes the same point as before: idempotent), a refused point to InfluxDB through the
//! consumer's writer. The topic itself is never changed: a replayed letter stays listed.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::batch::DeadKind;
use super::influx::InfluxClient;
use super::metrics::ConsumeMetrics;
use crate::settings::InfluxSettings;
use statmsg_plumbing::config::KafkaSettings;
use statmsg_plumbing::kafka::publish::Publisher;
use statmsg_plumbing::kafka::{client_config, ClientEvents};
use statmsg_plumbing::shutdown::Shutdown;

/// Longest wait for the broker's metadata and for the next message while reading the topic.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of a payload shown by `list`.
pub const PREVIEW_BYTES: usize = 80;

/// What `dlq` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub kafka: KafkaSettings,
    pub influxdb: InfluxSettings,
}

impl From<&crate::Config> for Config {
    fn from(s: &crate::Config) -> Self {
        Config { kafka: s.kafka.clone(), influxdb: s.influxdb.clone() }
    }
}

#[derive(Debug, Error)]
pub enum DlqError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the dead-letter topic {0} does not exist (nothing was ever dead-lettered, or another topic is configured)")]
    NoTopic(String),
    #[error(transparent)]
    Consume(#[from] super::ConsumeError),
    #[error("shut down before the replay was acknowledged; what was sent is idempotent, run it again")]
    Stopped,
}

/// A dead letter as read back from the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Letter {
    /// Where it sits in the dead-letter topic.
    pub partition: i32,
    pub offset: i64,
    pub kind: DeadKind,
    pub reason: String,
    /// Where the message came from (for a derived point: the site's last message of its batch).
    pub origin_topic: String,
    pub origin_partition: i32,
    pub origin_offset: i64,
    pub payload: String,
    #[serde(skip)]
    pub key: Option<Vec<u8>>,
}

/// A dead letter's payload as the consumer writes it ([`super::batch::DeadLetter`]).
#[derive(Debug, Deserialize)]
struct Stored {
    #[serde(default)]
    kind: Option<DeadKind>,
    reason: String,
    topic: String,
    partition: i32,
    offset: i64,
    payload: String,
}

impl Letter {
    /// Reads one message of the dead-letter topic; one that is not a dead letter is listed as
    /// such (never skipped).
    pub fn decode(partition: i32, offset: i64, key: Option<&[u8]>, payload: &[u8]) -> Letter {
        let key = key.map(<[u8]>::to_vec);
        match serde_json::from_slice::<Stored>(payload) {
            Ok(s) => Letter {
                partition,
                offset,
                // Letters written before `kind` existed: a refused point says so in its reason.
                kind: s.kind.unwrap_or(if s.reason.starts_with("InfluxDB refused the point") {
                    DeadKind::Point
                } else {
                    DeadKind::Message
                }),
                reason: s.reason,
                origin_topic: s.topic,
                origin_partition: s.partition,
                origin_offset: s.offset,
                payload: s.payload,
                key,
            },
            Err(e) => Letter {
                partition,
                offset,
                kind: DeadKind::Derived, // not replayable: not a letter statmsg wrote
                reason: format!("not a dead letter statmsg wrote: {e}"),
                origin_topic: String::new(),
                origin_partition: -1,
                origin_offset: -1,
                payload: String::from_utf8_lossy(payload).into_owned(),
                key,
            },
        }
    }

    /// The payload's first [`PREVIEW_BYTES`], control characters escaped (log text is hostile,
    /// and this goes to a terminal).
    pub fn preview(&self) -> String {
        let mut end = self.payload.len().min(PREVIEW_BYTES);
        while !self.payload.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < self.payload.len() { "…" } else { "" };
        format!("{}{more}", self.payload[..end].escape_debug())
    }
}

/// Reads the whole dead-letter topic, as it is now, in order per partition (blocking).
pub fn read_all(kafka: &KafkaSettings) -> Result<Vec<Letter>, DlqError> {
    let mut config =
        client_config(kafka, &[("enable.auto.commit", "false"), ("enable.partition.eof", "false")]);
    // Required by the client; no offsets are committed with it.
    config.set("group.id", format!("{}-dlq-reader", kafka.group_id));
    let reader: BaseConsumer<ClientEvents> = config.create_with_context(ClientEvents::new("dlq-reader"))?;
    let topic = &kafka.dead_letter_topic;
    let metadata = reader.fetch_metadata(Some(topic), READ_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(DlqError::NoTopic(topic.clone()));
    }
    let mut ends = BTreeMap::new();
    let mut list = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = reader.fetch_watermarks(topic, p, READ_TIMEOUT)?;
        if high > low {
            ends.insert(p, high);
            list.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    let mut letters = Vec::new();
    if ends.is_empty() {
        return Ok(letters);
    }
    reader.assign(&list)?;
    while !ends.is_empty() {
        let message = match reader.poll(READ_TIMEOUT) {
            Some(m) => m?,
            None => {
                return Err(
                    KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::RequestTimedOut).into()
                )
            }
        };
        let (p, o) = (message.partition(), message.offset());
        letters.push(Letter::decode(p, o, message.key(), message.payload().unwrap_or_default()));
        if ends.get(&p).is_some_and(|&end| o + 1 >= end) {
            ends.remove(&p);
        }
    }
    Ok(letters)
}

/// Letters per reason, most frequent first.
pub fn counts_per_reason(letters: &[Letter]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for letter in letters {
        *counts.entry(letter.reason.as_str()).or_default() += 1;
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().map(|(r, n)| (r.to_owned(), n)).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// Messages sent back to the records topic (and acknowledged).
    pub messages: usize,
    /// Points InfluxDB stored this time.
    pub points: usize,
    /// Points InfluxDB refused again, with its answer.
    pub refused: Vec<(i64, String)>,
    /// Letters not replayed: derived points (the tracker derives them again) and messages that
    /// are not statmsg's dead letters.
    pub skipped: usize,
}

/// Sends the letters whose reason contains `reason` (all when `None`) back through the
/// consumer's path. Each send or write is retried while its server is unavailable, as the
/// consumer does.
pub async fn replay(
    config: &Config,
    letters: &[Letter],
    reason: Option<&str>,
    shutdown: &Shutdown,
) -> Result<Replayed, DlqError> {
    let wanted = |l: &Letter| match reason {
        Some(r) => l.reason.contains(r),
        None => true,
    };
    let chosen: Vec<&Letter> = letters.iter().filter(|l| wanted(l)).collect();
    let mut done = Replayed::default();
    let metrics = ConsumeMetrics::default();
    let messages: Vec<(Option<Vec<u8>>, Vec<u8>)> = chosen
        .iter()
        .filter(|l| l.kind == DeadKind::Message && !l.origin_topic.is_empty())
        .map(|l| (l.key.clone(), l.payload.clone().into_bytes()))
        .collect();
    if !messages.is_empty() {
        let publisher = Publisher::new(&config.kafka, "producer")?;
        super::sink::publish_until_acknowledged(
            &publisher,
            &config.kafka.topic,
            &messages,
            &metrics,
            shutdown,
        )
        .await
        .map_err(|_| DlqError::Stopped)?;
        done.messages = messages.len();
    }
    let points: Vec<&&Letter> = chosen.iter().filter(|l| l.kind == DeadKind::Point).collect();
    if !points.is_empty() {
        let influx = InfluxClient::new(&config.influxdb)?;
        for letter in points {
            match super::sink::write_until_done(&influx, &letter.payload, &metrics, shutdown).await {
                Err(_) => return Err(DlqError::Stopped),
                Ok(Ok(())) => done.points += 1,
                Ok(Err(super::sink::Refusal::Points(why))) => done.refused.push((letter.offset, why)),
                Ok(Err(super::sink::Refusal::Fatal(e))) => return Err(e.into()),
            }
        }
    }
    done.skipped = chosen.len() - done.messages - done.points - done.refused.len();
    Ok(done)
}

/// Writes the list as a table, then the counts per reason.
pub fn write_list(letters: &[Letter], out: &mut impl std::io::Write) -> std::io::Result<()> {
    for l in letters {
        writeln!(
            out,
            "{}/{}  {:?}  from {}/{}@{}  {}\n    {}",
            l.partition,
            l.offset,
            l.kind,
            l.origin_topic,
            l.origin_partition,
            l.origin_offset,
            l.reason.escape_debug(),
            l.preview()
        )?;
    }
    writeln!(out, "{} dead letters; per reason:", letters.len())?;
    for (reason, count) in counts_per_reason(letters) {
        writeln!(out, "{count:>8}  {}", reason.escape_debug())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_decode_with_their_kind_and_old_ones_are_inferred() {
        let point = br#"{"kind":"point","reason":"InfluxDB refused the point: conflict","topic":"t","partition":2,"offset":7,"payload":"statmsg,site=A x=1i 5\n"}"#;
        let l = Letter::decode(0, 3, None, point);
        assert_eq!((l.kind, l.origin_partition, l.origin_offset), (DeadKind::Point, 2, 7));
        let old = br#"{"reason":"InfluxDB refused the point: x","topic":"t","partition":0,"offset":1,"payload":"p"}"#;
        assert_eq!(Letter::decode(0, 4, None, old).kind, DeadKind::Point);
        let old = br#"{"reason":"not a statmsg envelope: eof","topic":"t","partition":0,"offset":1,"payload":"{x"}"#;
        assert_eq!(Letter::decode(0, 5, Some(b"h/S"), old).kind, DeadKind::Message);
        let alien = Letter::decode(1, 0, None, b"\x1b[31mnot json");
        assert_eq!(alien.kind, DeadKind::Derived);
        assert!(alien.reason.starts_with("not a dead letter statmsg wrote"));
        assert_eq!(alien.preview(), "\\u{1b}[31mnot json");
    }

    #[test]
    fn previews_are_short_escaped_and_cut_at_a_character() {
        let long = Letter::decode(
            0,
            0,
            None,
            format!(
                r#"{{"reason":"r","topic":"t","partition":0,"offset":0,"payload":"{}"}}"#,
                "é".repeat(60)
            )
            .as_bytes(),
        );
        let preview = long.preview();
        assert!(preview.ends_with('…'));
        assert_eq!(preview.chars().count(), PREVIEW_BYTES / 2 + 1);
        let newline = Letter::decode(
            0,
            0,
            None,
            br#"{"reason":"r","topic":"t","partition":0,"offset":0,"payload":"a\nb"}"#,
        );
        assert_eq!(newline.preview(), "a\\nb");
    }

    #[test]
    fn counts_per_reason_most_frequent_first() {
        let letter = |reason: &str| {
            Letter::decode(
                0,
                0,
                None,
                format!(r#"{{"reason":"{reason}","topic":"t","partition":0,"offset":0,"payload":""}}"#)
                    .as_bytes(),
            )
        };
        let letters = [letter("b"), letter("a"), letter("b"), letter("c")];
        assert_eq!(
            counts_per_reason(&letters),
            vec![("b".to_owned(), 2), ("a".to_owned(), 1), ("c".to_owned(), 1)]
        );
        let mut out = Vec::new();
        write_list(&letters, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("4 dead letters; per reason:\n       2  b\n"), "{text}");
    }
}
