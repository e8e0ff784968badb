//! Config errors that name the key at fault.
//!
//! serde says "invalid type: string \"five\", expected f64" without saying
//! which key held the string, and an operator with a dozen rules cannot act on
//! that. Deserialising the same table again from pretty-printed JSON text
//! gives the error a line number, and in pretty JSON each line holds one key
//! or one array element, so the line leads back to a path like `rules[2].min`.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sluice_sdk::Config;

/// Deserialises the whole config table into `T`; on failure the message
/// starts with the path of the key at fault when it can be found.
pub fn deserialize<T: DeserializeOwned>(config: &Config) -> Result<T, String> {
    config.deserialize::<T>().map_err(|plain| locate::<T>(config).unwrap_or(plain))
}

fn locate<T: DeserializeOwned>(config: &Config) -> Option<String> {
    let table: Map<String, Value> =
        config.keys().filter_map(|k| Some((k.to_owned(), config.get(k)?.clone()))).collect();
    let text = serde_json::to_string_pretty(&Value::Object(table)).ok()?;
    let error = serde_json::from_str::<T>(&text).err()?;
    let position = format!(" at line {} column {}", error.line(), error.column());
    let full = error.to_string();
    let message = full.strip_suffix(&position).unwrap_or(&full);
    match path_at_line(&text, error.line()) {
        Some(path) if !path.is_empty() => Some(format!("config key `{path}`: {message}")),
        _ => Some(format!("plugin config: {message}")),
    }
}

/// Where the parser was, one level per open object or array.
enum Frame {
    Object(Option<String>),
    Array(Option<usize>),
}

/// The key path of 1-based `line` in `serde_json::to_string_pretty` output.
/// On a line that closes an object the path is that object's, since serde
/// reports a missing field once it reaches the closing brace.
fn path_at_line(text: &str, line: usize) -> Option<String> {
    let mut stack: Vec<Frame> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let item = raw.trim().trim_end_matches(',');
        let closing = item.starts_with('}') || item.starts_with(']');
        let is_target = index + 1 == line;
        if closing {
            if is_target {
                stack.pop();
                return Some(render(&stack));
            }
            stack.pop();
            continue;
        }
        let rest = match stack.last_mut() {
            None => item,
            Some(Frame::Object(key)) => {
                let (name, rest) = split_key(item)?;
                *key = Some(name);
                rest
            }
            Some(Frame::Array(at)) => {
                *at = Some(at.map_or(0, |i| i + 1));
                item
            }
        };
        if is_target {
            return Some(render(&stack));
        }
        match rest {
            "{" => stack.push(Frame::Object(None)),
            "[" => stack.push(Frame::Array(None)),
            _ => {}
        }
    }
    None
}

/// Splits `"name": rest` into the unescaped name and `rest`.
fn split_key(item: &str) -> Option<(String, &str)> {
    let mut escaped = false;
    let mut end = None;
    for (i, c) in item.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let name: String = serde_json::from_str(&item[..=end]).ok()?;
    let rest = item[end + 1..].trim_start_matches(':').trim();
    Some((name, rest))
}

fn render(stack: &[Frame]) -> String {
    let mut path = String::new();
    for frame in stack {
        match frame {
            Frame::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Array(Some(index)) => path.push_str(&format!("[{index}]")),
            Frame::Object(None) | Frame::Array(None) => {}
        }
    }
    path
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
        match deserialize::<Outer>(&Config::from_json(value)) {
            Ok(parsed) => panic!("expected an error, got {parsed:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_wrong_type_deep_inside_names_its_path() {
        let err = error_for(json!({"name": "n", "items": [{"id": "a"}, {"id": "b", "limit": "five"}]}));
        assert!(err.starts_with("config key `items[1].limit`: invalid type: string \"five\""), "{err}");
    }

    #[test]
    fn an_unknown_key_names_its_path() {
        let err = error_for(json!({"name": "n", "items": [{"id": "a", "limt": 3}]}));
        assert!(err.starts_with("config key `items[0].limt`: unknown field `limt`"), "{err}");
    }

    #[test]
    fn a_missing_key_names_the_table_that_lacks_it() {
        let err = error_for(json!({"name": "n", "items": [{"id": "a"}, {"limit": 1}]}));
        assert!(err.starts_with("config key `items[1]`: missing field `id`"), "{err}");
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
        let parsed = deserialize::<Outer>(&Config::from_json(json!({"name": "n", "items": [{"id": "a", "limit": 2}]})));
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
