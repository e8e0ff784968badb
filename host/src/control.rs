//! What the admin server (and through it `sluice plugins`) sees of a running
//! host, and what it may ask of it. The pipeline's reload controller owns
//! every change; the admin side only reads snapshots and sends requests.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::runtime::LoadedPlugin;
use crate::stats::Stats;

/// One compiled version of a plugin file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `name@hash`, as in logs, metrics and DLQ headers.
    pub version: String,
    pub hash: String,
    pub path: String,
    pub size: u64,
    /// When it was compiled, in milliseconds since the Unix epoch.
    pub loaded_at_ms: u64,
}

impl VersionInfo {
    pub fn of(plugin: &LoadedPlugin) -> Self {
        VersionInfo {
            version: plugin.version(),
            hash: plugin.hash.clone(),
            path: plugin.path.display().to_string(),
            size: plugin.size,
            loaded_at_ms: plugin.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// A plugin as the running host has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    /// The version serving now.
    pub current: VersionInfo,
    /// The version `sluice plugins rollback` would restore.
    pub previous: Option<VersionInfo>,
    /// Routes whose chains use it; empty for a file no route uses yet.
    pub routes: Vec<String>,
}

/// A route as the running host has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub dlq: String,
    /// Retry tiers, in order; consumed by the route like its inputs.
    #[serde(default)]
    pub retry_topics: Vec<String>,
    /// The chain's plugin versions in order, `name@hash`.
    pub chain: Vec<String>,
}

/// The outcome of one reload attempt, kept for the status output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadInfo {
    /// `config` or `plugin:<name>` or `rollback:<name>`.
    pub what: String,
    pub ok: bool,
    /// What changed, or why it was refused.
    pub message: String,
    pub at_ms: u64,
}

impl ReloadInfo {
    pub fn now(what: impl Into<String>, ok: bool, message: impl Into<String>) -> Self {
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        ReloadInfo { what: what.into(), ok, message: message.into(), at_ms }
    }
}

/// The latest published picture of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub routes: Vec<RouteInfo>,
    pub plugins: Vec<PluginInfo>,
    /// The most recent reloads, newest last (at most [`RECENT_RELOADS`]).
    pub reloads: Vec<ReloadInfo>,
}

/// How many reload outcomes the snapshot keeps.
pub const RECENT_RELOADS: usize = 20;

/// Requests the controller answers.
#[derive(Debug)]
pub enum Request {
    /// Restore a plugin's previous version.
    Rollback { plugin: String, reply: oneshot::Sender<Result<PluginInfo, String>> },
    /// Load, check and apply the config file again (as SIGHUP does).
    ReloadConfig { reply: oneshot::Sender<Result<String, String>> },
}

/// Shared between the controller (writer) and the admin server (reader).
#[derive(Debug)]
pub struct Shared {
    pub stats: Arc<Stats>,
    snapshot: RwLock<Arc<Snapshot>>,
    pub requests: mpsc::Sender<Request>,
}

impl Shared {
    pub fn new(stats: Arc<Stats>, requests: mpsc::Sender<Request>) -> Self {
        Shared { stats, snapshot: RwLock::default(), requests }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
    }

    /// Sends a request and waits for its answer; an error if the controller
    /// has stopped.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Request) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(make(reply)).await.map_err(|_| "the host is shutting down".to_owned())?;
        answer.await.map_err(|_| "the host is shutting down".to_owned())?
    }
}
