//! `l7gate serve --kubernetes` against a stand-in API server (harness/kube_api.rs) that speaks the
//! API's wire protocol: objects shaped as the API server returns them (managed fields, uids,
//! statuses), lists, watches with bookmarks, `410 Gone`, cut streams. The real binary reads them
//! through kube-rs, and a real Envoy sidecar enforces what it serves. What no API server here can
//! show (RBAC, admission, a real watch cache) is out of reach of this test.

use std::time::Duration;

use l7gate::xds::report::StatusReport;
use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::control::{ControlPlane, ServeSpec};
use l7gate_e2e::harness::envoy::{http_request, AdsSidecarSpec, Envoy};
use l7gate_e2e::harness::kube_api::KubeApi;
use l7gate_e2e::harness::tools::{eventually, Tools};
use l7gate_e2e::harness::upstream::Upstream;
use serde_json::{json, Value};

const PODS: &str = "/api/v1/pods";
const NAMESPACES: &str = "/api/v1/namespaces";
const NODES: &str = "/api/v1/nodes";
const CNPS: &str = "/apis/cilium.io/v2/ciliumnetworkpolicies";
const CCNPS: &str = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies";
const SERVICES: &str = "/api/v1/services";
const ENDPOINT_SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
const SIDECAR: &str = "default/inventory-api-5d8f7c9b4-x2kqp";

/// Metadata as the API server returns it, noise included.
fn metadata(name: &str, namespace: Option<&str>, labels: Value) -> Value {
    let mut m = json!({"name": name, "uid": format!("0b1c-{name}"), "creationTimestamp": "2026-12-01T10:00:00Z",
        "labels": labels, "generation": 1,
        "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": "2026-12-01T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn pod(name: &str, labels: Value, ip: &str, extra_spec: Value, phase: &str) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": "example/app:1", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": {}, "terminationMessagePath": "/dev/termination-log"}],
        "serviceAccountName": "default", "nodeName": "node-1", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"});
    for (k, v) in extra_spec.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": metadata(name, Some("default"), labels), "spec": spec,
        "status": {"phase": phase, "hostIP": "127.0.1.1", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}], "qosClass": "BestEffort", "startTime": "2026-12-01T10:00:00Z"}})
}

/// inventory-api-l7 of manifests/policies, with `methods` allowed on /api/inventory/.*.
fn inventory_policy(methods: &str) -> Value {
    let mut m = metadata("inventory-api-l7", Some("default"), json!({}));
    m["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"cilium.io/v2\"}"});
    json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": m,
        "spec": {"endpointSelector": {"matchLabels": {"app": "inventory-api"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "frontend-app"}}],
                "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}],
                    "rules": {"http": [{"method": methods, "path": "/api/inventory/.*"}]}}]}]},
        "status": {"conditions": []}})
}

fn seed(api: &KubeApi) {
    api.apply(NAMESPACES, json!({"kind": "Namespace", "apiVersion": "v1", "metadata": metadata("default", None, json!({"kubernetes.io/metadata.name": "default"})),
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
    api.apply(NODES, json!({"kind": "Node", "apiVersion": "v1", "metadata": metadata("node-1", None, json!({"kubernetes.io/hostname": "node-1"})),
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.1.1"}, {"type": "Hostname", "address": "node-1"}]}}));
    api.apply(
        PODS,
        pod(
            "frontend-7f9c",
            json!({"app": "frontend-app", "pod-template-hash": "7f9c"}),
            "127.0.0.71",
            json!({}),
            "Running",
        ),
    );
    api.apply(
        PODS,
        pod("reporting-28f1", json!({"app": "reporting-job"}), "127.0.0.72", json!({}), "Running"),
    );
    api.apply(
        PODS,
        pod(
            "inventory-api-5d8f7c9b4-x2kqp",
            json!({"app": "inventory-api"}),
            "127.0.0.70",
            json!({}),
            "Running",
        ),
    );
    // Neither may become an endpoint: a host-network pod has the node's address, and a
    // finished pod's address may already be someone else's.
    api.apply(
        PODS,
        pod(
            "node-exporter-abcde",
            json!({"app": "node-exporter"}),
            "127.0.1.1",
            json!({"hostNetwork": true}),
            "Running",
        ),
    );
    api.apply(
        PODS,
        pod("migrate-done", json!({"app": "frontend-app"}), "127.0.0.70", json!({}), "Succeeded"),
    );
    api.apply(CNPS, inventory_policy("GET"));
    // spec §3.5: frontend's egress to a Service without selector, through its EndpointSlice.
    api.apply(SERVICES, json!({"kind": "Service", "apiVersion": "v1", "metadata": metadata("payments-ext", Some("default"), json!({})),
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"port": 443, "protocol": "TCP"}]}}));
    api.apply(ENDPOINT_SLICES, json!({"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": metadata("payments-ext-x1", Some("default"), json!({"kubernetes.io/service-name": "payments-ext"})),
        "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.20"], "conditions": {"ready": true}}],
        "ports": [{"port": 443, "protocol": "TCP"}]}));
    api.apply(CNPS, json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": metadata("frontend-to-payments", Some("default"), json!({})),
        "spec": {"endpointSelector": {"matchLabels": {"app": "frontend-app"}},
            "egress": [{"toServices": [{"k8sService": {"serviceName": "payments-ext", "namespace": "default"}}],
                "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]}}));
}

/// The `Valid` condition the server holds for a policy: (status, message).
fn valid_condition(api: &KubeApi, key: &str) -> Option<(String, String)> {
    let object = api.object(CNPS, key)?;
    let c =
        object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Valid")?.clone();
    Some((c["status"].as_str()?.to_string(), c["message"].as_str()?.to_string()))
}

#[tokio::test]
async fn policies_and_pods_from_the_api_server_are_enforced_and_their_status_written() {
    let tools = Tools::require();
    // Addresses of this test only (127.0.0.70-79), so the sidecar can listen on the policy's port.
    let api = KubeApi::start().unwrap();
    seed(&api);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let cp = ControlPlane::start(ServeSpec {
        kubeconfig: Some(kubeconfig),
        ..ServeSpec::files(dir.path(), &tools.wasm)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let ready =
        || http_request(cp.status_addr(), "GET", "/readyz").map(|(code, _)| code).unwrap_or(0);
    eventually("ready after the first lists", async || (ready() == 200).then_some(())).await;
    for collection in [PODS, NAMESPACES, NODES, CNPS, CCNPS, SERVICES, ENDPOINT_SLICES] {
        assert!(lists(&api, collection) > 0, "no list of {collection}: {:?}", api.requests());
        let watch = format!("GET {collection}?");
        eventually(&format!("a watch of {collection}"), async || {
            api.requests()
                .iter()
                .any(|r| {
                    r.starts_with(&watch)
                        && r.contains("watch=true")
                        && r.contains("allowWatchBookmarks=true")
                })
                .then_some(())
        })
        .await;
    }

    // A real sidecar for the pod; its node id is the pod's namespace/name.
    let app = Upstream::start("inventory-api").unwrap();
    let spec = AdsSidecarSpec {
        name: SIDECAR.into(),
        listen: "127.0.0.70:8080".parse().unwrap(),
        upstream: app.addr(),
        xds: cp.xds(),
    };
    let mut envoy = Envoy::spawn_ads(&tools, &spec).unwrap_or_else(|e| panic!("{e}"));
    envoy.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    let status = async |from: &str, method: &str| -> u16 {
        let request = Request {
            from: from.parse().unwrap(),
            to: envoy.listener(),
            authority: "inventory-api",
            method,
            path: "/api/inventory/item1",
        };
        client::send(Protocol::Http1, &request).await.map(|r| r.status).unwrap_or(0)
    };
    assert_eq!(status("127.0.0.71", "GET").await, 200, "frontend may GET");
    assert_eq!(status("127.0.0.71", "DELETE").await, 403, "but not DELETE");
    assert_eq!(status("127.0.0.72", "GET").await, 403, "reporting may not");
    assert_eq!(status("127.0.0.79", "GET").await, 403, "an unknown address is world");
    for policy in ["default/inventory-api-l7", "default/frontend-to-payments"] {
        eventually("Valid: True written", async || {
            (valid_condition(&api, policy)
                == Some(("True".into(), "Policy validation succeeded".into())))
            .then_some(())
        })
        .await;
    }

    // An invalid policy: reported by namespace/name and field path, Valid: False, the last
    // good state stays in force.
    let mut bad = inventory_policy("GET");
    bad["metadata"]["name"] = json!("bad-regex");
    bad["spec"]["ingress"][0]["toPorts"][0]["rules"]["http"][0]["path"] = json!("(");
    api.apply(CNPS, bad);
    let (valid, message) = eventually("Valid: False written", async || {
        valid_condition(&api, "default/bad-regex").filter(|(s, _)| s == "False")
    })
    .await;
    assert_eq!(valid, "False");
    assert!(
        message.contains("CiliumNetworkPolicy default/bad-regex")
            && message.contains("spec.ingress[0].toPorts[0].rules.http[0].path"),
        "{message}"
    );
    let report: StatusReport = cp.wait_for_status(|r| r.reload.error.is_some()).unwrap();
    assert!(
        report.reload.error.as_deref().is_some_and(|e| e.contains("default/bad-regex")),
        "{report:?}"
    );
    assert_eq!(
        valid_condition(&api, "default/inventory-api-l7").map(|v| v.0),
        Some("True".into()),
        "a valid policy stays Valid"
    );
    assert_eq!(status("127.0.0.71", "GET").await, 200, "the last good state stays");

    // 410 Gone: every watch must relist. Meanwhile the bad policy goes away and inventory-api's
    // allows DELETE: only a relist can see both.
    let lists_before = lists(&api, CNPS);
    api.expire_watches();
    api.delete(CNPS, "default/bad-regex");
    api.apply(CNPS, inventory_policy("GET|DELETE"));
    eventually("DELETE allowed after the relist", async || {
        (status("127.0.0.71", "DELETE").await == 200).then_some(())
    })
    .await;
    let lists_after = lists(&api, CNPS);
    assert!(
        lists_after > lists_before,
        "410 Gone must lead to a new list ({lists_before} → {lists_after})"
    );
    assert!(cp.status().unwrap().reload.error.is_none(), "the bad policy is gone");

    // A cut stream: the watch reconnects from its resourceVersion and sees the next change.
    api.cut_watches();
    api.apply(CNPS, inventory_policy("GET"));
    eventually("DELETE denied again after the reconnect", async || {
        (status("127.0.0.71", "DELETE").await == 403).then_some(())
    })
    .await;
    // A pod that goes away loses its identity: reporting's address becomes world (still denied),
    // and frontend's pod replaced by one with another address moves the allow with it.
    api.delete(PODS, "default/frontend-7f9c");
    api.apply(
        PODS,
        pod("frontend-8a1b", json!({"app": "frontend-app"}), "127.0.0.73", json!({}), "Running"),
    );
    eventually("the new frontend pod is allowed", async || {
        (status("127.0.0.73", "GET").await == 200).then_some(())
    })
    .await;
    assert_eq!(status("127.0.0.71", "GET").await, 403, "the old pod's address is world now");
    // Status writes do not loop: a few quiet moments add none.
    let patches = api.patches().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.patches().len(), patches, "{:?}", api.patches());
}

/// How many times `collection` was listed (not watched) so far.
fn lists(api: &KubeApi, collection: &str) -> usize {
    let list = format!("GET {collection}?");
    api.requests().iter().filter(|r| r.starts_with(&list) && !r.contains("watch=true")).count()
}
