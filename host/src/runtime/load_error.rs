//! Plugin load failures, in words a plugin author can act on.

use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::{HANDLER_EXPORT, WIT_PACKAGE};

const BUILD_HINT: &str = "build it with `cargo build --release --target wasm32-wasip2` against sluice-sdk";

/// Why a plugin file could not be loaded. Every message starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read the plugin file: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{}: the plugin file is {size} bytes, over the limit of {limit} bytes (max_plugin_file)", path.display())]
    TooLarge { path: PathBuf, size: u64, limit: u64 },
    #[error("{}: not a WebAssembly file: {reason}", path.display())]
    NotWasm { path: PathBuf, reason: String },
    #[error("{}: this is a core WebAssembly module, not a component; {BUILD_HINT}", path.display())]
    CoreModule { path: PathBuf },
    #[error("{}: the file is truncated or corrupt ({size} bytes); was it still being written? ({detail})", path.display())]
    Truncated { path: PathBuf, size: usize, detail: String },
    #[error("{}: not a valid component: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error("{}: built against {found}, but this host implements {WIT_PACKAGE}; rebuild it with a sluice-sdk for 0.1", path.display())]
    WrongVersion { path: PathBuf, found: String },
    #[error("{}: not a sluice plugin: it does not export `{HANDLER_EXPORT}` (it exports: {exports}); {BUILD_HINT}", path.display())]
    WrongWorld { path: PathBuf, exports: String },
    #[error("{}: needs an import sluice does not provide: {detail}", path.display())]
    UnsupportedImport { path: PathBuf, detail: String },
    #[error("{}: `init` refused its config: {message}", path.display())]
    InitRefused { path: PathBuf, message: String },
    #[error("{}: failed while starting: {detail}", path.display())]
    InitFault { path: PathBuf, detail: String },
}

/// Checks the 8-byte preamble, which tells files that are not Wasm at all and
/// core modules apart from components before the compiler gets a say.
pub(super) fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 {
        let reason =
            if bytes.is_empty() { "the file is empty".to_owned() } else { format!("only {} bytes", bytes.len()) };
        return Err(LoadError::NotWasm { path: path.into(), reason });
    }
    if &bytes[..4] != b"\0asm" {
        let shown: String = bytes[..8].iter().map(|b| if b.is_ascii_graphic() { *b as char } else { '.' }).collect();
        return Err(LoadError::NotWasm {
            path: path.into(),
            reason: format!("it starts with {shown:?}, not \"\\0asm\""),
        });
    }
    // Bytes 4..8: version 1 and layer 0 is a core module; layer 1 a component.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule { path: path.into() });
    }
    Ok(())
}

pub(super) fn compile_error(path: &Path, bytes: &[u8], error: &wasmtime::Error) -> LoadError {
    let detail = format!("{error:#}");
    if detail.contains("unexpected end") || detail.contains("section size mismatch") || detail.contains("out of bounds")
    {
        return LoadError::Truncated { path: path.into(), size: bytes.len(), detail };
    }
    LoadError::Invalid { path: path.into(), detail }
}

fn export_names(component: &Component, engine: &Engine) -> Vec<String> {
    component.component_type().exports(engine).map(|(name, _)| name.to_owned()).collect()
}

fn versioned_handler(names: &[String]) -> Option<String> {
    names
        .iter()
        .find(|n| n.starts_with("sluice:plugin/handler@") && n.as_str() != HANDLER_EXPORT)
        .map(|n| n.replace("/handler", ""))
}

pub(super) fn link_error(path: &Path, component: &Component, engine: &Engine, error: &wasmtime::Error) -> LoadError {
    let imports: Vec<String> = component.component_type().imports(engine).map(|(name, _)| name.to_owned()).collect();
    if let Some(found) = imports.iter().find(|n| n.starts_with("sluice:plugin/") && !n.ends_with("@0.1.0")) {
        let found = found.split_once('@').map_or(found.clone(), |(_, v)| format!("sluice:plugin@{v}"));
        return LoadError::WrongVersion { path: path.into(), found };
    }
    if let Some(found) = versioned_handler(&export_names(component, engine)) {
        return LoadError::WrongVersion { path: path.into(), found };
    }
    LoadError::UnsupportedImport { path: path.into(), detail: format!("{error:#}") }
}

pub(super) fn export_error(path: &Path, component: &Component, engine: &Engine, _error: &wasmtime::Error) -> LoadError {
    let names = export_names(component, engine);
    if let Some(found) = versioned_handler(&names) {
        return LoadError::WrongVersion { path: path.into(), found };
    }
    let exports = if names.is_empty() { "nothing".to_owned() } else { names.join(", ") };
    LoadError::WrongWorld { path: path.into(), exports }
}
