//! One version of a route: its checked config, the compiled plugins of its
//! chain and the tables they look up. A reload publishes a new version;
//! each partition's worker picks it up between batches, so a batch runs
//! wholly on one version and a partition never goes back to an older one.

use std::sync::Arc;

use anyhow::Context as _;

use crate::chain::{Chain, Step, Targets};
use crate::config::Route;
use crate::control::RouteInfo;
use crate::invoke::Invoker;
use crate::partition::RouteContext;
use crate::runtime::LoadedPlugin;
use crate::tables::Tables;

#[derive(Debug)]
pub struct RouteVersion {
    pub route: Route,
    pub context: Arc<RouteContext>,
    pub targets: Arc<Targets>,
    /// One per chain step, in order.
    pub plugins: Vec<Arc<LoadedPlugin>>,
    pub tables: Arc<Tables>,
    /// `name@hash,…` of the chain.
    pub lineage: Arc<str>,
}

impl RouteVersion {
    pub fn new(
        route: &Route,
        group: &str,
        batch_size: usize,
        plugins: Vec<Arc<LoadedPlugin>>,
        tables: Arc<Tables>,
    ) -> Self {
        debug_assert_eq!(route.chain.len(), plugins.len());
        let context = Arc::new(RouteContext {
            name: route.name.clone(),
            group: group.to_owned(),
            dlq: route.dlq.clone(),
            retry: route.retry,
            retry_topics: route.retry_topics.clone(),
            batch_size,
        });
        let targets = Arc::new(Targets { outputs: route.outputs.clone(), allow: route.allow.clone() });
        let lineage = plugins.iter().map(|p| p.version()).collect::<Vec<_>>().join(",").into();
        RouteVersion { route: route.clone(), context, targets, plugins, tables, lineage }
    }

    /// Fresh instances of every step, each `init`ialised with its config.
    /// A worker calls this for its partition; a reload calls it once to
    /// check a version before publishing it.
    pub fn chain(&self) -> anyhow::Result<Chain> {
        let steps = self
            .route
            .chain
            .iter()
            .zip(&self.plugins)
            .map(|(step, plugin)| {
                let invoker = Invoker::new(plugin.clone(), step.config.clone(), self.tables.clone(), step.budgets)
                    .with_context(|| format!("route {}: plugin {}", self.route.name, plugin.version()))?;
                Ok(Step { invoker, budgets: step.budgets })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Chain { steps, targets: self.targets.clone(), lineage: self.lineage.clone() })
    }

    /// Whether `other` would run exactly as this does: same config, same
    /// plugin builds, same tables. An unchanged route is left alone by a
    /// reload.
    pub fn same_as(&self, other: &RouteVersion) -> bool {
        self.route == other.route
            && self.context.group == other.context.group
            && self.context.batch_size == other.context.batch_size
            && self.plugins.len() == other.plugins.len()
            && self.plugins.iter().zip(&other.plugins).all(|(a, b)| Arc::ptr_eq(a, b))
            && Arc::ptr_eq(&self.tables, &other.tables)
    }

    /// Whether the route's chain uses the plugin called `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.plugins.iter().any(|p| &*p.name == name)
    }

    pub fn info(&self) -> RouteInfo {
        RouteInfo {
            name: self.route.name.clone(),
            inputs: self.route.inputs.clone(),
            outputs: self.route.outputs.clone(),
            dlq: self.route.dlq.clone(),
            retry_topics: self.route.retry_topics.iter().map(|t| t.topic.clone()).collect(),
            chain: self.plugins.iter().map(|p| p.version()).collect(),
        }
    }
}
