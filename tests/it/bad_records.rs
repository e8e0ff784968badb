//! The bad-record corpus: records a producer can put on a topic that a
//! pipeline must survive. Each case has its documented outcome
//! (RELIABILITY.md, "Bad records"), and none holds its partition: all share one partition,
//! and a good record produced after them comes out within seconds.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::broker::{bootstrap, create_topics_on, unique};
use crate::pipeline::start_pipeline;

/// Where a case must end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// In the output, unchanged.
    Output,
    /// In the DLQ, in full, with this `sluice.dlq.error.kind`.
    Dlq(&'static str),
    /// In the DLQ as a stub without the value, with this error kind.
    DlqStub(&'static str),
}

struct Case {
    name: &'static str,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    outcome: Outcome,
}

fn json(id: &str, pad: usize) -> Option<Vec<u8>> {
    Some(format!("{{\"eventId\":\"{id}\",\"pad\":\"{}\"}}", "x".repeat(pad)).into_bytes())
}

/// Like [`json`], padded with random letters: lz4 cannot shrink it below
/// a topic's limit.
fn incompressible(id: &str, pad: usize) -> Option<Vec<u8>> {
    use rand::Rng;
    let pad: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(pad).map(char::from).collect();
    Some(format!("{{\"eventId\":\"{id}\",\"pad\":\"{pad}\"}}").into_bytes())
}

fn corpus() -> Vec<Case> {
    let key = || Some(b"k".to_vec());
    let case = |name, key, value, outcome| Case { name, key, value, headers: Vec::new(), outcome };
    vec![
        case("null value", key(), None, Outcome::Dlq("rejected")),
        case("null key", None, json("null-key", 0), Outcome::Output),
        case("empty value", key(), Some(Vec::new()), Outcome::Dlq("rejected")),
        // Over the producer's message.max.bytes (1,000,000) with the default
        // settings, so neither the output nor the full DLQ record can be written.
        case("1 MiB value", key(), json("one-mib", 1 << 20), Outcome::DlqStub("produce-refused")),
        case("non-UTF-8 bytes", key(), Some(vec![0xff, 0xfe, 0x00, 0xc3, 0x28]), Outcome::Dlq("rejected")),
        case("malformed JSON", key(), Some(b"{\"eventId\": \"torn\",".to_vec()), Outcome::Dlq("rejected")),
        Case {
            name: "duplicate headers",
            key: key(),
            value: json("dup-headers", 0),
            headers: vec![("h".into(), b"1".to_vec()), ("h".into(), b"2".to_vec()), ("h".into(), b"1".to_vec())],
            outcome: Outcome::Output,
        },
        Case {
            name: "huge headers",
            key: key(),
            value: json("huge-headers", 0),
            headers: (0..8).map(|i| (format!("big-{i}"), vec![b'h'; 100_000])).collect(),
            outcome: Outcome::Output,
        },
        Case {
            name: "headers over the record limit",
            key: key(),
            value: json("over-headers", 0),
            headers: (0..12).map(|i| (format!("big-{i}"), vec![b'h'; 100_000])).collect(),
            outcome: Outcome::DlqStub("produce-refused"),
        },
        case("a good record after them all", key(), json("sentinel", 0), Outcome::Output),
    ]
}

async fn produce_cases(address: &str, topic: &str, cases: &[Case]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("message.max.bytes", "4000000")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    // One at a time, so that offset i is case i.
    for c in cases {
        let headers = c
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |h, (name, value)| h.insert(Header { key: name, value: Some(value) }));
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(k) = &c.key {
            record = record.key(k);
        }
        if let Some(v) = &c.value {
            record = record.payload(v);
        }
        producer.send(record, Duration::from_secs(30)).await.unwrap_or_else(|(e, _)| panic!("{}: {e}", c.name));
    }
}

fn read(topic: &str) -> Vec<OwnedMessage> {
    sluice::kafka::read_all(bootstrap(), topic, Duration::from_secs(60)).unwrap()
}

fn header<'a>(m: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    let headers = m.headers()?;
    headers.iter().filter(|h| h.key == name).last().and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// The record's own header names: without those the host adds on the way.
fn header_names(m: &OwnedMessage) -> Vec<String> {
    let own = |name: &&str| !name.starts_with("sluice.") && *name != "correlation-id";
    m.headers().map(|hs| hs.iter().map(|h| h.key).filter(own).map(str::to_owned).collect()).unwrap_or_default()
}

/// How many times case `offset` appears downstream: in the output (by its
/// value) or the DLQ (by its offset header).
fn appearances(offset: usize, case: &Case, outputs: &[OwnedMessage], letters: &[OwnedMessage]) -> usize {
    let out = outputs.iter().filter(|m| case.value.is_some() && m.payload() == case.value.as_deref()).count();
    let dead = letters.iter().filter(|m| header(m, "sluice.dlq.offset") == Some(&offset.to_string())).count();
    out + dead
}

fn report_corpus(scenario: &str, cases: &[Case], outputs: &[OwnedMessage], letters: &[OwnedMessage], took: Duration) {
    let seen: Vec<usize> = cases.iter().enumerate().map(|(i, c)| appearances(i, c, outputs, letters)).collect();
    crate::audit::report(
        scenario,
        serde_json::json!({
            "trials": 1, "events": cases.len(), "lost": seen.iter().filter(|n| **n == 0).count(),
            "duplicated": seen.iter().map(|n| n.saturating_sub(1)).sum::<usize>(), "dead_lettered": letters.len(),
            "took_ms": took.as_millis() as u64,
        }),
    );
}

fn routes(input: &str, output: &str, dlq: &str) -> String {
    format!(
        "[[routes]]\nname = \"bad\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n\
         retry = {{ max_attempts = 2, initial_backoff = \"10ms\" }}\n\
         [[routes.chain]]\nplugin = \"validate\"\nconfig = {{ required = [\"eventId\"] }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_record_gets_its_documented_outcome_and_none_stalls_the_partition() {
    let (input, output, dlq) = (unique("bad.in"), unique("bad.out"), unique("bad.dlq"));
    create_topics_on(bootstrap(), &[(&input, 1)], &[("max.message.bytes", "4000000")]).await;
    create_topics_on(bootstrap(), &[(&output, 1), (&dlq, 1)], &[]).await;
    let cases = corpus();
    produce_cases(bootstrap(), &input, &cases).await;

    let group = unique("bad");
    let started = std::time::Instant::now();
    let running = start_pipeline(&group, &routes(&input, &output, &dlq), "");
    running.until_completed(cases.len() as u64).await;
    let took = started.elapsed();
    running.stop().await;
    // Two attempts 10ms apart is the retry budget; startup takes a few seconds.
    assert!(took < Duration::from_secs(30), "the corpus took {took:?}: a record held the partition");

    let outputs = read(&output);
    let letters = read(&dlq);
    report_corpus("bad-records", &cases, &outputs, &letters, took);
    for (offset, case) in cases.iter().enumerate() {
        let offset = offset as i64;
        let id = case.value.as_deref().and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok());
        let id = id.as_ref().and_then(|v| v["eventId"].as_str()).unwrap_or("");
        let out: Vec<_> = outputs.iter().filter(|m| !id.is_empty() && m.payload() == case.value.as_deref()).collect();
        let dead: Vec<_> =
            letters.iter().filter(|m| header(m, "sluice.dlq.offset") == Some(&offset.to_string())).collect();
        match case.outcome {
            Outcome::Output => {
                assert_eq!((out.len(), dead.len()), (1, 0), "{}: expected in the output only", case.name);
                assert_eq!(out[0].key(), case.key.as_deref(), "{}: key kept", case.name);
                let names: Vec<_> = case.headers.iter().map(|(n, _)| n.clone()).collect();
                assert_eq!(header_names(out[0]), names, "{}: headers kept in order, repeats too", case.name);
            }
            Outcome::Dlq(kind) | Outcome::DlqStub(kind) => {
                assert_eq!((out.len(), dead.len()), (0, 1), "{}: expected in the DLQ only", case.name);
                let letter = dead[0];
                assert_eq!(header(letter, "sluice.dlq.error.kind"), Some(kind), "{}", case.name);
                let stub = matches!(case.outcome, Outcome::DlqStub(_));
                let dropped = case.value.as_ref().map_or(0, Vec::len).to_string();
                if stub {
                    assert_eq!(letter.payload(), None, "{}: a stub has no value", case.name);
                    assert_eq!(header(letter, "sluice.dlq.value-dropped"), Some(dropped.as_str()), "{}", case.name);
                    assert_eq!(
                        header(letter, "sluice.dlq.headers-dropped"),
                        Some(case.headers.len().to_string().as_str()),
                        "{}",
                        case.name
                    );
                } else {
                    assert_eq!(letter.payload(), case.value.as_deref(), "{}: the DLQ keeps the value", case.name);
                    assert_eq!(header(letter, "sluice.dlq.value-dropped"), None, "{}", case.name);
                }
            }
        }
    }
    assert_eq!(outputs.len(), cases.iter().filter(|c| c.outcome == Outcome::Output).count());
    assert_eq!(letters.len(), cases.len() - outputs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_topic_refuses_as_too_large_are_dead_lettered_and_the_partition_moves_on() {
    let (input, output, dlq) = (unique("small.in"), unique("small.out"), unique("small.dlq"));
    create_topics_on(bootstrap(), &[(&input, 1)], &[]).await;
    // The broker, not the producer, refuses: the producer's limit is 1 MB.
    create_topics_on(bootstrap(), &[(&output, 1), (&dlq, 1)], &[("max.message.bytes", "2048")]).await;
    let small = |id: &str| Case {
        name: "small",
        key: Some(b"k".to_vec()),
        value: json(id, 10),
        headers: Vec::new(),
        outcome: Outcome::Output,
    };
    let large = |id: &str| Case {
        name: "over the topic's max.message.bytes",
        key: Some(b"k".to_vec()),
        value: incompressible(id, 8000),
        headers: Vec::new(),
        outcome: Outcome::DlqStub("produce-refused"),
    };
    let cases = vec![small("s1"), large("l1"), small("s2"), large("l2"), large("l3"), small("s3")];
    produce_cases(bootstrap(), &input, &cases).await;

    let group = unique("small");
    let started = std::time::Instant::now();
    let running = start_pipeline(&group, &routes(&input, &output, &dlq), "");
    running.until_completed(cases.len() as u64).await;
    let took = started.elapsed();
    running.stop().await;

    let outputs = read(&output);
    report_corpus("broker-refuses-too-large", &cases, &outputs, &read(&dlq), took);
    let ids: Vec<_> = outputs
        .iter()
        .map(|m| serde_json::from_slice::<serde_json::Value>(m.payload().unwrap()).unwrap()["eventId"].clone())
        .collect();
    assert_eq!(ids, ["s1", "s2", "s3"]);
    let letters = read(&dlq);
    let offsets: Vec<_> = letters.iter().map(|m| header(m, "sluice.dlq.offset").unwrap().to_owned()).collect();
    assert_eq!(offsets, ["1", "3", "4"], "each refused input dead-lettered once, in order");
    for letter in &letters {
        assert_eq!(header(letter, "sluice.dlq.error.kind"), Some("produce-refused"));
        assert!(header(letter, "sluice.dlq.error.message").unwrap().contains("too large"), "{letter:?}");
        assert_eq!(letter.payload(), None, "the full DLQ record is over the limit too: a stub");
        assert_eq!(
            header(letter, "sluice.dlq.value-dropped"),
            Some(cases[1].value.as_ref().unwrap().len().to_string().as_str())
        );
        assert!(header(letter, "sluice.dlq.refused").unwrap().contains("too large"), "{letter:?}");
    }
}
