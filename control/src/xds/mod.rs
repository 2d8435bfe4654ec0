//! `l7gate serve`: pushes compiled filter configs to Envoys over ADS (ECDS resources).
//! `cache` holds per-endpoint snapshots and per-node ACK/NACK state; `server` speaks the ADS
//! protocol over the cache only; `snapshot` turns a validated cluster into snapshots; `status`
//! reports it all over HTTP; [`serve`] wires them to the file watcher (`crate::watch`).

pub mod cache;
pub mod server;
pub mod snapshot;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use crate::watch::{self, Inputs};
use cache::Cache;
use status::Reloads;

/// Runs the control plane until an unrecoverable error: initial load (an invalid state is
/// reported and served as nothing, so a later fix is picked up), watcher, ADS and status servers.
pub async fn serve(inputs: Inputs, listen: SocketAddr, status_listen: SocketAddr) -> Result<(), String> {
    if !inputs.wasm.is_file() {
        warn!(wasm = %inputs.wasm.display(), "the filter module does not exist here; Envoys that cannot load it will reject every config");
    }
    let cache = Arc::new(Cache::new());
    let reloads = Reloads::default();
    watch::reload(&inputs, &cache, &reloads);

    let xds = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let status_listener =
        tokio::net::TcpListener::bind(status_listen).await.map_err(|e| format!("cannot listen on {status_listen}: {e}"))?;
    let xds_addr = xds.local_addr().map_err(|e| e.to_string())?;
    let status_addr = status_listener.local_addr().map_err(|e| e.to_string())?;
    info!(xds = %xds_addr, status = %status_addr, policies = %inputs.policies.display(),
        endpoints = %inputs.endpoints.display(), wasm = %inputs.wasm.display(), "serving");

    let ads = tonic::transport::Server::builder()
        // Detect dead Envoys (and let them detect us) without waiting for TCP timeouts.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .add_service(server::Ads::new(Arc::clone(&cache)).into_service())
        .serve_with_incoming(TcpListenerStream::new(xds));
    tokio::select! {
        r = ads => r.map_err(|e| format!("ADS server: {e}")),
        r = status::serve(status_listener, Arc::clone(&cache), Arc::clone(&reloads)) => r.map_err(|e| format!("status server: {e}")),
        r = watch::run(inputs, cache, reloads) => r,
    }
}
