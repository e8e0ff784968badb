//! `sluice dlq inspect` and `sluice dlq replay` on Apache Kafka: counts and
//! filters over real dead letters, replay with header stripping, resume
//! after a limit, SIGTERM and kill -9, dry runs, and refused arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice::dlq::{self, DeadLetter, ErrorKind};
use sluice::dlq_tools::filter::Filter;
use sluice::dlq_tools::{Connection, inspect};
use sluice::record::Record;
use sluice::sink::{OutRecord, Sink};

use crate::broker::{Read, bootstrap, create_topics, produce, read_all, unique};
use crate::pipeline::start_pipeline;
use crate::support::{run, sluice};

/// Produces records as they are, headers and all, and waits for each.
async fn produce_records(records: &[OutRecord]) {
    let producer: FutureProducer =
        sluice::kafka::producer_config(bootstrap(), &BTreeMap::new()).create().expect("producer");
    let sink = Sink::new(producer);
    let mut deliveries = Vec::new();
    for r in records {
        deliveries.push(sink.send(r).await.expect("send"));
    }
    for d in deliveries {
        d.await.expect("delivery report").expect("delivered");
    }
}

/// A dead letter as the pipeline writes it, for event `n` of `source`.
fn letter(dlq_topic: &str, source: &str, n: usize, kind: ErrorKind, plugin: &str) -> OutRecord {
    let original = Record {
        topic: source.into(),
        partition: (n % 2) as i32,
        offset: n as i64,
        timestamp: Some(1_700_000_000_000 + n as i64),
        key: Some(format!("k{n}").into_bytes()),
        value: Some(format!("{{\"eventId\":\"e-{n}\",\"n\":{n}}}").into_bytes()),
        headers: vec![("correlation-id".into(), format!("c-{n}").into_bytes())],
        attempt: 1,
    };
    let letter = DeadLetter {
        kind,
        message: format!("failed {n}"),
        plugin: plugin.into(),
        route: "orders".into(),
        group: "sluice".into(),
        attempts: 2,
    };
    dlq::record(&original, &letter, dlq_topic)
}

/// A DLQ of `count` letters: even events rejected by `validate`, odd ones trapped in `enrich`.
async fn build_dlq(partitions: i32, count: usize) -> (String, String, Vec<OutRecord>) {
    let (dlq_topic, target) = (unique("tools.dlq"), unique("tools.in"));
    create_topics(&[(&dlq_topic, partitions), (&target, 2)]).await;
    let letters: Vec<OutRecord> = (0..count)
        .map(|n| {
            let (kind, plugin) = if n % 2 == 0 {
                (ErrorKind::Rejected, "validate@0123456789ab")
            } else {
                (ErrorKind::Trap, "enrich@ba9876543210")
            };
            letter(&dlq_topic, "orders.events", n, kind, plugin)
        })
        .collect();
    produce_records(&letters).await;
    (dlq_topic, target, letters)
}

fn event_id(r: &Read) -> String {
    let value: serde_json::Value = serde_json::from_str(r.value.as_deref().unwrap()).unwrap();
    value["eventId"].as_str().unwrap().to_owned()
}

/// The group's committed offset per partition of `topic` (absent: none).
fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(at) => Some((e.partition(), at)),
            _ => None,
        })
        .collect()
}

fn end_offsets(topic: &str) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for r in read_all(topic) {
        let end = ends.entry(r.partition).or_insert(0);
        *end = (*end).max(r.offset + 1);
    }
    ends
}

fn replay(args: &[&str]) -> Command {
    let mut command = sluice();
    command.args(["dlq", "replay", "--bootstrap", bootstrap(), "--quiet"]).args(args);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_counts_real_dead_letters_by_kind_plugin_route_and_source() {
    let (rejects_in, panics_in, out, dlq_topic) =
        (unique("insp.rej"), unique("insp.panic"), unique("insp.out"), unique("insp.dlq"));
    create_topics(&[(&rejects_in, 2), (&panics_in, 1), (&out, 1), (&dlq_topic, 2)]).await;
    let events =
        |n: usize| (0..n).map(|i| (Some(format!("k{i}")), format!("{{\"eventId\":\"e-{i}\"}}"))).collect::<Vec<_>>();
    produce(&rejects_in, &events(5)).await;
    produce(&panics_in, &events(3)).await;
    let routes = format!(
        "[[routes]]\nname = \"rejects\"\ninputs = [\"{rejects_in}\"]\noutputs = [\"{out}\"]\ndlq = \"{dlq_topic}\"\n\
         [[routes.chain]]\nplugin = \"fx_reject\"\nconfig = {{ reason = \"no good\" }}\n\
         [[routes]]\nname = \"panics\"\ninputs = [\"{panics_in}\"]\noutputs = [\"{out}\"]\ndlq = \"{dlq_topic}\"\n\
         retry = {{ max_attempts = 2, initial_backoff = \"1ms\", max_backoff = \"2ms\" }}\n\
         [[routes.chain]]\nplugin = \"fx_panic\"\n"
    );
    let running = start_pipeline(&unique("insp"), &routes, "");
    running.until_completed(8).await;
    running.stop().await;
    // Someone else's record in the DLQ topic: counted, never hidden.
    produce(&dlq_topic, &[(Some("stray".into()), "\u{1}not sluice".into())]).await;

    let options = |filter: Filter, samples: usize| inspect::InspectOptions {
        connection: Connection::new(bootstrap()),
        topic: dlq_topic.clone(),
        filter,
        samples,
    };
    let all = inspect::run(&options(Filter::default(), 3)).await.unwrap();
    assert_eq!((all.records, all.matched, all.foreign), (9, 9, 1));
    let kinds: Vec<(&str, u64)> = all.counts.by_kind.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(kinds, [("rejected", 5), ("trap", 3), ("unknown", 1)]);
    let routes: Vec<(&str, u64)> = all.counts.by_route.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(routes, [("panics", 3), ("rejects", 5), ("unknown", 1)]);
    assert_eq!(all.counts.by_source_topic.get(&rejects_in), Some(&5));
    assert_eq!(all.counts.by_source_topic.get(&panics_in), Some(&3));
    let plugins: Vec<&String> = all.counts.by_plugin.keys().collect();
    assert_eq!(plugins.len(), 3, "{plugins:?}");
    assert!(plugins[0].starts_with("fx_panic@") && plugins[1].starts_with("fx_reject@") && plugins[2] == "unknown");
    assert_eq!(all.samples.len(), 3);
    assert_eq!(all.partitions.values().map(|r| r.end - r.low).sum::<i64>(), 9);

    let mut traps = Filter::default();
    traps.add("kind", "trap", "--kind").unwrap();
    let only = inspect::run(&options(traps, 10)).await.unwrap();
    assert_eq!((only.records, only.matched), (9, 3));
    assert!(only.samples.iter().all(|s| s.kind == "trap" && s.plugin.starts_with("fx_panic@")));
    let original = only.samples[0].original.clone().unwrap();
    assert!(original.starts_with(&format!("{panics_in}/0/")), "{original}");

    // The binary: flags, a plugin name without its hash, JSON out.
    let (code, stdout, stderr) = run(sluice()
        .args(["dlq", "inspect", &dlq_topic, "--bootstrap", bootstrap(), "--json"])
        .args(["--plugin", "fx_reject", "--route", "rejects,panics"]));
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["matched"], 5);
    assert_eq!(json["by_kind"]["rejected"], 5);
    assert_eq!(json["samples"].as_array().unwrap().len(), 3, "--samples defaults to 3");
    assert_eq!(json["samples"][0]["message"], "no good");

    let (code, stdout, stderr) =
        run(sluice().args(["dlq", "inspect", &dlq_topic, "--bootstrap", bootstrap(), "--kind", "unknown"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("matching kind=unknown: 1\n"), "{stdout}");
    assert!(stdout.contains("value:   \\u{1}not sluice (11 bytes)"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_of_an_empty_topic_terminates_and_a_missing_one_is_named() {
    let empty = unique("insp.empty");
    create_topics(&[(&empty, 3)]).await;
    let (code, stdout, stderr) = run(sluice().args(["dlq", "inspect", &empty, "--bootstrap", bootstrap()]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("{empty}: 0 records in 3 partitions")), "{stdout}");

    let missing = unique("insp.missing");
    let (code, _, stderr) = run(sluice().args(["dlq", "inspect", &missing, "--bootstrap", bootstrap()]));
    assert_eq!(code, 2);
    assert!(stderr.contains(&format!("topic \"{missing}\" does not exist on {}", bootstrap())), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_a_filter_produces_exactly_the_matching_records_without_dlq_headers() {
    let (dlq_topic, target, letters) = build_dlq(2, 10).await;
    let group = unique("replay.filter");
    let (code, stdout, stderr) =
        run(&mut replay(&["--from", &dlq_topic, "--to", &target, "--group", &group, "--kind", "rejected"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("replayed 5 of 10 records"), "{stdout}");
    assert!(stdout.contains("(5 skipped by filter: kind=rejected)"), "{stdout}");

    let got = read_all(&target);
    let ids: BTreeSet<String> = got.iter().map(event_id).collect();
    assert_eq!(ids, (0..10).step_by(2).map(|n| format!("e-{n}")).collect::<BTreeSet<_>>());
    assert_eq!(got.len(), 5, "each exactly once");
    let dead = read_all(&dlq_topic);
    for r in &got {
        assert!(r.headers.keys().all(|h| !h.starts_with(dlq::PREFIX)), "{:?}", r.headers);
        let n: usize = event_id(r)[2..].parse().unwrap();
        let original = &letters[n];
        assert_eq!(r.key.as_deref().map(str::as_bytes), original.key.as_deref());
        assert_eq!(r.value.as_deref().map(str::as_bytes), original.value.as_deref());
        assert_eq!(r.timestamp, original.timestamp);
        assert_eq!(r.headers["correlation-id"], format!("c-{n}"));
        let from = &r.headers["sluice.replay.from"];
        let source = dead.iter().find(|d| format!("{dlq_topic}/{}/{}", d.partition, d.offset) == *from).unwrap();
        assert_eq!(source.value, r.value, "sluice.replay.from names the DLQ record it came from");
    }
    assert_eq!(committed(&group, &dlq_topic, 2), end_offsets(&dlq_topic), "skips are committed too");

    // The next run starts at the end: nothing again.
    let (code, stdout, _) =
        run(&mut replay(&["--from", &dlq_topic, "--to", &target, "--group", &group, "--kind", "rejected"]));
    assert_eq!(code, 0);
    assert!(stdout.starts_with("replayed 0 of 0 records"), "{stdout}");
    assert_eq!(read_all(&target).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_stopped_at_its_limit_resumes_where_it_stopped() {
    let (dlq_topic, target, _) = build_dlq(2, 40).await;
    let group = unique("replay.limit");
    let (code, stdout, stderr) =
        run(&mut replay(&["--from", &dlq_topic, "--to", &target, "--group", &group, "--limit", "15"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("stopped at --limit; 25 records left"), "{stdout}");
    assert_eq!(read_all(&target).len(), 15);
    assert_eq!(committed(&group, &dlq_topic, 2).values().sum::<i64>(), 15, "committed exactly what was replayed");

    let (code, stdout, stderr) = run(&mut replay(&["--from", &dlq_topic, "--to", &target, "--group", &group]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("replayed 25 of 25 records"), "{stdout}");
    let got = read_all(&target);
    assert_eq!(got.len(), 40, "no duplicates when the first run stopped cleanly");
    assert_eq!(got.iter().map(event_id).collect::<BTreeSet<_>>().len(), 40);
    assert_eq!(committed(&group, &dlq_topic, 2), end_offsets(&dlq_topic));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_then_kill_9_then_a_rerun_loses_nothing() {
    let (dlq_topic, target, _) = build_dlq(2, 60).await;
    let group = unique("replay.kill");
    let args = ["--from", dlq_topic.as_str(), "--to", target.as_str(), "--group", group.as_str(), "--rate", "20/s"];
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while read_all(&target).len() < n {
            assert!(Instant::now() < deadline, "fewer than {n} records replayed");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // SIGTERM: what was produced is acknowledged and committed, exit 130.
    let child = replay(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for(5);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("interrupted;"), "{stdout}");
    let after_term = read_all(&target).len() as i64;
    assert!(after_term < 60, "stopped before the end");
    assert_eq!(committed(&group, &dlq_topic, 2).values().sum::<i64>(), after_term, "committed = delivered");

    // kill -9: no chance to commit the last in-flight records.
    let mut child = replay(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for(after_term as usize + 5);
    child.kill().unwrap();
    child.wait().unwrap();

    let (code, stdout, stderr) = run(&mut replay(&["--from", &dlq_topic, "--to", &target, "--group", &group]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("reached the end offsets taken at the start; 0 records left"), "{stdout}");
    let got = read_all(&target);
    let ids: BTreeSet<String> = got.iter().map(event_id).collect();
    assert_eq!(ids.len(), 60, "every dead letter is in the target at least once");
    assert!(got.len() >= 60);
    assert_eq!(committed(&group, &dlq_topic, 2), end_offsets(&dlq_topic));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_produces_and_commits_nothing() {
    let (dlq_topic, target, _) = build_dlq(1, 6).await;
    let group = unique("replay.dry");
    let (code, stdout, stderr) = run(&mut replay(&[
        "--from",
        &dlq_topic,
        "--to",
        &target,
        "--group",
        &group,
        "--dry-run",
        "--plugin",
        "enrich",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("dry run: would replay 3 of 6 records"), "{stdout}");
    assert!(stdout.contains("nothing was produced or committed"), "{stdout}");
    assert_eq!(stdout.matches("kind=trap plugin=enrich@ba9876543210").count(), 3, "{stdout}");
    assert!(read_all(&target).is_empty());
    assert!(committed(&group, &dlq_topic, 1).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_unsafe_targets_and_bad_arguments_naming_them() {
    let (dlq_topic, target, _) = build_dlq(1, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    let plugins = crate::support::plugin("passthrough").parent().unwrap().to_path_buf();
    std::fs::write(
        &config,
        format!(
            "[broker]\nbootstrap = \"{}\"\ngroup = \"g\"\n[plugins]\ndir = \"{}\"\n\
             [[routes]]\nname = \"a\"\ninputs = [\"{target}\"]\ndlq = \"{dlq_topic}\"\n[[routes.chain]]\nplugin = \"passthrough\"\n\
             [[routes]]\nname = \"b\"\ninputs = [\"other.in\"]\ndlq = \"other.dlq\"\n[[routes.chain]]\nplugin = \"passthrough\"\n",
            bootstrap(),
            plugins.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--from", &dlq_topic, "--to", &dlq_topic], "--to: \"@\" is the DLQ being replayed (--from)"),
        (&["--from", &dlq_topic, "--to", "nope.missing"], "--to: topic \"nope.missing\" does not exist"),
        (&["--from", &dlq_topic, "--to", &target, "--rate", "0/s"], "invalid value '0/s' for '--rate <N/s>'"),
        (&["--from", &dlq_topic, "--to", &target, "--rate", "fast"], "\"fast\" is not a rate"),
        (&["--from", &dlq_topic, "--to", &target, "--filter", "colour=red"], "--filter: unknown filter key \"colour\""),
        (&["--from", &dlq_topic, "--to", &target, "--kind", "boom"], "--kind: unknown error kind \"boom\""),
        (&["--from", &dlq_topic, "--to", &target, "--limit", "0"], "invalid value '0' for '--limit <N>'"),
        (&["--from", "nope.dlq", "--to", &target], "topic \"nope.dlq\" does not exist"),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = run(&mut replay(args));
        let expected = expected.replace('@', &dlq_topic);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
    let (code, _, stderr) =
        run(sluice().args(["dlq", "replay", "--config", config, "--from", &dlq_topic, "--to", "other.dlq"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--to: \"other.dlq\" is the DLQ of a route in the config"), "{stderr}");
    assert!(read_all(&target).is_empty(), "nothing was produced by a refused replay");

    // With the config's broker, a safe target works.
    let (code, stdout, stderr) =
        run(sluice().args(["dlq", "replay", "--quiet", "--config", config, "--from", &dlq_topic, "--to", &target]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("replayed 2 of 2 records"), "{stdout}");
}
