//! Live policy over ADS, end to end: a real `l7gate serve` (the built binary) watching a copy of
//! the seed manifests, real Envoy sidecars configured only through ADS/ECDS, real upstreams.
//! Policy edits flip verdicts in every affected sidecar and push nothing to the others; a hundred
//! changes under load fail no request; a restarted control plane resyncs without a verdict
//! changing; invalid input and configs Envoy rejects are reported while the last good config
//! keeps enforcing; an Envoy the inventory does not know fails closed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use l7gate::xds::report::{NodeStatus, ResourceStatus, StatusReport};
use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::cluster::{Cluster, ECDS_UPDATE_SUCCESS};
use l7gate_e2e::harness::control::{ControlPlane, ServeSpec};
use l7gate_e2e::harness::envoy::{AdsSidecarSpec, Envoy};
use l7gate_e2e::harness::tools::{self, eventually, Tools};
use l7gate_e2e::harness::upstream::Upstream;
use l7gate_e2e::scenario::{self, SEED};

const FRONTEND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A private copy of `manifests/` the test may edit.
fn seed_copy() -> tempfile::TempDir {
    tools::seed_copy().unwrap_or_else(|e| panic!("{e}"))
}

/// Replaces a file the way editors do (write a temp file, rename it over the target).
fn write(path: &Path, text: &str) {
    l7gate::ecds::write_atomically(path, text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn control(cluster: &Cluster) -> &ControlPlane {
    cluster.control.as_ref().expect("an ADS cluster has a control plane")
}

fn node<'a>(report: &'a StatusReport, name: &str) -> Option<&'a NodeStatus> {
    report.nodes.iter().find(|n| n.node == name)
}

/// The l7gate resource of node `name`, if the server knows the node.
fn resource<'a>(report: &'a StatusReport, name: &str) -> Option<&'a ResourceStatus> {
    node(report, name)?.resources.iter().find(|r| r.name == "l7gate")
}

/// Whether node `name` is connected and has acked what the server has for it now.
fn in_sync(report: &StatusReport, name: &str) -> bool {
    node(report, name).is_some_and(|n| n.connected)
        && resource(report, name)
            .is_some_and(|r| r.current.is_some() && r.acked == r.current && r.pending.is_none())
}

/// Status from `frontend` for `method path` on `to`'s sidecar, over a fresh HTTP/1.1 connection.
async fn status_of(cluster: &Cluster, to: &str, method: &str, path: &str) -> u16 {
    cluster.status_from(FRONTEND, to, method, path).await
}

/// Every row of the seed table holds on this cluster.
async fn assert_seed_table(cluster: &Cluster, when: &str) {
    let mut failures = Vec::new();
    for (case, protocol) in scenario::requests(SEED) {
        let outcome = scenario::run(cluster, case, protocol).await.unwrap();
        if let Err(why) = scenario::check(case, &outcome) {
            failures.push(format!("{}: {why}", case.describe(protocol)));
        }
    }
    assert!(failures.is_empty(), "{when}: seed table differs:\n{}", failures.join("\n"));
}

/// Every row of the seed table gets its status (while other traffic runs, so which application
/// saw what is not checked).
async fn assert_seed_statuses(cluster: &Cluster, when: &str) {
    let mut failures = Vec::new();
    for (case, protocol) in scenario::requests(SEED) {
        let outcome = scenario::run(cluster, case, protocol).await.unwrap();
        let expected = match case.expect {
            scenario::Expect::Allow { .. } => 200,
            scenario::Expect::Deny => 403,
            scenario::Expect::Redirect { status, .. } => status,
        };
        let got = outcome.response.as_ref().map(|r| r.status);
        if got != Ok(expected) {
            failures.push(format!("{}: {got:?}, expected {expected}", case.describe(protocol)));
        }
    }
    assert!(failures.is_empty(), "{when}: seed statuses differ:\n{}", failures.join("\n"));
}

/// A policy for inventory-api and payment-gateway at once: frontend may GET /healthz.
const HEALTH_POLICY: &str = r#"apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: health
spec:
  endpointSelector:
    matchExpressions:
      - {key: app, operator: In, values: [inventory-api, payment-gateway]}
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend-app
      toPorts:
        - ports:
            - port: "8080"
              protocol: TCP
          rules:
            http:
              - method: GET
                path: "/healthz"
"#;

/// A policy for catalog only.
const CATALOG_POLICY: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: catalog
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: catalog
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend-app
"#;

#[tokio::test]
async fn seed_table_holds_over_ads() {
    let manifests = seed_copy();
    let cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_seed_table(&cluster, "config from l7gate serve").await;
    let report = control(&cluster).status().unwrap();
    for name in ["inventory-api", "payment-gateway", "catalog"] {
        assert!(in_sync(&report, name), "{name}: {report:#?}");
    }
}

#[tokio::test]
async fn a_policy_edit_flips_both_sidecars_and_an_unrelated_one_pushes_nothing_to_them() {
    let manifests = seed_copy();
    let cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    let both = ["inventory-api", "payment-gateway"];
    for to in both {
        assert_eq!(status_of(&cluster, to, "GET", "/healthz").await, 403, "{to} before the edit");
    }

    write(&manifests.path().join("policies/health.yaml"), HEALTH_POLICY);
    for to in both {
        eventually(&format!("{to} allows GET /healthz"), async || {
            (status_of(&cluster, to, "GET", "/healthz").await == 200).then_some(())
        })
        .await;
        let app = &cluster.sidecar(to).unwrap().upstream;
        assert_eq!(app.seen().last().map(|s| s.path.as_str()), Some("/healthz"));
        assert_eq!(
            status_of(&cluster, to, "DELETE", "/healthz").await,
            403,
            "{to}: only GET was allowed"
        );
    }
    let cp = control(&cluster);
    let before = cp.wait_for_status(|r| both.iter().all(|n| in_sync(r, n))).unwrap();
    let stat = |name: &str| cluster.sidecar(name).unwrap().envoy.stat(ECDS_UPDATE_SUCCESS);
    let successes: Vec<_> = both.iter().map(|n| stat(n)).collect();

    // A policy that selects only catalog: catalog gets a new config, the others nothing.
    write(&manifests.path().join("policies/catalog.yaml"), CATALOG_POLICY);
    let catalog_before = resource(&before, "catalog").unwrap().acked.clone();
    let after = cp
        .wait_for_status(|r| {
            in_sync(r, "catalog") && resource(r, "catalog").unwrap().acked != catalog_before
        })
        .unwrap();
    assert_ne!(
        resource(&after, "catalog").unwrap().acked,
        catalog_before,
        "catalog was not updated: {after:#?}"
    );
    assert_eq!(after.reload.last_changed, vec!["default/catalog".to_string()], "{after:#?}");
    for name in both {
        let (b, a) = (resource(&before, name).unwrap(), resource(&after, name).unwrap());
        assert_eq!((a.pushes, &a.acked), (b.pushes, &b.acked), "{name} was re-pushed");
    }
    assert_eq!(
        both.iter().map(|n| stat(n)).collect::<Vec<_>>(),
        successes,
        "an Envoy applied a config"
    );
    assert_eq!(status_of(&cluster, "catalog", "GET", "/").await, 200);
}

/// Requests of the load: (method, path, status every policy version gives).
const LOAD: &[(&str, &str, u16)] =
    &[("GET", "/api/inventory/item7", 200), ("DELETE", "/api/inventory/item7", 403)];

/// What the load saw.
#[derive(Debug, Default)]
struct LoadReport {
    requests: u64,
    /// Responses other than the expected status.
    wrong: Vec<String>,
    /// Requests without a response (reset, closed connection).
    errors: Vec<String>,
}

/// Sends [`LOAD`] over one long-lived HTTP/1.1 keep-alive connection and one HTTP/2 connection
/// to inventory-api until `stop`: a reset connection or a wrong status shows up in the report.
async fn run_load(to: SocketAddr, stop: Arc<AtomicBool>) -> LoadReport {
    let h1 = tokio::spawn(load_h1(to, Arc::clone(&stop)));
    let h2 = tokio::spawn(load_h2(to, stop));
    let mut report = LoadReport::default();
    for part in [h1.await.unwrap(), h2.await.unwrap()] {
        report.requests += part.requests;
        report.wrong.extend(part.wrong);
        report.errors.extend(part.errors);
    }
    report
}

fn load_request(
    to: SocketAddr,
    method: &str,
    path: &str,
    absolute: bool,
) -> hyper::Request<Empty<Bytes>> {
    let uri = if absolute {
        format!("http://inventory-api:{}{path}", to.port())
    } else {
        path.to_string()
    };
    hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header(hyper::header::HOST, format!("inventory-api:{}", to.port()))
        .body(Empty::new())
        .unwrap()
}

async fn judge(
    report: &mut LoadReport,
    what: &str,
    expect: u16,
    response: Result<hyper::Response<hyper::body::Incoming>, hyper::Error>,
) -> bool {
    report.requests += 1;
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            if let Err(e) = r.into_body().collect().await {
                report.errors.push(format!("{what}: body: {e}"));
                return false;
            }
            if status != expect {
                report.wrong.push(format!("{what}: {status}, expected {expect}"));
            }
            true
        }
        Err(e) => {
            report.errors.push(format!("{what}: {e}"));
            false
        }
    }
}

async fn load_h1(to: SocketAddr, stop: Arc<AtomicBool>) -> LoadReport {
    let mut report = LoadReport::default();
    let stream = client::connect(FRONTEND, to).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    let driver = tokio::spawn(conn);
    'outer: while !stop.load(Ordering::Relaxed) {
        for (method, path, expect) in LOAD {
            let response = match sender.ready().await {
                Ok(()) => sender.send_request(load_request(to, method, path, false)).await,
                Err(e) => Err(e),
            };
            if !judge(&mut report, &format!("h1 {method} {path}"), *expect, response).await {
                break 'outer; // the connection is gone: one error is enough
            }
        }
    }
    driver.abort();
    report
}

async fn load_h2(to: SocketAddr, stop: Arc<AtomicBool>) -> LoadReport {
    let mut report = LoadReport::default();
    let stream = client::connect(FRONTEND, to).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    'outer: while !stop.load(Ordering::Relaxed) {
        for (method, path, expect) in LOAD {
            let response = sender.send_request(load_request(to, method, path, true)).await;
            if !judge(&mut report, &format!("h2 {method} {path}"), *expect, response).await {
                break 'outer;
            }
        }
    }
    driver.abort();
    report
}

fn assert_clean(report: &LoadReport) {
    assert!(report.requests > 0, "the load sent nothing");
    assert!(
        report.wrong.is_empty() && report.errors.is_empty(),
        "{} requests, {} wrong statuses, {} without response:\n{}\n{}",
        report.requests,
        report.wrong.len(),
        report.errors.len(),
        report.wrong.iter().take(10).cloned().collect::<Vec<_>>().join("\n"),
        report.errors.join("\n")
    );
}

/// The inventory-api policy with one extra allowed path: each `n` is a different config that
/// still gives every [`LOAD`] request the same status.
fn inventory_policy_variant(original: &str, n: usize) -> String {
    format!("{original}              - method: GET\n                path: \"/api/extra/{n}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_policy_changes_under_load_fail_no_request() {
    let manifests = seed_copy();
    let cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    let policy: PathBuf = manifests.path().join("policies/inventory-api.yaml");
    let original = std::fs::read_to_string(&policy).unwrap();
    assert!(original.ends_with("path: \"/api/inventory/.*\"\n"), "the seed policy changed shape");
    let envoy = &cluster.sidecar("inventory-api").unwrap().envoy;
    let applied_before = envoy.stat(ECDS_UPDATE_SUCCESS).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(run_load(envoy.listener(), Arc::clone(&stop)));
    let cp = control(&cluster);
    let mut acked = resource(&cp.status().unwrap(), "inventory-api").unwrap().acked.clone();
    for n in 0..100 {
        write(&policy, &inventory_policy_variant(&original, n));
        // One change at a time: wait until Envoy acked it, so none is merged into the next.
        let report = tokio::task::block_in_place(|| {
            cp.wait_for_status(|r| {
                in_sync(r, "inventory-api") && resource(r, "inventory-api").unwrap().acked != acked
            })
        })
        .unwrap();
        let now = resource(&report, "inventory-api").unwrap().acked.clone();
        assert_ne!(now, acked, "change {n} was not acked: {report:#?}");
        acked = now;
    }
    // The last extra path is enforced, and the load still gets what it expects.
    assert_eq!(status_of(&cluster, "inventory-api", "GET", "/api/extra/99").await, 200);
    assert_eq!(status_of(&cluster, "inventory-api", "GET", "/api/extra/98").await, 403);
    stop.store(true, Ordering::Relaxed);
    let report = load.await.unwrap();
    assert_clean(&report);
    let applied = envoy.stat(ECDS_UPDATE_SUCCESS).unwrap() - applied_before;
    assert!(applied >= 100, "Envoy applied {applied} configs for 100 changes");
    eprintln!("{} requests during 100 policy changes, all as expected", report.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_plane_resyncs_without_changing_verdicts() {
    let manifests = seed_copy();
    let mut cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    let names = ["inventory-api", "payment-gateway", "catalog"];
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(run_load(
        cluster.sidecar("inventory-api").unwrap().envoy.listener(),
        Arc::clone(&stop),
    ));

    cluster.control.as_mut().unwrap().kill();
    for name in names {
        let envoy = &cluster.sidecar(name).unwrap().envoy;
        let state = tokio::task::block_in_place(|| {
            envoy.wait_for_stat("control_plane.connected_state", |v| v == 0)
        });
        assert_eq!(state, Some(0), "{name} did not notice the control plane is gone");
    }
    assert_seed_statuses(&cluster, "control plane down").await;
    // Down long enough for Envoy's default backoff (0.5 s doubling to 30 s) to reach several
    // seconds; the templates bound it to 2 s, so the Envoys are back soon after the server.
    tokio::time::sleep(Duration::from_secs(6)).await;

    tokio::task::block_in_place(|| cluster.control.as_mut().unwrap().restart(None)).unwrap();
    let restarted = Instant::now();
    let cp = control(&cluster);
    let report =
        tokio::task::block_in_place(|| cp.wait_for_status(|r| names.iter().all(|n| in_sync(r, n))))
            .unwrap();
    let back = restarted.elapsed();
    eprintln!("all sidecars reconnected and acked {} ms after the restart", back.as_millis());
    // Functional, not a benchmark: the bound is the backoff cap (2 s) with ample slack.
    assert!(back < Duration::from_secs(8), "reconnected after {back:?}: is the backoff bounded?");
    for name in names {
        assert!(in_sync(&report, name), "{name} did not reconnect and ack: {report:#?}");
        let envoy = &cluster.sidecar(name).unwrap().envoy;
        assert_eq!(envoy.stat("control_plane.connected_state"), Some(1), "{name}");
    }
    assert_seed_statuses(&cluster, "after the restart").await;
    stop.store(true, Ordering::Relaxed);
    assert_clean(&load.await.unwrap());
    assert_seed_table(&cluster, "after the restart, without load").await;
}

#[tokio::test]
async fn an_invalid_policy_is_reported_and_nothing_is_pushed() {
    let manifests = seed_copy();
    let cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    let cp = control(&cluster);
    let before = cp.status().unwrap();
    let policy = manifests.path().join("policies/inventory-api.yaml");
    let original = std::fs::read_to_string(&policy).unwrap();
    // Allow everything, but misspell a field: applied, this would open inventory-api.
    let broken = original
        .replace("                path: \"/api/inventory/.*\"\n", "                pth: \".*\"\n");
    assert_ne!(broken, original);
    write(&policy, &broken);

    let report = cp.wait_for_status(|r| r.reload.error.is_some()).unwrap();
    let error = report.reload.error.clone().expect("the reload error is reported");
    assert!(error.contains("inventory-api.yaml:") && error.contains("pth"), "{error}");
    assert_eq!(report.reload.generation, before.reload.generation, "an invalid state was accepted");
    for name in ["inventory-api", "payment-gateway", "catalog"] {
        let (b, a) = (resource(&before, name).unwrap(), resource(&report, name).unwrap());
        assert_eq!((a.pushes, &a.acked), (b.pushes, &b.acked), "{name} was pushed something");
    }
    assert_seed_table(&cluster, "with an invalid policy on disk").await;

    // The same text `l7gate validate` prints.
    let validate = std::process::Command::new(l7gate_e2e::harness::control::binary().unwrap())
        .args(["validate", "--policies"])
        .arg(manifests.path().join("policies"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&validate.stderr);
    assert_eq!(printed.trim_end(), error.trim_end());

    write(&policy, &original);
    let fixed = cp.wait_for_status(|r| r.reload.error.is_none()).unwrap();
    assert_eq!(fixed.reload.error, None);
    assert_eq!(fixed.reload.generation, before.reload.generation + 1);
}

#[tokio::test]
async fn a_config_envoy_rejects_is_reported_and_the_last_good_one_keeps_enforcing() {
    let manifests = seed_copy();
    let mut cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    let missing = manifests.path().join("no-such-filter.wasm");
    // Valid policies, but a module path the Envoys cannot load: every config is NACKed.
    cluster.control.as_mut().unwrap().restart(Some(&missing)).unwrap();
    let cp = control(&cluster);
    let names = ["inventory-api", "payment-gateway", "catalog"];
    let report = cp
        .wait_for_status(|r| {
            names.iter().all(|n| resource(r, n).is_some_and(|r| r.last_nack.is_some()))
        })
        .unwrap();
    for name in names {
        let r = resource(&report, name)
            .unwrap_or_else(|| panic!("{name} never connected: {report:#?}"));
        let nack = r.last_nack.as_ref().unwrap_or_else(|| panic!("{name}: no NACK: {report:#?}"));
        assert!(
            nack.message.contains(&missing.display().to_string()),
            "{name}: Envoy said {:?}",
            nack.message
        );
        assert_eq!(Some(&nack.version), r.current.as_ref());
        assert_eq!(
            (r.acked.as_ref(), r.pending.as_ref(), r.pushes),
            (None, None, 1),
            "{name}: {r:#?}"
        );
    }
    let text = std::process::Command::new(l7gate_e2e::harness::control::binary().unwrap())
        .args(["status", "--server", &cp.status_addr().to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("inventory-api rejected") && text.contains("no-such-filter.wasm"),
        "{text}"
    );
    assert_seed_table(&cluster, "after a rejected config").await;
}

#[tokio::test]
async fn an_envoy_the_inventory_does_not_know_gets_nothing_and_fails_closed() {
    let tools = Tools::require();
    let manifests = seed_copy();
    let cp = ControlPlane::start(ServeSpec::files(manifests.path(), &tools.wasm))
        .unwrap_or_else(|e| panic!("{e}"));
    let app = Upstream::start("ghost-app").unwrap();
    let spec = AdsSidecarSpec {
        name: "ghost".into(),
        listen: "127.0.0.28:0".parse().unwrap(),
        upstream: app.addr(),
        xds: cp.xds(),
    };
    // Ready only after the initial fetch timeout: the listener was warming until then.
    let envoy = Envoy::spawn_ads(&tools, &spec)
        .and_then(|mut e| e.wait_ready().map(|()| e))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        envoy.stat("extension_config_discovery.http_filter.l7gate.init_fetch_timeout"),
        Some(1)
    );
    let report = cp.wait_for_status(|r| node(r, "ghost").is_some()).unwrap();
    let ghost = node(&report, "ghost").unwrap();
    assert!(ghost.connected && ghost.resources.iter().all(|r| r.pushes == 0), "{ghost:#?}");
    // Its certificate names default/ghost, and so does its stream now.
    assert!(ghost.error.as_deref().is_some_and(|e| e.contains("\"default/ghost\"")), "{ghost:#?}");
    let req = Request {
        from: FRONTEND,
        to: envoy.listener(),
        authority: "ghost",
        method: "GET",
        path: "/",
    };
    let response = client::send(Protocol::Http1, &req).await.unwrap();
    assert_eq!((response.status, response.body.as_str()), (500, ""));
    assert_eq!(app.count(), 0, "a request passed a sidecar without a filter config");
}
