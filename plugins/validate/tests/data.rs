//! The validator on real records: the golden slices in `tests/golden/`, and
//! the full data sets in the shared data directory.
//!
//! Every expected count below was computed independently of this crate, by a
//! ~60-line Python model of the documented semantics (walk the dotted path,
//! `[]` over arrays; numbers match numeric strings; first broken rule wins)
//! run over the same files with `tomllib` reading the golden `config.toml`.
//! The configs written here as JSON mirror those `config.toml` files.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use sluice_sdk::testing::{Harness, TestEvent, read_csv, shared_data};
use sluice_sdk::{Failure, Verdict};
use validate::Validate;

/// Mirrors `tests/golden/validate/config.toml`.
fn github_config() -> Value {
    json!({
        "required": ["id", "type", "actor.login", "repo.name", "created_at"],
        "mode": "drop",
        "rules": [
            {"field": "type", "in": ["PushEvent", "PullRequestEvent", "IssuesEvent", "IssueCommentEvent", "CreateEvent", "ReleaseEvent"]},
            {"field": "public", "equals": true},
            {"field": "repo.url", "prefix": "https://api.github.com/repos/"},
            {"field": "org.login", "not_in": ["cloudify-cosmo"], "optional": true},
            {"field": "payload.size", "max": 20, "optional": true},
            {"field": "payload.commits[].distinct", "equals": true, "optional": true},
        ],
    })
}

/// Mirrors `tests/golden/validate-sensors/config.toml`.
fn sensors_config() -> Value {
    json!({
        "required": ["Beach Name", "Measurement Timestamp", "Measurement ID"],
        "blank_is_missing": true,
        "rules": [
            {"field": "Water Temperature", "min": -5, "max": 40},
            {"field": "Wave Height", "not_in": [-99999.992], "optional": true},
            {"field": "Wave Period", "not_in": [-100000], "optional": true},
            {"field": "Turbidity", "min": 0, "max": 1000},
            {"field": "Transducer Depth", "min": 0, "optional": true},
        ],
    })
}

#[test]
fn golden_github_slice() {
    let mut h = Harness::<Validate>::from_json(github_config());
    let events = golden("validate");
    let outcomes = h.handle_all(&events);
    let tally = Tally::of(&outcomes);
    assert_eq!((tally.pass, tally.drop, tally.reject), (21, 16, 3));
    let by_field = BTreeMap::from([
        ("org.login".to_owned(), 2),
        ("payload.commits[].distinct".to_owned(), 2),
        ("payload.size".to_owned(), 1),
        ("type".to_owned(), 11),
    ]);
    assert_eq!(tally.drops_by_field, by_field);
    assert_eq!((h.counter("passed"), h.counter("dropped"), h.counter("rejected")), (21, 16, 3));

    // The hand-made lines, by offset.
    let reason = |offset: usize| match &outcomes[offset] {
        Err(Failure::Reject(reason)) => reason.clone(),
        other => panic!("offset {offset}: expected a reject, got {other:?}"),
    };
    assert!(reason(8).starts_with("github.events/0@8: value is not valid JSON: EOF"), "{}", reason(8));
    assert_eq!(reason(17), "missing required field `repo.name`");
    assert_eq!(reason(28), "missing required field `type`");
    // A real push of 270 commits (id 2489651343).
    assert_eq!(outcomes[32], Ok(Verdict::drop("`payload.size` = 270 is above max = 20")));
}

#[test]
fn golden_sensor_slice() {
    let mut h = Harness::<Validate>::from_json(sensors_config());
    let outcomes = h.handle_all(&golden("validate-sensors"));
    let tally = Tally::of(&outcomes);
    assert_eq!((tally.pass, tally.drop, tally.reject), (23, 12, 2));
    let by_field = BTreeMap::from([
        ("Transducer Depth".to_owned(), 2),
        ("Turbidity".to_owned(), 2),
        ("Wave Height".to_owned(), 8),
    ]);
    assert_eq!(tally.drops_by_field, by_field);
    let sentinel = "`Wave Height` = \"-99999.992\" is listed in not_in = [-99999.992]";
    assert_eq!(outcomes.iter().filter(|o| **o == Ok(Verdict::drop(sentinel))).count(), 8);
    let no_time = Err(Failure::reject("missing required field `Measurement Timestamp`"));
    assert_eq!(outcomes.iter().filter(|o| **o == no_time).count(), 2);
}

#[test]
fn all_1024_github_events() {
    let Some(path) = shared_data("gharchive-events/gharchive-2015-01-01-15.first1024.ndjson") else { return };
    let text = std::fs::read_to_string(&path).expect("the data set is readable");
    let events: Vec<TestEvent> = text.lines().map(TestEvent::bytes).collect();
    assert_eq!(events.len(), 1024);

    let tally = Tally::of(&Harness::<Validate>::from_json(github_config()).handle_all(&events));
    assert_eq!((tally.pass, tally.drop, tally.reject), (776, 248, 0));
    let by_field = BTreeMap::from([
        ("org.login".to_owned(), 39),
        ("payload.commits[].distinct".to_owned(), 13),
        ("payload.size".to_owned(), 6),
        ("type".to_owned(), 190),
    ]);
    assert_eq!(tally.drops_by_field, by_field);

    // One repository owner only: 64 of the 1024 events are cloudify-cosmo's.
    let mut config = github_config();
    config["rules"] = json!([{"field": "repo.name", "prefix": "cloudify-cosmo/"}]);
    config["mode"] = json!("reject");
    let tally = Tally::of(&Harness::<Validate>::from_json(config).handle_all(&events));
    assert_eq!((tally.pass, tally.drop, tally.reject), (64, 0, 960));
}

#[test]
fn all_34923_sensor_readings() {
    let Some(path) = shared_data("chicago-beach-water-sensors/Beach_Water_Quality_-_Automated_Sensors.csv") else {
        return;
    };
    // Each row as a JSON object of strings: what a CSV-to-Kafka connector produces.
    let rows = read_csv(path).expect("the data set is a CSV file");
    let events: Vec<TestEvent> = rows.into_iter().map(|row| TestEvent::json(Value::Object(row))).collect();
    assert_eq!(events.len(), 34_923);

    // 526 Wave Height sentinels (each with a Wave Period sentinel too), 6
    // rows with nothing but a beach name and id.
    let mut h = Harness::<Validate>::from_json(sensors_config());
    let tally = Tally::of(&h.handle_all(&events));
    assert_eq!((tally.pass, tally.drop, tally.reject), (34_384, 533, 6));
    let by_field = BTreeMap::from([
        ("Transducer Depth".to_owned(), 2),
        ("Turbidity".to_owned(), 5),
        ("Wave Height".to_owned(), 526),
    ]);
    assert_eq!(tally.drops_by_field, by_field);
    assert_eq!(h.counter("dropped"), 533);

    // Without `blank_is_missing`, the 24 356 readings with no transducer
    // depth ("") break the depth rule, since "" is not a number.
    let mut config = sensors_config();
    config["blank_is_missing"] = json!(false);
    let tally = Tally::of(&Harness::<Validate>::from_json(config).handle_all(&events));
    assert_eq!((tally.pass, tally.drop, tally.reject), (10_030, 24_893, 0));
    assert_eq!(tally.drops_by_field.get("Transducer Depth"), Some(&24_356));
    assert_eq!(tally.drops_by_field.get("Water Temperature"), Some(&6));
}

/// Verdict counts, and drops grouped by the rule field their reason names.
#[derive(Debug, Default)]
struct Tally {
    pass: usize,
    drop: usize,
    reject: usize,
    drops_by_field: BTreeMap<String, usize>,
}

impl Tally {
    fn of(outcomes: &[Result<Verdict, Failure>]) -> Tally {
        let mut tally = Tally::default();
        for outcome in outcomes {
            match outcome {
                Ok(Verdict::Pass) => tally.pass += 1,
                Ok(Verdict::Drop(reason)) => {
                    tally.drop += 1;
                    let field = reason.as_deref().map(rule_field).unwrap_or_default();
                    *tally.drops_by_field.entry(field).or_default() += 1;
                }
                Err(Failure::Reject(_)) => tally.reject += 1,
                other => panic!("the validator never emits or retries, got {other:?}"),
            }
        }
        tally
    }
}

/// The first backquoted path in a reason, with element indices blanked:
/// "`items[3].price` = -1 ..." gives `items[].price`.
fn rule_field(reason: &str) -> String {
    let quoted = reason.split('`').nth(1).unwrap_or_default();
    let mut field = String::new();
    let mut in_index = false;
    for c in quoted.chars() {
        match c {
            '[' => {
                in_index = true;
                field.push('[');
            }
            ']' => {
                in_index = false;
                field.push(']');
            }
            _ if in_index => {}
            _ => field.push(c),
        }
    }
    field
}

/// The records of a golden `input.jsonl`, in the `sluice test` input format.
fn golden(name: &str) -> Vec<TestEvent> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden").join(name).join("input.jsonl");
    TestEvent::from_input_file(path).unwrap_or_else(|e| panic!("{e}"))
}
