//! Dotted field paths into a JSON document: `eventType`, `meta.kind`.
//!
//! A record goes to one topic, so a routing field is one value: the `[]`
//! array form the other plugins accept is refused here.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<String>,
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a field path cannot be empty".to_owned());
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            if part.is_empty() {
                return Err(format!("`{text}` has an empty segment; write paths like `eventType` or `meta.kind`"));
            }
            if part.contains(['[', ']']) {
                return Err(format!(
                    "`{text}`: a record goes to one topic, so the routing field cannot go through an array"
                ));
            }
            segments.push(part.to_owned());
        }
        Ok(FieldPath { text: text.to_owned(), segments })
    }

    /// The value at the path; `None` when it, or an object on the way, is
    /// absent or of another type.
    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(root, |value, name| value.as_object()?.get(name))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_reach_nested_fields() {
        let doc = json!({"eventType": "OrderPlaced", "meta": {"kind": "order"}, "n": null});
        let get = |p: &str| FieldPath::parse(p).ok().and_then(|p| p.get(&doc).cloned());
        assert_eq!(get("eventType"), Some(json!("OrderPlaced")));
        assert_eq!(get("meta.kind"), Some(json!("order")));
        assert_eq!(get("meta.other"), None);
        assert_eq!(get("eventType.inner"), None);
        assert_eq!(get("n"), Some(Value::Null));
    }

    #[test]
    fn malformed_paths_and_arrays_are_refused() {
        for bad in ["", "a..b", ".a", "items[].type", "a[0]"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
