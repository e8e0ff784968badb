//! The host's bindings to the plugin contract in `wit/`, generated once here.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
});

pub use self::sluice::plugin::types;
pub use exports::sluice::plugin::handler;

/// The WIT package version this host implements.
pub const WIT_PACKAGE: &str = "sluice:plugin@0.1.0";
/// The interface a plugin must export.
pub const HANDLER_EXPORT: &str = "sluice:plugin/handler@0.1.0";
