//! What a plugin answers: a verdict when it decided, a failure when it could not.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::event::Header;

/// What happens to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Produce nothing. The reason is logged and counted by the host.
    Drop(Option<String>),
    /// Forward the event unchanged.
    Pass,
    /// Produce these records instead of the event (zero or more).
    Emit(Vec<Output>),
}

impl Verdict {
    /// Drop with a reason.
    pub fn drop(reason: impl Into<String>) -> Self {
        Verdict::Drop(Some(reason.into()))
    }

    /// Emit a single record.
    pub fn emit(output: Output) -> Self {
        Verdict::Emit(vec![output])
    }
}

/// A record for the host to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// `None` sends it to each of the route's default output topics.
    pub topic: Option<String>,
    /// The record key; `None` for a record without one.
    pub key: Option<Vec<u8>>,
    /// The record value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The headers in record order, repeated names kept.
    pub headers: Vec<Header>,
}

impl Output {
    /// An empty record for the route's default topics.
    pub fn new() -> Self {
        Output::default()
    }

    /// Sends the record to `topic`, which the route must allow.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Sets the record key.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the record value to raw bytes (or text).
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Serialises `value` as the record's JSON value.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, Failure> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| Failure::reject(format!("cannot encode output as JSON: {e}")))?;
        self.value = Some(bytes);
        Ok(self)
    }

    /// Sets a header, replacing any headers of the same name.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        let name = name.into();
        self.headers.retain(|h| h.name != name);
        self.headers.push(Header { name, value: value.into() });
        self
    }

    /// Adds a header, keeping any of the same name.
    pub fn add_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }
}

/// Why a plugin could not decide. A panic or trap is not a `Failure`: the
/// host treats it as a fault of the plugin, not a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Transient: the host retries with backoff, then moves on to retry topics
    /// or the dead-letter queue.
    Retry {
        /// Why, for logs and the DLQ headers.
        message: String,
        /// A hint for the delay before the next attempt, in milliseconds.
        delay_ms: Option<u64>,
    },
    /// Permanent: the event goes to the dead-letter queue at once.
    Reject(String),
}

impl Failure {
    /// A retry after the route's own backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        Failure::Retry { message: message.into(), delay_ms: None }
    }

    /// A retry with a hint for the delay; the route's backoff bounds still apply.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX - 1);
        Failure::Retry { message: message.into(), delay_ms: Some(delay_ms) }
    }

    /// A rejection to the dead-letter queue.
    pub fn reject(message: impl Into<String>) -> Self {
        Failure::Reject(message.into())
    }

    /// Why the plugin could not decide, retry or reject alike.
    pub fn message(&self) -> &str {
        match self {
            Failure::Retry { message, .. } | Failure::Reject(message) => message,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retry { message, .. } => write!(f, "retry: {message}"),
            Failure::Reject(message) => write!(f, "reject: {message}"),
        }
    }
}

impl std::error::Error for Failure {}
