//! A plugin's own config table from the routing TOML.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

/// The plugin's config: the TOML table under the plugin in its route, with
/// each value carried as JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    entries: BTreeMap<String, Value>,
}

impl Config {
    /// Builds a config from `(key, JSON text)` pairs, as the host sends them.
    pub fn from_entries<I, K, V>(entries: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: AsRef<str>,
    {
        let mut map = BTreeMap::new();
        for (key, text) in entries {
            let key = key.into();
            let value = serde_json::from_str(text.as_ref())
                .map_err(|e| format!("config key `{key}`: the host sent a value that is not JSON: {e}"))?;
            map.insert(key, value);
        }
        Ok(Config { entries: map })
    }

    /// Builds a config from a JSON object, for tests. Anything else is empty.
    pub fn from_json(value: Value) -> Self {
        let entries = match value {
            Value::Object(map) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        Config { entries }
    }

    /// The entries as `(key, JSON text)` pairs, as the host sends them.
    pub fn to_entries(&self) -> Vec<(String, String)> {
        self.entries.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
    }

    /// The value of `key`, when present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// The value of `key` when it is text; `None` when absent or not text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// A required text value; the error names the key.
    pub fn require_str(&self, key: &str) -> Result<&str, String> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(format!("config key `{key}` must be a string, found {other}")),
            None => Err(format!("config key `{key}` is required")),
        }
    }

    /// One value deserialised into `T`; `Ok(None)` when absent. An error
    /// names the key at fault, as [`deserialize`](Self::deserialize) does,
    /// starting from `key`: "config key `limits.max`: invalid type: …".
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        self.get(key).map(|v| located(v.clone(), key)).transpose()
    }

    /// The whole table deserialised into `T`, such as a struct with
    /// `#[serde(deny_unknown_fields)]`.
    ///
    /// An error names the key at fault, because "expected f64" alone does not
    /// tell an operator which of a dozen rules is wrong:
    /// "config key `rules[0].min`: invalid type: string \"low\", expected f64".
    /// A missing field is reported at the table that lacks it
    /// ("config key `rules[1]`: missing field `field`"), and at the top level
    /// as "plugin config: missing field `name`".
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, String> {
        let object: serde_json::Map<String, Value> = self.entries.clone().into_iter().collect();
        located(Value::Object(object), "")
    }

    /// The top-level keys, in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// True when the plugin's config table has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Deserialises `value`, found at key path `at` ("" for the whole table), so
/// that an error starts with the full path of the key at fault.
fn located<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = key_path(at, error.path());
        let message = error.into_inner();
        if path.is_empty() { format!("plugin config: {message}") } else { format!("config key `{path}`: {message}") }
    })
}

/// `at` extended by `path` as an operator writes it: `rules[2].min`.
fn key_path(at: &str, path: &Path) -> String {
    let mut out = at.to_owned();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            // An untagged enum or a flattened field hides where it was.
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        id: String,
        #[serde(default)]
        limit: Option<f64>,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn error_for(value: Value) -> String {
        match Config::from_json(value).deserialize::<Outer>() {
            Ok(parsed) => panic!("expected an error, got {parsed:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_wrong_type_deep_inside_names_its_path() {
        let err = error_for(json!({"name": "n", "items": [{"id": "a"}, {"id": "b", "limit": "five"}]}));
        assert_eq!(err, "config key `items[1].limit`: invalid type: string \"five\", expected f64");
    }

    #[test]
    fn an_unknown_key_names_its_path() {
        let err = error_for(json!({"name": "n", "items": [{"id": "a", "limt": 3}]}));
        assert!(err.starts_with("config key `items[0].limt`: unknown field `limt`"), "{err}");
        let err = error_for(json!({"name": "n", "nmae": "m"}));
        assert!(err.starts_with("config key `nmae`: unknown field `nmae`"), "{err}");
    }

    #[test]
    fn a_missing_key_names_the_table_that_lacks_it() {
        let err = error_for(json!({"name": "n", "items": [{"id": "a"}, {"limit": 1}]}));
        assert_eq!(err, "config key `items[1]`: missing field `id`");
        let err = error_for(json!({"items": []}));
        assert_eq!(err, "plugin config: missing field `name`");
    }

    #[test]
    fn array_elements_and_odd_key_names_are_located() {
        let err = error_for(json!({"name": "n", "items": [{"id": "a", "tags": ["x", {}, "y"]}]}));
        assert!(err.starts_with("config key `items[0].tags[1]`: invalid type: map"), "{err}");
        let err = error_for(json!({"name": "n", "we\"ird: key": 1}));
        assert!(err.starts_with("config key `we\"ird: key`: unknown field"), "{err}");
    }

    #[test]
    fn a_good_table_deserialises() {
        let parsed = Config::from_json(json!({"name": "n", "items": [{"id": "a", "limit": 2}]})).deserialize::<Outer>();
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn get_as_names_the_key_and_the_path_below_it() {
        let config = Config::from_json(json!({"limits": {"max": "ten"}, "ports": [80, "x"], "name": 3}));
        let err = config.get_as::<std::collections::BTreeMap<String, u32>>("limits").unwrap_err();
        assert!(err.starts_with("config key `limits.max`: invalid type: string \"ten\""), "{err}");
        let err = config.get_as::<Vec<u16>>("ports").unwrap_err();
        assert!(err.starts_with("config key `ports[1]`: invalid type: string"), "{err}");
        let err = config.get_as::<String>("name").unwrap_err();
        assert!(err.starts_with("config key `name`: invalid type: integer `3`"), "{err}");
        assert_eq!(config.get_as::<Vec<u16>>("absent"), Ok(None));
        assert_eq!(config.get_as::<u32>("limits").map_err(|e| e.contains("`limits`")), Err(true));
    }
}
