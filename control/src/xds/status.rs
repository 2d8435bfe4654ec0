//! `l7gate serve`'s HTTP side: `GET /status` (the `report` document, from the cache and the
//! reload state the watcher records), `GET /healthz` (liveness) and `GET /readyz` (ready once
//! the inputs were valid: Envoys get configs).
//!
//! `/status` tells what the policies say (reload diagnostics quote them) and which nodes exist,
//! so it answers callers on loopback only (`kubectl exec`, `kubectl port-forward` and a host
//! port of docker-compose arrive there); anyone else gets 403. `/healthz` and `/readyz` answer
//! everyone (kubelet probes) and say no more than ready or not.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::cache::Cache;
use super::report::{ReloadStatus, Reloads, StatusReport};

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
