//! The `sluice test` input format: one JSON object per line, one record each.
//!
//! ```text
//! {"topic": "orders", "partition": 0, "offset": 7, "timestamp": 1700000000000,
//!  "key": "order-1", "value": {"eventType": "OrderPlaced"},
//!  "headers": [["traceparent", "00-…"]], "attempt": 1}
//! ```
//!
//! Every field is optional. `value` holds JSON (serialised as the record's
//! value) or a string (the raw text); `value_base64` holds binary; `null` or
//! no value at all is a tombstone. `key` is text, `key_base64` binary.
//! Headers are `[["name", "text"], …]`, `{"name": "text", …}`, or objects
//! `{"name": …, "value": …}` / `{"name": …, "value_base64": …}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::record::Record;

/// A line that is not a record, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct InputError {
    pub line: usize,
    pub reason: String,
}

const FIELDS: &[&str] =
    &["topic", "partition", "offset", "timestamp", "key", "key_base64", "value", "value_base64", "headers", "attempt"];

/// Parses one input line; `line` is 1-based and sets the default offset.
pub fn parse_line(text: &str, line: usize) -> Result<Record, InputError> {
    let err = |reason: String| InputError { line, reason };
    let object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        Ok(other) => return Err(err(format!("expected a JSON object, found {}", kind(&other)))),
        Err(e) => return Err(err(format!("not valid JSON: {e}"))),
    };
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(err(format!("unknown field `{unknown}` (expected one of: {})", FIELDS.join(", "))));
    }
    let topic = match object.get("topic") {
        None => "input".to_owned(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => return Err(err(format!("`topic` must be a non-empty string, found {}", kind(other)))),
    };
    let partition = int_field(&object, "partition", 0).map_err(&err)?;
    let partition = i32::try_from(partition).map_err(|_| err(format!("`partition` {partition} is out of range")))?;
    let offset = int_field(&object, "offset", line as i64 - 1).map_err(&err)?;
    let timestamp = match object.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(_) => Some(int_field(&object, "timestamp", 0).map_err(&err)?),
    };
    let attempt = int_field(&object, "attempt", 1).map_err(&err)?;
    let attempt = u32::try_from(attempt)
        .ok()
        .filter(|a| *a >= 1)
        .ok_or_else(|| err(format!("`attempt` must be at least 1, found {attempt}")))?;
    let key = bytes_field(&object, "key", false).map_err(&err)?;
    let value = bytes_field(&object, "value", true).map_err(&err)?;
    let headers = headers_field(object.get("headers")).map_err(&err)?;
    Ok(Record { topic, partition, offset, timestamp, key, value, headers, attempt })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn int_field(object: &Map<String, Value>, name: &str, default: i64) -> Result<i64, String> {
    match object.get(name) {
        None => Ok(default),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("`{name}` must be a whole number, found {n}")),
        Some(other) => Err(format!("`{name}` must be a whole number, found {}", kind(other))),
    }
}

fn bytes_field(object: &Map<String, Value>, name: &str, json_allowed: bool) -> Result<Option<Vec<u8>>, String> {
    let b64_name = format!("{name}_base64");
    match (object.get(name), object.get(&b64_name)) {
        (Some(_), Some(_)) => Err(format!("give `{name}` or `{b64_name}`, not both")),
        (None, Some(Value::String(b64))) => {
            BASE64.decode(b64).map(Some).map_err(|e| format!("`{b64_name}` is not valid base64: {e}"))
        }
        (None, Some(other)) => Err(format!("`{b64_name}` must be a base64 string, found {}", kind(other))),
        (None | Some(Value::Null), None) => Ok(None),
        (Some(Value::String(text)), None) => Ok(Some(text.clone().into_bytes())),
        (Some(json), None) if json_allowed => Ok(Some(json.to_string().into_bytes())),
        (Some(other), None) => Err(format!("`{name}` must be a string, found {}", kind(other))),
    }
}

fn headers_field(value: Option<&Value>) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = |v: &Value, what: &str| match v {
        Value::String(s) => Ok(s.clone().into_bytes()),
        other => Err(format!("header {what} must be a string, found {}", kind(other))),
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| Ok((k.clone(), text(v, &format!("`{k}`"))?))).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Array(pair) if pair.len() == 2 => match &pair[0] {
                    Value::String(name) => Ok((name.clone(), text(&pair[1], &format!("`{name}`"))?)),
                    other => Err(format!("header #{} name must be a string, found {}", i + 1, kind(other))),
                },
                Value::Object(h) => {
                    let name = match h.get("name") {
                        Some(Value::String(n)) => n.clone(),
                        _ => return Err(format!("header #{} needs a string `name`", i + 1)),
                    };
                    let value = bytes_field(h, "value", false)?.unwrap_or_default();
                    Ok((name, value))
                }
                other => Err(format!("header #{} must be [name, value] or an object, found {}", i + 1, kind(other))),
            })
            .collect(),
        Some(other) => Err(format!("`headers` must be an array or an object, found {}", kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_json_value() {
        let r = parse_line(r#"{"value": {"a": 1}}"#, 3).unwrap();
        assert_eq!((r.topic.as_str(), r.partition, r.offset, r.attempt), ("input", 0, 2, 1));
        assert_eq!(r.value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(r.key, None);
    }

    #[test]
    fn text_base64_and_tombstone_values() {
        assert_eq!(parse_line(r#"{"value": "plain"}"#, 1).unwrap().value.unwrap(), b"plain");
        assert_eq!(parse_line(r#"{"value_base64": "/w=="}"#, 1).unwrap().value.unwrap(), vec![0xff]);
        assert_eq!(parse_line(r#"{"value": null}"#, 1).unwrap().value, None);
    }

    #[test]
    fn repeated_headers_keep_order() {
        let r =
            parse_line(r#"{"headers": [["a", "1"], ["a", "2"], {"name": "b", "value_base64": "AA=="}]}"#, 1).unwrap();
        assert_eq!(r.headers, vec![("a".into(), b"1".to_vec()), ("a".into(), b"2".to_vec()), ("b".into(), vec![0])]);
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let cases = [
            ("not json", "line 4: not valid JSON"),
            ("[1]", "line 4: expected a JSON object, found an array"),
            (r#"{"vaule": 1}"#, "line 4: unknown field `vaule`"),
            (r#"{"offset": "7"}"#, "line 4: `offset` must be a whole number, found a string"),
            (r#"{"attempt": 0}"#, "line 4: `attempt` must be at least 1"),
            (r#"{"value_base64": "!!"}"#, "line 4: `value_base64` is not valid base64"),
            (r#"{"value": 1, "value_base64": "AA=="}"#, "line 4: give `value` or `value_base64`, not both"),
            (r#"{"key": 5}"#, "line 4: `key` must be a string, found a number"),
            (r#"{"headers": [[1, "x"]]}"#, "line 4: header #1 name must be a string"),
            (r#"{"partition": 99999999999}"#, "line 4: `partition` 99999999999 is out of range"),
        ];
        for (text, expected) in cases {
            let got = parse_line(text, 4).unwrap_err().to_string();
            assert!(got.starts_with(expected), "{text}: got {got:?}, expected {expected:?}");
        }
    }
}
