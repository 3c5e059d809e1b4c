//! Kafka plumbing shared by the collector and the consumer: client properties, librdkafka's own
//! logs and errors (into `tracing`), and topic creation.

pub mod publish;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
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
    // librdkafka's OpenSSL is statmsg's own (vendored): it knows no system CA folder unless
    // asked to look for one. Windows reads its certificate store by itself.
    let tls = config
        .get("security.protocol")
        .is_some_and(|p| p.eq_ignore_ascii_case("ssl") || p.eq_ignore_ascii_case("sasl_ssl"));
    if cfg!(not(windows))
        && tls
        && config.get("ssl.ca.location").is_none()
        && config.get("ssl.ca.pem").is_none()
    {
        config.set("ssl.ca.location", "probe");
    }
    // Its log lines go to `tracing` (see `ClientEvents`); ask for what would be shown.
    config.set_log_level(if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
        RDKafkaLogLevel::Debug
    } else if tracing::enabled!(target: "librdkafka", tracing::Level::INFO) {
        RDKafkaLogLevel::Info
    } else {
        RDKafkaLogLevel::Warning
    });
    config
}

/// An error said again within this time is logged at debug level only (librdkafka reports a
/// refused connection or login at every retry).
const REPEAT_QUIET: Duration = Duration::from_secs(60);

/// librdkafka's logs and client errors, sent to `tracing` (its defaults write to the `log` crate,
/// which statmsg does not collect, so a refused login or certificate went unseen), and the last
/// error, so that a failed delivery can name its cause. Every client's context holds one, named
/// for the client's job (`client` in every line it logs).
#[derive(Debug)]
pub struct ClientEvents {
    client: &'static str,
    said: Mutex<Said>,
}

/// The errors said lately (when), and the last one (when).
#[derive(Debug, Default)]
struct Said {
    recent: Vec<(String, Instant)>,
    last: Option<(String, Instant)>,
}

/// How long the last client error is taken as the cause of a failed delivery.
const CAUSE_FRESH: Duration = Duration::from_secs(300);

/// Distinct errors remembered for [`REPEAT_QUIET`].
const RECENT_ERRORS: usize = 16;

impl ClientEvents {
    /// The events of the client doing `client` ("producer", "consumer", "topic-check" ...).
    pub fn new(client: &'static str) -> ClientEvents {
        ClientEvents { client, said: Mutex::default() }
    }

    /// One of librdkafka's log lines. Its `FAIL` lines are the errors [`ClientEvents::error`]
    /// reports (with what to check), and its `CONFWARN` lines are about properties meant for the
    /// other kind of client: both kept for debugging only.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // CONFWARN: statmsg gives every client the same `[kafka.properties]`, so a producer
        // always sees the consumer's properties and the other way round.
        if facility == "FAIL" || facility == "CONFWARN" {
            tracing::debug!(target: "librdkafka", client = self.client, facility, "{message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", client = self.client, facility, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", client = self.client, facility, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", client = self.client, facility, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", client = self.client, facility, "{message}")
            }
        }
    }

    /// A client error (a broker unreachable, a login or certificate refused): logged, once a
    /// minute while it repeats, and kept as the last error.
    pub fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            // Not an error: the end of a partition was reached (`enable.partition.eof`).
            return;
        }
        let cause = explain(&error, reason);
        let mut said = self.said.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        said.recent.retain(|(_, at)| at.elapsed() < REPEAT_QUIET);
        if said.recent.iter().any(|(e, _)| *e == cause) {
            tracing::debug!(target: "librdkafka", client = self.client, "Kafka: {cause}");
        } else {
            tracing::error!(target: "librdkafka", client = self.client, "Kafka: {cause}");
            if said.recent.len() == RECENT_ERRORS {
                said.recent.remove(0);
            }
            said.recent.push((cause.clone(), Instant::now()));
        }
        said.last = Some((cause, Instant::now()));
    }

    /// The last client error, if it came in the last five minutes (an older one is history, not
    /// the cause of what fails now).
    pub fn last_error(&self) -> Option<String> {
        let said = self.said.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        said.last.as_ref().filter(|(_, at)| at.elapsed() < CAUSE_FRESH).map(|(e, _)| e.clone())
    }
}

impl ClientContext for ClientEvents {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        ClientEvents::log(self, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        ClientEvents::error(self, error, reason);
    }
}

impl ConsumerContext for ClientEvents {}

/// librdkafka's reason, with what to check for the two causes an administrator must fix.
fn explain(error: &KafkaError, reason: &str) -> String {
    let code = error.rdkafka_error_code();
    let hint = if code == Some(RDKafkaErrorCode::Authentication) || reason.contains("SASL authentication") {
        " (the broker refused the login: check sasl.username, sasl.mechanisms and the password)"
    } else if code == Some(RDKafkaErrorCode::SSL) || reason.contains("certificate verify failed") {
        " (TLS failed: check ssl.ca.location against the broker's certificate, and the broker's name)"
    } else {
        ""
    };
    format!("{reason}{hint}")
}

/// Producer properties that make delivery at-least-once without reordering: idempotence
/// (acks=all, retries without duplicates or reordering inside the producer).
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "lz4"),
    // Every send is a batch enqueued at once and then awaited (`publish`): lingering only
    // delays its last request. At 20 ms the consumer waited 20 ms a batch before committing
    // (`./bench consume`: state publishing 30 -> 10 ms a batch at 1 ms).
    ("linger.ms", "1"),
    ("queue.buffering.max.messages", "100000"),
    // A producer's first send would otherwise make the broker create a missing topic with the
    // broker's defaults (auto.create.topics.enable): racing the topic check, it left topics
    // with 3 partitions instead of `partitions`, and a tracker state topic not compacted.
    // Topics are created by statmsg's topic check only; until then sends wait.
    ("allow.auto.create.topics", "false"),
];

/// For the clients on a consumer's path from its start to its first batch, and the short-lived
/// topic check: with sparse connections (librdkafka's default; the property is not in its
/// documented list), a new client that has learnt the brokers from the bootstrap server waits
/// half of `reconnect.backoff.ms` (50 ms) before connecting to them, and three of them did so
/// one after the other (`./bench consume`: the first batch about 0.1 s sooner without). Not for
/// a collector's producer, which lives long on many hosts and needs only the leaders it sends
/// to.
pub const EAGER_CONNECTIONS: &[(&str, &str)] = &[("enable.sparse.connections", "false")];

/// What a topic check found of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicState {
    /// Created by this check.
    Created,
    /// It existed already; its settings are left as they are.
    Present,
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
pub fn topics_of(settings: &KafkaSettings, role: Role) -> Vec<NewTopic<'_>> {
    let spread = |topic| NewTopic::new(topic, settings.partitions, TopicReplication::Fixed(-1));
    let mut topics = vec![spread(&settings.topic)];
    if role == Role::Consumer {
        topics.push(spread(&settings.dead_letter_topic));
        topics.push(
            NewTopic::new(&settings.state_topic, 1, TopicReplication::Fixed(-1))
                .set("cleanup.policy", "compact"),
        );
    }
    topics
}

/// Creates what of `new` does not exist yet, saying what it did. A broker that refuses (no
/// right to create topics, or a policy) or cannot be asked is reported and tolerated: the topics
/// may be managed elsewhere (`statmsg kafka setup`, run by an admin).
pub async fn ensure_topics(settings: &KafkaSettings, new: &[NewTopic<'_>]) {
    match check_topics(settings, new).await {
        Ok(found) => {
            for (topic, state) in found {
                match state {
                    TopicState::Created => tracing::info!(topic, "created Kafka topic"),
                    TopicState::Present => {}
                    TopicState::Refused(why) => tracing::warn!(topic, "cannot create Kafka topic: {why}"),
                }
            }
        }
        Err(e) => tracing::warn!("cannot check Kafka topics: {e}"),
    }
}

/// Creates what of `new` does not exist yet and waits until the broker serves what it created;
/// says what it found of each topic. An error means the broker could not be asked at all.
pub async fn check_topics(
    settings: &KafkaSettings,
    new: &[NewTopic<'_>],
) -> Result<Vec<(String, TopicState)>, KafkaError> {
    let admin: AdminClient<ClientEvents> =
        client_config(settings, EAGER_CONNECTIONS).create_with_context(ClientEvents::new("topic-check"))?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let check = admin.create_topics(new, &options);
    tokio::pin!(check);
    let mut serve = tokio::time::interval(ADMIN_EVENTS_EVERY);
    let outcome = loop {
        tokio::select! {
            outcome = &mut check => break outcome,
            _ = serve.tick() => serve_main_queue(admin.inner()),
        }
    };
    serve_main_queue(admin.inner());
    let found: Vec<(String, TopicState)> = outcome?
        .into_iter()
        .map(|result| match result {
            Ok(topic) => (topic, TopicState::Created),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => (topic, TopicState::Present),
            Err((topic, code)) => (topic, TopicState::Refused(code.to_string())),
        })
        .collect();
    let created: Vec<String> = found
        .iter()
        .filter(|(_, state)| *state == TopicState::Created)
        .map(|(topic, _)| topic.clone())
        .collect();
    // A topic just created is not served for some milliseconds: whoever reads or writes it then
    // gets "not leader" and retries after a pause far longer than the wait.
    let served = tokio::task::spawn_blocking(move || {
        wait_until_served(&admin, &created);
        admin
    })
    .await;
    match served {
        // Destroying a librdkafka client waits for its threads: about 0.1 s that would block
        // this task (and, at a consumer's start, whatever it waits for together with the check).
        Ok(admin) => drop(tokio::task::spawn_blocking(move || drop(admin))),
        Err(e) => tracing::warn!("topic check: waiting for the topics created: {e}"),
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
