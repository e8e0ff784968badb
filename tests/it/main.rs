//! sluice's integration tests: one binary, one module per area.

// A test that cannot set up should stop right there, with the panic as its report.
#![allow(clippy::unwrap_used)]

mod golden;
mod plugins;
mod scaffold;
mod support;
