//! Plugins on the real runtime: load errors in plain words, fault isolation,
//! and the batch entry point agreeing with the typed one.

use std::sync::Arc;

use sluice::bindings::types;
use sluice::invoke::Invoker;
use sluice::record::Record;
use sluice::runtime::{Budgets, Fault, LoadError, Runtime};
use sluice::tables::Tables;
use sluice_sdk::{Failure, Verdict};

use crate::support::plugin;

fn runtime() -> Runtime {
    Runtime::new().expect("engine starts")
}

fn load_err(bytes: &[u8]) -> (LoadError, String) {
    let err = runtime().load_bytes(std::path::Path::new("plugins/bad.wasm"), bytes, &Budgets::default()).unwrap_err();
    let text = err.to_string();
    (err, text)
}

fn record(offset: i64, value: &str) -> Record {
    Record { topic: "t".into(), offset, value: Some(value.as_bytes().to_vec()), attempt: 1, ..Record::default() }
}

fn invoker(name: &str, config: &[(&str, &str)]) -> Invoker {
    let rt = runtime();
    let loaded = rt.load(&plugin(name), &Budgets::default()).expect("fixture loads");
    let config = config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Invoker::new(loaded, config, Arc::new(Tables::default()), Budgets::default()).expect("fixture inits")
}

#[test]
fn a_text_file_is_not_wasm() {
    let (err, text) = load_err(b"#!/bin/sh\necho hi\n");
    assert!(matches!(err, LoadError::NotWasm { .. }), "{text}");
    assert!(text.starts_with("plugins/bad.wasm: not a WebAssembly file"), "{text}");
}

#[test]
fn an_empty_file_says_so() {
    let (_, text) = load_err(b"");
    assert!(text.contains("the file is empty"), "{text}");
}

#[test]
fn a_core_module_is_not_a_component() {
    let (err, text) = load_err(b"\0asm\x01\0\0\0");
    assert!(matches!(err, LoadError::CoreModule { .. }), "{text}");
    assert!(text.contains("core WebAssembly module, not a component"), "{text}");
    assert!(text.contains("wasm32-wasip2"), "the message says how to fix it: {text}");
}

#[test]
fn a_truncated_file_is_called_truncated() {
    let bytes = std::fs::read(plugin("passthrough")).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 1, 100] {
        let (err, text) = load_err(&bytes[..cut]);
        assert!(matches!(err, LoadError::Truncated { .. }), "cut at {cut}: {text}");
        assert!(text.contains("truncated or corrupt"), "{text}");
    }
}

#[test]
fn a_component_of_another_world_is_refused_with_what_it_exports() {
    let bytes = std::fs::read(plugin("fx_wrong_world")).unwrap();
    let (err, text) = load_err(&bytes);
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{text}");
    assert!(text.contains("does not export `sluice:plugin/handler@0.1.0`"), "{text}");
    assert!(text.contains("wasi:cli/run"), "names what it does export: {text}");
}

#[test]
fn a_plugin_for_a_future_contract_names_both_versions() {
    let bytes = std::fs::read(plugin("fx_future")).unwrap();
    let (err, text) = load_err(&bytes);
    assert!(matches!(err, LoadError::WrongVersion { .. }), "{text}");
    assert!(text.contains("built against sluice:plugin@0.2.0"), "{text}");
    assert!(text.contains("implements sluice:plugin@0.1.0"), "{text}");
}

#[test]
fn an_oversized_file_is_refused_before_compiling() {
    let budgets = Budgets { max_plugin_file: 1000, ..Budgets::default() };
    let err = runtime().load(&plugin("passthrough"), &budgets).unwrap_err().to_string();
    assert!(err.contains("over the limit of 1000 bytes"), "{err}");
}

#[test]
fn init_refusing_its_config_shows_the_plugins_message() {
    let rt = runtime();
    let loaded = rt.load(&plugin("fx_reject"), &Budgets::default()).unwrap();
    let config = vec![("refuse".to_owned(), "\"table `rules` is required\"".to_owned())];
    let err = loaded.instantiate(&config, Arc::new(Tables::default()), &Budgets::default()).unwrap_err();
    assert!(matches!(err, LoadError::InitRefused { .. }));
    assert!(err.to_string().ends_with("fx_reject.wasm: `init` refused its config: table `rules` is required"), "{err}");
}

#[test]
fn a_panic_faults_only_its_record_and_carries_the_panic_message() {
    let mut inv = invoker("fx_panic", &[("trigger", "\"boom\"")]);
    let answers = inv.run(&[record(0, "ok"), record(1, "boom"), record(2, "ok")]);
    assert_eq!(answers[0], Ok(Ok(Verdict::Pass)));
    assert_eq!(answers[2], Ok(Ok(Verdict::Pass)));
    let Err(Fault::Trap { message }) = &answers[1] else { panic!("expected a trap, got {:?}", answers[1]) };
    assert!(message.contains("fx-panic: boom at offset 1"), "{message}");
    assert!(inv.recreated >= 1, "the trapped instance was replaced");
}

#[test]
fn an_infinite_loop_times_out_within_budget() {
    let mut inv = invoker("fx_loop", &[]);
    let started = std::time::Instant::now();
    let answers = inv.run(&[record(0, "x")]);
    assert!(matches!(answers[0], Err(Fault::Timeout { .. })), "{answers:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn unbounded_allocation_hits_the_memory_budget() {
    let mut inv = invoker("fx_alloc", &[]);
    let answers = inv.run(&[record(0, "x")]);
    assert!(matches!(answers[0], Err(Fault::OutOfMemory { limit: 16_777_216, .. })), "{answers:?}");
    // The instance is re-created and works again.
    let mut inv = invoker("fx_alloc", &[("trigger", "\"hog\"")]);
    assert!(inv.run(&[record(0, "hog")])[0].is_err());
    assert_eq!(inv.run(&[record(1, "calm")])[0], Ok(Ok(Verdict::Pass)));
}

#[test]
fn flaky_plugin_sees_the_attempt_number() {
    let mut inv = invoker("fx_flaky", &[("failures", "2")]);
    let mut r = record(0, "x");
    let mut seen = Vec::new();
    for attempt in 1..=3 {
        r.attempt = attempt;
        seen.push(inv.run(std::slice::from_ref(&r)).remove(0).unwrap());
    }
    assert!(matches!(seen[0], Err(Failure::Retry { .. })));
    assert!(matches!(seen[1], Err(Failure::Retry { .. })));
    assert_eq!(seen[2], Ok(Verdict::Pass));
}

/// Every record through `handle-batch` and through the typed `handle` must
/// give the same outcome: the SDK implements both, the host relies on one.
#[test]
fn batch_and_typed_entry_points_agree() {
    let rt = runtime();
    for name in ["passthrough", "fx_forbidden", "fx_reject", "fx_flaky"] {
        let loaded = rt.load(&plugin(name), &Budgets::default()).unwrap();
        let mut instance = loaded.instantiate(&[], Arc::new(Tables::default()), &Budgets::default()).unwrap();
        let mut records = vec![record(0, "{\"a\":1}"), record(1, "")];
        records[1].value = None;
        records[0].headers = vec![("h".into(), b"1".to_vec()), ("h".into(), b"2".to_vec())];
        records[0].key = Some(b"k".to_vec());
        records[0].timestamp = Some(1_700_000_000_000);
        for r in &records {
            let mut writer = sluice_sdk::abi::RequestWriter::new();
            let fields = sluice_sdk::abi::EventFields {
                topic: &r.topic,
                partition: r.partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                attempt: r.attempt,
            };
            writer.push(&fields, r.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
            let batch = instance.handle_batch(writer.as_bytes(), 1).unwrap().remove(0);
            let typed_event = types::Event {
                topic: r.topic.clone(),
                partition: r.partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.iter().map(|(n, v)| types::Header { name: n.clone(), value: v.clone() }).collect(),
                attempt: r.attempt,
            };
            let typed = instance.handle_typed(&typed_event).unwrap();
            assert_eq!(batch, typed, "{name} at offset {}", r.offset);
        }
    }
}

/// Regression: a batch of slow but healthy events used to share one event's
/// time budget, time out, and be replayed record by record.
#[test]
fn a_batch_of_slow_events_within_budget_does_not_time_out() {
    let mut inv = invoker("fx_slow", &[("ms", "30")]);
    let records: Vec<Record> = (0..10).map(|i| record(i, "x")).collect();
    let answers = inv.run(&records);
    assert!(answers.iter().all(|a| *a == Ok(Ok(Verdict::Pass))), "{answers:?}");
    assert_eq!(inv.recreated, 0, "no fault, so no instance was replaced");
}
