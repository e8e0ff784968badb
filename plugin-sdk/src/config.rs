//! A plugin's own config table from the routing TOML.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

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

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

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

    /// One value deserialised into `T`; `Ok(None)` when absent.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        self.get(key)
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| format!("config key `{key}`: {e}")))
            .transpose()
    }

    /// The whole table deserialised into `T`, such as a struct with
    /// `#[serde(deny_unknown_fields)]`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, String> {
        let object: serde_json::Map<String, Value> = self.entries.clone().into_iter().collect();
        serde_json::from_value(Value::Object(object)).map_err(|e| format!("plugin config: {e}"))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
