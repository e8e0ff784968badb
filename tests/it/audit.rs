//! The reliability scenarios' common ground: a real dataset to feed, `sluice
//! run` processes to start and kill, and the audit that accounts for every
//! input event in the outputs or the DLQ, counts duplicates and checks per-key
//! order. Each scenario prints one `RELIABILITY {json}` line, also appended to
//! `$SLUICE_RELIABILITY_REPORT` when set (`scripts/reliability.sh` reads it).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::broker::Read;
use crate::support::{plugin, repo};

/// A count from the environment, for the long runs of `scripts/reliability.sh`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Olist order events keyed by order id, each with a unique `eventId`: the
/// demo slice in `config/demo/data`, or, with `SLUICE_RELIABILITY_EVENTS`
/// set and the full dataset in `$SLUICE_DATA/olist-ecommerce`, that many
/// events of the full dataset.
pub fn olist_events() -> Vec<(Option<String>, String)> {
    let limit: Option<usize> = std::env::var("SLUICE_RELIABILITY_EVENTS").ok().and_then(|v| v.parse().ok());
    let full = std::env::var("SLUICE_DATA").ok().map(|d| Path::new(&d).join("olist-ecommerce"));
    let events = match full.filter(|d| limit.is_some() && d.join("olist_orders_dataset.csv").exists()) {
        Some(dir) => {
            let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
            sluice::demo::olist::events_from_csv(
                &read("olist_orders_dataset.csv"),
                &read("olist_order_items_dataset.csv"),
                &read("olist_order_payments_dataset.csv"),
            )
            .unwrap()
        }
        None => sluice::demo::olist::events_from_dir(&repo().join("config/demo/data")).unwrap(),
    };
    events
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|e| (Some(e.key.clone()), String::from_utf8(e.value_bytes()).unwrap()))
        .collect()
}

/// A `sluice run` config: one route through `passthrough` from `input` to
/// `output`. Short session timeouts so that a killed host's partitions move
/// in seconds.
pub fn write_config(dir: &Path, bootstrap: &str, group: &str, input: &str, output: &str, dlq: &str) -> PathBuf {
    let config = dir.join(format!("{group}.toml"));
    let plugins = plugin("passthrough").parent().unwrap().to_path_buf();
    std::fs::write(
        &config,
        format!(
            "[broker]\nbootstrap = \"{bootstrap}\"\ngroup = \"{group}\"\n\
             [broker.consumer]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n\
             [plugins]\ndir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[reload]\nwatch = false\n\
             [delivery]\nshutdown_grace = \"10s\"\n\
             [[routes]]\nname = \"r\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n\
             [[routes.chain]]\nplugin = \"passthrough\"\n",
            plugins.display()
        ),
    )
    .unwrap();
    config
}

/// A running `sluice run`, its logs appended to a file.
pub struct Host {
    child: Child,
    pub log: PathBuf,
}

impl Host {
    pub fn spawn(config: &Path, log: &Path) -> Host {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Host { child, log: log.to_path_buf() }
    }

    /// Whether it is still running; an exit of its own is a host crash.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL, then reap. Returns false if it had already exited (crashed).
    pub fn kill9(mut self) -> bool {
        let alive = self.alive();
        let _ = self.child.kill();
        let _ = self.child.wait();
        alive
    }

    /// SIGTERM; waits for the exit and returns its status and how long it took.
    pub async fn terminate(mut self) -> (ExitStatus, Duration) {
        let pid = self.child.id().to_string();
        let signalled = Instant::now();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = tokio::task::spawn_blocking(move || self.child.wait().unwrap()).await.unwrap();
        (status, signalled.elapsed())
    }

    /// The last lines of a host log, for a failure message.
    pub fn tail(log: &Path) -> String {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Whether the log shows a panic: a host crash even if the process lived on.
    pub fn panicked(log: &Path) -> bool {
        std::fs::read_to_string(log).is_ok_and(|l| l.contains("panicked"))
    }
}

/// The group's committed offset per partition of `topic` (0 where none).
pub fn committed_offsets(address: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", address).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(tpl, Duration::from_secs(30)).unwrap();
    got.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).collect()
}

/// Sum of the high watermarks of `topic`: how many records it holds.
pub fn high_watermarks(address: &str, topic: &str, partitions: i32) -> i64 {
    high_watermark_each(address, topic, partitions).iter().sum()
}

/// The high watermark of each partition of `topic`.
pub fn high_watermark_each(address: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", address).set("group.id", "sluice-audit").create().unwrap();
    (0..partitions)
        .map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(30)).map_or(0, |(_, h)| h))
        .collect()
}

/// Produces `events` in slices of 50 spread over about `over`, as a steady
/// stream: a host that is killed or stopped meanwhile is caught mid-stream.
pub async fn feed(address: &str, topic: &str, events: &[(Option<String>, String)], over: Duration) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    let pause = over / events.len().div_ceil(50).max(1) as u32;
    for chunk in events.chunks(50) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|(key, value)| {
                let mut record = FutureRecord::<str, str>::to(topic).payload(value);
                if let Some(key) = key {
                    record = record.key(key);
                }
                producer.send(record, Duration::from_secs(30))
            })
            .collect();
        for sent in sends {
            sent.await.expect("delivery");
        }
        tokio::time::sleep(pause).await;
    }
}

/// Waits until the group has committed `total` offsets of `topic`, or panics
/// after `limit`.
pub async fn until_committed(address: &str, group: &str, topic: &str, partitions: i32, total: i64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let done: i64 = committed_offsets(address, group, topic, partitions).iter().sum();
        if done >= total {
            return;
        }
        assert!(Instant::now() < deadline, "only {done} of {total} offsets committed after {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn event_id(value: Option<&str>) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(value?).ok()?;
    Some(value.get("eventId")?.as_str()?.to_owned())
}

/// Every input event accounted for, or not.
#[derive(Debug, Default)]
pub struct Audit {
    pub events: usize,
    /// eventIds in neither the outputs nor the DLQ.
    pub lost: Vec<String>,
    /// Output or DLQ records beyond the first for their event.
    pub duplicated: usize,
    pub dead_lettered: usize,
    /// How many times each input `(partition, offset)` appears downstream.
    pub appearances: HashMap<(i32, i64), usize>,
    /// Keys whose events first appear downstream out of input order.
    pub out_of_order: Vec<String>,
}

/// Accounts for `inputs` in `outputs` (matched by `eventId`) and `dlq`
/// (matched by the `sluice.dlq.partition`/`offset` headers, so stubs without
/// a value count too).
pub fn audit(inputs: &[Read], outputs: &[Read], dlq: &[Read]) -> Audit {
    let mut by_id: HashMap<String, (i32, i64)> = HashMap::new();
    for r in inputs {
        let id = event_id(r.value.as_deref()).unwrap_or_else(|| format!("{}@{}", r.partition, r.offset));
        by_id.insert(id, (r.partition, r.offset));
    }
    let mut appearances: HashMap<(i32, i64), usize> = HashMap::new();
    // Per key, the input coordinates in the order they appear downstream.
    let mut downstream: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    let mut sorted: Vec<&Read> = outputs.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for r in sorted {
        let Some(at) = event_id(r.value.as_deref()).and_then(|id| by_id.get(&id).copied()) else {
            panic!("an output that is no input event: {r:?}");
        };
        *appearances.entry(at).or_default() += 1;
        downstream.entry(r.key.clone().unwrap_or_default()).or_default().push(at);
    }
    for r in dlq {
        let header = |name: &str| r.headers.get(name).and_then(|v| v.parse().ok());
        let (Some(p), Some(o)) = (header("sluice.dlq.partition"), header("sluice.dlq.offset")) else {
            panic!("a DLQ record without its coordinates: {r:?}");
        };
        *appearances.entry((p as i32, o)).or_default() += 1;
    }
    let mut out_of_order = Vec::new();
    for (key, seen) in downstream {
        let mut first = Vec::new();
        for at in seen {
            if !first.contains(&at) {
                first.push(at);
            }
        }
        if first.windows(2).any(|w| w[0] > w[1]) {
            out_of_order.push(key);
        }
    }
    let lost = by_id.iter().filter(|(_, at)| !appearances.contains_key(at)).map(|(id, _)| id.clone()).collect();
    let duplicated = appearances.values().map(|n| n - 1).sum();
    Audit { events: inputs.len(), lost, duplicated, dead_lettered: dlq.len(), appearances, out_of_order }
}

/// Prints the scenario's figures and appends them to the report file.
pub fn report(scenario: &str, figures: serde_json::Value) {
    let mut line = serde_json::json!({ "scenario": scenario });
    if let (Some(line), Some(figures)) = (line.as_object_mut(), figures.as_object()) {
        line.extend(figures.clone());
    }
    println!("RELIABILITY {line}");
    if let Ok(path) = std::env::var("SLUICE_RELIABILITY_REPORT") {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        writeln!(file, "{line}").unwrap();
    }
}
