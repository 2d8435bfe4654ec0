//! The seed demo: runs `l7gate serve` on `manifests/` and the seed cluster (one real Envoy with
//! the l7gate filter per server workload, configured only over ADS by that server), sends every
//! request of the seed table from the right source address, prints expected vs actual per
//! request, and exits non-zero if any row differs. Needs the `l7gate` binary built beside this
//! one (`cargo build -p l7gate`; scripts/demo.sh does it).

use std::process::ExitCode;

use l7gate_e2e::harness::cluster::Cluster;
use l7gate_e2e::harness::tools::repo_root;
use l7gate_e2e::scenario::{self, SEED};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut cluster = match Cluster::start_ads(&repo_root().join("manifests")) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("l7gate-demo: cannot start the seed cluster: {e}");
            return ExitCode::from(2);
        }
    };
    println!("seed cluster from {}:", cluster.manifests.display());
    if let Some(control) = &cluster.control {
        println!(
            "  l7gate serve     ADS {}  status http://{}/status  (l7gate status --server {})",
            control.xds(),
            control.status_addr(),
            control.status_addr()
        );
    }
    for s in &cluster.sidecars {
        println!(
            "  {:<16} sidecar {}  → app {}",
            s.endpoint.name,
            s.envoy.listener(),
            s.upstream.addr()
        );
    }
    println!();

    let mut rows = Vec::new();
    for (case, protocol) in scenario::requests(SEED) {
        let (actual, verdict) = match scenario::run(&cluster, case, protocol).await {
            Ok(outcome) => (outcome.summary(), scenario::check(case, &outcome)),
            Err(e) => (format!("harness error: {e}"), Err(e)),
        };
        rows.push([
            case.describe(protocol),
            case.expected(),
            actual,
            verdict.err().unwrap_or_default(),
        ]);
    }

    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1) = (width(0).max(7), width(1).max(8));
    println!("{:<w0$}  {:<w1$}  {:<4}  actual", "request", "expected", "");
    let mut failed = 0;
    for [request, expected, actual, why] in &rows {
        let mark = if why.is_empty() { "OK" } else { "FAIL" };
        println!("{request:<w0$}  {expected:<w1$}  {mark:<4}  {actual}");
        if !why.is_empty() {
            failed += 1;
            println!("{:<w0$}  {:<w1$}        ↳ {why}", "", "");
        }
    }
    println!("\n{} passed, {failed} failed", rows.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        for s in &mut cluster.sidecars {
            s.envoy.stop_gracefully();
            eprintln!("==== {} ====\n{}", s.endpoint.name, s.envoy.log_tail(20));
        }
        if let Some(control) = &cluster.control {
            eprintln!("==== l7gate serve ====\n{}", control.log());
        }
        ExitCode::FAILURE
    }
}
