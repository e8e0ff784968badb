//! The pipeline on Apache Kafka: the whole path on real data, retries, the
//! DLQ and its headers, traps, forbidden topics, restarts and ordering.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice::config::{Config, LoadOptions};
use sluice::pipeline::{self, Handle, RunReport};
use tokio::task::JoinHandle;

use crate::broker::{self, Read, bootstrap, create_topics, produce, read_all, unique};
use crate::support::repo;

pub struct Running {
    pub handle: Handle,
    pub task: JoinHandle<anyhow::Result<RunReport>>,
}

/// Starts a pipeline on the test broker. `routes` is the TOML of the
/// `[[routes]]` tables; plugins come from this checkout's build.
pub fn start_pipeline(group: &str, routes: &str, extra: &str) -> Running {
    let text = format!(
        "[broker]\nbootstrap = \"{}\"\ngroup = \"{group}\"\n[broker.consumer]\n\"session.timeout.ms\" = 6000\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[reload]\nwatch = false\n[delivery]\nbatch_size = 64\nshutdown_grace = \"10s\"\n{extra}\n{routes}",
        bootstrap()
    );
    let options = LoadOptions { plugin_dir: Some(sluice::bundled::DIR.into()) };
    let config = Config::from_str_with(&text, "test.toml", repo(), &options).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let handle = Handle::new(options);
    let task = tokio::spawn(pipeline::run(config, bootstrap().to_owned(), handle.clone()));
    Running { handle, task }
}

impl Running {
    pub async fn until_completed(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.handle.stats.completed() < n {
            assert!(!self.task.is_finished(), "the pipeline stopped early");
            assert!(Instant::now() < deadline, "only {} of {n} inputs completed", self.handle.stats.completed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(self) -> RunReport {
        self.handle.shutdown.cancel();
        self.task.await.expect("pipeline task").expect("pipeline run")
    }
}

fn route(name: &str, input: &str, outputs: &[&str], allow: &[&str], dlq: &str, retry: &str, chain: &str) -> String {
    let list = |xs: &[&str]| xs.iter().map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "[[routes]]\nname = \"{name}\"\ninputs = [\"{input}\"]\noutputs = [{}]\nallow = [{}]\ndlq = \"{dlq}\"\nretry = {{ {retry} }}\n{chain}\n",
        list(outputs),
        list(allow)
    )
}

fn header<'a>(r: &'a Read, name: &str) -> &'a str {
    r.headers.get(name).map_or("", String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_chain_on_real_olist_events_accounts_for_every_event() {
    let input = unique("orders.events");
    let topics =
        ["orders.placed", "payments.approved", "shipments.dispatched", "shipments.delivered", "orders.canceled"]
            .map(|t| (t, unique(t)));
    let dlq = unique("orders.dlq");
    let mut create: Vec<(&str, i32)> = vec![(&input, 3), (&dlq, 1)];
    create.extend(topics.iter().map(|(_, t)| (t.as_str(), 2)));
    create_topics(&create).await;

    let data = repo().join("config/demo/data");
    let mut events = sluice::demo::olist::events_from_dir(&data).unwrap();
    events.truncate(1500);
    let expected = sluice::demo::olist::expected_counts(&events);
    let records: Vec<(Option<String>, String)> =
        events.iter().map(|e| (Some(e.key.clone()), String::from_utf8(e.value_bytes()).unwrap())).collect();
    produce(&input, &records).await;

    let topic_map = topics.iter().map(|(k, t)| format!("{} = \"{t}\"", event_type(k))).collect::<Vec<_>>().join(", ");
    let allow: Vec<&str> = topics.iter().map(|(_, t)| t.as_str()).collect();
    let chain = format!(
        "[[routes.chain]]\nplugin = \"validate\"\nconfig = {{ required = [\"eventId\", \"eventType\", \"order_id\"] }}\n\
         [[routes.chain]]\nplugin = \"enrich\"\n[[routes.chain.config.lookups]]\ntable = \"customers\"\nkey = \"customer_id\"\n\
         set = {{ customer_state = \"customer_state\" }}\n\
         [[routes.chain]]\nplugin = \"route\"\nconfig = {{ field = \"eventType\", unmatched = \"reject\", topics = {{ {topic_map} }} }}\n"
    );
    let tables =
        "[[tables]]\nname = \"customers\"\nfile = \"config/demo/data/olist_customers.csv\"\nkey = \"customer_id\"\n";
    let running = start_pipeline(
        &unique("demo"),
        &route("orders", &input, &[], &allow, &dlq, "max_attempts = 2", &chain),
        tables,
    );
    running.until_completed(events.len() as u64).await;
    let report = running.stop().await;

    for (kind, topic) in &topics {
        let got = read_all(topic);
        assert_eq!(got.len(), expected[event_type(kind)], "{kind} → {topic}");
        assert!(got.iter().all(|r| r.value.as_deref().unwrap().contains("\"customer_state\"")), "enriched");
        assert!(got.iter().all(|r| !header(r, "correlation-id").is_empty()), "correlation id on every output");
    }
    assert!(read_all(&dlq).is_empty(), "no event of the real data is invalid");
    let committed: i64 = report.committed.iter().filter(|((t, _), _)| *t == input).map(|(_, o)| *o).sum();
    assert_eq!(committed, events.len() as i64, "committed offsets cover every input");
}

/// Maps the test's topic prefixes back to event types.
fn event_type(prefix: &str) -> &'static str {
    match prefix {
        "orders.placed" => "OrderPlaced",
        "payments.approved" => "PaymentApproved",
        "shipments.dispatched" => "ShipmentDispatched",
        "shipments.delivered" => "ShipmentDelivered",
        _ => "OrderCanceled",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_in_order_and_never_reach_the_dlq() {
    let (input, output, dlq) = (unique("flaky.in"), unique("flaky.out"), unique("flaky.dlq"));
    create_topics(&[(&input, 2), (&output, 2), (&dlq, 1)]).await;
    // Five keys, twenty sequence numbers each, interleaved.
    let records: Vec<(Option<String>, String)> = (0..100)
        .map(|i| (Some(format!("k{}", i % 5)), format!("{{\"key\":\"k{}\",\"seq\":{}}}", i % 5, i / 5)))
        .collect();
    produce(&input, &records).await;
    let chain = "[[routes.chain]]\nplugin = \"fx_flaky\"\nconfig = { failures = 2 }\n";
    let retry = "max_attempts = 3, initial_backoff = \"1ms\", max_backoff = \"5ms\"";
    let running = start_pipeline(&unique("flaky"), &route("flaky", &input, &[&output], &[], &dlq, retry, chain), "");
    running.until_completed(100).await;
    let retried = running.handle.stats.get("flaky", sluice::stats::Event::Retried);
    running.stop().await;

    assert!(read_all(&dlq).is_empty(), "every event succeeded on its third attempt");
    let out = read_all(&output);
    assert_eq!(out.len(), 100);
    assert!(retried >= 200, "two retries per event: {retried}");
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut sorted = out.clone();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for r in sorted {
        let v: serde_json::Value = serde_json::from_str(r.value.as_deref().unwrap()).unwrap();
        let (key, seq) = (v["key"].as_str().unwrap().to_owned(), v["seq"].as_i64().unwrap());
        let prev = last.insert(key.clone(), seq).unwrap_or(-1);
        assert_eq!(seq, prev + 1, "per-key order broken for {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_reaches_the_dlq_with_every_header() {
    let (input, output, dlq) = (unique("rej.in"), unique("rej.out"), unique("rej.dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]).await;
    produce(&input, &[(Some("order-7".into()), "{\"eventId\":\"e-7\"}".into())]).await;
    let group = unique("rej");
    let chain = "[[routes.chain]]\nplugin = \"fx_reject\"\nconfig = { reason = \"order total is negative\" }\n";
    let running =
        start_pipeline(&group, &route("rejects", &input, &[&output], &[], &dlq, "max_attempts = 3", chain), "");
    running.until_completed(1).await;
    running.stop().await;

    assert!(read_all(&output).is_empty());
    let dead = read_all(&dlq);
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.key.as_deref(), Some("order-7"));
    assert_eq!(d.value.as_deref(), Some("{\"eventId\":\"e-7\"}"));
    assert_eq!(header(d, "sluice.dlq.topic"), input);
    assert_eq!(header(d, "sluice.dlq.partition"), "0");
    assert_eq!(header(d, "sluice.dlq.offset"), "0");
    assert!(header(d, "sluice.dlq.timestamp").parse::<i64>().unwrap() > 1_600_000_000_000);
    assert_eq!(header(d, "sluice.dlq.group"), group);
    assert_eq!(header(d, "sluice.dlq.route"), "rejects");
    assert!(header(d, "sluice.dlq.plugin").starts_with("fx_reject@"), "{}", header(d, "sluice.dlq.plugin"));
    assert_eq!(header(d, "sluice.dlq.plugin").len(), "fx_reject@".len() + 12);
    assert_eq!(header(d, "sluice.dlq.error.kind"), "rejected");
    assert_eq!(header(d, "sluice.dlq.error.message"), "order total is negative");
    assert_eq!(header(d, "sluice.dlq.attempts"), "1", "a reject is not retried");
    assert!(header(d, "sluice.dlq.failed-at").parse::<i64>().unwrap() > 1_600_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin_is_retried_then_dead_lettered_and_the_rest_flow() {
    let (input, output, dlq) = (unique("trap.in"), unique("trap.out"), unique("trap.dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]).await;
    let records: Vec<(Option<String>, String)> =
        ["a", "boom", "c"].iter().map(|v| (None, format!("{{\"v\":\"{v}\"}}"))).collect();
    produce(&input, &records).await;
    let chain = "[[routes.chain]]\nplugin = \"fx_panic\"\nconfig = { trigger = \"boom\" }\n";
    let retry = "max_attempts = 3, initial_backoff = \"1ms\", max_backoff = \"2ms\"";
    let running = start_pipeline(&unique("trap"), &route("traps", &input, &[&output], &[], &dlq, retry, chain), "");
    running.until_completed(3).await;
    running.stop().await;

    let out: Vec<String> = read_all(&output).into_iter().filter_map(|r| r.value).collect();
    assert_eq!(out, ["{\"v\":\"a\"}", "{\"v\":\"c\"}"]);
    let dead = read_all(&dlq);
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], "sluice.dlq.error.kind"), "trap");
    assert_eq!(header(&dead[0], "sluice.dlq.attempts"), "3");
    assert!(header(&dead[0], "sluice.dlq.error.message").contains("fx-panic: boom at offset 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_pill_is_dead_lettered_after_max_faults_not_max_attempts() {
    let (input, output, dlq) = (unique("pill.in"), unique("pill.out"), unique("pill.dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]).await;
    let records: Vec<(Option<String>, String)> = ["a", "spin", "c"].iter().map(|v| (None, (*v).to_owned())).collect();
    produce(&input, &records).await;
    let chain =
        "[[routes.chain]]\nplugin = \"fx_loop\"\nconfig = { trigger = \"spin\" }\nbudgets = { timeout = \"20ms\" }\n";
    let retry = "max_attempts = 50, max_faults = 2, initial_backoff = \"1ms\", max_backoff = \"2ms\"";
    let running = start_pipeline(&unique("pill"), &route("pill", &input, &[&output], &[], &dlq, retry, chain), "");
    running.until_completed(3).await;
    running.stop().await;

    let out: Vec<String> = read_all(&output).into_iter().filter_map(|r| r.value).collect();
    assert_eq!(out, ["a", "c"], "the records behind the poison pill flow on");
    let dead = read_all(&dlq);
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], "sluice.dlq.error.kind"), "timeout");
    assert_eq!(header(&dead[0], "sluice.dlq.attempts"), "2", "the breaker, not max_attempts = 50, decided");
    assert!(header(&dead[0], "sluice.dlq.error.message").starts_with("poison pill: the plugin faulted on 2 attempts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitting_to_a_forbidden_topic_dead_letters_the_event() {
    let (input, output, dlq) = (unique("forb.in"), unique("forb.out"), unique("forb.dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]).await;
    produce(&input, &[(None, "x".into())]).await;
    let chain = "[[routes.chain]]\nplugin = \"fx_forbidden\"\nconfig = { topic = \"payroll\" }\n";
    let running = start_pipeline(&unique("forb"), &route("forbid", &input, &[&output], &[], &dlq, "", chain), "");
    running.until_completed(1).await;
    running.stop().await;
    let dead = read_all(&dlq);
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], "sluice.dlq.error.kind"), "forbidden-topic");
    assert!(header(&dead[0], "sluice.dlq.error.message").contains("\"payroll\""));
    assert!(read_all(&output).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_committed_offsets_and_loses_nothing() {
    let (input, output, dlq) = (unique("rs.in"), unique("rs.out"), unique("rs.dlq"));
    create_topics(&[(&input, 2), (&output, 2), (&dlq, 1)]).await;
    let group = unique("restart");
    let batch = |from: usize| -> Vec<(Option<String>, String)> {
        (from..from + 200).map(|i| (Some(format!("k{}", i % 7)), format!("{{\"n\":{i}}}"))).collect()
    };
    let chain = "[[routes.chain]]\nplugin = \"passthrough\"\n";
    let config = route("restart", &input, &[&output], &[], &dlq, "", chain);

    produce(&input, &batch(0)).await;
    let first = start_pipeline(&group, &config, "");
    first.until_completed(200).await;
    first.stop().await;

    produce(&input, &batch(200)).await;
    let second = start_pipeline(&group, &config, "");
    second.until_completed(200).await;
    let completed_again = second.handle.stats.completed();
    second.stop().await;

    let mut seen: Vec<i64> = read_all(&output)
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(r.value.as_deref().unwrap()).unwrap()["n"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..400).collect::<Vec<i64>>(), "every input exactly once after a clean restart");
    assert_eq!(completed_again, 200, "the second run started from the committed offsets");
    // Regression: outputs were stamped with the time sluice produced them.
    let n = |r: &Read| serde_json::from_str::<serde_json::Value>(r.value.as_deref().unwrap()).unwrap()["n"].as_i64();
    let input_times: BTreeMap<_, _> = read_all(&input).iter().map(|r| (n(r), r.timestamp)).collect();
    for out in read_all(&output) {
        assert_eq!(out.timestamp, input_times[&n(&out)], "an output keeps its input's timestamp");
    }
    let _ = broker::bootstrap();
}
