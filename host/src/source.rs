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
///
/// Pausing costs: librdkafka drops what it prefetched for the partition and
/// fetches it again on resume, which takes a fetch round trip or more. So
/// the queue is deep (bounded by records and by bytes), and a paused
/// partition resumes only once its worker has drained half of it, well
/// before the worker runs dry.
#[derive(Debug)]
pub struct Feed {
    pub tx: mpsc::Sender<Record>,
    backlog: VecDeque<Record>,
    max_bytes: f64,
    /// A running mean of the records' sizes: the queue's bytes are the
    /// records in it times this, since the worker does not report sizes back.
    mean_size: f64,
}

impl Feed {
    pub fn new(tx: mpsc::Sender<Record>, max_bytes: u64) -> Self {
        Feed { tx, backlog: VecDeque::new(), max_bytes: max_bytes as f64, mean_size: 0.0 }
    }

    pub fn is_paused(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// The queue's fill, 0 to 1, by whichever limit is closer.
    fn fill(&self) -> f64 {
        let queued = (self.tx.max_capacity() - self.tx.capacity()) as f64;
        (queued / self.tx.max_capacity() as f64).max(queued * self.mean_size / self.max_bytes)
    }

    /// Queues a record; returns true when the partition must be paused now.
    pub fn push(&mut self, record: Record) -> bool {
        // Headers and the record itself count too, so an empty record is not free.
        let size = (record.size() + 64) as f64;
        self.mean_size = if self.mean_size == 0.0 { size } else { self.mean_size + (size - self.mean_size) / 64.0 };
        if !self.backlog.is_empty() {
            self.backlog.push_back(record);
            return false;
        }
        if self.fill() >= 1.0 {
            self.backlog.push_back(record);
            return true;
        }
        match self.tx.try_send(record) {
            Ok(()) => false,
            Err(mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record)) => {
                self.backlog.push_back(record);
                true
            }
        }
    }

    /// Moves backlog into the queue once it is at most half full; returns
    /// true when the partition may resume.
    pub fn drain(&mut self) -> bool {
        if self.fill() > 0.5 {
            return false;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: usize) -> Record {
        Record { value: Some(vec![b'x'; bytes]), ..Record::default() }
    }

    #[test]
    fn a_full_queue_pauses_and_resumes_once_half_drained() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut feed = Feed::new(tx, 1 << 30);
        assert!((0..8).all(|_| !feed.push(record(10))), "room for eight");
        assert!(feed.push(record(10)), "the ninth pauses");
        assert!(!feed.push(record(10)) && feed.is_paused(), "later records wait in the backlog");
        for _ in 0..3 {
            rx.try_recv().unwrap();
        }
        assert!(!feed.drain(), "five of eight queued: not yet");
        rx.try_recv().unwrap();
        assert!(feed.drain(), "half drained: the backlog moves in and the partition resumes");
        assert!(!feed.is_paused());
        let offsets: usize = std::iter::from_fn(|| rx.try_recv().ok()).count();
        assert_eq!(offsets, 6, "nothing lost or duplicated: 4 left + 2 from the backlog");
    }

    #[test]
    fn the_byte_limit_pauses_before_the_record_limit() {
        let (tx, mut rx) = mpsc::channel(1000);
        let mut feed = Feed::new(tx, 64 << 10);
        let mut taken = 0;
        while !feed.push(record(1000)) {
            taken += 1;
        }
        // 1000-byte values plus 64 bytes of overhead each: the 63rd finds 64 KiB queued.
        assert_eq!(taken, 62, "stops at the byte limit, far below 1000 records");
        assert!(std::iter::from_fn(|| rx.try_recv().ok()).count() == taken);
        assert!(feed.drain());
    }

    #[test]
    fn a_record_larger_than_the_byte_limit_still_flows_one_at_a_time() {
        let (tx, mut rx) = mpsc::channel(1000);
        let mut feed = Feed::new(tx, 64 << 10);
        assert!(!feed.push(record(1 << 20)), "an empty queue takes any record");
        assert!(feed.push(record(1 << 20)), "the next waits");
        assert!(!feed.drain(), "not while the first is queued");
        rx.try_recv().unwrap();
        assert!(feed.drain());
        assert!(rx.try_recv().is_ok());
    }
}
