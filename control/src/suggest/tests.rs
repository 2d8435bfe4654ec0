//! `suggest` on hand-made flow records over a two-namespace inventory: what the policies say,
//! that they are checked, and the refusals.

use super::*;

const INVENTORY: &str = "
world: [127.0.0.0/8]
namespaces:
  - {name: shop}
  - {name: ops}
nodes:
  - {name: node-1, ips: [127.0.1.1]}
endpoints:
  - {name: web-7d9f, namespace: shop, labels: {app: web, pod-template-hash: 7d9f}, ips: [127.0.0.2]}
  - {name: api-0, namespace: shop, labels: {app.kubernetes.io/name: api, tier: backend}, ips: [127.0.0.10]}
  - {name: api-1, namespace: shop, labels: {app.kubernetes.io/name: api, tier: backend}, ips: [127.0.0.11]}
  - {name: probe, namespace: ops, labels: {team: sre, role: prober}, ips: [127.0.0.20]}
";

fn cluster(policies: &str) -> Cluster {
    let inventory = crate::inventory::parse_str(Path::new("endpoints.yaml"), INVENTORY)
        .unwrap_or_else(|e| panic!("{e}"));
    let policies = match policies {
        "" => Vec::new(),
        text => {
            crate::cilium::parse::parse_str(Path::new("p.yaml"), text)
                .unwrap_or_else(|e| panic!("{e}"))
                .policies
        }
    };
    Cluster::new(policies, inventory)
}

/// One ingress flow record of `endpoint` from `src` (an IP) with this request.
fn ingress(endpoint: &str, dst: &str, src: &str, method: &str, path: &str) -> String {
    serde_json::json!({
        "direction": "ingress", "verdict": "audit", "reason": "default-deny",
        "endpoint": endpoint, "src": {"ip": src}, "dst": {"ip": dst},
        "port": 8080, "protocol": "TCP", "method": method, "path": path, "host": "api:8080",
    })
    .to_string()
}

fn egress_tls(sni: &str) -> String {
    serde_json::json!({
        "direction": "egress", "verdict": "audit", "reason": "default-deny",
        "endpoint": "shop/web-7d9f", "src": {"ip": "127.0.0.2"},
        "dst": {"ip": "127.0.0.99", "name": "reserved:world"},
        "port": 443, "protocol": "TCP", "sni": sni,
    })
    .to_string()
}

fn flows(lines: &[String]) -> Vec<Recorded> {
    records(Path::new("flows.log"), &lines.join("\nnot a flow record\n"))
}

#[test]
fn selectors_are_stable_labels_and_namespace_aware_and_the_outside_is_named() {
    let mut lines = Vec::new();
    for (i, api) in ["127.0.0.10", "127.0.0.11"].iter().enumerate() {
        for n in 0..3 {
            lines.push(ingress(
                &format!("shop/api-{i}"),
                api,
                "127.0.0.2",
                "GET",
                &format!("/v1/orders/{n}"),
            ));
        }
        lines.push(ingress(&format!("shop/api-{i}"), api, "127.0.0.20", "GET", "/healthz"));
        lines.push(ingress(&format!("shop/api-{i}"), api, "127.0.0.77", "GET", "/public/logo.png"));
    }
    for sni in ["a.cdn.example.net", "b.cdn.example.net", "c.cdn.example.net", "pay.example.org"] {
        lines.push(egress_tls(sni));
    }
    let c = cluster("");
    let s = suggest(&c, &flows(&lines), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.policies, s.used, s.checked), (2, lines.len(), lines.len()));
    let y = &s.yaml;
    // Both api pods are one workload, selected by their name label only; the web pod by `app`
    // (never the pod name or its template hash).
    assert_eq!(y.matches("name: api-suggested").count(), 1, "{y}");
    assert!(
        y.contains("  endpointSelector:\n    matchLabels:\n      app.kubernetes.io/name: api\n"),
        "{y}"
    );
    let rules: String = y.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert!(y.contains("name: web-suggested"), "{y}");
    assert!(!rules.contains("pod-template-hash") && !rules.contains("7d9f"), "{y}");
    // A peer in another namespace is selected with its namespace; one without a naming label
    // by all its labels.
    assert!(
        y.contains("        'k8s:io.kubernetes.pod.namespace': ops\n        role: prober\n        team: sre\n"),
        "{y}"
    );
    assert!(y.contains("  - fromEntities:\n    - world\n"), "{y}");
    assert!(
        y.contains("path: '/v1/orders/[^/?]+'") && y.contains("path: '/public/logo\\.png'"),
        "{y}"
    );
    // Three siblings collapse to a pattern; a lone name stays exact; no address anywhere.
    assert!(
        y.contains("- matchPattern: '*.cdn.example.net'\n    - matchName: pay.example.org\n"),
        "{y}"
    );
    assert!(!y.contains("127.0."), "{y}");
    // The tests name the workloads and the names, and say which sidecar judged.
    assert!(
        s.tests.contains(
            "    from: shop/web-7d9f\n    to: shop/api-0\n    port: 8080\n    at: ingress\n"
        ),
        "{}",
        s.tests
    );
    assert!(
        s.tests.contains(
            "    to: pay.example.org\n    port: 443\n    at: egress\n    sni: pay.example.org\n"
        ),
        "{}",
        s.tests
    );
}

#[test]
fn with_existing_policies_only_their_denials_become_rules() {
    let existing = "
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-reads, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app.kubernetes.io/name: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: '8080', protocol: TCP}]
      rules: {http: [{method: GET}]}
";
    let lines = [
        ingress("shop/api-0", "127.0.0.10", "127.0.0.2", "GET", "/v1/orders/1"),
        ingress("shop/api-0", "127.0.0.10", "127.0.0.2", "DELETE", "/v1/orders/1"),
    ];
    let s = suggest(&cluster(existing), &flows(&lines), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.policies, s.rules, s.used, s.checked), (1, 1, 1, 2));
    assert!(s.yaml.contains("- method: DELETE\n          path: '/v1/orders/[^/?]+'"), "{}", s.yaml);
    assert!(!s.yaml.contains("method: GET"), "{}", s.yaml);

    // Nothing to add, and a deny rule no allow can lift, are both said plainly.
    let allowed = [lines[0].clone()];
    let e = suggest(&cluster(existing), &flows(&allowed), None).unwrap_err();
    assert!(e.contains("the existing policies already allow every recorded flow"), "{e}");
    let deny =
        format!("{existing}  ingressDeny:\n  - fromEndpoints: [{{matchLabels: {{app: web}}}}]\n");
    let e = suggest(&cluster(&deny), &flows(&lines), None).unwrap_err();
    assert!(
        e.starts_with(
            "flows.log:1: GET api:8080/v1/orders/1 is denied by the deny rule shop/api-reads"
        ),
        "{e}"
    );
}

#[test]
fn for_picks_the_subjects_and_bad_records_are_located() {
    let lines = [
        ingress("shop/api-0", "127.0.0.10", "127.0.0.2", "GET", "/a"),
        egress_tls("pay.example.org"),
    ];
    let s =
        suggest(&cluster(""), &flows(&lines), Some("app=web")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.policies, s.used, s.checked), (1, 1, 1));
    assert!(s.yaml.contains("name: web-suggested"), "{}", s.yaml);
    let s =
        suggest(&cluster(""), &flows(&lines), Some("shop/api-0")).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.yaml.contains("name: api-suggested"), "{}", s.yaml);

    let unknown = [ingress("shop/gone", "127.0.0.10", "127.0.0.2", "GET", "/a")];
    let e = suggest(&cluster(""), &flows(&unknown), None).unwrap_err();
    assert!(e.starts_with("flows.log:1: no endpoint named \"shop/gone\""), "{e}");
    let e = suggest(&cluster(""), &flows(&lines), Some("app=nothing")).unwrap_err();
    assert!(
        e.starts_with("no recorded flow was decided by an endpoint that \"app=nothing\" selects"),
        "{e}"
    );
    let e = suggest(&cluster(""), &[], None).unwrap_err();
    assert!(e.starts_with("no flow records"), "{e}");
}

#[test]
fn recorded_values_cannot_change_the_yaml() {
    for s in ["app", "inventory-api", "GET", "a.b/c_d"] {
        assert_eq!(write::quote(s), s);
    }
    for (s, quoted) in [
        ("true", "'true'"),
        ("8080", "'8080'"),
        ("/x", "'/x'"),
        ("a: b", "'a: b'"),
        ("it's", "'it''s'"),
        ("#c", "'#c'"),
        ("a\nb", "\"a\\nb\""),
    ] {
        assert_eq!(write::quote(s), quoted, "{s:?}");
    }
}
