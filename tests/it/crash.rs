//! Crash: `sluice run` killed with SIGKILL at random points while it works
//! through the Olist events, restarted each time, and then audited: every
//! event in the outputs or the DLQ, duplicates only of events that were past
//! the committed offset at some kill (the in-flight window), per-key order
//! kept. `SLUICE_CRASH_TRIALS` (default 3) sets the number of kills.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::audit::{self, Host, committed_offsets, env_count, high_watermarks, olist_events, until_committed};
use crate::broker::{bootstrap, create_topics, produce, read_all, unique};

const PARTITIONS: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_nothing() {
    let trials = env_count("SLUICE_CRASH_TRIALS", 3);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (input, output, dlq) = (unique("crash.in"), unique("crash.out"), unique("crash.dlq"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS), (&dlq, 1)]).await;
    let events = olist_events(usize::MAX);
    // Produced in slices, one before each run, so that every run has a
    // backlog to be killed in the middle of.
    let slices: Vec<_> = events.chunks(events.len().div_ceil(trials + 1)).collect();

    let dir = tempfile::tempdir().unwrap();
    let group = unique("crash");
    let config = audit::write_config(dir.path(), bootstrap(), &group, &input, &output, &dlq);
    let log = dir.path().join("sluice.log");
    let mut produced = 0;
    let mut crashes = 0;
    let mut mid_stream = 0;
    // After each kill, the committed offsets: what the next run starts from.
    let mut windows: Vec<Vec<i64>> = Vec::new();
    for trial in 0..trials {
        if let Some(slice) = slices.get(trial) {
            produce(&input, slice).await;
            produced += slice.len() as i64;
        }
        let before = high_watermarks(bootstrap(), &output, PARTITIONS);
        let mut host = Host::spawn(&config, &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill only once this run has written something: a kill before the
        // first record tests nothing but startup.
        while high_watermarks(bootstrap(), &output, PARTITIONS) == before {
            assert!(host.alive(), "trial {trial}: sluice run exited by itself:\n{}", Host::tail(&log));
            assert!(Instant::now() < deadline, "trial {trial}: no output within 60s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        if !host.kill9() {
            crashes += 1;
        }
        let committed = committed_offsets(bootstrap(), &group, &input, PARTITIONS);
        if committed.iter().sum::<i64>() < produced {
            mid_stream += 1;
        }
        windows.push(committed);
    }
    for slice in slices.iter().skip(trials) {
        produce(&input, slice).await;
        produced += slice.len() as i64;
    }
    // The last run finishes the work and stops cleanly.
    let host = Host::spawn(&config, &log);
    until_committed(bootstrap(), &group, &input, PARTITIONS, produced, Duration::from_secs(120)).await;
    let (status, _) = host.terminate().await;
    if !status.success() || Host::panicked(&log) {
        crashes += 1;
    }

    let inputs = read_all(&input);
    let result = audit::audit(&inputs, &read_all(&output), &read_all(&dlq));
    // An event may appear once more per kill that found it past the committed offset.
    let over_window: Vec<_> = result
        .appearances
        .iter()
        .filter(|((p, o), n)| **n > 1 + windows.iter().filter(|w| w[*p as usize] <= *o).count())
        .collect();
    audit::report(
        "crash",
        serde_json::json!({
            "trials": trials, "kills_mid_stream": mid_stream, "events": result.events, "lost": result.lost.len(),
            "duplicated": result.duplicated, "dead_lettered": result.dead_lettered,
            "out_of_order_keys": result.out_of_order.len(), "host_crashes": crashes, "seed": seed,
        }),
    );
    assert_eq!(result.events, events.len());
    assert!(result.lost.is_empty(), "lost {} events (seed {seed}): {:?}", result.lost.len(), &result.lost[..]);
    assert!(over_window.is_empty(), "duplicates outside the in-flight window (seed {seed}): {over_window:?}");
    assert!(result.out_of_order.is_empty(), "per-key order broken (seed {seed}): {:?}", result.out_of_order);
    assert_eq!(crashes, 0, "sluice run crashed:\n{}", Host::tail(&log));
    assert!(mid_stream > 0, "no kill landed while work was outstanding");
}
