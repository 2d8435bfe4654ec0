//! The security suite: classes of bypass found by attacking l7gate from outside, each sent as a
//! generated corpus through real Envoys running the real filter, asserting what the application
//! received, not just the status code.
//!
//! 1. Path confusion: a path the filter allows must mean the same to the application. Envoy
//!    normalises first (envoy/sidecar.yaml), but `%2e%2e;` arrives as `..;`, which Tomcat (and
//!    Jetty, Spring, …) resolve as `..` once the `;` parameter is cut. The corpus spells a `..`
//!    segment every way an application may still read it (encodings, double encodings, `%u`,
//!    overlong UTF-8, NFKC forms, Windows forms) with every parameter and separator spelling,
//!    over HTTP/1.1 and HTTP/2, to a sidecar in front of a real Tomcat and to one in front of
//!    the plain test application: none may be served outside the allowed prefix (Envoy resolves
//!    a few spellings into it; the rest must not reach the application at all).

use std::net::SocketAddr;

use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::cluster::Cluster;
use l7gate_e2e::harness::envoy::Envoy;
use l7gate_e2e::harness::tomcat::Tomcat;
use l7gate_e2e::scenario::{self, Case, Expect, Peer};

const FRONTEND_IP: &str = "127.0.0.2";
/// The inventory-api sidecar in front of Tomcat: its own address, the endpoint's port.
const HOP: &str = "127.0.0.60:8080";
const PROTOCOLS: [Protocol; 2] = [Protocol::RawHttp1, Protocol::Http2];
/// The stat counting requests Envoy sent to the application.
const UPSTREAM_REQUESTS: &str = "cluster.app.upstream_rq_total";

/// Spellings of a `..` segment that Envoy does not resolve but some application might.
const DOTS: &[&str] = &[
    "..",
    ".%2e",
    "%2e.",
    "%2e%2e",
    "%2E%2E",
    "%252e%252e",
    "%25252e%25252e",
    "%u002e%u002e",
    "%c0%ae%c0%ae",
    "%ef%bc%8e%ef%bc%8e",
    "%e2%80%a5",
    "...",
    "..%20",
];
/// What may follow it inside the segment: `;` path parameters, raw and encoded.
const PARAMS: &[&str] = &["", ";", ";x=1", ";jsessionid=0123", "%3b", "%3Bx=1", "%253b"];
/// What ends the segment.
const SEPARATORS: &[&str] = &["/", "\\", "%5c", "%2f", "%252f", "%c0%af"];

/// Every path of the corpus: one `..` up from the allowed prefix, and two from below it.
fn confusing_paths() -> Vec<String> {
    let mut paths = Vec::new();
    for dots in DOTS {
        for param in PARAMS {
            for sep in SEPARATORS {
                let up = format!("{dots}{param}{sep}");
                paths.push(format!("/api/inventory/{up}admin"));
                paths.push(format!("/api/inventory/x/{up}{up}admin"));
            }
        }
    }
    paths
}

/// Requests the rule allows, with the path Tomcat must dispatch on.
#[rustfmt::skip]
const CONTROLS: &[(&str, &str)] = &[
    ("/api/inventory/item123", "/api/inventory/item123"),
    ("/api/inventory/item;v=1", "/api/inventory/item"),
    ("/api/inventory/a.b", "/api/inventory/a.b"),
    ("/api/inventory/.well-known", "/api/inventory/.well-known"),
    ("/api/inventory/..x", "/api/inventory/..x"),
    ("/api/%69nventory/item", "/api/inventory/item"),
    ("/api/inventory/x/../item", "/api/inventory/item"),
    ("/api/inventory/x?next=/../admin", "/api/inventory/x"),
];

async fn get(to: SocketAddr, path: &str, protocol: Protocol) -> Result<client::Response, String> {
    let from = FRONTEND_IP.parse().map_err(|e| format!("{e}"))?;
    let request = Request { from, to, authority: "inventory-api:8080", method: "GET", path };
    client::send_with(protocol, &request, &[]).await.map_err(|e| e.to_string())
}

/// Whether an application's answer says it served a path the rule (`/api/inventory/.*`) allows.
fn allowed(body: &str) -> bool {
    let served = body.strip_prefix("tomcat resolved GET ");
    let served = served.or_else(|| body.strip_prefix("inventory-api saw GET "));
    served.is_some_and(|path| path.starts_with("/api/inventory/") && !path.contains('\n'))
}

fn upstream_requests(envoy: &Envoy) -> u64 {
    envoy.stat(UPSTREAM_REQUESTS).unwrap_or_else(|| panic!("{UPSTREAM_REQUESTS} missing"))
}

#[tokio::test]
async fn confusing_paths_never_reach_the_application() {
    let cluster = Cluster::start_seed().unwrap_or_else(|e| panic!("{e}"));
    let tomcat = Tomcat::start().unwrap_or_else(|e| panic!("{e}"));
    let hop_addr: SocketAddr = HOP.parse().expect("address");
    let hop = cluster
        .extra_sidecar("inventory-api", hop_addr, tomcat.addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let direct = &cluster.sidecar("inventory-api").expect("inventory-api sidecar").envoy;

    // The rule still allows what it should, and the application gets it as intended.
    let mut failures = Vec::new();
    for (path, resolved) in CONTROLS {
        for protocol in PROTOCOLS {
            let want = Tomcat::reply_body("GET", resolved);
            match get(hop.listener(), path, protocol).await {
                Ok(r) if r.status == 200 && r.body == want => {}
                other => {
                    failures.push(format!("{protocol} {path}: want 200 {want:?}, got {other:?}"))
                }
            }
        }
    }
    assert!(failures.is_empty(), "allowed requests broke:\n{}", failures.join("\n"));

    // Not one confusing path is served outside the prefix, by Tomcat or by the plain application.
    let corpus = confusing_paths();
    for (envoy, name) in [(&hop, "tomcat"), (direct, "inventory-api")] {
        for path in &corpus {
            for protocol in PROTOCOLS {
                let before = upstream_requests(envoy);
                let response = get(envoy.listener(), path, protocol).await;
                let reached = upstream_requests(envoy) - before;
                match response {
                    Ok(r) if reached == 0 && r.status != 200 => {}
                    // Envoy itself may resolve a spelling to a path the rule allows.
                    Ok(r) if reached == 1 && r.status == 200 && allowed(&r.body) => {}
                    other => failures.push(format!(
                        "{protocol} {path}: reached {name} {reached} time(s), answer {other:?}"
                    )),
                }
            }
        }
    }
    let sent = corpus.len() * PROTOCOLS.len() * 2;
    assert!(
        failures.is_empty(),
        "{} of {sent} confusing requests were served outside /api/inventory/:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The denial is the filter's, named as such in the flow record.
    let case = Case {
        from: Peer::Endpoint("frontend"),
        to: "inventory-api",
        over: &PROTOCOLS,
        method: "GET",
        path: "/api/inventory/%2e%2e;/admin",
        expect: Expect::Deny,
        spec: "",
    };
    let before = direct.flow_records().len();
    let response = get(direct.listener(), case.path, Protocol::Http2).await.expect("response");
    scenario::check_response(&case, &response).unwrap_or_else(|e| panic!("{e}"));
    let records = direct.wait_for_flow_records(before + 1);
    let record = records.last().expect("a flow record");
    assert_eq!(record["reason"], "denied-ambiguous-path", "{record}");
    assert_eq!(record["path"], "/api/inventory/..;/admin", "{record}");
}
