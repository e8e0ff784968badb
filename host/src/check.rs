//! `sluice check CONFIG`: everything `sluice run` does before it connects to
//! a broker — check the config, load every table, load every plugin and
//! start it once with its config, so an `init` that refuses is caught — and
//! a report of what it found.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::config::{Bootstrap, Config, RetryPolicy, RetryTopic, show_duration};
use crate::runtime::{LoadedPlugin, Runtime};
use crate::tables::{Table, Tables};

/// What a successful check found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub config: PathBuf,
    pub bootstrap: Bootstrap,
    pub group: String,
    pub routes: Vec<RouteReport>,
    pub tables: Vec<TableReport>,
}

/// One route, with its plugins as loaded.
#[derive(Debug, Clone)]
pub struct RouteReport {
    pub name: String,
    pub inputs: Vec<String>,
    /// `name@hash` of each step's plugin, in order.
    pub chain: Vec<String>,
    pub outputs: Vec<String>,
    /// Topics allowed beyond `outputs`.
    pub allow: Vec<String>,
    pub dlq: String,
    pub retry: RetryPolicy,
    pub retry_topics: Vec<RetryTopic>,
}

/// One table, as loaded.
#[derive(Debug, Clone)]
pub struct TableReport {
    pub name: String,
    pub path: PathBuf,
    pub key: String,
    pub rows: usize,
    /// Rows whose key repeated an earlier row's (the later row wins).
    pub duplicate_keys: u64,
}

/// Loads and checks the config at `path`, then [`verify`]s it.
pub fn run(path: &Path) -> anyhow::Result<CheckReport> {
    run_with(path, &crate::config::LoadOptions::default())
}

/// [`run`] with load options, such as another plugin directory.
pub fn run_with(path: &Path, options: &crate::config::LoadOptions) -> anyhow::Result<CheckReport> {
    let config = Config::load_with(path, options)?;
    verify(&config)
}

/// Loads every table and plugin `config` names and starts each plugin once
/// with its step's config and budgets. Every failure is reported, each
/// naming the config file and the key it comes from.
pub fn verify(config: &Config) -> anyhow::Result<CheckReport> {
    let file = config.path.display();
    let mut failures = Vec::new();

    let mut tables = Tables::default();
    let mut table_reports = Vec::new();
    for (i, spec) in config.tables.iter().enumerate() {
        match Table::load(&spec.name, &spec.path, &spec.key) {
            Ok(table) => {
                table_reports.push(TableReport {
                    name: spec.name.clone(),
                    path: spec.path.clone(),
                    key: spec.key.clone(),
                    rows: table.len(),
                    duplicate_keys: table.duplicate_keys,
                });
                tables.insert(spec.name.clone(), table);
            }
            Err(e) => failures.push(format!("{file}: tables[{i}]: {e}")),
        }
    }
    let tables = Arc::new(tables);

    // librdkafka judges its properties when a client is created, not when
    // it connects: creating both clients here, with no broker to connect to, catches
    // an unknown property or a feature this build lacks before `run` does.
    let group = &config.broker.group;
    if let Err(e) = crate::kafka::producer_config("", &config.producer_properties())
        .set("log_level", "0")
        .create::<rdkafka::producer::BaseProducer>()
    {
        failures.push(format!("{file}: broker.producer / broker.properties: librdkafka refuses them: {e}"));
    }
    if let Err(e) = crate::kafka::consumer_config("", group, &config.consumer_properties())
        .set("log_level", "0")
        .create::<rdkafka::consumer::BaseConsumer>()
    {
        failures.push(format!("{file}: broker.consumer / broker.properties: librdkafka refuses them: {e}"));
    }

    let runtime = Runtime::new().context("cannot start the WebAssembly runtime")?;
    // Compiling is the slow part; a plugin used by several steps compiles once
    // per file-size budget (the only budget loading checks).
    let mut loaded: HashMap<(PathBuf, u64), Arc<LoadedPlugin>> = HashMap::new();
    let mut routes = Vec::new();
    for (i, route) in config.routes.iter().enumerate() {
        let mut chain = Vec::new();
        for (j, step) in route.chain.iter().enumerate() {
            let at = format!("{file}: routes[{i}].chain[{j}] (route \"{}\", plugin \"{}\")", route.name, step.plugin);
            let cache_key = (step.path.clone(), step.budgets.max_plugin_file);
            let plugin = match loaded.get(&cache_key) {
                Some(plugin) => plugin.clone(),
                None => match runtime.load(&step.path, &step.budgets) {
                    Ok(plugin) => {
                        loaded.insert(cache_key, plugin.clone());
                        plugin
                    }
                    Err(e) => {
                        failures.push(format!("{at}: {e}"));
                        continue;
                    }
                },
            };
            match plugin.instantiate(&step.config, tables.clone(), &step.budgets) {
                Ok(_instance) => chain.push(plugin.version()),
                Err(e) => failures.push(format!("{at}: {e}")),
            }
        }
        routes.push(RouteReport {
            name: route.name.clone(),
            inputs: route.inputs.clone(),
            chain,
            outputs: route.outputs.clone(),
            allow: route.allow.iter().filter(|t| !route.outputs.contains(t)).cloned().collect(),
            dlq: route.dlq.clone(),
            retry: route.retry,
            retry_topics: route.retry_topics.clone(),
        });
    }

    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(CheckReport {
        config: config.path.clone(),
        bootstrap: config.broker.bootstrap.clone(),
        group: config.broker.group.clone(),
        routes,
        tables: table_reports,
    })
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let broker = match &self.bootstrap {
            Bootstrap::Embedded => "embedded".to_owned(),
            Bootstrap::Servers(servers) => servers.clone(),
        };
        writeln!(f, "{}: broker {broker}, group \"{}\"", self.config.display(), self.group)?;
        for route in &self.routes {
            writeln!(f, "route \"{}\"", route.name)?;
            let outputs =
                if route.outputs.is_empty() { "(no default outputs)".to_owned() } else { route.outputs.join(", ") };
            writeln!(f, "  {} → {} → {outputs}", route.inputs.join(", "), route.chain.join(" → "))?;
            if !route.allow.is_empty() {
                writeln!(f, "  allow: {}", route.allow.join(", "))?;
            }
            writeln!(f, "  dlq:   {}", route.dlq)?;
            let r = &route.retry;
            writeln!(
                f,
                "  retry: {} attempts, backoff {} ×{} up to {}, jitter {}%",
                r.max_attempts,
                show_duration(r.initial_backoff),
                r.multiplier,
                show_duration(r.max_backoff),
                (r.jitter * 100.0).round()
            )?;
            if !route.retry_topics.is_empty() {
                let tiers: Vec<String> = route
                    .retry_topics
                    .iter()
                    .map(|t| format!("{} (after {})", t.topic, show_duration(t.delay)))
                    .collect();
                writeln!(f, "  then retry topics: {}, then the dlq", tiers.join(" → "))?;
            }
        }
        for table in &self.tables {
            let duplicates = match table.duplicate_keys {
                0 => String::new(),
                n => format!(", {n} repeated keys (the later row wins)"),
            };
            writeln!(
                f,
                "table \"{}\": {} rows keyed by {} from {}{duplicates}",
                table.name,
                table.rows,
                table.key,
                table.path.display()
            )?;
        }
        write!(f, "config OK")
    }
}
