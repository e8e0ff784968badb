//! B0: a hand-written rdkafka consume → produce passthrough, no Wasm, with
//! sluice's guarantees: an idempotent `acks=all` producer, and each input's
//! offset stored only once its output is acknowledged, in order per
//! partition. The client settings come from `sluice::kafka`, so both sides
//! run the same librdkafka configuration.
//!
//! One thread drives both clients: consume what is ready, hand it to the
//! producer, serve delivery reports, store the watermark. It blocks (never
//! spins) when there is nothing to do, so its CPU figure is honest.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::measure::{Measurement, Window};

/// Records taken from the consumer before delivery reports are served.
const CONSUME_BATCH: usize = 1024;

/// Delivery reports, collected by librdkafka's callback on this thread.
#[derive(Default)]
struct Acks {
    delivered: Mutex<Vec<(i32, i64)>>,
    failed: Mutex<Vec<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    /// The input offset the output came from.
    type DeliveryOpaque = Box<i64>;

    fn delivery(&self, result: &DeliveryResult<'_>, offset: Box<i64>) {
        match result {
            Ok(m) => self.delivered.lock().unwrap_or_else(|e| e.into_inner()).push((m.partition(), *offset)),
            Err((e, _)) => self.failed.lock().unwrap_or_else(|e| e.into_inner()).push(e.to_string()),
        }
    }
}

/// The in-order watermark of one input partition: offsets sent, in order,
/// and whether each is acknowledged.
#[derive(Default)]
struct Pending(VecDeque<(i64, bool)>);

impl Pending {
    /// Marks `offset` done; returns the next offset to store if the
    /// contiguous prefix moved.
    fn ack(&mut self, offset: i64) -> Option<i64> {
        if let Ok(i) = self.0.binary_search_by_key(&offset, |(o, _)| *o) {
            self.0[i].1 = true;
        }
        let mut next = None;
        while let Some((o, true)) = self.0.front().copied() {
            self.0.pop_front();
            next = Some(o + 1);
        }
        next
    }
}

pub fn run(bootstrap: &str, input: &str, output: &str, group: &str, count: u64) -> anyhow::Result<Measurement> {
    let props = BTreeMap::new();
    let consumer: BaseConsumer =
        sluice::kafka::consumer_config(bootstrap, group, &props).create().context("cannot create the consumer")?;
    let producer: BaseProducer<Acks> = sluice::kafka::producer_config(bootstrap, &props)
        .create_with_context(Acks::default())
        .context("cannot create the producer")?;
    consumer.subscribe(&[input]).context("cannot subscribe")?;

    let mut pending: HashMap<i32, Pending> = HashMap::new();
    let mut completed = 0u64;
    let mut window = Window::default();
    let deadline = Instant::now() + crate::VARIANT_TIMEOUT;
    while completed < count {
        if Instant::now() > deadline {
            bail!("B0 timed out after {completed} of {count} events");
        }
        let mut consumed = 0;
        let mut wait =
            if pending.values().all(|p| p.0.is_empty()) { Duration::from_millis(100) } else { Duration::ZERO };
        while consumed < CONSUME_BATCH {
            let Some(message) = consumer.poll(wait) else { break };
            wait = Duration::ZERO;
            let message = message.context("consumer error")?;
            let headers = message.headers().map(|hs| {
                hs.iter().fold(OwnedHeaders::new_with_capacity(hs.count()), |acc, h| {
                    acc.insert(Header { key: h.key, value: h.value })
                })
            });
            let mut record =
                BaseRecord::with_opaque_to(output, Box::new(message.offset())).partition(message.partition());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            if let Some(headers) = headers {
                record = record.headers(headers);
            }
            if let Some(ts) = message.timestamp().to_millis() {
                record = record.timestamp(ts);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(5));
                    }
                    Err((e, _)) => bail!("produce failed: {e}"),
                }
            }
            pending.entry(message.partition()).or_default().0.push_back((message.offset(), false));
            consumed += 1;
            window.observe(1)?;
        }
        // With nothing new to consume, wait for deliveries instead of spinning.
        producer.poll(if consumed == 0 { Duration::from_millis(1) } else { Duration::ZERO });
        let acked = std::mem::take(&mut *producer.context().delivered.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(e) = producer.context().failed.lock().unwrap_or_else(|e| e.into_inner()).first() {
            bail!("a delivery failed: {e}");
        }
        let mut store = TopicPartitionList::new();
        let mut moved: HashMap<i32, i64> = HashMap::new();
        for (partition, offset) in &acked {
            if let Some(next) = pending.get_mut(partition).and_then(|p| p.ack(*offset)) {
                moved.insert(*partition, next);
            }
        }
        completed += acked.len() as u64;
        for (partition, next) in moved {
            store.add_partition_offset(input, partition, Offset::Offset(next))?;
        }
        if store.count() > 0 {
            consumer.store_offsets(&store).context("cannot store offsets")?;
        }
    }
    let measurement = window.close(completed)?;
    producer.flush(Duration::from_secs(10)).context("producer flush")?;
    consumer.commit_consumer_state(CommitMode::Sync).context("final commit")?;
    Ok(measurement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_moves_only_over_a_contiguous_prefix() {
        let mut p = Pending::default();
        p.0.extend([(4, false), (5, false), (7, false)]);
        assert_eq!(p.ack(5), None, "4 is still pending");
        assert_eq!(p.ack(4), Some(6));
        assert_eq!(p.ack(7), Some(8));
        assert!(p.0.is_empty());
    }
}
