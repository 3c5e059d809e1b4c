//! The one way statmsg publishes to Kafka: a batch of messages sent at once and awaited
//! together, until Kafka acknowledged every one (or one failed). The collector's drainer and the
//! consumer (tracker states, dead letters) use it; retrying is theirs ([`crate::retry`]).
//!
//! A `BaseProducer` polled by a thread of statmsg's own, with a one-shot channel per message for
//! its delivery report. rdkafka's `FutureProducer` polls every 100 ms and spins through the last
//! millisecond of every poll (the remaining timeout rounds down to 0 ms): about 1 % of a core on
//! an idle collector. Polling every [`POLL_PERIOD`] spins at most that millisecond per period.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::oneshot;

use super::{client_config, ClientEvents, PRODUCER_DEFAULTS};
use crate::config::KafkaSettings;
use crate::shutdown::Shutdown;

/// How long one poll of the producer waits for delivery reports (they are handed on as soon as
/// they come; this only bounds how long the polling thread takes to notice it should stop).
const POLL_PERIOD: Duration = Duration::from_millis(500);

type Ack = oneshot::Receiver<Result<(), KafkaError>>;

/// Hands each delivery report to the one-shot channel sent along with its message.
#[derive(Debug)]
struct AckContext {
    events: ClientEvents,
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.events.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.events.error(error, reason);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<oneshot::Sender<Result<(), KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Self::DeliveryOpaque) {
        let _ = ack.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

pub struct Publisher {
    /// Replaced when it fails for good (see [`Publisher::publish_all`]).
    producing: Mutex<Producing>,
    /// Kept to replace a producer that failed for good.
    settings: KafkaSettings,
    client: &'static str,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("client", &self.client).finish_non_exhaustive()
    }
}

impl Publisher {
    /// A producer named `client` in librdkafka's log lines, with its polling thread.
    pub fn new(settings: &KafkaSettings, client: &'static str) -> Result<Publisher, KafkaError> {
        let producing = Mutex::new(Producing::start(settings, client)?);
        Ok(Publisher { producing, settings: settings.clone(), client })
    }

    /// Sends every (key, payload) to `topic` and returns once all are acknowledged, or with the
    /// first delivery error. When the producer's queue (`queue.buffering.max.messages`) is full,
    /// it waits for the oldest delivery before sending more. On shutdown it keeps waiting for
    /// acknowledgements for at most `grace`, then reports the batch as not delivered
    /// ([`KafkaError::Canceled`]). A producer that failed for good (an idempotent producer can)
    /// is replaced before the error is returned, so that the next try can succeed.
    pub async fn publish_all<K, P>(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (Option<K>, P)>,
        shutdown: &Shutdown,
        grace: Duration,
    ) -> Result<(), KafkaError>
    where
        K: AsRef<[u8]>,
        P: AsRef<[u8]>,
    {
        let producer = self.producing.lock().unwrap_or_else(PoisonError::into_inner).producer.clone();
        let sent = async {
            let mut pending = VecDeque::new();
            for (key, payload) in messages {
                let message = (key.as_ref().map(AsRef::as_ref), payload.as_ref());
                enqueue(&producer, topic, message, &mut pending, shutdown).await?;
            }
            all_acknowledged(pending, shutdown, grace).await
        }
        .await;
        if sent.is_err() {
            if let Some((code, reason)) = producer.client().fatal_error() {
                tracing::error!(
                    client = self.client,
                    "the Kafka producer failed for good ({code}: {reason}): starting a new one"
                );
                let replacement = Producing::start(&self.settings, self.client)?;
                *self.producing.lock().unwrap_or_else(PoisonError::into_inner) = replacement;
            }
        }
        sent
    }

    /// The last error of the client (a broker unreachable, a login or certificate refused).
    pub fn last_client_error(&self) -> Option<String> {
        let producing = self.producing.lock().unwrap_or_else(PoisonError::into_inner);
        producing.producer.context().events.last_error()
    }
}

/// Sends one message, waiting for the oldest delivery in `pending` while the producer's queue is
/// full; its acknowledgement joins `pending`.
async fn enqueue(
    producer: &BaseProducer<AckContext>,
    topic: &str,
    (key, payload): (Option<&[u8]>, &[u8]),
    pending: &mut VecDeque<Ack>,
    shutdown: &Shutdown,
) -> Result<(), KafkaError> {
    let (ack, acked) = oneshot::channel();
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(ack)).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    loop {
        match producer.send(record) {
            Ok(()) => {
                pending.push_back(acked);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                let wait = async {
                    match pending.pop_front() {
                        Some(oldest) => acknowledged(oldest).await,
                        None => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            Ok(())
                        }
                    }
                };
                tokio::select! {
                    result = wait => result?,
                    _ = shutdown.cancelled() => return Err(KafkaError::Canceled),
                }
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Waits for every acknowledgement in `pending`; on shutdown for at most `grace` more.
async fn all_acknowledged(
    pending: VecDeque<Ack>,
    shutdown: &Shutdown,
    grace: Duration,
) -> Result<(), KafkaError> {
    let all = async {
        for delivery in pending {
            acknowledged(delivery).await?;
        }
        Ok(())
    };
    tokio::pin!(all);
    tokio::select! {
        result = &mut all => result,
        _ = shutdown.cancelled() => {
            match tokio::time::timeout(grace, all).await {
                Ok(result) => result,
                Err(_) => Err(KafkaError::Canceled),
            }
        }
    }
}

/// A producer, and the thread that polls it for delivery reports while `polling` holds.
struct Producing {
    producer: Arc<BaseProducer<AckContext>>,
    polling: Arc<AtomicBool>,
}

impl Producing {
    fn start(settings: &KafkaSettings, client: &'static str) -> Result<Producing, KafkaError> {
        let context = AckContext { events: ClientEvents::new(client) };
        let producer: BaseProducer<AckContext> =
            client_config(settings, PRODUCER_DEFAULTS).create_with_context(context)?;
        let producer = Arc::new(producer);
        let polling = Arc::new(AtomicBool::new(true));
        let (poll_producer, still_polling) = (producer.clone(), polling.clone());
        std::thread::Builder::new()
            .name("kafka-poll".into())
            .spawn(move || {
                while still_polling.load(Ordering::Relaxed) {
                    poll_producer.poll(POLL_PERIOD);
                }
            })
            .map_err(|e| {
                KafkaError::ClientCreation(format!("cannot start the producer's polling thread: {e}"))
            })?;
        Ok(Producing { producer, polling })
    }
}

impl Drop for Producing {
    fn drop(&mut self) {
        // The thread ends within a poll period; the producer goes with its last reference.
        self.polling.store(false, Ordering::Relaxed);
        self.producer.purge(rdkafka::producer::PurgeConfig::default().queue());
    }
}

async fn acknowledged(ack: Ack) -> Result<(), KafkaError> {
    match ack.await {
        Ok(result) => result,
        Err(_) => Err(KafkaError::Canceled),
    }
}
