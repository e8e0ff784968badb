//! End-to-end latency at a fixed offered load: an open-loop generator sends
//! at a fixed rate and stamps every record with the time it was *due*, and a
//! consumer of the output topic records `received − due` in an HdrHistogram.
//!
//! Stamping the due time, not the send time, is what corrects for
//! coordinated omission in an open-loop test: when anything stalls (the
//! variant, the broker, or the generator itself), every record that should
//! have gone out meanwhile carries the stall in its latency. (HdrHistogram's
//! `record_correct` back-fills samples for a closed loop that waits for each
//! answer; used here on top it would count the same stall twice.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

const DUE: &str = "bench-due-us";
const PROBE: &str = "bench-probe";

/// Percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub rate: f64,
    pub samples: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// The offered load: `rate` records a second for `warmup` (not recorded),
/// then for `measure`.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rate: f64,
    pub warmup: Duration,
    pub measure: Duration,
    pub size: usize,
}

impl Load {
    pub fn records(&self) -> u64 {
        (self.rate * (self.warmup + self.measure).as_secs_f64()) as u64
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Offers `load` to `input` once the variant under test has passed a probe
/// record through to `output`, and measures it there.
pub fn offer(bootstrap: &str, input: &str, output: &str, load: Load) -> anyhow::Result<Latency> {
    let mut props = BTreeMap::new();
    // The generator sends each record at once: its own batching would be
    // latency charged to neither side.
    props.insert("linger.ms".to_owned(), "0".to_owned());
    let producer: BaseProducer = sluice::kafka::producer_config(bootstrap, &props).create()?;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-bench-latency")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(output, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;

    let probe = BaseRecord::to(input)
        .key("probe")
        .payload("probe")
        .headers(OwnedHeaders::new().insert(Header { key: PROBE, value: Some("1") }));
    producer.send(probe).map_err(|(e, _)| e).context("probe")?;
    producer.flush(Duration::from_secs(30))?;
    let ready_by = Instant::now() + crate::VARIANT_TIMEOUT;
    loop {
        if Instant::now() > ready_by {
            bail!("the variant never passed the probe record through");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            break;
        }
    }

    let total = load.records();
    let interval_us = 1e6 / load.rate;
    let start_us = now_us() + 10_000;
    let record_from = start_us + load.warmup.as_micros() as u64;
    let receiver = std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
        // Up to an hour: a variant that cannot keep up builds a backlog, and
        // its latency is still a figure to report, not an error.
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
        let mut received = 0;
        let mut last = Instant::now();
        while received < total {
            if last.elapsed() > Duration::from_secs(30) {
                bail!("no output for 30 s; {received} of {total} received");
            }
            let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
            let message = message?;
            let now = now_us();
            last = Instant::now();
            received += 1;
            let due = message
                .headers()
                .and_then(|hs| hs.iter().find(|h| h.key == DUE))
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .context("an output without its due time")?;
            if due >= record_from {
                histogram.saturating_record(now.saturating_sub(due).max(1));
            }
        }
        Ok(histogram)
    });

    let value = vec![b'x'; load.size];
    for i in 0..total {
        let due = start_us + (i as f64 * interval_us) as u64;
        let now = now_us();
        if due > now + 50 {
            // Sleep only for gaps the OS can honour; smaller ones are sent
            // with the next batch of due records.
            producer.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_micros(due - now));
        }
        let due_text = due.to_string();
        let key = format!("k{i}");
        let mut record = BaseRecord::to(input)
            .key(key.as_bytes())
            .payload(value.as_slice())
            .headers(OwnedHeaders::new().insert(Header { key: DUE, value: Some(due_text.as_bytes()) }));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("generator produce failed: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;
    let histogram = receiver.join().map_err(|_| anyhow::anyhow!("the latency receiver panicked"))??;
    Ok(Latency {
        rate: load.rate,
        samples: histogram.len(),
        p50: histogram.value_at_quantile(0.5),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        max: histogram.max(),
    })
}
