//! Publishing a batch of records and waiting until Kafka acknowledged all of them.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::config::KafkaSettings;
use crate::kafka::{client_config, PRODUCER_DEFAULTS};
use crate::shutdown::Shutdown;

pub struct Publisher {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> Result<Publisher, KafkaError> {
        let producer = client_config(settings, PRODUCER_DEFAULTS).create()?;
        Ok(Publisher { producer, topic: settings.topic.clone() })
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
        let mut pending: std::collections::VecDeque<DeliveryFuture> = std::collections::VecDeque::new();
        for (key, payload) in messages {
            let mut record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back(delivery);
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

async fn acknowledged(delivery: DeliveryFuture) -> Result<(), KafkaError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}
