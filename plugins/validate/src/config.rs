//! The plugin's config table: what the operator writes, and the checked
//! form the handler runs on.

use serde::Deserialize;
use serde_json::Value;
use sluice_sdk::Config;

use crate::path::FieldPath;
use crate::rule::{Check, Rule};

/// The config table as written in the routing TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    /// Fields that must be present and not null; a record lacking one is
    /// rejected to the dead-letter queue. Default: none.
    #[serde(default)]
    required: Vec<String>,
    /// Rules every record must meet, tested in order. Default: none.
    #[serde(default)]
    rules: Vec<RawRule>,
    /// What a broken rule does: `"drop"` the record, or `"reject"` it to the
    /// dead-letter queue. Default: `"drop"`.
    #[serde(default)]
    mode: Mode,
    /// Count empty and all-blank strings as missing, as CSV-derived records
    /// write absent cells as `""`. Default: `false`.
    #[serde(default)]
    blank_is_missing: bool,
}

/// One `[[rules]]` table: a field and at least one condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// The field path the rule is about (`repo.name`, `items[].price`).
    field: String,
    /// Skip the rule when the field is missing, instead of failing it.
    /// Default: `false`.
    #[serde(default)]
    optional: bool,
    /// `true`: the field must be present; `false`: it must be missing.
    exists: Option<bool>,
    /// The value must equal this (numbers also match numeric text).
    equals: Option<Value>,
    /// The value must be one of these.
    #[serde(rename = "in")]
    one_of: Option<Vec<Value>>,
    /// The value must be none of these, such as sensor error sentinels.
    not_in: Option<Vec<Value>>,
    /// The value must be a number (or numeric text) at least this.
    min: Option<f64>,
    /// The value must be a number (or numeric text) at most this.
    max: Option<f64>,
    /// The value must be text starting with this.
    prefix: Option<String>,
}

/// What a rule failure does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Drop the record with the reason; the host logs and counts it.
    #[default]
    Drop,
    /// Reject the record to the dead-letter queue.
    Reject,
}

/// The checked config the handler runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub required: Vec<FieldPath>,
    pub rules: Vec<Rule>,
    pub mode: Mode,
    pub blank_is_missing: bool,
}

impl Settings {
    /// Reads and checks the plugin's config; errors name the key at fault.
    pub fn from_config(config: &Config) -> Result<Settings, String> {
        let raw: RawSettings = config.deserialize()?;
        let required = raw
            .required
            .iter()
            .enumerate()
            .map(|(i, text)| FieldPath::parse(text).map_err(|e| format!("config key `required[{i}]`: {e}")))
            .collect::<Result<_, _>>()?;
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| rule.check().map_err(|e| format!("config key `rules[{i}]`: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Settings { required, rules, mode: raw.mode, blank_is_missing: raw.blank_is_missing })
    }
}

impl RawRule {
    fn check(self) -> Result<Rule, String> {
        let path = FieldPath::parse(&self.field).map_err(|e| format!("`field`: {e}"))?;
        let field = &self.field;
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err(format!("rule on `{field}` has min = {min} above max = {max}, so nothing could pass"));
        }
        if self.one_of.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!("rule on `{field}` has an empty `in` list, so nothing could pass"));
        }
        let mut checks = Vec::new();
        checks.extend(self.exists.map(Check::Exists));
        checks.extend(self.equals.map(Check::Equals));
        checks.extend(self.one_of.map(Check::In));
        checks.extend(self.not_in.map(Check::NotIn));
        checks.extend(self.min.map(Check::Min));
        checks.extend(self.max.map(Check::Max));
        checks.extend(self.prefix.map(Check::Prefix));
        match (self.exists, checks.len()) {
            (_, 0) => {
                return Err(format!(
                    "rule on `{field}` has no condition; give one or more of exists, equals, in, not_in, min, max, prefix"
                ));
            }
            (Some(false), n) if n > 1 => {
                return Err(format!(
                    "rule on `{field}` says exists = false, so its other conditions could never apply"
                ));
            }
            (Some(_), _) if self.optional => {
                return Err(format!("rule on `{field}` sets both `exists` and `optional`; `exists` alone says it"));
            }
            _ => {}
        }
        Ok(Rule { path, optional: self.optional, checks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(value: Value) -> Result<Settings, String> {
        Settings::from_config(&Config::from_json(value))
    }

    fn refused(value: Value) -> String {
        match settings(value) {
            Ok(s) => panic!("expected the config to be refused, got {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn an_empty_table_checks_json_only() {
        let s = settings(json!({})).expect("empty config is valid");
        assert!(s.required.is_empty() && s.rules.is_empty());
        assert_eq!(s.mode, Mode::Drop);
        assert!(!s.blank_is_missing);
    }

    #[test]
    fn a_full_table_is_read_in_order() {
        let s = settings(json!({
            "required": ["eventId", "repo.name"],
            "rules": [
                {"field": "type", "in": ["PushEvent"]},
                {"field": "Water Temperature", "min": -5, "max": 40, "optional": true},
            ],
            "mode": "reject",
            "blank_is_missing": true,
        }))
        .expect("valid config");
        assert_eq!(s.required.iter().map(FieldPath::to_string).collect::<Vec<_>>(), ["eventId", "repo.name"]);
        assert_eq!(s.rules[0].checks, vec![Check::In(vec![json!("PushEvent")])]);
        assert_eq!(s.rules[1].checks, vec![Check::Min(-5.0), Check::Max(40.0)]);
        assert!(s.rules[1].optional);
        assert_eq!(s.mode, Mode::Reject);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let cases = [
            (json!({"mode": "dorp"}), "config key `mode`: unknown variant `dorp`"),
            (json!({"required": ["a", 3]}), "config key `required[1]`: invalid type: integer `3`"),
            (json!({"required": ["a..b"]}), "config key `required[0]`: `a..b` has an empty segment"),
            (json!({"rules": [{"field": "x", "min": "five"}]}), "config key `rules[0].min`: invalid type: string"),
            (
                json!({"rules": [{"field": "x", "max": 1}, {"field": "y", "maximum": 2}]}),
                "config key `rules[1].maximum`",
            ),
            (json!({"rules": [{"min": 1}]}), "config key `rules[0]`: missing field `field`"),
            (json!({"rules": [{"field": "x"}]}), "config key `rules[0]`: rule on `x` has no condition"),
            (
                json!({"rules": [{"field": "x", "min": 5, "max": 1}]}),
                "config key `rules[0]`: rule on `x` has min = 5 above",
            ),
            (json!({"rules": [{"field": "x", "in": []}]}), "config key `rules[0]`: rule on `x` has an empty `in` list"),
            (json!({"rules": [{"field": "x", "exists": false, "equals": 1}]}), "says exists = false"),
            (json!({"rules": [{"field": "x", "exists": true, "optional": true}]}), "both `exists` and `optional`"),
            (json!({"rules": [{"field": "a[0]", "exists": true}]}), "config key `rules[0]`: `field`: "),
            (json!({"reqired": ["x"]}), "config key `reqired`: unknown field `reqired`"),
        ];
        for (config, expected) in cases {
            let err = refused(config.clone());
            assert!(err.contains(expected), "{config}: got {err:?}, expected it to contain {expected:?}");
        }
    }
}
