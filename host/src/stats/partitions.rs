//! Per-partition state for `/status`, the lag gauges and `/readyz`: which
//! partitions are assigned, what their workers have taken and finished, and
//! what the broker last said about them.
//!
//! The poll loop and the acknowledger touch only a partition's atomics
//! ([`PartitionLive`]); the table's lock is taken on rebalance, on each
//! librdkafka statistics report and on reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// A running partition worker's counts.
#[derive(Debug)]
pub struct PartitionLive {
    received: AtomicU64,
    completed: AtomicU64,
    /// The next offset to consume, as last stored; -1 before the first.
    stored: AtomicI64,
    stopped: AtomicBool,
}

impl Default for PartitionLive {
    fn default() -> Self {
        PartitionLive {
            received: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            stored: AtomicI64::new(-1),
            stopped: AtomicBool::new(false),
        }
    }
}

impl PartitionLive {
    /// A record handed to the worker.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// An input completed and `next` stored as the offset to resume from.
    pub fn completed(&self, next: i64) {
        self.stored.store(next, Ordering::Relaxed);
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records consumed but not yet completed.
    pub fn in_flight(&self) -> u64 {
        self.received.load(Ordering::Relaxed).saturating_sub(self.completed.load(Ordering::Relaxed))
    }
}

/// What librdkafka's statistics last said about a partition; -1: unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerView {
    pub low_watermark: i64,
    pub high_watermark: i64,
    pub committed: i64,
    /// librdkafka's `consumer_lag_stored`, else `consumer_lag`.
    pub lag: i64,
}

#[derive(Debug, Default)]
struct Entry {
    route: Option<String>,
    live: Option<Arc<PartitionLive>>,
    broker: Option<BrokerView>,
}

/// One partition as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    /// The route whose worker runs it; `None` until its first record.
    pub route: Option<String>,
    pub committed: Option<i64>,
    /// The next offset to consume, as the pipeline last stored it.
    pub stored: Option<i64>,
    pub high_watermark: Option<i64>,
    pub lag: Option<i64>,
    pub in_flight: u64,
    /// Its worker stopped on its own.
    pub stopped: bool,
}

/// The assigned partitions.
#[derive(Debug, Default)]
pub struct Partitions {
    table: Mutex<BTreeMap<(String, i32), Entry>>,
    ever_assigned: AtomicBool,
}

fn known(v: i64) -> Option<i64> {
    (v >= 0).then_some(v)
}

impl Partitions {
    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, i32), Entry>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn assigned(&self, partitions: &[(String, i32)]) {
        let mut table = self.table();
        for key in partitions {
            table.entry(key.clone()).or_default();
        }
        self.ever_assigned.store(true, Ordering::Relaxed);
    }

    pub fn revoked(&self, partitions: &[(String, i32)]) {
        let mut table = self.table();
        for key in partitions {
            table.remove(key);
        }
    }

    /// A worker starts on the partition: fresh counts for it.
    pub fn started(&self, topic: &str, partition: i32, route: &str) -> Arc<PartitionLive> {
        let live = Arc::new(PartitionLive::default());
        let mut table = self.table();
        let entry = table.entry((topic.to_owned(), partition)).or_default();
        entry.route = Some(route.to_owned());
        entry.live = Some(live.clone());
        live
    }

    pub(crate) fn stopped(&self, topic: &str, partition: i32) {
        if let Some(live) = self.table().get(&(topic.to_owned(), partition)).and_then(|e| e.live.as_ref()) {
            live.stopped.store(true, Ordering::Relaxed);
        }
    }

    /// The broker's view of an assigned partition; others are ignored.
    pub fn broker(&self, topic: &str, partition: i32, view: BrokerView) {
        if let Some(entry) = self.table().get_mut(&(topic.to_owned(), partition)) {
            entry.broker = Some(view);
        }
    }

    pub fn list(&self) -> Vec<PartitionStatus> {
        self.table()
            .iter()
            .map(|((topic, partition), e)| {
                let stored = e.live.as_ref().and_then(|l| known(l.stored.load(Ordering::Relaxed)));
                let broker = e.broker;
                let committed = broker.and_then(|b| known(b.committed));
                let high_watermark = broker.and_then(|b| known(b.high_watermark));
                let lag = match (high_watermark, stored.or(committed)) {
                    // The watermark is as old as the last statistics report, the stored offset is current.
                    (Some(high), Some(at)) => Some((high - at).max(0)),
                    // Nothing consumed yet: reading starts at the earliest offset.
                    (Some(high), None) => broker.and_then(|b| known(b.low_watermark)).map(|low| (high - low).max(0)),
                    (None, _) => broker.and_then(|b| known(b.lag)),
                };
                PartitionStatus {
                    topic: topic.clone(),
                    partition: *partition,
                    route: e.route.clone(),
                    committed,
                    stored,
                    high_watermark,
                    lag,
                    in_flight: e.live.as_ref().map_or(0, |l| l.in_flight()),
                    stopped: e.live.as_ref().is_some_and(|l| l.stopped.load(Ordering::Relaxed)),
                }
            })
            .collect()
    }

    /// Why the consumer side is not ready, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        let table = self.table();
        if table.is_empty() {
            return Some(if self.ever_assigned.load(Ordering::Relaxed) {
                "no partitions assigned (all were revoked)".into()
            } else {
                "no partitions assigned yet".into()
            });
        }
        table.iter().find_map(|((topic, partition), e)| {
            let live = e.live.as_ref()?;
            live.stopped.load(Ordering::Relaxed).then(|| {
                format!(
                    "route {} is failing: the worker for {topic}/{partition} stopped",
                    e.route.as_deref().unwrap_or("?")
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(low: i64, high: i64, committed: i64) -> BrokerView {
        BrokerView { low_watermark: low, high_watermark: high, committed, lag: -1 }
    }

    #[test]
    fn lag_is_the_high_watermark_less_the_stored_offset_never_negative() {
        let p = Partitions::default();
        assert_eq!(p.not_ready().as_deref(), Some("no partitions assigned yet"));
        p.assigned(&[("t".into(), 0), ("t".into(), 1)]);
        p.broker("t", 0, view(0, 10, -1001));
        p.broker("t", 1, view(4, 10, 7));
        p.broker("other", 0, view(0, 99, 0));
        let live = p.started("t", 0, "r");
        live.received();
        live.received();
        assert_eq!(p.list()[0].lag, Some(10), "nothing stored: lag counts from the low watermark");
        live.completed(6);
        let list = p.list();
        assert_eq!((list[0].lag, list[0].stored, list[0].in_flight), (Some(4), Some(6), 1));
        assert_eq!((list[1].lag, list[1].committed, list[1].route.as_deref()), (Some(3), Some(7), None));
        assert_eq!(list.len(), 2, "only assigned partitions are listed");
        live.completed(12);
        assert_eq!(p.list()[0].lag, Some(0), "a watermark older than the stored offset clamps to 0");
        assert_eq!(p.not_ready(), None);
    }

    #[test]
    fn a_stopped_worker_or_a_full_revoke_is_not_ready() {
        let p = Partitions::default();
        p.assigned(&[("t".into(), 3)]);
        p.started("t", 3, "orders");
        p.stopped("t", 3);
        assert_eq!(p.not_ready().as_deref(), Some("route orders is failing: the worker for t/3 stopped"));
        p.revoked(&[("t".into(), 3)]);
        assert_eq!(p.not_ready().as_deref(), Some("no partitions assigned (all were revoked)"));
    }
}
