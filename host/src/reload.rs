//! The reload controller: the one place that changes what the pipeline
//! runs. Plugin file changes, config changes (file or SIGHUP) and rollback
//! requests arrive here, one at a time. Each is loaded and checked in full
//! (compiled, the right world, every `init` accepting its config) before
//! anything is applied; a refused change leaves the running version as it
//! was. Applying means publishing new route versions, which workers take up
//! between batches, and, when input topics change, a new subscription.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rdkafka::consumer::Consumer;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LoadOptions, Route};
use crate::control::{PluginInfo, RECENT_RELOADS, ReloadInfo, Request, Shared, Snapshot, VersionInfo};
use crate::registry::{Offer, Registry};
use crate::route_version::RouteVersion;
use crate::runtime::{Budgets, LoadedPlugin, hash_of, plugin_name};
use crate::source::SourceConsumer;
use crate::tables::Tables;

/// Something that may need reloading.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A `.wasm` file in the plugin directory was written, renamed or removed.
    Plugin(PathBuf),
    /// The config file changed. Its text identical to the one last applied
    /// (an editor's second write event) is ignored.
    Config,
    /// SIGHUP: reload the config whatever its text.
    ConfigSignal,
}

/// Input topic → its route's versions, for the poll loop to start partitions.
pub type Topics = Arc<RwLock<HashMap<String, watch::Receiver<Arc<RouteVersion>>>>>;

pub struct Controller {
    config: Config,
    options: LoadOptions,
    registry: Registry,
    tables: Arc<Tables>,
    routes: BTreeMap<String, watch::Sender<Arc<RouteVersion>>>,
    topics: Topics,
    consumer: Arc<SourceConsumer>,
    shared: Arc<Shared>,
    recent: VecDeque<ReloadInfo>,
    /// Plugin name → hash of the file bytes last refused.
    refused: HashMap<String, String>,
    /// Hash of the config text last applied.
    applied_text: String,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config.path)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Loads every plugin and table of `config` and checks that each route's
    /// chain initialises. Errors here stop the host before it consumes.
    pub fn start(
        config: Config,
        options: LoadOptions,
        mut registry: Registry,
        consumer: Arc<SourceConsumer>,
        shared: Arc<Shared>,
    ) -> anyhow::Result<Self> {
        let applied_text = std::fs::read(&config.path).map(|t| hash_of(&t)).unwrap_or_default();
        let tables = Arc::new(config.load_tables()?);
        let mut plugins = BTreeMap::new();
        for (name, (path, budgets)) in plugin_files(&config.routes) {
            let plugin = match registry.offer(&path, &budgets)? {
                Offer::New(p) | Offer::Unchanged(p) => p,
            };
            tracing::info!(plugin = %plugin.version(), path = %path.display(), "plugin loaded");
            registry.install(plugin.clone());
            plugins.insert(name, plugin);
        }
        let mut routes = BTreeMap::new();
        for route in &config.routes {
            let version = build(&config, route, &plugins, &tables);
            version.chain()?;
            routes.insert(route.name.clone(), watch::channel(Arc::new(version)).0);
        }
        let controller = Controller {
            config,
            options,
            registry,
            tables,
            routes,
            topics: Topics::default(),
            consumer,
            shared,
            recent: VecDeque::new(),
            refused: HashMap::new(),
            applied_text,
        };
        controller.update_topics();
        controller.publish();
        Ok(controller)
    }

    pub fn topics(&self) -> Topics {
        self.topics.clone()
    }

    /// Serves changes and requests until shutdown.
    pub async fn run(
        mut self,
        mut changes: mpsc::Receiver<Change>,
        mut requests: mpsc::Receiver<Request>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                Some(change) = changes.recv() => match change {
                    Change::Config => {
                        if self.config_text_changed() {
                            let _ = self.reload_config().await;
                        }
                    }
                    Change::ConfigSignal => {
                        let _ = self.reload_config().await;
                    }
                    Change::Plugin(path) => self.reload_plugin(&path).await,
                },
                Some(request) = requests.recv() => match request {
                    Request::Rollback { plugin, reply } => {
                        let _ = reply.send(self.rollback(&plugin).await);
                    }
                    Request::ReloadConfig { reply } => {
                        let _ = reply.send(self.reload_config().await);
                    }
                },
                else => return,
            }
        }
    }

    /// Whether the config file's text differs from the last applied one. A
    /// file that cannot be read counts as changed, so the reload says why.
    fn config_text_changed(&self) -> bool {
        let same = std::fs::read(&self.config.path).is_ok_and(|text| hash_of(&text) == self.applied_text);
        if same {
            tracing::debug!(config = %self.config.path.display(), "config file event, but its text is the one applied");
        }
        !same
    }

    /// Load → validate → diff → apply. On any error nothing is applied.
    pub async fn reload_config(&mut self) -> Result<String, String> {
        let text = std::fs::read(&self.config.path).map(|t| hash_of(&t)).unwrap_or_default();
        let outcome = self.try_reload_config().await;
        match &outcome {
            Ok(summary) => {
                self.applied_text = text;
                tracing::info!(config = %self.config.path.display(), %summary, "config reloaded");
                self.record("config", "config", true, summary.clone());
            }
            Err(reason) => {
                tracing::error!(config = %self.config.path.display(), %reason, "config reload refused; the running config stays");
                self.record("config", "config", false, reason.clone());
            }
        }
        outcome
    }

    async fn try_reload_config(&mut self) -> Result<String, String> {
        let (path, options) = (self.config.path.clone(), self.options.clone());
        let new = blocking(move || Config::load_with(&path, &options).map_err(|e| e.to_string())).await?;
        let restart = restart_only_changes(&self.config, &new);
        if !restart.is_empty() {
            return Err(format!(
                "{} changed, which takes a restart; nothing was applied (revert it to reload the rest)",
                restart.join(", ")
            ));
        }
        self.check_no_topic_moves(&new)?;

        let tables = {
            let new = new.clone();
            let loaded = blocking(move || new.load_tables().map_err(|e| format!("{e:#}"))).await?;
            if loaded == *self.tables { self.tables.clone() } else { Arc::new(loaded) }
        };
        let mut plugins = BTreeMap::new();
        for (name, (path, budgets)) in plugin_files(&new.routes) {
            let registry = self.registry.clone();
            let offer = blocking(move || registry.offer(&path, &budgets).map_err(|e| e.to_string())).await?;
            plugins.insert(name, offer);
        }
        let resolved: BTreeMap<String, Arc<LoadedPlugin>> = plugins
            .iter()
            .map(|(name, offer)| {
                (
                    name.clone(),
                    match offer {
                        Offer::New(p) | Offer::Unchanged(p) => p.clone(),
                    },
                )
            })
            .collect();

        let mut next = BTreeMap::new();
        let mut changed = Vec::new();
        let mut added = Vec::new();
        for route in &new.routes {
            let version = Arc::new(build(&new, route, &resolved, &tables));
            match self.routes.get(&route.name) {
                Some(old) if old.borrow().same_as(&version) => {}
                Some(_) => changed.push(route.name.clone()),
                None => added.push(route.name.clone()),
            }
            next.insert(route.name.clone(), version);
        }
        let removed: Vec<String> = self.routes.keys().filter(|name| !next.contains_key(*name)).cloned().collect();
        let to_check: Vec<Arc<RouteVersion>> =
            changed.iter().chain(&added).filter_map(|name| next.get(name).cloned()).collect();
        check_chains(to_check).await?;

        // Everything checked: apply.
        for offer in plugins.into_values() {
            if let Offer::New(plugin) = offer {
                tracing::info!(plugin = %plugin.version(), "plugin version installed by the config reload");
                self.registry.install(plugin);
            }
        }
        let old_topics: BTreeSet<String> = self.config.input_topics().into_iter().map(str::to_owned).collect();
        for name in &removed {
            self.routes.remove(name);
        }
        for (name, version) in next {
            match self.routes.get(&name) {
                Some(sender) => {
                    if !sender.borrow().same_as(&version) {
                        sender.send_replace(version);
                    }
                }
                None => {
                    self.routes.insert(name, watch::channel(version).0);
                }
            }
        }
        self.tables = tables;
        self.config = new;
        self.update_topics();
        let new_topics: BTreeSet<String> = self.config.input_topics().into_iter().map(str::to_owned).collect();
        if new_topics != old_topics {
            let topics: Vec<&str> = new_topics.iter().map(String::as_str).collect();
            self.consumer.subscribe(&topics).map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
            tracing::info!(?topics, "subscription changed");
        }
        let unchanged = self.routes.len() - changed.len() - added.len();
        Ok(format!(
            "routes added: [{}], changed: [{}], removed: [{}], unchanged: {unchanged}",
            added.join(", "),
            changed.join(", "),
            removed.join(", ")
        ))
    }

    /// A topic that changes routes in one reload would leave its partitions
    /// running the old route (their workers belong to it), so it is refused.
    fn check_no_topic_moves(&self, new: &Config) -> Result<(), String> {
        for route in &new.routes {
            for topic in route.consumed() {
                if let Some(old) = self.config.route_for_topic(topic)
                    && old.name != route.name
                {
                    return Err(format!(
                        "input topic \"{topic}\" moves from route \"{}\" to route \"{}\"; remove it in one reload and \
                         add it in the next, or restart; nothing was applied",
                        old.name, route.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// A plugin file was written, renamed into place or removed.
    pub async fn reload_plugin(&mut self, path: &Path) {
        let name = plugin_name(path);
        if !path.exists() {
            if let Some(current) = self.registry.current(&name) {
                tracing::warn!(plugin = %current.version(), path = %path.display(),
                    "plugin file removed; the loaded version keeps serving its routes \
                     (a restart, or a config reload, with a route still naming it will fail)");
            }
            return;
        }
        let what = format!("plugin:{name}");
        match self.try_reload_plugin(path, &name).await {
            Ok(Some(summary)) => {
                tracing::info!(plugin = %name, %summary, "plugin reloaded");
                self.record("plugin", &what, true, summary);
            }
            Ok(None) => tracing::debug!(plugin = %name, "plugin file unchanged"),
            Err(reason) => {
                tracing::error!(plugin = %name, path = %path.display(), %reason,
                    "plugin reload refused; the loaded version keeps serving");
                self.record("plugin", &what, false, reason);
            }
        }
    }

    async fn try_reload_plugin(&mut self, path: &Path, name: &str) -> Result<Option<String>, String> {
        let budgets = plugin_files(&self.config.routes)
            .remove(name)
            .filter(|(configured, _)| configured == path)
            .map_or_else(Budgets::default, |(_, b)| b);
        let registry = self.registry.clone();
        let owned = path.to_path_buf();
        let bytes = blocking(move || registry.read(&owned, &budgets).map_err(|e| e.to_string())).await?;
        let hash = hash_of(&bytes);
        // The same bad bytes again (a second event for one write) would only
        // be refused again; a fix arrives as different bytes.
        if self.refused.get(name) == Some(&hash) {
            return Ok(None);
        }
        let registry = self.registry.clone();
        let owned = path.to_path_buf();
        let offered = blocking(move || registry.offer_bytes(&owned, &bytes, &budgets).map_err(|e| e.to_string())).await;
        let plugin = match offered {
            Ok(Offer::Unchanged(_)) => return Ok(None),
            Ok(Offer::New(plugin)) => plugin,
            Err(reason) => {
                self.refused.insert(name.to_owned(), hash);
                return Err(reason);
            }
        };
        let routes = match self.swap_in(&plugin).await {
            Ok(routes) => routes,
            Err(reason) => {
                self.refused.insert(name.to_owned(), hash);
                return Err(reason);
            }
        };
        self.refused.remove(name);
        let from = self.registry.current(name).map_or_else(|| "nothing".to_owned(), |p| p.version());
        self.registry.install(plugin.clone());
        self.publish();
        Ok(Some(if routes.is_empty() {
            format!("{from} → {}; no route uses it yet", plugin.version())
        } else {
            format!("{from} → {} in routes [{}]", plugin.version(), routes.join(", "))
        }))
    }

    /// Restores a plugin's previous version.
    pub async fn rollback(&mut self, name: &str) -> Result<PluginInfo, String> {
        let what = format!("rollback:{name}");
        let outcome = async {
            let previous = self.registry.previous(name)?;
            let from = self.registry.current(name).map(|p| p.version()).unwrap_or_default();
            self.swap_in(&previous).await?;
            self.registry.rollback(name)?;
            self.publish();
            Ok::<_, String>(from)
        }
        .await;
        match outcome {
            Ok(from) => {
                let info = self.plugin_info(name).ok_or_else(|| format!("plugin \"{name}\" vanished"))?;
                let message = format!("{from} → {}", info.current.version);
                tracing::info!(plugin = %name, outcome = %message, "plugin rolled back");
                self.record("plugin", &what, true, message);
                Ok(info)
            }
            Err(reason) => {
                tracing::error!(plugin = %name, %reason, "rollback refused");
                self.record("plugin", &what, false, reason.clone());
                Err(reason)
            }
        }
    }

    /// Publishes new versions of every route that uses `plugin`'s name, once
    /// each has been checked. Returns the routes changed.
    async fn swap_in(&mut self, plugin: &Arc<LoadedPlugin>) -> Result<Vec<String>, String> {
        let mut versions = Vec::new();
        for (name, sender) in &self.routes {
            let current = sender.borrow().clone();
            if !current.uses(&plugin.name) {
                continue;
            }
            let plugins = current
                .plugins
                .iter()
                .map(|p| if p.name == plugin.name { plugin.clone() } else { p.clone() })
                .collect();
            let version = build_with(&self.config, &current.route, plugins, current.tables.clone());
            versions.push((name.clone(), Arc::new(version)));
        }
        check_chains(versions.iter().map(|(_, v)| v.clone()).collect()).await?;
        for (name, version) in &versions {
            if let Some(sender) = self.routes.get(name) {
                sender.send_replace(version.clone());
            }
        }
        Ok(versions.into_iter().map(|(name, _)| name).collect())
    }

    fn update_topics(&self) {
        let mut map = self.topics.write().unwrap_or_else(|e| e.into_inner());
        map.clear();
        for (name, sender) in &self.routes {
            for topic in sender.borrow().route.consumed() {
                map.insert(topic.to_owned(), sender.subscribe());
            }
            debug_assert!(self.config.routes.iter().any(|r| &r.name == name));
        }
    }

    fn record(&mut self, kind: &'static str, what: &str, ok: bool, message: String) {
        self.shared.stats.reload(kind, ok);
        self.recent.push_back(ReloadInfo::now(what, ok, message));
        while self.recent.len() > RECENT_RELOADS {
            self.recent.pop_front();
        }
        self.publish();
    }

    fn plugin_info(&self, name: &str) -> Option<PluginInfo> {
        self.registry
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(n, current, previous)| self.info_of(n, current, previous))
    }

    fn info_of(&self, name: &str, current: &Arc<LoadedPlugin>, previous: Option<&Arc<LoadedPlugin>>) -> PluginInfo {
        PluginInfo {
            name: name.to_owned(),
            current: VersionInfo::of(current),
            previous: previous.map(|p| VersionInfo::of(p)),
            routes: self.routes.iter().filter(|(_, s)| s.borrow().uses(name)).map(|(r, _)| r.clone()).collect(),
        }
    }

    fn publish(&self) {
        let snapshot = Snapshot {
            routes: self.routes.values().map(|s| s.borrow().info()).collect(),
            plugins: self.registry.iter().map(|(n, c, p)| self.info_of(n, c, p)).collect(),
            reloads: self.recent.iter().cloned().collect(),
        };
        self.shared.publish(snapshot);
    }
}

/// Each plugin file the routes use, by name, with the budgets to read it:
/// the largest file size any step allows.
fn plugin_files(routes: &[Route]) -> BTreeMap<String, (PathBuf, Budgets)> {
    let mut files: BTreeMap<String, (PathBuf, Budgets)> = BTreeMap::new();
    for step in routes.iter().flat_map(|r| &r.chain) {
        files
            .entry(step.plugin.clone())
            .and_modify(|(_, b)| b.max_plugin_file = b.max_plugin_file.max(step.budgets.max_plugin_file))
            .or_insert((step.path.clone(), step.budgets));
    }
    files
}

fn build(
    config: &Config,
    route: &Route,
    plugins: &BTreeMap<String, Arc<LoadedPlugin>>,
    tables: &Arc<Tables>,
) -> RouteVersion {
    let chain = route.chain.iter().filter_map(|step| plugins.get(&step.plugin).cloned()).collect();
    build_with(config, route, chain, tables.clone())
}

fn build_with(config: &Config, route: &Route, plugins: Vec<Arc<LoadedPlugin>>, tables: Arc<Tables>) -> RouteVersion {
    RouteVersion::new(route, &config.broker.group, config.delivery.batch_size, plugins, tables)
}

/// Instantiates each version's chain once, so that an `init` that refuses
/// its config refuses the reload rather than a partition.
async fn check_chains(versions: Vec<Arc<RouteVersion>>) -> Result<(), String> {
    blocking(move || {
        for version in &versions {
            version.chain().map_err(|e| format!("{e:#}"))?;
        }
        Ok(())
    })
    .await
}

/// What changed that a running host cannot apply.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let b = (&old.broker, &new.broker);
    for (key, differs) in [
        ("broker.bootstrap", b.0.bootstrap != b.1.bootstrap),
        ("broker.group", b.0.group != b.1.group),
        ("broker.properties", b.0.properties != b.1.properties),
        ("broker.consumer", b.0.consumer != b.1.consumer),
        ("broker.producer", b.0.producer != b.1.producer),
        ("plugins.dir", old.plugin_dir != new.plugin_dir),
        ("delivery", old.delivery != new.delivery),
        ("admin.listen", old.admin != new.admin),
        ("reload", old.reload != new.reload),
    ] {
        if differs {
            changed.push(key.to_owned());
        }
    }
    changed
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("the reload task failed: {e}"))?
}
