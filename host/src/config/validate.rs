//! Raw config → checked config. Every problem is collected, with the span of
//! the value at fault, so that one run shows the operator all of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::{self, ConfigError, ConfigErrors, Position, Problem, key_segment};
use super::raw::{
    self, PropertyValue, Quantity, RawBroker, RawBudgets, RawConfig, RawRetry, RawRetryTopic, RawRoute, RawStep,
};
use super::units::{self, show_duration};
use super::{
    Bootstrap, Broker, Config, Delivery, LoadOptions, PINNED_PROPERTIES, Reload, RetryPolicy, RetryTopic, Route, Step,
    TableSpec,
};
use crate::runtime::Budgets;

/// The longest name Kafka allows for a topic.
const MAX_TOPIC_LEN: usize = 249;
/// `delivery.batch_size` bounds.
const MAX_BATCH: i64 = 65536;

/// Parses and checks `text`; see [`Config::from_str`].
pub(super) fn check(text: &str, file: &Path, base_dir: &Path, options: &LoadOptions) -> Result<Config, ConfigErrors> {
    let raw = parse(text, file)?;
    let mut checker = Checker {
        text,
        file,
        shown_dir: file.parent().unwrap_or(Path::new("")).to_path_buf(),
        base_dir,
        errors: Vec::new(),
    };
    let config = checker.config(raw, options);
    if checker.errors.is_empty() {
        return Ok(config);
    }
    let mut errors = checker.errors;
    errors.sort_by_key(|e| e.at);
    Err(ConfigErrors(errors))
}

/// TOML syntax, then the schema; either stops at its first error.
fn parse(text: &str, file: &Path) -> Result<RawConfig, ConfigErrors> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|e| ConfigErrors(vec![error::from_toml(text, file, &e, None)]))?;
    serde_path_to_error::deserialize(deserializer)
        .map_err(|e| ConfigErrors(vec![error::from_toml(text, file, e.inner(), Some(e.path()))]))
}

struct Checker<'a> {
    text: &'a str,
    file: &'a Path,
    /// Where messages say relative paths are: the config file's directory
    /// as it was named.
    shown_dir: PathBuf,
    /// Where relative paths really resolve.
    base_dir: &'a Path,
    errors: Vec<ConfigError>,
}

/// What the checks across routes need to know of each route.
struct Seen<'r> {
    name: String,
    inputs: Vec<&'r Spanned<String>>,
    outputs: &'r [Spanned<String>],
    allow: &'r [Spanned<String>],
    dlq: Option<&'r Spanned<String>>,
    tiers: Vec<&'r Spanned<String>>,
}

impl Checker<'_> {
    fn report(&mut self, span: Option<Range<usize>>, key: impl Into<String>, problem: Problem) {
        let at = span.map_or(Position::START, |s| Position::of(self.text, s.start));
        self.errors.push(ConfigError { file: self.file.into(), at: Some(at), key: key.into(), problem });
    }

    fn line_of(&self, span: Range<usize>) -> usize {
        Position::of(self.text, span.start).line
    }

    /// A path from the config as messages show it: beside the config file.
    fn shown(&self, path: &Path) -> String {
        self.shown_dir.join(path).display().to_string()
    }

    fn config(&mut self, raw: RawConfig, options: &LoadOptions) -> Config {
        let broker = self.broker(raw.broker.as_ref());
        let (plugin_dir, shown_plugin_dir) = self.plugin_dir(raw.plugins.dir.as_ref(), options);
        let defaults = self.budgets(&raw.defaults.budgets, "defaults.budgets", raw::default_budgets());
        let retry = self.retry(&raw.defaults.retry, "defaults.retry", raw::default_retry());
        let delivery = self.delivery(&raw.delivery);
        let admin = self.admin(&raw.admin);
        let reload = self.reload(&raw.reload);
        let tables = self.tables(&raw.tables);
        let plugins = Plugins { dir: plugin_dir.clone(), shown: shown_plugin_dir };
        let routes = self.routes(&raw.routes, &plugins, defaults, retry);
        Config { path: self.file.into(), broker, plugin_dir, tables, delivery, admin, reload, routes }
    }

    fn admin(&mut self, raw: &raw::RawAdmin) -> Option<std::net::SocketAddr> {
        let written = raw.listen.as_ref().map_or_else(raw::default_admin_listen, |l| l.get_ref().clone());
        if written == "off" {
            return None;
        }
        match written.parse::<std::net::SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                self.report(raw.listen.as_ref().map(Spanned::span), "admin.listen", Problem::Listen(written));
                None
            }
        }
    }

    fn reload(&mut self, raw: &raw::RawReload) -> Reload {
        let mut reload = Reload { watch: true, debounce: raw::default_debounce() };
        if let Some(w) = &raw.watch {
            reload.watch = *w.get_ref();
        }
        if let Some(q) = &raw.debounce
            && let Some(d) = self.duration(q, "reload.debounce")
        {
            if d > Duration::from_secs(60) {
                self.report(
                    Some(q.span()),
                    "reload.debounce",
                    Problem::OutOfRange { value: as_written(q.get_ref()), range: "at most 60s" },
                );
            }
            reload.debounce = d;
        }
        reload
    }

    fn broker(&mut self, raw: Option<&Spanned<RawBroker>>) -> Broker {
        let mut broker = Broker {
            bootstrap: Bootstrap::Embedded,
            group: raw::default_group(),
            properties: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        };
        let Some(spanned) = raw else {
            self.report(
                None,
                "broker",
                Problem::Missing("add a [broker] table with bootstrap = \"embedded\" or \"host:port\""),
            );
            return broker;
        };
        let raw = spanned.get_ref();
        match &raw.bootstrap {
            None => self.report(
                Some(spanned.span()),
                "broker.bootstrap",
                Problem::Missing("give \"embedded\" or a list of host:port servers"),
            ),
            Some(text) => match bootstrap(text.get_ref()) {
                Ok(b) => broker.bootstrap = b,
                Err(reason) => self.report(
                    Some(text.span()),
                    "broker.bootstrap",
                    Problem::Bootstrap { value: text.get_ref().clone(), reason },
                ),
            },
        }
        if let Some(group) = &raw.group {
            if group.get_ref().trim().is_empty() {
                self.report(Some(group.span()), "broker.group", Problem::Empty("give the consumer group id"));
            }
            broker.group = group.get_ref().clone();
        }
        broker.properties = self.properties(&raw.properties, "broker.properties");
        broker.consumer = self.properties(&raw.consumer, "broker.consumer");
        broker.producer = self.properties(&raw.producer, "broker.producer");
        broker
    }

    fn properties(&mut self, raw: &BTreeMap<String, Spanned<PropertyValue>>, key: &str) -> BTreeMap<String, String> {
        let mut properties = BTreeMap::new();
        for (name, value) in raw {
            let lower = name.trim().to_ascii_lowercase();
            if let Some((_, reason)) = PINNED_PROPERTIES.iter().find(|(pinned, _)| *pinned == lower) {
                self.report(
                    Some(value.span()),
                    format!("{key}.{}", key_segment(name)),
                    Problem::Pinned { property: name.clone(), reason },
                );
            }
            properties.insert(name.clone(), value.get_ref().0.clone());
        }
        properties
    }

    /// The plugin directory to look in, and how messages show it.
    fn plugin_dir(&mut self, raw: Option<&Spanned<String>>, options: &LoadOptions) -> (PathBuf, Option<String>) {
        if let Some(dir) = &options.plugin_dir {
            let shown = dir.display().to_string();
            if !dir.is_dir() {
                self.report(None, "plugins.dir", Problem::PluginDir { dir: shown.clone() });
                return (dir.clone(), None);
            }
            return (dir.clone(), Some(shown));
        }
        let written = raw.map_or_else(raw::default_plugin_dir, |d| d.get_ref().clone());
        if written.trim().is_empty() {
            self.report(
                raw.map(Spanned::span),
                "plugins.dir",
                Problem::Empty("write \".\" for the config file's own directory"),
            );
            return (self.base_dir.into(), None);
        }
        let dir = self.base_dir.join(&written);
        let shown = self.shown(Path::new(&written));
        if !dir.is_dir() {
            self.report(raw.map(Spanned::span), "plugins.dir", Problem::PluginDir { dir: shown });
            return (dir, None);
        }
        (dir, Some(shown))
    }

    fn delivery(&mut self, raw: &raw::RawDelivery) -> Delivery {
        let mut delivery = Delivery {
            commit_interval: raw::default_commit_interval(),
            shutdown_grace: raw::default_shutdown_grace(),
            batch_size: raw::default_batch_size(),
            queue_per_partition: raw::default_queue_per_partition(),
            queue_bytes_per_partition: raw::default_queue_bytes_per_partition(),
        };
        if let Some(q) = &raw.commit_interval
            && let Some(d) = self.duration(q, "delivery.commit_interval")
        {
            if d < Duration::from_millis(1) || d > Duration::from_secs(86_400) {
                self.report(
                    Some(q.span()),
                    "delivery.commit_interval",
                    Problem::OutOfRange {
                        value: as_written(q.get_ref()),
                        range: "from 1ms to 24h (librdkafka's auto.commit.interval.ms)",
                    },
                );
            }
            delivery.commit_interval = d;
        }
        if let Some(q) = &raw.shutdown_grace
            && let Some(d) = self.duration(q, "delivery.shutdown_grace")
        {
            delivery.shutdown_grace = d;
        }
        if let Some(n) = &raw.batch_size {
            if !(1..=MAX_BATCH).contains(n.get_ref()) {
                self.report(
                    Some(n.span()),
                    "delivery.batch_size",
                    Problem::OutOfRange { value: n.get_ref().to_string(), range: "from 1 to 65536" },
                );
            }
            delivery.batch_size = usize::try_from(*n.get_ref()).unwrap_or(1);
        }
        if let Some(n) = &raw.queue_per_partition {
            delivery.queue_per_partition = self.count(n, "delivery.queue_per_partition");
        }
        if let Some(q) = &raw.queue_bytes_per_partition
            && let Some(bytes) = self.size(q, "delivery.queue_bytes_per_partition")
        {
            if !(64 << 10..=16 << 30).contains(&bytes) {
                self.report(
                    Some(q.span()),
                    "delivery.queue_bytes_per_partition",
                    Problem::OutOfRange { value: as_written(q.get_ref()), range: "from 64KiB to 16GiB" },
                );
            }
            delivery.queue_bytes_per_partition = bytes;
        }
        delivery
    }

    /// A duration, reported where it is written if it does not parse.
    fn duration(&mut self, raw: &Spanned<Quantity>, key: &str) -> Option<Duration> {
        units::duration(raw.get_ref()).map_err(|p| self.report(Some(raw.span()), key, p)).ok()
    }

    /// A size of at least one byte.
    fn size(&mut self, raw: &Spanned<Quantity>, key: &str) -> Option<u64> {
        match units::size(raw.get_ref()) {
            Ok(0) => {
                self.report(Some(raw.span()), key, Problem::NotPositive(as_written(raw.get_ref())));
                None
            }
            Ok(n) => Some(n),
            Err(p) => {
                self.report(Some(raw.span()), key, p);
                None
            }
        }
    }

    /// A count of at least one.
    fn count(&mut self, raw: &Spanned<i64>, key: &str) -> usize {
        match usize::try_from(*raw.get_ref()) {
            Ok(n) if n > 0 => n,
            _ => {
                self.report(Some(raw.span()), key, Problem::NotPositive(raw.get_ref().to_string()));
                1
            }
        }
    }

    /// `base` with the keys `raw` sets; `key` is where `raw` is.
    fn budgets(&mut self, raw: &RawBudgets, key: &str, base: Budgets) -> Budgets {
        let mut budgets = base;
        if let Some(q) = &raw.timeout
            && let Some(d) = self.duration(q, &format!("{key}.timeout"))
        {
            if d.is_zero() {
                self.report(Some(q.span()), format!("{key}.timeout"), Problem::NotPositive(as_written(q.get_ref())));
            }
            budgets.call_timeout = d;
        }
        if let Some(q) = &raw.memory
            && let Some(n) = self.size(q, &format!("{key}.memory"))
        {
            budgets.memory = n;
        }
        if let Some(n) = &raw.max_outputs {
            budgets.max_outputs = self.count(n, &format!("{key}.max_outputs"));
        }
        if let Some(q) = &raw.max_output_bytes
            && let Some(n) = self.size(q, &format!("{key}.max_output_bytes"))
        {
            budgets.max_output_bytes = n;
        }
        if let Some(q) = &raw.max_plugin_file
            && let Some(n) = self.size(q, &format!("{key}.max_plugin_file"))
        {
            budgets.max_plugin_file = n;
        }
        budgets
    }

    /// `base` with the keys `raw` sets. The backoff order is checked where
    /// one of the two backoffs is set, so a problem is reported once.
    fn retry(&mut self, raw: &RawRetry, key: &str, base: RetryPolicy) -> RetryPolicy {
        let mut retry = base;
        if let Some(n) = &raw.max_attempts {
            match u32::try_from(*n.get_ref()) {
                Ok(0) => self.report(Some(n.span()), format!("{key}.max_attempts"), Problem::NoAttempts("0".into())),
                Ok(attempts) => retry.max_attempts = attempts,
                Err(_) if *n.get_ref() < 0 => self.report(
                    Some(n.span()),
                    format!("{key}.max_attempts"),
                    Problem::NoAttempts(n.get_ref().to_string()),
                ),
                Err(_) => self.report(
                    Some(n.span()),
                    format!("{key}.max_attempts"),
                    Problem::OutOfRange { value: n.get_ref().to_string(), range: "at most 4294967295" },
                ),
            }
        }
        if let Some(n) = &raw.max_faults {
            match u32::try_from(*n.get_ref()) {
                Ok(faults) if faults > 0 => retry.max_faults = faults,
                _ => self.report(
                    Some(n.span()),
                    format!("{key}.max_faults"),
                    Problem::OutOfRange { value: n.get_ref().to_string(), range: "from 1 to 4294967295" },
                ),
            }
        }
        let mut backoffs_ok = true;
        for (field, target) in [("initial_backoff", &raw.initial_backoff), ("max_backoff", &raw.max_backoff)] {
            if let Some(q) = target {
                match self.duration(q, &format!("{key}.{field}")) {
                    Some(d) if field == "initial_backoff" => retry.initial_backoff = d,
                    Some(d) => retry.max_backoff = d,
                    None => backoffs_ok = false,
                }
            }
        }
        if backoffs_ok && retry.initial_backoff > retry.max_backoff {
            let at = raw.initial_backoff.as_ref().map(|q| ("initial_backoff", q.span()));
            if let Some((field, span)) = at.or_else(|| raw.max_backoff.as_ref().map(|q| ("max_backoff", q.span()))) {
                self.report(
                    Some(span),
                    format!("{key}.{field}"),
                    Problem::BackoffOrder {
                        initial: show_duration(retry.initial_backoff),
                        max: show_duration(retry.max_backoff),
                    },
                );
            }
        }
        if let Some(m) = &raw.multiplier {
            let value = *m.get_ref();
            if value.is_nan() || value < 1.0 {
                self.report(Some(m.span()), format!("{key}.multiplier"), Problem::Multiplier(value));
            } else if value.is_infinite() {
                self.report(
                    Some(m.span()),
                    format!("{key}.multiplier"),
                    Problem::OutOfRange { value: value.to_string(), range: "a finite number" },
                );
            }
            retry.multiplier = value;
        }
        if let Some(j) = &raw.jitter {
            let value = *j.get_ref();
            if !(0.0..=1.0).contains(&value) {
                self.report(Some(j.span()), format!("{key}.jitter"), Problem::Jitter(value));
            }
            retry.jitter = value;
        }
        retry
    }

    fn tables(&mut self, raw: &[Spanned<raw::RawTable>]) -> Vec<TableSpec> {
        let mut tables = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, spanned) in raw.iter().enumerate() {
            let key = format!("tables[{i}]");
            let table = spanned.get_ref();
            let name = self.required_name(table.name.as_ref(), spanned, &key, "table", &mut names, "name the table");
            let path = match &table.file {
                None => {
                    self.report(
                        Some(spanned.span()),
                        format!("{key}.file"),
                        Problem::Missing("give a .csv or .jsonl file"),
                    );
                    PathBuf::new()
                }
                Some(file) => {
                    let written = Path::new(file.get_ref());
                    let path = self.base_dir.join(written);
                    let shown = self.shown(written);
                    let format_ok =
                        matches!(written.extension().and_then(|e| e.to_str()), Some("csv" | "jsonl" | "ndjson"));
                    if !format_ok {
                        self.report(Some(file.span()), format!("{key}.file"), Problem::TableFormat { path: shown });
                    } else if !path.is_file() {
                        self.report(Some(file.span()), format!("{key}.file"), Problem::TableMissing { path: shown });
                    }
                    path
                }
            };
            let column = match &table.key {
                None => {
                    self.report(
                        Some(spanned.span()),
                        format!("{key}.key"),
                        Problem::Missing("name the column (CSV) or field (JSONL) rows are keyed by"),
                    );
                    String::new()
                }
                Some(k) if k.get_ref().is_empty() => {
                    self.report(Some(k.span()), format!("{key}.key"), Problem::Empty("name the key column or field"));
                    String::new()
                }
                Some(k) => k.get_ref().clone(),
            };
            tables.push(TableSpec { name, path, key: column });
        }
        tables
    }

    /// A required, unique `[a-zA-Z0-9._-]+` name; `seen` maps names to the
    /// line that first defined them.
    fn required_name<T>(
        &mut self,
        raw: Option<&Spanned<String>>,
        owner: &Spanned<T>,
        key: &str,
        what: &'static str,
        seen: &mut HashMap<String, usize>,
        hint: &'static str,
    ) -> String {
        let Some(name) = raw else {
            self.report(Some(owner.span()), format!("{key}.name"), Problem::Missing(hint));
            return String::new();
        };
        let text = name.get_ref().clone();
        if let Err(reason) = check_name(&text) {
            self.report(Some(name.span()), format!("{key}.name"), Problem::Name { name: text.clone(), reason });
        } else if let Some(line) = seen.get(&text) {
            self.report(
                Some(name.span()),
                format!("{key}.name"),
                Problem::Duplicate { what, name: text.clone(), line: *line },
            );
        } else {
            seen.insert(text.clone(), self.line_of(name.span()));
        }
        text
    }

    fn routes(
        &mut self,
        raw: &[Spanned<RawRoute>],
        plugins: &Plugins,
        budgets: Budgets,
        retry: RetryPolicy,
    ) -> Vec<Route> {
        if raw.is_empty() {
            self.report(None, "routes", Problem::NoRoutes);
            return Vec::new();
        }
        let mut routes = Vec::new();
        let mut seen = Vec::new();
        let mut names = HashMap::new();
        // Input topic → the index and name of the route that consumes it.
        let mut owners: HashMap<String, (usize, String)> = HashMap::new();
        for (i, spanned) in raw.iter().enumerate() {
            let key = format!("routes[{i}]");
            let raw = spanned.get_ref();
            let name = self.required_name(raw.name.as_ref(), spanned, &key, "route", &mut names, "name the route");
            let inputs = self.inputs(raw, spanned, i, &name, &mut owners);
            let outputs = self.topics(&raw.outputs, &format!("{key}.outputs"), true);
            let raw_allow = raw.allow.as_ref().map_or(&[][..], |a| a.get_ref().as_slice());
            let allowed = self.topics(raw_allow, &format!("{key}.allow"), false);
            // An allow list written out empty, with no outputs either: nothing
            // a plugin passes or emits could be written. (Leaving both out is
            // allowed: such a route only drops and dead-letters, on purpose.)
            if let Some(allow) = raw.allow.as_ref().filter(|a| a.get_ref().is_empty() && outputs.is_empty()) {
                self.report(Some(allow.span()), format!("{key}.allow"), Problem::NowhereToWrite);
            }
            let dlq = match &raw.dlq {
                None => {
                    self.report(
                        Some(spanned.span()),
                        format!("{key}.dlq"),
                        Problem::Missing("name the dead-letter topic for records that fail"),
                    );
                    String::new()
                }
                Some(dlq) => {
                    self.topic(dlq, &format!("{key}.dlq"));
                    dlq.get_ref().clone()
                }
            };
            let retry = raw.retry.as_ref().map_or(retry, |r| self.retry(r.get_ref(), &format!("{key}.retry"), retry));
            let budgets =
                raw.budgets.as_ref().map_or(budgets, |b| self.budgets(b.get_ref(), &format!("{key}.budgets"), budgets));
            let retry_topics = self.retry_topics(&raw.retry_topics, &key, i, &name, &mut owners);
            let chain = self.chain(raw, spanned, &key, plugins, budgets);
            let allow = outputs.iter().chain(&allowed).cloned().collect();
            seen.push(Seen {
                name: name.clone(),
                inputs: raw.inputs.as_ref().map(|i| i.get_ref().iter().collect()).unwrap_or_default(),
                outputs: &raw.outputs,
                allow: raw_allow,
                dlq: raw.dlq.as_ref(),
                tiers: raw.retry_topics.iter().filter_map(|t| t.get_ref().topic.as_ref()).collect(),
            });
            routes.push(Route { name, inputs, outputs, allow, dlq, retry, retry_topics, chain });
        }
        self.across_routes(&seen, &owners);
        routes
    }

    fn inputs(
        &mut self,
        raw: &RawRoute,
        spanned: &Spanned<RawRoute>,
        index: usize,
        route: &str,
        owners: &mut HashMap<String, (usize, String)>,
    ) -> Vec<String> {
        let key = format!("routes[{index}]");
        let Some(inputs) = &raw.inputs else {
            self.report(Some(spanned.span()), format!("{key}.inputs"), Problem::Missing("give the topics to consume"));
            return Vec::new();
        };
        if inputs.get_ref().is_empty() {
            self.report(
                Some(inputs.span()),
                format!("{key}.inputs"),
                Problem::Empty("give at least one topic to consume"),
            );
        }
        let topics = self.topics(inputs.get_ref(), &format!("{key}.inputs"), true);
        for (j, topic) in inputs.get_ref().iter().enumerate() {
            match owners.get(topic.get_ref()) {
                Some((owner, name)) if *owner != index => self.report(
                    Some(topic.span()),
                    format!("{key}.inputs[{j}]"),
                    Problem::InputTaken { topic: topic.get_ref().clone(), route: name.clone() },
                ),
                Some(_) => {}
                None => {
                    owners.insert(topic.get_ref().clone(), (index, route.to_owned()));
                }
            }
        }
        topics
    }

    /// Retry tiers: each a topic of its own (no other route's input or tier)
    /// with a delay from 1s to 7d.
    fn retry_topics(
        &mut self,
        raw: &[Spanned<RawRetryTopic>],
        route_key: &str,
        index: usize,
        route: &str,
        owners: &mut HashMap<String, (usize, String)>,
    ) -> Vec<RetryTopic> {
        let mut tiers = Vec::new();
        // Tier names so far: a name owned by this route and not among them is one of its inputs.
        let mut named: BTreeSet<&str> = BTreeSet::new();
        for (j, spanned) in raw.iter().enumerate() {
            let key = format!("{route_key}.retry_topics[{j}]");
            let tier = spanned.get_ref();
            let delay = match &tier.delay {
                None => {
                    self.report(
                        Some(spanned.span()),
                        format!("{key}.delay"),
                        Problem::Missing("give the tier's delay, such as \"1m\""),
                    );
                    None
                }
                Some(q) => self.duration(q, &format!("{key}.delay")).filter(|d| {
                    let ok = (Duration::from_secs(1)..=Duration::from_secs(7 * 24 * 3600)).contains(d);
                    if !ok {
                        self.report(
                            Some(q.span()),
                            format!("{key}.delay"),
                            Problem::OutOfRange { value: as_written(q.get_ref()), range: "from 1s to 7d" },
                        );
                    }
                    ok
                }),
            };
            let Some(topic) = &tier.topic else {
                self.report(Some(spanned.span()), format!("{key}.topic"), Problem::Missing("name the tier's topic"));
                continue;
            };
            if !self.topic(topic, &format!("{key}.topic")) {
                continue;
            }
            let name = topic.get_ref();
            match owners.get(name) {
                Some((owner, _)) if *owner == index && named.contains(name.as_str()) => {
                    self.report(Some(topic.span()), format!("{key}.topic"), Problem::Repeated { name: name.clone() })
                }
                Some((_, other)) => self.report(
                    Some(topic.span()),
                    format!("{key}.topic"),
                    Problem::InputTaken { topic: name.clone(), route: other.clone() },
                ),
                None => {
                    owners.insert(name.clone(), (index, route.to_owned()));
                }
            }
            named.insert(name);
            if let Some(delay) = delay {
                tiers.push(RetryTopic { topic: name.clone(), delay });
            }
        }
        tiers
    }

    /// Checks each topic name, and that none repeats when `unique`.
    fn topics(&mut self, raw: &[Spanned<String>], key: &str, unique: bool) -> Vec<String> {
        let mut seen = BTreeSet::new();
        for (j, topic) in raw.iter().enumerate() {
            let ok = self.topic(topic, &format!("{key}[{j}]"));
            if ok && unique && !seen.insert(topic.get_ref().as_str()) {
                self.report(
                    Some(topic.span()),
                    format!("{key}[{j}]"),
                    Problem::Repeated { name: topic.get_ref().clone() },
                );
            }
        }
        raw.iter().map(|t| t.get_ref().clone()).collect()
    }

    fn topic(&mut self, topic: &Spanned<String>, key: &str) -> bool {
        match check_topic(topic.get_ref()) {
            Ok(()) => true,
            Err(reason) => {
                self.report(Some(topic.span()), key, Problem::TopicName { name: topic.get_ref().clone(), reason });
                false
            }
        }
    }

    fn chain(
        &mut self,
        raw: &RawRoute,
        spanned: &Spanned<RawRoute>,
        key: &str,
        plugins: &Plugins,
        budgets: Budgets,
    ) -> Vec<Step> {
        let Some(chain) = &raw.chain else {
            self.report(
                Some(spanned.span()),
                format!("{key}.chain"),
                Problem::Missing("add [[routes.chain]] steps, each with a plugin"),
            );
            return Vec::new();
        };
        if chain.get_ref().is_empty() {
            self.report(Some(chain.span()), format!("{key}.chain"), Problem::Empty("give at least one plugin step"));
        }
        let mut steps = Vec::new();
        for (j, step) in chain.get_ref().iter().enumerate() {
            steps.push(self.step(step, &format!("{key}.chain[{j}]"), plugins, budgets));
        }
        steps
    }

    fn step(&mut self, spanned: &Spanned<RawStep>, key: &str, plugins: &Plugins, budgets: Budgets) -> Step {
        let raw = spanned.get_ref();
        let budgets =
            raw.budgets.as_ref().map_or(budgets, |b| self.budgets(b.get_ref(), &format!("{key}.budgets"), budgets));
        let config = crate::plugin_config::entries(&raw.config);
        let Some(plugin) = &raw.plugin else {
            self.report(
                Some(spanned.span()),
                format!("{key}.plugin"),
                Problem::Missing("name the plugin: its file is <plugins.dir>/<plugin>.wasm"),
            );
            return Step { plugin: String::new(), path: PathBuf::new(), config, budgets };
        };
        let name = plugin.get_ref().clone();
        let path = plugins.dir.join(format!("{name}.wasm"));
        if let Err(reason) = check_plugin_name(&name) {
            self.report(
                Some(plugin.span()),
                format!("{key}.plugin"),
                Problem::PluginName { name: name.clone(), reason },
            );
        } else if let Some(shown) = &plugins.shown
            && !path.is_file()
        {
            let looked_for = Path::new(shown).join(format!("{name}.wasm")).display().to_string();
            self.report(
                Some(plugin.span()),
                format!("{key}.plugin"),
                Problem::PluginMissing { plugin: name.clone(), looked_for, available: plugins.available() },
            );
        }
        Step { plugin: name, path, config, budgets }
    }

    /// The checks that need every route: DLQs apart from inputs and
    /// outputs, no route reading what it writes, directly or round a loop.
    fn across_routes(&mut self, seen: &[Seen<'_>], owners: &HashMap<String, (usize, String)>) {
        let tiers: HashMap<&str, &str> =
            seen.iter().flat_map(|r| r.tiers.iter().map(|t| (t.get_ref().as_str(), r.name.as_str()))).collect();
        for (i, route) in seen.iter().enumerate() {
            for (list, topics) in [("outputs", route.outputs), ("allow", route.allow)] {
                for (j, topic) in topics.iter().enumerate() {
                    if let Some(owner) = tiers.get(topic.get_ref().as_str()) {
                        self.report(
                            Some(topic.span()),
                            format!("routes[{i}].{list}[{j}]"),
                            Problem::WritesRetryTopic { topic: topic.get_ref().clone(), route: (*owner).to_owned() },
                        );
                    }
                }
            }
            let own: BTreeSet<&str> = route.inputs.iter().map(|t| t.get_ref().as_str()).collect();
            for (list, topics) in [("outputs", route.outputs), ("allow", route.allow)] {
                for (j, topic) in topics.iter().enumerate() {
                    if own.contains(topic.get_ref().as_str()) {
                        self.report(
                            Some(topic.span()),
                            format!("routes[{i}].{list}[{j}]"),
                            Problem::ReadsOwnOutput { topic: topic.get_ref().clone() },
                        );
                    }
                }
            }
            let Some(dlq) = route.dlq else { continue };
            let topic = dlq.get_ref();
            if let Some((_, owner)) = owners.get(topic) {
                self.report(
                    Some(dlq.span()),
                    format!("routes[{i}].dlq"),
                    Problem::DlqIsInput {
                        topic: topic.clone(),
                        route: owner.clone(),
                        what: if tiers.contains_key(topic.as_str()) { "a retry topic" } else { "an input topic" },
                    },
                );
                continue;
            }
            let used = seen.iter().find_map(|other| {
                let list = if other.outputs.iter().any(|t| t.get_ref() == topic) {
                    "outputs"
                } else if other.allow.iter().any(|t| t.get_ref() == topic) {
                    "allow list"
                } else {
                    return None;
                };
                Some((other.name.clone(), list))
            });
            if let Some((other, list)) = used {
                self.report(
                    Some(dlq.span()),
                    format!("routes[{i}].dlq"),
                    Problem::DlqIsOutput { topic: topic.clone(), route: other, list },
                );
            }
        }
        self.loops(seen);
    }

    /// Reports each loop of two or more routes once, at the route with the
    /// lowest index in it: route A writes a topic route B reads, and so on
    /// back to A.
    fn loops(&mut self, seen: &[Seen<'_>]) {
        let reader: HashMap<&str, usize> = seen
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.inputs.iter().map(move |t| (t.get_ref().as_str(), i)))
            .collect();
        // Edges: (from, to, the entry in `from`'s outputs or allow, its key).
        let edges = |from: usize| -> Vec<(usize, &Spanned<String>, String)> {
            let route = &seen[from];
            let listed = route.outputs.iter().enumerate().map(|(j, t)| (t, format!("routes[{from}].outputs[{j}]")));
            let allowed = route.allow.iter().enumerate().map(|(j, t)| (t, format!("routes[{from}].allow[{j}]")));
            listed
                .chain(allowed)
                .filter_map(|(t, key)| reader.get(t.get_ref().as_str()).map(|to| (*to, t, key)))
                .filter(|(to, _, _)| *to != from)
                .collect()
        };
        for start in 0..seen.len() {
            // Breadth-first over routes after `start`, so each loop is found
            // once, from its first route.
            let mut came_from: HashMap<usize, (usize, &Spanned<String>, String)> = HashMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut closing = None;
            while let Some(at) = queue.pop_front() {
                for (to, topic, key) in edges(at) {
                    if to == start {
                        closing = Some((at, topic, key));
                        break;
                    }
                    if to > start && !came_from.contains_key(&to) {
                        came_from.insert(to, (at, topic, key));
                        queue.push_back(to);
                    }
                }
                if closing.is_some() {
                    break;
                }
            }
            let Some((last, topic, _)) = closing else { continue };
            // Walk back from the last route to `start`.
            let mut hops = vec![(last, topic.get_ref().clone())];
            let mut at = last;
            let mut first = None;
            while at != start {
                // Every route the search reached, other than `start`, was
                // reached from somewhere; the walk only visits those.
                let Some((from, topic, key)) = came_from.get(&at) else { break };
                hops.push((*from, topic.get_ref().clone()));
                first = Some((topic.span(), key.clone()));
                at = *from;
            }
            hops.reverse();
            let mut path = format!("route \"{}\"", seen[start].name);
            for (i, (_, topic)) in hops.iter().enumerate() {
                let next = hops.get(i + 1).map_or(start, |(r, _)| *r);
                path.push_str(&format!(" → \"{topic}\" → route \"{}\"", seen[next].name));
            }
            // `last` is never `start` (no edge leads from a route to itself),
            // so the walk took at least one step.
            let Some((span, key)) = first else { continue };
            self.report(Some(span), key, Problem::Loop { path });
        }
    }
}

/// The plugin directory, as found.
struct Plugins {
    dir: PathBuf,
    /// How messages show the directory; `None` when it does not exist, which
    /// was reported once already.
    shown: Option<String>,
}

impl Plugins {
    /// The plugin names in the directory, for a message about a missing one.
    fn available(&self) -> String {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
                    .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    }
}

/// A value as it was written, for messages.
fn as_written(quantity: &Quantity) -> String {
    match quantity {
        Quantity::Text(t) => format!("\"{t}\""),
        Quantity::Integer(n) => n.to_string(),
        Quantity::Float(n) => n.to_string(),
    }
}

/// Parses `broker.bootstrap`: `"embedded"`, or `host:port` entries, each
/// optionally with a `scheme://` prefix as librdkafka allows.
fn bootstrap(text: &str) -> Result<Bootstrap, String> {
    if text == "embedded" {
        return Ok(Bootstrap::Embedded);
    }
    if text.trim().is_empty() {
        return Err("give \"embedded\" or a list of host:port servers".to_owned());
    }
    let entries: Vec<&str> = text.split(',').map(str::trim).collect();
    for entry in &entries {
        let address = entry.split_once("://").map_or(*entry, |(_, rest)| rest);
        let Some((host, port)) = address.rsplit_once(':') else {
            return Err(format!("\"{entry}\" has no port; write host:port, e.g. \"{entry}:9092\""));
        };
        if host.is_empty() {
            return Err(format!("\"{entry}\" has no host"));
        }
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("\"{entry}\" has port \"{port}\", which is not a port number (1-65535)"));
        }
    }
    Ok(Bootstrap::Servers(entries.join(",")))
}

/// Kafka's rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(super) fn check_topic(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are reserved".to_owned());
    }
    if name.chars().count() > MAX_TOPIC_LEN {
        return Err(format!("it is {} characters long; the limit is {MAX_TOPIC_LEN}", name.chars().count()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{c:?} is not allowed; use letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// Route and table names: `[a-zA-Z0-9._-]+`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{c:?} is not allowed; use letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// A plugin is named by its file stem, never a path.
fn check_plugin_name(name: &str) -> Result<(), String> {
    if let Some(stem) = name.strip_suffix(".wasm") {
        return Err(format!("write \"{stem}\"; sluice adds the .wasm"));
    }
    if name.contains(['/', '\\']) {
        return Err("a plugin is named by its file in plugins.dir, not a path; set plugins.dir instead".to_owned());
    }
    if name.starts_with('.') {
        return Err("it starts with '.'".to_owned());
    }
    check_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        assert!(check_topic("orders.events_v2-eu").is_ok());
        assert!(check_topic(&"a".repeat(249)).is_ok());
        assert_eq!(check_topic("").unwrap_err(), "it is empty");
        assert_eq!(check_topic("..").unwrap_err(), "\".\" and \"..\" are reserved");
        assert!(check_topic(&"a".repeat(250)).unwrap_err().contains("250 characters"));
        assert!(check_topic("orders events").unwrap_err().starts_with("' ' is not allowed"));
        assert!(check_topic("ordérs").is_err());
    }

    #[test]
    fn bootstrap_is_embedded_or_host_ports() {
        assert_eq!(bootstrap("embedded").unwrap(), Bootstrap::Embedded);
        assert_eq!(
            bootstrap("kafka-1:9092, kafka-2:9092").unwrap(),
            Bootstrap::Servers("kafka-1:9092,kafka-2:9092".into())
        );
        assert!(bootstrap("SSL://kafka:9093").is_ok());
        assert!(bootstrap("[::1]:9092").is_ok());
        assert!(bootstrap("kafka").unwrap_err().contains("has no port"));
        assert!(bootstrap("kafka:http").unwrap_err().contains("not a port number"));
        assert!(bootstrap(":9092").unwrap_err().contains("has no host"));
        assert!(bootstrap(" ").is_err());
    }

    #[test]
    fn plugin_names_are_file_stems() {
        assert!(check_plugin_name("validate").is_ok());
        assert_eq!(check_plugin_name("validate.wasm").unwrap_err(), "write \"validate\"; sluice adds the .wasm");
        assert!(check_plugin_name("../validate").unwrap_err().contains("not a path"));
        assert!(check_plugin_name(".hidden").is_err());
        assert!(check_plugin_name("").is_err());
    }
}
