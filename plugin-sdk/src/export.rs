//! The glue between a [`Handler`](crate::Handler) and the component's exports.
//! Plugin authors use [`export!`](crate::export) and never this module.

use std::cell::RefCell;

use crate::abi::{self, Outcome};
use crate::config::Config;
use crate::event::Event;

/// A handler with its type erased, so one `static` can hold any plugin.
pub trait ErasedHandler {
    /// Decides what happens to one event; see [`Handler::handle`](crate::Handler::handle).
    fn handle(&mut self, event: &Event<'_>) -> Outcome;
}

impl<H: crate::Handler> ErasedHandler for H {
    fn handle(&mut self, event: &Event<'_>) -> Outcome {
        crate::Handler::handle(self, event)
    }
}

thread_local! {
    // Wasm components are single-threaded; the instance owns exactly one handler.
    static INSTANCE: RefCell<Option<Box<dyn ErasedHandler>>> = RefCell::new(None);
}

/// `init` for handler type `H`: parse the config and keep the handler.
pub fn init<H: crate::Handler>(entries: Vec<(String, String)>) -> Result<(), String> {
    let config = Config::from_entries(entries)?;
    let handler = H::init(&config)?;
    INSTANCE.with_borrow_mut(|slot| *slot = Some(Box::new(handler)));
    Ok(())
}

/// Runs `f` with the handler.
///
/// # Panics
/// If `init` has not succeeded: the host never calls a handler before then,
/// so this is a host bug and trapping is the honest answer.
pub fn with_handler<R>(f: impl FnOnce(&mut dyn ErasedHandler) -> R) -> R {
    INSTANCE.with_borrow_mut(|slot| match slot.as_deref_mut() {
        Some(handler) => f(handler),
        None => panic!("sluice-sdk: handle called before a successful init"),
    })
}

/// The body of `handle-batch`.
pub fn handle_batch(request: &[u8]) -> Vec<u8> {
    with_handler(|handler| abi::handle_request(request, |event| handler.handle(event)))
}

/// The bindings generated from `wit/`; the only place the SDK names them.
#[cfg(target_arch = "wasm32")]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "::sluice_sdk::__private::bindings",
        runtime_path: "::sluice_sdk::__private::wit_bindgen::rt",
    });
}

#[cfg(target_arch = "wasm32")]
pub use wit_bindgen;

#[cfg(target_arch = "wasm32")]
mod typed {
    use super::bindings::exports::sluice::plugin::handler as wit;
    use super::bindings::sluice::plugin::types as t;
    use crate::event::{Event, Header, Headers};
    use crate::verdict::{Failure, Verdict};

    /// Adapts a handler type to the generated `Guest` trait.
    #[allow(missing_debug_implementations)]
    pub struct Adapter<H>(core::marker::PhantomData<H>);

    impl<H: crate::Handler> wit::Guest for Adapter<H> {
        fn init(config: Vec<t::ConfigEntry>) -> Result<(), String> {
            super::init::<H>(config.into_iter().map(|e| (e.key, e.value)).collect())
        }

        fn handle(event: t::Event) -> Result<t::Verdict, t::Failure> {
            let headers: Vec<Header> =
                event.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect();
            let view = Event {
                topic: &event.topic,
                partition: event.partition,
                offset: event.offset,
                timestamp: event.timestamp,
                key: event.key.as_deref(),
                value: event.value.as_deref(),
                headers: Headers::from_slice(&headers),
                attempt: event.attempt,
            };
            match super::with_handler(|handler| handler.handle(&view)) {
                Ok(Verdict::Pass) => Ok(t::Verdict::Pass),
                Ok(Verdict::Drop(reason)) => Ok(t::Verdict::Drop(reason)),
                Ok(Verdict::Emit(outputs)) => Ok(t::Verdict::Emit(
                    outputs
                        .into_iter()
                        .map(|o| t::OutputRecord {
                            topic: o.topic,
                            key: o.key,
                            value: o.value,
                            headers: o
                                .headers
                                .into_iter()
                                .map(|h| t::Header { name: h.name, value: h.value })
                                .collect(),
                        })
                        .collect(),
                )),
                Err(Failure::Retry { message, delay_ms }) => {
                    Err(t::Failure::Retry(t::RetryFailure { message, delay_ms }))
                }
                Err(Failure::Reject(message)) => Err(t::Failure::Reject(message)),
            }
        }

        fn handle_batch(request: Vec<u8>) -> Vec<u8> {
            super::handle_batch(&request)
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use typed::Adapter;

/// Exports a [`Handler`](crate::Handler) type as the plugin's implementation.
/// Use it once per plugin crate. On a native build it expands to nothing, so
/// the crate still compiles for `cargo test`.
#[macro_export]
macro_rules! export {
    ($handler:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SluicePlugin = $crate::__private::Adapter<$handler>;
    $crate::__private::bindings::__export_plugin!(__SluicePlugin with_types_in $crate::__private::bindings);
        };
    };
}
