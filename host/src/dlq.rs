//! Dead-letter records: the original record plus headers that say where it
//! came from and why it failed. Headers of an earlier failure are replaced,
//! so a replayed record that fails again carries only its latest story.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::record::Record;
use crate::sink::OutRecord;

/// Every DLQ header starts with this; replay strips them.
pub const PREFIX: &str = "sluice.dlq.";

/// Why an event ended in the DLQ. The names are stable: they appear in DLQ
/// headers and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A plugin answered `reject`.
    Rejected,
    /// A plugin kept answering `retry` until the policy's attempts ran out.
    RetriesExhausted,
    /// A plugin trapped (panicked) on every attempt.
    Trap,
    /// A plugin ran out of time on every attempt.
    Timeout,
    /// A plugin ran out of memory on every attempt.
    Memory,
    /// A plugin answered with a malformed batch response.
    BadResponse,
    /// A plugin emitted to a topic its route does not allow.
    ForbiddenTopic,
    /// An event's outputs broke the output count or size budget.
    OutputBudget,
    /// Records were to go to the route's default outputs, and it has none.
    NoOutputTopic,
    /// The producer refused an output outright (e.g. over `message.max.bytes`).
    ProduceRefused,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Rejected => "rejected",
            ErrorKind::RetriesExhausted => "retries-exhausted",
            ErrorKind::Trap => "trap",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Memory => "memory",
            ErrorKind::BadResponse => "bad-response",
            ErrorKind::ForbiddenTopic => "forbidden-topic",
            ErrorKind::OutputBudget => "output-budget",
            ErrorKind::NoOutputTopic => "no-output-topic",
            ErrorKind::ProduceRefused => "produce-refused",
        }
    }

    /// A sandbox fault: the poison-pill breaker counts these.
    pub fn is_fault(self) -> bool {
        matches!(self, ErrorKind::Trap | ErrorKind::Timeout | ErrorKind::Memory | ErrorKind::BadResponse)
    }

    pub fn from_fault(kind: &str) -> Self {
        match kind {
            "timeout" => ErrorKind::Timeout,
            "memory" => ErrorKind::Memory,
            "bad-response" => ErrorKind::BadResponse,
            _ => ErrorKind::Trap,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and why: everything a DLQ record says beyond the original record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub kind: ErrorKind,
    pub message: String,
    /// `name@hash` of the plugin that failed, or empty when the host decided.
    pub plugin: String,
    pub route: String,
    pub group: String,
    pub attempts: u32,
}

/// The DLQ record for `original`: same key, value and headers, with the
/// `sluice.dlq.*` headers replaced.
pub fn record(original: &Record, letter: &DeadLetter, dlq_topic: &str) -> OutRecord {
    let mut headers: Vec<(String, Vec<u8>)> =
        original.headers.iter().filter(|(n, _)| !n.starts_with(PREFIX)).cloned().collect();
    let failed_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut add = |name: &str, value: String| headers.push((format!("{PREFIX}{name}"), value.into_bytes()));
    add("topic", original.topic.clone());
    add("partition", original.partition.to_string());
    add("offset", original.offset.to_string());
    add("timestamp", original.timestamp.map_or_else(String::new, |t| t.to_string()));
    add("group", letter.group.clone());
    add("route", letter.route.clone());
    add("plugin", letter.plugin.clone());
    add("error.kind", letter.kind.as_str().to_owned());
    add("error.message", letter.message.clone());
    add("attempts", letter.attempts.to_string());
    add("failed-at", failed_at.to_string());
    OutRecord {
        topic: dlq_topic.to_owned(),
        timestamp: original.timestamp,
        key: original.key.clone(),
        value: original.value.clone(),
        headers,
    }
}

/// On a stub: the size of the value the stub left out.
pub const VALUE_DROPPED: &str = "sluice.dlq.value-dropped";
/// On a stub: how many of the original's own headers it left out.
pub const HEADERS_DROPPED: &str = "sluice.dlq.headers-dropped";
/// On a stub: the size of the key it left out (keys up to [`STUB_MAX_KEY`] stay).
pub const KEY_DROPPED: &str = "sluice.dlq.key-dropped";
/// On a stub: why the full DLQ record was refused.
pub const REFUSED: &str = "sluice.dlq.refused";
/// The largest key a stub keeps.
pub const STUB_MAX_KEY: usize = 1024;

/// A DLQ record that the producer or broker refuses for good (too large) is
/// replaced by this stub: the `sluice.dlq.*` headers that say where the event
/// came from and why it failed, without the value and the original's own
/// headers, and headers that say what was left out. The event is still
/// accounted for; its content can be read again from the input topic at the
/// offset the stub names, while retention keeps it.
pub fn stub(letter: &OutRecord, refused: &str) -> OutRecord {
    let (mut headers, dropped): (Vec<_>, Vec<_>) =
        letter.headers.iter().cloned().partition(|(n, _)| n.starts_with(PREFIX));
    let value_len = letter.value.as_ref().map_or(0, Vec::len);
    headers.push((VALUE_DROPPED.to_owned(), value_len.to_string().into_bytes()));
    headers.push((HEADERS_DROPPED.to_owned(), dropped.len().to_string().into_bytes()));
    let key = match &letter.key {
        Some(key) if key.len() > STUB_MAX_KEY => {
            headers.push((KEY_DROPPED.to_owned(), key.len().to_string().into_bytes()));
            None
        }
        key => key.clone(),
    };
    headers.push((REFUSED.to_owned(), refused.as_bytes().to_vec()));
    OutRecord { topic: letter.topic.clone(), timestamp: letter.timestamp, key, value: None, headers }
}

/// Whether `letter` is already a stub (a refused stub cannot shrink further).
pub fn is_stub(letter: &OutRecord) -> bool {
    letter.header(VALUE_DROPPED).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(kind: ErrorKind, message: &str) -> DeadLetter {
        DeadLetter {
            kind,
            message: message.into(),
            plugin: "validate@0123456789ab".into(),
            route: "orders".into(),
            group: "sluice".into(),
            attempts: 3,
        }
    }

    fn header<'a>(r: &'a OutRecord, name: &str) -> Vec<&'a str> {
        r.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| std::str::from_utf8(v).unwrap()).collect()
    }

    #[test]
    fn carries_the_original_and_every_context_header() {
        let original = Record {
            topic: "orders.events".into(),
            partition: 2,
            offset: 41,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"o-1".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![("traceparent".into(), b"00-abc".to_vec())],
            attempt: 3,
        };
        let r = record(&original, &letter(ErrorKind::RetriesExhausted, "db down"), "orders.dlq");
        assert_eq!(
            (r.topic.as_str(), r.key.as_deref(), r.value.as_deref()),
            ("orders.dlq", Some(&b"o-1"[..]), Some(&b"{}"[..]))
        );
        assert_eq!(header(&r, "traceparent"), ["00-abc"]);
        for (name, value) in [
            ("topic", "orders.events"),
            ("partition", "2"),
            ("offset", "41"),
            ("timestamp", "1700000000000"),
            ("group", "sluice"),
            ("route", "orders"),
            ("plugin", "validate@0123456789ab"),
            ("error.kind", "retries-exhausted"),
            ("error.message", "db down"),
            ("attempts", "3"),
        ] {
            assert_eq!(header(&r, &format!("{PREFIX}{name}")), [value], "{name}");
        }
        assert_eq!(header(&r, "sluice.dlq.failed-at").len(), 1);
    }

    #[test]
    fn a_second_failure_replaces_the_first_ones_headers() {
        let original = Record { topic: "t".into(), value: Some(b"x".to_vec()), ..Record::default() };
        let first = record(&original, &letter(ErrorKind::Rejected, "first"), "dlq");
        let replayed = Record { topic: "t".into(), headers: first.headers.clone(), ..Record::default() };
        let second = record(&replayed, &letter(ErrorKind::Trap, "second"), "dlq");
        assert_eq!(header(&second, "sluice.dlq.error.message"), ["second"]);
        assert_eq!(header(&second, "sluice.dlq.error.kind"), ["trap"]);
        assert_eq!(second.headers.len(), first.headers.len());
    }

    #[test]
    fn a_stub_keeps_the_story_and_says_what_it_left_out() {
        let original = Record {
            topic: "orders.events".into(),
            offset: 7,
            key: Some(vec![b'k'; STUB_MAX_KEY + 1]),
            value: Some(vec![0; 2_000_000]),
            headers: vec![("big".into(), vec![1; 500_000]), ("traceparent".into(), b"00-abc".to_vec())],
            ..Record::default()
        };
        let full = record(&original, &letter(ErrorKind::Rejected, "bad"), "orders.dlq");
        assert!(!is_stub(&full));
        let s = stub(&full, "Broker: Message size too large");
        assert!(is_stub(&s));
        assert_eq!((s.topic.as_str(), s.key.as_deref(), s.value.as_deref()), ("orders.dlq", None, None));
        assert_eq!(header(&s, VALUE_DROPPED), ["2000000"]);
        assert_eq!(header(&s, HEADERS_DROPPED), ["2"]);
        assert_eq!(header(&s, KEY_DROPPED), [(STUB_MAX_KEY + 1).to_string()]);
        assert_eq!(header(&s, REFUSED), ["Broker: Message size too large"]);
        assert_eq!(header(&s, "sluice.dlq.offset"), ["7"]);
        assert_eq!(header(&s, "sluice.dlq.error.kind"), ["rejected"]);
        assert!(s.headers.iter().all(|(n, _)| n.starts_with(PREFIX)));
    }

    #[test]
    fn a_stub_keeps_a_small_key() {
        let original = Record { key: Some(b"o-1".to_vec()), value: Some(b"x".to_vec()), ..Record::default() };
        let s = stub(&record(&original, &letter(ErrorKind::Trap, "t"), "dlq"), "too large");
        assert_eq!(s.key.as_deref(), Some(&b"o-1"[..]));
        assert!(header(&s, KEY_DROPPED).is_empty());
    }
}
