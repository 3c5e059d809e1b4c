//! Kafka plumbing shared by the collector and the consumer: client properties, librdkafka's own
//! logs and errors (into `tracing`); the acknowledged publisher (`publish`); statmsg's topics,
//! created and checked (`topics`).

pub mod publish;
pub mod topics;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaSettings;

/// A broker lost or a partition's leader moving, which librdkafka rides out by itself (it
/// reconnects and follows the new leader): a reason to wait a moment ([`crate::retry::Retry::wait`]),
/// not a failure to back off from.
pub fn is_failover(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(
            BrokerTransportFailure
                | AllBrokersDown
                | BrokerNotAvailable
                | LeaderNotAvailable
                | NotLeaderForPartition
                | PreferredLeaderNotAvailable
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | NotCoordinator
                | NetworkException
                | RequestTimedOut
        )
    )
}

impl crate::retry::Retry<'_> {
    /// After a Kafka error: the first pause again while Kafka fails over ([`is_failover`],
    /// [`crate::retry::Retry::wait`]), a growing one after any other failure.
    pub async fn after_kafka(&mut self, error: KafkaError) -> Result<(), crate::shutdown::Stopped> {
        if is_failover(&error) {
            self.wait(error).await
        } else {
            self.after(error).await
        }
    }
}

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
