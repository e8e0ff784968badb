//! The whole suite in one run: every case on every broker, each variant in
//! its own process, then latency at fixed loads and reload timing.

use std::path::Path;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use sluice::kafka::EmbeddedBroker;

use crate::broker::Broker;
use crate::latency::{self, Load};
use crate::measure::Measurement;
use crate::report::{LatencyRow, ReloadRow, Report, Row};
use crate::settings::Settings;
use crate::workload;

/// The variant processes: this binary's `variant` subcommand, or the peer.
struct Spawn<'a> {
    bootstrap: &'a str,
    input: &'a str,
    count: u64,
}

impl Spawn<'_> {
    async fn variant(&self, kind: &str, output: &str, group: &str) -> anyhow::Result<Measurement> {
        eprintln!("sluice-bench:   {kind} on {}", self.input);
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let mut command = tokio::process::Command::new(exe);
        command.args(["variant", "--kind", kind, "--bootstrap", self.bootstrap, "--input", self.input]);
        command.args(["--output", output, "--group", group, "--count", &self.count.to_string()]);
        collect(command, kind).await
    }

    async fn peer(&self, python: &Path, prefix: &str, group: &str) -> anyhow::Result<Measurement> {
        eprintln!("sluice-bench:   python peer on {}", self.input);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peer.py");
        let mut command = tokio::process::Command::new(python);
        command.arg(script).args(["--bootstrap", self.bootstrap, "--input", self.input, "--prefix", prefix]);
        command.args(["--group", group, "--count", &self.count.to_string()]);
        command.arg("--data").arg(crate::host::olist_dir());
        collect(command, "peer").await
    }
}

/// Runs a variant process; its last stdout line is its measurement.
async fn collect(mut command: tokio::process::Command, what: &str) -> anyhow::Result<Measurement> {
    command.stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    let output = command.output().await.with_context(|| format!("cannot start {what}"))?;
    if !output.status.success() {
        bail!("{what} failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().with_context(|| format!("{what} printed no measurement"))?;
    serde_json::from_str(line).with_context(|| format!("{what} printed {line:?}, not a measurement"))
}

fn run_id() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs the suite; `progress` gets the report so far after every case, so
/// that a run cut short still leaves its figures behind.
pub async fn run(settings: &Settings, progress: &dyn Fn(&Report)) -> anyhow::Result<Report> {
    let id = run_id();
    let mut report = Report::default();
    for name in &settings.brokers {
        let broker = match name.as_str() {
            "kafka" => Broker::Kafka(settings.kafka.clone()),
            "embedded" => Broker::Embedded(EmbeddedBroker::start()?),
            other => bail!("SLUICE_BENCH_BROKERS: unknown broker {other:?} (kafka, embedded)"),
        };
        for &(size, count) in &settings.sizes {
            for &partitions in &settings.partitions {
                let count = broker.max_records(count, size, partitions);
                let case = format!("{size} B, {partitions}p");
                eprintln!("sluice-bench: {} {case}: {count} records", broker.name());
                let prefix = format!("bench.{id}.{}.{size}.{partitions}.", broker.name());
                match synthetic_case(&broker, &prefix, &case, size, count, partitions).await {
                    Ok(rows) => report.rows.extend(rows),
                    Err(e) => report.failed(format!("{} {case}", broker.name()), &e),
                }
                progress(&report);
            }
        }
        if settings.olist_events > 0 {
            eprintln!("sluice-bench: {} Olist: {} events", broker.name(), settings.olist_events);
            let prefix = format!("bench.{id}.{}.olist.", broker.name());
            match olist_case(&broker, &prefix, settings).await {
                Ok(rows) => report.rows.extend(rows),
                Err(e) => report.failed(format!("{} Olist", broker.name()), &e),
            }
            progress(&report);
        }
        if broker.name() == "kafka" {
            report.latency = latency_runs(&broker, id, &report.rows, settings).await?;
            progress(&report);
        }
        if settings.reloads > 0 && report.reloads.is_empty() {
            match reload_runs(&broker, id, settings.reloads).await {
                Ok(reloads) => report.reloads = reloads,
                Err(e) => report.failed(format!("{} reload", broker.name()), &e),
            }
        }
    }
    report.peer_skipped = settings.python.is_none() && settings.olist_events > 0;
    Ok(report)
}

async fn synthetic_case(
    broker: &Broker,
    prefix: &str,
    case: &str,
    size: usize,
    count: u64,
    partitions: i32,
) -> anyhow::Result<Vec<Row>> {
    let t = |s: &str| format!("{prefix}{s}");
    let topics = ["in", "b0.out", "h1.out", "h1.out.dlq", "h1q.out", "h1q.out.dlq"].map(|s| (t(s), partitions));
    broker.create(&topics).await?;
    let records = workload::synthetic(count, size);
    let mean = workload::mean_size(&records);
    let bootstrap = broker.bootstrap();
    sluice::produce::produce_events(&bootstrap, &Default::default(), &t("in"), records).await?;
    let input = t("in");
    let spawn = Spawn { bootstrap: &bootstrap, input: &input, count };
    let row = |variant: &str, m| Row::new(broker.name(), case, variant, mean, m);
    let rows = vec![
        row("B0", spawn.variant("b0", &t("b0.out"), &t("b0")).await?),
        row("H1", spawn.variant("h1", &t("h1.out"), &t("h1")).await?),
        row("H1q", spawn.variant("h1q", &t("h1q.out"), &t("h1q")).await?),
    ];
    broker.delete(&topics.map(|(t, _)| t)).await?;
    Ok(rows)
}

async fn olist_case(broker: &Broker, prefix: &str, settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let t = |s: &str| format!("{prefix}{s}");
    // The demo's layout: 4 input partitions, 4 per output topic, a 1-partition DLQ.
    let mut topics = vec![(t("in"), 4), (t("b0.out"), 4)];
    for side in ["h2.", "h2q.", "py."] {
        for topic in &crate::host::DEMO_TOPICS[1..] {
            topics.push((format!("{prefix}{side}{topic}"), if topic.ends_with("dlq") { 1 } else { 4 }));
        }
    }
    broker.create(&topics).await?;
    // Olist values average about 300 bytes.
    let records = workload::olist(broker.max_records(settings.olist_events, 320, 4))?;
    let mean = workload::mean_size(&records);
    let count = records.len() as u64;
    let bootstrap = broker.bootstrap();
    sluice::produce::produce_events(&bootstrap, &Default::default(), &t("in"), records).await?;
    let input = t("in");
    let spawn = Spawn { bootstrap: &bootstrap, input: &input, count };
    let case = format!("Olist, mean {mean:.0} B, 4p");
    let row = |variant: &str, m| Row::new(broker.name(), &case, variant, mean, m);
    let mut rows = vec![
        row("B0", spawn.variant("b0", &t("b0.out"), &t("b0")).await?),
        row("H2", spawn.variant("h2", &t("h2."), &t("h2")).await?),
        row("H2q", spawn.variant("h2q", &t("h2q."), &t("h2q")).await?),
    ];
    if let Some(python) = &settings.python {
        rows.push(row("peer", spawn.peer(python, &t("py."), &t("py")).await?));
    }
    broker.delete(&topics.into_iter().map(|(t, _)| t).collect::<Vec<_>>()).await?;
    Ok(rows)
}

/// B0 and H1 at each offered load, as a share of B0's maximum at the first
/// size on one partition (the smallest records: the highest rate).
async fn latency_runs(broker: &Broker, id: u64, rows: &[Row], settings: &Settings) -> anyhow::Result<Vec<LatencyRow>> {
    let Some(&(size, _)) = settings.sizes.first() else { return Ok(Vec::new()) };
    let case = format!("{size} B, 1p");
    let Some(max) = rows.iter().find(|r| r.broker == broker.name() && r.case == case && r.variant == "B0") else {
        return Ok(Vec::new());
    };
    let max = max.measurement.per_sec();
    let mut out = Vec::new();
    for &percent in &settings.latency_loads {
        let load = Load {
            rate: max * f64::from(percent) / 100.0,
            warmup: settings.latency_warmup,
            measure: settings.latency_measure,
            size,
        };
        eprintln!("sluice-bench: latency at {percent}% of B0 ({:.0} msg/s)", load.rate);
        let mut row = LatencyRow { percent, rate: load.rate, b0: None, h1: None, errors: Vec::new() };
        // H1q, not H1: H1 at its default queue cannot take even 25% of B0
        // (see the throughput table), so its latency would be its backlog.
        for (kind, variant) in [("b0", "B0"), ("h1q", "H1q")] {
            let prefix = format!("bench.{id}.latency.{percent}.{kind}.");
            let t = |s: &str| format!("{prefix}{s}");
            let topics = ["in", "out", "out.dlq"].map(|s| (t(s), 1));
            broker.create(&topics).await?;
            let bootstrap = broker.bootstrap();
            let input = t("in");
            // The probe record, then the load.
            let spawn = Spawn { bootstrap: &bootstrap, input: &input, count: 1 + load.records() };
            let (output, group) = (t("out"), t("group"));
            let child = spawn.variant(kind, &output, &group);
            let (boot, inp, outp) = (bootstrap.clone(), input.clone(), output.clone());
            let offered = tokio::task::spawn_blocking(move || latency::offer(&boot, &inp, &outp, load));
            let (measured, latency) = tokio::join!(child, offered);
            // One failed load is reported as such; the rest of the suite goes on.
            let latency = measured
                .with_context(|| format!("{variant} under offered load"))
                .and_then(|_| latency.context("the latency task panicked")?);
            let slot = if variant == "B0" { &mut row.b0 } else { &mut row.h1 };
            match latency {
                Ok(latency) => *slot = Some(latency),
                Err(e) => {
                    eprintln!("sluice-bench: latency of {variant} at {percent}% failed: {e:#}");
                    row.errors.push(format!("{variant}: {e:#}"));
                }
            }
            broker.delete(&topics.map(|(t, _)| t)).await?;
        }
        out.push(row);
    }
    Ok(out)
}

/// The default debounce, and a 1 ms one that leaves only sluice's own work.
async fn reload_runs(broker: &Broker, id: u64, count: u32) -> anyhow::Result<Vec<ReloadRow>> {
    let mut out = Vec::new();
    for debounce in ["200ms", "1ms"] {
        eprintln!("sluice-bench: reload timing on {}, debounce {debounce}", broker.name());
        let prefix = format!("bench.{id}.reload.{}.", debounce.trim_end_matches("ms"));
        let topics = ["in", "out", "dlq"].map(|s| (format!("{prefix}{s}"), 1));
        broker.create(&topics).await?;
        let times = crate::reload::measure(&broker.bootstrap(), &prefix, debounce, count).await?;
        broker.delete(&topics.map(|(t, _)| t)).await?;
        out.push(ReloadRow { broker: broker.name().to_owned(), debounce: debounce.to_owned(), times });
    }
    Ok(out)
}
