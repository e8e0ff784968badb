//! A validating filter for JSON records.
//!
//! A record whose value is not a JSON object, or lacks a `required` field, is
//! structurally broken and is rejected to the dead-letter queue. A record that
//! is well formed but breaks one of the `rules` is dropped with a reason
//! naming the field, the condition and the value (or rejected, with
//! `mode = "reject"`). Everything else passes unchanged.
//!
//! The config table (in a route's plugin entry, or at the top level of a
//! `sluice test --config` file):
//!
//! ```toml
//! # Present and not null; a missing one rejects the record. Default: none.
//! required = ["id", "type", "repo.name"]
//! # What a broken rule does: "drop" (default) or "reject".
//! mode = "drop"
//! # Count "" and all-blank strings as missing, for CSV-derived records. Default: false.
//! blank_is_missing = false
//!
//! [[rules]]
//! field = "type"
//! in = ["PushEvent", "PullRequestEvent"]
//!
//! [[rules]]
//! field = "Wave Height"
//! not_in = [-99999.992]   # numbers also match numeric text: "-99999.992"
//! optional = true         # a missing field skips the rule instead of breaking it
//!
//! [[rules]]
//! field = "Water Temperature"
//! min = -5
//! max = 40
//!
//! [[rules]]
//! field = "repo.name"
//! prefix = "apache/"
//!
//! [[rules]]
//! field = "items[].price"   # `[]` applies the rule to every array element
//! min = 0
//! ```
//!
//! A rule has one `field` and one or more conditions, tested in this order:
//! `exists` (true: must be present; false: must be missing), `equals`, `in`,
//! `not_in`, `min`, `max`, `prefix`. `min`, `max`, and numbers in `equals`,
//! `in` and `not_in` accept JSON numbers and numeric strings alike, because
//! records converted from CSV carry every cell as text. A field that is
//! missing or `null` breaks the rule unless the rule says `optional = true`.
//!
//! Counters: `passed`, `dropped`, `rejected`.

mod config;
mod number;
mod path;
mod rule;

use serde_json::Value;
use sluice_sdk::json::kind;
use sluice_sdk::prelude::*;

use config::{Mode, Settings};

/// The handler: the checked config, applied to each record.
#[derive(Debug)]
pub struct Validate {
    settings: Settings,
}

impl Handler for Validate {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Validate { settings: Settings::from_config(config)? })
    }

    fn handle(&mut self, event: &Event<'_>) -> Result<Verdict, Failure> {
        let outcome = self.decide(event);
        let counter = match &outcome {
            Ok(Verdict::Pass) => "passed",
            Ok(_) => "dropped",
            Err(_) => "rejected",
        };
        host::counter_add(counter, 1);
        outcome
    }
}

impl Validate {
    fn decide(&self, event: &Event<'_>) -> Result<Verdict, Failure> {
        let doc: Value = event.json()?;
        if !doc.is_object() {
            return Err(Failure::reject(format!(
                "{}: value is {}, not a JSON object",
                event.coordinates(),
                kind(&doc)
            )));
        }
        let blank_is_missing = self.settings.blank_is_missing;
        for path in &self.settings.required {
            for slot in path.resolve(&doc) {
                if rule::present(slot.value, blank_is_missing).is_none() {
                    return Err(Failure::reject(format!("missing required field `{}`", path.locate(&slot.indices))));
                }
            }
        }
        for rule in &self.settings.rules {
            if let Err(reason) = rule.check(&doc, blank_is_missing) {
                return match self.settings.mode {
                    Mode::Drop => Ok(Verdict::drop(reason)),
                    Mode::Reject => Err(Failure::reject(reason)),
                };
            }
        }
        Ok(Verdict::Pass)
    }
}

sluice_sdk::export!(Validate);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_sdk::testing::{Harness, TestEvent};

    fn github_config() -> Value {
        json!({
            "required": ["id", "repo.name"],
            "rules": [
                {"field": "type", "in": ["PushEvent", "PullRequestEvent"]},
                {"field": "repo.name", "prefix": "apache/"},
            ],
        })
    }

    #[test]
    fn a_good_record_passes_unchanged() {
        let mut h = Harness::<Validate>::from_json(github_config());
        let event = TestEvent::json(json!({"id": "1", "type": "PushEvent", "repo": {"name": "apache/kafka"}}));
        assert_eq!(h.handle(&event), Ok(Verdict::Pass));
        assert_eq!((h.counter("passed"), h.counter("dropped"), h.counter("rejected")), (1, 0, 0));
    }

    #[test]
    fn a_broken_rule_drops_with_a_reason_naming_field_condition_and_value() {
        let mut h = Harness::<Validate>::from_json(github_config());
        let event = TestEvent::json(json!({"id": "1", "type": "WatchEvent", "repo": {"name": "apache/kafka"}}));
        let expected = "`type` = \"WatchEvent\" is not one of in = [\"PushEvent\",\"PullRequestEvent\"]";
        assert_eq!(h.handle(&event), Ok(Verdict::drop(expected)));
        let event = TestEvent::json(json!({"id": "2", "type": "PushEvent", "repo": {"name": "rust-lang/rust"}}));
        let expected = "`repo.name` = \"rust-lang/rust\" does not start with prefix = \"apache/\"";
        assert_eq!(h.handle(&event), Ok(Verdict::drop(expected)));
        assert_eq!(h.counter("dropped"), 2);
    }

    #[test]
    fn reject_mode_sends_rule_failures_to_the_dlq() {
        let mut config = github_config();
        config["mode"] = json!("reject");
        let mut h = Harness::<Validate>::from_json(config);
        let event = TestEvent::json(json!({"id": "1", "type": "WatchEvent", "repo": {"name": "apache/kafka"}}));
        assert!(matches!(h.handle(&event), Err(Failure::Reject(reason)) if reason.starts_with("`type` = ")));
        assert_eq!(h.counter("rejected"), 1);
    }

    #[test]
    fn a_missing_required_field_rejects_even_in_drop_mode() {
        let mut h = Harness::<Validate>::from_json(github_config());
        let no_repo_name = TestEvent::json(json!({"id": "1", "type": "PushEvent", "repo": {"id": 3}}));
        assert_eq!(h.handle(&no_repo_name), Err(Failure::reject("missing required field `repo.name`")));
        let null_id = TestEvent::json(json!({"id": null, "type": "PushEvent", "repo": {"name": "apache/x"}}));
        assert_eq!(h.handle(&null_id), Err(Failure::reject("missing required field `id`")));
        assert_eq!(h.counter("rejected"), 2);
    }

    #[test]
    fn required_array_fields_name_the_element() {
        let mut h = Harness::<Validate>::from_json(json!({"required": ["items[].product_id"]}));
        let good = TestEvent::json(json!({"items": [{"product_id": "a"}, {"product_id": "b"}]}));
        assert_eq!(h.handle(&good), Ok(Verdict::Pass));
        let bad = TestEvent::json(json!({"items": [{"product_id": "a"}, {"price": 3}]}));
        assert_eq!(h.handle(&bad), Err(Failure::reject("missing required field `items[1].product_id`")));
        let none = TestEvent::json(json!({"order_id": "o"}));
        assert_eq!(h.handle(&none), Err(Failure::reject("missing required field `items[].product_id`")));
    }

    #[test]
    fn values_that_are_not_json_objects_are_rejected() {
        let mut h = Harness::<Validate>::from_json(github_config());
        let outcomes = h.handle_all(&[
            TestEvent::bytes("{\"id\": 1,").offset(7),
            TestEvent::json(json!([1, 2])).offset(8),
            TestEvent::bytes(vec![0xff, 0xfe]).offset(9),
            TestEvent::tombstone().offset(10),
        ]);
        let reasons: Vec<String> = outcomes
            .into_iter()
            .map(|o| match o {
                Err(Failure::Reject(reason)) => reason,
                other => panic!("expected a reject, got {other:?}"),
            })
            .collect();
        assert!(reasons[0].starts_with("test/0@7: value is not valid JSON: EOF"), "{}", reasons[0]);
        assert_eq!(reasons[1], "test/0@8: value is an array, not a JSON object");
        assert!(reasons[2].starts_with("test/0@9: value is not valid JSON"), "{}", reasons[2]);
        assert_eq!(reasons[3], "test/0@10: record has no value");
        assert_eq!(h.counter("rejected"), 4);
    }

    #[test]
    fn the_first_broken_rule_is_the_reason() {
        let mut h = Harness::<Validate>::from_json(json!({"rules": [
            {"field": "a", "max": 1},
            {"field": "b", "max": 1},
        ]}));
        let event = TestEvent::json(json!({"a": 2, "b": 2}));
        assert_eq!(h.handle(&event), Ok(Verdict::drop("`a` = 2 is above max = 1")));
    }

    #[test]
    fn blank_cells_count_as_missing_when_asked() {
        let config = |blank: bool| {
            json!({
                "required": ["Beach Name"],
                "rules": [{"field": "Wave Height", "not_in": [-99999.992], "min": 0, "optional": true}],
                "blank_is_missing": blank,
            })
        };
        let row = TestEvent::json(json!({"Beach Name": "Calumet Beach", "Wave Height": ""}));
        assert_eq!(Harness::<Validate>::from_json(config(true)).handle(&row), Ok(Verdict::Pass));
        let outcome = Harness::<Validate>::from_json(config(false)).handle(&row);
        assert_eq!(outcome, Ok(Verdict::drop("`Wave Height` = \"\" is not a number, so min = 0 cannot hold")));
        let blank_name = TestEvent::json(json!({"Beach Name": " "}));
        assert_eq!(
            Harness::<Validate>::from_json(config(true)).handle(&blank_name),
            Err(Failure::reject("missing required field `Beach Name`"))
        );
    }

    #[test]
    fn bad_config_is_refused_with_the_key_named() {
        let err = Harness::<Validate>::new(Config::from_json(json!({"rules": [{"field": "x", "min": "low"}]})))
            .expect_err("a string min is refused");
        assert!(err.starts_with("config key `rules[0].min`"), "{err}");
        let err = Harness::<Validate>::new(Config::from_json(json!({"modes": "drop"}))).expect_err("unknown key");
        assert!(err.starts_with("config key `modes`: unknown field `modes`"), "{err}");
    }
}
