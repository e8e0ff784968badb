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
//!
//! This module is the format's only parser: the host's `sluice test` reads
//! its input through it, and plugin tests read the same files with it.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::TestEvent;
use crate::event::Header;
use crate::json::kind;

/// A line that is not a record, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The 1-based number of the line in its file.
    pub line: usize,
    /// What is wrong with it, naming the field at fault where there is one.
    pub reason: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for InputError {}

const FIELDS: &[&str] =
    &["topic", "partition", "offset", "timestamp", "key", "key_base64", "value", "value_base64", "headers", "attempt"];

impl TestEvent {
    /// Parses one line of a `sluice test` input file; `line` is 1-based.
    ///
    /// Defaults for absent fields: topic `input`, partition 0, offset
    /// `line - 1`, no timestamp, no key, no value (a tombstone), no headers,
    /// attempt 1.
    ///
    /// ```
    /// use sluice_sdk::testing::TestEvent;
    ///
    /// let event = TestEvent::from_input_line(r#"{"key": "k1", "value": {"a": 1}}"#, 3).unwrap();
    /// assert_eq!((event.topic.as_str(), event.offset), ("input", 2));
    /// assert_eq!(event.value.as_deref(), Some(&br#"{"a":1}"#[..]));
    ///
    /// let err = TestEvent::from_input_line(r#"{"offset": "7"}"#, 4).unwrap_err();
    /// assert_eq!(err.to_string(), "line 4: `offset` must be a whole number, found a string");
    /// ```
    pub fn from_input_line(text: &str, line: usize) -> Result<TestEvent, InputError> {
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
        let partition =
            i32::try_from(partition).map_err(|_| err(format!("`partition` {partition} is out of range")))?;
        let default_offset = i64::try_from(line).unwrap_or(i64::MAX) - 1;
        let offset = int_field(&object, "offset", default_offset).map_err(&err)?;
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
        Ok(TestEvent { topic, partition, offset, timestamp, key, value, headers, attempt })
    }

    /// Reads a whole `sluice test` input file, such as a golden
    /// `input.jsonl`: one event per line, blank lines skipped. The error names
    /// the file and the first line that is not a record.
    pub fn from_input_file(path: impl AsRef<Path>) -> Result<Vec<TestEvent>, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| {
                TestEvent::from_input_line(line, index + 1).map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect()
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

fn headers_field(value: Option<&Value>) -> Result<Vec<Header>, String> {
    let text = |v: &Value, what: &str| match v {
        Value::String(s) => Ok(s.clone().into_bytes()),
        other => Err(format!("header {what} must be a string, found {}", kind(other))),
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| Ok(Header::new(k.clone(), text(v, &format!("`{k}`"))?))).collect()
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Array(pair) if pair.len() == 2 => match &pair[0] {
                    Value::String(name) => Ok(Header::new(name.clone(), text(&pair[1], &format!("`{name}`"))?)),
                    other => Err(format!("header #{} name must be a string, found {}", i + 1, kind(other))),
                },
                Value::Object(h) => {
                    let name = match h.get("name") {
                        Some(Value::String(n)) => n.clone(),
                        _ => return Err(format!("header #{} needs a string `name`", i + 1)),
                    };
                    let value = bytes_field(h, "value", false)?.unwrap_or_default();
                    Ok(Header::new(name, value))
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

    fn parse(text: &str, line: usize) -> TestEvent {
        TestEvent::from_input_line(text, line).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn defaults_and_json_value() {
        let e = parse(r#"{"value": {"a": 1}}"#, 3);
        assert_eq!((e.topic.as_str(), e.partition, e.offset, e.attempt), ("input", 0, 2, 1));
        assert_eq!(e.value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!((e.key, e.timestamp), (None, None));
    }

    #[test]
    fn every_field_is_read() {
        let line = r#"{"topic": "orders", "partition": 2, "offset": 7, "timestamp": 1700000000000,
            "key_base64": "AAE=", "value": "text", "headers": {"h": "v"}, "attempt": 3}"#;
        let e = parse(&line.replace('\n', " "), 1);
        assert_eq!((e.topic.as_str(), e.partition, e.offset, e.timestamp), ("orders", 2, 7, Some(1_700_000_000_000)));
        assert_eq!((e.key, e.value, e.attempt), (Some(vec![0, 1]), Some(b"text".to_vec()), 3));
        assert_eq!(e.headers, vec![Header::new("h", "v")]);
    }

    #[test]
    fn text_base64_and_tombstone_values() {
        assert_eq!(parse(r#"{"value": "plain"}"#, 1).value.unwrap(), b"plain");
        assert_eq!(parse(r#"{"value_base64": "/w=="}"#, 1).value.unwrap(), vec![0xff]);
        assert_eq!(parse(r#"{"value": null}"#, 1).value, None);
    }

    #[test]
    fn repeated_headers_keep_order() {
        let e = parse(r#"{"headers": [["a", "1"], ["a", "2"], {"name": "b", "value_base64": "AA=="}]}"#, 1);
        assert_eq!(e.headers, vec![Header::new("a", "1"), Header::new("a", "2"), Header::new("b", [0])]);
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
            let got = TestEvent::from_input_line(text, 4).unwrap_err().to_string();
            assert!(got.starts_with(expected), "{text}: got {got:?}, expected {expected:?}");
        }
    }

    #[test]
    fn a_file_skips_blank_lines_and_numbers_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.jsonl");
        std::fs::write(&path, "{\"value\": 1}\n\n  \n{\"value\": 2}\n").unwrap();
        let events = TestEvent::from_input_file(&path).unwrap();
        assert_eq!(events.iter().map(|e| e.offset).collect::<Vec<_>>(), [0, 3]);
        std::fs::write(&path, "{}\n{\"vaule\": 1}\n").unwrap();
        let err = TestEvent::from_input_file(&path).unwrap_err();
        assert!(err.contains("input.jsonl: line 2: unknown field `vaule`"), "{err}");
        let err = TestEvent::from_input_file(dir.path().join("absent.jsonl")).unwrap_err();
        assert!(err.starts_with("cannot read "), "{err}");
    }
}
