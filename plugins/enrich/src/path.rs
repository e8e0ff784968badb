//! Key paths: `customer_id`, `buyer.id`, or `items[].product_id`, where a
//! segment ending in `[]` stands for every element of an array.
//!
//! Enrichment writes next to the key, so a key path is split into the path
//! of the objects that hold the key (the holders) and the key's own name.
//! Field names cannot contain `.`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    text: String,
    holders: Vec<Segment>,
    field: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    name: String,
    /// Written `name[]`: go through each array element.
    each: bool,
}

/// An object that should hold the key, or `None` where the walk found
/// nothing (an absent field, or a value of another type), with the array
/// index taken at each `[]` on the way.
pub type Visit<'a, 'v> = (Option<&'v mut Map<String, Value>>, &'a [usize]);

impl KeyPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a key path cannot be empty".to_owned());
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            let (name, each) = match part.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (part, false),
            };
            if name.is_empty() {
                return Err(format!("`{text}` has an empty segment; write paths like `customer_id` or `items[].id`"));
            }
            if name.contains(['[', ']']) {
                return Err(format!("`{text}`: only a trailing `[]` is understood in a segment, not `{part}`"));
            }
            segments.push(Segment { name: name.to_owned(), each });
        }
        match segments.pop() {
            Some(Segment { name, each: false }) => {
                Ok(KeyPath { text: text.to_owned(), holders: segments, field: name })
            }
            _ => Err(format!("`{text}` must end in a field name, not `[]`: the key is a field of an object")),
        }
    }

    /// The key's field name within its holder.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Calls `visit` for every holder in document order, stopping at the
    /// first error. An empty array has no holders, so nothing is visited.
    pub fn for_each_holder<E>(
        &self,
        root: &mut Value,
        visit: &mut dyn FnMut(Visit<'_, '_>) -> Result<(), E>,
    ) -> Result<(), E> {
        walk(Some(root), &self.holders, &mut Vec::new(), visit)
    }

    /// The path with indices filled in: `items[2].product_id`.
    pub fn locate(&self, indices: &[usize]) -> String {
        let mut indices = indices.iter();
        let mut out = String::with_capacity(self.text.len() + 4);
        for segment in &self.holders {
            out.push_str(&segment.name);
            if segment.each {
                match indices.next() {
                    Some(index) => out.push_str(&format!("[{index}]")),
                    None => out.push_str("[]"),
                }
            }
            out.push('.');
        }
        out.push_str(&self.field);
        out
    }
}

fn walk<E>(
    value: Option<&mut Value>,
    segments: &[Segment],
    indices: &mut Vec<usize>,
    visit: &mut dyn FnMut(Visit<'_, '_>) -> Result<(), E>,
) -> Result<(), E> {
    let Some((segment, rest)) = segments.split_first() else {
        return visit((value.and_then(Value::as_object_mut), indices.as_slice()));
    };
    let child = value.and_then(Value::as_object_mut).and_then(|object| object.get_mut(&segment.name));
    if !segment.each {
        return walk(child, rest, indices, visit);
    }
    match child {
        Some(Value::Array(items)) => {
            for (index, item) in items.iter_mut().enumerate() {
                indices.push(index);
                let result = walk(Some(item), rest, indices, visit);
                indices.pop();
                result?;
            }
            Ok(())
        }
        _ => walk(None, rest, indices, visit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Marks every holder with `seen = <located key path>`.
    fn mark(path: &str, mut doc: Value) -> (Value, usize) {
        let path = KeyPath::parse(path).expect("test paths are valid");
        let mut missing = 0;
        let result: Result<(), ()> = path.for_each_holder(&mut doc, &mut |(holder, indices)| {
            match holder {
                Some(object) => {
                    object.insert("seen".into(), Value::from(path.locate(indices)));
                }
                None => missing += 1,
            }
            Ok(())
        });
        assert_eq!(result, Ok(()));
        (doc, missing)
    }

    #[test]
    fn a_top_level_key_is_held_by_the_root() {
        let (doc, missing) = mark("customer_id", json!({"customer_id": "c1"}));
        assert_eq!((doc, missing), (json!({"customer_id": "c1", "seen": "customer_id"}), 0));
    }

    #[test]
    fn each_array_element_holds_its_own_key() {
        let (doc, missing) = mark("order.items[].product_id", json!({"order": {"items": [{"product_id": "a"}, {}]}}));
        let expected = json!({"order": {"items": [
            {"product_id": "a", "seen": "order.items[0].product_id"},
            {"seen": "order.items[1].product_id"},
        ]}});
        assert_eq!((doc, missing), (expected, 0));
    }

    #[test]
    fn a_missing_holder_is_visited_as_none_once() {
        assert_eq!(mark("items[].product_id", json!({"order_id": "o"})).1, 1);
        assert_eq!(mark("items[].product_id", json!({"items": "none"})).1, 1);
        assert_eq!(mark("buyer.id", json!({"buyer": null})).1, 1);
        assert_eq!(mark("items[].product_id", json!({"items": []})), (json!({"items": []}), 0));
        assert_eq!(mark("items[].product_id", json!({"items": [1, {"product_id": "a"}]})).1, 1);
    }

    #[test]
    fn the_first_error_stops_the_walk() {
        let path = KeyPath::parse("items[].id").expect("valid");
        let mut doc = json!({"items": [{"id": 1}, {"id": 2}, {"id": 3}]});
        let mut visited = 0;
        let result = path.for_each_holder(&mut doc, &mut |(_, indices)| {
            visited += 1;
            if indices == [1] { Err("stop") } else { Ok(()) }
        });
        assert_eq!((result, visited), (Err("stop"), 2));
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["", "a..b", "items[]", "a.b[]", "a[0].b", "[].a"] {
            assert!(KeyPath::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(KeyPath::parse("items[].product_id").map(|p| p.field().to_owned()), Ok("product_id".to_owned()));
    }
}
