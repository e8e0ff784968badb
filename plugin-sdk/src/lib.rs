//! Write [sluice](https://example.invalid/sluice) plugins in Rust.
//!
//! A plugin sees one Kafka record at a time as an [`Event`] and answers with a
//! [`Verdict`] (drop, pass, or emit new records) or a [`Failure`] (retry, or
//! reject to the dead-letter queue). The host owns everything else: polling,
//! retries with backoff, the DLQ, offset commits, budgets and hot reload.
//!
//! ```
//! use sluice_sdk::prelude::*;
//!
//! struct OnlyPushes;
//!
//! impl Handler for OnlyPushes {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(OnlyPushes)
//!     }
//!
//!     fn handle(&mut self, event: &Event<'_>) -> Result<Verdict, Failure> {
//!         let body: serde_json::Value = event.json()?;
//!         Ok(match body["type"].as_str() {
//!             Some("PushEvent") => Verdict::Pass,
//!             _ => Verdict::drop("not a push"),
//!         })
//!     }
//! }
//!
//! sluice_sdk::export!(OnlyPushes);
//! ```
//!
//! Unit-test a handler natively, with no Wasm, through [`testing::Harness`].
//! Build the plugin with `cargo build --release --target wasm32-wasip2`.

#![warn(missing_docs)]

// Lets the generated bindings name this crate by its public path from inside it.
extern crate self as sluice_sdk;

pub mod abi;
mod config;
mod event;
mod export;
pub mod host;
pub mod json;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod verdict;

pub use config::Config;
pub use event::{Event, Header, Headers};
pub use serde_json;
pub use verdict::{Failure, Output, Verdict};

/// A plugin's event handler. One value lives per plugin instance, from `init`
/// until the host discards the instance.
pub trait Handler: Sized + 'static {
    /// Builds the handler from the plugin's config table in the routing TOML.
    /// An `Err` refuses the config; the message is shown to the operator.
    fn init(config: &Config) -> Result<Self, String>;

    /// Decides what happens to one event.
    fn handle(&mut self, event: &Event<'_>) -> Result<Verdict, Failure>;
}

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::{Config, Event, Failure, Handler, Header, Output, Verdict, host};
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
}
