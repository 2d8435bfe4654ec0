//! `l7gate serve`'s HTTP side: the JSON document of `GET /status` (also parsed back by
//! `l7gate status`) and the reload state the watcher records; `GET /healthz` (liveness) and
//! `GET /readyz` (ready once the inputs were valid: Envoys get configs).
//!
//! `/status` tells what the policies say (reload diagnostics quote them) and which nodes exist,
//! so it answers callers on loopback only (`kubectl exec`, `kubectl port-forward` and a host
//! port of docker-compose arrive there); anyone else gets 403. `/healthz` and `/readyz` answer
//! everyone (kubelet probes) and say no more than ready or not.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use serde::{Deserialize, Serialize};

use super::cache::Cache;

/// The whole `GET /status` document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub reload: ReloadStatus,
    /// Every Envoy seen since the server started, by node id.
    pub nodes: Vec<NodeStatus>,
}

/// Where the inputs stand.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Counts accepted input states; 0 until the inputs were valid once.
    pub generation: u64,
    /// Endpoints whose configuration changed in the last accepted reload.
    pub last_changed: Vec<String>,
    /// Why the inputs on disk are not in force (rendered diagnostics), if they are not.
    pub error: Option<String>,
}

/// One Envoy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The Envoy node id.
    pub node: String,
    /// The endpoint whose configuration it gets (node id or `node.metadata["l7gate.endpoint"]`).
    pub endpoint: String,
    /// Whether an ADS stream of this node is open now.
    pub connected: bool,
    /// Why this node gets nothing (e.g. an endpoint the inventory does not have).
    pub error: Option<String>,
    pub resources: Vec<ResourceStatus>,
}

/// One resource of one Envoy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceStatus {
    pub type_url: String,
    pub name: String,
    /// The version the control plane has for it now.
    pub current: Option<String>,
    /// Responses sent with it (since this server started).
    pub pushes: u64,
    /// The last version the Envoy accepted (since this server started).
    pub acked: Option<String>,
    /// Sent, neither accepted nor rejected yet.
    pub pending: Option<String>,
    pub last_nack: Option<NackInfo>,
}

/// A rejected version and Envoy's reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NackInfo {
    pub version: String,
    /// Envoy's `error_detail.message`, verbatim.
    pub message: String,
    pub at_unix_ms: u64,
}

/// Shared, updated by the watcher.
pub type Reloads = Arc<Mutex<ReloadStatus>>;

/// The current report.
pub fn report(cache: &Cache, reloads: &Reloads) -> StatusReport {
    let reload = reloads.lock().unwrap_or_else(|e| e.into_inner()).clone();
    StatusReport { reload, nodes: cache.status() }
}

/// Serves the HTTP side on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cache: Arc<Cache>,
    reloads: Reloads,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ready = Arc::clone(&reloads);
    let app = axum::Router::new()
        .route(
            "/status",
            axum::routing::get(move |ConnectInfo(caller): ConnectInfo<SocketAddr>| {
                let report = caller.ip().is_loopback().then(|| report(&cache, &reloads));
                async move {
                    match report {
                        Some(report) => axum::Json(report).into_response(),
                        None => (
                            StatusCode::FORBIDDEN,
                            "GET /status is answered on loopback only: it shows what the \
                             policies say (use kubectl exec or kubectl port-forward)\n",
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let status = ready.lock().unwrap_or_else(|e| e.into_inner()).clone();
                async move { readiness(&status) }
            }),
        );
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// `GET /readyz`: 200 once an input state was accepted (Envoys get configs), else 503 and
/// which of the two it is (the diagnostics are in the log and in `/status`).
fn readiness(status: &ReloadStatus) -> (StatusCode, String) {
    match (status.generation, &status.error) {
        (0, Some(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the inputs were never valid (the log and GET /status say why)\n".into(),
        ),
        (0, None) => {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: the inputs are not loaded yet\n".into())
        }
        (g, _) => (StatusCode::OK, format!("ready: generation {g}\n")),
    }
}

/// Fetches the report from a running server (`l7gate status`): a plain HTTP/1.1 GET.
pub fn fetch(server: SocketAddr) -> Result<StatusReport, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&server, std::time::Duration::from_secs(5))
            .map_err(|e| format!("cannot reach l7gate serve at {server}: {e}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(stream, "GET /status HTTP/1.1\r\nhost: {server}\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("reading the status from {server}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| format!("{server}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{server}: {}", head.lines().next().unwrap_or_default()));
    }
    serde_json::from_str(body).map_err(|e| format!("{server}: not an l7gate status document: {e}"))
}
