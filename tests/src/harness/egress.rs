//! One egress Envoy (`envoy/egress.yaml`): a workload's outbound TLS and plain-HTTP listeners on
//! its address, the l7gate egress filters configured from two ECDS files rendered from the same
//! filter configuration (`l7gate::ecds::render_for`), and names resolved by the given DNS server.

use std::net::{IpAddr, SocketAddr};

use l7gate::ecds::{render_for, write_atomically, Role};

use crate::harness::envoy::{sidecar_dir, Envoy, StartError};
use crate::harness::tools::Tools;

/// An egress Envoy: the template's placeholders, filled.
#[derive(Debug, Clone)]
pub struct EgressSpec {
    /// Envoy node id.
    pub name: String,
    /// The workload's outbound address; both listeners bind it.
    pub address: IpAddr,
    /// The TLS listener's port, also the port allowed connections go to upstream.
    pub tls_port: u16,
    pub http_port: u16,
    /// The DNS server the forward proxies resolve names with.
    pub dns: SocketAddr,
    /// The workload's filter configuration (JSON).
    pub filter_config_json: String,
}

impl EgressSpec {
    pub fn tls_listener(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.tls_port)
    }

    pub fn http_listener(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.http_port)
    }
}

/// Starts the egress Envoy and waits until it is ready (its TLS listener accepts).
pub fn start(tools: &Tools, spec: &EgressSpec) -> Result<Envoy, StartError> {
    let harness = |e: String| StartError::Harness(format!("egress {}: {e}", spec.name));
    let dir = sidecar_dir(&format!("egress-{}", spec.name)).map_err(&harness)?;
    let mut values = vec![
        ("TLS_PORT", spec.tls_port.to_string()),
        ("HTTP_PORT", spec.http_port.to_string()),
        ("DNS_ADDRESS", spec.dns.ip().to_string()),
        ("DNS_PORT", spec.dns.port().to_string()),
    ];
    for (role, placeholder, file) in [
        (
            Role::EgressTls,
            "TLS_FILTER_CONFIG_PATH",
            "l7gate-egress-tls.json",
        ),
        (
            Role::EgressHttp,
            "HTTP_FILTER_CONFIG_PATH",
            "l7gate-egress-http.json",
        ),
    ] {
        let path = dir.path().join(file);
        write_atomically(
            &path,
            &render_for(role, &spec.filter_config_json, &tools.wasm),
        )
        .map_err(|e| harness(format!("cannot write {}: {e}", path.display())))?;
        values.push((placeholder, path.display().to_string()));
    }
    let mut envoy = Envoy::launch(
        tools,
        dir,
        &spec.name,
        spec.tls_listener(),
        "egress.yaml",
        values,
    )?;
    envoy.wait_ready()?;
    Ok(envoy)
}
