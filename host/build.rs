//! Builds the example and fixture plugins in `plugins/` for wasm32-wasip2, so
//! that `sluice demo` can embed the examples and the tests can load fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ lives in the workspace root").to_path_buf();
    for watched in ["plugins", "plugin-sdk/src", "plugin-sdk/Cargo.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=SLUICE_PLUGINS_TARGET_DIR");

    let target_dir = std::env::var_os("SLUICE_PLUGINS_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out; a sibling of
        // <target>/<profile> keeps the nested cargo off the outer one's lock.
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        out.ancestors().nth(4).map_or_else(|| out.join("wasm"), |t| t.join("wasm-plugins"))
    });

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root.join("plugins"))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for var in
        ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"]
    {
        command.env_remove(var);
    }
    let status = command.status().expect("run cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the plugins in {} for wasm32-wasip2 failed (see above). \
             If the target is missing: rustup target add wasm32-wasip2",
            root.join("plugins").display()
        );
    }
    let built = target_dir.join("wasm32-wasip2").join("release");
    check_exists(&built);
    println!("cargo:rustc-env=SLUICE_BUNDLED_PLUGINS={}", built.display());
}

fn check_exists(dir: &Path) {
    if !dir.join("passthrough.wasm").exists() {
        panic!("plugin build succeeded but {} has no passthrough.wasm", dir.display());
    }
}
