//! Egress end to end (spec §6.2, §6.4, and `serverNames`, `toServices`): real egress Envoys
//! (`envoy/egress.yaml`) running the
//! l7gate filters, real TLS handshakes (rustls, certificates minted here) with a real upstream,
//! names resolved by a DNS server on loopback. Every verdict is also asked of `l7gate trace`,
//! which must agree with what Envoy did.
//!
//! Each test binds its own loopback addresses (listeners on 443/80 need root, as the harness
//! runs), so the tests run in parallel.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use l7gate::compile::Cluster;
use l7gate::trace::{trace, Query};
use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::control::{ControlPlane, ServeSpec};
use l7gate_e2e::harness::dns::DnsServer;
use l7gate_e2e::harness::egress::{self, EgressSpec, Filters};
use l7gate_e2e::harness::envoy::Envoy;
use l7gate_e2e::harness::tls::{exchange, TestPki, TlsOutcome, TlsUpstream};
use l7gate_e2e::harness::tools::{self, repo_root, Tools};
use l7gate_e2e::harness::upstream::Upstream;

const FRONTEND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Where every test name resolves: the "external" upstreams.
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 50);

/// Every name the TLS tests use: all resolve to the upstream and its certificate covers them all,
/// so a filter that let one through would see the handshake complete.
const TLS_NAMES: &[&str] = &[
    "api.example.com",
    "example.com",
    "a.b.example.com",
    "evil-example.com",
    "example.com.evil.net",
];

fn load(manifests: &Path) -> Cluster {
    l7gate::load(&manifests.join("policies"), &manifests.join("endpoints.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .cluster
}

fn seed() -> Cluster {
    load(&repo_root().join("manifests"))
}

fn config_json(cluster: &Cluster, endpoint: &str) -> String {
    let endpoint = cluster.endpoint(endpoint).unwrap_or_else(|e| panic!("{e}"));
    cluster
        .compile(endpoint)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_json()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A DNS server resolving every one of `names` to `ip`.
fn dns_for(names: &[&str], ip: Ipv4Addr) -> DnsServer {
    let records: Vec<(&str, Ipv4Addr)> = names.iter().map(|n| (*n, ip)).collect();
    DnsServer::start(&records).unwrap()
}

fn start_egress(
    tools: &Tools,
    name: &str,
    address: IpAddr,
    ports: (u16, u16),
    dns: &DnsServer,
    config_json: String,
) -> (EgressSpec, Envoy) {
    let spec = EgressSpec {
        name: name.into(),
        address,
        tls_port: ports.0,
        http_port: ports.1,
        dns: dns.addr(),
        filters: Filters::Files(config_json),
    };
    let envoy = egress::start(tools, &spec).unwrap_or_else(|e| panic!("{e}"));
    (spec, envoy)
}

/// `l7gate trace`'s egress verdict for `from` → `to`:`port` with the given SNI or Host.
fn traced(
    cluster: &Cluster,
    from: &str,
    to: &str,
    port: u16,
    sni: Option<&str>,
    host: Option<&str>,
    method: &str,
) -> &'static str {
    let query = Query {
        from: from.into(),
        to: to.into(),
        port,
        sni: sni.map(str::to_string),
        host: host.map(str::to_string),
        method: Some(method.into()),
        ..Query::default()
    };
    let t = trace(cluster, &query).unwrap_or_else(|e| panic!("trace {from} -> {to}: {e}"));
    t.egress.unwrap_or_else(|| panic!("trace {from} -> {to}: no egress side")).verdict
}

// spec §6.2 / §6.4 with the seed CCNP (`*.example.com` on 80/443): the SNI decides. A denied
// name is closed before any upstream contact: the DNS server was never asked for it and the
// upstream accepted no connection; without SNI there is no name, and nothing allows it.
#[tokio::test]
async fn seed_tls_egress_is_decided_by_sni_before_any_upstream_contact() {
    let tools = Tools::require();
    let cluster = seed();
    let pki = TestPki::new(TLS_NAMES).unwrap();
    let upstream = TlsUpstream::start("api", SocketAddr::new(EXTERNAL.into(), 443), &pki).unwrap();
    let dns = dns_for(TLS_NAMES, EXTERNAL);
    let (spec, envoy) = start_egress(
        &tools,
        "frontend",
        FRONTEND,
        (443, 80),
        &dns,
        config_json(&cluster, "frontend"),
    );

    for name in ["example.com", "a.b.example.com", "evil-example.com", "example.com.evil.net"] {
        let outcome =
            exchange(&pki, FRONTEND, spec.tls_listener(), Some(name), name, "hello").await.unwrap();
        assert!(matches!(outcome, TlsOutcome::Closed(_)), "{name}: {outcome:?}");
        assert_eq!(
            traced(&cluster, "frontend", name, 443, Some(name), None, "GET"),
            "deny",
            "{name}"
        );
        assert!(!dns.was_asked(name), "{name} was resolved although denied");
        assert_eq!(upstream.accepted(), 0, "{name}: the upstream was contacted");
    }
    let no_sni = exchange(&pki, FRONTEND, spec.tls_listener(), None, "api.example.com", "hello")
        .await
        .unwrap();
    assert!(matches!(no_sni, TlsOutcome::Closed(_)), "no SNI: {no_sni:?}");
    assert_eq!(
        (upstream.accepted(), dns.queries().len()),
        (0, 0),
        "no SNI: upstream or DNS contacted"
    );

    // Allowed, with the spellings spec §6.2 makes equal: any case; a trailing dot (rustls strips
    // it from the SNI it sends, RFC 6066; the Host test below sends one).
    for sni in ["api.example.com", "API.Example.COM", "api.example.com."] {
        let before = upstream.seen().len();
        let outcome =
            exchange(&pki, FRONTEND, spec.tls_listener(), Some(sni), sni, "hello").await.unwrap();
        assert_eq!(outcome, TlsOutcome::Reply("api saw hello\n".into()), "{sni}");
        assert_eq!(
            traced(&cluster, "frontend", "api.example.com", 443, Some(sni), None, "GET"),
            "allow",
            "{sni}"
        );
        let seen = upstream.seen();
        assert_eq!(seen.len(), before + 1, "{sni}: the upstream did not see the request");
        let got = seen.last().and_then(|s| s.sni.clone()).unwrap_or_default();
        assert!(got.eq_ignore_ascii_case("api.example.com"), "{sni}: upstream saw SNI {got:?}");
    }
    assert!(
        dns.was_asked("api.example.com"),
        "the upstream address must come from the checked name"
    );
    assert!(
        TLS_NAMES.iter().filter(|n| **n != "api.example.com").all(|n| !dns.was_asked(n)),
        "{:?}",
        dns.queries()
    );

    // spec §8: every decided connection has its flow line (with the SNI) and its counter; the
    // connection without SNI never reached the engine: no line, counted as no-address.
    let records = envoy.wait_for_flow_records(7);
    let lines: Vec<(String, &str, &str, Option<&str>)> = records
        .iter()
        .map(|r| {
            let sni =
                r["sni"].as_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase();
            (
                sni,
                r["verdict"].as_str().unwrap_or_default(),
                r["reason"].as_str().unwrap_or_default(),
                r["rule"].as_str(),
            )
        })
        .collect();
    let denied = |n: &str| (n.to_string(), "denied", "default-deny", None);
    let allowed = (
        "api.example.com".to_string(),
        "allowed",
        "allowed-l3-l4",
        Some("spec.egress[1].toPorts[0]"),
    );
    let mut want = vec![
        denied("example.com"),
        denied("a.b.example.com"),
        denied("evil-example.com"),
        denied("example.com.evil.net"),
    ];
    want.extend([allowed.clone(), allowed.clone(), allowed]);
    assert_eq!(lines, want, "{records:#?}");
    for r in &records {
        assert_eq!(
            (r["direction"].as_str(), r["port"].as_u64(), r["protocol"].as_str()),
            (Some("egress"), Some(443), Some("TCP")),
            "{r}"
        );
        assert_eq!(
            (r["src"]["ip"].as_str(), r["src"]["name"].as_str()),
            (Some("127.0.0.2"), Some("default/frontend")),
            "{r}"
        );
        assert_eq!(r["dst"]["identity"], 2, "a name's peer is world: {r}");
        assert_eq!(r.get("host"), None, "{r}");
    }
    let stats = |name: &str| egress_counter(&envoy, name);
    assert_eq!(stats("rule_verdicts.direction=egress.verdict=allowed.policy=egress-allowlist.rule=spec.egress[1].toPorts[0]"), 3);
    assert_eq!(stats("default_verdicts.direction=egress.verdict=denied.reason=default-deny"), 4);
    assert_eq!(stats("default_verdicts.direction=egress.verdict=denied.reason=no-address"), 1);
}

/// The value of the l7gate counter `wasmcustom.l7gate.<name>` (0 when Envoy has none).
fn egress_counter(envoy: &Envoy, name: &str) -> u64 {
    let (_, body) = envoy.admin_get("/stats?filter=l7gate").unwrap_or_else(|e| panic!("{e}"));
    let full = format!("wasmcustom.l7gate.{name}: ");
    body.lines().find_map(|l| l.strip_prefix(full.as_str())?.trim().parse().ok()).unwrap_or(0)
}

// spec §6.4 then §3.8: the name is allowed, the port is not (the CCNP names 80 and 443 only).
// The TLS upstream on 8443 exists, so only the filter stands between the client and it.
#[tokio::test]
async fn an_allowed_name_on_a_port_the_policy_does_not_name_is_closed() {
    let tools = Tools::require();
    let cluster = seed();
    let pki = TestPki::new(&["api.example.com"]).unwrap();
    let upstream =
        TlsUpstream::start("api-8443", SocketAddr::new(EXTERNAL.into(), 8443), &pki).unwrap();
    let dns = dns_for(&["api.example.com"], EXTERNAL);
    let address = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41));
    let (spec, _envoy) = start_egress(
        &tools,
        "frontend-8443",
        address,
        (8443, 8081),
        &dns,
        config_json(&cluster, "frontend"),
    );

    let outcome = exchange(
        &pki,
        FRONTEND,
        spec.tls_listener(),
        Some("api.example.com"),
        "api.example.com",
        "hello",
    )
    .await
    .unwrap();
    assert!(matches!(outcome, TlsOutcome::Closed(_)), "{outcome:?}");
    assert_eq!(
        traced(&cluster, "frontend", "api.example.com", 8443, Some("api.example.com"), None, "GET"),
        "deny"
    );
    assert_eq!((upstream.accepted(), dns.queries().len()), (0, 0), "upstream or DNS contacted");
}

/// One plain-HTTP request from `from` through an egress Envoy: `(status, body)`.
async fn http(from: IpAddr, to: SocketAddr, authority: &str, method: &str) -> (u16, String) {
    let req = Request { from, to, authority, method, path: "/" };
    let r = client::send(Protocol::Http1, &req)
        .await
        .unwrap_or_else(|e| panic!("{method} {authority}: {e}"));
    (r.status, r.body)
}

// spec §6.4 for plain HTTP: the Host decides, with the port it names (80 when none, which is
// where the forward proxy connects). IP literals carry no name: only IP-based rules decide them
// (the seed's `toEntities: cluster` allows a workload's address, nothing allows an unknown one).
#[tokio::test]
async fn seed_plain_http_egress_is_decided_by_host() {
    let tools = Tools::require();
    let cluster = seed();
    let names = ["api.example.com", "example.com", "evil.net"];
    let dns = dns_for(&names, EXTERNAL);
    let app = Upstream::start_at("api-http", SocketAddr::new(EXTERNAL.into(), 80)).unwrap();
    let in_cluster =
        Upstream::start_at("reporting-app", "127.0.0.3:8081".parse().unwrap()).unwrap();
    let outside = Upstream::start_at("outside", "127.0.0.99:80".parse().unwrap()).unwrap();
    let address = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 43));
    let (spec, _envoy) = start_egress(
        &tools,
        "frontend-http",
        address,
        (8444, 80),
        &dns,
        config_json(&cluster, "frontend"),
    );
    let denied = (403, "Access denied\r\n".to_string());

    let cases: &[(&str, u16, (u16, String))] = &[
        ("api.example.com", 80, (200, "api-http saw GET /".into())),
        ("API.EXAMPLE.COM.", 80, (200, "api-http saw GET /".into())),
        ("api.example.com:80", 80, (200, "api-http saw GET /".into())),
        ("api.example.com:8080", 8080, denied.clone()),
        ("evil.net", 80, denied.clone()),
        ("example.com", 80, denied.clone()),
        ("127.0.0.3:8081", 8081, (200, "reporting-app saw GET /".into())),
        ("127.0.0.99", 80, denied.clone()),
    ];
    for (authority, port, expected) in cases {
        assert_eq!(
            &http(FRONTEND, spec.http_listener(), authority, "GET").await,
            expected,
            "Host: {authority}"
        );
        let to = authority.rsplit_once(':').map_or(*authority, |(h, _)| h);
        let verdict = if expected.0 == 200 { "allow" } else { "deny" };
        assert_eq!(
            traced(&cluster, "frontend", to, *port, None, Some(authority), "GET"),
            verdict,
            "trace Host: {authority}"
        );
    }
    assert_eq!((app.count(), in_cluster.count(), outside.count()), (3, 1, 0));
    assert!(!dns.was_asked("evil.net") && !dns.was_asked("example.com"), "{:?}", dns.queries());
}

// spec §2.3: a CNP selects only endpoints of its own namespace, also for egress; spec §5 on an
// FQDN destination: team-a's rule allows GET only, team-b's has no HTTP rules.
#[tokio::test]
async fn namespaced_fqdn_policies_apply_to_their_namespace_with_their_l7_rules() {
    let tools = Tools::require();
    let cluster = load(&repo_root().join("tests/fixtures/fqdn"));
    // Its own upstream address: the plain-HTTP seed test serves port 80 on EXTERNAL.
    let external = Ipv4Addr::new(127, 0, 0, 52);
    let dns = dns_for(&["api.example.com", "status.example.org"], external);
    let app = Upstream::start_at("external", SocketAddr::new(external.into(), 80)).unwrap();
    let shop_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 31));
    let billing_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 32));
    let (shop, _shop_envoy) =
        start_egress(&tools, "shop", shop_ip, (443, 80), &dns, config_json(&cluster, "shop"));
    let (billing, _billing_envoy) = start_egress(
        &tools,
        "billing",
        billing_ip,
        (443, 80),
        &dns,
        config_json(&cluster, "billing"),
    );

    // Each workload calls its own egress Envoy from its own address.
    let cases = [
        ("shop", shop.http_listener(), "api.example.com", "GET", 200),
        ("shop", shop.http_listener(), "api.example.com", "POST", 403),
        ("shop", shop.http_listener(), "status.example.org", "GET", 403),
        ("billing", billing.http_listener(), "status.example.org", "GET", 200),
        ("billing", billing.http_listener(), "status.example.org", "POST", 200),
        ("billing", billing.http_listener(), "api.example.com", "GET", 403),
    ];
    for (from, listener, host, method, status) in cases {
        let source = if from == "shop" { shop_ip } else { billing_ip };
        let (got, body) = http(source, listener, host, method).await;
        assert_eq!(got, status, "{from} {method} {host}: {body}");
        let verdict = if status == 200 { "allow" } else { "deny" };
        assert_eq!(
            traced(&cluster, from, host, 80, None, Some(host), method),
            verdict,
            "trace {from} {method} {host}"
        );
    }
    assert_eq!(app.count(), 3, "{:?}", app.seen());
    // A TLS connection carries no HTTP request, so a rule with HTTP rules cannot allow it
    // (the TLS filter decides with no headers, and so does trace with --sni).
    assert_eq!(
        traced(&cluster, "shop", "api.example.com", 80, Some("api.example.com"), None, "GET"),
        "deny"
    );
}

/// Egress over ADS (`envoy/egress-ads.yaml`): `l7gate serve` pushes `frontend`'s two egress
/// filters to the egress Envoy whose node id is `frontend`, and an edit of the seed CCNP flips
/// TLS verdicts live, with no restart: `*.example.com` → `*.example.org`.
#[tokio::test]
async fn egress_over_ads_follows_a_policy_edit_live() {
    const WORKLOAD: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 65));
    const UPSTREAM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 66);
    let names = ["api.example.com", "api.example.org"];
    let tools = Tools::require();
    let manifests = tools::seed_copy().unwrap_or_else(|e| panic!("{e}"));
    let policy = manifests.path().join("policies/egress-example-com.yaml");
    let cp = ControlPlane::start(ServeSpec {
        egress: true,
        ..ServeSpec::files(manifests.path(), &tools.wasm)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let pki = TestPki::new(&names).unwrap();
    let upstream = TlsUpstream::start("api", SocketAddr::new(UPSTREAM.into(), 443), &pki).unwrap();
    let dns = dns_for(&names, UPSTREAM);
    let spec = EgressSpec {
        name: "frontend".into(),
        address: WORKLOAD,
        tls_port: 443,
        http_port: 80,
        dns: dns.addr(),
        filters: Filters::Ads(cp.xds()),
    };
    let _envoy = egress::start(&tools, &spec).unwrap_or_else(|e| panic!("{e}"));
    // Each name's outcome, once both match `allowed` (the new config may take a moment to arrive).
    let verdicts_become = |allowed: &'static str| {
        let (pki, to, cp) = (&pki, spec.tls_listener(), &cp);
        async move {
            let mut last = Vec::new();
            for _ in 0..300 {
                last.clear();
                for name in names {
                    let outcome =
                        exchange(pki, FRONTEND, to, Some(name), name, "hello").await.unwrap();
                    last.push((name, outcome));
                }
                let expected = |(name, outcome): &(&str, TlsOutcome)| match outcome {
                    TlsOutcome::Reply(reply) => *name == allowed && reply == "api saw hello\n",
                    TlsOutcome::Closed(_) => *name != allowed,
                };
                if last.iter().all(expected) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("never only {allowed} allowed: {last:?}\n{}", cp.log());
        }
    };
    verdicts_become("api.example.com").await;
    let original = std::fs::read_to_string(&policy).unwrap();
    assert!(original.contains("\"*.example.com\""));
    l7gate::ecds::write_atomically(
        &policy,
        &original.replace("\"*.example.com\"", "\"*.example.org\""),
    )
    .unwrap();
    verdicts_become("api.example.org").await;
    let seen: Vec<Option<String>> = upstream.seen().into_iter().map(|s| s.sni).collect();
    assert_eq!(seen.first(), Some(&Some("api.example.com".to_string())), "{seen:?}");
    assert_eq!(seen.last(), Some(&Some("api.example.org".to_string())), "{seen:?}");
}

// spec §3.8, §4.3 item 6, §4.4 step 4: serverNames on the egress TLS filter. Names listed and
// `*.` one label below pass; two labels below, the apex, other names and no SNI are closed
// before the upstream, with reason denied-server-name. A second rule for the same peers and port
// without serverNames does not lift the list; a rule for other peers (toFQDNs) keeps its own.
#[tokio::test]
async fn server_names_allow_only_the_listed_sni() {
    let tools = Tools::require();
    let fixture = repo_root().join("tests/fixtures/server-names");
    let cluster = l7gate::load(&fixture, &repo_root().join("manifests/endpoints.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .cluster;
    let upstream_ip = Ipv4Addr::new(127, 0, 0, 46);
    let names = [
        "api.example.com",
        "x.wild.example.com",
        "a.b.wild.example.com",
        "wild.example.com",
        "example.com",
        "x.other.net",
    ];
    let pki = TestPki::new(&names).unwrap();
    let upstream =
        TlsUpstream::start("sni", SocketAddr::new(upstream_ip.into(), 443), &pki).unwrap();
    let dns = dns_for(&names, upstream_ip);
    let address = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 45));
    let (spec, envoy) = start_egress(
        &tools,
        "frontend-sni",
        address,
        (443, 80),
        &dns,
        config_json(&cluster, "frontend"),
    );

    for (name, allowed) in [
        ("api.example.com", true),
        ("API.Example.com", true),
        ("x.wild.example.com", true),
        ("x.other.net", true),
        ("a.b.wild.example.com", false),
        ("wild.example.com", false),
        ("example.com", false),
    ] {
        let before = upstream.accepted();
        let outcome =
            exchange(&pki, FRONTEND, spec.tls_listener(), Some(name), name, "hello").await.unwrap();
        let traced = traced(&cluster, "frontend", name, 443, Some(name), None, "GET");
        if allowed {
            assert_eq!(outcome, TlsOutcome::Reply("sni saw hello\n".into()), "{name}");
            assert_eq!(traced, "allow", "{name}");
        } else {
            assert!(matches!(outcome, TlsOutcome::Closed(_)), "{name}: {outcome:?}");
            assert_eq!(traced, "deny", "{name}");
            assert_eq!(upstream.accepted(), before, "{name}: the upstream was contacted");
        }
    }
    let no_sni = exchange(&pki, FRONTEND, spec.tls_listener(), None, "api.example.com", "hello")
        .await
        .unwrap();
    assert!(matches!(no_sni, TlsOutcome::Closed(_)), "no SNI: {no_sni:?}");

    // The flow records say why: the deciding rule, or the SNI list that refused.
    let records = envoy.wait_for_flow_records(7);
    let of = |sni: &str| {
        records
            .iter()
            .find(|r| r["sni"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(sni)))
            .map(|r| {
                (
                    r["verdict"].as_str().unwrap_or_default(),
                    r["reason"].as_str().unwrap_or_default(),
                    r["rule"].as_str().unwrap_or_default(),
                )
            })
            .unwrap_or_else(|| panic!("no flow record for {sni}: {records:#?}"))
    };
    assert_eq!(of("x.wild.example.com"), ("allowed", "allowed-l3-l4", "spec.egress[0].toPorts[0]"));
    assert_eq!(of("x.other.net"), ("allowed", "allowed-l3-l4", "spec.egress[2].toPorts[0]"));
    assert_eq!(of("example.com"), ("denied", "denied-server-name", "spec.egress[0].toPorts[0]"));
    assert_eq!(of("a.b.wild.example.com").1, "denied-server-name");
}

// spec §3.5: toServices through the egress HTTP listener. A Service with a selector allows its
// pods and not others; one without allows its backend addresses; only on the rule's ports.
#[tokio::test]
async fn to_services_allow_a_services_pods_or_its_backends() {
    let tools = Tools::require();
    let cluster = load(&repo_root().join("tests/fixtures/services"));
    let dns = dns_for(&[], EXTERNAL);
    let catalog = Upstream::start_at("catalog", "127.0.0.35:8081".parse().unwrap()).unwrap();
    let catalog_8082 =
        Upstream::start_at("catalog-8082", "127.0.0.35:8082".parse().unwrap()).unwrap();
    let old = Upstream::start_at("catalog-old", "127.0.0.36:8081".parse().unwrap()).unwrap();
    let backend = Upstream::start_at("payments", "127.0.0.37:8082".parse().unwrap()).unwrap();
    let stranger = Upstream::start_at("stranger", "127.0.0.38:8082".parse().unwrap()).unwrap();
    let shop = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 34));
    let (spec, _envoy) =
        start_egress(&tools, "shop", shop, (8445, 80), &dns, config_json(&cluster, "shop"));
    let denied = (403, "Access denied\r\n".to_string());
    for (authority, expected) in [
        ("127.0.0.35:8081", (200, "catalog saw GET /".to_string())),
        ("127.0.0.36:8081", denied.clone()),
        ("127.0.0.35:8082", denied.clone()),
        ("127.0.0.37:8082", (200, "payments saw GET /".to_string())),
        ("127.0.0.38:8082", denied.clone()),
    ] {
        assert_eq!(
            http(shop, spec.http_listener(), authority, "GET").await,
            expected,
            "{authority}"
        );
        let (to, port) = authority.rsplit_once(':').unwrap();
        let verdict = if expected.0 == 200 { "allow" } else { "deny" };
        assert_eq!(
            traced(&cluster, "shop", to, port.parse().unwrap(), None, Some(authority), "GET"),
            verdict,
            "trace {authority}"
        );
    }
    let counts = [&catalog, &catalog_8082, &old, &backend, &stranger].map(|u| u.count());
    assert_eq!(counts, [1, 0, 0, 1, 0]);
}
