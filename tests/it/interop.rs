//! Third-party clients on both ends: Kafka's own console producer writes the
//! input, and Kafka's consumer-group tool checks what sluice committed.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::broker::{bootstrap, create_topics, read_all, unique};
use crate::support::repo;

fn kafka_tool(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(repo().join("scripts/kafka.sh"))
        .arg("tool")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/kafka.sh tool");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kafka tool {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_producer_input_is_processed_and_the_group_tool_sees_no_lag() {
    let (input, output, dlq) = (unique("interop.in"), unique("interop.out"), unique("interop.dlq"));
    create_topics(&[(&input, 2), (&output, 1), (&dlq, 1)]).await;
    // 60 GitHub-like events; every third is not a push and gets dropped,
    // every tenth is malformed JSON and goes to the DLQ.
    let mut lines = String::new();
    let (mut pushes, mut malformed) = (0, 0);
    for i in 0..60 {
        let value = if i % 10 == 9 {
            malformed += 1;
            format!("{{\"id\":{i},")
        } else if i % 3 == 0 {
            format!("{{\"id\":{i},\"type\":\"WatchEvent\"}}")
        } else {
            pushes += 1;
            format!("{{\"id\":{i},\"type\":\"PushEvent\"}}")
        };
        lines.push_str(&format!("repo-{}|{value}\n", i % 4));
    }
    kafka_tool(
        &[
            "console-producer",
            "--bootstrap-server",
            bootstrap(),
            "--topic",
            &input,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=|",
        ],
        Some(&lines),
    );

    let group = unique("interop");
    let routes = format!(
        "[[routes]]\nname = \"gh\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n\
         [[routes.chain]]\nplugin = \"validate\"\nconfig = {{ rules = [{{ field = \"type\", in = [\"PushEvent\"] }}] }}\n"
    );
    let running = crate::pipeline::start_pipeline(&group, &routes, "");
    running.until_completed(60).await;
    running.stop().await;

    let out = read_all(&output);
    assert_eq!(out.len(), pushes);
    assert!(out.iter().all(|r| r.key.as_deref().is_some_and(|k| k.starts_with("repo-"))), "keys kept");
    assert_eq!(read_all(&dlq).len(), malformed);

    let described =
        kafka_tool(&["consumer-groups", "--bootstrap-server", bootstrap(), "--describe", "--group", &group], None);
    let rows: Vec<Vec<&str>> = described
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() >= 6 && c[1] == input)
        .collect();
    assert_eq!(rows.len(), 2, "both partitions have a committed offset:\n{described}");
    for row in rows {
        // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
        assert_eq!(row[3], row[4], "committed offset equals the log end:\n{described}");
        assert_eq!(row[5], "0", "no lag:\n{described}");
    }
}
