//! Resolution (spec §2.3, §3, §4): for one subject endpoint, find the rules that select it,
//! decide per direction whether policy is enforced and default-deny, and turn every rule into
//! plain filter rules — selectors into identity sets, named ports into numbers, L7-less rules
//! into rules without HTTP lists (which void L7 restrictions for their peers, spec §4.3).
//!
//! Audit mode (spec §8): policies annotated [`AUDIT_ANNOTATION`]` = "true"` (every policy, with
//! the global switch) never deny. Each direction is resolved without them (this decides, so a
//! direction that only audit policies enforce stays unenforced) and, when that differs, again
//! with them: the audit view, whose denials of allowed requests the filter reports as `audit`.

use std::collections::{BTreeMap, BTreeSet};

use l7gate_filter::config::{
    self as fc, Action, DirectionPolicy, HeaderCondition, Origin, Peers, PortRange, Protocol,
};

use l7gate_filter::cidr::Cidr;

use crate::cilium::model::{
    self as m, Entity, L4Protocol, Operator, Peer, PeerRule, Policy, PolicyKind, Port, PortRule,
    Requirement, Rule, Selector, ServiceSelector,
};
use crate::identity::{
    split_key, Identities, Label, LabelSet, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX,
};
use crate::inventory::{Endpoint, Inventory, Service};

/// A rule together with the policy it belongs to.
#[derive(Clone, Copy)]
struct Selecting<'a> {
    policy: &'a Policy,
    rule: &'a Rule,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Ingress,
    Egress,
}

/// The annotation that puts one policy in audit mode.
pub const AUDIT_ANNOTATION: &str = "l7gate.io/audit-mode";

/// Whether `policy` is in audit mode (annotated, or every policy with `global`).
pub fn is_audit(policy: &Policy, global: bool) -> bool {
    global || policy.annotations.get(AUDIT_ANNOTATION).is_some_and(|v| v == "true")
}

/// The resolved ingress and egress policy of `subject`; `audit_mode` puts every policy in audit
/// mode. Fails where Cilium fails to compute the endpoint's policy (rules with HTTP rules and
/// `serverNames` merged for the same peers and port, spec §4.3 item 6).
pub fn resolve(
    policies: &[Policy],
    ids: &Identities,
    inventory: &Inventory,
    subject: &Endpoint,
    audit_mode: bool,
) -> Result<(DirectionPolicy, DirectionPolicy), String> {
    let subject_id = ids.of_endpoint.get(&crate::identity::qualified(subject));
    let subject_labels =
        subject_id.and_then(|id| ids.all.get(id)).map(|(_, l)| l.clone()).unwrap_or_default();
    let selecting: Vec<Selecting> = policies
        .iter()
        .flat_map(|policy| policy.rules.iter().map(move |rule| Selecting { policy, rule }))
        .filter(|s| {
            crate::identity::selector_matches(
                &subject_selector(s.policy, &s.rule.endpoint_selector),
                &subject_labels,
            )
        })
        .collect();
    let ctx = Context { ids, inventory, subject, egress_ports: egress_named_ports(inventory) };
    let enforced: Vec<Selecting> =
        selecting.iter().copied().filter(|s| !is_audit(s.policy, audit_mode)).collect();
    let audited = enforced.len() < selecting.len();
    let direction = |dir| -> Result<DirectionPolicy, String> {
        let decides = ctx.direction(dir, &enforced)?;
        let audit = audited.then(|| ctx.direction(dir, &selecting)).transpose()?;
        let audit = audit.filter(|view| *view != decides);
        Ok(DirectionPolicy { audit: audit.map(Box::new), ..decides })
    };
    Ok((direction(Dir::Ingress)?, direction(Dir::Egress)?))
}

struct Context<'a> {
    ids: &'a Identities,
    inventory: &'a Inventory,
    subject: &'a Endpoint,
    /// Named port → number across all endpoints; `None` where the name is ambiguous.
    egress_ports: BTreeMap<String, Option<u16>>,
}

impl Context<'_> {
    fn direction<'a>(
        &self,
        dir: Dir,
        selecting: &[Selecting<'a>],
    ) -> Result<DirectionPolicy, String> {
        let sections = |s: &Selecting<'a>| -> (&'a [PeerRule], &'a [PeerRule]) {
            match dir {
                Dir::Ingress => (&s.rule.ingress, &s.rule.ingress_deny),
                Dir::Egress => (&s.rule.egress, &s.rule.egress_deny),
            }
        };
        let flag = |s: &Selecting<'_>| match dir {
            Dir::Ingress => s.rule.default_deny.ingress,
            Dir::Egress => s.rule.default_deny.egress,
        };
        // spec §4.1: only rules with a non-empty section for the direction count.
        let contributing: Vec<&Selecting<'a>> = selecting
            .iter()
            .filter(|s| {
                let (allow, deny) = sections(s);
                !allow.is_empty() || !deny.is_empty()
            })
            .collect();
        if contributing.is_empty() {
            return Ok(DirectionPolicy { enforced: false, rules: vec![], audit: None });
        }
        let default_deny = contributing.iter().any(|s| flag(s).unwrap_or(true));
        let mut rules = Vec::new();
        for s in &contributing {
            let (allow, deny) = sections(s);
            for peer_rule in allow {
                self.emit(dir, Action::Allow, s, peer_rule, &mut rules);
            }
            for peer_rule in deny {
                self.emit(dir, Action::Deny, s, peer_rule, &mut rules);
            }
        }
        let mut rules = merge_server_names(rules)?;
        if !default_deny {
            // spec §4.1 case 3 and §4.3 item 7: allow everything not denied; L7 rules only observe.
            rules.push(synthetic(
                "default-allow",
                "every selecting rule sets enableDefaultDeny to false, so everything not denied is allowed",
                Peers::Any,
            ));
        }
        if dir == Dir::Ingress {
            // spec §4.1 item 8: the local node may always reach its pods (allow-localhost=always).
            rules.push(synthetic(
                "allow-localhost",
                "the local node may always reach its pods",
                Peers::Identities(vec![fc::HOST]),
            ));
        }
        Ok(DirectionPolicy { enforced: true, rules, audit: None })
    }

    /// Turns one `ingress`/`egress`/`...Deny` element into filter rules (spec §3.1 nil vs empty).
    fn emit(
        &self,
        dir: Dir,
        action: Action,
        s: &Selecting,
        peer_rule: &PeerRule,
        out: &mut Vec<fc::Rule>,
    ) {
        let peers = match &peer_rule.peer {
            // No L3 field: every identity, but only through ports (`{}` allows nothing).
            None if peer_rule.to_ports.is_empty() => return,
            None => Peers::Any,
            Some(peer) => match self.peers(s.policy, peer) {
                Some(peers) => peers,
                None => return,
            },
        };
        let origin = |path: &str| Origin {
            kind: s.policy.kind.kind_name().into(),
            policy: s.policy.qualified_name(),
            rule: path.into(),
        };
        if peer_rule.to_ports.is_empty() {
            out.push(fc::Rule {
                action,
                origin: origin(&peer_rule.path),
                peers,
                ports: None,
                http: None,
                server_names: None,
            });
            return;
        }
        for port_rule in &peer_rule.to_ports {
            let ports = self.port_ranges(dir, port_rule);
            if ports.is_empty() {
                continue; // a port rule without (resolvable) ports contributes nothing
            }
            let http = port_rule
                .http
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.iter().map(http_rule).collect());
            out.push(fc::Rule {
                action,
                origin: origin(&port_rule.path),
                peers: peers.clone(),
                ports: Some(ports),
                http,
                server_names: (!port_rule.server_names.is_empty())
                    .then(|| port_rule.server_names.clone()),
            });
        }
    }

    /// The identities an L3 field selects; `None` when it selects nothing.
    fn peers(&self, policy: &Policy, peer: &Peer) -> Option<Peers> {
        let ids: BTreeSet<fc::Identity> = match peer {
            Peer::Fqdns(selectors) => {
                return (!selectors.is_empty())
                    .then(|| Peers::Fqdns(selectors.iter().map(fqdn_selector).collect()));
            }
            Peer::Entities(entities) if entities.contains(&Entity::All) => return Some(Peers::Any),
            Peer::Entities(entities) => entities.iter().flat_map(|e| self.entity(*e)).collect(),
            Peer::Endpoints(selectors) => {
                selectors.iter().flat_map(|s| self.ids.select(&peer_selector(policy, s))).collect()
            }
            // spec §3.4: the CIDR identities inside the prefix and outside its `except`s. Every
            // prefix a policy names has an identity in the ipcache, so `0.0.0.0/0` covers every
            // unknown IPv4 address through its own identity and never IPv6 (spec §2.4: world is
            // `0.0.0.0/0` + `::/0`).
            Peer::Cidrs(cidrs) => cidrs
                .iter()
                .flat_map(|c| {
                    self.ids
                        .of_cidr
                        .iter()
                        .filter(|(p, _)| {
                            c.cidr.contains(p) && !c.except.iter().any(|e| e.contains(p))
                        })
                        .map(|(_, id)| *id)
                })
                .collect(),
            // spec §3.5: a Service with a pod selector selects its pods (in its namespace); one
            // without selects its backend addresses as CIDRs (which never select pods).
            Peer::Services(selectors) => {
                let mut ids = BTreeSet::new();
                for service in services_selected(&self.inventory.services, selectors) {
                    match &service.selector {
                        Some(pods) => ids.extend(self.ids.select(&pod_selector(service, pods))),
                        None => ids.extend(
                            service
                                .addresses
                                .iter()
                                .filter_map(|a| self.ids.of_cidr.get(&Cidr::host(*a)).copied()),
                        ),
                    }
                }
                ids
            }
        };
        (!ids.is_empty()).then(|| Peers::Identities(ids.into_iter().collect()))
    }

    /// spec §2.4: the identities an entity stands for.
    fn entity(&self, entity: Entity) -> Vec<fc::Identity> {
        match entity {
            Entity::World => {
                std::iter::once(fc::WORLD).chain(self.ids.of_cidr.values().copied()).collect()
            }
            Entity::Cluster => self
                .ids
                .pods()
                .chain([
                    fc::HOST,
                    fc::REMOTE_NODE,
                    fc::INIT,
                    fc::HEALTH,
                    fc::INGRESS,
                    fc::UNMANAGED,
                    fc::KUBE_APISERVER,
                ])
                .collect(),
            Entity::Host => vec![fc::HOST],
            Entity::RemoteNode => vec![fc::REMOTE_NODE],
            Entity::KubeApiserver => vec![fc::KUBE_APISERVER],
            Entity::Ingress => vec![fc::INGRESS],
            Entity::Health => vec![fc::HEALTH],
            Entity::Init => vec![fc::INIT],
            Entity::Unmanaged => vec![fc::UNMANAGED],
            Entity::None | Entity::All => vec![],
        }
    }

    /// spec §3.8: numbers, ranges, port 0 = every port, ANY = TCP+UDP+SCTP, named ports resolved
    /// on the subject (ingress) or across all endpoints (egress; ambiguous names resolve to nothing).
    fn port_ranges(&self, dir: Dir, rule: &PortRule) -> Vec<PortRange> {
        let mut out = Vec::new();
        for p in &rule.ports {
            let (first, last) = match &p.port {
                Port::Number(0) => (0, u16::MAX),
                Port::Number(n) => (*n, p.end_port.filter(|e| e > n).unwrap_or(*n)),
                Port::Named(name) => {
                    let number = match dir {
                        Dir::Ingress => self.subject.ports.get(name).copied(),
                        Dir::Egress => self.egress_ports.get(name).copied().flatten(),
                    };
                    match number {
                        Some(n) => (n, n),
                        None => continue,
                    }
                }
            };
            let protocols: &[Protocol] = match p.protocol {
                L4Protocol::Tcp => &[Protocol::Tcp],
                L4Protocol::Udp => &[Protocol::Udp],
                L4Protocol::Sctp => &[Protocol::Sctp],
                L4Protocol::Any => &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
            };
            out.extend(protocols.iter().map(|protocol| PortRange {
                protocol: *protocol,
                first,
                last,
            }));
        }
        out
    }
}

fn synthetic(policy: &str, why: &str, peers: Peers) -> fc::Rule {
    fc::Rule {
        action: Action::Allow,
        origin: Origin { kind: "l7gate".into(), policy: policy.into(), rule: why.into() },
        peers,
        ports: None,
        http: None,
        server_names: None,
    }
}

/// spec §4.3 item 6: for the same peers and port, the `serverNames` of every allow rule are
/// unioned and the union applies to each of them, so a rule without `serverNames` does not lift
/// another's SNI requirement (Cilium merges per selector and port; l7gate per rule's peer set
/// and port range). Rules of such peers are split per port range first, so the union stays per
/// port. A rule with HTTP rules in such a group fails, as in Cilium.
fn merge_server_names(rules: Vec<fc::Rule>) -> Result<Vec<fc::Rule>, String> {
    let sni_peers: Vec<&Peers> =
        rules.iter().filter(|r| r.server_names.is_some()).map(|r| &r.peers).collect();
    if sni_peers.is_empty() {
        return Ok(rules);
    }
    let involved = |r: &fc::Rule| r.action == Action::Allow && sni_peers.contains(&&r.peers);
    let mut split = Vec::with_capacity(rules.len());
    for rule in &rules {
        match &rule.ports {
            Some(ranges) if involved(rule) && ranges.len() > 1 => split
                .extend(ranges.iter().map(|r| fc::Rule { ports: Some(vec![*r]), ..rule.clone() })),
            _ => split.push(rule.clone()),
        }
    }
    let key = |r: &fc::Rule| match &r.ports {
        Some(ranges) if involved(r) => ranges.first().map(|range| (r.peers.clone(), *range)),
        _ => None,
    };
    let mut unions: Vec<((Peers, PortRange), BTreeSet<String>)> = Vec::new();
    for rule in &split {
        let (Some(k), Some(names)) = (key(rule), &rule.server_names) else { continue };
        match unions.iter_mut().find(|(u, _)| *u == k) {
            Some((_, set)) => set.extend(names.iter().cloned()),
            None => unions.push((k, names.iter().cloned().collect())),
        }
    }
    for rule in &mut split {
        let Some(k) = key(rule) else { continue };
        let Some((_, names)) = unions.iter().find(|(u, _)| *u == k) else { continue };
        if rule.http.is_some() {
            return Err(format!(
                "{} {}: cannot merge its HTTP rules with the serverNames ({}) of another rule for \
                 the same peers and port: Cilium refuses SNI filtering together with L7 rules \
                 without TLS termination; give the TLS traffic its own port or peers",
                rule.origin.policy,
                rule.origin.rule,
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        rule.server_names = Some(names.iter().cloned().collect());
    }
    Ok(split)
}

fn egress_named_ports(inventory: &Inventory) -> BTreeMap<String, Option<u16>> {
    let mut ports: BTreeMap<String, Option<u16>> = BTreeMap::new();
    for (name, number) in inventory.endpoints.iter().flat_map(|e| e.ports.iter()) {
        ports
            .entry(name.clone())
            .and_modify(|known| {
                if *known != Some(*number) {
                    *known = None;
                }
            })
            .or_insert(Some(*number));
    }
    ports
}

fn namespace_requirement(policy: &Policy, operator: Operator) -> Requirement {
    Requirement {
        key: format!("k8s:{NAMESPACE_LABEL}"),
        operator,
        values: policy.namespace.iter().cloned().collect(),
    }
}

/// spec §2.3: a CNP's subject selector is confined to its namespace (a user-written
/// `k8s:io.kubernetes.pod.namespace` is overwritten); a CCNP's is left alone.
fn subject_selector(policy: &Policy, selector: &Selector) -> Selector {
    match policy.kind {
        PolicyKind::Clusterwide => selector.clone(),
        PolicyKind::Namespaced => {
            let own = format!("k8s:{NAMESPACE_LABEL}");
            let mut requirements: Vec<Requirement> =
                selector.requirements.iter().filter(|r| r.key != own).cloned().collect();
            requirements.push(namespace_requirement(policy, Operator::In));
            Selector { requirements }
        }
    }
}

/// spec §2.3: peer endpoint selectors get the policy's namespace (CNP) or "any namespace" (CCNP)
/// unless they name a reserved label, the namespace label, or (CNP) a namespace-label key.
fn peer_selector(policy: &Policy, selector: &Selector) -> Selector {
    let keys: Vec<(Option<&str>, &str)> =
        selector.requirements.iter().map(|r| split_key(&r.key)).collect();
    let untouched = keys.iter().any(|(source, _)| *source == Some("reserved"))
        || keys
            .iter()
            .any(|(source, key)| *key == NAMESPACE_LABEL && matches!(source, None | Some("k8s")))
        || (policy.kind == PolicyKind::Namespaced
            && keys.iter().any(|(_, key)| key.starts_with(NAMESPACE_LABELS_PREFIX)));
    if untouched {
        return selector.clone();
    }
    let operator = match policy.kind {
        PolicyKind::Namespaced => Operator::In,
        PolicyKind::Clusterwide => Operator::Exists,
    };
    let mut scoped = selector.clone();
    scoped.requirements.push(namespace_requirement(policy, operator));
    scoped
}

/// The Services of the inventory a `toServices` list selects (spec §3.5): by name, or by the
/// Service's labels; a selector without namespace matches every namespace, as in Cilium.
pub fn services_selected<'s>(
    services: &'s [Service],
    selectors: &'s [ServiceSelector],
) -> impl Iterator<Item = &'s Service> {
    services.iter().filter(move |s| {
        let labels: LabelSet = s
            .labels
            .iter()
            .map(|(k, v)| Label { source: "k8s".into(), key: k.clone(), value: v.clone() })
            .collect();
        selectors.iter().any(|sel| match sel {
            ServiceSelector::Name { name, namespace } => {
                *name == s.name && namespace.as_ref().is_none_or(|n| *n == s.namespace)
            }
            ServiceSelector::Labels { selector, namespace } => {
                namespace.as_ref().is_none_or(|n| *n == s.namespace)
                    && crate::identity::selector_matches(selector, &labels)
            }
        })
    })
}

/// A Service's pod selector as an endpoint selector in the Service's namespace.
fn pod_selector(service: &Service, pods: &BTreeMap<String, String>) -> Selector {
    let requirement = |key: String, value: &str| Requirement {
        key,
        operator: Operator::In,
        values: vec![value.to_string()],
    };
    let mut requirements: Vec<Requirement> =
        pods.iter().map(|(k, v)| requirement(format!("k8s:{k}"), v)).collect();
    requirements.push(requirement(format!("k8s:{NAMESPACE_LABEL}"), &service.namespace));
    Selector { requirements }
}

fn fqdn_selector(s: &m::FqdnSelector) -> fc::FqdnSelector {
    match s {
        m::FqdnSelector::MatchName(n) => fc::FqdnSelector::MatchName(n.clone()),
        m::FqdnSelector::MatchPattern(p) => fc::FqdnSelector::MatchPattern(p.clone()),
    }
}

/// spec §5.4: a `headers` string is split at its first space: one token = presence, two =
/// name (trailing `:` removed) and exact value. `headerMatches` are name/value conditions.
fn http_rule(rule: &m::HttpRule) -> fc::HttpRule {
    let headers = rule
        .headers
        .iter()
        .map(|h| match h.split_once(' ') {
            None => HeaderCondition { name: h.to_ascii_lowercase(), value: None, mismatch: None },
            Some((name, value)) => HeaderCondition {
                name: name.trim_end_matches(':').to_ascii_lowercase(),
                value: Some(value.to_string()),
                mismatch: None,
            },
        })
        .chain(rule.header_matches.iter().map(|h| HeaderCondition {
            name: h.name.to_ascii_lowercase(),
            value: h.value.clone(),
            mismatch: h.mismatch,
        }))
        .collect();
    fc::HttpRule {
        method: rule.method.clone(),
        path: rule.path.clone(),
        host: rule.host.clone(),
        headers,
    }
}
