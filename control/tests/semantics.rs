//! Resolution semantics end to end: policy YAML + inventory YAML → `Cluster` → per-endpoint
//! `Config` → the filter's `Engine` → verdicts. One test per rule of the Cilium semantics, each
//! citing the spec section it checks. Verdicts come from `l7gate::trace` (which runs the filter's
//! own engine on the compiled config) and, in one test, from the engine API directly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use l7gate::compile::Cluster;
use l7gate::trace::{trace, Query, Side};
use l7gate_filter::config::{Protocol, HOST, REMOTE_NODE, WORLD};
use l7gate_filter::engine::{Direction, Engine, Headers, Request};

/// The cluster every test runs against. Two nodes; pods in three namespaces; named ports that
/// agree (`metrics`) and disagree (`http`) across endpoints.
const INVENTORY: &str = r#"
namespaces:
  - name: default
    labels: {team: shop}
  - name: payments
    labels: {team: payments}
  - name: other
nodes:
  - name: node-1
    ips: [10.9.0.1]
  - name: node-2
    ips: [10.9.0.2]
endpoints:
  - {name: frontend, labels: {app: frontend-app}, ips: [10.0.0.2], node: node-1}
  - {name: batch, labels: {app: batch, tier: web}, ips: [10.0.0.3], node: node-1}
  - {name: db, labels: {app: db, tier: db}, ips: [10.0.0.4], node: node-2}
  - {name: api, labels: {app: api}, ips: [10.0.0.10], node: node-1, ports: {http: 8080, metrics: 9090}}
  - {name: web, labels: {app: web}, ips: [10.0.0.11], node: node-2, ports: {http: 8081, metrics: 9090}}
  - {name: frontend, namespace: other, labels: {app: frontend-app}, ips: [10.0.1.2], node: node-2}
  - {name: pay, namespace: payments, labels: {app: pay}, ips: [10.0.2.2], node: node-2}
"#;

const FRONTEND: &str = "default/frontend";
const OTHER_FRONTEND: &str = "other/frontend";
const BATCH: &str = "default/batch";
const DB: &str = "default/db";
const API: &str = "default/api";
const WEB: &str = "default/web";
const PAY: &str = "payments/pay";
/// The node `api`, `frontend` and `batch` run on, and the other one.
const NODE_1: &str = "10.9.0.1";
const NODE_2: &str = "10.9.0.2";
/// An address outside the inventory and outside every policy CIDR: plain world.
const WORLD_IP: &str = "192.0.2.10";

/// A CiliumNetworkPolicy document; `spec` is a flow-style YAML mapping.
fn cnp(namespace: &str, name: &str, spec: &str) -> String {
    format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec: {spec}\n")
}

/// A CiliumClusterwideNetworkPolicy document; `spec` is a flow-style YAML mapping.
fn ccnp(name: &str, spec: &str) -> String {
    format!("apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: {name}\nspec: {spec}\n")
}

/// Builds a cluster from an inline inventory and inline policy documents, failing the test with
/// the located diagnostics if either is refused.
fn cluster_with(inventory: &str, policies: &[String]) -> Cluster {
    let inventory = l7gate::inventory::parse_str(Path::new("endpoints.yaml"), inventory)
        .unwrap_or_else(|e| panic!("inventory refused:\n{e}"));
    let policies = if policies.is_empty() {
        Vec::new()
    } else {
        l7gate::cilium::parse::parse_str(Path::new("policies.yaml"), &policies.join("---\n"))
            .unwrap_or_else(|e| panic!("policies refused:\n{e}"))
            .policies
    };
    Cluster::new(policies, inventory)
}

fn cluster(policies: &[String]) -> Cluster {
    cluster_with(INVENTORY, policies)
}

fn query(from: &str, to: &str, port: u16) -> Query {
    Query { from: from.into(), to: to.into(), port, ..Default::default() }
}

fn http(from: &str, to: &str, port: u16, method: &str, path: &str) -> Query {
    Query { method: Some(method.into()), path: Some(path.into()), ..query(from, to, port) }
}

fn udp(from: &str, to: &str, port: u16) -> Query {
    Query { protocol: Some(Protocol::Udp), ..query(from, to, port) }
}

/// The destination's ingress decision.
fn ingress_of(c: &Cluster, q: Query) -> Side {
    trace(c, &q)
        .unwrap_or_else(|e| panic!("trace {q:?}: {e}"))
        .ingress
        .expect("the destination is an endpoint")
}

/// The source's egress decision.
fn egress_of(c: &Cluster, q: Query) -> Side {
    trace(c, &q)
        .unwrap_or_else(|e| panic!("trace {q:?}: {e}"))
        .egress
        .expect("the source is an endpoint")
}

/// Ingress of `to` for a TCP connection from `from` (an endpoint or an address) on `port`.
fn ingress(c: &Cluster, from: &str, to: &str, port: u16) -> Side {
    ingress_of(c, query(from, to, port))
}

/// Egress of `from` for a TCP connection to `to` (an endpoint, an address or a DNS name).
fn egress(c: &Cluster, from: &str, to: &str, port: u16) -> Side {
    egress_of(c, query(from, to, port))
}

/// `(verdict, reason code)` of a side, for compact assertions.
fn vr(side: &Side) -> (&'static str, &'static str) {
    (side.verdict, side.reason)
}

/// `(verdict, reason code, deciding policy, deciding rule path)`.
fn full(side: &Side) -> (&'static str, &'static str, Option<&str>, Option<&str>) {
    (side.verdict, side.reason, side.policy.as_deref(), side.rule.as_deref())
}

const ALLOW_L4: (&str, &str) = ("allow", "allowed-l3-l4");
const ALLOW_L7: (&str, &str) = ("allow", "allowed-l7");
const OPEN: (&str, &str) = ("allow", "policy-not-enforced");
const DEFAULT_DENY: (&str, &str) = ("deny", "default-deny");
const DENY_RULE: (&str, &str) = ("deny", "denied-by-deny-rule");
const L7_DENY: (&str, &str) = ("deny", "denied-l7-no-rule-matched");

/// Subject selector for `api`.
const API_SEL: &str = "endpointSelector: {matchLabels: {app: api}}";
/// Subject selector for `frontend` (default namespace when used in a CNP).
const FRONTEND_SEL: &str = "endpointSelector: {matchLabels: {app: frontend-app}}";
const FROM_FRONTEND: &str = "fromEndpoints: [{matchLabels: {app: frontend-app}}]";
const TCP_8080: &str = "toPorts: [{ports: [{port: '8080', protocol: TCP}]}]";

// ---------------------------------------------------------------------------------------------
// The pipeline itself.

struct RequestHeaders(HashMap<&'static str, &'static str>);

impl Headers for RequestHeaders {
    fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.0.get(name).map(|v| v.as_bytes().into())
    }
}

/// The documented pipeline step by step (Cluster → Config → Engine → Verdict) agrees with trace;
/// the ipcache gives pods their identity, the subject's node `host`, other nodes `remote-node`,
/// unknown addresses `world` (spec §2.4, §3.4).
#[test]
fn pipeline_cluster_config_engine_verdict() {
    let c = cluster(&[cnp(
        "default",
        "api-get",
        &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{ports: [{{port: '8080', protocol: TCP}}], rules: {{http: [{{method: GET, path: '/items/.*'}}]}}}}]}}]}}"),
    )]);
    let config = c.compile(c.endpoint(API).unwrap()).unwrap();
    let engine = Engine::compile(&config).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let frontend = engine.identity_of(ip("10.0.0.2"));
    assert!(frontend >= 256, "a pod has a pod identity, got {frontend}");
    assert_ne!(
        frontend,
        engine.identity_of(ip("10.0.1.2")),
        "same labels, other namespace: other identity"
    );
    assert_eq!(engine.identity_of(ip(NODE_1)), HOST, "api runs on node-1");
    assert_eq!(engine.identity_of(ip(NODE_2)), REMOTE_NODE);
    assert_eq!(engine.identity_of(ip(WORLD_IP)), WORLD);

    let req = Request {
        direction: Direction::Ingress,
        peer: frontend,
        port: 8080,
        protocol: Protocol::Tcp,
        server_name: None,
        sni: None,
    };
    let get = RequestHeaders(HashMap::from([
        (":method", "GET"),
        (":path", "/items/1"),
        (":authority", "api"),
    ]));
    let post = RequestHeaders(HashMap::from([
        (":method", "POST"),
        (":path", "/items/1"),
        (":authority", "api"),
    ]));
    let v = engine.decide(&req, Some(&get));
    assert!(v.allowed, "{v:?}");
    assert_eq!(v.reason.code(), "allowed-l7");
    assert_eq!(
        v.origin.map(|o| (o.policy.as_str(), o.rule.as_str())),
        Some(("default/api-get", "spec.ingress[0].toPorts[0]"))
    );
    let v = engine.decide(&req, Some(&post));
    assert_eq!((v.allowed, v.reason.code()), (false, "denied-l7-no-rule-matched"));
    let v = engine.decide(&Request { port: 8081, ..req }, Some(&get));
    assert_eq!((v.allowed, v.reason.code()), (false, "default-deny"));

    // The same through trace.
    let side = ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/items/1"));
    assert_eq!(
        full(&side),
        ("allow", "allowed-l7", Some("default/api-get"), Some("spec.ingress[0].toPorts[0]"))
    );
    assert_eq!(side.peer_identity, frontend);
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "POST", "/items/1"))), L7_DENY);
}

// ---------------------------------------------------------------------------------------------
// §2.2 / §2.3 selectors and namespace scoping.

/// spec §2.3: in a CNP `fromEndpoints: [{}]` gets the policy's namespace: all pods of that
/// namespace, nobody else (other namespaces, world, remote nodes).
#[test]
fn cnp_wildcard_peer_is_own_namespace() {
    let c = cluster(&[cnp(
        "default",
        "own-ns",
        &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{}}]}}]}}"),
    )]);
    assert_eq!(
        full(&ingress(&c, FRONTEND, API, 8080)),
        ("allow", "allowed-l3-l4", Some("default/own-ns"), Some("spec.ingress[0]"))
    );
    assert_eq!(vr(&ingress(&c, BATCH, API, 1)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, OTHER_FRONTEND, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, PAY, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, NODE_2, API, 8080)), DEFAULT_DENY);
}

/// spec §2.3: in a CCNP `fromEndpoints: [{}]`/`toEndpoints: [{}]` means every pod of the
/// cluster, but not world, host or remote nodes (they have no namespace label).
#[test]
fn ccnp_wildcard_peer_is_every_pod_but_no_reserved_identity() {
    let c = cluster(&[ccnp(
        "all-pods",
        &format!("{{{FRONTEND_SEL}, ingress: [{{fromEndpoints: [{{}}]}}], egress: [{{toEndpoints: [{{}}]}}]}}"),
    )]);
    // Ingress of default/frontend (selected: the CCNP has no namespace restriction).
    assert_eq!(vr(&ingress(&c, API, FRONTEND, 80)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, PAY, FRONTEND, 80)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, WORLD_IP, FRONTEND, 80)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, NODE_2, FRONTEND, 80)), DEFAULT_DENY);
    // The CCNP selects other/frontend too.
    assert_eq!(vr(&ingress(&c, WORLD_IP, OTHER_FRONTEND, 80)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, PAY, OTHER_FRONTEND, 80)), ALLOW_L4);
    // Egress (no allow-localhost there): host and remote node are not pods.
    assert_eq!(vr(&egress(&c, FRONTEND, PAY, 80)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, OTHER_FRONTEND, 80)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_1, 80)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_2, 80)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 80)), DEFAULT_DENY);
}

/// spec §2.3: a CNP's subject selector is confined to its namespace. A written
/// `k8s:io.kubernetes.pod.namespace: other` is overwritten with the policy's namespace; the
/// unprefixed key stays as an extra requirement, so the rule selects nothing.
#[test]
fn cnp_subject_never_selects_another_namespace() {
    let prefixed = cluster(&[cnp(
        "default",
        "reach-out",
        "{endpointSelector: {matchLabels: {'k8s:io.kubernetes.pod.namespace': other, app: frontend-app}}, ingress: [{}]}",
    )]);
    assert_eq!(
        vr(&ingress(&prefixed, PAY, OTHER_FRONTEND, 80)),
        OPEN,
        "other/frontend is never selected"
    );
    assert_eq!(
        vr(&ingress(&prefixed, PAY, FRONTEND, 80)),
        DEFAULT_DENY,
        "the namespace was overwritten to default"
    );

    let unprefixed = cluster(&[cnp(
        "default",
        "reach-out",
        "{endpointSelector: {matchLabels: {'io.kubernetes.pod.namespace': other, app: frontend-app}}, ingress: [{}]}",
    )]);
    assert_eq!(vr(&ingress(&unprefixed, PAY, OTHER_FRONTEND, 80)), OPEN);
    assert_eq!(
        vr(&ingress(&unprefixed, PAY, FRONTEND, 80)),
        OPEN,
        "namespace default and other: selects nothing"
    );
}

/// spec §2.3: a peer selector that constrains `io.kubernetes.pod.namespace` (with `k8s:` or no
/// prefix) is left as written, so a CNP can admit pods of another namespace.
#[test]
fn peer_selector_naming_the_namespace_crosses_namespaces() {
    for key in [
        "k8s:io.kubernetes.pod.namespace",
        "io.kubernetes.pod.namespace",
        "any:io.kubernetes.pod.namespace",
    ] {
        let c = cluster(&[cnp(
            "default",
            "from-other",
            &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{'{key}': other, app: frontend-app}}}}]}}]}}"),
        )]);
        assert_eq!(vr(&ingress(&c, OTHER_FRONTEND, API, 8080)), ALLOW_L4, "{key}");
        assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY, "{key}");
    }
    // matchExpressions on the namespace key count too.
    let c = cluster(&[cnp(
        "default",
        "any-ns",
        &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchExpressions: [{{key: 'k8s:io.kubernetes.pod.namespace', operator: Exists}}]}}]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, PAY, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
}

/// spec §2.3: in a CNP a namespace-label selector (`io.cilium.k8s.namespace.labels.*`) is not
/// confined to the policy's namespace: it matches pods of every namespace carrying the label.
#[test]
fn namespace_label_selector_crosses_namespaces_in_a_cnp() {
    let c = cluster(&[cnp(
        "default",
        "from-payments",
        &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{io.cilium.k8s.namespace.labels.team: payments}}}}]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, PAY, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY, "default is team=shop");
    assert_eq!(vr(&ingress(&c, OTHER_FRONTEND, API, 8080)), DEFAULT_DENY);
    // And in a CCNP.
    let c = cluster(&[ccnp(
        "from-payments",
        &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{'k8s:io.cilium.k8s.namespace.labels.team': payments}}}}]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, PAY, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
}

/// spec §2.1: an unprefixed key and `any:` match the key from any source, `k8s:` only pod
/// labels, another source (`reserved:`) never a pod label; a `reserved:` peer selector is not
/// namespace-scoped (spec §2.3) and selects the reserved identity.
#[test]
fn key_sources_any_k8s_reserved() {
    for key in ["app", "any:app", "k8s:app"] {
        let c = cluster(&[cnp("default", "keys", &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{'{key}': frontend-app}}}}]}}]}}"))]);
        assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), ALLOW_L4, "{key}");
        assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), DEFAULT_DENY, "{key}");
        assert_eq!(
            vr(&ingress(&c, OTHER_FRONTEND, API, 8080)),
            DEFAULT_DENY,
            "{key}: still namespace-scoped"
        );
    }
    let c = cluster(&[cnp("default", "keys", &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{'reserved:app': frontend-app}}}}]}}]}}"))]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);

    let c = cluster(&[cnp("default", "to-host", &format!("{{{FRONTEND_SEL}, egress: [{{toEndpoints: [{{matchLabels: {{'reserved:host': ''}}}}]}}]}}"))]);
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_1, 10250)), ALLOW_L4, "frontend runs on node-1");
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_2, 10250)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
}

/// spec §2.1: a selector on a label removed by the identity label filter never matches.
#[test]
fn filtered_labels_never_match() {
    let inventory = INVENTORY.replace("labels: {app: batch, tier: web}", "labels: {app: batch, tier: web, pod-template-hash: 5d9, 'statefulset.kubernetes.io/pod-name': batch-0}");
    for label in ["pod-template-hash: 5d9", "'statefulset.kubernetes.io/pod-name': batch-0"] {
        let c = cluster_with(
            &inventory,
            &[cnp(
                "default",
                "filtered",
                &format!(
                    "{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{{label}}}}}]}}]}}"
                ),
            )],
        );
        assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), DEFAULT_DENY, "{label}");
    }
}

/// spec §2.2: `NotIn` and `DoesNotExist` match pods that lack the key.
#[test]
fn match_expressions_notin_and_doesnotexist_match_absent_keys() {
    let c = cluster(&[cnp(
        "default",
        "not-db",
        &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchExpressions: [{{key: tier, operator: NotIn, values: [db]}}]}}]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), ALLOW_L4, "no tier label");
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), ALLOW_L4, "tier=web");
    assert_eq!(vr(&ingress(&c, DB, API, 8080)), DEFAULT_DENY, "tier=db");

    let c = cluster(&[cnp(
        "default",
        "untiered",
        &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchExpressions: [{{key: tier, operator: DoesNotExist}}]}}]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, DB, API, 8080)), DEFAULT_DENY);
    assert_eq!(
        vr(&ingress(&c, WORLD_IP, API, 8080)),
        DEFAULT_DENY,
        "still namespace-scoped: world has no namespace"
    );
}

// ---------------------------------------------------------------------------------------------
// §2.4 entities.

/// A policy on `web` that names 203.0.113.0/24, so that prefix gets a CIDR identity.
fn cidr_identity_policy() -> String {
    cnp(
        "default",
        "names-a-cidr",
        "{endpointSelector: {matchLabels: {app: web}}, egress: [{toCIDR: [203.0.113.0/24]}]}",
    )
}

/// spec §2.4: `world` is everything outside the cluster: unknown addresses and CIDR identities
/// (they carry the world label), never pods or nodes.
#[test]
fn entity_world() {
    let c = cluster(&[
        cnp(
            "default",
            "to-world",
            &format!("{{{FRONTEND_SEL}, egress: [{{toEntities: [world]}}]}}"),
        ),
        cidr_identity_policy(),
    ]);
    let cidr_peer = egress(&c, FRONTEND, "203.0.113.5", 443);
    assert!(cidr_peer.peer_identity >= 1 << 24, "203.0.113.5 has a CIDR identity: {cidr_peer:?}");
    assert_eq!(vr(&cidr_peer), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, "2001:db8::1", 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, PAY, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_1, 443)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_2, 443)), DEFAULT_DENY);
}

/// spec §2.4: `cluster` is every pod (all namespaces, even from a CNP: §2.3), the host and
/// remote nodes, not world.
#[test]
fn entity_cluster() {
    let c = cluster(&[
        cnp(
            "default",
            "in-cluster",
            &format!("{{{FRONTEND_SEL}, egress: [{{toEntities: [cluster]}}]}}"),
        ),
        cidr_identity_policy(),
    ]);
    for to in [API, PAY, OTHER_FRONTEND, NODE_1, NODE_2] {
        assert_eq!(vr(&egress(&c, FRONTEND, to, 443)), ALLOW_L4, "{to}");
    }
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 443)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, "203.0.113.5", 443)), DEFAULT_DENY);
}

/// spec §2.4: `host` is the subject's own node; `remote-node` every other node. Which node
/// address is which depends on where the subject runs.
#[test]
fn entity_host_and_remote_node() {
    let c = cluster(&[
        ccnp("to-host", "{endpointSelector: {matchLabels: {app: frontend-app}}, egress: [{toEntities: [host]}]}"),
        ccnp("to-remote", "{endpointSelector: {matchLabels: {app: db}}, egress: [{toEntities: [remote-node]}]}"),
    ]);
    // default/frontend runs on node-1, other/frontend on node-2.
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_1, 10250)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_2, 10250)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, OTHER_FRONTEND, NODE_2, 10250)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, OTHER_FRONTEND, NODE_1, 10250)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 10250)), DEFAULT_DENY);
    // db runs on node-2.
    assert_eq!(vr(&egress(&c, DB, NODE_1, 10250)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, DB, NODE_2, 10250)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, DB, API, 8080)), DEFAULT_DENY);
}

/// spec §2.4: `all` is everything; `none` nothing (but the section still makes the direction
/// default-deny, §4.1).
#[test]
fn entity_all_and_none() {
    let c = cluster(&[
        cidr_identity_policy(),
        cnp("default", "all", &format!("{{{FRONTEND_SEL}, egress: [{{toEntities: [all]}}]}}")),
        cnp("default", "none", &format!("{{{API_SEL}, egress: [{{toEntities: [none]}}], ingress: [{{fromEntities: [none]}}]}}")),
    ]);
    for to in [API, PAY, NODE_1, NODE_2, WORLD_IP, "203.0.113.5"] {
        assert_eq!(vr(&egress(&c, FRONTEND, to, 443)), ALLOW_L4, "all → {to}");
        assert_eq!(vr(&egress(&c, API, to, 443)), DEFAULT_DENY, "none → {to}");
    }
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
}

// ---------------------------------------------------------------------------------------------
// §3.1 nil vs empty.

/// spec §3.1 row 1: `{}` allows nothing but makes the direction default-deny; the other
/// direction stays open (§4.1 item 1).
#[test]
fn empty_rule_allows_nothing_but_enforces() {
    let c = cluster(&[cnp("default", "closed", &format!("{{{API_SEL}, ingress: [{{}}]}}"))]);
    for from in [FRONTEND, PAY, WORLD_IP, NODE_2] {
        assert_eq!(
            full(&ingress(&c, from, API, 8080)),
            ("deny", "default-deny", None, None),
            "{from}"
        );
    }
    assert_eq!(vr(&egress(&c, API, WORLD_IP, 443)), OPEN);
}

/// spec §3.1 row 2: `toPorts` without an L3 field is a true wildcard (world, host, every
/// namespace, even in a CNP), on those ports only.
#[test]
fn to_ports_without_l3_is_every_identity() {
    let c = cluster(&[cnp(
        "default",
        "port-only",
        &format!("{{{API_SEL}, ingress: [{{{TCP_8080}}}]}}"),
    )]);
    for from in [FRONTEND, OTHER_FRONTEND, PAY, WORLD_IP, NODE_2] {
        assert_eq!(
            full(&ingress(&c, from, API, 8080)),
            (
                "allow",
                "allowed-l3-l4",
                Some("default/port-only"),
                Some("spec.ingress[0].toPorts[0]")
            ),
            "{from}"
        );
        assert_eq!(vr(&ingress(&c, from, API, 9090)), DEFAULT_DENY, "{from}");
    }
}

/// spec §3.1 row 4: `fromEndpoints: []` allows nothing, with or without `toPorts`, and still
/// makes the direction default-deny.
#[test]
fn empty_peer_list_allows_nothing() {
    let c = cluster(&[cnp(
        "default",
        "empty-peers",
        &format!(
            "{{{API_SEL}, ingress: [{{fromEndpoints: []}}, {{fromEndpoints: [], {TCP_8080}}}]}}"
        ),
    )]);
    for from in [FRONTEND, WORLD_IP] {
        assert_eq!(vr(&ingress(&c, from, API, 8080)), DEFAULT_DENY, "{from}");
        assert_eq!(vr(&ingress(&c, from, API, 1)), DEFAULT_DENY, "{from}");
    }
}

/// spec §3.1 rows 5 and 6: an L3 rule without `toPorts`, or with `toPorts: []`, allows every
/// port and protocol; `{toPorts: []}` alone is `{}`.
#[test]
fn l3_only_and_empty_to_ports() {
    for rule in [FROM_FRONTEND.to_string(), format!("{FROM_FRONTEND}, toPorts: []")] {
        let c = cluster(&[cnp("default", "l3", &format!("{{{API_SEL}, ingress: [{{{rule}}}]}}"))]);
        assert_eq!(
            full(&ingress(&c, FRONTEND, API, 8080)),
            ("allow", "allowed-l3-l4", Some("default/l3"), Some("spec.ingress[0]")),
            "{rule}"
        );
        assert_eq!(vr(&ingress(&c, FRONTEND, API, 1)), ALLOW_L4, "{rule}");
        assert_eq!(vr(&ingress(&c, FRONTEND, API, 65535)), ALLOW_L4, "{rule}");
        assert_eq!(vr(&ingress_of(&c, udp(FRONTEND, API, 53))), ALLOW_L4, "{rule}");
        assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), DEFAULT_DENY, "{rule}");
    }
    let c = cluster(&[cnp(
        "default",
        "no-peer-no-port",
        &format!("{{{API_SEL}, ingress: [{{toPorts: []}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
}

/// spec §3.1 row 7: `toPorts: [{}]` (a port rule without ports) contributes no port: nothing is
/// allowed, not even to the L3 peers.
#[test]
fn port_rule_without_ports_allows_nothing() {
    let c = cluster(&[cnp(
        "default",
        "no-ports",
        &format!(
            "{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{}}]}}, {{toPorts: [{{}}]}}]}}"
        ),
    )]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 1)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
}

// ---------------------------------------------------------------------------------------------
// §3.4 CIDR.

/// spec §3.4: `fromCIDR` admits external addresses in the range, never a pod (or node) whose
/// address is inside it.
#[test]
fn cidr_never_matches_pods() {
    let c = cluster(&[cnp(
        "default",
        "cidr",
        &format!("{{{API_SEL}, ingress: [{{fromCIDR: [10.0.0.0/8]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, "10.200.0.5", API, 8080)), ALLOW_L4);
    assert_eq!(
        vr(&ingress(&c, "10.0.0.99", API, 8080)),
        ALLOW_L4,
        "an unmanaged in-cluster address"
    );
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY, "10.0.0.2 is a pod");
    assert_eq!(vr(&ingress(&c, PAY, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, NODE_2, API, 8080)), DEFAULT_DENY, "10.9.0.2 is a node");
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
    // Even a /32 naming the pod exactly.
    let c = cluster(&[cnp(
        "default",
        "cidr",
        &format!("{{{API_SEL}, ingress: [{{fromCIDR: [10.0.0.2/32]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
}

/// spec §3.4: `except` carves addresses out of its own entry only.
#[test]
fn cidr_set_except() {
    let c = cluster(&[cnp(
        "default",
        "cidrset",
        &format!("{{{API_SEL}, ingress: [{{fromCIDRSet: [{{cidr: 10.0.0.0/8, except: [10.200.0.0/16]}}, {{cidr: 10.200.7.0/24}}]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, "10.100.0.1", API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, "10.200.0.5", API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, "10.200.255.255", API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, "10.200.7.7", API, 8080)), ALLOW_L4, "allowed by the second entry");
    assert_eq!(vr(&ingress(&c, "11.0.0.1", API, 8080)), DEFAULT_DENY);
}

/// spec §3.4 / §2.4: `0.0.0.0/0` is every external IPv4 address, still no pod or node.
#[test]
fn cidr_everything() {
    let c = cluster(&[
        cnp(
            "default",
            "anywhere",
            &format!("{{{FRONTEND_SEL}, egress: [{{toCIDR: [0.0.0.0/0]}}]}}"),
        ),
        cidr_identity_policy(),
    ]);
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, "203.0.113.5", 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, "10.200.0.5", 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_1, 443)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, NODE_2, 443)), DEFAULT_DENY);
    // 0.0.0.0/0 is the IPv4 half of world (world-ipv4): an IPv6 address is not in it, and
    // ::/0 holds no IPv4 address.
    assert_eq!(vr(&egress(&c, FRONTEND, "2001:db8::1", 443)), DEFAULT_DENY);
    let c = cluster(&[cnp(
        "default",
        "anywhere6",
        &format!("{{{FRONTEND_SEL}, egress: [{{toCIDR: ['::/0']}}]}}"),
    )]);
    assert_eq!(vr(&egress(&c, FRONTEND, "2001:db8::1", 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 443)), DEFAULT_DENY);
    // With an exception.
    let c = cluster(&[cnp("default", "anywhere", &format!("{{{FRONTEND_SEL}, egress: [{{toCIDRSet: [{{cidr: 0.0.0.0/0, except: [192.0.2.0/24]}}]}}]}}"))]);
    assert_eq!(vr(&egress(&c, FRONTEND, "198.51.100.1", 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 443)), DEFAULT_DENY);
}

// ---------------------------------------------------------------------------------------------
// §3.8 ports.

/// spec §3.8: `endPort` is an inclusive upper bound.
#[test]
fn port_range_end_inclusive() {
    let c = cluster(&[cnp("default", "range", &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{ports: [{{port: '8000', endPort: 8010, protocol: TCP}}]}}]}}]}}"))]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 7999)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8000)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8005)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8010)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8011)), DEFAULT_DENY);
    assert_eq!(vr(&ingress_of(&c, udp(FRONTEND, API, 8005))), DEFAULT_DENY);
}

/// spec §3.8: port `"0"` is every port of its protocol.
#[test]
fn port_zero_is_every_port() {
    let c = cluster(&[cnp("default", "zero", &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{ports: [{{port: '0', protocol: TCP}}]}}]}}]}}"))]);
    for port in [1, 80, 8080, 65535] {
        assert_eq!(vr(&ingress(&c, FRONTEND, API, port)), ALLOW_L4, "{port}");
    }
    assert_eq!(vr(&ingress_of(&c, udp(FRONTEND, API, 53))), DEFAULT_DENY, "TCP only");
    assert_eq!(vr(&ingress(&c, BATCH, API, 80)), DEFAULT_DENY);
}

/// spec §3.8: protocol `ANY` (or omitted) covers TCP and UDP; a UDP rule does not allow TCP.
#[test]
fn protocols_any_tcp_udp() {
    for any in ["protocol: ANY", ""] {
        let c = cluster(&[cnp("default", "any", &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{ports: [{{port: '53', {any}}}]}}]}}]}}"))]);
        assert_eq!(vr(&ingress(&c, FRONTEND, API, 53)), ALLOW_L4, "{any:?}");
        assert_eq!(vr(&ingress_of(&c, udp(FRONTEND, API, 53))), ALLOW_L4, "{any:?}");
        assert_eq!(vr(&ingress(&c, FRONTEND, API, 54)), DEFAULT_DENY, "{any:?}");
    }
    let c = cluster(&[cnp("default", "udp", &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{ports: [{{port: '53', protocol: UDP}}]}}]}}]}}"))]);
    assert_eq!(vr(&ingress_of(&c, udp(FRONTEND, API, 53))), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 53)), DEFAULT_DENY);
}

/// spec §3.8: on ingress a named port resolves against the subject's own ports, so one policy
/// opens a different number on each subject.
#[test]
fn named_port_ingress_resolves_on_the_subject() {
    let c = cluster(&[cnp(
        "default",
        "named",
        &format!("{{endpointSelector: {{matchExpressions: [{{key: app, operator: In, values: [api, web, db]}}]}}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{ports: [{{port: HTTP, protocol: TCP}}]}}]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), ALLOW_L4, "api: http = 8080");
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8081)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, FRONTEND, WEB, 8081)), ALLOW_L4, "web: http = 8081");
    assert_eq!(vr(&ingress(&c, FRONTEND, WEB, 8080)), DEFAULT_DENY);
    assert_eq!(
        vr(&ingress(&c, FRONTEND, DB, 8080)),
        DEFAULT_DENY,
        "db has no port named http: nothing"
    );
    assert_eq!(vr(&ingress(&c, FRONTEND, DB, 8081)), DEFAULT_DENY);
}

/// spec §3.8: on egress a named port resolves across all endpoints; a name two endpoints map
/// to different numbers resolves to nothing.
#[test]
fn named_port_egress_resolves_across_endpoints() {
    let c = cluster(&[cnp(
        "default",
        "named-egress",
        &format!("{{{FRONTEND_SEL}, egress: [{{toEndpoints: [{{}}], toPorts: [{{ports: [{{port: metrics, protocol: TCP}}, {{port: http, protocol: TCP}}]}}]}}]}}"),
    )]);
    assert_eq!(vr(&egress(&c, FRONTEND, API, 9090)), ALLOW_L4, "metrics is 9090 everywhere");
    assert_eq!(
        vr(&egress(&c, FRONTEND, DB, 9090)),
        ALLOW_L4,
        "resolved cluster-wide, not on the peer"
    );
    assert_eq!(
        vr(&egress(&c, FRONTEND, API, 8080)),
        DEFAULT_DENY,
        "http is 8080 on api, 8081 on web: ambiguous"
    );
    assert_eq!(vr(&egress(&c, FRONTEND, WEB, 8081)), DEFAULT_DENY);
}

// ---------------------------------------------------------------------------------------------
// §4.1 default deny.

/// spec §4.1 examples: no policy; egress-only policy; `ingress: [{}]`; frontend only.
#[test]
fn default_deny_table_allow_rows() {
    let c = cluster(&[]);
    assert_eq!(
        full(&ingress(&c, WORLD_IP, API, 8080)),
        ("allow", "policy-not-enforced", None, None)
    );
    assert_eq!(vr(&egress(&c, API, WORLD_IP, 443)), OPEN);

    let c = cluster(&[cnp(
        "default",
        "egress-only",
        &format!("{{{API_SEL}, egress: [{{toEntities: [world]}}]}}"),
    )]);
    assert_eq!(
        vr(&ingress(&c, WORLD_IP, API, 8080)),
        OPEN,
        "item 1: an egress-only policy leaves ingress open"
    );
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), OPEN);
    assert_eq!(vr(&egress(&c, API, FRONTEND, 80)), DEFAULT_DENY);

    let c = cluster(&[cnp("default", "closed", &format!("{{{API_SEL}, ingress: [{{}}]}}"))]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);

    let c = cluster(&[cnp(
        "default",
        "frontend-only",
        &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
}

/// spec §4.1 item 3 / examples: with `enableDefaultDeny.ingress: false` alone, everything not
/// denied passes (via the synthetic default allow); item 2: mixed with a default-deny policy
/// the direction is enforced.
#[test]
fn enable_default_deny_false() {
    let lenient = cnp(
        "default",
        "lenient",
        &format!(
            "{{{API_SEL}, enableDefaultDeny: {{ingress: false}}, ingress: [{{{FROM_FRONTEND}}}]}}"
        ),
    );
    let c = cluster(std::slice::from_ref(&lenient));
    let side = ingress(&c, BATCH, API, 8080);
    assert_eq!(
        (vr(&side), side.policy.as_deref(), side.kind.as_deref()),
        (ALLOW_L4, Some("default-allow"), Some("l7gate"))
    );
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 1)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), ALLOW_L4);

    let strict = cnp(
        "default",
        "strict",
        &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{app: db}}}}]}}]}}"),
    );
    let c = cluster(&[lenient, strict]);
    assert_eq!(
        full(&ingress(&c, FRONTEND, API, 8080)),
        ("allow", "allowed-l3-l4", Some("default/lenient"), Some("spec.ingress[0]"))
    );
    assert_eq!(vr(&ingress(&c, DB, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
}

/// spec §4.1 items 1-2: only a non-empty section counts; `ingress: []` leaves ingress open.
#[test]
fn empty_section_does_not_enforce() {
    let c = cluster(&[cnp(
        "default",
        "empty-section",
        &format!("{{{API_SEL}, ingress: [], egress: [{{toEntities: [world]}}]}}"),
    )]);
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), OPEN);
    assert_eq!(vr(&egress(&c, API, BATCH, 8080)), DEFAULT_DENY);
}

/// spec §4.1 item 4: `enableDefaultDeny.egress: true` on a rule without egress sections has
/// no effect.
#[test]
fn default_deny_flag_without_section_has_no_effect() {
    let c = cluster(&[cnp(
        "default",
        "flag",
        &format!(
            "{{{API_SEL}, enableDefaultDeny: {{egress: true}}, ingress: [{{{FROM_FRONTEND}}}]}}"
        ),
    )]);
    assert_eq!(vr(&egress(&c, API, WORLD_IP, 443)), OPEN);
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), DEFAULT_DENY);
}

/// spec §4.1 item 5 / examples: an `ingressDeny`-only policy makes ingress deny-all; with
/// `enableDefaultDeny.ingress: false` it is "all except the denied".
#[test]
fn ingress_deny_only() {
    let deny_batch = "ingressDeny: [{fromEndpoints: [{matchLabels: {app: batch}}]}]";
    let c = cluster(&[cnp("default", "no-batch", &format!("{{{API_SEL}, {deny_batch}}}"))]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), DEFAULT_DENY);
    assert_eq!(
        full(&ingress(&c, BATCH, API, 8080)),
        ("deny", "denied-by-deny-rule", Some("default/no-batch"), Some("spec.ingressDeny[0]"))
    );

    let c = cluster(&[cnp(
        "default",
        "no-batch",
        &format!("{{{API_SEL}, enableDefaultDeny: {{ingress: false}}, {deny_batch}}}"),
    )]);
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), DENY_RULE);
}

/// spec §4.1 item 8: with ingress enforced, the subject's own node (`host`) may always reach
/// it; a remote node may not. Egress gets no such exception.
#[test]
fn allow_localhost_at_ingress() {
    let c = cluster(&[cnp(
        "default",
        "closed",
        &format!("{{{API_SEL}, ingress: [{{}}], egress: [{{}}]}}"),
    )]);
    let from_host = ingress(&c, NODE_1, API, 8080);
    assert_eq!(
        (vr(&from_host), from_host.policy.as_deref(), from_host.kind.as_deref()),
        (ALLOW_L4, Some("allow-localhost"), Some("l7gate"))
    );
    assert_eq!(from_host.peer_identity, HOST);
    assert_eq!(vr(&ingress(&c, NODE_2, API, 8080)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, API, NODE_1, 10250)), DEFAULT_DENY);
}

// ---------------------------------------------------------------------------------------------
// §4.2 deny wins.

/// spec §4.2: an L3 deny blocks every port from the peer even where an L7 rule allows it.
#[test]
fn l3_deny_beats_l7_allow() {
    let c = cluster(&[
        cnp("default", "l7", &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{ports: [{{port: '8080', protocol: TCP}}], rules: {{http: [{{method: GET}}]}}}}]}}]}}")),
        ccnp("no-frontend", &format!("{{{API_SEL}, ingressDeny: [{{fromEndpoints: [{{matchLabels: {{'k8s:io.kubernetes.pod.namespace': default, app: frontend-app}}}}]}}]}}")),
    ]);
    let side = ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/"));
    assert_eq!(
        full(&side),
        ("deny", "denied-by-deny-rule", Some("no-frontend"), Some("spec.ingressDeny[0]"))
    );
    assert_eq!(side.kind.as_deref(), Some("CiliumClusterwideNetworkPolicy"));
}

/// spec §4.2: a port deny without L3 field blocks that port from everyone, even a peer an
/// L3-only rule allows; other ports stay allowed.
#[test]
fn port_deny_beats_l3_only_allow() {
    let c = cluster(&[cnp(
        "default",
        "mixed",
        &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}}}], ingressDeny: [{{toPorts: [{{ports: [{{port: '8080', protocol: TCP}}]}}]}}]}}"),
    )]);
    assert_eq!(
        full(&ingress(&c, FRONTEND, API, 8080)),
        (
            "deny",
            "denied-by-deny-rule",
            Some("default/mixed"),
            Some("spec.ingressDeny[0].toPorts[0]")
        )
    );
    assert_eq!(vr(&ingress(&c, FRONTEND, API, 9090)), ALLOW_L4);
    assert_eq!(vr(&ingress(&c, NODE_1, API, 8080)), DENY_RULE, "deny beats allow-localhost too");
}

/// spec §4.2: denying the `world` entity also denies CIDR-derived (and name-reached) peers.
#[test]
fn world_deny_covers_cidr_peers() {
    let c = cluster(&[cnp(
        "default",
        "no-world",
        &format!("{{{FRONTEND_SEL}, egress: [{{toCIDR: [203.0.113.0/24]}}, {{toFQDNs: [{{matchName: api.example.com}}]}}, {{toEntities: [cluster]}}], egressDeny: [{{toEntities: [world]}}]}}"),
    )]);
    assert_eq!(
        full(&egress(&c, FRONTEND, "203.0.113.5", 443)),
        ("deny", "denied-by-deny-rule", Some("default/no-world"), Some("spec.egressDeny[0]"))
    );
    assert_eq!(vr(&egress(&c, FRONTEND, "api.example.com", 443)), DENY_RULE);
    assert_eq!(vr(&egress(&c, FRONTEND, API, 8080)), ALLOW_L4);
}

// ---------------------------------------------------------------------------------------------
// §4.3 L7 merging.

fn http_rule(from: &str, method: &str, path: &str) -> String {
    format!("{{{from}, toPorts: [{{ports: [{{port: '8080', protocol: TCP}}], rules: {{http: [{{method: {method}, path: '{path}'}}]}}}}]}}")
}

/// spec §4.3 item 1: same selector and port, HTTP rules from two policies are ORed.
#[test]
fn l7_same_selector_lists_concatenate() {
    let c = cluster(&[
        cnp(
            "default",
            "get-a",
            &format!("{{{API_SEL}, ingress: [{}]}}", http_rule(FROM_FRONTEND, "GET", "/a")),
        ),
        cnp(
            "default",
            "post-b",
            &format!("{{{API_SEL}, ingress: [{}]}}", http_rule(FROM_FRONTEND, "POST", "/b")),
        ),
    ]);
    let get_a = ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/a"));
    assert_eq!((vr(&get_a), get_a.policy.as_deref()), (ALLOW_L7, Some("default/get-a")));
    let post_b = ingress_of(&c, http(FRONTEND, API, 8080, "POST", "/b"));
    assert_eq!((vr(&post_b), post_b.policy.as_deref()), (ALLOW_L7, Some("default/post-b")));
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/b"))), L7_DENY);
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "POST", "/a"))), L7_DENY);
    assert_eq!(vr(&ingress_of(&c, http(BATCH, API, 8080, "GET", "/a"))), DEFAULT_DENY);
}

/// spec §4.3 item 2: same selector and port, one rule without L7: every request passes.
#[test]
fn l7_same_selector_l4_rule_voids_l7() {
    let c = cluster(&[
        cnp(
            "default",
            "get-a",
            &format!("{{{API_SEL}, ingress: [{}]}}", http_rule(FROM_FRONTEND, "GET", "/a")),
        ),
        cnp("default", "l4", &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, {TCP_8080}}}]}}")),
    ]);
    let side = ingress_of(&c, http(FRONTEND, API, 8080, "DELETE", "/anything"));
    assert_eq!(
        full(&side),
        ("allow", "allowed-l3-l4", Some("default/l4"), Some("spec.ingress[0].toPorts[0]"))
    );
}

/// spec §4.3 item 3: a broader L4-only selector containing the peer voids the peer's HTTP
/// restrictions on that port; peers outside the HTTP rule's selector get only the L4 rule.
#[test]
fn l7_broader_selector_voids_l7() {
    let c = cluster(&[cnp(
        "default",
        "broad",
        &format!(
            "{{{API_SEL}, ingress: [{}, {{fromEndpoints: [{{}}], {TCP_8080}}}]}}",
            http_rule(FROM_FRONTEND, "GET", "/a")
        ),
    )]);
    assert_eq!(
        full(&ingress_of(&c, http(FRONTEND, API, 8080, "POST", "/x"))),
        ("allow", "allowed-l3-l4", Some("default/broad"), Some("spec.ingress[1].toPorts[0]"))
    );
    assert_eq!(vr(&ingress_of(&c, http(BATCH, API, 8080, "POST", "/x"))), ALLOW_L4);
    assert_eq!(vr(&ingress_of(&c, http(OTHER_FRONTEND, API, 8080, "GET", "/a"))), DEFAULT_DENY);
}

/// spec §4.3 item 4: an L3-only rule for the peer voids HTTP restrictions on every port.
#[test]
fn l7_l3_only_rule_voids_l7_on_every_port() {
    let c = cluster(&[
        cnp("default", "get-a", &format!("{{{API_SEL}, ingress: [{}]}}", http_rule(FROM_FRONTEND, "GET", "/a"))),
        ccnp("l3", &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{app: frontend-app}}}}]}}]}}")),
    ]);
    assert_eq!(
        full(&ingress_of(&c, http(FRONTEND, API, 8080, "POST", "/x"))),
        ("allow", "allowed-l3-l4", Some("l3"), Some("spec.ingress[0]"))
    );
    // The CCNP selector admits other/frontend too (every namespace), on every port.
    assert_eq!(vr(&ingress_of(&c, http(OTHER_FRONTEND, API, 8080, "POST", "/x"))), ALLOW_L4);
    assert_eq!(vr(&ingress_of(&c, http(BATCH, API, 8080, "GET", "/a"))), DEFAULT_DENY);
}

/// spec §4.3 item 5: an L4 rule whose selector does not contain the peer does not help it:
/// external clients may do anything on 8080, frontend only what its HTTP rules say.
#[test]
fn l7_other_selector_does_not_void_l7() {
    let c = cluster(&[cnp(
        "default",
        "split",
        &format!(
            "{{{API_SEL}, ingress: [{{fromEntities: [world], {TCP_8080}}}, {}]}}",
            http_rule(FROM_FRONTEND, "GET", "/a")
        ),
    )]);
    assert_eq!(vr(&ingress_of(&c, http(WORLD_IP, API, 8080, "DELETE", "/x"))), ALLOW_L4);
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/a"))), ALLOW_L7);
    assert_eq!(
        full(&ingress_of(&c, http(FRONTEND, API, 8080, "DELETE", "/x"))),
        (
            "deny",
            "denied-l7-no-rule-matched",
            Some("default/split"),
            Some("spec.ingress[1].toPorts[0]")
        )
    );
}

/// spec §4.3 item 7: with default deny off, HTTP rules only observe; once another policy makes
/// the direction default-deny they are enforced.
#[test]
fn l7_with_default_deny_off_is_visibility_only() {
    let visibility = cnp(
        "default",
        "visibility",
        &format!(
            "{{{API_SEL}, enableDefaultDeny: {{ingress: false}}, ingress: [{}]}}",
            http_rule(FROM_FRONTEND, "GET", "/a")
        ),
    );
    let c = cluster(std::slice::from_ref(&visibility));
    assert_eq!(ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/a")).verdict, "allow");
    let side = ingress_of(&c, http(FRONTEND, API, 8080, "POST", "/x"));
    assert_eq!((side.verdict, side.policy.as_deref()), ("allow", Some("default-allow")));
    assert_eq!(vr(&ingress_of(&c, http(WORLD_IP, API, 9999, "POST", "/x"))), ALLOW_L4);

    let strict = cnp(
        "default",
        "strict",
        &format!("{{{API_SEL}, ingress: [{{fromEndpoints: [{{matchLabels: {{app: db}}}}]}}]}}"),
    );
    let c = cluster(&[visibility, strict]);
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/a"))), ALLOW_L7);
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "POST", "/x"))), L7_DENY);
    assert_eq!(vr(&ingress_of(&c, http(WORLD_IP, API, 8080, "GET", "/a"))), DEFAULT_DENY);
}

// ---------------------------------------------------------------------------------------------
// §6.4 toFQDNs.

/// spec §6.4 / §6.2: `toFQDNs` decides by name (SNI, else Host), case- and
/// trailing-dot-insensitively; `matchName` is exact, `*.` is exactly one label; the rule's
/// `toPorts` apply.
#[test]
fn to_fqdns_by_name_with_ports() {
    let c = cluster(&[cnp(
        "default",
        "names",
        &format!(
            "{{{FRONTEND_SEL}, egress: [{{toFQDNs: [{{matchName: api.example.com}}, {{matchPattern: '*.example.org'}}], toPorts: [{{ports: [{{port: '443', protocol: TCP}}]}}]}}]}}"
        ),
    )]);
    assert_eq!(
        full(&egress(&c, FRONTEND, "api.example.com", 443)),
        ("allow", "allowed-l3-l4", Some("default/names"), Some("spec.egress[0].toPorts[0]"))
    );
    assert_eq!(vr(&egress(&c, FRONTEND, "API.Example.COM.", 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, "api.example.com", 80)), DEFAULT_DENY, "toPorts apply");
    assert_eq!(
        vr(&egress(&c, FRONTEND, "www.example.com", 443)),
        DEFAULT_DENY,
        "matchName is exact"
    );
    assert_eq!(vr(&egress(&c, FRONTEND, "a.example.org", 443)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, "example.org", 443)), DEFAULT_DENY);
    assert_eq!(vr(&egress(&c, FRONTEND, "a.b.example.org", 443)), DEFAULT_DENY);
    // By SNI or Host towards an address; no name at all → not allowed by toFQDNs.
    let sni = Query { sni: Some("api.example.com".into()), ..query(FRONTEND, WORLD_IP, 443) };
    assert_eq!(vr(&egress_of(&c, sni)), ALLOW_L4);
    let host = Query { host: Some("x.example.org:443".into()), ..query(FRONTEND, WORLD_IP, 443) };
    assert_eq!(vr(&egress_of(&c, host)), ALLOW_L4);
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 443)), DEFAULT_DENY);
}

/// spec §6.1 / §6.4: `toFQDNs` with HTTP rules: the name selects the peer, the HTTP rules
/// restrict the requests; without `toPorts` every port is allowed to the name.
#[test]
fn to_fqdns_with_http_rules_and_without_ports() {
    let c = cluster(&[cnp(
        "default",
        "names",
        &format!(
            "{{{FRONTEND_SEL}, egress: [{{toFQDNs: [{{matchPattern: '**.example.com'}}], toPorts: [{{ports: [{{port: '80', protocol: TCP}}], rules: {{http: [{{method: GET, path: '/ok'}}]}}}}]}}, {{toFQDNs: [{{matchName: any-port.example.net}}]}}]}}"
        ),
    )]);
    assert_eq!(vr(&egress_of(&c, http(FRONTEND, "a.b.example.com", 80, "GET", "/ok"))), ALLOW_L7);
    assert_eq!(vr(&egress_of(&c, http(FRONTEND, "a.b.example.com", 80, "POST", "/ok"))), L7_DENY);
    assert_eq!(
        vr(&egress_of(&c, http(FRONTEND, "example.com", 80, "GET", "/ok"))),
        DEFAULT_DENY,
        "**. needs at least one label"
    );
    assert_eq!(vr(&egress(&c, FRONTEND, "any-port.example.net", 5432)), ALLOW_L4);
    assert_eq!(vr(&egress_of(&c, udp(FRONTEND, "any-port.example.net", 53))), ALLOW_L4);
}

// ---------------------------------------------------------------------------------------------
// §8 audit mode: annotated policies (or all, with the global switch) never deny.

/// `doc` annotated `l7gate.io/audit-mode: <value>`.
fn annotated(doc: String, value: &str) -> String {
    doc.replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations: {{l7gate.io/audit-mode: '{value}'}}\n"),
        1,
    )
}

fn api_get_only(name: &str) -> String {
    cnp(
        "default",
        name,
        &format!("{{{API_SEL}, ingress: [{{{FROM_FRONTEND}, toPorts: [{{ports: [{{port: '8080', protocol: TCP}}], rules: {{http: [{{method: GET}}]}}}}]}}]}}"),
    )
}

/// spec §8: a direction that only an audit policy enforces is not enforced: nothing is denied,
/// what that policy's default deny or HTTP rules would drop is `audit`. The compiled config
/// carries the audit view next to the (unenforced) direction that decides.
#[test]
fn audit_policy_alone_denies_nothing() {
    let c = cluster(&[annotated(api_get_only("api-audit"), "true")]);
    let config = c.compile(c.endpoint(API).unwrap()).unwrap();
    assert!(!config.ingress.enforced && config.ingress.rules.is_empty());
    let view = config.ingress.audit.as_deref().expect("an audit view");
    assert!(view.enforced && view.rules.iter().any(|r| r.origin.policy == "default/api-audit"));
    assert_eq!(config.egress.audit, None, "the policy says nothing about egress");
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/x"))), OPEN);
    let l7 = ingress_of(&c, http(FRONTEND, API, 8080, "DELETE", "/x"));
    assert_eq!(
        full(&l7),
        (
            "audit",
            "denied-l7-no-rule-matched",
            Some("default/api-audit"),
            Some("spec.ingress[0].toPorts[0]")
        )
    );
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), ("audit", "default-deny"));
    assert_eq!(trace(&c, &query(BATCH, API, 8080)).unwrap().verdict, "audit");
}

/// spec §8: next to an enforced policy, an audit policy's deny rule only reports, its allows
/// grant nothing, and the enforced policy's own denials stay denials.
#[test]
fn audit_policy_next_to_an_enforced_one() {
    let block = cnp("default", "block-batch", &format!("{{{API_SEL}, ingressDeny: [{{fromEndpoints: [{{matchLabels: {{app: frontend-app}}}}]}}], ingress: [{{fromEndpoints: [{{matchLabels: {{app: batch}}}}]}}]}}"));
    let c = cluster(&[api_get_only("api-get"), annotated(block, "true")]);
    assert_eq!(
        full(&ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/x"))),
        ("audit", "denied-by-deny-rule", Some("default/block-batch"), Some("spec.ingressDeny[0]"))
    );
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "DELETE", "/x"))), L7_DENY);
    assert_eq!(
        vr(&ingress(&c, BATCH, API, 8080)),
        DEFAULT_DENY,
        "an audit policy's allow grants nothing"
    );
}

/// The annotation must say "true"; without audit policies there is no audit view at all.
#[test]
fn audit_annotation_values_and_no_audit_view_without_audit_policies() {
    let c = cluster(&[annotated(api_get_only("api-get"), "false")]);
    let config = c.compile(c.endpoint(API).unwrap()).unwrap();
    assert!(config.ingress.enforced);
    assert_eq!((config.ingress.audit.clone(), config.egress.audit), (None, None));
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "DELETE", "/x"))), L7_DENY);
}

/// spec §8 global audit mode (`--audit-mode`): every policy is in audit mode; nothing denies,
/// would-be denials are `audit`; allowed traffic stays `allow`.
#[test]
fn global_audit_mode_audits_every_policy() {
    let block = cnp(
        "default",
        "block-batch",
        &format!(
            "{{{API_SEL}, ingressDeny: [{{fromEndpoints: [{{matchLabels: {{app: batch}}}}]}}]}}"
        ),
    );
    let c = cluster(&[api_get_only("api-get"), block]).with_audit_mode(true);
    assert_eq!(vr(&ingress_of(&c, http(FRONTEND, API, 8080, "GET", "/x"))), OPEN);
    assert_eq!(
        vr(&ingress_of(&c, http(FRONTEND, API, 8080, "DELETE", "/x"))),
        ("audit", "denied-l7-no-rule-matched")
    );
    assert_eq!(vr(&ingress(&c, BATCH, API, 8080)), ("audit", "denied-by-deny-rule"));
    assert_eq!(vr(&ingress(&c, WORLD_IP, API, 8080)), ("audit", "default-deny"));
    let off = cluster(&[api_get_only("api-get")]);
    assert_eq!(
        vr(&ingress(&off, WORLD_IP, API, 8080)),
        DEFAULT_DENY,
        "without the switch the same policy denies"
    );
}

// spec §6.1 for the egress proxy: an endpoint's own local addresses (loopback, unspecified,
// link-local) are never an egress destination, whatever the rules (the `cluster` entity
// includes `host`, yet 0.0.0.0 and 169.254.169.254 are refused); the inventory's `world:`
// ranges are the outside world instead (the single-machine demo runs on 127.0.0.0/8). The
// compiled config carries the endpoint's identity and the local table, `world` ranges first.
#[test]
fn local_destinations_are_refused_before_any_rule_unless_declared_world() {
    let policy = ccnp("egress", "{endpointSelector: {}, egress: [{toEntities: [cluster, world]}]}");
    let with_world = format!("world: [127.0.0.0/8, '169.254.0.0/24']\n{INVENTORY}");
    for (inventory, local_127, local_169) in
        [(INVENTORY.to_string(), true, true), (with_world, false, true)]
    {
        let c = cluster_with(&inventory, std::slice::from_ref(&policy));
        for (to, local) in [
            ("127.0.0.1", local_127),
            ("0.0.0.0", true),
            ("169.254.169.254", local_169),
            ("169.254.0.7", local_127),
            (WORLD_IP, false),
            (API, false),
        ] {
            let side = egress(&c, FRONTEND, to, 80);
            let want = if local {
                ("deny", "denied-local-destination")
            } else {
                ("allow", "allowed-l3-l4")
            };
            assert_eq!(vr(&side), want, "{to} (world ranges: {})", !local_127);
        }
        let frontend = c.endpoint(FRONTEND).unwrap();
        let config = c.compile(frontend).unwrap();
        assert_eq!(config.endpoint.identity, c.identities.of_endpoint[FRONTEND]);
        let engine = Engine::compile(&config).unwrap();
        assert!(!engine.is_outside_address("10.0.0.10".parse().unwrap()), "a pod is inside");
        assert!(!engine.is_outside_address(NODE_2.parse().unwrap()), "a node is inside");
        assert!(engine.is_outside_address(WORLD_IP.parse().unwrap()));
        assert!(engine.serves_caller("10.0.0.2".parse().unwrap()), "frontend itself");
        assert!(!engine.serves_caller("10.0.0.3".parse().unwrap()), "batch is another workload");
    }
    let refused = l7gate::inventory::parse_str(
        Path::new("endpoints.yaml"),
        "world: [127.0.0.300/8]\nendpoints: []\n",
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("endpoints.yaml:1:") && refused.contains("world[0]"), "{refused}");
}

/// spec §4.3 item 6: serverNames of rules for the same peers and port are unioned and bind each
/// of them (a rule without serverNames does not lift them; a multi-port rule keeps its other
/// port free); a rule with HTTP rules in such a group makes the endpoint's policy fail, as Cilium
/// fails to compute it.
#[test]
fn server_names_merge_per_peers_and_port() {
    let sni = |names: &str| Query { sni: Some(names.into()), ..query(FRONTEND, WORLD_IP, 443) };
    let c = cluster(&[cnp(
        "default",
        "sni",
        "{endpointSelector: {matchLabels: {app: frontend-app}}, egress: [\
         {toEntities: [world], toPorts: [{ports: [{port: '443', protocol: TCP}], serverNames: [a.example.com]}]},\
         {toEntities: [world], toPorts: [{ports: [{port: '443', protocol: TCP}, {port: '8443', protocol: TCP}]}]},\
         {toEntities: [world], toPorts: [{ports: [{port: '443', protocol: TCP}], serverNames: ['*.b.example.com']}]}]}",
    )]);
    assert_eq!(vr(&egress_of(&c, sni("a.example.com"))), ("allow", "allowed-l3-l4"));
    assert_eq!(vr(&egress_of(&c, sni("x.b.example.com"))), ("allow", "allowed-l3-l4"));
    assert_eq!(vr(&egress_of(&c, sni("c.example.com"))), ("deny", "denied-server-name"));
    assert_eq!(vr(&egress_of(&c, query(FRONTEND, WORLD_IP, 443))), ("deny", "denied-server-name"));
    assert_eq!(vr(&egress(&c, FRONTEND, WORLD_IP, 8443)), ("allow", "allowed-l3-l4"));

    let conflict = cluster(&[cnp(
        "default",
        "sni",
        "{endpointSelector: {matchLabels: {app: frontend-app}}, egress: [\
         {toEntities: [world], toPorts: [{ports: [{port: '443', protocol: TCP}], serverNames: [a.example.com]}]},\
         {toEntities: [world], toPorts: [{ports: [{port: '443', protocol: TCP}], rules: {http: [{method: GET}]}}]}]}",
    )]);
    let err = trace(&conflict, &sni("a.example.com")).expect_err("Cilium refuses this merge");
    assert!(
        err.contains("cannot merge its HTTP rules with the serverNames (a.example.com)"),
        "{err}"
    );
    assert!(err.contains("default/sni spec.egress[1].toPorts[0]"), "{err}");
}

/// spec §3.5: toServices. A Service with a pod selector allows its pods (in the Service's
/// namespace, whatever the policy's); one without allows its backend addresses as CIDRs; a
/// reference without namespace matches the Service in any namespace; k8sServiceSelector matches
/// the Service's own labels; ports are the backends' ports.
#[test]
fn to_services_select_pods_or_backend_addresses() {
    let inventory = format!(
        "{INVENTORY}services:\n  - {{name: api, labels: {{tier: web}}, selector: {{app: api}}}}\n  \
         - {{name: pay, namespace: payments, selector: {{app: pay}}}}\n  \
         - {{name: ext, labels: {{tier: web}}, addresses: ['{WORLD_IP}']}}\n"
    );
    let policy = |to_services: &str| {
        cluster_with(
            &inventory,
            &[cnp(
                "default",
                "svc",
                &format!("{{endpointSelector: {{matchLabels: {{app: frontend-app}}}}, egress: [{{toServices: [{to_services}], toPorts: [{{ports: [{{port: '8080', protocol: TCP}}]}}]}}]}}"),
            )],
        )
    };
    let by_name = policy("{k8sService: {serviceName: api, namespace: default}}");
    assert_eq!(vr(&egress(&by_name, FRONTEND, API, 8080)), ("allow", "allowed-l3-l4"));
    assert_eq!(
        vr(&egress(&by_name, FRONTEND, API, 9090)),
        ("deny", "default-deny"),
        "backend ports only"
    );
    assert_eq!(vr(&egress(&by_name, FRONTEND, WEB, 8080)), ("deny", "default-deny"));

    let any_namespace = policy("{k8sService: {serviceName: pay}}");
    assert_eq!(vr(&egress(&any_namespace, FRONTEND, PAY, 8080)), ("allow", "allowed-l3-l4"));

    let selectorless = policy("{k8sService: {serviceName: ext}}");
    assert_eq!(vr(&egress(&selectorless, FRONTEND, WORLD_IP, 8080)), ("allow", "allowed-l3-l4"));
    assert_eq!(vr(&egress(&selectorless, FRONTEND, "192.0.2.11", 8080)), ("deny", "default-deny"));

    let by_labels = policy("{k8sServiceSelector: {selector: {matchLabels: {tier: web}}}}");
    assert_eq!(vr(&egress(&by_labels, FRONTEND, API, 8080)), ("allow", "allowed-l3-l4"));
    assert_eq!(vr(&egress(&by_labels, FRONTEND, WORLD_IP, 8080)), ("allow", "allowed-l3-l4"));
    assert_eq!(vr(&egress(&by_labels, FRONTEND, PAY, 8080)), ("deny", "default-deny"));

    let missing = policy("{k8sService: {serviceName: nope}}");
    assert_eq!(vr(&egress(&missing, FRONTEND, API, 8080)), ("deny", "default-deny"));
}
