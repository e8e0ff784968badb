//! The `sluice run` binary itself: it processes, and on SIGTERM drains,
//! commits and exits cleanly within its grace period.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::audit::committed_offsets;
use crate::broker::{bootstrap, create_topics, produce, read_all, unique};
use crate::support::plugin;

fn committed(group: &str, topic: &str, partitions: i32) -> i64 {
    committed_offsets(bootstrap(), group, topic, partitions).iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_commits_and_exits_cleanly() {
    let (input, output, dlq) = (unique("bin.in"), unique("bin.out"), unique("bin.dlq"));
    create_topics(&[(&input, 2), (&output, 2), (&dlq, 1)]).await;
    let records: Vec<(Option<String>, String)> =
        (0..500).map(|i| (Some(format!("k{i}")), format!("{{\"n\":{i}}}"))).collect();
    produce(&input, &records).await;

    let dir = tempfile::tempdir().unwrap();
    let group = unique("bin");
    let config = dir.path().join("sluice.toml");
    let plugins = plugin("passthrough").parent().unwrap().to_path_buf();
    std::fs::write(
        &config,
        format!(
            "[broker]\nbootstrap = \"{}\"\ngroup = \"{group}\"\n[plugins]\ndir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[delivery]\nshutdown_grace = \"10s\"\n\
             [[routes]]\nname = \"bin\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n\
             [[routes.chain]]\nplugin = \"passthrough\"\n",
            bootstrap(),
            plugins.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    while read_all(&output).len() < 500 {
        assert!(Instant::now() < deadline, "outputs did not arrive");
        assert!(child.try_wait().unwrap().is_none(), "sluice run exited early");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = child.id().to_string();
    let signalled = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{logs}", out.status);
    assert!(signalled.elapsed() < Duration::from_secs(10), "took {:?} to stop", signalled.elapsed());
    assert!(logs.contains("SIGTERM: shutting down"), "{logs}");
    assert!(logs.lines().all(|l| l.starts_with('{')), "--log-format json gives one JSON object per line:\n{logs}");
    assert_eq!(committed(&group, &input, 2), 500, "every processed offset committed on shutdown");
}

/// `sluice test … | head` closes the pipe early: the command must end with
/// one of its documented exit codes, never a panic (101) or a signal.
#[test]
fn a_closed_output_pipe_ends_with_a_documented_exit_code() {
    let golden = crate::support::repo().join("tests/golden/validate");
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("wrong.jsonl");
    std::fs::write(&expect, "").unwrap();
    for closed in ["stdout", "stderr", "both"] {
        let mut command = crate::support::sluice();
        command
            .arg("test")
            .arg("validate")
            .arg("--input")
            .arg(golden.join("input.jsonl"))
            .arg("--config")
            .arg(golden.join("config.toml"))
            .arg("--expect")
            .arg(&expect);
        // The read ends are closed before the command starts: every write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        match closed {
            "stdout" => command.stdout(writer).stderr(Stdio::null()),
            "stderr" => command.stdout(Stdio::null()).stderr(writer),
            _ => command.stdout(writer.try_clone().unwrap()).stderr(writer),
        };
        let status = command.status().unwrap();
        assert!(matches!(status.code(), Some(0..=4)), "{closed} closed: {status}");
    }
}
