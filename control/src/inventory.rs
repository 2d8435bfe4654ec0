//! The endpoint inventory: which workloads exist, their labels, addresses and named ports, plus
//! namespace labels, node addresses, services (for `toServices`), and which local-looking
//! ranges are the outside world here. Read from `endpoints.yaml` (l7gate's own format) or a
//! Kubernetes `v1 List` of Pods, Namespaces, Nodes, Services and EndpointSlices as printed by
//! `kubectl get pods,namespaces,nodes,services,endpointslices -A -o yaml`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use l7gate_filter::cidr::Cidr;

use crate::cilium::model::Port;
use crate::cilium::validate;
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::yaml::{describe, is_empty_seq, scalar_text, span_of, Decoder, Fields, Node, Shape};

/// A node of the inventory (named apart from the YAML node type).
type Node_ = NodeEntry;

/// The most endpoints an inventory may list: every endpoint's configuration carries the
/// cluster's address table, so `l7gate serve` holds memory in the square of this (measured in
/// docs/xds.md); beyond it a reload would exhaust a control plane's memory instead of failing.
pub const MAX_ENDPOINTS: usize = 10_000;

/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A workload (pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    /// Named container ports, names lower-cased.
    pub ports: BTreeMap<String, u16>,
    pub service_account: String,
    /// The node the pod runs on: that node's addresses are `host` to it, other nodes'
    /// `remote-node`.
    pub node: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    pub name: String,
    pub ips: Vec<IpAddr>,
}

/// A Kubernetes Service, as `toServices` sees it (spec §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    /// The Service's own labels (what `k8sServiceSelector` matches).
    pub labels: BTreeMap<String, String>,
    /// Its pod selector; `None` for a Service without one, whose backends are `addresses`.
    pub selector: Option<BTreeMap<String, String>>,
    /// Backend addresses of a Service without selector (its EndpointSlices).
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Namespace name → its labels (namespaces not listed have none).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub nodes: Vec<NodeEntry>,
    pub endpoints: Vec<Endpoint>,
    pub services: Vec<Service>,
    /// Loopback, unspecified or link-local ranges that are the outside world on this
    /// installation (`world:`), not the endpoints' own hosts: the single-machine demo and tests
    /// run their "internet" on 127.0.0.0/8. Everywhere else those ranges are never a name's
    /// destination (see `compile`).
    pub world: Vec<Cidr>,
}

impl Inventory {
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.name == name || format!("{}/{}", e.namespace, e.name) == name)
    }
}

/// Loads the inventory from `path`; all errors of the file at once, nothing on error.
pub fn load(path: &Path) -> Result<Inventory, Diagnostics> {
    let text = crate::yaml::read_input(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(
            path,
            Span { line: 1, col: 1 },
            "",
            format!("inventory: {e}"),
        )])
    })?;
    parse_str(path, &text)
}

/// Parses an inventory text (l7gate's format or a kubectl `v1 List`).
pub fn parse_str(file: &Path, text: &str) -> Result<Inventory, Diagnostics> {
    let mut d = Decoder::new(file);
    let mut inventory = Inventory::default();
    let mut count = 0;
    let found = d.each_document(text, |d, doc| {
        count += 1;
        if count == 1 {
            d.inventory(doc, &mut inventory);
        } else if count == 2 {
            d.error(doc, "", "the inventory must be one YAML document: merge the documents");
        }
    });
    if found == Some(0) {
        d.error_at(
            Span { line: 1, col: 1 },
            "",
            "the inventory is empty: list endpoints (see manifests/endpoints.yaml)",
        );
    }
    d.check_unique(&inventory);
    if d.errors.is_empty() {
        Ok(inventory)
    } else {
        Err(Diagnostics(d.errors).sorted())
    }
}

static INVENTORY: Shape =
    Shape::plain("an inventory", &["namespaces", "nodes", "endpoints", "services", "world"]);
static SERVICE: Shape =
    Shape::plain("a service", &["name", "namespace", "labels", "selector", "addresses"]);
static NAMESPACE: Shape = Shape::plain("a namespace", &["name", "labels"]);
static NODE: Shape = Shape::plain("a node", &["name", "ips"]);
static ENDPOINT: Shape = Shape::plain(
    "an endpoint",
    &["name", "namespace", "labels", "ips", "ports", "serviceAccount", "node"],
);
static LIST: Shape =
    Shape { ignored: &["metadata"], ..Shape::plain("a v1 List", &["apiVersion", "kind", "items"]) };

impl Decoder<'_> {
    fn inventory(&mut self, doc: &Node, inventory: &mut Inventory) {
        let Some(f) = self.mapping(doc, "", "an inventory") else { return };
        if f.get("kind").is_some() {
            return self.kube_list(doc, inventory);
        }
        self.check_fields(&f, &INVENTORY);
        if let Some(n) = f.get("namespaces") {
            for (name, labels) in
                self.list(n, "namespaces", |d, n, p| d.namespace(n, p)).into_iter().flatten()
            {
                inventory.namespaces.insert(name, labels);
            }
        }
        if let Some(n) = f.get("nodes") {
            inventory.nodes = self.list(n, "nodes", |d, n, p| d.node(n, p)).unwrap_or_default();
        }
        if let Some(n) = f.get("world") {
            inventory.world = self
                .list(n, "world", |d, n, p| {
                    let text = d.string(n, p)?;
                    d.check(n, p, validate::cidr(&text))
                })
                .unwrap_or_default();
        }
        if let Some(n) = f.get("services") {
            inventory.services =
                self.list(n, "services", |d, n, p| d.service(n, p)).unwrap_or_default();
        }
        match f.get("endpoints") {
            Some(n) => {
                let mut count = 0;
                inventory.endpoints = self
                    .list(n, "endpoints", |d, n, p| {
                        count += 1;
                        match count.cmp(&(MAX_ENDPOINTS + 1)) {
                            std::cmp::Ordering::Less => d.endpoint(n, p),
                            std::cmp::Ordering::Equal => {
                                d.too_many_endpoints(n, p);
                                None
                            }
                            std::cmp::Ordering::Greater => None,
                        }
                    })
                    .unwrap_or_default()
            }
            None => {
                self.error(doc, "endpoints", "missing required field endpoints: list the workloads")
            }
        }
    }

    fn namespace(&mut self, node: &Node, path: &str) -> Option<(String, BTreeMap<String, String>)> {
        let f = self.fields(node, path, &NAMESPACE)?;
        let name = self.required_string(&f, "name", "name the namespace")?;
        let labels = f.get("labels").map(|n| self.labels(n, &f.path("labels"))).unwrap_or_default();
        Some((name, labels))
    }

    /// A service of l7gate's format: with a pod `selector`, or else its backend `addresses`.
    fn service(&mut self, node: &Node, path: &str) -> Option<Service> {
        let f = self.fields(node, path, &SERVICE)?;
        let name = self.required_string(&f, "name", "name the service");
        let namespace = self.namespace_field(&f);
        let labels = f.get("labels").map(|n| self.labels(n, &f.path("labels"))).unwrap_or_default();
        let selector = f.get("selector").map(|n| self.labels(n, &f.path("selector")));
        let addresses = match (f.get("addresses"), &selector) {
            (Some(_), Some(_)) => {
                self.error(
                    node,
                    &f.path("addresses"),
                    "a service has a selector or addresses, not both: its pods are its backends",
                );
                Vec::new()
            }
            (Some(_), None) => self.addresses_of(&f, "addresses"),
            (None, _) => Vec::new(),
        };
        Some(Service { name: name?, namespace: namespace?, labels, selector, addresses })
    }

    /// An object's `namespace`, `default` when absent (as kubectl applies it).
    fn namespace_field(&mut self, f: &Fields) -> Option<String> {
        match f.get("namespace") {
            Some(n) => self.string(n, &f.path("namespace")),
            None => Some("default".to_string()),
        }
    }

    fn node(&mut self, node: &Node, path: &str) -> Option<Node_> {
        let f = self.fields(node, path, &NODE)?;
        let name = self.required_string(&f, "name", "name the node");
        let ips = self.ips(&f);
        Some(Node_ { name: name?, ips })
    }

    fn endpoint(&mut self, node: &Node, path: &str) -> Option<Endpoint> {
        let f = self.fields(node, path, &ENDPOINT)?;
        let name = self.required_string(&f, "name", "name the endpoint (its pod name)");
        let namespace = self.namespace_field(&f);
        let labels = f.get("labels").map(|n| self.labels(n, &f.path("labels"))).unwrap_or_default();
        let ips = self.ips(&f);
        if f.get("ips").is_some_and(is_empty_seq) {
            self.error(node, &f.path("ips"), "an endpoint needs at least one address");
        }
        let mut ports = BTreeMap::new();
        if let Some(n) = f.get("ports") {
            let map = self.mapping(n, &f.path("ports"), "a map of port names to numbers");
            for (port_name, key, value) in map.iter().flat_map(|m| m.entries.iter()) {
                let p = format!("{}.{port_name}", f.path("ports"));
                if let Some(number) = self.port_number(key, value, port_name, &p) {
                    ports.insert(port_name.to_ascii_lowercase(), number);
                }
            }
        }
        let service_account = match f.get("serviceAccount") {
            Some(n) => self.string(n, &f.path("serviceAccount")),
            None => Some("default".to_string()),
        };
        let node_name = f.get("node").and_then(|n| self.string(n, &f.path("node")));
        Some(Endpoint {
            name: name?,
            namespace: namespace?,
            labels,
            ips,
            ports,
            service_account: service_account?,
            node: node_name,
        })
    }

    fn labels(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in self.string_map(node, path).unwrap_or_default() {
            let p = format!("{path}.{k}");
            let valid = validate::label_key(&k).and_then(|_| validate::label_value(&v));
            if self.check(node, &p, valid).is_some() {
                out.insert(k, v);
            }
        }
        out
    }

    fn ips(&mut self, f: &Fields) -> Vec<IpAddr> {
        if f.get("ips").is_none() {
            self.error(
                f.node,
                &f.path("ips"),
                "missing required field ips: list the addresses, e.g. ips: [10.0.0.7]",
            );
            return Vec::new();
        }
        self.addresses_of(f, "ips")
    }

    /// The IP addresses listed in `field` of `f`.
    fn addresses_of(&mut self, f: &Fields, field: &str) -> Vec<IpAddr> {
        let Some(n) = f.get(field) else { return Vec::new() };
        self.list(n, &f.path(field), |d, n, p| {
            let text = d.string(n, p)?;
            // An IPv4-mapped address is the IPv4 address (as the filter reads peers).
            let ip = text.parse::<IpAddr>().map(|ip| ip.to_canonical()).map_err(|_| {
                format!("{text:?} is not an IP address (write e.g. 10.0.0.7 or fd00::7)")
            });
            d.check(n, p, ip)
        })
        .unwrap_or_default()
    }

    fn port_number(&mut self, key: &Node, value: &Node, name: &str, path: &str) -> Option<u16> {
        if !matches!(validate::port(name), Ok(Port::Named(_))) {
            self.error(key, path, format!("{name:?} is not a valid port name (1-15 letters, digits and inner dashes, at least one letter)"));
            return None;
        }
        let number = scalar_text(value).and_then(|t| t.parse::<u16>().ok()).filter(|n| *n > 0);
        if number.is_none() {
            self.error(
                value,
                path,
                format!("expected a port number from 1 to 65535, found {}", describe(value)),
            );
        }
        number
    }

    /// `kubectl get pods,namespaces,nodes -A -o yaml`: a `v1 List` of Pods (and optionally
    /// Namespaces and Nodes). Only the fields l7gate needs are read; the rest is kubectl's.
    fn kube_list(&mut self, doc: &Node, inventory: &mut Inventory) {
        let Some(f) = self.fields(doc, "", &LIST) else { return };
        let kind = f.get("kind").and_then(|n| self.string(n, "kind"));
        if kind.as_deref() != Some("List") {
            let node = f.get("kind").unwrap_or(doc);
            return self.error(node, "kind", "an inventory is either l7gate's endpoints format or a kubectl v1 List (kubectl get pods -A -o yaml)");
        }
        let Some(items) = f.get("items") else { return };
        let items =
            self.list(items, "items", |_, n, p| Some((n, p.to_string()))).unwrap_or_default();
        let mut services: Vec<Service> = Vec::new();
        let mut slices: Vec<((String, String), Vec<IpAddr>)> = Vec::new();
        for (item, path) in items {
            let Some(obj) = self.mapping(item, &path, "a Kubernetes object") else { continue };
            let kind =
                obj.get("kind").and_then(|n| self.string(n, &obj.path("kind"))).unwrap_or_default();
            let text = |d: &mut Self, parent: &Fields, name: &str| {
                parent.get(name).and_then(|n| d.string(n, &parent.path(name)))
            };
            let meta = obj
                .get("metadata")
                .and_then(|n| self.mapping(n, &obj.path("metadata"), "metadata"));
            let Some(meta) = meta else {
                self.error(item, &path, "a listed object needs metadata.name");
                continue;
            };
            let name = text(self, &meta, "name");
            let labels = meta
                .get("labels")
                .map(|n| self.labels(n, &meta.path("labels")))
                .unwrap_or_default();
            let spec = obj.get("spec").and_then(|n| self.mapping(n, &obj.path("spec"), "spec"));
            let status =
                obj.get("status").and_then(|n| self.mapping(n, &obj.path("status"), "status"));
            match (kind.as_str(), name) {
                ("Namespace", Some(name)) => {
                    inventory.namespaces.insert(name, labels);
                }
                ("Node", Some(name)) => {
                    let ips = status
                        .as_ref()
                        .map(|s| self.addresses(s, "addresses", "address"))
                        .unwrap_or_default();
                    inventory.nodes.push(Node_ { name, ips });
                }
                ("Pod", Some(name)) => {
                    let namespace =
                        text(self, &meta, "namespace").unwrap_or_else(|| "default".into());
                    let mut ips = status
                        .as_ref()
                        .map(|s| self.addresses(s, "podIPs", "ip"))
                        .unwrap_or_default();
                    if ips.is_empty() {
                        ips = status
                            .as_ref()
                            .and_then(|s| text(self, s, "podIP"))
                            .and_then(|t| t.parse().ok())
                            .into_iter()
                            .collect();
                    }
                    let (ports, service_account, node) = match &spec {
                        Some(spec) => (
                            self.container_ports(spec),
                            text(self, spec, "serviceAccountName"),
                            text(self, spec, "nodeName"),
                        ),
                        None => (BTreeMap::new(), None, None),
                    };
                    if ips.is_empty() {
                        // A pod without an address (pending) cannot be a peer or a sidecar subject yet.
                        self.warnings.push(Diagnostic::new(
                            self.file,
                            span_of(item),
                            &path,
                            format!("pod {namespace}/{name} has no IP yet: skipped"),
                        ));
                        continue;
                    }
                    let service_account = service_account.unwrap_or_else(|| "default".into());
                    if inventory.endpoints.len() == MAX_ENDPOINTS {
                        return self.too_many_endpoints(item, &path);
                    }
                    inventory.endpoints.push(Endpoint {
                        name,
                        namespace,
                        labels,
                        ips,
                        ports,
                        service_account,
                        node,
                    });
                }
                ("Service", Some(name)) => {
                    let namespace =
                        text(self, &meta, "namespace").unwrap_or_else(|| "default".into());
                    let selector = spec
                        .as_ref()
                        .and_then(|s| {
                            s.get("selector").map(|n| self.labels(n, &s.path("selector")))
                        })
                        .filter(|s| !s.is_empty());
                    services.push(Service {
                        name,
                        namespace,
                        labels,
                        selector,
                        addresses: Vec::new(),
                    });
                }
                ("EndpointSlice", Some(_)) => {
                    let namespace =
                        text(self, &meta, "namespace").unwrap_or_else(|| "default".into());
                    let Some(service) = labels.get(SERVICE_NAME_LABEL).cloned() else { continue };
                    let endpoints = obj.get("endpoints").and_then(|n| {
                        self.list(n, &obj.path("endpoints"), |d, n, p| {
                            d.mapping(n, p, "an endpoint")
                        })
                    });
                    let mut addresses = Vec::new();
                    for e in endpoints.iter().flatten() {
                        addresses.extend(self.addresses_of(e, "addresses"));
                    }
                    slices.push(((namespace, service), addresses));
                }
                (_, None) => self.error(item, &meta.path("name"), "missing metadata.name"),
                _ => {} // other kinds carry nothing l7gate needs
            }
        }
        // A Service without selector has the addresses of its EndpointSlices as backends.
        for ((namespace, name), addresses) in slices {
            if let Some(s) = services
                .iter_mut()
                .find(|s| s.selector.is_none() && s.namespace == namespace && s.name == name)
            {
                s.addresses.extend(addresses);
            }
        }
        inventory.services = services;
    }

    /// IPs from a list of objects with an address field (`status.podIPs[].ip`,
    /// `status.addresses[].address`); entries that are not IPs (hostnames) are skipped.
    fn addresses(&mut self, status: &Fields, list: &str, field: &str) -> Vec<IpAddr> {
        let Some(n) = status.get(list) else { return Vec::new() };
        self.list(n, &status.path(list), |d, n, p| {
            let m = d.mapping(n, p, "an address entry")?;
            let text = m.get(field).and_then(|v| d.string(v, &m.path(field)))?;
            text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
        })
        .unwrap_or_default()
    }

    fn container_ports(&mut self, spec: &Fields) -> BTreeMap<String, u16> {
        let mut ports = BTreeMap::new();
        let Some(containers) = spec.get("containers") else { return ports };
        let containers = self
            .list(containers, &spec.path("containers"), |d, n, p| d.mapping(n, p, "a container"))
            .unwrap_or_default();
        for c in &containers {
            let Some(list) = c.get("ports") else { continue };
            let entries = self
                .list(list, &c.path("ports"), |d, n, p| d.mapping(n, p, "a container port"))
                .unwrap_or_default();
            for e in &entries {
                if let (Some((key, name)), Some(value)) = (e.entry("name"), e.get("containerPort"))
                {
                    let name_text = self.string(name, &e.path("name")).unwrap_or_default();
                    if let Some(number) =
                        self.port_number(key, value, &name_text, &e.path("containerPort"))
                    {
                        ports.insert(name_text.to_ascii_lowercase(), number);
                    }
                }
            }
        }
        ports
    }

    /// Two workloads with one name, or one address given to two owners, is an error.
    fn too_many_endpoints(&mut self, node: &Node, path: &str) {
        let message = format!(
            "more than {MAX_ENDPOINTS} endpoints (the limit of one inventory: every endpoint's \
             configuration holds the whole address table); serve a smaller part of the cluster \
             per control plane"
        );
        self.error(node, path, message);
    }

    fn check_unique(&mut self, inventory: &Inventory) {
        let mut names = BTreeMap::new();
        let mut owners: BTreeMap<IpAddr, String> = BTreeMap::new();
        let mut problems = Vec::new();
        for e in &inventory.endpoints {
            let q = format!("{}/{}", e.namespace, e.name);
            if names.insert(q.clone(), ()).is_some() {
                problems.push(format!("endpoint {q} is listed twice: remove one entry"));
            }
            for ip in &e.ips {
                if let Some(other) = owners.insert(*ip, q.clone()) {
                    problems.push(format!("address {ip} belongs to both {other} and {q}: an address identifies one workload"));
                }
            }
        }
        for n in &inventory.nodes {
            for ip in &n.ips {
                if let Some(other) = owners.insert(*ip, format!("node {}", n.name)) {
                    problems
                        .push(format!("address {ip} belongs to both {other} and node {}", n.name));
                }
            }
        }
        for p in problems {
            self.error_at(Span { line: 1, col: 1 }, "endpoints", p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, Vec<String>> {
        parse_str(Path::new("inv.yaml"), text)
            .map_err(|d| d.0.iter().map(ToString::to_string).collect())
    }

    /// An IPv4-mapped address is stored as the IPv4 address the filter sees a peer as.
    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let inv = parse("endpoints:\n  - name: fe\n    ips: ['::ffff:10.0.0.7']\n").unwrap();
        assert_eq!(inv.endpoint("fe").unwrap().ips, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn own_format() {
        let inv = parse(
            "namespaces:\n  - name: shop\n    labels: {team: payments}\nnodes:\n  - name: node-1\n    ips: [192.168.1.10]\nendpoints:\n  - name: frontend\n    labels: {app: frontend-app}\n    ips: [10.0.0.1]\n    ports: {HTTP: 8080}\n  - name: pay\n    namespace: shop\n    ips: [10.0.0.2, 'fd00::2']\n    serviceAccount: payer\n    node: node-1\n",
        )
        .unwrap();
        assert_eq!(inv.namespaces["shop"]["team"], "payments");
        assert_eq!(inv.nodes[0].ips, vec!["192.168.1.10".parse::<IpAddr>().unwrap()]);
        let fe = inv.endpoint("frontend").unwrap();
        assert_eq!(fe.namespace, "default");
        assert_eq!(fe.ports["http"], 8080, "port names are lower-cased");
        let pay = inv.endpoint("shop/pay").unwrap();
        assert_eq!(pay.ips.len(), 2);
        assert_eq!(pay.service_account, "payer");
        assert_eq!(pay.node.as_deref(), Some("node-1"));
    }

    #[test]
    fn errors_are_located_and_all_reported() {
        let errors = parse("endpoints:\n  - name: a\n    ips: [10.0.0.300]\n    colour: red\n  - name: b\n    ips: [10.0.0.1]\n    ports: {http: 99999}\n    labels: {app: 'bad value!'}\n").unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].starts_with(
                "inv.yaml:3:11: endpoints[0].ips[0]: \"10.0.0.300\" is not an IP address"
            ),
            "{errors:#?}"
        );
        assert!(
            errors[1].starts_with("inv.yaml:4:5: endpoints[0].colour: unknown field \"colour\""),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("endpoints[1].ports.http: expected a port number")),
            "{errors:#?}"
        );
        assert!(errors.iter().any(|e| e.contains("endpoints[1].labels.app")), "{errors:#?}");
    }

    #[test]
    fn duplicates_are_refused() {
        let errors =
            parse("endpoints:\n  - {name: a, ips: [10.0.0.1]}\n  - {name: a, ips: [10.0.0.1]}\n")
                .unwrap_err();
        assert!(errors.iter().any(|e| e.contains("listed twice")), "{errors:#?}");
        assert!(
            errors.iter().any(|e| e.contains("address 10.0.0.1 belongs to both")),
            "{errors:#?}"
        );
    }

    #[test]
    fn services_in_both_formats() {
        // spec §3.5: a Service selects pods, or (without selector) has backend addresses.
        let own = parse(
            "endpoints: []\nservices:\n  - {name: db, namespace: shop, labels: {tier: data}, selector: {app: db}}\n  - {name: ext, addresses: [192.0.2.7]}\n",
        )
        .unwrap();
        let db = &own.services[0];
        assert_eq!((db.namespace.as_str(), db.labels["tier"].as_str()), ("shop", "data"));
        assert_eq!(db.selector.as_ref().map(|s| s["app"].as_str()), Some("db"));
        assert_eq!(own.services[1].namespace, "default");
        assert_eq!(own.services[1].addresses, ["192.0.2.7".parse::<IpAddr>().unwrap()]);
        let both = parse(
            "endpoints: []\nservices:\n  - {name: x, selector: {a: b}, addresses: [10.0.0.1]}\n",
        );
        assert!(both.unwrap_err()[0].contains("a selector or addresses, not both"));

        let kube = parse(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n  metadata:\n    name: ext-abc\n    namespace: shop\n    labels: {kubernetes.io/service-name: ext}\n  endpoints:\n  - addresses: [192.0.2.8, 192.0.2.9]\n- apiVersion: v1\n  kind: Service\n  metadata: {name: ext, namespace: shop}\n  spec: {ports: [{port: 443}]}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: db, namespace: shop}\n  spec: {selector: {app: db}}\n- apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n  metadata:\n    name: db-xyz\n    namespace: shop\n    labels: {kubernetes.io/service-name: db}\n  endpoints:\n  - addresses: [10.1.0.9]\n",
        )
        .unwrap();
        let names: Vec<(&str, usize, bool)> = kube
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.addresses.len(), s.selector.is_some()))
            .collect();
        assert_eq!(names, [("ext", 2, false), ("db", 0, true)], "a selector's slices are its pods");
    }

    #[test]
    fn kubectl_pod_list() {
        let inv = parse(
            "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: \"\"}\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: web-5d9\n    namespace: shop\n    labels: {app: web, pod-template-hash: 5d9}\n    uid: abc\n  spec:\n    serviceAccountName: web\n    nodeName: node-1\n    containers:\n    - name: web\n      image: nginx\n      ports:\n      - {name: http, containerPort: 8080, protocol: TCP}\n  status:\n    phase: Running\n    podIP: 10.1.0.5\n    podIPs:\n    - ip: 10.1.0.5\n    - ip: fd00::5\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: pending, namespace: shop}\n  status: {phase: Pending}\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: shop\n    labels: {team: payments}\n",
        )
        .unwrap();
        assert_eq!(inv.endpoints.len(), 1, "the pending pod without an address is skipped");
        let web = &inv.endpoints[0];
        assert_eq!(
            (web.name.as_str(), web.namespace.as_str(), web.service_account.as_str()),
            ("web-5d9", "shop", "web")
        );
        assert_eq!(web.ips.len(), 2);
        assert_eq!(web.ports["http"], 8080);
        assert_eq!(web.node.as_deref(), Some("node-1"));
        assert_eq!(inv.namespaces["shop"]["team"], "payments");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "",
            "---",
            "[1, 2]",
            "endpoints: 7",
            "endpoints: [7]",
            "kind: Pod",
            "a: [b: {c",
            "\t- x",
        ] {
            assert!(parse(text).is_err(), "{text:?} should be refused");
        }
    }
}
