//! `/metrics`, `/readyz` and `/status` of a real pipeline on Kafka: exact
//! counters for a known mix of outcomes, histogram counts, lag back to 0,
//! readiness and plugin versions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value};
use sluice::admin;
use sluice::control::Shared;
use sluice::stats::Stats;
use tokio_util::sync::CancellationToken;

use crate::admin::http;
use crate::broker::{create_topics, produce, unique};
use crate::pipeline::{Running, start_pipeline};

/// (status, body) of a GET, off the async threads.
pub async fn get(url: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let (status, _, body) = http("GET", &url);
        (status, body)
    })
    .await
    .unwrap()
}

/// The admin server's base URL, once it listens.
pub async fn admin_url(running: &Running) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(address) = running.handle.admin.get() {
            return format!("http://{address}");
        }
        assert!(Instant::now() < deadline, "the admin server never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A sample's value; for a histogram, its count (the +Inf bucket).
fn number(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.iter().find(|b| b.less_than.is_infinite()).map_or(0.0, |b| b.count),
        Value::Summary(_) => panic!("no summaries are exported"),
    }
}

/// The value of `name` with exactly these labels; `None` when absent.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                && s.labels.iter().filter(|(k, _)| k.as_str() != "le").count() == labels.len()
        })
        .map(number)
}

async fn until_scraped(url: &str, what: &str, mut done: impl FnMut(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(format!("{url}/metrics")).await;
        assert_eq!(status, 200, "{body}");
        let scraped = scrape(&body);
        if done(&scraped) {
            return scraped;
        }
        assert!(Instant::now() < deadline, "never: {what}\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn route_toml(name: &str, input: &str, output: &str, dlq: &str, extra: &str, chain: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n{extra}\n{chain}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_outcome_exactly_and_lag_returns_to_zero() {
    let (input, output, dlq) = (unique("m.in"), unique("m.out"), unique("m.dlq"));
    let (slow_in, slow_out, slow_dlq) = (unique("m.slow.in"), unique("m.slow.out"), unique("m.slow.dlq"));
    create_topics(&[(&input, 2), (&output, 1), (&dlq, 1), (&slow_in, 1), (&slow_out, 1), (&slow_dlq, 1)]).await;
    // 16 pass, 2 lack "id" (rejected), 1 breaks the type rule (dropped), 1 traps (retried once, then DLQ).
    let mut records: Vec<(Option<String>, String)> =
        (0..16).map(|i| (Some(format!("k{i}")), format!("{{\"id\":{i},\"type\":\"ok\"}}"))).collect();
    records.push((Some("r1".into()), "{\"type\":\"ok\"}".into()));
    records.push((Some("r2".into()), "{\"type\":\"ok\"}".into()));
    records.push((Some("d".into()), "{\"id\":98,\"type\":\"other\"}".into()));
    records.push((Some("b".into()), "{\"id\":99,\"type\":\"boom\"}".into()));
    produce(&input, &records).await;
    produce(&slow_in, &[(None, "spin".into()), (None, "fine".into())]).await;

    let orders = route_toml(
        "orders",
        &input,
        &output,
        &dlq,
        "retry = { max_attempts = 2, initial_backoff = \"1ms\", max_backoff = \"2ms\" }",
        "[[routes.chain]]\nplugin = \"validate\"\n[routes.chain.config]\nrequired = [\"id\"]\n\
         [[routes.chain.config.rules]]\nfield = \"type\"\nin = [\"ok\", \"boom\"]\n\
         [[routes.chain]]\nplugin = \"fx_panic\"\nconfig = { trigger = \"boom\" }\n",
    );
    let slow = route_toml(
        "slow",
        &slow_in,
        &slow_out,
        &slow_dlq,
        "retry = { max_attempts = 1 }\nbudgets = { timeout = \"20ms\" }",
        "[[routes.chain]]\nplugin = \"fx_loop\"\nconfig = { trigger = \"spin\" }\n",
    );
    let running = start_pipeline(&unique("metrics"), &format!("{orders}\n{slow}"), "");
    let url = admin_url(&running).await;
    running.until_completed(22).await;

    // Lag comes from librdkafka's statistics, once a second.
    let lag_zero = |s: &Scrape| {
        [(&input, "0"), (&input, "1"), (&slow_in, "0")]
            .iter()
            .all(|(t, p)| value(s, "sluice_consumer_lag", &[("topic", t.as_str()), ("partition", p)]) == Some(0.0))
    };
    let s = until_scraped(&url, "every input partition's lag is 0", lag_zero).await;

    let r = [("route", "orders")];
    for (name, expected) in [
        ("sluice_events_consumed_total", 20.0),
        ("sluice_events_delivered_total", 16.0),
        ("sluice_events_emitted_total", 16.0),
        ("sluice_events_completed_total", 20.0),
    ] {
        assert_eq!(value(&s, name, &r), Some(expected), "{name}");
    }
    let by = |plugin: &'static str, kind: &'static str| [("route", "orders"), ("plugin", plugin), ("kind", kind)];
    assert_eq!(value(&s, "sluice_events_dropped_total", &[("route", "orders"), ("plugin", "validate")]), Some(1.0));
    assert_eq!(value(&s, "sluice_events_retried_total", &[("route", "orders"), ("plugin", "fx_panic")]), Some(1.0));
    assert_eq!(value(&s, "sluice_events_dead_lettered_total", &by("validate", "rejected")), Some(2.0));
    assert_eq!(value(&s, "sluice_events_dead_lettered_total", &by("fx_panic", "trap")), Some(1.0));
    assert_eq!(value(&s, "sluice_plugin_errors_total", &by("fx_panic", "trap")), Some(2.0), "both attempts trapped");
    assert_eq!(value(&s, "sluice_plugin_errors_total", &by("validate", "rejected")), Some(2.0));
    assert_eq!(value(&s, "sluice_budget_exhausted_total", &by("fx_panic", "trap")), None, "a trap is no budget");
    let slow_timeout = [("route", "slow"), ("plugin", "fx_loop"), ("kind", "timeout")];
    assert_eq!(value(&s, "sluice_budget_exhausted_total", &slow_timeout), Some(1.0));
    assert_eq!(value(&s, "sluice_events_dead_lettered_total", &slow_timeout), Some(1.0));
    assert_eq!(value(&s, "sluice_events_delivered_total", &[("route", "slow")]), Some(1.0));

    // Every input with outputs or a DLQ record: 16 delivered + 3 dead letters.
    assert_eq!(value(&s, "sluice_end_to_end_latency_seconds", &r), Some(19.0));
    assert_eq!(value(&s, "sluice_end_to_end_latency_seconds", &[("route", "slow")]), Some(2.0));
    let step = |plugin| [("route", "orders"), ("plugin", plugin)];
    // Every record went through validate at least once, the trap's twice;
    // batches re-run the records behind a retried one, so only a floor is exact.
    assert!(value(&s, "sluice_plugin_events_total", &step("validate")).unwrap() >= 21.0);
    assert!(value(&s, "sluice_plugin_events_total", &step("fx_panic")).unwrap() >= 18.0);
    let calls = value(&s, "sluice_plugin_call_duration_seconds", &step("validate")).unwrap();
    assert!((2.0..=21.0).contains(&calls), "one call per batch, at least the first and the retry: {calls}");
    assert_eq!(value(&s, "sluice_in_flight_events", &r), Some(0.0));
    assert_eq!(value(&s, "sluice_partitions_assigned", &[]), Some(3.0));
    assert_eq!(value(&s, "sluice_ready", &[]), Some(1.0));

    // Plugin versions, as /plugins reports them.
    let (_, plugins) = get(format!("{url}/plugins")).await;
    let plugins: serde_json::Value = serde_json::from_str(&plugins).unwrap();
    for name in ["validate", "fx_panic", "fx_loop"] {
        let version = plugins.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["current"]["version"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(version.starts_with(&format!("{name}@")), "{version}");
        assert_eq!(value(&s, "sluice_plugin_info", &[("plugin", name), ("version", &version)]), Some(1.0));
    }

    let (status, body) = get(format!("{url}/readyz")).await;
    assert_eq!((status, body.as_str()), (200, "{\"ready\":true}"));

    let (_, status) = get(format!("{url}/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let partitions = status["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{status}");
    let p: Vec<_> = partitions.iter().filter(|p| p["topic"] == input.as_str()).collect();
    assert_eq!(p.len(), 2);
    let stored: i64 = p.iter().map(|p| p["stored"].as_i64().unwrap()).sum();
    let high: i64 = p.iter().map(|p| p["high_watermark"].as_i64().unwrap()).sum();
    assert_eq!((stored, high), (20, 20), "{status}");
    assert!(p.iter().all(|p| p["route"] == "orders" && p["lag"] == 0 && p["in_flight"] == 0), "{status}");
    let errors = status["recent_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 4, "three dead letters on orders and one on slow: {status}");
    assert!(errors.iter().any(|e| e["kind"] == "timeout" && e["route"] == "slow"));
    assert!(!status.to_string().contains("\"id\":99"), "no record values in the status");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_partitions_are_assigned() {
    let (requests, _inbox) = tokio::sync::mpsc::channel(1);
    let shared = Arc::new(Shared::new(Arc::new(Stats::default()), requests));
    let listener = admin::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(admin::serve(listener, shared.clone(), shutdown.clone()));

    let (status, body) = get(format!("{url}/readyz")).await;
    assert_eq!((status, body.as_str()), (503, "{\"ready\":false,\"reason\":\"no partitions assigned yet\"}"));
    shared.stats.partitions.assigned(&[("t".into(), 0)]);
    assert_eq!(get(format!("{url}/readyz")).await.0, 200);
    let (_, metrics) = get(format!("{url}/metrics")).await;
    assert_eq!(value(&scrape(&metrics), "sluice_partitions_assigned", &[]), Some(1.0));
    shutdown.cancel();
}
