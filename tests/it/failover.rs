//! Failover: the broker killed with SIGKILL and restarted under a running
//! host (on a broker of this test's own), and one of two hosts in a group
//! killed so that the other takes over its partitions. Each ends audited:
//! nothing lost, per-key order kept.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::audit::{self, Host, env_count, feed, high_watermarks, olist_events, until_committed};
use crate::broker::{bootstrap, create_topics, create_topics_on, produce, produce_on, read_all, read_all_on, unique};
use crate::own_broker::OwnBroker;

const PARTITIONS: i32 = 4;

/// Waits until `topic` holds more than `than` records.
async fn until_grows(address: &str, topic: &str, than: i64, host: &mut Host) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while high_watermarks(address, topic, PARTITIONS) <= than {
        assert!(host.alive(), "sluice run exited by itself:\n{}", Host::tail(&host.log));
        assert!(Instant::now() < deadline, "no output within 90s:\n{}", Host::tail(&host.log));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many partitions the host holds, from its log: assignments are
/// incremental (cooperative-sticky), so the sum of those assigned less
/// those revoked.
fn assigned(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let count = |l: &str| -> i64 {
        l.split("partitions=").nth(1).and_then(|n| n.split_whitespace().next()?.parse().ok()).unwrap_or(0)
    };
    let held: i64 = text
        .lines()
        .map(|l| {
            if l.contains("partitions assigned") {
                count(l)
            } else if l.contains("partitions revoked") {
                -count(l)
            } else {
                0
            }
        })
        .sum();
    held.max(0) as usize
}

/// Waits until the host's latest assignment holds `check`-many partitions.
async fn until_assigned(log: &Path, check: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check(assigned(log)) {
        assert!(Instant::now() < deadline, "{} never got its partitions:\n{}", log.display(), Host::tail(log));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_killed_and_restarted_mid_stream_loses_nothing() {
    let restarts = env_count("SLUICE_BROKER_RESTARTS", 1);
    let broker = tokio::task::spawn_blocking(OwnBroker::start).await.unwrap();
    let address = broker.bootstrap();
    let (input, output, dlq) = (unique("restart.in"), unique("restart.out"), unique("restart.dlq"));
    create_topics_on(&address, &[(&input, PARTITIONS), (&output, PARTITIONS), (&dlq, 1)], &[]).await;
    let events = olist_events();
    let slices: Vec<_> = events.chunks(events.len().div_ceil(restarts + 1)).collect();

    let dir = tempfile::tempdir().unwrap();
    let group = unique("restart");
    let config = audit::write_config(dir.path(), &address, &group, &input, &output, &dlq);
    let log = dir.path().join("sluice.log");
    let mut host = Host::spawn(&config, &log);
    let mut crashes = 0;
    for slice in slices.iter().take(restarts) {
        let before = high_watermarks(&address, &output, PARTITIONS);
        produce_on(&address, &input, slice).await;
        until_grows(&address, &output, before, &mut host).await;
        let broker = &broker;
        tokio::task::block_in_place(|| broker.kill9());
        // The host must notice the broker gone before it comes back.
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::block_in_place(|| broker.restart());
        if !host.alive() {
            crashes += 1;
            host = Host::spawn(&config, &log);
        }
    }
    for slice in slices.iter().skip(restarts) {
        produce_on(&address, &input, slice).await;
    }
    until_committed(&address, &group, &input, PARTITIONS, events.len() as i64, Duration::from_secs(180)).await;
    let (status, _) = host.terminate().await;
    if !status.success() || Host::panicked(&log) {
        crashes += 1;
    }

    let result =
        audit::audit(&read_all_on(&address, &input), &read_all_on(&address, &output), &read_all_on(&address, &dlq));
    audit::report(
        "broker-restart",
        serde_json::json!({
            "trials": restarts, "events": result.events, "lost": result.lost.len(), "duplicated": result.duplicated,
            "dead_lettered": result.dead_lettered, "out_of_order_keys": result.out_of_order.len(), "host_crashes": crashes,
        }),
    );
    assert_eq!(result.events, events.len());
    assert!(result.lost.is_empty(), "lost {} events: {:?}", result.lost.len(), result.lost);
    assert!(result.out_of_order.is_empty(), "per-key order broken: {:?}", result.out_of_order);
    assert_eq!(crashes, 0, "sluice run crashed:\n{}", Host::tail(&log));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_s_partitions_move_to_the_other_with_nothing_lost() {
    let (input, output, dlq) = (unique("scale.in"), unique("scale.out"), unique("scale.dlq"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS), (&dlq, 1)]).await;
    let events = olist_events();
    let (first, rest) = events.split_at(events.len() / 3);
    produce(&input, first).await;

    let dir = tempfile::tempdir().unwrap();
    let group = unique("scale");
    let config = audit::write_config(dir.path(), bootstrap(), &group, &input, &output, &dlq);
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = Host::spawn(&config, &log_a);
    let mut b = Host::spawn(&config, &log_b);
    // Both in the group: the partitions are shared out.
    until_assigned(&log_b, |n| n > 0).await;
    until_assigned(&log_a, |n| n > 0 && n < PARTITIONS as usize).await;
    let before = high_watermarks(bootstrap(), &output, PARTITIONS);
    let feeder = {
        let (input, rest) = (input.clone(), rest.to_vec());
        tokio::spawn(async move { feed(bootstrap(), &input, &rest, Duration::from_secs(3)).await })
    };
    // Kill A while records stream in, so that B must redo A's tail.
    until_grows(bootstrap(), &output, before, &mut a).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mid_stream = !feeder.is_finished();
    let mut crashes = usize::from(!b.alive());
    if !a.kill9() {
        crashes += 1;
    }
    let killed = Instant::now();
    until_assigned(&log_b, |n| n == PARTITIONS as usize).await;
    let takeover = killed.elapsed();
    let taken_over = assigned(&log_b);
    feeder.await.unwrap();
    until_committed(bootstrap(), &group, &input, PARTITIONS, events.len() as i64, Duration::from_secs(120)).await;
    let (status, _) = b.terminate().await;
    if !status.success() || Host::panicked(&log_b) || Host::panicked(&log_a) {
        crashes += 1;
    }

    let result = audit::audit(&read_all(&input), &read_all(&output), &read_all(&dlq));
    audit::report(
        "scale-out",
        serde_json::json!({
            "trials": 1, "events": result.events, "lost": result.lost.len(), "duplicated": result.duplicated,
            "dead_lettered": result.dead_lettered, "out_of_order_keys": result.out_of_order.len(),
            "survivor_partitions": taken_over, "takeover_ms": takeover.as_millis() as u64, "killed_mid_stream": mid_stream, "host_crashes": crashes,
        }),
    );
    assert_eq!(result.events, events.len());
    assert!(result.lost.is_empty(), "lost {} events: {:?}", result.lost.len(), result.lost);
    assert!(result.out_of_order.is_empty(), "per-key order broken: {:?}", result.out_of_order);
    assert_eq!(crashes, 0, "a host crashed:\n{}\n{}", Host::tail(&log_a), Host::tail(&log_b));
    assert_eq!(taken_over, PARTITIONS as usize, "the survivor holds every partition at the end");
    assert!(mid_stream, "the kill landed after the stream ended");
}
