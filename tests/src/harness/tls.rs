//! Real TLS on both ends of the egress Envoy: a certificate authority minted at test time
//! (rcgen), a TLS upstream (rustls) that stands in for an external service under several names,
//! and a rustls client that plays a workload, with or without SNI. The upstream counts every TCP
//! connection it accepts, before any handshake, so a test can prove a denied connection never
//! reached it.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::harness::background::Background;

/// A test CA and one server certificate it issued.
pub struct TestPki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl TestPki {
    /// A fresh CA and a server certificate for `names` (DNS SANs).
    pub fn new(names: &[&str]) -> Result<TestPki, String> {
        let fail = |e: rcgen::Error| format!("minting test certificates: {e}");
        let ca_key = rcgen::KeyPair::generate().map_err(fail)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "l7gate test CA");
        let ca = ca_params.self_signed(&ca_key).map_err(fail)?;
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let server = rcgen::CertificateParams::new(names)
            .map_err(fail)?
            .signed_by(&key, &ca, &ca_key)
            .map_err(fail)?;
        Ok(TestPki {
            ca: ca.der().clone(),
            chain: vec![server.der().clone(), ca.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, String> {
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(self.chain.clone(), PrivateKeyDer::Pkcs8(self.key.clone_key()))
        })
        .map_err(|e| format!("TLS server config: {e}"))
    }

    /// The CA certificate (DER), for clients elsewhere ([`client_config_trusting`]).
    pub fn ca_der(&self) -> &[u8] {
        self.ca.as_ref()
    }

    /// A client trusting only this CA; `sni: false` sends no server name at all.
    pub fn client_config(&self, sni: bool) -> Result<rustls::ClientConfig, String> {
        client_config_trusting(self.ca.clone(), sni)
    }
}

/// A client trusting only the CA certificate `ca`; `sni: false` sends no server name at all.
pub fn client_config_trusting(
    ca: CertificateDer<'static>,
    sni: bool,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(|e| format!("test CA: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS client config: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.enable_sni = sni;
    Ok(config)
}

/// One connection as the upstream saw it: the SNI it got and the line the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSeen {
    pub sni: Option<String>,
    pub line: String,
}

/// A TLS server answering one line per connection with `<name> saw <line>`; stops when dropped.
pub struct TlsUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<TlsSeen>>>,
    _server: Background,
}

impl TlsUpstream {
    /// Serves on `addr` (e.g. a name's address on port 443) with `pki`'s server certificate.
    pub fn start(name: &str, addr: SocketAddr, pki: &TestPki) -> Result<TlsUpstream, String> {
        let acceptor = TlsAcceptor::from(Arc::new(pki.server_config()?));
        let listener =
            std::net::TcpListener::bind(addr).map_err(|e| format!("TLS upstream {addr}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (accepted, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
        let server = Background::spawn(format!("tls-{name}"), {
            let (name, accepted, seen) =
                (name.to_string(), Arc::clone(&accepted), Arc::clone(&seen));
            move |stop| serve(listener, name, acceptor, accepted, seen, stop)
        })
        .map_err(|e| e.to_string())?;
        Ok(TlsUpstream { addr, accepted, seen, _server: server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far (whether or not a handshake followed).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Completed exchanges, oldest first.
    pub fn seen(&self) -> Vec<TlsSeen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    name: String,
    acceptor: TlsAcceptor,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<TlsSeen>>>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        eprintln!("TLS upstream {name}: cannot register listener");
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                let (acceptor, name, seen) = (acceptor.clone(), name.clone(), Arc::clone(&seen));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let sni = tls.get_ref().1.server_name().map(str::to_string);
                    let mut tls = BufReader::new(tls);
                    let mut line = String::new();
                    if tls.read_line(&mut line).await.is_err() {
                        return;
                    }
                    let line = line.trim_end().to_string();
                    let reply = format!("{name} saw {line}\n");
                    seen.lock().unwrap_or_else(|e| e.into_inner()).push(TlsSeen { sni, line });
                    let mut tls = tls.into_inner();
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        }
    }
}

/// How a TLS exchange through the egress Envoy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsOutcome {
    /// The handshake with the real upstream completed; its reply.
    Reply(String),
    /// Connected, but the connection was closed or reset before the handshake completed.
    Closed(String),
}

/// From the workload address `from`, opens a TLS connection to `to` sending SNI `sni` (none when
/// `None`; the certificate is then checked against `verify_as`), sends `line` and reads the reply.
pub async fn exchange(
    pki: &TestPki,
    from: IpAddr,
    to: SocketAddr,
    sni: Option<&str>,
    verify_as: &str,
    line: &str,
) -> Result<TlsOutcome, String> {
    exchange_with(pki.client_config(sni.is_some())?, from, to, sni, verify_as, line).await
}

/// [`exchange`] with a given client configuration (its `enable_sni` must match `sni`).
pub async fn exchange_with(
    config: rustls::ClientConfig,
    from: IpAddr,
    to: SocketAddr,
    sni: Option<&str>,
    verify_as: &str,
    line: &str,
) -> Result<TlsOutcome, String> {
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(sni.unwrap_or(verify_as).to_string())
        .map_err(|e| format!("server name: {e}"))?;
    let tcp = crate::harness::client::connect(from, to)
        .await
        .map_err(|e| format!("connect {to}: {e}"))?;
    let mut tls = match connector.connect(name, tcp).await {
        Ok(tls) => tls,
        Err(e) => return Ok(TlsOutcome::Closed(e.to_string())),
    };
    tls.write_all(format!("{line}\n").as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await.map_err(|e| format!("read: {e}"))?;
    Ok(TlsOutcome::Reply(reply))
}
