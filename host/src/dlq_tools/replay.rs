//! `sluice dlq replay`: puts dead letters back on a topic, at least once and
//! resumably.
//!
//! The DLQ is read with its own consumer group, from the group's committed
//! offsets up to the end offsets taken at the start. Each matching record
//! is produced to the target without its `sluice.dlq.*` headers and with
//! `sluice.replay.*` ones saying where it came from. A DLQ offset is
//! committed only once its record is acknowledged (or skipped by the
//! filter) and every earlier one of its partition too, so an interrupted
//! replay resumes where it stopped and loses nothing; records in flight at
//! a crash are produced again.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{DeliveryFuture, FutureProducer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::filter::Filter;
use super::rate::{Pacer, Rate};
use super::report::{Sample, write_table};
use super::{Connection, Entry, Reader, Start, topic_exists};
use crate::dlq;
use crate::kafka::producer_config;
use crate::sink::{OutRecord, Sink};

/// Every provenance header starts with this; a second replay replaces them.
pub const PREFIX: &str = "sluice.replay.";
/// Records produced and not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 1_000;
/// How often acknowledged offsets are committed while replaying.
const COMMIT_INTERVAL: Duration = Duration::from_millis(500);
/// How long the final commit may take.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// A delivery that takes longer than this fails the replay, unless the
/// operator sets `message.timeout.ms`.
const DEFAULT_MESSAGE_TIMEOUT_MS: &str = "30000";
const PROGRESS_TEMPLATE: &str = "{bar:40} {human_pos}/{human_len} records  {per_sec}  eta {eta}";

/// What to replay, where to, and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub connection: Connection,
    pub from: String,
    pub to: String,
    pub filter: Filter,
    pub rate: Option<Rate>,
    /// Count and sample what would be replayed; produce and commit nothing.
    pub dry_run: bool,
    /// The consumer group that remembers progress; default [`default_group`].
    pub group: Option<String>,
    /// Stop after replaying this many records.
    pub limit: Option<u64>,
    /// Samples shown by a dry run.
    pub samples: usize,
    /// What the config's routes own, which a replay must not write to or
    /// join; empty without a config.
    pub protected: Protected,
    /// Draw a progress bar on stderr. Ignored when stderr is not a terminal.
    pub show_progress: bool,
}

/// Topics and the group of the routes in a config.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    pub dlqs: Vec<String>,
    pub retry_topics: Vec<String>,
    /// The consumer group of `sluice run`.
    pub group: Option<String>,
}

impl Protected {
    pub fn of(config: &crate::config::Config) -> Self {
        Protected {
            dlqs: config.routes.iter().map(|r| r.dlq.clone()).collect(),
            retry_topics: config.routes.iter().flat_map(|r| r.retry_topics.iter().map(|t| t.topic.clone())).collect(),
            group: Some(config.broker.group.clone()),
        }
    }
}

/// Why a replay did not run or did not finish, where the exit code differs.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The arguments are unsafe or wrong; nothing was read or produced.
    #[error("{0}")]
    Refused(String),
    /// A replayed record was not delivered. Offsets before it are committed.
    #[error(
        "a record replayed from {at} was not delivered to {to}: {error}; replay stopped; group {group} resumes at {resume}"
    )]
    Delivery { at: String, to: String, error: String, group: String, resume: String },
}

/// Why the replay stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Every record up to the snapshot's end offsets is done.
    End,
    /// `--limit` records were replayed.
    Limit,
    /// SIGINT or SIGTERM; what was acknowledged is committed.
    Interrupted,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub from: String,
    pub to: String,
    pub group: String,
    pub filter: String,
    pub dry_run: bool,
    /// DLQ records read.
    pub scanned: u64,
    /// Matching records produced and acknowledged (or, in a dry run, that would be).
    pub replayed: u64,
    /// Records the filter left in the DLQ.
    pub skipped: u64,
    pub by_kind: BTreeMap<String, u64>,
    /// Per partition, the offset the next run starts from.
    pub resume: BTreeMap<i32, i64>,
    /// Per partition, the snapshot's end offset.
    pub ends: BTreeMap<i32, i64>,
    pub stop: Stop,
    /// Dry run only: the first matching records.
    pub samples: Vec<Sample>,
}

/// The group a replay from `from` to `to` uses unless told otherwise. A
/// filtered replay gets a group of its own: it commits past the records it
/// skips, which a replay with another filter must still see.
pub fn default_group(from: &str, to: &str, filter: &Filter) -> String {
    if filter.is_empty() {
        return format!("sluice-replay.{from}.{to}");
    }
    let mut canonical = filter.clone();
    for values in [&mut canonical.kinds, &mut canonical.plugins, &mut canonical.routes, &mut canonical.source_topics] {
        values.sort();
        values.dedup();
    }
    format!("sluice-replay.{from}.{to}.{}", canonical.to_string().replace(' ', "."))
}

/// Refuses a target that would loop records back into a DLQ.
pub fn check(options: &ReplayOptions) -> Result<(), ReplayError> {
    let refuse = |m: String| Err(ReplayError::Refused(m));
    if options.to.is_empty() {
        return refuse("--to: the target topic is empty".into());
    }
    if options.to == options.from {
        return refuse(format!(
            "--to: \"{}\" is the DLQ being replayed (--from); replay into the route's input topic",
            options.to
        ));
    }
    let protected = &options.protected;
    if protected.dlqs.contains(&options.to) {
        return refuse(format!(
            "--to: \"{}\" is the DLQ of a route in the config; replaying into a DLQ would only move dead letters around",
            options.to
        ));
    }
    if protected.retry_topics.contains(&options.to) {
        return refuse(format!(
            "--to: \"{}\" is a retry topic of a route in the config; only sluice writes to a retry topic, replay into \
             the route's input topic",
            options.to
        ));
    }
    match &options.group {
        Some(group) if group.trim().is_empty() => return refuse("--group: the group name is empty".into()),
        Some(group) if protected.group.as_ref() == Some(group) => {
            return refuse(format!(
                "--group: \"{group}\" is the consumer group of `sluice run` in the config; a replay needs a group of \
                 its own (leave --group out for sluice-replay.FROM.TO)"
            ));
        }
        _ => {}
    }
    Ok(())
}

/// The record to produce for a DLQ entry: same key, value and timestamp,
/// its headers without `sluice.dlq.*` (and earlier `sluice.replay.*`), plus
/// where it was replayed from and when.
pub fn replay_record(from: &str, entry: &Entry, to: &str, now_ms: u128) -> OutRecord {
    let mut headers: Vec<(String, Vec<u8>)> =
        entry.headers.iter().filter(|(n, _)| !n.starts_with(dlq::PREFIX) && !n.starts_with(PREFIX)).cloned().collect();
    headers.push((format!("{PREFIX}from"), format!("{from}/{}/{}", entry.partition, entry.offset).into_bytes()));
    headers.push((format!("{PREFIX}at"), now_ms.to_string().into_bytes()));
    OutRecord {
        topic: to.to_owned(),
        timestamp: entry.timestamp,
        key: entry.key.clone(),
        value: entry.value.clone(),
        headers,
    }
}

/// Replays until the snapshot's end, `--limit`, `shutdown`, or a failed
/// delivery ([`ReplayError::Delivery`]).
pub async fn run(options: &ReplayOptions, shutdown: CancellationToken) -> anyhow::Result<ReplayReport> {
    check(options)?;
    let connection = &options.connection;
    if !topic_exists(connection, &options.to)? {
        return Err(ReplayError::Refused(format!(
            "--to: topic \"{}\" does not exist on {}; create it first (replay never creates topics)",
            options.to, connection.bootstrap
        ))
        .into());
    }
    let group = options.group.clone().unwrap_or_else(|| default_group(&options.from, &options.to, &options.filter));
    let mut reader = Reader::open(connection, &options.from, &group, Start::Committed)?;
    let progress = progress_bar(reader.total(), options.show_progress);
    let starts: BTreeMap<i32, i64> = reader.ranges().iter().map(|(p, r)| (*p, r.start)).collect();
    let mut report = ReplayReport {
        from: options.from.clone(),
        to: options.to.clone(),
        group: group.clone(),
        filter: options.filter.to_string(),
        dry_run: options.dry_run,
        scanned: 0,
        replayed: 0,
        skipped: 0,
        by_kind: BTreeMap::new(),
        resume: starts.clone(),
        ends: reader.ranges().iter().map(|(p, r)| (*p, r.end)).collect(),
        stop: Stop::End,
        samples: Vec::new(),
    };
    let mut output = if options.dry_run {
        None
    } else {
        let mut properties = connection.producer.clone();
        properties.entry("message.timeout.ms".into()).or_insert_with(|| DEFAULT_MESSAGE_TIMEOUT_MS.into());
        let producer: FutureProducer =
            producer_config(&connection.bootstrap, &properties).create().context("cannot create the Kafka producer")?;
        Some((Sink::new(producer), Acknowledger::start(reader.consumer(), options.from.clone(), starts)))
    };
    let mut pacer = options.rate.map(Pacer::new);
    let mut refused = None;
    report.stop = loop {
        let entry = tokio::select! {
            biased;
            () = shutdown.cancelled() => break Stop::Interrupted,
            next = reader.next() => match next? {
                Some(entry) => entry,
                None => break Stop::End,
            },
        };
        let matched = options.filter.matches(&entry);
        if matched && options.limit.is_some_and(|limit| report.replayed >= limit) {
            break Stop::Limit;
        }
        report.scanned += 1;
        progress.inc(1);
        if matched && let Some(pacer) = pacer.as_mut() {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Stop::Interrupted,
                () = pacer.wait() => {}
            }
        }
        let delivery = if matched {
            report.replayed += 1;
            *report.by_kind.entry(entry.kind().to_owned()).or_default() += 1;
            if report.samples.len() < options.samples && options.dry_run {
                report.samples.push(Sample::new(&options.from, &entry));
            }
            match &output {
                Some((sink, _)) => {
                    let record = replay_record(&options.from, &entry, &options.to, now_ms());
                    match sink.send(&record).await {
                        Ok(delivery) => Some(delivery),
                        Err(e) => {
                            refused = Some((entry.partition, entry.offset, e.to_string()));
                            break Stop::Interrupted;
                        }
                    }
                }
                None => None,
            }
        } else {
            report.skipped += 1;
            None
        };
        if let Some((_, acknowledger)) = &mut output
            && !acknowledger.push(InFlight { partition: entry.partition, offset: entry.offset, delivery }).await
        {
            // The acknowledger stopped at a failed delivery; it reports it.
            break Stop::Interrupted;
        }
    };
    progress.finish_and_clear();
    let Some((sink, acknowledger)) = output.take() else { return Ok(report) };
    let outcome = acknowledger.finish().await?;
    drop(sink);
    report.resume = outcome.next;
    report.replayed = outcome.delivered;
    let failure = outcome.failure.or(refused.map(|(p, o, e)| ((p, o), e)));
    if let Some(((partition, offset), error)) = failure {
        return Err(ReplayError::Delivery {
            at: format!("{}/{partition}/{offset}", options.from),
            to: options.to.clone(),
            error,
            group,
            resume: offsets(&report.resume),
        }
        .into());
    }
    if let Some(error) = outcome.commit_error {
        anyhow::bail!(
            "replayed {} records but the final commit failed: {error}; the next run replays them again",
            report.replayed
        );
    }
    Ok(report)
}

/// Where a record came from, with its delivery if it was produced.
struct InFlight {
    partition: i32,
    offset: i64,
    delivery: Option<DeliveryFuture>,
}

/// What the acknowledger saw.
struct Outcome {
    /// Per partition, the next offset: everything before it is done.
    next: BTreeMap<i32, i64>,
    delivered: u64,
    failure: Option<((i32, i64), String)>,
    commit_error: Option<String>,
}

/// Awaits deliveries in the order records were read and commits the
/// contiguous watermark: a DLQ offset is committed only once its record and
/// every earlier one of its partition are done.
struct Acknowledger {
    tx: mpsc::Sender<InFlight>,
    task: JoinHandle<Outcome>,
}

impl Acknowledger {
    fn start(consumer: Arc<StreamConsumer>, topic: String, next: BTreeMap<i32, i64>) -> Self {
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let task = tokio::spawn(acknowledge(rx, consumer, topic, next));
        Acknowledger { tx, task }
    }

    /// Queues a record; waits while [`MAX_IN_FLIGHT`] are outstanding.
    /// `false` once the acknowledger stopped at a failure.
    async fn push(&mut self, item: InFlight) -> bool {
        self.tx.send(item).await.is_ok()
    }

    async fn finish(self) -> anyhow::Result<Outcome> {
        drop(self.tx);
        self.task.await.context("the acknowledger task failed")
    }
}

async fn acknowledge(
    mut rx: mpsc::Receiver<InFlight>,
    consumer: Arc<StreamConsumer>,
    topic: String,
    mut next: BTreeMap<i32, i64>,
) -> Outcome {
    let mut delivered = 0;
    let mut failure = None;
    let mut last_commit = Instant::now();
    while let Some(InFlight { partition, offset, delivery }) = rx.recv().await {
        if let Some(delivery) = delivery {
            let error = match delivery.await {
                Ok(Ok(_)) => None,
                Ok(Err((e, _))) => Some(e.to_string()),
                Err(_) => Some("the producer dropped the delivery report".to_owned()),
            };
            if let Some(error) = error {
                failure = Some(((partition, offset), error));
                break;
            }
            delivered += 1;
        }
        next.insert(partition, offset + 1);
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            if let Err(e) = commit(&consumer, &topic, &next, CommitMode::Async) {
                tracing::warn!(%topic, error = %e, "commit failed; the next one carries these offsets too");
            }
            last_commit = Instant::now();
        }
    }
    // Records still queued after a failure are not acknowledged: their
    // offsets stay uncommitted, so the next run produces them again.
    rx.close();
    let commit_error = tokio::task::spawn_blocking(move || {
        commit(&consumer, &topic, &next, CommitMode::Sync).map(|()| next).map_err(|e| e.to_string())
    })
    .await;
    match commit_error {
        Ok(Ok(next)) => Outcome { next, delivered, failure, commit_error: None },
        Ok(Err(e)) => Outcome { next: BTreeMap::new(), delivered, failure, commit_error: Some(e) },
        Err(e) => Outcome { next: BTreeMap::new(), delivered, failure, commit_error: Some(e.to_string()) },
    }
}

fn commit(consumer: &StreamConsumer, topic: &str, next: &BTreeMap<i32, i64>, mode: CommitMode) -> anyhow::Result<()> {
    let mut list = TopicPartitionList::new();
    for (p, at) in next {
        list.add_partition_offset(topic, *p, Offset::Offset(*at))?;
    }
    if list.count() == 0 {
        return Ok(());
    }
    consumer.commit(&list, mode)?;
    if matches!(mode, CommitMode::Sync) {
        // A sync commit returns once the coordinator answered; make sure it
        // holds what we sent, so the summary's resume point is the truth.
        let committed = consumer.committed_offsets(list.clone(), FINAL_COMMIT_TIMEOUT)?;
        for e in committed.elements_for_topic(topic) {
            if next.get(&e.partition()).is_some_and(|at| e.offset() != Offset::Offset(*at)) {
                anyhow::bail!(
                    "partition {} committed at {:?}, not {:?}",
                    e.partition(),
                    e.offset(),
                    next.get(&e.partition())
                );
            }
        }
    }
    Ok(())
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn offsets(map: &BTreeMap<i32, i64>) -> String {
    if map.is_empty() {
        return "(no partitions)".into();
    }
    map.iter().map(|(p, o)| format!("{p}:{o}")).collect::<Vec<_>>().join(" ")
}

fn progress_bar(total: u64, show: bool) -> ProgressBar {
    let target = if show && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
        bar.set_style(style);
    }
    bar
}

impl ReplayReport {
    /// Records still before the snapshot's end after this run.
    pub fn left(&self) -> i64 {
        self.ends.iter().map(|(p, end)| (end - self.resume.get(p).copied().unwrap_or(*end)).max(0)).sum()
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "dry run: would replay" } else { "replayed" };
        writeln!(
            f,
            "{verb} {} of {} records read from {} to {} ({} skipped by filter: {})",
            self.replayed, self.scanned, self.from, self.to, self.skipped, self.filter
        )?;
        if !self.by_kind.is_empty() {
            writeln!(f, "by error kind:")?;
            write_table(f, &self.by_kind)?;
        }
        for sample in &self.samples {
            writeln!(f, "  {sample}")?;
        }
        let stop = match self.stop {
            Stop::End => "reached the end offsets taken at the start",
            Stop::Limit => "stopped at --limit",
            Stop::Interrupted => "interrupted",
        };
        if self.dry_run {
            writeln!(f, "{stop}; nothing was produced or committed")?;
            write!(f, "a replay with group {} starts at {}", self.group, offsets(&self.resume))
        } else {
            writeln!(f, "{stop}; {} records left before the end offsets {}", self.left(), offsets(&self.ends))?;
            write!(f, "group {} resumes at {}", self.group, offsets(&self.resume))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_resumes_in_a_group_of_its_own() {
        let all = default_group("d", "t", &Filter::default());
        assert_eq!(all, "sluice-replay.d.t");
        let trap = Filter { kinds: vec!["trap".into(), "timeout".into()], ..Filter::default() };
        let same = Filter { kinds: vec!["timeout".into(), "trap".into(), "trap".into()], ..Filter::default() };
        let rejected = Filter { kinds: vec!["rejected".into()], ..Filter::default() };
        assert_eq!(default_group("d", "t", &trap), "sluice-replay.d.t.kind=timeout,trap");
        assert_eq!(
            default_group("d", "t", &trap),
            default_group("d", "t", &same),
            "the order of values does not matter"
        );
        assert_ne!(default_group("d", "t", &trap), default_group("d", "t", &rejected));
        assert_ne!(default_group("d", "t", &trap), all);
    }

    fn options(from: &str, to: &str, dlqs: &[&str]) -> ReplayOptions {
        ReplayOptions {
            connection: Connection::new("127.0.0.1:1"),
            from: from.into(),
            to: to.into(),
            filter: Filter::default(),
            rate: None,
            dry_run: false,
            group: None,
            limit: None,
            samples: 3,
            protected: Protected {
                dlqs: dlqs.iter().map(|d| (*d).to_owned()).collect(),
                retry_topics: vec!["orders.retry.1m".into()],
                group: Some("sluice".into()),
            },
            show_progress: false,
        }
    }

    #[test]
    fn dlq_headers_go_provenance_comes_and_the_rest_stays() {
        let entry = Entry {
            partition: 2,
            offset: 17,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"o-1".to_vec()),
            value: Some(br#"{"eventId":"e-1"}"#.to_vec()),
            headers: vec![
                ("correlation-id".into(), b"c-1".to_vec()),
                ("sluice.dlq.error.kind".into(), b"rejected".to_vec()),
                ("sluice.replay.from".into(), b"old/0/1".to_vec()),
                ("traceparent".into(), b"00-abc".to_vec()),
            ],
        };
        let r = replay_record("orders.dlq", &entry, "orders.events", 42);
        assert_eq!(r.topic, "orders.events");
        assert_eq!((&r.key, &r.value, r.timestamp), (&entry.key, &entry.value, entry.timestamp));
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["correlation-id", "traceparent", "sluice.replay.from", "sluice.replay.at"]);
        assert_eq!(r.header("sluice.replay.from"), Some(&b"orders.dlq/2/17"[..]));
        assert_eq!(r.header("sluice.replay.at"), Some(&b"42"[..]));
    }

    #[test]
    fn a_replay_into_its_own_dlq_or_any_configured_dlq_is_refused() {
        let e = check(&options("a.dlq", "a.dlq", &[])).unwrap_err();
        assert!(e.to_string().starts_with("--to: \"a.dlq\" is the DLQ being replayed"), "{e}");
        let e = check(&options("a.dlq", "b.dlq", &["a.dlq", "b.dlq"])).unwrap_err();
        assert!(e.to_string().contains("\"b.dlq\" is the DLQ of a route in the config"), "{e}");
        assert!(check(&options("a.dlq", "a.events", &["a.dlq"])).is_ok());
    }

    #[test]
    fn a_replay_into_a_retry_topic_or_in_the_hosts_group_is_refused() {
        let e = check(&options("a.dlq", "orders.retry.1m", &[])).unwrap_err();
        assert!(e.to_string().contains("\"orders.retry.1m\" is a retry topic of a route in the config"), "{e}");
        let mut host_group = options("a.dlq", "a.events", &[]);
        host_group.group = Some("sluice".into());
        let e = check(&host_group).unwrap_err();
        assert!(e.to_string().contains("is the consumer group of `sluice run`"), "{e}");
        host_group.group = Some(" ".into());
        assert_eq!(check(&host_group).unwrap_err().to_string(), "--group: the group name is empty");
        host_group.group = Some("my-replay".into());
        assert!(check(&host_group).is_ok());
    }

    #[test]
    fn the_report_says_where_the_next_run_resumes_and_what_is_left() {
        let report = ReplayReport {
            from: "d".into(),
            to: "t".into(),
            group: "g".into(),
            filter: "kind=trap".into(),
            dry_run: false,
            scanned: 7,
            replayed: 5,
            skipped: 2,
            by_kind: [("trap".to_owned(), 5)].into(),
            resume: [(0, 4), (1, 3)].into(),
            ends: [(0, 6), (1, 3)].into(),
            stop: Stop::Limit,
            samples: Vec::new(),
        };
        assert_eq!(report.left(), 2);
        let text = report.to_string();
        assert!(
            text.starts_with("replayed 5 of 7 records read from d to t (2 skipped by filter: kind=trap)\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "stopped at --limit; 2 records left before the end offsets 0:6 1:3\ngroup g resumes at 0:4 1:3"
            ),
            "{text}"
        );
    }
}
