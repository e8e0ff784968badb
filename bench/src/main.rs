//! `sluice-bench`: the end-to-end benchmark suite of issue 6.
//!
//! `sluice-bench suite` runs everything and prints a Markdown report; it
//! runs each variant as `sluice-bench variant …` in a process of its own,
//! so that CPU time and peak RSS belong to that variant alone.
//! `scripts/bench.sh` is the one command, and BENCHMARKS.md the results.

mod baseline;
mod broker;
mod host;
mod latency;
mod measure;
mod reload;
mod report;
mod settings;
mod suite;
mod usage;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// How long any variant may take before the suite gives up on it.
pub const VARIANT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Parser, Debug)]
#[command(about = "sluice's benchmark suite: B0 (raw rdkafka), H1, H2 and a Python peer in one run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs every case; settings come from SLUICE_BENCH_* (see BENCHMARKS.md).
    Suite {
        /// Also write the report here (and the raw figures as JSON beside it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Runs one variant until `count` events are done and prints its
    /// measurement as one JSON line.
    Variant {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        input: String,
        /// The output topic; for h2 the prefix of the demo's topics.
        #[arg(long)]
        output: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        count: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    B0,
    H1,
    /// H1 with a partition queue big enough that the source never pauses
    /// (see BENCHMARKS.md: the pause/resume cycle is what limits H1).
    H1q,
    H2,
    H2q,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Suite { out } => {
            let settings = settings::Settings::from_env()?;
            let write = |report: &report::Report| {
                let Some(out) = &out else { return };
                let written = std::fs::write(out, report.to_string())
                    .and_then(|()| std::fs::write(out.with_extension("json"), serde_json::to_string_pretty(report)?));
                if let Err(e) = written {
                    eprintln!("sluice-bench: cannot write {}: {e}", out.display());
                }
            };
            let report = suite::run(&settings, &write).await?;
            write(&report);
            println!("{report}");
        }
        Command::Variant { kind, bootstrap, input, output, group, count } => {
            // Warnings and errors only: a variant's stderr is the suite's log.
            sluice::telemetry::init(sluice::telemetry::LogFormat::Text, "warn");
            let measurement = match kind {
                Kind::B0 => {
                    tokio::task::spawn_blocking(move || baseline::run(&bootstrap, &input, &output, &group, count))
                        .await??
                }
                Kind::H1 => host::run(host::Chain::Passthrough, &bootstrap, &input, &output, &group, count).await?,
                Kind::H1q => host::run(host::Chain::Unpaused, &bootstrap, &input, &output, &group, count).await?,
                Kind::H2 => host::run(host::Chain::Olist, &bootstrap, &input, &output, &group, count).await?,
                Kind::H2q => host::run(host::Chain::OlistUnpaused, &bootstrap, &input, &output, &group, count).await?,
            };
            println!("{}", serde_json::to_string(&measurement)?);
        }
    }
    Ok(())
}
