//! `sluice dlq inspect` and `sluice dlq replay`: reading a DLQ topic up to a
//! snapshot of its end offsets, telling its records apart, and putting them
//! back.
//!
//! Both commands read with an explicit partition assignment (no group
//! rebalance), from the offsets where they start up to the end offsets taken
//! when they start, so they terminate however busy the DLQ is.

pub mod filter;
pub mod inspect;
pub mod rate;
pub mod replay;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::{Bootstrap, Config};
use crate::dlq::PREFIX;
use crate::record::Record;
use filter::UNKNOWN;

/// How long to wait for metadata, watermarks and committed offsets.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// With no record for this long, the reader checks whether the partitions
/// left are at their end already (their last offsets may hold no record).
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// With no progress for this long, the reader gives up rather than hang.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the broker is and the operator's client properties.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub bootstrap: String,
    pub consumer: BTreeMap<String, String>,
    pub producer: BTreeMap<String, String>,
}

impl Connection {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Connection { bootstrap: bootstrap.into(), ..Connection::default() }
    }

    /// The broker address and properties of a sluice config.
    pub fn from_config(config: &Config, path: &Path) -> anyhow::Result<Self> {
        match &config.broker.bootstrap {
            Bootstrap::Servers(servers) => Ok(Connection {
                bootstrap: servers.clone(),
                consumer: config.consumer_properties(),
                producer: config.producer_properties(),
            }),
            Bootstrap::Embedded => anyhow::bail!(
                "{}: the config uses the embedded broker, which lives inside `sluice run`; pass --bootstrap with the address it prints",
                path.display()
            ),
        }
    }

    /// A consumer in `group` that never commits by itself and never stores
    /// an offset on its own: commits are the caller's decision.
    fn consumer(&self, group: &str) -> anyhow::Result<StreamConsumer> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.consumer {
            config.set(k, v);
        }
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        config.create().context("cannot create the Kafka consumer")
    }
}

/// A partition of the DLQ: its first offset, where reading starts, and the
/// end offset of the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Range {
    pub low: i64,
    pub start: i64,
    pub end: i64,
}

/// Where to start reading each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first offset the broker still has.
    Earliest,
    /// The reader's group's committed offset, else the earliest.
    Committed,
}

/// One record of a DLQ topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// In order, as stored; a null header value is empty.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let Record { partition, offset, timestamp, key, value, headers, .. } = crate::source::to_record(message);
        Entry { partition, offset, timestamp, key, value, headers }
    }

    /// Whether sluice dead-lettered this record; a record someone else
    /// wrote to the DLQ topic has no `sluice.dlq.*` header.
    pub fn is_dead_letter(&self) -> bool {
        self.headers.iter().any(|(n, _)| n.starts_with(PREFIX))
    }

    /// The `sluice.dlq.NAME` header as text; the last one wins.
    pub fn dlq_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.strip_prefix(PREFIX) == Some(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn label(&self, name: &str, empty: &'static str) -> &str {
        if !self.is_dead_letter() {
            return UNKNOWN;
        }
        match self.dlq_header(name) {
            Some("") => empty,
            Some(value) => value,
            None => UNKNOWN,
        }
    }

    /// The error kind, or `unknown` for a foreign record.
    pub fn kind(&self) -> &str {
        self.label("error.kind", UNKNOWN)
    }

    /// `name@hash`; `(host)` when the host decided, `unknown` when foreign.
    pub fn plugin(&self) -> &str {
        self.label("plugin", "(host)")
    }

    pub fn route(&self) -> &str {
        self.label("route", UNKNOWN)
    }

    /// The topic the record was consumed from before it failed.
    pub fn source_topic(&self) -> &str {
        self.label("topic", UNKNOWN)
    }
}

/// Reads one topic's partitions from their start to the snapshot's end.
pub struct Reader {
    consumer: Arc<StreamConsumer>,
    topic: String,
    ranges: BTreeMap<i32, Range>,
    remaining: BTreeSet<i32>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("topic", &self.topic).field("ranges", &self.ranges).finish_non_exhaustive()
    }
}

impl Reader {
    /// Takes the snapshot of `topic`'s end offsets and assigns every
    /// partition with something to read. A topic that does not exist is an
    /// error naming it.
    pub fn open(connection: &Connection, topic: &str, group: &str, start: Start) -> anyhow::Result<Self> {
        let consumer = connection.consumer(group)?;
        let Some(partitions) = partitions(&consumer, topic, &connection.bootstrap)? else {
            anyhow::bail!("topic \"{topic}\" does not exist on {}", connection.bootstrap);
        };
        let committed = match start {
            Start::Earliest => BTreeMap::new(),
            Start::Committed => committed(&consumer, topic, &partitions)?,
        };
        let mut ranges = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for p in partitions {
            let (low, end) = consumer
                .fetch_watermarks(topic, p, METADATA_TIMEOUT)
                .with_context(|| format!("cannot read the end offsets of {topic} partition {p}"))?;
            // A committed offset below the first one the broker keeps was
            // deleted by retention: start at what is left.
            let start = committed.get(&p).copied().unwrap_or(low).clamp(low, end.max(low));
            ranges.insert(p, Range { low, start, end });
            if start < end {
                assignment.add_partition_offset(topic, p, Offset::Offset(start))?;
            }
        }
        let remaining = ranges.iter().filter(|(_, r)| r.start < r.end).map(|(p, _)| *p).collect();
        if assignment.count() > 0 {
            consumer.assign(&assignment).with_context(|| format!("cannot assign the partitions of {topic}"))?;
        }
        Ok(Reader { consumer: Arc::new(consumer), topic: topic.to_owned(), ranges, remaining })
    }

    pub fn ranges(&self) -> &BTreeMap<i32, Range> {
        &self.ranges
    }

    /// Records between the start and the snapshot's end, in all partitions.
    pub fn total(&self) -> u64 {
        self.ranges.values().map(|r| (r.end - r.start).max(0) as u64).sum()
    }

    pub(crate) fn consumer(&self) -> Arc<StreamConsumer> {
        Arc::clone(&self.consumer)
    }

    /// The next record before the snapshot's end, or `None` once every
    /// partition is read to it.
    pub async fn next(&mut self) -> anyhow::Result<Option<Entry>> {
        let mut progress = Instant::now();
        while !self.remaining.is_empty() {
            match tokio::time::timeout(IDLE_CHECK, self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    let p = message.partition();
                    let Some(range) = self.ranges.get(&p) else { continue };
                    if message.offset() >= range.end || !self.remaining.contains(&p) {
                        continue;
                    }
                    if message.offset() + 1 >= range.end {
                        self.remaining.remove(&p);
                    }
                    return Ok(Some(Entry::from_message(&message)));
                }
                Ok(Err(e)) => tracing::warn!(topic = %self.topic, error = %e, "consumer error; still reading"),
                Err(_) => {
                    if self.drop_finished_partitions()? {
                        progress = Instant::now();
                    }
                }
            }
            if progress.elapsed() > STALL_TIMEOUT {
                anyhow::bail!(
                    "no record from {} for {}s; partitions {:?} not read to their end",
                    self.topic,
                    STALL_TIMEOUT.as_secs(),
                    self.remaining
                );
            }
        }
        Ok(None)
    }

    /// Partitions whose position passed the end without a record there (an
    /// offset used by a transaction marker, or compacted away) are done.
    fn drop_finished_partitions(&mut self) -> anyhow::Result<bool> {
        let positions = self.consumer.position().context("cannot read the consumer's positions")?;
        let before = self.remaining.len();
        for element in positions.elements_for_topic(&self.topic) {
            if let (Offset::Offset(at), Some(range)) = (element.offset(), self.ranges.get(&element.partition()))
                && at >= range.end
            {
                self.remaining.remove(&element.partition());
            }
        }
        Ok(self.remaining.len() < before)
    }
}

/// The topic's partitions; `None` when the broker does not know the topic.
fn partitions(consumer: &StreamConsumer, topic: &str, bootstrap: &str) -> anyhow::Result<Option<Vec<i32>>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("cannot read the metadata of {topic} from {bootstrap}"))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect()))
}

fn committed(consumer: &StreamConsumer, topic: &str, partitions: &[i32]) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(list, METADATA_TIMEOUT)
        .with_context(|| format!("cannot read the committed offsets of {topic}"))?;
    Ok(committed
        .elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(at) => Some((e.partition(), at)),
            _ => None,
        })
        .collect())
}

/// Whether `topic` exists, for refusing to replay into a topic the broker
/// would otherwise create.
pub fn topic_exists(connection: &Connection, topic: &str) -> anyhow::Result<bool> {
    let consumer = connection.consumer("sluice-dlq-metadata")?;
    Ok(partitions(&consumer, topic, &connection.bootstrap)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(headers: &[(&str, &str)]) -> Entry {
        Entry {
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec())).collect(),
            ..Entry::default()
        }
    }

    #[test]
    fn labels_come_from_the_dlq_headers() {
        let e = with(&[
            ("sluice.dlq.error.kind", "trap"),
            ("sluice.dlq.plugin", ""),
            ("sluice.dlq.route", "orders"),
            ("sluice.dlq.topic", "orders.events"),
        ]);
        assert!(e.is_dead_letter());
        assert_eq!((e.kind(), e.plugin(), e.route(), e.source_topic()), ("trap", "(host)", "orders", "orders.events"));
    }

    #[test]
    fn a_foreign_record_is_unknown_everywhere() {
        let e = with(&[("correlation-id", "abc")]);
        assert!(!e.is_dead_letter());
        assert_eq!((e.kind(), e.plugin(), e.route(), e.source_topic()), (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN));
    }
}
