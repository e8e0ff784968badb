//! Counters of what the pipeline did, per route: read by the demo summary,
//! the status output and the metrics exporter.
//!
//! This is the one place per signal: where an event is both logged and
//! counted, the function here does both.

mod partitions;
mod recent;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use partitions::{BrokerView, PartitionLive, PartitionStatus, Partitions};
pub use recent::{RECENT_ERRORS, RecentError};

use crate::dlq::{DeadLetter, ErrorKind};
use crate::metrics::Histograms;
use crate::record::Record;

/// What can happen to an input record, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    Consumed,
    Delivered,
    Dropped,
    Emitted,
    Retried,
    /// Inputs sent on to a retry topic after their in-place retries ran out.
    SentToRetryTopic,
    DeadLettered,
    /// Inputs whose every output (or DLQ record) is acknowledged and whose
    /// offset is stored.
    Completed,
}

/// How many dead letters in a row, all sandbox faults, make a route failing
/// for `/readyz`.
pub const FAILING_STREAK: u64 = 10;

/// Pipeline-wide counters. Updated once per batch or per finished record, so
/// a mutex is cheap; the histograms and partition gauges are atomics.
#[derive(Debug, Default)]
pub struct Stats {
    by_route: Mutex<BTreeMap<(String, Event), u64>>,
    /// Events a plugin decided (dropped, retried), by (route, plugin name, event).
    by_plugin: Mutex<BTreeMap<(String, String, Event), u64>>,
    /// Dead letters by (route, plugin name, error kind); plugin empty when the host decided.
    dlq_by_kind: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    /// Failed attempts (retried or not) by (route, plugin name, error kind).
    failures: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    completed: AtomicU64,
    /// Reload outcomes by (what: `config` or `plugin`, succeeded).
    reloads: Mutex<BTreeMap<(&'static str, bool), u64>>,
    /// Partition workers started, by route: rebalances and restarts.
    partitions_started: Mutex<BTreeMap<String, u64>>,
    /// Dead letters in a row that were sandbox faults, by route.
    fault_streak: Mutex<BTreeMap<String, u64>>,
    recent: recent::Ring,
    /// Per-partition offsets, lag and in-flight counts.
    pub partitions: Partitions,
    /// Latency histograms.
    pub histograms: Histograms,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Consumed => "consumed",
            Event::Delivered => "delivered",
            Event::Dropped => "dropped",
            Event::Emitted => "emitted",
            Event::Retried => "retried",
            Event::SentToRetryTopic => "sent_to_retry_topic",
            Event::DeadLettered => "dead_lettered",
            Event::Completed => "completed",
        }
    }

    pub const ALL: [Event; 8] = [
        Event::Consumed,
        Event::Delivered,
        Event::Dropped,
        Event::Emitted,
        Event::Retried,
        Event::SentToRetryTopic,
        Event::DeadLettered,
        Event::Completed,
    ];
}

/// `validate` for `validate@0123456789ab`: metric labels carry the name, the
/// version is in `sluice_plugin_info`.
pub fn plugin_name(version: &str) -> &str {
    version.split('@').next().unwrap_or(version)
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, n: u64) {
    *map.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += n;
}

fn snapshot<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> Vec<(K, u64)> {
    map.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect()
}

impl Stats {
    pub fn add(&self, route: &str, event: Event, n: u64) {
        if n == 0 {
            return;
        }
        match event {
            Event::Completed => {
                self.completed.fetch_add(n, Ordering::Relaxed);
            }
            Event::Delivered | Event::Dropped => {
                self.fault_streak.lock().unwrap_or_else(|e| e.into_inner()).remove(route);
            }
            _ => {}
        }
        bump(&self.by_route, (route.to_owned(), event), n);
    }

    /// An input every record of which a plugin (`name@hash`, or empty) dropped.
    pub fn dropped(&self, route: &str, plugin: &str) {
        self.add(route, Event::Dropped, 1);
        bump(&self.by_plugin, (route.to_owned(), plugin_name(plugin).to_owned(), Event::Dropped), 1);
    }

    /// An input to be tried again after `delay`, because `plugin` failed on it.
    pub fn retried(&self, route: &str, plugin: &str, record: &Record, delay: Duration) {
        tracing::debug!(route, plugin, topic = %record.topic, partition = record.partition, offset = record.offset,
            attempt = record.attempt + 1, ?delay, "retrying");
        self.add(route, Event::Retried, 1);
        bump(&self.by_plugin, (route.to_owned(), plugin_name(plugin).to_owned(), Event::Retried), 1);
    }

    /// An input whose in-place retries ran out, sent on to retry topic `tier`.
    pub fn sent_to_retry_topic(&self, route: &str, plugin: &str, record: &Record, tier: &str) {
        tracing::info!(route, plugin, topic = %record.topic, partition = record.partition, offset = record.offset,
            retry_topic = tier, attempts = record.attempt, "in-place retries ran out; sent to the retry topic");
        self.add(route, Event::SentToRetryTopic, 1);
        bump(&self.by_plugin, (route.to_owned(), plugin_name(plugin).to_owned(), Event::SentToRetryTopic), 1);
    }

    /// One failed attempt at an input, whatever happens to it next.
    pub fn failed(&self, route: &str, plugin: &str, kind: ErrorKind, record: &Record, message: &str) {
        tracing::debug!(route, plugin, topic = %record.topic, partition = record.partition, offset = record.offset,
            attempt = record.attempt, %kind, error = message, "attempt failed");
        bump(&self.failures, (route.to_owned(), plugin_name(plugin).to_owned(), kind.as_str()), 1);
    }

    /// An input that went to the DLQ: logged, counted and kept among the
    /// recent errors.
    pub fn dead_lettered(&self, record: &Record, letter: &DeadLetter) {
        tracing::warn!(route = %letter.route, topic = %record.topic, partition = record.partition, offset = record.offset,
            kind = %letter.kind, plugin = %letter.plugin, attempts = letter.attempts, error = %letter.message, "dead-lettered");
        self.count_dead_letter(&letter.route, &letter.plugin, letter.kind.as_str(), letter.kind.is_fault());
        self.recent.push(RecentError::now(
            &letter.route,
            &letter.plugin,
            letter.kind.as_str(),
            &letter.message,
            record,
        ));
    }

    /// Counts a dead letter with no plugin to name (tests, tools).
    pub fn dead_letter(&self, route: &str, kind: &'static str) {
        self.count_dead_letter(route, "", kind, false);
    }

    fn count_dead_letter(&self, route: &str, plugin: &str, kind: &'static str, fault: bool) {
        self.add(route, Event::DeadLettered, 1);
        bump(&self.dlq_by_kind, (route.to_owned(), plugin_name(plugin).to_owned(), kind), 1);
        let mut streak = self.fault_streak.lock().unwrap_or_else(|e| e.into_inner());
        if fault {
            *streak.entry(route.to_owned()).or_default() += 1;
        } else {
            streak.remove(route);
        }
    }

    /// A partition worker that stopped on its own (a host bug): the route is
    /// failing until the partition is assigned again.
    pub fn worker_stopped(&self, route: &str, topic: &str, partition: i32, error: &str) {
        tracing::error!(route, topic, partition, error, "plugin chain panicked; stopping this partition's worker");
        self.partitions.stopped(topic, partition);
        let record = Record { topic: topic.to_owned(), partition, offset: -1, ..Record::default() };
        self.recent.push(RecentError::now(route, "", "worker-stopped", error, &record));
    }

    /// Inputs completed across all routes.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn get(&self, route: &str, event: Event) -> u64 {
        let map = self.by_route.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(route.to_owned(), event)).copied().unwrap_or(0)
    }

    pub fn partition_started(&self, route: &str) {
        bump(&self.partitions_started, route.to_owned(), 1);
    }

    /// Partition workers started for `route` since the host started.
    pub fn partitions_started(&self, route: &str) -> u64 {
        self.partitions_started.lock().unwrap_or_else(|e| e.into_inner()).get(route).copied().unwrap_or(0)
    }

    pub fn reload(&self, what: &'static str, ok: bool) {
        bump(&self.reloads, (what, ok), 1);
    }

    /// Reloads of `what` (`config` or `plugin`) that succeeded (`ok`) or were refused.
    pub fn reloads(&self, what: &str, ok: bool) -> u64 {
        let map = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().filter(|((w, o), _)| *w == what && *o == ok).map(|(_, n)| *n).sum()
    }

    /// Every route's counters, by route and event name.
    pub fn by_route(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for ((route, event), n) in snapshot(&self.by_route) {
            out.entry(route).or_default().insert(event.as_str(), n);
        }
        out
    }

    /// DLQ counts by error kind for a route.
    pub fn dlq_kinds(&self, route: &str) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for ((r, _, kind), n) in snapshot(&self.dlq_by_kind) {
            if r == route {
                *out.entry(kind).or_default() += n;
            }
        }
        out
    }

    /// Counters by (route, event).
    pub fn route_counters(&self) -> Vec<((String, Event), u64)> {
        snapshot(&self.by_route)
    }

    /// Dropped and retried counts by (route, plugin name, event).
    pub fn plugin_counters(&self) -> Vec<((String, String, Event), u64)> {
        snapshot(&self.by_plugin)
    }

    /// Dead letters by (route, plugin name, kind).
    pub fn dead_letters(&self) -> Vec<((String, String, &'static str), u64)> {
        snapshot(&self.dlq_by_kind)
    }

    /// Failed attempts by (route, plugin name, kind).
    pub fn failures(&self) -> Vec<((String, String, &'static str), u64)> {
        snapshot(&self.failures)
    }

    /// Reload outcomes by (what, succeeded).
    pub fn reload_counters(&self) -> Vec<((&'static str, bool), u64)> {
        snapshot(&self.reloads)
    }

    /// Partition workers started by route.
    pub fn started_counters(&self) -> Vec<(String, u64)> {
        snapshot(&self.partitions_started)
    }

    /// The most recent dead letters and worker stops, newest last.
    pub fn recent_errors(&self) -> Vec<RecentError> {
        self.recent.list()
    }

    /// Why the host is not ready, if it is not: see the README's `/readyz`.
    pub fn not_ready(&self) -> Option<String> {
        if let Some(reason) = self.partitions.not_ready() {
            return Some(reason);
        }
        let streak = self.fault_streak.lock().unwrap_or_else(|e| e.into_inner());
        streak.iter().find(|(_, n)| **n >= FAILING_STREAK).map(|(route, n)| {
            format!("route {route} is failing: its last {n} records were all dead-lettered with plugin faults")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(kind: ErrorKind) -> DeadLetter {
        DeadLetter {
            kind,
            message: "m".into(),
            plugin: "p@1".into(),
            route: "r".into(),
            group: "g".into(),
            attempts: 1,
        }
    }

    #[test]
    fn a_route_fails_after_a_streak_of_faults_and_recovers_on_a_delivery() {
        let stats = Stats::default();
        stats.partitions.assigned(&[("t".into(), 0)]);
        assert_eq!(stats.not_ready(), None);
        let record = Record { topic: "t".into(), ..Record::default() };
        for _ in 0..FAILING_STREAK - 1 {
            stats.dead_lettered(&record, &letter(ErrorKind::Trap));
        }
        assert_eq!(stats.not_ready(), None);
        stats.dead_lettered(&record, &letter(ErrorKind::Timeout));
        assert!(stats.not_ready().is_some_and(|r| r.contains("route r is failing")), "{:?}", stats.not_ready());
        stats.add("r", Event::Delivered, 1);
        assert_eq!(stats.not_ready(), None);
    }

    #[test]
    fn a_rejection_breaks_the_fault_streak() {
        let stats = Stats::default();
        stats.partitions.assigned(&[("t".into(), 0)]);
        let record = Record::default();
        for _ in 0..FAILING_STREAK - 1 {
            stats.dead_lettered(&record, &letter(ErrorKind::Trap));
        }
        stats.dead_lettered(&record, &letter(ErrorKind::Rejected));
        stats.dead_lettered(&record, &letter(ErrorKind::Trap));
        assert_eq!(stats.not_ready(), None);
        assert_eq!(stats.dlq_kinds("r"), BTreeMap::from([("rejected", 1), ("trap", FAILING_STREAK)]));
        assert_eq!(stats.dead_letters()[0].0.1, "p", "labels carry the plugin name, not its version");
    }
}
