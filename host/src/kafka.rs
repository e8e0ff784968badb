//! Client settings for the consumer and producer, and the embedded broker.
//!
//! The guarantees are set here and nowhere else: an idempotent producer with
//! `acks=all`, and a consumer that never stores an offset by itself.

use std::collections::BTreeMap;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Properties the operator may not override, because the delivery guarantee
/// depends on them.
pub const PINNED_PRODUCER: &[(&str, &str)] =
    &[("enable.idempotence", "true"), ("acks", "all"), ("max.in.flight.requests.per.connection", "5")];
pub const PINNED_CONSUMER: &[(&str, &str)] = &[("enable.auto.offset.store", "false")];

/// A producer config: the operator's properties, then the pinned ones.
pub fn producer_config(bootstrap: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("linger.ms", "5").set("compression.type", "lz4");
    for (k, v) in properties {
        config.set(k, v);
    }
    for (k, v) in PINNED_PRODUCER {
        config.set(*k, *v);
    }
    config
}

/// A consumer config for `group`: the operator's properties, then the pinned
/// ones. Offsets are stored by the pipeline once work is acknowledged and
/// committed periodically by librdkafka (`auto.commit.interval.ms`).
pub fn consumer_config(bootstrap: &str, group: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A subscribed topic that appears later (a retry tier auto-created by
        // its first record, the input of a route added by a reload) is
        // assigned within this, not librdkafka's default of 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "10000");
    for (k, v) in properties {
        config.set(k, v);
    }
    for (k, v) in PINNED_CONSUMER {
        config.set(*k, *v);
    }
    config
}

/// librdkafka's in-process mock cluster: real sockets on 127.0.0.1, so other
/// clients can connect, and hooks to inject broker and request errors.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker").field("bootstrap", &self.bootstrap()).finish()
    }
}

impl EmbeddedBroker {
    pub fn start() -> anyhow::Result<Self> {
        let cluster = MockCluster::new(1).map_err(|e| anyhow::anyhow!("cannot start the embedded broker: {e}"))?;
        Ok(EmbeddedBroker { cluster })
    }

    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic. The mock cluster would auto-create it with one
    /// partition; creating it first gives it `partitions`.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        self.cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| anyhow::anyhow!("cannot create topic {topic} on the embedded broker: {e}"))
    }

    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}

/// Reads every record currently in `topic`, from the earliest offset, without
/// joining a group: for reports and checks, not for processing.
pub fn read_all(bootstrap: &str, topic: &str, timeout: std::time::Duration) -> anyhow::Result<Vec<OwnedMessage>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            ends.insert(p, high);
            assignment.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "timed out reading {topic}: partitions {:?} not read to the end",
                ends.keys().collect::<Vec<_>>()
            );
        }
        let Some(message) = consumer.poll(std::time::Duration::from_millis(100)) else { continue };
        let message = message?.detach();
        if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
            ends.remove(&message.partition());
        }
        out.push(message);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_topics_are_noticed_within_seconds_unless_the_operator_says_otherwise() {
        let config = consumer_config("b:9092", "g", &BTreeMap::new());
        assert_eq!(config.get("topic.metadata.refresh.interval.ms"), Some("10000"));
        let own = BTreeMap::from([("topic.metadata.refresh.interval.ms".to_owned(), "60000".to_owned())]);
        assert_eq!(consumer_config("b:9092", "g", &own).get("topic.metadata.refresh.interval.ms"), Some("60000"));
        let pinned = BTreeMap::from([("enable.auto.offset.store".to_owned(), "true".to_owned())]);
        assert_eq!(consumer_config("b:9092", "g", &pinned).get("enable.auto.offset.store"), Some("false"));
    }
}
