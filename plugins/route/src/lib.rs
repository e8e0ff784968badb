//! Content-based routing: picks each record's output topic from a field.
//!
//! The value of the routing field is looked up in `topics`, and a value not
//! listed there goes through `template`. A record that neither matched, has
//! no usable value in the field, or is a tombstone is handled as `unmatched`
//! says. The record is re-emitted unchanged (same key, value and headers) to
//! the chosen topic, which the route's outputs must allow.
//!
//! The config table (in a route's plugin entry, or at the top level of a
//! `sluice test --config` file):
//!
//! ```toml
//! # The field that picks the topic. Default: `eventType` when present, else `type`.
//! field = "eventType"
//! # Field value → topic. Default: none.
//! topics = { OrderPlaced = "orders.placed", PushEvent = "github.push" }
//! # For values not in `topics`: `{value}` is the value lower-cased, split at
//! # case changes and with other characters turned into `-`
//! # (PullRequestEvent → github.pull-request-event). Default: none.
//! template = "github.{value}"
//! # The topic for records nothing else matched. Default: none.
//! default = "events.other"
//! # "default" | "drop" | "reject": what an unmatched record does.
//! # Default: "default" when `default` is set, otherwise "reject".
//! unmatched = "default"
//! ```
//!
//! Values that are numbers or booleans match as JSON writes them (`1`,
//! `true`). A value that is not valid JSON is always rejected.
//!
//! Counters: `routed` (by `topics` or `template`), `defaulted` (sent to
//! `default`), `unmatched` (dropped or rejected for want of a topic).

mod config;
mod path;
mod topic;

use serde_json::Value;
use sluice_sdk::json::kind;
use sluice_sdk::prelude::*;

use crate::config::{Settings, Unmatched};

/// The handler: the checked routing table.
#[derive(Debug)]
pub struct Route {
    settings: Settings,
}

impl Handler for Route {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Route { settings: Settings::from_config(config)? })
    }

    fn handle(&mut self, event: &Event<'_>) -> Result<Verdict, Failure> {
        let choice = match event.value {
            // A tombstone has no fields, but on a compacted topic it still
            // has to reach the topic its key lives on.
            None => Err("the record is a tombstone (no value)".to_owned()),
            Some(_) => self.choose(&event.json::<Value>()?),
        };
        let topic = match (choice, self.settings.unmatched, &self.settings.default) {
            (Ok(topic), _, _) => {
                host::counter_add("routed", 1);
                topic
            }
            (Err(_), Unmatched::Default, Some(default)) => {
                host::counter_add("defaulted", 1);
                default.clone()
            }
            (Err(reason), Unmatched::Drop, _) => {
                host::counter_add("unmatched", 1);
                return Ok(Verdict::drop(reason));
            }
            (Err(reason), _, _) => {
                host::counter_add("unmatched", 1);
                return Err(Failure::reject(reason));
            }
        };
        Ok(Verdict::emit(event.to_output().topic(topic)))
    }
}

impl Route {
    /// The topic for `doc`, or why it has none.
    fn choose(&self, doc: &Value) -> Result<String, String> {
        let settings = &self.settings;
        let found = settings.fields.iter().find_map(|path| Some((path, path.get(doc).filter(|v| !v.is_null())?)));
        let Some((path, value)) = found else {
            let names: Vec<String> = settings.fields.iter().map(|p| format!("`{p}`")).collect();
            return Err(format!("no routing field: {} missing", names.join(" and ")));
        };
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => return Err(format!("routing field `{path}` is {}, not text", kind(value))),
        };
        if let Some(topic) = settings.topics.get(&text) {
            return Ok(topic.clone());
        }
        match &settings.template {
            Some(template) => template.render(&text).ok_or_else(|| {
                format!("no topic for `{path}` = {value}: the template makes no valid topic name of it")
            }),
            None => Err(format!("no topic for `{path}` = {value}")),
        }
    }
}

sluice_sdk::export!(Route);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_sdk::testing::{Harness, TestEvent};

    fn topic_of(outcome: Result<Verdict, Failure>) -> String {
        match outcome {
            Ok(Verdict::Emit(records)) if records.len() == 1 => records[0].topic.clone().unwrap_or_default(),
            other => panic!("expected one emitted record, got {other:?}"),
        }
    }

    fn mixed() -> Value {
        json!({
            "topics": {"OrderPlaced": "orders.placed", "PushEvent": "github.push"},
            "template": "github.{value}",
            "default": "events.other",
        })
    }

    #[test]
    fn listed_values_go_to_their_topic_unchanged() {
        let mut h = Harness::<Route>::from_json(mixed());
        let event = TestEvent::json(json!({"eventType": "OrderPlaced", "order_id": "o1"})).key("o1").header("h", "v");
        let Ok(Verdict::Emit(records)) = h.handle(&event) else { panic!("expected emit") };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].topic.as_deref(), Some("orders.placed"));
        assert_eq!(records[0].key.as_deref(), Some(&b"o1"[..]));
        assert_eq!(records[0].value, event.value);
        assert_eq!(records[0].headers, vec![Header::new("h", "v")]);
        assert_eq!(topic_of(h.handle(&TestEvent::json(json!({"type": "PushEvent"})))), "github.push");
        assert_eq!(h.counter("routed"), 2);
    }

    #[test]
    fn other_values_go_through_the_template() {
        let mut h = Harness::<Route>::from_json(mixed());
        let topic = topic_of(h.handle(&TestEvent::json(json!({"type": "PullRequestReviewCommentEvent"}))));
        assert_eq!(topic, "github.pull-request-review-comment-event");
        assert_eq!(topic_of(h.handle(&TestEvent::json(json!({"type": "order_shipped"})))), "github.order-shipped");
        assert_eq!(topic_of(h.handle(&TestEvent::json(json!({"eventType": 7})))), "github.7");
    }

    #[test]
    fn event_type_wins_over_type_when_both_are_present() {
        let mut h = Harness::<Route>::from_json(mixed());
        let both = TestEvent::json(json!({"eventType": "OrderPlaced", "type": "PushEvent"}));
        assert_eq!(topic_of(h.handle(&both)), "orders.placed");
        let null_event_type = TestEvent::json(json!({"eventType": null, "type": "PushEvent"}));
        assert_eq!(topic_of(h.handle(&null_event_type)), "github.push");
    }

    #[test]
    fn records_without_a_usable_value_take_the_default() {
        let mut h = Harness::<Route>::from_json(mixed());
        for value in
            [json!({"order_id": "o1"}), json!({"eventType": {"name": "x"}}), json!({"type": "???"}), json!([1])]
        {
            assert_eq!(topic_of(h.handle(&TestEvent::json(value.clone()))), "events.other", "{value}");
        }
        assert_eq!(topic_of(h.handle(&TestEvent::tombstone().key("o1"))), "events.other");
        assert_eq!(h.counter("defaulted"), 5);
    }

    #[test]
    fn unmatched_reject_and_drop_name_the_field_and_value() {
        let config = json!({"field": "meta.kind", "topics": {"order": "orders"}});
        let mut h = Harness::<Route>::from_json(config);
        let other = TestEvent::json(json!({"meta": {"kind": "refund"}}));
        assert_eq!(h.handle(&other), Err(Failure::reject("no topic for `meta.kind` = \"refund\"")));
        let missing = TestEvent::json(json!({"meta": {}}));
        assert_eq!(h.handle(&missing), Err(Failure::reject("no routing field: `meta.kind` missing")));
        assert_eq!(h.counter("unmatched"), 2);

        let mut h =
            Harness::<Route>::from_json(json!({"topics": {"OrderPlaced": "orders.placed"}, "unmatched": "drop"}));
        let none = TestEvent::json(json!({"id": 1}));
        assert_eq!(h.handle(&none), Ok(Verdict::drop("no routing field: `eventType` and `type` missing")));
        let bad = TestEvent::json(json!({"type": ["a"]}));
        assert_eq!(h.handle(&bad), Ok(Verdict::drop("routing field `type` is an array, not text")));
        let slugless = Harness::<Route>::from_json(json!({"template": "t.{value}", "unmatched": "drop"}))
            .handle(&TestEvent::json(json!({"type": "¿?"})));
        let reason = "no topic for `type` = \"¿?\": the template makes no valid topic name of it";
        assert_eq!(slugless, Ok(Verdict::drop(reason)));
    }

    #[test]
    fn malformed_json_is_rejected_even_with_a_default() {
        let mut h = Harness::<Route>::from_json(mixed());
        let outcome = h.handle(&TestEvent::bytes("{\"type\": \"PushEv").offset(4));
        assert!(matches!(outcome, Err(Failure::Reject(m)) if m.starts_with("test/0@4: value is not valid JSON")));
    }

    #[test]
    fn bad_config_is_refused_with_the_key_named() {
        let err = Harness::<Route>::new(Config::from_json(json!({"topics": {"PushEvent": "github/push"}})))
            .expect_err("a slash is not allowed in a topic");
        assert!(err.starts_with("config key `topics.PushEvent`: `github/push` has '/'"), "{err}");
    }
}
