//! The hostile-plugin corpus: plugins that attack the sandbox or the budgets,
//! each with the outcome the host must give. A hostile record costs only
//! itself: the records batched with it get their own answers, and the same
//! chain then handles a normal record (on a fresh instance after a fault).
//!
//! | kind | fixture | expected outcome |
//! |---|---|---|
//! | infinite loop | `fx_loop` | fault `timeout` (retryable), noticed within the call budget |
//! | memory bomb | `fx_alloc` | fault `memory` (retryable) at the memory budget |
//! | stack overflow | `fx_stack` | fault `trap` (retryable), message `stack overflow` |
//! | panic | `fx_panic` | fault `trap` (retryable), message carries the panic message |
//! | huge output: too many records | `fx_huge` | `output-budget`, not retried |
//! | huge output: too many bytes | `fx_huge` | `output-budget`, not retried |
//! | huge output: stdout flood | `fx_huge` | delivered; the guest's lines go to the host log, rate-limited |
//! | forbidden topic | `fx_forbidden` | `forbidden-topic`, not retried |
//! | file read | `fx_fs` | delivered; every read, listing and create denied, nothing created on the host |
//! | env read | `fx_env` | delivered; no variables, no arguments, stdin closed |
//! | socket | `fx_net` | delivered; TCP, UDP and name lookup denied, nothing reaches a listener |
//! | wrong world | `fx_wrong_world` | refused at load: does not export the handler |
//! | future contract | `fx_future` | refused at load: names both contract versions |
//! | truncated file | half of `passthrough` | refused at load: truncated or corrupt |
//! | init that fails | `fx_reject` with `refuse` | refused at load with the plugin's own message |
//! | slow but within budget | `fx_slow` | delivered, no fault, no instance replaced |
//!
//! A fault is retried in place and then dead-lettered under its kind; a
//! refusal goes to the DLQ at once. The last test runs a hostile route beside a
//! healthy one on Kafka.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::chain::{Chain, Disposition, Step, Targets};
use sluice::dlq::ErrorKind;
use sluice::invoke::Invoker;
use sluice::record::Record;
use sluice::runtime::{Budgets, LoadError, Runtime};
use sluice::tables::Tables;

use crate::broker::{create_topics, produce, read_all, unique};
use crate::pipeline::start_pipeline;
use crate::support::{plugin, run, sluice};

/// Where a case's plugin comes from.
enum Source {
    /// A plugin built from `plugins/`.
    Built(&'static str),
    /// The first half of a built plugin's file.
    Truncated(&'static str),
}

/// What the host must make of a case's hostile record.
enum Expect {
    /// A sandbox fault: retryable, of this kind, the message containing the text.
    /// The instance is replaced.
    Fault(ErrorKind, &'static str),
    /// An answer the host refuses: not retryable, of this kind, the message
    /// containing the text. The instance stays.
    Refused(ErrorKind, &'static str),
    /// Delivered as this many records.
    Deliver(usize),
    /// Delivered as one JSON report with exactly these attempts, every one
    /// `"denied: …"`.
    AllDenied(&'static [&'static str]),
    /// The plugin never gets to run: loading it fails like this.
    LoadFails(fn(&LoadError) -> bool, &'static str),
}

struct Case {
    kind: &'static str,
    source: Source,
    /// The plugin's config, as TOML.
    config: String,
    budgets: Budgets,
    /// The value of the hostile record.
    hostile: &'static str,
    expect: Expect,
}

fn case(kind: &'static str, name: &'static str, config: &str, hostile: &'static str, expect: Expect) -> Case {
    Case { kind, source: Source::Built(name), config: config.to_owned(), budgets: Budgets::default(), hostile, expect }
}

/// The corpus. `port` is where `fx_net` aims, `probe` the file `fx_fs` tries
/// to create.
fn corpus(port: u16, probe: &Path) -> Vec<Case> {
    const FS: &[&str] = &["create probe", "list .", "list /", "metadata /", "read ./Cargo.toml", "read /etc/passwd"];
    const ENV: &[&str] = &["HOME", "PATH", "USER", "args", "env vars", "stdin"];
    const NET: &[&str] = &["dns example.com", "dns localhost", "tcp connect", "tcp listen", "udp send"];
    let mib = 1024 * 1024;
    vec![
        case(
            "infinite loop",
            "fx_loop",
            r#"trigger = "spin""#,
            "spin",
            Expect::Fault(ErrorKind::Timeout, "time budget of 100ms"),
        ),
        case(
            "memory bomb",
            "fx_alloc",
            r#"trigger = "hog""#,
            "hog",
            Expect::Fault(ErrorKind::Memory, "memory budget of 16777216 bytes"),
        ),
        case(
            "stack overflow",
            "fx_stack",
            r#"trigger = "dive""#,
            "dive",
            Expect::Fault(ErrorKind::Trap, "stack overflow"),
        ),
        case(
            "panic",
            "fx_panic",
            r#"trigger = "boom""#,
            "boom",
            Expect::Fault(ErrorKind::Trap, "fx-panic: boom at offset 1"),
        ),
        case(
            "huge output: too many records",
            "fx_huge",
            "trigger = \"huge\"\ncount = 5000",
            "huge",
            Expect::Refused(ErrorKind::OutputBudget, "emitted 5000 records, over the budget of 1024"),
        ),
        Case {
            budgets: Budgets { max_output_bytes: mib, ..Budgets::default() },
            ..case(
                "huge output: too many bytes",
                "fx_huge",
                &format!("trigger = \"huge\"\ncount = 8\nbytes = {}", mib / 4),
                "huge",
                Expect::Refused(ErrorKind::OutputBudget, "emitted 2097152 bytes, over the budget of 1048576"),
            )
        },
        case(
            "huge output: stdout flood",
            "fx_huge",
            "trigger = \"huge\"\ncount = 1\nlines = 2000",
            "huge",
            Expect::Deliver(1),
        ),
        case(
            "forbidden topic",
            "fx_forbidden",
            "trigger = \"leak\"\ntopic = \"payroll\"",
            "leak",
            Expect::Refused(ErrorKind::ForbiddenTopic, "emitted to topic \"payroll\""),
        ),
        case("file read", "fx_fs", &format!("probe = {:?}", probe.display().to_string()), "x", Expect::AllDenied(FS)),
        case("env read", "fx_env", "", "x", Expect::AllDenied(ENV)),
        case("socket", "fx_net", &format!("port = {port}"), "x", Expect::AllDenied(NET)),
        case(
            "wrong world",
            "fx_wrong_world",
            "",
            "x",
            Expect::LoadFails(
                |e| matches!(e, LoadError::WrongWorld { .. }),
                "does not export `sluice:plugin/handler@0.1.0`",
            ),
        ),
        case(
            "future contract",
            "fx_future",
            "",
            "x",
            Expect::LoadFails(|e| matches!(e, LoadError::WrongVersion { .. }), "built against sluice:plugin@0.2.0"),
        ),
        Case {
            source: Source::Truncated("passthrough"),
            ..case(
                "truncated file",
                "",
                "",
                "x",
                Expect::LoadFails(|e| matches!(e, LoadError::Truncated { .. }), "truncated or corrupt"),
            )
        },
        case(
            "init that fails",
            "fx_reject",
            r#"refuse = "table `rules` is required""#,
            "x",
            Expect::LoadFails(
                |e| matches!(e, LoadError::InitRefused { .. }),
                "fx_reject.wasm: `init` refused its config: table `rules` is required",
            ),
        ),
        case("slow but within budget", "fx_slow", "ms = 30", "x", Expect::Deliver(1)),
    ]
}

/// A one-step chain whose route outputs to `out` and allows nothing else.
fn chain(runtime: &Runtime, source: &Source, config: &str, budgets: Budgets) -> Result<Chain, LoadError> {
    let loaded = match source {
        Source::Built(name) => runtime.load(&plugin(name), &budgets)?,
        Source::Truncated(name) => {
            let bytes = std::fs::read(plugin(name)).unwrap();
            runtime.load_bytes(Path::new("plugins/truncated.wasm"), &bytes[..bytes.len() / 2], &budgets)?
        }
    };
    let table: toml::Table = toml::from_str(config).unwrap();
    let invoker = Invoker::new(loaded, sluice::plugin_config::entries(&table), Arc::new(Tables::default()), budgets)?;
    let outputs = vec!["out".to_owned()];
    let allow: BTreeSet<String> = outputs.iter().cloned().collect();
    Ok(Chain {
        steps: vec![Step { invoker, budgets }],
        targets: Arc::new(Targets { outputs, allow }),
        lineage: "".into(),
    })
}

fn event(offset: i64, value: &str) -> Record {
    Record { topic: "in".into(), offset, value: Some(value.as_bytes().to_vec()), attempt: 1, ..Record::default() }
}

const CALM: &str = r#"{"calm":true}"#;

fn delivered(d: &Disposition) -> Result<(), String> {
    match d {
        Disposition::Deliver(outs) if !outs.is_empty() => Ok(()),
        other => Err(format!("a normal record was not delivered: {other:?}")),
    }
}

/// Runs one case; `Err` says how the host got it wrong.
fn check(runtime: &Runtime, case: &Case) -> Result<(), String> {
    let built = chain(runtime, &case.source, &case.config, case.budgets);
    let mut chain = match (&case.expect, built) {
        (Expect::LoadFails(is, text), Err(e)) => {
            let message = e.to_string();
            if !is(&e) || !message.contains(text) {
                return Err(format!("wrong load error: {message}"));
            }
            // The runtime that refused it still loads and runs a good plugin.
            let mut good = chain(runtime, &Source::Built("passthrough"), "", Budgets::default())
                .map_err(|e| format!("passthrough no longer loads: {e}"))?;
            return delivered(&good.run(&[event(0, CALM)])[0]);
        }
        (Expect::LoadFails(..), Ok(_)) => return Err("loaded, but should have been refused".into()),
        (_, Err(e)) => return Err(format!("did not load: {e}")),
        (_, Ok(chain)) => chain,
    };

    // The hostile record between two normal ones, in one batch.
    let started = Instant::now();
    let d = chain.run(&[event(0, CALM), event(1, case.hostile), event(2, CALM)]);
    let took = started.elapsed();
    if took > Duration::from_secs(3) {
        return Err(format!("the batch took {took:?}"));
    }
    delivered(&d[0]).map_err(|e| format!("before the hostile record: {e}"))?;
    delivered(&d[2]).map_err(|e| format!("after the hostile record: {e}"))?;
    let failed = |kind: ErrorKind, text: &str, retryable: bool| match &d[1] {
        Disposition::Failed(f)
            if f.kind == kind && f.retryable == retryable && f.message.contains(text) && f.plugin.contains('@') =>
        {
            Ok(())
        }
        other => Err(format!("expected {kind} (retryable: {retryable}) with {text:?}, got {other:?}")),
    };
    match &case.expect {
        Expect::Fault(kind, text) => failed(*kind, text, true)?,
        Expect::Refused(kind, text) => failed(*kind, text, false)?,
        Expect::Deliver(n) => match &d[1] {
            Disposition::Deliver(outs) if outs.len() == *n => {}
            other => return Err(format!("expected {n} records delivered, got {other:?}")),
        },
        Expect::AllDenied(attempts) => all_denied(&d[1], attempts)?,
        Expect::LoadFails(..) => unreachable!("handled above"),
    }

    // The same chain goes on to handle a normal record.
    delivered(&chain.run(&[event(3, CALM)])[0]).map_err(|e| format!("after the fault: {e}"))?;
    let recreated = chain.steps[0].invoker.recreated;
    match (&case.expect, recreated) {
        (Expect::Fault(..), 0) => Err("a fault did not replace the instance".into()),
        (Expect::Fault(..), _) | (_, 0) => Ok(()),
        (_, n) => Err(format!("no fault, yet {n} instances were replaced")),
    }
}

/// One delivered JSON report whose attempts are exactly `attempts`, each
/// denied: a `"LEAK: …"` anywhere fails it.
fn all_denied(d: &Disposition, attempts: &[&str]) -> Result<(), String> {
    let Disposition::Deliver(outs) = d else { return Err(format!("expected a report, got {d:?}")) };
    let [out] = outs.as_slice() else { return Err(format!("expected one report, got {outs:?}")) };
    let value = out.value.as_deref().unwrap_or_default();
    let report: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(value)
        .map_err(|e| format!("not a JSON report ({e}): {}", String::from_utf8_lossy(value)))?;
    let keys: Vec<&str> = report.keys().map(String::as_str).collect();
    if keys != attempts {
        return Err(format!("the report has attempts {keys:?}, expected {attempts:?}"));
    }
    let leaks: Vec<String> = report
        .iter()
        .filter(|(_, v)| !v.as_str().is_some_and(|s| s.starts_with("denied: ") && !s.contains("LEAK")))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if leaks.is_empty() { Ok(()) } else { Err(format!("the sandbox let through: {}", leaks.join("; "))) }
}

#[test]
fn every_hostile_plugin_gets_its_expected_outcome_and_costs_only_its_own_record() {
    // A TCP listener and a UDP socket on one port, for fx_net to aim at.
    let (listener, udp) = (0..20)
        .find_map(|_| {
            let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
            let listener = TcpListener::bind(udp.local_addr().ok()?).ok()?;
            Some((listener, udp))
        })
        .expect("a free port for both TCP and UDP");
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("written-by-a-plugin");

    let runtime = Runtime::new().unwrap();
    let corpus = corpus(port, &probe);
    let kinds: BTreeSet<&str> = corpus.iter().map(|c| c.kind).collect();
    assert!(kinds.len() >= 12, "the issue asks for at least 12 kinds: {kinds:?}");
    let failures: Vec<String> =
        corpus.iter().filter_map(|c| check(&runtime, c).err().map(|e| format!("{}: {e}", c.kind))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), corpus.len(), failures.join("\n"));

    // What the sandbox denied really did not happen on the host.
    assert!(!probe.exists(), "fx_fs created {}", probe.display());
    listener.set_nonblocking(true).unwrap();
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "fx_net connected to the test's listener"
    );
    udp.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(udp.recv_from(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "fx_net sent a datagram to the test's socket"
    );
}

/// A `Write` into a shared buffer, for capturing log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn guest_stdout_and_stderr_go_to_the_host_log_rate_limited() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let runtime = Runtime::new().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let mut fs = chain(&runtime, &Source::Built("fx_fs"), "", Budgets::default()).unwrap();
        delivered(&fs.run(&[event(0, CALM)])[0]).unwrap();
        let mut flood =
            chain(&runtime, &Source::Built("fx_huge"), "count = 1\nlines = 2000", Budgets::default()).unwrap();
        delivered(&flood.run(&[event(0, CALM)])[0]).unwrap();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for (stream, text) in [("stdout", "fx-fs: stdout line"), ("stderr", "fx-fs: stderr line")] {
        let line = log.lines().find(|l| l.contains(text)).unwrap_or_else(|| panic!("no {text:?} in the log:\n{log}"));
        assert!(line.contains("plugin=fx_fs") && line.contains(stream), "{line}");
    }
    let flood = log.lines().filter(|l| l.contains("fx-huge: line")).count();
    assert!(
        (1..=40).contains(&flood),
        "2000 lines in well under 2 s must be cut to at most 20 a second: {flood} logged"
    );
}

#[test]
fn guest_output_never_reaches_the_process_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"value\":\"x\"}\n").unwrap();
    for (name, marker) in [("fx_env", "fx-env: stdout line"), ("fx_net", "fx-net: stdout line")] {
        let (code, stdout, stderr) = run(sluice()
            .env("RUST_LOG", "info")
            .args(["test", "--input"])
            .arg(&input)
            .arg(plugin(name))
            .stdin(std::process::Stdio::null()));
        assert_eq!(code, 0, "{stderr}");
        assert!(!stdout.contains(marker), "guest output in the process stdout:\n{stdout}");
        assert!(!stdout.contains("LEAK"), "{stdout}");
        assert!(stderr.contains(marker), "guest output belongs in the log on stderr:\n{stderr}");
    }
}

fn route(name: &str, input: &str, output: &str, dlq: &str, extra: &str, plugin: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n{extra}\n\
         [[routes.chain]]\nplugin = \"{plugin}\"\n"
    )
}

/// An endless loop on one route must not cost the route beside it anything,
/// nor stop the process: every record of the loop goes to its DLQ as a
/// timeout, every record of the neighbour arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_route_dead_letters_its_own_records_and_its_neighbour_flows() {
    let (in_a, out_a, dlq_a) = (unique("hostile.in"), unique("hostile.out"), unique("hostile.dlq"));
    let (in_b, out_b, dlq_b) = (unique("healthy.in"), unique("healthy.out"), unique("healthy.dlq"));
    create_topics(&[(&in_a, 2), (&out_a, 1), (&dlq_a, 1), (&in_b, 2), (&out_b, 2), (&dlq_b, 1)]).await;
    let records: Vec<(Option<String>, String)> =
        (0..200).map(|i| (Some(format!("k{}", i % 7)), format!("{{\"n\":{i}}}"))).collect();
    produce(&in_a, &records).await;
    produce(&in_b, &records).await;

    let hostile = "retry = { max_attempts = 2, initial_backoff = \"1ms\", max_backoff = \"2ms\" }\n\
                   budgets = { timeout = \"20ms\" }";
    let routes = format!(
        "{}\n{}",
        route("hostile", &in_a, &out_a, &dlq_a, hostile, "fx_loop"),
        route("healthy", &in_b, &out_b, &dlq_b, "", "passthrough")
    );
    let running = start_pipeline(&unique("hostile"), &routes, "");
    // Fails if the pipeline task ends early, so the host stayed up throughout.
    running.until_completed(400).await;
    let report = running.stop().await;

    let mut seen: Vec<String> = read_all(&out_b).into_iter().filter_map(|r| r.value).collect();
    seen.sort_unstable();
    let mut sent: Vec<String> = records.iter().map(|(_, v)| v.clone()).collect();
    sent.sort_unstable();
    assert_eq!(seen, sent, "every record of the healthy route arrives, once");
    assert!(read_all(&dlq_b).is_empty());

    assert!(read_all(&out_a).is_empty(), "the looping route produced output");
    let dead = read_all(&dlq_a);
    assert_eq!(dead.len(), 200, "every record of the looping route is dead-lettered");
    for d in &dead {
        let header = |name: &str| d.headers.get(name).map_or("", String::as_str);
        assert_eq!(header("sluice.dlq.error.kind"), "timeout", "{:?}", d.headers);
        assert_eq!(header("sluice.dlq.attempts"), "2", "{:?}", d.headers);
        assert!(header("sluice.dlq.plugin").starts_with("fx_loop@"), "{:?}", d.headers);
    }
    for (input, n) in [(&in_a, 200), (&in_b, 200)] {
        let committed: i64 = report.committed.iter().filter(|((t, _), _)| t == input).map(|(_, o)| *o).sum();
        assert_eq!(committed, n, "committed offsets cover every input of {input}");
    }
}
