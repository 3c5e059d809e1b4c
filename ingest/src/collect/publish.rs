//! Publishing a batch of records and waiting until Kafka acknowledged all of them.
//!
//! A `BaseProducer` polled by a thread of statmsg's own, with a one-shot channel per message for
//! its delivery report. rdkafka's `FutureProducer` polls every 100 ms and spins through the last
//! millisecond of every poll (the remaining timeout rounds down to 0 ms): about 1 % of a core on
//! an idle collector. Polling every [`POLL_PERIOD`] spins at most that millisecond per period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::oneshot;

use crate::config::KafkaSettings;
use crate::kafka::{client_config, ClientEvents, PRODUCER_DEFAULTS};
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

impl Default for AckContext {
    fn default() -> Self {
        AckContext { events: ClientEvents::new("producer") }
    }
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
    producer: Arc<BaseProducer<AckContext>>,
    topic: String,
    polling: Arc<AtomicBool>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> Result<Publisher, KafkaError> {
        let producer: BaseProducer<AckContext> =
            client_config(settings, PRODUCER_DEFAULTS).create_with_context(AckContext::default())?;
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
        Ok(Publisher { producer, topic: settings.topic.clone(), polling })
    }

    /// Sends every (key, payload) and returns once all are acknowledged, or with the first
    /// delivery error. When the producer's queue (`queue.buffering.max.messages`) is full, it
    /// waits for the oldest delivery before sending more. On shutdown it keeps waiting for
    /// acknowledgements for at most `grace`, then reports the batch as not delivered.
    pub async fn publish_all(
        &self,
        messages: impl Iterator<Item = (String, Vec<u8>)>,
        shutdown: &Shutdown,
        grace: Duration,
    ) -> Result<(), KafkaError> {
        let mut pending: std::collections::VecDeque<Ack> = std::collections::VecDeque::new();
        for (key, payload) in messages {
            let (ack, acked) = oneshot::channel();
            let mut record =
                BaseRecord::with_opaque_to(&self.topic, Box::new(ack)).key(&key).payload(&payload);
            loop {
                match self.producer.send(record) {
                    Ok(()) => {
                        pending.push_back(acked);
                        break;
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
}

impl Publisher {
    /// The producer's fatal error, if it had one (an idempotent producer can have one): it then
    /// delivers nothing more and must be replaced.
    pub fn fatal_error(&self) -> Option<String> {
        self.producer.client().fatal_error().map(|(code, reason)| format!("{code}: {reason}"))
    }

    /// The last error of the client (a broker unreachable, a login or certificate refused).
    pub fn last_client_error(&self) -> Option<String> {
        self.producer.context().events.last_error()
    }
}

impl Drop for Publisher {
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
