//! The filter configuration: the one contract between the control plane (its only producer) and
//! the filter (its only consumer). Versioned JSON; unknown fields are errors, never ignored.
//!
//! Everything here is already resolved by the control plane: selectors became numeric identity
//! sets, named ports became numbers, default-deny and Cilium's merge rules (spec §4) became plain
//! allow/deny rules. The filter only indexes and evaluates.

use serde::{Deserialize, Serialize};

/// The schema version this build reads and writes. A config with another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// Per-endpoint filter configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Must equal [`SCHEMA_VERSION`].
    pub version: u32,
    /// The endpoint (pod) this Envoy fronts: the policy subject.
    pub endpoint: EndpointRef,
    /// Names of the identities used in this config, for logs and explanations.
    #[serde(default)]
    pub identities: Vec<IdentityInfo>,
    /// Peer IP/CIDR to identity (Cilium's ipcache). Longest prefix wins; an address in no entry
    /// has identity [`WORLD`].
    #[serde(default)]
    pub ipcache: Vec<IpCacheEntry>,
    /// The endpoint's own local addresses (loopback, unspecified, link-local), marked [`HOST`],
    /// and the ranges among them the inventory declares outside ([`WORLD`]); longest prefix
    /// wins. Only egress consults it: a local address is never a destination of the egress
    /// proxy (an IP literal there is denied, a DNS answer there dropped), and a local caller of
    /// the egress listeners is the endpoint itself. Required: a config without it is refused,
    /// never read as "nothing is local".
    pub local: Vec<IpCacheEntry>,
    /// Traffic arriving at the endpoint (peer = source).
    pub ingress: DirectionPolicy,
    /// Traffic leaving the endpoint (peer = destination).
    pub egress: DirectionPolicy,
}

/// Numeric identity of a peer, as in Cilium (reserved identities below 256).
pub type Identity = u32;

/// `reserved:host`: the local node.
pub const HOST: Identity = 1;
/// `reserved:world`: anything outside the cluster, and any address the ipcache does not know.
pub const WORLD: Identity = 2;
/// `reserved:unmanaged`.
pub const UNMANAGED: Identity = 3;
/// `reserved:health`.
pub const HEALTH: Identity = 4;
/// `reserved:init`.
pub const INIT: Identity = 5;
/// `reserved:remote-node`: other nodes of the cluster.
pub const REMOTE_NODE: Identity = 6;
/// `reserved:kube-apiserver`.
pub const KUBE_APISERVER: Identity = 7;
/// `reserved:ingress`.
pub const INGRESS: Identity = 8;
/// The first identity of a CIDR prefix (Cilium's local-identity scope): identities from here on
/// stand for addresses outside the cluster that a policy names by prefix.
pub const FIRST_CIDR_IDENTITY: Identity = 1 << 24;

/// Whether `id` stands for addresses outside the cluster: the world or a CIDR prefix.
pub fn is_outside(id: Identity) -> bool {
    id == WORLD || id >= FIRST_CIDR_IDENTITY
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRef {
    pub name: String,
    pub namespace: String,
    /// The endpoint's own identity: its egress listeners serve only callers of this identity
    /// (or from an address `local` says is its own host).
    pub identity: Identity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityInfo {
    pub id: Identity,
    /// A short human name: `default/frontend` for a pod identity, `reserved:world`, `cidr:10.0.0.0/8`.
    pub name: String,
    /// The identity's security-relevant labels, `source:key=value`.
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpCacheEntry {
    /// `a.b.c.d/len` or an IPv6 prefix.
    pub cidr: String,
    pub identity: Identity,
}

/// The resolved policy of one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionPolicy {
    /// False when no policy selecting the endpoint has a section for this direction: everything
    /// is allowed (spec §4.1 case 1). When true, only what `rules` allow passes.
    pub enforced: bool,
    /// Allow and deny rules; order is irrelevant to the verdict (deny wins, allows are a union).
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// The audit view (spec §8): this direction resolved again with the audit-mode policies
    /// included. `enforced` and `rules` above leave them out and decide; a request they allow
    /// but this view denies passes with verdict `audit`. Absent when no audit-mode policy changes
    /// the direction. An audit view has no audit view of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Box<DirectionPolicy>>,
}

/// One resolved rule: "for these peers on these ports, allow (with optional L7 rules) or deny".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub action: Action,
    /// Where the rule came from, for verdict attribution.
    pub origin: Origin,
    /// Which peers the rule is about.
    pub peers: Peers,
    /// Ports the rule covers; absent = every port of every protocol (an L3-only rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortRange>>,
    /// HTTP rules (allow rules only). Absent = no L7 restriction; present = the request must
    /// match one element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRule>>,
    /// `serverNames` (spec §3.8, allow rules without HTTP rules only): present = the rule
    /// counts only for a TLS connection whose SNI matches one of these (a name, `*.domain` for
    /// one label more, `**.domain` for one or more; case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

/// Attribution of a rule to the policy text it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// `CiliumNetworkPolicy`, `CiliumClusterwideNetworkPolicy`, or `l7gate` for rules the
    /// control plane adds itself (default allow when default-deny is off, allow-localhost).
    pub kind: String,
    /// Policy name; `namespace/name` for namespaced policies.
    pub policy: String,
    /// Field path of the rule inside the policy, e.g. `spec.ingress[0]` or `specs[1].egressDeny[0]`.
    pub rule: String,
}

/// The peers a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Peers {
    /// Every peer identity.
    Any,
    /// Peers whose identity is in this set.
    Identities(Vec<Identity>),
    /// Egress peers reached by a DNS name (TLS SNI or HTTP Host) matching one of these.
    Fqdns(Vec<FqdnSelector>),
}

/// `toFQDNs` element (spec §6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum FqdnSelector {
    MatchName(String),
    MatchPattern(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// An inclusive port range of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    pub protocol: Protocol,
    pub first: u16,
    pub last: u16,
}

/// One `rules.http` element (spec §5): every present field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRule {
    /// Regex, full match against `:method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Regex, full match against the normalised `:path` (query included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Regex, full match against `:authority` as sent (port included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Header conditions (from `headers` and `headerMatches`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderCondition>,
}

/// A request header that must be present, with an exact value if one is given; with `mismatch`
/// it never fails the element, and the action applies when the header is missing or different.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCondition {
    /// Header name, lower-case.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `headerMatches[].mismatch` (spec §5.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
}

/// What a header condition with `mismatch` does when the header is missing or different
/// (spec §5.5): the element still matches, and the request goes on
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mismatch {
    /// unchanged, the mismatch recorded in the flow record;
    Log,
    /// with the header added with the policy's value (existing values kept);
    Add,
    /// without the mismatching header (a missing one stays missing);
    Delete,
    /// with the header set to the policy's value (added if missing).
    Replace,
}

impl Mismatch {
    /// The action as Cilium spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mismatch::Log => "LOG",
            Mismatch::Add => "ADD",
            Mismatch::Delete => "DELETE",
            Mismatch::Replace => "REPLACE",
        }
    }
}

impl Config {
    /// Parses a config from JSON, checking the schema version.
    pub fn from_json(bytes: &[u8]) -> Result<Config, String> {
        let config: Config =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid l7gate config: {e}"))?;
        if config.version != SCHEMA_VERSION {
            return Err(format!(
                "l7gate config version {} is not supported by this filter (it reads version {SCHEMA_VERSION})",
                config.version
            ));
        }
        Ok(config)
    }

    /// Renders the config as compact JSON (the error, were serde to give one, is passed on
    /// rather than turned into an empty config).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}
