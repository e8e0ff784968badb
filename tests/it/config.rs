//! The routing config: golden good and bad files in `tests/config/`, and
//! `sluice check` end to end with real plugins.
//!
//! Each config is read from the repository but resolved against a scratch
//! directory laid out like a deployment: `plugins/` holds plugins built from
//! this checkout and `data/` the small tables of `tests/config/data/`. The
//! files therefore say what an operator would write (the default
//! `plugins.dir`, `data/customers.csv`), while messages still name paths
//! beside the config in the repository (`tests/config/bad/plugins/…`), so
//! the goldens do not depend on where the build put the plugins.
//! `BLESS=1 cargo test config` rewrites the `*.expected` files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice::config::{Bootstrap, Config, LoadOptions, Problem};
use tempfile::TempDir;

use crate::support::{plugin, repo};

/// The plugins a deployment directory gets. Not every built one, so that a
/// new fixture does not change the "plugins there" list in the goldens.
const PLUGINS: &[&str] = &["passthrough", "validate", "enrich", "route", "fx_reject"];

/// A scratch deployment directory: `plugins/`, `data/`, and the tables
/// again under the names `config/demo.toml` and `config/production.toml`
/// use.
pub fn deployment() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for name in PLUGINS {
        std::fs::copy(plugin(name), plugins.join(format!("{name}.wasm"))).unwrap();
    }
    let data = repo().join("tests/config/data");
    let copies = [
        ("data/customers.csv", "customers.csv"),
        ("data/products.csv", "products.csv"),
        ("data/categories.csv", "categories.csv"),
        ("data/sensors.jsonl", "sensors.jsonl"),
        ("demo/data/olist_customers.csv", "customers.csv"),
        ("demo/data/olist_products.csv", "products.csv"),
        ("demo/data/product_category_name_translation.csv", "categories.csv"),
        ("tables/olist_customers.csv", "customers.csv"),
        ("tables/olist_products.csv", "products.csv"),
        ("tables/product_category_name_translation.csv", "categories.csv"),
    ];
    for (to, from) in copies {
        let to = dir.path().join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(data.join(from), to).unwrap();
    }
    dir
}

/// The `*.toml` files in `tests/config/<kind>`, sorted.
pub fn configs(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/config").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The file's path from the repository root: how messages name it.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(repo()).unwrap().to_path_buf()
}

/// Loads a repository file as if it sat in `deployment`.
fn load_in(path: &Path, deployment: &Path) -> Result<Config, sluice::config::ConfigErrors> {
    let text = std::fs::read_to_string(path).unwrap();
    Config::from_str(&text, relative(path), deployment)
}

#[test]
fn good_configs_load_and_pass_the_check() {
    let deployment = deployment();
    let files = configs("good");
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        let config = load_in(&file, deployment.path()).unwrap_or_else(|e| panic!("{}:\n{e}", file.display()));
        sluice::check::verify(&config).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
    }
}

#[test]
fn bad_configs_fail_with_the_expected_errors() {
    let deployment = deployment();
    let bless = std::env::var_os("BLESS").is_some();
    let files = configs("bad");
    assert!(files.len() >= 25, "only {} bad configs", files.len());
    let mut mismatches = Vec::new();
    for file in files {
        let actual = match load_in(&file, deployment.path()) {
            Ok(_) => "(loaded without errors)\n".to_owned(),
            Err(errors) => format!("{errors}\n"),
        };
        let expected_file = file.with_extension("expected");
        if bless {
            std::fs::write(&expected_file, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if expected != actual {
            mismatches.push(format!("{}:\n  expected: {expected:?}\n  actual:   {actual:?}", file.display()));
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches (BLESS=1 rewrites):\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn every_bad_config_has_a_located_error_in_its_own_file() {
    let deployment = deployment();
    for file in configs("bad") {
        let errors = load_in(&file, deployment.path()).expect_err("a bad config must not load");
        for error in &errors {
            assert_eq!(error.file, relative(&file));
            let at = error.at.expect("every error in a file has a position");
            assert!(at.line >= 1 && at.column >= 1);
            assert!(!error.key.is_empty(), "{error}");
        }
    }
}

#[test]
fn overrides_resolve_defaults_then_route_then_step() {
    let deployment = deployment();
    let config = load_in(&repo().join("tests/config/good/overrides.toml"), deployment.path()).unwrap();
    assert_eq!(config.broker.bootstrap, Bootstrap::Servers("kafka-1:9092,kafka-2:9092".into()));
    assert_eq!(config.broker.group, "overrides");
    assert_eq!(config.delivery.commit_interval, Duration::from_millis(2500));
    assert_eq!(config.delivery.shutdown_grace, Duration::ZERO);
    assert_eq!((config.delivery.batch_size, config.delivery.queue_per_partition), (65536, 100_000));

    let consumer = config.consumer_properties();
    assert_eq!(consumer["client.id"], "sluice-consumer", "consumer wins over properties");
    assert_eq!(consumer["socket.keepalive.enable"], "true");
    assert_eq!(consumer["session.timeout.ms"], "45000");
    assert_eq!(consumer["auto.commit.interval.ms"], "2500");
    let producer = config.producer_properties();
    assert_eq!((producer["client.id"].as_str(), producer["linger.ms"].as_str()), ("sluice-test", "10"));

    let route = config.route_for_topic("orders.events").unwrap();
    assert_eq!(route.retry.max_attempts, 1);
    assert_eq!(route.retry.initial_backoff, Duration::from_millis(200));
    assert_eq!(route.retry.max_backoff, Duration::from_secs(60));
    assert_eq!((route.retry.multiplier, route.retry.jitter), (3.0, 0.0));
    let tiers: Vec<(&str, Duration)> = route.retry_topics.iter().map(|t| (t.topic.as_str(), t.delay)).collect();
    assert_eq!(
        tiers,
        [("orders.events.retry.1m", Duration::from_secs(60)), ("orders.events.retry.10m", Duration::from_secs(600))]
    );
    assert_eq!(config.route_for_topic("orders.events.retry.10m").map(|r| r.name.as_str()), Some("orders"));
    assert_eq!(route.allow.iter().map(String::as_str).collect::<Vec<_>>(), ["orders.flagged", "orders.valid"]);

    let [validate, passthrough] = &route.chain[..] else { panic!("two steps") };
    assert_eq!(validate.path, deployment.path().join("plugins/validate.wasm"));
    assert_eq!(validate.config, vec![("required".to_owned(), r#"["eventId"]"#.to_owned())]);
    // Step memory, route timeout and output bytes, default max_outputs, built-in max_plugin_file.
    assert_eq!(validate.budgets.memory, 48 << 20);
    assert_eq!(validate.budgets.call_timeout, Duration::from_secs(1));
    assert_eq!(validate.budgets.max_output_bytes, 1 << 20);
    assert_eq!(validate.budgets.max_outputs, 16);
    assert_eq!(validate.budgets.max_plugin_file, 64 << 20);
    assert_eq!(passthrough.budgets.memory, 24 << 20);
    assert!(passthrough.config.is_empty());
    assert!(config.route_for_topic("orders.valid").is_none());
}

#[test]
fn the_documented_examples_load_and_pass_the_check() {
    let deployment = deployment();
    for name in ["config/demo.toml", "config/production.toml"] {
        let config = load_in(&repo().join(name), deployment.path()).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        let report = sluice::check::verify(&config).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let text = report.to_string();
        assert!(text.ends_with("config OK"), "{text}");
        assert!(text.contains("table \"customers\": 3 rows keyed by customer_id"), "{text}");
        // librdkafka refuses properties this build does not support (e.g. TLS
        // without OpenSSL) when a client is created, long after `check`.
        let producer = sluice::kafka::producer_config("127.0.0.1:1", &config.producer_properties());
        producer.create::<rdkafka::producer::BaseProducer>().unwrap_or_else(|e| panic!("{name}: producer: {e}"));
        let consumer =
            sluice::kafka::consumer_config("127.0.0.1:1", &config.broker.group, &config.consumer_properties());
        consumer.create::<rdkafka::consumer::BaseConsumer>().unwrap_or_else(|e| panic!("{name}: consumer: {e}"));
    }
    let demo = load_in(&repo().join("config/demo.toml"), deployment.path()).unwrap();
    assert_eq!(demo.broker.bootstrap, Bootstrap::Embedded);
    let orders = demo.route_for_topic("orders.events").unwrap();
    assert_eq!(orders.chain.iter().map(|s| s.plugin.as_str()).collect::<Vec<_>>(), ["validate", "enrich", "route"]);
    assert_eq!(orders.dlq, "orders.dlq");
    assert_eq!(orders.allow.len(), 5);
}

/// Writes `config` into a deployment directory and runs `sluice check`'s
/// library entry point on it.
fn check_file(deployment: &TempDir, config: &str) -> anyhow::Result<sluice::check::CheckReport> {
    let path = deployment.path().join("sluice.toml");
    std::fs::write(&path, config).unwrap();
    sluice::check::run(&path)
}

const ONE_ROUTE: &str = r#"
[broker]
bootstrap = "embedded"

[[tables]]
name = "customers"
file = "data/customers.csv"
key = "customer_id"

[[routes]]
name = "orders"
inputs = ["orders.events"]
outputs = ["orders.valid"]
allow = ["orders.flagged"]
dlq = "orders.dlq"

[[routes.chain]]
plugin = "validate"
[routes.chain.config]
required = ["eventId"]
"#;

#[test]
fn check_reports_routes_plugins_and_tables() {
    let deployment = deployment();
    let report = check_file(&deployment, ONE_ROUTE).unwrap();
    let text = report.to_string();
    let hash = &report.routes[0].chain[0];
    assert!(hash.starts_with("validate@") && hash.len() == "validate@".len() + 12, "{hash}");
    assert!(text.contains(&format!("  orders.events → {hash} → orders.valid\n")), "{text}");
    assert!(text.contains("  allow: orders.flagged\n"), "{text}");
    assert!(text.contains("  dlq:   orders.dlq\n"), "{text}");
    assert!(text.contains("  retry: 5 attempts, backoff 100ms ×2 up to 10s, jitter 20%\n"), "{text}");
    assert!(text.contains("broker embedded, group \"sluice\""), "{text}");
    assert!(text.ends_with("config OK"), "{text}");
}

#[test]
fn check_catches_a_plugin_that_refuses_its_config() {
    let deployment = deployment();
    let config =
        format!("{ONE_ROUTE}\n[[routes.chain]]\nplugin = \"fx_reject\"\nconfig = {{ refuse = \"needs a reason\" }}\n");
    let error = format!("{:#}", check_file(&deployment, &config).unwrap_err());
    assert!(error.contains("sluice.toml: routes[0].chain[1] (route \"orders\", plugin \"fx_reject\")"), "{error}");
    assert!(error.contains("`init` refused its config: needs a reason"), "{error}");
}

#[test]
fn check_catches_a_plugin_config_the_example_plugin_refuses() {
    let deployment = deployment();
    let config = ONE_ROUTE.replace("required = [\"eventId\"]", "mode = \"dorp\"");
    let error = format!("{:#}", check_file(&deployment, &config).unwrap_err());
    assert!(error.contains("routes[0].chain[0]"), "{error}");
    assert!(error.contains("unknown variant `dorp`"), "{error}");
}

#[test]
fn check_reports_every_failure_at_once() {
    let deployment = deployment();
    std::fs::write(deployment.path().join("data/broken.jsonl"), "{\"id\": 1}\nnot json\n").unwrap();
    std::fs::write(deployment.path().join("plugins/empty.wasm"), b"").unwrap();
    let config = format!(
        "{ONE_ROUTE}\n[[tables]]\nname = \"broken\"\nfile = \"data/broken.jsonl\"\nkey = \"id\"\n\n\
         [[routes.chain]]\nplugin = \"empty\"\n"
    );
    let error = format!("{:#}", check_file(&deployment, &config).unwrap_err());
    assert!(error.contains("sluice.toml: tables[1]: table `broken`"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    assert!(error.contains("routes[0].chain[1] (route \"orders\", plugin \"empty\")"), "{error}");
    assert!(error.contains("not a WebAssembly file: the file is empty"), "{error}");
}

#[test]
fn check_names_the_file_it_could_not_read_or_parse() {
    let deployment = deployment();
    let missing = deployment.path().join("nope.toml");
    let error = sluice::check::run(&missing).unwrap_err().to_string();
    assert!(error.starts_with(&format!("{}: cannot read the config file", missing.display())), "{error}");

    let error = check_file(&deployment, "[broker]\nbootstrap = 9092\n").unwrap_err().to_string();
    assert!(error.contains("sluice.toml:2:13: broker.bootstrap: invalid type: integer `9092`"), "{error}");
}

#[test]
fn a_plugin_dir_option_replaces_plugins_dir() {
    let deployment = deployment();
    let text = std::fs::read_to_string(repo().join("tests/config/good/minimal.toml")).unwrap();
    let options = LoadOptions { plugin_dir: Some(PathBuf::from(sluice::bundled::DIR)) };
    // The scratch directory's own plugins/ is not where it looks.
    std::fs::remove_dir_all(deployment.path().join("plugins")).unwrap();
    let config = Config::from_str_with(&text, "minimal.toml", deployment.path(), &options).unwrap();
    assert_eq!(config.routes[0].chain[0].path, sluice::bundled::path("passthrough"));

    let options = LoadOptions { plugin_dir: Some(deployment.path().join("nowhere")) };
    let errors = Config::from_str_with(&text, "minimal.toml", deployment.path(), &options).unwrap_err();
    assert!(matches!(errors.0[0].problem, Problem::PluginDir { .. }), "{errors}");
}

#[test]
fn config_load_resolves_paths_beside_the_file() {
    let deployment = deployment();
    let path = deployment.path().join("sluice.toml");
    std::fs::write(&path, ONE_ROUTE).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.path, path);
    assert_eq!(config.plugin_dir, deployment.path().join("plugins"));
    assert_eq!(config.tables[0].path, deployment.path().join("data/customers.csv"));
    let tables = config.load_tables().unwrap();
    assert_eq!(tables.get("customers").map(|t| t.len()), Some(3));
}

#[test]
fn the_demo_config_checks_against_the_demo_data() {
    // `sluice demo` runs on the embedded plugins, so it points plugins.dir
    // elsewhere; the tables are the real ones beside the config.
    let options = LoadOptions { plugin_dir: Some(PathBuf::from(sluice::bundled::DIR)) };
    let config = Config::load_with(repo().join("config/demo.toml"), &options).unwrap_or_else(|e| panic!("{e}"));
    let report = sluice::check::verify(&config).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.tables.len(), 3);
    assert!(report.tables.iter().all(|t| t.rows > 0), "{report}");
    assert!(report.to_string().ends_with("config OK"));
}

/// Regression: `check` passed a config whose TLS setting this build cannot
/// honour, and `run` failed later when it created its clients.
#[test]
fn check_refuses_librdkafka_properties_this_build_cannot_honour() {
    let deployment = deployment();
    let config = "[broker]\nbootstrap = \"127.0.0.1:19092\"\n[broker.properties]\n\"security.protocol\" = \"SSL\"\n\
                  [[routes]]\nname = \"r\"\ninputs = [\"a\"]\noutputs = [\"b\"]\ndlq = \"c\"\n[[routes.chain]]\nplugin = \"passthrough\"\n";
    let err = check_file(&deployment, config).unwrap_err().to_string();
    assert!(err.contains("librdkafka refuses them") && err.contains("security.protocol"), "{err}");
}
