//! statmsg's Kafka topics: which a role needs ([`topics_of`]), creating the missing ones and
//! checking those that exist against what statmsg's guarantees need of them ([`check_topics`]):
//! the replicas configured (`kafka.replication_factor`), `min.insync.replicas` of at least 2 on a
//! cluster of 3 or more brokers (an acknowledged record then lives on two of them), and a
//! compacted tracker state topic (one state per site kept for ever, not deleted by retention).
//! A check changes nothing that exists: it says what to change, and how ([`unfit`], pure).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::{client_config, ClientEvents, EAGER_CONNECTIONS};
use crate::config::KafkaSettings;

/// What a topic check found of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicState {
    /// Created by this check.
    Created,
    /// It existed already and fits; its settings are left as they are.
    Present,
    /// It existed already but does not fit statmsg's guarantees: what to change, one finding
    /// each, with the command that changes it ([`unfit`]). Nothing is changed.
    Unfit(Vec<String>),
    /// It existed already; its replicas or settings could not be read: why.
    Unchecked(String),
    /// The broker refused to create it (no right to create topics, or a policy): its reason.
    Refused(String),
}

/// Who needs the topics of [`topics_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends to the records topic only.
    Collector,
    /// Reads the records topic, writes the dead letters and the tracker states.
    Consumer,
}

/// The topics of statmsg's configuration: the records topic, and for a consumer also the
/// dead-letter topic (`partitions` partitions each) and the tracker state topic, compacted (one
/// value kept per key) with one partition: its readers read every partition of it, so one is
/// enough for its few small messages (one per site) and spares the broker the work of creating
/// more (`./bench consume`, whose every run named a new state topic: a drain cost Kafka 0.16 to
/// 0.37 s of CPU with six, 0.13 to 0.16 s with one).
///
/// Each has `kafka.replication_factor` replicas (the broker's `default.replication.factor`
/// without it) and, with 3 or more, `min.insync.replicas` 2 of its own (a topic setting stays
/// with the topic whatever the brokers' defaults).
pub fn topics_of(settings: &KafkaSettings, role: Role) -> Vec<NewTopic<'_>> {
    let new = |topic, partitions| {
        let replicas = TopicReplication::Fixed(settings.replication_factor.unwrap_or(-1));
        let topic = NewTopic::new(topic, partitions, replicas);
        match settings.replication_factor {
            Some(replicas) if replicas >= 3 => topic.set("min.insync.replicas", "2"),
            _ => topic,
        }
    };
    let mut topics = vec![new(&settings.topic, settings.partitions)];
    if role == Role::Consumer {
        topics.push(new(&settings.dead_letter_topic, settings.partitions));
        topics.push(new(&settings.state_topic, 1).set("cleanup.policy", "compact"));
    }
    topics
}

/// Creates what of `role`'s topics does not exist yet, saying what it did and, for a consumer,
/// what an existing topic lacks. A broker that refuses (no right to create topics, or a policy)
/// or cannot be asked is reported and tolerated: the topics may be managed elsewhere (`statmsg
/// kafka setup`, run by an admin).
pub async fn ensure_topics(settings: &KafkaSettings, role: Role) {
    match check_topics(settings, role).await {
        Ok(found) => {
            for (topic, state) in found {
                match state {
                    TopicState::Created => tracing::info!(topic, "created Kafka topic"),
                    TopicState::Present => {}
                    TopicState::Unfit(findings) => {
                        for finding in findings {
                            tracing::warn!(topic, "Kafka topic unfit for statmsg's guarantees: {finding}");
                        }
                    }
                    TopicState::Unchecked(why) => tracing::warn!(topic, "cannot check Kafka topic: {why}"),
                    TopicState::Refused(why) => tracing::warn!(topic, "cannot create Kafka topic: {why}"),
                }
            }
        }
        Err(e) => tracing::warn!("cannot check Kafka topics: {e}"),
    }
}

/// Creates what of `role`'s topics ([`topics_of`]) does not exist yet and waits until the broker
/// serves what it created; for a consumer, checks what existed ([`unfit`]: a collector on a site
/// server needs only to send, and may lack the right to read topics' settings). Says what it
/// found of each topic. An error means the broker could not be asked at all.
pub async fn check_topics(
    settings: &KafkaSettings,
    role: Role,
) -> Result<Vec<(String, TopicState)>, KafkaError> {
    let admin: AdminClient<ClientEvents> =
        client_config(settings, EAGER_CONNECTIONS).create_with_context(ClientEvents::new("topic-check"))?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let outcome = serving(&admin, admin.create_topics(&topics_of(settings, role), &options)).await;
    let mut found: Vec<(String, TopicState)> = outcome?
        .into_iter()
        .map(|result| match result {
            Ok(topic) => (topic, TopicState::Created),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => (topic, TopicState::Present),
            Err((topic, code)) => (topic, TopicState::Refused(code.to_string())),
        })
        .collect();
    let named = |wanted: &TopicState| -> Vec<String> {
        found.iter().filter(|(_, state)| state == wanted).map(|(topic, _)| topic.clone()).collect()
    };
    let created = named(&TopicState::Created);
    let present = if role == Role::Consumer { named(&TopicState::Present) } else { Vec::new() };
    let mut settings_of =
        if present.is_empty() { HashMap::new() } else { topic_settings(&admin, &present).await };
    // A topic just created is not served for some milliseconds: whoever reads or writes it then
    // gets "not leader" and retries after a pause far longer than the wait. The replicas of
    // those present are read there too: librdkafka's metadata call blocks.
    let served = tokio::task::spawn_blocking(move || {
        wait_until_served(&admin, &created);
        let replicas: Vec<_> =
            present.into_iter().map(|topic| (replicas_of(&admin, &topic), topic)).collect();
        (admin, replicas)
    })
    .await;
    let replicas = match served {
        Ok((admin, replicas)) => {
            // Destroying a librdkafka client waits for its threads: about 0.1 s that would block
            // this task (and, at a consumer's start, whatever it waits for together with the check).
            drop(tokio::task::spawn_blocking(move || drop(admin)));
            replicas
        }
        Err(e) => {
            tracing::warn!("topic check: waiting for the topics created: {e}");
            Vec::new()
        }
    };
    for (replicas, topic) in replicas {
        let facts = replicas.and_then(|replicas| {
            let (min_insync_replicas, cleanup_policy) =
                settings_of.remove(&topic).unwrap_or(Err("its settings: no answer".into()))?;
            Ok(TopicFacts { replicas, min_insync_replicas, cleanup_policy })
        });
        let state = match facts {
            Ok(facts) => {
                match unfit(&topic, topic == settings.state_topic, &facts, settings.replication_factor) {
                    findings if findings.is_empty() => TopicState::Present,
                    findings => TopicState::Unfit(findings),
                }
            }
            Err(why) => TopicState::Unchecked(why),
        };
        if let Some((_, found)) = found.iter_mut().find(|(name, _)| *name == topic) {
            *found = state;
        }
    }
    Ok(found)
}

/// Waits (at most [`SERVED_WAIT`]) until every partition of `topics` answers for its offsets:
/// the metadata names a leader a few milliseconds before that broker serves the partition, and
/// whoever came in between was told "not leader for partition".
fn wait_until_served(admin: &AdminClient<ClientEvents>, topics: &[String]) {
    let deadline = std::time::Instant::now() + SERVED_WAIT;
    let client = admin.inner();
    for topic in topics {
        let partitions = loop {
            let known = client.fetch_metadata(Some(topic), Duration::from_secs(1)).ok().and_then(|m| {
                let t = m.topics().first()?;
                (t.error().is_none() && !t.partitions().is_empty())
                    .then(|| t.partitions().iter().map(|p| p.id()).collect::<Vec<i32>>())
            });
            match known {
                Some(partitions) => break partitions,
                None if std::time::Instant::now() < deadline => std::thread::sleep(SERVED_POLL),
                None => return,
            }
        };
        for partition in partitions {
            while client.fetch_watermarks(topic, partition, Duration::from_secs(1)).is_err() {
                if std::time::Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(SERVED_POLL);
            }
        }
    }
}

/// How long a topic check waits for the partitions it created to be served.
const SERVED_WAIT: Duration = Duration::from_secs(5);

/// Between two looks at a topic just created.
const SERVED_POLL: Duration = Duration::from_millis(5);

/// What a topic check read of an existing topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFacts {
    /// The fewest replicas any of its partitions has.
    pub replicas: usize,
    /// Its `min.insync.replicas` (its own, or the broker's default it inherits).
    pub min_insync_replicas: Option<i32>,
    /// Its `cleanup.policy` (`delete`, `compact` or `compact,delete`).
    pub cleanup_policy: Option<String>,
}

/// What an existing topic lacks for statmsg's guarantees, one finding each with what to change:
/// fewer replicas than `wanted_replicas` (`kafka.replication_factor`); with 3 replicas or more,
/// `min.insync.replicas` below 2 (an acknowledged record would live on one broker); a
/// `min.insync.replicas` above its replicas (every write refused); and for the tracker state
/// topic (`state`) a cleanup policy other than `compact` alone. Empty when it fits.
pub fn unfit(topic: &str, state: bool, facts: &TopicFacts, wanted_replicas: Option<i32>) -> Vec<String> {
    let alter = |setting: &str| {
        format!(
            "kafka-configs.sh --bootstrap-server BROKER --alter --entity-type topics \
             --entity-name {topic} --add-config {setting}"
        )
    };
    let replicas = facts.replicas;
    let mut findings = Vec::new();
    if let Some(wanted) = wanted_replicas.and_then(|w| usize::try_from(w).ok()) {
        if replicas < wanted {
            findings.push(format!(
                "{replicas} replica(s) a partition, {wanted} configured (kafka.replication_factor): a \
                 broker's loss can lose or stop it; add replicas with kafka-reassign-partitions.sh"
            ));
        }
    }
    if let Some(min_isr) = facts.min_insync_replicas {
        if replicas >= 3 && min_isr < 2 {
            findings.push(format!(
                "min.insync.replicas {min_isr} with {replicas} replicas: a record is acknowledged once \
                 one broker has it, and lost with that broker; {}",
                alter("min.insync.replicas=2")
            ));
        }
        if usize::try_from(min_isr).is_ok_and(|m| m > replicas) {
            findings.push(format!(
                "min.insync.replicas {min_isr} above its {replicas} replica(s): every write is refused; {}",
                alter(&format!("min.insync.replicas={}", replicas.clamp(1, 2)))
            ));
        }
    }
    if state {
        let policy = facts.cleanup_policy.as_deref().unwrap_or("unknown");
        let policies: Vec<&str> = policy.split(',').map(str::trim).collect();
        if policies != ["compact"] {
            findings.push(format!(
                "cleanup.policy {policy}: the tracker state topic keeps each site's last state for \
                 ever, compacted and never deleted by time (a consumer that starts after the \
                 retention would forget runs in progress); {}",
                alter("cleanup.policy=compact")
            ));
        }
    }
    findings
}

/// `min.insync.replicas` and `cleanup.policy` of `topics`, in one DescribeConfigs request.
async fn topic_settings(
    admin: &AdminClient<ClientEvents>,
    topics: &[String],
) -> HashMap<String, Result<(Option<i32>, Option<String>), String>> {
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let answers = match serving(admin, admin.describe_configs(&resources, &options)).await {
        Ok(answers) => answers,
        Err(e) => return topics.iter().map(|t| (t.clone(), Err(format!("its settings: {e}")))).collect(),
    };
    topics
        .iter()
        .zip(answers)
        .map(|(topic, answer)| {
            let read = answer.map_err(|code| format!("its settings: {code}")).map(|settings| {
                let value = |name: &str| settings.get(name).and_then(|entry| entry.value.clone());
                (value("min.insync.replicas").and_then(|v| v.parse().ok()), value("cleanup.policy"))
            });
            (topic.clone(), read)
        })
        .collect()
}

/// The fewest replicas a partition of `topic` has, from the cluster's metadata (blocks).
fn replicas_of(admin: &AdminClient<ClientEvents>, topic: &str) -> Result<usize, String> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("its replicas: {e}"))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err("its replicas: not in the metadata".into());
    };
    if let Some(error) = found.error() {
        return Err(format!("its replicas: {}", RDKafkaErrorCode::from(error)));
    }
    found
        .partitions()
        .iter()
        .map(|p| p.replicas().len())
        .min()
        .ok_or_else(|| "its replicas: no partitions".to_string())
}

/// Awaits an admin request while handing its client's log lines and errors on.
async fn serving<T>(admin: &AdminClient<ClientEvents>, request: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(request);
    let mut serve = tokio::time::interval(ADMIN_EVENTS_EVERY);
    let outcome = loop {
        tokio::select! {
            outcome = &mut request => break outcome,
            _ = serve.tick() => serve_main_queue(admin.inner()),
        }
    };
    serve_main_queue(admin.inner());
    outcome
}

/// How often the topic check hands its client's log lines and errors on.
const ADMIN_EVENTS_EVERY: Duration = Duration::from_millis(250);

/// Hands what waits on `client`'s main queue (librdkafka's log lines and client errors) to its
/// [`ClientEvents`]. Producers and consumers do this whenever they are polled; rdkafka's admin
/// client never polls that queue, so without this a login the broker refused during the topic
/// check would go unsaid (and its log lines pile up until the client is dropped).
#[allow(unsafe_code)]
fn serve_main_queue(client: &rdkafka::client::Client<ClientEvents>) {
    use rdkafka::bindings as rd;
    use std::ffi::CStr;

    let events = client.context();
    // SAFETY: the queue handle and each event are owned here and destroyed once read; the strings
    // an event hands out are read (copied) before the event is destroyed; librdkafka's queues are
    // thread-safe and the client outlives this call.
    unsafe {
        let queue = rd::rd_kafka_queue_get_main(client.native_ptr());
        if queue.is_null() {
            return;
        }
        loop {
            let event = rd::rd_kafka_queue_poll(queue, 0);
            if event.is_null() {
                break;
            }
            match rd::rd_kafka_event_type(event) {
                rd::RD_KAFKA_EVENT_LOG => {
                    let (mut facility, mut message, mut level) = (std::ptr::null(), std::ptr::null(), 0);
                    if rd::rd_kafka_event_log(event, &mut facility, &mut message, &mut level) == 0
                        && !facility.is_null()
                        && !message.is_null()
                    {
                        let facility = CStr::from_ptr(facility).to_string_lossy();
                        let message = CStr::from_ptr(message).to_string_lossy();
                        events.log(syslog_level(level), facility.trim(), message.trim());
                    }
                }
                rd::RD_KAFKA_EVENT_ERROR => {
                    let code: RDKafkaErrorCode = rd::rd_kafka_event_error(event).into();
                    let reason = rd::rd_kafka_event_error_string(event);
                    let reason = if reason.is_null() {
                        code.to_string()
                    } else {
                        CStr::from_ptr(reason).to_string_lossy().into()
                    };
                    events.error(KafkaError::Global(code), reason.trim());
                }
                _ => {}
            }
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
    }
}

/// librdkafka's log levels are syslog's (0 emergency .. 7 debug).
fn syslog_level(level: i32) -> RDKafkaLogLevel {
    match level {
        i32::MIN..=0 => RDKafkaLogLevel::Emerg,
        1 => RDKafkaLogLevel::Alert,
        2 => RDKafkaLogLevel::Critical,
        3 => RDKafkaLogLevel::Error,
        4 => RDKafkaLogLevel::Warning,
        5 => RDKafkaLogLevel::Notice,
        6 => RDKafkaLogLevel::Info,
        _ => RDKafkaLogLevel::Debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(replicas: usize, min_isr: i32, policy: &str) -> TopicFacts {
        TopicFacts { replicas, min_insync_replicas: Some(min_isr), cleanup_policy: Some(policy.into()) }
    }

    #[test]
    fn a_topic_as_statmsg_creates_it_fits() {
        assert!(unfit("r", false, &facts(3, 2, "delete"), Some(3)).is_empty());
        assert!(unfit("s", true, &facts(3, 2, "compact"), Some(3)).is_empty());
        // One broker (a test stack): one replica and min ISR 1 are all there can be.
        assert!(unfit("r", false, &facts(1, 1, "delete"), None).is_empty());
        assert!(unfit("s", true, &facts(1, 1, "compact"), None).is_empty());
    }

    #[test]
    fn fewer_replicas_than_configured_is_said_with_the_tool_that_adds_them() {
        let found = unfit("r", false, &facts(1, 2, "delete"), Some(3));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("1 replica(s) a partition, 3 configured"), "{found:?}");
        assert!(found[0].contains("kafka-reassign-partitions.sh"), "{found:?}");
        // ... and min ISR 2 over one replica refuses every write.
        assert!(found[1].starts_with("min.insync.replicas 2 above its 1 replica(s)"), "{found:?}");
        assert!(found[1].ends_with("--add-config min.insync.replicas=1"), "{found:?}");
        // No replication factor configured: the broker's default is not second-guessed.
        assert!(unfit("r", false, &facts(1, 1, "delete"), None).is_empty());
    }

    #[test]
    fn min_insync_replicas_below_two_with_three_replicas_is_said_with_the_command() {
        let found = unfit("statmsg.records", false, &facts(3, 1, "delete"), None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("min.insync.replicas 1 with 3 replicas"), "{found:?}");
        assert!(
            found[0].ends_with("--entity-name statmsg.records --add-config min.insync.replicas=2"),
            "{found:?}"
        );
        // Two replicas: min ISR 2 would stop every write while one broker restarts.
        assert!(unfit("r", false, &facts(2, 1, "delete"), None).is_empty());
    }

    #[test]
    fn a_state_topic_not_only_compacted_is_said_and_others_need_not_be() {
        for policy in ["delete", "compact,delete", "delete,compact"] {
            let found = unfit("statmsg.tracker-state", true, &facts(1, 1, policy), None);
            assert_eq!(found.len(), 1, "{policy}: {found:?}");
            assert!(found[0].starts_with(&format!("cleanup.policy {policy}: ")), "{found:?}");
            assert!(found[0].ends_with("--add-config cleanup.policy=compact"), "{found:?}");
        }
        let unknown = TopicFacts { cleanup_policy: None, ..facts(1, 1, "") };
        assert!(unfit("s", true, &unknown, None)[0].starts_with("cleanup.policy unknown"));
        assert!(unfit("r", false, &facts(1, 1, "delete"), None).is_empty());
    }
}
