//! `sluice demo`: the whole product on real data with nothing installed. It
//! starts the embedded broker, loads a slice of the Olist e-commerce dataset
//! as order-lifecycle events, runs the example chain validate → enrich →
//! route, and reports what came out against what the dataset says.

pub mod olist;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::message::{Headers, Message};

use crate::config::{Config, LoadOptions};
use crate::pipeline::{self, Handle};
use crate::stats::Stats;

const CONFIG: &str = include_str!("../../config/demo.toml");
const DATA: &[(&str, &str)] = &[
    ("olist_orders.csv", include_str!("../../config/demo/data/olist_orders.csv")),
    ("olist_order_items.csv", include_str!("../../config/demo/data/olist_order_items.csv")),
    ("olist_order_payments.csv", include_str!("../../config/demo/data/olist_order_payments.csv")),
    ("olist_customers.csv", include_str!("../../config/demo/data/olist_customers.csv")),
    ("olist_products.csv", include_str!("../../config/demo/data/olist_products.csv")),
    (
        "product_category_name_translation.csv",
        include_str!("../../config/demo/data/product_category_name_translation.csv"),
    ),
];
const INPUT: &str = "orders.events";
const PARTITIONS: i32 = 4;
/// Where each event type ends up, as `config/demo.toml` routes it.
const TOPICS: &[(&str, &str)] = &[
    ("OrderPlaced", "orders.placed"),
    ("PaymentApproved", "payments.approved"),
    ("ShipmentDispatched", "shipments.dispatched"),
    ("ShipmentDelivered", "shipments.delivered"),
    ("OrderCanceled", "orders.canceled"),
];
const DLQ: &str = "orders.dlq";

/// What the demo measured.
#[derive(Debug, Default)]
pub struct DemoReport {
    pub events: usize,
    pub expected: BTreeMap<String, usize>,
    pub by_topic: BTreeMap<String, usize>,
    pub dlq_by_kind: BTreeMap<String, usize>,
    pub samples: Vec<(String, String)>,
    pub committed: BTreeMap<(String, i32), i64>,
    pub produced_per_partition: BTreeMap<i32, i64>,
    pub elapsed: Duration,
}

impl DemoReport {
    /// Every event accounted for: each type's count in its topic, nothing in
    /// the DLQ, and every partition committed to its end.
    pub fn matches(&self) -> bool {
        let topics_match = TOPICS.iter().all(|(kind, topic)| {
            self.expected.get(*kind).copied().unwrap_or(0) == self.by_topic.get(*topic).copied().unwrap_or(0)
        });
        // A partition that got no events has nothing to commit.
        let committed_all = self
            .produced_per_partition
            .iter()
            .all(|(p, end)| self.committed.get(&(INPUT.to_owned(), *p)).copied().unwrap_or(0) == *end);
        topics_match && self.dlq_by_kind.is_empty() && committed_all
    }
}

impl std::fmt::Display for DemoReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "\nsluice demo: {} Olist order events through validate → enrich → route in {:.1?}\n",
            self.events, self.elapsed
        )?;
        writeln!(f, "{:<22} {:<20} {:>9} {:>9}", "event type", "topic", "expected", "produced")?;
        for (kind, topic) in TOPICS {
            let expected = self.expected.get(*kind).copied().unwrap_or(0);
            let got = self.by_topic.get(*topic).copied().unwrap_or(0);
            let mark = if expected == got { "ok" } else { "MISMATCH" };
            writeln!(f, "{kind:<22} {topic:<20} {expected:>9} {got:>9}  {mark}")?;
        }
        if self.dlq_by_kind.is_empty() {
            writeln!(f, "\ndead-letter queue {DLQ}: empty")?;
        } else {
            writeln!(f, "\ndead-letter queue {DLQ}, by reason:")?;
            for (kind, n) in &self.dlq_by_kind {
                writeln!(f, "  {kind:<20} {n}")?;
            }
        }
        writeln!(f, "\nsample records:")?;
        for (topic, value) in &self.samples {
            writeln!(f, "  {topic}: {value}")?;
        }
        writeln!(f, "\ncommitted offsets ({INPUT}):")?;
        for (p, end) in &self.produced_per_partition {
            let committed = self.committed.get(&(INPUT.to_owned(), *p)).copied().unwrap_or(0);
            writeln!(f, "  partition {p}: committed {committed} of {end}")?;
        }
        write!(f, "\n{}", if self.matches() { "every event accounted for" } else { "COUNTS DO NOT MATCH" })
    }
}

/// Runs the demo; `limit` keeps only the first N events.
pub async fn run(limit: Option<usize>) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let work = tempfile::tempdir().context("cannot create a scratch directory")?;
    let config = prepare(work.path())?;
    let (bootstrap, broker) = pipeline::connect(&config)?;
    let broker = broker.context("the demo config must use the embedded broker")?;
    broker.create_topic(INPUT, PARTITIONS)?;
    for (_, topic) in TOPICS {
        broker.create_topic(topic, PARTITIONS)?;
    }
    broker.create_topic(DLQ, 1)?;

    let file = |name: &str| DATA.iter().find(|(n, _)| *n == name).map(|(_, text)| *text).unwrap_or_default();
    let mut events = olist::events_from_csv(
        file("olist_orders.csv"),
        file("olist_order_items.csv"),
        file("olist_order_payments.csv"),
    )?;
    if let Some(limit) = limit {
        events.truncate(limit);
    }
    let expected: BTreeMap<String, usize> =
        olist::expected_counts(&events).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let outgoing: Vec<crate::produce::Outgoing> = events
        .iter()
        .map(|e| crate::produce::Outgoing { key: Some(e.key.clone()), value: e.value_bytes(), headers: Vec::new() })
        .collect();
    eprintln!("sluice: producing {} events to {INPUT}", events.len());
    crate::produce::produce_events(&bootstrap, &BTreeMap::new(), INPUT, outgoing).await?;

    let stats = Arc::new(Stats::default());
    let handle = Handle { stats: stats.clone(), ..Handle::new(LoadOptions::default()) };
    let running = tokio::spawn(pipeline::run(config, bootstrap.clone(), handle.clone()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats.completed() < events.len() as u64 {
        if running.is_finished() || Instant::now() > deadline {
            handle.shutdown.cancel();
            let outcome = running.await.context("the pipeline task failed")?;
            outcome?;
            bail!("the pipeline stopped after {} of {} events", stats.completed(), events.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown.cancel();
    let run_report = running.await.context("the pipeline task failed")??;

    let mut report = DemoReport {
        events: events.len(),
        expected,
        committed: run_report.committed.into_iter().collect(),
        elapsed: started.elapsed(),
        ..DemoReport::default()
    };
    for (_, topic) in TOPICS {
        let records = crate::kafka::read_all(&bootstrap, topic, Duration::from_secs(30))?;
        report.by_topic.insert((*topic).to_owned(), records.len());
        if let Some(first) = records.first() {
            let value = first.payload().map(String::from_utf8_lossy).unwrap_or_default();
            let mut shown: String = value.chars().take(160).collect();
            if value.chars().count() > 160 {
                let _ = write!(shown, "…");
            }
            report.samples.push(((*topic).to_owned(), shown));
        }
    }
    for record in crate::kafka::read_all(&bootstrap, DLQ, Duration::from_secs(30))? {
        let kind = record
            .headers()
            .and_then(|hs| hs.iter().find(|h| h.key == "sluice.dlq.error.kind").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "unknown".into());
        *report.dlq_by_kind.entry(kind).or_default() += 1;
    }
    for p in 0..PARTITIONS {
        let consumer: rdkafka::consumer::BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;
        let (_, high) = rdkafka::consumer::Consumer::fetch_watermarks(&consumer, INPUT, p, Duration::from_secs(10))?;
        report.produced_per_partition.insert(p, high);
    }
    drop(broker);
    Ok(report)
}

/// Lays out the demo as an operator would: config, tables and plugins.
fn prepare(dir: &Path) -> anyhow::Result<Config> {
    let data = dir.join("demo/data");
    std::fs::create_dir_all(&data)?;
    for (name, text) in DATA {
        std::fs::write(data.join(name), text)?;
    }
    let plugins = dir.join("plugins");
    crate::bundled::write_examples(&plugins)?;
    let path = dir.join("demo.toml");
    std::fs::write(&path, CONFIG)?;
    Config::load_with(&path, &LoadOptions { plugin_dir: Some(plugins) }).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(committed: &[(i32, i64)], produced: &[(i32, i64)]) -> DemoReport {
        DemoReport {
            events: 2,
            expected: BTreeMap::from([("OrderPlaced".to_owned(), 2)]),
            by_topic: BTreeMap::from([("orders.placed".to_owned(), 2)]),
            committed: committed.iter().map(|(p, o)| ((INPUT.to_owned(), *p), *o)).collect(),
            produced_per_partition: produced.iter().copied().collect(),
            ..DemoReport::default()
        }
    }

    #[test]
    fn a_partition_or_event_type_with_nothing_in_it_still_matches() {
        // `sluice demo --events 2`: two partitions and four event types got nothing.
        assert!(report(&[(0, 1), (1, 1)], &[(0, 1), (1, 1), (2, 0), (3, 0)]).matches());
    }

    #[test]
    fn an_uncommitted_or_short_partition_does_not() {
        assert!(!report(&[(0, 1)], &[(0, 1), (1, 1)]).matches());
        assert!(!report(&[(0, 1), (1, 0)], &[(0, 1), (1, 1)]).matches());
        let mut missing = report(&[(0, 2)], &[(0, 2)]);
        missing.by_topic.clear();
        assert!(!missing.matches());
    }
}
