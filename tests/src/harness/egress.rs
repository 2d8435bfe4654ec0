//! One egress Envoy: a workload's outbound TLS and plain-HTTP listeners on its address, names
//! resolved by the given DNS server (over TCP, through the DNS guard on a port of 127.0.0.1), and
//! the l7gate egress filters configured from three ECDS files rendered from one filter
//! configuration (`envoy/egress.yaml`, `l7gate::ecds::render_for`), or
//! from `l7gate serve` over ADS (`envoy/egress-ads.yaml`), or, as the benchmark's baseline,
//! absent (`envoy/egress.yaml` without the two filters).

use std::net::{IpAddr, SocketAddr};

use l7gate::ecds::{render_for, write_atomically, Role};

use crate::harness::envoy::{sidecar_dir, xds_values, Envoy, StartError};
use crate::harness::tools::Tools;

/// Where the egress filters get their configuration.
#[derive(Debug, Clone)]
pub enum Filters {
    /// ECDS files rendered from the workload's filter configuration (JSON).
    Files(String),
    /// `l7gate serve`, over ADS; the node id (`name`) selects the workload.
    Ads(crate::harness::control::Xds),
    /// No l7gate filters at all: everything passes.
    Absent,
}

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
    pub filters: Filters,
}

impl EgressSpec {
    pub fn tls_listener(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.tls_port)
    }

    pub fn http_listener(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.http_port)
    }
}

/// `template` without the filter-list entry named `name` (its `- name:` line and the more
/// deeply indented lines under it).
fn without_entry(template: &str, name: &str) -> String {
    let mut out = String::new();
    let mut skipping: Option<usize> = None;
    for line in template.lines() {
        let indent = line.len() - line.trim_start().len();
        if skipping.is_some_and(|at| indent <= at && !line.trim().is_empty()) {
            skipping = None;
        }
        if skipping.is_none() && line.trim_start() == format!("- name: {name}") {
            skipping = Some(indent);
        }
        if skipping.is_none() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `envoy/egress.yaml`'s text without the three l7gate filters.
fn unfiltered(template: &str) -> String {
    ["l7gate-egress-tls", "l7gate-egress-http", "l7gate-egress-dns"]
        .into_iter()
        .fold(template.to_string(), |text, name| without_entry(&text, name))
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
        (
            "DNS_GUARD_PORT",
            crate::harness::control::free_port().map_err(&harness)?.port().to_string(),
        ),
    ];
    let (template, edit): (&str, fn(String) -> String) = match &spec.filters {
        Filters::Files(config_json) => {
            for (role, placeholder, file) in [
                (Role::EgressTls, "TLS_FILTER_CONFIG_PATH", "l7gate-egress-tls.json"),
                (Role::EgressHttp, "HTTP_FILTER_CONFIG_PATH", "l7gate-egress-http.json"),
                (Role::EgressDns, "DNS_FILTER_CONFIG_PATH", "l7gate-egress-dns.json"),
            ] {
                let path = dir.path().join(file);
                write_atomically(&path, &render_for(role, config_json, &tools.wasm))
                    .map_err(|e| harness(format!("cannot write {}: {e}", path.display())))?;
                values.push((placeholder, path.display().to_string()));
            }
            ("egress.yaml", |template| template)
        }
        Filters::Ads(xds) => {
            values.extend(xds_values(xds, &spec.name, dir.path()).map_err(&harness)?);
            ("egress-ads.yaml", |template| template)
        }
        Filters::Absent => ("egress.yaml", |template| unfiltered(&template)),
    };
    let mut envoy =
        Envoy::launch(tools, dir, &spec.name, spec.tls_listener(), template, values, edit)?;
    envoy.wait_ready()?;
    Ok(envoy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::tools::repo_root;

    /// `envoy/egress-ads.yaml` is `envoy/egress.yaml` with the filter configs from ADS: every
    /// line of the file-based template's body, but the two config paths, is there in order.
    #[test]
    fn ads_template_follows_the_file_template() {
        let read =
            |name: &str| std::fs::read_to_string(repo_root().join("envoy").join(name)).unwrap();
        let (files, ads) = (read("egress.yaml"), read("egress-ads.yaml"));
        let body = |text: &str| -> Vec<String> {
            text.lines().skip_while(|l| !l.starts_with("node:")).map(str::to_string).collect()
        };
        let ads = body(&ads);
        let mut at = ads.iter();
        for line in body(&files).iter().filter(|l| !l.contains("path_config_source")) {
            assert!(at.any(|l| l == line), "envoy/egress-ads.yaml lacks (or reorders) {line:?}");
        }
        assert_eq!(ads.iter().filter(|l| l.contains("ads: {}")).count(), 3);
    }

    /// The unfiltered template keeps every other filter and has no l7gate placeholder left.
    #[test]
    fn unfiltered_template() {
        let text = std::fs::read_to_string(repo_root().join("envoy/egress.yaml")).unwrap();
        let out = unfiltered(&text);
        assert!(!out.contains("config_discovery") && !out.contains("FILTER_CONFIG_PATH}"), "{out}");
        for kept in [
            "tls_inspector",
            "sni_dynamic_forward_proxy",
            "tcp_proxy",
            "dynamic_forward_proxy",
            "http.router",
            "http_connection_manager",
        ] {
            assert!(out.contains(kept), "{kept} lost");
        }
        assert_eq!(
            text.lines().filter(|l| l.contains("- name:")).count(),
            out.lines().filter(|l| l.contains("- name:")).count() + 3
        );
    }
}
