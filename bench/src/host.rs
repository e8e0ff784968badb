//! H1 and H2: sluice itself, through `sluice::pipeline::run`, laid out as an
//! operator would lay it out: a config file, a plugin directory, tables.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sluice::config::{Config, LoadOptions};
use sluice::pipeline::{self, Handle};
use sluice::stats::Event;

use crate::measure::{Measurement, Window};

/// The Olist slice the demo uses, in this checkout.
pub fn olist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo/data")
}

/// The topics of `config/demo.toml`, which H2 gives a per-run prefix.
pub const DEMO_TOPICS: [&str; 7] = [
    "orders.events",
    "orders.placed",
    "payments.approved",
    "shipments.dispatched",
    "shipments.delivered",
    "orders.canceled",
    "orders.dlq",
];

/// What sluice runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Chain {
    /// H1: one pass-through plugin.
    Passthrough,
    /// H1q: the same with `delivery.queue_per_partition` = [`UNPAUSED_QUEUE`]
    /// and the byte limit at its maximum: a queue that never fills.
    Unpaused,
    /// H2: the demo's validate → enrich → route on the Olist tables.
    Olist,
    /// H2q: H2 with H1q's queue.
    OlistUnpaused,
}

/// H1q's partition queue: more than any case's records per partition.
pub const UNPAUSED_QUEUE: usize = 1_000_000;

/// H1's config: `input` through `passthrough` to `output`.
fn passthrough_config(bootstrap: &str, group: &str, input: &str, output: &str, delivery: &str) -> String {
    format!(
        "[broker]\nbootstrap = \"{bootstrap}\"\ngroup = \"{group}\"\n[admin]\nlisten = \"off\"\n{delivery}\
         [[routes]]\nname = \"bench\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{output}.dlq\"\n\
         [[routes.chain]]\nplugin = \"passthrough\"\n"
    )
}

/// H2's config: `config/demo.toml` on a real broker, reading `input`, its
/// output topics prefixed.
pub fn olist_config(bootstrap: &str, group: &str, input: &str, prefix: &str) -> String {
    let mut text = include_str!("../../config/demo.toml")
        .replace("bootstrap = \"embedded\"", &format!("bootstrap = \"{bootstrap}\""))
        .replace("group = \"sluice-demo\"", &format!("group = \"{group}\""))
        .replace("listen = \"127.0.0.1:0\"", "listen = \"off\"");
    text = text.replace(&format!("\"{}\"", DEMO_TOPICS[0]), &format!("\"{input}\""));
    for topic in &DEMO_TOPICS[1..] {
        text = text.replace(&format!("\"{topic}\""), &format!("\"{prefix}{topic}\""));
    }
    text
}

/// Writes the config, the example plugins and (for H2) the tables into `dir`.
fn lay_out(dir: &Path, text: &str) -> anyhow::Result<Config> {
    let plugins = dir.join("plugins");
    sluice::bundled::write_examples(&plugins)?;
    let data = dir.join("demo/data");
    std::fs::create_dir_all(&data)?;
    for entry in std::fs::read_dir(olist_dir()).context("cannot read the Olist slice")? {
        let entry = entry?;
        std::fs::copy(entry.path(), data.join(entry.file_name()))?;
    }
    let path = dir.join("sluice.toml");
    std::fs::write(&path, text)?;
    Config::load_with(&path, &LoadOptions { plugin_dir: Some(plugins) }).map_err(|e| anyhow::anyhow!("{e}"))
}

pub async fn run(
    chain: Chain,
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    count: u64,
) -> anyhow::Result<Measurement> {
    let dir = tempfile::tempdir()?;
    let (text, route) = match chain {
        Chain::Passthrough => (passthrough_config(bootstrap, group, input, output, ""), "bench"),
        Chain::Unpaused => {
            let delivery =
                format!("[delivery]\nqueue_per_partition = {UNPAUSED_QUEUE}\nqueue_bytes_per_partition = \"16GiB\"\n");
            (passthrough_config(bootstrap, group, input, output, &delivery), "bench")
        }
        // For H2, `output` is the topic prefix.
        Chain::Olist => (olist_config(bootstrap, group, input, output), "orders"),
        Chain::OlistUnpaused => {
            let mut text = olist_config(bootstrap, group, input, output);
            text.push_str(&format!(
                "\n[delivery]\nqueue_per_partition = {UNPAUSED_QUEUE}\nqueue_bytes_per_partition = \"16GiB\"\n"
            ));
            (text, "orders")
        }
    };
    let config = lay_out(dir.path(), &text)?;
    let handle = Handle::new(LoadOptions::default());
    let running = tokio::spawn(pipeline::run(config, bootstrap.to_owned(), handle.clone()));
    let mut window = Window::default();
    let deadline = Instant::now() + crate::VARIANT_TIMEOUT;
    let mut completed = 0;
    while completed < count {
        if running.is_finished() || Instant::now() > deadline {
            handle.shutdown.cancel();
            running.await.context("the pipeline task failed")??;
            bail!("sluice stopped after {completed} of {count} events");
        }
        // A coarse poll: its own cost stays far below the work measured.
        tokio::time::sleep(Duration::from_millis(5)).await;
        completed = handle.stats.completed();
        window.observe(handle.stats.get(route, Event::Consumed))?;
    }
    let measurement = window.close(completed)?;
    handle.shutdown.cancel();
    running.await.context("the pipeline task failed")??;
    Ok(measurement)
}
