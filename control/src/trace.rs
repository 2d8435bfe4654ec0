//! Offline verdicts: what would happen to a request from A to B, on A's egress and on B's
//! ingress, decided by the same `Engine` the filter runs, with the deciding policy and rule.
//! Verdicts are `allow`, `deny` or `audit` (let through, but an audit-mode policy would deny it:
//! spec §8, reason and rule are the audit view's), or `reject` when Envoy answers an HTTP
//! request itself before any filter runs. HTTP paths are judged as the filter sees them, after
//! Envoy's own path handling (`envoy_path`): normalised, or redirected for `%2F`/`%5C`.

use std::net::IpAddr;

use l7gate_filter::config::{Identity, Protocol, WORLD};
use l7gate_filter::engine::{Direction, Headers, Reason, Request};
use l7gate_filter::fqdn;
use serde::Serialize;

use crate::compile::Cluster;
use crate::engines::Engines;
use crate::envoy_path::{self, Handling};
use crate::identity::qualified;
use crate::inventory::Endpoint;

/// What to trace (the `l7gate trace` flags).
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Endpoint name (`name` or `namespace/name`), node name or IP address.
    pub from: String,
    /// Endpoint name, node name, IP address, or DNS name.
    pub to: String,
    pub port: u16,
    pub protocol: Option<Protocol>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    /// `(name, value)` pairs.
    pub headers: Vec<(String, String)>,
    pub sni: Option<String>,
    /// The HTTP version the request arrives in (its codec refuses different targets).
    pub version: envoy_path::Version,
}

/// The answer: the overall verdict and each side that was evaluated.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Trace {
    /// `reject` if Envoy answers the request itself, else `deny` if a side denies, else
    /// `audit` if a side audits, else `allow`.
    pub verdict: &'static str,
    /// What Envoy does with an HTTP request's path before the filter sees it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy: Option<EnvoyPath>,
    /// Egress of the source, when the source is an endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<Side>,
    /// Ingress of the destination, when the destination is an endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Side>,
    /// The request as evaluated (defaults filled in).
    pub request: String,
}

/// Envoy's handling of the path (`envoy_path::Handling`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnvoyPath {
    /// `forward` (the filter judges `path`), `redirect` (Envoy answers 307 to `path`; the
    /// sides judge the request a client sends when it follows it) or `reject` (Envoy answers
    /// `status` itself; no side is judged).
    pub action: &'static str,
    /// The path as given.
    pub sent: String,
    /// The path the filter sees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Envoy's own answer (307, 400 or 404), if it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub explanation: String,
}

impl EnvoyPath {
    fn of(sent: &str, version: envoy_path::Version) -> EnvoyPath {
        let handling = envoy_path::handle(sent, version);
        let path = handling.path().map(str::to_string);
        let (action, status, explanation) = match handling {
            Handling::Forward(p) if p == sent => ("forward", None, "left as sent".to_string()),
            Handling::Forward(_) => ("forward", None, "normalised by Envoy".to_string()),
            Handling::Redirect(_) => (
                "redirect",
                Some(307),
                "the path has %2F or %5C; the sides judge the request that follows the redirect"
                    .to_string(),
            ),
            Handling::Reject { status, why } => ("reject", Some(status), why.to_string()),
        };
        EnvoyPath { action, sent: sent.to_string(), path, status, explanation }
    }
}

/// One direction's decision.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Side {
    /// `allow`, `deny` or `audit`.
    pub verdict: &'static str,
    /// The endpoint whose policy decided (`namespace/name`).
    pub endpoint: String,
    /// The peer as that endpoint sees it.
    pub peer: String,
    pub peer_identity: Identity,
    pub reason: &'static str,
    pub explanation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The index of the HTTP rule of `rule` that allowed the request (`rules.http[N]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_rule: Option<usize>,
    /// Header actions the sidecar would apply before forwarding (spec §5.5), e.g.
    /// `ADD x-request-source: frontend [default/p spec.ingress[0].toPorts[0].rules.http[1]]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<String>,
}

/// A side of the connection: an endpoint, a bare address, or a DNS name.
struct Party<'a> {
    endpoint: Option<&'a Endpoint>,
    ip: Option<IpAddr>,
    name: Option<String>,
}

fn party<'a>(cluster: &'a Cluster, spec: &str, role: &str) -> Result<Party<'a>, String> {
    if let Ok(ip) = spec.parse::<IpAddr>() {
        let endpoint = cluster.inventory.endpoints.iter().find(|e| e.ips.contains(&ip));
        return Ok(Party { endpoint, ip: Some(ip), name: None });
    }
    let node = cluster.inventory.nodes.iter().find(|n| n.name == spec);
    match (cluster.endpoint(spec), node) {
        (Ok(e), _) => Ok(Party { endpoint: Some(e), ip: e.ips.first().copied(), name: None }),
        // A node of the inventory: its address, which policies see as `host` or `remote-node`.
        (Err(_), Some(node)) => match node.ips.first() {
            Some(&ip) => Ok(Party { endpoint: None, ip: Some(ip), name: None }),
            None => Err(format!("--{role}: node {spec:?} has no address in the inventory")),
        },
        (Err(_), None) if role == "to" && spec.contains('.') => {
            Ok(Party { endpoint: None, ip: None, name: Some(spec.to_string()) })
        }
        (Err(e), None) if cluster.inventory.nodes.is_empty() => Err(format!("--{role}: {e}")),
        (Err(e), None) => {
            let nodes: Vec<&str> =
                cluster.inventory.nodes.iter().map(|n| n.name.as_str()).collect();
            Err(format!("--{role}: {e}, nor a node ({})", nodes.join(", ")))
        }
    }
}

/// Request headers given as `(lower-case name, value)` pairs; repeated names are joined with `,`.
pub(crate) struct QueryHeaders<'q>(pub(crate) &'q [(String, String)]);

impl Headers for QueryHeaders<'_> {
    fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(",").into_bytes().into())
    }
}

/// Traces a request through the source's egress and the destination's ingress policy.
pub fn trace(cluster: &Cluster, q: &Query) -> Result<Trace, String> {
    trace_with(&mut Engines::new(cluster), q)
}

/// [`trace`] with engines kept across requests (many requests on one policy set).
pub fn trace_with(engines: &mut Engines, q: &Query) -> Result<Trace, String> {
    let cluster = engines.cluster;
    let from = party(cluster, &q.from, "from")?;
    let to = party(cluster, &q.to, "to")?;
    if from.endpoint.is_none() && to.endpoint.is_none() {
        return Err(format!(
            "neither {:?} nor {:?} is an endpoint of the inventory: nothing to decide",
            q.from, q.to
        ));
    }
    let protocol = q.protocol.unwrap_or(Protocol::Tcp);
    let authority = q.host.clone().unwrap_or_else(|| q.to.clone());
    let mut headers = q.headers.clone();
    let is_http = protocol == Protocol::Tcp && q.sni.is_none();
    let envoy = is_http.then(|| EnvoyPath::of(q.path.as_deref().unwrap_or("/"), q.version));
    if let Some(envoy) = &envoy {
        let Some(path) = envoy.path.clone() else {
            let request = format!("{} -> {}:{} {}", q.from, q.to, q.port, envoy.sent);
            return Ok(Trace {
                verdict: "reject",
                envoy: Some(envoy.clone()),
                egress: None,
                ingress: None,
                request,
            });
        };
        headers.push((":method".into(), q.method.clone().unwrap_or_else(|| "GET".into())));
        headers.push((":path".into(), path));
        headers.push((":authority".into(), authority.clone()));
    }
    // With an SNI the connection is TLS: the egress TLS filter decides it at L3/L4, with no HTTP
    // request to look at (rules with HTTP rules do not allow it), and so does the trace.
    let http = is_http.then_some(QueryHeaders(&headers));
    let http: Option<&dyn Headers> = http.as_ref().map(|h| h as &dyn Headers);
    // The name toFQDNs rules see: SNI, else the Host, else the destination's DNS name.
    let server_name = q
        .sni
        .as_deref()
        .map(fqdn::normalise)
        .or_else(|| q.host.as_deref().and_then(fqdn::name_of_authority))
        .or_else(|| to.name.as_deref().map(fqdn::normalise));

    // serverNames see the SNI itself, when the connection is TLS.
    let sni = q.sni.as_deref().map(fqdn::normalise);
    let mut decide = |subject: &Endpoint,
                      direction: Direction,
                      peer_ip: Option<IpAddr>|
     -> Result<Side, String> {
        let engine = engines.of(subject)?;
        let peer = peer_ip.map_or(WORLD, |ip| engine.identity_of(ip));
        let request = Request {
            direction,
            peer,
            port: q.port,
            protocol,
            server_name: server_name.as_deref(),
            sni: sni.as_deref(),
        };
        let v = engine.decide_to(&request, peer_ip, http);
        Ok(Side {
            verdict: match v.label() {
                "audit" => "audit",
                "allowed" => "allow",
                _ => "deny",
            },
            endpoint: qualified(subject),
            peer: engine.identity_name(peer),
            peer_identity: peer,
            reason: v.reason.code(),
            explanation: v.reason.to_string(),
            policy: v.origin.map(|o| o.policy.clone()),
            kind: v.origin.map(|o| o.kind.clone()),
            rule: v.origin.map(|o| o.rule.clone()),
            http_rule: match v.reason {
                Reason::AllowedL7 { http_rule } => Some(http_rule),
                _ => None,
            },
            rewrites: v
                .rewrites
                .iter()
                .map(|r| {
                    format!(
                        "{} {}: {} [{} {}.rules.http[{}]]",
                        r.action.name(),
                        r.name,
                        String::from_utf8_lossy(r.value),
                        r.origin.policy,
                        r.origin.rule,
                        r.http_rule
                    )
                })
                .collect(),
        })
    };
    let egress = from.endpoint.map(|e| decide(e, Direction::Egress, to.ip)).transpose()?;
    let ingress = to.endpoint.map(|e| decide(e, Direction::Ingress, from.ip)).transpose()?;
    let sides = || egress.iter().chain(ingress.iter());
    let verdict =
        ["deny", "audit"].into_iter().find(|v| sides().any(|s| s.verdict == *v)).unwrap_or("allow");
    let proto = match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    };
    let request = match http {
        Some(h) => {
            let field = |n: &str| {
                h.get(n).map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default()
            };
            format!(
                "{} -> {}:{}/{proto} {} {} (Host: {authority})",
                q.from,
                q.to,
                q.port,
                field(":method"),
                field(":path")
            )
        }
        None => {
            let sni = q.sni.as_deref().map(|s| format!(" (TLS, SNI {s})")).unwrap_or_default();
            format!("{} -> {}:{}/{proto}{sni}", q.from, q.to, q.port)
        }
    };
    Ok(Trace { verdict, envoy, egress, ingress, request })
}
