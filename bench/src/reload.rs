//! Reload timing: a new plugin file lands in the watched directory while
//! records flow, and we time until the first output that carries the new
//! version in its `sluice.chain` header.
//!
//! Each new version is the pass-through component with a custom section
//! appended: a valid component with a new hash that behaves the same, so
//! nothing but the reload is measured.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use sluice::config::{Config, LoadOptions};
use sluice::pipeline::{self, Handle};

/// One reload, in milliseconds from the rename that landed the file.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadTime {
    /// Until the controller published the new route version.
    pub published: f64,
    /// Until the input timestamp of the first record processed by the new
    /// version: a lower bound on when it was processed.
    pub processed_after: f64,
    /// Until that record's output was read back: an upper bound.
    pub seen: f64,
}

fn epoch_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// `bytes` with a custom section named `sluice-bench` holding `tag`.
fn retagged(bytes: &[u8], tag: u32) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let name = b"sluice-bench";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&tag.to_le_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Runs a pass-through route on `prefix`in → `prefix`out with `debounce`,
/// and reloads its plugin `count` times.
pub async fn measure(bootstrap: &str, prefix: &str, debounce: &str, count: u32) -> anyhow::Result<Vec<ReloadTime>> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let original = sluice::bundled::example("passthrough").context("no bundled passthrough plugin")?;
    std::fs::write(plugins.join("passthrough.wasm"), original)?;
    let (input, output) = (format!("{prefix}in"), format!("{prefix}out"));
    let text = format!(
        "[broker]\nbootstrap = \"{bootstrap}\"\ngroup = \"{prefix}group\"\n[admin]\nlisten = \"off\"\n\
         [reload]\ndebounce = \"{debounce}\"\n\
         [[routes]]\nname = \"bench\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{prefix}dlq\"\n\
         [[routes.chain]]\nplugin = \"passthrough\"\n"
    );
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, text)?;
    let config = Config::load_with(&path, &LoadOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let handle = Handle::new(LoadOptions::default());
    let running = tokio::spawn(pipeline::run(config, bootstrap.to_owned(), handle.clone()));

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = spawn_traffic(bootstrap, &input, stop.clone())?;
    // The first output (and its input timestamp) seen per plugin hash.
    let seen: Arc<Mutex<HashMap<String, (f64, f64)>>> = Arc::default();
    let reader = spawn_reader(bootstrap, &output, seen.clone(), stop.clone())?;

    let result = async {
        let original_hash = sluice::runtime::hash_of(original);
        wait(&running, || seen.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&original_hash)).await?;
        let mut times = Vec::new();
        for tag in 1..=count {
            let bytes = retagged(original, tag);
            let hash = sluice::runtime::hash_of(&bytes);
            let staged = plugins.join(".passthrough.wasm.tmp");
            std::fs::write(&staged, &bytes)?;
            let reloads = handle.stats.reloads("plugin", true);
            let landed = epoch_ms();
            let started = Instant::now();
            std::fs::rename(&staged, plugins.join("passthrough.wasm"))?;
            wait(&running, || handle.stats.reloads("plugin", true) > reloads).await?;
            let published = started.elapsed().as_secs_f64() * 1e3;
            wait(&running, || seen.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&hash)).await?;
            let (input_ts, seen_at) =
                seen.lock().unwrap_or_else(|e| e.into_inner()).get(&hash).copied().unwrap_or_default();
            times.push(ReloadTime { published, processed_after: (input_ts - landed).max(0.0), seen: seen_at - landed });
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        anyhow::Ok(times)
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    handle.shutdown.cancel();
    let _ = traffic.join();
    let _ = reader.join();
    running.await.context("the pipeline task failed")??;
    result
}

async fn wait(
    running: &tokio::task::JoinHandle<anyhow::Result<pipeline::RunReport>>,
    done: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if running.is_finished() || Instant::now() > deadline {
            bail!("timed out waiting for a reload to show");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// A record a millisecond, so that the first record after a swap is never
/// far behind it.
fn spawn_traffic(bootstrap: &str, input: &str, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let mut props = std::collections::BTreeMap::new();
    props.insert("linger.ms".to_owned(), "0".to_owned());
    let producer: BaseProducer = sluice::kafka::producer_config(bootstrap, &props).create()?;
    let input = input.to_owned();
    Ok(std::thread::spawn(move || {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("k{i}");
            let _ = producer.send(BaseRecord::to(&input).key(key.as_bytes()).payload("x".repeat(100).as_bytes()));
            producer.poll(Duration::from_millis(1));
            i += 1;
        }
        let _ = producer.flush(Duration::from_secs(10));
    }))
}

fn spawn_reader(
    bootstrap: &str,
    output: &str,
    seen: Arc<Mutex<HashMap<String, (f64, f64)>>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-bench-reload")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(output, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else { continue };
            let at = epoch_ms();
            let chain = message
                .headers()
                .and_then(|hs| hs.iter().find(|h| h.key == "sluice.chain"))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let Some((_, hash)) = chain.split_once('@') else { continue };
            let input_ts = message.timestamp().to_millis().unwrap_or(0) as f64;
            seen.lock().unwrap_or_else(|e| e.into_inner()).entry(hash.to_owned()).or_insert((input_ts, at));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retagged_component_still_loads_with_a_new_hash() {
        let runtime = sluice::runtime::Runtime::new().unwrap();
        let original = sluice::bundled::example("passthrough").unwrap();
        let bytes = retagged(original, 7);
        assert_ne!(sluice::runtime::hash_of(&bytes), sluice::runtime::hash_of(original));
        let budgets = sluice::runtime::Budgets::default();
        runtime.load_bytes(std::path::Path::new("passthrough.wasm"), &bytes, &budgets).unwrap();
    }
}
