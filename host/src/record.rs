//! The host's own copy of a consumed record, independent of any client
//! library, as it travels through a plugin chain.

use sluice_sdk::abi::{EventFields, RequestWriter};

/// A record as plugins see it. Headers keep order and repeats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// 1 on first delivery.
    pub attempt: u32,
}

impl Record {
    /// `topic/partition@offset`, for logs and errors.
    pub fn coordinates(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    /// The last header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// Replaces every header called `name` with one holding `value`.
    pub fn set_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_owned(), value.into()));
    }

    pub(crate) fn write_to(&self, writer: &mut RequestWriter) {
        let fields = EventFields {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            attempt: self.attempt,
        };
        writer.push(&fields, self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    }

    /// Bytes this record takes: key, value and headers.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }
}
