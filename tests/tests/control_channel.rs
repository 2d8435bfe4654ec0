//! The control channel (`l7gate serve` ↔ Envoy) attacked from the inside of the network: ADS is
//! mTLS and a client certificate is a node's whole authority. An Envoy whose certificate names
//! one endpoint and that asks for another's configuration (by bare name or namespace/name) gets
//! nothing and fails closed, and the refusal is logged; the rightful Envoy still gets its config;
//! a client without a certificate, with one of another CA, or speaking plaintext completes no
//! handshake; plaintext serving is refused off loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::cluster::ECDS_UPDATE_SUCCESS;
use l7gate_e2e::harness::control::{self, ControlPlane, ServeSpec, Xds, SERVER_NAME};
use l7gate_e2e::harness::envoy::{AdsSidecarSpec, Envoy};
use l7gate_e2e::harness::tools::{self, Tools};
use l7gate_e2e::harness::upstream::Upstream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The HTTP/2 connection preface and an empty SETTINGS frame: what a client opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

const FRONTEND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The status of a GET through a sidecar (0: no HTTP answer).
async fn get(envoy: &Envoy) -> (u16, String) {
    let request =
        Request { from: FRONTEND, to: envoy.listener(), authority: "x", method: "GET", path: "/" };
    client::send(Protocol::Http1, &request).await.map(|r| (r.status, r.body)).unwrap_or_default()
}

fn sidecar(tools: &Tools, name: &str, listen: &str, app: &Upstream, xds: Xds) -> Envoy {
    let spec = AdsSidecarSpec {
        name: name.into(),
        listen: listen.parse().unwrap(),
        upstream: app.addr(),
        xds,
    };
    Envoy::spawn_ads(tools, &spec)
        .and_then(|mut e| e.wait_ready().map(|()| e))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_node_gets_only_the_configs_its_certificate_names() {
    let tools = Tools::require();
    let manifests = tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let cp = ControlPlane::start(ServeSpec::files(manifests.path(), &tools.wasm))
        .unwrap_or_else(|e| panic!("{e}"));
    let app = Upstream::start("payment-gateway").unwrap();
    // A catalog certificate asking for payment-gateway, both ways of naming it.
    let rogue = cp.xds().certified_as("default/catalog");
    for (name, listen) in
        [("payment-gateway", "127.0.0.29:0"), ("default/payment-gateway", "127.0.0.30:0")]
    {
        let envoy = sidecar(&tools, name, listen, &app, rogue.clone());
        assert_eq!(
            envoy.stat("extension_config_discovery.http_filter.l7gate.init_fetch_timeout"),
            Some(1),
            "{name}: no config arrived, the listener waited for one"
        );
        assert_eq!(envoy.stat(ECDS_UPDATE_SUCCESS), Some(0), "{name} got a config");
        assert_eq!(get(&envoy).await, (500, String::new()), "{name}: fails closed");
    }
    assert_eq!(app.count(), 0, "a request passed a sidecar without a filter config");
    let report = cp.status().unwrap();
    assert!(
        report.nodes.iter().all(|n| !n.node.contains("payment-gateway")),
        "a refused stream is no node of the status: {report:#?}"
    );
    let log = cp.log();
    assert!(log.matches("stream refused").count() >= 2, "{log}");
    assert!(log.contains("names only default/catalog"), "{log}");

    // The rightful owner of a certificate gets its configuration over the same server.
    let owner = sidecar(&tools, "payment-gateway", "127.0.0.31:0", &app, cp.xds());
    assert!(owner.wait_for_stat(ECDS_UPDATE_SUCCESS, |n| n >= 1) >= Some(1), "{}", cp.log());
}

/// TLS to the control plane as `client` configures it, then an HTTP/2 preface and a read: Ok
/// when the server answered (a SETTINGS frame), Err with why the connection ended otherwise.
async fn handshake(xds: SocketAddr, config: rustls::ClientConfig) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(xds).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut tls = connector.connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(H2_PREFACE).await.map_err(|e| e.to_string())?;
    let mut frame = [0u8; 9];
    tls.read_exact(&mut frame).await.map_err(|e| format!("read: {e}"))?;
    Ok(())
}

fn client_config(ca: &Path, credentials: Option<&Path>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match credentials {
        None => builder.with_no_client_auth(),
        Some(dir) => {
            let chain = CertificateDer::pem_file_iter(dir.join("tls.crt"))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

#[tokio::test]
async fn no_handshake_without_a_certificate_of_the_servers_ca() {
    let tools = Tools::require();
    let manifests = tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let cp = ControlPlane::start(ServeSpec::files(manifests.path(), &tools.wasm))
        .unwrap_or_else(|e| panic!("{e}"));
    let xds = cp.xds();
    let ca = xds.ca().unwrap();
    // The check can succeed: a certificate of the server's CA is answered.
    let own = xds.credentials("default/catalog").unwrap().unwrap();
    handshake(xds.addr, client_config(&ca, Some(&own))).await.unwrap();

    let refused = handshake(xds.addr, client_config(&ca, None)).await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");
    let other = tempfile::tempdir().unwrap();
    control::certs(other.path(), &["--endpoint", "default/catalog"]).unwrap();
    let foreign =
        handshake(xds.addr, client_config(&ca, Some(&other.path().join("default.catalog"))));
    assert!(foreign.await.is_err(), "a certificate of another CA was accepted");
    // Plaintext HTTP/2 to the TLS port gets no HTTP/2 answer.
    let mut tcp = tokio::net::TcpStream::connect(xds.addr).await.unwrap();
    tcp.write_all(H2_PREFACE).await.unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"\0\0"), "plaintext HTTP/2 was answered: {answer:?}");
    let log = cp.log();
    assert!(log.matches("TLS handshake refused").count() >= 2, "{log}");
}

#[test]
fn plaintext_is_refused_off_loopback_and_never_implied() {
    let tools = Tools::require();
    let manifests = tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let serve = |extra: &[&str]| {
        let out = std::process::Command::new(control::binary().unwrap())
            .arg("serve")
            .arg("--policies")
            .arg(manifests.path().join("policies"))
            .arg("--endpoints")
            .arg(manifests.path().join("endpoints.yaml"))
            .arg("--wasm")
            .arg(&tools.wasm)
            .args(["--status-listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = serve(&["--plaintext", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refused off loopback") && err.contains("--tls-cert"), "{err}");
    let (code, err) = serve(&["--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--plaintext") && err.contains("--client-ca"), "{err}");
}
