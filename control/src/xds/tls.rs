//! The control channel's transport: TLS 1.2/1.3 with a required client certificate (mTLS) on
//! `l7gate serve --listen`. Connections are accepted on one task and their handshakes run on
//! their own tasks, each bounded by [`HANDSHAKE_TIMEOUT`], so a client that connects and stays
//! silent holds nothing but its socket. The certificate, key and client CA are files (cert-manager
//! and SPIRE rotate them in place): they are read again when one of them changed, at most once
//! per [`RELOAD_CHECK`], and a set that does not load (half rotated) keeps the last good one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

/// How long a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the files are checked for a change (on a connection, never in the background).
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Handshaken connections waiting for the gRPC server to take them.
const ACCEPTED_BUFFER: usize = 64;

/// The PEM files of the server side.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain (leaf first).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA certificates client certificates must chain to.
    pub client_ca: PathBuf,
}

impl TlsFiles {
    fn paths(&self) -> [&Path; 3] {
        [&self.cert, &self.key, &self.client_ca]
    }

    /// What identifies the files' current contents without reading them.
    fn stamp(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.paths()
            .iter()
            .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
            .collect()
    }
}

/// The current server configuration, reloaded when the files change.
pub struct Acceptor {
    files: TlsFiles,
    current: Mutex<Current>,
}

struct Current {
    config: Arc<ServerConfig>,
    stamp: Vec<Option<(SystemTime, u64)>>,
    checked: Instant,
}

impl Acceptor {
    /// Loads the files; an error names the file and what is wrong with it.
    pub fn new(files: TlsFiles) -> Result<Acceptor, String> {
        let stamp = files.stamp();
        let config = load(&files)?;
        Ok(Acceptor {
            files,
            current: Mutex::new(Current { config, stamp, checked: Instant::now() }),
        })
    }

    fn config(&self) -> Arc<ServerConfig> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.checked.elapsed() >= RELOAD_CHECK {
            current.checked = Instant::now();
            let stamp = self.files.stamp();
            if stamp != current.stamp {
                match load(&self.files) {
                    Ok(config) => {
                        info!(cert = %self.files.cert.display(), "TLS files changed: reloaded");
                        current.config = config;
                        current.stamp = stamp;
                    }
                    // Not recorded as seen: tried again at the next check, when the rotation
                    // may be complete.
                    Err(e) => {
                        warn!(error = %e, "TLS files changed but do not load; keeping the previous ones")
                    }
                }
            }
        }
        Arc::clone(&current.config)
    }
}

/// The listener's connections once their handshake succeeded, for tonic's
/// `serve_with_incoming_shutdown`. Ends when the server drops it.
pub fn incoming(
    listener: TcpListener,
    acceptor: Arc<Acceptor>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(ACCEPTED_BUFFER);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: the next accept may work.
                        warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let tls = TlsAcceptor::from(acceptor.config());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => warn!(peer = %peer, error = %e, "TLS handshake refused"),
                    Err(_) => {
                        warn!(peer = %peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out")
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!("--tls-key {}: no PEM private key could be read ({e})", files.key.display())
    })?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.client_ca)? {
        roots.add(ca).map_err(|e| {
            format!("--client-ca {}: not a usable CA certificate ({e})", files.client_ca.display())
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| format!("--client-ca {}: {e}", files.client_ca.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "--tls-cert {} and --tls-key {}: {e} (the key must be the certificate's)",
                files.cert.display(),
                files.key.display()
            )
        })?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |e: String| format!("{}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(format!("cannot read PEM certificates ({e})")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(what("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certs)
}
