//! Renders what a plugin did with each record as one JSON line, the format
//! `sluice test` prints and `--expect` golden files hold.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use sluice_sdk::{Failure, Header, Output, Verdict};

use crate::invoke::Answer;

/// The verdict name used in summaries: pass, drop, emit, retry, reject, fault.
pub fn verdict_name(answer: &Answer) -> &'static str {
    match answer {
        Ok(Ok(Verdict::Pass)) => "pass",
        Ok(Ok(Verdict::Drop(_))) => "drop",
        Ok(Ok(Verdict::Emit(_))) => "emit",
        Ok(Err(Failure::Retry { .. })) => "retry",
        Ok(Err(Failure::Reject(_))) => "reject",
        Err(_) => "fault",
    }
}

/// One output line for the record read from input line `line`.
pub fn render(line: usize, offset: i64, answer: &Answer) -> Value {
    let mut out = Map::new();
    out.insert("line".into(), json!(line));
    out.insert("offset".into(), json!(offset));
    out.insert("verdict".into(), json!(verdict_name(answer)));
    match answer {
        Ok(Ok(Verdict::Pass)) => {}
        Ok(Ok(Verdict::Drop(reason))) => {
            if let Some(reason) = reason {
                out.insert("reason".into(), json!(reason));
            }
        }
        Ok(Ok(Verdict::Emit(records))) => {
            out.insert("records".into(), Value::Array(records.iter().map(render_output).collect()));
        }
        Ok(Err(Failure::Retry { message, delay_ms })) => {
            out.insert("message".into(), json!(message));
            if let Some(delay) = delay_ms {
                out.insert("delay_ms".into(), json!(delay));
            }
        }
        Ok(Err(Failure::Reject(message))) => {
            out.insert("message".into(), json!(message));
        }
        Err(fault) => {
            out.insert("kind".into(), json!(fault.kind()));
            out.insert("message".into(), json!(fault.to_string()));
        }
    }
    Value::Object(out)
}

fn render_output(record: &Output) -> Value {
    let mut out = Map::new();
    if let Some(topic) = &record.topic {
        out.insert("topic".into(), json!(topic));
    }
    put_bytes(&mut out, "key", record.key.as_deref(), false);
    put_bytes(&mut out, "value", record.value.as_deref(), true);
    if !record.headers.is_empty() {
        let headers = record.headers.iter().map(render_header).collect();
        out.insert("headers".into(), Value::Array(headers));
    }
    Value::Object(out)
}

fn render_header(h: &Header) -> Value {
    match std::str::from_utf8(&h.value) {
        Ok(text) => json!([h.name, text]),
        Err(_) => json!({"name": h.name, "value_base64": BASE64.encode(&h.value)}),
    }
}

/// JSON values are shown as JSON, other text as a string, binary as base64,
/// mirroring the input format.
fn put_bytes(out: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>, json_allowed: bool) {
    let Some(bytes) = bytes else {
        out.insert(name.into(), Value::Null);
        return;
    };
    if json_allowed
        && let Ok(value) = serde_json::from_slice::<Value>(bytes)
        && !value.is_string()
    {
        out.insert(name.into(), value);
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => out.insert(name.into(), json!(text)),
        Err(_) => out.insert(format!("{name}_base64"), json!(BASE64.encode(bytes))),
    };
}
