//! Identities (spec §2): the security labels of every endpoint, numeric identities (equal label
//! sets share one), reserved identities, CIDR identities for the prefixes policies mention, and
//! label-selector matching over all of them.

use std::collections::{BTreeMap, BTreeSet};

use l7gate_filter::cidr::Cidr;
use l7gate_filter::config::{self as fc, Identity, IdentityInfo};

use crate::cilium::model::{Operator, Requirement, Selector};
use crate::inventory::{Endpoint, Inventory};

/// The cluster name l7gate gives its one cluster (`io.cilium.k8s.policy.cluster`).
pub const CLUSTER_NAME: &str = "default";
/// First numeric identity of pods (Cilium: reserved identities are below 256).
const FIRST_POD_IDENTITY: Identity = 256;

pub const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// One security label, `source:key=value`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub source: String,
    pub key: String,
    pub value: String,
}

impl Label {
    fn new(source: &str, key: &str, value: &str) -> Label {
        Label { source: source.into(), key: key.into(), value: value.into() }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}={}", self.source, self.key, self.value)
    }
}

pub type LabelSet = BTreeSet<Label>;

/// The reserved identities and the entity each stands for.
pub const RESERVED: &[(Identity, &str)] = &[
    (fc::HOST, "host"),
    (fc::WORLD, "world"),
    (fc::UNMANAGED, "unmanaged"),
    (fc::HEALTH, "health"),
    (fc::INIT, "init"),
    (fc::REMOTE_NODE, "remote-node"),
    (fc::KUBE_APISERVER, "kube-apiserver"),
    (fc::INGRESS, "ingress"),
];

/// Every identity known to the control plane.
#[derive(Debug, Clone)]
pub struct Identities {
    /// Identity → (readable name, labels), reserved, pods and CIDRs alike.
    pub all: BTreeMap<Identity, (String, LabelSet)>,
    /// Pod identity of each endpoint, by `namespace/name`.
    pub of_endpoint: BTreeMap<String, Identity>,
    /// CIDR prefix → its identity.
    pub of_cidr: BTreeMap<Cidr, Identity>,
}

impl Identities {
    /// Allocates identities for the inventory's endpoints and the given CIDR prefixes.
    /// Deterministic: the same inputs always give the same numbers.
    pub fn allocate(inventory: &Inventory, cidrs: &BTreeSet<Cidr>) -> Identities {
        let mut all = BTreeMap::new();
        for (id, name) in RESERVED {
            all.insert(
                *id,
                (format!("reserved:{name}"), LabelSet::from([Label::new("reserved", name, "")])),
            );
        }
        let labels: Vec<(String, LabelSet)> = inventory
            .endpoints
            .iter()
            .map(|e| (qualified(e), endpoint_labels(e, inventory)))
            .collect();
        let distinct: BTreeSet<&LabelSet> = labels.iter().map(|(_, l)| l).collect();
        let mut by_labels = BTreeMap::new();
        for (id, set) in (FIRST_POD_IDENTITY..).zip(distinct) {
            by_labels.insert(set.clone(), id);
        }
        let mut of_endpoint = BTreeMap::new();
        for (name, set) in labels {
            let id = by_labels.get(&set).copied().unwrap_or(fc::WORLD);
            of_endpoint.insert(name.clone(), id);
            // Endpoints sharing an identity share one entry, named after the first of them.
            all.entry(id).or_insert((name, set));
        }
        let mut of_cidr = BTreeMap::new();
        for (id, cidr) in (fc::FIRST_CIDR_IDENTITY..).zip(cidrs) {
            let set = LabelSet::from([
                Label::new("cidr", &cidr.to_string(), ""),
                Label::new("reserved", "world", ""),
            ]);
            all.insert(id, (format!("cidr:{cidr}"), set));
            of_cidr.insert(*cidr, id);
        }
        Identities { all, of_endpoint, of_cidr }
    }

    /// Identities whose labels satisfy the selector (already scoped, spec §2.3).
    pub fn select(&self, selector: &Selector) -> BTreeSet<Identity> {
        self.all
            .iter()
            .filter(|(_, (_, labels))| selector_matches(selector, labels))
            .map(|(id, _)| *id)
            .collect()
    }

    /// All pod identities.
    pub fn pods(&self) -> impl Iterator<Item = Identity> + '_ {
        self.of_endpoint.values().copied()
    }

    /// Names and labels for the filter config.
    pub fn infos(&self) -> Vec<IdentityInfo> {
        self.all
            .iter()
            .map(|(id, (name, labels))| IdentityInfo {
                id: *id,
                name: name.clone(),
                labels: labels.iter().map(ToString::to_string).collect(),
            })
            .collect()
    }
}

pub fn qualified(e: &Endpoint) -> String {
    format!("{}/{}", e.namespace, e.name)
}

/// The security labels of a pod (spec §2.1): its labels minus the filtered ones, the namespace,
/// service account and cluster labels, and its namespace's labels.
pub fn endpoint_labels(e: &Endpoint, inventory: &Inventory) -> LabelSet {
    let mut set: LabelSet = e
        .labels
        .iter()
        .filter(|(k, _)| !is_filtered_label(k))
        .map(|(k, v)| Label::new("k8s", k, v))
        .collect();
    set.insert(Label::new("k8s", NAMESPACE_LABEL, &e.namespace));
    set.insert(Label::new("k8s", "io.cilium.k8s.policy.serviceaccount", &e.service_account));
    set.insert(Label::new("k8s", "io.cilium.k8s.policy.cluster", CLUSTER_NAME));
    // Kubernetes gives every namespace this label.
    set.insert(Label::new(
        "k8s",
        &format!("{NAMESPACE_LABELS_PREFIX}kubernetes.io/metadata.name"),
        &e.namespace,
    ));
    for (k, v) in inventory.namespaces.get(&e.namespace).into_iter().flatten() {
        set.insert(Label::new("k8s", &format!("{NAMESPACE_LABELS_PREFIX}{k}"), v));
    }
    set
}

/// Cilium's default identity label filter (spec §2.1): such labels never take part in identity.
pub fn is_filtered_label(key: &str) -> bool {
    if key.starts_with("app.kubernetes.io") {
        return false;
    }
    let domain = key.split_once('/').map(|(d, _)| d);
    let kube_domain = domain.is_some_and(|d| d.ends_with("kubernetes.io") || d.ends_with("k8s.io"));
    kube_domain
        || key.starts_with("io.kubernetes")
        || key.starts_with("annotation.")
        || matches!(
            key,
            "pod-template-hash"
                | "pod-template-generation"
                | "controller-revision-hash"
                | "controller-uid"
                | "etcd_node"
        )
}

/// Splits a selector key into (source, key): `k8s:app` → (Some("k8s"), "app"); `app` and
/// `any:app` → (None, "app"), matching the key from any source.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once(':') {
        Some(("any", k)) => (None, k),
        Some((source, k)) => (Some(source), k),
        None => (None, key),
    }
}

/// Kubernetes label-selector semantics over a label set (spec §2.2).
pub fn selector_matches(selector: &Selector, labels: &LabelSet) -> bool {
    selector.requirements.iter().all(|r| requirement_matches(r, labels))
}

fn requirement_matches(r: &Requirement, labels: &LabelSet) -> bool {
    let (source, key) = split_key(&r.key);
    let mut present =
        labels.iter().filter(|l| l.key == key && source.is_none_or(|s| l.source == s));
    match r.operator {
        Operator::In => present.any(|l| r.values.contains(&l.value)),
        Operator::NotIn => !present.any(|l| r.values.contains(&l.value)),
        Operator::Exists => present.next().is_some(),
        Operator::DoesNotExist => present.next().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, ns: &str, labels: &[(&str, &str)]) -> Endpoint {
        Endpoint {
            name: name.into(),
            namespace: ns.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ips: vec![],
            ports: BTreeMap::new(),
            service_account: "default".into(),
            node: None,
        }
    }
    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// spec §2.1: equal label sets share one identity; filtered labels do not count.
    #[test]
    fn equal_labels_share_an_identity() {
        let inv = Inventory {
            endpoints: vec![
                endpoint("a-1", "default", &[("app", "a"), ("pod-template-hash", "111")]),
                endpoint("a-2", "default", &[("app", "a"), ("pod-template-hash", "222")]),
                endpoint("b", "default", &[("app", "b")]),
            ],
            ..Default::default()
        };
        let ids = Identities::allocate(&inv, &BTreeSet::new());
        assert_eq!(ids.of_endpoint["default/a-1"], ids.of_endpoint["default/a-2"]);
        assert_ne!(ids.of_endpoint["default/a-1"], ids.of_endpoint["default/b"]);
        assert!(ids.of_endpoint.values().all(|id| *id >= 256));
    }

    /// spec §2.2: NotIn and DoesNotExist match an absent key; `any` matches k8s labels; a
    /// source prefix restricts; a selector on a filtered label never matches (spec §2.1).
    #[test]
    fn selector_semantics() {
        let inv = Inventory::default();
        let labels = endpoint_labels(
            &endpoint("x", "shop", &[("app", "web"), ("pod-template-hash", "1")]),
            &inv,
        );
        let sel = |r: Vec<Requirement>| Selector { requirements: r };
        assert!(selector_matches(&sel(vec![req("app", Operator::In, &["web", "api"])]), &labels));
        assert!(selector_matches(&sel(vec![req("k8s:app", Operator::In, &["web"])]), &labels));
        assert!(selector_matches(&sel(vec![req("any:app", Operator::Exists, &[])]), &labels));
        assert!(!selector_matches(&sel(vec![req("reserved:app", Operator::Exists, &[])]), &labels));
        assert!(selector_matches(&sel(vec![req("tier", Operator::NotIn, &["db"])]), &labels));
        assert!(selector_matches(&sel(vec![req("tier", Operator::DoesNotExist, &[])]), &labels));
        assert!(!selector_matches(&sel(vec![req("app", Operator::NotIn, &["web"])]), &labels));
        assert!(!selector_matches(
            &sel(vec![req("pod-template-hash", Operator::Exists, &[])]),
            &labels
        ));
        assert!(selector_matches(
            &sel(vec![req("k8s:io.kubernetes.pod.namespace", Operator::In, &["shop"])]),
            &labels
        ));
        assert!(selector_matches(&sel(vec![]), &labels), "{{}} selects everything");
    }

    #[test]
    fn label_filter() {
        for k in [
            "pod-template-hash",
            "controller-revision-hash",
            "statefulset.kubernetes.io/pod-name",
            "io.kubernetes.foo",
            "batch.kubernetes.io/job-completion-index",
        ] {
            assert!(is_filtered_label(k), "{k}");
        }
        for k in ["app", "app.kubernetes.io/name", "team", "example.com/tier"] {
            assert!(!is_filtered_label(k), "{k}");
        }
    }

    /// spec §2.1: namespace labels become `io.cilium.k8s.namespace.labels.*` pod labels.
    #[test]
    fn namespace_labels_are_pod_labels() {
        let mut inv = Inventory::default();
        inv.namespaces
            .insert("shop".into(), BTreeMap::from([("team".to_string(), "payments".to_string())]));
        let labels = endpoint_labels(&endpoint("x", "shop", &[]), &inv);
        assert!(labels.contains(&Label::new(
            "k8s",
            "io.cilium.k8s.namespace.labels.team",
            "payments"
        )));
        assert!(labels.contains(&Label::new(
            "k8s",
            "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
            "shop"
        )));
    }
}
