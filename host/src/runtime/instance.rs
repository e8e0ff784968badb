//! One live plugin instance: its store, its budgets, and calls into it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_sdk::abi::{self, Outcome};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::WasiCtx;

use super::guest_output::GuestOutput;
use super::host_api::StoreState;
use super::limits::{Budgets, MemoryLimiter};
use super::{EPOCH_TICK, LoadError, LoadedPlugin};
use crate::bindings::{Plugin, types};
use crate::tables::Tables;

/// A plugin call that failed without the plugin deciding anything: the
/// plugin's fault, never a verdict. The instance is unusable afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("plugin trapped: {message}")]
    Trap { message: String },
    #[error("plugin exceeded its time budget of {budget:?}")]
    Timeout { budget: Duration },
    #[error("plugin exceeded its memory budget of {limit} bytes (asked for {asked})")]
    OutOfMemory { limit: u64, asked: usize },
    #[error("plugin returned a malformed batch response: {detail}")]
    BadResponse { detail: String },
}

impl Fault {
    /// The short kind used in metrics labels and DLQ headers.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Trap { .. } => "trap",
            Fault::Timeout { .. } => "timeout",
            Fault::OutOfMemory { .. } => "memory",
            Fault::BadResponse { .. } => "bad-response",
        }
    }
}

/// An instantiated, initialised plugin. Long-lived: one per plugin per worker,
/// re-created only after a fault.
pub struct PluginInstance {
    plugin: Arc<LoadedPlugin>,
    store: Store<StoreState>,
    bindings: Plugin,
    budgets: Budgets,
    stderr: GuestOutput,
    failed: bool,
    /// The deadline of the call in progress, for the timeout report.
    deadline: Duration,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance").field("plugin", &self.plugin.version()).field("failed", &self.failed).finish()
    }
}

/// The longest any batch call may run, however large the batch: an endless
/// loop is noticed within this, then the batch is replayed record by record,
/// each with the full per-event budget.
const BATCH_DEADLINE_CAP: Duration = Duration::from_secs(1);

/// A batch of `count` events gets `count` per-event budgets, capped at
/// [`BATCH_DEADLINE_CAP`] (but never below one event's budget), so healthy
/// batches of slow events are not mistaken for a runaway plugin.
pub fn batch_deadline(per_event: Duration, count: usize) -> Duration {
    let total = per_event.saturating_mul(u32::try_from(count.max(1)).unwrap_or(u32::MAX));
    total.min(per_event.max(BATCH_DEADLINE_CAP))
}

fn ticks(budget: Duration) -> u64 {
    (budget.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

impl PluginInstance {
    pub(super) fn new(
        plugin: Arc<LoadedPlugin>,
        config: &[(String, String)],
        tables: Arc<Tables>,
        budgets: &Budgets,
    ) -> Result<Self, LoadError> {
        let stdout = GuestOutput::new(plugin.name.clone(), "stdout");
        let stderr = GuestOutput::new(plugin.name.clone(), "stderr");
        // No capability by default: no preopened directories, environment,
        // arguments, stdin or network. Output goes to the host log. The
        // builder's defaults already deny most of this (stdin closed, every
        // socket address refused); the explicit switches keep it so if a
        // default changes. tests/it/hostile.rs proves each denial.
        let wasi = WasiCtx::builder()
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = StoreState {
            wasi,
            resources: ResourceTable::new(),
            limiter: MemoryLimiter::new(budgets.memory),
            plugin: plugin.name.clone(),
            tables,
            counters: BTreeMap::new(),
        };
        let mut store = Store::new(plugin.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        // `init` may build lookup structures, so it gets ten calls' worth.
        store.set_epoch_deadline(ticks(budgets.call_timeout.saturating_mul(10)));

        let fault = |store: &mut Store<StoreState>, e: wasmtime::Error| LoadError::InitFault {
            path: plugin.path.clone(),
            detail: classify(store, &stderr, budgets.call_timeout.saturating_mul(10), e).to_string(),
        };
        let bindings = match plugin.pre.instantiate(&mut store) {
            Ok(bindings) => bindings,
            Err(e) => return Err(fault(&mut store, e)),
        };
        let entries: Vec<types::ConfigEntry> =
            config.iter().map(|(key, value)| types::ConfigEntry { key: key.clone(), value: value.clone() }).collect();
        match bindings.sluice_plugin_handler().call_init(&mut store, &entries) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(LoadError::InitRefused { path: plugin.path.clone(), message }),
            Err(e) => return Err(fault(&mut store, e)),
        }
        Ok(PluginInstance {
            plugin,
            store,
            bindings,
            budgets: *budgets,
            stderr,
            failed: false,
            deadline: budgets.call_timeout,
        })
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// True after a fault: the caller must create a new instance.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Counters the plugin added to since the last call to this.
    pub fn take_counters(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.store.data_mut().counters)
    }

    /// Runs a packed batch (see `sluice_sdk::abi`) of `count` events, within
    /// [`batch_deadline`] of the per-event budget.
    pub fn handle_batch(&mut self, request: &[u8], count: usize) -> Result<Vec<Outcome>, Fault> {
        self.before_call(batch_deadline(self.budgets.call_timeout, count));
        let result = self.bindings.sluice_plugin_handler().call_handle_batch(&mut self.store, request);
        let response = self.after_call(result)?;
        abi::decode_response(&response, count).map_err(|e| {
            self.failed = true;
            Fault::BadResponse { detail: e.to_string() }
        })
    }

    /// Runs one event through the typed `handle` export.
    pub fn handle_typed(&mut self, event: &types::Event) -> Result<Outcome, Fault> {
        self.before_call(self.budgets.call_timeout);
        let result = self.bindings.sluice_plugin_handler().call_handle(&mut self.store, event);
        Ok(self.after_call(result)?.map(convert::verdict).map_err(convert::failure))
    }

    fn before_call(&mut self, deadline: Duration) {
        self.store.set_epoch_deadline(ticks(deadline));
        self.deadline = deadline;
        self.stderr.clear_tail();
    }

    fn after_call<T>(&mut self, result: wasmtime::Result<T>) -> Result<T, Fault> {
        result.map_err(|e| {
            self.failed = true;
            classify(&mut self.store, &self.stderr, self.deadline, e)
        })
    }
}

fn classify(store: &mut Store<StoreState>, stderr: &GuestOutput, budget: Duration, error: wasmtime::Error) -> Fault {
    if let Some(asked) = store.data_mut().limiter.denied.take() {
        return Fault::OutOfMemory { limit: store.data().limiter_limit(), asked };
    }
    let tail = stderr.tail();
    let with_tail = |what: String| if tail.is_empty() { what } else { format!("{what}; guest stderr: {tail}") };
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::Timeout { budget },
        Some(Trap::StackOverflow) => Fault::Trap { message: with_tail("stack overflow".into()) },
        Some(trap) => Fault::Trap { message: with_tail(trap.to_string()) },
        None => Fault::Trap { message: with_tail(format!("{error:#}")) },
    }
}

impl StoreState {
    fn limiter_limit(&self) -> u64 {
        self.limiter.limit() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_deadline_scales_with_the_batch_up_to_the_cap() {
        let ms = Duration::from_millis;
        assert_eq!(batch_deadline(ms(100), 1), ms(100));
        assert_eq!(batch_deadline(ms(100), 5), ms(500));
        assert_eq!(batch_deadline(ms(100), 256), ms(1000));
        assert_eq!(batch_deadline(ms(2000), 8), ms(2000), "never below one event's budget");
        assert_eq!(batch_deadline(ms(100), 0), ms(100));
    }
}

mod convert {
    use sluice_sdk::{Failure, Header, Output, Verdict};

    use crate::bindings::types;

    pub(super) fn verdict(v: types::Verdict) -> Verdict {
        match v {
            types::Verdict::Pass => Verdict::Pass,
            types::Verdict::Drop(reason) => Verdict::Drop(reason),
            types::Verdict::Emit(records) => Verdict::Emit(
                records
                    .into_iter()
                    .map(|r| Output {
                        topic: r.topic,
                        key: r.key,
                        value: r.value,
                        headers: r.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(),
                    })
                    .collect(),
            ),
        }
    }

    pub(super) fn failure(f: types::Failure) -> Failure {
        match f {
            types::Failure::Retry(r) => Failure::Retry { message: r.message, delay_ms: r.delay_ms },
            types::Failure::Reject(message) => Failure::Reject(message),
        }
    }
}
