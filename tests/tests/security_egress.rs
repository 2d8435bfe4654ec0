//! Security suite, egress: an allowed name must never take the egress proxy into the cluster, to
//! the workload's own host or back to itself, and only the workload may use its egress listeners
//! (issue 13, findings 3 and 4). Real egress Envoy (`envoy/egress.yaml`) with the seed policies
//! (frontend may reach `*.example.com` on 80/443), real upstreams listening at every address a
//! DNS answer names, names resolved by a DNS server whose answers an attacker writes, through the
//! DNS guard (`l7gate-egress-dns`). Each case asserts what the upstream behind the address saw,
//! not just the status.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::dns::DnsServer;
use l7gate_e2e::harness::egress::{self, EgressSpec, Filters};
use l7gate_e2e::harness::envoy::Envoy;
use l7gate_e2e::harness::tls::{exchange, TestPki, TlsOutcome, TlsUpstream};
use l7gate_e2e::harness::tools::{repo_root, Tools};
use l7gate_e2e::harness::upstream::Upstream;

/// frontend's address: its egress Envoy listens here, and it calls from here.
const FRONTEND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// inventory-api's pod address and node-1's address (manifests/endpoints.yaml).
const POD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);
const NODE: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
/// The outside world (no inventory entry).
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);
/// An outside address nothing answers at (TEST-NET-1): the first answer Envoy cannot connect to.
const UNREACHABLE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn config_json(endpoint: &str) -> String {
    let manifests = repo_root().join("manifests");
    let cluster = l7gate::load(&manifests.join("policies"), &manifests.join("endpoints.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .cluster;
    let endpoint = cluster.endpoint(endpoint).unwrap_or_else(|e| panic!("{e}"));
    cluster
        .compile(endpoint)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_json()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What an attacker who controls records under `example.com` makes them say.
fn attacker_dns() -> DnsServer {
    DnsServer::start(&[
        ("pod.example.com", POD),
        ("node.example.com", NODE),
        ("self.example.com", FRONTEND),
        ("zero.example.com", Ipv4Addr::UNSPECIFIED),
        ("metadata.example.com", Ipv4Addr::new(169, 254, 169, 254)),
        // The pod first: the address Envoy would try first is dropped, the outside one kept.
        ("mixed.example.com", POD),
        ("mixed.example.com", EXTERNAL),
        // An unreachable outside address first: Envoy's fallback to the next address of the
        // answer must not find the pod.
        ("fallback.example.com", UNREACHABLE),
        ("fallback.example.com", POD),
        ("api.example.com", EXTERNAL),
    ])
    .unwrap()
}

fn egress(tools: &Tools, dns: &DnsServer, tls_port: u16, http_port: u16) -> (EgressSpec, Envoy) {
    let spec = EgressSpec {
        name: "frontend".into(),
        address: FRONTEND.into(),
        tls_port,
        http_port,
        dns: dns.addr(),
        filters: Filters::Files(config_json("frontend")),
    };
    let envoy = egress::start(tools, &spec).unwrap_or_else(|e| panic!("{e}"));
    (spec, envoy)
}

async fn http(from: Ipv4Addr, to: SocketAddr, authority: &str) -> (u16, String) {
    let req = Request { from: from.into(), to, authority, method: "GET", path: "/" };
    let r = client::send(Protocol::Http1, &req)
        .await
        .unwrap_or_else(|e| panic!("GET {authority}: {e}"));
    (r.status, r.body)
}

/// The value of the l7gate counter `wasmcustom.l7gate.<name>` (0 when Envoy has none).
fn counter(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(&format!("wasmcustom.l7gate.{name}")).unwrap_or(0)
}

// Finding 3 and the loop of finding 4, over plain HTTP: every answer that is a pod, a node, the
// workload itself or a local address is dropped, so the request fails as a DNS failure and the
// server at that address sees nothing; an answer's outside addresses stay usable, and Envoy's
// fallback past an unreachable one finds nothing else. IP literals of local addresses are denied
// before any rule (the seed's `toEntities: cluster` would otherwise allow `host`).
#[tokio::test]
async fn names_never_lead_into_the_cluster_to_the_host_or_back_to_the_proxy() {
    let tools = Tools::require();
    let dns = attacker_dns();
    let pod = Upstream::start_at("pod", SocketAddr::new(POD.into(), 80)).unwrap();
    let node = Upstream::start_at("node", SocketAddr::new(NODE.into(), 80)).unwrap();
    let local =
        Upstream::start_at("local", SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 80)).unwrap();
    let external = Upstream::start_at("external", SocketAddr::new(EXTERNAL.into(), 80)).unwrap();
    let (spec, envoy) = egress(&tools, &dns, 8445, 80);
    let dns_failure = (503, "DNS resolution failure".to_string());
    let connect_failure = |body: &str| body.starts_with("upstream connect error");
    let denied = (403, "Access denied\r\n".to_string());

    for name in ["pod", "node", "self", "zero", "metadata"] {
        let host = format!("{name}.example.com");
        assert_eq!(http(FRONTEND, spec.http_listener(), &host).await, dns_failure, "{host}");
        assert!(dns.was_asked(&host), "{host}: the name was allowed, so it was resolved");
    }
    let (status, body) = http(FRONTEND, spec.http_listener(), "mixed.example.com").await;
    assert_eq!((status, body.as_str()), (200, "external saw GET /"), "mixed.example.com");
    let (status, body) = http(FRONTEND, spec.http_listener(), "fallback.example.com").await;
    assert!(status == 503 && connect_failure(&body), "fallback.example.com: {status} {body}");
    for literal in ["127.0.0.1", "0.0.0.0", "169.254.169.254"] {
        assert_eq!(http(FRONTEND, spec.http_listener(), literal).await, denied, "Host: {literal}");
    }
    assert_eq!(
        (pod.count(), node.count(), local.count(), external.count()),
        (0, 0, 0, 1),
        "pod {:?} node {:?} local {:?}",
        pod.seen(),
        node.seen(),
        local.seen()
    );
    // One request each reached the HTTP listener: the one for self.example.com did not loop.
    let requests = envoy.stat("http.egress_http.downstream_rq_total").unwrap_or(0);
    assert_eq!(requests, 10, "requests through the HTTP listener");
    // pod, node, self, zero, metadata, the pod of mixed and of fallback (at least: Envoy may
    // ask again for a name whose answer came back empty).
    assert!(
        counter(&envoy, "dns_dropped_answers") >= 7,
        "{}",
        counter(&envoy, "dns_dropped_answers")
    );
    // The warning names the address and the name (Envoy writes its log file out every few
    // seconds).
    let logged = |log: &str| {
        log.contains("DNS guard: dropped 127.0.0.10 (") && log.contains("pod.example.com")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !logged(&envoy.log_tail(400)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = envoy.log_tail(400);
    assert!(logged(&log), "{log}");
}

// The same over TLS: the SNI is allowed, the address it resolves to is not, so the connection is
// closed and the TLS server at that address accepts nothing; an outside answer still works.
#[tokio::test]
async fn tls_names_never_lead_into_the_cluster_or_to_the_host() {
    let tools = Tools::require();
    let names = ["pod.example.com", "node.example.com", "zero.example.com", "mixed.example.com"];
    let pki = TestPki::new(&names).unwrap();
    let dns = attacker_dns();
    let pod = TlsUpstream::start("pod", SocketAddr::new(POD.into(), 443), &pki).unwrap();
    let node = TlsUpstream::start("node", SocketAddr::new(NODE.into(), 443), &pki).unwrap();
    let local = TlsUpstream::start("local", SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 443), &pki)
        .unwrap();
    let external =
        TlsUpstream::start("external", SocketAddr::new(EXTERNAL.into(), 443), &pki).unwrap();
    let (spec, _envoy) = egress(&tools, &dns, 443, 8081);
    let from = IpAddr::V4(FRONTEND);
    for name in ["pod.example.com", "node.example.com", "zero.example.com"] {
        let outcome =
            exchange(&pki, from, spec.tls_listener(), Some(name), name, "hi").await.unwrap();
        assert!(matches!(outcome, TlsOutcome::Closed(_)), "{name}: {outcome:?}");
        assert!(dns.was_asked(name), "{name} was allowed by name, so it was resolved");
    }
    let outcome = exchange(
        &pki,
        from,
        spec.tls_listener(),
        Some("mixed.example.com"),
        "mixed.example.com",
        "hi",
    )
    .await
    .unwrap();
    assert!(!matches!(outcome, TlsOutcome::Closed(_)), "mixed.example.com: {outcome:?}");
    assert_eq!((pod.accepted(), node.accepted(), local.accepted()), (0, 0, 0));
    assert_eq!(external.accepted(), 1);
}

// Finding 4: the egress listeners serve only their workload. Another workload (reporting, at
// 127.0.0.3) or an unknown local process (127.0.0.77) borrowing frontend's egress Envoy is
// denied with its own reason before any name is looked at: no DNS query, no upstream contact.
// frontend itself, from its own address, is served.
#[tokio::test]
async fn only_the_workload_itself_may_use_its_egress_listeners() {
    let tools = Tools::require();
    let outside = Ipv4Addr::new(127, 0, 0, 54);
    let pki = TestPki::new(&["api.example.com"]).unwrap();
    let dns = DnsServer::start(&[("api.example.com", outside)]).unwrap();
    let web = Upstream::start_at("web", SocketAddr::new(outside.into(), 80)).unwrap();
    let tls = TlsUpstream::start("tls", SocketAddr::new(outside.into(), 8446), &pki).unwrap();
    let (spec, envoy) = egress(&tools, &dns, 8446, 8082);
    let (name, hello) = ("api.example.com", "hi");
    for from in [Ipv4Addr::new(127, 0, 0, 3), Ipv4Addr::new(127, 0, 0, 77)] {
        let (status, body) = http(from, spec.http_listener(), name).await;
        assert_eq!((status, body.as_str()), (403, "Access denied\r\n"), "HTTP from {from}");
        let outcome = exchange(&pki, from.into(), spec.tls_listener(), Some(name), name, hello)
            .await
            .unwrap();
        assert!(matches!(outcome, TlsOutcome::Closed(_)), "TLS from {from}: {outcome:?}");
    }
    assert_eq!((web.count(), tls.accepted(), dns.queries().len()), (0, 0, 0));
    let records = envoy.wait_for_flow_records(4);
    let reasons: Vec<&str> = records.iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, ["denied-foreign-caller"; 4], "{records:?}");
    let denied = "default_verdicts.direction=egress.verdict=denied.reason=denied-foreign-caller";
    assert_eq!(counter(&envoy, denied), 4);

    let (status, body) = http(FRONTEND, spec.http_listener(), name).await;
    assert_eq!((status, body.as_str()), (200, "web saw GET /"));
    // (TLS to port 8446 is the policy's to deny: the seed names 443; the TLS test above shows
    // frontend served over TLS.)
    assert_eq!((web.count(), tls.accepted()), (1, 0));
}
