//! Golden tests for `sluice test`: each folder in `tests/golden/` holds a
//! plugin's config, input records from the shared datasets, and the expected
//! output. The plugin is the folder name up to its first `-`.
//! `BLESS=1 cargo test golden` rewrites the expectations.

use std::path::{Path, PathBuf};

use sluice::local::{Status, TableArg, TestOptions};

use crate::support::{plugin, repo, run, sluice};

fn golden_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/golden"))
        .expect("tests/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("input.jsonl").exists())
        .collect();
    dirs.sort();
    dirs
}

/// `tables.txt` lines are `NAME=PATH:KEY`, paths relative to the repo root.
fn tables(dir: &Path) -> Vec<TableArg> {
    let Ok(text) = std::fs::read_to_string(dir.join("tables.txt")) else { return Vec::new() };
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (name, rest) = line.split_once('=').expect("NAME=PATH:KEY");
            let (path, key) = rest.rsplit_once(':').expect("NAME=PATH:KEY");
            TableArg { name: name.trim().into(), key: Some(key.trim().into()), path: repo().join(path.trim()) }
        })
        .collect()
}

fn options(dir: &Path, expect: Option<PathBuf>) -> TestOptions {
    let name = dir.file_name().unwrap().to_string_lossy();
    let plugin_name = name.split('-').next().unwrap();
    TestOptions {
        plugin: plugin(plugin_name),
        input: dir.join("input.jsonl"),
        config: Some(dir.join("config.toml")).filter(|p| p.exists()),
        tables: tables(dir),
        expect,
        fail_fast: false,
        summary: false,
    }
}

#[test]
fn every_example_plugin_matches_its_golden_output() {
    let dirs = golden_dirs();
    assert!(dirs.len() >= 4, "expected goldens for validate, validate-sensors, enrich and route: {dirs:?}");
    let bless = std::env::var_os("BLESS").is_some();
    for dir in dirs {
        let expected = dir.join("expected.jsonl");
        let mut out = Vec::new();
        let mut err = Vec::new();
        let opts = options(&dir, if bless { None } else { Some(expected.clone()) });
        let status =
            sluice::local::run(&opts, &mut out, &mut err).unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()));
        if bless {
            std::fs::write(&expected, &out).unwrap();
            continue;
        }
        assert_eq!(status, Status::Ok, "{}:\n{}", dir.display(), String::from_utf8_lossy(&err));
        // Guard against an empty golden passing trivially.
        let lines = out.iter().filter(|b| **b == b'\n').count();
        assert!(lines >= 10, "{}: only {lines} output lines", dir.display());
    }
}

#[test]
fn expect_catches_a_changed_line_and_shows_a_diff() {
    let dir = repo().join("tests/golden/validate");
    let expected = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
    let changed = expected.replacen("\"verdict\":\"pass\"", "\"verdict\":\"drop\"", 1);
    assert_ne!(changed, expected, "the golden has a pass to change");
    let tmp = tempfile::tempdir().unwrap();
    let golden = tmp.path().join("golden.jsonl");
    std::fs::write(&golden, changed).unwrap();
    let (code, _, stderr) = run(sluice()
        .args(["test"])
        .arg(plugin("validate"))
        .arg("--input")
        .arg(dir.join("input.jsonl"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--expect")
        .arg(&golden));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("output differs from"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with('-') && l.contains("\"verdict\":\"drop\"")), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with('+') && l.contains("\"verdict\":\"pass\"")), "{stderr}");
}

fn write_input(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("in.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_input_lines_are_named_and_the_rest_still_run() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "{\"value\": 1}\n\n{\"value\": 2, \"partiton\": 1}\n{\"value\": 3}\n");
    let (code, stdout, stderr) =
        run(sluice().arg("test").arg(plugin("passthrough")).arg("--input").arg(&input).arg("--summary"));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("in.jsonl: line 3: unknown field `partiton`"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].contains("\"line\":1") && lines[0].contains("\"verdict\":\"pass\""));
    assert!(lines[1].contains("\"line\":3") && lines[1].contains("\"error\""));
    assert!(lines[2].contains("\"line\":4"));
    assert!(
        stderr.contains("summary: 2 records: pass=2 drop=0 emit=0 retry=0 reject=0 fault=0 input-errors=1"),
        "{stderr}"
    );
}

#[test]
fn fail_fast_stops_at_the_first_failing_record() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "{\"value\": \"a\"}\n{\"value\": \"boom\"}\n{\"value\": \"c\"}\n");
    let config = tmp.path().join("p.toml");
    std::fs::write(&config, "trigger = \"boom\"\n").unwrap();
    let (code, stdout, stderr) = run(sluice()
        .arg("test")
        .arg(plugin("fx_panic"))
        .arg("--input")
        .arg(&input)
        .arg("--config")
        .arg(&config)
        .arg("--fail-fast"));
    assert_eq!(code, 4, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[1].contains("\"verdict\":\"fault\"") && lines[1].contains("boom at offset 1"), "{stdout}");
}

#[test]
fn a_bad_plugin_file_is_a_clear_cli_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "{\"value\": 1}\n");
    let bad = tmp.path().join("half.wasm");
    let bytes = std::fs::read(plugin("passthrough")).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let (code, stdout, stderr) = run(sluice().arg("test").arg(&bad).arg("--input").arg(&input));
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with("error: ") && stderr.contains("half.wasm: the file is truncated or corrupt"),
        "{stderr}"
    );
}

#[test]
fn a_refused_config_is_a_clear_cli_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "{\"value\": 1}\n");
    let config = tmp.path().join("p.toml");
    std::fs::write(&config, "refuse = \"need a reason\"\n").unwrap();
    let (code, _, stderr) =
        run(sluice().arg("test").arg(plugin("fx_reject")).arg("--input").arg(&input).arg("--config").arg(&config));
    assert_eq!(code, 2);
    assert!(stderr.contains("`init` refused its config: need a reason"), "{stderr}");
}

#[test]
fn a_bad_table_argument_is_a_usage_error() {
    let (code, _, stderr) = run(sluice().args(["test", "x.wasm", "--input", "in.jsonl", "--table", "no-equals-sign"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("expected NAME=FILE or NAME:KEY=FILE"), "{stderr}");
}

/// Regression: `/dev/zero` as any input grew memory without bound, and a
/// FIFO hung; every file argument now must be a regular file.
#[test]
fn device_files_are_refused_not_read_forever() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), "{\"value\": 1}\n");
    let cases: [(&[&str], &str); 4] = [
        (&["test", "/dev/zero", "--input"], "/dev/zero"),
        (&["test", "passthrough", "--input", "/dev/zero"], "/dev/zero"),
        (&["test", "passthrough", "--config", "/dev/zero", "--input"], "/dev/zero"),
        (&["test", "passthrough", "--table", "t=/dev/zero", "--input"], "/dev/zero"),
    ];
    for (args, named) in cases {
        let mut command = sluice();
        command.args(args);
        if args.last() == Some(&"--input") {
            command.arg(&input);
        }
        let (code, _, stderr) = run(&mut command);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(named) && stderr.contains("not a regular file"), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = run(sluice().args(["check", "/dev/zero"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

/// Regression: one line that is not UTF-8 failed the whole input file.
#[test]
fn a_line_that_is_not_utf8_is_that_lines_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, b"{\"value\": \"good\"}\n{\"value\": \"\xff\"}\n{\"value\": \"also good\"}\n").unwrap();
    let (code, stdout, stderr) = run(sluice().arg("test").arg("passthrough").arg("--input").arg(&input));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("line 2: not UTF-8"), "{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.contains("\"verdict\":\"pass\"")).count(), 2, "{stdout}");
}
