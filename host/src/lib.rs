//! sluice: Kafka-API stream processing through sandboxed WebAssembly plugins.
//!
//! Data flows one way: source → router → plugin runtime → verdict →
//! sink / DLQ → offsets.

pub mod admin;
pub mod admin_client;
pub mod bindings;
pub mod bundled;
pub mod chain;
pub mod check;
pub mod config;
pub mod control;
pub mod correlation;
pub mod dead_letters;
pub mod demo;
pub mod dlq;
pub mod dlq_tools;
pub mod files;
pub mod invoke;
pub mod kafka;
pub mod local;
pub mod metrics;
pub mod offsets;
pub mod partition;
pub mod pipeline;
pub mod plugin_config;
pub mod produce;
pub mod record;
pub mod registry;
pub mod reload;
pub mod retry;
pub mod retry_topic;
pub mod route_version;
pub mod runtime;
pub mod scaffold;
pub mod sink;
pub mod source;
pub mod stats;
pub mod tables;
pub mod telemetry;
pub mod watch;
