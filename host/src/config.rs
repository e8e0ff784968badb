//! The routing config (`sluice run --config FILE`): where the broker is,
//! which topics go through which plugin chains, and the budgets, retry
//! policy and delivery settings they run with.
//!
//! A file is read into the serde structs of `raw`, which mirror the TOML and
//! keep every value's span; `validate` checks them all, collecting every
//! problem rather than stopping at the first, and builds the checked types
//! below, which are all the rest of the host sees. Each error names the
//! file, line, column and key: `config/bad.toml:12:7: routes[0].dlq: …`.
//! The documented examples are `config/demo.toml` and
//! `config/production.toml`.

mod error;
mod raw;
mod units;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

pub use error::{ConfigError, ConfigErrors, Position, Problem};
pub use units::{show_duration, show_size};

use crate::runtime::Budgets;
use crate::tables::{Table, Tables};

/// A checked config: every name resolved, every file found, every value in
/// range.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file, as it was named when loaded.
    pub path: PathBuf,
    pub broker: Broker,
    /// The directory the plugin files were found in.
    pub plugin_dir: PathBuf,
    /// Reference tables, in the order declared.
    pub tables: Vec<TableSpec>,
    pub delivery: Delivery,
    /// Where the admin HTTP server listens; `None`: it is off.
    pub admin: Option<std::net::SocketAddr>,
    pub reload: Reload,
    /// Routes, in the order declared. No two share an input topic.
    pub routes: Vec<Route>,
}

/// Where the broker is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub bootstrap: Bootstrap,
    /// The consumer group id.
    pub group: String,
    /// librdkafka properties for both clients. None of them is one sluice
    /// pins (see [`PINNED_PROPERTIES`]).
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only; they win over `properties`.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producer only; they win over `properties`.
    pub producer: BTreeMap<String, String>,
}

/// `broker.bootstrap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// librdkafka's in-process mock cluster, started by sluice.
    Embedded,
    /// `bootstrap.servers`: comma-separated `host:port` entries.
    Servers(String),
}

/// A reference table for the `lookup` host import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    /// The `.csv` or `.jsonl` file, resolved against the config's directory.
    pub path: PathBuf,
    /// The column (CSV) or field (JSONL) rows are keyed by.
    pub key: String,
}

/// Commit, shutdown and batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// How often stored offsets are committed (`auto.commit.interval.ms`).
    pub commit_interval: Duration,
    /// How long shutdown waits for in-flight records.
    pub shutdown_grace: Duration,
    /// Records per plugin call, 1 to 65536.
    pub batch_size: usize,
    /// Records buffered per partition before the partition is paused.
    pub queue_per_partition: usize,
    /// Bytes buffered per partition before the partition is paused.
    pub queue_bytes_per_partition: u64,
}

/// Hot reload settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reload {
    /// Watch the plugin directory and the config file.
    pub watch: bool,
    /// Quiet time after a file's last change before it is read.
    pub debounce: Duration,
}

/// Topics in, a chain of plugins, topics out.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    /// At least one; none is another route's input.
    pub inputs: Vec<String>,
    /// Where `pass` and emitted records without a topic go. May be empty.
    pub outputs: Vec<String>,
    /// Every topic a plugin may emit to: `allow` plus `outputs`.
    pub allow: BTreeSet<String>,
    /// The dead-letter topic: not an input or output of any route.
    pub dlq: String,
    pub retry: RetryPolicy,
    /// Retry tiers, in order; empty: the DLQ follows the in-place retries.
    pub retry_topics: Vec<RetryTopic>,
    /// At least one step, in order.
    pub chain: Vec<Step>,
}

impl Route {
    /// Every topic the route consumes: its inputs, then its retry tiers.
    pub fn consumed(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().chain(self.retry_topics.iter().map(|t| &t.topic)).map(String::as_str)
    }
}

/// A retry tier: a topic the route writes records to when their in-place
/// retries run out, and consumes again once `delay` has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryTopic {
    pub topic: String,
    pub delay: Duration,
}

/// How a transient failure is retried in place before the record goes to
/// the DLQ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included; at least 1.
    pub max_attempts: u32,
    /// Attempts that may end in a sandbox fault before the DLQ; at least 1.
    pub max_faults: u32,
    /// The wait before the second attempt; at most `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Each wait is the previous one times this; at least 1.0.
    pub multiplier: f64,
    /// Each wait varies randomly by up to this fraction, 0.0 to 1.0.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        raw::default_retry()
    }
}

/// One plugin in a route's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The plugin's name, as the config gives it.
    pub plugin: String,
    /// `<plugin_dir>/<plugin>.wasm`, which existed when the config loaded.
    pub path: PathBuf,
    /// The plugin's config table as `(key, JSON text)` pairs for `init`.
    pub config: Vec<(String, String)>,
    /// Fully resolved: `[defaults.budgets]`, then the route's, then the step's.
    pub budgets: Budgets,
}

/// librdkafka properties the config may not set, each with the reason, since
/// sluice's delivery guarantee depends on them (or another key sets them).
pub const PINNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set broker.bootstrap instead"),
    ("metadata.broker.list", "set broker.bootstrap instead"),
    ("group.id", "set broker.group instead"),
    (
        "enable.auto.offset.store",
        "sluice stores an offset only once everything the record caused is written; \
         librdkafka storing it on poll would commit records that were never processed",
    ),
    (
        "enable.auto.commit",
        "sluice relies on librdkafka committing the offsets it stores; \
         set delivery.commit_interval to change how often",
    ),
    ("auto.commit.interval.ms", "set delivery.commit_interval instead"),
    (
        "transactional.id",
        "sluice's producer is idempotent, not transactional; a transactional.id makes every send fail \
         outside a transaction",
    ),
    (
        "enable.idempotence",
        "the producer is always idempotent, so that a retried send cannot duplicate or reorder outputs",
    ),
    (
        "acks",
        "outputs are always written with acks=all, so that an offset is stored only once every \
         in-sync replica has what the record caused",
    ),
    (
        "request.required.acks",
        "outputs are always written with acks=all, so that an offset is stored only once every \
         in-sync replica has what the record caused",
    ),
    (
        "max.in.flight.requests.per.connection",
        "it stays at 5, the most the idempotent producer allows while keeping order",
    ),
];

/// Ways to load a config other than exactly as written.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Look for plugins here instead of `plugins.dir`; e.g. `sluice demo`
    /// with its embedded plugins written out, or a `--plugins` flag.
    pub plugin_dir: Option<PathBuf>,
}

impl Config {
    /// Reads and checks the config file at `path`. Relative paths in it are
    /// resolved against the file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// [`Config::load`] with options.
    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Config, ConfigErrors> {
        let path = path.as_ref();
        // 16 MiB is far beyond any routing config; the cap keeps `/dev/zero`
        // or a FIFO from hanging or exhausting memory.
        let text = crate::files::read_regular(path, 16 << 20)
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|e| std::io::Error::other(format!("it is not UTF-8: {e}")))
            })
            .map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    file: path.into(),
                    at: None,
                    key: String::new(),
                    problem: Problem::Read(e),
                }])
            })?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Self::from_str_with(&text, path, base_dir, options)
    }

    /// Checks config `text`. Messages name `path_for_messages` (and paths
    /// beside it); relative paths in the text resolve against `base_dir`.
    pub fn from_str(
        text: &str,
        path_for_messages: impl AsRef<Path>,
        base_dir: impl AsRef<Path>,
    ) -> Result<Config, ConfigErrors> {
        Self::from_str_with(text, path_for_messages, base_dir, &LoadOptions::default())
    }

    /// [`Config::from_str`] with options.
    pub fn from_str_with(
        text: &str,
        path_for_messages: impl AsRef<Path>,
        base_dir: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<Config, ConfigErrors> {
        validate::check(text, path_for_messages.as_ref(), base_dir.as_ref(), options)
    }

    /// The route that consumes `topic`, if any.
    pub fn route_for_topic(&self, topic: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.consumed().any(|t| t == topic))
    }

    /// Every topic consumed (inputs and retry tiers), in route order.
    pub fn input_topics(&self) -> Vec<&str> {
        self.routes.iter().flat_map(Route::consumed).collect()
    }

    /// Loads every declared table; an error names the config file, the
    /// table and its file.
    pub fn load_tables(&self) -> anyhow::Result<Tables> {
        let mut tables = Tables::default();
        for spec in &self.tables {
            let table = Table::load(&spec.name, &spec.path, &spec.key)
                .with_context(|| format!("{}: tables: cannot load table \"{}\"", self.path.display(), spec.name))?;
            tables.insert(spec.name.clone(), table);
        }
        Ok(tables)
    }

    /// The consumer's librdkafka properties: `properties`, then `consumer`,
    /// then `auto.commit.interval.ms` from `delivery.commit_interval`.
    pub fn consumer_properties(&self) -> BTreeMap<String, String> {
        let mut merged = self.broker.properties.clone();
        merged.extend(self.broker.consumer.clone());
        merged.insert("auto.commit.interval.ms".into(), self.delivery.commit_interval.as_millis().to_string());
        merged
    }

    /// The producer's librdkafka properties: `properties`, then `producer`.
    pub fn producer_properties(&self) -> BTreeMap<String, String> {
        let mut merged = self.broker.properties.clone();
        merged.extend(self.broker.producer.clone());
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config directory with empty placeholder plugin files: loading a
    /// config only checks that they exist.
    fn dir_with_plugins(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        for name in names {
            std::fs::write(dir.path().join("plugins").join(format!("{name}.wasm")), b"").unwrap();
        }
        dir
    }

    const MINIMAL: &str = "[broker]\nbootstrap = \"embedded\"\n\n[[routes]]\nname = \"r\"\ninputs = [\"in\"]\n\
                           dlq = \"in.dlq\"\n[[routes.chain]]\nplugin = \"p\"\n";

    #[test]
    fn unset_keys_take_their_defaults() {
        let dir = dir_with_plugins(&["p"]);
        let config = Config::from_str(MINIMAL, "sluice.toml", dir.path()).unwrap();
        assert_eq!(config.broker.group, raw::default_group());
        assert!(config.broker.properties.is_empty());
        assert_eq!(config.plugin_dir, dir.path().join("plugins"));
        assert_eq!(
            config.delivery,
            Delivery {
                commit_interval: Duration::from_secs(1),
                shutdown_grace: Duration::from_secs(30),
                batch_size: 256,
                queue_per_partition: 65536,
                queue_bytes_per_partition: 64 << 20,
            }
        );
        let route = &config.routes[0];
        assert_eq!(route.retry, RetryPolicy::default());
        assert_eq!(route.retry.max_attempts, 5);
        assert!(route.outputs.is_empty() && route.allow.is_empty());
        assert_eq!(route.chain[0].budgets, Budgets::default());
        assert_eq!(route.chain[0].path, dir.path().join("plugins/p.wasm"));
        assert!(config.route_for_topic("in").is_some_and(|r| r.name == "r"));
        assert!(config.route_for_topic("in.dlq").is_none());
        assert_eq!(config.consumer_properties()["auto.commit.interval.ms"], "1000");
    }

    #[test]
    fn allow_includes_outputs() {
        let dir = dir_with_plugins(&["p"]);
        let text = MINIMAL.replace("dlq =", "outputs = [\"out\"]\nallow = [\"other\", \"out\"]\ndlq =");
        let config = Config::from_str(&text, "sluice.toml", dir.path()).unwrap();
        let allow: Vec<&str> = config.routes[0].allow.iter().map(String::as_str).collect();
        assert_eq!(allow, ["other", "out"]);
        assert_eq!(config.routes[0].outputs, ["out"]);
    }

    #[test]
    fn every_semantic_error_is_reported_in_file_order() {
        let dir = dir_with_plugins(&["p"]);
        let text = MINIMAL.replace("dlq = \"in.dlq\"", "dlq = \"in\"")
            + "\n[delivery]\nbatch_size = 0\n\n[defaults.retry]\njitter = 3.0\n";
        let errors = Config::from_str(&text, "dir/sluice.toml", dir.path()).unwrap_err();
        let kinds: Vec<&Problem> = errors.iter().map(|e| &e.problem).collect();
        assert!(
            matches!(kinds[..], [Problem::DlqIsInput { .. }, Problem::OutOfRange { .. }, Problem::Jitter(_)]),
            "{errors}"
        );
        let lines: Vec<usize> = errors.iter().filter_map(|e| e.at.map(|p| p.line)).collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
        assert!(
            errors.to_string().starts_with("dir/sluice.toml:7:7: routes[0].dlq: \"in\" is also an input topic"),
            "{errors}"
        );
    }

    #[test]
    fn schema_errors_take_the_same_shape() {
        let dir = dir_with_plugins(&["p"]);
        let text = MINIMAL.replace("plugin = \"p\"", "plugin = \"p\"\nbudgets = { memory = true }");
        let errors = Config::from_str(&text, "sluice.toml", dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors
                .to_string()
                .starts_with("sluice.toml:10:22: routes[0].chain[0].budgets.memory: invalid type: boolean"),
            "{errors}"
        );
        assert!(matches!(errors.0[0].problem, Problem::Schema(_)));
    }

    #[test]
    fn a_missing_file_is_named() {
        let errors = Config::load("/nonexistent/sluice.toml").unwrap_err();
        assert!(matches!(errors.0[0].problem, Problem::Read(_)));
        assert!(errors.to_string().starts_with("/nonexistent/sluice.toml: cannot read the config file: "), "{errors}");
    }

    #[test]
    fn every_property_kafka_pins_is_refused_by_the_config() {
        for (name, _) in crate::kafka::PINNED_PRODUCER.iter().chain(crate::kafka::PINNED_CONSUMER) {
            assert!(
                PINNED_PROPERTIES.iter().any(|(pinned, _)| pinned == name),
                "kafka.rs pins {name}, so the config must refuse it"
            );
        }
    }

    #[test]
    fn property_values_become_text() {
        let dir = dir_with_plugins(&["p"]);
        let text = MINIMAL.replace(
            "bootstrap = \"embedded\"\n",
            "bootstrap = \"embedded\"\n[broker.producer]\n\"linger.ms\" = 5\n\"enable.gapless.guarantee\" = false\n\
             \"compression.type\" = \"lz4\"\n",
        );
        let config = Config::from_str(&text, "sluice.toml", dir.path()).unwrap();
        let producer = config.producer_properties();
        assert_eq!(producer["linger.ms"], "5");
        assert_eq!(producer["enable.gapless.guarantee"], "false");
        assert_eq!(producer["compression.type"], "lz4");
        assert!(!config.consumer_properties().contains_key("linger.ms"));
    }
}
