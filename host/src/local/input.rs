//! The `sluice test` input format, one JSON object per line, turned into the
//! host's records.
//!
//! The format itself (fields, defaults and error messages) is defined once,
//! in the SDK's [`TestEvent::from_input_line`], so that plugin tests read the
//! same files the same way.

use sluice_sdk::testing::TestEvent;

pub use sluice_sdk::testing::InputError;

use crate::record::Record;

/// Parses one input line; `line` is 1-based and sets the default offset.
pub fn parse_line(text: &str, line: usize) -> Result<Record, InputError> {
    TestEvent::from_input_line(text, line).map(record)
}

fn record(event: TestEvent) -> Record {
    let TestEvent { topic, partition, offset, timestamp, key, value, headers, attempt } = event;
    let headers = headers.into_iter().map(|h| (h.name, h.value)).collect();
    Record { topic, partition, offset, timestamp, key, value, headers, attempt }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reaches_the_record() {
        let line = r#"{"topic": "orders", "partition": 2, "offset": 7, "timestamp": 1700000000000,
            "key": "k", "value": {"a": 1}, "headers": [["h", "1"], ["h", "2"]], "attempt": 3}"#;
        let r = parse_line(&line.replace('\n', " "), 1).unwrap();
        let expected = Record {
            topic: "orders".into(),
            partition: 2,
            offset: 7,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k".to_vec()),
            value: Some(br#"{"a":1}"#.to_vec()),
            headers: vec![("h".into(), b"1".to_vec()), ("h".into(), b"2".to_vec())],
            attempt: 3,
        };
        assert_eq!(r, expected);
    }

    #[test]
    fn defaults_follow_the_line_number() {
        let r = parse_line("{}", 3).unwrap();
        assert_eq!((r.topic.as_str(), r.partition, r.offset, r.timestamp, r.attempt), ("input", 0, 2, None, 1));
        assert_eq!((r.key, r.value, r.headers.len()), (None, None, 0));
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let err = parse_line(r#"{"offset": "7"}"#, 4).unwrap_err();
        assert_eq!((err.line, err.reason.as_str()), (4, "`offset` must be a whole number, found a string"));
        assert_eq!(err.to_string(), "line 4: `offset` must be a whole number, found a string");
    }
}
