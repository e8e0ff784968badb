//! The plugin chain on real plugins: verdicts become outputs, failures become
//! typed dispositions, and outputs carry correlation and trace headers.

use std::collections::BTreeSet;
use std::sync::Arc;

use sluice::chain::{Chain, Disposition, Step, Targets};
use sluice::dlq::ErrorKind;
use sluice::invoke::Invoker;
use sluice::record::Record;
use sluice::runtime::{Budgets, Runtime};
use sluice::tables::Tables;

use crate::support::plugin;

fn chain(steps: &[(&str, &str)], outputs: &[&str], allow: &[&str], budgets: Budgets) -> Chain {
    let runtime = Runtime::new().unwrap();
    let steps = steps
        .iter()
        .map(|(name, config_toml)| {
            let loaded = runtime.load(&plugin(name), &budgets).unwrap();
            let table: toml::Table = toml::from_str(config_toml).unwrap();
            let config = sluice::plugin_config::entries(&table);
            let invoker = Invoker::new(loaded, config, Arc::new(Tables::default()), budgets).unwrap();
            Step { invoker, budgets }
        })
        .collect();
    let outputs: Vec<String> = outputs.iter().map(|s| (*s).to_owned()).collect();
    let mut allow: BTreeSet<String> = allow.iter().map(|s| (*s).to_owned()).collect();
    allow.extend(outputs.iter().cloned());
    Chain { steps, targets: Arc::new(Targets { outputs, allow }), lineage: "".into() }
}

fn event(offset: i64, value: &str) -> Record {
    Record {
        topic: "in".into(),
        partition: 2,
        offset,
        value: Some(value.as_bytes().to_vec()),
        headers: vec![("traceparent".into(), b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec())],
        attempt: 1,
        ..Record::default()
    }
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| std::str::from_utf8(v).unwrap())
}

#[test]
fn pass_goes_to_every_default_output_with_correlation_and_trace() {
    let mut c = chain(&[("passthrough", "")], &["out.a", "out.b"], &[], Budgets::default());
    let d = c.run(&[event(5, r#"{"eventId":"e-5"}"#), event(6, "plain")]);
    let Disposition::Deliver(outs) = &d[0] else { panic!("{d:?}") };
    assert_eq!(outs.iter().map(|o| o.topic.as_str()).collect::<Vec<_>>(), ["out.a", "out.b"]);
    assert_eq!(header(&outs[0].headers, "correlation-id"), Some("e-5"));
    assert!(header(&outs[0].headers, "traceparent").unwrap().starts_with("00-4bf92f"));
    let Disposition::Deliver(outs) = &d[1] else { panic!("{d:?}") };
    assert_eq!(header(&outs[0].headers, "correlation-id"), Some("in/2@6"), "no eventId: the coordinates");
}

#[test]
fn validate_then_route_sends_each_event_to_its_topic() {
    let mut c = chain(
        &[("validate", "required = [\"eventType\"]"), ("route", "topics = { A = \"t.a\", B = \"t.b\" }")],
        &[],
        &["t.a", "t.b"],
        Budgets::default(),
    );
    let d = c.run(&[
        event(0, r#"{"eventType":"A"}"#),
        event(1, r#"{"eventType":"B"}"#),
        event(2, r#"{"x":1}"#),
        event(3, "{"),
    ]);
    let topic = |d: &Disposition| match d {
        Disposition::Deliver(o) => o[0].topic.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(topic(&d[0]), "t.a");
    assert_eq!(topic(&d[1]), "t.b");
    let Disposition::Failed(f) = &d[2] else { panic!("{:?}", d[2]) };
    assert_eq!((f.kind, f.retryable), (ErrorKind::Rejected, false));
    assert!(f.message.contains("eventType"), "{}", f.message);
    assert!(f.plugin.starts_with("validate@"), "{}", f.plugin);
    assert!(matches!(&d[3], Disposition::Failed(f) if f.kind == ErrorKind::Rejected));
}

#[test]
fn a_topic_outside_the_allow_list_fails_the_event() {
    let mut c = chain(&[("fx_forbidden", "topic = \"secret\"")], &["out"], &["other"], Budgets::default());
    let d = c.run(&[event(0, "x")]);
    let Disposition::Failed(f) = &d[0] else { panic!("{d:?}") };
    assert_eq!((f.kind, f.retryable), (ErrorKind::ForbiddenTopic, false));
    assert!(f.message.contains("\"secret\"") && f.message.contains("other, out"), "{}", f.message);
}

#[test]
fn transient_failures_and_faults_are_retryable() {
    let mut c = chain(&[("fx_flaky", "failures = 1")], &["out"], &[], Budgets::default());
    let d = c.run(&[event(0, "x")]);
    assert!(matches!(&d[0], Disposition::Failed(f) if f.retryable && f.kind == ErrorKind::RetriesExhausted), "{d:?}");
    let mut again = event(0, "x");
    again.attempt = 2;
    assert!(matches!(&c.run(&[again])[0], Disposition::Deliver(_)));

    let mut c = chain(&[("fx_panic", "trigger = \"boom\"")], &["out"], &[], Budgets::default());
    let d = c.run(&[event(0, "ok"), event(1, "boom"), event(2, "ok")]);
    assert!(matches!(&d[0], Disposition::Deliver(_)));
    assert!(matches!(&d[1], Disposition::Failed(f) if f.retryable && f.kind == ErrorKind::Trap), "{d:?}");
    assert!(matches!(&d[2], Disposition::Deliver(_)));
}

#[test]
fn drop_is_reported_with_its_reason() {
    let mut c = chain(&[("validate", "rules = [{ field = \"n\", min = 10 }]")], &["out"], &[], Budgets::default());
    let d = c.run(&[event(0, r#"{"n": 3}"#)]);
    let Disposition::Dropped { reason, plugin } = &d[0] else { panic!("{d:?}") };
    assert!(reason.as_deref().unwrap().contains("`n`"), "{reason:?}");
    assert!(plugin.starts_with("validate@"));
}

#[test]
fn pass_without_default_outputs_is_a_failure_not_a_silent_drop() {
    let mut c = chain(&[("passthrough", "")], &[], &["x"], Budgets::default());
    let d = c.run(&[event(0, "x")]);
    assert!(matches!(&d[0], Disposition::Failed(f) if f.kind == ErrorKind::NoOutputTopic), "{d:?}");
}

#[test]
fn emitting_over_the_output_budget_fails_the_event() {
    let budgets = Budgets { max_output_bytes: 4, ..Budgets::default() };
    let mut c = chain(&[("fx_forbidden", "topic = \"out\"")], &["out"], &[], budgets);
    let d = c.run(&[event(0, "more than four bytes")]);
    assert!(matches!(&d[0], Disposition::Failed(f) if f.kind == ErrorKind::OutputBudget && !f.retryable), "{d:?}");
}
