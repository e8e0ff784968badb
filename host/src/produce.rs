//! `sluice produce`: loads a JSONL or CSV file into a topic.
//!
//! The file is read twice. The first pass validates every line and produces
//! nothing: a malformed line, or a record without its key field, refuses the
//! whole file with the lines named ([`ProduceError::InvalidInput`]), so a
//! topic never holds half a file because of a typo on line 9,000. The second
//! pass produces, through the pinned producer settings of
//! [`crate::kafka::producer_config`] (idempotent, `acks=all`), and awaits
//! every delivery. A delivery failure stops sending and is reported with the
//! record's line ([`ProduceError::Delivery`]); nothing is skipped silently.

pub(crate) mod csv_lines;
mod input;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

pub use input::{BadLine, Format};

use crate::kafka::producer_config;

/// At most this many bad lines or failed deliveries are listed in an error.
const MAX_LISTED: usize = 20;
/// Records handed to librdkafka and not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long a record may wait for its delivery, unless the operator sets
/// `message.timeout.ms`: long enough for a leader election, short enough that
/// an unreachable broker is reported while someone is still watching.
const DEFAULT_MESSAGE_TIMEOUT_MS: &str = "30000";
const PROGRESS_TEMPLATE: &str = "{bar:40} {human_pos}/{human_len} records  {per_sec}  eta {eta}";
/// How long to wait for the broker to answer the first metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What to load, and where.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Extra librdkafka producer properties; the delivery guarantees in
    /// [`crate::kafka::PINNED_PRODUCER`] win over them.
    pub properties: BTreeMap<String, String>,
    pub topic: String,
    /// The top-level field (JSONL) or column (CSV) the record key comes from;
    /// `None` produces records without a key.
    pub key_field: Option<String>,
    /// A `.jsonl`/`.ndjson` or `.csv` file.
    pub file: PathBuf,
    /// Draw a progress bar on stderr. Ignored when stderr is not a terminal.
    pub show_progress: bool,
}

/// What was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceReport {
    /// Records delivered (acknowledged by every in-sync replica).
    pub records: u64,
    /// Bytes of their keys, values and headers.
    pub bytes: u64,
    /// From the start of validation to the last acknowledgement.
    pub elapsed: Duration,
}

impl fmt::Display for ProduceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 { self.records as f64 / seconds } else { 0.0 };
        write!(
            f,
            "produced {} records ({}) in {seconds:.2}s, {rate:.0} records/s",
            self.records,
            bytesize::ByteSize::b(self.bytes)
        )
    }
}

/// One record for [`produce_events`]. A `(key, value, headers)` tuple
/// converts into it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outgoing {
    pub key: Option<String>,
    pub value: Vec<u8>,
    /// In order; repeats allowed.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Outgoing {
    fn size(&self) -> u64 {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        (self.key.as_ref().map_or(0, String::len) + self.value.len() + headers) as u64
    }
}

impl From<(String, Vec<u8>, Vec<(String, Vec<u8>)>)> for Outgoing {
    fn from((key, value, headers): (String, Vec<u8>, Vec<(String, Vec<u8>)>)) -> Self {
        Outgoing { key: Some(key), value, headers }
    }
}

impl From<(Option<String>, Vec<u8>, Vec<(String, Vec<u8>)>)> for Outgoing {
    fn from((key, value, headers): (Option<String>, Vec<u8>, Vec<(String, Vec<u8>)>)) -> Self {
        Outgoing { key, value, headers }
    }
}

/// Why producing failed, where a caller may want to tell the cases apart
/// (e.g. by exit code). Other failures (no such file, no broker) are plain
/// `anyhow` errors.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// Some lines cannot become records; nothing was produced.
    #[error("{}: {count} bad line{}, nothing was produced{}", file.display(), plural(*count), list(lines))]
    InvalidInput {
        file: PathBuf,
        /// The first bad lines, at most 20.
        lines: Vec<BadLine>,
        /// How many lines are bad in all.
        count: u64,
    },
    /// Some records were not acknowledged; producing stopped at the first
    /// failure, so records after it were not sent.
    #[error("{count} record{} not delivered ({delivered} delivered before producing stopped){}", plural(*count), list(failures))]
    Delivery {
        /// Where each failed record came from ("line 12", "record 3") and
        /// why, at most 20.
        failures: Vec<Failure>,
        count: u64,
        delivered: u64,
    },
}

/// One record that was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// "line 12" for a file, "record 12" (1-based) for [`produce_events`].
    pub at: String,
    pub error: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.error)
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(|item| format!("\n  {item}")).collect()
}

/// Validates `opts.file`, then produces it to `opts.topic`.
pub async fn run(opts: &ProduceOptions) -> anyhow::Result<ProduceReport> {
    let started = Instant::now();
    let format = Format::of(&opts.file)?;
    let key_field = opts.key_field.clone();

    // First pass: every line, nothing produced. File reading blocks, so it
    // runs off the async threads.
    let (file, key) = (opts.file.clone(), key_field.clone());
    let total = tokio::task::spawn_blocking(move || validate(&file, format, key.as_deref()))
        .await
        .context("the validation task failed")??;

    let producer = connect(&opts.bootstrap, &opts.properties, &opts.topic).await?;
    let progress = progress_bar(opts.show_progress, total);
    let path = opts.file.display().to_string();
    let records = input::open(&opts.file, format, key_field.as_deref())?.map(|read| match read {
        Ok(line) => Ok((format!("line {}", line.line), Outgoing { key: line.key, value: line.value, headers: vec![] })),
        Err(input::ReadError::Line(bad)) => Err(anyhow::anyhow!("{path} changed while it was being produced: {bad}")),
        Err(input::ReadError::File(e)) => Err(e),
    });
    let outcome = deliver(&producer, &opts.topic, records, &progress).await;
    progress.finish_and_clear();
    let (records, bytes) = outcome?;
    Ok(ProduceReport { records, bytes, elapsed: started.elapsed() })
}

/// Produces `events` to `topic` in order and awaits every delivery, with the
/// same producer settings as [`run`]. Failures name the record by its 1-based
/// position in `events`.
pub async fn produce_events<I>(
    bootstrap: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
    events: I,
) -> anyhow::Result<ProduceReport>
where
    I: IntoIterator,
    I::Item: Into<Outgoing>,
{
    let started = Instant::now();
    let producer = connect(bootstrap, properties, topic).await?;
    let records = events.into_iter().zip(1u64..).map(|(event, n)| Ok((format!("record {n}"), event.into())));
    let (records, bytes) = deliver(&producer, topic, records, &ProgressBar::hidden()).await?;
    Ok(ProduceReport { records, bytes, elapsed: started.elapsed() })
}

/// Reads the whole file; returns how many records it holds, or every bad line.
fn validate(path: &Path, format: Format, key_field: Option<&str>) -> anyhow::Result<u64> {
    let mut records = 0;
    let mut bad = Vec::new();
    let mut count = 0;
    for read in input::open(path, format, key_field)? {
        match read {
            Ok(_) => records += 1,
            Err(input::ReadError::Line(line)) => {
                count += 1;
                if bad.len() < MAX_LISTED {
                    bad.push(line);
                }
            }
            Err(input::ReadError::File(e)) => return Err(e),
        }
    }
    if count > 0 {
        return Err(ProduceError::InvalidInput { file: path.to_path_buf(), lines: bad, count }.into());
    }
    Ok(records)
}

/// A producer with the pinned settings, once the broker has answered for
/// `topic`.
async fn connect(
    bootstrap: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
) -> anyhow::Result<FutureProducer> {
    let mut properties = properties.clone();
    if !properties.contains_key("message.timeout.ms") && !properties.contains_key("delivery.timeout.ms") {
        properties.insert("message.timeout.ms".to_owned(), DEFAULT_MESSAGE_TIMEOUT_MS.to_owned());
    }
    let producer: FutureProducer =
        producer_config(bootstrap, &properties).create().context("cannot create the Kafka producer")?;

    // Ask for the topic's metadata first: an unreachable broker or a missing
    // topic is then one clear error instead of a timeout per record.
    let probe = producer.clone();
    let name = topic.to_owned();
    let metadata = tokio::task::spawn_blocking(move || probe.client().fetch_metadata(Some(&name), METADATA_TIMEOUT))
        .await
        .context("the metadata task failed")?
        .with_context(|| format!("the broker at {bootstrap} did not answer"))?;
    if let Some(error) = metadata.topics().iter().find(|t| t.name() == topic).and_then(|t| t.error()) {
        anyhow::bail!("cannot produce to topic {topic}: {}", RDKafkaErrorCode::from(error));
    }
    Ok(producer)
}

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    // The template is a constant that is known to parse; the fallback only
    // keeps a plain bar if indicatif ever disagrees.
    let style = ProgressStyle::with_template(PROGRESS_TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// A record handed to librdkafka, waiting for its acknowledgement.
struct Pending {
    at: String,
    size: u64,
    delivery: DeliveryFuture,
}

#[derive(Default)]
struct Tally {
    delivered: u64,
    bytes: u64,
    failures: Vec<Failure>,
    failed: u64,
}

impl Tally {
    fn fail(&mut self, at: String, error: impl fmt::Display) {
        self.failed += 1;
        if self.failures.len() < MAX_LISTED {
            self.failures.push(Failure { at, error: error.to_string() });
        }
    }
}

/// Sends `records` in order, keeping up to [`MAX_IN_FLIGHT`] unacknowledged,
/// and stops sending at the first failure. Returns (records, bytes)
/// delivered.
async fn deliver<I>(
    producer: &FutureProducer,
    topic: &str,
    records: I,
    progress: &ProgressBar,
) -> anyhow::Result<(u64, u64)>
where
    I: Iterator<Item = anyhow::Result<(String, Outgoing)>>,
{
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut tally = Tally::default();
    for item in records {
        let (at, record) = match item {
            Ok(item) => item,
            Err(e) => {
                while settle_oldest(&mut pending, &mut tally, progress).await {}
                return Err(e.context(format!("{} records were delivered before this", tally.delivered)));
            }
        };
        let headers = record.headers.iter().fold(OwnedHeaders::new(), |headers, (name, value)| {
            headers.insert(Header { key: name, value: Some(value.as_slice()) })
        });
        let mut future_record = FutureRecord::<str, [u8]>::to(topic).payload(&record.value).headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_str());
        }
        loop {
            match producer.send_result(future_record) {
                Ok(delivery) => {
                    pending.push_back(Pending { at, size: record.size(), delivery });
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // librdkafka's queue is full: wait for the oldest record,
                    // which frees a place, then try again.
                    future_record = back;
                    if !settle_oldest(&mut pending, &mut tally, progress).await {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Err((error, _)) => {
                    tally.fail(at, error);
                    break;
                }
            }
        }
        while pending.len() >= MAX_IN_FLIGHT {
            settle_oldest(&mut pending, &mut tally, progress).await;
        }
        if tally.failed > 0 {
            break;
        }
    }
    while settle_oldest(&mut pending, &mut tally, progress).await {}
    if tally.failed > 0 {
        return Err(ProduceError::Delivery {
            failures: tally.failures,
            count: tally.failed,
            delivered: tally.delivered,
        }
        .into());
    }
    Ok((tally.delivered, tally.bytes))
}

/// Awaits the oldest pending delivery; false when none is pending.
async fn settle_oldest(pending: &mut VecDeque<Pending>, tally: &mut Tally, progress: &ProgressBar) -> bool {
    let Some(Pending { at, size, delivery }) = pending.pop_front() else {
        return false;
    };
    match delivery.await {
        Ok(Ok(_)) => {
            tally.delivered += 1;
            tally.bytes += size;
            progress.inc(1);
        }
        Ok(Err((error, _))) => tally.fail(at, error),
        Err(_) => tally.fail(at, "the producer went away before the delivery report"),
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_template_parses() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
        // Tests run without a terminal: the bar is hidden even when asked for.
        assert!(progress_bar(true, 10).is_hidden());
    }

    #[test]
    fn the_report_is_one_line() {
        let report = ProduceReport { records: 2000, bytes: 1536, elapsed: Duration::from_millis(500) };
        assert_eq!(report.to_string(), "produced 2000 records (1.5 KiB) in 0.50s, 4000 records/s");
    }

    #[test]
    fn errors_list_their_lines() {
        let error = ProduceError::InvalidInput {
            file: PathBuf::from("in.jsonl"),
            lines: vec![BadLine { line: 3, message: "no key field \"id\"".to_owned() }],
            count: 1,
        };
        assert_eq!(error.to_string(), "in.jsonl: 1 bad line, nothing was produced\n  line 3: no key field \"id\"");
        let error = ProduceError::Delivery {
            failures: vec![Failure { at: "record 7".to_owned(), error: "Message production error".to_owned() }],
            count: 1,
            delivered: 6,
        };
        assert_eq!(
            error.to_string(),
            "1 record not delivered (6 delivered before producing stopped)\n  record 7: Message production error"
        );
    }
}
