//! Words for JSON values in messages to operators.

use serde_json::Value;

/// The kind of a JSON value with its article, for messages such as
/// "`items` is an array, not text": `null`, `a boolean`, `a number`,
/// `a string`, `an array` or `an object`.
///
/// ```
/// use sluice_sdk::serde_json::json;
///
/// assert_eq!(sluice_sdk::json::kind(&json!([1])), "an array");
/// assert_eq!(sluice_sdk::json::kind(&json!(null)), "null");
/// ```
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
