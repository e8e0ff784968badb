//! Dotted field paths into a JSON document: `repo.name`, and `items[].price`
//! where a segment ending in `[]` stands for every element of an array.
//!
//! Field names cannot contain `.`; any other character, spaces included
//! (`Wave Height`), is part of the name.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    name: String,
    /// The segment was written `name[]`: go through each array element.
    each: bool,
}

/// One place a path leads to. A path without `[]` has exactly one; with
/// `[]`, one per element reached (none for an empty array).
#[derive(Debug, Clone, PartialEq)]
pub struct Slot<'v> {
    /// The array index taken at each `[]` segment on the way here; shorter
    /// than the number of `[]` segments when the walk stopped early.
    pub indices: Vec<usize>,
    /// `None` when the field, or an object or array on the way, is absent
    /// or of another type.
    pub value: Option<&'v Value>,
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a field path cannot be empty".to_owned());
        }
        let segments = text
            .split('.')
            .map(|part| {
                let (name, each) = match part.strip_suffix("[]") {
                    Some(name) => (name, true),
                    None => (part, false),
                };
                if name.is_empty() {
                    return Err(format!("`{text}` has an empty segment; write paths like `repo.name` or `items[].id`"));
                }
                if name.contains(['[', ']']) {
                    return Err(format!("`{text}`: only a trailing `[]` is understood in a segment, not `{part}`"));
                }
                Ok(Segment { name: name.to_owned(), each })
            })
            .collect::<Result<_, _>>()?;
        Ok(FieldPath { text: text.to_owned(), segments })
    }

    /// Every place the path leads to in `root`, in document order.
    pub fn resolve<'v>(&self, root: &'v Value) -> Vec<Slot<'v>> {
        let mut slots = Vec::new();
        walk(Some(root), &self.segments, &mut Vec::new(), &mut slots);
        slots
    }

    /// The path with the indices of a slot filled in: `items[2].price`.
    pub fn locate(&self, indices: &[usize]) -> String {
        let mut indices = indices.iter();
        let mut out = String::with_capacity(self.text.len() + 4);
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(&segment.name);
            if segment.each {
                match indices.next() {
                    Some(index) => out.push_str(&format!("[{index}]")),
                    None => out.push_str("[]"),
                }
            }
        }
        out
    }
}

fn walk<'v>(value: Option<&'v Value>, segments: &[Segment], indices: &mut Vec<usize>, slots: &mut Vec<Slot<'v>>) {
    let Some((segment, rest)) = segments.split_first() else {
        slots.push(Slot { indices: indices.clone(), value });
        return;
    };
    let child = value.and_then(Value::as_object).and_then(|object| object.get(&segment.name));
    if !segment.each {
        return walk(child, rest, indices, slots);
    }
    match child {
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                indices.push(index);
                walk(Some(item), rest, indices, slots);
                indices.pop();
            }
        }
        _ => walk(None, rest, indices, slots),
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

    fn values(path: &str, doc: &Value) -> Vec<(String, Option<Value>)> {
        let path = FieldPath::parse(path).expect("test paths are valid");
        path.resolve(doc).into_iter().map(|slot| (path.locate(&slot.indices), slot.value.cloned())).collect()
    }

    #[test]
    fn dotted_paths_reach_nested_fields() {
        let doc = json!({"repo": {"name": "apache/kafka"}, "Wave Height": "0.08"});
        assert_eq!(values("repo.name", &doc), vec![("repo.name".into(), Some(json!("apache/kafka")))]);
        assert_eq!(values("Wave Height", &doc), vec![("Wave Height".into(), Some(json!("0.08")))]);
        assert_eq!(values("repo.id", &doc), vec![("repo.id".into(), None)]);
        assert_eq!(values("repo.name.first", &doc), vec![("repo.name.first".into(), None)]);
    }

    #[test]
    fn brackets_visit_each_element_and_name_its_index() {
        let doc = json!({"items": [{"id": "a"}, {"price": 1}, {"id": "c"}]});
        let found = values("items[].id", &doc);
        let expected = vec![
            ("items[0].id".to_owned(), Some(json!("a"))),
            ("items[1].id".to_owned(), None),
            ("items[2].id".to_owned(), Some(json!("c"))),
        ];
        assert_eq!(found, expected);
        assert_eq!(values("tags[]", &json!({"tags": ["x", "y"]})).len(), 2);
    }

    #[test]
    fn an_absent_or_empty_array_is_told_apart() {
        assert_eq!(values("items[].id", &json!({})), vec![("items[].id".into(), None)]);
        assert_eq!(values("items[].id", &json!({"items": {"id": 1}})), vec![("items[].id".into(), None)]);
        assert!(values("items[].id", &json!({"items": []})).is_empty());
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["", "a..b", ".a", "a.", "[]", "a[0]", "a[].b[x]"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
