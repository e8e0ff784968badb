//! `sluice new plugin NAME`: a plugin crate that builds for wasm32-wasip2,
//! unit-tests natively, and runs under `sluice test` out of the box.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Where the SDK of this checkout lives; the default `sluice-sdk` path.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("plugin-sdk")
}

/// Checks that `name` can be a crate and a plugin file name.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let valid_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if name.is_empty() || !valid_chars || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("plugin name `{name}` must start with a lowercase letter and use only a-z, 0-9, '-' and '_'");
    }
    // Names whose crate or handler type would clash with Rust or the SDK
    // prelude, so that the scaffold would not compile.
    let ident = name.replace('-', "_");
    if RESERVED.contains(&ident.as_str()) || PRELUDE_TYPES.contains(&type_name(name).as_str()) {
        bail!("plugin name `{name}` clashes with a Rust or sluice-sdk name; choose another, such as `{name}-plugin`");
    }
    Ok(())
}

const RESERVED: &[&str] =
    &["self", "super", "crate", "std", "core", "alloc", "test", "proc_macro", "sluice_sdk", "sluice", "wit_bindgen"];
const PRELUDE_TYPES: &[&str] =
    &["Config", "Event", "Failure", "Handler", "Header", "Headers", "Output", "Verdict", "Self", "Option", "Result"];

/// The handler type's name: `order-filter` → `OrderFilter`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Writes the crate into `dir` (which must not exist yet).
pub fn create(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<()> {
    validate_name(name)?;
    if dir.exists() {
        bail!("{} already exists; choose another name or --dir", dir.display());
    }
    let sdk = sdk.canonicalize().with_context(|| {
        format!("cannot find sluice-sdk at {}; pass --sdk-path to the plugin-sdk directory", sdk.display())
    })?;
    if !sdk.join("Cargo.toml").exists() {
        bail!("{} has no Cargo.toml; pass --sdk-path to the plugin-sdk directory", sdk.display());
    }
    let ident = name.replace('-', "_");
    let type_name = type_name(name);
    let files = [
        ("Cargo.toml", CARGO_TOML.replace("{name}", name).replace("{sdk}", &sdk.display().to_string())),
        ("rust-toolchain.toml", TOOLCHAIN.to_owned()),
        (".gitignore", "/target\n".to_owned()),
        ("src/lib.rs", LIB_RS.replace("{Type}", &type_name)),
        ("events.jsonl", EVENTS.to_owned()),
        ("README.md", README.replace("{name}", name).replace("{ident}", &ident)),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A cdylib for the wasm32-wasip2 component; an rlib so `cargo test` runs natively.
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
sluice-sdk = { path = "{sdk}" }

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"

# A workspace of its own, so that it builds wherever it is created.
[workspace]
"#;

const TOOLCHAIN: &str = r#"[toolchain]
channel = "1.95.0"
targets = ["wasm32-wasip2"]
profile = "minimal"
"#;

const LIB_RS: &str = r#"//! A sluice plugin. Edit `handle`; see the sluice README's plugin author guide.

use sluice_sdk::prelude::*;

pub struct {Type};

impl Handler for {Type} {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok({Type})
    }

    fn handle(&mut self, event: &Event<'_>) -> Result<Verdict, Failure> {
        let body: sluice_sdk::serde_json::Value = event.json()?;
        match body.get("eventType").and_then(|t| t.as_str()) {
            Some(_) => Ok(Verdict::Pass),
            None => Ok(Verdict::drop("no eventType")),
        }
    }
}

sluice_sdk::export!({Type});

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::serde_json::json;
    use sluice_sdk::testing::{Harness, TestEvent};

    #[test]
    fn passes_typed_events_and_drops_the_rest() {
        let mut plugin = Harness::<{Type}>::new(Config::default()).unwrap();
        let typed = TestEvent::json(json!({"eventType": "OrderPlaced"}));
        assert_eq!(plugin.handle(&typed), Ok(Verdict::Pass));
        let untyped = TestEvent::json(json!({"id": 1}));
        assert_eq!(plugin.handle(&untyped), Ok(Verdict::drop("no eventType")));
        assert!(matches!(plugin.handle(&TestEvent::bytes("not json")), Err(Failure::Reject(_))));
    }
}
"#;

const EVENTS: &str = r#"{"key": "order-1", "value": {"eventId": "e1", "eventType": "OrderPlaced", "version": 1}}
{"key": "order-2", "value": {"eventId": "e2"}}
{"key": "order-3", "value": "not json"}
"#;

const README: &str = r#"# {name}

A sluice plugin.

    cargo test                                            # unit tests, native
    cargo build --release --target wasm32-wasip2          # the plugin
    sluice test target/wasm32-wasip2/release/{ident}.wasm --input events.jsonl --summary

Drop `{ident}.wasm` into the host's plugin directory and name `{ident}` in a route.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("my-filter_2").is_ok());
        // The last ones would generate a crate that does not compile.
        for bad in ["", "My", "9lives", "a b", "x/y", "é", "handler", "config", "event", "self", "std", "sluice-sdk"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = create("demo", dir.path(), &default_sdk_path()).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
    }

    #[test]
    fn writes_a_crate_with_a_type_from_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("order-filter");
        create("order-filter", &target, &default_sdk_path()).unwrap();
        let lib = std::fs::read_to_string(target.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct OrderFilter;"));
        assert!(lib.contains("sluice_sdk::export!(OrderFilter);"));
        let manifest = std::fs::read_to_string(target.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"order-filter\""));
    }
}
