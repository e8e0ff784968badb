//! The admin HTTP server and the `sluice plugins` / `sluice reload` commands,
//! against a fake controller: no broker, no pipeline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use sluice::admin;
use sluice::control::{PluginInfo, ReloadInfo, Request, RouteInfo, Shared, Snapshot, VersionInfo};
use sluice::stats::{Event, Stats};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{run, sluice};

fn version(v: &str, at: u64) -> VersionInfo {
    VersionInfo {
        version: v.into(),
        hash: v.split('@').nth(1).unwrap().into(),
        path: "/p.wasm".into(),
        size: 10,
        loaded_at_ms: at,
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        routes: vec![RouteInfo {
            name: "orders".into(),
            inputs: vec!["orders.in".into()],
            outputs: vec!["orders.out".into()],
            dlq: "orders.dlq".into(),
            retry_topics: Vec::new(),
            chain: vec!["known@1111".into(), "fixed@2222".into()],
        }],
        plugins: vec![
            PluginInfo {
                name: "known".into(),
                current: version("known@1111", 1_700_000_100_000),
                previous: Some(version("known@0000", 1_700_000_000_000)),
                routes: vec!["orders".into()],
            },
            PluginInfo {
                name: "fixed".into(),
                current: version("fixed@2222", 1_700_000_000_000),
                previous: None,
                routes: vec!["orders".into()],
            },
        ],
        reloads: vec![ReloadInfo { what: "plugin:known".into(), ok: true, message: "known@1111".into(), at_ms: 1 }],
    }
}

/// A host with an admin server on a free port and a controller that rolls
/// back `known`, refuses `fixed` (no previous version) and knows nothing
/// else; a reload succeeds while `reload_ok` is set.
struct FakeHost {
    address: SocketAddr,
    reload_ok: Arc<AtomicBool>,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Runtime,
}

impl FakeHost {
    fn start() -> Self {
        Self::start_with(true)
    }

    fn start_with(controller: bool) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let stats = Arc::new(Stats::default());
        stats.add("orders", Event::Consumed, 5);
        stats.add("orders", Event::Delivered, 4);
        stats.dead_letter("orders", "trap");
        let (requests, mut inbox) = mpsc::channel(4);
        let shared = Arc::new(Shared::new(stats, requests));
        shared.publish(snapshot());
        let reload_ok = Arc::new(AtomicBool::new(true));
        if controller {
            let reload_ok = reload_ok.clone();
            runtime.spawn(async move {
                while let Some(request) = inbox.recv().await {
                    match request {
                        Request::Rollback { plugin, reply } => {
                            let answer = match plugin.as_str() {
                                "known" => {
                                    let mut info = snapshot().plugins[0].clone();
                                    std::mem::swap(&mut info.current, info.previous.as_mut().unwrap());
                                    Ok(info)
                                }
                                "fixed" => Err("fixed has no previous version to roll back to".to_owned()),
                                other => Err(format!("no plugin named {other}")),
                            };
                            let _ = reply.send(answer);
                        }
                        Request::ReloadConfig { reply } => {
                            let _ = reply.send(if reload_ok.load(Ordering::SeqCst) {
                                Ok("route orders: chain known@1111 → known@3333".to_owned())
                            } else {
                                Err("sluice.toml:4: routes[0].inputs: must not be empty".to_owned())
                            });
                        }
                    }
                }
            });
        } else {
            drop(inbox);
        }
        let listener = runtime.block_on(admin::bind("127.0.0.1:0".parse().unwrap())).unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = Some(runtime.spawn(admin::serve(listener, shared, shutdown.clone())));
        FakeHost { address, reload_ok, shutdown, server, runtime }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One request, its body read.
pub fn request(method: &str, url: &str) -> ureq::http::Response<String> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let response = match method {
        "GET" => agent.get(url).call(),
        "POST" => agent.post(url).send_empty(),
        "DELETE" => agent.delete(url).call(),
        other => panic!("{other}"),
    }
    .unwrap();
    let (parts, mut body) = response.into_parts();
    ureq::http::Response::from_parts(parts, body.read_to_string().unwrap())
}

/// (status, content type, body) of one request.
pub fn http(method: &str, url: &str) -> (u16, String, String) {
    let response = request(method, url);
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (response.status().as_u16(), content_type, response.into_body())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A port nothing listens on (for as long as nobody takes it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn healthz_answers_ok() {
    let host = FakeHost::start();
    let (status, content_type, body) = http("GET", &host.url("/healthz"));
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert!(content_type.starts_with("text/plain"), "{content_type}");
}

#[test]
fn status_has_the_snapshot_the_counters_and_dlq_kinds() {
    let host = FakeHost::start();
    let (status, content_type, body) = http("GET", &host.url("/status"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    let status = json(&body);
    let expected = serde_json::to_value(snapshot()).unwrap();
    for key in ["routes", "plugins", "reloads"] {
        assert_eq!(status[key], expected[key], "{key}");
    }
    assert_eq!(status["counters"], serde_json::json!({"orders": {"consumed": 5, "delivered": 4, "dead_lettered": 1}}));
    assert_eq!(status["dlq"], serde_json::json!({"orders": {"trap": 1}}));
}

#[test]
fn plugins_lists_every_plugin() {
    let host = FakeHost::start();
    let (status, _, body) = http("GET", &host.url("/plugins"));
    assert_eq!(status, 200, "{body}");
    let plugins: Vec<PluginInfo> = serde_json::from_str(&body).unwrap();
    assert_eq!(plugins, snapshot().plugins);
}

#[test]
fn rollback_answers_what_serves_now() {
    let host = FakeHost::start();
    let (status, _, body) = http("POST", &host.url("/plugins/known/rollback"));
    assert_eq!(status, 200, "{body}");
    let info: PluginInfo = serde_json::from_str(&body).unwrap();
    assert_eq!(info.current.version, "known@0000");
    assert_eq!(info.previous.unwrap().version, "known@1111");
}

#[test]
fn rollback_refused_is_409_and_of_an_unknown_plugin_404() {
    let host = FakeHost::start();
    let (status, content_type, body) = http("POST", &host.url("/plugins/fixed/rollback"));
    assert_eq!((status, content_type.as_str()), (409, "application/json"), "{body}");
    assert_eq!(json(&body), serde_json::json!({"error": "fixed has no previous version to roll back to"}));
    let (status, _, body) = http("POST", &host.url("/plugins/nope/rollback"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(json(&body), serde_json::json!({"error": "no plugin named nope"}));
}

#[test]
fn reload_answers_what_changed_or_422() {
    let host = FakeHost::start();
    let (status, _, body) = http("POST", &host.url("/reload"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body), serde_json::json!({"message": "route orders: chain known@1111 → known@3333"}));
    host.reload_ok.store(false, Ordering::SeqCst);
    let (status, _, body) = http("POST", &host.url("/reload"));
    assert_eq!(status, 422, "{body}");
    assert_eq!(json(&body), serde_json::json!({"error": "sluice.toml:4: routes[0].inputs: must not be empty"}));
}

#[test]
fn a_stopped_controller_is_503() {
    let host = FakeHost::start_with(false);
    for path in ["/plugins/known/rollback", "/reload"] {
        let (status, _, body) = http("POST", &host.url(path));
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(json(&body), serde_json::json!({"error": "the host is shutting down"}));
    }
    // Reading still works.
    assert_eq!(http("GET", &host.url("/plugins")).0, 200);
}

#[test]
fn unknown_path_is_404_and_wrong_method_405_both_json() {
    let host = FakeHost::start();
    let (status, content_type, body) = http("GET", &host.url("/nope"));
    assert_eq!((status, content_type.as_str()), (404, "application/json"), "{body}");
    assert_eq!(json(&body), serde_json::json!({"error": "no such endpoint: GET /nope"}));
    let (status, _, body) = http("POST", &host.url("/plugins/known"));
    assert_eq!(status, 404, "{body}");
    for (method, path) in
        [("GET", "/reload"), ("POST", "/healthz"), ("DELETE", "/plugins"), ("GET", "/plugins/known/rollback")]
    {
        let (status, content_type, body) = http(method, &host.url(path));
        assert_eq!((status, content_type.as_str()), (405, "application/json"), "{method} {path}: {body}");
        assert_eq!(json(&body)["error"], format!("{path} does not take {method}"));
    }
    assert_eq!(request("GET", &host.url("/reload")).headers()["allow"], "POST", "405 still says what is allowed");
}

#[test]
fn bind_names_the_key_and_address_when_the_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let error = runtime.block_on(admin::bind(address)).unwrap_err().to_string();
    assert!(error.starts_with(&format!("admin.listen {address}: cannot listen: ")), "{error}");
    assert!(error.ends_with("; set [admin] listen to another port or \"off\""), "{error}");
}

#[test]
fn cancelling_the_token_stops_the_server() {
    let mut host = FakeHost::start();
    assert_eq!(http("GET", &host.url("/healthz")).0, 200);
    host.shutdown.cancel();
    let server = host.server.take().unwrap();
    host.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await }).unwrap().unwrap();
    assert!(std::net::TcpStream::connect(host.address).is_err(), "still listening after shutdown");
}

// The CLI against the same fake host.

#[test]
fn cli_plugins_list_prints_a_table_or_the_json() {
    let host = FakeHost::start();
    let admin = host.address.to_string();
    let (code, out, err) = run(sluice().args(["plugins", "list", "--admin", &admin]));
    assert_eq!(code, 0, "{err}");
    let expected = "\
NAME   CURRENT     LOADED                PREVIOUS    ROUTES
known  known@1111  2023-11-14T22:15:00Z  known@0000  orders
fixed  fixed@2222  2023-11-14T22:13:20Z  -           orders
";
    assert_eq!(out, expected);
    let (code, out, err) = run(sluice().args(["plugins", "list", "--json", "--admin", &admin]));
    assert_eq!(code, 0, "{err}");
    let plugins: Vec<PluginInfo> = serde_json::from_str(&out).unwrap();
    assert_eq!(plugins, snapshot().plugins);
}

#[test]
fn cli_rollback_prints_what_serves_now_or_exits_1_with_the_hosts_reason() {
    let host = FakeHost::start();
    let admin = host.address.to_string();
    let (code, out, err) = run(sluice().args(["plugins", "rollback", "known", "--admin", &admin]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "known: now serving known@0000 (compiled 2023-11-14T22:13:20Z, /p.wasm)\n\
         previous: known@1111 (a second rollback returns to it)\n"
    );
    let (code, out, err) = run(sluice().args(["plugins", "rollback", "fixed", "--admin", &admin]));
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, "error: fixed has no previous version to roll back to\n");
    let (code, _, err) = run(sluice().args(["plugins", "rollback", "nope", "--admin", &admin]));
    assert_eq!((code, err.as_str()), (1, "error: no plugin named nope\n"));
}

#[test]
fn cli_reload_prints_the_outcome() {
    let host = FakeHost::start();
    let admin = host.address.to_string();
    let (code, out, err) = run(sluice().args(["reload", "--admin", &admin]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "config reloaded: route orders: chain known@1111 → known@3333\n");
    host.reload_ok.store(false, Ordering::SeqCst);
    let (code, out, err) = run(sluice().args(["reload", "--admin", &admin]));
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "error: the host refused the config and keeps running the one it had: \
         sluice.toml:4: routes[0].inputs: must not be empty\n"
    );
}

#[test]
fn cli_finds_the_host_through_the_configs_admin_listen_even_mid_edit() {
    let host = FakeHost::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    // The route is half written: `sluice run` would refuse this file.
    std::fs::write(&config, format!("[[routes]]\nname =\n\n[admin]\nlisten = \"{}\"\n", host.address)).unwrap();
    let (code, out, err) = run(sluice().args(["plugins", "list", "--config"]).arg(&config));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME "), "{out}");
    let (code, out, err) = run(sluice().args(["reload", "--config"]).arg(&config));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("config reloaded: "), "{out}");
}

#[test]
fn cli_says_when_the_configs_admin_server_is_off() {
    let host = FakeHost::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "[admin]\nlisten = \"off\"\n").unwrap();
    let (code, out, err) = run(sluice().args(["plugins", "list", "--config"]).arg(&config));
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        format!(
            "error: {}: [admin] listen is \"off\": that host runs no admin server; \
             set [admin] listen and restart `sluice run`, or pass --admin HOST:PORT\n",
            config.display()
        )
    );
    // --admin wins over the config.
    let admin = host.address.to_string();
    let (code, _, err) = run(sluice().args(["plugins", "list", "--admin", &admin, "--config"]).arg(&config));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn cli_exits_2_when_no_host_answers() {
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    for args in [vec!["plugins", "list"], vec!["plugins", "rollback", "known"], vec!["reload"]] {
        let (code, out, err) = run(sluice().args(&args).args(["--admin", &admin]));
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
        assert_eq!(
            err,
            format!(
                "error: no sluice host answers at http://{admin} \
                 (is `sluice run` running with [admin] listen = \"{admin}\"?)\n"
            ),
            "{args:?}"
        );
    }
}

#[test]
fn cli_exits_2_on_a_bad_admin_address() {
    let (code, _, err) = run(sluice().args(["plugins", "list", "--admin", "localhost"]));
    assert_eq!(code, 2);
    assert_eq!(err, "error: --admin localhost: expected HOST:PORT, e.g. 127.0.0.1:9797\n");
    let (code, _, _) = run(sluice().args(["plugins", "rollback"]));
    assert_eq!(code, 2, "a missing NAME is a usage error");
}
