//! The status page at `/`, rendered by headless Chromium against a real
//! pipeline: it must show the route, the plugin version and the DLQ count
//! that `/status` reports.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::broker::{create_topics, produce, unique};
use crate::metrics::{admin_url, get};
use crate::pipeline::start_pipeline;

/// Chromium, or `None` (outside CI only) when it is not installed.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let ok = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
        ok.then(|| PathBuf::from(name))
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the status page test: install chromium (scripts/test.sh does)"
        );
        eprintln!("skipped: chromium is not installed (apt-get install -y chromium); CI runs this test");
    }
    found
}

/// Runs headless Chromium on `url` with `args`, returning its stdout.
async fn headless(chromium: &Path, profile: &Path, args: &[String], url: &str) -> String {
    let mut command = Command::new(chromium);
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--window-size=1280,1000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url);
    let out = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("run chromium");
    assert!(out.status.success(), "chromium failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_routes_plugin_versions_and_dead_letters() {
    let Some(chromium) = chromium() else { return };
    let (input, output, dlq) = (unique("page.in"), unique("page.out"), unique("page.dlq"));
    create_topics(&[(&input, 2), (&output, 1), (&dlq, 1)]).await;
    let mut records: Vec<(Option<String>, String)> =
        (0..9).map(|i| (Some(format!("k{i}")), format!("{{\"id\":{i}}}"))).collect();
    records.push((Some("bad".into()), "{\"no\":\"id\"}".into()));
    produce(&input, &records).await;
    let routes = format!(
        "[[routes]]\nname = \"checkout\"\ninputs = [\"{input}\"]\noutputs = [\"{output}\"]\ndlq = \"{dlq}\"\n\
         [[routes.chain]]\nplugin = \"validate\"\nconfig = {{ required = [\"id\"] }}\n"
    );
    let running = start_pipeline(&unique("page"), &routes, "");
    let url = admin_url(&running).await;
    running.until_completed(10).await;
    let (_, plugins) = get(format!("{url}/plugins")).await;
    let plugins: serde_json::Value = serde_json::from_str(&plugins).unwrap();
    let version = plugins[0]["current"]["version"].as_str().unwrap().to_owned();

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("status-page"));
    std::fs::create_dir_all(&dir).unwrap();
    let dom = headless(&chromium, &dir.join("profile"), &["--dump-dom".into()], &format!("{url}/")).await;
    assert!(dom.contains("<td data-k=\"route\">checkout</td>"), "route missing:\n{dom}");
    assert!(dom.contains(&format!("<code>{version}</code>")), "version {version} missing:\n{dom}");
    assert!(dom.contains("data-k=\"dlq:checkout:rejected\">1</td>"), "DLQ count missing:\n{dom}");
    assert!(dom.contains("data-k=\"dead:checkout\">1</td>"), "route's dead letters missing:\n{dom}");
    assert!(dom.contains(">ready<"), "readiness missing:\n{dom}");
    assert!(dom.contains("<td class=\"bad\">rejected</td>"), "recent error missing:\n{dom}");

    let png = dir.join("status.png");
    headless(&chromium, &dir.join("profile"), &[format!("--screenshot={}", png.display())], &format!("{url}/")).await;
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(bytes.len() > 10_000, "a screenshot of a rendered page: {} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", png.display());
    eprintln!("status page screenshot: {}", png.display());
    running.stop().await;
}
