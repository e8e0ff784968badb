//! Plugins built from `plugins/` along with the host.
//!
//! The examples are embedded so that `sluice demo` needs nothing on disk;
//! `DIR` is where the build left all of them, fixtures included, for tests
//! run from this checkout.

use std::path::PathBuf;

/// Where the build wrote every plugin in `plugins/`.
pub const DIR: &str = env!("SLUICE_BUNDLED_PLUGINS");

/// The path of a plugin built from this checkout, such as `fx_panic`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("{name}.wasm"))
}

/// The example plugins, embedded in the binary: `(name, component bytes)`.
pub const EXAMPLES: &[(&str, &[u8])] = &[
    ("passthrough", include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/passthrough.wasm"))),
    ("validate", include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/validate.wasm"))),
    ("enrich", include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/enrich.wasm"))),
    ("route", include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/route.wasm"))),
];

/// An embedded example plugin by name.
pub fn example(name: &str) -> Option<&'static [u8]> {
    EXAMPLES.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// Writes the embedded examples into `dir` as `NAME.wasm`, the layout a
/// plugin directory has.
pub fn write_examples(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in EXAMPLES {
        std::fs::write(dir.join(format!("{name}.wasm")), bytes)?;
    }
    Ok(())
}
