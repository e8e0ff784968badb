//! The `sluice` command line: parses arguments and hands off to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::local::{TableArg, TestOptions};
use sluice::telemetry::{self, LogFormat};

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
    /// Create things.
    New {
        #[command(subcommand)]
        what: NewCommand,
    },
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
    telemetry::init(cli.log_format, "warn");
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
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
        Command::New { what: NewCommand::Plugin { name, dir, sdk_path } } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let sdk = sdk_path.unwrap_or_else(sluice::scaffold::default_sdk_path);
            sluice::scaffold::create(&name, &dir, &sdk)?;
            println!("created plugin `{name}` in {}", dir.display());
            println!("next: cd {} && cargo test && cargo build --release --target wasm32-wasip2", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
