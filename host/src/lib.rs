//! sluice: Kafka-API stream processing through sandboxed WebAssembly plugins.
//!
//! Data flows one way: source → router → plugin runtime → verdict →
//! sink / DLQ → offsets.

pub mod bindings;
pub mod bundled;
pub mod invoke;
pub mod local;
pub mod plugin_config;
pub mod record;
pub mod runtime;
pub mod scaffold;
pub mod tables;
pub mod telemetry;
