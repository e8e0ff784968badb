//! Producing records: outputs and dead letters alike, through one idempotent
//! producer, with a delivery future per record.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    /// The input's timestamp (ms since the epoch): an output keeps its
    /// event's time rather than the time sluice produced it.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// The producer every partition worker shares.
#[derive(Clone)]
pub struct Sink {
    producer: FutureProducer,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

impl Sink {
    pub fn new(producer: FutureProducer) -> Self {
        Sink { producer }
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Hands the record to the producer and returns its delivery future.
    /// When librdkafka's queue is full this waits for room rather than
    /// failing: backpressure, never a lost record. Other errors (such as a
    /// record over `message.max.bytes`) cannot succeed by waiting and are
    /// returned.
    pub async fn send(&self, record: &OutRecord) -> Result<DeliveryFuture, KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header { key: name, value: Some(value.as_slice()) });
        }
        let mut future: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic).headers(headers);
        if let Some(key) = &record.key {
            future = future.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            future = future.payload(value.as_slice());
        }
        if let Some(timestamp) = record.timestamp {
            future = future.timestamp(timestamp);
        }
        loop {
            match self.producer.send_result(future) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    future = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits for every queued record to be delivered, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        self.producer.flush(timeout).map_err(|e| anyhow::anyhow!("producer flush: {e}"))
    }
}

/// An error that producing the same record again cannot cure: the record
/// itself is refused (too large, malformed), by librdkafka or by the broker.
/// Anything else (timeouts, a broker away, leadership moving) is transient.
pub fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidTopic
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_errors_are_permanent_and_broker_trouble_is_not() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            assert!(is_permanent(&KafkaError::MessageProduction(code)), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            assert!(!is_permanent(&KafkaError::MessageProduction(code)), "{code:?}");
        }
    }
}
