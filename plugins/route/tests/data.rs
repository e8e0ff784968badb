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
use std::path::Path;

use route::Route;
use serde_json::{Value, json};
use sluice_sdk::testing::{Harness, TestEvent, read_csv, shared_data};
use sluice_sdk::{Failure, Verdict};

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
    let mut h = Harness::<Route>::from_json(golden_config());
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
    let Some(path) = shared_data("gharchive-events/gharchive-2015-01-01-15.first1024.ndjson") else { return };
    let text = std::fs::read_to_string(&path).expect("the data set is readable");
    let events: Vec<TestEvent> = text.lines().map(TestEvent::bytes).collect();

    let mut h =
        Harness::<Route>::from_json(json!({"topics": {"PushEvent": "github.push"}, "template": "github.{value}"}));
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
    let mut h = Harness::<Route>::from_json(config);
    let outcomes = h.handle_all(&events);
    let dropped = outcomes.iter().filter(|o| matches!(o, Ok(Verdict::Drop(_)))).count();
    assert_eq!((outcomes.len() - dropped, dropped), (577, 447));
    assert_eq!(h.counter("unmatched"), 447);
}

#[test]
fn every_olist_order_lifecycle_event() {
    let Some(path) = shared_data("olist-ecommerce/olist_orders_dataset.csv") else { return };
    // One event per lifecycle timestamp an order has.
    let stages = [
        ("order_purchase_timestamp", "OrderPlaced"),
        ("order_approved_at", "OrderApproved"),
        ("order_delivered_carrier_date", "OrderShipped"),
        ("order_delivered_customer_date", "OrderDelivered"),
    ];
    let mut events = Vec::new();
    for order in read_csv(path).expect("the data set is a CSV file").into_iter().map(Value::Object) {
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
    let mut h = Harness::<Route>::from_json(config);
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

/// The records of a golden `input.jsonl`, in the `sluice test` input format.
fn golden_events(name: &str) -> Vec<TestEvent> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden").join(name).join("input.jsonl");
    TestEvent::from_input_file(path).unwrap_or_else(|e| panic!("{e}"))
}
