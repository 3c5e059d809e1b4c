//! Kafka plumbing shared by the collector and the consumer: client properties and topic creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaSettings;

/// Base properties for every client, then statmsg's defaults for the role, then the user's
/// `[kafka.properties]`, which win.
pub fn client_config(settings: &KafkaSettings, role_defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    config.set("client.id", concat!("statmsg/", env!("CARGO_PKG_VERSION")));
    for (k, v) in role_defaults {
        config.set(*k, *v);
    }
    for (k, v) in &settings.properties {
        config.set(k, v);
    }
    config
}

/// Producer properties that make delivery at-least-once without reordering: idempotence
/// (acks=all, retries without duplicates or reordering inside the producer).
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "lz4"),
    ("linger.ms", "20"),
    ("queue.buffering.max.messages", "100000"),
];

/// Creates `topics` with `partitions` partitions where they do not exist yet. A broker that
/// refuses (no right to create topics, or a policy) is reported and tolerated: the topics may be
/// managed elsewhere.
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = match client_config(settings, &[]).create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("cannot create Kafka admin client to check topics: {e}");
            return;
        }
    };
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, settings.partitions, TopicReplication::Fixed(-1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    match admin.create_topics(&new, &options).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(topic) => tracing::info!(topic, "created Kafka topic"),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        tracing::warn!(topic, "cannot create Kafka topic: {code}")
                    }
                }
            }
        }
        Err(e) => tracing::warn!("cannot check Kafka topics: {e}"),
    }
}

/// Creates `topic` compacted (one value kept per key) where it does not exist yet; tolerated
/// like [`ensure_topics`] when the broker refuses.
pub async fn ensure_compacted_topic(settings: &KafkaSettings, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = match client_config(settings, &[]).create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("cannot create Kafka admin client to check topics: {e}");
            return;
        }
    };
    let new = NewTopic::new(topic, settings.partitions, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    match admin.create_topics([&new], &options).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(topic) => tracing::info!(topic, "created compacted Kafka topic"),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => tracing::warn!(topic, "cannot create Kafka topic: {code}"),
                }
            }
        }
        Err(e) => tracing::warn!("cannot check Kafka topics: {e}"),
    }
}
