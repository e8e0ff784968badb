//! A rule: one field and the conditions its value must meet.

use std::cmp::Ordering;

use serde_json::Value;

use crate::number::Number;
use crate::path::FieldPath;

/// Longest rendering of a value or list in a reason; records can hold
/// megabytes and a reason is a log line.
const SHOWN_MAX: usize = 96;

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub path: FieldPath,
    /// A missing field skips the rule instead of failing it.
    pub optional: bool,
    /// Tested in this order; the first that fails is the reason.
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Exists(bool),
    Equals(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Min(f64),
    Max(f64),
    Prefix(String),
}

impl Rule {
    /// `Err(reason)` for the first place the field leads to that breaks the
    /// rule. With `items[].price` every element must meet it.
    pub fn check(&self, doc: &Value, blank_is_missing: bool) -> Result<(), String> {
        let exists = self.checks.iter().find_map(|c| match c {
            Check::Exists(wanted) => Some(*wanted),
            _ => None,
        });
        for slot in self.path.resolve(doc) {
            let place = self.path.locate(&slot.indices);
            match (present(slot.value, blank_is_missing), exists) {
                (None, Some(false)) => {}
                (None, Some(true)) => return Err(format!("`{place}` is missing but the rule says exists = true")),
                (None, None) if self.optional => {}
                (None, None) => return Err(format!("rule field `{place}` is missing")),
                (Some(value), _) => {
                    for check in &self.checks {
                        if let Err(why) = check.test(value) {
                            return Err(format!("`{place}` = {} {why}", shown(value)));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Check {
    fn test(&self, value: &Value) -> Result<(), String> {
        match self {
            Check::Exists(true) => Ok(()),
            Check::Exists(false) => Err("is present but the rule says exists = false".to_owned()),
            Check::Equals(expected) if same(expected, value) => Ok(()),
            Check::Equals(expected) => Err(format!("does not equal {}", shown(expected))),
            Check::In(list) if list.iter().any(|e| same(e, value)) => Ok(()),
            Check::In(list) => Err(format!("is not one of in = {}", shown_list(list))),
            Check::NotIn(list) if list.iter().any(|e| same(e, value)) => {
                Err(format!("is listed in not_in = {}", shown_list(list)))
            }
            Check::NotIn(_) => Ok(()),
            Check::Min(min) => bound(value, "min", *min, Ordering::Less, "below"),
            Check::Max(max) => bound(value, "max", *max, Ordering::Greater, "above"),
            Check::Prefix(prefix) => match value {
                Value::String(s) if s.starts_with(prefix.as_str()) => Ok(()),
                Value::String(_) => {
                    Err(format!("does not start with prefix = {}", shown(&Value::from(prefix.as_str()))))
                }
                _ => Err(format!("is not text, so prefix = {} cannot hold", shown(&Value::from(prefix.as_str())))),
            },
        }
    }
}

/// The value, unless it counts as missing: absent, `null`, or (when asked,
/// for CSV-derived records) an empty or all-blank string.
pub fn present(value: Option<&Value>, blank_is_missing: bool) -> Option<&Value> {
    value.filter(|v| match v {
        Value::Null => false,
        Value::String(s) if blank_is_missing => !s.trim().is_empty(),
        _ => true,
    })
}

/// Config numbers match numeric text too; everything else matches exactly.
fn same(expected: &Value, actual: &Value) -> bool {
    match expected {
        Value::Number(_) => match (Number::of(expected), Number::of(actual)) {
            (Some(e), Some(a)) => e.equals(&a),
            _ => false,
        },
        _ => expected == actual,
    }
}

fn bound(value: &Value, name: &str, limit: f64, breaks: Ordering, side: &str) -> Result<(), String> {
    let Some(number) = Number::of(value) else {
        return Err(format!("is not a number, so {name} = {limit} cannot hold"));
    };
    if number.compare(&Number::from_f64(limit)) == Some(breaks) {
        return Err(format!("is {side} {name} = {limit}"));
    }
    Ok(())
}

fn shown(value: &Value) -> String {
    truncate(value.to_string())
}

fn shown_list(list: &[Value]) -> String {
    truncate(Value::from(list.to_vec()).to_string())
}

fn truncate(mut text: String) -> String {
    if text.len() > SHOWN_MAX {
        let mut end = SHOWN_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(field: &str, optional: bool, checks: Vec<Check>) -> Rule {
        let path = FieldPath::parse(field).expect("test paths are valid");
        Rule { path, optional, checks }
    }

    #[test]
    fn sentinels_in_not_in_match_numeric_text() {
        let r = rule("Wave Height", false, vec![Check::NotIn(vec![json!(-99999.992)])]);
        assert_eq!(
            r.check(&json!({"Wave Height": "-99999.992"}), false),
            Err("`Wave Height` = \"-99999.992\" is listed in not_in = [-99999.992]".to_owned())
        );
        assert_eq!(r.check(&json!({"Wave Height": "0.08"}), false), Ok(()));
        assert_eq!(r.check(&json!({"Wave Height": -99999.992}), false).map_err(|_| ()), Err(()));
    }

    #[test]
    fn ranges_accept_numbers_and_numeric_text() {
        let r = rule("Water Temperature", false, vec![Check::Min(-5.0), Check::Max(40.0)]);
        assert_eq!(r.check(&json!({"Water Temperature": "20.3"}), false), Ok(()));
        assert_eq!(r.check(&json!({"Water Temperature": 40}), false), Ok(()));
        assert_eq!(r.check(&json!({"Water Temperature": "-5"}), false), Ok(()));
        assert_eq!(
            r.check(&json!({"Water Temperature": "40.1"}), false),
            Err("`Water Temperature` = \"40.1\" is above max = 40".to_owned())
        );
        assert_eq!(
            r.check(&json!({"Water Temperature": -7.5}), false),
            Err("`Water Temperature` = -7.5 is below min = -5".to_owned())
        );
        assert_eq!(
            r.check(&json!({"Water Temperature": "warm"}), false),
            Err("`Water Temperature` = \"warm\" is not a number, so min = -5 cannot hold".to_owned())
        );
    }

    #[test]
    fn in_and_equals_compare_text_exactly() {
        let r = rule("type", false, vec![Check::In(vec![json!("PushEvent"), json!("PullRequestEvent")])]);
        assert_eq!(r.check(&json!({"type": "PushEvent"}), false), Ok(()));
        assert_eq!(
            r.check(&json!({"type": "pushevent"}), false),
            Err("`type` = \"pushevent\" is not one of in = [\"PushEvent\",\"PullRequestEvent\"]".to_owned())
        );
        let r = rule("public", false, vec![Check::Equals(json!(true))]);
        assert_eq!(r.check(&json!({"public": true}), false), Ok(()));
        assert_eq!(
            r.check(&json!({"public": "true"}), false),
            Err("`public` = \"true\" does not equal true".to_owned())
        );
        let r = rule("version", false, vec![Check::Equals(json!(1))]);
        assert_eq!(r.check(&json!({"version": "1.0"}), false), Ok(()));
    }

    #[test]
    fn prefix_needs_text() {
        let r = rule("repo.name", false, vec![Check::Prefix("apache/".into())]);
        assert_eq!(r.check(&json!({"repo": {"name": "apache/kafka"}}), false), Ok(()));
        assert_eq!(
            r.check(&json!({"repo": {"name": "linux/kernel"}}), false),
            Err("`repo.name` = \"linux/kernel\" does not start with prefix = \"apache/\"".to_owned())
        );
        assert!(r.check(&json!({"repo": {"name": 7}}), false).is_err_and(|e| e.contains("is not text")));
    }

    #[test]
    fn missing_fields_fail_unless_optional() {
        let checks = vec![Check::Max(5.0)];
        let strict = rule("payload.size", false, checks.clone());
        let lenient = rule("payload.size", true, checks);
        let doc = json!({"payload": {"action": "started"}});
        assert_eq!(strict.check(&doc, false), Err("rule field `payload.size` is missing".to_owned()));
        assert_eq!(lenient.check(&doc, false), Ok(()));
        assert_eq!(strict.check(&json!({"payload": {"size": null}}), false).map_err(|_| ()), Err(()));
    }

    #[test]
    fn blank_text_is_missing_only_when_asked() {
        let r = rule("Wave Height", true, vec![Check::Min(0.0)]);
        let doc = json!({"Wave Height": " "});
        assert_eq!(r.check(&doc, true), Ok(()));
        assert!(r.check(&doc, false).is_err_and(|e| e.contains("is not a number")));
    }

    #[test]
    fn exists_decides_about_missing_fields_itself() {
        let must = rule("org", false, vec![Check::Exists(true)]);
        let must_not = rule("org", false, vec![Check::Exists(false)]);
        let with = json!({"org": {"login": "apache"}});
        let without = json!({"id": "1"});
        assert_eq!(must.check(&with, false), Ok(()));
        assert_eq!(must.check(&without, false), Err("`org` is missing but the rule says exists = true".to_owned()));
        assert_eq!(must_not.check(&without, false), Ok(()));
        assert_eq!(
            must_not.check(&with, false),
            Err("`org` = {\"login\":\"apache\"} is present but the rule says exists = false".to_owned())
        );
    }

    #[test]
    fn every_array_element_must_pass_and_the_failing_one_is_named() {
        let r = rule("items[].price", false, vec![Check::Min(0.0)]);
        assert_eq!(r.check(&json!({"items": [{"price": 1}, {"price": "2.5"}]}), false), Ok(()));
        assert_eq!(r.check(&json!({"items": []}), false), Ok(()));
        assert_eq!(
            r.check(&json!({"items": [{"price": 1}, {"price": -3}]}), false),
            Err("`items[1].price` = -3 is below min = 0".to_owned())
        );
        assert_eq!(r.check(&json!({"items": [{}]}), false), Err("rule field `items[0].price` is missing".to_owned()));
    }

    #[test]
    fn long_values_are_shortened_in_reasons() {
        let r = rule("body", false, vec![Check::Equals(json!("short"))]);
        let reason = r.check(&json!({"body": "é".repeat(500)}), false).expect_err("differs");
        assert!(reason.ends_with("… does not equal \"short\""), "{reason}");
        assert!(reason.len() < 200, "{reason}");
    }
}
