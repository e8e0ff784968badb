//! The consumer: polls every route's input topics in one group, hands each
//! record to its partition's worker, and pauses a partition whose worker is
//! behind instead of blocking the poll loop, so the consumer stays within
//! `max.poll.interval.ms` however long a plugin or a backoff takes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tokio::sync::mpsc;

use crate::record::Record;
use crate::stats::{BrokerView, Stats};

/// Commits on revoke and tells the poll loop which partitions went away;
/// keeps the assignment and librdkafka's statistics (lag, watermarks) in the
/// stats for `/status`, `/metrics` and `/readyz`.
#[derive(Debug, Default)]
pub struct SourceContext {
    revoked: Mutex<Vec<(String, i32)>>,
    pub stats: Arc<Stats>,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            // librdkafka reports an internal partition -1 per topic.
            for p in topic.partitions.values().filter(|p| p.partition >= 0) {
                let lag = if p.consumer_lag_stored >= 0 { p.consumer_lag_stored } else { p.consumer_lag };
                let view = BrokerView {
                    low_watermark: p.lo_offset,
                    high_watermark: p.hi_offset,
                    committed: p.committed_offset,
                    lag,
                };
                self.stats.partitions.broker(name, p.partition, view);
            }
        }
    }
}

fn keys(partitions: &TopicPartitionList) -> Vec<(String, i32)> {
    partitions.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect()
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Hand over what is done: the next owner starts after it.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on revoke (nothing stored yet is fine)");
            }
            let keys = keys(partitions);
            self.stats.partitions.revoked(&keys);
            self.revoked.lock().unwrap_or_else(|e| e.into_inner()).extend(keys);
            tracing::info!(partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.stats.partitions.assigned(&keys(partitions));
            tracing::info!(partitions = partitions.count(), "partitions assigned");
        }
    }
}

impl SourceContext {
    pub fn new(stats: Arc<Stats>) -> Self {
        SourceContext { revoked: Mutex::default(), stats }
    }

    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub type SourceConsumer = StreamConsumer<SourceContext>;

/// Copies a consumed message into the host's own record type.
pub fn to_record(message: &BorrowedMessage<'_>) -> Record {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                // A null header value has no representation in the WIT
                // contract; it becomes empty bytes.
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
        attempt: 1,
    }
}

/// A partition's queue to its worker, with an overflow backlog while paused.
#[derive(Debug)]
pub struct Feed {
    pub tx: mpsc::Sender<Record>,
    backlog: VecDeque<Record>,
}

impl Feed {
    pub fn new(tx: mpsc::Sender<Record>) -> Self {
        Feed { tx, backlog: VecDeque::new() }
    }

    pub fn is_paused(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Queues a record; returns true when the partition must be paused now.
    pub fn push(&mut self, record: Record) -> bool {
        if !self.backlog.is_empty() {
            self.backlog.push_back(record);
            return false;
        }
        match self.tx.try_send(record) {
            Ok(()) => false,
            Err(mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record)) => {
                self.backlog.push_back(record);
                true
            }
        }
    }

    /// Moves backlog into the queue; returns true when the partition may resume.
    pub fn drain(&mut self) -> bool {
        while let Some(record) = self.backlog.pop_front() {
            match self.tx.try_send(record) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record)) => {
                    self.backlog.push_front(record);
                    return false;
                }
            }
        }
        true
    }
}

fn single(topic: &str, partition: i32) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    tpl
}

pub fn pause(consumer: &SourceConsumer, topic: &str, partition: i32) {
    if let Err(e) = consumer.pause(&single(topic, partition)) {
        tracing::warn!(topic, partition, error = %e, "could not pause partition");
    }
}

/// Resumes a paused partition from the first record not yet handed on.
/// librdkafka discards what it prefetched while paused, so nothing is skipped.
pub fn resume(consumer: &SourceConsumer, topic: &str, partition: i32) {
    if let Err(e) = consumer.resume(&single(topic, partition)) {
        tracing::warn!(topic, partition, error = %e, "could not resume partition");
    }
}

/// Committed offsets of the current assignment, for reports.
pub fn committed(consumer: &SourceConsumer) -> HashMap<(String, i32), i64> {
    let Ok(assignment) = consumer.assignment() else { return HashMap::new() };
    let Ok(tpl) = consumer.committed_offsets(assignment, std::time::Duration::from_secs(5)) else {
        return HashMap::new();
    };
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
            _ => None,
        })
        .collect()
}
