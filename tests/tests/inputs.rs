//! Hostile and awkward input files against a live `l7gate serve` (the built binary) with real
//! Envoy sidecars over ADS: nesting deep enough to overflow a stack, directories a writer keeps
//! busy, a policy file written in place in two parts. The control plane must stay up, apply
//! every relevant change within a bounded time, never apply a file that is still being written,
//! and keep the last good state in force meanwhile.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use l7gate_e2e::harness::cluster::Cluster;
use l7gate_e2e::harness::control::ControlPlane;
use l7gate_e2e::harness::tools;

const FRONTEND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// A policy-shaped document nested 20,000 levels deep (~40 KB): it aborted `serve` before.
fn deep_document() -> String {
    format!("{}a\n", "- ".repeat(20_000))
}

fn start() -> (tempfile::TempDir, Cluster) {
    let manifests = tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::start_ads(manifests.path()).unwrap_or_else(|e| panic!("{e}"));
    (manifests, cluster)
}

fn control(cluster: &Cluster) -> &ControlPlane {
    cluster.control.as_ref().expect("an ADS cluster has a control plane")
}

fn write(path: &Path, text: &str) {
    l7gate::ecds::write_atomically(path, text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Status from frontend for `method path` on inventory-api, over a fresh HTTP/1.1 connection.
async fn inventory_status(cluster: &Cluster, method: &str, path: &str) -> u16 {
    cluster.status_from(FRONTEND, "inventory-api", method, path).await
}

#[tokio::test]
async fn deep_nesting_is_rejected_and_serve_stays_up_across_restarts() {
    let (manifests, mut cluster) = start();
    let before = control(&cluster).status().expect("status").reload.generation;
    let deep = manifests.path().join("policies/deep.yaml");
    write(&deep, &deep_document());
    let report = control(&cluster)
        .wait_for_status(|r| r.reload.error.is_some())
        .unwrap_or_else(|e| panic!("serve died on a deep policy file: {e}"));
    let error = report.reload.error.unwrap_or_default();
    assert!(error.contains("deep.yaml:1:129: mappings and lists nest deeper than 64"), "{error}");
    assert_eq!(report.reload.generation, before, "a state with the deep file was accepted");
    assert_eq!(inventory_status(&cluster, "GET", "/api/inventory/x").await, 200);
    assert_eq!(inventory_status(&cluster, "DELETE", "/api/inventory/x").await, 403);

    // A restart with the file still there: up, reporting it, not ready (nothing accepted yet).
    let cp = cluster.control.as_mut().expect("control plane");
    cp.restart(None).unwrap_or_else(|e| panic!("serve did not come back: {e}"));
    let report = cp.wait_for_status(|r| r.reload.error.is_some()).expect("status after restart");
    assert!(report.reload.error.is_some_and(|e| e.contains("nest deeper than 64")));
    assert_eq!(inventory_status(&cluster, "DELETE", "/api/inventory/x").await, 403);

    // The inventory too; fixing both brings the state back.
    std::fs::remove_file(&deep).expect("rm");
    let endpoints = manifests.path().join("endpoints.yaml");
    let inventory = std::fs::read_to_string(&endpoints).expect("read");
    write(&endpoints, &format!("{inventory}---\n{}", deep_document()));
    let cp = control(&cluster);
    let report = cp
        .wait_for_status(|r| r.reload.error.as_ref().is_some_and(|e| e.contains("endpoints.yaml")))
        .expect("status");
    let error = report.reload.error.unwrap_or_default();
    assert!(error.contains("nest deeper than 64"), "{error}");
    write(&endpoints, &inventory);
    let report = cp.wait_for_status(|r| r.reload.error.is_none()).expect("status");
    assert_eq!(report.reload.error, None);
    assert_eq!(inventory_status(&cluster, "GET", "/api/inventory/x").await, 200);
}

/// Rewrites `path` every few milliseconds until `stop`: in place, or (`atomic`) by renaming a
/// temporary file over it as editors and `kubectl` ConfigMap updates do.
fn hammer(
    path: &Path,
    text: &'static str,
    atomic: bool,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (path, stop) = (path.to_path_buf(), Arc::clone(stop));
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let _ = match atomic {
                true => l7gate::ecds::write_atomically(&path, text),
                false => std::fs::write(&path, text),
            };
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

#[tokio::test]
async fn a_change_is_applied_while_writers_keep_the_directories_busy() {
    let (manifests, cluster) = start();
    let cp = control(&cluster);
    let policies = manifests.path().join("policies");
    let stop = Arc::new(AtomicBool::new(false));
    // Neighbours nothing reads, and a policy file replaced with the same text.
    let same = Box::leak(
        std::fs::read_to_string(policies.join("payment-gateway.yaml"))
            .expect("read")
            .into_boxed_str(),
    );
    let writers = [
        hammer(&policies.join("notes.txt"), "scratch\n", false, &stop),
        hammer(&manifests.path().join("scratch.yaml"), "a: b\n", false, &stop),
        hammer(&policies.join("payment-gateway.yaml"), same, true, &stop),
    ];
    std::thread::sleep(Duration::from_millis(200));
    let before = cp.status().expect("status").reload.generation;

    // Revoke frontend's GET while they write.
    let policy = policies.join("inventory-api.yaml");
    let original = std::fs::read_to_string(&policy).expect("read");
    let revoked = original.replace("/api/inventory/.*", "/api/other/.*");
    write(&policy, &revoked);
    let written = Instant::now();
    let report = cp.wait_for_status(|r| {
        r.reload.generation > before
            && r.reload.last_changed.iter().any(|e| e.contains("inventory-api"))
    });
    let took = written.elapsed();
    let applied = report
        .as_ref()
        .is_ok_and(|r| r.reload.last_changed.iter().any(|e| e.contains("inventory-api")));
    let mut flipped = false;
    for _ in 0..100 {
        if inventory_status(&cluster, "GET", "/api/inventory/x").await == 403 {
            flipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let still_writing = !writers.iter().any(|w| w.is_finished());
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    assert!(still_writing, "a writer stopped early");
    assert!(applied, "the revocation was not applied while the writers ran: {report:?}");
    // watch::DEADLINE is 250 ms; 20 times that is no race, and before the deadline existed the
    // writers held the change back for as long as they ran (25-30 s here, or until a lucky gap).
    assert!(took < 20 * l7gate::watch::DEADLINE, "the revocation took {took:?} to apply");
    assert!(flipped, "the revoked GET is still allowed while the writers ran");
}

#[tokio::test]
async fn a_policy_file_written_in_two_parts_is_applied_whole_or_not_at_all() {
    let (manifests, cluster) = start();
    let cp = control(&cluster);
    let policy = manifests.path().join("policies/inventory-api.yaml");
    let text = std::fs::read_to_string(&policy).expect("read");
    let before = cp.status().expect("status").reload.generation;
    // Cut before `rules:`, the file is a valid L4 allow: DELETE from frontend would pass.
    let cut = text.find("          rules:").expect("the seed policy has rules");
    let mut file = std::fs::File::create(&policy).expect("open for writing");
    file.write_all(&text.as_bytes()[..cut]).expect("first part");
    file.flush().expect("flush");
    let window = Instant::now() + Duration::from_secs(1);
    while Instant::now() < window {
        assert_eq!(
            inventory_status(&cluster, "DELETE", "/api/inventory/x").await,
            403,
            "half a file was applied"
        );
        let generation = cp.status().expect("status").reload.generation;
        assert_eq!(generation, before, "a reload ran while the file was open for writing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    file.write_all(&text.as_bytes()[cut..]).expect("second part");
    drop(file);
    let report = cp.wait_for_status(|r| r.reload.generation > before).expect("status");
    assert!(report.reload.generation > before, "the completed file was never applied");
    assert_eq!(report.reload.error, None);
    assert_eq!(inventory_status(&cluster, "DELETE", "/api/inventory/x").await, 403);
    assert_eq!(inventory_status(&cluster, "GET", "/api/inventory/x").await, 200);
}
