//! Property-based fuzzing of the parsing surfaces, for a bounded number of
//! cases (`SLUICE_FUZZ_CASES`, default 256 each): the routing config, the
//! `sluice test` input lines, the batch ABI that carries headers between
//! host and plugin, and the `sluice.dlq.*` headers the host writes and
//! `sluice dlq` reads back. None may panic; every refusal must say where and what.
//! A finding becomes a named regression test at the bottom of this file.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use sluice::config::Config;
use sluice::dlq::{self, DeadLetter, ErrorKind};
use sluice::dlq_tools::Entry;
use sluice::record::Record;
use sluice_sdk::abi::{self, EventFields, RequestReader, RequestWriter};
use sluice_sdk::testing::TestEvent;
use sluice_sdk::{Output, Verdict};

use crate::audit::env_count;
use crate::config::{configs, deployment};

fn cases() -> u32 {
    env_count("SLUICE_FUZZ_CASES", 256) as u32
}

/// Runs `test` on `cases()` inputs drawn from `strategy`, reports the
/// figures, and fails with proptest's shrunk counterexample on a finding.
fn fuzz<S: Strategy>(target: &str, strategy: &S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner =
        TestRunner::new(RunnerConfig { cases: cases(), failure_persistence: None, ..RunnerConfig::default() });
    let started = std::time::Instant::now();
    let result = runner.run(strategy, test);
    crate::audit::report(
        &format!("fuzz-{target}"),
        serde_json::json!({
            "trials": cases(), "findings": u32::from(result.is_err()), "took_ms": started.elapsed().as_millis() as u64,
        }),
    );
    if let Err(e) = result {
        panic!("fuzz {target}: {e}");
    }
}

/// Loads `text` as `fuzz.toml` in `dir` and checks the contract: a config, or
/// errors that each name the file, a position and a key.
fn check_config(text: &str, dir: &Path) -> Result<(), TestCaseError> {
    let Err(errors) = Config::from_str(text, "fuzz.toml", dir) else { return Ok(()) };
    prop_assert!(errors.iter().next().is_some(), "an error list with no errors for {text:?}");
    for error in errors.iter() {
        prop_assert!(error.at.is_some(), "no position in {error} for {text:?}");
        prop_assert!(!error.key.is_empty(), "no key in {error} for {text:?}");
        prop_assert!(error.to_string().starts_with("fuzz.toml:"), "{error}");
    }
    Ok(())
}

/// Lines made of the config's own vocabulary, so that most cases get past
/// the TOML parser and reach validation.
fn toml_line() -> impl Strategy<Value = String> {
    let tables = prop::sample::select(vec![
        "[broker]",
        "[plugins]",
        "[defaults.retry]",
        "[defaults.budgets]",
        "[delivery]",
        "[admin]",
        "[reload]",
        "[[routes]]",
        "[[routes.chain]]",
        "[routes.chain.config]",
        "[[tables]]",
        "[broker.consumer]",
        "[routes.retry]",
    ]);
    let keys = prop::sample::select(vec![
        "bootstrap",
        "group",
        "dir",
        "name",
        "inputs",
        "outputs",
        "allow",
        "dlq",
        "plugin",
        "config",
        "budgets",
        "retry",
        "max_attempts",
        "max_faults",
        "initial_backoff",
        "max_backoff",
        "multiplier",
        "jitter",
        "timeout",
        "memory",
        "max_outputs",
        "max_output_bytes",
        "file",
        "key",
        "format",
        "listen",
        "watch",
        "debounce",
        "batch_size",
        "queue_per_partition",
        "commit_interval",
        "shutdown_grace",
        "\"session.timeout.ms\"",
    ]);
    let values = prop::sample::select(vec![
        "\"embedded\"",
        "\"orders\"",
        "[\"orders.events\"]",
        "[]",
        "[\"a\", \"a\"]",
        "0",
        "-1",
        "3",
        "1e309",
        "9223372036854775807",
        "\"250ms\"",
        "\"5m\"",
        "\"-3s\"",
        "\"10\"",
        "\"16MiB\"",
        "\"-64MiB\"",
        "true",
        "{ memory = 0 }",
        "{ max_attempts = 2 }",
        "\"127.0.0.1:0\"",
        "\"localhost\"",
        "\"passthrough\"",
        "\"validate\"",
        "\"../x\"",
        "1.5",
        "\"\"",
        "\"\\u0000\"",
        "[1, \"a\"]",
        "{",
        "\"unterminated",
    ]);
    prop_oneof![tables.prop_map(str::to_owned), (keys, values).prop_map(|(k, v)| format!("{k} = {v}")), "[ -~]{0,40}",]
}

#[test]
fn config_text_never_panics_and_every_error_is_located() {
    let dir = deployment();
    fuzz("config-lines", &prop::collection::vec(toml_line(), 0..24), |lines| {
        check_config(&lines.join("\n"), dir.path())
    });
}

/// An edit to a valid config: at a fraction of its length, delete some
/// characters, insert some, or duplicate the line there.
#[derive(Debug, Clone)]
enum Edit {
    Delete(f64, usize),
    Insert(f64, String),
    DuplicateLine(f64),
}

fn apply(text: &str, edit: &Edit) -> String {
    let at = |f: f64| {
        let mut i = (text.len() as f64 * f) as usize;
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match edit {
        Edit::Delete(f, n) => {
            let start = at(*f);
            let end = text[start..].char_indices().nth(*n).map_or(text.len(), |(i, _)| start + i);
            format!("{}{}", &text[..start], &text[end..])
        }
        Edit::Insert(f, s) => format!("{}{s}{}", &text[..at(*f)], &text[at(*f)..]),
        Edit::DuplicateLine(f) => {
            let mut lines: Vec<&str> = text.lines().collect();
            let i = ((lines.len() as f64 * f) as usize).min(lines.len().saturating_sub(1));
            if let Some(line) = lines.get(i).copied() {
                lines.insert(i, line);
            }
            lines.join("\n")
        }
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0.0..1.0, 1usize..12).prop_map(|(f, n)| Edit::Delete(f, n)),
        (0.0..1.0, prop_oneof!["[ -~]{1,12}", toml_line().prop_map(|l| format!("\n{l}\n"))])
            .prop_map(|(f, s)| Edit::Insert(f, s)),
        (0.0..1.0).prop_map(Edit::DuplicateLine),
    ]
}

#[test]
fn mutated_valid_configs_never_panic_and_every_error_is_located() {
    let dir = deployment();
    let mut files = configs("good");
    files.push(crate::support::repo().join("config/demo.toml"));
    let texts: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let strategy = (0..texts.len(), prop::collection::vec(edit(), 1..5));
    fuzz("config-mutations", &strategy, |(i, edits)| {
        let text = edits.iter().fold(texts[i].clone(), |t, e| apply(&t, e));
        check_config(&text, dir.path())
    });
}

/// JSON-ish input lines: objects over the input format's own fields with
/// values of every type, and arbitrary text.
fn input_line() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "topic",
        "partition",
        "offset",
        "timestamp",
        "key",
        "value",
        "headers",
        "attempt",
        "extra",
        "key_base64",
        "value_base64",
    ]);
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "\"[ -~]{0,12}\"",
        Just("[[\"h\", \"1\"], [\"h\"]]".to_owned()),
        Just("[[\"h\", 1]]".to_owned()),
        Just("{\"a\": [1, {\"b\": null}]}".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("-0".to_owned()),
        Just("4294967296".to_owned()),
    ];
    prop_oneof![
        prop::collection::vec((field, value), 0..6).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", body.join(", "))
        }),
        any::<String>(),
    ]
}

#[test]
fn input_lines_never_panic_and_every_error_names_its_line() {
    fuzz("test-input-lines", &(input_line(), 1usize..100_000), |(text, line)| {
        if let Err(e) = TestEvent::from_input_line(&text, line) {
            prop_assert_eq!(e.line, line);
            prop_assert!(!e.reason.is_empty());
            let prefix = format!("line {line}: ");
            prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
        }
        Ok(())
    });
}

/// Reads every event of a request and every header of each.
fn read_request(bytes: &[u8]) -> Result<usize, abi::AbiError> {
    let mut seen = 0;
    for event in RequestReader::new(bytes)? {
        let event = event?;
        seen += event.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
        seen += event.key.map_or(0, <[u8]>::len) + event.value.map_or(0, <[u8]>::len) + event.topic.len();
    }
    Ok(seen)
}

type FuzzEvent = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Vec<u8>)>);

fn valid_request(events: &[FuzzEvent]) -> Vec<u8> {
    let mut writer = RequestWriter::new();
    for (i, (key, value, headers)) in events.iter().enumerate() {
        let fields = EventFields {
            topic: "t",
            partition: 0,
            offset: i as i64,
            timestamp: None,
            key: key.as_deref(),
            value: value.as_deref(),
            attempt: 1,
        };
        writer.push(&fields, headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    }
    writer.as_bytes().to_vec()
}

fn fuzz_events() -> impl Strategy<Value = Vec<FuzzEvent>> {
    let bytes = || prop::option::of(prop::collection::vec(any::<u8>(), 0..16));
    let headers = prop::collection::vec(("[a-z.]{0,6}", prop::collection::vec(any::<u8>(), 0..8)), 0..5);
    prop::collection::vec((bytes(), bytes(), headers), 0..5)
}

#[test]
fn batch_requests_from_arbitrary_and_corrupted_bytes_never_panic() {
    let corrupted = (fuzz_events(), any::<prop::sample::Index>(), any::<u8>(), any::<prop::sample::Index>()).prop_map(
        |(events, at, byte, cut)| {
            let mut bytes = valid_request(&events);
            let i = at.index(bytes.len());
            bytes[i] ^= byte.max(1);
            bytes.truncate(cut.index(bytes.len() + 1).max(i + 1));
            bytes
        },
    );
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|tail| [&abi::REQUEST_MAGIC[..], &tail].concat()),
        corrupted,
    ];
    fuzz("batch-request-headers", &strategy, |bytes| {
        if let Err(e) = read_request(&bytes) {
            prop_assert!(e.at <= bytes.len(), "{e} is past the end of {} bytes", bytes.len());
        }
        Ok(())
    });
}

#[test]
fn valid_batch_requests_read_back_every_header_in_order() {
    fuzz("batch-request-roundtrip", &fuzz_events(), |events| {
        let bytes = valid_request(&events);
        let read: Vec<_> = RequestReader::new(&bytes).unwrap().map(Result::unwrap).collect();
        prop_assert_eq!(read.len(), events.len());
        for (event, (key, value, headers)) in read.iter().zip(&events) {
            prop_assert_eq!(event.key, key.as_deref());
            prop_assert_eq!(event.value, value.as_deref());
            let got: Vec<(String, Vec<u8>)> = event.headers.iter().map(|(n, v)| (n.to_owned(), v.to_vec())).collect();
            prop_assert_eq!(&got, headers);
        }
        Ok(())
    });
}

#[test]
fn batch_responses_from_arbitrary_and_corrupted_bytes_never_panic() {
    let corrupted = (fuzz_events(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(events, at, byte)| {
        let request = valid_request(&events);
        let mut response = abi::handle_request(&request, |event| {
            let mut out = Output::new().topic("x");
            for (name, value) in event.headers.iter() {
                out = out.add_header(name, value);
            }
            Ok(if event.offset % 2 == 0 { Verdict::Pass } else { Verdict::emit(out) })
        });
        let i = at.index(response.len());
        response[i] ^= byte.max(1);
        (response, events.len())
    });
    let strategy = prop_oneof![
        (prop::collection::vec(any::<u8>(), 0..64), 0usize..4),
        (prop::collection::vec(any::<u8>(), 0..64), 0usize..4)
            .prop_map(|(tail, n)| ([&abi::RESPONSE_MAGIC[..], &tail].concat(), n)),
        corrupted,
    ];
    fuzz("batch-response-headers", &strategy, |(bytes, expected)| {
        if let Err(e) = abi::decode_response(&bytes, expected) {
            prop_assert!(e.at <= bytes.len(), "{e} is past the end of {} bytes", bytes.len());
        }
        Ok(())
    });
}

/// Header names a record may carry: its own, ones that look like the
/// host's, and the host's own.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z.-]{0,12}",
        "sluice\\.dlq\\.[a-z.-]{0,10}",
        prop::sample::select(vec![
            "sluice.dlq.offset",
            "sluice.dlq.error.kind",
            "sluice.dlq.value-dropped",
            "correlation-id"
        ])
        .prop_map(str::to_owned),
    ]
}

/// The `sluice.dlq.*` headers every DLQ record carries exactly once.
const DLQ_HEADERS: &[&str] = &[
    "topic",
    "partition",
    "offset",
    "timestamp",
    "group",
    "route",
    "plugin",
    "error.kind",
    "error.message",
    "attempts",
    "failed-at",
];

#[test]
fn dead_letter_headers_of_arbitrary_records_decode_back_once_each() {
    let headers = prop::collection::vec((header_name(), prop::collection::vec(any::<u8>(), 0..12)), 0..8);
    let value = prop::option::of(prop::collection::vec(any::<u8>(), 0..32));
    let strategy = (headers, value, any::<i32>(), any::<i64>(), any::<Option<i64>>());
    fuzz("dlq-headers", &strategy, |(headers, value, partition, offset, timestamp)| {
        let original =
            Record { topic: "t".into(), partition, offset, timestamp, value, headers, attempt: 1, ..Record::default() };
        // Never panics, whatever the correlation-id header or value holds.
        let _ = sluice::correlation::id_for(&original);
        let letter = DeadLetter {
            kind: ErrorKind::Trap,
            message: "boom".into(),
            plugin: "p@1".into(),
            route: "r".into(),
            group: "g".into(),
            attempts: 3,
        };
        let first = dlq::record(&original, &letter, "dlq");
        // Put back on the input and dead-lettered again: still one of each.
        let again = Record { headers: first.headers.clone(), ..original.clone() };
        let second = dlq::record(&again, &letter, "dlq");
        for name in DLQ_HEADERS {
            let full = format!("{}{name}", dlq::PREFIX);
            let n = second.headers.iter().filter(|(h, _)| *h == full).count();
            prop_assert_eq!(n, 1, "{} appears {} times", full, n);
        }
        let own: Vec<_> = original.headers.iter().filter(|(n, _)| !n.starts_with(dlq::PREFIX)).cloned().collect();
        let kept: Vec<_> = second.headers.iter().filter(|(n, _)| !n.starts_with(dlq::PREFIX)).cloned().collect();
        prop_assert_eq!(&kept, &own, "the record's own headers, in order, repeats too");

        let entry = Entry { partition: 0, offset: 0, headers: second.headers.clone(), ..Entry::default() };
        let at = (offset.to_string(), partition.to_string());
        prop_assert_eq!(entry.dlq_header("offset"), Some(at.0.as_str()));
        prop_assert_eq!(entry.dlq_header("partition"), Some(at.1.as_str()));
        prop_assert_eq!((entry.kind(), entry.plugin(), entry.route(), entry.source_topic()), ("trap", "p@1", "r", "t"));

        let stub = dlq::stub(&second, "too large");
        prop_assert!(dlq::is_stub(&stub) && !dlq::is_stub(&second));
        prop_assert!(stub.value.is_none() && stub.headers.iter().all(|(n, _)| n.starts_with(dlq::PREFIX)));
        let dropped = own.len().to_string();
        prop_assert_eq!(stub.header(dlq::HEADERS_DROPPED), Some(dropped.as_bytes()));
        Ok(())
    });
}
