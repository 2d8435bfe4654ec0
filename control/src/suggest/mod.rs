//! `l7gate suggest`: recorded flows (the sidecars' flow log, e.g. in audit mode) turned into
//! CiliumNetworkPolicies that allow exactly that traffic, one per workload: peers as label
//! selectors (stable labels, namespace-aware; entities for the outside world and nodes, names
//! for egress to it), ports, methods and generalised paths (`paths`). With existing policies,
//! only what they deny. The output is checked before it is returned: parsed and validated as
//! `l7gate validate` does, compiled for every endpoint, and every flow replayed through it (with
//! the existing policies) must be allowed.

mod paths;
#[cfg(test)]
mod tests;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use crate::cilium::model::Policy;
use crate::compile::Cluster;
use crate::diff::{decide, Outcome};
use crate::engines::Engines;
use crate::flow::{Flow, Party};
use crate::identity::{is_filtered_label, qualified};
use crate::inventory::Endpoint;
use l7gate_filter::fqdn;

pub use paths::{generalise, Pattern};

/// Label keys that name a workload, most telling first: a selector on one of them is what
/// people write (`app: inventory-api`); without any, every identity label is used.
const NAME_LABELS: [&str; 4] = ["app.kubernetes.io/name", "app", "k8s-app", "name"];

/// How many sibling names (`a.example.com`, `b.example.com`, …) make `*.example.com`.
pub const SIBLINGS: usize = 3;

/// One recorded flow and where it was read.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `file:line`.
    pub at: String,
    pub flow: Flow,
}

/// Reads the flow records of a log text (other lines are skipped).
pub fn records(file: &Path, text: &str) -> Vec<Recorded> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            Flow::parse(line)
                .map(|flow| Recorded { at: format!("{}:{}", file.display(), i + 1), flow })
        })
        .collect()
}

/// What `suggest` produced.
#[derive(Debug, Clone)]
pub struct Suggestion {
    /// The policies, as one multi-document YAML text with explaining comments.
    pub yaml: String,
    /// A `PolicyTest` of the observed requests, each expected to be allowed.
    pub tests: String,
    pub policies: usize,
    pub rules: usize,
    /// Flows turned into rules (all, or those the existing policies deny).
    pub used: usize,
    /// Flows replayed in the check (all of them).
    pub checked: usize,
}

/// A workload: the endpoints one selector picks in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Workload {
    pub namespace: String,
    /// `matchLabels`.
    pub labels: BTreeMap<String, String>,
}

/// The other side of a flow, as a policy names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Workload(Workload),
    /// `world`, `host`, `remote-node`, …
    Entity(String),
    /// A DNS name outside the cluster (egress), from the SNI or the Host.
    Name(String),
}

/// The requests seen between a workload and one peer on one port.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub flows: usize,
    /// Method → the paths requested with it; empty when the traffic is not HTTP.
    pub http: BTreeMap<String, Vec<String>>,
    /// Flows without an HTTP request (TLS, or TCP the filter saw no request in).
    pub opaque: usize,
    /// Endpoints of the peer workload seen, for the comment.
    pub seen: BTreeSet<String>,
}

/// Direction → (peer, port, protocol) → traffic, per subject workload.
pub type Observed =
    BTreeMap<Workload, BTreeMap<&'static str, BTreeMap<(Peer, u16, String), Traffic>>>;

/// Suggests policies for `flows` on `cluster` (its inventory, and the existing policies, whose
/// denials alone are turned into rules); `only` restricts the subjects to an endpoint name or a
/// `key=value[,key=value]` label selector.
pub fn suggest(
    cluster: &Cluster,
    flows: &[Recorded],
    only: Option<&str>,
) -> Result<Suggestion, String> {
    let mut existing = Engines::new(cluster);
    let mut observed = Observed::new();
    let (mut used, mut selected) = (Vec::new(), Vec::new());
    for r in flows {
        let at = |e: String| format!("{}: {e}", r.at);
        let Some(name) = r.flow.endpoint.as_deref() else { continue };
        let subject = cluster.endpoint(name).map_err(at)?;
        if only.is_some_and(|o| !selects(o, subject)) {
            continue;
        }
        selected.push(r);
        if !cluster.policies.is_empty() {
            let now: Outcome = decide(&mut existing, &r.flow).map_err(at)?;
            if now.verdict == "allowed" {
                continue;
            }
            if now.reason == "denied-by-deny-rule" {
                return Err(at(format!(
                    "{} is denied by the deny rule {} {}: no allow rule can lift a deny rule; \
                     change that rule if the flow is wanted",
                    r.flow.request(),
                    now.policy.unwrap_or_default(),
                    now.rule.unwrap_or_default()
                )));
            }
        }
        record(cluster, subject, &r.flow, &mut observed).map_err(at)?;
        used.push(r);
    }
    if observed.is_empty() {
        return Err(if flows.is_empty() {
            "no flow records in the given files: record traffic first (the sidecars' access log, \
             e.g. with every policy in audit mode)"
                .to_string()
        } else if selected.is_empty() {
            format!(
                "no recorded flow was decided by an endpoint {}: check --for against the flows' \
                 endpoints",
                only.map_or_else(
                    || "of the inventory".to_string(),
                    |o| format!("that {o:?} selects")
                )
            )
        } else {
            "no flow needs a new rule: the existing policies already allow every recorded flow \
             of the selected endpoints"
                .to_string()
        });
    }
    let written = write::policies(&observed, used.len(), existing_names(cluster));
    let tests = write::tests(cluster, &used.iter().map(|r| &r.flow).collect::<Vec<_>>());
    check(cluster, &written.yaml, &tests, &selected)?;
    Ok(Suggestion {
        yaml: written.yaml,
        tests,
        policies: written.policies,
        rules: written.rules,
        used: used.len(),
        checked: selected.len(),
    })
}

/// Whether `only` (an endpoint name or a label selector) picks `e`.
fn selects(only: &str, e: &Endpoint) -> bool {
    if !only.contains('=') {
        return e.name == only || qualified(e) == only;
    }
    only.split(',').all(|pair| {
        pair.split_once('=')
            .is_some_and(|(k, v)| e.labels.get(k.trim()).map(String::as_str) == Some(v.trim()))
    })
}

fn existing_names(cluster: &Cluster) -> BTreeSet<(Option<String>, String)> {
    cluster.policies.iter().map(|p: &Policy| (p.namespace.clone(), p.name.clone())).collect()
}

/// Adds one flow to what `subject` was seen doing.
fn record(
    cluster: &Cluster,
    subject: &Endpoint,
    flow: &Flow,
    out: &mut Observed,
) -> Result<(), String> {
    let (direction, peer_side) = match flow.direction.as_str() {
        "ingress" => ("ingress", &flow.src),
        "egress" => ("egress", &flow.dst),
        other => return Err(format!("unknown direction {other:?}")),
    };
    let peer = peer(cluster, direction, peer_side, flow)?;
    let traffic = out
        .entry(workload(subject))
        .or_default()
        .entry(direction)
        .or_default()
        .entry((peer, flow.port, flow.protocol.clone()))
        .or_default();
    traffic.flows += 1;
    if let Some(e) = endpoint_at(cluster, peer_side) {
        traffic.seen.insert(qualified(e));
    }
    match (&flow.method, &flow.path) {
        (Some(m), Some(p)) => traffic.http.entry(m.clone()).or_default().push(p.clone()),
        _ => traffic.opaque += 1,
    }
    Ok(())
}

fn endpoint_at<'c>(cluster: &'c Cluster, party: &Party) -> Option<&'c Endpoint> {
    let ip: IpAddr = party.ip.as_deref()?.parse().ok()?;
    cluster.inventory.endpoints.iter().find(|e| e.ips.contains(&ip))
}

/// The workload of an endpoint: its namespace and the labels that name it.
pub fn workload(e: &Endpoint) -> Workload {
    let labels = match NAME_LABELS.iter().find_map(|k| e.labels.get_key_value(*k)) {
        Some((k, v)) => BTreeMap::from([(k.clone(), v.clone())]),
        None => e
            .labels
            .iter()
            .filter(|(k, _)| !is_filtered_label(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Workload { namespace: e.namespace.clone(), labels }
}

/// The peer of a flow as a policy names it: a workload of the inventory, else the name the
/// egress flow asked for, else the reserved identity the filter saw.
fn peer(cluster: &Cluster, direction: &str, party: &Party, flow: &Flow) -> Result<Peer, String> {
    if let Some(e) = endpoint_at(cluster, party) {
        let w = workload(e);
        if w.labels.is_empty() {
            return Err(format!(
                "the peer {} has no identity labels, so no selector can name it without naming \
                 every pod: give it an app label",
                qualified(e)
            ));
        }
        return Ok(Peer::Workload(w));
    }
    let reserved =
        party.name.as_deref().and_then(|n| n.strip_prefix("reserved:")).unwrap_or("world");
    if direction == "egress" && reserved == "world" {
        let name = match (&flow.sni, &flow.host) {
            (Some(sni), _) => Some(fqdn::normalise(sni)),
            (None, Some(host)) => fqdn::name_of_authority(host),
            (None, None) => None,
        };
        let name = name.map(|n| n.trim_end_matches('.').to_string());
        if let Some(name) = name.filter(|n| !n.is_empty() && n.parse::<IpAddr>().is_err()) {
            return Ok(Peer::Name(name));
        }
    }
    Ok(Peer::Entity(reserved.to_string()))
}

/// Parses, validates and compiles the suggestion beside the existing policies, replays every
/// flow through the result and runs the suggested tests on it: every flow must be allowed and
/// every test pass, or the suggestion is refused (a bug).
fn check(cluster: &Cluster, yaml: &str, tests: &str, flows: &[&Recorded]) -> Result<(), String> {
    let parsed = crate::cilium::parse::parse_str(Path::new("suggested.yaml"), yaml)
        .map_err(|e| format!("internal error: the suggested policies do not validate:\n{e}"))?;
    let mut policies = cluster.policies.clone();
    policies.extend(parsed.policies);
    let after = Cluster::new(policies, cluster.inventory.clone());
    after
        .check_all()
        .map_err(|e| format!("internal error: the suggested policies do not compile: {e}"))?;
    let mut engines = Engines::new(&after);
    for r in flows {
        let outcome = decide(&mut engines, &r.flow).map_err(|e| format!("{}: {e}", r.at))?;
        if outcome.verdict != "allowed" {
            return Err(format!(
                "internal error: {}: {} is still {} ({}) with the suggested policies",
                r.at,
                r.flow.request(),
                outcome.verdict,
                outcome.reason
            ));
        }
    }
    let mut suite = crate::policy_test::Suite::default();
    let errors =
        crate::policy_test::parse_into(Path::new("observed-tests.yaml"), tests, &mut suite);
    if let Some(e) = errors.first() {
        return Err(format!("internal error: the suggested tests do not parse: {e}"));
    }
    for o in crate::policy_test::run(&after, &suite) {
        if !o.passed() {
            let why = match &o.trace {
                Err(e) => e.clone(),
                Ok(_) => o.failures.join("; "),
            };
            return Err(format!("internal error: suggested test {:?} fails: {why}", o.case.name));
        }
    }
    Ok(())
}
