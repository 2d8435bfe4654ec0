//! `l7gate diff`: what changes between two policy sets over one inventory. Per endpoint and
//! direction, the compiled rules added, removed and changed (rules are matched by the policy
//! and field path they come from); with recorded flows, every flow replayed through both sets
//! with the filter's own `Engine` (paths as Envoy normalises them), keeping those whose verdict
//! differs.

use std::collections::{BTreeMap, HashMap};

use l7gate_filter::config::{DirectionPolicy, Peers, Protocol, Rule};
use l7gate_filter::engine::{Direction, Headers, Request};
use l7gate_filter::fqdn;
use serde::Serialize;

use crate::compile::Cluster;
use crate::engines::Engines;
use crate::envoy_path::{self, Version};
use crate::flow::Flow;
use crate::identity::qualified;
use crate::trace::QueryHeaders;

/// One compiled rule that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    /// `namespace/name`.
    pub endpoint: String,
    pub direction: &'static str,
    /// `added`, `removed`, `changed`, or `enforcement` (the direction became (un)enforced).
    pub change: &'static str,
    pub kind: String,
    pub policy: String,
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// A side's decision of a replayed flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub verdict: &'static str,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A recorded flow whose verdict differs between the two policy sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowChange {
    /// 1-based line in the flow file.
    pub line: usize,
    pub endpoint: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    pub request: String,
    pub old: Outcome,
    pub new: Outcome,
}

/// The rule changes of every endpoint of the inventory (both clusters share it), in inventory
/// order, ingress before egress.
pub fn rule_changes(old: &Cluster, new: &Cluster) -> Result<Vec<RuleChange>, String> {
    let mut out = Vec::new();
    for endpoint in &new.inventory.endpoints {
        let (a, b) = (old.compile(endpoint)?, new.compile(endpoint)?);
        let name = qualified(endpoint);
        for (direction, a, b) in
            [("ingress", &a.ingress, &b.ingress), ("egress", &a.egress, &b.egress)]
        {
            direction_changes(&name, direction, a, b, &mut out);
        }
    }
    Ok(out)
}

fn direction_changes(
    endpoint: &str,
    direction: &'static str,
    old: &DirectionPolicy,
    new: &DirectionPolicy,
    out: &mut Vec<RuleChange>,
) {
    let change = |change, rule: &Rule, old: Option<&Rule>, new: Option<&Rule>| RuleChange {
        endpoint: endpoint.to_string(),
        direction,
        change,
        kind: rule.origin.kind.clone(),
        policy: rule.origin.policy.clone(),
        rule: rule.origin.rule.clone(),
        old: old.map(describe),
        new: new.map(describe),
    };
    if old.enforced != new.enforced {
        let state = |on: bool| {
            if on {
                "enforced (default deny)"
            } else {
                "not enforced (everything allowed)"
            }
        };
        out.push(RuleChange {
            endpoint: endpoint.to_string(),
            direction,
            change: "enforcement",
            kind: String::new(),
            policy: String::new(),
            rule: String::new(),
            old: Some(state(old.enforced).into()),
            new: Some(state(new.enforced).into()),
        });
    }
    let (old_rules, new_rules) = (by_origin(&old.rules), by_origin(&new.rules));
    for (key, a) in &old_rules {
        match new_rules.get(key) {
            None => out.push(change("removed", a, Some(a), None)),
            Some(b) if a != b => out.push(change("changed", b, Some(a), Some(b))),
            Some(_) => {}
        }
    }
    for (key, b) in &new_rules {
        if !old_rules.contains_key(key) {
            out.push(change("added", b, None, Some(b)));
        }
    }
}

/// Rules keyed by where they come from (kind, policy, field path, and the occurrence for the
/// rare origin that yields several rules).
fn by_origin(rules: &[Rule]) -> BTreeMap<(&str, &str, &str, usize), &Rule> {
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    rules
        .iter()
        .map(|r| {
            let key = (r.origin.kind.as_str(), r.origin.policy.as_str(), r.origin.rule.as_str());
            let n = seen.entry(key).or_default();
            *n += 1;
            ((key.0, key.1, key.2, *n), r)
        })
        .collect()
}

/// A compiled rule in one line: `allow peers 257,258 ports TCP/8080 http [GET /api/.*]`.
pub fn describe(rule: &Rule) -> String {
    let action = format!("{:?}", rule.action).to_lowercase();
    let peers = match &rule.peers {
        Peers::Any => "any".to_string(),
        Peers::Identities(ids) => ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        Peers::Fqdns(names) => names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(","),
    };
    let ports = match &rule.ports {
        None => "all".to_string(),
        Some(ports) => ports
            .iter()
            .map(|p| {
                let proto = protocol_name(p.protocol);
                if p.first == p.last {
                    format!("{proto}/{}", p.first)
                } else {
                    format!("{proto}/{}-{}", p.first, p.last)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    };
    let http = match &rule.http {
        None => String::new(),
        Some(list) => {
            let one = |h: &l7gate_filter::config::HttpRule| {
                let mut parts = vec![
                    h.method.clone().unwrap_or_else(|| "*".into()),
                    h.path.clone().unwrap_or_else(|| "*".into()),
                ];
                parts.extend(h.host.iter().map(|host| format!("host={host}")));
                parts.extend(h.headers.iter().map(|c| {
                    let condition = match &c.value {
                        Some(v) => format!("{}={v}", c.name),
                        None => c.name.clone(),
                    };
                    match c.mismatch {
                        Some(m) => format!("{condition}({} on mismatch)", m.name()),
                        None => condition,
                    }
                }));
                parts.join(" ")
            };
            format!(" http [{}]", list.iter().map(one).collect::<Vec<_>>().join("; "))
        }
    };
    let sni = match &rule.server_names {
        Some(names) => format!(" serverNames [{}]", names.join(", ")),
        None => String::new(),
    };
    format!("{action} peers {peers} ports {ports}{http}{sni}")
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// A recorded flow's verdict under one policy set (as its sidecar decided it: same endpoint,
/// direction, peer address and request).
pub(crate) fn decide(engines: &mut Engines, flow: &Flow) -> Result<Outcome, String> {
    let name = flow
        .endpoint
        .as_deref()
        .ok_or("the flow names no endpoint (an unconfigured filter's record)")?;
    let engine = engines.named(name)?;
    let (direction, peer_ip) = match flow.direction.as_str() {
        "ingress" => (Direction::Ingress, &flow.src.ip),
        "egress" => (Direction::Egress, &flow.dst.ip),
        other => return Err(format!("unknown direction {other:?}")),
    };
    let peer_ip = peer_ip.as_deref().ok_or("the flow has no peer address")?;
    let peer_ip: std::net::IpAddr =
        peer_ip.parse().map_err(|e| format!("peer address {peer_ip:?}: {e}"))?;
    let peer = engine.identity_of(peer_ip);
    let protocol = match flow.protocol.as_str() {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => return Err(format!("unknown protocol {other:?}")),
    };
    // The name toFQDNs rules see, as the filter derives it: SNI, else the HTTP authority.
    let server_name = flow
        .sni
        .as_deref()
        .map(fqdn::normalise)
        .or_else(|| flow.host.as_deref().and_then(fqdn::name_of_authority));
    let sni = flow.sni.as_deref().map(fqdn::normalise);
    let request = Request {
        direction,
        peer,
        port: flow.port,
        protocol,
        server_name: server_name.as_deref(),
        sni: sni.as_deref(),
    };
    // Only what the log records can be replayed: rules on other headers see them absent.
    // The path as Envoy hands it to the filter (a recorded one already is; a hand-written
    // one may not be; one Envoy would refuse is replayed as written).
    let path = flow.path.as_ref().map(|p| {
        envoy_path::handle(p, Version::Http2).path().map_or_else(|| p.clone(), str::to_string)
    });
    let fields = [(":method", &flow.method), (":path", &path), (":authority", &flow.host)];
    let headers: Vec<(String, String)> = fields
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| (name.to_string(), v.clone())))
        .collect();
    let http = QueryHeaders(&headers);
    let is_http = flow.method.is_some();
    let v = engine.decide_to(&request, Some(peer_ip), is_http.then_some(&http as &dyn Headers));
    Ok(Outcome {
        verdict: v.label(),
        reason: v.reason.code(),
        policy: v.origin.map(|o| o.policy.clone()),
        rule: v.origin.map(|o| o.rule.clone()),
    })
}

/// Replays flow-log `text` through both policy sets. Lines that are not flow records are
/// skipped; a flow that cannot be replayed (unknown endpoint, no address) is an error naming
/// its line.
pub fn replay(old: &Cluster, new: &Cluster, text: &str) -> Result<Vec<FlowChange>, String> {
    let (mut a, mut b) = (Engines::new(old), Engines::new(new));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(flow) = Flow::parse(line) else { continue };
        let at = |e: String| format!("flow line {}: {e}", i + 1);
        let (before, after) =
            (decide(&mut a, &flow).map_err(at)?, decide(&mut b, &flow).map_err(at)?);
        if before.verdict != after.verdict {
            out.push(FlowChange {
                line: i + 1,
                endpoint: flow.endpoint.clone().unwrap_or_default(),
                direction: flow.direction.clone(),
                from: flow.src.label().to_string(),
                to: flow.dst.label().to_string(),
                request: flow.request(),
                old: before,
                new: after,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cluster(policies: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("p.yaml");
        std::fs::write(&file, policies).expect("write");
        let endpoints = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/endpoints.yaml");
        crate::load(&file, &endpoints).expect("valid inputs").cluster
    }

    const OLD: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: inv, namespace: default}\nspec:\n  endpointSelector: {matchLabels: {app: inventory-api}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: frontend-app}}]\n    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}]\n      rules: {http: [{method: GET, path: \"/api/.*\"}]}\n";

    fn tightened() -> String {
        OLD.replace("/api/.*", "/api/inventory/.*")
    }

    fn flow(src: &str, method: &str, path: &str) -> String {
        format!(
            r#"{{"time":"2026-11-24T13:13:34.577Z","response_code":200,"direction":"ingress","verdict":"allowed","reason":"allowed-l7","endpoint":"default/inventory-api","src":{{"ip":"{src}"}},"dst":{{"ip":"127.0.0.10"}},"port":8080,"protocol":"TCP","method":"{method}","path":"{path}","host":"inventory-api:8080"}}"#
        )
    }

    // spec §5.2: tightening the path regex denies exactly the requests outside the new pattern.
    #[test]
    fn a_tightened_path_rule_shows_as_changed_and_flags_only_the_flows_it_denies() {
        let (old, new) = (cluster(OLD), cluster(&tightened()));
        let changes = rule_changes(&old, &new).expect("compiles");
        assert_eq!(changes.len(), 1, "{changes:?}");
        let c = &changes[0];
        assert_eq!(
            (c.endpoint.as_str(), c.direction, c.change, c.policy.as_str(), c.rule.as_str()),
            (
                "default/inventory-api",
                "ingress",
                "changed",
                "default/inv",
                "spec.ingress[0].toPorts[0]"
            )
        );
        assert_eq!(c.old.as_deref(), Some("allow peers 257 ports TCP/8080 http [GET /api/.*]"));
        assert_eq!(
            c.new.as_deref(),
            Some("allow peers 257 ports TCP/8080 http [GET /api/inventory/.*]")
        );

        let log = [
            flow("127.0.0.2", "GET", "/api/inventory/1"),
            "not a flow line".to_string(),
            flow("127.0.0.2", "GET", "/api/orders/1"),
            flow("127.0.0.3", "GET", "/api/orders/1"),
            flow("127.0.0.2", "DELETE", "/api/orders/1"),
            // Judged as Envoy hands it on: /api/orders/1.
            flow("127.0.0.2", "GET", "/api/inventory/../orders/1"),
        ]
        .join("\n");
        let flagged = replay(&old, &new, &log).expect("replays");
        assert_eq!(flagged.len(), 2, "{flagged:?}");
        assert_eq!((flagged[1].line, flagged[1].new.verdict), (6, "denied"));
        let f = &flagged[0];
        assert_eq!(
            (f.line, f.from.as_str(), f.request.as_str()),
            (3, "127.0.0.2", "GET inventory-api:8080/api/orders/1")
        );
        assert_eq!(
            (f.old.verdict, f.new.verdict, f.new.reason),
            ("allowed", "denied", "denied-l7-no-rule-matched")
        );
        assert_eq!(f.old.policy.as_deref(), Some("default/inv"));
    }

    // spec §4.1: removing the only ingress policy turns enforcement off; its rules are removed.
    #[test]
    fn removing_a_policy_reports_enforcement_and_removed_rules() {
        let (old, new) = (cluster(OLD), cluster("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: other, namespace: default}\nspec:\n  endpointSelector: {matchLabels: {app: catalog}}\n  egress: [{toEntities: [world]}]\n"));
        let changes = rule_changes(&old, &new).expect("compiles");
        let summary: Vec<(&str, &str, &str, &str)> = changes
            .iter()
            .map(|c| (c.endpoint.as_str(), c.direction, c.change, c.policy.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("default/inventory-api", "ingress", "enforcement", ""),
                ("default/inventory-api", "ingress", "removed", "default/inv"),
                ("default/inventory-api", "ingress", "removed", "allow-localhost"),
                ("default/catalog", "egress", "enforcement", ""),
                ("default/catalog", "egress", "added", "default/other"),
            ]
        );
        assert_eq!(
            replay(&old, &new, &flow("127.0.0.2", "GET", "/api/inventory/1")).expect("replays"),
            []
        );
        let bad = flow("127.0.0.2", "GET", "/x").replace("default/inventory-api", "default/nope");
        assert!(replay(&old, &new, &bad)
            .expect_err("unknown endpoint")
            .starts_with("flow line 1: "));
    }
}
