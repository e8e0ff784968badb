//! The event a plugin handles, borrowed from the host's request buffer.

use serde::de::DeserializeOwned;

use crate::abi::HeaderIter;
use crate::verdict::{Failure, Output};

/// An owned Kafka header: a name and raw bytes. Names may repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name.
    pub name: String,
    /// The header value, as raw bytes.
    pub value: Vec<u8>,
}

impl Header {
    /// A header called `name` holding `value`.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header { name: name.into(), value: value.into() }
    }
}

/// The headers of an [`Event`], in record order, repeated names kept.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    repr: HeadersRepr<'a>,
}

#[derive(Debug, Clone, Copy)]
enum HeadersRepr<'a> {
    /// Still encoded in the batch request; decoded on demand so that events
    /// whose headers are never read cost nothing.
    Packed {
        count: u16,
        bytes: &'a [u8],
    },
    Owned(&'a [Header]),
}

impl<'a> Headers<'a> {
    pub(crate) fn packed(count: u16, bytes: &'a [u8]) -> Self {
        Headers { repr: HeadersRepr::Packed { count, bytes } }
    }

    /// Headers backed by owned values, as built by the typed entry point and
    /// the test harness.
    pub fn from_slice(headers: &'a [Header]) -> Self {
        Headers { repr: HeadersRepr::Owned(headers) }
    }

    /// The number of headers, repeats included.
    pub fn len(&self) -> usize {
        match self.repr {
            HeadersRepr::Packed { count, .. } => usize::from(count),
            HeadersRepr::Owned(list) => list.len(),
        }
    }

    /// True when the record has no headers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All headers as `(name, value)`, in record order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let (packed, owned) = match self.repr {
            HeadersRepr::Packed { count, bytes } => (Some(HeaderIter::new(count, bytes)), None),
            HeadersRepr::Owned(list) => (None, Some(list.iter().map(|h| (h.name.as_str(), h.value.as_slice())))),
        };
        packed.into_iter().flatten().chain(owned.into_iter().flatten())
    }

    /// The value of the last header called `name`: Kafka's "last one wins".
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().filter(|(n, _)| *n == name).map(|(_, v)| v).last()
    }

    /// Like [`get`](Self::get), as text; `None` when absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of the headers called `name`, in order.
    pub fn get_all(&self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Owned copies of all headers, for building an [`Output`].
    pub fn to_vec(&self) -> Vec<Header> {
        self.iter().map(|(n, v)| Header::new(n, v)).collect()
    }
}

/// One consumed Kafka record.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The topic the record was consumed from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Milliseconds since the Unix epoch, when the broker supplied one.
    pub timestamp: Option<i64>,
    /// The record key, when it has one.
    pub key: Option<&'a [u8]>,
    /// The record value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The headers, in record order.
    pub headers: Headers<'a>,
    /// 1 on first delivery, higher on every retry.
    pub attempt: u32,
}

impl<'a> Event<'a> {
    /// Where this record came from, for error messages: `topic/partition@offset`.
    pub fn coordinates(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    /// The value as UTF-8 text. A missing or non-UTF-8 value is a
    /// [`Failure::Reject`] naming the record.
    pub fn value_str(&self) -> Result<&'a str, Failure> {
        let bytes =
            self.value.ok_or_else(|| Failure::reject(format!("{}: record has no value", self.coordinates())))?;
        std::str::from_utf8(bytes)
            .map_err(|e| Failure::reject(format!("{}: value is not UTF-8: {e}", self.coordinates())))
    }

    /// The key as UTF-8 text, when present and valid.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key.and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value parsed as JSON into `T`. A missing value or malformed JSON
    /// is a [`Failure::Reject`] naming the record and the parse error, so `?`
    /// sends such records to the dead-letter queue.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        let bytes =
            self.value.ok_or_else(|| Failure::reject(format!("{}: record has no value", self.coordinates())))?;
        serde_json::from_slice(bytes)
            .map_err(|e| Failure::reject(format!("{}: value is not valid JSON: {e}", self.coordinates())))
    }

    /// A header's value; see [`Headers::get`].
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.get(name)
    }

    /// A header's value as text; see [`Headers::get_str`].
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.headers.get_str(name)
    }

    /// An output record that copies this event's key, value and headers,
    /// to the route's default topics. Enrichers change the value; routers set
    /// a topic.
    pub fn to_output(&self) -> Output {
        Output {
            topic: None,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self.headers.to_vec(),
        }
    }
}
