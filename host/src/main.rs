//! The `sluice` command line: parses arguments and hands off to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::admin_client;
use sluice::config::{Config, LoadOptions};
use sluice::local::{TableArg, TestOptions};
use sluice::telemetry::{self, LogFormat};

// A closed pipe (`sluice … | head`) must not turn into a panic: what cannot
// be written is dropped, and the exit code still says how the command went.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! out_line {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! err_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Kafka-API stream processing through sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a plugin over records from a JSONL file, with no broker.
    Test {
        /// The plugin component (.wasm), or the name of an embedded example
        /// (passthrough, validate, enrich, route).
        plugin: PathBuf,
        /// Records, one JSON object per line.
        #[arg(long)]
        input: PathBuf,
        /// The plugin's config: a TOML file of its config table's keys.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A lookup table, NAME=FILE or NAME:KEY=FILE (.csv or .jsonl). Repeatable.
        #[arg(long = "table", value_name = "NAME[:KEY]=FILE")]
        tables: Vec<TableArg>,
        /// Compare the output with this golden file; exit 1 with a diff if it differs.
        #[arg(long, value_name = "GOLDEN.jsonl")]
        expect: Option<PathBuf>,
        /// Stop at the first bad input line or failed record.
        #[arg(long)]
        fail_fast: bool,
        /// Print counts per verdict to stderr.
        #[arg(long)]
        summary: bool,
    },
    /// Run the demo: the embedded broker, a slice of the Olist dataset, and the
    /// example chain validate → enrich → route, then a summary.
    Demo {
        /// Use only the first N events of the slice.
        #[arg(long, value_name = "N")]
        events: Option<usize>,
    },
    /// Consume every route's input topics and run the plugin chains.
    Run {
        /// The routing config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Load plugins from this directory instead of the config's plugins.dir
        /// (`bundled`: the example plugins built into this binary).
        #[arg(long, value_name = "DIR")]
        plugins: Option<PathBuf>,
    },
    /// Check a routing config without a broker: syntax, values, tables, and
    /// every plugin loaded and initialised with its config.
    Check {
        /// The routing config (TOML).
        config: PathBuf,
        /// Load plugins from this directory instead of the config's plugins.dir
        /// (`bundled`: the example plugins built into this binary).
        #[arg(long, value_name = "DIR")]
        plugins: Option<PathBuf>,
    },
    /// Load a JSONL (.jsonl/.ndjson) or CSV file into a topic.
    Produce {
        #[arg(long)]
        topic: String,
        /// Field (JSONL) or column (CSV) holding the record key.
        #[arg(long, value_name = "FIELD")]
        key: Option<String>,
        /// Broker address (host:port,...).
        #[arg(long, value_name = "ADDR", required_unless_present = "config", conflicts_with = "config")]
        bootstrap: Option<String>,
        /// Take the broker address and producer properties from a sluice config.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// The file to load.
        file: PathBuf,
    },
    /// Create things.
    New {
        #[command(subcommand)]
        what: NewCommand,
    },
    /// Ask a running `sluice run` about its plugins, or roll one back.
    Plugins {
        #[command(subcommand)]
        what: PluginsCommand,
    },
    /// Ask a running `sluice run` to load, check and apply its config file
    /// again; a refused config leaves the running one serving.
    Reload {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Look into a dead-letter topic, or put its records back.
    Dlq {
        #[command(subcommand)]
        what: DlqCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Count a DLQ's records by error kind, plugin, route and source topic,
    /// up to its end offsets now, and show samples. Commits nothing.
    Inspect {
        /// The DLQ topic.
        topic: String,
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Sample records to show.
        #[arg(long, value_name = "N", default_value_t = 3)]
        samples: usize,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Produce a DLQ's matching records to a topic, without their sluice.dlq.*
    /// headers, at least once; an interrupted replay resumes where it stopped.
    Replay {
        /// The DLQ topic to read.
        #[arg(long, value_name = "DLQ")]
        from: String,
        /// The topic to produce to, usually the route's input.
        #[arg(long, value_name = "TOPIC")]
        to: String,
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// At most N records a second.
        #[arg(long, value_name = "N/s")]
        rate: Option<sluice::dlq_tools::rate::Rate>,
        /// Show what would be replayed; produce and commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// The consumer group that remembers progress (default sluice-replay.FROM.TO,
        /// plus the filter when there is one, e.g. sluice-replay.FROM.TO.kind=trap).
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Stop after replaying N records.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Sample records a dry run shows.
        #[arg(long, value_name = "N", default_value_t = 3)]
        samples: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

/// Which broker, directly or from a sluice config.
#[derive(Debug, clap::Args)]
struct BrokerArgs {
    /// Broker address (host:port,...).
    #[arg(long, value_name = "ADDR", required_unless_present = "config", conflicts_with = "config")]
    bootstrap: Option<String>,
    /// Take the broker address and client properties from a sluice config;
    /// replay then refuses to write to any route's DLQ.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Which DLQ records: values of one key are alternatives, keys must all match.
#[derive(Debug, clap::Args)]
struct FilterArgs {
    /// Error kinds (comma list, repeatable); `unknown` is a record without sluice.dlq.* headers.
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<String>,
    /// Plugins, by name or name@hash (a hash prefix will do).
    #[arg(long = "plugin", value_name = "NAME[@HASH]")]
    plugins: Vec<String>,
    /// Routes.
    #[arg(long = "route", value_name = "ROUTE")]
    routes: Vec<String>,
    /// Topics the records were consumed from before they failed.
    #[arg(long = "source-topic", value_name = "TOPIC")]
    source_topics: Vec<String>,
    /// KEY=VALUE[,VALUE]: kind, plugin, route or source-topic. Repeatable.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pairs: Vec<String>,
}

impl FilterArgs {
    fn build(&self) -> anyhow::Result<sluice::dlq_tools::filter::Filter> {
        let flags: [(&str, &[String]); 4] = [
            ("kind", &self.kinds),
            ("plugin", &self.plugins),
            ("route", &self.routes),
            ("source-topic", &self.source_topics),
        ];
        Ok(sluice::dlq_tools::filter::Filter::build(&flags, &self.pairs)?)
    }
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Each plugin's current and previous version and the routes using it.
    List {
        #[command(flatten)]
        host: HostArgs,
        /// Print the host's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put a plugin's previous version back in service.
    Rollback {
        /// The plugin's name, as in `sluice plugins list`.
        name: String,
        #[command(flatten)]
        host: HostArgs,
    },
}

/// Which running host to ask.
#[derive(Debug, clap::Args)]
struct HostArgs {
    /// The host's admin server. Default: [admin] listen from --config, else 127.0.0.1:9797.
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<String>,
    /// The host's config file; only its [admin] listen is read.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum NewCommand {
    /// Scaffold a plugin crate.
    Plugin {
        /// The plugin's name: lowercase letters, digits, '-' and '_'.
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The plugin-sdk directory to depend on (default: this build's checkout).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Run { .. }) { "info" } else { "warn" };
    telemetry::init(cli.log_format, default_level);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            err_line!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Test { plugin, input, config, tables, expect, fail_fast, summary } => {
            let opts = TestOptions { plugin, input, config, tables, expect, fail_fast, summary };
            let status = sluice::local::run(&opts, &mut std::io::stdout().lock(), &mut std::io::stderr().lock())?;
            Ok(ExitCode::from(status as u8))
        }
        Command::Demo { events } => {
            let report = tokio_runtime()?.block_on(sluice::demo::run(events))?;
            out_line!("{report}");
            Ok(if report.matches() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Run { config, plugins } => {
            let (plugins, _scratch) = plugin_dir(plugins)?;
            let options = LoadOptions { plugin_dir: plugins };
            let config = Config::load_with(&config, &options).map_err(|e| anyhow::anyhow!("{e}"))?;
            let runtime = tokio_runtime()?;
            let result = runtime.block_on(run_pipeline(config, options));
            // A plugin call still running after the grace period cannot be
            // interrupted from outside; do not wait for it to exit.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, plugins } => {
            let (plugin_dir, _scratch) = plugin_dir(plugins)?;
            out_line!("{}", sluice::check::run_with(&config, &LoadOptions { plugin_dir })?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Produce { topic, key, bootstrap, config, quiet, file } => {
            let (bootstrap, properties) = match (bootstrap, config) {
                (Some(bootstrap), _) => (bootstrap, Default::default()),
                (None, Some(path)) => {
                    let connection = sluice::dlq_tools::Connection::from_config(&load_config(&path, None)?, &path)?;
                    (connection.bootstrap, connection.producer)
                }
                (None, None) => anyhow::bail!("give --bootstrap or --config"),
            };
            let opts = sluice::produce::ProduceOptions {
                bootstrap,
                properties,
                topic,
                key_field: key,
                file,
                show_progress: !quiet,
            };
            match tokio_runtime()?.block_on(sluice::produce::run(&opts)) {
                Ok(report) => {
                    out_line!("{report}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    err_line!("error: {e:#}");
                    let code = match e.downcast_ref::<sluice::produce::ProduceError>() {
                        Some(sluice::produce::ProduceError::InvalidInput { .. }) => 3,
                        Some(sluice::produce::ProduceError::Delivery { .. }) => 4,
                        None => 2,
                    };
                    Ok(ExitCode::from(code))
                }
            }
        }
        Command::New { what: NewCommand::Plugin { name, dir, sdk_path } } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let sdk = sdk_path.unwrap_or_else(sluice::scaffold::default_sdk_path);
            sluice::scaffold::create(&name, &dir, &sdk)?;
            out_line!("created plugin `{name}` in {}", dir.display());
            out_line!("next: cd {} && cargo test && cargo build --release --target wasm32-wasip2", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugins { what: PluginsCommand::List { host, json } } => Ok(ask_host(&host, |client| {
            if json { client.plugins_json() } else { Ok(admin_client::plugin_table(&client.plugins()?)) }
        })),
        Command::Plugins { what: PluginsCommand::Rollback { name, host } } => {
            Ok(ask_host(&host, |client| Ok(admin_client::rollback_summary(&client.rollback(&name)?))))
        }
        Command::Reload { host } => Ok(ask_host(&host, |client| Ok(format!("config reloaded: {}", client.reload()?)))),
        Command::Dlq { what } => run_dlq(what),
    }
}

fn run_dlq(command: DlqCommand) -> anyhow::Result<ExitCode> {
    use sluice::dlq_tools::{inspect, replay};
    match command {
        DlqCommand::Inspect { topic, broker, filter, samples, json } => {
            let filter = filter.build()?;
            let (connection, _) = dlq_connection(&broker)?;
            let options = inspect::InspectOptions { connection, topic, filter, samples };
            let inspection = tokio_runtime()?.block_on(inspect::run(&options))?;
            if json {
                out_line!("{}", serde_json::to_string_pretty(&inspection)?);
            } else {
                out!("{inspection}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Replay { from, to, broker, filter, rate, dry_run, group, limit, samples, quiet } => {
            let filter = filter.build()?;
            let (connection, protected) = dlq_connection(&broker)?;
            let options = replay::ReplayOptions {
                connection,
                from,
                to,
                filter,
                rate,
                dry_run,
                group,
                limit,
                samples,
                protected,
                show_progress: !quiet,
            };
            let runtime = tokio_runtime()?;
            let shutdown = tokio_util::sync::CancellationToken::new();
            let result = runtime.block_on(async {
                cancel_on_signal(shutdown.clone());
                replay::run(&options, shutdown).await
            });
            match result {
                Ok(report) => {
                    out_line!("{report}");
                    Ok(ExitCode::from(if report.stop == replay::Stop::Interrupted { 130 } else { 0 }))
                }
                Err(e) => {
                    err_line!("error: {e:#}");
                    let code = match e.downcast_ref::<replay::ReplayError>() {
                        Some(replay::ReplayError::Delivery { .. }) => 4,
                        Some(replay::ReplayError::Refused(_)) | None => 2,
                    };
                    Ok(ExitCode::from(code))
                }
            }
        }
    }
}

/// The broker, and what the config's routes own when a config is given.
fn dlq_connection(
    broker: &BrokerArgs,
) -> anyhow::Result<(sluice::dlq_tools::Connection, sluice::dlq_tools::replay::Protected)> {
    use sluice::dlq_tools::replay;
    match (&broker.bootstrap, &broker.config) {
        (Some(bootstrap), _) => Ok((sluice::dlq_tools::Connection::new(bootstrap), replay::Protected::default())),
        (None, Some(path)) => {
            let config = load_config(path, None)?;
            Ok((sluice::dlq_tools::Connection::from_config(&config, path)?, replay::Protected::of(&config)))
        }
        (None, None) => anyhow::bail!("give --bootstrap or --config"),
    }
}

/// Finds the host, asks it, prints its answer; exit 1 if it refused, 2 if
/// it could not be asked.
fn ask_host(
    host: &HostArgs,
    ask: impl FnOnce(&admin_client::Client) -> Result<String, admin_client::ClientError>,
) -> ExitCode {
    let answer = admin_client::Target::resolve(host.admin.as_deref(), host.config.as_deref())
        .and_then(|target| ask(&admin_client::Client::new(target)));
    match answer {
        Ok(text) => {
            out!("{text}");
            if !text.ends_with('\n') {
                out_line!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            err_line!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// `--plugins`: a directory, or `bundled` for the embedded examples written
/// to a scratch directory that lives as long as the returned guard.
fn plugin_dir(arg: Option<PathBuf>) -> anyhow::Result<(Option<PathBuf>, Option<tempfile::TempDir>)> {
    match arg {
        Some(dir) if dir.as_os_str() == "bundled" && !dir.exists() => {
            let scratch = tempfile::tempdir()?;
            sluice::bundled::write_examples(scratch.path())?;
            Ok((Some(scratch.path().to_path_buf()), Some(scratch)))
        }
        other => Ok((other, None)),
    }
}

fn load_config(path: &std::path::Path, plugins: Option<PathBuf>) -> anyhow::Result<Config> {
    Config::load_with(path, &LoadOptions { plugin_dir: plugins }).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs until SIGINT or SIGTERM, then drains within the grace period.
async fn run_pipeline(config: Config, options: LoadOptions) -> anyhow::Result<()> {
    let (bootstrap, _broker) = sluice::pipeline::connect(&config)?;
    let handle = sluice::pipeline::Handle::new(options);
    cancel_on_signal(handle.shutdown.clone());
    let report = sluice::pipeline::run(config, bootstrap, handle).await?;
    let mut committed: Vec<_> = report.committed.into_iter().collect();
    committed.sort();
    for ((topic, partition), offset) in committed {
        tracing::info!(%topic, partition, offset, "committed");
    }
    Ok(())
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
fn cancel_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        shutdown.cancel();
    });
}
