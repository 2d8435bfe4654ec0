//! Checks the compose deployment (envoy/compose) from the host; scripts/compose.sh runs it.
//!
//! * `l7gate-compose seed`: waits until every Envoy is in sync with `l7gate serve`, sends the
//!   seed table (HTTP/1.1 and HTTP/2) and the egress rows from inside the client containers,
//!   checks every verdict and what each application logged, prints the table.
//! * `l7gate-compose test`: the same, then edits a policy file (the mounted
//!   `$L7GATE_POLICIES`) and sees the verdict flip and flip back, adds a policy in audit mode
//!   (its would-be denials pass and are counted as `audit`), stops the control plane
//!   (exit 0 on SIGTERM as PID 1) and sees every verdict hold, starts it again, and runs every
//!   Prometheus query of the Grafana dashboard against the deployment's Prometheus.
//!
//! Exits 0 when every row is as expected.

use std::process::ExitCode;
use std::time::Instant;

use l7gate_e2e::compose::{self, Deployment, Row};
use serde_json::json;

fn main() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode != "seed" && mode != "test" {
        eprintln!("usage: l7gate-compose seed|test");
        return ExitCode::from(2);
    }
    let deployment = Deployment::from_env();
    let mut rows = Vec::new();
    if let Err(e) = run(&deployment, mode == "test", &mut rows) {
        rows.push(Row {
            request: "the run itself".into(),
            expected: "completes".into(),
            actual: e.clone(),
            failure: Some(e),
        });
    }
    let failed = compose::print_table(&rows);
    println!("\n{} passed, {failed} failed", rows.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(deployment: &Deployment, full: bool, rows: &mut Vec<Row>) -> Result<(), String> {
    deployment.wait_in_sync()?;
    rows.extend(deployment.seed()?);
    if !full {
        return Ok(());
    }
    rows.push(live_edit(deployment)?);
    rows.push(audit_policy_added(deployment)?);
    rows.extend(control_plane_stopped(deployment)?);
    rows.extend(prometheus()?);
    Ok(())
}

/// The status of frontend's DELETE on inventory-api, sent from the frontend container.
fn delete_status(deployment: &Deployment) -> Result<u64, String> {
    let request = json!({"protocol": "h1", "to": "inventory-api:8080", "authority": "inventory-api:8080", "method": "DELETE", "path": "/api/inventory/item123"});
    let result = deployment.probe("frontend", &[request])?;
    result[0]["status"].as_u64().ok_or(format!("no response: {}", result[0]))
}

/// Editing inventory-api's policy on the host changes the verdict live, and back.
fn live_edit(deployment: &Deployment) -> Result<Row, String> {
    let path = compose::policies_dir().join("inventory-api.yaml");
    let original =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let edited = original.replacen("- method: GET", "- method: \"GET|DELETE\"", 1);
    if edited == original {
        return Err(format!("{} has no `- method: GET` rule to edit", path.display()));
    }
    let start = Instant::now();
    compose::replace_file(&path, &edited)?;
    let flipped = compose::wait_for("DELETE allowed after the edit", || {
        Ok((delete_status(deployment)? == 200).then_some(()))
    });
    let took = start.elapsed();
    compose::replace_file(&path, &original)?;
    let restored = compose::wait_for("DELETE denied again after the revert", || {
        Ok((delete_status(deployment)? == 403).then_some(()))
    });
    let failure = flipped.and(restored).err();
    Ok(Row {
        request: "edit inventory-api.yaml on the host: method GET → GET|DELETE, then back".into(),
        expected: "frontend DELETE 403 → 200 → 403".into(),
        actual: if failure.is_none() {
            format!("403 → 200 (in {:.1} s) → 403", took.as_secs_f64())
        } else {
            "did not flip".into()
        },
        failure,
    })
}

/// A policy in audit mode for catalog, added as a new file.
const CATALOG_AUDIT: &str = r#"# Added by the compose test: catalog in audit mode.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: catalog-audit
  namespace: default
  annotations:
    l7gate.io/audit-mode: "true"
spec:
  endpointSelector:
    matchLabels:
      app: catalog
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
"#;

/// A new policy file in audit mode: what it would deny (reporting: no rule; frontend DELETE:
/// no HTTP rule) still passes, and is counted as `audit` (the dashboard's audit panels).
fn audit_policy_added(deployment: &Deployment) -> Result<Row, String> {
    let generation = deployment.status()?.reload.generation;
    compose::replace_file(&compose::policies_dir().join("catalog-audit.yaml"), CATALOG_AUDIT)?;
    compose::wait_for("the new policy is loaded", || {
        Ok((deployment.status()?.reload.generation > generation).then_some(()))
    })?;
    deployment.wait_in_sync()?;
    let mut statuses = Vec::new();
    for (client, method) in [("reporting", "GET"), ("frontend", "DELETE")] {
        let request = json!({"protocol": "h1", "to": "catalog:8080", "authority": "catalog:8080", "method": method, "path": "/audited"});
        let result = deployment.probe(client, &[request])?;
        statuses.push(result[0]["status"].as_u64().unwrap_or(0));
    }
    Ok(Row {
        request:
            "add catalog-audit.yaml (audit mode); reporting GET and frontend DELETE to catalog"
                .into(),
        expected: "200 200 (would-be denials pass, counted as audit)".into(),
        actual: format!("{} {}", statuses[0], statuses[1]),
        failure: (statuses != [200, 200]).then(|| "audit mode must not deny".to_string()),
    })
}

/// `docker stop` of the control plane: exit 0 at once; every verdict holds meanwhile.
fn control_plane_stopped(deployment: &Deployment) -> Result<Vec<Row>, String> {
    let id = deployment.run(&["ps", "-q", "l7gate"])?.trim().to_string();
    let start = Instant::now();
    deployment.run(&["stop", "-t", "10", "l7gate"])?;
    let took = start.elapsed();
    let inspect = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.ExitCode}}", &id])
        .output()
        .map_err(|e| e.to_string())?;
    let code = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    let graceful = code == "0" && took.as_secs() < 10;
    let mut rows = vec![Row {
        request: "docker-compose stop l7gate (SIGTERM to PID 1)".into(),
        expected: "exit 0 before the 10 s SIGKILL".into(),
        actual: format!("exit {code} after {:.1} s", took.as_secs_f64()),
        failure: (!graceful).then(|| "l7gate serve did not stop cleanly on SIGTERM".to_string()),
    }];
    let held = deployment.seed()?;
    for mut row in held {
        row.request = format!("{} [control plane stopped]", row.request);
        rows.push(row);
    }
    deployment.run(&["start", "l7gate"])?;
    deployment.wait_in_sync()?;
    Ok(rows)
}

/// Prometheus scrapes every Envoy's metrics listener, and every query of the dashboard answers.
fn prometheus() -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let up = compose::wait_for("Prometheus scrapes every Envoy", || {
        let n = compose::prometheus_series("up == 1")?;
        Ok((n >= compose::ENVOYS.len()).then_some(n))
    });
    rows.push(Row {
        request: "Prometheus targets up (every Envoy's metrics listener)".into(),
        expected: format!("{} targets", compose::ENVOYS.len()),
        actual: up.as_ref().map_or_else(Clone::clone, |n| format!("{n} targets")),
        failure: up.err(),
    });
    for (panel, query) in compose::dashboard_queries()? {
        let answered = compose::wait_for(&query, || {
            Ok(Some(compose::prometheus_series(&query)?).filter(|n| *n > 0))
        });
        rows.push(Row {
            request: format!("dashboard \"{panel}\": {query}"),
            expected: "at least one series".into(),
            actual: answered.as_ref().map_or_else(Clone::clone, |n| format!("{n} series")),
            failure: answered.err(),
        });
    }
    Ok(rows)
}
