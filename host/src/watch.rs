//! Watches the plugin directory and the config file, and reports a change
//! once the file has been quiet for the debounce time: a slow in-place write
//! is read when it is whole, and a burst of events (an editor's save, a
//! copy) becomes one reload.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::reload::Change;

/// Keeps the watch alive; dropping it stops watching.
#[derive(Debug)]
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching. `plugin_dir` and `config` are as the config names them;
/// changes are reported with those same paths.
pub fn start(plugin_dir: &Path, config: &Path, quiet: Duration, out: mpsc::Sender<Change>) -> anyhow::Result<Watch> {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let plugins = canonical(plugin_dir)?;
    let config_dir = canonical(config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
    let config_name = config.file_name().map(OsString::from);
    let classify = Classifier {
        plugins: plugins.clone(),
        plugin_dir: plugin_dir.into(),
        config_dir: config_dir.clone(),
        config_name,
    };

    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) if !may_change_content(&event.kind) => {}
        Ok(event) => {
            for path in event.paths {
                if let Some(change) = classify.classify(&path) {
                    let _ = raw_tx.send(change);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watch error"),
    })?;
    watcher
        .watch(&plugins, RecursiveMode::NonRecursive)
        .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", plugins.display()))?;
    if config_dir != plugins {
        watcher
            .watch(&config_dir, RecursiveMode::NonRecursive)
            .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", config_dir.display()))?;
    }
    tokio::spawn(debounce(raw_rx, quiet, out));
    tracing::info!(plugins = %plugin_dir.display(), config = %config.display(), ?quiet, "watching for changes");
    Ok(Watch { _watcher: watcher })
}

fn canonical(path: &Path) -> anyhow::Result<PathBuf> {
    path.canonicalize().map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", path.display()))
}

/// Opening and reading a file (the host's own reloads among them) is not a
/// change; only a write being closed is.
fn may_change_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Which events matter: `.wasm` files directly in the plugin directory
/// (not hidden, so an editor's or a copier's temporary file is ignored until
/// it is renamed into place) and the config file itself.
#[derive(Debug)]
struct Classifier {
    plugins: PathBuf,
    plugin_dir: PathBuf,
    config_dir: PathBuf,
    config_name: Option<OsString>,
}

impl Classifier {
    fn classify(&self, path: &Path) -> Option<Change> {
        let (dir, name) = (path.parent()?, path.file_name()?);
        if dir == self.config_dir && Some(name) == self.config_name.as_deref() {
            return Some(Change::Config);
        }
        let hidden = name.to_string_lossy().starts_with('.');
        if dir == self.plugins && !hidden && path.extension().is_some_and(|e| e == "wasm") {
            return Some(Change::Plugin(self.plugin_dir.join(name)));
        }
        None
    }
}

/// Passes each change on once nothing more has arrived for it for `quiet`.
pub async fn debounce(mut input: mpsc::UnboundedReceiver<Change>, quiet: Duration, out: mpsc::Sender<Change>) {
    let mut due: HashMap<Change, Instant> = HashMap::new();
    loop {
        let next = due.values().min().copied();
        tokio::select! {
            change = input.recv() => match change {
                Some(change) => {
                    due.insert(change, Instant::now() + quiet);
                }
                None => return,
            },
            () = sleep_until(next) => {
                let now = Instant::now();
                // Events that arrived while this task waited to run still
                // count: a write whose events straddle a late wake-up must
                // not become two reloads.
                while let Ok(change) = input.try_recv() {
                    due.insert(change, now + quiet);
                }
                let ready: Vec<Change> = due.iter().filter(|(_, at)| **at <= now).map(|(c, _)| c.clone()).collect();
                for change in ready {
                    due.remove(&change);
                    if out.send(change).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(name: &str) -> Change {
        Change::Plugin(PathBuf::from(name))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_becomes_one_change_after_the_quiet_time() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (out_tx, mut out) = mpsc::channel(8);
        tokio::spawn(debounce(rx, Duration::from_millis(200), out_tx));
        let start = Instant::now();
        // A slow write: an event every 150 ms for 600 ms.
        for _ in 0..5 {
            tx.send(plugin("a.wasm")).unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(out.recv().await, Some(plugin("a.wasm")));
        assert_eq!(start.elapsed(), Duration::from_millis(800), "200ms after the last of the writes");
        assert!(out.try_recv().is_err(), "once");
    }

    #[tokio::test(start_paused = true)]
    async fn files_are_debounced_independently() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (out_tx, mut out) = mpsc::channel(8);
        tokio::spawn(debounce(rx, Duration::from_millis(100), out_tx));
        tx.send(plugin("a.wasm")).unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        tx.send(Change::Config).unwrap();
        assert_eq!(out.recv().await, Some(plugin("a.wasm")));
        assert_eq!(out.recv().await, Some(Change::Config));
    }

    #[test]
    fn reads_are_not_changes_and_closing_a_write_is() {
        assert!(!may_change_content(&EventKind::Access(AccessKind::Open(AccessMode::Read))));
        assert!(!may_change_content(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!may_change_content(&EventKind::Access(AccessKind::Read)));
        assert!(may_change_content(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(may_change_content(&EventKind::Modify(notify::event::ModifyKind::Any)));
        assert!(may_change_content(&EventKind::Create(notify::event::CreateKind::File)));
        assert!(may_change_content(&EventKind::Remove(notify::event::RemoveKind::File)));
    }

    /// On the real file system: the host reading its own files (as every
    /// reload does) must not look like a change, or it reloads forever.
    #[tokio::test]
    async fn reading_a_watched_file_is_not_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (read, written) = (dir.path().join("read.wasm"), dir.path().join("written.wasm"));
        std::fs::write(&read, b"old").unwrap();
        let config = dir.path().join("sluice.toml");
        std::fs::write(&config, "").unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let _watch = start(dir.path(), &config, Duration::from_millis(50), tx).unwrap();
        for _ in 0..3 {
            assert_eq!(std::fs::read(&read).unwrap(), b"old");
            std::fs::read_to_string(&config).unwrap();
        }
        // Events arrive in order: had the reads counted, read.wasm would come first.
        std::fs::write(&written, b"new").unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap();
        assert_eq!(first, Some(Change::Plugin(written)));
    }

    #[test]
    fn only_visible_wasm_files_and_the_config_count() {
        let c = Classifier {
            plugins: "/srv/p".into(),
            plugin_dir: "conf/p".into(),
            config_dir: "/srv".into(),
            config_name: Some("sluice.toml".into()),
        };
        assert_eq!(c.classify(Path::new("/srv/p/enrich.wasm")), Some(plugin("conf/p/enrich.wasm")));
        assert_eq!(c.classify(Path::new("/srv/sluice.toml")), Some(Change::Config));
        assert_eq!(c.classify(Path::new("/srv/p/.enrich.wasm.swp")), None);
        assert_eq!(c.classify(Path::new("/srv/p/.enrich.wasm")), None);
        assert_eq!(c.classify(Path::new("/srv/p/enrich.wasm.tmp")), None);
        assert_eq!(c.classify(Path::new("/srv/p/sub/x.wasm")), None);
        assert_eq!(c.classify(Path::new("/srv/other.toml")), None);
    }
}
