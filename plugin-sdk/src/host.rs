//! What the host offers a plugin: logging, counters, time and lookup tables.
//!
//! Inside Wasm these call the host. Natively (in `cargo test`) they talk to the
//! `testing::Harness`, which records logs and counters and
//! serves lookup tables you give it.

use crate::verdict::Failure;

/// A looked-up row: a JSON object. CSV columns arrive as string fields.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Step-by-step detail, usually off.
    Trace,
    /// Detail for finding a problem.
    Debug,
    /// Normal operation worth noting.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something the plugin could not handle.
    Error,
}

/// Logs a structured message through the host, which adds the route, plugin
/// and record coordinates.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    imp::log(level, message, fields);
}

/// Logs `message` at debug level, with no fields.
pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}

/// Logs `message` at info level, with no fields.
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}

/// Logs `message` at warn level, with no fields.
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}

/// Adds `delta` to the plugin counter `name`, exported by the host as
/// `sluice_plugin_counter_total{plugin, name}`.
pub fn counter_add(name: &str, delta: u64) {
    imp::counter_add(name, delta);
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    imp::now_ms()
}

/// Looks `key` up in the reference table `table`. `Ok(None)` when the key is
/// absent; a [`Failure::Reject`] when the route declares no such table.
pub fn lookup(table: &str, key: &str) -> Result<Option<Row>, Failure> {
    let raw = imp::lookup(table, key).map_err(Failure::Reject)?;
    raw.map(|bytes| {
        serde_json::from_slice::<Row>(&bytes).map_err(|e| {
            Failure::reject(format!("lookup table `{table}` returned a row that is not a JSON object: {e}"))
        })
    })
    .transpose()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::export::bindings::sluice::plugin::host;
    use crate::export::bindings::sluice::plugin::types::Level as WitLevel;

    pub(super) fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => WitLevel::Trace,
            Level::Debug => WitLevel::Debug,
            Level::Info => WitLevel::Info,
            Level::Warn => WitLevel::Warn,
            Level::Error => WitLevel::Error,
        };
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        host::log(level, message, &fields);
    }

    pub(super) fn counter_add(name: &str, delta: u64) {
        host::counter_add(name, delta);
    }

    pub(super) fn now_ms() -> i64 {
        host::now_ms()
    }

    pub(super) fn lookup(table: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        host::lookup(table, key)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;
    use crate::testing::native;

    pub(super) fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        native::with(|host| host.log(level, message, fields));
    }

    pub(super) fn counter_add(name: &str, delta: u64) {
        native::with(|host| host.counter_add(name, delta));
    }

    pub(super) fn now_ms() -> i64 {
        native::with(|host| host.now_ms())
    }

    pub(super) fn lookup(table: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        native::with(|host| host.lookup(table, key))
    }
}
