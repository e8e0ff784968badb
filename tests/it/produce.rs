//! `sluice produce`: files and event streams loaded into a topic of the
//! embedded broker, then read back with a plain consumer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use sluice::kafka::{EmbeddedBroker, consumer_config};
use sluice::produce::{self, Outgoing, ProduceError, ProduceOptions};

/// A record as read back: key, value, headers.
type Consumed = (Option<String>, String, Vec<(String, String)>);

fn options(broker: &EmbeddedBroker, topic: &str, key: Option<&str>, file: &Path) -> ProduceOptions {
    ProduceOptions {
        bootstrap: broker.bootstrap(),
        properties: BTreeMap::new(),
        topic: topic.to_owned(),
        key_field: key.map(str::to_owned),
        file: file.to_path_buf(),
        show_progress: false,
    }
}

/// Every record of `topic` (partition by partition, each in offset order),
/// waiting until `expected` have arrived.
fn consume(broker: &EmbeddedBroker, topic: &str, partitions: i32, expected: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer =
        consumer_config(&broker.bootstrap(), "produce-test", &BTreeMap::new()).create().unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut by_partition: BTreeMap<i32, Vec<Consumed>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut count = 0;
    while count < expected && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.unwrap();
        let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8(b.to_vec()).unwrap());
        let headers = message.headers().map_or_else(Vec::new, |headers| {
            headers.iter().map(|h| (h.key.to_owned(), text(h.value).unwrap_or_default())).collect()
        });
        let record = (text(message.key()), text(message.payload()).unwrap_or_default(), headers);
        by_partition.entry(message.partition()).or_default().push(record);
        count += 1;
    }
    assert_eq!(count, expected, "records read back from {topic}");
    // Nothing more than expected.
    assert!(consumer.poll(Duration::from_millis(500)).is_none(), "{topic} holds more than {expected} records");
    by_partition.into_values().flatten().collect()
}

/// How many records `topic` holds, from the partitions' watermarks.
fn stored(broker: &EmbeddedBroker, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer =
        consumer_config(&broker.bootstrap(), "produce-count", &BTreeMap::new()).create().unwrap();
    (0..partitions)
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
            high - low
        })
        .sum()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_jsonl_file_arrives_compacted_keyed_and_in_order() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("orders", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "orders.jsonl",
        "{\"order_id\": \"o-1\", \"total\": 72.89, \"items\": [1, 2]}\n\
         \n\
         {\"order_id\": 2, \"note\": \"two  spaces\"}\n\
         {\"zeta\": true, \"order_id\": \"o-3\"}\n",
    );

    let report = produce::run(&options(&broker, "orders", Some("order_id"), &file)).await.unwrap();
    assert_eq!(report.records, 3);
    let expected = [
        (Some("o-1"), r#"{"order_id":"o-1","total":72.89,"items":[1,2]}"#),
        (Some("2"), r#"{"order_id":2,"note":"two  spaces"}"#),
        (Some("o-3"), r#"{"zeta":true,"order_id":"o-3"}"#),
    ];
    let bytes: usize = expected.iter().map(|(k, v)| k.map_or(0, str::len) + v.len()).sum();
    assert_eq!(report.bytes, bytes as u64);
    assert!(report.to_string().starts_with("produced 3 records ("), "{report}");

    let consumed = consume(&broker, "orders", 1, 3);
    let consumed: Vec<(Option<&str>, &str)> = consumed.iter().map(|(k, v, _)| (k.as_deref(), v.as_str())).collect();
    assert_eq!(consumed, expected);
}

#[tokio::test]
async fn without_a_key_field_records_have_no_key() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("plain", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "plain.ndjson", "[1, 2]\n\"text\"\n");
    let report = produce::run(&options(&broker, "plain", None, &file)).await.unwrap();
    assert_eq!(report.records, 2);
    let consumed = consume(&broker, "plain", 1, 2);
    assert_eq!(consumed, [(None, "[1,2]".to_owned(), vec![]), (None, "\"text\"".to_owned(), vec![])]);
}

/// 200 readings of the Chicago beach sensors, keyed by `Measurement ID`,
/// over three partitions.
#[tokio::test]
async fn a_csv_slice_of_sensor_readings_arrives_as_objects_of_strings() {
    let Some(source) = shared_data("chicago-beach-water-sensors/Beach_Water_Quality_-_Automated_Sensors.csv") else {
        return;
    };
    let slice: String = source.lines().take(201).map(|l| format!("{l}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "sensors.csv", &slice);

    // The expectation, built without the csv crate: this slice has no quoted
    // cells, so a row is its text split at commas.
    let mut lines = slice.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    for line in lines {
        let row: serde_json::Map<String, Value> =
            header.iter().zip(line.split(',')).map(|(h, v)| ((*h).to_owned(), json!(v))).collect();
        assert_eq!(row.len(), 10);
        let key = row["Measurement ID"].as_str().unwrap().to_owned();
        assert!(expected.insert(key, Value::Object(row)).is_none(), "Measurement ID is unique");
    }
    assert_eq!(expected.len(), 200);

    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("sensors", 3).unwrap();
    let report = produce::run(&options(&broker, "sensors", Some("Measurement ID"), &file)).await.unwrap();
    assert_eq!(report.records, 200);

    let consumed = consume(&broker, "sensors", 3, 200);
    let mut received: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value, _) in consumed {
        // Cells keep the header's order.
        assert!(value.starts_with(r#"{"Beach Name":"#), "{value}");
        received.insert(key.unwrap(), serde_json::from_str(&value).unwrap());
    }
    assert_eq!(received, expected);
}

#[tokio::test]
async fn a_bad_line_refuses_the_file_before_anything_is_produced() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("refused", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "orders.jsonl",
        "{\"id\": \"a\"}\n{\"id\": \"b\"}\n{\"id\": \"c\",}\n{\"id\": \"d\"}\n{\"name\": \"e\"}\n",
    );

    let err = produce::run(&options(&broker, "refused", Some("id"), &file)).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("2 bad lines, nothing was produced"), "{message}");
    assert!(message.contains("\n  line 3: not valid JSON at column 12"), "{message}");
    assert!(message.contains("\n  line 5: no key field \"id\""), "{message}");
    match err.downcast_ref::<ProduceError>() {
        Some(ProduceError::InvalidInput { file: named, lines, count }) => {
            assert_eq!(named, &file);
            assert_eq!(*count, 2);
            assert_eq!(lines.iter().map(|l| l.line).collect::<Vec<_>>(), [3, 5]);
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(stored(&broker, "refused", 1), 0);

    let csv = write(dir.path(), "rows.csv", "id,name\n1,a\n\n2\n");
    let err = produce::run(&options(&broker, "refused", Some("id"), &csv)).await.unwrap_err();
    assert!(format!("{err:#}").contains("\n  line 4: 1 field where the header has 2"), "{err:#}");
    assert_eq!(stored(&broker, "refused", 1), 0);
}

/// A record the producer refuses stops producing; the error names its line
/// and says how many records were delivered before it.
#[tokio::test]
async fn a_failed_delivery_names_the_line() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("small", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(4000);
    let file =
        write(dir.path(), "big.jsonl", &format!("{{\"id\": 1}}\n{{\"id\": 2, \"pad\": \"{big}\"}}\n{{\"id\": 3}}\n"));
    let mut opts = options(&broker, "small", Some("id"), &file);
    opts.properties.insert("message.max.bytes".to_owned(), "1000".to_owned());

    let err = produce::run(&opts).await.unwrap_err();
    match err.downcast_ref::<ProduceError>() {
        Some(ProduceError::Delivery { failures, count, delivered }) => {
            assert_eq!((*count, *delivered), (1, 1));
            assert_eq!(failures[0].at, "line 2");
        }
        other => panic!("expected Delivery, got {other:?}: {err:#}"),
    }
    assert!(format!("{err:#}").contains("line 2: "), "{err:#}");
    assert_eq!(stored(&broker, "small", 1), 1);
}

#[tokio::test]
async fn produce_events_keeps_keys_headers_and_order() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("events", 1).unwrap();
    let events = (1..=50).map(|n| {
        let value = json!({"n": n}).to_string().into_bytes();
        (format!("k{}", n % 7), value, vec![("eventType".to_owned(), b"Counted".to_vec())])
    });
    let report = produce::produce_events(&broker.bootstrap(), &BTreeMap::new(), "events", events).await.unwrap();
    assert_eq!(report.records, 50);

    let consumed = consume(&broker, "events", 1, 50);
    for (n, (key, value, headers)) in (1..=50).zip(consumed) {
        assert_eq!(key.as_deref(), Some(format!("k{}", n % 7).as_str()));
        assert_eq!(value, format!("{{\"n\":{n}}}"));
        assert_eq!(headers, [("eventType".to_owned(), "Counted".to_owned())]);
    }

    // An Outgoing without a key.
    let outgoing = Outgoing { key: None, value: b"{}".to_vec(), headers: vec![] };
    produce::produce_events(&broker.bootstrap(), &BTreeMap::new(), "events", [outgoing]).await.unwrap();
    assert_eq!(stored(&broker, "events", 1), 51);
}

/// The demo's Olist events go through `produce_events` unchanged.
#[tokio::test]
async fn the_olist_demo_events_load() {
    let dir = crate::support::repo().join("config/demo/data");
    let events = sluice::demo::olist::events_from_dir(&dir).unwrap();
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("olist.orders", 3).unwrap();
    let records = events.iter().map(|e| {
        let headers = vec![("eventType".to_owned(), e.event_type.as_bytes().to_vec())];
        (e.key.clone(), e.value_bytes(), headers)
    });
    let report = produce::produce_events(&broker.bootstrap(), &BTreeMap::new(), "olist.orders", records).await.unwrap();
    assert_eq!(report.records, events.len() as u64);
    assert_eq!(stored(&broker, "olist.orders", 3), events.len() as i64);
}

/// The command line, once `sluice produce` is wired into main.rs.
#[test]
fn the_cli_loads_a_file_and_refuses_a_bad_one() {
    use crate::support::{run, sluice};
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("cli", 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.csv", "id,name\n1,a\n2,b\n");
    let (code, stdout, stderr) =
        run(sluice().args(["produce", "--topic", "cli", "--key", "id", "--bootstrap", &broker.bootstrap()]).arg(&good));
    assert_eq!(code, 0, "{stderr}");
    assert!(format!("{stdout}{stderr}").contains("produced 2 records"), "{stdout}{stderr}");
    // stderr is not a terminal here: no progress bar drawn.
    assert!(!stderr.contains("records  "), "{stderr}");
    assert_eq!(consume(&broker, "cli", 1, 2).len(), 2);

    let bad = write(dir.path(), "bad.csv", "id,name\n1,a\n2\n");
    let (code, _, stderr) = run(sluice()
        .args(["produce", "--quiet", "--topic", "cli", "--key", "id", "--bootstrap", &broker.bootstrap()])
        .arg(&bad));
    assert_ne!(code, 0);
    assert!(stderr.contains("line 3: 1 field where the header has 2"), "{stderr}");
    assert_eq!(stored(&broker, "cli", 1), 2);
}

/// A shared dataset's text (see `sluice_sdk::testing::shared_data`).
fn shared_data(relative: &str) -> Option<String> {
    let path = sluice_sdk::testing::shared_data(relative)?;
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())))
}
