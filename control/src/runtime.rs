//! `l7gate serve`'s runtime: binds the ADS and HTTP listeners, loads the inputs, follows them
//! (file watcher or Kubernetes API) into the xDS cache, and shuts down cleanly on SIGTERM or
//! SIGINT. The one place that knows both the sources (`watch`, `kubernetes`) and `xds`, so
//! neither depends on the other's wiring.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch as signal_watch;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use crate::watch::{self, Inputs, Settings};
use crate::xds::cache::Cache;
use crate::xds::report::Reloads;
use crate::xds::{server, status, tls};

/// How long a shutdown waits for the ADS streams and HTTP requests to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How Envoys reach `--listen`.
#[derive(Debug, Clone)]
pub enum Transport {
    /// No TLS, every endpoint to anyone who connects: only on a loopback address.
    Plaintext,
    /// TLS with a required client certificate, whose SPIFFE IDs in `trust_domain` name the
    /// endpoints a node may fetch (`authz`).
    Mtls { files: tls::TlsFiles, trust_domain: String },
}

impl Transport {
    /// Refuses plaintext off loopback, and TLS files that do not load.
    fn check(&self, listen: SocketAddr) -> Result<Option<Arc<tls::Acceptor>>, String> {
        match self {
            Transport::Plaintext if !listen.ip().is_loopback() => Err(format!(
                "--plaintext on {listen}: plaintext serves every endpoint's configuration to \
                 anyone who connects, so it is refused off loopback (127.0.0.0/8, ::1); give \
                 --tls-cert, --tls-key and --client-ca instead (docs/xds.md)"
            )),
            Transport::Plaintext => Ok(None),
            Transport::Mtls { files, .. } => Ok(Some(Arc::new(tls::Acceptor::new(files.clone())?))),
        }
    }

    fn trust_domain(&self) -> Option<String> {
        match self {
            Transport::Plaintext => None,
            Transport::Mtls { trust_domain, .. } => Some(trust_domain.clone()),
        }
    }
}

/// Where the policies and the inventory come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Files, watched (`crate::watch`).
    Files(Inputs),
    /// The Kubernetes API server, watched (`crate::kubernetes`).
    Kubernetes,
}

/// Runs the control plane until SIGTERM or SIGINT (then closes every ADS stream, so Envoys
/// reconnect at once to a successor and keep their configs meanwhile, and returns `Ok`) or an
/// unrecoverable error: initial load (an invalid state is reported and served as nothing, so a
/// later fix is picked up), watcher, ADS and HTTP servers.
pub async fn serve(
    source: Source,
    settings: Settings,
    (listen, transport): (SocketAddr, Transport),
    status_listen: SocketAddr,
) -> Result<(), String> {
    // First of all: as a container's PID 1 an unhandled SIGTERM is ignored, not fatal.
    let stop_signal = shutdown_signal()?;
    let acceptor = transport.check(listen)?;
    if !settings.wasm.is_file() {
        warn!(wasm = %settings.wasm.display(), "the filter module does not exist here; Envoys that cannot load it will reject every config");
    }
    let cache = Arc::new(Cache::new());
    let reloads = Reloads::default();
    if let Source::Files(inputs) = &source {
        // From the API server, nothing is published before every watch has listed once.
        watch::reload(inputs, &settings, &cache, &reloads);
    }

    let xds = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let status_listener = tokio::net::TcpListener::bind(status_listen)
        .await
        .map_err(|e| format!("cannot listen on {status_listen}: {e}"))?;
    let xds_addr = xds.local_addr().map_err(|e| e.to_string())?;
    let status_addr = status_listener.local_addr().map_err(|e| e.to_string())?;
    match &source {
        Source::Files(inputs) => {
            info!(xds = %xds_addr, tls = acceptor.is_some(), http = %status_addr,
            policies = %inputs.policies.display(), endpoints = %inputs.endpoints.display(),
            wasm = %settings.wasm.display(), "serving")
        }
        Source::Kubernetes => info!(xds = %xds_addr, tls = acceptor.is_some(),
            http = %status_addr, source = "kubernetes", wasm = %settings.wasm.display(), "serving"),
    }

    let (stop, stopping) = signal_watch::channel(false);
    let stopped =
        |mut rx: signal_watch::Receiver<bool>| async move { server::stop_requested(&mut rx).await };
    let router = tonic::transport::Server::builder()
        // Detect dead Envoys (and let them detect us) without waiting for TCP timeouts.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .add_service(
            server::Ads::new(Arc::clone(&cache), stopping.clone(), transport.trust_domain())
                .into_service(),
        );
    let ads_stopped = stopped(stopping.clone());
    let ads: std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
        match acceptor {
            None => Box::pin(
                router.serve_with_incoming_shutdown(TcpListenerStream::new(xds), ads_stopped),
            ),
            Some(acceptor) => Box::pin(
                router.serve_with_incoming_shutdown(tls::incoming(xds, acceptor), ads_stopped),
            ),
        };
    let http =
        status::serve(status_listener, Arc::clone(&cache), Arc::clone(&reloads), stopped(stopping));
    let mut servers = tokio::spawn(async move {
        tokio::try_join!(async { ads.await.map_err(|e| format!("ADS server: {e}")) }, async {
            http.await.map_err(|e| format!("HTTP server: {e}"))
        },)
        .map(|_| ())
    });
    let joined = |r: Result<Result<(), String>, tokio::task::JoinError>| {
        r.map_err(|e| format!("server task: {e}")).and_then(|r| r)
    };
    let signal = tokio::select! {
        r = &mut servers => return joined(r).and(Err("the servers stopped".into())),
        r = follow(source, settings, cache, reloads) => return r,
        signal = stop_signal => signal,
    };
    info!(signal, "shutting down: closing ADS streams and HTTP connections");
    let _ = stop.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, servers).await {
        Ok(r) => joined(r)?,
        Err(_) => {
            warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; exiting anyway")
        }
    }
    info!("stopped");
    Ok(())
}

/// Keeps the served state in step with the source until an unrecoverable error.
async fn follow(
    source: Source,
    settings: Settings,
    cache: Arc<Cache>,
    reloads: Reloads,
) -> Result<(), String> {
    match source {
        Source::Files(inputs) => watch::run(inputs, settings, cache, reloads).await,
        Source::Kubernetes => crate::kubernetes::run(settings, cache, reloads).await,
    }
}

/// Resolves with the name of the first SIGTERM or SIGINT; the handlers are installed at once.
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
