//! Unit-test a handler natively, with plain `cargo test` and no Wasm.
//!
//! Events go through the same batch encoding the host uses, so a test here
//! exercises what runs in production, minus the sandbox.
//!
//! ```
//! use sluice_sdk::prelude::*;
//! use sluice_sdk::testing::{Harness, TestEvent};
//! use sluice_sdk::serde_json::json;
//!
//! struct Tagger { tag: String }
//!
//! impl Handler for Tagger {
//!     fn init(config: &Config) -> Result<Self, String> {
//!         Ok(Tagger { tag: config.require_str("tag")?.to_owned() })
//!     }
//!     fn handle(&mut self, event: &Event<'_>) -> Result<Verdict, Failure> {
//!         Ok(Verdict::emit(event.to_output().header("tag", self.tag.as_str())))
//!     }
//! }
//!
//! let mut harness = Harness::<Tagger>::from_json(json!({"tag": "blue"}));
//! let outputs = harness.handle(&TestEvent::json(json!({"id": 1}))).unwrap();
//! let Verdict::Emit(records) = outputs else { panic!("expected emit") };
//! assert_eq!(records[0].headers[0].value, b"blue");
//!
//! assert!(Harness::<Tagger>::new(Config::default()).is_err());
//! ```
//!
//! Recorded input comes in through [`TestEvent::from_input_line`] and
//! [`TestEvent::from_input_file`], which read the `sluice test` input format,
//! and CSV reference tables through [`Harness::table_csv`], which reads them
//! as the host does.

mod data;
mod input;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

pub use data::{read_csv, shared_data};
pub use input::InputError;

use crate::abi::{self, EventFields, Outcome, RequestWriter};
use crate::config::Config;
use crate::event::Header;
use crate::host::{Level, Row};

/// An owned event to feed a [`Harness`]. Defaults: topic `test`, partition 0,
/// offset 0, attempt 1, no key, timestamp 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEvent {
    /// The topic the record was consumed from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Milliseconds since the Unix epoch, when the broker supplied one.
    pub timestamp: Option<i64>,
    /// The record key; `None` for a record without one.
    pub key: Option<Vec<u8>>,
    /// The record value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The headers in record order, repeated names kept.
    pub headers: Vec<Header>,
    /// 1 on first delivery, higher on every retry.
    pub attempt: u32,
}

impl Default for TestEvent {
    fn default() -> Self {
        TestEvent {
            topic: "test".into(),
            partition: 0,
            offset: 0,
            timestamp: Some(0),
            key: None,
            value: None,
            headers: Vec::new(),
            attempt: 1,
        }
    }
}

impl TestEvent {
    /// An event whose value is `value` serialised as JSON.
    pub fn json(value: Value) -> Self {
        TestEvent { value: Some(value.to_string().into_bytes()), ..TestEvent::default() }
    }

    /// An event whose value is raw bytes (or text).
    pub fn bytes(value: impl Into<Vec<u8>>) -> Self {
        TestEvent { value: Some(value.into()), ..TestEvent::default() }
    }

    /// An event with no value (a Kafka tombstone).
    pub fn tombstone() -> Self {
        TestEvent::default()
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the offset.
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = partition;
        self
    }

    /// Sets the delivery attempt (1 is the first).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Adds a header, keeping any of the same name.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    fn write_to(&self, writer: &mut RequestWriter) {
        let fields = EventFields {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            attempt: self.attempt,
        };
        writer.push(&fields, self.headers.iter().map(|h| (h.name.as_str(), h.value.as_slice())));
    }
}

/// A log line a handler wrote through [`host::log`](crate::host::log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its severity.
    pub level: Level,
    /// The message text.
    pub message: String,
    /// The structured fields, in the order given.
    pub fields: Vec<(String, String)>,
}

/// Runs a handler natively, standing in for the host.
///
/// Host state (logs, counters, tables, the clock) is per thread, and each
/// `cargo test` test runs on its own thread, so tests do not see each other.
#[derive(Debug)]
pub struct Harness<H> {
    handler: H,
    writer: RequestWriter,
}

impl<H: crate::Handler> Harness<H> {
    /// Runs the handler's `init` with `config`, as the host would.
    pub fn new(config: Config) -> Result<Self, String> {
        native::reset();
        let config = Config::from_entries(config.to_entries())?;
        let handler = H::init(&config)?;
        Ok(Harness { handler, writer: RequestWriter::new() })
    }

    /// Runs the handler's `init` with a config written as a JSON object, as
    /// [`Config::from_json`] reads it: the usual start of a test.
    ///
    /// # Panics
    /// When `init` refuses the config, with its message. Test a refusal
    /// through [`new`](Self::new).
    pub fn from_json(config: Value) -> Self {
        match Self::new(Config::from_json(config)) {
            Ok(harness) => harness,
            Err(e) => panic!("config refused: {e}"),
        }
    }

    /// Handles one event.
    pub fn handle(&mut self, event: &TestEvent) -> Outcome {
        self.handle_all(std::slice::from_ref(event)).remove(0)
    }

    /// Handles events as one batch, in order.
    pub fn handle_all(&mut self, events: &[TestEvent]) -> Vec<Outcome> {
        self.writer.clear();
        events.iter().for_each(|e| e.write_to(&mut self.writer));
        let handler = &mut self.handler;
        let response = abi::handle_request(self.writer.as_bytes(), |event| handler.handle(event));
        match abi::decode_response(&response, events.len()) {
            Ok(outcomes) => outcomes,
            Err(e) => panic!("sluice-sdk: a response the SDK wrote does not decode: {e}"),
        }
    }

    /// Serves a lookup table: each row is a JSON object keyed by its
    /// `key_field`. Rows without that field are left out; a later row with
    /// the same key replaces the earlier one.
    pub fn table(&mut self, name: &str, key_field: &str, rows: impl IntoIterator<Item = Value>) -> &mut Self {
        let mut table = HashMap::new();
        for row in rows {
            if let Value::Object(map) = row {
                let key = match map.get(key_field) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => continue,
                };
                table.insert(key, map);
            }
        }
        self.serve(name, table)
    }

    /// Serves a lookup table from a CSV file with a header row, as the host
    /// serves a route's CSV table: each row a JSON object of string fields,
    /// keyed by its `key_column` cell, a later row with the same key
    /// replacing the earlier one. The error names the table and the file, and
    /// the line of a malformed row or the columns when `key_column` is not
    /// one of them.
    pub fn table_csv(&mut self, name: &str, path: impl AsRef<Path>, key_column: &str) -> Result<&mut Self, String> {
        let table = data::read_keyed_csv(path.as_ref(), key_column).map_err(|e| format!("table `{name}`: {e}"))?;
        Ok(self.serve(name, table))
    }

    fn serve(&mut self, name: &str, table: HashMap<String, Row>) -> &mut Self {
        native::with(|host| host.tables.insert(name.to_owned(), table));
        self
    }

    /// Fixes the clock `host::now_ms` reads.
    pub fn set_now_ms(&mut self, now: i64) -> &mut Self {
        native::with(|host| host.now = Some(now));
        self
    }

    /// Everything logged so far.
    pub fn logs(&self) -> Vec<LogLine> {
        native::with(|host| host.logs.clone())
    }

    /// A counter's value so far.
    pub fn counter(&self, name: &str) -> u64 {
        native::with(|host| host.counters.get(name).copied().unwrap_or(0))
    }

    /// The handler itself, to inspect or change its state.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }
}

/// The stand-in for the host's imports in native builds.
pub(crate) mod native {
    use super::*;
    use std::cell::RefCell;

    #[derive(Debug, Default)]
    pub(crate) struct NativeHost {
        pub(crate) logs: Vec<LogLine>,
        pub(crate) counters: BTreeMap<String, u64>,
        pub(crate) tables: HashMap<String, HashMap<String, Row>>,
        pub(crate) now: Option<i64>,
    }

    impl NativeHost {
        pub(crate) fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
            let fields = fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            self.logs.push(LogLine { level, message: message.to_owned(), fields });
        }

        pub(crate) fn counter_add(&mut self, name: &str, delta: u64) {
            *self.counters.entry(name.to_owned()).or_default() += delta;
        }

        pub(crate) fn now_ms(&self) -> i64 {
            self.now.unwrap_or_else(|| {
                let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            })
        }

        pub(crate) fn lookup(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
            let rows = self
                .tables
                .get(table)
                .ok_or_else(|| format!("lookup table `{table}` is not declared (in tests: Harness::table)"))?;
            Ok(rows.get(key).map(|row| Value::Object(row.clone()).to_string().into_bytes()))
        }
    }

    thread_local! {
        static HOST: RefCell<NativeHost> = RefCell::new(NativeHost::default());
    }

    pub(crate) fn with<R>(f: impl FnOnce(&mut NativeHost) -> R) -> R {
        HOST.with_borrow_mut(f)
    }

    pub(crate) fn reset() {
        with(|host| *host = NativeHost::default());
    }
}
