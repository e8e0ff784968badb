//! The suite's results as Markdown: every figure beside its ratio to B0 in
//! the same run, then the targets of issue 6.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::latency::Latency;
use crate::measure::Measurement;
use crate::reload::ReloadTime;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub broker: String,
    pub case: String,
    pub variant: String,
    /// Mean key + value bytes per record.
    pub mean_size: f64,
    pub measurement: Measurement,
}

impl Row {
    pub fn new(broker: &str, case: &str, variant: &str, mean_size: f64, measurement: Measurement) -> Self {
        Row { broker: broker.into(), case: case.into(), variant: variant.into(), mean_size, measurement }
    }

    fn mb_per_sec(&self) -> f64 {
        self.measurement.per_sec() * self.mean_size / 1e6
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    pub percent: u32,
    pub rate: f64,
    pub b0: Option<Latency>,
    pub h1: Option<Latency>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadRow {
    pub broker: String,
    pub debounce: String,
    pub times: Vec<ReloadTime>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub latency: Vec<LatencyRow>,
    pub reloads: Vec<ReloadRow>,
    pub peer_skipped: bool,
    /// Cases that failed, with the reason; the suite goes on without them.
    pub failures: Vec<String>,
}

impl Report {
    pub fn failed(&mut self, case: String, error: &anyhow::Error) {
        eprintln!("sluice-bench: {case} failed: {error:#}");
        self.failures.push(format!("{case}: {error:#}"));
    }

    fn baseline(&self, row: &Row) -> Option<&Row> {
        self.rows.iter().find(|r| r.broker == row.broker && r.case == row.case && r.variant == "B0")
    }

    /// msg/s of `variant` over B0's, per case, on every broker.
    fn ratios(&self, variant: &str) -> Vec<f64> {
        self.rows
            .iter()
            .filter(|r| r.variant == variant)
            .filter_map(|r| Some(r.measurement.per_sec() / self.baseline(r)?.measurement.per_sec()))
            .collect()
    }

    fn peer_ratios(&self, variant: &str) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter(|r| r.variant == variant)
            .filter_map(|h2| {
                let peer =
                    self.rows.iter().find(|r| r.broker == h2.broker && r.case == h2.case && r.variant == "peer")?;
                Some((
                    h2.measurement.per_sec() / peer.measurement.per_sec(),
                    peer.measurement.cpu_per_million() / h2.measurement.cpu_per_million(),
                ))
            })
            .collect()
    }
}

fn range(values: &[f64], unit: impl Fn(f64) -> String) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match values.len() {
        0 => "not measured".into(),
        1 => unit(min),
        _ => format!("{} to {}", unit(min), unit(max)),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1e3)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "### Throughput\n")?;
        writeln!(
            f,
            "| broker | case | variant | msg/s | MB/s | CPU s per M events | peak RSS MiB | msg/s vs B0 | CPU per event vs B0 |"
        )?;
        writeln!(f, "|---|---|---|---:|---:|---:|---:|---:|---:|")?;
        for row in &self.rows {
            let m = &row.measurement;
            let (ratio, cpu) = match self.baseline(row) {
                Some(b) if row.variant != "B0" => (
                    pct(m.per_sec() / b.measurement.per_sec()),
                    format!("{:.2}×", m.cpu_per_million() / b.measurement.cpu_per_million()),
                ),
                _ => ("-".into(), "-".into()),
            };
            writeln!(
                f,
                "| {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.0} | {ratio} | {cpu} |",
                row.broker,
                row.case,
                row.variant,
                m.per_sec(),
                row.mb_per_sec(),
                m.cpu_per_million(),
                m.peak_rss as f64 / (1024.0 * 1024.0),
            )?;
        }
        if self.peer_skipped {
            writeln!(f, "\nThe Python peer was skipped: SLUICE_BENCH_PYTHON was not set.")?;
        }
        if !self.latency.is_empty() {
            writeln!(f, "\n### End-to-end latency at a fixed offered load (ms, Kafka)\n")?;
            writeln!(
                f,
                "| load | msg/s | B0 p50 | B0 p99 | B0 p99.9 | H1q p50 | H1q p99 | H1q p99.9 | added p50 | added p99 | added p99.9 |"
            )?;
            writeln!(f, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
            for row in &self.latency {
                let (Some(b), Some(h)) = (&row.b0, &row.h1) else {
                    writeln!(f, "| {}% | {:.0} | not measured: {} |", row.percent, row.rate, row.errors.join("; "))?;
                    continue;
                };
                let added = |h: u64, b: u64| format!("{:+.2}", (h as f64 - b as f64) / 1e3);
                writeln!(
                    f,
                    "| {}% | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    row.percent,
                    row.rate,
                    ms(b.p50),
                    ms(b.p99),
                    ms(b.p999),
                    ms(h.p50),
                    ms(h.p99),
                    ms(h.p999),
                    added(h.p50, b.p50),
                    added(h.p99, b.p99),
                    added(h.p999, b.p999)
                )?;
            }
        }
        if !self.reloads.is_empty() {
            writeln!(f, "\n### Reload: new plugin file renamed into place → first event on the new version (ms)\n")?;
            writeln!(
                f,
                "| broker | debounce | reload | version published | first event processed (input timestamp) | its output read back |"
            )?;
            writeln!(f, "|---|---|---:|---:|---:|---:|")?;
            for row in &self.reloads {
                for (i, t) in row.times.iter().enumerate() {
                    writeln!(
                        f,
                        "| {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                        row.broker,
                        row.debounce,
                        i + 1,
                        t.published,
                        t.processed_after,
                        t.seen
                    )?;
                }
            }
        }
        if !self.failures.is_empty() {
            writeln!(f, "\n### Failed cases\n")?;
            for failure in &self.failures {
                writeln!(f, "- {failure}")?;
            }
        }
        writeln!(f, "\n### Against the targets\n")?;
        writeln!(f, "| measure | target | measured |")?;
        writeln!(f, "|---|---|---|")?;
        writeln!(f, "| H1 throughput | ≥ 95% of B0 | {} |", range(&self.ratios("H1"), pct))?;
        writeln!(f, "| H1q throughput (queue never full) | ≥ 95% of B0 | {} |", range(&self.ratios("H1q"), pct))?;
        writeln!(f, "| H2 throughput | ≥ 70% of B0 | {} |", range(&self.ratios("H2"), pct))?;
        writeln!(f, "| H2q throughput (queue never full) | ≥ 70% of B0 | {} |", range(&self.ratios("H2q"), pct))?;
        let added: Vec<f64> = self
            .latency
            .iter()
            .filter(|r| r.percent == 50)
            .filter_map(|r| Some((r.h1.as_ref()?.p99 as f64 - r.b0.as_ref()?.p99 as f64) / 1e3))
            .collect();
        writeln!(f, "| added p99 latency at 50% load (H1q) | ≤ 1 ms | {} |", range(&added, |x| format!("{x:+.2} ms")))?;
        let mut reloads = String::new();
        for row in &self.reloads {
            let upper: Vec<f64> = row.times.iter().map(|t| t.seen).collect();
            let lower: Vec<f64> = row.times.iter().map(|t| t.processed_after).collect();
            let _ = write!(
                reloads,
                "debounce {}: processed after {} ms, read back after {} ms; ",
                row.debounce,
                range(&lower, |x| format!("{x:.0}")),
                range(&upper, |x| format!("{x:.0}"))
            );
        }
        writeln!(f, "| reload | ≤ 50 ms | {} |", reloads.trim_end_matches("; "))?;
        for variant in ["H2", "H2q"] {
            let peer = self.peer_ratios(variant);
            let speed: Vec<f64> = peer.iter().map(|p| p.0).collect();
            let cpu: Vec<f64> = peer.iter().map(|p| p.1).collect();
            writeln!(
                f,
                "| sluice ({variant}) vs the Python peer | ≥ 5× | {} the msg/s; {} less CPU per event |",
                range(&speed, |x| format!("{x:.1}×")),
                range(&cpu, |x| format!("{x:.1}×"))
            )?;
        }
        Ok(())
    }
}
