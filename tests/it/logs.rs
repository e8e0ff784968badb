//! `sluice run`'s logs: `--log-format json` gives one object per line whose
//! pipeline events carry structured fields (route, plugin, topic,
//! partition, offset, kind), and `--log-format text` the same fields as
//! `key=value`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker::{bootstrap, create_topics, produce, read_all, unique};
use crate::support::plugin;

/// Runs `sluice run` until the DLQ has a record, stops it with SIGTERM and
/// returns its stderr.
async fn run_until_dead_letter(format: &str) -> String {
    let (input, output, dlq) = (unique("logs.in"), unique("logs.out"), unique("logs.dlq"));
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]).await;
    produce(&input, &[(Some("a".into()), "{\"id\":1}".into()), (Some("b".into()), "{\"no\":1}".into())]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    let plugins = plugin("validate").parent().unwrap().to_path_buf();
    std::fs::write(
        &config,
        format!(
            "[broker]\nbootstrap = \"{}\"\ngroup = \"{}\"\n[plugins]\ndir = \"{}\"\n[admin]\nlisten = \"off\"\n\
             [[routes]]\nname = \"logged\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n\
             [[routes.chain]]\nplugin = \"validate\"\nconfig = {{ required = [\"id\"] }}\n",
            bootstrap(),
            unique("logs"),
            plugins.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--log-format", format, "run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_all(&dlq).is_empty() || read_all(&output).is_empty() {
        assert!(Instant::now() < deadline, "nothing reached the DLQ and the output");
        assert!(child.try_wait().unwrap().is_none(), "sluice run exited early");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}\n{logs}", out.status);
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_structured_pipeline_fields() {
    let logs = run_until_dead_letter("json").await;
    let lines: Vec<Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let find = |message: &str| {
        lines.iter().find(|l| l["message"] == message).unwrap_or_else(|| panic!("no {message:?} line:\n{logs}"))
    };
    let dead = find("dead-lettered");
    assert_eq!(dead["level"], "WARN");
    assert_eq!(dead["route"], "logged");
    assert!(dead["topic"].as_str().unwrap().starts_with("logs.in-"), "{dead}");
    assert_eq!((dead["partition"].as_i64(), dead["offset"].as_i64()), (Some(0), Some(1)), "{dead}");
    assert!(dead["plugin"].as_str().unwrap().starts_with("validate@"), "{dead}");
    assert_eq!(dead["kind"], "rejected");
    // A regression: the failure's text was logged as a second `message`, hiding the event's.
    assert_eq!(dead["error"], "missing required field `id`");
    assert_eq!(logs.matches("\"message\"").count(), lines.len(), "one message per line:\n{logs}");
    let started = find("partition worker started");
    assert_eq!((started["route"].as_str(), started["partition"].as_i64()), (Some("logged"), Some(0)), "{started}");
    assert!(started["chain"].as_str().unwrap().starts_with("validate@"), "{started}");
    assert!(!logs.contains("\"no\":1"), "no record values in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_carry_the_same_fields_as_key_value() {
    let logs = run_until_dead_letter("text").await;
    let dead = logs.lines().find(|l| l.contains("dead-lettered")).unwrap_or_else(|| panic!("{logs}"));
    for field in ["route=logged", "partition=0", "offset=1", "kind=rejected", "plugin=validate@"] {
        assert!(dead.contains(field), "{field} missing from: {dead}");
    }
    assert!(!logs.lines().any(|l| l.starts_with('{')), "text, not JSON:\n{logs}");
}
