//! In-place retries wait the policy's backoff between attempts, measured on
//! tokio's paused clock: no real sleeping, exact durations.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use sluice::chain::{Chain, Step, Targets};
use sluice::config::RetryPolicy;
use sluice::invoke::Invoker;
use sluice::kafka::{EmbeddedBroker, producer_config};
use sluice::partition::{RouteContext, Worker};
use sluice::record::Record;
use sluice::runtime::{Budgets, Runtime};
use sluice::sink::Sink;
use sluice::stats::{Event, Stats};
use sluice::tables::Tables;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::plugin;

pub fn flaky_chain(failures: u32) -> Chain {
    chain_of("fx_flaky", vec![("failures".to_owned(), failures.to_string())])
}

/// A one-step chain of fixture `name` with `config`, emitting to `out`.
pub fn chain_of(name: &str, config: Vec<(String, String)>) -> Chain {
    let runtime = Runtime::new().unwrap();
    let loaded = runtime.load(&plugin(name), &Budgets::default()).unwrap();
    let invoker = Invoker::new(loaded, config, Arc::new(Tables::default()), Budgets::default()).unwrap();
    let targets = Targets { outputs: vec!["out".into()], allow: ["out".to_owned()].into() };
    Chain { steps: vec![Step { invoker, budgets: Budgets::default() }], targets: Arc::new(targets), lineage: "".into() }
}

#[tokio::test(start_paused = true)]
async fn retries_wait_exponential_backoff_then_deliver() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("out", 1).unwrap();
    let producer: FutureProducer = producer_config(&broker.bootstrap(), &Default::default()).create().unwrap();
    let stats = Arc::new(Stats::default());
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let retry = RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        multiplier: 2.0,
        jitter: 0.0,
        max_faults: 3,
    };
    let worker = Worker {
        chain: flaky_chain(3),
        route: Arc::new(RouteContext {
            name: "r".into(),
            group: "g".into(),
            dlq: "dlq".into(),
            retry,
            retry_topics: Vec::new(),
            batch_size: 16,
        }),
        versions: None,
        sink: Sink::new(producer),
        acks: ack_tx,
        stats: stats.clone(),
        cancel: CancellationToken::new(),
    };
    let (tx, rx) = mpsc::channel(8);
    let started = tokio::time::Instant::now();
    tokio::spawn(worker.run(rx));
    tx.send(Record { topic: "in".into(), offset: 42, value: Some(b"x".to_vec()), attempt: 1, ..Record::default() })
        .await
        .unwrap();
    let pending = ack_rx.recv().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(pending.offset, 42);
    assert_eq!(pending.outputs.len(), 1, "delivered to the output after the retries");
    assert_eq!(pending.outputs[0].0.topic, "out");
    // Attempts 2, 3 and 4 waited 1 s, 2 s and 4 s.
    assert!(waited >= Duration::from_secs(7) && waited < Duration::from_millis(7100), "waited {waited:?}");
    assert_eq!(stats.get("r", Event::Retried), 3);
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_go_to_the_dlq_after_max_attempts() {
    let broker = EmbeddedBroker::start().unwrap();
    let producer: FutureProducer = producer_config(&broker.bootstrap(), &Default::default()).create().unwrap();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(1),
        multiplier: 4.0,
        jitter: 0.0,
        max_faults: 3,
    };
    let worker = Worker {
        chain: flaky_chain(10),
        route: Arc::new(RouteContext {
            name: "r".into(),
            group: "g".into(),
            dlq: "the.dlq".into(),
            retry,
            retry_topics: Vec::new(),
            batch_size: 16,
        }),
        versions: None,
        sink: Sink::new(producer),
        acks: ack_tx,
        stats: Arc::new(Stats::default()),
        cancel: CancellationToken::new(),
    };
    let (tx, rx) = mpsc::channel(8);
    let started = tokio::time::Instant::now();
    tokio::spawn(worker.run(rx));
    tx.send(Record { topic: "in".into(), offset: 7, value: Some(b"x".to_vec()), attempt: 1, ..Record::default() })
        .await
        .unwrap();
    let pending = ack_rx.recv().await.unwrap();
    // 500 ms, then 2 s capped to 1 s.
    assert_eq!(started.elapsed().as_millis(), 1500);
    let (dead, _) = &pending.dead_letters[0];
    assert_eq!(dead.topic, "the.dlq");
    assert_eq!(dead.header("sluice.dlq.error.kind"), Some(&b"retries-exhausted"[..]));
    assert_eq!(dead.header("sluice.dlq.attempts"), Some(&b"3"[..]));
    assert_eq!(dead.header("sluice.dlq.error.message"), Some(&b"transient failure 3/10"[..]));
}
