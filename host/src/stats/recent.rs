//! A small ring of the latest errors for the status page: where and why,
//! never a record's key or value.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::record::Record;

/// How many recent errors `/status` keeps.
pub const RECENT_ERRORS: usize = 50;

/// One dead letter or stopped worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentError {
    pub at_ms: u64,
    pub route: String,
    /// `name@hash`, or empty when the host decided.
    pub plugin: String,
    pub kind: String,
    pub message: String,
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

impl RecentError {
    pub fn now(route: &str, plugin: &str, kind: &str, message: &str, record: &Record) -> Self {
        RecentError {
            at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            route: route.to_owned(),
            plugin: plugin.to_owned(),
            kind: kind.to_owned(),
            message: message.to_owned(),
            topic: record.topic.clone(),
            partition: record.partition,
            offset: (record.offset >= 0).then_some(record.offset),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Ring(Mutex<VecDeque<RecentError>>);

impl Ring {
    pub(super) fn push(&self, error: RecentError) {
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == RECENT_ERRORS {
            ring.pop_front();
        }
        ring.push_back(error);
    }

    pub(super) fn list(&self) -> Vec<RecentError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest() {
        let ring = Ring::default();
        for i in 0..RECENT_ERRORS + 3 {
            ring.push(RecentError::now("r", "", "trap", &i.to_string(), &Record::default()));
        }
        let list = ring.list();
        assert_eq!(list.len(), RECENT_ERRORS);
        assert_eq!(
            (list[0].message.as_str(), list[RECENT_ERRORS - 1].message.clone()),
            ("3", (RECENT_ERRORS + 2).to_string())
        );
    }
}
