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

    /// DLQ counts by error kind for a route.
    pub fn dlq_kinds(&self, route: &str) -> BTreeMap<&'static str, u64> {
        let map = self.dlq_by_kind.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().filter(|((r, _), _)| r == route).map(|((_, k), v)| (*k, *v)).collect()
    }
}
