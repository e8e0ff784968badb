//! The router on real records: the golden slice in `tests/golden/route/`
//! (GitHub events mixed with Olist order events), all 1024 GitHub events,
//! and the order lifecycle of every Olist order.
//!
//! Every expected count below was computed independently of this crate, by a
//! ~35-line Python model of the documented semantics (`eventType`, else
//! `type`; `topics`, then the slug template, then `default`) run over the
//! same files, with `tomllib` reading the golden `config.toml`. The config
//! written here as JSON mirrors that file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use route::Route;
use serde_json::{Map, Value, json};
use sluice_sdk::testing::{Harness, TestEvent};
use sluice_sdk::{Config, Failure, Verdict};

/// Mirrors `tests/golden/route/config.toml`.
fn golden_config() -> Value {
    json!({
        "topics": {
            "OrderPlaced": "orders.placed",
            "OrderApproved": "orders.approved",
            "OrderDelivered": "orders.delivered",
            "PushEvent": "github.push",
            "PullRequestEvent": "github.pull-requests",
        },
        "template": "events.{value}",
        "default": "events.unrouted",
    })
}

#[test]
fn golden_mixed_slice() {
    let mut h = harness(golden_config());
    let outcomes = h.handle_all(&golden_events("route"));
    let expected = BTreeMap::from([
        ("<reject>".to_owned(), 1),
        ("events.create-event".to_owned(), 3),
        ("events.delete-event".to_owned(), 1),
        ("events.fork-event".to_owned(), 1),
        ("events.gollum-event".to_owned(), 1),
        ("events.issues-event".to_owned(), 2),
        ("events.order-canceled".to_owned(), 1),
        ("events.order-shipped".to_owned(), 5),
        ("events.unrouted".to_owned(), 2),
        ("events.watch-event".to_owned(), 3),
        ("github.pull-requests".to_owned(), 1),
        ("github.push".to_owned(), 5),
        ("orders.approved".to_owned(), 6),
        ("orders.delivered".to_owned(), 3),
        ("orders.placed".to_owned(), 6),
    ]);
    assert_eq!(by_topic(&outcomes), expected);
    assert_eq!((h.counter("routed"), h.counter("defaulted"), h.counter("unmatched")), (38, 2, 0));
    // The payment record (no type field) and the tombstone, by offset.
    for offset in [7, 15] {
        assert!(matches!(&outcomes[offset], Ok(Verdict::Emit(r)) if r[0].topic.as_deref() == Some("events.unrouted")));
    }
    assert!(
        matches!(&outcomes[23], Err(Failure::Reject(m)) if m.starts_with("olist.orders/0@23: value is not valid JSON"))
    );
}

#[test]
fn all_1024_github_events() {
    let Some(text) = shared_data("gharchive-events/gharchive-2015-01-01-15.first1024.ndjson") else { return };
    let events: Vec<TestEvent> = text.lines().map(TestEvent::bytes).collect();

    let mut h = harness(json!({"topics": {"PushEvent": "github.push"}, "template": "github.{value}"}));
    let expected = BTreeMap::from([
        ("github.commit-comment-event".to_owned(), 5),
        ("github.create-event".to_owned(), 143),
        ("github.delete-event".to_owned(), 36),
        ("github.fork-event".to_owned(), 24),
        ("github.gollum-event".to_owned(), 6),
        ("github.issue-comment-event".to_owned(), 60),
        ("github.issues-event".to_owned(), 47),
        ("github.pull-request-event".to_owned(), 48),
        ("github.pull-request-review-comment-event".to_owned(), 4),
        ("github.push".to_owned(), 529),
        ("github.release-event".to_owned(), 7),
        ("github.watch-event".to_owned(), 115),
    ]);
    assert_eq!(by_topic(&h.handle_all(&events)), expected);
    assert_eq!(h.counter("routed"), 1024);

    // Only pushes and pull requests wanted: 529 + 48 routed, the rest dropped.
    let config = json!({"topics": {"PushEvent": "github.push", "PullRequestEvent": "github.pull-requests"}, "unmatched": "drop"});
    let mut h = harness(config);
    let outcomes = h.handle_all(&events);
    let dropped = outcomes.iter().filter(|o| matches!(o, Ok(Verdict::Drop(_)))).count();
    assert_eq!((outcomes.len() - dropped, dropped), (577, 447));
    assert_eq!(h.counter("unmatched"), 447);
}

#[test]
fn every_olist_order_lifecycle_event() {
    let Some(text) = shared_data("olist-ecommerce/olist_orders_dataset.csv") else { return };
    // One event per lifecycle timestamp an order has.
    let stages = [
        ("order_purchase_timestamp", "OrderPlaced"),
        ("order_approved_at", "OrderApproved"),
        ("order_delivered_carrier_date", "OrderShipped"),
        ("order_delivered_customer_date", "OrderDelivered"),
    ];
    let mut events = Vec::new();
    for order in csv_objects(&text) {
        for (column, event_type) in stages {
            let at = order[column].as_str().unwrap_or_default();
            if !at.is_empty() {
                let value = json!({"eventType": event_type, "order_id": order["order_id"], "occurredAt": at});
                events.push(TestEvent::json(value));
            }
        }
    }
    let mut config = golden_config();
    config["template"] = json!("orders.{value}");
    let mut h = harness(config);
    let expected = BTreeMap::from([
        ("orders.approved".to_owned(), 7989),
        ("orders.delivered".to_owned(), 5170),
        ("orders.order-shipped".to_owned(), 6353),
        ("orders.placed".to_owned(), 8135),
    ]);
    assert_eq!(by_topic(&h.handle_all(&events)), expected);
}

/// How many records went to each topic; rejects count as `<reject>`.
fn by_topic(outcomes: &[Result<Verdict, Failure>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        let topic = match outcome {
            Ok(Verdict::Emit(records)) if records.len() == 1 => records[0].topic.clone().unwrap_or_default(),
            Err(Failure::Reject(_)) => "<reject>".to_owned(),
            Ok(Verdict::Drop(_)) => continue,
            other => panic!("unexpected outcome {other:?}"),
        };
        *counts.entry(topic).or_default() += 1;
    }
    counts
}

fn harness(config: Value) -> Harness<Route> {
    match Harness::new(Config::from_json(config)) {
        Ok(h) => h,
        Err(e) => panic!("config refused: {e}"),
    }
}

/// CSV rows (no quoted cells in this file) as JSON objects of strings.
fn csv_objects(text: &str) -> Vec<Value> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    lines
        .map(|line| {
            let row: Map<String, Value> =
                header.iter().zip(line.split(',')).map(|(h, v)| ((*h).to_owned(), Value::from(v))).collect();
            Value::Object(row)
        })
        .collect()
}

/// The shared data sets live outside the repository; without them these
/// tests have nothing to check and say so.
fn shared_data(relative: &str) -> Option<String> {
    let dir = std::env::var_os("SLUICE_DATA").map_or_else(|| PathBuf::from("/work/shared/data"), PathBuf::from);
    let path = dir.join(relative);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => {
            eprintln!("skipped: cannot read {} ({e}); set SLUICE_DATA to the data directory", path.display());
            None
        }
    }
}

/// The records of a golden `input.jsonl`, in the `sluice test` input format.
fn golden_events(name: &str) -> Vec<TestEvent> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden").join(name).join("input.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines().filter(|l| !l.trim().is_empty()).map(input_record).collect()
}

fn input_record(line: &str) -> TestEvent {
    let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("golden line is not JSON: {e}"));
    let mut event = match record.get("value") {
        None | Some(Value::Null) => TestEvent::tombstone(),
        Some(Value::String(text)) => TestEvent::bytes(text.as_bytes()),
        Some(json) => TestEvent::json(json.clone()),
    };
    if let Some(topic) = record["topic"].as_str() {
        event = event.topic(topic);
    }
    if let Some(partition) = record["partition"].as_i64() {
        event = event.partition(i32::try_from(partition).unwrap_or_else(|_| panic!("partition {partition}")));
    }
    if let Some(offset) = record["offset"].as_i64() {
        event = event.offset(offset);
    }
    if let Some(key) = record["key"].as_str() {
        event = event.key(key.as_bytes());
    }
    for header in record["headers"].as_array().into_iter().flatten() {
        match (header[0].as_str(), header[1].as_str()) {
            (Some(name), Some(value)) => event = event.header(name, value.as_bytes()),
            _ => panic!("golden headers are [name, value] pairs, got {header}"),
        }
    }
    event
}
