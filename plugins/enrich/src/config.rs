//! The plugin's config table: what the operator writes, and the checked
//! lookups the handler runs.

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::Config;

use crate::lookup::{Lookup, OnMissing, Target};
use crate::path::KeyPath;

/// The config table as written in the routing TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    /// The lookups, run in order, each seeing the fields earlier ones set.
    /// Required, with at least one.
    lookups: Vec<RawLookup>,
}

/// One `[[lookups]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLookup {
    /// The reference table to look in, as the route declares it. Required.
    table: String,
    /// The path of the field whose value is the lookup key (`customer_id`,
    /// `items[].product_id`). Required.
    key: String,
    /// New field name → row column, set on the object holding the key.
    /// Give this or `into`.
    set: Option<BTreeMap<String, String>>,
    /// A field of the object holding the key that receives the whole row.
    /// Give this or `set`.
    into: Option<String>,
    /// What a missing key field, or a key not in the table, does. Default:
    /// `"skip"`.
    #[serde(default)]
    on_missing: OnMissing,
}

/// Reads and checks the plugin's config; errors name the key at fault.
pub fn lookups(config: &Config) -> Result<Vec<Lookup>, String> {
    let raw: RawSettings = config.deserialize()?;
    if raw.lookups.is_empty() {
        return Err("config key `lookups`: give at least one [[lookups]] table".to_owned());
    }
    raw.lookups.into_iter().enumerate().map(|(i, lookup)| lookup.check(&format!("lookups[{i}]"))).collect()
}

impl RawLookup {
    fn check(self, at: &str) -> Result<Lookup, String> {
        if self.table.is_empty() {
            return Err(format!("config key `{at}.table`: name the reference table"));
        }
        let key = KeyPath::parse(&self.key).map_err(|e| format!("config key `{at}.key`: {e}"))?;
        let target = match (self.set, self.into) {
            (Some(_), Some(_)) => return Err(format!("config key `{at}`: give `set` or `into`, not both")),
            (None, None) => {
                return Err(format!(
                    "config key `{at}`: give `set` (new field = row column) or `into` (a field to hold the whole row)"
                ));
            }
            (None, Some(into)) => Target::Into(field_name(&into).map_err(|e| format!("config key `{at}.into`: {e}"))?),
            (Some(set), None) => {
                if set.is_empty() {
                    return Err(format!("config key `{at}.set`: name at least one field to set"));
                }
                let mut pairs = Vec::with_capacity(set.len());
                for (field, column) in set {
                    let field = field_name(&field).map_err(|e| format!("config key `{at}.set`: {e}"))?;
                    if column.is_empty() {
                        return Err(format!("config key `{at}.set.{field}`: name the row column to copy"));
                    }
                    pairs.push((field, column));
                }
                Target::Set(pairs)
            }
        };
        Ok(Lookup { table: self.table, key, target, on_missing: self.on_missing })
    }
}

/// New fields are set on the object holding the key; a path here would
/// look like it reaches elsewhere.
fn field_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("a field name cannot be empty".to_owned());
    }
    if name.contains('.') || name.ends_with("[]") {
        return Err(format!("`{name}` must be a plain field name, set next to the key, not a path"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn refused(value: Value) -> String {
        match lookups(&Config::from_json(value)) {
            Ok(l) => panic!("expected the config to be refused, got {l:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn lookups_are_read_in_order() {
        let parsed = lookups(&Config::from_json(json!({"lookups": [
            {"table": "customers", "key": "customer_id", "set": {"state": "customer_state", "city": "customer_city"}},
            {"table": "products", "key": "items[].product_id", "into": "product", "on_missing": "retry"},
        ]})))
        .expect("valid config");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].table, "customers");
        assert_eq!(
            parsed[0].target,
            Target::Set(vec![("city".into(), "customer_city".into()), ("state".into(), "customer_state".into())])
        );
        assert_eq!(parsed[0].on_missing, OnMissing::Skip);
        assert_eq!(parsed[1].target, Target::Into("product".into()));
        assert_eq!(parsed[1].on_missing, OnMissing::Retry);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let lookup = |extra: Value| {
            let mut l = json!({"table": "customers", "key": "customer_id", "set": {"state": "customer_state"}});
            if let (Some(l), Value::Object(extra)) = (l.as_object_mut(), extra) {
                l.extend(extra);
            }
            json!({"lookups": [l]})
        };
        let cases = [
            (json!({}), "plugin config: missing field `lookups`"),
            (json!({"lookups": []}), "config key `lookups`: give at least one"),
            (json!({"lookups": [{"key": "k", "into": "x"}]}), "config key `lookups[0]`: missing field `table`"),
            (lookup(json!({"on_missing": "ignore"})), "config key `lookups[0].on_missing`: unknown variant `ignore`"),
            (lookup(json!({"table": ""})), "config key `lookups[0].table`: name the reference table"),
            (lookup(json!({"key": "items[]"})), "config key `lookups[0].key`: `items[]` must end in a field name"),
            (lookup(json!({"into": "row"})), "config key `lookups[0]`: give `set` or `into`, not both"),
            (lookup(json!({"set": {}})), "config key `lookups[0].set`: name at least one field"),
            (lookup(json!({"set": {"a.b": "c"}})), "config key `lookups[0].set`: `a.b` must be a plain field name"),
            (lookup(json!({"set": {"state": ""}})), "config key `lookups[0].set.state`: name the row column"),
            (lookup(json!({"set": {"state": 3}})), "config key `lookups[0].set.state`: invalid type: integer `3`"),
            (lookup(json!({"sett": {}})), "config key `lookups[0].sett`: unknown field `sett`"),
            (json!({"lookups": [{"table": "t", "key": "k"}]}), "config key `lookups[0]`: give `set` (new field"),
            (json!({"lookups": [], "cache": true}), "config key `cache`: unknown field `cache`"),
        ];
        for (config, expected) in cases {
            let err = refused(config.clone());
            assert!(err.starts_with(expected), "{config}: got {err:?}, expected it to start with {expected:?}");
        }
    }
}
