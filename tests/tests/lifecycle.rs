//! `l7gate serve` as containers and orchestrators run it, end to end with real Envoys: SIGTERM
//! closes every ADS stream and exits 0 while the sidecars keep enforcing; `/healthz` and
//! `/readyz`; the sidecar's metrics-only listener serves Prometheus text and nothing else.

use l7gate_e2e::harness::cluster::Cluster;
use l7gate_e2e::harness::control::{ControlPlane, ServeSpec};
use l7gate_e2e::harness::envoy::http_request;
use l7gate_e2e::harness::tools::{self, eventually, Tools};
use l7gate_e2e::scenario::{self, SEED};

/// Every row of the seed table holds.
async fn assert_seed_table(cluster: &Cluster, when: &str) {
    for (case, protocol) in scenario::requests(SEED) {
        let outcome =
            scenario::run(cluster, case, protocol).await.unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = scenario::check(case, &outcome) {
            panic!("{} ({when}): {e}", case.describe(protocol));
        }
    }
}

#[tokio::test]
async fn sigterm_closes_every_stream_and_exits_0_while_the_sidecars_keep_enforcing() {
    let manifests = tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    let status = cluster.control.as_mut().unwrap().terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "l7gate serve exited with {status}");
    let log = cluster.control.as_ref().unwrap().log();
    assert!(log.contains("shutting down") && log.contains("stopped"), "{log}");
    assert_eq!(
        log.matches("reason=control plane shutting down").count(),
        cluster.sidecars.len(),
        "every stream closed by the server:\n{log}"
    );
    for s in &cluster.sidecars {
        let connected = eventually("the sidecar sees the stream closed", async || {
            (s.envoy.stat("control_plane.connected_state") == Some(0)).then_some(())
        });
        connected.await;
    }
    assert_seed_table(&cluster, "control plane stopped").await;
}

#[tokio::test]
async fn readyz_waits_for_valid_inputs_and_healthz_answers_meanwhile() {
    let tools = Tools::require();
    let manifests = tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let policy = manifests.path().join("policies").join("inventory-api.yaml");
    let good = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, good.replace("endpointSelector", "endpointSelektor")).unwrap();
    let cp = ControlPlane::start(ServeSpec::files(manifests.path(), &tools.wasm))
        .unwrap_or_else(|e| panic!("{e}"));
    let get = |path: &str| http_request(cp.status_addr(), "GET", path).unwrap();
    assert_eq!(get("/healthz"), (200, "ok\n".to_string()));
    let (code, body) = get("/readyz");
    assert_eq!(code, 503, "{body}");
    // Probes are unauthenticated: they learn that the inputs are bad, never what they say.
    assert!(body.contains("never valid") && !body.contains("endpointSelektor"), "{body}");
    let (code, status) = get("/status");
    assert_eq!(code, 200, "loopback callers get the status: {status}");
    assert!(status.contains("inventory-api.yaml") && status.contains("endpointSelektor"));
    std::fs::write(&policy, good).unwrap();
    eventually("ready once the inputs are valid", async || (get("/readyz").0 == 200).then_some(()))
        .await;
    assert_eq!(get("/readyz").1, "ready: generation 1\n");
    assert_eq!(get("/wasm/0000.wasm").0, 404, "no module is served without --serve-wasm");
}

#[tokio::test]
async fn the_metrics_listener_serves_prometheus_text_and_nothing_of_the_admin_interface() {
    let manifests = tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_seed_table(&cluster, "before scraping").await;
    let sidecar = cluster.sidecar("inventory-api").unwrap();
    let metrics = sidecar.envoy.metrics_listener().expect("a metrics listener");
    assert_ne!(metrics, sidecar.envoy.listener());
    let (code, body) = http_request(metrics, "GET", "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE envoy_cluster_upstream_rq_total counter"),
        "Prometheus text expected"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("l7gate_rule_verdicts{") && l.contains("verdict=\"denied\"")),
        "l7gate's labelled counters expected"
    );
    for (method, path) in [
        ("GET", "/stats"),
        ("GET", "/config_dump"),
        ("POST", "/quitquitquit"),
        ("POST", "/metrics"),
        ("GET", "/metrics/../quitquitquit"),
        ("GET", "/metricsx"),
        ("GET", "/Metrics"),
    ] {
        let (code, _) = http_request(metrics, method, path).unwrap();
        assert_eq!(code, 404, "{method} {path} on the metrics listener");
    }
    // A query goes along to the (read-only) Prometheus handler: still only metrics.
    let (code, body) = http_request(metrics, "GET", "/metrics?usedonly").unwrap();
    assert!(code == 200 && body.contains("# TYPE"), "{code}");
    assert!(sidecar.envoy.stat("server.state") == Some(0), "Envoy still live after the probes");
}
