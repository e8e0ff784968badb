//! Per-plugin budgets and the resource limiter that enforces the memory cap.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// What one plugin instance may use. Defaults are deliberately tight: a
/// plugin that needs more says so in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Wall-clock time one call may take, enforced by epoch interruption.
    pub call_timeout: Duration,
    /// Linear memory an instance may grow to, in bytes.
    pub memory: u64,
    /// Output records one event may produce.
    pub max_outputs: usize,
    /// Bytes (keys, values, headers) one event's outputs may total.
    pub max_output_bytes: u64,
    /// Size of the plugin file itself.
    pub max_plugin_file: u64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            call_timeout: Duration::from_millis(100),
            memory: 16 * 1024 * 1024,
            max_outputs: 1024,
            max_output_bytes: 16 * 1024 * 1024,
            max_plugin_file: 64 * 1024 * 1024,
        }
    }
}

/// Caps linear memory and remembers whether it refused a growth, so that the
/// trap which usually follows is reported as "out of memory", not a panic.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    pub(crate) denied: Option<usize>,
}

impl MemoryLimiter {
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn new(limit: u64) -> Self {
        MemoryLimiter { limit: usize::try_from(limit).unwrap_or(usize::MAX), denied: None }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.denied = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far beyond any
        // real plugin and keeps a hostile one from exhausting host memory.
        Ok(desired <= 1_000_000)
    }
}
