//! Generated, realistic policy sets: one server endpoint (`api`, port 8080) and many client
//! workloads, each allowed a few dozen method + path rules (literal-prefix path regexes, token
//! methods, some header rules), plus deny rules for blocked workloads and rules on other ports.
//! "N rules" means N HTTP rule elements at the server's ingress, the unit RBAC counts as
//! permissions. Compiled with the l7gate library exactly as `l7gate compile` does.
//!
//! The load generator (wrk, h2load) cannot bind a source address, so it connects from 127.0.0.1:
//! that address is given to one client workload (`loadgen`), placed in the middle of the policy
//! list so RBAC, which tries policies in name order, is neither at its best nor its worst.

use std::fmt::Write;
use std::path::Path;

use l7gate_filter::config::Config;

/// HTTP rule elements per client policy.
const PER_CLIENT: usize = 20;
/// The server endpoint the benchmark Envoys front.
pub const ENDPOINT: &str = "api";

/// A generated policy set and the requests the benchmark sends.
pub struct PolicySet {
    pub config: Config,
    /// Allowed for `loadgen` (matches one GET rule).
    pub allowed_path: String,
    /// Denied for `loadgen` at L7 (the path prefix has rules, but not for GET).
    pub denied_path: String,
}

/// The policy and inventory files of a generated set, as YAML text.
pub struct Sources {
    pub inventory: String,
    pub policies: String,
    /// The client workload at 127.0.0.1.
    pub loadgen: usize,
}

/// Generates and compiles a set of `rules` HTTP rules (at least one).
pub fn generate(rules: usize) -> Result<PolicySet, String> {
    let Sources { inventory, policies, loadgen } = sources(rules);
    let file = Path::new("bench.yaml");
    let loaded = l7gate::cilium::parse::parse_str(file, &policies).map_err(|e| e.to_string())?;
    let inventory = l7gate::inventory::parse_str(Path::new("inventory.yaml"), &inventory)
        .map_err(|e| e.to_string())?;
    let cluster = l7gate::compile::Cluster::new(loaded.policies, inventory);
    let config = cluster.endpoint(ENDPOINT).and_then(|e| cluster.compile(e))?;
    Ok(PolicySet { config, allowed_path: allowed_path(loadgen), denied_path: denied_path(loadgen) })
}

/// Allowed for `loadgen` (matches one GET rule).
pub fn allowed_path(loadgen: usize) -> String {
    format!("/api/svc-{loadgen}/res-0/item-42")
}

/// Denied for `loadgen` at L7 (the path prefix has rules, but not for GET).
pub fn denied_path(loadgen: usize) -> String {
    format!("/api/svc-{loadgen}/res-1/item-42")
}

/// The YAML of a set of `rules` HTTP rules (at least one).
pub fn sources(rules: usize) -> Sources {
    let clients = rules.div_ceil(PER_CLIENT).max(1);
    let loadgen = clients / 2;
    let blocked = (rules / 100).max(1);
    let mut inventory = String::from("namespaces:\n  - name: default\n    labels: {env: bench}\nnodes:\n  - name: node-1\n    ips: [10.255.0.1]\nendpoints:\n");
    let _ = writeln!(inventory, "  - {{name: {ENDPOINT}, namespace: default, labels: {{app: {ENDPOINT}}}, ips: [10.0.0.1], ports: {{http: 8080}}}}");
    let mut policies = String::new();
    let mut left = rules.max(1);
    for k in 0..clients {
        let ip = if k == loadgen {
            "127.0.0.1".to_string()
        } else {
            format!("10.1.{}.{}", k / 250, k % 250 + 1)
        };
        let _ = writeln!(inventory, "  - {{name: client-{k}, namespace: default, labels: {{app: client-{k}}}, ips: [{ip}]}}");
        let n = left.min(PER_CLIENT);
        left -= n;
        let _ = write!(
            policies,
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: client-{k:05}, namespace: default}}\nspec:\n  endpointSelector: {{matchLabels: {{app: {ENDPOINT}}}}}\n  ingress:\n    - fromEndpoints: [{{matchLabels: {{app: client-{k}}}}}]\n      toPorts:\n        - ports: [{{port: \"{port}\", protocol: TCP}}]\n          rules:\n            http:\n",
            port = if k % 10 == 9 { "9090" } else { "8080" },
        );
        for j in 0..n {
            policies.push_str(&http_rule(k, j));
        }
    }
    for m in 0..blocked {
        let _ = writeln!(inventory, "  - {{name: blocked-{m}, namespace: default, labels: {{app: blocked-{m}}}, ips: [10.2.{}.{}]}}", m / 250, m % 250 + 1);
        let _ = write!(
            policies,
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: deny-{m:05}, namespace: default}}\nspec:\n  endpointSelector: {{matchLabels: {{app: {ENDPOINT}}}}}\n  ingressDeny:\n    - fromEndpoints: [{{matchLabels: {{app: blocked-{m}}}}}]\n"
        );
    }
    Sources { inventory, policies, loadgen }
}

/// Element `j` of client `k`: methods and path shapes in rotation, one in ten with a header rule.
fn http_rule(k: usize, j: usize) -> String {
    let method = ["GET", "POST", "GET|HEAD", "PUT|PATCH"][j % 4];
    let path = match j % 3 {
        0 => format!("/api/svc-{k}/res-{j}/.*"),
        1 => format!("/api/svc-{k}/res-{j}/items/[0-9]+"),
        _ => format!("/api/svc-{k}/res-{j}"),
    };
    let header = if j % 10 == 5 {
        format!(", headerMatches: [{{name: x-tenant, value: tenant-{k}}}]")
    } else {
        String::new()
    };
    format!("              - {{method: \"{method}\", path: \"{path}\"{header}}}\n")
}
