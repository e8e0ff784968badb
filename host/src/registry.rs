//! Every plugin the host has compiled, by name: the version serving now and
//! the one before it, for rollback. Only the reload controller changes it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::runtime::{Budgets, LoadError, LoadedPlugin, Runtime};

/// What the registry knows of one plugin name.
#[derive(Debug, Clone)]
struct Entry {
    current: Arc<LoadedPlugin>,
    previous: Option<Arc<LoadedPlugin>>,
    /// The hash a rollback moved away from: the file still on disk. Reloads
    /// leave it alone until different bytes land, so a rollback holds.
    rolled_back_from: Option<String>,
}

/// What reading a plugin file found.
#[derive(Debug)]
pub enum Offer {
    /// The file holds the version already serving (or one rolled back from).
    Unchanged(Arc<LoadedPlugin>),
    /// A new version, compiled and of the right world but not yet installed.
    New(Arc<LoadedPlugin>),
}

/// Cheap to clone (everything in it is shared), so that a clone can compile
/// on the blocking pool while the controller goes on.
#[derive(Debug, Clone)]
pub struct Registry {
    runtime: Arc<Runtime>,
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    pub fn new(runtime: Runtime) -> Self {
        Registry { runtime: Arc::new(runtime), entries: BTreeMap::new() }
    }

    /// Reads and, if its bytes are new, compiles the plugin file at `path`.
    /// Compiling takes a while; callers run this off the async threads.
    pub fn offer(&self, path: &Path, budgets: &Budgets) -> Result<Offer, LoadError> {
        let bytes = self.read(path, budgets)?;
        self.offer_bytes(path, &bytes, budgets)
    }

    /// Reads a plugin file, within `max_plugin_file`.
    pub fn read(&self, path: &Path, budgets: &Budgets) -> Result<Vec<u8>, LoadError> {
        self.runtime.read(path, budgets)
    }

    /// [`Registry::offer`] of bytes already read from `path`.
    pub fn offer_bytes(&self, path: &Path, bytes: &[u8], budgets: &Budgets) -> Result<Offer, LoadError> {
        let hash = crate::runtime::hash_of(bytes);
        if let Some(entry) = self.entries.get(&crate::runtime::plugin_name(path)) {
            if entry.current.hash == hash {
                return Ok(Offer::Unchanged(entry.current.clone()));
            }
            if entry.rolled_back_from.as_deref() == Some(hash.as_str()) {
                return Ok(Offer::Unchanged(entry.current.clone()));
            }
        }
        self.runtime.load_bytes(path, bytes, budgets).map(Offer::New)
    }

    /// Makes `plugin` the serving version of its name; the one it replaces
    /// becomes the previous version.
    pub fn install(&mut self, plugin: Arc<LoadedPlugin>) {
        let name = plugin.name.to_string();
        match self.entries.get_mut(&name) {
            Some(entry) if Arc::ptr_eq(&entry.current, &plugin) => {}
            Some(entry) => {
                let old = std::mem::replace(&mut entry.current, plugin);
                entry.previous = Some(old);
                entry.rolled_back_from = None;
            }
            None => {
                self.entries.insert(name, Entry { current: plugin, previous: None, rolled_back_from: None });
            }
        }
    }

    /// The version a rollback of `name` would restore.
    pub fn previous(&self, name: &str) -> Result<Arc<LoadedPlugin>, String> {
        let entry = self.entries.get(name).ok_or_else(|| format!("no plugin named \"{name}\" is loaded"))?;
        entry.previous.clone().ok_or_else(|| {
            format!("plugin \"{name}\" has no previous version: {} is the only one loaded", entry.current.version())
        })
    }

    /// Swaps `name`'s current and previous versions; rolling back twice
    /// rolls forward again.
    pub fn rollback(&mut self, name: &str) -> Result<Arc<LoadedPlugin>, String> {
        self.previous(name)?;
        let entry = self.entries.get_mut(name).ok_or_else(|| format!("no plugin named \"{name}\""))?;
        let restored = entry.previous.take().ok_or_else(|| format!("plugin \"{name}\" has no previous version"))?;
        let undone = std::mem::replace(&mut entry.current, restored.clone());
        entry.rolled_back_from = Some(undone.hash.clone());
        entry.previous = Some(undone);
        Ok(restored)
    }

    pub fn current(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.entries.get(name).map(|e| &e.current)
    }

    /// Every plugin: (name, current, previous).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<LoadedPlugin>, Option<&Arc<LoadedPlugin>>)> {
        self.entries.iter().map(|(name, e)| (name.as_str(), &e.current, e.previous.as_ref()))
    }
}
