//! The packed batch encoding of `handle-batch`, shared by the host and the SDK.
//!
//! Lowering a `list<event>` through the component model costs about 500 ns per
//! event; one byte buffer costs one copy. The layout is specified in
//! `wit/plugin.wit` next to `handle-batch`; this module is its only
//! implementation, used by both sides so they cannot drift apart.

use std::fmt;

use crate::event::{Event, Header, Headers};
use crate::verdict::{Failure, Output, Verdict};

/// The first four bytes of every `handle-batch` request.
pub const REQUEST_MAGIC: &[u8; 4] = b"SLB1";
/// The first four bytes of every `handle-batch` response.
pub const RESPONSE_MAGIC: &[u8; 4] = b"SLR1";
const NONE32: u32 = u32::MAX;
const NO_TIMESTAMP: i64 = i64::MIN;
const NO_DELAY: u64 = u64::MAX;

const TAG_PASS: u8 = 0;
const TAG_DROP: u8 = 1;
const TAG_EMIT: u8 = 2;
const TAG_RETRY: u8 = 3;
const TAG_REJECT: u8 = 4;

/// What a plugin returned for one event.
pub type Outcome = Result<Verdict, Failure>;

/// A buffer that does not follow the layout. On the host this means the
/// plugin misbehaved, and it is handled like a trap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiError {
    /// The byte offset where the layout was broken.
    pub at: usize,
    /// What was expected there and what was found.
    pub what: String,
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed batch buffer at byte {}: {}", self.at, self.what)
    }
}

impl std::error::Error for AbiError {}

/// Builds a `handle-batch` request. Reuse one writer across batches to keep
/// its allocation.
#[derive(Debug, Default)]
pub struct RequestWriter {
    buf: Vec<u8>,
    count: u32,
}

impl RequestWriter {
    /// An empty batch.
    pub fn new() -> Self {
        let mut writer = RequestWriter::default();
        writer.clear();
        writer
    }

    /// Starts a new, empty batch.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(REQUEST_MAGIC);
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.count = 0;
    }

    /// The number of events pushed since the last [`clear`](Self::clear).
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no event has been pushed since the last [`clear`](Self::clear).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends an event. Strings and buffers longer than the layout allows
    /// (65 535 bytes for a topic or header name) are the caller's to refuse
    /// beforehand; here they are truncated to keep the buffer well-formed.
    pub fn push<'h>(&mut self, event: &EventFields<'_>, headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) {
        let b = &mut self.buf;
        b.extend_from_slice(&event.partition.to_le_bytes());
        b.extend_from_slice(&event.offset.to_le_bytes());
        b.extend_from_slice(&event.timestamp.unwrap_or(NO_TIMESTAMP).to_le_bytes());
        b.extend_from_slice(&event.attempt.to_le_bytes());
        put_str16(b, event.topic);
        put_opt_bytes(b, event.key);
        put_opt_bytes(b, event.value);
        let count_at = b.len();
        b.extend_from_slice(&0u16.to_le_bytes());
        let mut count: u16 = 0;
        for (name, value) in headers {
            if count == u16::MAX {
                break;
            }
            put_str16(b, name);
            put_bytes(b, value);
            count += 1;
        }
        b[count_at..count_at + 2].copy_from_slice(&count.to_le_bytes());
        self.count += 1;
        self.buf[4..8].copy_from_slice(&self.count.to_le_bytes());
    }

    /// The request as built so far, ready to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// The scalar and buffer fields of an event, for [`RequestWriter::push`].
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
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
    /// 1 on first delivery, higher on every retry.
    pub attempt: u32,
}

/// Reads a request's events without copying them.
#[derive(Debug)]
pub struct RequestReader<'a> {
    cur: Cursor<'a>,
    remaining: u32,
}

impl<'a> RequestReader<'a> {
    /// Checks the request header; the events are read by iterating.
    pub fn new(buf: &'a [u8]) -> Result<Self, AbiError> {
        let mut cur = Cursor { buf, pos: 0 };
        cur.magic(REQUEST_MAGIC)?;
        let remaining = cur.u32()?;
        Ok(RequestReader { cur, remaining })
    }

    /// How many events are left to read.
    pub fn remaining(&self) -> usize {
        self.remaining as usize
    }

    fn read_event(&mut self) -> Result<Event<'a>, AbiError> {
        let c = &mut self.cur;
        let partition = c.i32()?;
        let offset = c.i64()?;
        let timestamp = Some(c.i64()?).filter(|t| *t != NO_TIMESTAMP);
        let attempt = c.u32()?;
        let topic = c.str16()?;
        let key = c.opt_bytes()?;
        let value = c.opt_bytes()?;
        let header_count = c.u16()?;
        let start = c.pos;
        for _ in 0..header_count {
            c.str16()?;
            c.bytes()?;
        }
        let headers = Headers::packed(header_count, &c.buf[start..c.pos]);
        Ok(Event { topic, partition, offset, timestamp, key, value, headers, attempt })
    }
}

impl<'a> Iterator for RequestReader<'a> {
    type Item = Result<Event<'a>, AbiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let event = self.read_event();
        if event.is_err() {
            self.remaining = 0;
        }
        Some(event)
    }
}

/// Iterates headers still in packed form. The request was validated when its
/// event was read, so a decoding error here cannot happen; it ends iteration.
#[derive(Debug)]
pub(crate) struct HeaderIter<'a> {
    cur: Cursor<'a>,
    remaining: u16,
}

impl<'a> HeaderIter<'a> {
    pub(crate) fn new(count: u16, bytes: &'a [u8]) -> Self {
        HeaderIter { cur: Cursor { buf: bytes, pos: 0 }, remaining: count }
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let name = self.cur.str16().ok()?;
        let value = self.cur.bytes().ok()?;
        Some((name, value))
    }
}

/// Builds a `handle-batch` response.
#[derive(Debug, Default)]
pub struct ResponseWriter {
    buf: Vec<u8>,
    count: u32,
}

impl ResponseWriter {
    /// An empty response with room for about `events` outcomes.
    pub fn with_capacity(events: usize) -> Self {
        let mut buf = Vec::with_capacity(8 + events);
        buf.extend_from_slice(RESPONSE_MAGIC);
        buf.extend_from_slice(&0u32.to_le_bytes());
        ResponseWriter { buf, count: 0 }
    }

    /// Appends the outcome of the next event, in request order.
    pub fn push(&mut self, outcome: &Outcome) {
        let b = &mut self.buf;
        match outcome {
            Ok(Verdict::Pass) => b.push(TAG_PASS),
            Ok(Verdict::Drop(reason)) => {
                b.push(TAG_DROP);
                put_opt_str32(b, reason.as_deref());
            }
            Ok(Verdict::Emit(outputs)) => {
                b.push(TAG_EMIT);
                b.extend_from_slice(&len32(outputs.len()).to_le_bytes());
                for out in outputs {
                    put_opt_str32(b, out.topic.as_deref());
                    put_opt_bytes(b, out.key.as_deref());
                    put_opt_bytes(b, out.value.as_deref());
                    let n = out.headers.len().min(usize::from(u16::MAX));
                    b.extend_from_slice(&(n as u16).to_le_bytes());
                    for h in &out.headers[..n] {
                        put_str16(b, &h.name);
                        put_bytes(b, &h.value);
                    }
                }
            }
            Err(Failure::Retry { message, delay_ms }) => {
                b.push(TAG_RETRY);
                b.extend_from_slice(&delay_ms.unwrap_or(NO_DELAY).to_le_bytes());
                put_opt_str32(b, Some(message));
            }
            Err(Failure::Reject(message)) => {
                b.push(TAG_REJECT);
                put_opt_str32(b, Some(message));
            }
        }
        self.count += 1;
        self.buf[4..8].copy_from_slice(&self.count.to_le_bytes());
    }

    /// The finished response.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Decodes a whole response into owned outcomes, checking that it holds
/// exactly `expected` of them and nothing after.
pub fn decode_response(buf: &[u8], expected: usize) -> Result<Vec<Outcome>, AbiError> {
    let mut c = Cursor { buf, pos: 0 };
    c.magic(RESPONSE_MAGIC)?;
    let count = c.u32()? as usize;
    if count != expected {
        return Err(c.error(format!("{count} outcomes for a batch of {expected} events")));
    }
    let mut outcomes = Vec::with_capacity(count);
    for _ in 0..count {
        outcomes.push(read_outcome(&mut c)?);
    }
    if c.pos != buf.len() {
        return Err(c.error(format!("{} unexpected trailing bytes", buf.len() - c.pos)));
    }
    Ok(outcomes)
}

fn read_outcome(c: &mut Cursor<'_>) -> Result<Outcome, AbiError> {
    let tag = c.u8()?;
    Ok(match tag {
        TAG_PASS => Ok(Verdict::Pass),
        TAG_DROP => Ok(Verdict::Drop(c.opt_str32()?.map(str::to_owned))),
        TAG_EMIT => {
            let n = c.u32()?;
            // Each record takes at least 14 bytes, which bounds the allocation
            // by the buffer a plugin actually returned.
            let mut outputs = Vec::with_capacity((n as usize).min(c.left() / 14));
            for _ in 0..n {
                let topic = c.opt_str32()?.map(str::to_owned);
                let key = c.opt_bytes()?.map(<[u8]>::to_vec);
                let value = c.opt_bytes()?.map(<[u8]>::to_vec);
                let hn = c.u16()?;
                let mut headers = Vec::with_capacity(usize::from(hn).min(c.left() / 6));
                for _ in 0..hn {
                    let name = c.str16()?.to_owned();
                    let value = c.bytes()?.to_vec();
                    headers.push(Header { name, value });
                }
                outputs.push(Output { topic, key, value, headers });
            }
            Ok(Verdict::Emit(outputs))
        }
        TAG_RETRY => {
            let delay = c.u64()?;
            let message = c.str32()?.to_owned();
            Err(Failure::Retry { message, delay_ms: Some(delay).filter(|d| *d != NO_DELAY) })
        }
        TAG_REJECT => Err(Failure::Reject(c.str32()?.to_owned())),
        other => return Err(c.error(format!("unknown outcome tag {other}"))),
    })
}

/// Runs `handle` over every event of a request and encodes the answers: the
/// body of the plugin's `handle-batch` export.
///
/// # Panics
/// On a malformed request, which only a broken host can send; the panic
/// becomes a trap that the host reports.
pub fn handle_request(request: &[u8], mut handle: impl FnMut(&Event<'_>) -> Outcome) -> Vec<u8> {
    let reader = match RequestReader::new(request) {
        Ok(reader) => reader,
        Err(e) => panic!("sluice-sdk: host sent a bad request: {e}"),
    };
    let mut response = ResponseWriter::with_capacity(reader.remaining());
    for event in reader {
        match event {
            Ok(event) => response.push(&handle(&event)),
            Err(e) => panic!("sluice-sdk: host sent a bad request: {e}"),
        }
    }
    response.finish()
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(NONE32 - 1)
}

fn put_str16(b: &mut Vec<u8>, s: &str) {
    let mut n = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    b.extend_from_slice(&(n as u16).to_le_bytes());
    b.extend_from_slice(&s.as_bytes()[..n]);
}

fn put_bytes(b: &mut Vec<u8>, v: &[u8]) {
    let n = v.len().min((NONE32 - 1) as usize);
    b.extend_from_slice(&(n as u32).to_le_bytes());
    b.extend_from_slice(&v[..n]);
}

fn put_opt_bytes(b: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(v) => put_bytes(b, v),
        None => b.extend_from_slice(&NONE32.to_le_bytes()),
    }
}

fn put_opt_str32(b: &mut Vec<u8>, s: Option<&str>) {
    put_opt_bytes(b, s.map(str::as_bytes));
}

#[derive(Debug, Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, what: String) -> AbiError {
        AbiError { at: self.pos, what }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AbiError> {
        if self.left() < n {
            return Err(self.error(format!("needs {n} more bytes, {} left", self.left())));
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AbiError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn magic(&mut self, magic: &[u8; 4]) -> Result<(), AbiError> {
        let found = self.array::<4>()?;
        if &found != magic {
            self.pos = 0;
            return Err(self.error(format!(
                "expected header {:?}, found {:?}",
                String::from_utf8_lossy(magic),
                String::from_utf8_lossy(&found)
            )));
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, AbiError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, AbiError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, AbiError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, AbiError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, AbiError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, AbiError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn utf8(&self, bytes: &'a [u8]) -> Result<&'a str, AbiError> {
        std::str::from_utf8(bytes).map_err(|e| self.error(format!("text is not UTF-8: {e}")))
    }

    fn str16(&mut self) -> Result<&'a str, AbiError> {
        let n = self.u16()?;
        let bytes = self.take(usize::from(n))?;
        self.utf8(bytes)
    }

    fn bytes(&mut self) -> Result<&'a [u8], AbiError> {
        let n = self.u32()?;
        if n == NONE32 {
            return Err(self.error("a required buffer is marked absent".into()));
        }
        self.take(n as usize)
    }

    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, AbiError> {
        let n = self.u32()?;
        if n == NONE32 {
            return Ok(None);
        }
        self.take(n as usize).map(Some)
    }

    fn str32(&mut self) -> Result<&'a str, AbiError> {
        let bytes = self.bytes()?;
        self.utf8(bytes)
    }

    fn opt_str32(&mut self) -> Result<Option<&'a str>, AbiError> {
        match self.opt_bytes()? {
            Some(bytes) => self.utf8(bytes).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(offset: i64, value: Option<&'a [u8]>) -> EventFields<'a> {
        EventFields {
            topic: "orders",
            partition: 3,
            offset,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k1"),
            value,
            attempt: 2,
        }
    }

    #[test]
    fn request_round_trips_every_field() {
        let mut w = RequestWriter::new();
        w.push(&fields(7, Some(b"{\"a\":1}")), [("h", &b"1"[..]), ("h", &b"2"[..]), ("trace", &b"x"[..])]);
        w.push(&EventFields { timestamp: None, key: None, ..fields(8, None) }, []);
        let events: Vec<_> = RequestReader::new(w.as_bytes()).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!((e.topic, e.partition, e.offset, e.attempt), ("orders", 3, 7, 2));
        assert_eq!(e.timestamp, Some(1_700_000_000_000));
        assert_eq!(e.value, Some(&b"{\"a\":1}"[..]));
        assert_eq!(e.header("h"), Some(&b"2"[..]), "last header of a name wins");
        assert_eq!(e.headers.get_all("h").count(), 2);
        assert_eq!(e.headers.len(), 3);
        assert_eq!((events[1].timestamp, events[1].key, events[1].value), (None, None, None));
        assert!(events[1].headers.is_empty());
    }

    #[test]
    fn empty_value_is_distinct_from_no_value() {
        let mut w = RequestWriter::new();
        w.push(&fields(1, Some(b"")), []);
        let e = RequestReader::new(w.as_bytes()).unwrap().next().unwrap().unwrap();
        assert_eq!(e.value, Some(&b""[..]));
    }

    #[test]
    fn response_round_trips_every_outcome() {
        let outcomes: Vec<Outcome> = vec![
            Ok(Verdict::Pass),
            Ok(Verdict::Drop(None)),
            Ok(Verdict::drop("boring")),
            Ok(Verdict::Emit(vec![])),
            Ok(Verdict::Emit(vec![
                Output::new().topic("a").key("k").value("v").header("x", "1").add_header("x", "2"),
                Output::new(),
            ])),
            Err(Failure::retry("later")),
            Err(Failure::retry_after("soon", std::time::Duration::from_millis(250))),
            Err(Failure::reject("bad")),
        ];
        let mut w = ResponseWriter::with_capacity(outcomes.len());
        outcomes.iter().for_each(|o| w.push(o));
        let decoded = decode_response(&w.finish(), outcomes.len()).unwrap();
        assert_eq!(decoded, outcomes);
    }

    #[test]
    fn response_with_wrong_count_is_refused() {
        let mut w = ResponseWriter::with_capacity(1);
        w.push(&Ok(Verdict::Pass));
        let err = decode_response(&w.finish(), 2).unwrap_err();
        assert!(err.what.contains("1 outcomes for a batch of 2"), "{err}");
    }

    #[test]
    fn truncated_or_trailing_response_is_refused() {
        let mut w = ResponseWriter::with_capacity(1);
        w.push(&Err(Failure::reject("nope")));
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            assert!(decode_response(&bytes[..cut], 1).is_err(), "cut at {cut} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_response(&longer, 1).unwrap_err().what.contains("trailing"));
    }

    #[test]
    fn huge_emit_count_does_not_allocate_before_failing() {
        let mut bytes = RESPONSE_MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.push(TAG_EMIT);
        bytes.extend_from_slice(&(u32::MAX - 1).to_le_bytes());
        assert!(decode_response(&bytes, 1).is_err());
    }

    #[test]
    fn unknown_tag_and_bad_utf8_are_refused() {
        let mut bytes = RESPONSE_MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.push(9);
        assert!(decode_response(&bytes, 1).unwrap_err().what.contains("tag 9"));

        let mut bytes = RESPONSE_MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.push(TAG_REJECT);
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&[0xff, 0xfe]);
        assert!(decode_response(&bytes, 1).unwrap_err().what.contains("UTF-8"));
    }

    #[test]
    fn handle_request_answers_in_order() {
        let mut w = RequestWriter::new();
        for i in 0..5 {
            w.push(&fields(i, Some(b"x")), []);
        }
        let response = handle_request(w.as_bytes(), |e| {
            if e.offset % 2 == 0 { Ok(Verdict::Pass) } else { Err(Failure::reject(format!("odd {}", e.offset))) }
        });
        let outcomes = decode_response(&response, 5).unwrap();
        assert_eq!(outcomes[1], Err(Failure::reject("odd 1")));
        assert_eq!(outcomes[4], Ok(Verdict::Pass));
    }
}
