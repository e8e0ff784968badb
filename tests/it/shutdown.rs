//! Shutdown under load: `sluice run` gets SIGTERM while a producer keeps
//! feeding its input. It must exit cleanly within `delivery.shutdown_grace`,
//! having committed everything it finished, so that the next run neither
//! loses nor repeats anything. `SLUICE_SHUTDOWN_TRIALS` (default 2) sets the
//! number of signals. (SIGKILL is the crash scenario, `crash.rs`.)

use std::time::{Duration, Instant};

use crate::audit::{self, Host, committed_offsets, env_count, feed, high_watermarks, olist_events, until_committed};
use crate::broker::{bootstrap, create_topics, read_all, unique};

const PARTITIONS: i32 = 4;
const GRACE: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_commits_what_is_done_and_exits_within_the_grace() {
    let trials = env_count("SLUICE_SHUTDOWN_TRIALS", 2);
    let (input, output, dlq) = (unique("term.in"), unique("term.out"), unique("term.dlq"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS), (&dlq, 1)]).await;
    let events = olist_events();
    let total = events.len() as i64;

    let dir = tempfile::tempdir().unwrap();
    let group = unique("term");
    let config = audit::write_config(dir.path(), bootstrap(), &group, &input, &output, &dlq);
    let text = std::fs::read_to_string(&config).unwrap().replace("shutdown_grace = \"10s\"", "shutdown_grace = \"8s\"");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("sluice.log");

    // The load: the events arrive in small slices for as long as the runs
    // last, so every signal lands while records are flowing in.
    let feeder = {
        let input = input.clone();
        let over = Duration::from_secs(2) * (trials as u32 + 1);
        tokio::spawn(async move { feed(bootstrap(), &input, &events, over).await })
    };

    let mut longest = Duration::ZERO;
    let mut crashes = 0;
    let mut signalled_mid_stream = 0;
    for trial in 0..trials {
        let before = high_watermarks(bootstrap(), &output, PARTITIONS);
        let mut host = Host::spawn(&config, &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        while high_watermarks(bootstrap(), &output, PARTITIONS) == before {
            assert!(host.alive(), "trial {trial}: sluice run exited by itself:\n{}", Host::tail(&log));
            assert!(Instant::now() < deadline, "trial {trial}: no output within 60s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if !feeder.is_finished() {
            signalled_mid_stream += 1;
        }
        let (status, took) = host.terminate().await;
        longest = longest.max(took);
        if !status.success() || Host::panicked(&log) {
            crashes += 1;
        }
        assert!(took < GRACE, "trial {trial}: took {took:?} to stop, over the grace of {GRACE:?}");
        let committed: i64 = committed_offsets(bootstrap(), &group, &input, PARTITIONS).iter().sum();
        assert!(committed > 0, "trial {trial}: nothing committed");
    }
    feeder.await.unwrap();
    let host = Host::spawn(&config, &log);
    until_committed(bootstrap(), &group, &input, PARTITIONS, total, Duration::from_secs(120)).await;
    let (status, took) = host.terminate().await;
    longest = longest.max(took);
    if !status.success() || Host::panicked(&log) {
        crashes += 1;
    }

    let result = audit::audit(&read_all(&input), &read_all(&output), &read_all(&dlq));
    let signals = std::fs::read_to_string(&log).unwrap().matches("SIGTERM: shutting down").count();
    audit::report(
        "shutdown-sigterm",
        serde_json::json!({
            "trials": trials, "signalled_mid_stream": signalled_mid_stream, "events": result.events,
            "lost": result.lost.len(), "duplicated": result.duplicated, "dead_lettered": result.dead_lettered,
            "out_of_order_keys": result.out_of_order.len(), "longest_exit_ms": longest.as_millis() as u64,
            "grace_ms": GRACE.as_millis() as u64, "host_crashes": crashes,
        }),
    );
    assert_eq!(result.events as i64, total);
    assert!(result.lost.is_empty(), "lost {} events: {:?}", result.lost.len(), result.lost);
    // A clean stop commits every input it finished: the next run repeats nothing.
    assert_eq!(result.duplicated, 0, "a run after SIGTERM repeated work the stopped one had finished");
    assert!(result.out_of_order.is_empty(), "per-key order broken: {:?}", result.out_of_order);
    assert_eq!(crashes, 0, "sluice run crashed or exited uncleanly:\n{}", Host::tail(&log));
    assert_eq!(signals, trials + 1, "every SIGTERM logged:\n{}", Host::tail(&log));
    assert!(signalled_mid_stream > 0, "no signal landed while the producer was still feeding");
}
