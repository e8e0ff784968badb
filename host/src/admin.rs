//! The admin HTTP server: health, readiness, metrics, status and plugin
//! control for operators and for `sluice plugins` / `sluice reload`.
//!
//! It only reads the controller's published [`Snapshot`] and the counters,
//! and passes changes on as [`Request`]s; the reload controller decides.
//! Every answer but `/healthz`, `/metrics` and the status page at `/` is
//! JSON; errors are `{"error": "..."}`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::control::{PluginInfo, ReloadInfo, Request, RouteInfo, Shared};
use crate::stats::{PartitionStatus, RecentError};

/// Opens the admin listener, so that a taken port stops `sluice run` before
/// it consumes anything.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("admin.listen {addr}: cannot listen: {e}; set [admin] listen to another port or \"off\"")
    })
}

/// Serves until `shutdown` is cancelled, then lets requests in flight finish.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let served = axum::serve(listener, router(shared)).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    if let Err(e) = served {
        tracing::error!(error = %e, "admin server stopped");
    }
}

/// Every endpoint. A new one is one more `.route` line above the fallbacks.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/plugins", get(plugins))
        .route("/plugins/{name}/rollback", post(rollback))
        .route("/reload", post(reload))
        // Applies to the routes above it: keep it after the last `.route`.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(shared)
}

/// A JSON error answer: `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// The status page: one self-contained HTML file that polls `/status`.
const PAGE: &str = include_str!("admin/page.html");

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /readyz`: 200 `{"ready": true}`, or 503 `{"ready": false, "reason": ...}`.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.stats.not_ready() {
        None => Json(serde_json::json!({ "ready": true })).into_response(),
        Some(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "ready": false, "reason": reason })))
                .into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match crate::metrics::encode(&shared.stats, &shared.snapshot()) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {e}")).into_response()
        }
    }
}

/// `GET /status`: the snapshot plus the counters.
#[derive(Debug, Serialize)]
struct Status<'a> {
    routes: &'a [RouteInfo],
    plugins: &'a [PluginInfo],
    reloads: &'a [ReloadInfo],
    /// route → event → count.
    counters: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// route → DLQ error kind → count, for every route known to either side.
    dlq: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Every assigned partition: route, offsets, lag, in-flight.
    partitions: Vec<PartitionStatus>,
    /// The latest dead letters and stopped workers, newest last.
    recent_errors: Vec<RecentError>,
    /// Why `/readyz` answers 503; `None` when it answers 200.
    not_ready: Option<String>,
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot = shared.snapshot();
    let counters = shared.stats.by_route();
    let names = snapshot.routes.iter().map(|r| r.name.clone()).chain(counters.keys().cloned());
    let dlq = names.map(|route| (route.clone(), shared.stats.dlq_kinds(&route))).collect();
    let mut partitions = shared.stats.partitions.list();
    for p in partitions.iter_mut().filter(|p| p.route.is_none()) {
        // Not started yet: the route that reads the topic will run it.
        p.route = snapshot
            .routes
            .iter()
            .find(|r| r.inputs.contains(&p.topic) || r.retry_topics.contains(&p.topic))
            .map(|r| r.name.clone());
    }
    let status = Status {
        routes: &snapshot.routes,
        plugins: &snapshot.plugins,
        reloads: &snapshot.reloads,
        counters,
        dlq,
        partitions,
        recent_errors: shared.stats.recent_errors(),
        not_ready: shared.stats.not_ready(),
    };
    Json(status).into_response()
}

async fn plugins(State(shared): State<Arc<Shared>>) -> Json<Vec<PluginInfo>> {
    Json(shared.snapshot().plugins.clone())
}

/// `POST /plugins/{name}/rollback`: 200 with what serves now; 404 for a
/// plugin the host does not have, 409 when the controller refuses (no
/// previous version, or it failed to start), 503 while shutting down.
async fn rollback(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Result<Json<PluginInfo>, ApiError> {
    tracing::info!(plugin = %name, "admin: rollback requested");
    match shared.ask(|reply| Request::Rollback { plugin: name.clone(), reply }).await {
        Ok(info) => Ok(Json(info)),
        Err(message) if shared.requests.is_closed() => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)),
        Err(message) if !shared.snapshot().plugins.iter().any(|p| p.name == name) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, message))
        }
        Err(message) => Err(ApiError::new(StatusCode::CONFLICT, message)),
    }
}

/// `POST /reload`: 200 `{"message": what changed}`; 422 when the config is
/// refused (the old one keeps serving), 503 while shutting down.
async fn reload(State(shared): State<Arc<Shared>>) -> Result<Json<serde_json::Value>, ApiError> {
    tracing::info!("admin: config reload requested");
    match shared.ask(|reply| Request::ReloadConfig { reply }).await {
        Ok(message) => Ok(Json(serde_json::json!({ "message": message }))),
        Err(message) if shared.requests.is_closed() => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)),
        Err(message) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)),
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} does not take {method}", uri.path()))
}
