//! The real broker for integration tests: Apache Kafka started by
//! `scripts/kafka.sh`, with helpers to create topics, produce and read back.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::support::repo;

/// The Kafka bootstrap address: `SLUICE_KAFKA_BOOTSTRAP`, or the broker that
/// `scripts/kafka.sh start` runs (started here if needed).
pub fn bootstrap() -> &'static str {
    static ADDRESS: OnceLock<String> = OnceLock::new();
    ADDRESS.get_or_init(|| {
        if let Ok(address) = std::env::var("SLUICE_KAFKA_BOOTSTRAP") {
            return address;
        }
        let out = std::process::Command::new(repo().join("scripts/kafka.sh"))
            .arg("start")
            .output()
            .expect("run scripts/kafka.sh");
        assert!(out.status.success(), "scripts/kafka.sh start failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    })
}

/// A topic name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{}-{}", std::process::id(), nanos % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

pub async fn create_topics(topics: &[(&str, i32)]) {
    create_topics_on(bootstrap(), topics, &[]).await;
}

/// Creates `topics` on the broker at `address`, each with the topic
/// `settings` (e.g. `max.message.bytes`).
pub async fn create_topics_on(address: &str, topics: &[(&str, i32)], settings: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", address).create().expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| settings.iter().fold(NewTopic::new(t, *p, TopicReplication::Fixed(1)), |n, (k, v)| n.set(k, v)))
        .collect();
    let results = admin
        .create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))))
        .await
        .expect("create topics");
    for r in results {
        if let Err((topic, e)) = r {
            panic!("cannot create topic {topic}: {e}");
        }
    }
}

/// Produces `(key, value)` records and waits for every acknowledgement.
pub async fn produce(topic: &str, records: &[(Option<String>, String)]) {
    produce_on(bootstrap(), topic, records).await;
}

/// [`produce`] to the broker at `address`.
pub async fn produce_on(address: &str, topic: &str, records: &[(Option<String>, String)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    let mut futures = Vec::new();
    for (key, value) in records {
        let mut r = FutureRecord::<str, str>::to(topic).payload(value);
        if let Some(k) = key {
            r = r.key(k);
        }
        futures.push(producer.send(r, Duration::from_secs(30)));
    }
    for f in futures {
        f.await.expect("delivery");
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: BTreeMap<String, String>,
}

/// Reads every record currently in `topic`.
pub fn read_all(topic: &str) -> Vec<Read> {
    read_all_on(bootstrap(), topic)
}

/// [`read_all`] from the broker at `address`.
pub fn read_all_on(address: &str, topic: &str) -> Vec<Read> {
    sluice::kafka::read_all(address, topic, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("reading {topic}: {e:#}"))
        .into_iter()
        .map(|m| Read {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}
