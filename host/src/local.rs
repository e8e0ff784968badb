//! `sluice test`: run one plugin over records from a file, with no broker.

mod input;
mod output;

pub use input::{InputError, parse_line};
pub use output::{render, verdict_name};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::invoke::Invoker;
use crate::record::Record;
use crate::runtime::{Budgets, Runtime};
use crate::tables::{Table, Tables};

/// Records per plugin call; the same order of size as the pipeline uses.
const BATCH: usize = 64;
/// The largest input file `sluice test` reads.
const MAX_INPUT: u64 = 1 << 30;
/// The largest plugin config file.
const MAX_CONFIG: u64 = 16 << 20;

/// How `sluice test` ended, as its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every line ran (and matched `--expect`, when given).
    Ok = 0,
    /// The output differs from the `--expect` file.
    Mismatch = 1,
    /// Some input lines were not records.
    BadInput = 3,
    /// `--fail-fast` stopped at a record that failed.
    Failed = 4,
}

/// A `--table NAME[:KEY]=FILE` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableArg {
    pub name: String,
    /// The key column; `None` means the first column (CSV) or field (JSONL).
    pub key: Option<String>,
    pub path: PathBuf,
}

impl std::str::FromStr for TableArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (lhs, path) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected NAME=FILE or NAME:KEY=FILE"))?;
        let (name, key) = match lhs.split_once(':') {
            Some((name, key)) => (name, Some(key.to_owned())),
            None => (lhs, None),
        };
        if name.is_empty() || path.is_empty() || key.as_deref() == Some("") {
            return Err(format!("`{s}`: expected NAME=FILE or NAME:KEY=FILE, each part non-empty"));
        }
        Ok(TableArg { name: name.to_owned(), key, path: PathBuf::from(path) })
    }
}

/// Everything `sluice test` was asked to do.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub plugin: PathBuf,
    pub input: PathBuf,
    pub config: Option<PathBuf>,
    pub tables: Vec<TableArg>,
    pub expect: Option<PathBuf>,
    pub fail_fast: bool,
    pub summary: bool,
}

/// Runs the plugin over the input. Setup problems (plugin, config, tables,
/// unreadable files) are errors; what happened to the records is the status.
pub fn run(opts: &TestOptions, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Status> {
    let config = match &opts.config {
        Some(path) => plugin_config_file(path)?,
        None => Vec::new(),
    };
    let tables = Arc::new(load_tables(&opts.tables)?);
    let budgets = Budgets::default();
    let runtime = Runtime::new()?;
    let plugin = match opts.plugin.to_str().and_then(crate::bundled::example) {
        // A bare name that is not a file means the embedded example of that name.
        Some(bytes) if !opts.plugin.exists() => runtime.load_bytes(&opts.plugin, bytes, &budgets)?,
        _ => runtime.load(&opts.plugin, &budgets)?,
    };
    let mut invoker = Invoker::new(plugin, config, tables, budgets)?;
    let bytes = crate::files::read_regular(&opts.input, MAX_INPUT)
        .with_context(|| format!("cannot read {}", opts.input.display()))?;

    let mut lines = Vec::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut bad_input = 0u64;
    let mut stopped = false;
    let mut pending: Vec<(usize, Record)> = Vec::new();
    // Lines are split as bytes, so one line that is not UTF-8 is that line's
    // error, not the whole file's.
    let numbered = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.trim_ascii().is_empty());
    for (number, raw) in numbered {
        let parsed = match std::str::from_utf8(raw) {
            Ok(line) => parse_line(line, number),
            Err(e) => Err(InputError { line: number, reason: format!("not UTF-8: {e}") }),
        };
        match parsed {
            Ok(record) => pending.push((number, record)),
            Err(e) => {
                // Earlier records come first in the output, as in the input.
                stopped = run_batch(&mut invoker, &mut pending, &mut lines, &mut counts, opts.fail_fast);
                if stopped {
                    break;
                }
                writeln!(err, "{}: {e}", opts.input.display())?;
                bad_input += 1;
                if opts.fail_fast {
                    stopped = true;
                    break;
                }
                lines.push(serde_json::json!({"line": number, "error": e.reason}).to_string());
            }
        }
        if pending.len() == BATCH {
            stopped = run_batch(&mut invoker, &mut pending, &mut lines, &mut counts, opts.fail_fast);
            if stopped {
                break;
            }
        }
    }
    if !stopped {
        stopped = run_batch(&mut invoker, &mut pending, &mut lines, &mut counts, opts.fail_fast);
    }

    let produced = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    out.write_all(produced.as_bytes())?;
    if opts.summary {
        write_summary(err, &counts, bad_input, &invoker.take_counters())?;
    }
    if let Some(golden) = &opts.expect {
        let expected = std::fs::read_to_string(golden).with_context(|| format!("cannot read {}", golden.display()))?;
        if expected != produced {
            let diff = similar::TextDiff::from_lines(&expected, &produced);
            writeln!(err, "output differs from {} (- expected, + actual):", golden.display())?;
            write!(err, "{}", diff.unified_diff().context_radius(1).header("expected", "actual"))?;
            return Ok(Status::Mismatch);
        }
    }
    Ok(if bad_input > 0 && !stopped {
        Status::BadInput
    } else if stopped {
        if bad_input > 0 { Status::BadInput } else { Status::Failed }
    } else {
        Status::Ok
    })
}

/// Runs the pending records; true when `fail_fast` should stop the run.
fn run_batch(
    invoker: &mut Invoker,
    pending: &mut Vec<(usize, Record)>,
    lines: &mut Vec<String>,
    counts: &mut BTreeMap<&'static str, u64>,
    fail_fast: bool,
) -> bool {
    let records: Vec<Record> = pending.iter().map(|(_, r)| r.clone()).collect();
    let answers = invoker.run(&records);
    for ((number, record), answer) in pending.drain(..).zip(&answers) {
        let name = verdict_name(answer);
        *counts.entry(name).or_default() += 1;
        lines.push(render(number, record.offset, answer).to_string());
        if fail_fast && matches!(name, "retry" | "reject" | "fault") {
            return true;
        }
    }
    false
}

fn write_summary(
    err: &mut dyn Write,
    counts: &BTreeMap<&'static str, u64>,
    bad_input: u64,
    plugin_counters: &BTreeMap<String, u64>,
) -> std::io::Result<()> {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = ["pass", "drop", "emit", "retry", "reject", "fault"]
        .iter()
        .map(|k| format!("{k}={}", counts.get(k).copied().unwrap_or(0)))
        .collect();
    writeln!(err, "summary: {total} records: {} input-errors={bad_input}", parts.join(" "))?;
    if !plugin_counters.is_empty() {
        let parts: Vec<String> = plugin_counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(err, "plugin counters: {}", parts.join(" "))?;
    }
    Ok(())
}

/// Reads a plugin's config from a TOML file whose top-level keys are the
/// plugin's config table, as `(key, JSON text)` pairs.
pub fn plugin_config_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let bytes = crate::files::read_regular(path, MAX_CONFIG)
        .with_context(|| format!("cannot read plugin config {}", path.display()))?;
    let text = String::from_utf8(bytes).with_context(|| format!("plugin config {} is not UTF-8", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(crate::plugin_config::entries(&table))
}

fn load_tables(args: &[TableArg]) -> anyhow::Result<Tables> {
    let mut tables = Tables::default();
    for arg in args {
        let key = match &arg.key {
            Some(key) => key.clone(),
            None => first_column(&arg.path)?,
        };
        tables.insert(arg.name.clone(), Table::load(&arg.name, &arg.path, &key)?);
    }
    Ok(tables)
}

fn first_column(path: &Path) -> anyhow::Result<String> {
    crate::files::check_regular(path).with_context(|| format!("cannot read table {}", path.display()))?;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read table {}", path.display()))?;
    let mut first = String::new();
    // Only the header line is needed; a 1 MiB cap keeps a line-less file from being read whole.
    std::io::BufRead::read_line(&mut std::io::BufReader::new(std::io::Read::take(file, 1 << 20)), &mut first)
        .with_context(|| format!("cannot read table {}", path.display()))?;
    let first = first.trim_end();
    if path.extension().is_some_and(|e| e == "csv") {
        let column = first.split(',').next().unwrap_or_default().trim_matches('"');
        if column.is_empty() {
            bail!("{}: the CSV has no header row to take the key column from", path.display());
        }
        return Ok(column.to_owned());
    }
    let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(first)
        .with_context(|| format!("{}: line 1 is not a JSON object; give the key as NAME:KEY=FILE", path.display()))?;
    row.keys().next().cloned().with_context(|| format!("{}: line 1 has no fields to key on", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_args_parse() {
        let t: TableArg = "customers:customer_id=data/c.csv".parse().unwrap();
        assert_eq!((t.name.as_str(), t.key.as_deref()), ("customers", Some("customer_id")));
        let t: TableArg = "cats=c.csv".parse().unwrap();
        assert_eq!(t.key, None);
        assert!("nofile".parse::<TableArg>().unwrap_err().contains("NAME=FILE"));
        assert!("a:=f".parse::<TableArg>().is_err());
    }
}
