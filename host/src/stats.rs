//! Counters of what the pipeline did, per route: read by the demo summary,
//! the status output and the metrics exporter.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What can happen to an input record, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    Consumed,
    Delivered,
    Dropped,
    Emitted,
    Retried,
    DeadLettered,
    /// Inputs whose every output (or DLQ record) is acknowledged and whose
    /// offset is stored.
    Completed,
}

/// Pipeline-wide counters. Updated once per batch, so a mutex is cheap.
#[derive(Debug, Default)]
pub struct Stats {
    by_route: Mutex<BTreeMap<(String, Event), u64>>,
    dlq_by_kind: Mutex<BTreeMap<(String, &'static str), u64>>,
    completed: AtomicU64,
    /// Reload outcomes by (what: `config` or `plugin`, succeeded).
    reloads: Mutex<BTreeMap<(&'static str, bool), u64>>,
    /// Partition workers started, by route: rebalances and restarts.
    partitions_started: Mutex<BTreeMap<String, u64>>,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Consumed => "consumed",
            Event::Delivered => "delivered",
            Event::Dropped => "dropped",
            Event::Emitted => "emitted",
            Event::Retried => "retried",
            Event::DeadLettered => "dead_lettered",
            Event::Completed => "completed",
        }
    }
}

impl Stats {
    pub fn add(&self, route: &str, event: Event, n: u64) {
        if n == 0 {
            return;
        }
        if event == Event::Completed {
            self.completed.fetch_add(n, Ordering::Relaxed);
        }
        let mut map = self.by_route.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route.to_owned(), event)).or_default() += n;
    }

    pub fn dead_letter(&self, route: &str, kind: &'static str) {
        self.add(route, Event::DeadLettered, 1);
        let mut map = self.dlq_by_kind.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route.to_owned(), kind)).or_default() += 1;
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
        *self.partitions_started.lock().unwrap_or_else(|e| e.into_inner()).entry(route.to_owned()).or_default() += 1;
    }

    /// Partition workers started for `route` since the host started.
    pub fn partitions_started(&self, route: &str) -> u64 {
        self.partitions_started.lock().unwrap_or_else(|e| e.into_inner()).get(route).copied().unwrap_or(0)
    }

    pub fn reload(&self, what: &'static str, ok: bool) {
        *self.reloads.lock().unwrap_or_else(|e| e.into_inner()).entry((what, ok)).or_default() += 1;
    }

    /// Reloads of `what` (`config` or `plugin`) that succeeded (`ok`) or were refused.
    pub fn reloads(&self, what: &str, ok: bool) -> u64 {
        let map = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().filter(|((w, o), _)| *w == what && *o == ok).map(|(_, n)| *n).sum()
    }

    /// Every route's counters, by route and event name.
    pub fn by_route(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        let map = self.by_route.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for ((route, event), n) in map.iter() {
            out.entry(route.clone()).or_default().insert(event.as_str(), *n);
        }
        out
    }

    /// DLQ counts by error kind for a route.
    pub fn dlq_kinds(&self, route: &str) -> BTreeMap<&'static str, u64> {
        let map = self.dlq_by_kind.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().filter(|((r, _), _)| r == route).map(|((_, k), v)| (*k, *v)).collect()
    }
}
