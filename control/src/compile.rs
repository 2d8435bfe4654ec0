//! Compilation: validated policies + inventory → one filter [`Config`] per endpoint, the only
//! producer of that schema. Every config is run through the filter's own `Engine::compile`
//! before it leaves, so the data plane never sees a config it would refuse.

use std::collections::{BTreeMap, BTreeSet};

use l7gate_filter::cidr::Cidr;
use l7gate_filter::config::{
    Config, DirectionPolicy, EndpointRef, IpCacheEntry, Rule, HOST, SCHEMA_VERSION, WORLD,
};
use l7gate_filter::engine::Engine;

use crate::cilium::model::{Peer, Policy};
use crate::identity::{qualified, Identities};
use crate::inventory::{Endpoint, Inventory};
use crate::resolve::{resolve, services_selected};

/// The ranges that are an endpoint's own host when they are a destination (spec §6.1: a name
/// never selects them, an IP literal in them is `host`): loopback, "this network" (0.0.0.0/8
/// reaches the host on Linux), link-local (the cloud metadata address among them), and IPv6's
/// loopback, unspecified and link-local addresses.
const LOCAL_RANGES: [&str; 6] =
    ["127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "::1/128", "::/128", "fe80::/10"];

/// The most rules one direction of one endpoint may have once the policies that select it are
/// merged (its audit view counted too): twice the largest rule set the benchmarks run through
/// Envoy (10,000, docs/performance.md). Past it an endpoint's configuration is refused, not
/// pushed: a config Envoy takes seconds to build, or cannot hold, is worse than an error.
pub const MAX_RULES_PER_DIRECTION: usize = 20_000;

/// Everything needed to compile configs for any endpoint: policies, inventory, identities.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub policies: Vec<Policy>,
    pub inventory: Inventory,
    pub identities: Identities,
    /// Every policy in audit mode (`--audit-mode`, spec §8): nothing is denied, would-be denials
    /// are reported.
    pub audit_mode: bool,
}

impl Cluster {
    pub fn new(policies: Vec<Policy>, inventory: Inventory) -> Cluster {
        let identities = Identities::allocate(&inventory, &policy_cidrs(&policies, &inventory));
        Cluster { policies, inventory, identities, audit_mode: false }
    }

    /// The same cluster with the global audit switch set to `on`.
    pub fn with_audit_mode(self, on: bool) -> Cluster {
        Cluster { audit_mode: on, ..self }
    }

    /// Finds an endpoint by `name` or `namespace/name`; an ambiguous bare name is an error.
    pub fn endpoint(&self, name: &str) -> Result<&Endpoint, String> {
        let matching: Vec<&Endpoint> = self
            .inventory
            .endpoints
            .iter()
            .filter(|e| e.name == name || qualified(e) == name)
            .collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "no endpoint named {name:?} in the inventory (known: {})",
                self.inventory.endpoints.iter().map(qualified).collect::<Vec<_>>().join(", ")
            )),
            many => Err(format!(
                "{name:?} is ambiguous: write one of {}",
                many.iter().map(|e| qualified(e)).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// The filter configuration of one endpoint.
    pub fn compile(&self, endpoint: &Endpoint) -> Result<Config, String> {
        self.build(endpoint, true)
    }

    /// Checks that every endpoint's configuration compiles, as [`Cluster::compile`] would, in
    /// time linear in the inventory: the cluster-wide tables (identities, address → identity),
    /// which differ between endpoints only by their node, are checked with the first endpoint
    /// of each node; every endpoint's rules on their own. (Compiling all in full is quadratic:
    /// 10,000 endpoints took 49 s.)
    pub fn check_all(&self) -> Result<(), String> {
        let mut nodes = BTreeSet::new();
        for endpoint in &self.inventory.endpoints {
            let first_of_node = nodes.insert(endpoint.node.as_deref());
            self.build(endpoint, first_of_node)?;
        }
        Ok(())
    }

    /// One endpoint's configuration, with the cluster-wide tables or (for checks) without.
    fn build(&self, endpoint: &Endpoint, tables: bool) -> Result<Config, String> {
        let (ingress, egress) =
            resolve(&self.policies, &self.identities, &self.inventory, endpoint, self.audit_mode)
                .map_err(|e| format!("endpoint {}: {e}", qualified(endpoint)))?;
        for (direction, policy) in [("ingress", &ingress), ("egress", &egress)] {
            self.check_size(endpoint, direction, policy)?;
        }
        let identity = *self.identities.of_endpoint.get(&qualified(endpoint)).ok_or_else(|| {
            format!("internal error: endpoint {} has no identity", qualified(endpoint))
        })?;
        let config = Config {
            version: SCHEMA_VERSION,
            endpoint: EndpointRef {
                name: endpoint.name.clone(),
                namespace: endpoint.namespace.clone(),
                identity,
            },
            identities: if tables { self.identities.infos() } else { Vec::new() },
            ipcache: if tables { self.ipcache(endpoint) } else { Vec::new() },
            local: self.local(),
            ingress,
            egress,
        };
        Engine::compile(&config)
            .map_err(|e| format!("internal error: the filter refuses the compiled config: {e}"))?;
        Ok(config)
    }

    /// Refuses a direction over [`MAX_RULES_PER_DIRECTION`], naming the policy that contributes
    /// the most rules, with its position.
    fn check_size(
        &self,
        endpoint: &Endpoint,
        direction: &str,
        policy: &DirectionPolicy,
    ) -> Result<(), String> {
        let views = std::iter::once(policy).chain(policy.audit.as_deref());
        let rules: Vec<&Rule> = views.flat_map(|v| &v.rules).collect();
        if rules.len() <= MAX_RULES_PER_DIRECTION {
            return Ok(());
        }
        let mut by_policy: BTreeMap<&str, usize> = BTreeMap::new();
        for rule in &rules {
            *by_policy.entry(rule.origin.policy.as_str()).or_default() += 1;
        }
        let (largest, count) =
            by_policy.iter().max_by_key(|(_, n)| **n).map_or(("", 0), |(p, n)| (*p, *n));
        let at = self
            .policies
            .iter()
            .find(|p| p.qualified_name() == largest)
            .map(|p| format!("{}:{}:{}: ", p.file.display(), p.span.line, p.span.col))
            .unwrap_or_default();
        Err(format!(
            "{at}endpoint {}: {direction} has {} rules once the policies that select it are \
             merged, more than the limit of {MAX_RULES_PER_DIRECTION}; policy {largest} gives \
             {count} of them: merge rules that differ only in their peers or ports (one rule \
             may list many), or select fewer endpoints",
            qualified(endpoint),
            rules.len()
        ))
    }

    /// The endpoint's own host ranges ([`LOCAL_RANGES`]) as `host`, and the inventory's `world`
    /// ranges as `world` (longest prefix wins; a `world` range equal to a local one replaces it).
    fn local(&self) -> Vec<IpCacheEntry> {
        let world = self.inventory.world.iter().map(|c| (*c, WORLD));
        let local = LOCAL_RANGES.iter().filter_map(|r| Cidr::parse(r).ok()).map(|c| (c, HOST));
        let mut taken = BTreeSet::new();
        world
            .chain(local)
            .filter(|(cidr, _)| taken.insert(*cidr))
            .map(|(cidr, identity)| IpCacheEntry { cidr: cidr.to_string(), identity })
            .collect()
    }

    /// Peer address → identity as seen from `subject` (its own node's addresses are `host`).
    fn ipcache(&self, subject: &Endpoint) -> Vec<IpCacheEntry> {
        let mut entries = Vec::new();
        let mut taken = BTreeSet::new();
        let mut add = |cidr: Cidr, identity| {
            if taken.insert(cidr) {
                entries.push(IpCacheEntry { cidr: cidr.to_string(), identity });
            }
        };
        // Pods first: a pod's address keeps its pod identity even if a policy CIDR names it
        // exactly (spec §3.4: CIDR selectors never match managed endpoints).
        for e in &self.inventory.endpoints {
            if let Some(id) = self.identities.of_endpoint.get(&qualified(e)) {
                for ip in &e.ips {
                    add(Cidr::host(*ip), *id);
                }
            }
        }
        for node in &self.inventory.nodes {
            let local = subject.node.as_deref() == Some(node.name.as_str());
            let id = if local {
                l7gate_filter::config::HOST
            } else {
                l7gate_filter::config::REMOTE_NODE
            };
            for ip in &node.ips {
                add(Cidr::host(*ip), id);
            }
        }
        for (cidr, id) in &self.identities.of_cidr {
            add(*cidr, *id);
        }
        entries
    }
}

/// Every prefix (allowed or excepted) named by a CIDR rule of any policy, and the backend
/// addresses of the selector-less Services a `toServices` rule selects (spec §3.5: CIDR rules).
fn policy_cidrs(policies: &[Policy], inventory: &Inventory) -> BTreeSet<Cidr> {
    let mut out = BTreeSet::new();
    for rule in policies.iter().flat_map(|p| &p.rules) {
        let sections = [&rule.ingress, &rule.ingress_deny, &rule.egress, &rule.egress_deny];
        for peer_rule in sections.into_iter().flatten() {
            match &peer_rule.peer {
                Some(Peer::Cidrs(cidrs)) => {
                    for c in cidrs {
                        out.insert(c.cidr);
                        out.extend(c.except.iter().copied());
                    }
                }
                Some(Peer::Services(selectors)) => {
                    for s in services_selected(&inventory.services, selectors) {
                        if s.selector.is_none() {
                            out.extend(s.addresses.iter().map(|a| Cidr::host(*a)));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}
