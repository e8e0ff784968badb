//! `sluice new plugin`: the scaffold builds for wasm32-wasip2, its unit test
//! passes natively, and `sluice test` runs it.

use std::process::Command;

use crate::support::{run, sluice};

#[test]
fn a_scaffolded_plugin_builds_tests_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("order-filter");
    let (code, stdout, stderr) = run(sluice().args(["new", "plugin", "order-filter", "--dir"]).arg(&dir));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("created plugin `order-filter`"));

    // Its own target dir, shared between runs, keeps this fast after the first time.
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| tmp.path().join("target"), |t| format!("{t}/scaffold").into());
    let cargo = |args: &[&str]| {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(&dir).args(args).env("CARGO_TARGET_DIR", &target);
        for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
            c.env_remove(var);
        }
        run(&mut c)
    };
    let (code, out, err) = cargo(&["test", "--quiet"]);
    assert_eq!(code, 0, "native unit test of the scaffold failed:\n{out}\n{err}");
    assert!(out.contains("1 passed"), "{out}");
    let (code, out, err) = cargo(&["build", "--release", "--target", "wasm32-wasip2", "--quiet"]);
    assert_eq!(code, 0, "wasm build of the scaffold failed:\n{out}\n{err}");

    let wasm = target.join("wasm32-wasip2/release/order_filter.wasm");
    let (code, stdout, stderr) =
        run(sluice().arg("test").arg(&wasm).arg("--input").arg(dir.join("events.jsonl")).arg("--summary"));
    assert_eq!(code, 0, "{stderr}");
    let verdicts: Vec<&str> = stdout
        .lines()
        .map(|l| {
            if l.contains("\"pass\"") {
                "pass"
            } else if l.contains("\"drop\"") {
                "drop"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(verdicts, ["pass", "drop", "other"], "{stdout}");
    assert!(stderr.contains("pass=1 drop=1 emit=0 retry=0 reject=1"), "{stderr}");
}

#[test]
fn bad_names_are_refused() {
    let (code, _, stderr) = run(sluice().args(["new", "plugin", "Bad Name"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("plugin name `Bad Name` must start with a lowercase letter"), "{stderr}");
}
