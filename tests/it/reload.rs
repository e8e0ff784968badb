//! Hot reload on Apache Kafka: plugin files swapped, refused and rolled back,
//! and the routing config edited, all while records flow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Headers, Message};
use sluice::config::{Config, LoadOptions};
use sluice::control::{Request, Shared, Snapshot};
use sluice::pipeline::{self, Handle, RunReport};
use tokio::task::JoinHandle;

use crate::broker::{bootstrap, create_topics, produce, read_all, unique};
use crate::support::{plugin, run, sluice};

/// A host run from a config file in a scratch directory, with its plugins
/// in `<dir>/plugins`, watching both.
struct Host {
    dir: tempfile::TempDir,
    handle: Handle,
    task: JoinHandle<anyhow::Result<RunReport>>,
}

impl Host {
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sluice.toml")
    }

    fn plugin_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("plugins").join(format!("{name}.wasm"))
    }

    fn control(&self) -> Arc<Shared> {
        self.handle.control.get().expect("the pipeline has started").clone()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.control().snapshot()
    }

    fn current(&self, plugin: &str) -> String {
        let snapshot = self.snapshot();
        snapshot.plugins.iter().find(|p| p.name == plugin).map(|p| p.current.hash.clone()).unwrap_or_default()
    }

    async fn until(&self, what: &str, mut done: impl FnMut(&Host) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(!self.task.is_finished(), "the pipeline stopped early");
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last reloads: {:#?}",
                self.snapshot().reloads
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn until_completed(&self, n: u64) {
        self.until(&format!("{n} completed (have {})", self.handle.stats.completed()), |h| {
            h.handle.stats.completed() >= n
        })
        .await;
    }

    async fn until_reloads(&self, what: &str, ok: bool, n: u64) {
        self.until(&format!("{n} {what} reloads ok={ok}"), |h| h.handle.stats.reloads(what, ok) >= n).await;
    }

    async fn stop(self) -> RunReport {
        self.handle.shutdown.cancel();
        self.task.await.expect("pipeline task").expect("pipeline run")
    }
}

fn config_text(group: &str, routes: &str) -> String {
    config_with(group, "[reload]\ndebounce = \"50ms\"\n", routes)
}

/// A config with `extra` tables before the routes.
fn config_with(group: &str, extra: &str, routes: &str) -> String {
    format!(
        "[broker]\nbootstrap = \"{}\"\ngroup = \"{group}\"\n[broker.consumer]\n\"session.timeout.ms\" = 6000\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[delivery]\nshutdown_grace = \"10s\"\n{extra}\n{routes}",
        bootstrap()
    )
}

fn route(name: &str, input: &str, output: &str, dlq: &str, steps: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n{steps}\n"
    )
}

fn step(plugin: &str, config: &str) -> String {
    format!("[[routes.chain]]\nplugin = \"{plugin}\"\nconfig = {{ {config} }}\n")
}

/// Starts a host on `config` with `plugins` (name → bytes) in its plugin dir.
fn start(config: &str, plugins: &[(&str, &[u8])]) -> Host {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    for (name, bytes) in plugins {
        std::fs::write(dir.path().join("plugins").join(format!("{name}.wasm")), bytes).unwrap();
    }
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, config).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let handle = Handle::new(LoadOptions::default());
    let task = tokio::spawn(pipeline::run(config, bootstrap().to_owned(), handle.clone()));
    Host { dir, handle, task }
}

/// `bytes` with a custom section appended: the same plugin, another version.
fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"sluice-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend(payload);
    out
}

/// Writes beside the target under a hidden name, then renames it into place.
fn replace_atomically(target: &Path, bytes: &[u8]) {
    let tmp = target.with_file_name(format!(".{}.tmp", target.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

fn bytes_of(name: &str) -> Vec<u8> {
    std::fs::read(plugin(name)).unwrap()
}

fn numbered(from: usize, to: usize) -> Vec<(Option<String>, String)> {
    (from..to).map(|i| (Some(format!("k{}", i % 64)), format!("{{\"n\":{i}}}"))).collect()
}

/// An output as read back: its `n`, its lineage stamps and where its input was.
struct Stamped {
    n: i64,
    chains: Vec<String>,
    input_partition: i32,
    input_offset: i64,
}

fn read_stamped(topic: &str) -> Vec<Stamped> {
    sluice::kafka::read_all(bootstrap(), topic, Duration::from_secs(30))
        .unwrap()
        .iter()
        .map(|m| {
            let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let headers = m.headers().unwrap();
            let header = |name: &str| -> Vec<String> {
                headers
                    .iter()
                    .filter(|h| h.key == name)
                    .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                    .collect()
            };
            // Inputs without an eventId are correlated by their coordinates: topic/partition@offset.
            let correlation = header("correlation-id").pop().unwrap();
            let (_, at) = correlation.rsplit_once('/').unwrap();
            let (partition, offset) = at.split_once('@').unwrap();
            Stamped {
                n: value["n"].as_i64().unwrap(),
                chains: header(sluice::chain::LINEAGE),
                input_partition: partition.parse().unwrap(),
                input_offset: offset.parse().unwrap(),
            }
        })
        .collect()
}

fn hash(bytes: &[u8]) -> String {
    sluice::runtime::hash_of(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_swapped_under_50k_events_loses_nothing_and_switches_once_per_partition() {
    let (input, output, dlq) = (unique("swap.in"), unique("swap.out"), unique("swap.dlq"));
    create_topics(&[(&input, 4), (&output, 4), (&dlq, 1)]).await;
    let old = bytes_of("passthrough");
    let new = variant(&old, "v2");
    let (old_v, new_v) = (format!("stamp@{}", hash(&old)), format!("stamp@{}", hash(&new)));

    produce(&input, &numbered(0, 25_000)).await;
    let host = start(
        &config_text(&unique("swap"), &route("swap", &input, &output, &dlq, &step("stamp", ""))),
        &[("stamp", &old)],
    );
    host.until_completed(5_000).await;
    replace_atomically(&host.plugin_path("stamp"), &new);
    host.until_reloads("plugin", true, 1).await;
    // In flight at the swap: whatever of the first 25,000 was not yet done.
    let done_at_swap = host.handle.stats.completed();
    produce(&input, &numbered(25_000, 50_000)).await;
    host.until_completed(50_000).await;
    let snapshot = host.snapshot();
    host.stop().await;

    assert!(done_at_swap < 50_000);
    let outputs = read_stamped(&output);
    let seen: BTreeSet<i64> = outputs.iter().map(|o| o.n).collect();
    assert_eq!(outputs.len(), 50_000, "no duplicates");
    assert_eq!(seen, (0..50_000).collect(), "nothing lost");
    assert!(read_all(&dlq).is_empty());

    let mut by_partition: BTreeMap<i32, Vec<(i64, &str)>> = BTreeMap::new();
    for o in &outputs {
        assert_eq!(o.chains.len(), 1, "output {} carries exactly one version stamp: {:?}", o.n, o.chains);
        let chain = o.chains[0].as_str();
        assert!(chain == old_v || chain == new_v, "unknown version {chain}");
        if o.n >= 25_000 {
            assert_eq!(chain, new_v, "records produced after the swap run on the new version");
        }
        by_partition.entry(o.input_partition).or_default().push((o.input_offset, chain));
    }
    assert!(outputs.iter().any(|o| o.chains[0] == old_v), "the old version served before the swap");
    for (partition, mut stamps) in by_partition {
        stamps.sort_unstable();
        let first_new = stamps.iter().position(|(_, c)| *c == new_v).unwrap();
        assert!(
            stamps[first_new..].iter().all(|(_, c)| *c == new_v),
            "partition {partition} went back to the old version after switching"
        );
    }
    let plugin = snapshot.plugins.iter().find(|p| p.name == "stamp").unwrap();
    assert_eq!(plugin.current.version, new_v);
    assert_eq!(plugin.previous.as_ref().unwrap().version, old_v);
    assert_eq!(snapshot.routes[0].chain, [new_v]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugin_files_are_refused_deletion_is_survived_and_rollback_restores() {
    let (input, output, dlq) = (unique("bad.in"), unique("bad.out"), unique("bad.dlq"));
    create_topics(&[(&input, 2), (&output, 2), (&dlq, 1)]).await;
    let v1 = bytes_of("passthrough");
    let v2 = variant(&v1, "v2");
    // fx_reject refuses its config whenever `refuse` is set; passthrough ignores it.
    let steps = step("stamp", "refuse = \"no new versions today\"");
    let host = start(&config_text(&unique("bad"), &route("bad", &input, &output, &dlq, &steps)), &[("stamp", &v1)]);
    let target = host.plugin_path("stamp");
    let mut sent = 0;
    let traffic = async |host: &Host, sent: &mut usize| {
        produce(&input, &numbered(*sent, *sent + 20)).await;
        *sent += 20;
        host.until_completed(*sent as u64).await;
    };
    traffic(&host, &mut sent).await;

    let bad: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", v2[..v2.len() / 2].to_vec(), "truncated"),
        ("not wasm", b"#!/bin/sh\necho hi\n".to_vec(), "not a WebAssembly"),
        ("wrong world", bytes_of("fx_wrong_world"), "export"),
        ("init refuses", bytes_of("fx_reject"), "no new versions today"),
    ];
    for (i, (what, bytes, expect)) in bad.iter().enumerate() {
        replace_atomically(&target, bytes);
        host.until_reloads("plugin", false, i as u64 + 1).await;
        let last = host.snapshot().reloads.last().cloned().unwrap();
        assert!(!last.ok && last.message.contains(expect), "{what}: {last:?}");
        assert_eq!(host.current("stamp"), hash(&v1), "{what}: the old version keeps serving");
        traffic(&host, &mut sent).await;
    }

    // Deleting the file leaves the loaded version serving.
    std::fs::remove_file(&target).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    traffic(&host, &mut sent).await;
    assert_eq!(host.current("stamp"), hash(&v1));

    // A slow in-place write: read half-written (refused), then whole (applied).
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&target).unwrap();
        file.write_all(&v2[..v2.len() / 3]).unwrap();
        file.flush().unwrap();
        host.until_reloads("plugin", false, 5).await;
        assert_eq!(host.current("stamp"), hash(&v1));
        file.write_all(&v2[v2.len() / 3..]).unwrap();
        file.flush().unwrap();
    }
    host.until_reloads("plugin", true, 1).await;
    assert_eq!(host.current("stamp"), hash(&v2));
    traffic(&host, &mut sent).await;

    // `sluice plugins rollback`, talking to the running host, restores v1;
    // rewriting the rolled-back file does not undo it.
    let admin = host.handle.admin.get().expect("the admin server listens").to_string();
    let cli = |args: &'static [&'static str]| {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || run(sluice().args(args).args(["--admin", &admin])))
    };
    let (code, out, err) = cli(&["plugins", "list"]).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let (old_v, new_v) = (format!("stamp@{}", hash(&v1)), format!("stamp@{}", hash(&v2)));
    let row = out.lines().find(|l| l.starts_with("stamp ")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains(&new_v) && row.contains(&old_v) && row.ends_with(" bad"), "{row}");
    let (code, out, err) = cli(&["plugins", "rollback", "stamp"]).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("stamp: now serving {old_v} ")), "{out}");
    assert!(out.contains(&format!("previous: {new_v} ")), "{out}");
    assert_eq!(host.current("stamp"), hash(&v1));
    let info = host.snapshot().plugins.iter().find(|p| p.name == "stamp").cloned().unwrap();
    assert_eq!(info.previous.unwrap().hash, hash(&v2));
    traffic(&host, &mut sent).await;
    replace_atomically(&target, &v2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(host.current("stamp"), hash(&v1), "a rollback holds until different bytes land");
    let unknown = host.control().ask(|reply| Request::Rollback { plugin: "nope".into(), reply }).await.unwrap_err();
    assert!(unknown.contains("no plugin named \"nope\""), "{unknown}");
    let (code, _, err) = cli(&["plugins", "rollback", "nope"]).await.unwrap();
    assert_eq!((code, err.trim_end()), (1, format!("error: {unknown}").as_str()));
    traffic(&host, &mut sent).await;
    host.stop().await;

    let outputs = read_stamped(&output);
    assert_eq!(outputs.len(), sent, "every record delivered once, through every refusal");
    let stamps: BTreeMap<i64, String> = outputs.iter().map(|o| (o.n, o.chains[0].clone())).collect();
    let batch_of = |i: usize| (i * 20) as i64;
    // Batches 0-5 ran on v1 (start, 4 refusals, deletion), 6 on v2, 7 and 8 on v1 after the rollback.
    for (batch, version) in [(0, &v1), (5, &v1), (6, &v2), (7, &v1), (8, &v1)] {
        assert_eq!(stamps[&batch_of(batch)], format!("stamp@{}", hash(version)), "batch {batch}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_under_traffic_apply_without_restarting_other_routes() {
    let t = |s: &str| unique(&format!("cfg.{s}"));
    let (in_a, out_a, in_b, out_b, out_b2, in_c, out_c, dlq) =
        (t("in-a"), t("out-a"), t("in-b"), t("out-b"), t("out-b2"), t("in-c"), t("out-c"), t("dlq"));
    create_topics(&[
        (&in_a, 1),
        (&out_a, 1),
        (&in_b, 1),
        (&out_b, 1),
        (&out_b2, 1),
        (&in_c, 1),
        (&out_c, 1),
        (&dlq, 1),
    ])
    .await;
    let group = unique("cfg");
    let pass = step("passthrough", "");
    let a = route("a", &in_a, &out_a, &dlq, &pass);
    let b = route("b", &in_b, &out_b, &dlq, &pass);
    let host = start(&config_text(&group, &format!("{a}{b}")), &[("passthrough", &bytes_of("passthrough"))]);
    let config = host.config_path();

    produce(&in_a, &numbered(0, 1000)).await;
    produce(&in_b, &numbered(0, 1000)).await;
    host.until_completed(1000).await;

    // Route b changes its output and retry policy, route c appears, a is untouched.
    let b2 = route("b", &in_b, &out_b2, &dlq, &pass).replace("dlq =", "retry = { max_attempts = 2 }\ndlq =");
    let c = route("c", &in_c, &out_c, &dlq, &pass);
    std::fs::write(&config, config_text(&group, &format!("{a}{b2}{c}"))).unwrap();
    host.until_reloads("config", true, 1).await;
    let summary = host.snapshot().reloads.last().unwrap().message.clone();
    assert_eq!(summary, "routes added: [c], changed: [b], removed: [], unchanged: 1");
    produce(&in_a, &numbered(1000, 2000)).await;
    produce(&in_b, &numbered(1000, 2000)).await;
    produce(&in_c, &numbered(0, 500)).await;
    host.until_completed(4500).await;

    // An invalid config, and one that needs a restart, are refused; traffic goes on.
    std::fs::write(&config, config_text(&group, &format!("{a}{b2}{c}")).replace("outputs = [", "outputs = [["))
        .unwrap();
    host.until_reloads("config", false, 1).await;
    let refused = host.snapshot().reloads.last().unwrap().message.clone();
    assert!(refused.contains("sluice.toml:"), "{refused}");
    std::fs::write(&config, config_text(&format!("{group}-other"), &format!("{a}{b2}{c}"))).unwrap();
    host.until_reloads("config", false, 2).await;
    let refused = host.snapshot().reloads.last().unwrap().message.clone();
    assert!(refused.starts_with("broker.group changed, which takes a restart"), "{refused}");
    produce(&in_a, &numbered(2000, 2100)).await;
    host.until_completed(4600).await;

    // Removing route c stops its consumption; a and b go on.
    std::fs::write(&config, config_text(&group, &format!("{a}{b2}"))).unwrap();
    host.until_reloads("config", true, 2).await;
    assert_eq!(host.snapshot().routes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    produce(&in_b, &numbered(2000, 2100)).await;
    host.until_completed(4700).await;
    let stats = host.handle.stats.clone();
    host.stop().await;

    assert_eq!(stats.partitions_started("a"), 1, "route a was never restarted");
    assert_eq!(stats.partitions_started("b"), 1, "route b switched versions without a restart");
    let ns = |topic: &str| -> Vec<i64> {
        let mut ns: Vec<i64> = read_all(topic)
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(r.value.as_deref().unwrap()).unwrap()["n"].as_i64().unwrap()
            })
            .collect();
        ns.sort_unstable();
        ns
    };
    assert_eq!(ns(&out_a), (0..2100).collect::<Vec<_>>());
    let mut b_all = ns(&out_b);
    let b_new = ns(&out_b2);
    assert!(b_new.contains(&1999) && b_new.contains(&2099), "records after the reload went to the new output");
    b_all.extend(&b_new);
    b_all.sort_unstable();
    assert_eq!(b_all, (0..2100).collect::<Vec<_>>(), "route b lost or duplicated nothing across the change");
    assert_eq!(ns(&out_c), (0..500).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_of_the_running_binary() {
    let (in_a, out_a, in_new, out_new, dlq) =
        (unique("hup.in"), unique("hup.out"), unique("hup.in2"), unique("hup.out2"), unique("hup.dlq"));
    create_topics(&[(&in_a, 1), (&out_a, 1), (&in_new, 1), (&out_new, 1), (&dlq, 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin("passthrough").parent().unwrap().to_path_buf();
    let group = unique("hup");
    let extra = format!("[reload]\nwatch = false\n[plugins]\ndir = \"{}\"\n", plugins.display());
    let pass = step("passthrough", "");
    let config = dir.path().join("sluice.toml");
    let write = |routes: &str| std::fs::write(&config, config_with(&group, &extra, routes)).unwrap();
    write(&route("a", &in_a, &out_a, &dlq, &pass));
    let mut child =
        sluice().args(["run", "--config"]).arg(&config).stderr(std::process::Stdio::null()).spawn().unwrap();
    produce(&in_a, &numbered(0, 10)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_all(&out_a).len() < 10 {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the host did not process");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write(&format!("{}{}", route("a", &in_a, &out_a, &dlq, &pass), route("new", &in_new, &out_new, &dlq, &pass)));
    let (code, _, err) = run(std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]));
    assert_eq!(code, 0, "{err}");
    produce(&in_new, &numbered(0, 10)).await;
    while read_all(&out_new).len() < 10 {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the new route did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
}
