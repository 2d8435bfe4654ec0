//! Reads CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy YAML into the typed model.
//! A hand-written decoder over saphyr's marked nodes: one function per Cilium type checks types
//! and fields, calls `validate` for Cilium's rules, records every problem with file, line, column
//! and field path, and carries on, so one run reports all errors of a file. Nothing is returned
//! when any file has an error (a policy set is never half-applied).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use saphyr::{ScalarOwned, YamlDataOwned};

use crate::yaml::{
    data, describe, file_error, is_empty_seq, peek_str, seq_len, span_of, yaml_files, Decoder,
    Fields, Node, Shape,
};

use super::model::{
    CidrRule, DefaultDeny, Entity, FqdnSelector, HeaderMatch, HttpRule, L4Protocol, Operator, Peer,
    PeerRule, Policy, PolicyKind, PortProtocol, PortRule, Requirement, Rule, RuleLabel, Selector,
    ServiceSelector,
};
use super::validate::{self, L7Kind};
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::policy_test;

/// The policies of a successful load, and what the user should know about them.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub policies: Vec<Policy>,
    pub warnings: Vec<Diagnostic>,
    /// Documents that are not policies (a Deployment, a Service, ...), skipped: one line each.
    pub notes: Vec<Diagnostic>,
}

/// Parse one file's text (multi-document YAML). All errors of the file at once.
pub fn parse_str(file: &Path, text: &str) -> Result<Loaded, Diagnostics> {
    let mut load = Load::default();
    load.add_file(file, text);
    load.finish()
}

/// Parse several named texts as one policy set (e.g. objects from the Kubernetes API, each named
/// by its kind and `namespace/name`): errors of all at once, duplicates across them included.
pub fn parse_sources(sources: &[(PathBuf, String)]) -> Result<Loaded, Diagnostics> {
    let mut load = Load::default();
    for (file, text) in sources {
        load.add_file(file, text);
    }
    load.finish()
}

/// Load every `*.yaml` / `*.yml` file directly in `path` (sorted by name), or the single file
/// `path`. Errors of all files at once; if any file has an error, no policy is returned.
/// A (kind, namespace, name) defined twice is an error, and so is finding no policy at all; other
/// objects and empty documents are skipped (the former noted).
pub fn load_path(path: &Path) -> Result<Loaded, Diagnostics> {
    let mut load = Load::default();
    match yaml_files(path, "the policies") {
        Ok(files) => {
            for file in files {
                match crate::yaml::read_input(&file) {
                    Ok(text) => load.add_file(&file, &text),
                    Err(e) => load.errors.push(file_error(&file, e)),
                }
            }
        }
        Err(d) => load.errors.push(d),
    }
    let loaded = load.finish()?;
    if loaded.policies.is_empty() {
        // No policy selects anything, so everything would be allowed: most likely the wrong path.
        let skipped = match loaded.notes.len() {
            0 => String::new(),
            1 => " (1 other object skipped)".to_string(),
            n => format!(" ({n} other objects skipped)"),
        };
        let message = format!(
            "no CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy here{skipped}: point to \
             the policies (with no policy at all, nothing would be enforced)"
        );
        return Err(Diagnostics(vec![file_error(path, message)]));
    }
    Ok(loaded)
}

/// Policies, warnings and errors gathered over one or more files.
#[derive(Default)]
struct Load {
    policies: Vec<Policy>,
    warnings: Vec<Diagnostic>,
    notes: Vec<Diagnostic>,
    errors: Vec<Diagnostic>,
}

impl Load {
    fn add_file(&mut self, file: &Path, text: &str) {
        let mut decoder = Decoder::new(file);
        decoder.each_document(text, |d, doc| d.document(doc, "", &mut self.policies));
        self.errors.extend(decoder.errors);
        self.warnings.extend(decoder.warnings);
        self.notes.extend(decoder.notes);
    }

    fn finish(mut self) -> Result<Loaded, Diagnostics> {
        let (errors, notes) = duplicates(&mut self.policies);
        self.errors.extend(errors);
        self.notes.extend(notes);
        if self.errors.is_empty() {
            Ok(Loaded { policies: self.policies, warnings: self.warnings, notes: self.notes })
        } else {
            Err(Diagnostics(self.errors).sorted())
        }
    }
}

/// One error per policy whose (kind, namespace, name) was already defined with other content;
/// an identical copy (as `kubectl apply` of a file that lists one object twice would apply
/// twice) is dropped with a note.
fn duplicates(policies: &mut Vec<Policy>) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut seen = HashMap::new();
    let (mut errors, mut notes, mut copies) = (Vec::new(), Vec::new(), Vec::new());
    for (i, p) in policies.iter().enumerate() {
        match seen.entry((p.kind, p.namespace.as_deref(), p.name.as_str())) {
            Entry::Occupied(first) => {
                let first: &&Policy = first.get();
                if same_content(first, p) {
                    copies.push(i);
                    notes.push(Diagnostic::new(
                        &p.file,
                        p.span,
                        "metadata.name",
                        format!(
                            "{} {} again, identical to {}:{}:{}: read once",
                            p.kind.kind_name(),
                            p.qualified_name(),
                            first.file.display(),
                            first.span.line,
                            first.span.col
                        ),
                    ));
                    continue;
                }
                errors.push(Diagnostic::new(
                    &p.file,
                    p.span,
                    "metadata.name",
                    format!(
                        "duplicate {} {}: already defined at {}:{}:{}; rename one of them or \
                         delete the copy",
                        p.kind.kind_name(),
                        p.qualified_name(),
                        first.file.display(),
                        first.span.line,
                        first.span.col
                    ),
                ));
            }
            Entry::Vacant(slot) => {
                slot.insert(p);
            }
        }
    }
    for i in copies.into_iter().rev() {
        policies.remove(i);
    }
    (errors, notes)
}

/// Whether two policies say the same, wherever they were written.
fn same_content(a: &Policy, b: &Policy) -> bool {
    let positionless = |p: &Policy| -> Vec<Rule> {
        let mut rules = p.rules.clone();
        for rule in &mut rules {
            rule.span = Span::default();
            let sections = [
                &mut rule.ingress,
                &mut rule.ingress_deny,
                &mut rule.egress,
                &mut rule.egress_deny,
            ];
            for peer_rule in sections.into_iter().flatten() {
                peer_rule.span = Span::default();
                peer_rule.to_ports.iter_mut().for_each(|port| port.span = Span::default());
            }
        }
        rules
    };
    a.annotations == b.annotations && positionless(a) == positionless(b)
}

const fn shape(what: &'static str, fields: &'static [&'static str]) -> Shape {
    Shape { reject: validate::unenforced, ..Shape::plain(what, fields) }
}

static TOP: Shape = Shape {
    ignored: &["status"],
    ..shape("a policy document", &["apiVersion", "kind", "metadata", "spec", "specs"])
};
static METADATA: Shape = Shape {
    ignored: &["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"],
    ..shape("metadata", &["name", "namespace", "annotations", "labels"])
};
static RULE: Shape = Shape {
    unenforced: &["nodeSelector"],
    ..shape(
        "a rule",
        &[
            "endpointSelector",
            "ingress",
            "ingressDeny",
            "egress",
            "egressDeny",
            "enableDefaultDeny",
            "labels",
            "description",
            "log",
        ],
    )
};
static INGRESS: Shape = Shape {
    unenforced: &["fromGroups", "fromNodes", "fromRequires", "icmps"],
    ..shape(
        "an ingress rule",
        &["fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "toPorts", "authentication"],
    )
};
static INGRESS_DENY: Shape = Shape {
    unenforced: &["fromGroups", "fromNodes", "fromRequires", "icmps"],
    ..shape(
        "an ingressDeny rule",
        &["fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities", "toPorts"],
    )
};
static EGRESS: Shape = Shape {
    unenforced: &["toGroups", "toNodes", "toRequires", "icmps"],
    ..shape(
        "an egress rule",
        &[
            "toEndpoints",
            "toCIDR",
            "toCIDRSet",
            "toEntities",
            "toFQDNs",
            "toServices",
            "toPorts",
            "authentication",
        ],
    )
};
static EGRESS_DENY: Shape = Shape {
    unenforced: &["toGroups", "toNodes", "toRequires", "icmps", "toFQDNs"],
    ..shape(
        "an egressDeny rule",
        &["toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toServices", "toPorts"],
    )
};
static SERVICE: Shape = shape("a toServices entry", &["k8sService", "k8sServiceSelector"]);
static K8S_SERVICE: Shape = shape("k8sService", &["serviceName", "namespace"]);
static K8S_SERVICE_SELECTOR: Shape = shape("k8sServiceSelector", &["selector", "namespace"]);
static PORT_RULE: Shape = Shape {
    unenforced: &["terminatingTLS", "originatingTLS", "listener"],
    ..shape("a toPorts entry", &["ports", "rules", "serverNames"])
};
static DENY_PORT_RULE: Shape = Shape {
    unenforced: &["rules", "serverNames", "terminatingTLS", "originatingTLS", "listener"],
    reject: validate::deny_port_field,
    ..shape("a deny rule's toPorts entry", &["ports"])
};
static PORT_PROTOCOL: Shape = shape("a ports entry", &["port", "endPort", "protocol"]);
static L7_RULES: Shape =
    Shape { unenforced: &["kafka", "l7proto", "l7"], ..shape("rules", &["http", "dns"]) };
static HTTP_RULE: Shape =
    shape("an HTTP rule", &["method", "path", "host", "headers", "headerMatches"]);
static HEADER_MATCH: Shape = Shape {
    unenforced: &["secret"],
    ..shape("a headerMatches entry", &["name", "value", "mismatch"])
};
static SELECTOR: Shape = shape("a label selector", &["matchLabels", "matchExpressions"]);
static REQUIREMENT: Shape = shape("a matchExpressions entry", &["key", "operator", "values"]);
static CIDR_RULE: Shape = Shape {
    unenforced: &["cidrGroupRef", "cidrGroupSelector"],
    ..shape("a CIDR set entry", &["cidr", "except"])
};
static FQDN: Shape = shape("an FQDN selector", &["matchName", "matchPattern"]);
static AUTHENTICATION: Shape = shape("authentication", &["mode"]);
static DEFAULT_DENY: Shape = shape("enableDefaultDeny", &["ingress", "egress"]);
static RULE_LABEL: Shape = shape("a rule label", &["key", "value", "source"]);
static LOG: Shape = shape("log", &["value"]);

/// The four rule lists of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Ingress,
    IngressDeny,
    Egress,
    EgressDeny,
}

/// Kinds of L3 field (spec §3.1).
#[derive(Debug, Clone, Copy)]
enum L3 {
    Endpoints,
    Cidr,
    CidrSet,
    Entities,
    Fqdns,
    Services,
}

const FROM_L3: &[(&str, L3)] = &[
    ("fromEndpoints", L3::Endpoints),
    ("fromCIDR", L3::Cidr),
    ("fromCIDRSet", L3::CidrSet),
    ("fromEntities", L3::Entities),
];
const TO_L3: &[(&str, L3)] = &[
    ("toEndpoints", L3::Endpoints),
    ("toCIDR", L3::Cidr),
    ("toCIDRSet", L3::CidrSet),
    ("toEntities", L3::Entities),
    ("toFQDNs", L3::Fqdns),
    ("toServices", L3::Services),
];
const TO_DENY_L3: &[(&str, L3)] = &[
    ("toEndpoints", L3::Endpoints),
    ("toCIDR", L3::Cidr),
    ("toCIDRSet", L3::CidrSet),
    ("toEntities", L3::Entities),
    ("toServices", L3::Services),
];

impl Section {
    const ALL: [Section; 4] =
        [Section::Ingress, Section::IngressDeny, Section::Egress, Section::EgressDeny];

    fn field(self) -> &'static str {
        match self {
            Section::Ingress => "ingress",
            Section::IngressDeny => "ingressDeny",
            Section::Egress => "egress",
            Section::EgressDeny => "egressDeny",
        }
    }

    fn shape(self) -> &'static Shape {
        match self {
            Section::Ingress => &INGRESS,
            Section::IngressDeny => &INGRESS_DENY,
            Section::Egress => &EGRESS,
            Section::EgressDeny => &EGRESS_DENY,
        }
    }

    /// The L3 fields the section understands (`toFQDNs` only in egress allow rules).
    fn l3_fields(self) -> &'static [(&'static str, L3)] {
        match self {
            Section::Ingress | Section::IngressDeny => FROM_L3,
            Section::Egress => TO_L3,
            Section::EgressDeny => TO_DENY_L3,
        }
    }

    fn is_deny(self) -> bool {
        matches!(self, Section::IngressDeny | Section::EgressDeny)
    }
}

/// What a document is, by its `apiVersion` and `kind`.
enum Object {
    Policy(PolicyKind),
    /// `kind: List` (what `kubectl get -o yaml` prints) or `CiliumNetworkPolicyList`: `items`.
    List,
    /// Any other Kubernetes object (a Deployment beside the policies it is protected by): read
    /// no further, and said so in one note.
    Other,
}

/// Kubernetes' own network policy APIs: enforced by Cilium, not by l7gate, so a file holding one
/// is refused rather than half-applied.
const NETWORK_POLICY_GROUPS: &[&str] = &["networking.k8s.io", "policy.networking.k8s.io"];

/// `kind` is one of the policy kinds with a typo or in the wrong case (edit distance ≤ 2).
fn is_misspelling(kind: &str, policy_kind: &str) -> bool {
    let (a, b) = (kind.to_ascii_lowercase().into_bytes(), policy_kind.to_ascii_lowercase());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.bytes().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    kind != policy_kind && row[b.len()] <= 2
}

impl Decoder<'_> {
    /// One document (or `items[N]` of a list, at `path`): its policy, if any, goes to `out`.
    fn document(&mut self, doc: &Node, path: &str, out: &mut Vec<Policy>) {
        let Some(top) = self.mapping(doc, path, TOP.what) else { return };
        let kind = match self.object(&top) {
            Some(Object::Policy(kind)) => kind,
            Some(Object::List) => return self.list_items(&top, out),
            Some(Object::Other) | None => return,
        };
        let errors_before = self.errors.len();
        self.check_fields(&top, &TOP);
        let (name, namespace, annotations) = self.metadata(&top, kind);
        let mut rules = Vec::new();
        if let Some(node) = top.get("spec") {
            rules.extend(self.rule(node, &top.path("spec")));
        }
        if let Some(node) = top.get("specs") {
            rules.extend(self.list(node, &top.path("specs"), Self::rule).unwrap_or_default());
        }
        if top.get("spec").is_none() && top.get("specs").is_none_or(is_empty_seq) {
            self.error(doc, path, validate::EMPTY_POLICY);
        }
        if self.errors.len() == errors_before {
            out.push(Policy {
                kind,
                name,
                namespace,
                annotations,
                file: self.file.to_path_buf(),
                span: span_of(doc),
                rules,
            });
        }
    }

    /// The items of a `List`, each read as a document of its own.
    fn list_items(&mut self, list: &Fields, out: &mut Vec<Policy>) {
        if let Some(items) = list.get("items") {
            self.list(items, &list.path("items"), |d, item, path| {
                d.document(item, path, out);
                Some(())
            });
        }
    }

    /// `apiVersion` and `kind`; `None` after an error. Other objects are noted and skipped, except
    /// Kubernetes network policies and misspelt Cilium policy kinds, which are errors.
    fn object(&mut self, top: &Fields) -> Option<Object> {
        let api = self.required_string(top, "apiVersion", "add apiVersion: cilium.io/v2");
        let kind = self.required_string(top, "kind", "add kind: CiliumNetworkPolicy");
        let (api, kind) = (api?, kind?);
        let (api_node, kind_node) = (top.get("apiVersion")?, top.get("kind")?);
        let group = api.rsplit_once('/').map_or("", |(group, _)| group);
        let policy_kinds = PolicyKind::ALL.map(PolicyKind::kind_name);
        if let Some(policy) = PolicyKind::ALL.into_iter().find(|k| k.kind_name() == kind) {
            if api != "cilium.io/v2" {
                let message = format!(
                    "unsupported apiVersion {api:?}: l7gate reads cilium.io/v2 \
                     CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy objects"
                );
                self.error(api_node, &top.path("apiVersion"), message);
                return None;
            }
            return Some(Object::Policy(policy));
        }
        if kind == "List" || policy_kinds.iter().any(|k| kind.strip_suffix("List") == Some(k)) {
            return Some(Object::List);
        }
        let refusal = if NETWORK_POLICY_GROUPS.contains(&group) && kind.ends_with("NetworkPolicy") {
            Some(format!(
                "unsupported kind {kind:?} ({api}): l7gate enforces Cilium's policies only, so \
                 this policy would have no effect; write it as a CiliumNetworkPolicy, or keep it \
                 out of the policy files"
            ))
        } else if policy_kinds.iter().any(|k| is_misspelling(&kind, k)) {
            Some(format!(
                "unsupported kind {kind:?}: l7gate reads CiliumNetworkPolicy and \
                 CiliumClusterwideNetworkPolicy; correct the spelling"
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            self.error(kind_node, &top.path("kind"), message);
            return None;
        }
        let name = match (
            peek_str(top.node, &["metadata", "namespace"]),
            peek_str(top.node, &["metadata", "name"]),
        ) {
            (Some(ns), Some(name)) => format!(" {ns}/{name}"),
            (None, Some(name)) => format!(" {name}"),
            _ => String::new(),
        };
        let what = if (api.as_str(), kind.as_str()) == (policy_test::API_VERSION, policy_test::KIND)
        {
            "policy tests, run by `l7gate test`"
        } else {
            "not a Cilium network policy"
        };
        self.note(top.node, &top.path, format!("skipped {kind}{name} ({api}): {what}"));
        Some(Object::Other)
    }

    /// Name, namespace (spec §1.1: a CNP without one gets `default`, with a warning) and annotations.
    fn metadata(
        &mut self,
        top: &Fields,
        kind: PolicyKind,
    ) -> (String, Option<String>, BTreeMap<String, String>) {
        let Some(meta) = top
            .get("metadata")
            .and_then(|node| self.fields(node, &top.path("metadata"), &METADATA))
        else {
            if top.get("metadata").is_none() {
                self.error(
                    top.node,
                    &top.path("metadata.name"),
                    "must have name: add metadata: {name: <policy name>}",
                );
            }
            return (String::new(), None, BTreeMap::new());
        };
        let name = self.required_string(&meta, "name", "add name: <policy name>");
        if name.as_deref() == Some("") {
            self.error(meta.node, &top.path("metadata.name"), "must have name: the name is empty");
        }
        let namespace = match (kind, meta.entry("namespace")) {
            (PolicyKind::Clusterwide, Some((key, _))) => {
                self.error(
                    key,
                    &top.path("metadata.namespace"),
                    "a CiliumClusterwideNetworkPolicy is cluster-scoped and has no namespace: \
                     remove metadata.namespace, or use kind: CiliumNetworkPolicy",
                );
                None
            }
            (PolicyKind::Clusterwide, None) => None,
            (PolicyKind::Namespaced, Some((_, node))) => {
                let ns = self.string(node, &top.path("metadata.namespace"));
                if ns.as_deref() == Some("") {
                    self.error(
                        node,
                        &top.path("metadata.namespace"),
                        "the namespace is empty: write a namespace or remove the field",
                    );
                }
                ns
            }
            (PolicyKind::Namespaced, None) => {
                self.warn(
                    meta.node,
                    &top.path("metadata.namespace"),
                    "CiliumNetworkPolicy without namespace: using namespace \"default\" as kubectl \
                     would; write metadata.namespace to choose it",
                );
                Some("default".to_string())
            }
        };
        let annotations = meta
            .get("annotations")
            .and_then(|node| self.string_map(node, &top.path("metadata.annotations")))
            .unwrap_or_default();
        (name.unwrap_or_default(), namespace, annotations.into_iter().collect())
    }

    /// One rule (`spec` or `specs[N]`, spec §1.2).
    fn rule(&mut self, node: &Node, path: &str) -> Option<Rule> {
        let f = self.fields(node, path, &RULE)?;
        let endpoint_selector = match f.get("endpointSelector") {
            Some(sel) => self.selector(sel, &f.path("endpointSelector")),
            None => {
                if f.get("nodeSelector").is_none() {
                    self.error(node, &f.path("endpointSelector"), validate::NO_ENDPOINT_SELECTOR);
                }
                None
            }
        };
        let [ingress, ingress_deny, egress, egress_deny] =
            Section::ALL.map(|section| self.peer_rules(&f, section));
        if Section::ALL.iter().all(|s| f.get(s.field()).is_none_or(is_empty_seq)) {
            self.error(node, path, validate::NO_SECTIONS);
        }
        let default_deny = f
            .get("enableDefaultDeny")
            .and_then(|n| self.default_deny(n, &f.path("enableDefaultDeny")))
            .unwrap_or_default();
        let description = f.get("description").and_then(|n| self.string(n, &f.path("description")));
        let labels = f
            .get("labels")
            .and_then(|n| self.list(n, &f.path("labels"), Self::rule_label))
            .unwrap_or_default();
        let log = f.get("log").and_then(|n| self.log(n, &f.path("log")));
        Some(Rule {
            path: path.to_string(),
            span: span_of(node),
            endpoint_selector: endpoint_selector?,
            ingress,
            ingress_deny,
            egress,
            egress_deny,
            default_deny,
            description,
            labels,
            log,
        })
    }

    fn peer_rules(&mut self, rule: &Fields, section: Section) -> Vec<PeerRule> {
        let path = rule.path(section.field());
        rule.get(section.field())
            .and_then(|node| self.list(node, &path, |d, n, p| d.peer_rule(n, p, section)))
            .unwrap_or_default()
    }

    /// One element of ingress/ingressDeny/egress/egressDeny (spec §3.1).
    fn peer_rule(&mut self, node: &Node, path: &str, section: Section) -> Option<PeerRule> {
        let f = self.fields(node, path, section.shape())?;
        let mut written = Vec::new();
        for &(field, kind) in section.l3_fields() {
            if let Some((key, value)) = f.entry(field) {
                if let Some(peer) = self.peer(kind, value, &f.path(field)) {
                    written.push((field, key, peer));
                }
            }
        }
        // spec §3.1: at most one non-empty L3 field; an empty one still means "no peer".
        let non_empty: Vec<_> =
            written.iter().filter(|(_, _, peer)| !peer_is_empty(peer)).collect();
        if let Some(((first, _, _), rest)) = non_empty.split_first() {
            for (other, key, _) in rest {
                self.error(key, &f.path(other), validate::l3_combination(first, other));
            }
        }
        let peer = non_empty.first().copied().or(written.first()).map(|(_, _, peer)| peer.clone());
        let to_ports = f
            .get("toPorts")
            .and_then(|n| self.list(n, &f.path("toPorts"), |d, n, p| d.port_rule(n, p, section)))
            .unwrap_or_default();
        if let Some((key, icmps)) = f.entry("icmps") {
            if !is_empty_seq(icmps) && f.get("toPorts").is_some_and(|t| !is_empty_seq(t)) {
                self.error(key, &f.path("icmps"), validate::ICMPS_WITH_TO_PORTS);
            }
        }
        if let Some(auth) = f.get("authentication") {
            self.authentication(auth, &f.path("authentication"));
        }
        Some(PeerRule { path: path.to_string(), span: span_of(node), peer, to_ports })
    }

    fn peer(&mut self, kind: L3, node: &Node, path: &str) -> Option<Peer> {
        match kind {
            L3::Endpoints => self.list(node, path, Self::selector).map(Peer::Endpoints),
            L3::Cidr => self.list(node, path, Self::cidr_prefix).map(Peer::Cidrs),
            L3::CidrSet => self.list(node, path, Self::cidr_rule).map(Peer::Cidrs),
            L3::Entities => self.list(node, path, Self::entity).map(Peer::Entities),
            L3::Fqdns => self.list(node, path, Self::fqdn).map(Peer::Fqdns),
            L3::Services => self.list(node, path, Self::service_selector).map(Peer::Services),
        }
    }

    /// A `toServices` entry (spec §3.5): exactly one of `k8sService`, `k8sServiceSelector`.
    fn service_selector(&mut self, node: &Node, path: &str) -> Option<ServiceSelector> {
        let f = self.fields(node, path, &SERVICE)?;
        let namespace = |d: &mut Self, f: &Fields<'_>| {
            f.get("namespace")
                .and_then(|n| d.string(n, &f.path("namespace")))
                .filter(|s| !s.is_empty())
        };
        match (f.get("k8sService"), f.get("k8sServiceSelector")) {
            (Some(n), None) => {
                let s = self.fields(n, &f.path("k8sService"), &K8S_SERVICE)?;
                let name = self.required_string(&s, "serviceName", "name the Service")?;
                Some(ServiceSelector::Name { name, namespace: namespace(self, &s) })
            }
            (None, Some(n)) => {
                let s = self.fields(n, &f.path("k8sServiceSelector"), &K8S_SERVICE_SELECTOR)?;
                let Some(sel) = s.get("selector") else {
                    self.error(
                        n,
                        &s.path("selector"),
                        "missing required field selector: select the Services by their labels",
                    );
                    return None;
                };
                let selector = self.selector(sel, &s.path("selector"))?;
                Some(ServiceSelector::Labels { selector, namespace: namespace(self, &s) })
            }
            _ => {
                self.error(node, path, "a toServices entry needs exactly one of k8sService or k8sServiceSelector: split it into two entries");
                None
            }
        }
    }

    /// A `fromCIDR`/`toCIDR` entry: a prefix without `except` (spec §3.4).
    fn cidr_prefix(&mut self, node: &Node, path: &str) -> Option<CidrRule> {
        let text = self.string(node, path)?;
        let cidr = self.check(node, path, validate::cidr(&text))?;
        Some(CidrRule { cidr, except: Vec::new() })
    }

    /// A `fromCIDRSet`/`toCIDRSet` entry (spec §3.4).
    fn cidr_rule(&mut self, node: &Node, path: &str) -> Option<CidrRule> {
        let f = self.fields(node, path, &CIDR_RULE)?;
        let cidr = match f.get("cidr") {
            Some(n) => self
                .string(n, &f.path("cidr"))
                .and_then(|t| self.check(n, &f.path("cidr"), validate::cidr(&t))),
            None => {
                if CIDR_RULE.unenforced.iter().all(|group| f.get(group).is_none()) {
                    self.error(node, &f.path("cidr"), validate::CIDR_MISSING);
                }
                None
            }
        };
        let except_path = f.path("except");
        let except = f
            .get("except")
            .and_then(|n| {
                self.list(n, &except_path, |d, n, p| {
                    let text = d.string(n, p)?;
                    let prefix = d.check(n, p, validate::cidr(&text))?;
                    match &cidr {
                        Some(cidr) => {
                            d.check(n, p, validate::except(cidr, &prefix)).map(|()| prefix)
                        }
                        None => Some(prefix),
                    }
                })
            })
            .unwrap_or_default();
        Some(CidrRule { cidr: cidr?, except })
    }

    fn entity(&mut self, node: &Node, path: &str) -> Option<Entity> {
        let name = self.string(node, path)?;
        self.check(node, path, validate::entity(&name))
    }

    /// A `toFQDNs` or `rules.dns` entry (spec §6.2): exactly one of matchName, matchPattern.
    fn fqdn(&mut self, node: &Node, path: &str) -> Option<FqdnSelector> {
        let f = self.fields(node, path, &FQDN)?;
        let name = f.get("matchName").and_then(|n| {
            let p = f.path("matchName");
            let name = self.string(n, &p)?;
            self.check(n, &p, validate::match_name(&name)).map(|()| name)
        });
        let pattern = f.get("matchPattern").and_then(|n| {
            let p = f.path("matchPattern");
            let pattern = self.string(n, &p)?;
            self.check(n, &p, validate::match_pattern(&pattern))
        });
        match (f.get("matchName"), f.get("matchPattern")) {
            (Some(_), Some(_)) => self.error(node, path, validate::FQDN_BOTH),
            (None, None) => self.error(node, path, validate::FQDN_NEITHER),
            _ => {}
        }
        name.map(FqdnSelector::MatchName).or(pattern.map(FqdnSelector::MatchPattern))
    }

    /// One `toPorts` entry (spec §3.8); deny rules take `ports` only.
    fn port_rule(&mut self, node: &Node, path: &str, section: Section) -> Option<PortRule> {
        let shape = if section.is_deny() { &DENY_PORT_RULE } else { &PORT_RULE };
        let f = self.fields(node, path, shape)?;
        let ports_node = f.get("ports");
        let ports = match ports_node {
            Some(n) => {
                let count = seq_len(n).unwrap_or_default();
                if count > validate::MAX_PORTS {
                    self.error(n, &f.path("ports"), validate::too_many_ports(count));
                }
                self.list(n, &f.path("ports"), |d, n, p| {
                    d.port_protocol(n, p).map(|pp| (span_of(n), p.to_string(), pp))
                })
                .unwrap_or_default()
            }
            None => Vec::new(),
        };
        let l7 = match f.get("rules") {
            Some(n) => self.l7_rules(n, &f.path("rules"), section),
            None => L7::default(),
        };
        let server_names = self.server_names(&f, section, l7.kind.is_some());
        if let Some(kind) = l7.kind {
            for (span, port_path, pp) in &ports {
                if let Err(message) = validate::l7_port(pp, kind) {
                    self.error_at(*span, port_path, message);
                }
            }
            if kind == L7Kind::Dns && ports_node.is_none_or(is_empty_seq) {
                self.error(node, &f.path("ports"), validate::DNS_WITHOUT_PORTS);
            }
        }
        Some(PortRule {
            path: path.to_string(),
            span: span_of(node),
            ports: ports.into_iter().map(|(_, _, pp)| pp).collect(),
            http: l7.http,
            dns: l7.dns,
            server_names,
        })
    }

    /// `toPorts[].serverNames` (spec §3.8): never together with L7 rules (no TLS termination).
    fn server_names(&mut self, f: &Fields<'_>, section: Section, has_l7: bool) -> Vec<String> {
        let Some((key, node)) = f.entry("serverNames") else { return Vec::new() };
        let path = f.path("serverNames");
        let names = self
            .list(node, &path, |d, n, p| {
                let name = d.string(n, p)?;
                d.check(n, p, validate::server_name(&name))
            })
            .unwrap_or_default();
        if is_empty_seq(node) {
            self.error(key, &path, validate::SERVER_NAMES_EMPTY);
        } else if has_l7 {
            self.error(key, &path, validate::SERVER_NAMES_WITH_L7);
        } else if section == Section::Ingress {
            self.warn(key, &path, validate::SERVER_NAMES_ON_INGRESS);
        }
        names
    }

    fn port_protocol(&mut self, node: &Node, path: &str) -> Option<PortProtocol> {
        let f = self.fields(node, path, &PORT_PROTOCOL)?;
        let port_path = f.path("port");
        let port = match f.get("port") {
            Some(n) => {
                let text = match data(n) {
                    YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
                    YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(i.to_string()),
                    _ => {
                        let message =
                            format!("expected a port number or name, found {}", describe(n));
                        self.error(n, &port_path, message);
                        None
                    }
                };
                text.and_then(|t| self.check(n, &port_path, validate::port(&t)))
            }
            None => self.check(node, &port_path, validate::port("")),
        };
        let protocol = f
            .get("protocol")
            .and_then(|n| {
                let p = f.path("protocol");
                let text = self.string(n, &p)?;
                self.check(n, &p, validate::protocol(&text))
            })
            .unwrap_or(L4Protocol::Any);
        let end_port = match (f.get("endPort"), &port) {
            (Some(n), Some(port)) => {
                let p = f.path("endPort");
                match data(n) {
                    YamlDataOwned::Value(ScalarOwned::Integer(end)) => {
                        self.check(n, &p, validate::end_port(port, *end)).flatten()
                    }
                    _ => {
                        let message = format!(
                            "expected a number, found {}: write endPort: 8090 without quotes",
                            describe(n)
                        );
                        self.error(n, &p, message);
                        None
                    }
                }
            }
            _ => None,
        };
        Some(PortProtocol { port: port?, end_port, protocol })
    }

    /// `toPorts[].rules` of an allow rule: `http` or `dns` (spec §3.8).
    fn l7_rules(&mut self, node: &Node, path: &str, section: Section) -> L7 {
        let Some(f) = self.fields(node, path, &L7_RULES) else {
            return L7::default();
        };
        let http = f.get("http").and_then(|n| self.list(n, &f.path("http"), Self::http_rule));
        let dns = f.get("dns").and_then(|n| self.list(n, &f.path("dns"), Self::fqdn));
        let has_rules = |name| f.get(name).is_some_and(|n| !is_empty_seq(n));
        let kind = if has_rules("http") {
            Some(L7Kind::Http)
        } else if has_rules("dns") {
            Some(L7Kind::Dns)
        } else {
            None
        };
        if let (Some(_), Some((key, _))) = (f.get("http"), f.entry("dns")) {
            self.error(key, &f.path("dns"), validate::MULTIPLE_L7);
        }
        if let Some((key, _)) = f.entry("dns").filter(|_| has_rules("dns")) {
            if section == Section::Ingress {
                self.error(key, &f.path("dns"), validate::DNS_ON_INGRESS);
            } else {
                self.warn(key, &f.path("dns"), validate::DNS_NOT_ENFORCED);
            }
        }
        L7 { http, dns, kind }
    }

    /// One `rules.http` element (spec §5).
    fn http_rule(&mut self, node: &Node, path: &str) -> Option<HttpRule> {
        let f = self.fields(node, path, &HTTP_RULE)?;
        let mut regex = |name: &str| {
            let node = f.get(name)?;
            let p = f.path(name);
            let pattern = self.string(node, &p).filter(|s| !s.is_empty())?;
            self.check(node, &p, validate::regex(&pattern)).map(|()| pattern)
        };
        let (method, http_path, host) = (regex("method"), regex("path"), regex("host"));
        let headers = f
            .get("headers")
            .and_then(|n| self.list(n, &f.path("headers"), Self::string))
            .unwrap_or_default();
        let header_matches = f
            .get("headerMatches")
            .and_then(|n| self.list(n, &f.path("headerMatches"), Self::header_match))
            .unwrap_or_default();
        Some(HttpRule { method, path: http_path, host, headers, header_matches })
    }

    fn header_match(&mut self, node: &Node, path: &str) -> Option<HeaderMatch> {
        let f = self.fields(node, path, &HEADER_MATCH)?;
        let name_path = f.path("name");
        let name = match f.get("name") {
            Some(n) => self.string(n, &name_path).map(|name| (n, name)),
            None => {
                self.error(node, &name_path, validate::HEADER_NAME_MISSING);
                None
            }
        };
        let name = name.and_then(|(n, name)| {
            let missing = name.is_empty();
            if missing {
                self.error(n, &name_path, validate::HEADER_NAME_MISSING);
            }
            (!missing).then_some(name)
        });
        let value =
            f.get("value").and_then(|n| self.string(n, &f.path("value"))).filter(|s| !s.is_empty());
        let mismatch = match f.get("mismatch") {
            Some(n) => {
                let p = f.path("mismatch");
                let text = self.string(n, &p)?;
                Some(self.check(n, &p, validate::mismatch(&text))?)
            }
            None => None,
        };
        Some(HeaderMatch { name: name?, value, mismatch })
    }

    /// A label selector (spec §2.2); `matchLabels` become `In` requirements, in written order.
    fn selector(&mut self, node: &Node, path: &str) -> Option<Selector> {
        let f = self.fields(node, path, &SELECTOR)?;
        let mut requirements = Vec::new();
        if let Some(labels) = f
            .get("matchLabels")
            .and_then(|n| self.mapping(n, &f.path("matchLabels"), "a map of label keys to values"))
        {
            for (key, key_node, value_node) in &labels.entries {
                let p = labels.path(key);
                let key = self.check(key_node, &p, validate::label_key(key));
                let value = self.string(value_node, &p).and_then(|v| {
                    self.check(value_node, &p, validate::label_value(&v)).map(|()| v)
                });
                if let (Some(key), Some(value)) = (key, value) {
                    requirements.push(Requirement {
                        key,
                        operator: Operator::In,
                        values: vec![value],
                    });
                }
            }
        }
        if let Some(n) = f.get("matchExpressions") {
            requirements.extend(
                self.list(n, &f.path("matchExpressions"), Self::requirement).unwrap_or_default(),
            );
        }
        Some(Selector { requirements })
    }

    fn requirement(&mut self, node: &Node, path: &str) -> Option<Requirement> {
        let f = self.fields(node, path, &REQUIREMENT)?;
        let key = self
            .required_string(&f, "key", "add key: <label key>")
            .and_then(|k| self.check(f.get("key")?, &f.path("key"), validate::label_key(&k)));
        let operator = self
            .required_string(&f, "operator", "add operator: In, NotIn, Exists or DoesNotExist")
            .and_then(|op| {
                self.check(f.get("operator")?, &f.path("operator"), validate::operator(&op))
            });
        let values_path = f.path("values");
        let values = f
            .get("values")
            .and_then(|n| {
                self.list(n, &values_path, |d, n, p| {
                    let v = d.string(n, p)?;
                    d.check(n, p, validate::label_value(&v)).map(|()| v)
                })
            })
            .unwrap_or_default();
        let operator = operator?;
        let count = f.get("values").map_or(0, |n| seq_len(n).unwrap_or(values.len()));
        self.check(
            f.get("values").unwrap_or(node),
            &values_path,
            validate::requirement_values(operator, count),
        )?;
        Some(Requirement { key: key?, operator, values })
    }

    /// `authentication`: accepted only with `mode: disabled` (spec §3.7).
    fn authentication(&mut self, node: &Node, path: &str) {
        if let Some(f) = self.fields(node, path, &AUTHENTICATION) {
            if let Some(mode) =
                self.required_string(&f, "mode", "add mode: disabled, or remove authentication")
            {
                if let Some(mode_node) = f.get("mode") {
                    self.check(mode_node, &f.path("mode"), validate::authentication_mode(&mode));
                }
            }
        }
    }

    fn default_deny(&mut self, node: &Node, path: &str) -> Option<DefaultDeny> {
        let f = self.fields(node, path, &DEFAULT_DENY)?;
        let ingress = f.get("ingress").and_then(|n| self.boolean(n, &f.path("ingress")));
        let egress = f.get("egress").and_then(|n| self.boolean(n, &f.path("egress")));
        Some(DefaultDeny { ingress, egress })
    }

    fn rule_label(&mut self, node: &Node, path: &str) -> Option<RuleLabel> {
        let f = self.fields(node, path, &RULE_LABEL)?;
        let key = self.required_string(&f, "key", "add key: <label key>");
        let value = f.get("value").and_then(|n| self.string(n, &f.path("value")));
        let source = f.get("source").and_then(|n| self.string(n, &f.path("source")));
        Some(RuleLabel {
            key: key?,
            value: value.unwrap_or_default(),
            source: source.unwrap_or_default(),
        })
    }

    fn log(&mut self, node: &Node, path: &str) -> Option<String> {
        let f = self.fields(node, path, &LOG)?;
        let n = f.get("value")?;
        let p = f.path("value");
        let value = self.string(n, &p)?;
        self.check(n, &p, validate::log_value(&value)).map(|()| value)
    }
}

/// The decoded `rules` of a port rule.
#[derive(Default)]
struct L7 {
    http: Option<Vec<HttpRule>>,
    dns: Option<Vec<FqdnSelector>>,
    /// The L7 protocol when there is at least one rule (the checks of spec §3.8 apply).
    kind: Option<L7Kind>,
}

fn peer_is_empty(peer: &Peer) -> bool {
    match peer {
        Peer::Endpoints(v) => v.is_empty(),
        Peer::Cidrs(v) => v.is_empty(),
        Peer::Entities(v) => v.is_empty(),
        Peer::Fqdns(v) => v.is_empty(),
        Peer::Services(v) => v.is_empty(),
    }
}

#[cfg(test)]
mod tests;
