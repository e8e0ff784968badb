//! The store's state and the host imports a plugin can call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::sluice::plugin::{host, types};
use crate::runtime::limits::MemoryLimiter;
use crate::tables::Tables;

/// Everything one plugin instance's store holds.
pub struct StoreState {
    pub(crate) wasi: WasiCtx,
    pub(crate) resources: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) plugin: Arc<str>,
    pub(crate) tables: Arc<Tables>,
    /// Plugin-defined counters, drained by the caller after each call.
    pub(crate) counters: BTreeMap<String, u64>,
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreState").field("plugin", &self.plugin).finish_non_exhaustive()
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.resources }
    }
}

impl types::Host for StoreState {}

/// Counter names longer than this are cut, so that a hostile plugin cannot
/// grow the host's memory through names.
const MAX_COUNTER_NAME: usize = 64;
/// Distinct counters one instance may define.
const MAX_COUNTERS: usize = 256;

impl host::Host for StoreState {
    fn log(&mut self, level: types::Level, message: String, fields: Vec<(String, String)>) {
        let plugin = &*self.plugin;
        let fields = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        match level {
            types::Level::Trace => tracing::trace!(target: "sluice::plugin", plugin, fields, "{message}"),
            types::Level::Debug => tracing::debug!(target: "sluice::plugin", plugin, fields, "{message}"),
            types::Level::Info => tracing::info!(target: "sluice::plugin", plugin, fields, "{message}"),
            types::Level::Warn => tracing::warn!(target: "sluice::plugin", plugin, fields, "{message}"),
            types::Level::Error => tracing::error!(target: "sluice::plugin", plugin, fields, "{message}"),
        }
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        let mut name = name;
        if name.len() > MAX_COUNTER_NAME {
            let mut cut = MAX_COUNTER_NAME;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        if self.counters.len() >= MAX_COUNTERS && !self.counters.contains_key(&name) {
            name = "_overflow".to_owned();
        }
        let slot = self.counters.entry(name).or_default();
        *slot = slot.saturating_add(delta);
    }

    fn now_ms(&mut self) -> i64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    fn lookup(&mut self, table: String, key: String) -> Result<Option<Vec<u8>>, String> {
        match self.tables.get(&table) {
            Some(rows) => Ok(rows.get(&key).map(<[u8]>::to_vec)),
            None => {
                Err(format!("lookup table `{table}` is not declared in the config (known: {})", self.tables.names()))
            }
        }
    }
}
