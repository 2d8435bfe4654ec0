//! Typed model of CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy, as parsed and validated.
//! Names follow Cilium's API (`pkg/policy/api`); every value here already passed validation
//! (spec §7), so later stages never re-check syntax. Fields l7gate cannot enforce are rejected by
//! the parser and have no place here.

use l7gate_filter::config::Mismatch;
use std::collections::BTreeMap;
use std::path::PathBuf;

use l7gate_filter::cidr::Cidr;

use crate::diag::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// `CiliumNetworkPolicy`: namespaced (spec §2.3).
    Namespaced,
    /// `CiliumClusterwideNetworkPolicy`.
    Clusterwide,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 2] = [PolicyKind::Namespaced, PolicyKind::Clusterwide];

    pub fn kind_name(self) -> &'static str {
        match self {
            PolicyKind::Namespaced => "CiliumNetworkPolicy",
            PolicyKind::Clusterwide => "CiliumClusterwideNetworkPolicy",
        }
    }
}

/// One policy object (one YAML document).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub name: String,
    /// The namespace of a CNP (defaulted to `default` when missing, spec §1.1); `None` for a CCNP.
    pub namespace: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// File the policy came from and the position of its document.
    pub file: PathBuf,
    pub span: Span,
    /// Rules from `spec` and `specs`, in that order.
    pub rules: Vec<Rule>,
}

impl Policy {
    /// `namespace/name` for a CNP, `name` for a CCNP.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// One rule (`spec` or an element of `specs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Field path of the rule: `spec` or `specs[N]`.
    pub path: String,
    pub span: Span,
    /// The subjects (`endpointSelector`, required: `nodeSelector` is rejected).
    pub endpoint_selector: Selector,
    pub ingress: Vec<PeerRule>,
    pub ingress_deny: Vec<PeerRule>,
    pub egress: Vec<PeerRule>,
    pub egress_deny: Vec<PeerRule>,
    /// `enableDefaultDeny` (spec §4.1); `None` = not written (defaults to true).
    pub default_deny: DefaultDeny,
    /// `description`: free text, no effect.
    pub description: Option<String>,
    /// `labels`: metadata only.
    pub labels: Vec<RuleLabel>,
    /// `log.value`: attached to verdicts of this rule.
    pub log: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultDeny {
    pub ingress: Option<bool>,
    pub egress: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLabel {
    pub key: String,
    pub value: String,
    pub source: String,
}

/// One element of `ingress`, `ingressDeny`, `egress` or `egressDeny` (spec §3.1).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRule {
    /// Field path, e.g. `spec.ingress[0]`.
    pub path: String,
    pub span: Span,
    /// The single L3 field, if any. `None` = no L3 field was written (the rule's peers are every
    /// identity if it has ports, nothing otherwise: spec §3.1 nil vs empty).
    pub peer: Option<Peer>,
    /// `toPorts`; empty when absent or `[]` (both mean L3-only when `peer` is set).
    pub to_ports: Vec<PortRule>,
}

/// The L3 part of a rule. Lists may be empty (`fromEndpoints: []` allows nothing).
#[derive(Debug, Clone, PartialEq)]
pub enum Peer {
    /// `fromEndpoints` / `toEndpoints`.
    Endpoints(Vec<Selector>),
    /// `fromCIDR`/`toCIDR` (as rules without `except`) and `fromCIDRSet`/`toCIDRSet`.
    Cidrs(Vec<CidrRule>),
    /// `fromEntities` / `toEntities`.
    Entities(Vec<Entity>),
    /// `toFQDNs` (egress allow rules only).
    Fqdns(Vec<FqdnSelector>),
    /// `toServices` (egress; spec §3.5).
    Services(Vec<ServiceSelector>),
}

/// A `toServices` element (spec §3.5). Without a namespace it matches Services of every
/// namespace, as Cilium does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceSelector {
    /// `k8sService`: by name.
    Name { name: String, namespace: Option<String> },
    /// `k8sServiceSelector`: by the Service's own labels.
    Labels { selector: Selector, namespace: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrRule {
    pub cidr: Cidr,
    /// Prefixes inside `cidr` that are excluded (same family, validated).
    pub except: Vec<Cidr>,
}

/// Entities (spec §2.4). `world-ipv4`/`world-ipv6` are refused as the CRD does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    World,
    Cluster,
    Host,
    RemoteNode,
    KubeApiserver,
    Ingress,
    Health,
    Init,
    Unmanaged,
    None,
    All,
}

impl Entity {
    /// Parses the policy spelling (`remote-node`, `kube-apiserver`, ...).
    pub fn parse(s: &str) -> Option<Entity> {
        Some(match s {
            "world" => Entity::World,
            "cluster" => Entity::Cluster,
            "host" => Entity::Host,
            "remote-node" => Entity::RemoteNode,
            "kube-apiserver" => Entity::KubeApiserver,
            "ingress" => Entity::Ingress,
            "health" => Entity::Health,
            "init" => Entity::Init,
            "unmanaged" => Entity::Unmanaged,
            "none" => Entity::None,
            "all" => Entity::All,
            _ => return None,
        })
    }
}

/// A Kubernetes label selector; `matchLabels` entries become `In` requirements with one value.
/// No requirements = the wildcard selector `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

/// One requirement. `key` is as written: `app`, `k8s:app`, `reserved:host`, `any:app`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Non-empty for `In`/`NotIn`, empty for `Exists`/`DoesNotExist`.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// `toFQDNs` / `rules.dns` element (spec §6.2), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FqdnSelector {
    MatchName(String),
    MatchPattern(String),
}

/// One `toPorts` element (spec §3.8).
#[derive(Debug, Clone, PartialEq)]
pub struct PortRule {
    pub path: String,
    pub span: Span,
    /// 1 to 40 entries. Empty only when `ports` was omitted (such a port rule allows nothing).
    pub ports: Vec<PortProtocol>,
    /// `rules.http`; `None` when absent. `Some(vec![])` is kept (it means no L7 restriction).
    pub http: Option<Vec<HttpRule>>,
    /// `rules.dns` (egress only): accepted, enforced as an L4 allow (spec §6.4).
    pub dns: Option<Vec<FqdnSelector>>,
    /// `serverNames`, lower-cased (spec §3.8): the connection must be TLS with one of these SNIs.
    pub server_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortProtocol {
    pub port: Port,
    /// Inclusive end of a range; `None` when absent, 0, or not above `port`.
    pub end_port: Option<u16>,
    pub protocol: L4Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    /// A number; 0 means every port.
    Number(u16),
    /// A named (container) port, lower-cased.
    Named(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Protocol {
    Tcp,
    Udp,
    Sctp,
    /// Omitted or `ANY`: TCP, UDP and SCTP.
    Any,
}

/// One `rules.http` element (spec §5), with regexes already known to compile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRule {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    /// `headers` strings as written (split rules in spec §5.4).
    pub headers: Vec<String>,
    /// `headerMatches` without `mismatch` or `secret` (those are rejected).
    pub header_matches: Vec<HeaderMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    pub name: String,
    /// `None` = presence check.
    pub value: Option<String>,
    /// `mismatch` (spec §5.5); `None` = the condition must hold.
    pub mismatch: Option<Mismatch>,
}
