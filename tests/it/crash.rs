//! Crash: `sluice run` killed with SIGKILL at random points while a producer
//! streams the Olist events into its input, restarted each time, and then
//! audited: every event in the outputs or the DLQ, per-key order kept, and
//! duplicates only of events that were in flight at some kill (consumed, so
//! past the committed offset, but below the input's high watermark).
//! `SLUICE_CRASH_TRIALS` (default 3) sets the number of kills,
//! `SLUICE_CRASH_SEED` the kill points.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::audit::{
    self, Host, committed_offsets, env_count, feed, high_watermark_each, olist_events, until_committed,
};
use crate::broker::{bootstrap, create_topics, read_all, unique};

const PARTITIONS: i32 = 4;
/// How long each run's slice takes to stream in; the kill lands within it.
const STREAM: Duration = Duration::from_secs(2);

/// At a kill, per partition: the committed offset (where the next run
/// starts) and the input's high watermark (nothing above it was consumed).
struct Window {
    committed: Vec<i64>,
    end: Vec<i64>,
}

impl Window {
    fn holds(&self, partition: i32, offset: i64) -> bool {
        let p = partition as usize;
        self.committed[p] <= offset && offset < self.end[p]
    }

    fn size(&self) -> i64 {
        self.end.iter().zip(&self.committed).map(|(e, c)| (e - c).max(0)).sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_nothing() {
    let trials = env_count("SLUICE_CRASH_TRIALS", 3);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (input, output, dlq) = (unique("crash.in"), unique("crash.out"), unique("crash.dlq"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS), (&dlq, 1)]).await;
    let events = olist_events();
    // One slice streams in during each run, so every kill lands while
    // records are arriving, and the last run gets the rest.
    let slices: Vec<Vec<_>> = events.chunks(events.len().div_ceil(trials + 1)).map(<[_]>::to_vec).collect();

    let dir = tempfile::tempdir().unwrap();
    let group = unique("crash");
    let config = audit::write_config(dir.path(), bootstrap(), &group, &input, &output, &dlq);
    let log = dir.path().join("sluice.log");
    let mut crashes = 0;
    let mut mid_stream = 0;
    let mut windows: Vec<Window> = Vec::new();
    for trial in 0..trials {
        let before: i64 = high_watermark_each(bootstrap(), &output, PARTITIONS).iter().sum();
        // A tenth of the slice before the start, so that the run has work at
        // once; the rest streams in while it runs.
        let slice = slices.get(trial).cloned().unwrap_or_default();
        let (primer, stream) = slice.split_at(slice.len() / 10);
        feed(bootstrap(), &input, primer, Duration::ZERO).await;
        let mut host = Host::spawn(&config, &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill only once this run has written something: a kill before the
        // first record tests nothing but startup.
        while high_watermark_each(bootstrap(), &output, PARTITIONS).iter().sum::<i64>() == before {
            assert!(host.alive(), "trial {trial}: sluice run exited by itself:\n{}", Host::tail(&log));
            assert!(Instant::now() < deadline, "trial {trial}: no output within 60s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let feeder = {
            let (input, stream) = (input.clone(), stream.to_vec());
            tokio::spawn(async move { feed(bootstrap(), &input, &stream, STREAM).await })
        };
        // Past the commit interval (1 s) at times, so that some kills find
        // work committed and some not.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..STREAM.as_millis() as u64))).await;
        if !feeder.is_finished() {
            mid_stream += 1;
        }
        if !host.kill9() {
            crashes += 1;
        }
        // Sampled after the kill, so that nothing consumed is above it.
        let end = high_watermark_each(bootstrap(), &input, PARTITIONS);
        windows.push(Window { committed: committed_offsets(bootstrap(), &group, &input, PARTITIONS), end });
        feeder.await.unwrap();
    }
    for slice in slices.iter().skip(trials) {
        feed(bootstrap(), &input, slice, Duration::ZERO).await;
    }
    // The last run finishes the work and stops cleanly.
    let host = Host::spawn(&config, &log);
    until_committed(bootstrap(), &group, &input, PARTITIONS, events.len() as i64, Duration::from_secs(300)).await;
    let (status, _) = host.terminate().await;
    if !status.success() || Host::panicked(&log) {
        crashes += 1;
    }

    let result = audit::audit(&read_all(&input), &read_all(&output), &read_all(&dlq));
    // An event may appear once more per kill that caught it in flight.
    let over_window: Vec<_> = result
        .appearances
        .iter()
        .filter(|((p, o), n)| **n > 1 + windows.iter().filter(|w| w.holds(*p, *o)).count())
        .collect();
    audit::report(
        "crash",
        serde_json::json!({
            "trials": trials, "kills_mid_stream": mid_stream, "events": result.events, "lost": result.lost.len(),
            "duplicated": result.duplicated, "in_flight_at_kills": windows.iter().map(Window::size).sum::<i64>(),
            "dead_lettered": result.dead_lettered, "out_of_order_keys": result.out_of_order.len(),
            "host_crashes": crashes, "seed": seed,
        }),
    );
    assert_eq!(result.events, events.len());
    assert!(result.lost.is_empty(), "lost {} events (seed {seed}): {:?}", result.lost.len(), &result.lost[..]);
    assert!(over_window.is_empty(), "duplicates outside the in-flight window (seed {seed}): {over_window:?}");
    assert!(result.out_of_order.is_empty(), "per-key order broken (seed {seed}): {:?}", result.out_of_order);
    assert_eq!(crashes, 0, "sluice run crashed:\n{}", Host::tail(&log));
    assert!(mid_stream > 0, "no kill landed while records were streaming in");
}
