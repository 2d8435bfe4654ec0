//! Observability end to end (spec §8), with real Envoys running the real filter: the flow log
//! line of every seed request, verdict counters moving by exactly the requests made, the
//! Grafana dashboard querying only series these Envoys export, `l7gate diff` replaying a
//! flow log recorded here through a tightened policy set, audit mode, and `l7gate suggest` on
//! traffic recorded in audit mode.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use l7gate_e2e::harness::cluster::Cluster;
use l7gate_e2e::harness::control;
use l7gate_e2e::harness::envoy::{Envoy, SidecarSpec};
use l7gate_e2e::harness::tools::{eventually, repo_root, Tools};
use l7gate_e2e::harness::upstream::Upstream;
use l7gate_e2e::scenario::{self, Case, Expect, Peer, SEED};
use serde_json::Value;

/// A series of `/stats/prometheus`: name and labels.
type Series = (String, BTreeMap<String, String>);

/// Parses Envoy's Prometheus text output (`name{k="v",...} value`).
fn prometheus(envoy: &Envoy, query: &str) -> BTreeMap<Series, f64> {
    let (status, body) =
        envoy.admin_get(&format!("/stats/prometheus{query}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "{body}");
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|l| !l.is_empty())
            .map(|kv| {
                let (k, v) =
                    kv.split_once("=\"").unwrap_or_else(|| panic!("bad label {kv:?} in {line:?}"));
                (k.to_string(), v.trim_end_matches('"').to_string())
            })
            .collect();
        out.insert(
            (name.to_string(), labels),
            value.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")),
        );
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// What the sidecar of `case.to` must log and count for one seed request; `None` for requests
/// Envoy answers before the filter runs (redirects).
struct Expected {
    verdict: &'static str,
    reason: &'static str,
    /// (policy, rule) of the deciding rule.
    rule: Option<(String, &'static str)>,
    code: u64,
}

fn expected(case: &Case) -> Option<Expected> {
    let (verdict, code) = match case.expect {
        Expect::Allow { .. } => ("allowed", 200),
        Expect::Deny => ("denied", 403),
        Expect::Redirect { .. } => return None,
    };
    let policy = format!("default/{}-l7", case.to);
    let rule = Some((policy, "spec.ingress[0].toPorts[0]"));
    Some(match (case.to, case.from, verdict) {
        // spec §4.1 case 1: no policy selects catalog for ingress.
        ("catalog", _, _) => Expected { verdict, reason: "policy-not-enforced", rule: None, code },
        // spec §4.1 case 2: only frontend is selected by fromEndpoints; anyone else is default-denied.
        (_, Peer::Endpoint("frontend"), "allowed") => {
            Expected { verdict, reason: "allowed-l7", rule, code }
        }
        (_, Peer::Endpoint("frontend"), _) => {
            Expected { verdict, reason: "denied-l7-no-rule-matched", rule, code }
        }
        _ => Expected { verdict, reason: "default-deny", rule: None, code },
    })
}

fn source_ip(cluster: &Cluster, peer: Peer) -> IpAddr {
    match peer {
        Peer::Endpoint(name) => *cluster
            .inventory
            .endpoint(name)
            .and_then(|e| e.ips.first())
            .unwrap_or_else(|| panic!("{name}")),
        Peer::Address(ip) => ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}")),
    }
}

/// Runs every seed request against the cluster, checking each outcome; returns, per target
/// sidecar, the requests that reached the filter, in order.
async fn run_seed(cluster: &Cluster) -> BTreeMap<&'static str, Vec<&'static Case>> {
    let mut decided: BTreeMap<&'static str, Vec<&'static Case>> = BTreeMap::new();
    for (case, protocol) in scenario::requests(SEED) {
        let outcome = scenario::run(cluster, case, protocol)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.describe(protocol)));
        scenario::check(case, &outcome)
            .unwrap_or_else(|e| panic!("{}: {e}", case.describe(protocol)));
        if expected(case).is_some() {
            decided.entry(case.to).or_default().push(case);
        }
    }
    decided
}

/// The path the filter sees: the one the application saw, or for denials the row's path when
/// Envoy's normalisation leaves it alone.
fn logged_path(case: &Case) -> Option<&'static str> {
    match case.expect {
        Expect::Allow { upstream_path } => Some(upstream_path),
        _ if !case.path.contains("/.") && !case.path.contains('%') && !case.path.contains("//") => {
            Some(case.path)
        }
        _ => None,
    }
}

// spec §8: one flow line per decision with peer identity, verdict, deciding policy and rule (or
// the default-deny reason); counters move by exactly the number of requests per rule/reason.
#[tokio::test]
async fn seed_requests_write_exactly_the_expected_flow_lines_and_counts() {
    let cluster = Cluster::start_seed().unwrap_or_else(|e| panic!("{e}"));
    let before: Vec<_> = cluster.sidecars.iter().map(|s| prometheus(&s.envoy, "")).collect();
    let decided = run_seed(&cluster).await;
    assert_eq!(
        decided.keys().copied().collect::<Vec<_>>(),
        ["catalog", "inventory-api", "payment-gateway"]
    );

    for (sidecar, before) in cluster.sidecars.iter().zip(before) {
        let name = sidecar.endpoint.name.as_str();
        let cases = decided.get(name).cloned().unwrap_or_default();
        let records = sidecar.envoy.wait_for_flow_records(cases.len());
        assert_eq!(records.len(), cases.len(), "{name}: flow records {records:#?}");

        let mut counts: BTreeMap<Series, f64> = BTreeMap::new();
        for (case, r) in cases.iter().zip(&records) {
            let want = expected(case).unwrap_or_else(|| panic!("{case:?}"));
            let what = format!("{name}: {} {} from {:?}: {r}", case.method, case.path, case.from);
            assert_eq!(r["direction"], "ingress", "{what}");
            assert_eq!(r["verdict"], want.verdict, "{what}");
            assert_eq!(r["reason"], want.reason, "{what}");
            assert_eq!(r["response_code"], want.code, "{what}");
            assert_eq!(r["endpoint"], format!("default/{name}"), "{what}");
            assert_eq!(r["method"], case.method, "{what}");
            if let Some(path) = logged_path(case) {
                assert_eq!(r["path"], path, "{what}");
            }
            assert_eq!(r["host"], format!("{name}:8080"), "{what}");
            assert_eq!(
                (r["port"].as_u64(), r["protocol"].as_str()),
                (Some(8080), Some("TCP")),
                "{what}"
            );
            assert_eq!(r["src"]["ip"], source_ip(&cluster, case.from).to_string(), "{what}");
            match case.from {
                Peer::Endpoint(peer) => {
                    assert_eq!(r["src"]["name"], format!("default/{peer}"), "{what}");
                    assert_eq!(r["src"]["namespace"], "default", "{what}");
                    let app = cluster
                        .inventory
                        .endpoint(peer)
                        .and_then(|e| e.labels.get("app"))
                        .cloned()
                        .unwrap_or_default();
                    assert_eq!(
                        r["src"]["labels"],
                        serde_json::json!([format!("k8s:app={app}")]),
                        "{what}"
                    );
                }
                // spec §2.4: an address the inventory does not know is reserved:world.
                Peer::Address(_) => assert_eq!(
                    (r["src"]["identity"].as_u64(), r["src"]["name"].as_str()),
                    (Some(2), Some("reserved:world")),
                    "{what}"
                ),
            }
            assert_eq!(r["dst"]["ip"], sidecar.envoy.listener().ip().to_string(), "{what}");
            assert_eq!(r["dst"]["name"], format!("default/{name}"), "{what}");
            match &want.rule {
                Some((policy, rule)) => {
                    assert_eq!(
                        (r["policy"].as_str(), r["rule"].as_str()),
                        (Some(policy.as_str()), Some(*rule)),
                        "{what}"
                    );
                    assert_eq!(r["kind"], "CiliumNetworkPolicy", "{what}");
                    let series = labels(&[
                        ("direction", "ingress"),
                        ("policy", policy),
                        ("rule", rule),
                        ("verdict", want.verdict),
                    ]);
                    *counts.entry(("l7gate_rule_verdicts".into(), series)).or_default() += 1.0;
                }
                None => {
                    assert_eq!(r.get("policy"), None, "{what}");
                    let series = labels(&[
                        ("direction", "ingress"),
                        ("reason", want.reason),
                        ("verdict", want.verdict),
                    ]);
                    *counts.entry(("l7gate_default_verdicts".into(), series)).or_default() += 1.0;
                }
            }
        }

        // Every verdict series moved by exactly the requests it decided; all others stayed.
        let after = prometheus(&sidecar.envoy, "");
        let verdict_series = |m: &BTreeMap<Series, f64>| -> BTreeSet<Series> {
            m.keys().filter(|(n, _)| n.ends_with("_verdicts")).cloned().collect()
        };
        assert_eq!(
            verdict_series(&after),
            verdict_series(&before),
            "{name}: the set of counters changed"
        );
        assert!(!verdict_series(&after).is_empty(), "{name}: no verdict counters at all");
        for series in verdict_series(&after) {
            let moved = after.get(&series).copied().unwrap_or_default()
                - before.get(&series).copied().unwrap_or_default();
            assert_eq!(
                moved,
                counts.get(&series).copied().unwrap_or_default(),
                "{name}: {series:?}"
            );
        }
        for series in counts.keys() {
            assert!(after.contains_key(series), "{name}: no counter {series:?}");
        }
    }
}

// spec §8 audit mode: an annotated policy's would-be denials reach the application (200 from the
// upstream), are logged with verdict `audit` naming that policy's rule, and move its `audit`
// counter by exactly their number; the enforced policy's own denials still get 403.
#[tokio::test]
async fn an_audit_mode_policy_lets_would_be_denials_through_and_reports_them() {
    let tools = Tools::require();
    let app = Upstream::start("audit-app").unwrap_or_else(|e| panic!("{e}"));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/observability/audit");
    let config = l7gate::compile_endpoint(
        &fixtures,
        &repo_root().join("manifests/endpoints.yaml"),
        "inventory-api",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.ingress.audit.is_some(), "the lockdown policy gives ingress an audit view");
    let spec = SidecarSpec {
        name: "audit".into(),
        // On 8080: the port the policies name.
        listen: "127.0.0.25:8080".parse().unwrap_or_else(|e| panic!("{e}")),
        upstream: app.addr(),
        filter_config_json: config.to_json().unwrap_or_else(|e| panic!("{e}")),
    };
    let envoy = Envoy::start(&tools, &spec).unwrap_or_else(|e| panic!("{e}"));
    let before = prometheus(&envoy, "");
    let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
    // (source, method, path, status, verdict, reason, deciding policy)
    let lockdown = Some("default/inventory-api-lockdown");
    let cases = [
        ("127.0.0.2", "GET", "/api/inventory/item1", 200, "audit", "denied-by-deny-rule", lockdown),
        ("127.0.0.2", "GET", "/api/inventory/item2", 200, "audit", "denied-by-deny-rule", lockdown),
        ("127.0.0.2", "GET", "/api/inventory/item3", 200, "audit", "denied-by-deny-rule", lockdown),
        (
            "127.0.0.2",
            "DELETE",
            "/api/inventory/item1",
            403,
            "denied",
            "denied-l7-no-rule-matched",
            Some("default/inventory-api-l7"),
        ),
        ("127.0.0.3", "GET", "/api/inventory/item1", 403, "denied", "default-deny", None),
    ];
    for (from, method, path, status, ..) in cases {
        let request = l7gate_e2e::harness::client::Request {
            from: ip(from),
            to: envoy.listener(),
            authority: "inventory-api:8080",
            method,
            path,
        };
        let response = l7gate_e2e::harness::client::send(
            l7gate_e2e::harness::client::Protocol::Http1,
            &request,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status, status, "{from} {method} {path}");
    }
    let seen: Vec<String> = app.seen().iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    assert_eq!(
        seen,
        ["GET /api/inventory/item1", "GET /api/inventory/item2", "GET /api/inventory/item3"],
        "the audited requests reached the application"
    );

    let records = envoy.wait_for_flow_records(cases.len());
    assert_eq!(records.len(), cases.len(), "{records:#?}");
    for ((from, method, path, status, verdict, reason, policy), r) in cases.iter().zip(&records) {
        let what = format!("{from} {method} {path}: {r}");
        assert_eq!(
            (r["verdict"].as_str(), r["reason"].as_str(), r["response_code"].as_u64()),
            (Some(*verdict), Some(*reason), Some(u64::from(*status))),
            "{what}"
        );
        assert_eq!(r["policy"].as_str(), *policy, "{what}");
        assert_eq!(
            (r["src"]["ip"].as_str(), r["path"].as_str()),
            (Some(*from), Some(*path)),
            "{what}"
        );
    }
    assert_eq!(records[0]["rule"], "spec.ingressDeny[0].toPorts[0]");

    // Exactly the three audited requests on the lockdown rule's audit counter; nothing counted
    // as allowed (the enforced view allowed them, but the verdict is audit).
    let after = prometheus(&envoy, "");
    let moved = |series: &[(&str, &str)]| {
        let key = ("l7gate_rule_verdicts".to_string(), labels(series));
        after.get(&key).copied().unwrap_or_else(|| panic!("no series {series:?}"))
            - before.get(&key).copied().unwrap_or_default()
    };
    let rule = |policy, rule, verdict| {
        [("direction", "ingress"), ("policy", policy), ("rule", rule), ("verdict", verdict)]
    };
    assert_eq!(
        moved(&rule("default/inventory-api-lockdown", "spec.ingressDeny[0].toPorts[0]", "audit")),
        3.0
    );
    assert_eq!(
        moved(&rule("default/inventory-api-l7", "spec.ingress[0].toPorts[0]", "allowed")),
        0.0
    );
    assert_eq!(
        moved(&rule("default/inventory-api-l7", "spec.ingress[0].toPorts[0]", "denied")),
        1.0
    );

    // The VM's linear memory, in whole 64 KiB wasm pages (set at configure time already).
    let memory = after
        .get(&("l7gate_vm_memory_bytes".to_string(), BTreeMap::new()))
        .copied()
        .unwrap_or_else(|| panic!("no l7gate_vm_memory_bytes"));
    assert!(memory >= 1048576.0 && memory % 65536.0 == 0.0, "l7gate_vm_memory_bytes {memory}");
}

/// Names and labels a PromQL or LogQL expression uses: `(metrics, labels)`.
fn promql_names(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    };
    let metrics = words(expr)
        .into_iter()
        .filter(|w| w.starts_with("l7gate_") || w.starts_with("envoy_"))
        .collect();
    let mut labels = BTreeSet::new();
    for (i, _) in expr.match_indices("by (") {
        let rest = &expr[i + 4..];
        labels.extend(words(&rest[..rest.find(')').unwrap_or(rest.len())]));
    }
    for (i, _) in expr.match_indices('{') {
        let rest = &expr[i + 1..];
        for matcher in rest[..rest.find('}').unwrap_or(rest.len())].split(',') {
            labels
                .extend(words(matcher.split(['=', '!']).next().unwrap_or("")).into_iter().take(1));
        }
    }
    (metrics, labels)
}

/// Keys of a flow record as Loki's `| json` flattens them (`src.ip` → `src_ip`).
fn flattened(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v.as_object() {
        Some(map) => {
            for (k, v) in map {
                flattened(
                    &if prefix.is_empty() { k.clone() } else { format!("{prefix}_{k}") },
                    v,
                    out,
                );
            }
        }
        None => {
            out.insert(prefix.to_string());
        }
    }
}

// The dashboard is only useful if its queries name series and fields that exist: every metric
// and label a Prometheus panel uses is exported by a real sidecar (through the scrape config's
// filter), and every field a Loki panel uses is in the flow records it writes.
#[tokio::test]
async fn the_dashboard_queries_only_what_the_envoys_export() {
    let tools = Tools::require();
    let app = Upstream::start("dash-app").unwrap_or_else(|e| panic!("{e}"));
    let manifests = repo_root().join("manifests");
    let config = l7gate::compile_endpoint(
        &manifests.join("policies"),
        &manifests.join("endpoints.yaml"),
        "inventory-api",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let spec = SidecarSpec {
        name: "dash".into(),
        listen: "127.0.0.24:0".parse().unwrap_or_else(|e| panic!("{e}")),
        upstream: app.addr(),
        filter_config_json: config.to_json().unwrap_or_else(|e| panic!("{e}")),
    };
    let envoy = Envoy::start(&tools, &spec).unwrap_or_else(|e| panic!("{e}"));
    // One decision, so the flow log has a record whose fields the Loki panels can be checked on.
    let request = l7gate_e2e::harness::client::Request {
        from: "127.0.0.2".parse().unwrap_or_else(|e| panic!("{e}")),
        to: envoy.listener(),
        authority: "inventory-api:8080",
        method: "DELETE",
        path: "/api/inventory/1",
    };
    let response =
        l7gate_e2e::harness::client::send(l7gate_e2e::harness::client::Protocol::Http1, &request)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status, 403);
    let record = envoy.wait_for_flow_records(1).pop().unwrap_or_else(|| panic!("no flow record"));
    let mut fields = BTreeSet::new();
    flattened("", &record, &mut fields);

    let scrape = std::fs::read_to_string(manifests.join("observability/prometheus.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let filter = scrape
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("filter: [\"")?
                .strip_suffix("\"]")
                .map(|f| f.replace("\\\\", "\\"))
        })
        .unwrap_or_else(|| panic!("prometheus.yaml has no filter param"));
    let query: String =
        filter
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
    let exported = prometheus(&envoy, &format!("?filter={query}"));
    let mut exported_labels: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, labels) in exported.keys() {
        exported_labels.entry(name).or_default().extend(labels.keys().map(String::as_str));
    }

    let text = std::fs::read_to_string(manifests.join("observability/grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let dashboard: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboard JSON: {e}"));
    let panels = dashboard["panels"].as_array().unwrap_or_else(|| panic!("no panels"));
    let (mut prom_queries, mut loki_queries) = (0, 0);
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("{target}"));
            let title = &panel["title"];
            let (metrics, used) = promql_names(expr);
            match target["datasource"]["type"].as_str() {
                Some("prometheus") => {
                    prom_queries += 1;
                    assert!(!metrics.is_empty(), "{title}: no metric in {expr}");
                    for metric in &metrics {
                        let have = exported_labels.get(metric.as_str()).unwrap_or_else(|| {
                            panic!("{title}: {metric} is not exported ({expr})")
                        });
                        // `instance` is added by Prometheus itself.
                        for label in used.iter().filter(|l| *l != "instance") {
                            assert!(
                                have.contains(label.as_str()),
                                "{title}: {metric} has no label {label} ({have:?})"
                            );
                        }
                    }
                }
                Some("loki") => {
                    loki_queries += 1;
                    let pipeline = expr
                        .split_once("| json")
                        .map(|(_, p)| p)
                        .unwrap_or_else(|| panic!("{title}: {expr}"));
                    let (_, by) = promql_names(&expr.replace("| json", ""));
                    let filters: BTreeSet<String> = pipeline
                        .split('|')
                        .filter_map(|stage| {
                            stage.trim().split_once('=').map(|(k, _)| k.trim().to_string())
                        })
                        .collect();
                    for field in by.iter().chain(&filters).filter(|f| *f != "job") {
                        assert!(
                            fields.contains(field),
                            "{title}: flow records have no field {field} ({fields:?})"
                        );
                    }
                }
                other => panic!("{title}: unexpected datasource {other:?}"),
            }
        }
    }
    assert!(
        prom_queries >= 5 && loki_queries >= 3,
        "{prom_queries} Prometheus and {loki_queries} Loki queries"
    );
}

// spec §5.2: `l7gate diff` replays a flow log recorded from real Envoys through a tightened
// path rule (`/api/inventory/item[0-9]+` instead of `/api/inventory/.*`) and flags exactly the
// recorded requests it would deny: the ones with a query string or another item name.
#[tokio::test]
async fn diff_flags_exactly_the_recorded_flows_a_tightened_policy_denies() {
    let cluster = Cluster::start_seed().unwrap_or_else(|e| panic!("{e}"));
    let decided = run_seed(&cluster).await;
    let mut recorded = String::new();
    for sidecar in &cluster.sidecars {
        let n = decided.get(sidecar.endpoint.name.as_str()).map_or(0, Vec::len);
        let records = sidecar.envoy.wait_for_flow_records(n);
        assert_eq!(records.len(), n, "{}", sidecar.endpoint.name);
        for r in records {
            recorded.push_str(&format!("{r}\n"));
        }
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let flows = dir.path().join("flows.jsonl");
    std::fs::write(&flows, &recorded).unwrap_or_else(|e| panic!("{e}"));

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/observability");
    let manifests = repo_root().join("manifests");
    let output = Command::new(control::binary().unwrap_or_else(|e| panic!("{e}")))
        .arg("diff")
        .arg("--old")
        .arg(manifests.join("policies"))
        .arg("--new")
        .arg(fixtures.join("tightened"))
        .arg("--endpoints")
        .arg(manifests.join("endpoints.yaml"))
        .arg("--flows")
        .arg(&flows)
        .arg("--json")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    let rules: Vec<(&str, &str, &str)> = report["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["endpoint"].as_str().unwrap_or(""),
                c["change"].as_str().unwrap_or(""),
                c["policy"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(rules, [("default/inventory-api", "changed", "default/inventory-api-l7")]);

    let flagged: Vec<(String, String, String)> = report["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (s(&f["request"]), s(&f["old"]["verdict"]), s(&f["new"]["verdict"]))
        })
        .collect();
    // Both protocols of each row: HTTP/1.1 (raw or typed) and HTTP/2.
    let twice =
        |request: &str| vec![(request.to_string(), "allowed".to_string(), "denied".to_string()); 2];
    let expected: Vec<_> = [
        twice("GET inventory-api:8080/api/inventory/item123?fields=qty"),
        twice("GET inventory-api:8080/api/inventory/x"),
    ]
    .concat();
    assert_eq!(flagged, expected, "{stdout}");
    assert_eq!(recorded.lines().count(), decided.values().map(Vec::len).sum::<usize>());
}

/// The traffic the example apps make in the suggest test: (from, to, method, path), realistic
/// ids in the paths.
fn app_traffic() -> Vec<(IpAddr, &'static str, &'static str, String)> {
    let (frontend, reporting) = ([127, 0, 0, 2].into(), [127, 0, 0, 3].into());
    let mut out = Vec::new();
    for n in 0..150u32 {
        let item = (n * 7919 + 13) % 100_000;
        out.push((frontend, "inventory-api", "GET", format!("/api/inventory/items/{item}")));
    }
    for n in 0..40u32 {
        let n = u64::from(n);
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (n * 2_654_435_761) & 0xffff_ffff,
            n * 31,
            n * 7,
            n * 11,
            n * 0x9e37_79b9
        );
        out.push((frontend, "inventory-api", "GET", format!("/api/inventory/items/{uuid}/stock")));
    }
    for q in ["bolts", "nuts", "washers", "hinges", "nails", "screws", "rivets", "pins"] {
        out.push((frontend, "inventory-api", "GET", format!("/api/inventory/search?q={q}")));
    }
    for n in 0..20u32 {
        let sku = format!("SKU-{}{}", 4400 + n * 13, ["A", "B", "C"][n as usize % 3]);
        out.push((frontend, "inventory-api", "GET", format!("/api/inventory/catalog/{sku}")));
    }
    for _ in 0..20 {
        out.push((frontend, "payment-gateway", "POST", "/process-payment".to_string()));
        out.push((reporting, "inventory-api", "GET", "/api/inventory/report".to_string()));
    }
    out
}

// Issue 14's rollout, end to end: real sidecars record the example apps' traffic in audit mode;
// `l7gate suggest` turns the flow log into policies (and tests); `l7gate serve` pushes them; the
// recorded requests still pass and requests the apps never made get 403; `l7gate test` passes on
// the suggested tests.
#[tokio::test]
async fn suggested_policies_allow_the_recorded_traffic_and_nothing_else() {
    let manifests = l7gate_e2e::harness::tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let policies = manifests.path().join("policies");
    for entry in std::fs::read_dir(&policies).unwrap_or_else(|e| panic!("{e}")) {
        std::fs::remove_file(entry.unwrap_or_else(|e| panic!("{e}")).path())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let record = policies.join("record.yaml");
    std::fs::copy(repo_root().join("manifests/rollout/record.yaml"), &record)
        .unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));

    let traffic = app_traffic();
    for (from, to, method, path) in &traffic {
        assert_eq!(
            cluster.status_from(*from, to, method, path).await,
            200,
            "recording {method} {to}{path}"
        );
    }
    let mut recorded = String::new();
    for name in ["inventory-api", "payment-gateway"] {
        let n = traffic.iter().filter(|t| t.1 == name).count();
        let records = cluster
            .sidecar(name)
            .unwrap_or_else(|| panic!("{name}"))
            .envoy
            .wait_for_flow_records(n);
        assert_eq!(records.len(), n, "{name}");
        assert!(
            records.iter().all(|r| r["verdict"] == "audit"),
            "recorded in audit mode: {records:?}"
        );
        for r in records {
            recorded.push_str(&format!("{r}\n"));
        }
    }
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (flows, suggested, tests) = (
        work.path().join("flows.jsonl"),
        work.path().join("suggested.yaml"),
        work.path().join("tests.yaml"),
    );
    std::fs::write(&flows, &recorded).unwrap_or_else(|e| panic!("{e}"));
    let endpoints = manifests.path().join("endpoints.yaml");
    let l7gate = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let binary = control::binary().unwrap_or_else(|e| panic!("{e}"));
        Command::new(binary).args(args).output().unwrap_or_else(|e| panic!("{e}"))
    };
    let out = l7gate(&[
        &"suggest",
        &"--flows",
        &flows,
        &"--endpoints",
        &endpoints,
        &"--out",
        &suggested,
        &"--tests",
        &tests,
    ]);
    assert!(out.status.success(), "suggest: {}", String::from_utf8_lossy(&out.stderr));
    let yaml = std::fs::read_to_string(&suggested).unwrap_or_else(|e| panic!("{e}"));

    // What a reviewer would accept: one policy per workload, no catch-all path, no address.
    assert_eq!(yaml.matches("kind: CiliumNetworkPolicy").count(), 2, "{yaml}");
    assert!(!yaml.contains(".*'") && !yaml.contains("\"/.*"), "no catch-all path: {yaml}");
    assert!(!yaml.contains("127.0."), "no addresses: {yaml}");
    for path in [
        "'/api/inventory/items/[^/?]+'",
        "'/api/inventory/items/[^/?]+/stock'",
        "'/api/inventory/search(\\?.*)?'",
        "'/api/inventory/report'",
        "'/api/inventory/catalog/[^/?]+'",
        "'/process-payment'",
    ] {
        assert!(yaml.contains(&format!("path: {path}")), "{path}: {yaml}");
    }
    assert!(yaml.contains("# segment 4: 150 distinct numbers"), "{yaml}");

    // Enforce it: the suggested policies replace the recording one, and serve pushes them.
    l7gate::ecds::write_atomically(&policies.join("suggested.yaml"), &yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&record).unwrap_or_else(|e| panic!("{e}"));
    let frontend: IpAddr = [127, 0, 0, 2].into();
    eventually("the suggested policies are enforced", async || {
        (cluster.status_from(frontend, "inventory-api", "DELETE", "/api/inventory/items/1").await
            == 403)
            .then_some(())
    })
    .await;
    for (from, to, method, path) in &traffic {
        assert_eq!(
            cluster.status_from(*from, to, method, path).await,
            200,
            "replaying {method} {to}{path}"
        );
    }
    let reporting: IpAddr = [127, 0, 0, 3].into();
    for (from, to, method, path) in [
        (frontend, "inventory-api", "DELETE", "/api/inventory/items/1"),
        (frontend, "inventory-api", "GET", "/api/inventory/admin"),
        (frontend, "inventory-api", "GET", "/api/inventory/items/1/../../admin"),
        (frontend, "inventory-api", "GET", "/api/inventory/items/1?x=1"),
        (reporting, "inventory-api", "GET", "/api/inventory/items/1"),
        (frontend, "payment-gateway", "GET", "/process-payment"),
        (reporting, "payment-gateway", "POST", "/process-payment"),
    ] {
        assert_eq!(
            cluster.status_from(from, to, method, path).await,
            403,
            "held back: {method} {to}{path}"
        );
    }

    let out = l7gate(&[&"test", &"--policies", &policies, &"--endpoints", &endpoints, &tests]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let distinct: BTreeSet<(&str, &str, &String)> =
        traffic.iter().map(|(_, to, m, p)| (*to, *m, p)).collect();
    assert!(stdout.contains(&format!("{n} cases: {n} passed", n = distinct.len())), "{stdout}");
}
