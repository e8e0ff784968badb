//! The routing config as written: serde structs that mirror the TOML.
//!
//! Every value a later check may point at is `Spanned`, so an error can name
//! its line and column. Keys with defaults are `Option`s here, so that an
//! override (route over `[defaults]`, step over route) knows what was set;
//! the defaults themselves are the named functions at the end of this file,
//! applied in `validate`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::config::RetryPolicy;
use crate::runtime::Budgets;

/// A whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where to consume from and produce to. Required.
    pub broker: Option<Spanned<RawBroker>>,
    /// Where the plugin files are. Default: see [`RawPlugins`].
    #[serde(default)]
    pub plugins: RawPlugins,
    /// Budgets and retry policy for every route that does not override them.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Commit, shutdown and batching settings. Default: see [`RawDelivery`].
    #[serde(default)]
    pub delivery: RawDelivery,
    /// The admin HTTP server. Default: see [`RawAdmin`].
    #[serde(default)]
    pub admin: RawAdmin,
    /// Hot reload of plugin files and of this config. Default: see
    /// [`RawReload`].
    #[serde(default)]
    pub reload: RawReload,
    /// Reference tables for the `lookup` host import. Default: none.
    #[serde(default)]
    pub tables: Vec<Spanned<RawTable>>,
    /// The routes: which topics go through which plugins. At least one.
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

/// `[broker]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [broker] table")]
pub struct RawBroker {
    /// `"embedded"` for librdkafka's in-process mock cluster, or a
    /// comma-separated list of `host:port` bootstrap servers. Required.
    pub bootstrap: Option<Spanned<String>>,
    /// The consumer group id. Default: [`default_group`] (`"sluice"`).
    pub group: Option<Spanned<String>>,
    /// librdkafka properties for both the consumer and the producer, passed
    /// through as-is. Default: none.
    #[serde(default)]
    pub properties: BTreeMap<String, Spanned<PropertyValue>>,
    /// librdkafka properties for the consumer only; a key here wins over the
    /// same key in `properties`. Default: none.
    #[serde(default)]
    pub consumer: BTreeMap<String, Spanned<PropertyValue>>,
    /// librdkafka properties for the producer only; a key here wins over the
    /// same key in `properties`. Default: none.
    #[serde(default)]
    pub producer: BTreeMap<String, Spanned<PropertyValue>>,
}

/// `[plugins]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [plugins] table")]
pub struct RawPlugins {
    /// The directory of `.wasm` files, relative to the config file's
    /// directory. Default: [`default_plugin_dir`] (`"plugins"`).
    pub dir: Option<Spanned<String>>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [admin] table")]
pub struct RawAdmin {
    /// `host:port` for the admin HTTP server (metrics, health, status,
    /// plugin rollback), or `"off"`. Port 0 picks a free port.
    /// Default: [`default_admin_listen`] (`"127.0.0.1:9797"`).
    pub listen: Option<Spanned<String>>,
}

/// `[reload]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [reload] table")]
pub struct RawReload {
    /// Watch the plugin directory and the config file, and reload what
    /// changes. SIGHUP reloads the config either way. Default: `true`.
    pub watch: Option<Spanned<bool>>,
    /// How long a file must stay unchanged before it is reloaded, so that a
    /// slow write is read once it is whole. Default: [`default_debounce`]
    /// (200ms).
    pub debounce: Option<Spanned<Quantity>>,
}

/// `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [defaults] table")]
pub struct RawDefaults {
    /// Sandbox budgets for every plugin. Default: see [`RawBudgets`].
    #[serde(default)]
    pub budgets: RawBudgets,
    /// Retry policy for every route. Default: see [`RawRetry`].
    #[serde(default)]
    pub retry: RawRetry,
}

/// Per-plugin sandbox budgets, at any of three levels: `[defaults.budgets]`,
/// a route's `budgets` and a chain step's `budgets`. Each key set at a level
/// overrides the level above.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a budgets table")]
pub struct RawBudgets {
    /// Wall-clock time one plugin call may take, e.g. `"250ms"`.
    /// Default: [`default_budgets`] (100ms).
    pub timeout: Option<Spanned<Quantity>>,
    /// Linear memory one plugin instance may grow to, e.g. `"32MiB"` or a
    /// number of bytes. Default: [`default_budgets`] (16MiB).
    pub memory: Option<Spanned<Quantity>>,
    /// Output records one event may produce. Default: [`default_budgets`]
    /// (1024).
    pub max_outputs: Option<Spanned<i64>>,
    /// Bytes (keys, values, headers) one event's outputs may total.
    /// Default: [`default_budgets`] (16MiB).
    pub max_output_bytes: Option<Spanned<Quantity>>,
    /// Size of the plugin file itself. Default: [`default_budgets`] (64MiB).
    pub max_plugin_file: Option<Spanned<Quantity>>,
}

/// A retry policy, at two levels: `[defaults.retry]` and a route's `retry`.
/// Each key a route sets overrides the default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a retry table")]
pub struct RawRetry {
    /// Total attempts in place, the first included; at least 1.
    /// Default: [`default_retry`] (5).
    pub max_attempts: Option<Spanned<i64>>,
    /// The poison-pill breaker: attempts that may end in a sandbox fault
    /// (trap, timeout, out of memory) before the record goes to the DLQ,
    /// even if `max_attempts` allows more; at least 1.
    /// Default: [`default_retry`] (3).
    pub max_faults: Option<Spanned<i64>>,
    /// The wait before the second attempt. Default: [`default_retry`] (100ms).
    pub initial_backoff: Option<Spanned<Quantity>>,
    /// The longest wait between attempts. Default: [`default_retry`] (10s).
    pub max_backoff: Option<Spanned<Quantity>>,
    /// Each wait is the previous one times this; at least 1.0.
    /// Default: [`default_retry`] (2.0).
    pub multiplier: Option<Spanned<f64>>,
    /// Each wait varies randomly by up to this fraction of itself,
    /// 0.0 to 1.0. Default: [`default_retry`] (0.2).
    pub jitter: Option<Spanned<f64>>,
}

/// `[delivery]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [delivery] table")]
pub struct RawDelivery {
    /// How often stored offsets are committed (librdkafka's
    /// `auto.commit.interval.ms`). Default: [`default_commit_interval`] (1s).
    pub commit_interval: Option<Spanned<Quantity>>,
    /// How long a shutdown waits for in-flight records before giving up on
    /// them. Default: [`default_shutdown_grace`] (30s).
    pub shutdown_grace: Option<Spanned<Quantity>>,
    /// Records per plugin call, 1 to 65536. Default: [`default_batch_size`]
    /// (256).
    pub batch_size: Option<Spanned<i64>>,
    /// Records buffered per partition before the partition is paused.
    /// Default: [`default_queue_per_partition`] (65536).
    pub queue_per_partition: Option<Spanned<i64>>,
    /// Bytes (keys, values, headers) buffered per partition before the
    /// partition is paused, whichever of the two limits comes first, from
    /// 64KiB to 16GiB. Default: [`default_queue_bytes_per_partition`] (64MiB).
    pub queue_bytes_per_partition: Option<Spanned<Quantity>>,
}

/// One `[[tables]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[tables]] table")]
pub struct RawTable {
    /// The name plugins look the table up by. Required, unique.
    pub name: Option<Spanned<String>>,
    /// The `.csv` (with a header row) or `.jsonl` file, relative to the
    /// config file's directory. Required.
    pub file: Option<Spanned<String>>,
    /// The column (CSV) or field (JSONL) rows are keyed by. Required.
    pub key: Option<Spanned<String>>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[routes]] table")]
pub struct RawRoute {
    /// The route's name in logs, metrics and DLQ headers: unique, of
    /// `[a-zA-Z0-9._-]`. Required.
    pub name: Option<Spanned<String>>,
    /// The topics this route consumes; at least one, and each topic belongs
    /// to at most one route. Required.
    pub inputs: Option<Spanned<Vec<Spanned<String>>>>,
    /// Where `pass` sends a record, and where emitted records with no topic
    /// go. May be empty. Default: none.
    #[serde(default)]
    pub outputs: Vec<Spanned<String>>,
    /// Topics plugins may emit to by name; `outputs` are allowed implicitly.
    /// Default: none. Spanned as a whole, so that an empty list written out
    /// can be pointed at.
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    /// The dead-letter topic for records a plugin rejects or that run out of
    /// attempts. Required.
    pub dlq: Option<Spanned<String>>,
    /// Overrides of `[defaults.retry]`, key by key. Default: none.
    pub retry: Option<Spanned<RawRetry>>,
    /// Overrides of `[defaults.budgets]` for every step, key by key.
    /// Default: none.
    pub budgets: Option<Spanned<RawBudgets>>,
    /// Non-blocking retry tiers, in order: a record whose in-place retries
    /// run out goes to the first tier's topic and is run again once its
    /// delay has passed; then the next tier; after the last, the DLQ.
    /// Default: none (straight to the DLQ).
    #[serde(default)]
    pub retry_topics: Vec<Spanned<RawRetryTopic>>,
    /// The plugins each record passes through, in order; at least one.
    /// Required.
    pub chain: Option<Spanned<Vec<Spanned<RawStep>>>>,
}

/// One `retry_topics` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a retry tier: { topic = \"orders.retry.1m\", delay = \"1m\" }")]
pub struct RawRetryTopic {
    /// The tier's topic: this route's alone, consumed by it. Required.
    pub topic: Option<Spanned<String>>,
    /// How long after it was sent a record in this tier runs again, from
    /// 1s to 7d. Required.
    pub delay: Option<Spanned<Quantity>>,
}

/// One `[[routes.chain]]` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[routes.chain]] table")]
pub struct RawStep {
    /// The plugin's name: the file `<plugins.dir>/<plugin>.wasm`. Required.
    pub plugin: Option<Spanned<String>>,
    /// Overrides of the route's budgets for this step, key by key.
    /// Default: none.
    pub budgets: Option<Spanned<RawBudgets>>,
    /// The plugin's own config table, handed to its `init`; any TOML.
    /// Default: empty.
    #[serde(default)]
    pub config: toml::Table,
}

/// A duration or size as written: text with a unit, or a bare number that
/// `units` judges (and for durations refuses).
#[derive(Debug, Clone, PartialEq)]
pub enum Quantity {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;

        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string with a unit, such as \"250ms\" or \"16MiB\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity::Text(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::Integer(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                i64::try_from(v).map(Quantity::Integer).map_err(|_| E::custom(format!("{v} is too large")))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity::Float(v))
            }
        }

        deserializer.deserialize_any(QuantityVisitor)
    }
}

/// A librdkafka property value: text, an integer or a boolean, all passed on
/// as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyValue(pub String);

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertyVisitor;

        impl Visitor<'_> for PropertyVisitor {
            type Value = PropertyValue;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, integer or boolean (librdkafka takes every property as text)")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PropertyValue, E> {
                Ok(PropertyValue(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PropertyValue, E> {
                Ok(PropertyValue(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PropertyValue, E> {
                Ok(PropertyValue(v.to_string()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<PropertyValue, E> {
                Ok(PropertyValue(v.to_string()))
            }
        }

        deserializer.deserialize_any(PropertyVisitor)
    }
}

/// `broker.group`.
pub fn default_group() -> String {
    "sluice".to_owned()
}

/// `plugins.dir`, relative to the config file's directory.
pub fn default_plugin_dir() -> String {
    "plugins".to_owned()
}

/// `[defaults.budgets]`: the runtime's own defaults, so there is one source.
pub fn default_budgets() -> Budgets {
    Budgets::default()
}

/// `[defaults.retry]`: five attempts, 100ms doubling up to 10s, ±20%.
pub fn default_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        max_faults: 3,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
        multiplier: 2.0,
        jitter: 0.2,
    }
}

/// `admin.listen`.
pub fn default_admin_listen() -> String {
    "127.0.0.1:9797".to_owned()
}

/// `reload.debounce`.
pub fn default_debounce() -> Duration {
    Duration::from_millis(200)
}

/// `delivery.commit_interval`.
pub fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}

/// `delivery.shutdown_grace`.
pub fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}

/// `delivery.batch_size`.
pub fn default_batch_size() -> usize {
    256
}

/// `delivery.queue_per_partition`.
pub fn default_queue_per_partition() -> usize {
    65536
}

/// `delivery.queue_bytes_per_partition`: librdkafka's own default prefetch
/// budget (`queued.max.messages.kbytes`).
pub fn default_queue_bytes_per_partition() -> u64 {
    64 << 20
}
