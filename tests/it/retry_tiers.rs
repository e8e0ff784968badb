//! Retry topics, measured on tokio's paused clock: a record whose in-place
//! retries run out goes to the next tier, is held until its not-before
//! time, runs again, and after the last tier goes to the DLQ as the event it
//! first was.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use sluice::config::{RetryPolicy, RetryTopic};
use sluice::kafka::{EmbeddedBroker, producer_config};
use sluice::offsets::Pending;
use sluice::partition::{RouteContext, Worker};
use sluice::record::Record;
use sluice::sink::{OutRecord, Sink};
use sluice::stats::{Event, Stats};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use sluice::chain::Chain;

use crate::backoff::{chain_of, flaky_chain};

struct Tiered {
    records: mpsc::Sender<Record>,
    acks: mpsc::UnboundedReceiver<Pending>,
    stats: Arc<Stats>,
    _broker: EmbeddedBroker,
}

/// A worker whose plugin fails `failures` times in a row, with two in-place
/// attempts (1 s apart) per pass, and tiers of 1 min and 10 min.
fn tiered_worker(failures: u32) -> Tiered {
    tiered_worker_with(flaky_chain(failures))
}

fn tiered_worker_with(chain: Chain) -> Tiered {
    let broker = EmbeddedBroker::start().unwrap();
    for topic in ["out", "in.retry.1m", "in.retry.10m", "in.dlq"] {
        broker.create_topic(topic, 1).unwrap();
    }
    let producer: FutureProducer = producer_config(&broker.bootstrap(), &Default::default()).create().unwrap();
    let (ack_tx, acks) = mpsc::unbounded_channel();
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.0,
        max_faults: 3,
    };
    let stats = Arc::new(Stats::default());
    let worker = Worker {
        chain,
        route: Arc::new(RouteContext {
            name: "r".into(),
            group: "g".into(),
            dlq: "in.dlq".into(),
            retry,
            retry_topics: vec![
                RetryTopic { topic: "in.retry.1m".into(), delay: Duration::from_secs(60) },
                RetryTopic { topic: "in.retry.10m".into(), delay: Duration::from_secs(600) },
            ],
            batch_size: 16,
        }),
        versions: None,
        sink: Sink::new(producer),
        acks: ack_tx,
        stats: stats.clone(),
        cancel: CancellationToken::new(),
    };
    let (records, rx) = mpsc::channel(8);
    tokio::spawn(worker.run(rx));
    Tiered { records, acks, stats, _broker: broker }
}

/// `out` as the route consumes it back from its tier topic.
fn read_back(out: &OutRecord, offset: i64) -> Record {
    Record {
        topic: out.topic.clone(),
        partition: 0,
        offset,
        timestamp: out.timestamp,
        key: out.key.clone(),
        value: out.value.clone(),
        headers: out.headers.clone(),
        attempt: 1,
    }
}

fn header<'a>(out: &'a OutRecord, name: &str) -> &'a str {
    std::str::from_utf8(out.header(name).unwrap_or_else(|| panic!("no header {name}"))).unwrap()
}

fn input() -> Record {
    Record {
        topic: "in".into(),
        partition: 2,
        offset: 7,
        timestamp: Some(1_700_000_000_000),
        key: Some(b"order-1".to_vec()),
        value: Some(b"x".to_vec()),
        headers: vec![("traceparent".into(), b"00-abc".to_vec())],
        attempt: 1,
    }
}

impl Tiered {
    /// Sends `record` and returns what its offset was settled with, and
    /// how long that took.
    async fn run(&mut self, record: Record) -> (OutRecord, Duration) {
        let started = Instant::now();
        let offset = record.offset;
        self.records.send(record).await.unwrap();
        let pending = self.acks.recv().await.unwrap();
        assert_eq!(pending.offset, offset);
        // A tier record is an output of its input; the DLQ record a dead letter.
        let mut settled: Vec<_> = pending.outputs.into_iter().chain(pending.dead_letters).collect();
        assert_eq!(settled.len(), 1);
        (settled.pop().unwrap().0, started.elapsed())
    }
}

fn close_to(took: Duration, expected: Duration) -> bool {
    // The not-before is wall-clock time, which moves a little while the
    // paused tokio clock does not.
    took <= expected && took + Duration::from_millis(500) >= expected
}

#[tokio::test(start_paused = true)]
async fn a_record_climbs_the_tiers_waiting_each_delay_then_goes_to_the_dlq() {
    let mut tiered = tiered_worker(100);

    let (first, took) = tiered.run(input()).await;
    assert_eq!(first.topic, "in.retry.1m");
    assert_eq!(took, Duration::from_secs(1), "one backoff between the two in-place attempts");
    assert_eq!((first.key.as_deref(), first.value.as_deref()), (Some(&b"order-1"[..]), Some(&b"x"[..])));
    assert_eq!(header(&first, "traceparent"), "00-abc");
    assert_eq!(header(&first, "sluice.retry.attempts"), "2");
    assert_eq!(header(&first, "sluice.retry.error.kind"), "retries-exhausted");

    // Not run before it is due: nothing is settled in the first 59 s.
    tiered.records.send(read_back(&first, 0)).await.unwrap();
    let started = Instant::now();
    assert!(tokio::time::timeout(Duration::from_secs(59), tiered.acks.recv()).await.is_err(), "ran before due");
    let mut pending = tiered.acks.recv().await.unwrap();
    let took = started.elapsed();
    let second = pending.outputs.pop().unwrap().0;
    assert_eq!(second.topic, "in.retry.10m");
    assert!(close_to(took, Duration::from_secs(61)), "60 s delay, then 1 s backoff; took {took:?}");
    assert_eq!(header(&second, "sluice.retry.attempts"), "4");
    assert_eq!(header(&second, "sluice.retry.topic"), "in", "the origin survives the first tier");
    assert_eq!(header(&second, "sluice.retry.offset"), "7");

    let (dead, took) = tiered.run(read_back(&second, 0)).await;
    assert!(close_to(took, Duration::from_secs(601)), "600 s delay, then 1 s backoff; took {took:?}");
    assert_eq!(dead.topic, "in.dlq");
    for (name, value) in [
        ("sluice.dlq.topic", "in"),
        ("sluice.dlq.partition", "2"),
        ("sluice.dlq.offset", "7"),
        ("sluice.dlq.timestamp", "1700000000000"),
        ("sluice.dlq.attempts", "6"),
        ("sluice.dlq.error.kind", "retries-exhausted"),
        ("traceparent", "00-abc"),
    ] {
        assert_eq!(header(&dead, name), value, "{name}");
    }
    assert!(dead.headers.iter().all(|(n, _)| !n.starts_with("sluice.retry.")), "{:?}", dead.headers);
    assert_eq!(tiered.stats.get("r", Event::SentToRetryTopic), 2);
    assert_eq!(tiered.stats.get("r", Event::DeadLettered), 1);
}

#[tokio::test(start_paused = true)]
async fn a_record_that_succeeds_from_a_tier_is_delivered_without_tier_headers() {
    let mut tiered = tiered_worker(2);
    let (first, _) = tiered.run(input()).await;
    assert_eq!(first.topic, "in.retry.1m");
    let (out, took) = tiered.run(read_back(&first, 0)).await;
    assert_eq!(out.topic, "out");
    assert!(close_to(took, Duration::from_secs(60)), "took {took:?}");
    assert_eq!(out.value.as_deref(), Some(&b"x"[..]));
    assert!(out.headers.iter().all(|(n, _)| !n.starts_with("sluice.retry.")), "{:?}", out.headers);
}

#[tokio::test(start_paused = true)]
async fn an_input_forging_a_not_before_is_not_held_and_a_tier_record_is() {
    let mut tiered = tiered_worker(2);
    // An input record forging tier headers is neither held nor believed.
    let mut forged = input();
    forged.headers.push(("sluice.retry.not-before".into(), b"99999999999999".to_vec()));
    forged.headers.push(("sluice.retry.attempts".into(), b"40".to_vec()));
    let (first, took) = tiered.run(forged).await;
    assert_eq!(took, Duration::from_secs(1), "two attempts and one backoff, not held");
    assert_eq!(first.topic, "in.retry.1m");
    assert_eq!(header(&first, "sluice.retry.attempts"), "2");
    assert_ne!(header(&first, "sluice.retry.not-before"), "99999999999999");
    assert_eq!(first.headers.iter().filter(|(n, _)| n == "sluice.retry.not-before").count(), 1);
    // The tier record is held for its delay, then runs as attempt 3 and passes.
    tiered.records.send(read_back(&first, 0)).await.unwrap();
    let started = Instant::now();
    let pending = tiered.acks.recv().await.unwrap();
    assert_eq!(pending.offset, 0);
    assert!(close_to(started.elapsed(), Duration::from_secs(60)), "took {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn the_poison_pill_breaker_counts_faults_across_tiers() {
    // Two attempts a pass, three faults make a poison pill: the second pass's first fault.
    let mut tiered = tiered_worker_with(chain_of("fx_panic", Vec::new()));
    let (first, _) = tiered.run(input()).await;
    assert_eq!(first.topic, "in.retry.1m");
    assert_eq!(header(&first, "sluice.retry.faults"), "2");
    let (dead, _) = tiered.run(read_back(&first, 0)).await;
    assert_eq!(dead.topic, "in.dlq", "not on to the second tier");
    assert_eq!(header(&dead, "sluice.dlq.attempts"), "3");
    assert!(header(&dead, "sluice.dlq.error.message").starts_with("poison pill: the plugin faulted on 3 attempts"));
}

/// On Apache Kafka: one route whose events recover in their first tier, one
/// whose events fail through both tiers. Every event is accounted for, none
/// runs before its tier's delay, and per key the outputs keep their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_tiers_delay_recover_and_dead_letter_every_event() {
    use crate::broker::{create_topics, produce, read_all, unique};
    use crate::pipeline::start_pipeline;

    let names = ["recover.in", "recover.out", "recover.dlq", "recover.retry.1s", "doomed.in", "doomed.out"];
    let [r_in, r_out, r_dlq, r_tier, d_in, d_out] = names.map(unique);
    let more = ["doomed.dlq", "doomed.retry.1s", "doomed.retry.2s"];
    let [d_dlq, d_tier1, d_tier2] = more.map(unique);
    let mut topics: Vec<(&str, i32)> =
        [&r_in, &r_out, &r_tier, &d_in, &d_out, &d_tier1, &d_tier2].map(|t| (t.as_str(), 2)).to_vec();
    topics.extend([(r_dlq.as_str(), 1), (d_dlq.as_str(), 1)]);
    create_topics(&topics).await;
    let records: Vec<(Option<String>, String)> = (0..60)
        .map(|i| (Some(format!("k{}", i % 6)), format!("{{\"key\":\"k{}\",\"seq\":{}}}", i % 6, i / 6)))
        .collect();
    produce(&r_in, &records).await;
    produce(&d_in, &records).await;

    let retry = "retry = { max_attempts = 2, initial_backoff = \"1ms\", max_backoff = \"1ms\" }";
    let routes = format!(
        "[[routes]]\nname = \"recover\"\ninputs = [\"{r_in}\"]\noutputs = [\"{r_out}\"]\ndlq = \"{r_dlq}\"\n{retry}\n\
         retry_topics = [{{ topic = \"{r_tier}\", delay = \"1s\" }}]\n\
         [[routes.chain]]\nplugin = \"fx_flaky\"\nconfig = {{ failures = 3 }}\n\
         [[routes]]\nname = \"doomed\"\ninputs = [\"{d_in}\"]\noutputs = [\"{d_out}\"]\ndlq = \"{d_dlq}\"\n{retry}\n\
         retry_topics = [{{ topic = \"{d_tier1}\", delay = \"1s\" }}, {{ topic = \"{d_tier2}\", delay = \"2s\" }}]\n\
         [[routes.chain]]\nplugin = \"fx_flaky\"\nconfig = {{ failures = 100 }}\n"
    );
    let running = start_pipeline(&unique("tiers"), &routes, "");
    // Each event completes twice per route with a tier: once into the tier, once out.
    running.until_completed(60 * 2 + 60 * 3).await;
    let stats = running.handle.stats.clone();
    running.stop().await;

    // recover: every event went to the tier once and came out on attempt 4.
    let tiered = read_all(&r_tier);
    assert_eq!(tiered.len(), 60);
    let out = read_all(&r_out);
    assert_eq!(out.len(), 60, "every event recovered from its tier");
    assert!(read_all(&r_dlq).is_empty());
    assert!(out.iter().all(|r| r.headers.keys().all(|h| !h.starts_with("sluice.retry."))), "no tier headers leak");
    for key in 0..6 {
        let seqs: Vec<i64> = out
            .iter()
            .filter(|r| r.key.as_deref() == Some(&format!("k{key}")))
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(r.value.as_deref().unwrap()).unwrap()["seq"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "k{key} in order: a whole key's events took the same path");
    }

    // doomed: through both tiers, then the DLQ as the input event it was.
    assert_eq!((read_all(&d_tier1).len(), read_all(&d_tier2).len()), (60, 60));
    assert!(read_all(&d_out).is_empty());
    let dead = read_all(&d_dlq);
    assert_eq!(dead.len(), 60);
    let mut offsets: Vec<(String, i64)> = Vec::new();
    let second_tier = read_all(&d_tier2);
    for r in &dead {
        let h = |name: &str| r.headers.get(name).cloned().unwrap_or_default();
        assert_eq!(h("sluice.dlq.topic"), d_in);
        assert_eq!(h("sluice.dlq.attempts"), "6", "two attempts per pass, three passes");
        assert_eq!(h("sluice.dlq.error.kind"), "retries-exhausted");
        offsets.push((h("sluice.dlq.partition"), h("sluice.dlq.offset").parse().unwrap()));
        // The last pass ran no earlier than the record's not-before in the second tier.
        let tier_record = second_tier
            .iter()
            .find(|t| {
                t.headers["sluice.retry.partition"] == h("sluice.dlq.partition")
                    && t.headers["sluice.retry.offset"] == h("sluice.dlq.offset")
            })
            .expect("its second-tier record");
        let not_before: u64 = tier_record.headers["sluice.retry.not-before"].parse().unwrap();
        assert!(h("sluice.dlq.failed-at").parse::<u64>().unwrap() >= not_before, "ran before it was due");
    }
    offsets.sort();
    offsets.dedup();
    assert_eq!(offsets.len(), 60, "each input event dead-lettered once");
    assert_eq!(stats.get("recover", Event::SentToRetryTopic), 60);
    assert_eq!(stats.get("doomed", Event::SentToRetryTopic), 120);
}
