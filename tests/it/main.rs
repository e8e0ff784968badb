//! sluice's integration tests: one binary, one module per area.

// A test that cannot set up should stop right there, with the panic as its report.
#![allow(clippy::unwrap_used)]

mod admin;
mod audit;
mod backoff;
mod bad_records;
mod binary;
mod broker;
mod chain;
mod config;
mod crash;
mod dlq_tools;
mod failover;
mod fuzz;
mod golden;
mod hostile;
mod interop;
mod logs;
mod metrics;
mod own_broker;
mod pipeline;
mod plugins;
mod produce;
mod reload;
mod retry_tiers;
mod scaffold;
mod shutdown;
mod status_page;
mod support;
