//! Correlation and trace context carried from an input to its outputs.

use serde::Deserialize;

use crate::record::Record;
use crate::sink::OutRecord;

pub const CORRELATION_ID: &str = "correlation-id";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

#[derive(Deserialize)]
struct EventId<'a> {
    #[serde(rename = "eventId", borrow)]
    event_id: Option<std::borrow::Cow<'a, str>>,
}

/// The id that ties an output to its input: an incoming `correlation-id`
/// header, else the event's `eventId`, else its coordinates.
pub fn id_for(record: &Record) -> String {
    if let Some(id) = record.header(CORRELATION_ID).and_then(|v| std::str::from_utf8(v).ok()) {
        return id.to_owned();
    }
    if let Some(value) = record.value.as_deref()
        // A cheap scan first: most records without the field are never parsed.
        && memchr::memmem::find(value, b"\"eventId\"").is_some()
        && let Ok(EventId { event_id: Some(id) }) = serde_json::from_slice::<EventId<'_>>(value)
    {
        return id.into_owned();
    }
    record.coordinates()
}

/// Gives an output the input's correlation id and trace context, unless the
/// plugin set its own.
pub fn stamp(output: &mut OutRecord, correlation_id: &str, input: &Record) {
    let has = |o: &OutRecord, name: &str| o.headers.iter().any(|(n, _)| n == name);
    if !has(output, CORRELATION_ID) {
        output.headers.push((CORRELATION_ID.to_owned(), correlation_id.as_bytes().to_vec()));
    }
    for name in [TRACEPARENT, TRACESTATE] {
        if !has(output, name)
            && let Some(value) = input.header(name)
        {
            output.headers.push((name.to_owned(), value.to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: &str) -> Record {
        Record {
            topic: "t".into(),
            partition: 1,
            offset: 9,
            value: Some(value.as_bytes().to_vec()),
            ..Record::default()
        }
    }

    #[test]
    fn prefers_header_then_event_id_then_coordinates() {
        let mut r = rec(r#"{"eventId":"e-1","x":{"eventId":"inner"}}"#);
        assert_eq!(id_for(&r), "e-1");
        r.headers.push((CORRELATION_ID.into(), b"c-9".to_vec()));
        assert_eq!(id_for(&r), "c-9");
        assert_eq!(id_for(&rec("not json")), "t/1@9");
        assert_eq!(id_for(&rec(r#"{"eventId": 5}"#)), "t/1@9", "a non-string eventId is not an id");
    }

    #[test]
    fn stamps_missing_headers_only() {
        let mut input = rec("{}");
        input.headers.push((TRACEPARENT.into(), b"00-trace".to_vec()));
        let mut out = OutRecord { topic: "o".into(), timestamp: None, key: None, value: None, headers: vec![] };
        stamp(&mut out, "e-1", &input);
        assert_eq!(
            out.headers,
            vec![(CORRELATION_ID.into(), b"e-1".to_vec()), (TRACEPARENT.into(), b"00-trace".to_vec())]
        );
        let mut own = OutRecord {
            timestamp: None,
            topic: "o".into(),
            key: None,
            value: None,
            headers: vec![(CORRELATION_ID.into(), b"mine".to_vec())],
        };
        stamp(&mut own, "e-1", &input);
        assert_eq!(own.headers[0].1, b"mine");
    }
}
