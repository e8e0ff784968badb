//! What one plugin call costs the host, on the `passthrough` plugin so that
//! the figure is the host and the component boundary, not the plugin's work.
//!
//! `cargo bench -p sluice --bench plugin_call`; BENCHMARKS.md has the figures.
//! Per-event figures use `Throughput::Elements`, so criterion reports
//! events per second; the time per event is its inverse.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // a benchmark: a failure is a panic with its message

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::bindings::types;
use sluice::invoke::Invoker;
use sluice::record::Record;
use sluice::runtime::{Budgets, LoadedPlugin, Runtime};
use sluice::tables::Tables;

const SIZES: [(usize, &str); 2] = [(100, "100B"), (1024, "1KB")];
const BATCHES: [usize; 3] = [1, 16, 256];

fn record(offset: i64, size: usize) -> Record {
    Record {
        topic: "bench.in".into(),
        partition: 0,
        offset,
        timestamp: Some(1_700_000_000_000),
        key: Some(format!("key-{offset}").into_bytes()),
        value: Some(vec![b'x'; size]),
        headers: Vec::new(),
        attempt: 1,
    }
}

fn load(runtime: &Runtime) -> Arc<LoadedPlugin> {
    runtime.load(&sluice::bundled::path("passthrough"), &Budgets::default()).unwrap()
}

fn invoker(plugin: &Arc<LoadedPlugin>) -> Invoker {
    Invoker::new(plugin.clone(), Vec::new(), Arc::new(Tables::default()), Budgets::default()).unwrap()
}

/// The packed `handle-batch` call the pipeline makes, per batch size: the
/// per-event cost at batch 256 is what a busy partition pays.
fn batch_calls(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime);
    let mut group = c.benchmark_group("batch");
    for (size, label) in SIZES {
        for n in BATCHES {
            let records: Vec<Record> = (0..n as i64).map(|o| record(o, size)).collect();
            let mut invoker = invoker(&plugin);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(label, n), &records, |b, records| {
                b.iter(|| black_box(invoker.run(records)));
            });
        }
    }
    group.finish();
}

/// The typed `handle` export, one event per call: the component model
/// lowers the record field by field.
fn typed_calls(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime);
    let mut instance = plugin.instantiate(&[], Arc::new(Tables::default()), &Budgets::default()).unwrap();
    let mut group = c.benchmark_group("typed");
    for (size, label) in SIZES {
        let event = types::Event {
            topic: "bench.in".into(),
            partition: 0,
            offset: 1,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"key-1".to_vec()),
            value: Some(vec![b'x'; size]),
            headers: Vec::new(),
            attempt: 1,
        };
        group.throughput(Throughput::Elements(1));
        group.bench_function(label, |b| b.iter(|| black_box(instance.handle_typed(&event).unwrap())));
    }
    group.finish();
}

/// A fresh instance from the pre-linked component, with its `init`: what a
/// fault or a new partition worker costs.
fn instantiation(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime);
    let tables = Arc::new(Tables::default());
    c.bench_function("instantiate", |b| {
        b.iter(|| black_box(plugin.instantiate(&[], tables.clone(), &Budgets::default()).unwrap()));
    });
}

/// Epoch interruption adds a check to every loop header and function entry
/// of the compiled guest; the same batch on an engine built without it.
fn epoch_interruption(c: &mut Criterion) {
    let mut group = c.benchmark_group("epoch");
    for (on, runtime) in [("on", Runtime::new().unwrap()), ("off", Runtime::without_epoch_interruption().unwrap())] {
        let plugin = load(&runtime);
        let mut invoker = invoker(&plugin);
        let records: Vec<Record> = (0..256).map(|o| record(o, 100)).collect();
        group.throughput(Throughput::Elements(256));
        group.bench_function(BenchmarkId::new(on, "100B x256"), |b| b.iter(|| black_box(invoker.run(&records))));
    }
    group.finish();
}

criterion_group!(benches, batch_calls, typed_calls, instantiation, epoch_interruption);
criterion_main!(benches);
