//! Non-blocking retry tiers. A record whose in-place retries run out is
//! written to the route's next tier topic with a not-before time, and the
//! route consumes the tier and runs the record again once it is due. The
//! `sluice.retry.*` headers carry what a tier record must not lose: where
//! the event first came from and how many attempts it has had.
//!
//! The headers are trusted only on records read from one of the route's own
//! tiers; on an input topic they are someone else's and are ignored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::RetryTopic;
use crate::dlq::ErrorKind;
use crate::record::Record;
use crate::sink::OutRecord;

/// Every retry-tier header starts with this; outputs and DLQ records drop them.
pub const PREFIX: &str = "sluice.retry.";

const TOPIC: &str = "sluice.retry.topic";
const PARTITION: &str = "sluice.retry.partition";
const OFFSET: &str = "sluice.retry.offset";
const TIMESTAMP: &str = "sluice.retry.timestamp";
const ATTEMPTS: &str = "sluice.retry.attempts";
const NOT_BEFORE: &str = "sluice.retry.not-before";
const FAULTS: &str = "sluice.retry.faults";

/// Why the record left its last pass.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    pub kind: ErrorKind,
    pub message: &'a str,
    pub plugin: &'a str,
    /// Sandbox faults on every pass so far: the poison-pill breaker counts
    /// across tiers.
    pub faults: u32,
}

/// Where a record goes when its in-place retries run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next<'t> {
    Tier(&'t RetryTopic),
    DeadLetter,
}

/// The tier after the one `topic` is (the first, for an input topic).
pub fn next<'t>(topic: &str, tiers: &'t [RetryTopic]) -> Next<'t> {
    let after = tiers.iter().position(|t| t.topic == topic).map_or(0, |i| i + 1);
    tiers.get(after).map_or(Next::DeadLetter, Next::Tier)
}

fn from_tier(record: &Record, tiers: &[RetryTopic]) -> bool {
    tiers.iter().any(|t| t.topic == record.topic)
}

fn parsed<T: std::str::FromStr>(record: &Record, name: &str) -> Option<T> {
    std::str::from_utf8(record.header(name)?).ok()?.parse().ok()
}

/// Numbers a record read from a tier on from the attempts it had before,
/// so a plugin's `attempt` and the DLQ's count span every pass.
pub fn resume(record: &mut Record, tiers: &[RetryTopic]) {
    if from_tier(record, tiers) {
        let earlier: u32 = parsed(record, ATTEMPTS).unwrap_or(0);
        record.attempt = earlier.saturating_add(1);
    }
}

/// Sandbox faults on earlier passes of a record read from a tier.
pub fn earlier_faults(record: &Record, tiers: &[RetryTopic]) -> u32 {
    if from_tier(record, tiers) { parsed(record, FAULTS).unwrap_or(0) } else { 0 }
}

/// The event as it first arrived: a tier record's origin coordinates and
/// headers without the tier's own, or the record itself. DLQ records are
/// built from this, so they name the input topic, not a tier. A record
/// with no tier headers (every input, in the common case) is returned as it
/// is, without a copy.
pub fn original(mut record: Record, tiers: &[RetryTopic]) -> Record {
    if from_tier(&record, tiers)
        && let (Some(topic), Some(partition), Some(offset)) = (
            record.header(TOPIC).and_then(|t| String::from_utf8(t.to_vec()).ok()),
            parsed(&record, PARTITION),
            parsed(&record, OFFSET),
        )
    {
        record.timestamp = parsed(&record, TIMESTAMP);
        record.topic = topic;
        record.partition = partition;
        record.offset = offset;
    }
    record.headers.retain(|(n, _)| !n.starts_with(PREFIX));
    record
}

/// How long until a tier record is due; `None` when it is due now (or is
/// not a tier record). A malformed not-before is due now: running a record
/// early is better than holding its partition forever.
pub fn due_in(record: &Record, tiers: &[RetryTopic], now: SystemTime) -> Option<Duration> {
    if !from_tier(record, tiers) {
        return None;
    }
    let not_before: u64 = parsed(record, NOT_BEFORE)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    // A not-before beyond the tier's delay from now comes from a skewed
    // clock; waiting at most the delay bounds the stall.
    let longest = tiers.iter().find(|t| t.topic == record.topic).map_or(Duration::ZERO, |t| t.delay);
    (not_before > now).then(|| Duration::from_millis(not_before - now).min(longest))
}

/// The record that puts `record` into `tier`: the same key, value and
/// headers, plus the origin, the attempts so far, the due time and the
/// failure that sent it there.
pub fn record(
    record: &Record,
    tiers: &[RetryTopic],
    tier: &RetryTopic,
    failure: Failure<'_>,
    now: SystemTime,
) -> OutRecord {
    let origin = original(record.clone(), tiers);
    let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut headers = origin.headers.clone();
    let mut add = |name: &str, value: String| headers.push((name.to_owned(), value.into_bytes()));
    add(TOPIC, origin.topic.clone());
    add(PARTITION, origin.partition.to_string());
    add(OFFSET, origin.offset.to_string());
    add(TIMESTAMP, origin.timestamp.map_or_else(String::new, |t| t.to_string()));
    add(ATTEMPTS, record.attempt.to_string());
    add(FAULTS, failure.faults.to_string());
    add(NOT_BEFORE, (now_ms + tier.delay.as_millis()).to_string());
    add("sluice.retry.error.kind", failure.kind.as_str().to_owned());
    add("sluice.retry.error.message", failure.message.to_owned());
    add("sluice.retry.plugin", failure.plugin.to_owned());
    OutRecord { topic: tier.topic.clone(), timestamp: origin.timestamp, key: origin.key, value: origin.value, headers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<RetryTopic> {
        vec![
            RetryTopic { topic: "in.retry.1m".into(), delay: Duration::from_secs(60) },
            RetryTopic { topic: "in.retry.10m".into(), delay: Duration::from_secs(600) },
        ]
    }

    fn input() -> Record {
        Record {
            topic: "in".into(),
            partition: 3,
            offset: 17,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![("traceparent".into(), b"00-abc".to_vec()), ("sluice.retry.attempts".into(), b"99".to_vec())],
            attempt: 3,
        }
    }

    const FAILURE: Failure<'static> =
        Failure { kind: ErrorKind::RetriesExhausted, message: "db down", plugin: "p@1", faults: 2 };

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// The record as the route reads it back from the tier.
    fn consumed(out: &OutRecord, offset: i64) -> Record {
        Record {
            topic: out.topic.clone(),
            partition: 0,
            offset,
            timestamp: out.timestamp,
            key: out.key.clone(),
            value: out.value.clone(),
            headers: out.headers.clone(),
            attempt: 1,
        }
    }

    #[test]
    fn tiers_run_in_order_then_the_dlq() {
        let tiers = tiers();
        assert_eq!(next("in", &tiers), Next::Tier(&tiers[0]));
        assert_eq!(next("in.retry.1m", &tiers), Next::Tier(&tiers[1]));
        assert_eq!(next("in.retry.10m", &tiers), Next::DeadLetter);
        assert_eq!(next("in", &[]), Next::DeadLetter);
    }

    #[test]
    fn a_tier_record_keeps_the_origin_through_every_tier() {
        let tiers = tiers();
        let first = record(&input(), &tiers, &tiers[0], FAILURE, at(1_000));
        assert_eq!(
            (first.topic.as_str(), first.key.as_deref(), first.value.as_deref()),
            ("in.retry.1m", Some(&b"k"[..]), Some(&b"v"[..]))
        );
        // A forged attempts header on the input is not believed.
        assert_eq!(first.header(ATTEMPTS), Some(&b"3"[..]));
        assert_eq!(first.header(NOT_BEFORE), Some(&b"61000"[..]));
        assert_eq!(first.header("traceparent"), Some(&b"00-abc"[..]));

        let mut again = consumed(&first, 5);
        resume(&mut again, &tiers);
        assert_eq!(again.attempt, 4, "the first pass made 3 attempts");
        again.attempt = 5;
        let second = record(&again, &tiers, &tiers[1], FAILURE, at(70_000));
        assert_eq!(second.header(TOPIC), Some(&b"in"[..]));
        assert_eq!(second.header(PARTITION), Some(&b"3"[..]));
        assert_eq!(second.header(OFFSET), Some(&b"17"[..]));
        assert_eq!(second.header(ATTEMPTS), Some(&b"5"[..]));
        assert_eq!(second.header(NOT_BEFORE), Some(&b"670000"[..]));
        assert_eq!(second.headers.iter().filter(|(n, _)| n == ATTEMPTS).count(), 1);
        assert_eq!(earlier_faults(&consumed(&second, 9), &tiers), 2);
        assert_eq!(earlier_faults(&input(), &tiers), 0, "an input has had no passes");

        let last = consumed(&second, 9);
        let original = original(last.clone(), &tiers);
        assert_eq!((original.topic.as_str(), original.partition, original.offset), ("in", 3, 17));
        assert_eq!(original.timestamp, Some(1_700_000_000_000));
        assert_eq!(original.headers, vec![("traceparent".to_owned(), b"00-abc".to_vec())]);
        let mut resumed = last.clone();
        resume(&mut resumed, &tiers);
        assert_eq!(resumed.attempt, 6);
        let mut input = input();
        resume(&mut input, &tiers);
        assert_eq!(input.attempt, 3, "an input's own count stands, whatever its headers say");
    }

    #[test]
    fn a_tier_record_is_due_at_its_not_before() {
        let tiers = tiers();
        let tiered = consumed(&record(&input(), &tiers, &tiers[0], FAILURE, at(1_000)), 0);
        assert_eq!(due_in(&tiered, &tiers, at(1_000)), Some(Duration::from_secs(60)));
        assert_eq!(due_in(&tiered, &tiers, at(60_999)), Some(Duration::from_millis(1)));
        assert_eq!(due_in(&tiered, &tiers, at(61_000)), None);
        // Input records are never held, whatever their headers say.
        let mut forged = input();
        forged.headers.push((NOT_BEFORE.into(), b"99999999999999".to_vec()));
        assert_eq!(due_in(&forged, &tiers, at(0)), None);
    }

    #[test]
    fn a_skewed_or_malformed_not_before_holds_at_most_the_tier_delay() {
        let tiers = tiers();
        let mut tiered = consumed(&record(&input(), &tiers, &tiers[0], FAILURE, at(1_000)), 0);
        tiered.set_header(NOT_BEFORE, "99999999999999");
        assert_eq!(due_in(&tiered, &tiers, at(1_000)), Some(Duration::from_secs(60)));
        tiered.set_header(NOT_BEFORE, "soon");
        assert_eq!(due_in(&tiered, &tiers, at(1_000)), None);
    }
}
