//! The admin HTTP server: health, status and plugin control for operators
//! and for `sluice plugins` / `sluice reload`.
//!
//! It only reads the controller's published [`Snapshot`] and the counters,
//! and passes changes on as [`Request`]s; the reload controller decides.
//! Every answer but `/healthz` is JSON; errors are `{"error": "..."}`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::control::{PluginInfo, ReloadInfo, Request, RouteInfo, Shared};

/// Opens the admin listener, so that a taken port stops `sluice run` before
/// it consumes anything.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("admin.listen {addr}: cannot listen: {e}; set [admin] listen to another port or \"off\"")
    })
}

/// Serves until `shutdown` is cancelled, then lets requests in flight finish.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "admin server listening");
    }
    let served = axum::serve(listener, router(shared)).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    if let Err(e) = served {
        tracing::error!(error = %e, "admin server stopped");
    }
}

/// Every endpoint. A new one is one more `.route` line above the fallbacks.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
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
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot = shared.snapshot();
    let counters = shared.stats.by_route();
    let names = snapshot.routes.iter().map(|r| r.name.clone()).chain(counters.keys().cloned());
    let dlq = names.map(|route| (route.clone(), shared.stats.dlq_kinds(&route))).collect();
    let status =
        Status { routes: &snapshot.routes, plugins: &snapshot.plugins, reloads: &snapshot.reloads, counters, dlq };
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
