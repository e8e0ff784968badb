//! A plugin's config table from TOML, turned into the `(key, JSON text)`
//! entries that the WIT `init` takes.

use serde_json::Value;

/// Each top-level key with its value rendered as JSON. TOML datetimes become
/// strings, since JSON has no such type.
pub fn entries(table: &toml::Table) -> Vec<(String, String)> {
    table.iter().map(|(k, v)| (k.clone(), to_json(v).to_string())).collect()
}

pub fn to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_become_json() {
        let table: toml::Table = toml::from_str("a = 1\nb = [\"x\", 2.5]\nwhen = 1979-05-27\n[c]\nd = true").unwrap();
        let got: std::collections::BTreeMap<_, _> = entries(&table).into_iter().collect();
        assert_eq!(got["a"], "1");
        assert_eq!(got["b"], r#"["x",2.5]"#);
        assert_eq!(got["c"], r#"{"d":true}"#);
        assert_eq!(got["when"], r#""1979-05-27""#);
    }
}
