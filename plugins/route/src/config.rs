//! The plugin's config table: what the operator writes, and the checked
//! routing table the handler runs on.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use sluice_sdk::Config;

use crate::path::FieldPath;
use crate::topic::{self, Template};

/// The config table as written in the routing TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    /// The field whose value picks the topic. Default: `eventType` when the
    /// record has it, otherwise `type`.
    field: Option<String>,
    /// Field value → topic. Default: empty.
    #[serde(default)]
    topics: BTreeMap<String, String>,
    /// The topic for values not in `topics`; `{value}` stands for the value
    /// as a slug (`PushEvent` → `push-event`). Default: none.
    template: Option<String>,
    /// The topic for records nothing else matched. Default: none.
    default: Option<String>,
    /// What an unmatched record does: `"default"`, `"drop"` or `"reject"`.
    /// Default: `"default"` when `default` is set, otherwise `"reject"`.
    unmatched: Option<Unmatched>,
}

/// What happens to a record that no topic matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Send it to the `default` topic.
    Default,
    /// Drop it with the reason.
    Drop,
    /// Reject it to the dead-letter queue.
    Reject,
}

/// The checked config the handler runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Tried in order; the first present (non-null) field is used.
    pub fields: Vec<FieldPath>,
    pub topics: HashMap<String, String>,
    pub template: Option<Template>,
    /// `Some` exactly when `unmatched` is `Default`.
    pub default: Option<String>,
    pub unmatched: Unmatched,
}

impl Settings {
    /// Reads and checks the plugin's config; errors name the key at fault.
    pub fn from_config(config: &Config) -> Result<Settings, String> {
        let raw: RawSettings = config.deserialize()?;
        let fields = match &raw.field {
            Some(text) => vec![FieldPath::parse(text).map_err(|e| format!("config key `field`: {e}"))?],
            None => ["eventType", "type"].iter().filter_map(|f| FieldPath::parse(f).ok()).collect(),
        };
        for (value, name) in &raw.topics {
            topic::check(name).map_err(|e| format!("config key `topics.{value}`: {e}"))?;
        }
        let template = raw
            .template
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|e| format!("config key `template`: {e}"))?;
        if let Some(name) = &raw.default {
            topic::check(name).map_err(|e| format!("config key `default`: {e}"))?;
        }
        let unmatched = match (raw.unmatched, &raw.default) {
            (None, Some(_)) | (Some(Unmatched::Default), Some(_)) => Unmatched::Default,
            (Some(Unmatched::Default), None) => {
                return Err("config key `unmatched`: \"default\" needs a `default` topic".to_owned());
            }
            (Some(other), Some(_)) => {
                return Err(format!(
                    "config key `default`: never used, since unmatched = \"{}\"; remove one of them",
                    if other == Unmatched::Drop { "drop" } else { "reject" }
                ));
            }
            (Some(other), None) => other,
            (None, None) => Unmatched::Reject,
        };
        if raw.topics.is_empty() && template.is_none() && raw.default.is_none() {
            return Err(
                "plugin config: give `topics`, `template` or `default`; with none, no record has a topic".to_owned()
            );
        }
        Ok(Settings { fields, topics: raw.topics.into_iter().collect(), template, default: raw.default, unmatched })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn settings(value: Value) -> Result<Settings, String> {
        Settings::from_config(&Config::from_json(value))
    }

    #[test]
    fn defaults_follow_the_documented_rules() {
        let s = settings(json!({"topics": {"PushEvent": "github.push"}})).expect("valid");
        assert_eq!(s.fields.iter().map(ToString::to_string).collect::<Vec<_>>(), ["eventType", "type"]);
        assert_eq!(s.unmatched, Unmatched::Reject);
        assert_eq!(s.template, None);
        let s = settings(json!({"field": "kind", "default": "events.other"})).expect("valid");
        assert_eq!(s.fields.iter().map(ToString::to_string).collect::<Vec<_>>(), ["kind"]);
        assert_eq!((s.unmatched, s.default.as_deref()), (Unmatched::Default, Some("events.other")));
        let s = settings(json!({"template": "github.{value}", "unmatched": "drop"})).expect("valid");
        assert_eq!(s.unmatched, Unmatched::Drop);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let cases = [
            (json!({}), "plugin config: give `topics`, `template` or `default`"),
            (json!({"topics": {"PushEvent": "github push"}}), "config key `topics.PushEvent`: `github push` has ' '"),
            (json!({"topics": {"PushEvent": 3}}), "config key `topics.PushEvent`: invalid type: integer `3`"),
            (json!({"template": "github.push"}), "config key `template`: `github.push` has no `{value}`"),
            (json!({"template": "gh/{value}"}), "config key `template`: `gh/{value}` cannot make topic names"),
            (json!({"default": ""}), "config key `default`: a topic name cannot be empty"),
            (json!({"field": "items[].type", "default": "d"}), "config key `field`: `items[].type`: a record goes"),
            (json!({"template": "t.{value}", "unmatched": "default"}), "config key `unmatched`: \"default\" needs"),
            (
                json!({"default": "d", "unmatched": "drop"}),
                "config key `default`: never used, since unmatched = \"drop\"",
            ),
            (json!({"default": "d", "unmatched": "ignore"}), "config key `unmatched`: unknown variant `ignore`"),
            (json!({"default": "d", "topic": {}}), "config key `topic`: unknown field `topic`"),
        ];
        for (config, expected) in cases {
            match settings(config.clone()) {
                Ok(s) => panic!("{config}: expected a refusal, got {s:?}"),
                Err(e) => {
                    assert!(e.starts_with(expected), "{config}: got {e:?}, expected it to start with {expected:?}")
                }
            }
        }
    }
}
