//! The Wasm engine, plugin loading and validation. One engine serves every
//! plugin; each loaded file is compiled and pre-linked once, then
//! instantiated cheaply per worker.

mod guest_output;
pub mod host_api;
mod instance;
pub mod limits;
mod load_error;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

pub use instance::{Fault, PluginInstance};
pub use limits::Budgets;
pub use load_error::LoadError;

use crate::bindings::{Plugin, PluginPre};
use crate::tables::Tables;
use host_api::StoreState;

/// How often the epoch ticks. Deadlines are rounded up to whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// The engine and linker shared by every plugin, plus the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    ticker: Arc<Ticker>,
}

/// Advances the engine's epoch so deadlines fire. Every loaded plugin holds
/// it, so it keeps ticking as long as anything can still run guest code,
/// even after the `Runtime` itself is gone.
#[derive(Debug)]
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("sluice-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(Ticker { stop, thread: Some(thread) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new() -> anyhow::Result<Self> {
        Self::build(true)
    }

    /// An engine whose compiled code has no epoch checks, so call budgets are
    /// NOT enforced: an endless loop runs forever. It exists only so that
    /// `host/benches` can measure what the interruption costs.
    pub fn without_epoch_interruption() -> anyhow::Result<Self> {
        Self::build(false)
    }

    fn build(epoch_interruption: bool) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(epoch_interruption);
        // A guest's deep recursion must trap, not take the host's stack.
        config.max_wasm_stack(1024 * 1024);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;

        let ticker = Arc::new(Ticker::start(engine.clone())?);
        Ok(Runtime { engine, linker, ticker })
    }

    /// Reads, compiles and validates a plugin file.
    pub fn load(&self, path: &Path, budgets: &Budgets) -> Result<Arc<LoadedPlugin>, LoadError> {
        let bytes = self.read(path, budgets)?;
        self.load_bytes(path, &bytes, budgets)
    }

    /// Reads a plugin file, refusing one over `max_plugin_file`.
    pub fn read(&self, path: &Path, budgets: &Budgets) -> Result<Vec<u8>, LoadError> {
        crate::files::read_regular(path, budgets.max_plugin_file).map_err(|source| match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() && meta.len() > budgets.max_plugin_file => {
                LoadError::TooLarge { path: path.into(), size: meta.len(), limit: budgets.max_plugin_file }
            }
            _ => LoadError::Read { path: path.into(), error: source },
        })
    }

    /// Compiles and validates plugin bytes; `path` names the plugin in messages.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8], budgets: &Budgets) -> Result<Arc<LoadedPlugin>, LoadError> {
        if bytes.len() as u64 > budgets.max_plugin_file {
            return Err(LoadError::TooLarge {
                path: path.into(),
                size: bytes.len() as u64,
                limit: budgets.max_plugin_file,
            });
        }
        load_error::check_header(path, bytes)?;
        let component = Component::new(&self.engine, bytes).map_err(|e| load_error::compile_error(path, bytes, &e))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| load_error::link_error(path, &component, &self.engine, &e))?;
        let pre =
            PluginPre::new(instance_pre).map_err(|e| load_error::export_error(path, &component, &self.engine, &e))?;
        let hash = hash_of(bytes);
        let name = plugin_name(path);
        Ok(Arc::new(LoadedPlugin {
            name: name.into(),
            hash,
            path: path.into(),
            size: bytes.len() as u64,
            loaded_at: SystemTime::now(),
            pre,
            _ticker: self.ticker.clone(),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// A plugin version: the first 12 hex digits of the file's SHA-256.
pub fn hash_of(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..6])
}

/// A plugin's name: its file name without the `.wasm` extension.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// A compiled, validated plugin file, ready to instantiate.
pub struct LoadedPlugin {
    pub name: Arc<str>,
    /// The first 12 hex digits of the file's SHA-256: the plugin's version.
    pub hash: String,
    pub path: PathBuf,
    pub size: u64,
    pub loaded_at: SystemTime,
    pre: PluginPre<StoreState>,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("name", &self.name).field("hash", &self.hash).finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// `name@hash`, the form used in logs, metrics and DLQ headers.
    pub fn version(&self) -> String {
        format!("{}@{}", self.name, self.hash)
    }

    /// Creates an instance and runs its `init` with `config`
    /// (`(key, JSON text)` pairs).
    pub fn instantiate(
        self: &Arc<Self>,
        config: &[(String, String)],
        tables: Arc<Tables>,
        budgets: &Budgets,
    ) -> Result<PluginInstance, LoadError> {
        PluginInstance::new(self.clone(), config, tables, budgets)
    }
}
